//! A PE image's identity: machine, TimeDateStamp, SizeOfImage, and the CodeView (RSDS) record naming its PDB.

use crate::error::{Error, Result};
use crate::guard::guarded;
use crate::guid::Guid;
use object::pe::{self, ImageDebugDirectory, ImageDosHeader, ImageNtHeaders32, ImageNtHeaders64};
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader};
use object::{LittleEndian as LE, ReadRef};
use std::fs::File;
use std::path::Path;

/// RSDS record (CodeView 7.0): the layout a PE's CodeView debug entry points at.
mod rsds {
    pub const SIGNATURE: &[u8; 4] = b"RSDS";
    pub const GUID: usize = 0x04; // 16 bytes, Windows layout
    pub const AGE: usize = 0x14; // u32
    pub const PDB_NAME: usize = 0x18; // UTF-8, NUL-terminated
}
/// The pre-VC7 record (32-bit signature and age); its PDBs are not supported.
const NB10_SIGNATURE: &[u8; 4] = b"NB10";
/// A CodeView entry with this MinorVersion points at a portable (.NET) PDB, not a native one.
const PORTABLE_PDB_MINOR_VERSION: u16 = 0x504D;
const DEBUG_ENTRY_SIZE: usize = std::mem::size_of::<ImageDebugDirectory>();
const _: () = assert!(DEBUG_ENTRY_SIZE == 28);

/// The native PDB an image names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeView {
    /// As stored: a bare name, a Windows path or a POSIX path.
    pub pdb_name: String,
    pub guid: Guid,
    pub age: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeIdentity {
    /// COFF Machine (0x8664 x64, 0x14C x86, 0xAA64 ARM64).
    pub machine: u16,
    pub timestamp: u32,
    pub size_of_image: u32,
    /// The first RSDS record of a CodeView entry that is not a portable PDB's.
    pub codeview: Option<CodeView>,
    /// Why `codeview` is None (no debug directory, only NB10 or portable-PDB entries), for a person.
    pub note: Option<String>,
}

/// Reads the identity of the PE image at `path`, reading only the headers and the debug data.
pub fn pe_identity_file(path: &Path) -> Result<PeIdentity> {
    guarded("reading the image", || {
        let file = File::open(path).map_err(|e| Error::new(format!("cannot read: {e}")))?;
        let cache = object::ReadCache::new(file);
        pe_identity(&cache)
    })
    .map_err(|e| e.in_file(path))
}

/// Reads the identity of a PE image from any byte source `object` can read.
pub fn pe_identity<'data, R: ReadRef<'data>>(data: R) -> Result<PeIdentity> {
    let dos = ImageDosHeader::parse(data).map_err(|_| Error::at(0, "not a PE image: no MZ header"))?;
    let nt_offset = u64::from(dos.nt_headers_offset());
    let magic: u16 = data
        .read_at::<object::U16<LE>>(nt_offset + 4 + std::mem::size_of::<pe::ImageFileHeader>() as u64)
        .map(|m| m.get(LE))
        .map_err(|()| Error::at(nt_offset, "not a PE image: the PE header lies past the end of the file"))?;
    match magic {
        pe::IMAGE_NT_OPTIONAL_HDR32_MAGIC => identity::<ImageNtHeaders32, R>(data, nt_offset),
        pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC => identity::<ImageNtHeaders64, R>(data, nt_offset),
        other => Err(Error::at(nt_offset + 24, format!("unsupported optional header magic {other:#x}"))),
    }
}

fn identity<'data, Nt: ImageNtHeaders, R: ReadRef<'data>>(data: R, nt_offset: u64) -> Result<PeIdentity> {
    let mut offset = nt_offset;
    let (nt, directories) =
        Nt::parse(data, &mut offset).map_err(|e| Error::at(nt_offset, format!("bad PE header: {e}")))?;
    let sections = nt.sections(data, offset).map_err(|e| Error::at(offset, format!("bad section table: {e}")))?;
    let header = nt.file_header();
    let mut id = PeIdentity {
        machine: header.machine.get(LE).0,
        timestamp: header.time_date_stamp.get(LE),
        size_of_image: nt.optional_header().size_of_image(),
        codeview: None,
        note: None,
    };
    let directory = match directories.get(pe::IMAGE_DIRECTORY_ENTRY_DEBUG) {
        Some(d) if d.size.get(LE) != 0 => d,
        _ => {
            id.note = Some("the image has no debug directory".into());
            return Ok(id);
        }
    };
    let rva = directory.virtual_address.get(LE);
    let (start, size) = directory.file_range(&sections).map_err(|_| {
        Error::new(format!(
            "the debug directory (RVA {rva:#x}, {:#x} bytes) is not inside a section",
            directory.size.get(LE)
        ))
    })?;
    let count = size as usize / DEBUG_ENTRY_SIZE;
    let entries: &[ImageDebugDirectory] = data
        .read_slice_at(u64::from(start), count)
        .map_err(|()| Error::at(u64::from(start), format!("the debug directory ({count} entries) is cut short")))?;
    let mut notes = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if entry.typ.get(LE) != pe::IMAGE_DEBUG_TYPE_CODEVIEW {
            continue;
        }
        let at = u64::from(start) + (i * DEBUG_ENTRY_SIZE) as u64;
        if entry.minor_version.get(LE) == PORTABLE_PDB_MINOR_VERSION {
            notes.push("a portable (.NET) PDB entry, not a native PDB");
            continue;
        }
        let raw_at = u64::from(entry.pointer_to_raw_data.get(LE));
        let raw_size = entry.size_of_data.get(LE);
        let raw = data.read_bytes_at(raw_at, u64::from(raw_size)).map_err(|()| {
            Error::at(
                at,
                format!("CodeView entry {i}: its {raw_size:#x} bytes at {raw_at:#x} lie past the end of the file"),
            )
        })?;
        match raw.get(..4) {
            Some(sig) if sig == rsds::SIGNATURE => {
                id.codeview = Some(parse_rsds(raw).map_err(|what| Error::at(raw_at, what))?);
                return Ok(id);
            }
            Some(sig) if sig == NB10_SIGNATURE => notes.push("an NB10 CodeView record (pre-VC7 PDB), not supported"),
            _ => notes.push("a CodeView entry of an unknown format"),
        }
    }
    id.note = Some(if notes.is_empty() {
        "the debug directory has no CodeView entry".into()
    } else {
        format!("no RSDS record: {}", notes.join("; "))
    });
    Ok(id)
}

fn parse_rsds(raw: &[u8]) -> std::result::Result<CodeView, String> {
    if raw.len() < rsds::PDB_NAME {
        return Err(format!("RSDS record of {} bytes, shorter than its {}-byte header", raw.len(), rsds::PDB_NAME));
    }
    let mut guid = [0u8; 16];
    guid.copy_from_slice(&raw[rsds::GUID..rsds::GUID + 16]);
    let age = u32::from_le_bytes(raw[rsds::AGE..rsds::AGE + 4].try_into().expect("4 bytes"));
    let name = &raw[rsds::PDB_NAME..];
    let name = name.iter().position(|&b| b == 0).map_or(name, |end| &name[..end]);
    Ok(CodeView { pdb_name: String::from_utf8_lossy(name).into_owned(), guid: Guid(guid), age })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal image (one section holding the debug directory and its records), built field by field.
    /// A debug directory entry: Type, MinorVersion, and the data it points at.
    pub(crate) type Entry = (u32, u16, Vec<u8>);

    pub(crate) fn synthetic_pe(pe32_plus: bool, entries: &[Entry]) -> Vec<u8> {
        let opt_size: usize = if pe32_plus { 0xF0 } else { 0xE0 };
        let mut f = vec![0u8; 0x400];
        f[0..2].copy_from_slice(b"MZ");
        f[0x3C..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        f[0x40..0x44].copy_from_slice(b"PE\0\0");
        let coff = 0x44;
        let machine: u16 = if pe32_plus { 0x8664 } else { 0x14C };
        f[coff..coff + 2].copy_from_slice(&machine.to_le_bytes());
        f[coff + 2..coff + 4].copy_from_slice(&1u16.to_le_bytes()); // one section
        f[coff + 4..coff + 8].copy_from_slice(&0x6543_2100u32.to_le_bytes()); // TimeDateStamp
        f[coff + 16..coff + 18].copy_from_slice(&(opt_size as u16).to_le_bytes());
        let opt = coff + 20;
        let magic: u16 = if pe32_plus { 0x20B } else { 0x10B };
        f[opt..opt + 2].copy_from_slice(&magic.to_le_bytes());
        f[opt + 0x20..opt + 0x24].copy_from_slice(&0x1000u32.to_le_bytes()); // SectionAlignment
        f[opt + 0x24..opt + 0x28].copy_from_slice(&0x200u32.to_le_bytes()); // FileAlignment
        f[opt + 0x38..opt + 0x3C].copy_from_slice(&0x3000u32.to_le_bytes()); // SizeOfImage
        let (ndirs_at, dirs_at) = if pe32_plus { (0x6C, 0x70) } else { (0x5C, 0x60) };
        f[opt + ndirs_at..opt + ndirs_at + 4].copy_from_slice(&16u32.to_le_bytes());
        let debug_dir = opt + dirs_at + 8 * pe::IMAGE_DIRECTORY_ENTRY_DEBUG;
        f[debug_dir..debug_dir + 4].copy_from_slice(&0x1000u32.to_le_bytes());
        f[debug_dir + 4..debug_dir + 8].copy_from_slice(&((entries.len() * 28) as u32).to_le_bytes());
        let sec = opt + opt_size;
        f[sec..sec + 6].copy_from_slice(b".rdata");
        f[sec + 8..sec + 12].copy_from_slice(&0x200u32.to_le_bytes()); // VirtualSize
        f[sec + 12..sec + 16].copy_from_slice(&0x1000u32.to_le_bytes()); // VirtualAddress
        f[sec + 16..sec + 20].copy_from_slice(&0x200u32.to_le_bytes()); // SizeOfRawData
        f[sec + 20..sec + 24].copy_from_slice(&0x200u32.to_le_bytes()); // PointerToRawData
        let mut data_at = 0x200 + entries.len() * 28;
        for (i, (typ, minor, data)) in entries.iter().enumerate() {
            let e = 0x200 + i * 28;
            f[e + 10..e + 12].copy_from_slice(&minor.to_le_bytes());
            f[e + 12..e + 16].copy_from_slice(&typ.to_le_bytes());
            f[e + 16..e + 20].copy_from_slice(&(data.len() as u32).to_le_bytes());
            f[e + 20..e + 24].copy_from_slice(&((data_at - 0x200 + 0x1000) as u32).to_le_bytes());
            f[e + 24..e + 28].copy_from_slice(&(data_at as u32).to_le_bytes());
            f[data_at..data_at + data.len()].copy_from_slice(data);
            data_at += data.len();
        }
        f
    }

    pub(crate) fn rsds_record(first_byte: u8, age: u32, name: &str) -> Vec<u8> {
        let mut r = b"RSDS".to_vec();
        r.extend((0..16).map(|i| first_byte.wrapping_add(i)));
        r.extend(age.to_le_bytes());
        r.extend(name.as_bytes());
        r.push(0);
        r
    }

    #[test]
    fn reads_machine_stamp_size_and_rsds() {
        for pe32_plus in [true, false] {
            let f = synthetic_pe(pe32_plus, &[(2, 0, rsds_record(0x10, 3, "C:\\b\\app.pdb"))]);
            let id = pe_identity(f.as_slice()).unwrap();
            assert_eq!(id.machine, if pe32_plus { 0x8664 } else { 0x14C });
            assert_eq!((id.timestamp, id.size_of_image), (0x6543_2100, 0x3000));
            let cv = id.codeview.unwrap();
            assert_eq!(cv.pdb_name, "C:\\b\\app.pdb");
            assert_eq!(cv.guid.to_string(), "13121110-1514-1716-1819-1a1b1c1d1e1f");
            assert_eq!(cv.age, 3);
        }
    }

    #[test]
    fn skips_portable_pdb_and_other_entries() {
        let entries = [
            (16, 0, vec![]),                              // REPRO
            (2, 0x504D, rsds_record(0x50, 1, "lib.pdb")), // portable PDB
            (2, 0, rsds_record(0x20, 7, "lib.ni.pdb")),   // the native PDB
        ];
        let id = pe_identity(synthetic_pe(true, &entries).as_slice()).unwrap();
        let cv = id.codeview.unwrap();
        assert_eq!((cv.pdb_name.as_str(), cv.age), ("lib.ni.pdb", 7));
        assert_eq!(id.note, None);
    }

    #[test]
    fn notes_why_there_is_no_rsds() {
        let mut nb10 = b"NB10".to_vec();
        nb10.extend([0u8; 12]);
        nb10.extend(b"old.pdb\0");
        let cases: [(&[Entry], &str); 3] = [
            (&[], "the image has no debug directory"),
            (&[(2, 0, nb10)], "no RSDS record: an NB10 CodeView record (pre-VC7 PDB), not supported"),
            (
                &[(2, 0x504D, rsds_record(1, 1, "p.pdb"))],
                "no RSDS record: a portable (.NET) PDB entry, not a native PDB",
            ),
        ];
        for (entries, note) in cases {
            let id = pe_identity(synthetic_pe(true, entries).as_slice()).unwrap();
            assert_eq!((id.codeview, id.note.as_deref()), (None, Some(note)));
        }
    }

    #[test]
    fn rejects_damaged_headers_with_offsets() {
        let good = synthetic_pe(true, &[(2, 0, rsds_record(0x10, 3, "a.pdb"))]);
        let cases: Vec<(Vec<u8>, &str, Option<u64>)> = vec![
            (b"not a PE".to_vec(), "not a PE image: no MZ header", Some(0)),
            (good[..0x50].to_vec(), "not a PE image: the PE header lies past the end of the file", Some(0x40)),
            (
                {
                    let mut f = good.clone();
                    f[0x40] = b'X';
                    f
                },
                "bad PE header: Invalid PE magic",
                Some(0x40),
            ),
            (
                {
                    let mut f = good.clone();
                    f[0x58] = 0x99;
                    f
                },
                "unsupported optional header magic 0x299",
                Some(0x58),
            ),
            (good[..0x210].to_vec(), "the debug directory (1 entries) is cut short", Some(0x200)),
            (
                good[..0x220].to_vec(),
                "CodeView entry 0: its 0x1e bytes at 0x21c lie past the end of the file",
                Some(0x200),
            ),
            (
                {
                    let mut f = good.clone();
                    f[0x200 + 16] = 8;
                    f
                },
                "RSDS record of 8 bytes, shorter than its 24-byte header",
                Some(0x21c),
            ),
        ];
        for (bytes, what, offset) in cases {
            let e = pe_identity(bytes.as_slice()).unwrap_err();
            assert_eq!((e.what.as_str(), e.offset), (what, offset));
        }
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error_or_a_value() {
        let good = synthetic_pe(false, &[(2, 0, rsds_record(0x10, 3, "a.pdb"))]);
        for len in 0..good.len() {
            let _ = pe_identity(&good[..len]);
        }
        for bit in 0..0x300 * 8 {
            let mut f = good.clone();
            f[bit / 8] ^= 1 << (bit % 8);
            let _ = pe_identity(f.as_slice());
        }
    }
}
