//! The MSF 7.00 container of a PDB: superblock, stream directory, streams. Checked here in full before any
//! crate reads the file, so that every stream's blocks are known to lie inside it and a damaged file is
//! reported with the byte offset of the first inconsistent field.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

/// The superblock at offset 0 (LLVM's MsfFile.md).
mod superblock {
    pub const MAGIC: &[u8; 32] = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0";
    pub const BLOCK_SIZE: usize = 0x20;
    pub const NUM_BLOCKS: usize = 0x28;
    pub const NUM_DIRECTORY_BYTES: usize = 0x2C;
    pub const BLOCK_MAP_ADDR: usize = 0x34;
    pub const SIZE: usize = 0x38;
}
/// Other containers a `.pdb` may be, each refused with its own reason.
const PORTABLE_PDB_MAGIC: &[u8; 4] = b"BSJB";
const MSFZ_MAGIC: &[u8] = b"Microsoft MSFZ Container\r\n\x1aALD\0\0";
const OLD_PDB_MAGIC: &[u8] = b"Microsoft C/C++ program database 2.00\r\n";
/// A stream size of 0xFFFFFFFF marks a deleted ("nil") stream.
const NIL_STREAM: u32 = u32::MAX;

/// An MSF file whose directory has been checked: every stream's blocks are inside the file.
#[derive(Debug)]
pub struct Msf {
    file: File,
    block_size: u32,
    streams: Vec<Stream>,
}

#[derive(Debug)]
struct Stream {
    size: u32,
    blocks: Vec<u32>,
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// Says what a file is when it is not an MSF 7.00 PDB.
pub fn check_magic(head: &[u8]) -> Result<()> {
    if head.starts_with(superblock::MAGIC) {
        Ok(())
    } else if head.starts_with(PORTABLE_PDB_MAGIC) {
        Err(Error::at(0, "a portable (.NET) PDB, not a native PDB: not supported"))
    } else if head.starts_with(MSFZ_MAGIC) {
        Err(Error::at(0, "an MSFZ (compressed) PDB container: not supported"))
    } else if head.starts_with(OLD_PDB_MAGIC) {
        Err(Error::at(0, "an old-format PDB (Microsoft C/C++ program database 2.00): not supported"))
    } else if head.len() < superblock::MAGIC.len() && superblock::MAGIC.starts_with(head) {
        Err(Error::at(0, format!("truncated: {} bytes, shorter than the MSF superblock", head.len())))
    } else {
        Err(Error::at(0, "not a PDB: no MSF 7.00 signature"))
    }
}

impl Msf {
    pub fn open(mut file: File) -> Result<Msf> {
        let file_len = file.metadata().map_err(|e| Error::new(format!("cannot read: {e}")))?.len();
        let mut head = vec![0u8; superblock::SIZE.min(file_len as usize)];
        read_at(&mut file, 0, &mut head)?;
        check_magic(&head)?;
        if head.len() < superblock::SIZE {
            return Err(Error::at(0, format!("truncated: {} bytes, shorter than the MSF superblock", head.len())));
        }
        let block_size = u32_at(&head, superblock::BLOCK_SIZE);
        if !(512..=32768).contains(&block_size) || !block_size.is_power_of_two() {
            return Err(Error::at(superblock::BLOCK_SIZE as u64, format!("invalid block size {block_size}")));
        }
        let num_blocks = u32_at(&head, superblock::NUM_BLOCKS);
        let needed = u64::from(num_blocks) * u64::from(block_size);
        if needed > file_len {
            return Err(Error::at(
                superblock::NUM_BLOCKS as u64,
                format!("truncated: the superblock declares {num_blocks} blocks of {block_size} bytes ({needed} bytes), the file has {file_len}"),
            ));
        }
        let bs = u64::from(block_size);
        let check_block = |block: u32, at: u64, what: &str| -> Result<u64> {
            if block == 0 || block >= num_blocks {
                Err(Error::at(at, format!("{what} names block {block}, outside the file's {num_blocks} blocks")))
            } else {
                Ok(u64::from(block) * bs)
            }
        };
        let dir_bytes = u32_at(&head, superblock::NUM_DIRECTORY_BYTES);
        if u64::from(dir_bytes) > file_len || dir_bytes < 4 {
            return Err(Error::at(
                superblock::NUM_DIRECTORY_BYTES as u64,
                format!("invalid stream directory size {dir_bytes}"),
            ));
        }
        let dir_block_count = dir_bytes.div_ceil(block_size);
        // the list of directory blocks fills consecutive blocks from BlockMapAddr
        let map_start = check_block(
            u32_at(&head, superblock::BLOCK_MAP_ADDR),
            superblock::BLOCK_MAP_ADDR as u64,
            "the block map address",
        )?;
        let map_len = u64::from(dir_block_count) * 4;
        if map_start + map_len > needed {
            return Err(Error::at(superblock::BLOCK_MAP_ADDR as u64, "the block map runs past the end of the file"));
        }
        let mut map = vec![0u8; map_len as usize];
        read_at(&mut file, map_start, &mut map)?;
        let mut dir = Vec::with_capacity(dir_block_count as usize * block_size as usize);
        for i in 0..dir_block_count as usize {
            let at = check_block(u32_at(&map, i * 4), map_start + i as u64 * 4, "the stream directory")?;
            let mut block = vec![0u8; block_size as usize];
            read_at(&mut file, at, &mut block)?;
            dir.extend_from_slice(&block);
        }
        dir.truncate(dir_bytes as usize);
        let streams = parse_directory(&dir, block_size, |block, at| {
            let map_index = at / block_size as usize;
            let file_at = u64::from(u32_at(&map, map_index * 4)) * bs + (at % block_size as usize) as u64;
            check_block(block, file_at, "a stream").map(|_| ())
        })?;
        Ok(Msf { file, block_size, streams })
    }

    /// The bytes of stream `index`, or None when the file has no such stream (or it is nil).
    pub fn stream(&mut self, index: usize) -> Result<Option<Vec<u8>>> {
        let Some(stream) = self.streams.get(index) else { return Ok(None) };
        let mut out = vec![0u8; stream.size as usize];
        let bs = self.block_size as usize;
        for (i, chunk) in out.chunks_mut(bs).enumerate() {
            read_at(&mut self.file, u64::from(stream.blocks[i]) * bs as u64, chunk)?;
        }
        Ok(Some(out))
    }

    pub fn into_file(self) -> File {
        self.file
    }
}

/// Directory: stream count, the sizes, then each stream's block numbers. `check(block, directory offset)`
/// refuses a block outside the file.
fn parse_directory(dir: &[u8], block_size: u32, check: impl Fn(u32, usize) -> Result<()>) -> Result<Vec<Stream>> {
    let word = |at: usize| -> Result<u32> {
        dir.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))).ok_or_else(|| {
            Error::new(format!("the stream directory ({} bytes) ends at directory offset {at:#x}", dir.len()))
        })
    };
    let count = word(0)? as usize;
    if count.saturating_mul(4) > dir.len() {
        return Err(Error::new(format!(
            "the stream directory declares {count} streams, more than its {} bytes hold",
            dir.len()
        )));
    }
    let mut streams = Vec::with_capacity(count);
    let mut at = 4 + count * 4;
    for i in 0..count {
        let raw = word(4 + i * 4)?;
        let size = if raw == NIL_STREAM { 0 } else { raw };
        let n = size.div_ceil(block_size) as usize;
        if n.saturating_mul(4) > dir.len().saturating_sub(at) {
            return Err(Error::new(format!(
                "stream {i} of {size} bytes needs more blocks than the stream directory lists"
            )));
        }
        let mut blocks = Vec::with_capacity(n);
        for _ in 0..n {
            let block = word(at)?;
            check(block, at)?;
            blocks.push(block);
            at += 4;
        }
        streams.push(Stream { size, blocks });
    }
    Ok(streams)
}

fn read_at(file: &mut File, at: u64, buf: &mut [u8]) -> Result<()> {
    file.seek(SeekFrom::Start(at))
        .and_then(|_| file.read_exact(buf))
        .map_err(|e| Error::at(at, format!("cannot read {} bytes: {e}", buf.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_foreign_format() {
        let cases: [(&[u8], &str); 5] = [
            (b"BSJB\x01\x00\x01\x00", "a portable (.NET) PDB, not a native PDB: not supported"),
            (b"Microsoft MSFZ Container\r\n\x1aALD\0\0\0\0", "an MSFZ (compressed) PDB container: not supported"),
            (
                b"Microsoft C/C++ program database 2.00\r\n\x1aJG\0\0",
                "an old-format PDB (Microsoft C/C++ program database 2.00): not supported",
            ),
            (b"Microsoft C/C++ MSF", "truncated: 19 bytes, shorter than the MSF superblock"),
            (b"MZ\x90\x00", "not a PDB: no MSF 7.00 signature"),
        ];
        for (head, what) in cases {
            assert_eq!(check_magic(head).unwrap_err().what, what);
        }
        assert!(check_magic(superblock::MAGIC).is_ok());
    }

    #[test]
    fn directory_is_bounded_by_its_bytes() {
        let dir = |words: &[u32]| words.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
        let ok = |_: u32, _: usize| Ok(());
        // two streams: 5000 bytes (2 blocks), nil
        let streams = parse_directory(&dir(&[2, 5000, u32::MAX, 3, 4]), 4096, ok).unwrap();
        assert_eq!((streams[0].blocks.clone(), streams[1].size), (vec![3, 4], 0));
        let e = parse_directory(&dir(&[1, 5000, 3]), 4096, ok).unwrap_err();
        assert_eq!(e.what, "stream 0 of 5000 bytes needs more blocks than the stream directory lists");
        let e = parse_directory(&dir(&[0x4000_0000, 1]), 4096, ok).unwrap_err();
        assert!(e.what.starts_with("the stream directory declares 1073741824 streams"), "{}", e.what);
        let refuse = |b: u32, at: usize| if b == 9 { Err(Error::at(at as u64, "bad")) } else { Ok(()) };
        assert_eq!(parse_directory(&dir(&[1, 10, 9]), 4096, refuse).unwrap_err().offset, Some(8));
    }
}
