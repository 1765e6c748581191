//! The breaker system's knobs, their validation, and its configured form
//! with the bounds that follow from it (the longest response, the longest
//! open spell, trial calls per half-open spell).

use std::fmt;
use std::time::Duration;

use faultline_harness::units::{Dur, DurRange, Probability};
use faultline_harness::{InputError, Knobs};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::rule::Rule;
use crate::kit::pool::Connections;
use crate::kit::retry::{Backoff, Jitter};

/// Slack for the response-time bound: the client's own hops to the app and
/// the fallback's round trip beyond its timeout.
pub const RESPONSE_SLACK: Duration = Duration::from_millis(100);

/// The failure-rate window: the last N calls, or the calls of the last span.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Window {
    Calls(u32),
    Time(Dur),
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Window;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of calls (20) or a duration (\"10s\")")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Window, E> {
                u32::try_from(v)
                    .ok()
                    .filter(|&n| n >= 1)
                    .map(Window::Calls)
                    .ok_or_else(|| E::custom("window needs at least 1 call"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Window, E> {
                Dur::parse(v).map(Window::Time).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `half_open_max_calls`: a number, or "unlimited".
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum HalfOpenCalls {
    Unlimited,
    AtMost(u32),
}

impl<'de> Deserialize<'de> for HalfOpenCalls {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HalfOpenCalls;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of calls (1) or \"unlimited\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HalfOpenCalls, E> {
                u32::try_from(v)
                    .ok()
                    .filter(|&n| n >= 1)
                    .map(HalfOpenCalls::AtMost)
                    .ok_or_else(|| E::custom("half_open_max_calls must be at least 1, or \"unlimited\""))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HalfOpenCalls, E> {
                if v == "unlimited" {
                    Ok(HalfOpenCalls::Unlimited)
                } else {
                    Err(E::custom(format!("expected a number or \"unlimited\", found {v:?}")))
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Where the retries sit relative to the breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetryPlacement {
    /// Retries around the breaker: every attempt asks it first (the default).
    Outside,
    /// The breaker around the retries: it admits a request once and counts
    /// its final result, so the retries beneath it go on after it opens (a
    /// real misconfiguration: decorators composed the wrong way round).
    Inside,
}

/// What a call's timeout bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeoutCovers {
    /// The whole call: connecting, sending and waiting for the answer.
    Call,
    /// Only connecting (a real flaw: a connect timeout and no read timeout),
    /// so a call whose answer is lost waits for ever.
    Connect,
}

/// What the breaker does with a trial call that timed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialTimeouts {
    /// It counts as a failed trial: the breaker opens again.
    Counted,
    /// A planted flaw: it is never reported to the breaker, as a timeout
    /// that surfaces as a cancellation the breaker ignores (Polly #311,
    /// rezilience #521); the breaker stays half-open with its trial slots
    /// spent and rejects every call for good.
    Lost,
}

/// The configured breaker system (its knobs are its whole state).
#[derive(Debug, Serialize)]
pub struct Breaker {
    pub enabled: bool,
    pub rule: Rule,
    pub call_timeout: Dur,
    pub open_duration: Dur,
    pub open_backoff: f64,
    pub open_duration_max: Dur,
    pub open_jitter: f64,
    pub half_open_max_calls: HalfOpenCalls,
    pub slow_call_threshold: Option<Dur>,
    pub attempts_max: u32,
    pub backoff_base: Dur,
    pub backoff_factor: f64,
    pub backoff_cap: Dur,
    pub jitter: Jitter,
    pub retry_budget: Option<f64>,
    pub cache_timeout: Dur,
    pub downstream_failure_rate: f64,
    pub service_time: DurRange,
    pub bad_request_ratio: f64,
    /// Answer from the cache or static defaults when the calls fail or the
    /// breaker is open; false answers an error instead.
    pub fallback: bool,
    pub retry_placement: RetryPlacement,
    pub call_timeout_covers: TimeoutCovers,
    pub trial_timeouts: TrialTimeouts,
    /// A planted flaw when false: successes while closed are not counted, so
    /// failures add up over the breaker's life instead of in a row (or in
    /// the window), and it opens although its rule does not hold.
    pub closed_successes_counted: bool,
    /// How clients hold their connections to the app, and the app its to
    /// the downstream and the cache.
    pub connections: Connections,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BreakerKnobs {
    breaker: Option<Spanned<bool>>,
    failure_threshold: Option<Spanned<i64>>,
    failure_rate: Option<Probability>,
    window: Option<Window>,
    minimum_calls: Option<Spanned<i64>>,
    call_timeout: Option<Spanned<Dur>>,
    open_duration: Option<Spanned<Dur>>,
    open_backoff: Option<Spanned<f64>>,
    open_duration_max: Option<Spanned<Dur>>,
    open_jitter: Option<Probability>,
    half_open_max_calls: Option<HalfOpenCalls>,
    slow_call_threshold: Option<Dur>,
    attempts_max: Option<Spanned<i64>>,
    backoff_base: Option<Dur>,
    backoff_factor: Option<Spanned<f64>>,
    backoff_cap: Option<Dur>,
    jitter: Option<Jitter>,
    retry_budget: Option<Probability>,
    cache_timeout: Option<Spanned<Dur>>,
    downstream_failure_rate: Option<Probability>,
    service_time: Option<DurRange>,
    bad_request_ratio: Option<Probability>,
    fallback: Option<bool>,
    retry_placement: Option<RetryPlacement>,
    call_timeout_covers: Option<TimeoutCovers>,
    trial_timeouts: Option<TrialTimeouts>,
    closed_successes: Option<ClosedSuccesses>,
    connections: Option<Spanned<Connections>>,
}

/// `closed_successes`: whether the breaker counts the successes of a
/// closed breaker (`"counted"`) or, a planted flaw, only its failures
/// (`"ignored"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ClosedSuccesses {
    Counted,
    Ignored,
}

pub fn configure(knobs: &Knobs<'_>) -> Result<Breaker, InputError> {
    let raw: BreakerKnobs = knobs.parse()?;
    let rule = rule(knobs, &raw)?;
    variants_need_a_breaker(knobs, &raw)?;
    let open_duration = knobs.positive(&raw.open_duration, Dur::from_secs(1), "open_duration")?;
    let open_duration_max = match &raw.open_duration_max {
        None => open_duration,
        Some(d) if *d.get_ref() >= open_duration => *d.get_ref(),
        Some(d) => return Err(knobs.error(d.span(), "open_duration_max must be at least open_duration")),
    };
    Ok(Breaker {
        enabled: raw.breaker.as_ref().is_none_or(|b| *b.get_ref()),
        rule,
        call_timeout: knobs.positive(&raw.call_timeout, Dur::from_millis(100), "call_timeout")?,
        open_duration,
        open_backoff: knobs.number(&raw.open_backoff, 1.0, 1.0..=100.0, "open_backoff")?,
        open_duration_max,
        open_jitter: raw.open_jitter.map_or(0.0, |p| p.0),
        half_open_max_calls: raw.half_open_max_calls.unwrap_or(HalfOpenCalls::AtMost(1)),
        slow_call_threshold: raw.slow_call_threshold,
        attempts_max: knobs.count(&raw.attempts_max, 3, 1..=100, "attempts_max")?,
        backoff_base: raw.backoff_base.unwrap_or(Dur::from_millis(20)),
        backoff_factor: knobs.number(&raw.backoff_factor, 2.0, 1.0..=100.0, "backoff_factor")?,
        backoff_cap: raw.backoff_cap.unwrap_or(Dur::from_millis(500)),
        jitter: raw.jitter.unwrap_or(Jitter::Full),
        retry_budget: raw.retry_budget.map(|p| p.0),
        cache_timeout: knobs.positive(&raw.cache_timeout, Dur::from_millis(50), "cache_timeout")?,
        downstream_failure_rate: raw.downstream_failure_rate.map_or(0.0, |p| p.0),
        service_time: raw.service_time.unwrap_or(DurRange { min: Dur::from_millis(1), max: Dur::from_millis(5) }),
        bad_request_ratio: raw.bad_request_ratio.map_or(0.01, |p| p.0),
        fallback: raw.fallback.unwrap_or(true),
        retry_placement: raw.retry_placement.unwrap_or(RetryPlacement::Outside),
        call_timeout_covers: raw.call_timeout_covers.unwrap_or(TimeoutCovers::Call),
        trial_timeouts: raw.trial_timeouts.unwrap_or(TrialTimeouts::Counted),
        closed_successes_counted: raw.closed_successes != Some(ClosedSuccesses::Ignored),
        connections: connections(knobs, &raw)?,
    })
}

/// `connections`: a pooled connection is reused, so a timeout on the connect
/// alone (`call_timeout_covers = "connect"`, the planted flaw) would bound
/// nothing on most calls: the two cannot be combined.
fn connections(knobs: &Knobs<'_>, raw: &BreakerKnobs) -> Result<Connections, InputError> {
    match (&raw.connections, raw.call_timeout_covers) {
        (Some(pooled), Some(TimeoutCovers::Connect)) if *pooled.get_ref() != Connections::PerRequest => Err(knobs
            .conflict(
                pooled,
                "connections = pooled",
                "call_timeout_covers = \"connect\"",
                "a reused connection makes no connect for that timeout to cover",
            )),
        (connections, _) => Ok(connections.as_ref().map_or(Connections::PerRequest, |c| *c.get_ref())),
    }
}

/// The breaker's own variants mean nothing without a breaker.
fn variants_need_a_breaker(knobs: &Knobs<'_>, raw: &BreakerKnobs) -> Result<(), InputError> {
    let Some(off) = raw.breaker.as_ref().filter(|b| !*b.get_ref()) else { return Ok(()) };
    let set = [
        ("retry_placement", raw.retry_placement.is_some()),
        ("trial_timeouts", raw.trial_timeouts.is_some()),
        ("closed_successes", raw.closed_successes.is_some()),
    ];
    match set.iter().find(|(_, is_set)| *is_set) {
        Some((name, _)) => {
            Err(knobs.conflict(off, "breaker = false", name, "this knob changes how the breaker works; there is none"))
        }
        None => Ok(()),
    }
}

/// The opening rule: consecutive failures, or a failure rate, not both.
fn rule(knobs: &Knobs<'_>, raw: &BreakerKnobs) -> Result<Rule, InputError> {
    if let (Some(threshold), Some(_)) = (&raw.failure_threshold, &raw.failure_rate) {
        return Err(knobs.conflict(
            threshold,
            "failure_threshold",
            "failure_rate",
            "the breaker opens on consecutive failures or on a failure rate; set one",
        ));
    }
    Ok(match raw.failure_rate {
        Some(rate) => Rule::Rate {
            rate: rate.0,
            window: raw.window.unwrap_or(Window::Calls(20)),
            minimum_calls: knobs.count(&raw.minimum_calls, 10, 1..=1_000_000, "minimum_calls")?,
        },
        None => Rule::Consecutive(knobs.count(&raw.failure_threshold, 5, 1..=1_000_000, "failure_threshold")?),
    })
}

impl Breaker {
    /// The retry policy between attempts.
    pub fn backoff(&self) -> Backoff {
        Backoff { base: self.backoff_base, factor: self.backoff_factor, cap: self.backoff_cap, jitter: self.jitter }
    }

    /// The longest a request can take: every attempt times out, every
    /// backoff is as long as it can be, then the fallback waits for the cache.
    pub fn response_bound(&self) -> Duration {
        let backoff = self.backoff();
        let backoffs: Duration = (1..self.attempts_max).map(|retry| backoff.longest(retry)).sum();
        self.call_timeout.0 * self.attempts_max + backoffs + self.cache_timeout.0 + RESPONSE_SLACK
    }

    /// How long the breaker stays open after `reopenings` reopenings from
    /// half-open since it last closed, before jitter: `open_duration` grown
    /// by `open_backoff` per reopening (libm's `pow`, portable), at most
    /// `open_duration_max`. Clamped in f64 before it becomes a Duration.
    pub fn open_ceiling(&self, reopenings: u32) -> Duration {
        let grown = self.open_duration.0.as_secs_f64() * libm::pow(self.open_backoff, f64::from(reopenings.min(1000)));
        Duration::from_secs_f64(grown.min(self.open_duration_max.0.as_secs_f64()))
    }

    /// The shortest an open spell may last: `open_duration` less the most
    /// the jitter may cut.
    pub fn open_least(&self) -> Duration {
        self.open_duration.0.mul_f64(1.0 - self.open_jitter)
    }

    /// Trial calls that may be sent in one half-open spell. The chapter's
    /// "unlimited" admits every arriving call, though the state exists for
    /// one trial, so its checker holds it to one.
    pub fn half_open_bound(&self) -> u32 {
        match self.half_open_max_calls {
            HalfOpenCalls::Unlimited => 1,
            HalfOpenCalls::AtMost(n) => n,
        }
    }
}

#[cfg(test)]
impl Breaker {
    /// The default configuration with `rule`, for unit tests.
    pub fn with_rule(rule: Rule) -> Breaker {
        let defaults = configure(&Knobs::new("test.toml", "[knobs]\n")).expect("the defaults are valid");
        Breaker { rule, ..defaults }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configure_from(knobs: &str) -> Result<Breaker, InputError> {
        let source = format!("name = \"x\"\nsystem = \"breaker\"\n[knobs]\n{knobs}\n");
        configure(&Knobs::new("b.toml", &source))
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let breaker = configure_from("").unwrap();
        assert_eq!(breaker.rule, Rule::Consecutive(5));
        assert_eq!(breaker.call_timeout, Dur::from_millis(100));
        assert_eq!(breaker.open_duration_max, Dur::from_secs(1));
        assert_eq!(breaker.half_open_max_calls, HalfOpenCalls::AtMost(1));
        assert_eq!((breaker.attempts_max, breaker.jitter, breaker.retry_budget), (3, Jitter::Full, None));
        assert_eq!(breaker.bad_request_ratio, 0.01);
    }

    #[test]
    fn windows_and_half_open_calls_parse_both_ways() {
        let rate = configure_from("failure_rate = 0.5\nwindow = \"2s\"\nhalf_open_max_calls = \"unlimited\"").unwrap();
        assert_eq!(rate.rule, Rule::Rate { rate: 0.5, window: Window::Time(Dur::from_secs(2)), minimum_calls: 10 });
        assert_eq!(rate.half_open_bound(), 1);
        let count =
            configure_from("failure_rate = 0.5\nwindow = 8\nminimum_calls = 4\nhalf_open_max_calls = 3").unwrap();
        assert_eq!(count.rule, Rule::Rate { rate: 0.5, window: Window::Calls(8), minimum_calls: 4 });
        assert_eq!(count.half_open_bound(), 3);
        assert!(configure_from("failure_rate = 0.5\nwindow = 0").is_err());
        assert!(configure_from("half_open_max_calls = \"many\"").is_err());
    }

    #[test]
    fn conflicting_and_out_of_range_knobs_are_errors_at_their_place() {
        let both = configure_from("failure_threshold = 3\nfailure_rate = 0.5").unwrap_err().to_string();
        assert!(both.starts_with("b.toml:4:21: failure_threshold cannot be used with failure_rate"), "{both}");
        let max = configure_from("open_duration = \"2s\"\nopen_duration_max = \"1s\"").unwrap_err().to_string();
        assert!(max.contains("open_duration_max must be at least open_duration"), "{max}");
        let factor = configure_from("backoff_factor = 0.5").unwrap_err().to_string();
        assert!(factor.contains("backoff_factor must be between 1 and 100, found 0.5"), "{factor}");
        assert!(configure_from("attempts_max = 0").is_err());
        assert!(configure_from("call_timeout = \"0ms\"").is_err());
        // The breaker's own variants need a breaker.
        for variant in ["retry_placement = \"inside\"", "trial_timeouts = \"lost\"", "closed_successes = \"ignored\""] {
            let error = configure_from(&format!("breaker = false\n{variant}")).unwrap_err().to_string();
            let name = variant.split(' ').next().unwrap();
            assert!(error.contains(&format!("breaker = false cannot be used with {name}")), "{error}");
        }
        assert!(configure_from("breaker = false\nfallback = false\ncall_timeout_covers = \"connect\"").is_ok());
    }

    #[test]
    fn the_flawed_variants_are_off_by_default_and_named_by_their_knobs() {
        let breaker = configure_from("").unwrap();
        assert!(breaker.enabled && breaker.fallback && breaker.closed_successes_counted);
        assert_eq!(breaker.retry_placement, RetryPlacement::Outside);
        assert_eq!(breaker.call_timeout_covers, TimeoutCovers::Call);
        assert_eq!(breaker.trial_timeouts, TrialTimeouts::Counted);
        let flawed = configure_from(
            "fallback = false\nretry_placement = \"inside\"\ncall_timeout_covers = \"connect\"\n\
             trial_timeouts = \"lost\"\nclosed_successes = \"ignored\"",
        )
        .unwrap();
        assert!(!flawed.fallback && !flawed.closed_successes_counted);
        assert_eq!(
            (flawed.retry_placement, flawed.call_timeout_covers, flawed.trial_timeouts),
            (RetryPlacement::Inside, TimeoutCovers::Connect, TrialTimeouts::Lost)
        );
        assert!(configure_from("retry_placement = \"around\"").is_err());
    }

    #[test]
    fn the_response_bound_adds_timeouts_backoffs_and_the_fallback() {
        // 3 x 100ms + 20ms + 40ms of backoff + 50ms fallback + 100ms slack.
        assert_eq!(configure_from("").unwrap().response_bound(), Duration::from_millis(510));
        // Decorrelated jitter may wait up to the cap before every retry.
        let decorrelated = configure_from("jitter = \"decorrelated\"\nbackoff_cap = \"200ms\"").unwrap();
        assert_eq!(decorrelated.response_bound(), Duration::from_millis(300 + 400 + 50 + 100));
    }

    #[test]
    fn the_open_duration_grows_to_its_cap_and_jitter_shortens_the_least() {
        let breaker = configure_from(
            "open_duration = \"500ms\"\nopen_backoff = 2.0\nopen_duration_max = \"2s\"\nopen_jitter = 0.2",
        )
        .unwrap();
        assert_eq!(breaker.open_ceiling(0), Duration::from_millis(500));
        assert_eq!(breaker.open_ceiling(1), Duration::from_secs(1));
        assert_eq!(breaker.open_ceiling(3), Duration::from_secs(2));
        assert_eq!(breaker.open_ceiling(u32::MAX), Duration::from_secs(2));
        assert_eq!(breaker.open_least(), Duration::from_millis(400));
    }
}
