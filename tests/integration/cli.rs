//! The `faultline` binary as a user meets it: exit codes (0 passed, 1 a check
//! failed, 2 bad input), error messages with positions, replay commands,
//! traces and `list`.

use std::path::PathBuf;

use crate::support::{faultline, repo_file, stderr, stdout};

/// A scratch file for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, contents: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("faultline-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        Scratch(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn check_points_at_a_misspelt_key_and_exits_2() {
    let output = faultline(&["check", "tests/fixtures/misspelled-key.toml"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("tests/fixtures/misspelled-key.toml:14:1: unknown key \"restart_afer\" in [[fault]]"),
        "{err}"
    );
    assert!(err.contains("help: did you mean \"restart_after\"?"), "{err}");
}

#[test]
fn check_accepts_a_valid_file_and_exits_0() {
    let output = faultline(&["check", "scenarios/echo/baseline.toml"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("ok  scenarios/echo/baseline.toml"));
}

#[test]
fn a_missing_file_is_bad_input() {
    let output = faultline(&["run", "scenarios/echo/nope.toml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("scenarios/echo/nope.toml: cannot read the scenario file"), "{}", stderr(&output));
}

#[test]
fn bad_flags_are_usage_errors() {
    let output = faultline(&["run", "scenarios/echo/baseline.toml", "--seed", "seven"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--seed"), "{}", stderr(&output));
    let output = faultline(&["sweep", "scenarios/echo", "--seed-range", "9..3"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("the range 9..3 is empty"), "{}", stderr(&output));
    let output = faultline(&["sweep", "scenarios/echo", "--seeds", "4", "--seed-range", "1..3"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn run_prints_every_knob_before_the_result() {
    let output = faultline(&["run", "scenarios/echo/baseline.toml", "--seed", "3"]);
    assert_eq!(output.status.code(), Some(0));
    let out = stdout(&output);
    let header = out.find("workload.rate").expect("knobs in the header");
    let result = out.find("\nresult").expect("a result section");
    assert!(header < result);
    for line in ["seed      3", "tick                   1ms", "knobs.service_time", "digest", "verdict: PASSED"] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
}

#[test]
fn a_crash_and_restart_shows_failures_during_the_crash_and_success_after() {
    let output = faultline(&["run", "scenarios/echo/crash-restart.toml", "--seed", "7", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let metrics = &json["metrics"];
    let unserved = metrics["failed"].as_u64().unwrap() + metrics["timeout"].as_u64().unwrap();
    assert!(unserved > 100, "requests fail while the server is down: {metrics}");
    // One outage, measured by the 1ms probe: the 2s restart delay within a few ticks.
    let outages = metrics["outages"].as_array().unwrap();
    assert_eq!(outages.len(), 1, "{metrics}");
    let start = outages[0]["start_ms"].as_f64().unwrap();
    let mttr = metrics["mttr_ms"].as_f64().unwrap();
    assert!((3990.0..=4005.0).contains(&start), "outage starts at the crash: {start}");
    assert!((2000.0..=2010.0).contains(&mttr), "MTTR is the restart delay: {mttr}");
    let timeline = metrics["timeline"].as_str().unwrap();
    assert_eq!(&timeline[4..6], "..", "down while crashed: {timeline}");
    assert!(timeline[7..].chars().all(|c| c == '#'), "up after the restart: {timeline}");
    assert_eq!(json["passed"], true);
}

#[test]
fn a_breached_slo_fails_the_run_naming_the_threshold() {
    let source = std::fs::read_to_string(repo_file("scenarios/echo/crash-restart.toml")).unwrap();
    let strict = source.replace("availability = \">= 80%\"", "availability = \">= 99.9%\"");
    assert_ne!(source, strict);
    let scratch = Scratch::new("crash-strict-slo.toml", &strict);
    let output = faultline(&["run", scratch.path(), "--seed", "3"]);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    assert!(out.contains("SLO breached: availability >= 99.9% (measured 84."), "{out}");
    assert!(out.contains("error budget used"), "{out}");
    assert!(out.contains(&format!("reproduce: faultline replay {} --seed 3", scratch.path())), "{out}");
}

#[test]
fn sweep_reports_the_expected_violation_as_found() {
    let output = faultline(&["sweep", "scenarios/echo/corrupting-server.toml", "--seeds", "4"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let out = stdout(&output);
    assert!(out.contains("ok, violation:echo-matches found in 4 seeds"), "{out}");
    assert!(out.contains("reproduce: faultline replay scenarios/echo/corrupting-server.toml --seed"), "{out}");
}

#[test]
fn a_violation_without_the_expectation_fails_with_a_replay_command() {
    let source = std::fs::read_to_string(repo_file("scenarios/echo/corrupting-server.toml")).unwrap();
    let without = source.replace("expect = \"violation:echo-matches\"\n", "");
    assert_ne!(source, without, "the fixture line to remove is there");
    let scratch = Scratch::new("corrupting-no-expect.toml", &without);
    let output = faultline(&["sweep", scratch.path(), "--seeds", "2"]);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    assert!(out.contains("violations of echo-matches"), "{out}");
    assert!(out.contains(&format!("reproduce: faultline replay {} --seed 1", scratch.path())), "{out}");
    assert!(out.contains("versions: faultline"), "{out}");

    let output = faultline(&["run", scratch.path(), "--seed", "1"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains(&format!("reproduce: faultline replay {} --seed 1", scratch.path())));
}

#[test]
fn replay_trace_shows_faults_and_operations_in_order() {
    let trace_file = std::env::temp_dir().join(format!("faultline-trace-{}.jsonl", std::process::id()));
    let output = faultline(&[
        "replay",
        "scenarios/echo/crash-restart.toml",
        "--seed",
        "2",
        "--trace",
        "--trace-out",
        trace_file.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0));
    let out = stdout(&output);
    let crash = out.find("host.crash").expect("the crash is in the trace");
    let restart = out.find("host.restart").expect("the restart is in the trace");
    let heal = out.find("phase.heal").expect("the heal phase is in the trace");
    assert!(crash < restart && restart < heal);
    assert!(out.contains("op.invoke") && out.contains("op.ok"));
    let lines = std::fs::read_to_string(&trace_file).unwrap();
    let _ = std::fs::remove_file(&trace_file);
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert!(first.get("at").is_some() && first.get("kind").is_some());
}

#[test]
fn list_shows_systems_knobs_invariants_and_fault_kinds() {
    let output = faultline(&["list"]);
    assert_eq!(output.status.code(), Some(0));
    let out = stdout(&output);
    for needle in
        ["echo:", "corrupt_rate", "probability", "echo-matches", "liveness", "partition", "clog", "p99_latency"]
    {
        assert!(out.contains(needle), "list lacks {needle:?}");
    }
}

#[test]
fn help_documents_the_exit_codes() {
    let output = faultline(&["--help"]);
    assert!(stdout(&output).contains("2  bad input"));
}

#[test]
fn a_saved_recording_is_judged_again_the_same_without_simulating() {
    let source = std::fs::read_to_string(repo_file("scenarios/echo/corrupting-server.toml")).unwrap();
    let scratch = Scratch::new("corrupting-analyze.toml", &source.replace("expect = \"violation:echo-matches\"\n", ""));
    let saved = std::env::temp_dir().join(format!("faultline-recording-{}.json", std::process::id()));
    let replay =
        faultline(&["replay", scratch.path(), "--seed", "2", "--save", saved.to_str().unwrap(), "--format", "json"]);
    assert_eq!(replay.status.code(), Some(1));
    let analyze = faultline(&["analyze", saved.to_str().unwrap(), "--format", "json"]);
    assert_eq!(analyze.status.code(), Some(1), "{}", stderr(&analyze));
    let ran: serde_json::Value = serde_json::from_str(&stdout(&replay)).unwrap();
    let judged: serde_json::Value = serde_json::from_str(&stdout(&analyze)).unwrap();
    for key in ["digest", "violations", "violation_counts", "metrics", "outcome", "slo", "system_figures"] {
        assert_eq!(ran[key], judged[key], "{key} differs between the run and its analysis");
    }
    assert!(judged["violation_counts"]["echo-matches"].as_u64().unwrap() > 0);
    let text = faultline(&["analyze", saved.to_str().unwrap()]);
    assert!(stdout(&text).contains("reproduce: faultline replay"), "{}", stdout(&text));

    // A recording of another format version is refused, saying so.
    let mut recording: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    recording["format"] = serde_json::json!(99);
    std::fs::write(&saved, recording.to_string()).unwrap();
    let refused = faultline(&["analyze", saved.to_str().unwrap()]);
    let _ = std::fs::remove_file(&saved);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("format version 99"), "{}", stderr(&refused));
}

#[test]
fn lincheck_judges_a_stored_history_with_exit_codes_for_each_verdict() {
    let good = "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1,\"time\":0}\n\
                {\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1,\"time\":10}\n\
                {\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"value\":null,\"time\":20}\n\
                {\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":1,\"time\":30}\n";
    let file = Scratch::new("good.jsonl", good);
    let output = faultline(&["lincheck", file.path(), "--model", "register"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("verdict: linearizable"));
    // A read that returns a value before its write was invoked.
    let stale = "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"value\":null,\"time\":1}\n\
                 {\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":1,\"time\":2}\n\
                 {\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1,\"time\":5}\n\
                 {\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1,\"time\":10}\n";
    let file = Scratch::new("stale.jsonl", stale);
    let output = faultline(&["lincheck", file.path(), "--model", "register"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(stdout(&output).contains("verdict: not linearizable"), "{}", stdout(&output));
    let bad = Scratch::new("bad.jsonl", "{\"process\":0,\"type\":\"done\",\"f\":\"read\"}\n");
    let output = faultline(&["lincheck", bad.path(), "--model", "register"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains(":1:"), "{}", stderr(&output));
}

/// A scratch folder for one test, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(name: &str) -> ScratchDir {
        let dir = std::env::temp_dir().join(format!("faultline-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        ScratchDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `check` on `path`: it must exit 2 with an error containing `needle`.
#[track_caller]
fn refused(path: &std::path::Path, needle: &str) -> String {
    let output = faultline(&["check", path.to_str().unwrap()]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    assert!(err.contains("help: "), "no help line in:\n{err}");
    err
}

#[test]
fn files_that_are_not_text_or_too_big_are_refused() {
    let dir = ScratchDir::new("hostile-files");
    let binary = dir.join("binary.toml");
    std::fs::write(&binary, b"name = \"x\"\n\x00\x01\x02\x7fELF").unwrap();
    refused(&binary, "binary.toml:2:1: holds binary data (a NUL byte), so it is not a text scenario file");
    let latin1 = dir.join("latin1.toml");
    std::fs::write(&latin1, b"name = \"caf\xe9\"\n").unwrap();
    refused(&latin1, "latin1.toml:1:12: is not UTF-8 text: byte 0xe9");
    // The limit is 1 MiB: a file one byte over it is refused before it is read.
    let big = dir.join("big.toml");
    std::fs::write(&big, vec![b'#'; (1 << 20) + 1]).unwrap();
    refused(&big, "big.toml: is 1 MiB, larger than the 1 MiB a scenario file may be");
    // A folder where a file is expected.
    let output = faultline(&["run", dir.0.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("is a folder, not a scenario file"), "{}", stderr(&output));
}

#[cfg(unix)]
#[test]
fn devices_and_loops_of_links_are_refused_not_read_forever() {
    // /dev/zero never ends: it must be refused, not read.
    refused(std::path::Path::new("/dev/zero"), "is not a regular file (a device, a pipe or a socket)");
    let dir = ScratchDir::new("hostile-links");
    std::os::unix::fs::symlink(dir.join("b.toml"), dir.join("a.toml")).unwrap();
    std::os::unix::fs::symlink(dir.join("a.toml"), dir.join("b.toml")).unwrap();
    refused(&dir.join("a.toml"), "is a symbolic link that cannot be followed (a loop of links, or a missing target)");
    // A folder with a link back to itself is a loop, said as such.
    let folder = ScratchDir::new("hostile-folder-loop");
    std::fs::create_dir_all(folder.join("inner")).unwrap();
    std::fs::copy(repo_file("scenarios/echo/baseline.toml"), folder.join("inner/baseline.toml")).unwrap();
    std::os::unix::fs::symlink(&folder.0, folder.join("inner/up")).unwrap();
    refused(&folder.0, "(a loop of symbolic links)");
}

#[test]
fn a_folder_of_thousands_of_bad_files_gets_a_few_errors_and_a_count() {
    let dir = ScratchDir::new("hostile-thousands");
    for index in 0..3000 {
        std::fs::write(dir.join(&format!("junk-{index:04}.toml")), "not = [a scenario").unwrap();
    }
    let err = refused(&dir.0, "junk-0000.toml:1:");
    let lines = err.lines().filter(|l| l.starts_with("error: ")).count();
    assert_eq!(lines, 21, "20 errors and a count:\n{err}");
    assert!(
        err.contains("... and 2980 more errors (3000 errors in 3000 files in all); is this the right folder?"),
        "{err}"
    );
}

#[test]
fn a_negative_seed_flag_says_seeds_are_never_negative() {
    for args in [["--seed", "-1"], ["--seed", "-7"]] {
        let output = faultline(&["run", "scenarios/echo/baseline.toml", args[0], args[1]]);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{err}");
        assert!(
            err.contains("is not a seed: seeds are whole numbers from 0 to 18446744073709551615, never negative"),
            "{err}"
        );
        // clap's generic tip (pass it after `--`) would be wrong here.
        assert!(!err.contains("tip:"), "{err}");
    }
}

#[test]
fn check_counts_in_the_singular_and_plural() {
    let output = faultline(&[
        "check",
        "scenarios/echo/crash-restart.toml",
        "scenarios/regressions/corrupting-server-seed1.toml",
    ]);
    let out = stdout(&output);
    assert!(out.contains("1 explicit fault,"), "{out}");
    assert!(out.contains("(echo: 1 seed,"), "{out}");
    assert!(!out.contains("1 explicit faults") && !out.contains("1 seeds"), "{out}");
}

#[test]
fn report_says_what_it_needs_and_refuses_a_run_mixed_with_results() {
    let nothing = faultline(&["report"]);
    assert_eq!(nothing.status.code(), Some(2), "{}", stderr(&nothing));
    assert!(stderr(&nothing).contains("faultline report results.jsonl"), "{}", stderr(&nothing));
    assert!(stderr(&nothing).contains("--run FILE --seed N"), "{}", stderr(&nothing));
    let mixed = faultline(&["report", "results.jsonl", "--run", "scenarios/echo/baseline.toml"]);
    assert_eq!(mixed.status.code(), Some(2), "{}", stderr(&mixed));
    assert!(stderr(&mixed).contains("cannot be used with"), "{}", stderr(&mixed));
    let missing = faultline(&["report", "no-such-results.jsonl", "--out", "/nonexistent-folder/x.html"]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
}

#[test]
fn calibrate_names_the_models_when_one_is_unknown() {
    let output = faultline(&["calibrate", "--model", "mm1,erlang"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("\"erlang\" is not a model; the models are availability, mm1, mm1k"), "{err}");
}
