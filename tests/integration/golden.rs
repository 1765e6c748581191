//! Golden digests: the digests of a few fixed (scenario, seed) runs, one per
//! system and one under every chaos generator, pinned in
//! tests/golden/digests.txt. A seed must mean the same run on every machine
//! and in every build; a change that alters what a seed means (a new random
//! draw, another event, a changed message, a dependency's new version) fails
//! here until it is re-blessed on purpose, with the reason in the commit:
//!
//!     FAULTLINE_BLESS=1 cargo test --test integration golden

use std::collections::BTreeMap;
use std::path::Path;

use faultline_harness::drive::{run_seed, RunOptions};

use crate::support::{load, repo_file};

const GOLDEN_DIR: &str = "tests/golden";
const DIGESTS: &str = "tests/golden/digests.txt";
const BLESS: &str = "FAULTLINE_BLESS";

const HEADER: &str = "\
# Golden digests (tests/integration/golden.rs): each line is a golden scenario
# under tests/golden/, a seed, and the digest of that run. `cargo test` fails
# when a run's digest changes, because the seed then means another run.
#
# To change them on purpose: FAULTLINE_BLESS=1 cargo test --test integration golden
# and say in the commit why the runs changed (a new draw, a new event, a
# dependency's version). A merge of other engineers' work that changes what a
# seed means (a system's wire messages or events, the harness's streams,
# Cargo.lock) may need a re-bless too: re-bless after the merge, with the
# reason, rather than editing digests by hand.
";

/// The pinned (file, seed) -> digest lines.
fn pinned() -> BTreeMap<(String, u64), String> {
    let text = std::fs::read_to_string(repo_file(DIGESTS)).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 3, "{DIGESTS}: a line is `file seed digest`: {line:?}");
            let seed = fields[1].parse().unwrap_or_else(|_| panic!("{DIGESTS}: bad seed in {line:?}"));
            ((fields[0].to_string(), seed), fields[2].to_string())
        })
        .collect()
}

/// Every golden scenario file, with the seeds pinned for it (seed 1 for a
/// file not pinned yet).
fn runs(pinned: &BTreeMap<(String, u64), String>) -> Vec<(String, u64)> {
    let mut files: Vec<String> = std::fs::read_dir(repo_file(GOLDEN_DIR))
        .expect("tests/golden exists")
        .map(|entry| entry.expect("a readable entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .map(|path| format!("{GOLDEN_DIR}/{}", path.file_name().unwrap().to_string_lossy()))
        .collect();
    files.sort();
    let mut runs = Vec::new();
    for file in files {
        let seeds: Vec<u64> = pinned.keys().filter(|(f, _)| *f == file).map(|(_, seed)| *seed).collect();
        runs.extend(if seeds.is_empty() { vec![1] } else { seeds }.into_iter().map(|seed| (file.clone(), seed)));
    }
    runs
}

#[test]
fn golden_runs_keep_their_digests() {
    let pinned = pinned();
    let runs = runs(&pinned);
    assert!(runs.len() >= 5, "one golden run per system and one with chaos");
    let mut now = BTreeMap::new();
    let mut changed = Vec::new();
    let mut first_changed = None;
    for (file, seed) in &runs {
        let report = run_seed(&load(file), *seed, RunOptions::default());
        assert!(report.aborted.is_none(), "{file} seed {seed} aborted: {:?}", report.aborted);
        match pinned.get(&(file.clone(), *seed)) {
            Some(digest) if *digest == report.digest => {}
            Some(digest) => changed.push(format!("  {file} seed {seed}: pinned {digest}, now {}", report.digest)),
            None => changed.push(format!("  {file} seed {seed}: not pinned yet, now {}", report.digest)),
        }
        if first_changed.is_none() && changed.len() == 1 {
            first_changed = Some((file.clone(), *seed));
        }
        now.insert((file.clone(), *seed), report.digest);
    }
    let stale: Vec<String> = pinned
        .keys()
        .filter(|key| !now.contains_key(*key))
        .map(|(f, s)| format!("  {f} seed {s}: no such file"))
        .collect();
    changed.extend(stale);
    if changed.is_empty() {
        return;
    }
    if std::env::var_os(BLESS).is_some_and(|v| v == "1") {
        let mut text = HEADER.to_string();
        for ((file, seed), digest) in &now {
            text.push_str(&format!("{file} {seed} {digest}\n"));
        }
        std::fs::write(repo_file(DIGESTS), text).expect("the digests file is writable");
        eprintln!("blessed {} golden digests in {DIGESTS}:\n{}", now.len(), changed.join("\n"));
        return;
    }
    let (file, seed) = first_changed.unwrap_or_else(|| runs[0].clone());
    panic!(
        "{} golden run(s) changed: the same seed now means another run.\n{}\n\
         If the change is deliberate, re-bless and say why in the commit:\n  \
         {BLESS}=1 cargo test --test integration golden\n\
         If not, compare the run's trace before and after the change:\n  \
         faultline replay {file} --seed {seed} --trace",
        changed.len(),
        changed.join("\n"),
    );
}

#[test]
fn the_digests_file_explains_itself() {
    let text = std::fs::read_to_string(repo_file(DIGESTS)).expect("tests/golden/digests.txt exists");
    assert!(text.starts_with(HEADER), "{DIGESTS} keeps its header (re-bless to restore it)");
    assert!(Path::new(&repo_file(GOLDEN_DIR)).is_dir());
}
