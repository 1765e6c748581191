//! The README's commands, run as a user would run them from a checkout:
//! the two at the top and every line of "Everyday use", each with the exit
//! code the README documents (0 on the shipped scenarios). The README and
//! this table must list the same commands, so neither can drift.
//!
//! They run in a scratch folder holding a copy of scenarios/ (the files
//! they write, run.jsonl, run.json, a shrunk scenario, regressions files,
//! land there, not in the checkout). A few run shorter here than the README
//! has them, because the README's would take minutes in a debug build; the
//! table says how, and docs/failures.md and the README's own numbers come
//! from the full commands, run in a release build.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{repo_file, root, stderr, stdout};

/// A README command, how this test runs it, and the exit code it must give.
struct Case {
    /// The command as the README writes it (without its comment); empty
    /// for a second run of the line before it.
    readme: &'static str,
    /// The arguments this test passes to the faultline binary; `None`: not
    /// run here (the line is `cargo test`, this very suite).
    args: Option<&'static str>,
    code: i32,
    /// What its output must show.
    shows: &'static str,
}

/// In the order they run: `analyze run.json` needs `replay --save run.json` first.
const CASES: &[Case] = &[
    // The pinned reproducers of every system, not the whole tree:
    // tests/scenarios.rs runs every file over all its own seeds already,
    // through the same judging code, in this same `cargo test` (and some
    // files show their flaw only from seed 2, so one seed of each would not
    // do).
    Case {
        readme: "cargo run --release -- sweep scenarios",
        args: Some("sweep scenarios/regressions"),
        code: 0,
        shows: "scenarios passed",
    },
    Case { readme: "cargo test", args: None, code: 0, shows: "" },
    Case {
        readme: "faultline run scenarios/echo/crash-restart.toml --seed 7",
        args: Some("run scenarios/echo/crash-restart.toml --seed 7"),
        code: 0,
        shows: "verdict: PASSED",
    },
    Case {
        readme: "faultline run scenarios/echo/baseline.toml --format json",
        args: Some("run scenarios/echo/baseline.toml --format json"),
        code: 0,
        shows: "\"passed\":true",
    },
    Case {
        readme: "faultline replay scenarios/echo/crash-restart.toml --seed 7 --trace",
        args: Some("replay scenarios/echo/crash-restart.toml --seed 7 --trace"),
        code: 0,
        shows: "host.crash",
    },
    Case {
        readme: "faultline replay scenarios/echo/crash-restart.toml --seed 7 --trace-out run.jsonl",
        args: Some("replay scenarios/echo/crash-restart.toml --seed 7 --trace-out run.jsonl"),
        code: 0,
        shows: "verdict: PASSED",
    },
    Case {
        readme: "faultline replay scenarios/echo/crash-restart.toml --seed 7 --save run.json",
        args: Some("replay scenarios/echo/crash-restart.toml --seed 7 --save run.json"),
        code: 0,
        shows: "verdict: PASSED",
    },
    Case { readme: "faultline analyze run.json", args: Some("analyze run.json"), code: 0, shows: "verdict: PASSED" },
    Case {
        readme: "faultline replay scenarios/echo/crash-restart.toml --seed 7 --trace-out run.trace.json --trace-format chrome",
        args: Some("replay scenarios/echo/crash-restart.toml --seed 7 --trace-out run.trace.json --trace-format chrome"),
        code: 0,
        shows: "Chrome trace-event JSON written",
    },
    Case {
        readme: "faultline report --run scenarios/breaker/crash-restart.toml --seed 1 --out report.html",
        args: Some("report --run scenarios/breaker/crash-restart.toml --seed 1 --out report.html"),
        code: 0,
        shows: "report: written to report.html",
    },
    // 2 seeds instead of 50.
    Case {
        readme: "faultline sweep scenarios/echo --seeds 50 --report sweep.html",
        args: Some("sweep scenarios/echo --seeds 2 --report sweep.html"),
        code: 0,
        shows: "report: written to sweep.html",
    },
    // 3 seeds instead of 200.
    Case {
        readme: "faultline sweep scenarios/echo --seeds 200 --jobs 2",
        args: Some("sweep scenarios/echo --seeds 3 --jobs 2"),
        code: 0,
        shows: "9 of 9 scenarios passed",
    },
    // 2 seeds of the range instead of 100, over echo and the pinned
    // reproducers (which run their own seed alone, whatever the range).
    Case {
        readme: "faultline sweep scenarios --seed-range 1000..1100",
        args: Some("sweep scenarios/echo --seed-range 1000..1002"),
        code: 0,
        shows: "scenarios passed",
    },
    Case {
        readme: "",
        args: Some("sweep scenarios/regressions --seed-range 1000..1002"),
        code: 0,
        shows: "scenarios passed",
    },
    // One seed of each file instead of the files' own (determinism.rs and
    // CI's guard run more).
    Case {
        readme: "faultline sweep scenarios/echo --check-determinism",
        args: Some("sweep scenarios/echo --seeds 1 --check-determinism"),
        code: 0,
        shows: "determinism: every seed ran twice;",
    },
    Case { readme: "faultline check scenarios", args: Some("check scenarios"), code: 0, shows: "ok  scenarios/" },
    Case { readme: "faultline list", args: Some("list"), code: 0, shows: "systems" },
    Case { readme: "faultline schema", args: Some("schema"), code: 0, shows: "\"$schema\"" },
    // The two cheapest of the nine models (3 s of CPU in a debug build
    // instead of 100): theory.rs judges every check of every model.
    Case {
        readme: "faultline calibrate",
        args: Some("calibrate --model retries,resharding"),
        code: 0,
        shows: "| retries: mean attempts |",
    },
    // At most 10 runs of the search instead of 200.
    Case {
        readme: "faultline shrink scenarios/cache/lost-invalidation.toml --seed 1 --out shrunk.toml",
        args: Some("shrink scenarios/cache/lost-invalidation.toml --seed 1 --out shrunk.toml --max-runs 10"),
        code: 0,
        shows: "checked: running it violates",
    },
    // One seed of each file instead of the files' own.
    Case {
        readme: "faultline sweep scenarios/echo --record-regressions",
        args: Some("sweep scenarios/echo --seeds 1 --record-regressions"),
        code: 0,
        shows: "9 of 9 scenarios passed",
    },
    // One seed per case instead of six.
    Case { readme: "faultline bench", args: Some("bench --seeds 1"), code: 0, shows: "| case |" },
    Case {
        readme: "faultline lincheck examples/histories/kv.jsonl --model kv",
        args: Some("lincheck examples/histories/kv.jsonl --model kv"),
        code: 0,
        shows: "verdict: linearizable",
    },
    // The shards, resume, hunt and JUnit lines on echo with 1 seed (20 in the
    // README); the other three shards run before the merge.
    Case {
        readme: "faultline sweep scenarios --seeds 20 --shard 0/4 --out s0.jsonl",
        args: Some("sweep scenarios/echo --seeds 1 --shard 0/4 --out s0.jsonl"),
        code: 0,
        shows: "shard 0/4:",
    },
    Case {
        readme: "",
        args: Some("sweep scenarios/echo --seeds 1 --shard 1/4 --out s1.jsonl"),
        code: 0,
        shows: "shard 1/4:",
    },
    Case {
        readme: "",
        args: Some("sweep scenarios/echo --seeds 1 --shard 2/4 --out s2.jsonl"),
        code: 0,
        shows: "shard 2/4:",
    },
    Case {
        readme: "",
        args: Some("sweep scenarios/echo --seeds 1 --shard 3/4 --out s3.jsonl"),
        code: 0,
        shows: "shard 3/4:",
    },
    Case {
        readme: "faultline merge s0.jsonl s1.jsonl s2.jsonl s3.jsonl",
        args: Some("merge s0.jsonl s1.jsonl s2.jsonl s3.jsonl"),
        code: 0,
        shows: "9 of 9 scenarios passed; 9 runs merged from 4 files",
    },
    Case {
        readme: "faultline sweep scenarios --seeds 20 --out all.jsonl --resume",
        args: Some("sweep scenarios/echo --seeds 1 --out all.jsonl --resume"),
        code: 0,
        shows: "9 of 9 scenarios passed",
    },
    // One second instead of ten minutes.
    Case {
        readme: "faultline sweep scenarios --until-failure --time 10m",
        args: Some("sweep scenarios/echo --until-failure --time 1s"),
        code: 0,
        shows: "seeds/s",
    },
    Case {
        readme: "faultline sweep scenarios --seeds 20 --junit junit.xml",
        args: Some("sweep scenarios/echo --seeds 1 --junit junit.xml"),
        code: 0,
        shows: "junit: 18 test cases written to junit.xml",
    },
];

/// The commands of the README's first code block ("The two commands") and
/// of its "Everyday use" block, without their comments.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_file("README.md")).expect("README.md");
    let block = |heading: &str| -> Vec<String> {
        let start = readme.find(heading).unwrap_or_else(|| panic!("the README has {heading:?}"));
        let rest = &readme[start..];
        let open = rest.find("```sh\n").expect("a sh block") + "```sh\n".len();
        let close = rest[open..].find("```").expect("the block ends");
        rest[open..open + close]
            .lines()
            .map(|line| line.split(" #").next().unwrap_or(line).trim().to_string())
            .filter(|line| !line.is_empty())
            .collect()
    };
    let mut commands = block("## The two commands");
    commands.extend(block("## Everyday use"));
    commands
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

fn run_in(dir: &Path, args: &str) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .expect("the faultline binary runs")
}

#[test]
fn the_readme_and_this_test_list_the_same_commands() {
    let listed: Vec<&str> = CASES.iter().map(|c| c.readme).filter(|line| !line.is_empty()).collect();
    let readme = readme_commands();
    assert_eq!(readme, listed, "README.md's commands and tests/integration/readme.rs must match, in order");
}

/// The costliest commands (about half of the README's CPU time in a debug
/// build), which depend on no other: a test of their own, run beside the
/// rest rather than after it.
const ON_THEIR_OWN: &[&str] = &["bench", "calibrate", "shrink"];

fn on_their_own(args: &str) -> bool {
    ON_THEIR_OWN.iter().any(|verb| args.split_whitespace().next() == Some(*verb))
}

/// Runs the cases `chosen` picks in a scratch copy of the scenarios, in the
/// README's order, and checks that each file in `written` was written there.
fn run_cases(name: &str, chosen: fn(&str) -> bool, written: &[&str]) {
    let dir: PathBuf = std::env::temp_dir().join(format!("faultline-readme-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&root().join("scenarios"), &dir.join("scenarios"));
    copy_dir(&root().join("examples/histories"), &dir.join("examples/histories"));
    // The README's shrink writes shrunk.toml: it must not be there already.
    let mut failures = Vec::new();
    for case in CASES {
        let Some(args) = case.args.filter(|args| chosen(args)) else { continue };
        let output = run_in(&dir, args);
        let (out, err) = (stdout(&output), stderr(&output));
        if output.status.code() != Some(case.code) || !(out.contains(case.shows) || err.contains(case.shows)) {
            let tail = |text: &str| {
                text.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
            };
            // A sweep's table (every file's result) comes before its figures.
            let table = out.split("\nsystem figures").next().unwrap_or(&out);
            failures.push(format!(
                "`faultline {args}` (README: `{}`) exited {:?}, not {}, or did not show {:?}:\n{}\n{}",
                case.readme,
                output.status.code(),
                case.code,
                case.shows,
                table,
                tail(&err)
            ));
        }
    }
    // What the commands wrote is where the README says.
    for written in written {
        if !dir.join(written).is_file() {
            failures.push(format!("{written} was not written"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_readme_command_exits_as_the_readme_says() {
    run_cases("most", |args| !on_their_own(args), &["run.jsonl", "run.json", "all.jsonl", "junit.xml"]);
}

#[test]
fn the_readmes_bench_calibrate_and_shrink_exit_as_it_says() {
    run_cases("costly", on_their_own, &["shrunk.toml"]);
}
