//! The one error type: what went wrong with which file, and where in it when that is known.

use std::fmt;
use std::path::Path;

/// Everything that makes a file unreadable, truncated, garbage or unsupported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The file, once known (added by the function that opened it).
    pub path: Option<String>,
    /// What was wrong, for a person.
    pub what: String,
    /// The byte offset in the file (or, for PDB streams, as `what` says), when known.
    pub offset: Option<u64>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(what: impl Into<String>) -> Self {
        Error { path: None, what: what.into(), offset: None }
    }

    pub fn at(offset: u64, what: impl Into<String>) -> Self {
        Error { path: None, what: what.into(), offset: Some(offset) }
    }

    /// Names the file, unless an inner call already did.
    pub fn in_file(mut self, path: &Path) -> Self {
        if self.path.is_none() {
            self.path = Some(path.display().to_string());
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.what)?;
        if let Some(offset) = self.offset {
            write!(f, " (at byte offset {offset:#x})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_file_and_offset() {
        let e = Error::at(0x3c, "PE header offset points past the end").in_file(Path::new("a.dll"));
        assert_eq!(e.to_string(), "a.dll: PE header offset points past the end (at byte offset 0x3c)");
        let e = Error::new("no DBI stream").in_file(Path::new("x.pdb")).in_file(Path::new("outer"));
        assert_eq!(e.to_string(), "x.pdb: no DBI stream");
    }
}
