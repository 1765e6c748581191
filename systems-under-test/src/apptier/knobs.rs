//! The app tier's knobs, their validation, and its configured form with the
//! bounds that follow from it (how soon the lb must stop routing to a failed
//! instance, how soon it may route to a recovered one).

use std::time::Duration;

use faultline_harness::units::{Dur, DurRange, Probability, Rate};
use faultline_harness::{InputError, Knobs};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::protocol::HealthCheck;
use crate::kit::disk::Fsync;
use crate::kit::pool::Connections;

/// Most app instances a scenario may have (turmoil's cost is per host per tick).
pub const INSTANCES_MAX: i64 = 16;

/// Slack on the detection and restoration bounds: a tick or two of the
/// simulation and the lb's own scheduling.
pub const BOUND_SLACK: Duration = Duration::from_millis(20);

/// How the lb picks an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balancing {
    RoundRobin,
    LeastConnections,
}

/// The lb's per-client rate limiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Limiter {
    None,
    /// A bucket of `burst` tokens refilled at `limit`: any span of length d
    /// admits at most burst + limit x d.
    TokenBucket,
    /// `limit x window` requests per window, counted in windows aligned to
    /// the clock: the counter resets at each edge.
    FixedWindow,
    /// `limit x window` requests in any span of length `window` (a log of
    /// the window's admissions).
    SlidingWindow,
}

/// The configured app tier.
#[derive(Debug, Serialize)]
pub struct AppTier {
    /// Instances at the start (and always, without autoscaling).
    pub instances: u32,
    /// How users, the lb and the instances hold their connections.
    pub connections: Connections,
    pub balancing: Balancing,
    pub health_check: HealthCheck,
    pub check_interval: Dur,
    pub check_timeout: Dur,
    pub unhealthy_after: u32,
    pub healthy_after: u32,
    /// Consecutive failed requests that eject an instance; 0: no passive health.
    pub eject_after: u32,
    pub ejection_time: Dur,
    pub retries: u32,
    pub attempt_timeout: Dur,
    /// Below this share of members in rotation the lb routes to every member.
    pub panic_threshold: f64,
    pub sticky: bool,
    pub session_ttl: Dur,
    pub sessions_fsync: Fsync,
    pub sessions_timeout: Dur,
    pub db_timeout: Dur,
    pub service_time: DurRange,
    pub workers: u32,
    pub boot_time: Dur,
    pub limiter: Limiter,
    /// Requests per second per client.
    pub limit: f64,
    pub burst: u32,
    pub window: Dur,
    pub autoscale: bool,
    pub instances_min: u32,
    pub instances_max: u32,
    /// Requests per second per instance the autoscaler aims at.
    pub target_rps: f64,
    pub scale_interval: Dur,
    pub stabilization: bool,
    pub stabilization_window: Dur,
    pub drain_time: Dur,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TierKnobs {
    instances: Option<Spanned<i64>>,
    connections: Option<Connections>,
    balancing: Option<Balancing>,
    health_check: Option<HealthCheck>,
    check_interval: Option<Spanned<Dur>>,
    check_timeout: Option<Spanned<Dur>>,
    unhealthy_after: Option<Spanned<i64>>,
    healthy_after: Option<Spanned<i64>>,
    eject_after: Option<Spanned<i64>>,
    ejection_time: Option<Spanned<Dur>>,
    retries: Option<Spanned<i64>>,
    attempt_timeout: Option<Spanned<Dur>>,
    panic_threshold: Option<Probability>,
    sticky: Option<Spanned<bool>>,
    session_ttl: Option<Spanned<Dur>>,
    sessions_fsync: Option<Spanned<Fsync>>,
    sessions_timeout: Option<Spanned<Dur>>,
    db_timeout: Option<Spanned<Dur>>,
    service_time: Option<DurRange>,
    workers: Option<Spanned<i64>>,
    boot_time: Option<Dur>,
    limiter: Option<Limiter>,
    limit: Option<Spanned<Rate>>,
    burst: Option<Spanned<i64>>,
    window: Option<Spanned<Dur>>,
    autoscale: Option<bool>,
    instances_min: Option<Spanned<i64>>,
    instances_max: Option<Spanned<i64>>,
    target_rps: Option<Spanned<Rate>>,
    scale_interval: Option<Spanned<Dur>>,
    stabilization: Option<bool>,
    stabilization_window: Option<Spanned<Dur>>,
    drain_time: Option<Dur>,
}

pub fn configure(knobs: &Knobs<'_>) -> Result<AppTier, InputError> {
    let raw: TierKnobs = knobs.parse()?;
    let instances = knobs.count(&raw.instances, 3, 1..=INSTANCES_MAX, "instances")?;
    let check_interval = knobs.positive(&raw.check_interval, Dur::from_millis(200), "check_interval")?;
    let check_timeout = knobs.positive(&raw.check_timeout, Dur::from_millis(100), "check_timeout")?;
    if let Some(timeout) = raw.check_timeout.as_ref().filter(|t| *t.get_ref() > check_interval) {
        return Err(knobs.conflict(
            timeout,
            "check_timeout",
            "check_interval",
            "a check must end before the next one starts; make the timeout at most the interval",
        ));
    }
    let (instances_min, instances_max) = scaling_range(knobs, &raw, instances)?;
    let (limiter, limit, burst, window) = limits(knobs, &raw)?;
    let sticky = raw.sticky.as_ref().is_some_and(|s| *s.get_ref());
    if let (Some(sticky_knob), Some(_)) = (raw.sticky.as_ref().filter(|s| *s.get_ref()), &raw.sessions_fsync) {
        return Err(knobs.conflict(
            sticky_knob,
            "sticky",
            "sessions_fsync",
            "sticky sessions live in the instances' memory; there is no session store to sync",
        ));
    }
    Ok(AppTier {
        instances,
        connections: raw.connections.unwrap_or_default(),
        balancing: raw.balancing.unwrap_or(Balancing::RoundRobin),
        health_check: raw.health_check.unwrap_or(HealthCheck::Readiness),
        check_interval,
        check_timeout,
        unhealthy_after: knobs.count(&raw.unhealthy_after, 2, 1..=100, "unhealthy_after")?,
        healthy_after: knobs.count(&raw.healthy_after, 2, 1..=100, "healthy_after")?,
        eject_after: knobs.count(&raw.eject_after, 0, 0..=1000, "eject_after")?,
        ejection_time: knobs.positive(&raw.ejection_time, Dur::from_secs(1), "ejection_time")?,
        retries: knobs.count(&raw.retries, 1, 0..=INSTANCES_MAX - 1, "retries")?,
        attempt_timeout: knobs.positive(&raw.attempt_timeout, Dur::from_millis(250), "attempt_timeout")?,
        panic_threshold: raw.panic_threshold.map_or(0.5, |p| p.0),
        sticky,
        session_ttl: knobs.positive(&raw.session_ttl, Dur::from_secs(30), "session_ttl")?,
        sessions_fsync: raw.sessions_fsync.map_or(Fsync::Never, Spanned::into_inner),
        sessions_timeout: knobs.positive(&raw.sessions_timeout, Dur::from_millis(100), "sessions_timeout")?,
        db_timeout: knobs.positive(&raw.db_timeout, Dur::from_millis(100), "db_timeout")?,
        service_time: raw.service_time.unwrap_or(DurRange { min: Dur::from_millis(2), max: Dur::from_millis(6) }),
        workers: knobs.count(&raw.workers, 8, 1..=1000, "workers")?,
        boot_time: raw.boot_time.unwrap_or(Dur::ZERO),
        limiter,
        limit,
        burst,
        window,
        autoscale: raw.autoscale.unwrap_or(false),
        instances_min,
        instances_max,
        target_rps: knobs.rate(&raw.target_rps, 100.0, "target_rps")?,
        scale_interval: knobs.positive(&raw.scale_interval, Dur::from_secs(1), "scale_interval")?,
        stabilization: raw.stabilization.unwrap_or(true),
        stabilization_window: knobs.positive(&raw.stabilization_window, Dur::from_secs(10), "stabilization_window")?,
        drain_time: raw.drain_time.unwrap_or(Dur::from_millis(500)),
    })
}

/// `instances_min..=instances_max` around `instances`; only with autoscaling.
fn scaling_range(knobs: &Knobs<'_>, raw: &TierKnobs, instances: u32) -> Result<(u32, u32), InputError> {
    if raw.autoscale != Some(true) {
        let scaling = [
            raw.instances_min.as_ref().map(|k| (k.span(), "instances_min")),
            raw.instances_max.as_ref().map(|k| (k.span(), "instances_max")),
            raw.target_rps.as_ref().map(|k| (k.span(), "target_rps")),
            raw.scale_interval.as_ref().map(|k| (k.span(), "scale_interval")),
            raw.stabilization_window.as_ref().map(|k| (k.span(), "stabilization_window")),
        ];
        if let Some((span, name)) = scaling.into_iter().flatten().next() {
            return Err(knobs.error(span, format!("{name} cannot be used without autoscale = true")));
        }
        return Ok((instances, instances));
    }
    let min = knobs.count(&raw.instances_min, instances, 1..=INSTANCES_MAX, "instances_min")?;
    let max = knobs.count(&raw.instances_max, instances, 1..=INSTANCES_MAX, "instances_max")?;
    if min > instances {
        let at = raw.instances_min.as_ref().expect("a minimum above the default was given");
        return Err(knobs.conflict(
            at,
            "instances_min",
            "instances",
            "the run starts with fewer instances than the minimum",
        ));
    }
    if max < instances {
        let at = raw.instances_max.as_ref().expect("a maximum below the default was given");
        return Err(knobs.conflict(
            at,
            "instances_max",
            "instances",
            "the run starts with more instances than the maximum",
        ));
    }
    Ok((min, max))
}

/// The limiter and its parameters: `burst` only for a token bucket, `window`
/// only for the window limiters, and a window that holds at least one request.
fn limits(knobs: &Knobs<'_>, raw: &TierKnobs) -> Result<(Limiter, f64, u32, Dur), InputError> {
    let limiter = raw.limiter.unwrap_or(Limiter::None);
    let limit = knobs.rate(&raw.limit, 50.0, "limit")?;
    let window = knobs.positive(&raw.window, Dur::from_secs(1), "window")?;
    let windowed = matches!(limiter, Limiter::FixedWindow | Limiter::SlidingWindow);
    if let (Some(burst), false) = (&raw.burst, limiter == Limiter::TokenBucket) {
        return Err(knobs.conflict(
            burst,
            "burst",
            "limiter",
            "a burst is a token bucket's; set limiter = \"token-bucket\"",
        ));
    }
    if let (Some(window), false) = (&raw.window, windowed) {
        return Err(knobs.conflict(
            window,
            "window",
            "limiter",
            "a window is the window limiters'; set limiter = \"fixed-window\" or \"sliding-window\"",
        ));
    }
    if limiter == Limiter::None {
        if let Some(limit) = &raw.limit {
            return Err(knobs.conflict(limit, "limit", "limiter", "there is no limiter to apply it; choose one"));
        }
    }
    let default_burst = libm::round(limit).max(1.0) as i64;
    let burst = match &raw.burst {
        None => u32::try_from(default_burst.min(1_000_000)).expect("bounded"),
        some => knobs.count(some, 1, 1..=1_000_000, "burst")?,
    };
    if windowed && limit * window.0.as_secs_f64() < 1.0 {
        let at = raw.limit.as_ref().map_or(0..0, Spanned::span);
        return Err(knobs.error(at, "limit x window must allow at least one request per window"));
    }
    Ok((limiter, limit, burst, window))
}

impl AppTier {
    /// The instances the run may have at most: the pool (with autoscaling)
    /// or the fixed set.
    pub fn pool_size(&self) -> u32 {
        if self.autoscale {
            self.instances_max
        } else {
            self.instances
        }
    }

    /// How long after an instance fails (crashes, or loses its database for
    /// a readiness check) the lb may still route to it: `unhealthy_after`
    /// checks a `check_interval` apart, the first within an interval of the
    /// failure, the last ending within `check_timeout`, plus slack.
    pub fn detection_bound(&self) -> Duration {
        self.check_interval.0 * self.unhealthy_after + self.check_timeout.0 + BOUND_SLACK
    }

    /// How long after an instance recovers the lb may take to route to it again.
    pub fn restoration_bound(&self) -> Duration {
        self.check_interval.0 * self.healthy_after + self.check_timeout.0 + BOUND_SLACK
    }

    /// Requests a window limiter admits per window.
    pub fn window_limit(&self) -> u32 {
        let per_window = libm::floor(self.limit * self.window.0.as_secs_f64() + 1e-9);
        assert!(per_window >= 1.0, "configure refuses windows that hold no request");
        per_window as u32
    }
}

#[cfg(test)]
impl AppTier {
    /// The defaults with `knobs`, for unit tests.
    pub fn from_knobs(knobs: &str) -> AppTier {
        let source = format!("name = \"t\"\nsystem = \"app-tier\"\n[knobs]\n{knobs}\n");
        configure(&Knobs::new("t.toml", &source)).unwrap_or_else(|error| panic!("{error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configure_from(knobs: &str) -> Result<AppTier, InputError> {
        let source = format!("name = \"x\"\nsystem = \"app-tier\"\n[knobs]\n{knobs}\n");
        configure(&Knobs::new("a.toml", &source))
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let tier = configure_from("").unwrap();
        assert_eq!(
            (tier.instances, tier.balancing, tier.health_check),
            (3, Balancing::RoundRobin, HealthCheck::Readiness)
        );
        assert_eq!((tier.unhealthy_after, tier.healthy_after, tier.eject_after, tier.retries), (2, 2, 0, 1));
        assert_eq!((tier.panic_threshold, tier.sticky, tier.sessions_fsync), (0.5, false, Fsync::Never));
        assert_eq!(
            (tier.limiter, tier.autoscale, tier.instances_min, tier.instances_max),
            (Limiter::None, false, 3, 3)
        );
        assert_eq!(tier.pool_size(), 3);
        // 2 checks 200ms apart, a 100ms timeout, 20ms of slack.
        assert_eq!(tier.detection_bound(), Duration::from_millis(520));
    }

    #[test]
    fn limiter_knobs_go_with_their_limiter() {
        let bucket = configure_from("limiter = \"token-bucket\"\nlimit = \"20/s\"\nburst = 5").unwrap();
        assert_eq!((bucket.limit, bucket.burst), (20.0, 5));
        assert_eq!(configure_from("limiter = \"token-bucket\"\nlimit = \"20/s\"").unwrap().burst, 20);
        let window = configure_from("limiter = \"fixed-window\"\nlimit = \"20/s\"\nwindow = \"500ms\"").unwrap();
        assert_eq!(window.window_limit(), 10);
        let error = configure_from("limiter = \"fixed-window\"\nburst = 5").unwrap_err().to_string();
        assert!(error.contains("burst cannot be used with limiter"), "{error}");
        let error = configure_from("limiter = \"token-bucket\"\nwindow = \"1s\"").unwrap_err().to_string();
        assert!(error.contains("window cannot be used with limiter"), "{error}");
        let error = configure_from("limit = \"5/s\"").unwrap_err().to_string();
        assert!(error.contains("limit cannot be used with limiter"), "{error}");
        let error = configure_from("limiter = \"sliding-window\"\nlimit = \"1/s\"\nwindow = \"500ms\"").unwrap_err();
        assert!(error.to_string().contains("at least one request per window"), "{error}");
    }

    #[test]
    fn scaling_knobs_need_autoscale_and_a_range_around_the_start() {
        let error = configure_from("instances_max = 5").unwrap_err().to_string();
        assert!(error.contains("instances_max cannot be used without autoscale = true"), "{error}");
        let scaled = configure_from("autoscale = true\ninstances = 2\ninstances_min = 1\ninstances_max = 5").unwrap();
        assert_eq!((scaled.instances_min, scaled.instances_max, scaled.pool_size()), (1, 5, 5));
        let error = configure_from("autoscale = true\ninstances = 2\ninstances_min = 3").unwrap_err().to_string();
        assert!(error.contains("instances_min cannot be used with instances"), "{error}");
        let error = configure_from("autoscale = true\ninstances = 4\ninstances_max = 3").unwrap_err().to_string();
        assert!(error.contains("instances_max cannot be used with instances"), "{error}");
    }

    #[test]
    fn conflicting_knobs_are_errors_at_their_place() {
        let error = configure_from("check_interval = \"100ms\"\ncheck_timeout = \"200ms\"").unwrap_err().to_string();
        assert!(error.starts_with("a.toml:5:17: check_timeout cannot be used with check_interval"), "{error}");
        let error = configure_from("sticky = true\nsessions_fsync = \"always\"").unwrap_err().to_string();
        assert!(error.contains("sticky cannot be used with sessions_fsync"), "{error}");
        assert!(configure_from("instances = 0").is_err());
        assert!(configure_from("instances = 17").is_err());
        assert!(configure_from("balancing = \"random\"").is_err());
    }
}
