//! Shrinking: a failing seed's plan and workload shrink to a smaller one
//! that still violates the same invariant, and the file written from it
//! reproduces the violation on its own.

use std::sync::Arc;
use std::time::Duration;

use faultline_harness::drive::{run_seed, RunOptions};
use faultline_harness::registry as loading;
use faultline_harness::scenario::Expect;
use faultline_harness::shrink::{shrink, to_toml, ShrinkOptions};

use crate::support::{faultline, registry, repo_file, stdout};

const CHAOS: &str = "name = \"shrink me\"\nsystem = \"echo\"\nduration = \"6s\"\nheal = \"2s\"\n\
    [knobs]\ncorrupt_rate = 0.01\n\
    [workload]\nclients = 4\nrate = \"200/s\"\ndeadline = \"400ms\"\n\
    [chaos]\npartition = { every = \"1s\", for = \"100ms..500ms\" }\nlatency = { every = \"1s\", for = \"1s\", latency = \"20ms..80ms\" }\n\
    [check]\ninvariants = [\"echo-matches\"]\n";

#[test]
fn a_chaotic_failing_seed_shrinks_to_no_fault_and_a_small_workload() {
    let scenario = Arc::new(loading::parse("shrink-me.toml", CHAOS, &registry()).unwrap());
    let options = ShrinkOptions {
        max_runs: 80,
        timeout: Duration::from_secs(300),
        invariant: None,
        wall_limit: Duration::from_secs(120),
    };
    let mut steps = 0;
    let result = shrink(&scenario, 3, &options, &mut |_| steps += 1).expect("seed 3 corrupts an answer");
    assert_eq!(result.invariant, "echo-matches");
    assert!(result.original.faults >= 6, "the chaos plan has many faults: {}", result.original);
    assert_eq!(result.shrunk.plan.faults.len(), 0, "the corruption needs no fault: {}", result.shrunk.size());
    let shrunk = result.shrunk.size();
    assert!(shrunk.clients < 4 || shrunk.rate_per_second < 200.0, "{shrunk}");
    assert_eq!(steps, result.runs - 1, "one progress line per run after the first");

    // The written file stands alone, pinned to the seed, and fails the same way.
    let text = to_toml(&result.shrunk, &Expect::Pass, &["test".to_string()]);
    let written = Arc::new(loading::parse("shrunk.toml", &text, &registry()).unwrap_or_else(|e| panic!("{e}\n{text}")));
    assert_eq!(written.scenario.seed, Some(3));
    assert!(written.scenario.faults.is_empty() && written.scenario.chaos.generators.is_empty());
    let report = run_seed(&written, 3, RunOptions::default());
    assert!(report.violation_counts.contains_key("echo-matches"), "{text}");
}

#[test]
fn the_cli_shrinks_a_known_flaw_and_verifies_the_file() {
    let out = std::env::temp_dir().join(format!("faultline-shrunk-{}.toml", std::process::id()));
    let output = faultline(&[
        "shrink",
        "scenarios/cache/lost-invalidation.toml",
        "--seed",
        "1",
        "--max-runs",
        "40",
        "--out",
        out.to_str().unwrap(),
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("checked: running it violates reads-see-completed-writes again"), "{text}");
    let written = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    assert!(written.starts_with("# Shrunk by `faultline shrink scenarios/cache/lost-invalidation.toml --seed 1`"));
    assert!(
        written.contains("expect = [\"violation:reads-see-completed-writes\"]"),
        "a known flaw keeps its expectation"
    );
    assert!(written.matches("[[fault]]").count() <= 3);
}

#[test]
fn a_seed_that_does_not_fail_has_nothing_to_shrink_which_is_bad_input_not_a_failed_check() {
    let out = std::env::temp_dir().join(format!("faultline-nothing-{}.toml", std::process::id()));
    let output = faultline(&["shrink", "scenarios/echo/baseline.toml", "--seed", "1", "--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--seed: seed 1 has nothing to shrink"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn shrink_never_overwrites_a_file_or_creates_folders_unasked() {
    let existing = std::env::temp_dir().join(format!("faultline-existing-{}.toml", std::process::id()));
    std::fs::write(&existing, "keep me").unwrap();
    let file = "scenarios/echo/corrupting-server.toml";
    let output = faultline(&["shrink", file, "--seed", "1", "--out", existing.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("pass --force to overwrite it"));
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me");
    let _ = std::fs::remove_file(&existing);
    let nowhere = std::env::temp_dir().join("faultline-no-such-folder").join("x.toml");
    let output = faultline(&["shrink", file, "--seed", "1", "--out", nowhere.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist; create it first"));
}

#[test]
fn sweeps_record_failing_seeds_beside_the_scenario() {
    let dir = std::env::temp_dir().join(format!("faultline-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = std::fs::read_to_string(repo_file("scenarios/echo/corrupting-server.toml")).unwrap();
    let file = dir.join("corrupting.toml");
    std::fs::write(&file, source.replace("expect = \"violation:echo-matches\"\n", "")).unwrap();
    let output = faultline(&["sweep", file.to_str().unwrap(), "--seeds", "2", "--record-regressions"]);
    assert_eq!(output.status.code(), Some(1));
    let recorded = faultline_harness::regressions::load(&file).unwrap();
    assert_eq!(recorded.iter().map(|r| r.seed.0).collect::<Vec<_>>(), vec![1, 2]);
    assert!(recorded.iter().all(|r| r.invariant == "echo-matches" && r.digest.len() == 32));
    std::fs::remove_dir_all(&dir).unwrap();
}
