//! Truncated, garbage and bit-flipped inputs: every call returns a value or an error, never panics, never
//! hangs. The flips are a fixed pseudo-random sample; `HEAPDIFF_FLIPS=N` samples more (a longer local run).

use heapdiff_symcore::{expand_cab, pdb_identity, pe_identity, pe_identity_file, PdbReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/symbols").join(name)
}

/// xorshift64*: a fixed sequence, so that a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn flips() -> usize {
    std::env::var("HEAPDIFF_FLIPS").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("heapdiff-damage-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Opens and, if that works, resolves every RVA of the first 64 KiB of the image; returns whether it opened.
fn open_and_resolve(path: &Path) -> bool {
    let started = Instant::now();
    let opened = match PdbReader::open(path) {
        Ok(reader) => {
            let rvas: Vec<i64> = (0x1000..0x1400).collect();
            let _ = reader.resolve(&rvas);
            true
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            false
        }
    };
    let _ = pdb_identity(path);
    assert!(started.elapsed() < Duration::from_secs(10), "{} took {:?}", path.display(), started.elapsed());
    opened
}

#[test]
fn truncated_pdbs_are_refused_with_an_offset() {
    let scratch = Scratch::new("trunc");
    let good = std::fs::read(fixture("widget.pdb")).unwrap();
    let mut lengths: Vec<usize> = (0..80).collect();
    lengths.extend((1..good.len() / 512).map(|i| i * 512));
    lengths.extend([4095, 4097, good.len() - 1]);
    for len in lengths {
        let p = scratch.write("t.pdb", &good[..len]);
        let e = PdbReader::open(&p).err().unwrap_or_else(|| panic!("{len} bytes opened"));
        assert!(e.offset.is_some(), "{len}: {e}");
        assert!(pdb_identity(&p).is_err(), "{len}");
    }
}

#[test]
fn garbage_is_refused() {
    let scratch = Scratch::new("garbage");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let magic = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0";
    for size in [0usize, 1, 31, 32, 56, 100, 4096, 8192, 73728] {
        let mut bytes: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
        let p = scratch.write("g.pdb", &bytes);
        assert!(!open_and_resolve(&p), "{size} random bytes opened");
        if size >= magic.len() {
            bytes[..magic.len()].copy_from_slice(magic);
            let p = scratch.write("g.pdb", &bytes);
            assert!(!open_and_resolve(&p), "MSF magic and {size} random bytes opened");
        }
        let p = scratch.write("g.exe", &bytes);
        assert!(pe_identity_file(&p).is_err());
        let p2 = scratch.0.join("out");
        assert!(expand_cab(&p, &p2).is_err());
        assert!(!p2.exists());
    }
}

#[test]
fn bit_flipped_pdbs_never_panic() {
    let scratch = Scratch::new("flip");
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for name in ["inl.pdb", "names.pdb", "x86_pub.pdb", "../example/plugin.pdb"] {
        let good = std::fs::read(fixture(name)).unwrap();
        let (mut opened, mut refused) = (0, 0);
        for _ in 0..flips() {
            let mut bad = good.clone();
            for _ in 0..1 + rng.below(3) {
                let bit = rng.below(bad.len() * 8);
                bad[bit / 8] ^= 1 << (bit % 8);
            }
            let p = scratch.write("f.pdb", &bad);
            if open_and_resolve(&p) {
                opened += 1;
            } else {
                refused += 1;
            }
        }
        assert!(opened + refused == flips(), "{name}");
    }
}

#[test]
fn damaged_pes_never_panic() {
    let good = std::fs::read(fixture("../example/app.exe")).unwrap();
    for len in 0..good.len() {
        let _ = pe_identity(&good[..len]);
    }
    let headers = 0x400 * 8;
    for bit in 0..headers {
        let mut bad = good.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let _ = pe_identity(bad.as_slice());
    }
}

#[test]
fn damaged_cabinets_never_panic() {
    let scratch = Scratch::new("cab");
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
    for name in ["inl.pd_", "widget_lzx.pd_"] {
        let good = std::fs::read(fixture(name)).unwrap();
        let out = scratch.0.join("out.pdb");
        for len in (0..good.len()).step_by(97) {
            let p = scratch.write("c.pd_", &good[..len]);
            assert!(expand_cab(&p, &out).is_err(), "{name} cut at {len}");
            assert!(!out.exists());
        }
        for _ in 0..flips() {
            let mut bad = good.clone();
            let bit = rng.below(bad.len().min(4096) * 8);
            bad[bit / 8] ^= 1 << (bit % 8);
            let p = scratch.write("c.pd_", &bad);
            let started = Instant::now();
            let _ = expand_cab(&p, &out);
            assert!(started.elapsed() < Duration::from_secs(10));
        }
    }
}

/// A flip in a module's line subsection (found by sampling): lookups that meet it are counted and fall back
/// to the public symbols, so the function is still named.
#[test]
fn damaged_line_data_falls_back_to_public_names() {
    let scratch = Scratch::new("lines");
    let mut bytes = std::fs::read(fixture("inl.pdb")).unwrap();
    bytes[333_517 / 8] ^= 1 << (333_517 % 8);
    let reader = PdbReader::open(&scratch.write("l.pdb", &bytes)).unwrap();
    let r = reader.resolve(&[0x1010, 0x1050]).unwrap();
    assert_eq!(r.failed, 2);
    assert!(r.first_error.as_deref().unwrap().contains("not implemented"), "{:?}", r.first_error);
    assert_eq!(r.proc_start, vec![0x1000, 0x1050]);
    let names: Vec<&str> = r.function.iter().map(|&f| r.strings[f as usize].as_str()).collect();
    assert_eq!(
        (names, r.file.clone(), r.line.clone()),
        (vec!["load_texture", "mainCRTStartup"], vec![-1, -1], vec![0, 0])
    );
}

/// Flips found by the sampled runs that make a third-party parser panic (a slice past its buffer in the
/// PDB reader; the LZX decoder indexing past its registers): the panic must come back as an error.
#[test]
fn pinned_flips_that_make_parsers_panic_become_errors() {
    let scratch = Scratch::new("pinned");
    let flip = |name: &str, bit: usize| {
        let mut bytes = std::fs::read(fixture(name)).unwrap();
        bytes[bit / 8] ^= 1 << (bit % 8);
        scratch.write(name.rsplit('/').next().unwrap(), &bytes)
    };
    let reader = PdbReader::open(&flip("names.pdb", 341_560)).unwrap();
    let rvas: Vec<i64> = (0x1000..0x1400).collect();
    let e = reader.resolve(&rvas).unwrap_err();
    assert!(e.what.contains("internal error"), "{e}");
    // the lookup caches may be inconsistent now: the reader refuses further work
    let e = reader.resolve(&[0x1000]).unwrap_err();
    assert!(e.what.contains("open the PDB again"), "{e}");
    let e = expand_cab(&flip("widget_lzx.pd_", 408), &scratch.0.join("out")).unwrap_err();
    assert!(e.what.contains("internal error"), "{e}");
}
