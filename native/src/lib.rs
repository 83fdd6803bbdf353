//! heapdiff's native core, seen from Python as `heapdiff._native`.
use pyo3::prelude::*;

/// The crate's version, so that Python can tell a stale build.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(version, m)?)?;
    Ok(())
}
