//! The checker held against hand-written classics, a brute-force reference,
//! its own budgets, thread counts and shrinker, and the file reader.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::check::{check, CheckOptions, ModelVerdict, Verdict};
use super::file::{check_file, read_kv, read_register, report, ReportVerdict};
use super::generate::{kv_history, to_jsonl, Shape, Skew};
use super::model::{KeyValue, KvInput, Model, Register, RegisterInput as In, RegisterOutput as Out};
use super::operation::{Completion, Operation};

type RegisterOp = Operation<In, Out>;
type KvOp = Operation<KvInput, Out>;

const REGISTER: Register = Register { initial: None };

fn ok(client: u64, call: u64, ret: u64, input: In, output: Out) -> RegisterOp {
    Operation::returned(client, call, ret, input, output)
}

fn info(client: u64, call: u64, input: In) -> RegisterOp {
    Operation::indeterminate(client, call, input)
}

fn w(value: i64) -> In {
    In::Write(value)
}

fn r(value: Option<i64>) -> Out {
    Out::Read(value)
}

fn cas(old: i64, new: i64) -> In {
    In::Cas { old, new }
}

fn verdict<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> ModelVerdict<M> {
    check(model, history, &CheckOptions::default())
}

#[track_caller]
fn linearizable(history: &[RegisterOp]) {
    let found = verdict(&REGISTER, history);
    assert_eq!(found, Verdict::Linearizable, "{history:#?}");
    assert!(brute(&REGISTER, history), "the reference disagrees");
}

#[track_caller]
fn not_linearizable(history: &[RegisterOp]) {
    let found = verdict(&REGISTER, history);
    assert!(matches!(found, Verdict::NotLinearizable(_)), "{found:?} for {history:#?}");
    assert!(!brute(&REGISTER, history), "the reference disagrees");
}

// ---- the reference ----

/// Linearizable by brute force: tries every order of the operations that
/// respects real time, with each indeterminate operation either left out or
/// placed with each of its possible effects. No partitions, no memo, no
/// dropped reads: an independent implementation of the definition.
fn brute<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> bool {
    let ops: Vec<&Operation<M::Input, M::Output>> =
        history.iter().filter(|op| op.completion != Completion::Failed).collect();
    let mut placed = vec![false; ops.len()];
    fn go<M: Model>(model: &M, ops: &[&Operation<M::Input, M::Output>], placed: &mut [bool], state: &M::State) -> bool {
        let pending = |j: usize, placed: &[bool]| !placed[j] && ops[j].ret().is_some();
        if !(0..ops.len()).any(|j| pending(j, placed)) {
            return true;
        }
        for i in 0..ops.len() {
            if placed[i] {
                continue;
            }
            // `i` can come next only if nothing still unplaced had to precede it.
            if (0..ops.len()).any(|j| j != i && pending(j, placed) && ops[j].ret().is_some_and(|ret| ret < ops[i].call))
            {
                continue;
            }
            let nexts: Vec<M::State> = match ops[i].output() {
                Some(output) => model.step(state, &ops[i].input, output).into_iter().collect(),
                None => model.step_indeterminate(state, &ops[i].input),
            };
            for next in nexts {
                placed[i] = true;
                let found = go(model, ops, placed, &next);
                placed[i] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }
    go(model, &ops, &mut placed, &model.init())
}

/// The key-value map as one whole state, unpartitioned: the reference for
/// [`KeyValue`], which relies on partitioning.
struct WholeMap;

impl Model for WholeMap {
    type Key = ();
    type State = BTreeMap<String, i64>;
    type Input = KvInput;
    type Output = Out;

    fn name(&self) -> &'static str {
        "whole map"
    }

    fn init(&self) -> Self::State {
        BTreeMap::new()
    }

    fn step(&self, state: &Self::State, input: &KvInput, output: &Out) -> Option<Self::State> {
        let value = REGISTER.step(&state.get(&input.key).copied(), &input.op, output)?;
        Some(with(state, &input.key, value))
    }

    fn step_indeterminate(&self, state: &Self::State, input: &KvInput) -> Vec<Self::State> {
        let values = REGISTER.step_indeterminate(&state.get(&input.key).copied(), &input.op);
        values.into_iter().map(|value| with(state, &input.key, value)).collect()
    }

    fn is_read_only(&self, input: &KvInput) -> bool {
        input.op == In::Read
    }

    fn partition(&self, _input: &KvInput) {}

    fn describe(&self, input: &KvInput, output: Option<&Out>) -> String {
        KeyValue.describe(input, output)
    }
}

fn with(state: &BTreeMap<String, i64>, key: &str, value: Option<i64>) -> BTreeMap<String, i64> {
    let mut next = state.clone();
    match value {
        Some(value) => next.insert(key.to_string(), value),
        None => next.remove(key),
    };
    next
}

// ---- the classics, on a register ----

#[test]
fn register_sequential_and_overlapping_histories_pass() {
    linearizable(&[]);
    linearizable(&[ok(0, 0, 1, w(1), Out::Write), ok(0, 2, 3, In::Read, r(Some(1)))]);
    linearizable(&[ok(0, 0, 1, In::Read, r(None))]);
    // A read overlapping a write may see either value.
    linearizable(&[ok(0, 0, 1, w(1), Out::Write), ok(1, 5, 20, w(2), Out::Write), ok(2, 6, 8, In::Read, r(Some(1)))]);
    linearizable(&[ok(0, 0, 1, w(1), Out::Write), ok(1, 5, 20, w(2), Out::Write), ok(2, 6, 8, In::Read, r(Some(2)))]);
    // Old then new while the write is in flight: fine.
    linearizable(&[
        ok(0, 0, 1, w(1), Out::Write),
        ok(1, 20, 60, w(2), Out::Write),
        ok(2, 25, 30, In::Read, r(Some(1))),
        ok(3, 35, 40, In::Read, r(Some(2))),
    ]);
}

#[test]
fn register_read_of_a_value_before_its_write_began_fails() {
    not_linearizable(&[ok(0, 10, 20, w(1), Out::Write), ok(1, 0, 5, In::Read, r(Some(1)))]);
}

#[test]
fn register_new_old_inversion_fails() {
    // Two reads, one after the other, see the new value and then the old.
    not_linearizable(&[
        ok(0, 0, 10, w(1), Out::Write),
        ok(1, 20, 60, w(2), Out::Write),
        ok(2, 25, 30, In::Read, r(Some(2))),
        ok(3, 35, 40, In::Read, r(Some(1))),
    ]);
}

#[test]
fn register_cas_succeeding_twice_from_one_value_fails() {
    let history = [
        ok(0, 0, 5, w(1), Out::Write),
        ok(1, 10, 20, cas(1, 2), Out::Cas(true)),
        ok(2, 12, 22, cas(1, 3), Out::Cas(true)),
    ];
    not_linearizable(&history);
    // One success and one definite mismatch is fine, in either order of calls.
    linearizable(&[history[0].clone(), history[1].clone(), ok(2, 12, 22, cas(1, 3), Out::Cas(false))]);
}

#[test]
fn indeterminate_writes_explain_an_otherwise_impossible_read() {
    let history = [ok(0, 0, 5, w(1), Out::Write), info(1, 10, w(2)), ok(2, 50, 60, In::Read, r(Some(2)))];
    linearizable(&history);
    // Without the timed-out write, nothing wrote 2.
    not_linearizable(&[history[0].clone(), history[2].clone()]);
    // It may take effect long after its client gave up, even after later writes.
    linearizable(&[
        info(1, 0, w(2)),
        ok(0, 10, 15, w(1), Out::Write),
        ok(2, 20, 25, In::Read, r(Some(1))),
        ok(2, 30, 35, In::Read, r(Some(2))),
    ]);
    // But not before its call.
    not_linearizable(&[ok(2, 0, 5, In::Read, r(Some(2))), info(1, 10, w(2))]);
    // An indeterminate cas that matched may have written.
    linearizable(&[ok(0, 0, 5, w(1), Out::Write), info(1, 10, cas(1, 7)), ok(2, 50, 60, In::Read, r(Some(7)))]);
    not_linearizable(&[ok(0, 0, 5, w(1), Out::Write), info(1, 10, cas(3, 7)), ok(2, 50, 60, In::Read, r(Some(7)))]);
}

#[test]
fn a_timed_out_read_is_dropped_and_failed_operations_removed() {
    let history = [ok(0, 0, 5, w(1), Out::Write), info(1, 10, In::Read), ok(2, 20, 30, In::Read, r(Some(1)))];
    linearizable(&history);
    let report = report(&REGISTER, "test", &history, &CheckOptions::default());
    assert_eq!((report.prepared.indeterminate, report.prepared.indeterminate_reads_dropped), (1, 1));
    // A failed write did not happen: reading its value is a violation.
    let failed = Operation { client: 1, call: 0, input: w(5), completion: Completion::Failed };
    not_linearizable(&[failed, ok(0, 10, 20, In::Read, r(Some(5)))]);
}

#[test]
fn the_register_can_start_at_a_value() {
    let history = [ok(0, 0, 5, In::Read, r(Some(7)))];
    assert!(matches!(verdict(&REGISTER, &history), Verdict::NotLinearizable(_)));
    assert_eq!(verdict(&Register { initial: Some(7) }, &history), Verdict::Linearizable);
}

// ---- the key-value model ----

fn kv(client: u64, call: u64, ret: u64, key: &str, input: In, output: Out) -> KvOp {
    Operation::returned(client, call, ret, KvInput { key: key.into(), op: input }, output)
}

#[test]
fn kv_keys_are_independent_and_the_failing_key_is_named() {
    let history = vec![
        kv(0, 0, 10, "a", w(1), Out::Write),
        kv(1, 0, 10, "b", w(1), Out::Write),
        // A read of key a cannot see b's later write.
        kv(2, 20, 30, "a", In::Read, r(Some(1))),
        kv(3, 20, 30, "b", w(2), Out::Write),
        kv(4, 40, 50, "b", In::Read, r(Some(1))),
    ];
    let Verdict::NotLinearizable(violation) = verdict(&KeyValue, &history) else { panic!("b reads a stale 1") };
    assert_eq!(violation.key, "b");
    assert_eq!(violation.partition_operations, 3);
    assert!(!brute(&WholeMap, &history));
    let fixed: Vec<KvOp> = history[..4].to_vec();
    assert_eq!(verdict(&KeyValue, &fixed), Verdict::Linearizable);
    assert!(brute(&WholeMap, &fixed));
    // The same value on two keys does not cross over.
    let crossed = [kv(0, 0, 10, "a", w(1), Out::Write), kv(1, 20, 30, "b", In::Read, r(Some(1)))];
    assert!(matches!(verdict(&KeyValue, &crossed), Verdict::NotLinearizable(_)));
}

#[test]
fn kv_cas_twice_and_indeterminate_puts() {
    let history = [
        kv(0, 0, 5, "x", w(1), Out::Write),
        kv(1, 10, 20, "x", cas(1, 2), Out::Cas(true)),
        kv(2, 12, 22, "x", cas(1, 3), Out::Cas(true)),
    ];
    assert!(matches!(verdict(&KeyValue, &history), Verdict::NotLinearizable(_)));
    let put = Operation::indeterminate(1, 10, KvInput { key: "y".into(), op: w(4) });
    let history = [put, kv(2, 50, 60, "y", In::Read, r(Some(4))), kv(2, 70, 80, "x", In::Read, r(None))];
    assert_eq!(verdict(&KeyValue, &history), Verdict::Linearizable);
}

// ---- against the reference ----

/// A small generated history (one real sequential execution, so
/// linearizable) with up to two corruptions: a read's value, a cas's answer,
/// a write made indeterminate or failed.
fn small_history(seed: u64, ops: usize, clients: usize, keys: usize, share: f64, corruptions: usize) -> Vec<KvOp> {
    let shape = Shape { keys, skew: Skew::Uniform, clients, ops, indeterminate_share: share, violation: false, seed };
    let mut history = kv_history(&shape).ops;
    let mut bits = seed.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = |bound: usize| {
        bits ^= bits << 13;
        bits ^= bits >> 7;
        bits ^= bits << 17;
        (bits % bound as u64) as usize
    };
    for _ in 0..corruptions {
        let index = next(history.len());
        let op = &mut history[index];
        let Completion::Returned { ret, output } = &op.completion else { continue };
        let ret = *ret;
        op.completion = match (op.input.op, output) {
            (In::Read, _) => {
                let value = next(4);
                Completion::Returned { ret, output: r((value > 0).then_some(value as i64)) }
            }
            (In::Cas { .. }, Out::Cas(matched)) => Completion::Returned { ret, output: Out::Cas(!matched) },
            _ if next(2) == 0 => Completion::Indeterminate,
            _ => Completion::Failed,
        };
    }
    history
}

fn register_of(history: &[KvOp]) -> Vec<RegisterOp> {
    history
        .iter()
        .map(|op| Operation { client: op.client, call: op.call, input: op.input.op, completion: op.completion.clone() })
        .collect()
}

/// A runner with a fixed seed, like every other test here: the same cases
/// in every run (and faultline's builds refuse OS randomness, which a
/// randomly seeded runner would ask for: .cargo/config.toml).
fn runner(cases: u32) -> TestRunner {
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 256, ..Config::default() };
    let rng = proptest::test_runner::TestRng::deterministic_rng(config.rng_algorithm);
    TestRunner::new_with_rng(config, rng)
}

fn small_histories() -> impl Strategy<Value = (u64, usize, usize, usize, f64, usize)> {
    (any::<u64>(), 1usize..=7, 1usize..=3, 1usize..=2, prop_oneof![Just(0.0), 0.0..0.4], 0usize..=2)
}

#[test]
fn register_verdicts_agree_with_brute_force() {
    let (passes, failures) = (Cell::new(0), Cell::new(0));
    runner(2_000)
        .run(&small_histories(), |(seed, ops, clients, _, share, corruptions)| {
            let history = register_of(&small_history(seed, ops, clients, 1, share, corruptions));
            let expected = brute(&REGISTER, &history);
            let found = verdict(&REGISTER, &history);
            prop_assert!(!matches!(found, Verdict::Unknown { .. }), "{found:?}");
            prop_assert_eq!(found.is_linearizable(), expected, "{:#?}", history);
            let counter = if expected { &passes } else { &failures };
            counter.set(counter.get() + 1);
            Ok(())
        })
        .unwrap();
    // Both verdicts are common, so the agreement means something.
    assert!(passes.get() > 500 && failures.get() > 500, "{} passed, {} failed", passes.get(), failures.get());
}

#[test]
fn kv_verdicts_agree_with_brute_force_on_the_whole_map() {
    let (passes, failures) = (Cell::new(0), Cell::new(0));
    runner(1_000)
        .run(&small_histories(), |(seed, ops, clients, keys, share, corruptions)| {
            let history = small_history(seed, ops, clients, keys, share, corruptions);
            let expected = brute(&WholeMap, &history);
            let found = verdict(&KeyValue, &history);
            prop_assert_eq!(found.is_linearizable(), expected, "{:#?}", history);
            let counter = if expected { &passes } else { &failures };
            counter.set(counter.get() + 1);
            Ok(())
        })
        .unwrap();
    assert!(passes.get() > 250 && failures.get() > 250, "{} passed, {} failed", passes.get(), failures.get());
}

// ---- budgets, threads, the shrinker ----

#[test]
fn an_exploding_history_ends_unknown_within_its_budget() {
    // 40 concurrent timed-out writes, and reads that no subset of them
    // explains: every subset is a configuration to rule out.
    let mut history: Vec<RegisterOp> = (0..40).map(|i| info(i, i, w(i as i64))).collect();
    history.push(ok(100, 50, 60, In::Read, r(Some(3))));
    history.push(ok(100, 70, 80, In::Read, r(Some(5))));
    history.push(ok(100, 90, 95, In::Read, r(Some(3))));
    history.push(ok(100, 96, 99, In::Read, r(Some(-1))));
    let options = CheckOptions { steps_max: 50_000, ..CheckOptions::default() };
    let found = check(&REGISTER, &history, &options);
    let Verdict::Unknown { reason } = found else { panic!("expected unknown, found {found:?}") };
    assert!(reason.contains("50000 steps"), "{reason}");
    // And the wall clock is a budget too.
    let options = CheckOptions { wall_max: Duration::from_millis(30), ..CheckOptions::default() };
    let Verdict::Unknown { reason } = check(&REGISTER, &history, &options) else { panic!("expected unknown") };
    assert!(reason.contains("wall-clock"), "{reason}");
}

/// A history of keys k0..k7 where k2, k4 and k7 read a value never written.
fn several_violations() -> Vec<KvOp> {
    let shape = Shape {
        keys: 8,
        skew: Skew::Uniform,
        clients: 6,
        ops: 400,
        indeterminate_share: 0.05,
        violation: false,
        seed: 9,
    };
    let mut history = kv_history(&shape).ops;
    for key in ["k7", "k4", "k2"] {
        let index = history
            .iter()
            .rposition(|op| op.input.key == key && op.input.op == In::Read && op.ret().is_some())
            .expect("a read of each key");
        let ret = history[index].ret().unwrap();
        history[index].completion = Completion::Returned { ret, output: r(Some(-5)) };
    }
    history
}

#[test]
fn the_reported_key_does_not_depend_on_threads() {
    let history = several_violations();
    for threads in [1, 4, 1, 4, 3] {
        let options = CheckOptions { threads, ..CheckOptions::default() };
        let Verdict::NotLinearizable(violation) = check(&KeyValue, &history, &options) else { panic!("violations") };
        assert_eq!(violation.key, "k2", "with {threads} threads");
    }
    let one = check(&KeyValue, &history, &CheckOptions::default());
    let four = check(&KeyValue, &history, &CheckOptions { threads: 4, ..CheckOptions::default() });
    assert_eq!(one, four, "the whole verdict, slice and prefix included");
}

#[test]
fn the_slice_fails_and_the_prefix_passes() {
    for seed in 1..=6 {
        let shape = Shape {
            keys: 3,
            skew: Skew::Zipf(1.0),
            clients: 5,
            ops: 300,
            indeterminate_share: 0.05 * (seed % 3) as f64,
            violation: true,
            seed,
        };
        let generated = kv_history(&shape);
        let planted = &generated.ops[generated.planted.expect("planted")];
        let Verdict::NotLinearizable(violation) = verdict(&KeyValue, &generated.ops) else { panic!("seed {seed}") };
        assert_eq!(violation.key, planted.input.key, "seed {seed}");
        assert!(violation.shrink_incomplete.is_none(), "seed {seed}: {:?}", violation.shrink_incomplete);
        assert!(!violation.slice.is_empty() && violation.slice.len() <= violation.partition_operations);
        assert!(violation.slice.len() <= 4, "seed {seed}: a stale read needs few operations: {:#?}", violation.slice);
        assert!(violation.slice.contains(planted), "seed {seed}: the slice keeps the corrupted read");
        assert!(violation.slice_from_any_state, "seed {seed}");
        assert!(matches!(verdict(&KeyValue, &violation.slice), Verdict::NotLinearizable(_)), "seed {seed}");
        assert_eq!(verdict(&KeyValue, &violation.prefix), Verdict::Linearizable, "seed {seed}");
        assert!(violation.prefix.len() < violation.partition_operations);
    }
}

#[test]
fn a_stale_read_shrinks_to_the_write_it_missed() {
    let history = [ok(0, 0, 5, w(1), Out::Write), ok(1, 10, 20, w(2), Out::Write), ok(0, 30, 40, In::Read, r(Some(1)))];
    let Verdict::NotLinearizable(violation) = verdict(&REGISTER, &history) else { panic!("1 was overwritten") };
    // From any initial value: a completed write of 2, then a read of 1.
    assert_eq!(violation.slice, history[1..].to_vec());
    assert!(violation.slice_from_any_state);
    assert_eq!(violation.prefix, history[..2].to_vec());
    assert_eq!(violation.next_operation.as_ref(), Some(&history[2]));
}

#[test]
fn a_read_of_a_value_nobody_wrote_shrinks_to_itself() {
    let history = [ok(0, 0, 5, In::Read, r(Some(9))), ok(1, 10, 20, w(2), Out::Write)];
    let Verdict::NotLinearizable(violation) = verdict(&REGISTER, &history) else { panic!("9 was never written") };
    assert_eq!(violation.slice, vec![history[0].clone()]);
    assert!(!violation.slice_from_any_state, "from 9, it would pass");
    assert!(violation.prefix.is_empty());
    assert_eq!(violation.next_operation.as_ref(), Some(&history[0]));
}

// ---- files ----

const GOOD: &str = r#"{"process":0,"type":"invoke","f":"write","value":1,"time":0}
{"process":0,"type":"ok","f":"write","value":1,"time":5}
{"process":"nemesis","type":"info","f":"start","value":null,"time":6}

{"process":1,"type":"invoke","f":"cas","value":[1,2],"time":10}
{"process":2,"type":"invoke","f":"read","value":null,"time":11}
{"process":1,"type":"fail","f":"cas","value":[1,2],"time":12}
{"process":2,"type":"ok","f":"read","value":1,"time":14}
{"process":3,"type":"invoke","f":"write","value":7,"time":20}
{"process":3,"type":"info","f":"write","value":7,"time":30}
{"process":4,"type":"invoke","f":"read","value":null,"time":40}
{"process":4,"type":"ok","f":"read","value":7,"time":45}
{"process":5,"type":"invoke","f":"read","time":50}
"#;

#[test]
fn a_good_register_file_reads_and_checks() {
    let history = read_register("h.jsonl", GOOD).unwrap();
    assert_eq!(history.len(), 6);
    assert_eq!(history[0], ok(0, 0, 5, w(1), Out::Write));
    assert_eq!(history[1].completion, Completion::Failed);
    assert_eq!(history[2], ok(2, 11, 14, In::Read, r(Some(1))));
    assert_eq!(history[3], info(3, 20, w(7)));
    assert_eq!(history[5], info(5, 50, In::Read), "an invoke open at the end is indeterminate");
    assert_eq!(verdict(&REGISTER, &history), Verdict::Linearizable);

    let dir = std::env::temp_dir().join(format!("faultline-lin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("good.jsonl");
    std::fs::write(&path, GOOD).unwrap();
    let report = check_file(&path, "register", &CheckOptions::default()).unwrap();
    assert!(report.is_linearizable());
    assert!(report.render().contains("6 operations, 1 failed (removed), 2 indeterminate (1 of them reads, dropped)"));
    let bad = GOOD.replace(r#""value":7,"time":45"#, r#""value":8,"time":45"#);
    std::fs::write(&path, bad).unwrap();
    let report = check_file(&path, "register", &CheckOptions::default()).unwrap();
    let text = report.render();
    assert!(matches!(report.verdict, ReportVerdict::NotLinearizable { .. }), "{text}");
    assert!(text.contains("verdict: not linearizable: the register"), "{text}");
    let error = check_file(&path, "regster", &CheckOptions::default()).unwrap_err();
    assert!(error.to_string().contains("unknown model \"regster\""), "{error}");
    let error = check_file(&dir.join("missing.jsonl"), "kv", &CheckOptions::default()).unwrap_err();
    assert!(error.to_string().contains("cannot read the history"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[track_caller]
fn file_error(text: &str, expected: &str) {
    let error = read_kv("h.jsonl", text).map(|_| ()).unwrap_err().to_string();
    assert!(error.starts_with(expected), "expected {expected:?}, got {error:?}");
}

#[test]
fn bad_files_name_the_line_column_and_what_was_expected() {
    let first = r#"{"process":0,"type":"invoke","f":"read","key":"x","time":1}"#;
    file_error(&format!("{first}\n{{\"process\":0,\"type\":\"ok\",\n"), "h.jsonl:2:25: bad JSON");
    file_error(
        &format!("{first}\n{{\"process\":0, \"type\":\"done\",\"f\":\"read\",\"time\":2}}\n"),
        "h.jsonl:2:22: unknown type \"done\"",
    );
    file_error(
        r#"{"process":3,"type":"ok","f":"read","key":"x","value":1,"time":2}"#,
        "h.jsonl:1:21: ok for process 3 without an invoke",
    );
    file_error(
        &format!("{first}\n{}\n", r#"{"process":0,"type":"invoke","f":"read","key":"x","time":2}"#),
        "h.jsonl:2:12: process 0 invoked again before its read at line 1 completed",
    );
    file_error(
        &format!("{first}\n{}\n", r#"{"process":0,"type":"ok","f":"write","key":"x","time":2}"#),
        "h.jsonl:2:30: f \"write\" does not match the invoke of process 0 at line 1 (\"read\")",
    );
    file_error(
        &format!("{first}\n{}\n", r#"{"process":0,"type":"ok","f":"read","key":"x","value":"one","time":2}"#),
        "h.jsonl:2:55: expected the integer read (or null), found \"one\"",
    );
    file_error(
        r#"{"process":0,"type":"invoke","f":"write","key":"x","value":[1],"time":2}"#,
        "h.jsonl:1:60: expected the integer to write, found [1]",
    );
    file_error(r#"{"process":0,"type":"invoke","f":"read","time":2}"#, "h.jsonl:1:1: missing \"key\"");
    file_error(r#"{"process":0,"type":"invoke","f":"incr","key":"x","time":2}"#, "h.jsonl:1:34: unknown f \"incr\"");
    file_error(
        &format!("{first}\n{}\n", r#"{"process":0,"type":"ok","f":"read","key":"x","value":1}"#),
        "h.jsonl:2:1: missing \"time\", which line 1 has",
    );
    file_error(
        &format!("{first}\n{}\n", r#"{"process":0,"type":"ok","f":"read","key":"x","value":1,"time":0}"#),
        "h.jsonl:2:64: completion at time 0, before its invoke at time 1",
    );
    file_error("[1, 2]\n", "h.jsonl:1:1: expected a JSON object");
    let error = read_register("h.jsonl", first).unwrap_err();
    assert_eq!(
        error.to_string(),
        "h.jsonl:1:47: the register model takes no \"key\"\n  help: check the file with the kv model"
    );
}

#[test]
fn generated_histories_survive_the_file_format() {
    for (seed, violation) in [(1, false), (2, true), (3, true)] {
        let shape =
            Shape { keys: 4, skew: Skew::Zipf(1.0), clients: 5, ops: 300, indeterminate_share: 0.1, violation, seed };
        let history = kv_history(&shape).ops;
        let read = read_kv("generated.jsonl", &to_jsonl(&history)).unwrap();
        assert_eq!(read.len(), history.len());
        let direct = verdict(&KeyValue, &history);
        let via_file = verdict(&KeyValue, &read);
        assert_eq!(direct.is_linearizable(), !violation, "seed {seed}");
        assert_eq!(via_file.is_linearizable(), !violation, "seed {seed}");
        if let (Some(a), Some(b)) = (direct.violation(), via_file.violation()) {
            assert_eq!(a.key, b.key);
        }
    }
}

#[test]
fn generated_linearizable_histories_pass() {
    for seed in 1..=5 {
        let shape = Shape {
            keys: 10,
            skew: Skew::Zipf(1.0),
            clients: 8,
            ops: 1_000,
            indeterminate_share: 0.05,
            violation: false,
            seed,
        };
        assert_eq!(verdict(&KeyValue, &kv_history(&shape).ops), Verdict::Linearizable, "seed {seed}");
    }
}

/// The speed table (docs/linearizability.md), printed when asked:
/// `FAULTLINE_LIN_BENCH=1 cargo test --release -p faultline-harness --lib linearizability::tests::speed -- --nocapture`
#[test]
fn speed_table_when_asked() {
    if std::env::var("FAULTLINE_LIN_BENCH").as_deref() != Ok("1") {
        return;
    }
    for threads in [1, 2] {
        let options = CheckOptions { threads, ..CheckOptions::default() };
        println!("{}", super::speed::render_table(&super::speed::speed_table(&options)));
    }
}
