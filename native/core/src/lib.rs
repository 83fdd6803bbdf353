//! heapdiff's native core: the identity of PE images and PDBs, address lookups in PDBs (procedure, source
//! line, inline chain), and the cabinets symbol servers compress files into. Plain Rust; the Python module
//! `heapdiff._native` is a thin layer over it.
//!
//! Every damaged, truncated or unsupported input is an [`Error`] naming the file and, where known, the byte
//! offset; panics inside third-party parsers are caught and become errors too.

mod cab;
mod error;
mod guard;
mod guid;
mod msf;
mod names;
mod pdb;
mod pe;
mod reader;

pub use cab::expand_cab;
pub use error::{Error, Result};
pub use guid::Guid;
pub use names::undecorate;
pub use pdb::{pdb_identity_file as pdb_identity, PdbIdentity};
pub use pe::{pe_identity, pe_identity_file, CodeView, PeIdentity};
pub use reader::{PdbReader, Resolution};
