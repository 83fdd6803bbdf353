//! A PDB's identity (GUID, the two ages, machine), read from the info stream (1) and the DBI stream (3).

use crate::error::{Error, Result};
use crate::guard::guarded;
use crate::guid::Guid;
use crate::msf::Msf;
use std::fs::File;
use std::path::Path;

const INFO_STREAM: usize = 1;
const DBI_STREAM: usize = 3;

/// PDB info stream header (LLVM's PdbStream.md), then the named-stream map, then feature codes to the end.
mod info {
    pub const AGE: usize = 0x08;
    pub const GUID: usize = 0x0C;
    pub const NAMES_SIZE: usize = 0x1C;
    pub const NAMES: usize = 0x20;
    /// The feature code of a /DEBUG:FASTLINK PDB, whose symbols stay in the object files.
    pub const FEATURE_MINIMAL_DEBUG_INFO: u32 = 0x494E_494D;
}

/// DBI stream header (LLVM's DbiStream.md).
mod dbi {
    pub const AGE: usize = 0x08;
    pub const MACHINE: usize = 0x3A;
    pub const HEADER_SIZE: usize = 0x40;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdbIdentity {
    pub guid: Guid,
    /// The age an image's RSDS record names: the DBI stream's, or the info stream's when that is 0 or absent.
    pub age: u32,
    /// The info stream's age, which tools that rewrite a PDB (source indexing) bump.
    pub info_age: u32,
    /// The DBI stream's Machine (0x8664, 0x14C, ...), 0 when the PDB has no DBI stream.
    pub machine: u16,
}

/// Reads a little-endian u32 of a stream, naming the stream and offset when it is too short.
fn stream_u32(bytes: &[u8], at: usize, stream: &str) -> Result<u32> {
    bytes.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))).ok_or_else(|| {
        Error::new(format!("the {stream} stream ({} bytes) is cut short at its offset {at:#x}", bytes.len()))
    })
}

/// Skips the named-stream map (a string buffer, then a hash table with two bit vectors) and returns the
/// feature codes that follow it.
fn feature_codes(stream: &[u8]) -> Result<Vec<u32>> {
    let word = |at: usize| stream_u32(stream, at, "PDB info");
    let mut at = info::NAMES + word(info::NAMES_SIZE)? as usize;
    let _size = word(at)?;
    let _capacity = word(at + 4)?;
    at += 8;
    let mut present = 0usize;
    for vector in 0..2 {
        let words = word(at)? as usize;
        at += 4;
        if words.saturating_mul(4) > stream.len().saturating_sub(at) {
            return Err(Error::new(format!(
                "the PDB info stream's name map bit vector of {words} words at offset {at:#x} runs past its end"
            )));
        }
        if vector == 0 {
            present = (0..words).map(|i| word(at + 4 * i).map(u32::count_ones)).sum::<Result<u32>>()? as usize;
        }
        at += 4 * words;
    }
    at = at.saturating_add(present.saturating_mul(8));
    if at > stream.len() {
        return Err(Error::new(format!("the PDB info stream's name map runs past its end ({} bytes)", stream.len())));
    }
    Ok(stream[at..].chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
}

/// Identity from the two streams' bytes; `dbi` is None when the file has no DBI stream.
pub fn identity_from_streams(info_stream: &[u8], dbi_stream: Option<&[u8]>) -> Result<PdbIdentity> {
    let info_age = stream_u32(info_stream, info::AGE, "PDB info")?;
    let guid_bytes = info_stream
        .get(info::GUID..info::GUID + 16)
        .ok_or_else(|| Error::new("the PDB info stream is cut short before its GUID"))?;
    let guid = Guid(guid_bytes.try_into().expect("16 bytes"));
    if feature_codes(info_stream)?.contains(&info::FEATURE_MINIMAL_DEBUG_INFO) {
        return Err(Error::new("a /DEBUG:FASTLINK PDB: its symbols stay in the object files, not supported"));
    }
    let (dbi_age, machine) = match dbi_stream {
        Some(dbi) if !dbi.is_empty() => {
            if dbi.len() < dbi::HEADER_SIZE {
                return Err(Error::new(format!("the DBI stream ({} bytes) is shorter than its header", dbi.len())));
            }
            let machine = u16::from_le_bytes([dbi[dbi::MACHINE], dbi[dbi::MACHINE + 1]]);
            (stream_u32(dbi, dbi::AGE, "DBI")?, machine)
        }
        _ => (0, 0),
    };
    let age = if dbi_age == 0 { info_age } else { dbi_age };
    Ok(PdbIdentity { guid, age, info_age, machine })
}

/// Checks the container and reads the identity; returns the open container for further reading. Errors
/// do not name the file yet: the public callers add it.
pub fn open_pdb(path: &Path) -> Result<(Msf, PdbIdentity)> {
    let file = File::open(path).map_err(|e| Error::new(format!("cannot read: {e}")))?;
    let mut msf = Msf::open(file)?;
    let info_stream = msf.stream(INFO_STREAM)?.ok_or_else(|| Error::new("the PDB has no info stream"))?;
    let dbi_stream = msf.stream(DBI_STREAM)?;
    let id = identity_from_streams(&info_stream, dbi_stream.as_deref())?;
    Ok((msf, id))
}

pub fn pdb_identity_file(path: &Path) -> Result<PdbIdentity> {
    guarded("reading the PDB", || open_pdb(path).map(|(_, id)| id)).map_err(|e| e.in_file(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An info stream: version, signature, age, GUID, an empty name map, then `features`.
    fn info_stream(age: u32, features: &[u32]) -> Vec<u8> {
        let mut s = Vec::new();
        for w in [20000404u32, 0x1234, age] {
            s.extend(w.to_le_bytes());
        }
        s.extend(1u8..=16);
        // names buffer "x\0", hash table size 1 capacity 2, present bits {0}, no deleted bits, one pair
        s.extend(2u32.to_le_bytes());
        s.extend(b"x\0");
        for w in [1u32, 2, 1, 0b1, 0, 0, 5] {
            s.extend(w.to_le_bytes());
        }
        for f in features {
            s.extend(f.to_le_bytes());
        }
        s
    }

    fn dbi_header(age: u32, machine: u16) -> Vec<u8> {
        let mut d = vec![0u8; dbi::HEADER_SIZE];
        d[dbi::AGE..dbi::AGE + 4].copy_from_slice(&age.to_le_bytes());
        d[dbi::MACHINE..dbi::MACHINE + 2].copy_from_slice(&machine.to_le_bytes());
        d
    }

    #[test]
    fn dbi_age_wins_info_age_otherwise() {
        let info = info_stream(3, &[20140508]);
        let id = identity_from_streams(&info, Some(&dbi_header(1, 0x14C))).unwrap();
        assert_eq!((id.age, id.info_age, id.machine), (1, 3, 0x14C));
        assert_eq!(id.guid.to_string(), "04030201-0605-0807-090a-0b0c0d0e0f10");
        let id = identity_from_streams(&info, Some(&dbi_header(0, 0x8664))).unwrap();
        assert_eq!((id.age, id.machine), (3, 0x8664));
        let id = identity_from_streams(&info, None).unwrap();
        assert_eq!((id.age, id.machine), (3, 0));
    }

    #[test]
    fn refuses_fastlink() {
        let info = info_stream(1, &[20140508, info::FEATURE_MINIMAL_DEBUG_INFO]);
        let e = identity_from_streams(&info, Some(&dbi_header(1, 0x8664))).unwrap_err();
        assert!(e.what.contains("FASTLINK"), "{}", e.what);
    }

    #[test]
    fn short_streams_are_errors() {
        let info = info_stream(1, &[]);
        for len in 0..info.len() {
            let r = identity_from_streams(&info[..len], None);
            assert!(r.is_err(), "{len}");
        }
        let e = identity_from_streams(&info, Some(&dbi_header(1, 0x8664)[..0x20])).unwrap_err();
        assert_eq!(e.what, "the DBI stream (32 bytes) is shorter than its header");
    }
}
