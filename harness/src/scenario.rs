//! Scenario files: the TOML a person writes, parsed and validated into a
//! [`Scenario`] that the planner and runner take.
//!
//! This module reads and checks; it never runs a simulation. Every mistake is
//! an [`InputError`] naming the file, line and column, what was expected and,
//! for a misspelt key or value, the nearest valid one. docs/scenarios.md is the
//! reference for every key; keep the two in step.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{nearest, InputError};
use crate::system::{Configured, Registry, HARNESS_INVARIANTS};
use crate::units::{Dur, DurRange, HostPattern, Probability, Rate};

/// The fault kinds a `[[fault]]` can have.
pub const FAULT_KINDS: &[(&str, &str)] = &[
    ("partition", "drop every message between two host groups (or one way with oneway = true)"),
    ("latency", "give the links between two host groups a latency range"),
    ("loss", "break links between two host groups at a rate per message (TCP connections reset)"),
    ("clog", "hold every message between two host groups, then deliver them all at the end"),
    ("crash", "stop hosts (state in memory is lost); restart_after brings them back"),
    ("restart", "bounce running hosts: stop and start their software at once"),
];

/// The random fault generators of `[chaos]`.
pub const CHAOS_KINDS: &[(&str, &str)] = &[
    ("crash", "each host alternates exponential up (mean mtbf) and down (mean mttr) times"),
    ("restart", "bounce a random host, at exponential intervals of mean `every`"),
    ("partition", "split the hosts in two random groups, at exponential intervals of mean `every`"),
    ("latency", "slow a random link to `latency`, at exponential intervals of mean `every`"),
    ("loss", "drop messages on a random link at `rate`, at exponential intervals of mean `every`"),
    ("clog", "hold a random link's messages, at exponential intervals of mean `every`"),
];

/// A validated scenario: everything the planner and runner need, with every
/// default filled in.
#[derive(Clone)]
pub struct Scenario {
    /// The file as the user named it (used in replay commands).
    pub file: String,
    pub name: String,
    pub about: Option<String>,
    pub system_name: String,
    /// The configured system under test.
    pub system: Arc<dyn Configured>,
    /// The `[knobs]` table as written (the shrinker writes it back out).
    pub knobs: toml::Table,
    /// Every host: the system's, then the workload clients ("client-0", ...)
    /// and the probe ("client-probe") when there is one.
    pub hosts: Vec<String>,
    /// The system's own hosts: the only ones that can crash or restart.
    pub system_hosts: Vec<String>,
    /// Length of the fault phase; the workload runs through it and the heal phase.
    pub duration: Dur,
    /// Length of the heal phase after `duration`: every fault is off.
    pub heal: Dur,
    pub tick: Dur,
    pub seeds: u64,
    /// A pinned seed: `run` and `replay` default to it, and sweeps and tests
    /// run it alone (a shrunk regression file reproduces only with its seed).
    pub seed: Option<u64>,
    pub network: Network,
    pub workload: Workload,
    pub faults: Vec<FaultSpec>,
    pub chaos: Chaos,
    pub check: Check,
    pub metrics: MetricsConfig,
    pub slo: Vec<Slo>,
}

impl fmt::Debug for Scenario {
    /// The essentials (the configured system has no `Debug`): enough to tell
    /// which workload a failing property test drew.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scenario")
            .field("file", &self.file)
            .field("system", &self.system_name)
            .field("duration", &self.duration)
            .field("workload", &self.workload)
            .field("faults", &self.faults.len())
            .finish_non_exhaustive()
    }
}

impl Scenario {
    /// Simulated time at which the workload stops issuing requests.
    pub fn end(&self) -> Dur {
        Dur(self.duration.0 + self.heal.0)
    }

    /// Host names matched by any of `patterns`, in host order.
    pub fn resolve(&self, patterns: &[HostPattern]) -> Vec<String> {
        resolve_hosts(&self.hosts, patterns)
    }

    /// The system's hosts matched by any of `patterns` (for crash and restart).
    pub fn resolve_system(&self, patterns: &[HostPattern]) -> Vec<String> {
        resolve_hosts(&self.system_hosts, patterns)
    }

    /// The effective settings, one `key = value` line each, as `run` prints
    /// them before starting (so a log always shows what ran).
    pub fn knob_lines(&self) -> Vec<(String, String)> {
        let mut lines = vec![
            ("system".to_string(), self.system_name.clone()),
            ("duration".to_string(), self.duration.to_string()),
            ("heal".to_string(), self.heal.to_string()),
            ("tick".to_string(), self.tick.to_string()),
            ("network.latency".to_string(), self.network.latency.to_string()),
            ("network.tcp_capacity".to_string(), self.network.tcp_capacity.to_string()),
            ("workload.clients".to_string(), self.workload.clients.to_string()),
            ("workload.rate".to_string(), format!("{}/s", self.workload.rate.per_second)),
            ("workload.arrival".to_string(), self.workload.arrival.to_string()),
            ("workload.deadline".to_string(), self.workload.deadline.to_string()),
        ];
        for (key, value) in self.system.knobs() {
            lines.push((format!("knobs.{key}"), value));
        }
        lines.push(("faults".to_string(), self.faults.len().to_string()));
        let generators: Vec<&str> = self.chaos.generators.iter().map(|g| g.kind()).collect();
        lines.push(("chaos".to_string(), if generators.is_empty() { "none".into() } else { generators.join(", ") }));
        lines.push(("chaos.swarm".to_string(), self.chaos.swarm.to_string()));
        lines.push(("check.invariants".to_string(), self.check.invariants.join(", ")));
        lines.push(("check.expect".to_string(), self.check.expect.to_string()));
        lines.push(("check.recover_within".to_string(), self.check.recover_within.to_string()));
        if !self.check.reached.is_empty() {
            lines.push(("check.reached".to_string(), self.check.reached.join(", ")));
        }
        let probe = match self.metrics.probe_interval {
            Some(interval) => format!(
                "every {interval}, {} consecutive to change state, up when {}",
                self.metrics.probe_threshold,
                match self.metrics.probe_up {
                    ProbeUp::Served => "served",
                    ProbeUp::Fresh => "fresh",
                }
            ),
            None => "none".to_string(),
        };
        lines.push(("metrics.probe".to_string(), probe));
        if self.metrics.probe_interval.is_none() {
            lines.push((
                "metrics.window".to_string(),
                format!("{}, up at {}% good", self.metrics.window, self.metrics.up_ratio * 100.0),
            ));
        }
        for slo in &self.slo {
            lines.push((format!("slo.{}", slo.metric), format!("{} {}", slo.op, slo.text)));
        }
        lines
    }
}

/// Host names matched by any of `patterns`, in the order of `hosts`.
pub fn resolve_hosts(hosts: &[String], patterns: &[HostPattern]) -> Vec<String> {
    hosts.iter().filter(|host| patterns.iter().any(|p| p.matches(host))).cloned().collect()
}

#[derive(Clone, Debug, Serialize)]
pub struct Network {
    /// Latency range of every link when no fault changes it.
    pub latency: DurRange,
    /// turmoil's TCP capacity: a listener's accept backlog and a socket's
    /// buffer, in segments. turmoil panics when a backlog overflows.
    pub tcp_capacity: usize,
}

/// Default `[network] tcp_capacity`: turmoil's own 64 overflows when a clog
/// releases a burst of connection attempts at once.
pub const TCP_CAPACITY_DEFAULT: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Exponential gaps: a Poisson process (the default; open loop).
    Poisson,
    /// Equal gaps: one request every 1/rate.
    Uniform,
}

impl fmt::Display for Arrival {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arrival::Poisson => "poisson",
            Arrival::Uniform => "uniform",
        })
    }
}

/// How the time view of a run is measured (`[metrics]`).
#[derive(Clone, Debug, Serialize)]
pub struct MetricsConfig {
    /// Interval of the health probe, when the system declares one; `None`
    /// measures time availability from windows of the request stream.
    pub probe_interval: Option<Dur>,
    /// Width of a request-stream window.
    pub window: Dur,
    /// A window is up when at least this share of its requests is good.
    pub up_ratio: f64,
    /// Consecutive probes that must disagree with the state to change it.
    pub probe_threshold: usize,
    /// Which probe answers count as up.
    pub probe_up: ProbeUp,
}

/// Which probe answers count as up (`[metrics] probe_up`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeUp {
    /// Any answer, fresh or degraded (a fallback keeps the service up).
    Served,
    /// Only fresh answers: a fallback counts as down, so outages are the
    /// stretches of degraded service.
    Fresh,
}

/// Most seeds one scenario may ask for (`seeds`, `--seeds`, `--seed-range`).
pub const SEEDS_MAX: u64 = 10_000_000;

/// The probe's host name, when the system declares a probe. It sits with the
/// workload clients: `client-*` patterns and isolations include it, and
/// random faults carry it along with `client-0` rather than pick it alone.
pub const PROBE_HOST: &str = "client-probe";

#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    pub clients: u32,
    /// Total arrival rate over all clients.
    pub rate: Rate,
    pub arrival: Arrival,
    /// Each request's deadline, counted from its intended start.
    pub deadline: Dur,
}

/// Two host groups whose links a network fault acts on.
#[derive(Clone, Debug, Serialize)]
pub enum Target {
    /// Links from these hosts to every other host.
    Isolate(Vec<HostPattern>),
    /// Links between the two groups (from the first to the second when one way).
    Between(Vec<HostPattern>, Vec<HostPattern>),
}

/// An explicit, timed fault from a `[[fault]]` table.
#[derive(Clone, Debug, Serialize)]
pub struct FaultSpec {
    /// Index among the file's `[[fault]]` tables.
    pub index: usize,
    pub at: Dur,
    /// How long it lasts; `None` means until the heal phase.
    pub length: Option<Dur>,
    pub kind: FaultSpecKind,
}

#[derive(Clone, Debug, Serialize)]
pub enum FaultSpecKind {
    Partition { target: Target, oneway: bool },
    Latency { target: Target, latency: DurRange },
    Loss { target: Target, rate: f64 },
    Clog { target: Target },
    Crash { hosts: Vec<HostPattern> },
    Restart { hosts: Vec<HostPattern> },
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Chaos {
    /// Per seed, switch on a random non-empty subset of the generators.
    pub swarm: bool,
    pub generators: Vec<Generator>,
}

/// A random fault generator; the planner expands it from the seed.
#[derive(Clone, Debug, Serialize)]
pub enum Generator {
    Crash {
        hosts: Vec<HostPattern>,
        mtbf: Dur,
        mttr: Dur,
    },
    Restart {
        hosts: Vec<HostPattern>,
        every: Dur,
    },
    /// `hosts: None` (the default) is every host. The probe is never picked
    /// on its own (an outage that no client saw would be measured); it
    /// follows `client-0` into whatever fault that client is in.
    Partition {
        hosts: Option<Vec<HostPattern>>,
        every: Dur,
        length: DurRange,
    },
    Latency {
        hosts: Option<Vec<HostPattern>>,
        every: Dur,
        length: DurRange,
        latency: DurRange,
    },
    Loss {
        hosts: Option<Vec<HostPattern>>,
        every: Dur,
        length: DurRange,
        rate: f64,
    },
    Clog {
        hosts: Option<Vec<HostPattern>>,
        every: Dur,
        length: DurRange,
    },
}

impl Generator {
    pub fn kind(&self) -> &'static str {
        match self {
            Generator::Crash { .. } => "crash",
            Generator::Restart { .. } => "restart",
            Generator::Partition { .. } => "partition",
            Generator::Latency { .. } => "latency",
            Generator::Loss { .. } => "loss",
            Generator::Clog { .. } => "clog",
        }
    }
}

/// What the scenario claims about its runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Expect {
    /// Every seed passes every check.
    Pass,
    /// A known flaw: some seed of the file's seeds violates this invariant.
    Violation(String),
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Pass => f.write_str("pass"),
            Expect::Violation(invariant) => write!(f, "violation:{invariant}"),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// Invariants to check: the system's and the harness's.
    pub invariants: Vec<String>,
    pub expect: Expect,
    /// System events some seed must report, so that a sweep cannot pass vacuously.
    pub reached: Vec<String>,
    /// After the heal phase starts, every request invoked later than this must succeed.
    pub recover_within: Dur,
}

/// One service-level objective: a metric, a comparison and a threshold.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Slo {
    pub metric: String,
    pub op: Comparison,
    pub threshold: f64,
    /// The threshold as written ("99.5%", "200ms"), for messages.
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Comparison {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Comparison {
    pub fn holds(self, measured: f64, threshold: f64) -> bool {
        match self {
            Comparison::Lt => measured < threshold,
            Comparison::Le => measured <= threshold,
            Comparison::Gt => measured > threshold,
            Comparison::Ge => measured >= threshold,
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
        })
    }
}

/// How an SLO metric's threshold is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SloUnit {
    /// A percentage ("99.5%"); stored as a fraction.
    Percent,
    /// A duration ("200ms"); stored in seconds.
    Duration,
}

/// SLO metrics a scenario may set, with their units and meaning.
pub const SLO_METRICS: &[(&str, SloUnit, &str)] = &[
    ("availability", SloUnit::Percent, "good requests / requests (fresh and degraded answers count as served)"),
    ("fresh_availability", SloUnit::Percent, "fresh (non-degraded) good requests / requests"),
    ("time_availability", SloUnit::Percent, "up windows / windows"),
    ("error_rate", SloUnit::Percent, "requests that failed or timed out / requests"),
    ("p50_latency", SloUnit::Duration, "median latency of good requests, from intended start"),
    ("p95_latency", SloUnit::Duration, "95th percentile latency of good requests"),
    ("p99_latency", SloUnit::Duration, "99th percentile latency of good requests"),
    ("p999_latency", SloUnit::Duration, "99.9th percentile latency of good requests"),
    ("max_latency", SloUnit::Duration, "largest latency of a good request"),
    ("mttr", SloUnit::Duration, "mean outage length (0 when there is no outage)"),
    ("mttd", SloUnit::Duration, "mean time from a fault's start to the system's detection event"),
    ("time_to_recover", SloUnit::Duration, "mean time from a fault's end to the service being up again"),
];

// ---------------------------------------------------------------------------
// The raw file, as serde sees it. Fields that need checks beyond their type
// are `Spanned`, so a later error can point at them.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(default)]
    about: Option<String>,
    system: Spanned<String>,
    duration: Spanned<Dur>,
    #[serde(default)]
    heal: Option<Spanned<Dur>>,
    #[serde(default)]
    tick: Option<Spanned<Dur>>,
    #[serde(default)]
    seeds: Option<Spanned<i64>>,
    #[serde(default)]
    seed: Option<Spanned<crate::units::Seed>>,
    #[serde(default)]
    network: Option<RawNetwork>,
    /// Validated by the system, from the source text (see [`Knobs`]).
    #[serde(default)]
    knobs: Option<toml::Table>,
    workload: RawWorkload,
    #[serde(default)]
    fault: Vec<Spanned<RawFault>>,
    #[serde(default)]
    chaos: Option<RawChaos>,
    #[serde(default)]
    check: Option<RawCheck>,
    #[serde(default)]
    metrics: Option<RawMetrics>,
    #[serde(default)]
    slo: Option<Spanned<toml::Table>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    #[serde(default)]
    probe_interval: Option<Spanned<Dur>>,
    #[serde(default)]
    window: Option<Spanned<Dur>>,
    #[serde(default)]
    up_ratio: Option<Spanned<Probability>>,
    #[serde(default)]
    probe_threshold: Option<Spanned<i64>>,
    #[serde(default)]
    probe_up: Option<ProbeUp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    #[serde(default)]
    latency: Option<Spanned<DurRange>>,
    #[serde(default)]
    tcp_capacity: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    #[serde(default)]
    clients: Option<Spanned<i64>>,
    rate: Spanned<Rate>,
    #[serde(default)]
    arrival: Option<Arrival>,
    #[serde(default)]
    deadline: Option<Spanned<Dur>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum RawFaultKind {
    Partition,
    Latency,
    Loss,
    Clog,
    Crash,
    Restart,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    kind: Spanned<RawFaultKind>,
    at: Spanned<Dur>,
    #[serde(default, rename = "for")]
    length: Option<Spanned<Dur>>,
    #[serde(default)]
    hosts: Option<Spanned<Vec<HostPattern>>>,
    #[serde(default)]
    between: Option<Spanned<Vec<Vec<HostPattern>>>>,
    #[serde(default)]
    oneway: Option<Spanned<bool>>,
    #[serde(default)]
    restart_after: Option<Spanned<Dur>>,
    #[serde(default)]
    latency: Option<Spanned<DurRange>>,
    #[serde(default)]
    rate: Option<Spanned<Probability>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChaos {
    #[serde(default)]
    swarm: bool,
    #[serde(default)]
    crash: Option<Spanned<RawChaosCrash>>,
    #[serde(default)]
    restart: Option<Spanned<RawChaosRestart>>,
    #[serde(default)]
    partition: Option<Spanned<RawChaosLink>>,
    #[serde(default)]
    latency: Option<Spanned<RawChaosLink>>,
    #[serde(default)]
    loss: Option<Spanned<RawChaosLink>>,
    #[serde(default)]
    clog: Option<Spanned<RawChaosLink>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChaosCrash {
    hosts: Spanned<Vec<HostPattern>>,
    mtbf: Spanned<Dur>,
    mttr: Spanned<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChaosRestart {
    hosts: Spanned<Vec<HostPattern>>,
    every: Spanned<Dur>,
}

/// `[chaos.partition]`, `[chaos.latency]`, `[chaos.loss]` and `[chaos.clog]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChaosLink {
    #[serde(default)]
    hosts: Option<Spanned<Vec<HostPattern>>>,
    every: Spanned<Dur>,
    #[serde(rename = "for")]
    length: Spanned<DurRange>,
    #[serde(default)]
    latency: Option<Spanned<DurRange>>,
    #[serde(default)]
    rate: Option<Spanned<Probability>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    #[serde(default)]
    invariants: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    expect: Option<Spanned<String>>,
    #[serde(default)]
    reached: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    recover_within: Option<Spanned<Dur>>,
}

// ---------------------------------------------------------------------------

/// The `[knobs]` table of a scenario file, handed to the system to validate.
/// It keeps the file's text, so a system's errors point into the file too.
pub struct Knobs<'a> {
    file: &'a str,
    source: &'a str,
}

impl<'a> Knobs<'a> {
    pub fn new(file: &'a str, source: &'a str) -> Knobs<'a> {
        Knobs { file, source }
    }

    /// Deserializes the `[knobs]` table into the system's knob type (usually a
    /// struct with `#[serde(deny_unknown_fields, default)]`); an absent table
    /// is the type's default.
    pub fn parse<T: DeserializeOwned + Default>(&self) -> Result<T, InputError> {
        #[derive(Deserialize)]
        struct Only<T> {
            #[serde(default = "Option::default")]
            knobs: Option<T>,
        }
        let only: Only<T> = parse_toml(self.file, self.source)?;
        Ok(only.knobs.unwrap_or_default())
    }

    /// An error at a knob's value (use `Spanned` fields to know the span).
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> InputError {
        InputError::at(self.file, self.source, span, message)
    }

    /// A whole-number knob within `range`, or `default` when absent.
    pub fn count(
        &self,
        value: &Option<Spanned<i64>>,
        default: u32,
        range: std::ops::RangeInclusive<i64>,
        name: &str,
    ) -> Result<u32, InputError> {
        match value {
            None => Ok(default),
            Some(v) if range.contains(v.get_ref()) => {
                Ok(u32::try_from(*v.get_ref()).expect("ranges of counts fit u32"))
            }
            Some(v) => Err(self.error(
                v.span(),
                format!("{name} must be between {} and {}, found {}", range.start(), range.end(), v.get_ref()),
            )),
        }
    }

    /// A duration knob that must be longer than zero, or `default` when absent.
    pub fn positive(&self, value: &Option<Spanned<Dur>>, default: Dur, name: &str) -> Result<Dur, InputError> {
        match value {
            None => Ok(default),
            Some(d) if !d.get_ref().0.is_zero() => Ok(*d.get_ref()),
            Some(d) => Err(self.error(d.span(), format!("{name} must be longer than zero"))),
        }
    }

    /// An error about the `[knobs]` table as a whole.
    pub fn table_error(&self, message: impl Into<String>) -> InputError {
        match self.source.find("[knobs]") {
            Some(start) => InputError::at(self.file, self.source, start..start + 7, message),
            None => InputError::new(self.file, message),
        }
    }
}

/// Deserializes TOML, turning toml's and serde's errors into [`InputError`]s
/// with positions, the table the key is in, and the nearest valid key.
pub fn parse_toml<T: DeserializeOwned>(file: &str, source: &str) -> Result<T, InputError> {
    toml::from_str(source).map_err(|error| toml_error(file, source, &error))
}

fn toml_error(file: &str, source: &str, error: &toml::de::Error) -> InputError {
    let span = error.span().unwrap_or(0..0);
    let message = error.message().trim().to_string();
    let table = enclosing_table(source, span.start);
    let mut result = InputError::at(file, source, span.clone(), message.clone());
    if let Some((word, expected)) = parse_unknown(&message, "field") {
        let place = table.map_or("at the top level".to_string(), |t| format!("in {t}"));
        result.message = format!("unknown key {word:?} {place}");
        let expected_list = expected.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ");
        let help = match nearest(&word, expected.iter().map(String::as_str)) {
            Some(suggestion) => format!("did you mean {suggestion:?}? valid keys: {expected_list}"),
            None if expected.is_empty() => "this table takes no keys".to_string(),
            None => format!("valid keys: {expected_list}"),
        };
        result.help = Some(help);
        if word == "system" && table == Some("[knobs]") {
            result.help = Some("the system is chosen at the top level with system = \"...\"".into());
        }
    } else if let Some((word, expected)) = parse_unknown(&message, "variant") {
        let expected_list = expected.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ");
        result.message = format!("unknown value {word:?}");
        result.help = Some(match nearest(&word, expected.iter().map(String::as_str)) {
            Some(suggestion) => format!("did you mean {suggestion:?}? expected one of {expected_list}"),
            None => format!("expected one of {expected_list}"),
        });
    } else if let Some(field) = message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
        let place = table.map_or("at the top level".to_string(), |t| format!("in {t}"));
        result.message = format!("missing key {field:?} {place}");
        result.help = Some(missing_key_help(field));
    } else if message.contains("duplicate key") && source.contains("[system]") {
        result.help = Some("the system's knobs go in a [knobs] table; `system = \"...\"` names the system".into());
    }
    result
}

fn missing_key_help(field: &str) -> String {
    match field {
        "system" => "name the system under test, e.g. system = \"echo\" (faultline list shows them)".into(),
        "duration" => "set the fault phase's length, e.g. duration = \"30s\"".into(),
        "workload" => "add a [workload] table with at least rate = \"100/s\"".into(),
        "rate" => "set the total request rate, e.g. rate = \"100/s\"".into(),
        "name" => "give the scenario a name, e.g. name = \"echo: baseline\"".into(),
        "kind" => format!(
            "every [[fault]] needs a kind: one of {}",
            FAULT_KINDS.iter().map(|(k, _)| format!("{k:?}")).collect::<Vec<_>>().join(", ")
        ),
        "at" => "say when the fault starts, e.g. at = \"10s\"".into(),
        other => format!("add {other} = ... (docs/scenarios.md lists every key)"),
    }
}

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" messages.
fn parse_unknown(message: &str, what: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix(&format!("unknown {what} `"))?;
    let (word, rest) = rest.split_once('`')?;
    let expected = rest.split('`').skip(1).step_by(2).map(str::to_string).collect::<Vec<_>>();
    Some((word.to_string(), expected))
}

/// The `[table]` or `[[array]]` header above a byte offset, if any.
fn enclosing_table(source: &str, offset: usize) -> Option<&str> {
    let before = &source[..offset.min(source.len())];
    before
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.starts_with('['))
        .map(|line| line.split('#').next().unwrap_or(line).trim())
}

// ---------------------------------------------------------------------------

/// Reads and validates a scenario file. Runs nothing.
pub fn load(path: &Path, registry: &Registry) -> Result<Scenario, InputError> {
    let file = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|error| {
        let help = if error.kind() == std::io::ErrorKind::NotFound {
            "check the path; `faultline sweep scenarios` runs every scenario shipped in the repository"
        } else {
            "check the file's permissions and that it is UTF-8 text"
        };
        InputError::new(&file, format!("cannot read the scenario file: {error}")).with_help(help)
    })?;
    parse(&file, &source, registry)
}

/// Validates a scenario from its text; `file` names it in errors and replay commands.
pub fn parse(file: &str, source: &str, registry: &Registry) -> Result<Scenario, InputError> {
    let raw: RawScenario = parse_toml(file, source)?;
    let at = |span: Range<usize>, message: String| InputError::at(file, source, span, message);

    let system_name = raw.system.get_ref().clone();
    let Some(entry) = registry.get(&system_name) else {
        let names: Vec<&str> = registry.names().collect();
        let mut error = at(raw.system.span(), format!("unknown system {system_name:?}"));
        error.help = Some(match nearest(&system_name, names.iter().copied()) {
            Some(n) => format!("did you mean {n:?}? systems: {}", names.join(", ")),
            None => format!("systems: {}", names.join(", ")),
        });
        return Err(error);
    };
    let system = (entry.configure)(&Knobs::new(file, source))?;

    let duration = *raw.duration.get_ref();
    if duration.0.is_zero() {
        return Err(at(raw.duration.span(), "duration must be longer than zero".into()));
    }
    let tick = raw.tick.as_ref().map_or(Dur::from_millis(1), |t| *t.get_ref());
    if let Some(spanned) = &raw.tick {
        let nanos = tick.as_nanos();
        if nanos == 0 || !nanos.is_multiple_of(1_000_000) {
            return Err(at(spanned.span(), format!("tick must be a whole number of milliseconds, found {tick}"))
                .with_help(
                "tokio's timer wheel rounds to 1ms: a finer tick makes sleeps end early (use \"1ms\", \"2ms\", ...)",
            ));
        }
        if tick > Dur::from_millis(100) {
            return Err(at(spanned.span(), format!("tick {tick} is too coarse: at most 100ms")));
        }
    }
    let heal = raw.heal.as_ref().map_or(Dur::from_secs(5), |h| *h.get_ref());
    let seed = raw.seed.as_ref().map(|s| s.get_ref().0);
    let seeds = match &raw.seeds {
        None => 8,
        Some(s) if (1..=SEEDS_MAX as i64).contains(s.get_ref()) => *s.get_ref() as u64,
        Some(s) => return Err(at(s.span(), format!("seeds must be between 1 and {SEEDS_MAX}, found {}", s.get_ref()))),
    };

    let latency = raw
        .network
        .as_ref()
        .and_then(|n| n.latency.as_ref())
        .map_or(DurRange { min: Dur::from_millis(1), max: Dur::from_millis(10) }, |l| *l.get_ref());
    let tcp_capacity = match raw.network.as_ref().and_then(|n| n.tcp_capacity.as_ref()) {
        None => TCP_CAPACITY_DEFAULT,
        Some(c) if (1..=1_000_000).contains(c.get_ref()) => *c.get_ref() as usize,
        Some(c) => {
            return Err(at(c.span(), format!("tcp_capacity must be between 1 and 1000000, found {}", c.get_ref())))
        }
    };
    let network = Network { latency, tcp_capacity };

    let clients = match &raw.workload.clients {
        None => 1,
        Some(c) if (1..=64).contains(c.get_ref()) => *c.get_ref() as u32,
        Some(c) => {
            return Err(at(c.span(), format!("clients must be between 1 and 64, found {}", c.get_ref()))
                .with_help("each client is a simulated host, and each host costs time every tick"))
        }
    };
    let rate = *raw.workload.rate.get_ref();
    if rate.per_second <= 0.0 || rate.per_second > 100_000.0 {
        return Err(at(raw.workload.rate.span(), format!("rate must be above 0/s and at most 100000/s, found {rate}")));
    }
    let deadline = raw.workload.deadline.as_ref().map_or(Dur::from_secs(1), |d| *d.get_ref());
    if deadline.0.is_zero() {
        let span = raw.workload.deadline.as_ref().map(|d| d.span()).unwrap_or(0..0);
        return Err(at(span, "deadline must be longer than zero".into()));
    }
    let workload = Workload { clients, rate, arrival: raw.workload.arrival.unwrap_or(Arrival::Poisson), deadline };

    let metrics = validate_metrics(raw.metrics.as_ref(), system.has_probe(), tick, &at)?;
    let system_hosts = system.hosts();
    let mut hosts = system_hosts.clone();
    for index in 0..clients {
        hosts.push(client_host(index));
    }
    if metrics.probe_interval.is_some() {
        hosts.push(PROBE_HOST.to_string());
    }
    let distinct: BTreeSet<&String> = hosts.iter().collect();
    assert_eq!(distinct.len(), hosts.len(), "system hosts must not repeat or clash with client names");

    let check_patterns = |patterns: &Spanned<Vec<HostPattern>>| -> Result<Vec<HostPattern>, InputError> {
        if patterns.get_ref().is_empty() {
            return Err(at(patterns.span(), "expected at least one host name or glob".into()));
        }
        for pattern in patterns.get_ref() {
            if resolve_hosts(&hosts, std::slice::from_ref(pattern)).is_empty() {
                let mut error = at(patterns.span(), format!("host pattern {:?} matches no host", pattern.as_str()));
                error.help = Some(match nearest(pattern.as_str(), hosts.iter().map(String::as_str)) {
                    Some(h) => format!("did you mean {h:?}? hosts: {}", hosts.join(", ")),
                    None => format!("hosts: {}", hosts.join(", ")),
                });
                return Err(error);
            }
        }
        Ok(patterns.get_ref().clone())
    };

    // Crashes and restarts act on the system's software; turmoil cannot crash
    // a client (its workload would be lost, not restarted).
    let check_system_patterns = |patterns: &Spanned<Vec<HostPattern>>| -> Result<Vec<HostPattern>, InputError> {
        let checked = check_patterns(patterns)?;
        for pattern in &checked {
            if resolve_hosts(&system_hosts, std::slice::from_ref(pattern)).is_empty() {
                return Err(at(
                    patterns.span(),
                    format!(
                        "host pattern {:?} matches only workload clients, which cannot crash or restart",
                        pattern.as_str()
                    ),
                )
                .with_help(format!("the system's hosts: {}", system_hosts.join(", "))));
            }
        }
        Ok(checked)
    };

    let mut faults = Vec::new();
    for (index, spanned) in raw.fault.iter().enumerate() {
        faults.push(validate_fault(index, spanned, duration, &check_patterns, &check_system_patterns, &at)?);
    }

    let chaos = match &raw.chaos {
        None => Chaos::default(),
        Some(raw_chaos) => validate_chaos(raw_chaos, &check_patterns, &check_system_patterns, &at)?,
    };

    let check = validate_check(raw.check.as_ref(), &*system, entry.doc.invariants, heal, &workload, file, source)?;
    let slo = match &raw.slo {
        None => Vec::new(),
        Some(table) => validate_slo(table, file, source)?,
    };

    Ok(Scenario {
        file: file.to_string(),
        name: raw.name,
        about: raw.about,
        system_name,
        system,
        knobs: raw.knobs.unwrap_or_default(),
        hosts,
        system_hosts,
        duration,
        heal,
        tick,
        seeds,
        seed,
        network,
        workload,
        faults,
        chaos,
        check,
        metrics,
        slo,
    })
}

fn validate_metrics(
    raw: Option<&RawMetrics>,
    has_probe: bool,
    tick: Dur,
    at: &ErrorAt<'_>,
) -> Result<MetricsConfig, InputError> {
    let probe_interval = match raw.and_then(|r| r.probe_interval.as_ref()) {
        None => has_probe.then_some(Dur::from_millis(100)),
        Some(interval) if interval.get_ref().0.is_zero() => None,
        Some(interval) if !has_probe => {
            return Err(at(interval.span(), "probe_interval is set, but this system declares no health probe".into())
                .with_help("remove it: time availability then comes from windows of the request stream"))
        }
        Some(interval) if *interval.get_ref() < tick => {
            return Err(at(
                interval.span(),
                format!("probe_interval {} is shorter than the tick ({tick})", interval.get_ref()),
            ))
        }
        Some(interval) => Some(*interval.get_ref()),
    };
    let window = match raw.and_then(|r| r.window.as_ref()) {
        None => Dur::from_secs(1),
        Some(w) if w.get_ref().0.is_zero() => return Err(at(w.span(), "window must be longer than zero".into())),
        Some(w) => *w.get_ref(),
    };
    let up_ratio = raw.and_then(|r| r.up_ratio.as_ref()).map_or(0.9, |r| r.get_ref().0);
    let probe_threshold = match raw.and_then(|r| r.probe_threshold.as_ref()) {
        None => 2,
        Some(f) if (1..=100).contains(f.get_ref()) => *f.get_ref() as usize,
        Some(f) => {
            return Err(at(f.span(), format!("probe_threshold must be between 1 and 100, found {}", f.get_ref())))
        }
    };
    let probe_up = raw.and_then(|r| r.probe_up).unwrap_or(ProbeUp::Served);
    Ok(MetricsConfig { probe_interval, window, up_ratio, probe_threshold, probe_up })
}

/// The host name of workload client `index`.
pub fn client_host(index: u32) -> String {
    format!("client-{index}")
}

fn span_of<T>(value: &Option<Spanned<T>>) -> Range<usize> {
    value.as_ref().map_or(0..0, |v| v.span())
}

type PatternCheck<'a> = dyn Fn(&Spanned<Vec<HostPattern>>) -> Result<Vec<HostPattern>, InputError> + 'a;
type ErrorAt<'a> = dyn Fn(Range<usize>, String) -> InputError + 'a;

fn validate_fault(
    index: usize,
    spanned: &Spanned<RawFault>,
    duration: Dur,
    check_patterns: &PatternCheck<'_>,
    check_system_patterns: &PatternCheck<'_>,
    at: &ErrorAt<'_>,
) -> Result<FaultSpec, InputError> {
    let raw = spanned.get_ref();
    let kind = *raw.kind.get_ref();
    let kind_name = format!("{kind:?}").to_lowercase();
    let start = *raw.at.get_ref();
    if start >= duration {
        return Err(at(
            raw.at.span(),
            format!("fault starts at {start}, but the fault phase ends at duration = {duration}"),
        )
        .with_help("faults must start before `duration`; the heal phase after it has no faults"));
    }
    // Keys that a kind does not use are mistakes, not silently ignored.
    let not_for = |present: bool, span: Range<usize>, key: &str, help: &str| -> Result<(), InputError> {
        if present {
            Err(at(span, format!("key {key:?} does not apply to a fault of kind {kind_name:?}"))
                .with_help(help.to_string()))
        } else {
            Ok(())
        }
    };
    let is_link =
        matches!(kind, RawFaultKind::Partition | RawFaultKind::Latency | RawFaultKind::Loss | RawFaultKind::Clog);
    if is_link {
        not_for(
            raw.restart_after.is_some(),
            span_of(&raw.restart_after),
            "restart_after",
            "only crash faults restart; use `for` to bound a network fault",
        )?;
    }
    if kind != RawFaultKind::Latency {
        not_for(raw.latency.is_some(), span_of(&raw.latency), "latency", "latency goes with kind = \"latency\"")?;
    }
    if kind != RawFaultKind::Loss {
        not_for(raw.rate.is_some(), span_of(&raw.rate), "rate", "rate goes with kind = \"loss\"")?;
    }
    if kind != RawFaultKind::Partition {
        not_for(raw.oneway.is_some(), span_of(&raw.oneway), "oneway", "oneway goes with kind = \"partition\"")?;
    }
    let length = raw.length.as_ref().map(|l| *l.get_ref());
    if let (Some(spanned_length), Some(length)) = (&raw.length, length) {
        if length.0.is_zero() {
            return Err(at(spanned_length.span(), "`for` must be longer than zero".into()));
        }
    }

    let target = |oneway: bool| -> Result<Target, InputError> {
        match (&raw.hosts, &raw.between) {
            (Some(_), Some(between)) => Err(at(between.span(), "give either `hosts` (isolate them from all others) or `between` (two groups), not both".into())),
            (None, None) => Err(at(spanned.span(), format!("a {kind_name} fault needs `hosts` or `between`"))
                .with_help("hosts = [\"db\"] acts on every link of db; between = [[\"cache\"], [\"app-*\"]] on the links between two groups")),
            (Some(hosts), None) => {
                if oneway {
                    return Err(at(hosts.span(), "a one-way partition needs `between` (from the first group to the second)".into()));
                }
                Ok(Target::Isolate(check_patterns(hosts)?))
            }
            (None, Some(between)) => {
                let groups = between.get_ref();
                if groups.len() != 2 {
                    return Err(at(between.span(), format!("`between` takes exactly two host groups, found {}", groups.len()))
                        .with_help("for example between = [[\"cache\"], [\"app-*\"]]"));
                }
                let first = check_patterns(&Spanned::new(between.span(), groups[0].clone()))?;
                let second = check_patterns(&Spanned::new(between.span(), groups[1].clone()))?;
                Ok(Target::Between(first, second))
            }
        }
    };
    let hosts_only = |key_span: Range<usize>| -> Result<Vec<HostPattern>, InputError> {
        if let Some(between) = &raw.between {
            return Err(at(between.span(), format!("a {kind_name} fault acts on hosts, not links: use `hosts`")));
        }
        match &raw.hosts {
            Some(hosts) => check_system_patterns(hosts),
            None => Err(at(key_span, format!("a {kind_name} fault needs `hosts`"))),
        }
    };
    let kind = match kind {
        RawFaultKind::Partition => {
            let oneway = raw.oneway.as_ref().is_some_and(|o| *o.get_ref());
            FaultSpecKind::Partition { target: target(oneway)?, oneway }
        }
        RawFaultKind::Latency => {
            let Some(latency) = &raw.latency else {
                return Err(at(
                    spanned.span(),
                    "a latency fault needs `latency`, e.g. latency = \"50ms..200ms\"".into(),
                ));
            };
            FaultSpecKind::Latency { target: target(false)?, latency: *latency.get_ref() }
        }
        RawFaultKind::Loss => {
            let Some(rate) = &raw.rate else {
                return Err(at(spanned.span(), "a loss fault needs `rate`, e.g. rate = 0.05".into()));
            };
            FaultSpecKind::Loss { target: target(false)?, rate: rate.get_ref().0 }
        }
        RawFaultKind::Clog => FaultSpecKind::Clog { target: target(false)? },
        RawFaultKind::Crash => {
            not_for(
                raw.length.is_some(),
                span_of(&raw.length),
                "for",
                "a crash lasts until restart_after (or the heal phase)",
            )?;
            let hosts = hosts_only(spanned.span())?;
            if let Some(restart) = raw.restart_after.as_ref().filter(|r| r.get_ref().0.is_zero()) {
                return Err(at(restart.span(), "restart_after must be longer than zero".into())
                    .with_help("for an immediate stop and start, use kind = \"restart\""));
            }
            let length = raw.restart_after.as_ref().map(|r| *r.get_ref());
            return Ok(FaultSpec { index, at: start, length, kind: FaultSpecKind::Crash { hosts } });
        }
        RawFaultKind::Restart => {
            not_for(
                raw.length.is_some(),
                span_of(&raw.length),
                "for",
                "a restart is instantaneous; use kind = \"crash\" with restart_after for downtime",
            )?;
            not_for(
                raw.restart_after.is_some(),
                span_of(&raw.restart_after),
                "restart_after",
                "use kind = \"crash\" with restart_after for downtime",
            )?;
            let hosts = hosts_only(spanned.span())?;
            return Ok(FaultSpec { index, at: start, length: None, kind: FaultSpecKind::Restart { hosts } });
        }
    };
    Ok(FaultSpec { index, at: start, length, kind })
}

fn validate_chaos(
    raw: &RawChaos,
    check_patterns: &PatternCheck<'_>,
    check_system_patterns: &PatternCheck<'_>,
    at: &ErrorAt<'_>,
) -> Result<Chaos, InputError> {
    let positive = |d: &Spanned<Dur>, key: &str| -> Result<Dur, InputError> {
        if d.get_ref().0.is_zero() {
            Err(at(d.span(), format!("{key} must be longer than zero")))
        } else {
            Ok(*d.get_ref())
        }
    };
    let mut generators = Vec::new();
    if let Some(crash) = &raw.crash {
        let c = crash.get_ref();
        generators.push(Generator::Crash {
            hosts: check_system_patterns(&c.hosts)?,
            mtbf: positive(&c.mtbf, "mtbf")?,
            mttr: positive(&c.mttr, "mttr")?,
        });
    }
    if let Some(restart) = &raw.restart {
        let r = restart.get_ref();
        generators
            .push(Generator::Restart { hosts: check_system_patterns(&r.hosts)?, every: positive(&r.every, "every")? });
    }
    let links: [(&str, &Option<Spanned<RawChaosLink>>); 4] =
        [("partition", &raw.partition), ("latency", &raw.latency), ("loss", &raw.loss), ("clog", &raw.clog)];
    for (kind, link) in links {
        let Some(link) = link else { continue };
        let l = link.get_ref();
        let hosts = match &l.hosts {
            Some(h) => Some(check_patterns(h)?),
            None => None,
        };
        let every = positive(&l.every, "every")?;
        let length = *l.length.get_ref();
        if length.max.0.is_zero() {
            return Err(at(l.length.span(), "`for` must be longer than zero".into()));
        }
        if kind != "latency" {
            if let Some(latency) = &l.latency {
                return Err(at(latency.span(), format!("key \"latency\" does not apply to [chaos.{kind}]")));
            }
        }
        if kind != "loss" {
            if let Some(rate) = &l.rate {
                return Err(at(rate.span(), format!("key \"rate\" does not apply to [chaos.{kind}]")));
            }
        }
        generators.push(match kind {
            "partition" => Generator::Partition { hosts, every, length },
            "latency" => {
                let Some(latency) = &l.latency else {
                    return Err(at(
                        link.span(),
                        "[chaos.latency] needs `latency`, e.g. latency = \"50ms..500ms\"".into(),
                    ));
                };
                Generator::Latency { hosts, every, length, latency: *latency.get_ref() }
            }
            "loss" => {
                let Some(rate) = &l.rate else {
                    return Err(at(link.span(), "[chaos.loss] needs `rate`, e.g. rate = 0.05".into()));
                };
                Generator::Loss { hosts, every, length, rate: rate.get_ref().0 }
            }
            _ => Generator::Clog { hosts, every, length },
        });
    }
    Ok(Chaos { swarm: raw.swarm, generators })
}

fn validate_check(
    raw: Option<&RawCheck>,
    system: &dyn Configured,
    system_invariants: &[crate::system::InvariantDoc],
    heal: Dur,
    workload: &Workload,
    file: &str,
    source: &str,
) -> Result<Check, InputError> {
    let at = |span: Range<usize>, message: String| InputError::at(file, source, span, message);
    let known: Vec<&str> =
        system_invariants.iter().map(|i| i.name).chain(HARNESS_INVARIANTS.iter().map(|i| i.name)).collect();
    let unknown_invariant = |name: &Spanned<String>| -> InputError {
        let mut error = at(name.span(), format!("unknown invariant {:?}", name.get_ref()));
        error.help = Some(match nearest(name.get_ref(), known.iter().copied()) {
            Some(n) => format!("did you mean {n:?}? invariants: {}", known.join(", ")),
            None => format!("invariants: {}", known.join(", ")),
        });
        error
    };
    let invariants = match raw.and_then(|r| r.invariants.as_ref()) {
        None => known.iter().map(|s| s.to_string()).collect(),
        Some(list) => {
            let mut names = Vec::new();
            for name in list {
                if !known.contains(&name.get_ref().as_str()) {
                    return Err(unknown_invariant(name));
                }
                names.push(name.get_ref().clone());
            }
            names
        }
    };
    let expect = match raw.and_then(|r| r.expect.as_ref()) {
        None => Expect::Pass,
        Some(text) if text.get_ref() == "pass" => Expect::Pass,
        Some(text) => match text.get_ref().strip_prefix("violation:") {
            Some(name) => {
                let name = name.trim();
                if !known.contains(&name) {
                    return Err(unknown_invariant(&Spanned::new(text.span(), name.to_string())));
                }
                if !invariants.iter().any(|i| i == name) {
                    return Err(at(
                        text.span(),
                        format!("expect names {name:?}, which [check] invariants does not run"),
                    )
                    .with_help(format!("add {name:?} to invariants")));
                }
                Expect::Violation(name.to_string())
            }
            None => {
                return Err(at(
                    text.span(),
                    format!("expected \"pass\" or \"violation:<invariant>\", found {:?}", text.get_ref()),
                ))
            }
        },
    };
    let events = system.events();
    let mut reached = Vec::new();
    for name in raw.and_then(|r| r.reached.as_ref()).into_iter().flatten() {
        if !events.contains(&name.get_ref().as_str()) {
            let mut error = at(name.span(), format!("unknown event {:?} in reached", name.get_ref()));
            error.help = Some(match nearest(name.get_ref(), events.iter().copied()) {
                Some(n) => format!("did you mean {n:?}? events: {}", events.join(", ")),
                None => format!("events this system reports: {}", events.join(", ")),
            });
            return Err(error);
        }
        reached.push(name.get_ref().clone());
    }
    let recover_within = match raw.and_then(|r| r.recover_within.as_ref()) {
        None => Dur(heal.0 / 2),
        Some(r) => {
            if *r.get_ref() >= heal {
                return Err(at(
                    r.span(),
                    format!("recover_within ({}) must be shorter than the heal phase ({heal})", r.get_ref()),
                )
                .with_help("lengthen `heal` or shorten recover_within"));
            }
            *r.get_ref()
        }
    };
    if invariants.iter().any(|i| i == "liveness") {
        let window = (heal.0 - recover_within.0).as_secs_f64();
        let expected_requests = window * workload.rate.per_second;
        if expected_requests < 5.0 {
            return Err(InputError::new(
                file,
                format!(
                    "the liveness check would see about {expected_requests:.1} requests after recover_within: too few to judge recovery"
                ),
            )
            .with_help("raise [workload] rate or `heal`, or leave \"liveness\" out of [check] invariants"));
        }
    }
    Ok(Check { invariants, expect, reached, recover_within })
}

fn validate_slo(table: &Spanned<toml::Table>, file: &str, source: &str) -> Result<Vec<Slo>, InputError> {
    // toml::Table keeps no spans of its own; find each key's line in the text.
    let locate = |key: &str| -> Range<usize> {
        let start = table.span().start;
        source[start..]
            .find(&format!("{key} "))
            .or_else(|| source[start..].find(&format!("{key}=")))
            .map_or(table.span(), |offset| start + offset..start + offset + key.len())
    };
    let mut slos = Vec::new();
    for (key, value) in table.get_ref() {
        let Some((_, unit, _)) = SLO_METRICS.iter().find(|(name, _, _)| name == key) else {
            let names: Vec<&str> = SLO_METRICS.iter().map(|(n, _, _)| *n).collect();
            let help = match nearest(key, names.iter().copied()) {
                Some(n) => format!("did you mean {n:?}? metrics: {}", names.join(", ")),
                None => format!("metrics: {}", names.join(", ")),
            };
            return Err(InputError::at(file, source, locate(key), format!("unknown SLO metric {key:?} in [slo]"))
                .with_help(help));
        };
        let Some(text) = value.as_str() else {
            return Err(InputError::at(
                file,
                source,
                locate(key),
                format!("expected a threshold string such as \">= 99.5%\" or \"<= 200ms\" for {key}"),
            ));
        };
        let slo = parse_slo(key, *unit, text)
            .map_err(|message| InputError::at(file, source, locate(key), format!("{key}: {message}")))?;
        slos.push(slo);
    }
    Ok(slos)
}

/// Parses a threshold such as ">= 99.5%" or "<= 200ms" for `metric`.
pub fn parse_slo(metric: &str, unit: SloUnit, text: &str) -> Result<Slo, String> {
    let trimmed = text.trim();
    let (op, rest) = if let Some(rest) = trimmed.strip_prefix(">=") {
        (Comparison::Ge, rest)
    } else if let Some(rest) = trimmed.strip_prefix("<=") {
        (Comparison::Le, rest)
    } else if let Some(rest) = trimmed.strip_prefix('>') {
        (Comparison::Gt, rest)
    } else if let Some(rest) = trimmed.strip_prefix('<') {
        (Comparison::Lt, rest)
    } else {
        return Err(format!("expected a comparison (<, <=, >, >=) before the threshold, found {text:?}"));
    };
    let rest = rest.trim();
    let threshold = match unit {
        SloUnit::Percent => {
            let Some(number) = rest.strip_suffix('%') else {
                return Err(format!("expected a percentage such as \"99.5%\", found {rest:?}"));
            };
            let value: f64 = number.trim().parse().map_err(|_| format!("{number:?} is not a number"))?;
            if !(0.0..=100.0).contains(&value) {
                return Err(format!("a percentage must be between 0% and 100%, found {rest}"));
            }
            value / 100.0
        }
        SloUnit::Duration => Dur::parse(rest)?.0.as_secs_f64(),
    };
    Ok(Slo { metric: metric.to_string(), op, threshold, text: rest.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_messages_are_read() {
        let (word, expected) =
            parse_unknown("unknown field `parition`, expected one of `kind`, `at`", "field").unwrap();
        assert_eq!(word, "parition");
        assert_eq!(expected, vec!["kind", "at"]);
        let (word, expected) =
            parse_unknown("unknown variant `crsh`, expected `crash` or `restart`", "variant").unwrap();
        assert_eq!(word, "crsh");
        assert_eq!(expected, vec!["crash", "restart"]);
    }

    #[test]
    fn enclosing_table_finds_the_header() {
        let source = "name = \"x\"\n[workload]\nrate = 1\n[[fault]] # c\nkind = 1";
        assert_eq!(enclosing_table(source, 3), None);
        assert_eq!(enclosing_table(source, source.find("rate").unwrap()), Some("[workload]"));
        assert_eq!(enclosing_table(source, source.find("kind").unwrap()), Some("[[fault]]"));
    }

    #[test]
    fn slo_thresholds_parse() {
        let slo = parse_slo("availability", SloUnit::Percent, ">= 99.5%").unwrap();
        assert_eq!((slo.op, slo.threshold), (Comparison::Ge, 0.995));
        let slo = parse_slo("p95_latency", SloUnit::Duration, "<= 200ms").unwrap();
        assert_eq!((slo.op, slo.threshold), (Comparison::Le, 0.2));
        assert!(parse_slo("availability", SloUnit::Percent, "99%").unwrap_err().contains("comparison"));
        assert!(parse_slo("availability", SloUnit::Percent, ">= 0.99").unwrap_err().contains("percentage"));
        assert!(parse_slo("mttr", SloUnit::Duration, "<= 5").is_err());
        assert!(Comparison::Lt.holds(0.5, 1.0) && !Comparison::Ge.holds(0.5, 1.0));
    }
}
