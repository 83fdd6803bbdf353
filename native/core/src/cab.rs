//! Symbol servers' compressed files (`.pd_`, `.dl_`, `.ex_`): a cabinet holding one file, MSZIP or LZX.

use crate::error::{Error, Result};
use crate::guard::guarded;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// CFHEADER (MS-CAB): the signature, then the cabinet's total size.
mod header {
    pub const MAGIC: &[u8; 4] = b"MSCF";
    pub const CB_CABINET: usize = 0x08;
    pub const SIZE: usize = 0x24;
}

/// Expands the one member of the cabinet `src` into `dst` and returns the member's name. On any error `dst`
/// is removed.
pub fn expand_cab(src: &Path, dst: &Path) -> Result<String> {
    let result = guarded("expanding the cabinet", || expand(src, dst));
    if result.is_err() {
        let _ = std::fs::remove_file(dst);
    }
    result.map_err(|e| e.in_file(src))
}

fn expand(src: &Path, dst: &Path) -> Result<String> {
    let mut file = File::open(src).map_err(|e| Error::new(format!("cannot read: {e}")))?;
    let file_len = file.metadata().map_err(|e| Error::new(format!("cannot read: {e}")))?.len();
    let mut head = [0u8; header::SIZE];
    let got = file.read(&mut head).map_err(|e| Error::new(format!("cannot read: {e}")))?;
    if got < header::MAGIC.len() || &head[..4] != header::MAGIC {
        return Err(Error::at(0, "not a cabinet: no MSCF signature"));
    }
    if (got as u64) < header::SIZE as u64 {
        return Err(Error::at(got as u64, format!("truncated: {file_len} bytes, shorter than the cabinet header")));
    }
    let declared = u32::from_le_bytes(head[header::CB_CABINET..header::CB_CABINET + 4].try_into().expect("4 bytes"));
    if u64::from(declared) > file_len {
        return Err(Error::at(
            header::CB_CABINET as u64,
            format!("truncated: the header declares {declared} bytes, the file has {file_len}"),
        ));
    }
    let file = File::open(src).map_err(|e| Error::new(format!("cannot read: {e}")))?;
    let mut cabinet = cab::Cabinet::new(BufReader::new(file)).map_err(|e| Error::new(format!("bad cabinet: {e}")))?;
    let members: Vec<(String, u32)> = cabinet
        .folder_entries()
        .flat_map(|folder| folder.file_entries())
        .map(|f| (f.name().to_owned(), f.uncompressed_size()))
        .collect();
    let [(name, size)] = members.as_slice() else {
        return Err(Error::new(format!("a cabinet of {} files; a symbol file's holds one", members.len())));
    };
    let mut reader = cabinet.read_file(name).map_err(|e| Error::new(format!("cannot read member {name}: {e}")))?;
    let out = File::create(dst).map_err(|e| Error::new(format!("cannot write {}: {e}", dst.display())))?;
    let mut out = BufWriter::new(out);
    let written =
        io::copy(&mut reader, &mut out).map_err(|e| Error::new(format!("cannot expand member {name}: {e}")))?;
    out.flush().map_err(|e| Error::new(format!("cannot write {}: {e}", dst.display())))?;
    if written != u64::from(*size) {
        return Err(Error::new(format!("member {name} expanded to {written} bytes, the cabinet says {size}")));
    }
    Ok(name.clone())
}
