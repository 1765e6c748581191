//! The crate's own faultline binary prints a `reproduce:` line naming
//! itself, and that line replays the failing run digest for digest.

use std::process::Command;

fn faultline_kv(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_faultline-kv"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the faultline-kv binary runs")
}

#[test]
fn the_reproduce_line_replays_the_same_run() {
    // The racy scenario without its expectation: its seeds fail, with reproduce lines.
    let source = std::fs::read_to_string("scenarios/racy-incr.toml").unwrap();
    let scratch = std::env::temp_dir().join(format!("own-service-racy-{}.toml", std::process::id()));
    std::fs::write(&scratch, source.replace("expect = \"violation:increments-unique\"\n", "")).unwrap();
    let file = scratch.to_str().unwrap();
    let sweep = faultline_kv(&["sweep", file, "--seeds", "2", "--format", "json"]);
    assert_eq!(sweep.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&sweep.stdout).unwrap();
    let report = &json["scenarios"][0]["reports"][0];
    let text = String::from_utf8_lossy(&faultline_kv(&["sweep", file, "--seeds", "2"]).stdout).into_owned();
    let line = text.lines().find_map(|l| l.trim().strip_prefix("reproduce: ")).expect("a reproduce line");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[..2], ["faultline-kv", "replay"], "the line names this crate's binary: {line}");
    let mut args: Vec<&str> = words[1..].to_vec();
    args.extend(["--format", "json"]);
    let replay = faultline_kv(&args);
    let _ = std::fs::remove_file(&scratch);
    let replayed: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(replayed["seed"], report["seed"]);
    assert_eq!(replayed["digest"], report["digest"], "the reproduce line replays the same run");
}
