//! The app tier's checkers and figures: pure functions of a finished run.
//! They hold the lb's recorded decisions (its routes, admissions, refusals)
//! and the users' answers to what the harness says was true (ground.rs):
//! which instances were down or cut off from the database, which were
//! members, when the lb restarted.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use faultline_harness::history::{format_nanos, nanos, Happening};
use faultline_harness::system::CheckContext;
use faultline_harness::units::format_duration;
use faultline_harness::{History, Nanos, Outcome, Violation};

use super::autoscaler::TOLERANCE;
use super::ground::{Ground, Intervals};
use super::knobs::{AppTier, Limiter};
use super::protocol::{app_index, Answer, HealthCheck, TierEvent, TierOp, LB};

const SECOND: Nanos = 1_000_000_000;

/// Slack for token counts in floating point: a limiter is held to its
/// contract to within a thousandth of a token (a real breach is a whole one).
pub const TOKEN_EPSILON: f64 = 1e-3;

/// Operation ids by (client, seq), to name the requests a violation involves.
fn op_ids(history: &History<TierOp, Answer>) -> BTreeMap<(u32, u64), usize> {
    history.ops.iter().map(|op| ((op.client, op.seq), op.id)).collect()
}

fn show(duration: Nanos) -> String {
    format_duration(Duration::from_nanos(duration))
}

/// The routes the lb made to failed instances after the detection bound.
#[derive(Debug, Default)]
pub struct Misroutes {
    pub violations: Vec<Violation>,
    /// Routes to a failed instance after the bound (not excused by panic).
    pub late: u64,
    pub routes: u64,
}

/// The late routes to one failed instance in one failure.
struct Episode {
    first: Nanos,
    client: u32,
    count: u64,
    ops: Vec<usize>,
}

/// `no-routing-to-dead`: no route to an instance that is down or cannot reach
/// the database, later than `detection_bound` after it failed (or after the
/// lb restarted, if later); routes the lb made in panic are excused while
/// fewer than the panic threshold of the members were ready.
pub fn misroutes(config: &AppTier, context: &CheckContext<'_, AppTier>) -> Misroutes {
    let ground = Ground::of(config, context);
    let bound = nanos(config.detection_bound());
    let failed: BTreeMap<u32, Intervals> = (1..=ground.instances).map(|i| (i, ground.failed(i))).collect();
    let ops = op_ids(context.history);
    let mut result = Misroutes::default();
    // One violation per failure episode: (instance, its start) -> its late routes.
    let mut episodes: BTreeMap<(u32, Nanos), Episode> = BTreeMap::new();
    for (at, source, event) in context.events() {
        let TierEvent::Route { instance, client, seq, panic, .. } = event else { continue };
        if source != LB {
            continue;
        }
        result.routes += 1;
        let Some((start, _)) = failed.get(instance).and_then(|f| f.containing(at)) else { continue };
        let since = start.max(ground.lb_reset_before(at));
        if at < since + bound || (*panic && panic_excused(config, &ground, at)) {
            continue;
        }
        result.late += 1;
        let entry = episodes.entry((*instance, start)).or_insert(Episode {
            first: at,
            client: *client,
            count: 0,
            ops: Vec::new(),
        });
        entry.count += 1;
        entry.ops.extend(ops.get(&(*client, *seq)));
    }
    for ((instance, start), Episode { first, client, count, ops: involved }) in episodes {
        let how = if ground.down[&instance].contains(first) { "down" } else { "cut off from the database" };
        result.violations.push(
            Violation::new(format!(
                "the lb routed {count} requests to app-{instance} while it was {how} since {}: the first (client \
                 {client}'s) at {}, {} after it failed; the detection bound is {}",
                format_nanos(start),
                format_nanos(first),
                show(first - start),
                show(bound)
            ))
            .at(first)
            .ops(involved),
        );
    }
    result
}

/// A route in panic is excused while, at some time in the last restoration
/// or detection bound, fewer than the panic threshold of the members were
/// sound (up, ready, and with no fault on their links to the lb or the
/// database: a slow link can fail checks of an instance that could serve).
fn panic_excused(config: &AppTier, ground: &Ground, at: Nanos) -> bool {
    if config.panic_threshold <= 0.0 {
        return false;
    }
    let lag = nanos(config.restoration_bound().max(config.detection_bound()));
    let from = at.saturating_sub(lag);
    ground
        .share_edges(from, at)
        .into_iter()
        .any(|edge| ground.sound_share(edge).is_some_and(|share| share < config.panic_threshold))
}

/// `session-continuity`: a user whose session was used successfully (or
/// created) at invocation time u is not told "logged out" by a request that
/// completed before u + session_ttl and began after that use ended. A
/// session's expiry is refreshed by every use, no earlier than its
/// invocation, so such an answer is wrong whatever the timing.
pub fn check_session_continuity(config: &AppTier, context: &CheckContext<'_, AppTier>) -> Vec<Violation> {
    let ttl = config.session_ttl.as_nanos();
    let history = context.history;
    // Session id -> successful uses (invoked, completed).
    let mut uses: BTreeMap<u64, Vec<(Nanos, Nanos)>> = BTreeMap::new();
    for op in &history.ops {
        let id = match (&op.op, &op.outcome) {
            (TierOp::Login, Outcome::Ok(Answer::LoggedIn(session))) => session.id,
            (TierOp::Page { session }, Outcome::Ok(Answer::Page { .. }) | Outcome::Degraded(Answer::Page { .. })) => {
                session.id
            }
            _ => continue,
        };
        uses.entry(id).or_default().push((op.invoked, op.completed));
    }
    let routed = last_routes(context);
    let mut violations = Vec::new();
    for op in &history.ops {
        let (TierOp::Page { session }, Outcome::Ok(Answer::LoggedOut)) = (&op.op, &op.outcome) else { continue };
        let before = uses.get(&session.id).into_iter().flatten().filter(|(_, completed)| *completed <= op.invoked);
        let Some(last_use) = before.map(|(invoked, _)| *invoked).max() else { continue };
        if op.completed >= last_use + ttl {
            continue;
        }
        let by = routed.get(&(op.client, op.seq)).map_or("an instance".into(), |i| format!("app-{i}"));
        violations.push(
            Violation::new(format!(
                "client {}'s session {:#x} (created by app-{}) was last used at {} and lives until {} at least \
                 (ttl {}), but {by} answered \"logged out\" at {}",
                op.client,
                session.id,
                session.instance,
                format_nanos(last_use),
                format_nanos(last_use + ttl),
                show(ttl),
                format_nanos(op.completed)
            ))
            .at(op.completed)
            .ops([op.id]),
        );
    }
    violations
}

/// The instance the lb last routed each request to.
fn last_routes(context: &CheckContext<'_, AppTier>) -> BTreeMap<(u32, u64), u32> {
    context
        .events()
        .filter_map(|(_, _, event)| match event {
            TierEvent::Route { instance, client, seq, .. } => Some(((*client, *seq), *instance)),
            _ => None,
        })
        .collect()
}

/// How one client's admissions and refusals measure against its limiter's contract.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Breaches {
    /// Indexes of admitted requests beyond the contract.
    pub over: Vec<usize>,
    /// Indexes of refused requests the contract allowed.
    pub refused_within: Vec<usize>,
    /// Token bucket: the largest A(s, t) - rate x (t - s) over every span;
    /// windows: the most admissions in any window.
    pub peak: f64,
}

/// A token bucket's contract: every span [s, t] admits at most
/// burst + rate x (t - s), and a request is refused only if admitting it
/// would break that. `rate` in requests per nanosecond; `decisions` in time order.
pub fn bucket_breaches(decisions: &[(Nanos, bool)], rate: f64, burst: f64) -> Breaches {
    let mut breaches = Breaches::default();
    let mut admitted = 0u64;
    // The least of (i - rate x t_i) over the admitted requests so far.
    let mut least = f64::INFINITY;
    for (index, (at, admit)) in decisions.iter().enumerate() {
        let own = admitted as f64 - rate * *at as f64;
        let used = (admitted + 1) as f64 - rate * *at as f64 - least.min(own);
        if *admit {
            if used > burst + TOKEN_EPSILON {
                breaches.over.push(index);
            }
            breaches.peak = breaches.peak.max(used);
            least = least.min(own);
            admitted += 1;
        } else if used <= burst - TOKEN_EPSILON {
            breaches.refused_within.push(index);
        }
    }
    breaches
}

/// A window's contract: at most `limit` admissions in any span (t - window, t],
/// and a request is refused only if that span already holds `limit`.
pub fn window_breaches(decisions: &[(Nanos, bool)], window: Nanos, limit: u32) -> Breaches {
    let mut breaches = Breaches::default();
    let mut recent: VecDeque<Nanos> = VecDeque::new();
    for (index, (at, admit)) in decisions.iter().enumerate() {
        while recent.front().is_some_and(|t| *t + window <= *at) {
            recent.pop_front();
        }
        if *admit {
            recent.push_back(*at);
            if recent.len() > limit as usize {
                breaches.over.push(index);
            }
            breaches.peak = breaches.peak.max(recent.len() as f64);
        } else if recent.len() < limit as usize {
            breaches.refused_within.push(index);
        }
    }
    breaches
}

/// One decision of the lb's rate limiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub at: Nanos,
    pub admitted: bool,
    /// The request's sequence number within its client.
    pub seq: u64,
}

/// Each client's limiter decisions in time order, by (client, the lb's
/// incarnation): they are split where the lb restarted, as its limiters
/// live in its memory.
pub type Decisions = BTreeMap<(u32, usize), Vec<Decision>>;

pub fn decisions(context: &CheckContext<'_, AppTier>) -> Decisions {
    let resets = context.resets_of(LB);
    let mut by_client = Decisions::new();
    for (at, source, event) in context.events() {
        let (client, seq, admitted) = match event {
            TierEvent::Admit { client, seq } => (*client, *seq, true),
            TierEvent::Throttle { client, seq } => (*client, *seq, false),
            _ => continue,
        };
        if source == LB {
            let epoch = resets.iter().filter(|r| **r <= at).count();
            by_client.entry((client, epoch)).or_default().push(Decision { at, admitted, seq });
        }
    }
    by_client
}

/// One client's breaches under the configured limiter (none without one).
pub fn breaches(config: &AppTier, decisions: &[Decision]) -> Breaches {
    let plain: Vec<(Nanos, bool)> = decisions.iter().map(|d| (d.at, d.admitted)).collect();
    match config.limiter {
        Limiter::None => Breaches::default(),
        Limiter::TokenBucket => bucket_breaches(&plain, config.limit / SECOND as f64, f64::from(config.burst)),
        Limiter::FixedWindow | Limiter::SlidingWindow => {
            window_breaches(&plain, config.window.as_nanos(), config.window_limit())
        }
    }
}

/// `rate-limit`: each client's admissions keep to its limiter's contract
/// (token bucket: burst + rate x time over any span; windows: the limit in
/// any window), and no request the contract allowed was refused.
pub fn check_rate_limit(config: &AppTier, context: &CheckContext<'_, AppTier>) -> Vec<Violation> {
    let ops = op_ids(context.history);
    let contract = match config.limiter {
        Limiter::None => return Vec::new(),
        Limiter::TokenBucket => format!("a burst of {} plus {}/s", config.burst, config.limit),
        Limiter::FixedWindow | Limiter::SlidingWindow => {
            format!("{} per {}", config.window_limit(), show(config.window.as_nanos()))
        }
    };
    let mut violations = Vec::new();
    for ((client, _), decided) in decisions(context) {
        let found = breaches(config, &decided);
        let named = |indexes: &[usize]| -> Vec<usize> {
            indexes.iter().filter_map(|i| ops.get(&(client, decided[*i].seq)).copied()).collect()
        };
        if let Some(first) = found.over.first() {
            let admitted = decided.iter().filter(|d| d.admitted).count();
            violations.push(
                Violation::new(format!(
                    "client {client} got {} of its {admitted} admitted requests through beyond its limit of {contract} \
                     (the first at {}; at most {} where the limit allows {})",
                    found.over.len(),
                    format_nanos(decided[*first].at),
                    found.peak,
                    limit_peak(config)
                ))
                .at(decided[*first].at)
                .ops(named(&found.over)),
            );
        }
        if let Some(first) = found.refused_within.first() {
            violations.push(
                Violation::new(format!(
                    "the lb refused {} of client {client}'s requests with a 429 although they were within its limit \
                     of {contract} (the first at {})",
                    found.refused_within.len(),
                    format_nanos(decided[*first].at)
                ))
                .at(decided[*first].at)
                .ops(named(&found.refused_within)),
            );
        }
    }
    violations
}

/// What [`Breaches::peak`] may reach under the contract.
fn limit_peak(config: &AppTier) -> f64 {
    match config.limiter {
        Limiter::TokenBucket => f64::from(config.burst),
        _ => f64::from(config.window_limit()),
    }
}

/// The running instances (started by the pool and not stopped since) after
/// each pool change, grouped by time: (time, count, started, stopped).
fn pool_changes(config: &AppTier, context: &CheckContext<'_, AppTier>) -> Vec<(Nanos, u32, Vec<u32>, Vec<u32>)> {
    let mut running: u32 = config.pool_size();
    let mut changes: Vec<(Nanos, u32, Vec<u32>, Vec<u32>)> = Vec::new();
    for entry in context.trace {
        let (instance, start) = match &entry.event {
            Happening::PoolStart { host } => (app_index(host), true),
            Happening::PoolStop { host } => (app_index(host), false),
            _ => continue,
        };
        let Some(instance) = instance else { continue };
        running = if start { running + 1 } else { running.saturating_sub(1) };
        if changes.last().is_none_or(|last| last.0 != entry.at) {
            changes.push((entry.at, running, Vec::new(), Vec::new()));
        }
        let last = changes.last_mut().expect("just pushed");
        last.1 = running;
        if start { &mut last.2 } else { &mut last.3 }.push(instance);
    }
    changes
}

/// `scaling-bounds`: the running instances stay within
/// `instances_min..=instances_max`, and no instance is stopped sooner than
/// `stabilization_window` after an instance was started (no flapping).
pub fn check_scaling_bounds(config: &AppTier, context: &CheckContext<'_, AppTier>) -> Vec<Violation> {
    if !config.autoscale {
        return Vec::new();
    }
    let window = config.stabilization_window.as_nanos();
    let mut violations = Vec::new();
    let mut last_start: Option<(Nanos, u32)> = None;
    for (at, running, started, stopped) in pool_changes(config, context) {
        if !(config.instances_min..=config.instances_max).contains(&running) {
            violations.push(
                Violation::new(format!(
                    "{running} instances ran at {}, outside {}..={}",
                    format_nanos(at),
                    config.instances_min,
                    config.instances_max
                ))
                .at(at),
            );
        }
        if let (Some((started_at, instance)), Some(stop)) = (last_start, stopped.first()) {
            if at - started_at < window {
                violations.push(
                    Violation::new(format!(
                        "app-{stop} was stopped at {}, {} after app-{instance} was started: the instance count \
                         flapped faster than the stabilization window of {}",
                        format_nanos(at),
                        show(at - started_at),
                        show(window)
                    ))
                    .at(at),
                );
            }
        }
        if let Some(instance) = started.last() {
            last_start = Some((at, *instance));
        }
    }
    violations
}

/// `fail-open`: the lb answers 503 (no instance in rotation) only when no
/// member instance had been up, listening (booted) and reachable from it
/// for the restoration bound: an instance that is alive can at least answer
/// degraded.
pub fn check_fail_open(config: &AppTier, context: &CheckContext<'_, AppTier>) -> Vec<Violation> {
    let ground = Ground::of(config, context);
    let lag = nanos(config.restoration_bound());
    let ops = op_ids(context.history);
    let mut needless: Vec<(Nanos, Vec<u32>, usize)> = Vec::new();
    for (at, source, event) in context.events() {
        let TierEvent::NoUpstream { client, seq } = event else { continue };
        if source != LB {
            continue;
        }
        let from = at.saturating_sub(lag).max(ground.lb_reset_before(at));
        let alive: Vec<u32> = (1..=ground.instances)
            .filter(|i| {
                [&ground.stopped[i], &ground.down[i], &ground.booting[i], &ground.lb_cut[i]]
                    .iter()
                    .all(|intervals| !intervals.meets(from, at))
            })
            .collect();
        if !alive.is_empty() {
            needless.push((at, alive, ops.get(&(*client, *seq)).copied().unwrap_or(usize::MAX)));
        }
    }
    let Some((first, alive, _)) = needless.first() else { return Vec::new() };
    let last = needless.last().expect("not empty").0;
    let alive: Vec<String> = alive.iter().map(|i| format!("app-{i}")).collect();
    let involved: Vec<usize> = needless.iter().map(|n| n.2).filter(|id| *id != usize::MAX).collect();
    let (who, verb) = if alive.len() == 1 { ("it", "was") } else { ("each", "were") };
    vec![Violation::new(format!(
        "the lb refused {} requests with 503 (no instance in rotation) between {} and {} while {} {verb} alive and \
         reachable, and {who} could have answered at least degraded",
        needless.len(),
        format_nanos(*first),
        format_nanos(last),
        alive.join(", ")
    ))
    .at(*first)
    .ops(involved)]
}

/// Mean and largest time from an instance failing (in a way its checks can
/// see: down, or without its database for readiness checks) to the lb taking
/// it out of rotation, over the failures the lb did eject.
pub fn eject_times(config: &AppTier, context: &CheckContext<'_, AppTier>) -> Vec<Nanos> {
    let ground = Ground::of(config, context);
    let mut ejects: BTreeMap<u32, Vec<Nanos>> = BTreeMap::new();
    for (at, source, event) in context.events() {
        if let (TierEvent::Eject { instance, .. }, true) = (event, source == LB) {
            ejects.entry(*instance).or_default().push(at);
        }
    }
    let mut times = Vec::new();
    for instance in 1..=ground.instances {
        let failures = match config.health_check {
            HealthCheck::Readiness => ground.failed(instance),
            HealthCheck::Liveness => ground.down[&instance].clone(),
        };
        // A scale-in stops an instance on purpose: no failure to detect.
        for (start, end) in failures.spans().iter().filter(|(start, _)| !ground.stopped[&instance].contains(*start)) {
            let eject = ejects.get(&instance).into_iter().flatten().find(|at| (*start..*end).contains(*at));
            // A failure older than the lb's last restart counts from the restart.
            times.extend(eject.map(|at| at - (*start).max(ground.lb_reset_before(*at))));
        }
    }
    times
}

/// The share of `Page` requests answered "logged out".
pub fn logged_out_share(history: &History<TierOp, Answer>) -> Option<f64> {
    let pages = history.ops.iter().filter(|op| matches!(op.op, TierOp::Page { .. })).count();
    let out = history.ops.iter().filter(|op| matches!(op.outcome, Outcome::Ok(Answer::LoggedOut))).count();
    (pages > 0).then(|| out as f64 / pages as f64)
}

/// Rate limiting across clients: the largest admissions in any window of
/// `window` (1s for a token bucket) over what the limit allows in it, and
/// the share of admitted requests beyond the contract; for a token bucket
/// also the largest burst used (A(s, t) - rate x (t - s)).
pub fn limit_figures(config: &AppTier, context: &CheckContext<'_, AppTier>) -> Vec<(&'static str, f64)> {
    if config.limiter == Limiter::None {
        return Vec::new();
    }
    let window = match config.limiter {
        Limiter::TokenBucket => SECOND,
        _ => config.window.as_nanos(),
    };
    let allowed = config.limit * window as f64 / SECOND as f64;
    let (mut peak, mut over, mut admitted, mut burst) = (0.0f64, 0usize, 0usize, 0.0f64);
    for decided in decisions(context).values() {
        let plain: Vec<(Nanos, bool)> = decided.iter().map(|d| (d.at, d.admitted)).collect();
        peak = peak.max(window_breaches(&plain, window, u32::MAX).peak);
        let found = breaches(config, decided);
        over += found.over.len();
        admitted += decided.iter().filter(|d| d.admitted).count();
        burst = burst.max(found.peak);
    }
    let mut figures =
        vec![("limit_peak_ratio", peak / allowed), ("limit_excess_share", over as f64 / admitted.max(1) as f64)];
    if config.limiter == Limiter::TokenBucket {
        figures.push(("bucket_peak_burst", burst));
    }
    figures
}

/// Autoscaling: the time-average number of running instances, the number
/// of pool changes, and the time to scale out after the first load step.
pub fn scaling_figures(config: &AppTier, context: &CheckContext<'_, AppTier>) -> Vec<(&'static str, f64)> {
    if !config.autoscale {
        return Vec::new();
    }
    let changes = pool_changes(config, context);
    let end = context.end.max(1);
    let (mut area, mut at, mut running) = (0u128, 0, config.pool_size());
    for (when, count, _, _) in &changes {
        let when = (*when).min(end);
        area += u128::from(when - at.min(when)) * u128::from(running);
        (at, running) = (when, *count);
    }
    area += u128::from(end.saturating_sub(at)) * u128::from(running);
    let mut figures = vec![
        ("instances_mean", area as f64 / end as f64),
        ("pool_changes", changes.iter().filter(|c| c.0 > 0).count() as f64),
    ];
    if let Some(seconds) = scale_out(config, context, &changes) {
        figures.push(("scale_out_s", seconds));
    }
    figures
}

/// From the first quarter second whose offered load exceeds the starting
/// capacity (instances x target_rps, beyond the tolerance) to the lb putting
/// in rotation the last instance of the first scale-out after it.
fn scale_out(
    config: &AppTier,
    context: &CheckContext<'_, AppTier>,
    changes: &[(Nanos, u32, Vec<u32>, Vec<u32>)],
) -> Option<f64> {
    const QUARTER: Nanos = SECOND / 4;
    let capacity = f64::from(config.instances) * config.target_rps * (1.0 + TOLERANCE);
    let mut buckets: BTreeMap<Nanos, u32> = BTreeMap::new();
    for op in &context.history.ops {
        *buckets.entry(op.intended / QUARTER).or_default() += 1;
    }
    let step = buckets.iter().find(|(_, count)| f64::from(**count) * 4.0 > capacity).map(|(b, _)| b * QUARTER)?;
    let (started_at, _, started, _) = changes.iter().find(|c| c.0 >= step && !c.2.is_empty())?;
    let mut in_rotation = Vec::new();
    for instance in started {
        let restored = context.events().find_map(|(at, source, event)| match event {
            TierEvent::Restore { instance: i } if i == instance && source == LB && at >= *started_at => Some(at),
            _ => None,
        })?;
        in_rotation.push(restored);
    }
    let last = in_rotation.into_iter().max()?;
    Some((last - step) as f64 / SECOND as f64)
}

#[cfg(test)]
mod tests;
