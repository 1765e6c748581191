//! Hostile input: the shipped scenario files, mutated the way hands and
//! tools break files (a line deleted or duplicated, a value of another type,
//! two values swapped, the file cut short, unicode inserted, numbers made huge
//! or negative), 10,000 times with proptest's fixed-seed runner. The parser
//! never panics; every rejection names a position and carries a help line;
//! every accepted file loads and plans; and a sample of the accepted files,
//! shortened, runs a seed to its end without the harness failing.
//!
//! Parsing is fast (the 10,000 cases take a few seconds in a debug build);
//! running is not, so only a few dozen of the accepted mutants run.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use faultline_harness::drive::{run_plan, RunOptions};
use faultline_harness::plan::Plan;
use faultline_harness::scenario::Load;
use faultline_harness::units::{Dur, Rate};
use faultline_harness::{registry as loading, Loaded, Registry};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::support::{registry, root};

/// How many mutated files the property checks.
const CASES: u32 = 10_000;

/// How many accepted mutants run a (shortened) seed.
const RUNS: usize = 30;

/// Values of other types, for `Retype`.
const RETYPES: &[&str] = &[
    "1",
    "-1",
    "0",
    "1.5",
    "-0.0",
    "\"x\"",
    "\"\"",
    "true",
    "[]",
    "{}",
    "[1, \"a\"]",
    "\"1s\"",
    "\"-1s\"",
    "\"100/s\"",
    "\"5%\"",
    "nan",
    "inf",
    "-inf",
    "\"NaN/s\"",
    "\"inf/s\"",
    "[[\"server\"], [\"server\"]]",
    "[\"*\"]",
    "\"0s\"",
    "1979-05-27T07:32:00Z",
    "{ x = 1 }",
    "\"violation:nothing\"",
    "\"client-*\"",
];

/// Text inserted anywhere, for `Unicode`.
const INSERTS: &[&str] = &[
    "é",
    "日本",
    "\u{202e}",
    "\u{0}",
    "🦀",
    "\u{feff}",
    "\r",
    "\t",
    "\u{200d}",
    "\"",
    "'",
    "[",
    "]",
    "=",
    "#",
    "\n",
    "\\",
    "{",
    "\n[[fault]]\n",
    "\n[knobs]\n",
    "\u{7f}",
    "\u{1b}[31m",
];

/// Numbers far out of range, for `Huge`.
const HUGE: &[&str] = &[
    "9223372036854775807",
    "99999999999999999999",
    "18446744073709551616",
    "1e308",
    "1e400",
    "0",
    "340282366920938463463374607431768211456",
    "0.000000000000000000001",
];

/// A place among `n` things: a fraction of the way through, so that one
/// drawn value picks a line, a character or a pool item alike.
#[derive(Clone, Copy, Debug)]
struct Index(u64);

impl Index {
    fn index(self, n: usize) -> usize {
        assert!(n > 0, "nothing to pick from");
        ((n as u128 * u128::from(self.0)) >> 64) as usize
    }

    /// A fraction of the way through (for the tests of the mutations themselves).
    fn at(fraction: f64) -> Index {
        Index((fraction.clamp(0.0, 0.999_999) * u64::MAX as f64) as u64)
    }
}

fn index() -> impl Strategy<Value = Index> {
    any::<u64>().prop_map(Index)
}

#[derive(Clone, Debug)]
enum Mutation {
    /// Delete a line.
    Delete(Index),
    /// Duplicate a line.
    Duplicate(Index),
    /// Replace a key's value with one of another type.
    Retype(Index, Index),
    /// Swap the values of two keys.
    Swap(Index, Index),
    /// Cut the file at a character.
    Truncate(Index),
    /// Insert unicode or TOML syntax at a character.
    Insert(Index, Index),
    /// Make the first number of a key's value huge.
    Huge(Index, Index),
    /// Make the first number of a key's value negative.
    Negate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => index().prop_map(Mutation::Delete),
        1 => index().prop_map(Mutation::Duplicate),
        3 => (index(), index()).prop_map(|(l, v)| Mutation::Retype(l, v)),
        2 => (index(), index()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        1 => index().prop_map(Mutation::Truncate),
        2 => (index(), index()).prop_map(|(at, what)| Mutation::Insert(at, what)),
        2 => (index(), index()).prop_map(|(l, h)| Mutation::Huge(l, h)),
        2 => index().prop_map(Mutation::Negate),
    ]
}

/// The byte range of a `key = value` line's value (without a trailing comment).
fn value_span(line: &str) -> Option<std::ops::Range<usize>> {
    let trimmed = line.trim_start();
    if trimmed.starts_with('#') || trimmed.starts_with('[') {
        return None;
    }
    let equals = line.find('=')?;
    let key = line[..equals].trim();
    if key.is_empty() || !key.chars().all(|c| c.is_alphanumeric() || "_-.\"".contains(c)) {
        return None;
    }
    let rest = &line[equals + 1..];
    // A comment starts at a '#' outside quotes.
    let mut quoted = false;
    let mut end = rest.len();
    for (i, c) in rest.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let value = &rest[..end];
    let start = equals + 1 + (value.len() - value.trim_start().len());
    let stop = equals + 1 + value.trim_end().len();
    (start < stop).then_some(start..stop)
}

/// The first run of digits in `text`, as a byte range.
fn digits(text: &str) -> Option<std::ops::Range<usize>> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let len = text[start..].find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len() - start);
    Some(start..start + len)
}

/// Applies one mutation to `text`.
fn apply(text: &str, mutation: &Mutation) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let valued: Vec<usize> = (0..lines.len()).filter(|&i| value_span(lines[i]).is_some()).collect();
    let pick = |index: &Index| if valued.is_empty() { None } else { Some(valued[index.index(valued.len())]) };
    let replace_value = |line: usize, make: &dyn Fn(&str) -> String| -> String {
        let span = value_span(lines[line]).expect("a valued line");
        let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        let old = &lines[line][span.clone()];
        out[line].replace_range(span, &make(old));
        out.concat()
    };
    match mutation {
        Mutation::Delete(i) if !lines.is_empty() => {
            let at = i.index(lines.len());
            lines.iter().enumerate().filter(|(n, _)| *n != at).map(|(_, l)| *l).collect()
        }
        Mutation::Duplicate(i) if !lines.is_empty() => {
            let at = i.index(lines.len());
            let mut out: Vec<&str> = lines.clone();
            out.insert(at, lines[at]);
            out.concat()
        }
        Mutation::Retype(line, value) => match pick(line) {
            Some(line) => replace_value(line, &|_| RETYPES[value.index(RETYPES.len())].to_string()),
            None => text.to_string(),
        },
        Mutation::Swap(a, b) => match (pick(a), pick(b)) {
            (Some(a), Some(b)) if a != b => {
                let (va, vb) = (value_span(lines[a]).unwrap(), value_span(lines[b]).unwrap());
                let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                let (text_a, text_b) = (lines[a][va.clone()].to_string(), lines[b][vb.clone()].to_string());
                out[a].replace_range(va, &text_b);
                out[b].replace_range(vb, &text_a);
                out.concat()
            }
            _ => text.to_string(),
        },
        Mutation::Truncate(at) => {
            let chars = text.chars().count();
            text.chars().take(at.index(chars + 1)).collect()
        }
        Mutation::Insert(at, what) => {
            let chars = text.chars().count();
            let at = at.index(chars + 1);
            let mut out: String = text.chars().take(at).collect();
            out.push_str(INSERTS[what.index(INSERTS.len())]);
            out.extend(text.chars().skip(at));
            out
        }
        Mutation::Huge(line, huge) => match pick(line) {
            Some(line) => replace_value(line, &|old| match digits(old) {
                Some(range) => {
                    let mut new = old.to_string();
                    new.replace_range(range, HUGE[huge.index(HUGE.len())]);
                    new
                }
                None => HUGE[huge.index(HUGE.len())].to_string(),
            }),
            None => text.to_string(),
        },
        Mutation::Negate(line) => match pick(line) {
            Some(line) => replace_value(line, &|old| match digits(old) {
                Some(range) => format!("{}-{}", &old[..range.start], &old[range.start..]),
                None => format!("-{old}"),
            }),
            None => text.to_string(),
        },
        _ => text.to_string(),
    }
}

/// Every shipped scenario file: (path relative to the root, text).
fn shipped() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "toml") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&root().join("scenarios"), &mut paths);
    paths
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(root()).unwrap().display().to_string();
            (relative, std::fs::read_to_string(&path).unwrap())
        })
        .collect()
}

/// What one mutated file did.
enum Verdict {
    Accepted(Box<Loaded>),
    Rejected,
}

/// Parses a mutant; a panic, a rejection without a position or help, or an
/// accepted file that cannot be planned is a failure with the reason.
fn judge(file: &str, text: &str, registry: &Registry) -> Result<Verdict, String> {
    let parsed = catch_unwind(AssertUnwindSafe(|| loading::parse(file, text, registry)))
        .map_err(|panic| format!("the parser panicked: {}", faultline_harness::run::panic_message(&*panic)))?;
    match parsed {
        Err(error) => {
            let shown = error.to_string();
            if error.position.is_none() {
                return Err(format!("a rejection without a position: {shown}"));
            }
            if error.help.as_deref().is_none_or(|h| h.trim().is_empty()) {
                return Err(format!("a rejection without a help line: {shown}"));
            }
            Ok(Verdict::Rejected)
        }
        Ok(loaded) => {
            // Accepted: it plans (the planner runs nothing) and its settings print.
            catch_unwind(AssertUnwindSafe(|| {
                let plan = Plan::expand(&loaded.scenario, 1);
                let _ = faultline_harness::plan::describe(&plan);
                let _ = loaded.scenario.knob_lines();
            }))
            .map_err(|panic| {
                format!("an accepted file failed to plan: {}", faultline_harness::run::panic_message(&*panic))
            })?;
            Ok(Verdict::Accepted(Box::new(loaded)))
        }
    }
}

/// The same scenario, short and light enough to run in a test: at most 2s of
/// faults, 1s of heal, 200 requests per second and 1s deadlines.
fn shortened(loaded: &Loaded) -> Loaded {
    let mut scenario = loaded.scenario.clone();
    scenario.duration = scenario.duration.min(Dur::from_secs(2));
    scenario.heal = scenario.heal.min(Dur::from_secs(1));
    scenario.check.recover_within = Dur(scenario.heal.0 / 2);
    scenario.faults.retain(|f| f.at < scenario.duration);
    scenario.workload.deadline = scenario.workload.deadline.min(Dur::from_secs(1));
    let cap = |rate: &mut Rate| rate.per_second = rate.per_second.min(200.0);
    if let Load::Open { rate, stages, .. } = &mut scenario.workload.load {
        cap(rate);
        stages.iter_mut().for_each(|stage| cap(&mut stage.target));
    }
    loaded.with_scenario(scenario)
}

#[test]
fn mutated_scenario_files_are_rejected_with_a_position_and_help_or_load_and_run() {
    let files = shipped();
    assert!(files.len() >= 20, "the shipped scenarios are there: {}", files.len());
    let registry = registry();
    let accepted: RefCell<Vec<(String, Loaded)>> = RefCell::new(Vec::new());
    let rejected = RefCell::new(0usize);
    let config = Config { cases: CASES, failure_persistence: None, max_shrink_iters: 512, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let strategy = (index(), prop::collection::vec(mutation(), 1..=3));
    let result = runner.run(&strategy, |(file, mutations)| {
        let (name, original) = &files[file.index(files.len())];
        let text = mutations.iter().fold(original.clone(), |text, m| apply(&text, m));
        match judge(name, &text, &registry) {
            Err(reason) => Err(TestCaseError::fail(format!("{reason}\n--- {name} after {mutations:?}:\n{text}"))),
            Ok(Verdict::Rejected) => {
                *rejected.borrow_mut() += 1;
                Ok(())
            }
            Ok(Verdict::Accepted(loaded)) => {
                if text != *original {
                    accepted.borrow_mut().push((format!("{name} after {mutations:?}"), *loaded));
                }
                Ok(())
            }
        }
    });
    if let Err(error) = result {
        panic!("a mutated scenario file broke the parser's promise: {error}");
    }
    let accepted = accepted.into_inner();
    let rejected = rejected.into_inner();
    // Neither side may be vacuous: the mutations must reach both the
    // validators' errors and files that still load.
    assert!(rejected >= CASES as usize / 4, "only {rejected} of {CASES} mutants were rejected");
    assert!(accepted.len() >= CASES as usize / 20, "only {} of {CASES} mutants were accepted", accepted.len());
    eprintln!("mutants: {rejected} rejected, {} accepted and changed, of {CASES}", accepted.len());

    // A sample of the accepted ones, spread over all of them, runs a short seed.
    let step = (accepted.len() / RUNS).max(1);
    let options = RunOptions { wall_limit: Some(Duration::from_secs(60)), ..RunOptions::default() };
    let mut finished = 0;
    for (what, loaded) in accepted.iter().step_by(step).take(RUNS) {
        let short = Arc::new(shortened(loaded));
        let report = run_plan(&short, Plan::expand(&short.scenario, 1), options);
        match &report.aborted {
            // The system's own panics and turmoil's limits are the run's
            // business; the harness failing or hanging is not.
            Some(reason) => {
                assert!(!reason.contains("the harness panicked"), "{what}: {reason}");
                assert!(!reason.contains("wall-clock limit"), "{what}: {reason}");
            }
            None => finished += 1,
        }
    }
    assert!(finished >= RUNS / 2, "only {finished} of {RUNS} accepted mutants ran to their end");
}

#[test]
fn the_mutations_do_what_they_say() {
    let text = "name = \"x\" # a name\nclients = 2\n[workload]\nrate = \"5/s\"\n";
    assert_eq!(value_span("clients = 2  # two").map(|r| &"clients = 2  # two"[r]), Some("2"));
    assert_eq!(value_span("name = \"a # b\"").map(|r| &"name = \"a # b\""[r]), Some("\"a # b\""));
    assert_eq!(value_span("[workload]"), None);
    assert_eq!(digits("\"250ms\""), Some(1..4));
    let negated = apply(text, &Mutation::Negate(Index::at(0.5)));
    assert!(negated.contains("clients = -2") || negated.contains("rate = \"-5/s\""), "{negated}");
    let deleted = apply(text, &Mutation::Delete(Index::at(0.0)));
    assert!(!deleted.contains("name"), "{deleted}");
}
