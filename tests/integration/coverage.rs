//! No vacuous pass (issue 10): every invariant a system declares (other than
//! the harness's `liveness`) is named in the `expect` of some shipped
//! scenario, so some scenario proves, in every `cargo test`, that the real
//! system (under a fault, or a planted variant behind a knob) makes it fire.
//! Each such scenario has a hardened twin that passes; the system's doc
//! names both and records the twin's 500-seed sweep.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use faultline_harness::registry as loading;

use crate::support::repo_file;

fn scenario_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a readable scenario folder") {
        let path = entry.expect("a readable entry").path();
        if path.is_dir() {
            scenario_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

#[test]
fn every_invariant_is_expected_to_fire_in_some_shipped_scenario() {
    let registry = faultline_systems::registry();
    let mut files = Vec::new();
    scenario_files(&repo_file("scenarios"), &mut files);
    // system -> invariants some file expects to be violated
    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let loaded = loading::load(file, &registry).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let names = loaded.scenario.check.expect.violations().iter().cloned();
        expected.entry(loaded.scenario.system_name.clone()).or_default().extend(names);
    }
    let mut missing = Vec::new();
    for entry in registry.entries() {
        let found = expected.get(entry.doc.name).cloned().unwrap_or_default();
        for invariant in &entry.invariants {
            if !found.contains(invariant.name) {
                missing.push(format!("  {}: {}", entry.doc.name, invariant.name));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "invariants no shipped scenario expects to fire (add a scenario in which the real system, under a fault \
         or a planted variant, breaks it, with `expect = [\"violation:...\"]`, and a hardened twin that passes):\n{}",
        missing.join("\n")
    );
}
