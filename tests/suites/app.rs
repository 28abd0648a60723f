//! The whole window: the procedure by clicking, the shell, the registry, the real binary restarted and killed, the screenshot walk.
//!
//! One test binary for several test files (each file stays a module of its own, by its old
//! name): fewer binaries to link. `tests/suites/app.rs` checks every file is in one suite.

#[path = "../flow.rs"]
mod flow;
#[path = "../registry.rs"]
mod registry;
#[path = "../resume.rs"]
mod resume;
#[path = "../screenshot_walk.rs"]
mod screenshot_walk;
#[path = "../sign_in_page.rs"]
mod sign_in_page;
#[path = "../support/mod.rs"]
mod support;
#[path = "../ui_shell.rs"]
mod ui_shell;

/// With `autotests = false`, a test file no suite names would never be built: every
/// `tests/*.rs` is in exactly one suite.
#[test]
fn every_test_file_is_in_one_suite() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let suites: Vec<String> = std::fs::read_dir(dir.join("suites"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.ends_with(".rs").then_some(name)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 20, "{files:?}");
    for f in files {
        let line = format!("#[path = \"../{f}\"]");
        let n = suites.iter().filter(|s| s.contains(&line)).count();
        assert_eq!(n, 1, "tests/{f} is in {n} suites (tests/suites/*.rs)");
    }
}
