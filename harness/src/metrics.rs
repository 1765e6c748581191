//! Figures of one run, computed after it from what was recorded: request
//! availability (served and fresh), error rate, latency from the intended
//! start, a time view (up and down intervals, from the health probe or from
//! windows of the request stream) with outages, MTTR and MTBF, MTTD from the
//! system's detection events, time to recover after each fault, and the
//! Little's-law figures (throughput, time in system, number in flight).
//!
//! Pure functions over plain data; nothing here runs or reads a clock. The
//! definitions live in docs/metrics.md, and tests/integration/theory.rs
//! holds them against closed-form results.

use std::collections::{BTreeMap, BTreeSet};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::history::{Nanos, OutcomeClass, ProbeSample, Violation};

/// What metrics need of one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpSample {
    /// The operation's kind (`System::op_kind`), for per-kind latency.
    pub kind: &'static str,
    /// The client that sent it: `n` for `client-n`.
    pub client: u32,
    /// When it was meant to start; latency counts from here.
    pub intended: Nanos,
    /// When it was answered, or its deadline passed.
    pub completed: Nanos,
    /// The client's requests in flight when this one was sent.
    pub outstanding: u32,
    /// How it ended.
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

/// A fault's start and end, for MTTD and time to recover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultSpan {
    /// When the fault started.
    pub start: Nanos,
    /// When it ended (its end time, or the heal phase).
    pub end: Nanos,
}

/// Everything one run's figures are computed from.
pub struct MeasureInput<'a> {
    /// Every client operation, in history order.
    pub samples: &'a [OpSample],
    /// The health probe's samples, when the system has a probe.
    pub probes: Option<&'a [ProbeSample]>,
    /// The plan's faults that last a while (restarts, which are instants,
    /// are left out).
    pub faults: &'a [FaultSpan],
    /// Times of the system's detection events, sorted.
    pub detections: &'a [Nanos],
    /// When the workload stopped issuing requests.
    pub end: Nanos,
    /// Request-stream window width (used without a probe).
    pub window: Nanos,
    /// A request-stream window is up when at least this share is good.
    pub up_ratio: f64,
    /// Consecutive probes that must disagree with the state to change it.
    pub probe_threshold: usize,
}

/// The distribution of a set of latencies, in milliseconds; every figure is 0
/// for an empty set. Quantiles come from a histogram at three significant
/// digits; the mean and the maximum are exact.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// How many latencies were summarised.
    pub count: u64,
    /// Their mean, in ms.
    pub mean_ms: f64,
    /// The median, in ms.
    pub p50_ms: f64,
    /// The 95th percentile, in ms.
    pub p95_ms: f64,
    /// The 99th percentile, in ms.
    pub p99_ms: f64,
    /// The 99.9th percentile, in ms.
    pub p999_ms: f64,
    /// The largest, in ms.
    pub max_ms: f64,
}

/// One stretch of time the service was down, by the time view (the probe,
/// or request windows).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outage {
    /// When it began, since the start of the run, in ms.
    pub start_ms: f64,
    /// When it ended, since the start of the run, in ms (the run's end for an
    /// outage that never ended).
    pub end_ms: f64,
}

/// The figures of one run; docs/metrics.md defines each. Request figures
/// count every client operation; the time view comes from the probe or from
/// request windows (`time_source`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Client operations sent.
    pub requests: u64,
    /// Operations answered fresh, right or wrong.
    pub ok: u64,
    /// Operations answered with a fallback, right or wrong.
    pub degraded: u64,
    /// Operations that failed (an error from the system or the transport).
    pub failed: u64,
    /// Operations not answered by their deadline.
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
    /// Latency of good requests by operation kind (`System::op_kind`).
    pub latency_by_kind: BTreeMap<String, LatencySummary>,
    /// Requests per second of simulated time.
    pub throughput_per_s: f64,
    /// Mean time in system of every request (good or not), intended start to end, in ms.
    pub time_in_system_mean_ms: f64,
    /// Mean number of requests in flight, as Poisson arrivals see it (PASTA).
    pub in_flight_mean: f64,
    /// "probe" or "windows": where the time view comes from.
    pub time_source: String,
    /// With a probe: consecutive probes that had to disagree to change the
    /// state (`[metrics] probe_threshold`, raised to cover a round trip).
    pub probe_threshold: u64,
    /// With a probe: mean round trip of the probes that were answered, in ms
    /// (the network's share of a request's time in system, for a cheap probe).
    pub probe_round_trip_ms: Option<f64>,
    /// Up time / run time.
    pub time_availability: f64,
    /// -log10(1 - time availability); `None` when it is 1.
    pub nines: Option<f64>,
    /// One character per second: '#' up, '.' down, '+' both in that second
    /// (with windows: up but with some failures), ' ' no requests (windows).
    pub timeline: String,
    /// The down intervals of the time view, in time order.
    pub outages: Vec<Outage>,
    /// Mean outage length in ms (0 with no outage).
    pub mttr_ms: f64,
    /// Up time / outages in ms (`None` with no outage).
    pub mtbf_ms: Option<f64>,
    /// Faults with a duration.
    pub faults: u64,
    /// Faults followed, while they lasted, by a detection event of the system.
    pub faults_detected: u64,
    /// Mean time from a fault's start to the system's first detection event.
    pub mttd_ms: Option<f64>,
    /// Faults that ended while the service was down.
    pub recoveries: u64,
    /// Of those, the ones still down when the run ended.
    pub unrecovered: u64,
    /// Mean time from such a fault's end to the service being up again.
    pub time_to_recover_ms: Option<f64>,
}

impl Metrics {
    /// The value of an SLO metric (see `scenario::SLO_METRICS`), in the SLO's
    /// unit: a fraction, or seconds. `None` for a figure the run never
    /// measured (no detection, no recovery): an SLO on it cannot pass.
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
            "mttd" => self.mttd_ms? / 1000.0,
            "time_to_recover" => self.time_to_recover_ms? / 1000.0,
            _ => return None,
        })
    }
}

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Summarises `latencies` (any order); an empty slice gives all zeros.
pub fn latency_summary(latencies: &[Nanos]) -> LatencySummary {
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

/// A stretch of time in one state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// Where it begins (inclusive).
    pub start: Nanos,
    /// Where it ends (exclusive).
    pub end: Nanos,
    /// Was the service up throughout?
    pub up: bool,
}

/// Appends, merging with the previous interval when the state is the same.
fn push_interval(intervals: &mut Vec<Interval>, start: Nanos, end: Nanos, up: bool) {
    if end <= start {
        return;
    }
    match intervals.last_mut() {
        Some(last) if last.up == up && last.end == start => last.end = end,
        _ => intervals.push(Interval { start, end, up }),
    }
}

/// The time view from probes, by send time, with hysteresis: the state
/// changes only when `threshold` consecutive probes disagree with it, and the
/// change is dated at the first of them. So an outage is measured within a
/// probe interval (plus a round trip) of the truth, and a probe whose answer
/// was lost in flight as a fault began, or one that slipped through just
/// before it, does not split or invent an outage (it still counts against
/// request availability). A shorter disagreeing run at the very end of the run
/// counts, as nothing follows to refute it. Before the first probe the
/// service counts as up.
pub fn probe_intervals(probes: &[ProbeSample], end: Nanos, threshold: usize) -> Vec<Interval> {
    assert!(threshold >= 1, "a state change needs at least one probe");
    let mut sorted: Vec<&ProbeSample> = probes.iter().filter(|p| p.sent < end).collect();
    sorted.sort_by_key(|p| p.sent);
    let mut intervals = Vec::new();
    let mut cursor = 0;
    let mut up = true;
    let mut index = 0;
    while index < sorted.len() {
        if sorted[index].up == up {
            index += 1;
            continue;
        }
        let run = sorted[index..].iter().take_while(|p| p.up != up).count();
        if run >= threshold || index + run == sorted.len() {
            push_interval(&mut intervals, cursor, sorted[index].sent, up);
            cursor = sorted[index].sent;
            up = !up;
        }
        index += run;
    }
    push_interval(&mut intervals, cursor, end, up);
    intervals
}

/// How many probes are sent during a typical (90th percentile) successful
/// probe's round trip, plus one. Near a fault's edge, probes sent within one
/// round trip can disagree (a slow one fails, a fast one gets through), so
/// the hysteresis spans at least this many.
pub fn round_trip_probes(probes: &[ProbeSample]) -> usize {
    let mut round_trips: Vec<Nanos> = probes.iter().filter(|p| p.up).map(|p| p.completed - p.sent).collect();
    if round_trips.is_empty() {
        return 1;
    }
    round_trips.sort_unstable();
    let p90 = round_trips[(round_trips.len() - 1) * 9 / 10];
    let mut sends: Vec<Nanos> = probes.iter().map(|p| p.sent).collect();
    sends.sort_unstable();
    let interval = sends.windows(2).map(|w| w[1] - w[0]).filter(|&g| g > 0).min().unwrap_or(Nanos::MAX);
    (p90 / interval) as usize + 1
}

/// The time view from the request stream: windows of `window` by intended
/// start, up when at least `up_ratio` of their requests were good. A window
/// without requests keeps the previous state. Also returns one timeline
/// character per window.
pub fn window_intervals(samples: &[OpSample], end: Nanos, window: Nanos, up_ratio: f64) -> (Vec<Interval>, String) {
    assert!(window > 0, "windows have a width");
    let windows = end.div_ceil(window).max(1) as usize;
    let mut totals = vec![(0u64, 0u64); windows];
    for sample in samples {
        let index = ((sample.intended / window) as usize).min(windows - 1);
        totals[index].0 += 1;
        if sample.good() {
            totals[index].1 += 1;
        }
    }
    let mut intervals = Vec::new();
    let mut timeline = String::with_capacity(windows);
    let mut state = true;
    for (index, &(total, good)) in totals.iter().enumerate() {
        if total == 0 {
            timeline.push(' ');
        } else {
            state = good as f64 / total as f64 >= up_ratio;
            timeline.push(if !state {
                '.'
            } else if good == total {
                '#'
            } else {
                '+'
            });
        }
        let start = index as u64 * window;
        push_interval(&mut intervals, start, (start + window).min(end), state);
    }
    (intervals, timeline)
}

/// One character per second of the interval view: '#' up, '.' down, '+' both.
fn interval_timeline(intervals: &[Interval], end: Nanos) -> String {
    const SECOND: Nanos = 1_000_000_000;
    let seconds = end.div_ceil(SECOND) as usize;
    let mut marks = vec![(false, false); seconds];
    for interval in intervals {
        let first = (interval.start / SECOND) as usize;
        let last = ((interval.end - 1) / SECOND) as usize;
        for mark in marks.iter_mut().take(last.min(seconds - 1) + 1).skip(first) {
            if interval.up {
                mark.0 = true;
            } else {
                mark.1 = true;
            }
        }
    }
    marks
        .iter()
        .map(|&(up, down)| match (up, down) {
            (true, false) => '#',
            (false, true) => '.',
            (true, true) => '+',
            (false, false) => ' ',
        })
        .collect()
}

/// Computes a run's figures.
pub fn measure(input: &MeasureInput<'_>) -> Metrics {
    let samples = input.samples;
    let mut metrics = Metrics { requests: samples.len() as u64, ..Metrics::default() };
    let mut good_latencies = Vec::new();
    let mut by_kind: BTreeMap<&str, Vec<Nanos>> = BTreeMap::new();
    let mut time_in_system: u128 = 0;
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
        let latency = sample.completed.saturating_sub(sample.intended);
        time_in_system += u128::from(latency);
        if sample.good() {
            good_latencies.push(latency);
            by_kind.entry(sample.kind).or_default().push(latency);
        }
    }
    let requests = samples.len().max(1) as f64;
    let fresh_good = samples.iter().filter(|s| s.good() && s.class == OutcomeClass::Ok).count() as f64;
    metrics.availability = if samples.is_empty() { 1.0 } else { good_latencies.len() as f64 / requests };
    metrics.fresh_availability = if samples.is_empty() { 1.0 } else { fresh_good / requests };
    metrics.error_rate = (metrics.failed + metrics.timeout) as f64 / requests;
    metrics.latency = latency_summary(&good_latencies);
    metrics.latency_by_kind = by_kind.into_iter().map(|(k, v)| (k.to_string(), latency_summary(&v))).collect();

    // Little's law: throughput, time in system, and the number in flight as
    // arrivals see it, summed over clients (each client counts only its own).
    let seconds = input.end as f64 / 1e9;
    metrics.throughput_per_s = if seconds > 0.0 { samples.len() as f64 / seconds } else { 0.0 };
    metrics.time_in_system_mean_ms = if samples.is_empty() { 0.0 } else { time_in_system as f64 / requests / 1e6 };
    let mut per_client: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for sample in samples {
        let entry = per_client.entry(sample.client).or_default();
        entry.0 += u64::from(sample.outstanding);
        entry.1 += 1;
    }
    metrics.in_flight_mean = per_client.values().map(|&(sum, n)| sum as f64 / n as f64).sum();

    let intervals = time_view(input, &mut metrics);
    faults_detected_and_recovered(input, &intervals, &mut metrics);
    metrics
}

/// The up and down intervals (from the probe, or from windows of requests),
/// with the timeline, time availability, outages, MTTR and MTBF they give.
fn time_view(input: &MeasureInput<'_>, metrics: &mut Metrics) -> Vec<Interval> {
    let samples = input.samples;
    let (intervals, timeline) = match input.probes {
        Some(probes) => {
            metrics.time_source = "probe".into();
            let threshold = input.probe_threshold.max(round_trip_probes(probes));
            let round_trips: Vec<f64> = probes.iter().filter(|p| p.up).map(|p| ms(p.completed - p.sent)).collect();
            metrics.probe_round_trip_ms = mean(&round_trips);
            metrics.probe_threshold = threshold as u64;
            let intervals = probe_intervals(probes, input.end, threshold);
            let timeline = interval_timeline(&intervals, input.end);
            (intervals, timeline)
        }
        None => {
            metrics.time_source = "windows".into();
            window_intervals(samples, input.end, input.window, input.up_ratio)
        }
    };
    metrics.timeline = timeline;
    let total: Nanos = intervals.iter().map(|i| i.end - i.start).sum();
    let down: Nanos = intervals.iter().filter(|i| !i.up).map(|i| i.end - i.start).sum();
    metrics.time_availability = if total == 0 { 1.0 } else { 1.0 - down as f64 / total as f64 };
    metrics.nines = (metrics.time_availability < 1.0).then(|| -(1.0 - metrics.time_availability).log10());
    metrics.outages =
        intervals.iter().filter(|i| !i.up).map(|i| Outage { start_ms: ms(i.start), end_ms: ms(i.end) }).collect();
    if !metrics.outages.is_empty() {
        let outages = metrics.outages.len() as f64;
        metrics.mttr_ms = ms(down) / outages;
        metrics.mtbf_ms = Some(ms(total - down) / outages);
    }
    intervals
}

/// MTTD (a fault's start to the system's first detection event while it
/// lasts) and time to recover (a fault that ended while the service was down,
/// to the service being up again).
fn faults_detected_and_recovered(input: &MeasureInput<'_>, intervals: &[Interval], metrics: &mut Metrics) {
    let mut detection_delays = Vec::new();
    let mut recover_delays = Vec::new();
    for fault in input.faults.iter().filter(|f| f.end > f.start) {
        metrics.faults += 1;
        let first = input.detections.partition_point(|&d| d < fault.start);
        if let Some(&detected) = input.detections.get(first).filter(|&&d| d <= fault.end) {
            metrics.faults_detected += 1;
            detection_delays.push(ms(detected - fault.start));
        }
        // Recovery: if the service was down when the fault ended, how long until up.
        if let Some(outage) = intervals.iter().find(|i| !i.up && i.start <= fault.end && fault.end < i.end) {
            metrics.recoveries += 1;
            if outage.end >= input.end {
                metrics.unrecovered += 1;
            }
            recover_delays.push(ms(outage.end - fault.end));
        }
    }
    metrics.mttd_ms = mean(&detection_delays);
    metrics.time_to_recover_ms = mean(&recover_delays);
}

/// Indexes of operations named by any violation.
pub fn flagged_ops<'a>(violations: impl IntoIterator<Item = &'a Violation>) -> BTreeSet<usize> {
    violations.into_iter().flat_map(|v| v.ops.iter().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = 1_000_000_000;
    const MS: Nanos = 1_000_000;

    fn sample(intended_ms: u64, latency_ms: u64, class: OutcomeClass) -> OpSample {
        OpSample {
            kind: "echo",
            client: 0,
            intended: intended_ms * MS,
            completed: (intended_ms + latency_ms) * MS,
            outstanding: 0,
            class,
            incorrect: false,
        }
    }

    fn input<'a>(samples: &'a [OpSample], end: Nanos) -> MeasureInput<'a> {
        MeasureInput {
            samples,
            probes: None,
            faults: &[],
            detections: &[],
            end,
            window: S,
            up_ratio: 0.9,
            probe_threshold: 2,
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
        let m = measure(&input(&samples, S));
        assert_eq!((m.requests, m.ok, m.degraded, m.failed, m.timeout), (4, 1, 1, 1, 1));
        assert_eq!(m.availability, 0.5);
        assert_eq!(m.fresh_availability, 0.25);
        assert_eq!(m.error_rate, 0.5);
        assert_eq!(m.latency.count, 2);
        assert!((m.latency.max_ms - 20.0).abs() < 1e-9);
        assert_eq!(m.throughput_per_s, 4.0);
        assert!((m.time_in_system_mean_ms - 257.5).abs() < 1e-9);
    }

    #[test]
    fn incorrect_answers_are_not_good() {
        let mut wrong = sample(0, 5, OutcomeClass::Ok);
        wrong.incorrect = true;
        let m = measure(&input(&[wrong, sample(10, 5, OutcomeClass::Ok)], S));
        assert_eq!(m.incorrect, 1);
        assert_eq!(m.availability, 0.5);
    }

    #[test]
    fn outages_from_windows_are_maximal_down_runs() {
        // Ten one-second windows, ten requests each; windows 3 and 4 fail.
        let mut samples = Vec::new();
        for window in 0..10u64 {
            for i in 0..10u64 {
                let class = if (3..5).contains(&window) { OutcomeClass::Timeout } else { OutcomeClass::Ok };
                samples.push(sample(window * 1000 + i * 100, 1, class));
            }
        }
        let m = measure(&input(&samples, 10 * S));
        assert_eq!(m.time_source, "windows");
        assert_eq!(m.timeline, "###..#####");
        assert_eq!(m.outages, vec![Outage { start_ms: 3000.0, end_ms: 5000.0 }]);
        assert_eq!(m.mttr_ms, 2000.0);
        assert_eq!(m.mtbf_ms, Some(8000.0));
        assert!((m.time_availability - 0.8).abs() < 1e-12);
        assert!((m.nines.unwrap() - 0.69897).abs() < 1e-5);
    }

    #[test]
    fn probes_give_outages_between_the_first_failed_and_the_next_good_probe() {
        let probe = |sent_ms: u64, up: bool| ProbeSample {
            sent: sent_ms * MS,
            completed: sent_ms * MS + 5 * MS,
            up,
            served: up,
        };
        let probes: Vec<ProbeSample> = (0..100).map(|i| probe(i * 100, !(25..=44).contains(&i))).collect();
        let mut inp = input(&[], 10 * S);
        inp.probes = Some(&probes);
        let m = measure(&inp);
        assert_eq!(m.time_source, "probe");
        assert_eq!(m.outages, vec![Outage { start_ms: 2500.0, end_ms: 4500.0 }]);
        assert_eq!(m.timeline, "##+.+#####");
        assert!((m.time_availability - 0.8).abs() < 1e-12);
    }

    #[test]
    fn lone_disagreeing_probes_neither_start_nor_split_an_outage() {
        let probe =
            |sent_ms: u64, up: bool| ProbeSample { sent: sent_ms * MS, completed: sent_ms * MS, up, served: up };
        // up, a lone failure, up, failures with a lone success inside, up twice, a final failure.
        let pattern = [true, false, true, false, false, true, false, false, true, true, false];
        let probes: Vec<ProbeSample> = pattern.iter().enumerate().map(|(i, &up)| probe(i as u64 * 10, up)).collect();
        let intervals = probe_intervals(&probes, 120 * MS, 2);
        assert_eq!(
            intervals,
            vec![
                Interval { start: 0, end: 30 * MS, up: true },
                Interval { start: 30 * MS, end: 80 * MS, up: false },
                Interval { start: 80 * MS, end: 100 * MS, up: true },
                // A failure at the very end counts: nothing follows to refute it.
                Interval { start: 100 * MS, end: 120 * MS, up: false },
            ]
        );
        assert_eq!(probe_intervals(&probes, 120 * MS, 1).iter().filter(|i| !i.up).count(), 4);
    }

    #[test]
    fn mttd_and_time_to_recover_follow_faults() {
        let probe =
            |sent_ms: u64, up: bool| ProbeSample { sent: sent_ms * MS, completed: sent_ms * MS, up, served: up };
        // Down from 2s to 5s; the fault lasts 2s..4s; detection at 2.3s.
        let probes: Vec<ProbeSample> = (0..100).map(|i| probe(i * 100, !(20..50).contains(&i))).collect();
        let faults = [FaultSpan { start: 2 * S, end: 4 * S }, FaultSpan { start: 7 * S, end: 8 * S }];
        let detections = [2 * S + 300 * MS, 9 * S];
        let inp = MeasureInput {
            samples: &[],
            probes: Some(&probes),
            faults: &faults,
            detections: &detections,
            end: 10 * S,
            window: S,
            up_ratio: 0.9,
            probe_threshold: 2,
        };
        let m = measure(&inp);
        assert_eq!((m.faults, m.faults_detected), (2, 1));
        assert_eq!(m.mttd_ms, Some(300.0));
        assert_eq!((m.recoveries, m.unrecovered), (1, 0));
        assert_eq!(m.time_to_recover_ms, Some(1000.0));
    }

    #[test]
    fn in_flight_is_summed_over_clients() {
        let mut a = sample(0, 5, OutcomeClass::Ok);
        a.outstanding = 2;
        let mut b = sample(1, 5, OutcomeClass::Ok);
        b.client = 1;
        b.outstanding = 1;
        let mut c = sample(2, 5, OutcomeClass::Ok);
        c.client = 1;
        c.outstanding = 3;
        assert_eq!(measure(&input(&[a, b, c], S)).in_flight_mean, 4.0);
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let samples: Vec<OpSample> = (1..=1000).map(|i| sample(i, i, OutcomeClass::Ok)).collect();
        let m = measure(&input(&samples, 2 * S));
        assert!((m.latency.p50_ms - 500.0).abs() < 1.0, "{}", m.latency.p50_ms);
        assert!((m.latency.p99_ms - 990.0).abs() < 1.0, "{}", m.latency.p99_ms);
        assert_eq!(m.latency.max_ms, 1000.0);
        assert_eq!(m.slo_value("p99_latency"), Some(m.latency.p99_ms / 1000.0));
    }
}
