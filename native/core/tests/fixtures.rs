//! The core against the committed PE/PDB fixtures (fixtures/symbols, built by its build.sh). Expected values
//! were read with LLVM's tools (llvm-readobj-19, llvm-pdbutil-19, llvm-symbolizer-19); the Python tests
//! compare with those tools live.

use heapdiff_symcore::{expand_cab, pdb_identity, pe_identity_file, PdbReader, Resolution};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/symbols").join(name)
}

/// The chain at RVA `i` as (function, file base name, line), innermost first.
fn chain(r: &Resolution, i: usize) -> Vec<(String, String, u32)> {
    (r.chain_start[i] as usize..r.chain_start[i + 1] as usize)
        .map(|j| {
            let file = match r.file[j] {
                -1 => String::new(),
                f => r.strings[f as usize].rsplit(['\\', '/']).next().unwrap_or_default().to_owned(),
            };
            (r.strings[r.function[j] as usize].clone(), file, r.line[j])
        })
        .collect()
}

type Expected<'a> = (i64, i64, &'a [(&'a str, &'a str, u32)]);

fn check(pdb: &str, cases: &[Expected<'_>]) {
    let reader = PdbReader::open(&fixture(pdb)).unwrap();
    let rvas: Vec<i64> = cases.iter().map(|c| c.0).collect();
    let r = reader.resolve(&rvas).unwrap();
    assert_eq!((r.failed, r.first_error.as_deref()), (0, None));
    for (i, (rva, start, frames)) in cases.iter().enumerate() {
        let want: Vec<(String, String, u32)> =
            frames.iter().map(|(f, file, l)| ((*f).to_owned(), (*file).to_owned(), *l)).collect();
        assert_eq!((r.proc_start[i], chain(&r, i)), (*start, want), "{pdb} RVA {rva:#x}");
    }
}

#[test]
fn pe_identity_of_exe_dll_and_x86() {
    let id = pe_identity_file(&fixture("widget.exe")).unwrap();
    assert_eq!((id.machine, id.timestamp, id.size_of_image), (0x8664, 0x9FE9_2C59, 0x5000));
    let cv = id.codeview.unwrap();
    assert_eq!(
        (cv.pdb_name.as_str(), cv.guid.to_string(), cv.age),
        ("widget.pdb", "4464ad3e-15e0-7305-4c4c-44205044422e".into(), 1)
    );
    assert_eq!(pe_identity_file(&fixture("x86.exe")).unwrap().machine, 0x14C);
    let dll = pe_identity_file(&fixture("../example/plugin.dll")).unwrap();
    assert_eq!(dll.codeview.unwrap().pdb_name, "plugin.pdb");
}

#[test]
fn pdb_identity_uses_the_dbi_age() {
    let id = pdb_identity(&fixture("widget.pdb")).unwrap();
    assert_eq!(
        (id.guid.to_string(), id.age, id.info_age, id.machine),
        ("4464ad3e-15e0-7305-4c4c-44205044422e".into(), 1, 1, 0x8664)
    );
    // mismatch.exe names age 2; its PDB's info stream says 3 and its DBI stream 1
    let image = pe_identity_file(&fixture("mismatch.exe")).unwrap().codeview.unwrap();
    let pdb = pdb_identity(&fixture("mismatch.pdb")).unwrap();
    assert_eq!(image.guid, pdb.guid);
    assert_eq!((image.age, pdb.age, pdb.info_age), (2, 1, 3));
    assert_eq!(pdb_identity(&fixture("x86.pdb")).unwrap().machine, 0x14C);
    assert_eq!(pdb_identity(&fixture("pages8k.pdb")).unwrap().age, 1);
}

#[test]
fn return_addresses_and_static_functions() {
    // widget.c: build() calls make_widget at 0x1014 (line 19); the return address 0x1019 is line 20
    check(
        "widget.pdb",
        &[
            (0x1018, 0x1010, &[("build", "widget.c", 19)]),
            (0x1019, 0x1010, &[("build", "widget.c", 20)]),
            (0x1025, 0x1010, &[("build", "widget.c", 21)]),
            (0x1030, 0x1030, &[("scale_widget", "widget.c", 13)]),
            (0x105d, 0x1050, &[("mainCRTStartup", "widget.c", 26)]),
            (0x1000, 0x1000, &[("make_widget", "widget.c", 7)]),
        ],
    );
}

#[test]
fn inline_chains_innermost_first() {
    let cases: &[Expected<'_>] = &[
        (0x101c, 0x1000, &[("make_widget", "inl.c", 14), ("load_texture", "inl.c", 21)]),
        (0x1023, 0x1000, &[("mix", "inl.c", 6), ("make_widget", "inl.c", 15), ("load_texture", "inl.c", 21)]),
        (0x1036, 0x1000, &[("mix", "inl.c", 8), ("make_widget", "inl.c", 15), ("load_texture", "inl.c", 21)]),
        (0x103c, 0x1000, &[("load_texture", "inl.c", 21)]),
    ];
    check("inl.pdb", cases);
    check("pages8k.pdb", cases);
}

#[test]
fn names_are_undecorated_qualified_without_arguments() {
    check(
        "names.pdb",
        &[
            (0x1000, 0x1000, &[("operator new", "names.cpp", 10)]),
            (0x1040, 0x1040, &[("gfx::Texture::load", "names.cpp", 31)]),
            (0x1060, 0x1060, &[("gfx::Texture::area", "names.cpp", 39)]),
            (0x10c0, 0x10c0, &[("gfx::clamp_max<int>", "names.cpp", 45)]),
            (0x10d0, 0x10d0, &[("gfx::clamp_max<long long>", "names.cpp", 45)]),
        ],
    );
    // the same functions from decorated publics; MSVC spells the 64-bit integer `__int64`, clang-cl's
    // procedure symbols `long long`
    check(
        "names_pub.pdb",
        &[
            (0x1000, 0x1000, &[("operator new", "", 0)]),
            (0x1045, 0x1040, &[("gfx::Texture::load", "", 0)]),
            (0x1060, 0x1060, &[("gfx::Texture::area", "", 0)]),
            (0x10c0, 0x10c0, &[("gfx::clamp_max<int>", "", 0)]),
            (0x10d0, 0x10d0, &[("gfx::clamp_max<__int64>", "", 0)]),
        ],
    );
}

#[test]
fn x86_c_decorations_are_stripped_from_publics_only() {
    let procedures =
        [(0x1000, "cache_lookup"), (0x1010, "cache_insert"), (0x1030, "cache_hash"), (0x1050, "mainCRTStartup")];
    let full = PdbReader::open(&fixture("x86.pdb")).unwrap();
    let publics = PdbReader::open(&fixture("x86_pub.pdb")).unwrap();
    let rvas: Vec<i64> = procedures.iter().map(|p| p.0 + 2).collect();
    let (f, p) = (full.resolve(&rvas).unwrap(), publics.resolve(&rvas).unwrap());
    for (i, (start, name)) in procedures.iter().enumerate() {
        assert_eq!(chain(&f, i)[0].0, *name);
        assert_eq!(chain(&p, i), vec![((*name).to_owned(), String::new(), 0)]);
        assert_eq!((f.proc_start[i], p.proc_start[i]), (*start, *start));
    }
    // the static cache_evict (0x1070) is a procedure in the full PDB and unnamed code in the publics-only one
    assert_eq!(chain(&full.resolve(&[0x1071]).unwrap(), 0)[0].0, "cache_evict");
    let r = publics.resolve(&[0x1071]).unwrap();
    assert_eq!((r.proc_start[0], r.chain_start.as_slice()), (-1, &[0u32, 0][..]));
}

#[test]
fn rvas_outside_the_image_resolve_to_nothing() {
    let r = PdbReader::open(&fixture("widget.pdb")).unwrap().resolve(&[-1, 0, 5, 0x9000, 1 << 40]).unwrap();
    assert_eq!(r.proc_start, vec![-1; 5]);
    assert_eq!(r.chain_start, vec![0; 6]);
    assert!(r.strings.is_empty());
}

#[test]
fn cabinets_expand_to_the_original_bytes() {
    let dir = std::env::temp_dir().join(format!("heapdiff-cab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (cab, member) in [("inl.pd_", "inl.pdb"), ("widget_lzx.pd_", "widget.pdb")] {
        let out = dir.join(member);
        assert_eq!(expand_cab(&fixture(cab), &out).unwrap(), member);
        assert!(std::fs::read(&out).unwrap() == std::fs::read(fixture(member)).unwrap(), "{cab}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
