//! The job queue's knobs, their validation, and its configured form with
//! the bounds that follow from it (the retry policy, the redelivery bound).

use std::time::Duration;

use faultline_harness::units::{Dur, DurRange, Probability, Rate};
use faultline_harness::{InputError, Knobs};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::kit::disk::Fsync;
use crate::kit::pool::Connections;
use crate::kit::retry::{Backoff, Jitter};

/// How a retry's backoff grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackoffKind {
    /// Every retry waits up to `backoff_base`.
    Fixed,
    /// Retry n waits up to `backoff_base * backoff_factor^(n-1)`, at most `backoff_cap`.
    Exponential,
}

/// How long a worker works on a job: uniform over a range, or exponential
/// with a mean (the M/M/c calibration's service time).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WorkTime {
    Uniform(DurRange),
    Exponential(Dur),
}

impl Serialize for WorkTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            WorkTime::Uniform(range) => serializer.serialize_str(&format!("{range}, uniform")),
            WorkTime::Exponential(mean) => serializer.serialize_str(&format!("exponential, mean {mean}")),
        }
    }
}

/// The configured job queue (its knobs are its whole configuration).
#[derive(Debug, Serialize)]
pub struct Queue {
    pub workers: u32,
    /// Jobs not yet terminal that the queue holds at most; `None`: unbounded.
    pub capacity: Option<u32>,
    pub fsync: Fsync,
    pub fsync_interval: Dur,
    pub lock_duration: Dur,
    pub stalled_interval: Dur,
    pub max_stalled: u32,
    pub attempts: u32,
    pub backoff: BackoffKind,
    pub backoff_base: Dur,
    pub backoff_factor: f64,
    pub backoff_cap: Dur,
    pub jitter: Jitter,
    pub fencing: bool,
    pub idempotency: bool,
    pub work_time: WorkTime,
    pub transient_failure_rate: f64,
    pub permanent_failure_rate: f64,
    /// Effects the sink applies at once; `None`: unlimited.
    pub sink_capacity: Option<u32>,
    pub sink_time: DurRange,
    pub sink_timeout: Dur,
    pub broker_timeout: Dur,
    /// How long the api waits for the broker before it answers 503; `None`:
    /// as long as it takes (a planted flaw: clients time out, unanswered).
    pub api_timeout: Option<Dur>,
    /// Decorrelated jitter keeps its cap; `false` leaves it out (a planted flaw).
    pub decorrelated_cap: bool,
    pub settle_within: Dur,
    pub poll_ratio: f64,
    /// Times a client reads a finished job again (after 4, 16, 64, ... of its operations).
    pub rereads: u32,
    pub duplicate_ratio: f64,
    pub conflict_ratio: f64,
    /// The p99 of job latency (accept to terminal) must stay within this.
    pub latency_slo: Option<Dur>,
    /// The sink's peak load after it recovers, per second, must stay within this.
    pub sink_load_slo: Option<f64>,
    /// How clients hold their connections to the api, the api its to the
    /// broker and workers theirs to the sink.
    pub connections: Connections,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct QueueKnobs {
    workers: Option<Spanned<i64>>,
    capacity: Option<Spanned<toml::Value>>,
    fsync: Option<Fsync>,
    fsync_interval: Option<Spanned<Dur>>,
    lock_duration: Option<Spanned<Dur>>,
    stalled_interval: Option<Spanned<Dur>>,
    max_stalled: Option<Spanned<i64>>,
    attempts: Option<Spanned<i64>>,
    backoff: Option<BackoffKind>,
    backoff_base: Option<Spanned<Dur>>,
    backoff_factor: Option<Spanned<f64>>,
    backoff_cap: Option<Spanned<Dur>>,
    jitter: Option<Jitter>,
    fencing: Option<bool>,
    idempotency: Option<bool>,
    work_time: Option<Spanned<DurRange>>,
    work_time_mean: Option<Spanned<Dur>>,
    transient_failure_rate: Option<Probability>,
    permanent_failure_rate: Option<Spanned<Probability>>,
    sink_capacity: Option<Spanned<toml::Value>>,
    sink_time: Option<DurRange>,
    sink_timeout: Option<Spanned<Dur>>,
    broker_timeout: Option<Spanned<Dur>>,
    api_timeout: Option<Spanned<toml::Value>>,
    decorrelated_cap: Option<bool>,
    settle_within: Option<Spanned<Dur>>,
    poll_ratio: Option<Probability>,
    rereads: Option<Spanned<i64>>,
    duplicate_ratio: Option<Probability>,
    conflict_ratio: Option<Spanned<Probability>>,
    latency_slo: Option<Spanned<Dur>>,
    sink_load_slo: Option<Spanned<Rate>>,
    connections: Option<Connections>,
}

pub fn configure(knobs: &Knobs<'_>) -> Result<Queue, InputError> {
    let raw: QueueKnobs = knobs.parse()?;
    let (backoff, backoff_base, backoff_factor, backoff_cap) = retry_policy(knobs, &raw)?;
    let transient_failure_rate = raw.transient_failure_rate.map_or(0.0, |p| p.0);
    let permanent_failure_rate = share_beside(
        knobs,
        &raw.permanent_failure_rate,
        transient_failure_rate,
        "permanent_failure_rate",
        "transient_failure_rate",
    )?;
    let duplicate_ratio = raw.duplicate_ratio.map_or(0.0, |p| p.0);
    let conflict_ratio =
        share_beside(knobs, &raw.conflict_ratio, duplicate_ratio, "conflict_ratio", "duplicate_ratio")?;
    Ok(Queue {
        workers: knobs.count(&raw.workers, 3, 1..=16, "workers")?,
        capacity: limit(knobs, &raw.capacity, Some(100), "capacity", "unbounded")?,
        fsync: raw.fsync.unwrap_or(Fsync::Always),
        fsync_interval: knobs.positive(&raw.fsync_interval, Dur::from_millis(20), "fsync_interval")?,
        lock_duration: knobs.positive(&raw.lock_duration, Dur::from_secs(1), "lock_duration")?,
        stalled_interval: knobs.positive(&raw.stalled_interval, Dur::from_secs(1), "stalled_interval")?,
        max_stalled: knobs.count(&raw.max_stalled, 1, 0..=100, "max_stalled")?,
        attempts: knobs.count(&raw.attempts, 3, 1..=100, "attempts")?,
        backoff,
        backoff_base,
        backoff_factor,
        backoff_cap,
        jitter: raw.jitter.unwrap_or(Jitter::Full),
        fencing: raw.fencing.unwrap_or(false),
        idempotency: raw.idempotency.unwrap_or(false),
        work_time: work_time(knobs, &raw)?,
        transient_failure_rate,
        permanent_failure_rate,
        sink_capacity: limit(knobs, &raw.sink_capacity, None, "sink_capacity", "unlimited")?,
        sink_time: raw.sink_time.unwrap_or(DurRange { min: Dur::from_millis(1), max: Dur::from_millis(2) }),
        sink_timeout: knobs.positive(&raw.sink_timeout, Dur::from_millis(500), "sink_timeout")?,
        broker_timeout: knobs.positive(&raw.broker_timeout, Dur::from_millis(500), "broker_timeout")?,
        api_timeout: api_timeout(knobs, &raw.api_timeout)?,
        decorrelated_cap: raw.decorrelated_cap.unwrap_or(true),
        settle_within: knobs.positive(&raw.settle_within, Dur::from_secs(5), "settle_within")?,
        poll_ratio: raw.poll_ratio.map_or(0.5, |p| p.0),
        rereads: knobs.count(&raw.rereads, 2, 0..=5, "rereads")?,
        duplicate_ratio,
        conflict_ratio,
        connections: raw.connections.unwrap_or_default(),
        latency_slo: match &raw.latency_slo {
            None => None,
            Some(slo) => Some(knobs.positive(&Some(slo.clone()), Dur::ZERO, "latency_slo")?),
        },
        sink_load_slo: match &raw.sink_load_slo {
            None => None,
            Some(slo) => Some(knobs.rate(&Some(slo.clone()), 0.0, "sink_load_slo")?),
        },
    })
}

/// A share that, with another share of the same draw, may not pass 1.
fn share_beside(
    knobs: &Knobs<'_>,
    value: &Option<Spanned<Probability>>,
    other: f64,
    name: &str,
    other_name: &str,
) -> Result<f64, InputError> {
    match value {
        None => Ok(0.0),
        Some(share) if share.get_ref().0 + other <= 1.0 => Ok(share.get_ref().0),
        Some(share) => {
            Err(knobs.conflict(share, name, other_name, "together they are shares of one draw and may not pass 1"))
        }
    }
}

/// A count of at least 1, or the word for no limit; `default` when absent.
fn limit(
    knobs: &Knobs<'_>,
    value: &Option<Spanned<toml::Value>>,
    default: Option<u32>,
    name: &str,
    word: &str,
) -> Result<Option<u32>, InputError> {
    let Some(value) = value else { return Ok(default) };
    match value.get_ref() {
        toml::Value::Integer(n) if (1..=1_000_000).contains(n) => Ok(Some(u32::try_from(*n).expect("in range"))),
        toml::Value::String(text) if text == word => Ok(None),
        toml::Value::Integer(n) => Err(knobs
            .error(value.span(), format!("{name} must be between 1 and 1000000, found {n} (\"{word}\" for no limit)"))),
        other => Err(knobs.error(value.span(), format!("{name} must be a count or \"{word}\", found {other}"))),
    }
}

/// A duration above zero, or "none" for no deadline; 500ms when absent.
fn api_timeout(knobs: &Knobs<'_>, value: &Option<Spanned<toml::Value>>) -> Result<Option<Dur>, InputError> {
    let Some(value) = value else { return Ok(Some(Dur::from_millis(500))) };
    match value.get_ref() {
        toml::Value::String(text) if text == "none" => Ok(None),
        toml::Value::String(text) => match Dur::parse(text) {
            Ok(duration) if !duration.0.is_zero() => Ok(Some(duration)),
            Ok(_) => Err(knobs.error(value.span(), "api_timeout must be longer than zero (\"none\" for no deadline)")),
            Err(error) => Err(knobs.error(value.span(), format!("api_timeout: {error}"))),
        },
        other => Err(knobs.error(value.span(), format!("api_timeout must be a duration or \"none\", found {other}"))),
    }
}

type RetryPolicy = (BackoffKind, Dur, f64, Dur);

/// The backoff knobs: a cap below the base, or a factor with a fixed
/// backoff, cannot work.
fn retry_policy(knobs: &Knobs<'_>, raw: &QueueKnobs) -> Result<RetryPolicy, InputError> {
    let backoff = raw.backoff.unwrap_or(BackoffKind::Exponential);
    let base = knobs.positive(&raw.backoff_base, Dur::from_millis(100), "backoff_base")?;
    let cap = knobs.positive(&raw.backoff_cap, Dur::from_secs(2), "backoff_cap")?;
    if let Some(cap_value) = &raw.backoff_cap {
        if cap < base {
            return Err(knobs.conflict(
                cap_value,
                "backoff_cap",
                "backoff_base",
                &format!("the cap {cap} is below the base {base}: no delay could lie between them"),
            ));
        }
    } else if cap < base {
        let base_value = raw.backoff_base.as_ref().expect("only a set base passes the default cap");
        return Err(knobs.conflict(
            base_value,
            "backoff_base",
            "backoff_cap",
            &format!("the base {base} is above the cap {cap} (the default): raise backoff_cap"),
        ));
    }
    let factor = match (&raw.backoff_factor, backoff) {
        (Some(factor), BackoffKind::Fixed) => {
            return Err(knobs.conflict(
                factor,
                "backoff_factor",
                "backoff = \"fixed\"",
                "a fixed backoff does not grow",
            ));
        }
        (_, BackoffKind::Fixed) => 1.0,
        (factor, BackoffKind::Exponential) => knobs.number(factor, 2.0, 1.0..=100.0, "backoff_factor")?,
    };
    Ok((backoff, base, factor, cap))
}

fn work_time(knobs: &Knobs<'_>, raw: &QueueKnobs) -> Result<WorkTime, InputError> {
    match (&raw.work_time, &raw.work_time_mean) {
        (Some(range), Some(_)) => Err(knobs.conflict(
            range,
            "work_time",
            "work_time_mean",
            "work times are uniform over a range or exponential with a mean; set one",
        )),
        (Some(range), None) => Ok(WorkTime::Uniform(*range.get_ref())),
        (None, Some(mean)) => {
            Ok(WorkTime::Exponential(knobs.positive(&Some(mean.clone()), Dur::ZERO, "work_time_mean")?))
        }
        (None, None) => Ok(WorkTime::Uniform(DurRange { min: Dur::from_millis(10), max: Dur::from_millis(30) })),
    }
}

/// Slack for the redelivery bound: the delivery's round trip and a tick.
pub const REDELIVERY_SLACK: Duration = Duration::from_millis(100);

impl Queue {
    /// The retry policy between attempts.
    pub fn retry_backoff(&self) -> Backoff {
        Backoff { base: self.backoff_base, factor: self.backoff_factor, cap: self.backoff_cap, jitter: self.jitter }
    }

    /// How often a worker renews its lease: half the lease, as BullMQ does.
    pub fn renew_every(&self) -> Duration {
        self.lock_duration.0 / 2
    }

    /// The longest a job held by a crashed worker waits before the broker
    /// delivers it again, with a worker free: its lease, renewed just before
    /// the crash, lapses `lock_duration` later, and the stalled check that
    /// finds it runs up to `stalled_interval` after that.
    pub fn redelivery_bound(&self) -> Duration {
        self.lock_duration.0 + self.stalled_interval.0 + REDELIVERY_SLACK
    }
}

#[cfg(test)]
impl Queue {
    /// The default configuration, for unit tests.
    pub fn defaults() -> Queue {
        configure(&Knobs::new("test.toml", "[knobs]\n")).expect("the defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configure_from(knobs: &str) -> Result<Queue, InputError> {
        let source = format!("name = \"x\"\nsystem = \"queue\"\n[knobs]\n{knobs}\n");
        configure(&Knobs::new("q.toml", &source))
    }

    fn error(knobs: &str) -> String {
        configure_from(knobs).expect_err("an input error").to_string()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let queue = configure_from("").unwrap();
        assert_eq!((queue.workers, queue.capacity, queue.fsync), (3, Some(100), Fsync::Always));
        assert_eq!((queue.attempts, queue.max_stalled, queue.jitter), (3, 1, Jitter::Full));
        assert_eq!((queue.lock_duration, queue.stalled_interval), (Dur::from_secs(1), Dur::from_secs(1)));
        assert_eq!(queue.backoff, BackoffKind::Exponential);
        assert!(!queue.fencing && !queue.idempotency);
        assert_eq!((queue.sink_capacity, queue.latency_slo, queue.sink_load_slo), (None, None, None));
        assert_eq!(queue.renew_every(), Duration::from_millis(500));
    }

    #[test]
    fn bad_input_names_the_knob_at_its_place() {
        assert_eq!(error("attempts = 0"), "q.toml:4:12: attempts must be between 1 and 100, found 0");
        assert!(error("capacity = 0").starts_with("q.toml:4:12: capacity must be between 1 and 1000000, found 0"));
        assert!(error("capacity = \"lots\"").contains("capacity must be a count or \"unbounded\""));
        assert_eq!(error("stalled_interval = \"0s\""), "q.toml:4:20: stalled_interval must be longer than zero");
        let cap = error("backoff_base = \"1s\"\nbackoff_cap = \"500ms\"");
        assert!(cap.starts_with("q.toml:5:15: backoff_cap cannot be used with backoff_base"), "{cap}");
        let default_cap = error("backoff_base = \"5s\"");
        assert!(
            default_cap.contains("backoff_base cannot be used with backoff_cap")
                && default_cap.contains("raise backoff_cap"),
            "{default_cap}"
        );
        assert!(error("backoff = \"fixed\"\nbackoff_factor = 3.0")
            .contains("backoff_factor cannot be used with backoff = \"fixed\""));
        assert!(error("work_time = \"1ms..2ms\"\nwork_time_mean = \"5ms\"")
            .contains("work_time cannot be used with work_time_mean"));
        assert!(error("transient_failure_rate = 0.7\npermanent_failure_rate = 0.5").contains("may not pass 1"));
        assert!(error("sink_capacity = 0").contains("sink_capacity must be between 1 and 1000000"));
        assert!(error("workers = 0").contains("workers must be between 1 and 16"));
        assert!(error("latency_slo = \"0s\"").contains("latency_slo must be longer than zero"));
        assert!(error("api_timeout = \"0s\"").contains("api_timeout must be longer than zero"));
        assert!(error("api_timeout = 5").contains("api_timeout must be a duration or \"none\""));
    }

    #[test]
    fn limits_and_policies_parse() {
        let queue =
            configure_from("capacity = \"unbounded\"\nsink_capacity = 4\nbackoff = \"fixed\"\nwork_time_mean = \"1s\"")
                .unwrap();
        assert_eq!((queue.capacity, queue.sink_capacity, queue.backoff_factor), (None, Some(4), 1.0));
        assert_eq!(queue.work_time, WorkTime::Exponential(Dur::from_secs(1)));
        let fixed = queue.retry_backoff();
        assert_eq!(fixed.ceiling(1), fixed.ceiling(7));
        let waits = configure_from("api_timeout = \"none\"\ndecorrelated_cap = false").unwrap();
        assert_eq!((waits.api_timeout, waits.decorrelated_cap), (None, false));
        let slo = configure_from("sink_load_slo = \"300/s\"\nlatency_slo = \"2s\"").unwrap();
        assert_eq!((slo.sink_load_slo, slo.latency_slo), (Some(300.0), Some(Dur::from_secs(2))));
    }
}
