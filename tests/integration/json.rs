//! `--format json` of `shrink`, `lincheck`, `list` and `report`: one JSON
//! document on standard output (progress on standard error), the figures of
//! the text output typed, the exit codes of the text output. (`bench` and
//! `calibrate` take minutes in a debug build; their documents are tested
//! on hand-made measurements in src/bench/document.rs and
//! src/json/calibrate.rs.)

use std::process::Output;

use serde_json::Value;

use crate::support::{faultline, stderr, stdout};

/// The one JSON document on standard output.
fn document(output: &Output) -> Value {
    let out = stdout(output);
    assert_eq!(out.trim_end().lines().count(), 1, "one document on one line:\n{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}\nstderr:\n{}", stderr(output)))
}

#[test]
fn shrink_json_names_the_minimal_faults_and_the_replay_command() {
    let out = std::env::temp_dir().join(format!("faultline-json-shrunk-{}.toml", std::process::id()));
    let out_text = out.to_str().unwrap();
    let output = faultline(&[
        "shrink",
        "scenarios/cache/lost-invalidation.toml",
        "--seed",
        "1",
        "--max-runs",
        "10",
        "--out",
        out_text,
        "--format",
        "json",
    ]);
    let written = std::fs::read_to_string(&out);
    let _ = std::fs::remove_file(&out);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("shrinking scenarios/cache/lost-invalidation.toml seed 1"));
    let json = document(&output);
    assert_eq!(json["scenario"], "scenarios/cache/lost-invalidation.toml");
    assert_eq!(json["seed"], 1);
    assert_eq!(json["invariant"], "reads-see-completed-writes");
    assert_eq!(json["verdict"], "reproduced");
    assert_eq!(json["out"], out_text);
    assert_eq!(json["replay"], format!("faultline replay {out_text} --trace"));
    let faults = json["faults"].as_array().unwrap();
    let (original, shrunk) = (&json["original"], &json["shrunk"]);
    assert_eq!(shrunk["faults"].as_u64().unwrap() as usize, faults.len());
    assert!(shrunk["faults"].as_u64().unwrap() <= original["faults"].as_u64().unwrap(), "{json}");
    assert!(shrunk["clients"].as_u64().unwrap() <= original["clients"].as_u64().unwrap(), "{json}");
    assert!(shrunk["duration_ns"].as_u64().unwrap() <= original["duration_ns"].as_u64().unwrap(), "{json}");
    assert!(shrunk["rate_per_second"].as_f64().unwrap() > 0.0, "{json}");
    let runs = json["runs"].as_u64().unwrap();
    assert!((2..=10).contains(&runs), "{json}");
    assert!(json["wall_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(json["digest"].as_str().unwrap().len(), 32, "{json}");
    // The faults are the ones written to the file, with typed times.
    let written = written.expect("the shrunk file was written");
    assert_eq!(written.matches("[[fault]]").count(), faults.len(), "{written}");
    for fault in faults {
        assert!(fault["kind"].is_string() && fault["at_ns"].is_u64(), "{fault}");
        assert!(written.contains(&format!("kind = {}", fault["kind"])), "{fault}\n{written}");
    }
}

#[test]
fn lincheck_json_gives_the_verdict_of_a_shipped_good_and_bad_history() {
    let output = faultline(&["lincheck", "examples/histories/kv.jsonl", "--model", "kv", "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json = document(&output);
    assert_eq!(json["history"], "examples/histories/kv.jsonl");
    assert_eq!(json["model"], "kv");
    assert_eq!(json["verdict"], "linearizable");
    assert_eq!(json["operations"], 6);
    assert_eq!(json["partitions"], 2);
    assert_eq!(json["failed_removed"], 0);
    assert!(json["violation"].is_null() && json["reason"].is_null());

    let output =
        faultline(&["lincheck", "examples/histories/kv-stale-read.jsonl", "--model", "kv", "--format", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let json = document(&output);
    assert_eq!(json["verdict"], "not_linearizable");
    assert_eq!(json["operations"], 4);
    let violation = &json["violation"];
    assert_eq!(violation["partition"], "key \"a\"", "{json}");
    assert_eq!(violation["partition_operations"], 3, "{json}");
    assert_eq!(violation["slice_operations"], 2, "the second write and the stale read: {json}");
    assert_eq!(violation["slice_from_any_state"], true, "{json}");
    assert_eq!(violation["prefix_operations"], 2, "{json}");
    assert_eq!(violation["next_operation"], "p1 40..50 a r 1", "{json}");
    assert!(violation["slice_timeline"].as_str().unwrap().contains("a r 1"), "{json}");
}

#[test]
fn list_json_has_every_system_with_its_invariants_and_knobs() {
    let output = faultline(&["list", "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json = document(&output);
    let systems = json["systems"].as_array().unwrap();
    let cache = systems.iter().find(|s| s["name"] == "cache").expect("the cache system is listed");
    let invariants: Vec<&str> =
        cache["invariants"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert!(invariants.contains(&"reads-see-completed-writes"), "{invariants:?}");
    let invalidation = cache["knobs"].as_array().unwrap().iter().find(|k| k["name"] == "invalidation");
    assert!(invalidation.is_some_and(|k| k["default"].is_string() && k["about"].is_string()), "{cache}");
    for name in ["echo", "breaker", "calibration"] {
        assert!(systems.iter().any(|s| s["name"] == name), "{name} missing");
    }
    let breaker = systems.iter().find(|s| s["name"] == "breaker").unwrap();
    assert!(breaker["events"].as_array().unwrap().iter().any(|e| e["name"] == "breaker.open" && e["detects"] == true));
    assert_eq!(json["common_invariants"][0]["name"], "liveness");
    assert!(json["fault_kinds"].as_array().unwrap().iter().any(|k| k["name"] == "power-off"));
    assert!(json["chaos_generators"].as_array().unwrap().iter().any(|k| k["name"] == "crash"));
    let availability = json["slo_metrics"].as_array().unwrap().iter().find(|m| m["name"] == "availability");
    assert_eq!(availability.unwrap()["unit"], "percent");
}

#[test]
fn report_json_gives_the_runs_verdict_and_digest_as_run_does() {
    let page = std::env::temp_dir().join(format!("faultline-json-report-{}.html", std::process::id()));
    let fixture = "tests/fixtures/report-breaker-crash.toml";
    let output =
        faultline(&["report", "--run", fixture, "--seed", "1", "--out", page.to_str().unwrap(), "--format", "json"]);
    let written = page.is_file();
    let _ = std::fs::remove_file(&page);
    let json = document(&output);
    let ran = faultline(&["run", fixture, "--seed", "1", "--format", "json"]);
    assert_eq!(output.status.code(), ran.status.code());
    let ran = document(&ran);
    assert!(written, "the page was written");
    assert_eq!(json["scenario"], fixture);
    assert_eq!(json["seed"], 1);
    assert_eq!(json["out"], page.to_str().unwrap());
    assert_eq!(json["digest"], ran["digest"]);
    assert_eq!(json["outcome"], ran["outcome"]);
    assert!(json["outcome"]["status"].is_string());
    assert_eq!(json["replay"], format!("faultline replay {fixture} --seed 1"));
}

#[test]
fn calibrate_json_gives_each_checks_theory_measure_and_verdict() {
    // One model (the M/M/1/K blocking probability): a few seconds of CPU.
    let output = faultline(&["calibrate", "--model", "mm1k", "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json = document(&output);
    assert_eq!(json["scale"], "short");
    assert_eq!(json["verdict"], "passed");
    let checks = json["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 1, "{json}");
    let check = &checks[0];
    assert_eq!(check["name"], "M/M/1/K rejected share");
    assert_eq!(check["unit"], "fraction");
    let expected = check["expected"].as_f64().unwrap();
    assert!((expected - 0.1734).abs() < 0.0001, "rho 0.8, K 3: P(K) = 17.34%, not {expected}");
    let (low, high) = (check["measured"]["ci_low"].as_f64().unwrap(), check["measured"]["ci_high"].as_f64().unwrap());
    assert!(low <= expected && expected <= high, "{check}");
    assert_eq!(check["verdict"], "pass");
    assert_eq!(check["measured"]["n"], json["seeds"]);
}

#[test]
fn report_of_results_files_in_json_gives_the_sweeps_verdict() {
    let dir = std::env::temp_dir().join(format!("faultline-json-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (results, page) = (dir.join("r.jsonl"), dir.join("sweep.html"));
    let swept = faultline(&[
        "sweep",
        "scenarios/echo/baseline.toml",
        "scenarios/cache/lost-invalidation.toml",
        "--seeds",
        "2",
        "--out",
        results.to_str().unwrap(),
    ]);
    assert_eq!(swept.status.code(), Some(0), "{}", stderr(&swept));
    let output = faultline(&["report", results.to_str().unwrap(), "--out", page.to_str().unwrap(), "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json = document(&output);
    assert!(page.is_file(), "the page was written");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(json["verdict"], "passed");
    assert_eq!(json["scenarios"], 2);
    assert_eq!(json["runs"], 4);
    assert_eq!(json["failed"], serde_json::json!([]));
    assert_eq!(json["out"], page.to_str().unwrap());
}
