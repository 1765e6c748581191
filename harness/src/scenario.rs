//! Scenario files: the TOML a person writes, parsed and validated into a
//! [`Scenario`] that the planner and runner take.
//!
//! This module reads and checks; it never runs a simulation, and it knows a
//! system only by its [`Shape`] (hosts, events, invariants, probe), which it
//! asks for through [`Systems`]. Every mistake is an [`InputError`] naming
//! the file, line and column, what was expected and, for a misspelt key or
//! value, the nearest valid one. docs/scenarios.md is the reference for every
//! key; keep the two in step.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{nearest, InputError};
use crate::knobs::{parse_toml, Knobs};
use crate::system::{Shape, LIVENESS};
use crate::units::{Dur, DurRange, HostPattern, Probability, Rate};

/// The fault kinds a `[[fault]]` can have.
pub const FAULT_KINDS: &[(&str, &str)] = &[
    ("partition", "drop every message between two host groups (or one way with oneway = true)"),
    ("latency", "give the links between two host groups a latency range"),
    ("loss", "break links between two host groups at a rate per message (TCP connections reset)"),
    ("clog", "hold every message between two host groups, then deliver them all at the end"),
    ("crash", "stop hosts (state in memory is lost); restart_after brings them back"),
    ("restart", "bounce running hosts: stop and start their software at once"),
    ("blackhole", "silently drop every message between two host groups (or one way with oneway = true): connects and requests hang until their timeouts"),
    ("refuse", "refuse connects at once and drop messages between two host groups (a closed port; a partition's turmoil calls)"),
    ("power-off", "cut hosts' power: a blackhole on all their links, then a crash (peers see no close); restart_after"),
];

/// The random fault generators of `[chaos]`.
pub const CHAOS_KINDS: &[(&str, &str)] = &[
    ("crash", "each host alternates exponential up (mean mtbf) and down (mean mttr) times"),
    ("restart", "bounce a random host, at exponential intervals of mean `every`"),
    ("partition", "split the hosts in two random groups, at exponential intervals of mean `every`"),
    ("latency", "slow a random link to `latency`, at exponential intervals of mean `every`"),
    ("loss", "drop messages on a random link at `rate`, at exponential intervals of mean `every`"),
    ("clog", "hold a random link's messages, at exponential intervals of mean `every`"),
    // Appended, never inserted: a kind's place here names its random stream
    // (plan.rs), so the kinds above keep their draws.
    ("blackhole", "silently drop everything between two random host groups (connects and requests hang), at exponential intervals of mean `every`"),
    ("power-off", "each host alternates exponential up (mean mtbf) and powered-off (mean mttr) times: peers see no close"),
];

/// A validated scenario: everything the planner and runner need, with every
/// default filled in. Plain data.
#[derive(Clone)]
pub struct Scenario {
    /// The file as the user named it (used in replay commands).
    pub file: String,
    /// The file's text, as read (recordings keep it, to be judged again).
    pub source: String,
    /// The `name` key: shown in reports and test names.
    pub name: String,
    /// The `about` key, a longer description; `None` when the file has none.
    pub about: Option<String>,
    /// The `system` key: the name of the system under test in the registry.
    pub system_name: String,
    /// What the configured system looks like to the harness.
    pub shape: Shape,
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
    /// The `tick` key: the simulation step, whole milliseconds (default 1ms).
    /// Faults start and end, and hosts wake, at tick boundaries.
    pub tick: Dur,
    /// The `seeds` key: `cargo test` and `sweep` run seeds 1 to this by
    /// default (default 8).
    pub seeds: u64,
    /// A pinned seed: `run` and `replay` default to it, and sweeps and tests
    /// run it alone (a shrunk regression file reproduces only with its seed).
    pub seed: Option<u64>,
    /// The `[network]` table: link latency and TCP capacity.
    pub network: Network,
    /// The `[workload]` table: clients, open or closed loop, deadline.
    pub workload: Workload,
    /// The `[[fault]]` tables, in file order.
    pub faults: Vec<FaultSpec>,
    /// The `[chaos]` table: random fault generators.
    pub chaos: Chaos,
    /// The `[check]` table: invariants, `expect`, `reached`, `recover_within`.
    pub check: Check,
    /// The `[metrics]` table: how the time view is measured.
    pub metrics: MetricsConfig,
    /// The `[slo]` table's thresholds, in file order.
    pub slo: Vec<Slo>,
    /// Settings that are valid but probably not what was meant (the CLI
    /// prints them as warnings).
    pub warnings: Vec<InputError>,
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
        ];
        match &self.workload.load {
            Load::Open { rate, arrival, stages } => {
                lines.push(("workload.mode".to_string(), "open".to_string()));
                lines.push(("workload.rate".to_string(), format!("{}/s", rate.per_second)));
                lines.push(("workload.arrival".to_string(), arrival.to_string()));
                if !stages.is_empty() {
                    let shown: Vec<String> =
                        stages.iter().map(|s| format!("{}/s over {}", s.target.per_second, s.duration)).collect();
                    lines.push(("workload.stages".to_string(), shown.join(", then ")));
                }
            }
            Load::Closed { think } => {
                lines.push(("workload.mode".to_string(), "closed".to_string()));
                lines.push(("workload.think".to_string(), think.to_string()));
            }
        }
        lines.push(("workload.deadline".to_string(), self.workload.deadline.to_string()));
        for (key, value) in &self.shape.knobs {
            lines.push((format!("knobs.{key}"), value.clone()));
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

/// The simulated network's settings (`[network]`).
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

/// How an open-loop client spaces its requests (`[workload] arrival`).
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

/// How the workload clients load the system (`[workload]`).
#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    /// The `clients` key: workload client hosts, `client-0` on, 1 to 64
    /// (default 1).
    pub clients: u32,
    /// Each request's deadline, counted from its intended start.
    pub deadline: Dur,
    /// Open loop or closed loop (the `mode` key), with that mode's settings.
    pub load: Load,
}

/// How clients send their operations.
#[derive(Clone, Debug, Serialize)]
pub enum Load {
    /// Open loop: each client sends at its scheduled times whether or not
    /// earlier operations were answered (no coordinated omission).
    Open {
        /// Total arrival rate over all clients at the start.
        rate: Rate,
        /// How each client spaces its requests (the `arrival` key; default Poisson).
        arrival: Arrival,
        /// k6-style ramps: the rate moves linearly to each stage's target over
        /// its duration, then holds the last target.
        stages: Vec<Stage>,
    },
    /// Closed loop: each client is a session that sends its next operation
    /// when the last one ended, after a think time drawn from the range.
    Closed {
        /// The pause after each answer before the next operation (the
        /// `think` key; default 0s). A pause is never shorter than 1 ms.
        think: DurRange,
    },
}

/// One stage of a ramping open-loop workload.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Stage {
    /// How long the ramp to `target` takes.
    pub duration: Dur,
    /// The total rate reached at the end of the stage.
    pub target: Rate,
}

impl Workload {
    /// The total open-loop rate at `at` (per second); `None` for a closed loop.
    pub fn rate_at(&self, at: Dur) -> Option<f64> {
        let Load::Open { rate, stages, .. } = &self.load else { return None };
        let mut from = rate.per_second;
        let mut start = Dur::ZERO;
        for stage in stages {
            let end = Dur(start.0 + stage.duration.0);
            if at < end {
                let share = (at.0 - start.0).as_secs_f64() / stage.duration.0.as_secs_f64();
                return Some(from + (stage.target.per_second - from) * share);
            }
            from = stage.target.per_second;
            start = end;
        }
        Some(from)
    }

    /// The highest open-loop rate the workload reaches (per second).
    pub fn rate_max(&self) -> Option<f64> {
        let Load::Open { rate, stages, .. } = &self.load else { return None };
        Some(stages.iter().map(|s| s.target.per_second).fold(rate.per_second, f64::max))
    }

    /// The expected number of open-loop requests between `from` and `to`.
    pub fn expected_requests(&self, from: Dur, to: Dur) -> Option<f64> {
        const STEPS: u32 = 1000;
        self.rate_at(from)?;
        if to <= from {
            return Some(0.0);
        }
        let step = (to.0 - from.0) / STEPS;
        let sum: f64 = (0..STEPS).map(|i| self.rate_at(Dur(from.0 + step * i + step / 2)).unwrap_or(0.0)).sum();
        Some(sum * step.as_secs_f64())
    }
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
    /// The `at` key: when it starts, before `duration`.
    pub at: Dur,
    /// How long it lasts; `None` means until the heal phase.
    pub length: Option<Dur>,
    /// The `kind` key with the keys of that kind.
    pub kind: FaultSpecKind,
}

/// What a `[[fault]]` does, by its `kind`; docs/scenarios.md says what each
/// kind does in turmoil's terms.
#[derive(Clone, Debug, Serialize)]
pub enum FaultSpecKind {
    /// Messages on the links are dropped.
    Partition {
        /// The links (`hosts` or `between`).
        target: Target,
        /// Cut only messages from the first group of `between` to the second.
        oneway: bool,
    },
    /// The links' latency range becomes `latency` while the fault lasts.
    Latency {
        /// The links (`hosts` or `between`).
        target: Target,
        /// The one-way latency of each message on the links, drawn from this range.
        latency: DurRange,
    },
    /// Each message on the links fails with probability `rate`.
    Loss {
        /// The links (`hosts` or `between`).
        target: Target,
        /// The chance that a message fails, from 0 to 1.
        rate: f64,
    },
    /// Messages on the links are held, then delivered when the fault ends.
    Clog {
        /// The links (`hosts` or `between`).
        target: Target,
    },
    /// The hosts' software stops and loses its memory, until `restart_after`
    /// (or the heal phase).
    Crash {
        /// The `hosts` key: patterns over the system's hosts.
        hosts: Vec<HostPattern>,
    },
    /// The hosts' software is stopped and started at once.
    Restart {
        /// The `hosts` key: patterns over the system's hosts.
        hosts: Vec<HostPattern>,
    },
    /// Messages on the links vanish silently until the fault ends.
    Blackhole {
        /// The links (`hosts` or `between`).
        target: Target,
        /// Silence only messages from the first group of `between` to the second.
        oneway: bool,
    },
    /// Connects on the links are refused at once; messages are dropped.
    Refuse {
        /// The links (`hosts` or `between`).
        target: Target,
    },
    /// The hosts lose power (their links silenced, their software crashed)
    /// until `restart_after` (or the heal phase).
    PowerOff {
        /// The `hosts` key: patterns over the system's hosts.
        hosts: Vec<HostPattern>,
    },
}

/// The `[chaos]` table: random faults drawn from the seed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Chaos {
    /// Per seed, switch on a random non-empty subset of the generators.
    pub swarm: bool,
    /// The generators the table names, at most one of each kind, in file order.
    pub generators: Vec<Generator>,
}

/// A random fault generator; the planner expands it from the seed.
#[derive(Clone, Debug, Serialize)]
pub enum Generator {
    /// Each host alternates exponential up times and down times (`[chaos.crash]`).
    Crash {
        /// Patterns over the system's hosts; each matched host crashes on its own.
        hosts: Vec<HostPattern>,
        /// The mean up time between crashes.
        mtbf: Dur,
        /// The mean down time of a crash.
        mttr: Dur,
    },
    /// Bounces a random one of the hosts, at exponential intervals (`[chaos.restart]`).
    Restart {
        /// Patterns over the system's hosts.
        hosts: Vec<HostPattern>,
        /// The mean time between restarts.
        every: Dur,
    },
    /// `hosts: None` (the default) is every host. The probe is never picked
    /// on its own (an outage that no client saw would be measured); it
    /// follows `client-0` into whatever fault that client is in.
    Partition {
        /// The hosts split into two random non-empty groups; `None` is every host.
        hosts: Option<Vec<HostPattern>>,
        /// The mean time between partitions (exponential gaps).
        every: Dur,
        /// How long each lasts, drawn uniformly from the range (the `for` key).
        length: DurRange,
    },
    /// Slows a random link between two of the hosts (`[chaos.latency]`).
    Latency {
        /// The hosts a link is picked among; `None` is every host.
        hosts: Option<Vec<HostPattern>>,
        /// The mean time between faults (exponential gaps).
        every: Dur,
        /// How long each lasts, drawn uniformly from the range (the `for` key).
        length: DurRange,
        /// The link's latency range while the fault lasts.
        latency: DurRange,
    },
    /// Makes a random link between two of the hosts lossy (`[chaos.loss]`).
    Loss {
        /// The hosts a link is picked among; `None` is every host.
        hosts: Option<Vec<HostPattern>>,
        /// The mean time between faults (exponential gaps).
        every: Dur,
        /// How long each lasts, drawn uniformly from the range (the `for` key).
        length: DurRange,
        /// The chance that a message on the link fails, from 0 to 1.
        rate: f64,
    },
    /// Holds a random link's messages, then releases them (`[chaos.clog]`).
    Clog {
        /// The hosts a link is picked among; `None` is every host.
        hosts: Option<Vec<HostPattern>>,
        /// The mean time between faults (exponential gaps).
        every: Dur,
        /// How long each lasts, drawn uniformly from the range (the `for` key).
        length: DurRange,
    },
    /// Splits the hosts in two random groups and silences every link
    /// between them (`[chaos.blackhole]`): `[chaos.partition]` with the
    /// real network's silence instead of turmoil's immediate refusal.
    Blackhole {
        /// The hosts split into two random non-empty groups; `None` is every host.
        hosts: Option<Vec<HostPattern>>,
        /// The mean time between blackholes (exponential gaps).
        every: Dur,
        /// How long each lasts, drawn uniformly from the range (the `for` key).
        length: DurRange,
    },
    /// Each host alternates exponential up times and powered-off times
    /// (`[chaos.power-off]`): `[chaos.crash]` where peers see nothing.
    PowerOff {
        /// Patterns over the system's hosts; each matched host loses power on its own.
        hosts: Vec<HostPattern>,
        /// The mean up time between power losses.
        mtbf: Dur,
        /// The mean time a host stays off.
        mttr: Dur,
    },
}

impl Generator {
    /// Its kind as `[chaos]` names it (`crash`, `partition`, ...); fault
    /// origins read `chaos.<kind>`.
    pub fn kind(&self) -> &'static str {
        match self {
            Generator::Crash { .. } => "crash",
            Generator::Restart { .. } => "restart",
            Generator::Partition { .. } => "partition",
            Generator::Latency { .. } => "latency",
            Generator::Loss { .. } => "loss",
            Generator::Clog { .. } => "clog",
            Generator::Blackhole { .. } => "blackhole",
            Generator::PowerOff { .. } => "power-off",
        }
    }
}

/// What the scenario claims about its runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Expect {
    /// Every seed passes every check.
    Pass,
    /// Known flaws: for each of these invariants, some seed of the file's
    /// seeds violates it (and no seed violates anything else).
    Violations(Vec<String>),
}

impl Expect {
    /// The invariants a known flaw is expected to break (none for "pass").
    pub fn violations(&self) -> &[String] {
        match self {
            Expect::Pass => &[],
            Expect::Violations(names) => names,
        }
    }

    /// Does the scenario expect `invariant` to be violated?
    pub fn expects(&self, invariant: &str) -> bool {
        self.violations().iter().any(|name| name == invariant)
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Pass => f.write_str("pass"),
            Expect::Violations(names) => {
                let shown: Vec<String> = names.iter().map(|n| format!("violation:{n}")).collect();
                f.write_str(&shown.join(", "))
            }
        }
    }
}

/// The `[check]` table: what must hold, and what the scenario claims.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// Invariants to check: the system's and the harness's.
    pub invariants: Vec<String>,
    /// The `expect` key: every seed passes, or known flaws some seed must find.
    pub expect: Expect,
    /// System events some seed must report, so that a sweep cannot pass vacuously.
    pub reached: Vec<String>,
    /// After the heal phase starts, every request invoked later than this must succeed.
    pub recover_within: Dur,
}

/// One service-level objective: a metric, a comparison and a threshold.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Slo {
    /// The figure, as the key names it (one of [`SLO_METRICS`]).
    pub metric: String,
    /// How the measured figure must compare with the threshold.
    pub op: Comparison,
    /// The threshold in the metric's unit: a fraction for a percentage, seconds for a duration.
    pub threshold: f64,
    /// The threshold as written ("99.5%", "200ms"), for messages.
    pub text: String,
}

/// The comparison of an SLO, as written before its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Comparison {
    /// `<`: the figure must be below the threshold.
    Lt,
    /// `<=`: the figure must not be above the threshold.
    Le,
    /// `>`: the figure must be above the threshold.
    Gt,
    /// `>=`: the figure must not be below the threshold.
    Ge,
}

impl Comparison {
    /// Does `measured` compare with `threshold` as the SLO asks?
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
    (
        "mttd",
        SloUnit::Duration,
        "mean time from a fault's start to the system's detection event (a run with no detection fails the SLO)",
    ),
    (
        "time_to_recover",
        SloUnit::Duration,
        "mean time from a fault's end to the service being up again (a run with no such recovery fails the SLO)",
    ),
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
    workload: Spanned<RawWorkload>,
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
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    rate: Option<Spanned<Rate>>,
    #[serde(default)]
    arrival: Option<Spanned<Arrival>>,
    #[serde(default)]
    stages: Option<Spanned<Vec<Spanned<RawStage>>>>,
    #[serde(default)]
    think: Option<Spanned<DurRange>>,
    #[serde(default)]
    deadline: Option<Spanned<Dur>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Open,
    Closed,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawStage {
    duration: Spanned<Dur>,
    target: Spanned<Rate>,
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
    Blackhole,
    Refuse,
    #[serde(rename = "power-off")]
    PowerOff,
}

impl RawFaultKind {
    /// As scenario files write it.
    fn name(self) -> &'static str {
        match self {
            RawFaultKind::PowerOff => "power-off",
            RawFaultKind::Partition => "partition",
            RawFaultKind::Latency => "latency",
            RawFaultKind::Loss => "loss",
            RawFaultKind::Clog => "clog",
            RawFaultKind::Crash => "crash",
            RawFaultKind::Restart => "restart",
            RawFaultKind::Blackhole => "blackhole",
            RawFaultKind::Refuse => "refuse",
        }
    }

    /// Acts on hosts (`hosts` only), not on links.
    fn on_hosts(self) -> bool {
        matches!(self, RawFaultKind::Crash | RawFaultKind::Restart | RawFaultKind::PowerOff)
    }
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
    #[serde(default)]
    blackhole: Option<Spanned<RawChaosLink>>,
    #[serde(default, rename = "power-off")]
    power_off: Option<Spanned<RawChaosCrash>>,
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

/// `[chaos.partition]`, `[chaos.latency]`, `[chaos.loss]`, `[chaos.clog]`
/// and `[chaos.blackhole]`.
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
    invariants: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    expect: Option<Spanned<toml::Value>>,
    #[serde(default)]
    reached: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    recover_within: Option<Spanned<Dur>>,
}

// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------

/// Where a scenario finds its system: by name, configured from the file's
/// `[knobs]`. The registry provides it; this module only asks for the shape.
pub trait Systems {
    /// Every system's name, for "did you mean" help.
    fn names(&self) -> Vec<&'static str>;
    /// Configures the system `name` from `knobs` and returns its shape, or
    /// `None` when no system has that name.
    fn configure(&mut self, name: &str, knobs: &Knobs<'_>) -> Option<Result<Shape, InputError>>;
}

/// The largest scenario file faultline reads: 1 MiB. The longest shipped
/// file is a few KiB; a bigger file is almost surely not a scenario (a log,
/// a binary, a generated dump), and refusing it keeps a mistaken path from
/// costing memory and a flood of errors.
pub const FILE_BYTES_MAX: u64 = 1 << 20;

/// Reads a scenario file's text, with a clear error when it cannot (missing,
/// a folder, a device, a link loop, over [`FILE_BYTES_MAX`], not UTF-8 text).
pub fn read(path: &Path) -> Result<String, InputError> {
    crate::error::read_text(path, FILE_BYTES_MAX, "scenario file")
}

/// Deserializes a scenario file's TOML, with help for the keys people miss.
fn parse_raw(file: &str, source: &str) -> Result<RawScenario, InputError> {
    parse_toml(file, source).map_err(|mut error| {
        let missing = error.message.strip_prefix("missing key \"").and_then(|m| m.split_once('"')).map(|(k, _)| k);
        if let Some(key) = missing {
            error.help = Some(missing_key_help(key));
        }
        error
    })
}

/// Validates a scenario from its text; `file` names it in errors and replay
/// commands. Runs nothing: the system is only configured, to learn its shape.
pub fn parse(file: &str, source: &str, systems: &mut dyn Systems) -> Result<Scenario, InputError> {
    validated(file, source, systems).map_err(|mut error| {
        // Every rejection says where and what to do: a validator that had
        // nothing more specific to say gets the reference's pointer.
        if error.help.is_none() {
            error.help = Some(crate::knobs::generic_help(&error.message));
        }
        error
    })
}

fn validated(file: &str, source: &str, systems: &mut dyn Systems) -> Result<Scenario, InputError> {
    let raw = parse_raw(file, source)?;
    let at = |span: Range<usize>, message: String| InputError::at(file, source, span, message);
    let shape = configure(&raw.system, systems, &Knobs::new(file, source), &at)?;
    let timing = validate_timing(&raw, &at)?;
    let network = validate_network(raw.network.as_ref(), &at)?;
    let workload = validate_workload(&raw.workload, &timing, &at)?;
    let metrics = validate_metrics(raw.metrics.as_ref(), shape.has_probe, timing.tick, &at)?;
    let hosts = host_list(&shape, workload.clients, metrics.probe_interval.is_some(), raw.system.span(), &at)?;
    let patterns = Patterns { hosts: &hosts, system_hosts: &shape.hosts, at: &at };
    let mut faults = Vec::new();
    for (index, spanned) in raw.fault.iter().enumerate() {
        faults.push(validate_fault(index, spanned, timing.duration, &patterns)?);
    }
    let chaos = match &raw.chaos {
        None => Chaos::default(),
        Some(raw_chaos) => validate_chaos(raw_chaos, &patterns)?,
    };
    let mut warnings = Vec::new();
    let check = validate_check(raw.check.as_ref(), &shape, timing.heal, file, source, &mut warnings)?;
    let slo = match &raw.slo {
        None => Vec::new(),
        Some(table) => validate_slo(table, file, source)?,
    };
    Ok(Scenario {
        file: file.to_string(),
        source: source.to_string(),
        name: raw.name,
        about: raw.about,
        system_name: shape.system.to_string(),
        system_hosts: shape.hosts.clone(),
        shape,
        knobs: raw.knobs.unwrap_or_default(),
        hosts,
        duration: timing.duration,
        heal: timing.heal,
        tick: timing.tick,
        seeds: timing.seeds,
        seed: timing.seed,
        network,
        workload,
        faults,
        chaos,
        check,
        metrics,
        slo,
        warnings,
    })
}

/// Finds and configures the named system, or says which names exist.
fn configure(
    name: &Spanned<String>,
    systems: &mut dyn Systems,
    knobs: &Knobs<'_>,
    at: &ErrorAt<'_>,
) -> Result<Shape, InputError> {
    if let Some(shape) = systems.configure(name.get_ref(), knobs) {
        // A system's own error that names no place is placed at its [knobs]
        // table (or its name), and points at its documented knobs.
        return shape.map_err(|error| {
            let mut placed = if error.position.is_some() {
                error
            } else {
                let at_table = knobs.table_error(error.message.clone());
                let placed =
                    if at_table.position.is_some() { at_table } else { at(name.span(), error.message.clone()) };
                InputError { help: error.help, ..placed }
            };
            if placed.help.is_none() {
                placed.help = Some(format!(
                    "`faultline list` shows the knobs of {:?} with their units and defaults",
                    name.get_ref()
                ));
            }
            placed
        });
    }
    let names = systems.names();
    let help = match nearest(name.get_ref(), names.iter().copied()) {
        Some(n) => format!("did you mean {n:?}? systems: {}", names.join(", ")),
        None => format!("systems: {}", names.join(", ")),
    };
    Err(at(name.span(), format!("unknown system {:?}", name.get_ref())).with_help(help))
}

/// The top-level timing keys, validated.
struct Timing {
    duration: Dur,
    heal: Dur,
    tick: Dur,
    seeds: u64,
    seed: Option<u64>,
}

fn validate_timing(raw: &RawScenario, at: &ErrorAt<'_>) -> Result<Timing, InputError> {
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
        if tick > duration {
            return Err(at(spanned.span(), format!("tick {tick} is longer than duration = {duration}")).with_help(
                "the whole fault phase would pass in one simulation step: shorten the tick or lengthen duration",
            ));
        }
    }
    let heal = raw.heal.as_ref().map_or(Dur::from_secs(5), |h| *h.get_ref());
    let seed = raw.seed.as_ref().map(|s| s.get_ref().0);
    let seeds = match &raw.seeds {
        None => 8,
        Some(s) if (1..=SEEDS_MAX as i64).contains(s.get_ref()) => *s.get_ref() as u64,
        Some(s) => return Err(at(s.span(), format!("seeds must be between 1 and {SEEDS_MAX}, found {}", s.get_ref()))),
    };
    Ok(Timing { duration, heal, tick, seeds, seed })
}

fn validate_network(raw: Option<&RawNetwork>, at: &ErrorAt<'_>) -> Result<Network, InputError> {
    let latency = raw
        .and_then(|n| n.latency.as_ref())
        .map_or(DurRange { min: Dur::from_millis(1), max: Dur::from_millis(10) }, |l| *l.get_ref());
    let tcp_capacity = match raw.and_then(|n| n.tcp_capacity.as_ref()) {
        None => TCP_CAPACITY_DEFAULT,
        Some(c) if (1..=1_000_000).contains(c.get_ref()) => *c.get_ref() as usize,
        Some(c) => {
            return Err(at(c.span(), format!("tcp_capacity must be between 1 and 1000000, found {}", c.get_ref())))
        }
    };
    Ok(Network { latency, tcp_capacity })
}

/// Most requests per second a workload may ask for, over all clients.
pub const RATE_MAX: f64 = 100_000.0;

fn validate_rate(rate: &Spanned<Rate>, key: &str, at: &ErrorAt<'_>) -> Result<Rate, InputError> {
    let value = *rate.get_ref();
    if value.per_second <= 0.0 || value.per_second > RATE_MAX {
        return Err(at(rate.span(), format!("{key} must be above 0/s and at most {RATE_MAX}/s, found {value}")));
    }
    Ok(value)
}

fn validate_workload(
    spanned: &Spanned<RawWorkload>,
    timing: &Timing,
    at: &ErrorAt<'_>,
) -> Result<Workload, InputError> {
    let raw = spanned.get_ref();
    let clients = match &raw.clients {
        None => 1,
        Some(c) if (1..=64).contains(c.get_ref()) => *c.get_ref() as u32,
        Some(c) => {
            return Err(at(c.span(), format!("clients must be between 1 and 64, found {}", c.get_ref()))
                .with_help("each client is a simulated host, and each host costs time every tick"))
        }
    };
    let deadline = raw.deadline.as_ref().map_or(Dur::from_secs(1), |d| *d.get_ref());
    if deadline.0.is_zero() {
        return Err(at(span_of(&raw.deadline), "deadline must be longer than zero".into()));
    }
    let load = match raw.mode.unwrap_or(Mode::Open) {
        Mode::Open => open_load(raw, spanned.span(), timing, at)?,
        Mode::Closed => closed_load(raw, at)?,
    };
    Ok(Workload { clients, deadline, load })
}

fn open_load(raw: &RawWorkload, table: Range<usize>, timing: &Timing, at: &ErrorAt<'_>) -> Result<Load, InputError> {
    if let Some(think) = &raw.think {
        return Err(at(think.span(), "think goes with mode = \"closed\"".into()).with_help(
            "an open-loop client sends at its rate whatever the answers; a closed-loop one waits and thinks",
        ));
    }
    let Some(rate) = &raw.rate else {
        return Err(at(table, "missing key \"rate\" in [workload]".into()).with_help(missing_key_help("rate")));
    };
    let rate = validate_rate(rate, "rate", at)?;
    let mut stages = Vec::new();
    let mut total = Dur::ZERO;
    for stage in raw.stages.iter().flat_map(|s| s.get_ref()) {
        let s = stage.get_ref();
        if s.duration.get_ref().0.is_zero() {
            return Err(at(s.duration.span(), "a stage's duration must be longer than zero".into()));
        }
        let target = if s.target.get_ref().per_second == 0.0 {
            Rate { per_second: 0.0 }
        } else {
            validate_rate(&s.target, "a stage's target", at)?
        };
        total = Dur(total.0 + s.duration.get_ref().0);
        if total.0 > timing.duration.0 + timing.heal.0 {
            return Err(at(
                stage.span(),
                format!("the stages last {total}, longer than the run ({} + heal {})", timing.duration, timing.heal),
            ));
        }
        stages.push(Stage { duration: *s.duration.get_ref(), target });
    }
    let arrival = raw.arrival.as_ref().map_or(Arrival::Poisson, |a| *a.get_ref());
    Ok(Load::Open { rate, arrival, stages })
}

fn closed_load(raw: &RawWorkload, at: &ErrorAt<'_>) -> Result<Load, InputError> {
    let open_only = [
        (raw.rate.as_ref().map(Spanned::span), "rate"),
        (raw.arrival.as_ref().map(Spanned::span), "arrival"),
        (raw.stages.as_ref().map(Spanned::span), "stages"),
    ];
    for (span, key) in open_only {
        if let Some(span) = span {
            return Err(at(span, format!("{key} goes with mode = \"open\""))
                .with_help("a closed-loop client sends its next operation when the last one ended, after `think`"));
        }
    }
    Ok(Load::Closed { think: raw.think.as_ref().map_or(DurRange::fixed(Dur::ZERO), |t| *t.get_ref()) })
}

/// Every host name: the system's, the clients', and the probe's; a system
/// whose names clash with each other or with the clients is refused.
fn host_list(
    shape: &Shape,
    clients: u32,
    probe: bool,
    system_span: Range<usize>,
    at: &ErrorAt<'_>,
) -> Result<Vec<String>, InputError> {
    let mut hosts = shape.hosts.clone();
    hosts.extend((0..clients).map(client_host));
    if probe {
        hosts.push(PROBE_HOST.to_string());
    }
    let mut seen = BTreeSet::new();
    for host in &hosts {
        if !seen.insert(host) {
            return Err(at(
                system_span,
                format!("system {:?} names host {host:?} twice, or a host that clashes with a client", shape.system),
            )
            .with_help("a system's hosts must be distinct and must not start with \"client-\""));
        }
    }
    for pooled in &shape.pool {
        if !shape.hosts.contains(pooled) {
            return Err(at(
                system_span,
                format!("system {:?} pools host {pooled:?}, which it does not list", shape.system),
            ));
        }
    }
    Ok(hosts)
}

/// Checks host patterns against the scenario's hosts.
struct Patterns<'a> {
    hosts: &'a [String],
    system_hosts: &'a [String],
    at: &'a ErrorAt<'a>,
}

impl Patterns<'_> {
    /// Patterns that must each match some host.
    fn any(&self, patterns: &Spanned<Vec<HostPattern>>) -> Result<Vec<HostPattern>, InputError> {
        let at = self.at;
        if patterns.get_ref().is_empty() {
            return Err(at(patterns.span(), "expected at least one host name or glob".into()));
        }
        for pattern in patterns.get_ref() {
            if resolve_hosts(self.hosts, std::slice::from_ref(pattern)).is_empty() {
                let help = match nearest(pattern.as_str(), self.hosts.iter().map(String::as_str)) {
                    Some(h) => format!("did you mean {h:?}? hosts: {}", self.hosts.join(", ")),
                    None => format!("hosts: {}", self.hosts.join(", ")),
                };
                return Err(
                    at(patterns.span(), format!("host pattern {:?} matches no host", pattern.as_str())).with_help(help)
                );
            }
        }
        Ok(patterns.get_ref().clone())
    }

    /// Patterns that must each match some of the system's own hosts: crashes
    /// and restarts act on the system's software; turmoil cannot crash a
    /// client (its workload would be lost, not restarted).
    fn system(&self, patterns: &Spanned<Vec<HostPattern>>) -> Result<Vec<HostPattern>, InputError> {
        let checked = self.any(patterns)?;
        for pattern in &checked {
            if resolve_hosts(self.system_hosts, std::slice::from_ref(pattern)).is_empty() {
                return Err((self.at)(
                    patterns.span(),
                    format!(
                        "host pattern {:?} matches only workload clients, which cannot crash or restart",
                        pattern.as_str()
                    ),
                )
                .with_help(format!("the system's hosts: {}", self.system_hosts.join(", "))));
            }
        }
        Ok(checked)
    }
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

type ErrorAt<'a> = dyn Fn(Range<usize>, String) -> InputError + 'a;

fn validate_fault(
    index: usize,
    spanned: &Spanned<RawFault>,
    duration: Dur,
    patterns: &Patterns<'_>,
) -> Result<FaultSpec, InputError> {
    let raw = spanned.get_ref();
    let kind = *raw.kind.get_ref();
    let fault = FaultCheck { raw, span: spanned.span(), kind_name: kind.name().to_string(), patterns };
    let start = *raw.at.get_ref();
    if start >= duration {
        return Err((patterns.at)(
            raw.at.span(),
            format!("fault starts at {start}, but the fault phase ends at duration = {duration}"),
        )
        .with_help("faults must start before `duration`; the heal phase after it has no faults"));
    }
    fault.misplaced_keys(kind)?;
    let (length, kind) = match kind {
        kind if kind.on_hosts() => fault.host_fault(kind)?,
        _ => fault.link_fault(kind)?,
    };
    Ok(FaultSpec { index, at: start, length, kind })
}

/// One `[[fault]]` table being validated.
struct FaultCheck<'a> {
    raw: &'a RawFault,
    span: Range<usize>,
    kind_name: String,
    patterns: &'a Patterns<'a>,
}

impl FaultCheck<'_> {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> InputError {
        (self.patterns.at)(span, message.into())
    }

    /// Keys that a kind does not use are mistakes, not silently ignored.
    fn not_for(&self, present: bool, span: Range<usize>, key: &str, help: &str) -> Result<(), InputError> {
        if present {
            Err(self
                .error(span, format!("key {key:?} does not apply to a fault of kind {:?}", self.kind_name))
                .with_help(help.to_string()))
        } else {
            Ok(())
        }
    }

    fn misplaced_keys(&self, kind: RawFaultKind) -> Result<(), InputError> {
        let raw = self.raw;
        if !matches!(kind, RawFaultKind::Crash | RawFaultKind::Restart | RawFaultKind::PowerOff) {
            let help = "only crash and power-off faults restart; use `for` to bound a network fault";
            self.not_for(raw.restart_after.is_some(), span_of(&raw.restart_after), "restart_after", help)?;
        }
        if kind != RawFaultKind::Latency {
            let help = "latency goes with kind = \"latency\"";
            self.not_for(raw.latency.is_some(), span_of(&raw.latency), "latency", help)?;
        }
        if kind != RawFaultKind::Loss {
            self.not_for(raw.rate.is_some(), span_of(&raw.rate), "rate", "rate goes with kind = \"loss\"")?;
        }
        if !matches!(kind, RawFaultKind::Partition | RawFaultKind::Blackhole) {
            let help = "oneway goes with kind = \"partition\" or kind = \"blackhole\"";
            self.not_for(raw.oneway.is_some(), span_of(&raw.oneway), "oneway", help)?;
        }
        if let Some(length) = raw.length.as_ref().filter(|l| l.get_ref().0.is_zero()) {
            return Err(self.error(length.span(), "`for` must be longer than zero"));
        }
        Ok(())
    }

    /// The links a network fault acts on: `hosts` (isolated from all others)
    /// or `between` (two groups).
    fn target(&self, oneway: bool) -> Result<Target, InputError> {
        let (raw, patterns, kind_name) = (self.raw, self.patterns, &self.kind_name);
        match (&raw.hosts, &raw.between) {
            (Some(_), Some(between)) => Err(self.error(
                between.span(),
                "give either `hosts` (isolate them from all others) or `between` (two groups), not both",
            )),
            (None, None) => Err(self.error(self.span.clone(), format!("a {kind_name} fault needs `hosts` or `between`")).with_help(
                "hosts = [\"db\"] acts on every link of db; between = [[\"cache\"], [\"app-*\"]] on the links between two groups",
            )),
            (Some(hosts), None) if oneway => Err(self.error(
                hosts.span(),
                format!("a one-way {kind_name} needs `between` (from the first group to the second)"),
            )),
            (Some(hosts), None) => {
                let isolated = patterns.any(hosts)?;
                if resolve_hosts(patterns.hosts, &isolated).len() == patterns.hosts.len() {
                    return Err(self
                        .error(hosts.span(), format!("these hosts are every host: a {kind_name} fault on them has no other host to act between"))
                        .with_help("isolate some hosts from the rest, e.g. hosts = [\"server\"], or name two groups with `between`"));
                }
                Ok(Target::Isolate(isolated))
            }
            (None, Some(between)) => {
                let groups = between.get_ref();
                if groups.len() != 2 {
                    return Err(self
                        .error(between.span(), format!("`between` takes exactly two host groups, found {}", groups.len()))
                        .with_help("for example between = [[\"cache\"], [\"app-*\"]]"));
                }
                let first = patterns.any(&Spanned::new(between.span(), groups[0].clone()))?;
                let second = patterns.any(&Spanned::new(between.span(), groups[1].clone()))?;
                let (a, b) = (resolve_hosts(patterns.hosts, &first), resolve_hosts(patterns.hosts, &second));
                if a.iter().all(|x| b.iter().all(|y| x == y)) {
                    return Err(self
                        .error(between.span(), format!("`between` names only {} on both sides: a link from a host to itself carries nothing, so this {kind_name} fault would do nothing", a.join(", ")))
                        .with_help("name two different host groups, e.g. between = [[\"cache\"], [\"app-*\"]]"));
                }
                Ok(Target::Between(first, second))
            }
        }
    }

    fn link_fault(&self, kind: RawFaultKind) -> Result<(Option<Dur>, FaultSpecKind), InputError> {
        let raw = self.raw;
        let length = raw.length.as_ref().map(|l| *l.get_ref());
        let kind = match kind {
            RawFaultKind::Partition => {
                let oneway = raw.oneway.as_ref().is_some_and(|o| *o.get_ref());
                FaultSpecKind::Partition { target: self.target(oneway)?, oneway }
            }
            RawFaultKind::Latency => {
                let Some(latency) = &raw.latency else {
                    let message = "a latency fault needs `latency`, e.g. latency = \"50ms..200ms\"";
                    return Err(self.error(self.span.clone(), message));
                };
                FaultSpecKind::Latency { target: self.target(false)?, latency: *latency.get_ref() }
            }
            RawFaultKind::Loss => {
                let Some(rate) = &raw.rate else {
                    return Err(self.error(self.span.clone(), "a loss fault needs `rate`, e.g. rate = 0.05"));
                };
                FaultSpecKind::Loss { target: self.target(false)?, rate: rate.get_ref().0 }
            }
            RawFaultKind::Blackhole => {
                let oneway = raw.oneway.as_ref().is_some_and(|o| *o.get_ref());
                FaultSpecKind::Blackhole { target: self.target(oneway)?, oneway }
            }
            RawFaultKind::Refuse => FaultSpecKind::Refuse { target: self.target(false)? },
            _ => FaultSpecKind::Clog { target: self.target(false)? },
        };
        Ok((length, kind))
    }

    /// The hosts a crash or restart acts on: the system's own, by `hosts`.
    fn hosts_only(&self) -> Result<Vec<HostPattern>, InputError> {
        if let Some(between) = &self.raw.between {
            return Err(
                self.error(between.span(), format!("a {} fault acts on hosts, not links: use `hosts`", self.kind_name))
            );
        }
        match &self.raw.hosts {
            Some(hosts) => self.patterns.system(hosts),
            None => Err(self.error(self.span.clone(), format!("a {} fault needs `hosts`", self.kind_name))),
        }
    }

    fn host_fault(&self, kind: RawFaultKind) -> Result<(Option<Dur>, FaultSpecKind), InputError> {
        let raw = self.raw;
        if matches!(kind, RawFaultKind::Crash | RawFaultKind::PowerOff) {
            let help = "a crash or power-off lasts until restart_after (or the heal phase)";
            self.not_for(raw.length.is_some(), span_of(&raw.length), "for", help)?;
            let hosts = self.hosts_only()?;
            if let Some(restart) = raw.restart_after.as_ref().filter(|r| r.get_ref().0.is_zero()) {
                return Err(self
                    .error(restart.span(), "restart_after must be longer than zero")
                    .with_help("for an immediate stop and start, use kind = \"restart\""));
            }
            let length = raw.restart_after.as_ref().map(|r| *r.get_ref());
            if kind == RawFaultKind::PowerOff {
                return Ok((length, FaultSpecKind::PowerOff { hosts }));
            }
            return Ok((length, FaultSpecKind::Crash { hosts }));
        }
        let help = "a restart is instantaneous; use kind = \"crash\" with restart_after for downtime";
        self.not_for(raw.length.is_some(), span_of(&raw.length), "for", help)?;
        let help = "use kind = \"crash\" with restart_after for downtime";
        self.not_for(raw.restart_after.is_some(), span_of(&raw.restart_after), "restart_after", help)?;
        Ok((None, FaultSpecKind::Restart { hosts: self.hosts_only()? }))
    }
}

/// A chaos link generator draws links between two of its hosts (the probe
/// aside): over fewer than two it would draw nothing, silently.
fn at_least_two_hosts(
    kind: &str,
    link: &Spanned<RawChaosLink>,
    hosts: Option<&[HostPattern]>,
    patterns: &Patterns<'_>,
) -> Result<(), InputError> {
    let candidates: Vec<String> = hosts
        .map_or_else(|| patterns.hosts.to_vec(), |h| resolve_hosts(patterns.hosts, h))
        .into_iter()
        .filter(|h| h != PROBE_HOST)
        .collect();
    if candidates.len() >= 2 {
        return Ok(());
    }
    let what = if matches!(kind, "partition" | "blackhole") {
        "split them in two groups"
    } else {
        "pick a link between two of them"
    };
    let span = link.get_ref().hosts.as_ref().map_or(link.span(), Spanned::span);
    Err((patterns.at)(
        span,
        format!(
            "[chaos.{kind}] acts on {} only, and needs at least two hosts to {what}: it would draw no fault",
            candidates.join(", ")
        ),
    )
    .with_help("add hosts to the list, or leave `hosts` out to use every host"))
}

fn validate_chaos(raw: &RawChaos, patterns: &Patterns<'_>) -> Result<Chaos, InputError> {
    let at = patterns.at;
    let positive = |d: &Spanned<Dur>, key: &str| -> Result<Dur, InputError> {
        if d.get_ref().0.is_zero() {
            Err(at(d.span(), format!("{key} must be longer than zero")))
        } else {
            Ok(*d.get_ref())
        }
    };
    let mut generators = Vec::new();
    // `[chaos.crash]` and `[chaos.power-off]`: hosts, mtbf and mttr.
    let up_and_down = |c: &RawChaosCrash| -> Result<(Vec<HostPattern>, Dur, Dur), InputError> {
        Ok((patterns.system(&c.hosts)?, positive(&c.mtbf, "mtbf")?, positive(&c.mttr, "mttr")?))
    };
    if let Some(crash) = &raw.crash {
        let (hosts, mtbf, mttr) = up_and_down(crash.get_ref())?;
        generators.push(Generator::Crash { hosts, mtbf, mttr });
    }
    if let Some(power_off) = &raw.power_off {
        let (hosts, mtbf, mttr) = up_and_down(power_off.get_ref())?;
        generators.push(Generator::PowerOff { hosts, mtbf, mttr });
    }
    if let Some(restart) = &raw.restart {
        let r = restart.get_ref();
        generators.push(Generator::Restart { hosts: patterns.system(&r.hosts)?, every: positive(&r.every, "every")? });
    }
    let links: [(&str, &Option<Spanned<RawChaosLink>>); 5] = [
        ("partition", &raw.partition),
        ("latency", &raw.latency),
        ("loss", &raw.loss),
        ("clog", &raw.clog),
        ("blackhole", &raw.blackhole),
    ];
    for (kind, link) in links {
        let Some(link) = link else { continue };
        let l = link.get_ref();
        let hosts = match &l.hosts {
            Some(h) => Some(patterns.any(h)?),
            None => None,
        };
        at_least_two_hosts(kind, link, hosts.as_deref(), patterns)?;
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
            "blackhole" => Generator::Blackhole { hosts, every, length },
            _ => Generator::Clog { hosts, every, length },
        });
    }
    Ok(Chaos { swarm: raw.swarm, generators })
}

fn validate_check(
    raw: Option<&RawCheck>,
    shape: &Shape,
    heal: Dur,
    file: &str,
    source: &str,
    warnings: &mut Vec<InputError>,
) -> Result<Check, InputError> {
    let at = |span: Range<usize>, message: String| InputError::at(file, source, span, message);
    let known: Vec<&str> = shape.invariants.iter().map(|i| i.name).chain([LIVENESS.name]).collect();
    let unknown_invariant = |span: Range<usize>, name: &str| -> InputError {
        let help = match nearest(name, known.iter().copied()) {
            Some(n) => format!("did you mean {n:?}? invariants: {}", known.join(", ")),
            None => format!("invariants: {}", known.join(", ")),
        };
        let renamed = RENAMED_INVARIANTS.iter().find(|(old, _)| *old == name);
        let help = match renamed {
            Some((old, new)) => format!("{old:?} is now {new:?}: it checks what that name says. {help}"),
            None => help,
        };
        at(span, format!("unknown invariant {name:?}")).with_help(help)
    };
    let invariants = match raw.and_then(|r| r.invariants.as_ref()) {
        None => shape.promised.iter().copied().chain([LIVENESS.name]).map(str::to_string).collect(),
        Some(list) => {
            if list.get_ref().is_empty() {
                warnings.push(
                    at(list.span(), "invariants = [] checks no invariant: only SLOs and aborts can fail a run".into())
                        .with_help("leave the key out to check what the system promises"),
                );
            }
            let mut names: Vec<String> = Vec::new();
            for name in list.get_ref() {
                if !known.contains(&name.get_ref().as_str()) {
                    return Err(unknown_invariant(name.span(), name.get_ref()));
                }
                if names.contains(name.get_ref()) {
                    return Err(at(name.span(), format!("invariant {:?} is listed twice", name.get_ref())));
                }
                names.push(name.get_ref().clone());
            }
            names
        }
    };
    let expect = match raw.and_then(|r| r.expect.as_ref()) {
        None => Expect::Pass,
        Some(value) => validate_expect(value, &invariants, &known, source, &at, &unknown_invariant)?,
    };
    let mut reached = Vec::new();
    for name in raw.and_then(|r| r.reached.as_ref()).into_iter().flatten() {
        if !shape.events.contains(&name.get_ref().as_str()) {
            let events = &shape.events;
            let help = match nearest(name.get_ref(), events.iter().copied()) {
                Some(n) => format!("did you mean {n:?}? events: {}", events.join(", ")),
                None => format!("events this system reports: {}", events.join(", ")),
            };
            return Err(at(name.span(), format!("unknown event {:?} in reached", name.get_ref())).with_help(help));
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
    Ok(Check { invariants, expect, reached, recover_within })
}

/// Invariants that were renamed, with their new names: an old name is an
/// error whose help names the new one.
pub const RENAMED_INVARIANTS: &[(&str, &str)] = &[("read-your-writes", "reads-see-completed-writes")];

/// `expect`: "pass", "violation:<invariant>", or a list of "violation:..."
/// strings (each must be found by some seed).
fn validate_expect(
    value: &Spanned<toml::Value>,
    invariants: &[String],
    known: &[&str],
    source: &str,
    at: &ErrorAt<'_>,
    unknown_invariant: &dyn Fn(Range<usize>, &str) -> InputError,
) -> Result<Expect, InputError> {
    let texts: Vec<(String, Range<usize>)> = match value.get_ref() {
        toml::Value::String(text) => vec![(text.clone(), value.span())],
        toml::Value::Array(items) if !items.is_empty() => {
            let mut texts = Vec::new();
            for item in items {
                let Some(text) = item.as_str() else {
                    return Err(at(
                        value.span(),
                        format!("expected strings such as \"violation:<invariant>\" in expect, found {item}"),
                    ));
                };
                // Point at the item itself when the text shows it once.
                let span = value.span();
                let quoted = format!("\"{text}\"");
                let item_span = source[span.clone()]
                    .find(&quoted)
                    .map_or(span.clone(), |offset| span.start + offset..span.start + offset + quoted.len());
                texts.push((text.to_string(), item_span));
            }
            texts
        }
        other => {
            return Err(at(
                value.span(),
                format!("expected \"pass\", \"violation:<invariant>\" or a list of them, found {other}"),
            ))
        }
    };
    if texts.len() == 1 && texts[0].0 == "pass" {
        return Ok(Expect::Pass);
    }
    let mut names: Vec<String> = Vec::new();
    for (text, span) in texts {
        let Some(name) = text.strip_prefix("violation:").map(str::trim) else {
            return Err(at(span, format!("expected \"pass\" or \"violation:<invariant>\", found {text:?}"))
                .with_help("a list of expectations holds only \"violation:...\" entries"));
        };
        if !known.contains(&name) {
            return Err(unknown_invariant(span, name));
        }
        if !invariants.iter().any(|i| i == name) {
            return Err(at(span, format!("expect names {name:?}, which [check] invariants does not run"))
                .with_help(format!("add {name:?} to invariants")));
        }
        if names.iter().any(|n| n == name) {
            return Err(at(span, format!("expect names {name:?} twice")));
        }
        names.push(name.to_string());
    }
    Ok(Expect::Violations(names))
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

// ---------------------------------------------------------------------------
// The keys the parser's own types accept, for the scenario file's JSON
// Schema (`schema.rs`): read from the serde derives, so a key added to a
// `Raw*` type shows up here without anyone listing it.

/// Each table of a scenario file (`""` for the top level, `"fault"` for a
/// `[[fault]]`, `"chaos.link"` for `[chaos.partition]`, `[chaos.latency]`,
/// `[chaos.loss]`, `[chaos.clog]` and `[chaos.blackhole]`, `"chaos.crash"`
/// for `[chaos.crash]` and `[chaos.power-off]`) and the keys its parser
/// type accepts.
/// `[knobs]` belongs to the system and `[slo]` to [`SLO_METRICS`].
pub fn file_keys() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("", fields::<RawScenario>()),
        ("network", fields::<RawNetwork>()),
        ("workload", fields::<RawWorkload>()),
        ("workload.stages", fields::<RawStage>()),
        ("fault", fields::<RawFault>()),
        ("chaos", fields::<RawChaos>()),
        ("chaos.crash", fields::<RawChaosCrash>()),
        ("chaos.restart", fields::<RawChaosRestart>()),
        ("chaos.link", fields::<RawChaosLink>()),
        ("check", fields::<RawCheck>()),
        ("metrics", fields::<RawMetrics>()),
    ]
}

/// The field names a serde-derived struct declares (renames applied): a
/// deserializer that asks for the struct, notes its fields and stops.
fn fields<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{Error as _, Visitor};
    struct Fields(std::cell::Cell<&'static [&'static str]>);
    impl<'de> serde::Deserializer<'de> for &Fields {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
            Err(Self::Error::custom("only a struct's fields are read"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.set(fields);
            Err(Self::Error::custom("fields read"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let reader = Fields(std::cell::Cell::new(&[]));
    let _ = T::deserialize(&reader);
    reader.0.get()
}

#[cfg(test)]
mod tests {
    use super::*;

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
