//! Third-party parsers may panic on hostile input; a panic must become an [`Error`], never reach Python.

use crate::error::{Error, Result};
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// How many guarded calls this thread is inside: their panics are reported as errors, so not printed.
    static GUARDED: Cell<u32> = const { Cell::new(0) };
}

static HOOK: Once = Once::new();

/// Keeps the default panic message for panics outside guarded calls, and silences the ones inside.
fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) == 0 {
                previous(info);
            }
        }));
    });
}

/// Runs `f`; a panic inside it comes back as `Err(its message)`, not printed.
pub fn catch<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    install_hook();
    GUARDED.with(|g| g.set(g.get() + 1));
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(g.get() - 1));
    outcome.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned())
    })
}

/// Runs `f`; a panic inside it becomes an [`Error`] that says `what` was being done.
pub fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch(f).unwrap_or_else(|message| {
        Err(Error::new(format!("{what}: the file's structures are inconsistent (internal error: {message})")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_becomes_error() {
        let r: Result<u8> = guarded("reading x", || {
            let v: Vec<u8> = Vec::new();
            let i = v.len() + 3;
            Ok(v[i])
        });
        let e = r.unwrap_err();
        assert!(e.what.starts_with("reading x: the file's structures are inconsistent"), "{}", e.what);
        assert!(e.what.contains("index out of bounds"), "{}", e.what);
    }

    #[test]
    fn errors_and_values_pass_through() {
        assert_eq!(guarded("x", || Ok(5)), Ok(5));
        assert_eq!(guarded::<u8>("x", || Err(Error::new("bad"))), Err(Error::new("bad")));
    }
}
