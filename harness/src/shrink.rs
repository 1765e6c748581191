//! Shrinking a failing seed: from the plan and workload of a seed that
//! violates an invariant, search for a smaller configuration that still
//! violates it, then write it as a standalone scenario file.
//!
//! The search re-runs the same seed. Each client's arrivals and operations and
//! each host's randomness come from their own streams, so removing a fault or
//! a client leaves everything else as it was (turmoil's own network RNG is the
//! one shared stream: message latencies after a change may differ). Steps, in
//! order, each kept only if the run still violates the invariant:
//! 1. delta debugging (ddmin) over the plan's faults;
//! 2. fewer clients (halving, then one at a time), each keeping its rate;
//! 3. a shorter fault phase: ending soon after the last fault, then halving
//!    (faults past it are dropped, the rest clipped);
//! 4. a lower request rate (halving);
//! 5. each fault shorter (halving its length) and starting later.
//!
//! The search is bounded by a number of runs and a wall-clock budget.

use std::sync::Arc;
use std::time::Duration;

use crate::drive::{run_plan, RunOptions};
use crate::fault::{Action, PlannedFault};
use crate::judge::RunReport;
use crate::plan::Plan;
use crate::registry::Loaded;
use crate::scenario::{client_host, Expect, Load, Scenario, PROBE_HOST};
use crate::units::Dur;

/// Bounds of a shrink.
#[derive(Clone, Debug)]
pub struct ShrinkOptions {
    /// The most runs of the whole search, the seed's first run included
    /// (`--max-runs`).
    pub max_runs: usize,
    /// Wall-clock budget of the whole search.
    pub timeout: Duration,
    /// The invariant to keep violating; default: the first one the seed violates.
    pub invariant: Option<String>,
    /// Wall-clock limit of each run.
    pub wall_limit: Duration,
}

/// The size of a configuration, as the shrink reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Size {
    /// Faults in the plan.
    pub faults: usize,
    /// Workload clients (`[workload] clients`).
    pub clients: u32,
    /// The total open-loop rate at the start of the run, per second; 0 for a
    /// closed loop.
    pub rate_per_second: f64,
    /// The fault phase (`duration`).
    pub duration: Dur,
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} fault{}, {} client{}, {}/s, {}",
            self.faults,
            if self.faults == 1 { "" } else { "s" },
            self.clients,
            if self.clients == 1 { "" } else { "s" },
            self.rate_per_second,
            self.duration
        )
    }
}

/// A scenario with a concrete plan: what the shrink changes and runs.
#[derive(Clone)]
pub struct Candidate {
    /// The scenario as the shrink has edited it, with its system.
    pub loaded: Arc<Loaded>,
    /// The faults it runs, in place of the ones the seed would plan.
    pub plan: Plan,
}

/// Scales every open-loop rate (the start rate and each stage's target) by `factor`.
fn scale_rates(scenario: &mut Scenario, factor: f64) {
    if let Load::Open { rate, stages, .. } = &mut scenario.workload.load {
        rate.per_second *= factor;
        for stage in stages {
            stage.target.per_second *= factor;
        }
    }
}

impl Candidate {
    /// The edited scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.loaded.scenario
    }

    /// How big it is: faults, clients, rate and fault phase.
    pub fn size(&self) -> Size {
        Size {
            faults: self.plan.faults.len(),
            clients: self.scenario().workload.clients,
            rate_per_second: self.scenario().workload.rate_at(Dur::ZERO).unwrap_or(0.0),
            duration: self.scenario().duration,
        }
    }

    fn with_faults(&self, faults: Vec<PlannedFault>) -> Candidate {
        Candidate { loaded: Arc::clone(&self.loaded), plan: Plan { faults, ..self.plan.clone() } }
    }

    fn with_scenario(&self, scenario: Scenario, plan: Plan) -> Candidate {
        Candidate { loaded: Arc::new(self.loaded.with_scenario(scenario)), plan }
    }

    /// The same with `clients` clients, each at the rate it had (so the
    /// remaining clients send exactly what they sent before).
    fn with_clients(&self, clients: u32) -> Candidate {
        let mut scenario = self.scenario().clone();
        let factor = f64::from(clients) / f64::from(scenario.workload.clients);
        scale_rates(&mut scenario, factor);
        scenario.workload.clients = clients;
        scenario.hosts = scenario.system_hosts.clone();
        scenario.hosts.extend((0..clients).map(client_host));
        if self.scenario().hosts.iter().any(|h| h == PROBE_HOST) {
            scenario.hosts.push(PROBE_HOST.to_string());
        }
        let keep = |hosts: &[String]| hosts.iter().filter(|h| scenario.hosts.contains(h)).cloned().collect::<Vec<_>>();
        let faults = self
            .plan
            .faults
            .iter()
            .filter_map(|fault| {
                let action = match &fault.action {
                    Action::Partition { a, b, oneway } => Action::Partition { a: keep(a), b: keep(b), oneway: *oneway },
                    Action::Latency { a, b, latency } => Action::Latency { a: keep(a), b: keep(b), latency: *latency },
                    Action::Loss { a, b, rate } => Action::Loss { a: keep(a), b: keep(b), rate: *rate },
                    Action::Clog { a, b } => Action::Clog { a: keep(a), b: keep(b) },
                    Action::Blackhole { a, b, oneway } => Action::Blackhole { a: keep(a), b: keep(b), oneway: *oneway },
                    Action::Refuse { a, b } => Action::Refuse { a: keep(a), b: keep(b) },
                    Action::PowerOff { hosts, peers } => Action::PowerOff { hosts: hosts.clone(), peers: keep(peers) },
                    other => other.clone(),
                };
                let empty = match &action {
                    Action::Partition { a, b, .. }
                    | Action::Latency { a, b, .. }
                    | Action::Loss { a, b, .. }
                    | Action::Clog { a, b }
                    | Action::Blackhole { a, b, .. }
                    | Action::Refuse { a, b } => a.is_empty() || b.is_empty(),
                    Action::Crash { hosts } | Action::Restart { hosts } | Action::PowerOff { hosts, .. } => {
                        hosts.is_empty()
                    }
                };
                (!empty).then(|| PlannedFault { action, ..fault.clone() })
            })
            .collect();
        let plan = Plan { faults, ..self.plan.clone() };
        self.with_scenario(scenario, plan)
    }

    /// The same with a fault phase of `duration`: later faults dropped, the rest clipped.
    fn with_duration(&self, duration: Dur) -> Candidate {
        let mut scenario = self.scenario().clone();
        scenario.duration = duration;
        let faults = self
            .plan
            .faults
            .iter()
            .filter(|f| f.at < duration)
            .map(|f| PlannedFault { until: f.until.map(|u| u.min(duration)), ..f.clone() })
            .collect();
        let plan = Plan { faults, heal_at: duration, ..self.plan.clone() };
        self.with_scenario(scenario, plan)
    }

    /// The same with every open-loop rate scaled by `factor`.
    fn with_rates_scaled(&self, factor: f64) -> Candidate {
        let mut scenario = self.scenario().clone();
        scale_rates(&mut scenario, factor);
        self.with_scenario(scenario, self.plan.clone())
    }
}

/// Where the search is, for progress lines.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Runs so far, the seed's first run included.
    pub runs: usize,
    /// The size of the smallest failing configuration found so far.
    pub size: Size,
    /// Wall-clock time since the search began.
    pub elapsed: Duration,
    /// The step that made the last run: `faults`, `clients`, `duration`,
    /// `rate`, `fault lengths`, `fault starts` or `final form`.
    pub step: &'static str,
}

/// What a shrink found: the smallest configuration that still violates the
/// invariant, and what the search cost.
pub struct ShrinkResult {
    /// The invariant every kept run violated.
    pub invariant: String,
    /// The size of the seed's own configuration.
    pub original: Size,
    /// The smallest configuration found that still violates the invariant
    /// (the original, if nothing smaller did).
    pub shrunk: Candidate,
    /// The shrunk configuration's run.
    pub report: RunReport,
    /// Runs made, the seed's first run included.
    pub runs: usize,
    /// Wall-clock time the search took.
    pub elapsed: Duration,
    /// Why the search stopped early, if it did.
    pub stopped: Option<String>,
}

/// Why a shrink could not start.
#[derive(Debug, PartialEq, Eq)]
pub enum ShrinkError {
    /// The seed does not violate the invariant to begin with.
    NotFailing(String),
}

impl std::fmt::Display for ShrinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShrinkError::NotFailing(message) => f.write_str(message),
        }
    }
}

struct Search<'a> {
    invariant: String,
    options: &'a ShrinkOptions,
    runs: usize,
    started: std::time::Instant,
    progress: &'a mut dyn FnMut(&Progress),
    best: Candidate,
    best_report: RunReport,
}

impl Search<'_> {
    fn exhausted(&self) -> Option<String> {
        if self.runs >= self.options.max_runs {
            Some(format!("stopped at --max-runs {}", self.options.max_runs))
        } else if self.started.elapsed() >= self.options.timeout {
            Some(format!("stopped at --timeout {}s", self.options.timeout.as_secs()))
        } else {
            None
        }
    }

    /// Runs `candidate`; keeps it as the best if it still violates the invariant.
    fn attempt(&mut self, candidate: Candidate, step: &'static str) -> bool {
        if self.exhausted().is_some() {
            return false;
        }
        self.runs += 1;
        let options = RunOptions { wall_limit: Some(self.options.wall_limit), ..RunOptions::default() };
        let report = run_plan(&candidate.loaded, candidate.plan.clone(), options);
        let fails = report.violation_counts.contains_key(&self.invariant);
        if fails {
            self.best = candidate;
            self.best_report = report;
        }
        (self.progress)(&Progress { runs: self.runs, size: self.best.size(), elapsed: self.started.elapsed(), step });
        fails
    }

    /// ddmin over the best candidate's faults.
    fn faults(&mut self) {
        let mut chunks = 2usize;
        while !self.best.plan.faults.is_empty() && self.exhausted().is_none() {
            let faults = self.best.plan.faults.clone();
            if faults.len() == 1 {
                self.attempt(self.best.with_faults(Vec::new()), "faults");
                return;
            }
            let size = faults.len().div_ceil(chunks.min(faults.len()));
            let mut reduced = false;
            for start in (0..faults.len()).step_by(size) {
                let complement: Vec<PlannedFault> = faults
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i < start || *i >= start + size)
                    .map(|(_, f)| f.clone())
                    .collect();
                if self.attempt(self.best.with_faults(complement), "faults") {
                    chunks = (chunks - 1).max(2);
                    reduced = true;
                    break;
                }
            }
            if !reduced {
                if chunks >= faults.len() {
                    return;
                }
                chunks = (chunks * 2).min(faults.len());
            }
        }
    }

    /// The lowest total rate that keeps enough requests after the heal for
    /// `liveness` to judge (as scenario validation requires), so the written
    /// file stays valid.
    fn rate_floor(&self) -> f64 {
        let scenario = self.best.scenario();
        if scenario.check.invariants.iter().any(|i| i == "liveness") {
            5.0 / (scenario.heal.0 - scenario.check.recover_within.0).as_secs_f64().max(1e-3)
        } else {
            1.0
        }
    }

    fn clients(&mut self) {
        while self.best.scenario().workload.clients > 1 && self.exhausted().is_none() {
            let clients = self.best.scenario().workload.clients;
            // A closed loop has no rate to keep above the floor.
            let rate = self.best.scenario().workload.rate_at(Dur::ZERO).unwrap_or(f64::INFINITY);
            let per_client = rate / f64::from(clients);
            let floor = self.rate_floor();
            let allowed = |n: u32| per_client * f64::from(n) >= floor;
            let halved = allowed(clients / 2) && self.attempt(self.best.with_clients(clients / 2), "clients");
            let one_less = !halved
                && clients / 2 != clients - 1
                && allowed(clients - 1)
                && self.attempt(self.best.with_clients(clients - 1), "clients");
            if !halved && !one_less {
                return;
            }
        }
    }

    fn duration(&mut self) {
        // First, end the fault phase one second after the last fault does.
        let last = self.best.plan.faults.iter().map(|f| f.until.unwrap_or(f.at)).max();
        if let Some(last) = last {
            let end = Dur(Duration::from_secs(last.0.as_secs() + 2));
            if end < self.best.scenario().duration {
                self.attempt(self.best.with_duration(end), "duration");
            }
        }
        loop {
            let half = Dur(self.best.scenario().duration.0 / 2);
            if half < Dur::from_secs(1) || !self.attempt(self.best.with_duration(half), "duration") {
                return;
            }
        }
    }

    fn rate(&mut self) {
        let floor = self.rate_floor();
        loop {
            let Some(rate) = self.best.scenario().workload.rate_at(Dur::ZERO) else { return };
            if rate / 2.0 < floor || !self.attempt(self.best.with_rates_scaled(0.5), "rate") {
                return;
            }
        }
    }

    /// Each fault shorter (halving its length), then starting later.
    fn fault_lengths(&mut self) {
        for index in 0..self.best.plan.faults.len() {
            for _ in 0..8 {
                let fault = self.best.plan.faults[index].clone();
                let Some(until) = fault.until else { break };
                let length = until.0.saturating_sub(fault.at.0);
                if length < Duration::from_millis(2) {
                    break;
                }
                let mut faults = self.best.plan.faults.clone();
                faults[index].until = Some(Dur(fault.at.0 + length / 2));
                let shorter = self.best.with_faults(faults.clone());
                if !self.attempt(shorter, "fault lengths") {
                    faults[index].until = Some(until);
                    faults[index].at = Dur(fault.at.0 + length / 2);
                    if !self.attempt(self.best.with_faults(faults), "fault starts") {
                        break;
                    }
                }
            }
        }
    }
}

/// The invariant a report violates first (by name), if any.
pub fn first_violated(report: &RunReport) -> Option<String> {
    report.violation_counts.keys().next().cloned()
}

/// Shrinks seed `seed` of `loaded`.
pub fn shrink(
    loaded: &Arc<Loaded>,
    seed: u64,
    options: &ShrinkOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ShrinkResult, ShrinkError> {
    // The search's own wall clock: outside any simulation.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let scenario = &loaded.scenario;
    let plan = Plan::expand(scenario, seed);
    let original = Candidate { loaded: Arc::clone(loaded), plan };
    let run_options = RunOptions { wall_limit: Some(options.wall_limit), ..RunOptions::default() };
    let report = run_plan(loaded, original.plan.clone(), run_options);
    let invariant = match &options.invariant {
        Some(name) if report.violation_counts.contains_key(name) => name.clone(),
        Some(name) => {
            return Err(ShrinkError::NotFailing(format!(
                "seed {seed} does not violate {name}; it violates: {}",
                names(&report)
            )))
        }
        None => first_violated(&report).ok_or_else(|| {
            let why = report
                .aborted
                .clone()
                .map_or("no invariant is violated".to_string(), |a| format!("the run aborted: {a}"));
            ShrinkError::NotFailing(format!("seed {seed} has nothing to shrink: {why}"))
        })?,
    };
    let mut search = Search {
        invariant: invariant.clone(),
        options,
        runs: 1,
        started,
        progress,
        best: original.clone(),
        best_report: report,
    };
    search.faults();
    search.clients();
    search.duration();
    search.rate();
    search.fault_lengths();
    // A second pass: a smaller run may let more faults go.
    search.faults();
    let stopped = search.exhausted();
    // Faults apply at the first tick boundary at or after their time, so
    // rounding their times up to the tick changes nothing and reads better.
    // The written form: faults sorted by start (the order a re-read file
    // has; it decides which of two overlapping latency faults wins) and their
    // times rounded up to the tick, which reads better. Rounding can reorder
    // events inside a tick, so the final form is run like any other step and
    // kept only if it still fails; else the exact times stay.
    let sorted = sorted_by_start(&search.best);
    let rounded = rounded_to_tick(&sorted, scenario.tick);
    if !search.attempt(rounded, "final form") {
        search.attempt(sorted, "final form");
    }
    Ok(ShrinkResult {
        invariant,
        original: original.size(),
        runs: search.runs,
        elapsed: search.started.elapsed(),
        shrunk: search.best,
        report: search.best_report,
        stopped,
    })
}

/// The candidate with its faults in start order (stable), renumbered.
fn sorted_by_start(candidate: &Candidate) -> Candidate {
    let mut faults = candidate.plan.faults.clone();
    faults.sort_by_key(|f| f.at);
    for (id, fault) in faults.iter_mut().enumerate() {
        fault.id = id as u32;
    }
    candidate.with_faults(faults)
}

/// Fault times rounded up to the tick. A fault whose start and end then
/// meet had the effect of a zero-length one: nothing for a link fault
/// (dropped), a bounce for a crash (a restart). One that would round onto
/// the end of the phase keeps its exact times.
fn rounded_to_tick(candidate: &Candidate, tick: Dur) -> Candidate {
    let tick = tick.as_nanos();
    let heal_at = candidate.plan.heal_at;
    let up = |d: Dur| Dur(Duration::from_nanos(d.as_nanos().div_ceil(tick) * tick));
    let mut faults = Vec::new();
    for mut fault in candidate.plan.faults.clone() {
        let (at, until) = (up(fault.at), fault.until.map(|u| up(u).min(heal_at)));
        if at >= heal_at {
            faults.push(fault);
            continue;
        }
        fault.at = at;
        fault.until = until;
        if until.is_some_and(|u| u <= at) {
            match fault.action {
                Action::Crash { hosts } => {
                    fault.action = Action::Restart { hosts };
                    fault.until = None;
                }
                _ => continue,
            }
        }
        faults.push(fault);
    }
    candidate.with_faults(faults)
}

fn names(report: &RunReport) -> String {
    if report.violation_counts.is_empty() {
        "nothing".into()
    } else {
        report.violation_counts.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// A duration exactly, in the largest unit that keeps it whole.
fn exact(duration: Dur) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        "0s".into()
    } else if nanos.is_multiple_of(1_000_000_000) {
        format!("{}s", nanos / 1_000_000_000)
    } else if nanos.is_multiple_of(1_000_000) {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

/// A string as TOML writes it (not as Rust's `{:?}` would).
fn quote(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn hosts(list: &[String]) -> String {
    let quoted: Vec<String> = list.iter().map(|h| quote(h)).collect();
    format!("[{}]", quoted.join(", "))
}

/// Writes `candidate` as a standalone scenario file pinned to its seed, with
/// explicit faults only. `header` lines become comments at the top.
pub fn to_toml(candidate: &Candidate, expect: &Expect, header: &[String]) -> String {
    let s = candidate.scenario();
    let mut out = String::new();
    for line in header {
        out.push_str(&format!("# {line}\n"));
    }
    out.push_str(&format!("name = {}\n", quote(&s.name)));
    out.push_str(&format!("system = {}\n", quote(&s.system_name)));
    out.push_str(&format!(
        "seed = {}\n",
        toml::Value::try_from(crate::units::Seed(candidate.plan.seed)).expect("a seed is a TOML value")
    ));
    out.push_str(&format!(
        "duration = {:?}\nheal = {:?}\ntick = {:?}\n",
        exact(s.duration),
        exact(s.heal),
        exact(s.tick)
    ));
    out.push_str(&format!(
        "\n[network]\nlatency = \"{}..{}\"\ntcp_capacity = {}\n",
        exact(s.network.latency.min),
        exact(s.network.latency.max),
        s.network.tcp_capacity
    ));
    if !s.knobs.is_empty() {
        let knobs = toml::to_string(&s.knobs).expect("a TOML table serializes");
        out.push_str(&format!("\n[knobs]\n{knobs}"));
    }
    out.push_str(&workload_toml(s));
    for fault in &candidate.plan.faults {
        out.push_str(&fault_toml(fault, candidate.plan.heal_at));
    }
    out.push_str(&check_toml(s, expect));
    out
}

fn workload_toml(s: &Scenario) -> String {
    let mut out = format!("\n[workload]\nclients = {}\n", s.workload.clients);
    match &s.workload.load {
        Load::Open { rate, arrival, stages } => {
            out.push_str(&format!("rate = \"{}/s\"\narrival = \"{arrival}\"\n", rate.per_second));
            if !stages.is_empty() {
                let shown: Vec<String> = stages
                    .iter()
                    .map(|stage| {
                        format!(
                            "{{ duration = {:?}, target = \"{}/s\" }}",
                            exact(stage.duration),
                            stage.target.per_second
                        )
                    })
                    .collect();
                out.push_str(&format!("stages = [{}]\n", shown.join(", ")));
            }
        }
        Load::Closed { think } => {
            out.push_str(&format!("mode = \"closed\"\nthink = \"{}..{}\"\n", exact(think.min), exact(think.max)));
        }
    }
    out.push_str(&format!("deadline = {:?}\n", exact(s.workload.deadline)));
    out
}

/// One `[[fault]]` table; nothing for a zero-length link fault (it does
/// nothing), and a restart for a zero-length crash (a bounce).
fn fault_toml(fault: &PlannedFault, heal_at: Dur) -> String {
    let zero = fault.until.is_some_and(|u| u <= fault.at);
    let fault = &match (&fault.action, zero) {
        (Action::Crash { hosts }, true) => {
            PlannedFault { action: Action::Restart { hosts: hosts.clone() }, until: None, ..fault.clone() }
        }
        (_, true) => return String::new(),
        _ => fault.clone(),
    };
    let mut out = format!("\n[[fault]]\n# {} in the original plan\n", fault.origin);
    out.push_str(&format!("kind = {:?}\nat = {:?}\n", fault.action.kind(), exact(fault.at)));
    let length = fault.until.filter(|u| *u < heal_at).map(|u| Dur(u.0 - fault.at.0));
    match &fault.action {
        Action::Partition { a, b, oneway } => {
            out.push_str(&format!("between = [{}, {}]\n", hosts(a), hosts(b)));
            if *oneway {
                out.push_str("oneway = true\n");
            }
        }
        Action::Latency { a, b, latency } => {
            out.push_str(&format!("between = [{}, {}]\n", hosts(a), hosts(b)));
            out.push_str(&format!("latency = \"{}..{}\"\n", exact(latency.min), exact(latency.max)));
        }
        Action::Loss { a, b, rate } => {
            out.push_str(&format!("between = [{}, {}]\nrate = {rate}\n", hosts(a), hosts(b)))
        }
        Action::Clog { a, b } | Action::Blackhole { a, b, oneway: false } | Action::Refuse { a, b } => {
            out.push_str(&format!("between = [{}, {}]\n", hosts(a), hosts(b)))
        }
        Action::Blackhole { a, b, oneway: true } => {
            out.push_str(&format!("between = [{}, {}]\noneway = true\n", hosts(a), hosts(b)))
        }
        Action::Crash { hosts: list } | Action::PowerOff { hosts: list, .. } => {
            out.push_str(&format!("hosts = {}\n", hosts(list)));
            if let Some(length) = length {
                out.push_str(&format!("restart_after = {:?}\n", exact(length)));
            }
        }
        Action::Restart { hosts: list } => out.push_str(&format!("hosts = {}\n", hosts(list))),
    }
    let on_hosts = matches!(fault.action, Action::Crash { .. } | Action::Restart { .. } | Action::PowerOff { .. });
    if let (Some(length), false) = (length, on_hosts) {
        out.push_str(&format!("for = {:?}\n", exact(length)));
    }
    out
}

fn check_toml(s: &Scenario, expect: &Expect) -> String {
    let invariants: Vec<String> = s.check.invariants.iter().map(|i| quote(i)).collect();
    let expect = match expect {
        Expect::Pass => quote("pass"),
        Expect::Violations(names) => {
            let quoted: Vec<String> = names.iter().map(|n| quote(&format!("violation:{n}"))).collect();
            format!("[{}]", quoted.join(", "))
        }
    };
    let mut out = format!(
        "\n[check]\ninvariants = [{}]\nexpect = {expect}\nrecover_within = {:?}\n",
        invariants.join(", "),
        exact(s.check.recover_within)
    );
    let probe = s.metrics.probe_interval.map_or("0s".to_string(), exact);
    out.push_str(&format!(
        "\n[metrics]\nprobe_interval = {probe:?}\nprobe_threshold = {}\nprobe_up = \"{}\"\nwindow = {:?}\nup_ratio = {}\n",
        s.metrics.probe_threshold,
        match s.metrics.probe_up {
            crate::scenario::ProbeUp::Served => "served",
            crate::scenario::ProbeUp::Fresh => "fresh",
        },
        exact(s.metrics.window),
        s.metrics.up_ratio
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_durations_keep_every_nanosecond() {
        assert_eq!(exact(Dur::from_secs(3)), "3s");
        assert_eq!(exact(Dur::from_millis(1500)), "1500ms");
        assert_eq!(exact(Dur(Duration::from_nanos(1_234_567))), "1234567ns");
        assert_eq!(exact(Dur(Duration::from_micros(7))), "7us");
        for text in ["3s", "1500ms", "1234567ns", "7us"] {
            assert_eq!(exact(Dur::parse(text).unwrap()), text, "round trip of {text}");
        }
    }
}
