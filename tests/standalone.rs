//! A clone alone runs its tests: the data the tests read lives in `tests/data`, and only the
//! suites lifted from Tempo's own tests (named `tempo_suite_*`) read the team library beside the
//! clone, which `tests/run.sh` skips with one line when it is missing (and fails on under CI).

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a source folder") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            if !path.ends_with("node_modules") && !path.ends_with("data") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// Where the sources may name `../shared`, and how many times.
const ALLOWED: [(&str, usize); 5] = [
    // The conformance tables: every test in these files is a tempo_suite_ test (checked below).
    ("tests/traceql_conformance.rs", 2),
    ("tests/traceql_eval_conformance.rs", 2),
    // Tempo's bloom goldens, read only by tempo_suite_bloom_goldens_regenerate_byte_for_byte.
    ("src/tempodb/bloom.rs", 1),
    // The large Tempo-written block, read only by
    // tempo_suite_large_block_reads_the_same_filtered_and_as_columns (checked below).
    ("src/tempodb/vparquet4/pushdown/golden_tests.rs", 1),
    // The search benchmark's default for the large Tempo-written block (not a test).
    ("src/bench/mod.rs", 1),
];

#[test]
fn only_tempo_suites_read_the_team_library() {
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src"), &mut files);
    rust_files(&Path::new(ROOT).join("tests"), &mut files);
    assert!(files.len() > 100, "found only {} Rust files", files.len());
    let this_file = Path::new(ROOT).join("tests/standalone.rs");
    let mut checked = 0;
    for file in files.iter().filter(|file| **file != this_file) {
        let text = std::fs::read_to_string(file).expect("read a Rust file");
        let count = text.matches("../shared").count();
        let relative = file.strip_prefix(ROOT).expect("under the repository");
        let allowed = ALLOWED
            .iter()
            .find(|(path, _)| Path::new(path) == relative)
            .map_or(0, |(_, count)| *count);
        assert_eq!(
            count,
            allowed,
            "{} names ../shared {count} times (allowed: {allowed}); test data belongs in tests/data",
            relative.display()
        );
        checked += 1;
    }
    assert_eq!(checked, files.len() - 1);

    for conformance in [
        "tests/traceql_conformance.rs",
        "tests/traceql_eval_conformance.rs",
    ] {
        let text = std::fs::read_to_string(Path::new(ROOT).join(conformance)).expect("read");
        let tests: Vec<&str> = text
            .split("#[test]")
            .skip(1)
            .filter_map(|rest| rest.split("fn ").nth(1))
            .filter_map(|rest| rest.split('(').next())
            .collect();
        assert_eq!(tests.len(), 1, "{conformance}: {tests:?}");
        assert!(
            tests.iter().all(|name| name.starts_with("tempo_suite_")),
            "{conformance}: {tests:?}"
        );
    }
    let bloom = std::fs::read_to_string(Path::new(ROOT).join("src/tempodb/bloom.rs"))
        .expect("read bloom.rs");
    let suite = bloom
        .split("fn tempo_suite_bloom_goldens_regenerate_byte_for_byte")
        .nth(1)
        .expect("the bloom golden suite")
        .split("#[test]")
        .next()
        .expect("its body");
    assert_eq!(
        bloom.matches("BLOOM_GOLDENS").count(),
        2,
        "defined once, read once"
    );
    assert!(suite.contains("BLOOM_GOLDENS"));
    let golden_tests = std::fs::read_to_string(
        Path::new(ROOT).join("src/tempodb/vparquet4/pushdown/golden_tests.rs"),
    )
    .expect("read pushdown/golden_tests.rs");
    let large_suite = golden_tests
        .split("fn tempo_suite_large_block_reads_the_same_filtered_and_as_columns")
        .nth(1)
        .expect("the large-block suite");
    assert_eq!(
        golden_tests.matches("large()").count(),
        large_suite.matches("large()").count() + 1,
        "large() is defined once and read only by the tempo_suite_ test"
    );
}

/// Runs `tests/shared-suites.sh` from a copy of the repository's `tests/` folder in a fresh
/// directory, with and without a team library beside it.
fn shared_suites(with_library: bool, ci: bool) -> std::process::Output {
    let dir = tempfile::tempdir().expect("temporary directory");
    let repo = dir.path().join("vivace");
    std::fs::create_dir_all(repo.join("tests")).expect("create tests/");
    std::fs::copy(
        Path::new(ROOT).join("tests/shared-suites.sh"),
        repo.join("tests/shared-suites.sh"),
    )
    .expect("copy the script");
    if with_library {
        for needed in [
            "shared/conformance/traceql",
            "shared/golden/tempo-blocks/repo-testdata-common-bloom",
            "shared/golden/tempo-blocks/large",
        ] {
            std::fs::create_dir_all(dir.path().join(needed)).expect("create the library");
        }
    }
    let mut command = Command::new("bash");
    command
        .arg(repo.join("tests/shared-suites.sh"))
        .env_remove("CI");
    if ci {
        command.env("CI", "true");
    }
    command.output().expect("run bash")
}

#[test]
fn test_command_skips_tempo_suites_only_without_the_library_and_never_in_ci() {
    let alone = shared_suites(false, false);
    assert!(alone.status.success(), "{alone:?}");
    assert_eq!(
        String::from_utf8_lossy(&alone.stdout).trim(),
        "-- --skip tempo_suite_"
    );
    let said = String::from_utf8_lossy(&alone.stderr);
    assert_eq!(said.lines().count(), 1, "one clear line: {said}");
    assert!(
        said.contains("not running the tempo_suite_* tests"),
        "{said}"
    );

    let ci = shared_suites(false, true);
    assert_eq!(ci.status.code(), Some(2), "{ci:?}");
    assert!(String::from_utf8_lossy(&ci.stderr).contains("CI=true"));

    for ci in [false, true] {
        let beside = shared_suites(true, ci);
        assert!(beside.status.success(), "{beside:?}");
        assert!(
            beside.stdout.is_empty() && beside.stderr.is_empty(),
            "{beside:?}"
        );
    }
}
