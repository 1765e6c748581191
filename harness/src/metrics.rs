//! Figures of one run, computed from the recorded history only: request
//! availability (served and fresh), error rate, latency percentiles from the
//! intended start, and a time view in windows with outages, MTTR and MTBF.
//!
//! Pure functions over [`OpSample`]s; nothing here runs or reads time. The
//! definitions live in docs/metrics.md.

use std::collections::{BTreeMap, BTreeSet};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::history::{Nanos, OutcomeClass};

/// A window is up when at least this share of its requests was served correctly.
pub const WINDOW_UP_RATIO: f64 = 0.9;
/// Length of a time-availability window.
pub const WINDOW_NANOS: Nanos = 1_000_000_000;

/// What metrics need of one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpSample {
    pub kind: &'static str,
    pub intended: Nanos,
    pub completed: Nanos,
    pub class: OutcomeClass,
    /// A checker named this operation in a violation: its answer was wrong.
    pub incorrect: bool,
}

impl OpSample {
    /// Served with a correct answer (fresh or degraded).
    pub fn good(&self) -> bool {
        self.class.served() && !self.incorrect
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outage {
    pub start_ms: f64,
    pub end_ms: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub requests: u64,
    pub ok: u64,
    pub degraded: u64,
    pub failed: u64,
    pub timeout: u64,
    /// Served, but a checker found the answer wrong.
    pub incorrect: u64,
    /// Good requests (correct, fresh or degraded) / requests.
    pub availability: f64,
    /// Good fresh requests / requests.
    pub fresh_availability: f64,
    /// (failed + timed out) / requests.
    pub error_rate: f64,
    /// Latency of good requests, from intended start to answer.
    pub latency: LatencySummary,
    pub latency_by_kind: BTreeMap<String, LatencySummary>,
    pub window_ms: f64,
    /// Up windows / windows that saw requests.
    pub time_availability: f64,
    /// One character per window: '#' up, '+' up with some failures, '.' down, ' ' no requests.
    pub timeline: String,
    pub outages: Vec<Outage>,
    /// Mean outage length in ms (0 with no outage).
    pub mttr_ms: f64,
    /// Up time / outages in ms (`None` with no outage).
    pub mtbf_ms: Option<f64>,
}

impl Metrics {
    /// The value of an SLO metric (see `scenario::SLO_METRICS`), in the SLO's
    /// unit: a fraction, or seconds.
    pub fn slo_value(&self, metric: &str) -> Option<f64> {
        Some(match metric {
            "availability" => self.availability,
            "fresh_availability" => self.fresh_availability,
            "time_availability" => self.time_availability,
            "error_rate" => self.error_rate,
            "p50_latency" => self.latency.p50_ms / 1000.0,
            "p95_latency" => self.latency.p95_ms / 1000.0,
            "p99_latency" => self.latency.p99_ms / 1000.0,
            "p999_latency" => self.latency.p999_ms / 1000.0,
            "max_latency" => self.latency.max_ms / 1000.0,
            "mttr" => self.mttr_ms / 1000.0,
            _ => return None,
        })
    }
}

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

fn latency_summary(latencies: &[Nanos]) -> LatencySummary {
    if latencies.is_empty() {
        return LatencySummary::default();
    }
    // 1ns to one hour at three significant digits.
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds");
    let mut total: u128 = 0;
    for &latency in latencies {
        histogram.saturating_record(latency.max(1));
        total += u128::from(latency);
    }
    LatencySummary {
        count: latencies.len() as u64,
        mean_ms: (total as f64 / latencies.len() as f64) / 1e6,
        p50_ms: ms(histogram.value_at_quantile(0.50)),
        p95_ms: ms(histogram.value_at_quantile(0.95)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        p999_ms: ms(histogram.value_at_quantile(0.999)),
        max_ms: ms(*latencies.iter().max().expect("not empty")),
    }
}

/// Computes a run's figures. `end` is when the workload stopped issuing requests.
pub fn measure(samples: &[OpSample], end: Nanos) -> Metrics {
    let mut metrics = Metrics { requests: samples.len() as u64, window_ms: ms(WINDOW_NANOS), ..Metrics::default() };
    let mut good_latencies = Vec::new();
    let mut by_kind: BTreeMap<&str, Vec<Nanos>> = BTreeMap::new();
    for sample in samples {
        match sample.class {
            OutcomeClass::Ok => metrics.ok += 1,
            OutcomeClass::Degraded => metrics.degraded += 1,
            OutcomeClass::Failed => metrics.failed += 1,
            OutcomeClass::Timeout => metrics.timeout += 1,
        }
        if sample.class.served() && sample.incorrect {
            metrics.incorrect += 1;
        }
        if sample.good() {
            let latency = sample.completed.saturating_sub(sample.intended);
            good_latencies.push(latency);
            by_kind.entry(sample.kind).or_default().push(latency);
        }
    }
    let requests = samples.len().max(1) as f64;
    let good = good_latencies.len() as f64;
    let fresh_good = samples.iter().filter(|s| s.good() && s.class == OutcomeClass::Ok).count() as f64;
    metrics.availability = if samples.is_empty() { 1.0 } else { good / requests };
    metrics.fresh_availability = if samples.is_empty() { 1.0 } else { fresh_good / requests };
    metrics.error_rate = (metrics.failed + metrics.timeout) as f64 / requests;
    metrics.latency = latency_summary(&good_latencies);
    metrics.latency_by_kind = by_kind.into_iter().map(|(k, v)| (k.to_string(), latency_summary(&v))).collect();

    // Time view: windows of the request stream by intended start.
    let windows = end.div_ceil(WINDOW_NANOS).max(1) as usize;
    let mut totals = vec![(0u64, 0u64); windows];
    for sample in samples {
        let index = ((sample.intended / WINDOW_NANOS) as usize).min(windows - 1);
        totals[index].0 += 1;
        if sample.good() {
            totals[index].1 += 1;
        }
    }
    let mut up_windows = 0usize;
    let mut seen_windows = 0usize;
    let mut state_up = true;
    let mut outage_start: Option<usize> = None;
    let mut timeline = String::with_capacity(windows);
    for (index, &(total, good)) in totals.iter().enumerate() {
        if total == 0 {
            // No evidence: the service keeps its previous state.
            timeline.push(' ');
        } else {
            seen_windows += 1;
            let ratio = good as f64 / total as f64;
            state_up = ratio >= WINDOW_UP_RATIO;
            timeline.push(if !state_up {
                '.'
            } else if good == total {
                '#'
            } else {
                '+'
            });
            if state_up {
                up_windows += 1;
            }
        }
        match (state_up, outage_start) {
            (false, None) => outage_start = Some(index),
            (true, Some(start)) => {
                metrics.outages.push(Outage {
                    start_ms: ms(start as u64 * WINDOW_NANOS),
                    end_ms: ms(index as u64 * WINDOW_NANOS),
                });
                outage_start = None;
            }
            _ => {}
        }
    }
    if let Some(start) = outage_start {
        metrics
            .outages
            .push(Outage { start_ms: ms(start as u64 * WINDOW_NANOS), end_ms: ms(windows as u64 * WINDOW_NANOS) });
    }
    metrics.timeline = timeline;
    metrics.time_availability = if seen_windows == 0 { 1.0 } else { up_windows as f64 / seen_windows as f64 };
    if !metrics.outages.is_empty() {
        let down: f64 = metrics.outages.iter().map(|o| o.end_ms - o.start_ms).sum();
        metrics.mttr_ms = down / metrics.outages.len() as f64;
        metrics.mtbf_ms = Some((ms(windows as u64 * WINDOW_NANOS) - down) / metrics.outages.len() as f64);
    }
    metrics
}

/// Indexes of operations named by any violation.
pub fn flagged_ops<'a>(violations: impl IntoIterator<Item = &'a crate::history::Violation>) -> BTreeSet<usize> {
    violations.into_iter().flat_map(|v| v.ops.iter().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(intended_ms: u64, latency_ms: u64, class: OutcomeClass) -> OpSample {
        OpSample {
            kind: "echo",
            intended: intended_ms * 1_000_000,
            completed: (intended_ms + latency_ms) * 1_000_000,
            class,
            incorrect: false,
        }
    }

    #[test]
    fn counts_and_availability() {
        let samples = [
            sample(0, 10, OutcomeClass::Ok),
            sample(100, 20, OutcomeClass::Degraded),
            sample(200, 0, OutcomeClass::Failed),
            sample(300, 1000, OutcomeClass::Timeout),
        ];
        let m = measure(&samples, 1_000_000_000);
        assert_eq!((m.requests, m.ok, m.degraded, m.failed, m.timeout), (4, 1, 1, 1, 1));
        assert_eq!(m.availability, 0.5);
        assert_eq!(m.fresh_availability, 0.25);
        assert_eq!(m.error_rate, 0.5);
        assert_eq!(m.latency.count, 2);
        assert!((m.latency.max_ms - 20.0).abs() < 1e-9);
    }

    #[test]
    fn incorrect_answers_are_not_good() {
        let mut wrong = sample(0, 5, OutcomeClass::Ok);
        wrong.incorrect = true;
        let m = measure(&[wrong, sample(10, 5, OutcomeClass::Ok)], 1_000_000_000);
        assert_eq!(m.incorrect, 1);
        assert_eq!(m.availability, 0.5);
    }

    #[test]
    fn outages_are_maximal_down_window_runs() {
        // Ten one-second windows, ten requests each; windows 3 and 4 fail.
        let mut samples = Vec::new();
        for window in 0..10u64 {
            for i in 0..10u64 {
                let class = if (3..5).contains(&window) { OutcomeClass::Timeout } else { OutcomeClass::Ok };
                samples.push(sample(window * 1000 + i * 100, 1, class));
            }
        }
        let m = measure(&samples, 10_000_000_000);
        assert_eq!(m.timeline, "###..#####");
        assert_eq!(m.outages, vec![Outage { start_ms: 3000.0, end_ms: 5000.0 }]);
        assert_eq!(m.mttr_ms, 2000.0);
        assert_eq!(m.mtbf_ms, Some(8000.0));
        assert!((m.time_availability - 0.8).abs() < 1e-12);
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let samples: Vec<OpSample> = (1..=1000).map(|i| sample(i, i, OutcomeClass::Ok)).collect();
        let m = measure(&samples, 2_000_000_000);
        assert!((m.latency.p50_ms - 500.0).abs() < 1.0, "{}", m.latency.p50_ms);
        assert!((m.latency.p99_ms - 990.0).abs() < 1.0, "{}", m.latency.p99_ms);
        assert_eq!(m.latency.max_ms, 1000.0);
        assert_eq!(m.slo_value("p99_latency"), Some(m.latency.p99_ms / 1000.0));
    }
}
