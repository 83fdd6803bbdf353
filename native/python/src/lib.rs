//! `heapdiff._native`: PE and PDB identities, PDB lookups and cabinet expansion for Python. A thin layer:
//! the work is in `heapdiff-symcore`; here values are converted, the GIL is released while files are read,
//! and every core error becomes `NativeError`.

use heapdiff_symcore as core;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::path::PathBuf;

create_exception!(
    heapdiff._native,
    NativeError,
    PyException,
    "A file is unreadable, truncated, garbage or unsupported; the message names it and, where known, the byte offset."
);

fn native_error(e: core::Error) -> PyErr {
    NativeError::new_err(e.to_string())
}

/// The crate's version, so that Python can tell a stale build.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// An image's CodeView (RSDS) record: the PDB it was linked with.
#[pyclass(frozen, get_all, module = "heapdiff._native")]
struct CodeView {
    pdb_name: String,
    guid: String,
    age: u32,
}

#[pymethods]
impl CodeView {
    fn __repr__(&self) -> String {
        format!("CodeView(pdb_name={:?}, guid='{}', age={})", self.pdb_name, self.guid, self.age)
    }
}

#[pyclass(frozen, get_all, module = "heapdiff._native")]
struct PeIdentity {
    machine: u16,
    timestamp: u32,
    size_of_image: u32,
    codeview: Option<Py<CodeView>>,
    note: Option<String>,
}

#[pymethods]
impl PeIdentity {
    fn __repr__(&self) -> String {
        let cv = self.codeview.as_ref().map_or("None".to_owned(), |c| c.get().__repr__());
        format!(
            "PeIdentity(machine={:#x}, timestamp={:#x}, size_of_image={:#x}, codeview={cv}, note={:?})",
            self.machine, self.timestamp, self.size_of_image, self.note
        )
    }
}

#[pyclass(frozen, get_all, module = "heapdiff._native")]
struct PdbIdentity {
    guid: String,
    age: u32,
    info_age: u32,
    machine: u16,
}

#[pymethods]
impl PdbIdentity {
    fn __repr__(&self) -> String {
        format!(
            "PdbIdentity(guid='{}', age={}, info_age={}, machine={:#x})",
            self.guid, self.age, self.info_age, self.machine
        )
    }
}

impl From<&core::PdbIdentity> for PdbIdentity {
    fn from(id: &core::PdbIdentity) -> Self {
        PdbIdentity { guid: id.guid.to_string(), age: id.age, info_age: id.info_age, machine: id.machine }
    }
}

#[pyfunction]
fn pe_identity(py: Python<'_>, path: PathBuf) -> PyResult<PeIdentity> {
    let id = py.detach(|| core::pe_identity_file(&path)).map_err(native_error)?;
    let codeview = match id.codeview {
        Some(cv) => Some(Py::new(py, CodeView { pdb_name: cv.pdb_name, guid: cv.guid.to_string(), age: cv.age })?),
        None => None,
    };
    Ok(PeIdentity {
        machine: id.machine,
        timestamp: id.timestamp,
        size_of_image: id.size_of_image,
        codeview,
        note: id.note,
    })
}

#[pyfunction]
fn pdb_identity(py: Python<'_>, path: PathBuf) -> PyResult<PdbIdentity> {
    py.detach(|| core::pdb_identity(&path)).map(|id| PdbIdentity::from(&id)).map_err(native_error)
}

#[pyfunction]
fn expand_cab(py: Python<'_>, src: PathBuf, dst: PathBuf) -> PyResult<String> {
    py.detach(|| core::expand_cab(&src, &dst)).map_err(native_error)
}

/// A batch's answer as columns; the lists are built once, so indexing them is cheap.
#[pyclass(frozen, get_all, module = "heapdiff._native")]
struct Resolution {
    strings: Py<PyList>,
    proc_start: Py<PyList>,
    chain_start: Py<PyList>,
    function: Py<PyList>,
    file: Py<PyList>,
    line: Py<PyList>,
    failed: u32,
    first_error: Option<String>,
}

impl Resolution {
    fn new(py: Python<'_>, r: core::Resolution) -> PyResult<Self> {
        Ok(Resolution {
            strings: PyList::new(py, r.strings)?.unbind(),
            proc_start: PyList::new(py, r.proc_start)?.unbind(),
            chain_start: PyList::new(py, r.chain_start)?.unbind(),
            function: PyList::new(py, r.function)?.unbind(),
            file: PyList::new(py, r.file)?.unbind(),
            line: PyList::new(py, r.line)?.unbind(),
            failed: r.failed,
            first_error: r.first_error,
        })
    }
}

/// An open PDB; `resolve` may be called from several threads (lookups take turns, without the GIL).
#[pyclass(frozen, module = "heapdiff._native")]
struct PdbReader {
    reader: core::PdbReader,
}

#[pymethods]
impl PdbReader {
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let reader = py.detach(|| core::PdbReader::open(&path)).map_err(native_error)?;
        Ok(PdbReader { reader })
    }

    #[getter]
    fn guid(&self) -> String {
        self.reader.identity.guid.to_string()
    }

    #[getter]
    fn age(&self) -> u32 {
        self.reader.identity.age
    }

    #[getter]
    fn identity(&self) -> PdbIdentity {
        PdbIdentity::from(&self.reader.identity)
    }

    fn resolve(&self, py: Python<'_>, rvas: Vec<i64>) -> PyResult<Resolution> {
        let r = py.detach(|| self.reader.resolve(&rvas)).map_err(native_error)?;
        Resolution::new(py, r)
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(pe_identity, m)?)?;
    m.add_function(wrap_pyfunction!(pdb_identity, m)?)?;
    m.add_function(wrap_pyfunction!(expand_cab, m)?)?;
    m.add_class::<CodeView>()?;
    m.add_class::<PeIdentity>()?;
    m.add_class::<PdbIdentity>()?;
    m.add_class::<PdbReader>()?;
    m.add_class::<Resolution>()?;
    Ok(())
}
