//! The checker's speed table: generated histories of stated shapes, checked
//! side by side in one process (so that ratios hold on a shared machine),
//! with the wall time of each check. docs/linearizability.md keeps the
//! table; a benchmark command or a test prints it.
//!
//! This is the one place in the module that times things for their own
//! sake; generation is not timed, checking (and explaining a violation) is.

use std::fmt::Write;
use std::time::{Duration, Instant};

use super::check::{check, CheckOptions, Verdict};
use super::generate::{kv_history, Shape, Skew};
use super::model::KeyValue;

/// One row: a shape, its verdict and how long the check took.
#[derive(Clone, Debug)]
pub struct SpeedRow {
    /// The row's label ("10k ops, planted violation").
    pub name: String,
    /// The shape of the generated history.
    pub shape: Shape,
    /// Threads the check searched with ([`CheckOptions::threads`]).
    pub threads: usize,
    /// "linearizable", "not linearizable (k3)" or "unknown: ...".
    pub verdict: String,
    /// Checks timed (small histories are checked repeatedly).
    pub runs: usize,
    /// The median wall time of one check, in milliseconds.
    pub millis: f64,
}

fn shape(keys: usize, skew: Skew, clients: usize, ops: usize, indeterminate_share: f64, violation: bool) -> Shape {
    Shape { keys, skew, clients, ops, indeterminate_share, violation, seed: 1 }
}

/// The shapes of the table, by section.
pub fn shapes() -> Vec<(String, Shape)> {
    let mut rows = vec![
        ("Porcupine's kv size".to_string(), shape(10, Skew::Uniform, 10, 340, 0.0, false)),
        ("10k ops".to_string(), shape(100, Skew::Zipf(1.0), 20, 10_000, 0.05, false)),
        ("10k ops, planted violation".to_string(), shape(100, Skew::Zipf(1.0), 20, 10_000, 0.05, true)),
        ("100k ops".to_string(), shape(1_000, Skew::Zipf(1.0), 50, 100_000, 0.05, false)),
        ("100k ops, planted violation".to_string(), shape(1_000, Skew::Zipf(1.0), 50, 100_000, 0.05, true)),
    ];
    for clients in [2, 4, 8, 16, 32] {
        rows.push((format!("one key, {clients} clients"), shape(1, Skew::Uniform, clients, 2_000, 0.0, false)));
    }
    for clients in [2, 4, 8, 16] {
        let name = format!("one key, {clients} clients, planted violation");
        rows.push((name, shape(1, Skew::Uniform, clients, 2_000, 0.0, true)));
    }
    for share in [0.0, 0.01, 0.02, 0.05, 0.1, 0.2] {
        let name = format!("one key, 8 clients, {}% indeterminate", share * 100.0);
        rows.push((name, shape(1, Skew::Uniform, 8, 2_000, share, false)));
    }
    for share in [0.01, 0.05] {
        let name = format!("one key, 8 clients, {}% indeterminate, planted violation", share * 100.0);
        rows.push((name, shape(1, Skew::Uniform, 8, 2_000, share, true)));
    }
    rows
}

/// Checks every shape of [`shapes`] with `options` and returns the rows.
/// A check faster than 50 ms is repeated (up to about 300 ms) and the median
/// kept.
pub fn speed_table(options: &CheckOptions) -> Vec<SpeedRow> {
    shapes()
        .into_iter()
        .map(|(name, shape)| {
            let history = kv_history(&shape).ops;
            let mut times: Vec<Duration> = Vec::new();
            let mut verdict = String::new();
            let mut total = Duration::ZERO;
            while times.is_empty() || (total < Duration::from_millis(300) && times[0] < Duration::from_millis(50)) {
                let started = wall_clock();
                let result = check(&KeyValue, &history, options);
                let elapsed = wall_clock().duration_since(started);
                verdict = match result {
                    Verdict::Linearizable => "linearizable".to_string(),
                    Verdict::NotLinearizable(violation) => {
                        format!("not linearizable ({}, slice of {})", violation.key, violation.slice.len())
                    }
                    Verdict::Unknown { reason } => format!("unknown: {reason}"),
                };
                times.push(elapsed);
                total += elapsed;
            }
            times.sort();
            let millis = times[times.len() / 2].as_secs_f64() * 1e3;
            SpeedRow { name, shape, threads: options.threads, verdict, runs: times.len(), millis }
        })
        .collect()
}

/// The benchmark's own clock: real time, outside any simulation.
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> Instant {
    Instant::now()
}

/// The rows as a Markdown table.
pub fn render_table(rows: &[SpeedRow]) -> String {
    let mut out = String::new();
    out.push_str("| history | ops | keys (skew) | clients | indeterminate | threads | verdict | time |\n");
    out.push_str("|---|---:|---|---:|---:|---:|---|---:|\n");
    for row in rows {
        let skew = match row.shape.skew {
            Skew::Uniform => "uniform".to_string(),
            Skew::Zipf(exponent) => format!("zipf {exponent}"),
        };
        let time = if row.millis < 10.0 { format!("{:.3} ms", row.millis) } else { format!("{:.0} ms", row.millis) };
        let _ = writeln!(
            out,
            "| {} | {} | {} ({skew}) | {} | {}% | {} | {} | {time} |",
            row.name,
            row.shape.ops,
            row.shape.keys,
            row.shape.clients,
            row.shape.indeterminate_share * 100.0,
            row.threads,
            row.verdict
        );
    }
    out
}
