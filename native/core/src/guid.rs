//! GUIDs as PE and PDB files store them, printed the way Windows tools print them.

use std::fmt;

/// 16 bytes in the Windows layout: Data1 (u32), Data2 and Data3 (u16) little-endian, then Data4 as 8 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Guid(pub [u8; 16]);

impl fmt::Display for Guid {
    /// Lowercase, dashed 8-4-4-4-12, the order of `{B1D8AACF-B7DE-...}` and of Python's `UUID(bytes_le=...)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        let data1 = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let data2 = u16::from_le_bytes([b[4], b[5]]);
        let data3 = u16::from_le_bytes([b[6], b[7]]);
        write!(f, "{data1:08x}-{data2:04x}-{data3:04x}-{:02x}{:02x}-", b[8], b[9])?;
        b[10..].iter().try_for_each(|x| write!(f, "{x:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::Guid;

    #[test]
    fn windows_string_order() {
        // bytes as an lld-written RSDS record holds them; llvm-readobj prints {B1D8AACF-B7DE-28CF-4C4C-44205044422E}
        let g = Guid([0xCF, 0xAA, 0xD8, 0xB1, 0xDE, 0xB7, 0xCF, 0x28, 0x4C, 0x4C, 0x44, 0x20, 0x50, 0x44, 0x42, 0x2E]);
        assert_eq!(g.to_string(), "b1d8aacf-b7de-28cf-4c4c-44205044422e");
    }
}
