//! Looking up batches of RVAs in one PDB: procedure start and inline chain per RVA, as columns over an
//! interned string table.

use crate::error::{Error, Result};
use crate::guard::{catch, guarded};
use crate::names::undecorate;
use crate::pdb::{open_pdb, PdbIdentity};
use pdb_addr2line::pdb::{FallibleIterator, SymbolData, PDB};
use pdb_addr2line::{Context, ContextPdbData, TypeFormatterFlags};
use self_cell::self_cell;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const MACHINE_X86: u16 = 0x14C;

type Streams = ContextPdbData<'static, 'static, File>;
type Lookup<'a> = Context<'a, 'static>;

self_cell!(
    /// The parsed streams and the lookup context that borrows them (and caches per-module data as it goes).
    struct Symbols {
        owner: Streams,
        #[not_covariant]
        dependent: Lookup,
    }
);

/// The answer for a batch, as columns. RVA `i` has procedure start `proc_start[i]` (-1: nothing there) and
/// the inline chain `chain_start[i] .. chain_start[i + 1]` of the frame columns, innermost first, the last
/// entry the procedure itself (empty when nothing is there). Addresses in code that no symbol names (a
/// static function in a publics-only PDB) resolve to nothing rather than to a neighbour's name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub strings: Vec<String>,
    pub proc_start: Vec<i64>,
    pub chain_start: Vec<u32>,
    /// Index into `strings`.
    pub function: Vec<i32>,
    /// Index into `strings`; -1 when there is no source file.
    pub file: Vec<i32>,
    /// 0 when there is no line.
    pub line: Vec<u32>,
    /// How many RVAs of the batch hit damaged symbol data (and were looked up by public name only, or not at
    /// all), and the first such error.
    pub failed: u32,
    pub first_error: Option<String>,
}

/// Interns names for one batch; function names are undecorated once per raw name.
struct Interner<'p> {
    strings: Vec<String>,
    index: HashMap<String, i32>,
    functions: HashMap<String, i32>,
    x86_publics: Option<&'p HashSet<String>>,
}

impl Interner<'_> {
    fn string(&mut self, s: &str) -> i32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.strings.len() as i32;
        self.strings.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }

    fn function(&mut self, raw: &str) -> i32 {
        if let Some(&i) = self.functions.get(raw) {
            return i;
        }
        let x86_public = self.x86_publics.is_some_and(|set| set.contains(raw));
        let i = self.string(&undecorate(raw, x86_public));
        self.functions.insert(raw.to_owned(), i);
        i
    }
}

/// An open PDB. Lookups are serialised by a lock, so a reader may be shared between threads.
pub struct PdbReader {
    pub identity: PdbIdentity,
    path: PathBuf,
    /// None after a lookup hit an internal error: its caches may be inconsistent.
    symbols: Mutex<Option<Symbols>>,
    /// Raw public names of a 32-bit PDB, whose C names carry `_`/`@N` decorations that procedures do not.
    x86_publics: Option<HashSet<String>>,
}

impl PdbReader {
    pub fn open(path: &Path) -> Result<PdbReader> {
        guarded("reading the PDB's symbols", || Self::open_unguarded(path)).map_err(|e| e.in_file(path))
    }

    fn open_unguarded(path: &Path) -> Result<PdbReader> {
        let (msf, identity) = open_pdb(path)?;
        let pdb_error = |e: pdb_addr2line::pdb::Error| Error::new(format!("cannot read the PDB's symbols: {e}"));
        let mut pdb = PDB::open(msf.into_file()).map_err(pdb_error)?;
        let x86_publics =
            if identity.machine == MACHINE_X86 { Some(public_names(&mut pdb).map_err(pdb_error)?) } else { None };
        let streams =
            ContextPdbData::try_from_pdb(pdb).map_err(|e| Error::new(format!("cannot read the PDB's symbols: {e}")))?;
        let flags = TypeFormatterFlags::default() | TypeFormatterFlags::NO_ARGUMENTS;
        let symbols = Symbols::try_new(streams, |s| s.make_context_with_formatter_flags(flags))
            .map_err(|e| Error::new(format!("cannot index the PDB's symbols: {e}")))?;
        Ok(PdbReader { identity, path: path.to_owned(), symbols: Mutex::new(Some(symbols)), x86_publics })
    }

    /// Looks up every RVA as given (the caller subtracts 1 from return addresses). RVAs outside 0..2^32
    /// resolve to nothing.
    pub fn resolve(&self, rvas: &[i64]) -> Result<Resolution> {
        let mut slot = self.symbols.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(symbols) = slot.as_ref() else {
            return Err(
                Error::new("an earlier lookup met inconsistent symbol data; open the PDB again").in_file(&self.path)
            );
        };
        let outcome = catch(|| symbols.with_dependent(|_, lookup| self.lookup(lookup, rvas)));
        outcome.map_err(|message| {
            *slot = None;
            Error::new(format!("the PDB's symbols are inconsistent (internal error: {message})")).in_file(&self.path)
        })
    }

    fn lookup(&self, lookup: &Lookup<'_>, rvas: &[i64]) -> Resolution {
        let mut names = Interner {
            strings: Vec::new(),
            index: HashMap::new(),
            functions: HashMap::new(),
            x86_publics: self.x86_publics.as_ref(),
        };
        let mut first_rows: HashMap<u32, Option<SourcePos>> = HashMap::new();
        let mut out = Resolution {
            proc_start: Vec::with_capacity(rvas.len()),
            chain_start: Vec::with_capacity(rvas.len() + 1),
            ..Resolution::default()
        };
        for &rva in rvas {
            out.chain_start.push(out.function.len() as u32);
            let start = match u32::try_from(rva) {
                Ok(rva) => push_frames(lookup, rva, &mut names, &mut first_rows, &mut out),
                Err(_) => None,
            };
            out.proc_start.push(start.map_or(-1, i64::from));
        }
        out.chain_start.push(out.function.len() as u32);
        out.strings = names.strings;
        out
    }
}

/// Appends the inline chain at `rva` (innermost first) to the frame columns and returns the procedure start,
/// or appends nothing and returns None. A lookup that fails on damaged data is counted in `out` and falls
/// back to the public symbols.
fn push_frames(
    lookup: &Lookup<'_>,
    rva: u32,
    names: &mut Interner<'_>,
    first_rows: &mut HashMap<u32, Option<SourcePos>>,
    out: &mut Resolution,
) -> Option<u32> {
    let found = match lookup.find_frames(rva) {
        Ok(found) => found?,
        Err(e) => {
            out.failed += 1;
            out.first_error.get_or_insert_with(|| format!("RVA {rva:#x}: {e}"));
            let f = lookup.find_function(rva).ok()??;
            out.function.push(names.function(f.name.as_deref()?));
            out.file.push(-1);
            out.line.push(0);
            return Some(f.start_rva);
        }
    };
    let (outer, inner) = found.frames.split_last()?;
    // a section contribution without a symbol (a static function in a publics-only PDB): no name to give
    let outer_name = outer.function.as_deref()?;
    for frame in inner {
        out.function.push(names.function(frame.function.as_deref().unwrap_or(UNNAMED_INLINE)));
        out.file.push(frame.file.as_deref().map_or(-1, |s| names.string(s)));
        out.line.push(frame.line.unwrap_or(0));
    }
    out.function.push(names.function(outer_name));
    let fallback = match (outer.line, found.end_rva) {
        (None, Some(end)) => first_rows.entry(found.start_rva).or_insert_with(|| first_row(lookup, rva, end)).as_ref(),
        _ => None,
    };
    let (file, line) = match fallback {
        Some(pos) => (pos.file.as_deref(), pos.line),
        None => (outer.file.as_deref(), outer.line.unwrap_or(0)),
    };
    out.file.push(file.map_or(-1, |s| names.string(s)));
    out.line.push(line);
    Some(found.start_rva)
}

/// Shown for an inlined call whose function the PDB cannot name.
const UNNAMED_INLINE: &str = "<unknown>";

struct SourcePos {
    file: Option<String>,
    line: u32,
}

/// The procedure's line at its first line row after `rva`, for an address before that row (clang-cl emits
/// no rows of the caller over inlined code at a procedure's start; LLVM's reader takes the first row too).
/// The procedure line exists from its first row on, so a binary search over the rest of the procedure
/// finds it in a bounded number of lookups.
fn first_row(lookup: &Lookup<'_>, rva: u32, end: u32) -> Option<SourcePos> {
    let outer_line = |at: u32| -> Option<SourcePos> {
        let found = lookup.find_frames(at).ok()??;
        let outer = found.frames.last()?;
        let line = outer.line?;
        Some(SourcePos { file: outer.file.as_deref().map(str::to_owned), line })
    };
    let (mut lo, mut hi) = (rva + 1, end);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if outer_line(mid).is_some() {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if lo < end {
        outer_line(lo)
    } else {
        None
    }
}

/// The raw names of all public symbols, bounded by the stream's size.
fn public_names(pdb: &mut PDB<'static, File>) -> pdb_addr2line::pdb::Result<HashSet<String>> {
    let symbols = pdb.global_symbols()?;
    let mut iter = symbols.iter();
    let mut names = HashSet::new();
    while let Some(symbol) = iter.next()? {
        if let Ok(SymbolData::Public(public)) = symbol.parse() {
            names.insert(public.name.to_string().into_owned());
        }
    }
    Ok(names)
}
