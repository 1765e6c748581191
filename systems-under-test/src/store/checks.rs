//! The replicated store's invariants and figures: pure functions of a
//! finished run's history and typed trace.
//!
//! The lost-write check reads only the history: clients read every key back
//! from its primary (audits), and the last audit of each key after the heal
//! must hold every write acknowledged before it began. The log checks
//! rebuild each node's log from its `log.recovered`, `log.append` and
//! `log.truncate` events.

use std::collections::{BTreeMap, BTreeSet};

use faultline_harness::linearizability::operation::Operation as LinOp;
use faultline_harness::system::Unjudged;
use faultline_harness::{CheckContext, CheckResult, History, Nanos, Operation, Outcome, Violation};

use super::knobs::Store;
use super::model::{label, tail, ListInput, ListOutput, Lists};
use super::protocol::{StoreEvent, StoreOp, StoreRes};

const SECOND: f64 = 1e9;
/// Violations listed one by one at most; the rest are summed up.
const LISTED_MAX: usize = 20;

type Op = Operation<StoreOp, StoreRes>;

fn seconds(at: Nanos) -> String {
    format!("{:.3}s", at as f64 / SECOND)
}

/// A read's answer (reads and audits).
fn read_values(op: &Op) -> Option<&Vec<u64>> {
    match (&op.op, op.outcome.value()) {
        (StoreOp::Read { .. } | StoreOp::Audit { .. }, Some(StoreRes::Values { values, .. })) => Some(values),
        _ => None,
    }
}

/// An acknowledged write's value.
fn written(op: &Op) -> Option<u64> {
    match (&op.op, &op.outcome) {
        (StoreOp::Write { value, .. }, Outcome::Ok(StoreRes::Written { .. })) => Some(*value),
        _ => None,
    }
}

/// Keeps the first `LISTED_MAX` violations and sums up the rest in one more.
fn capped(mut violations: Vec<Violation>, what: &str) -> Vec<Violation> {
    if violations.len() > LISTED_MAX {
        let more = violations.len() - LISTED_MAX;
        violations.truncate(LISTED_MAX);
        violations.push(Violation::new(format!("and {more} more {what}")));
    }
    violations
}

/// What the audits after the heal show was lost.
#[derive(Clone, Debug, PartialEq)]
pub struct Losses {
    /// Acknowledged writes missing from their key's last audit (op ids).
    pub lost: Vec<usize>,
    /// Seconds of acknowledged data lost: from the last acknowledged write
    /// that survived before the first lost one, to the last lost one.
    pub rpo_seconds: f64,
    /// The last audit of each key after the heal.
    audits: BTreeMap<u32, usize>,
}

/// The lost acknowledged writes, or why they cannot be told (a key written
/// and not read back after the heal).
pub fn losses(history: &History<StoreOp, StoreRes>, heal_at: Nanos) -> Result<Losses, Unjudged> {
    let mut audits: BTreeMap<u32, usize> = BTreeMap::new();
    for op in &history.ops {
        if matches!(op.op, StoreOp::Audit { .. }) && op.invoked >= heal_at && read_values(op).is_some() {
            let last = audits.entry(op.op.key()).or_insert(op.id);
            if history.ops[*last].invoked <= op.invoked {
                *last = op.id;
            }
        }
    }
    let mut lost = Vec::new();
    let mut survived: Vec<Nanos> = Vec::new();
    for op in &history.ops {
        let Some(value) = written(op) else { continue };
        let Some(audit) = audits.get(&op.op.key()).map(|id| &history.ops[*id]) else {
            return Err(Unjudged(format!(
                "key {} was written and never read back after the heal at {}: lengthen heal or audit more often \
                 (audit_every)",
                op.op.key(),
                seconds(heal_at)
            )));
        };
        if op.completed >= audit.invoked {
            continue;
        }
        if read_values(audit).is_some_and(|values| values.contains(&value)) {
            survived.push(op.completed);
        } else {
            lost.push(op.id);
        }
    }
    let rpo_seconds = match (
        lost.iter().map(|id| history.ops[*id].completed).min(),
        lost.iter().map(|id| history.ops[*id].completed).max(),
    ) {
        (Some(first), Some(last)) => {
            let from = survived.iter().copied().filter(|t| *t <= first).max();
            let from = from.unwrap_or_else(|| lost.iter().map(|id| history.ops[*id].invoked).min().unwrap_or(first));
            (last - from) as f64 / SECOND
        }
        _ => 0.0,
    };
    Ok(Losses { lost, rpo_seconds, audits })
}

/// `no-lost-acknowledged-writes`: after the heal, every acknowledged write
/// is in its key's last audit; reports the RPO in writes and seconds.
pub fn check_no_lost_writes(history: &History<StoreOp, StoreRes>, heal_at: Nanos) -> CheckResult {
    let losses = losses(history, heal_at)?;
    if losses.lost.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_key: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for id in &losses.lost {
        by_key.entry(history.ops[*id].op.key()).or_default().push(*id);
    }
    let mut violations = vec![Violation::new(format!(
        "{} acknowledged writes lost (RPO {} writes, {:.3}s of data)",
        losses.lost.len(),
        losses.lost.len(),
        losses.rpo_seconds
    ))];
    for (key, ids) in by_key {
        let audit = &history.ops[losses.audits[&key]];
        let named: Vec<String> = ids
            .iter()
            .take(5)
            .map(|id| {
                format!(
                    "{} (#{id}, at {})",
                    label(written(&history.ops[*id]).unwrap_or(0)),
                    seconds(history.ops[*id].completed)
                )
            })
            .collect();
        let values = read_values(audit).map_or(0, Vec::len);
        violations.push(
            Violation::new(format!(
                "key {key}: {} acknowledged writes missing from its read-back #{} at {} ({values} values): {}{}",
                ids.len(),
                audit.id,
                seconds(audit.invoked),
                named.join(", "),
                if ids.len() > 5 { ", ..." } else { "" }
            ))
            .at(audit.invoked)
            .ops(ids.iter().copied().chain([audit.id])),
        );
    }
    Ok(violations)
}

/// A node's role as its events tell, with when it took it.
#[derive(Clone, Debug, PartialEq)]
struct RoleAt {
    primary: bool,
    term: u64,
    since: Nanos,
}

/// `single-writer-per-term`: in each group and term, one node accepts
/// writes; and no node accepts a write in a term after it heard of a newer one.
pub fn check_single_writer(store: &Store, context: &CheckContext<'_, Store>) -> Vec<Violation> {
    let mut writers: BTreeMap<(u32, u64), String> = BTreeMap::new();
    let mut heard: BTreeMap<&str, (u64, Nanos)> = BTreeMap::new();
    let mut reported: BTreeSet<(String, u64, &'static str)> = BTreeSet::new();
    let mut violations = Vec::new();
    for (at, source, event) in context.events() {
        match event {
            StoreEvent::TermSeen { seen, .. } => {
                let entry = heard.entry(source).or_insert((*seen, at));
                if *seen > entry.0 {
                    *entry = (*seen, at);
                }
            }
            StoreEvent::Append { term, index, id, from: None } => {
                let Some(group) = store.group_of(source) else { continue };
                let writer = writers.entry((group, *term)).or_insert_with(|| source.to_string());
                if writer != source && reported.insert((source.to_string(), *term, "two")) {
                    violations.push(
                        Violation::new(format!(
                            "group {group}, term {term}: {source} accepted write {} (entry {index}) while {writer} \
                             was that term's writer",
                            label(*id)
                        ))
                        .at(at),
                    );
                }
                if let Some((seen, since)) = heard.get(source).filter(|(seen, _)| *seen > *term) {
                    if reported.insert((source.to_string(), *term, "fenced")) {
                        violations.push(
                            Violation::new(format!(
                                "{source} accepted write {} (entry {index}) in term {term} at {}, after it heard of \
                                 term {seen} at {}: a fenced primary kept writing",
                                label(*id),
                                seconds(at),
                                seconds(*since)
                            ))
                            .at(at),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    violations
}

/// Every node's log (entry ids), rebuilt event by event.
#[derive(Default)]
struct Logs {
    by_host: BTreeMap<String, Vec<u64>>,
}

impl Logs {
    /// Applies a log event of `host`; true if its log changed.
    fn apply(&mut self, host: &str, event: &StoreEvent) -> bool {
        let log = self.by_host.entry(host.to_string()).or_default();
        match event {
            StoreEvent::Recovered { ids, .. } => *log = ids.clone(),
            StoreEvent::Append { index, id, .. } => {
                log.truncate(index.saturating_sub(1) as usize);
                log.push(*id);
            }
            StoreEvent::Truncate { to, .. } => log.truncate(*to as usize),
            _ => return false,
        }
        true
    }

    fn of(&self, host: &str) -> &[u64] {
        self.by_host.get(host).map_or(&[], Vec::as_slice)
    }
}

/// Where two logs first differ (the shorter's length when one is a prefix).
fn first_difference(a: &[u64], b: &[u64]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn is_prefix(short: &[u64], long: &[u64]) -> bool {
    short.len() <= long.len() && first_difference(short, long) == short.len()
}

fn divergence(replica: &str, replica_log: &[u64], primary: &str, primary_log: &[u64]) -> String {
    let at = first_difference(replica_log, primary_log);
    let theirs = |log: &[u64]| log.get(at).map_or_else(|| "nothing".to_string(), |id| label(*id));
    format!(
        "{replica}'s log ({} entries) is not a prefix of {primary}'s ({} entries): at entry {} {replica} has {}, \
         {primary} has {}",
        replica_log.len(),
        primary_log.len(),
        at + 1,
        theirs(replica_log),
        theirs(primary_log)
    )
}

/// The primary of each group by the role events: the node claiming the
/// role in the newest term.
fn primaries(roles: &BTreeMap<String, RoleAt>, store: &Store) -> BTreeMap<u32, (String, RoleAt)> {
    let mut primaries: BTreeMap<u32, (String, RoleAt)> = BTreeMap::new();
    for (host, role) in roles.iter().filter(|(_, r)| r.primary) {
        let Some(group) = store.group_of(host) else { continue };
        let newer = primaries.get(&group).is_none_or(|(_, best)| role.term > best.term);
        if newer {
            primaries.insert(group, (host.clone(), role.clone()));
        }
    }
    primaries
}

fn note_role(roles: &mut BTreeMap<String, RoleAt>, at: Nanos, host: &str, event: &StoreEvent) {
    let role = match event {
        StoreEvent::BecamePrimary { term } => RoleAt { primary: true, term: *term, since: at },
        StoreEvent::BecameReplica { term, .. } => RoleAt { primary: false, term: *term, since: at },
        _ => return,
    };
    roles.insert(host.to_string(), role);
}

/// `log-prefix`: whenever a replica appends from its primary, its log is a
/// prefix of that primary's; and at the end every replica's log is a prefix
/// of its group's primary's.
pub fn check_log_prefix(store: &Store, context: &CheckContext<'_, Store>) -> Vec<Violation> {
    let mut logs = Logs::default();
    let mut roles: BTreeMap<String, RoleAt> = BTreeMap::new();
    let mut diverged: BTreeSet<(String, String)> = BTreeSet::new();
    let mut violations = Vec::new();
    for (at, host, event) in context.events() {
        note_role(&mut roles, at, host, event);
        if !logs.apply(host, event) {
            continue;
        }
        let StoreEvent::Append { from: Some(primary), .. } = event else { continue };
        let pair = (host.to_string(), primary.clone());
        if is_prefix(logs.of(host), logs.of(primary)) {
            diverged.remove(&pair);
        } else if diverged.insert(pair) {
            violations.push(Violation::new(divergence(host, logs.of(host), primary, logs.of(primary))).at(at));
        }
    }
    for (group, (primary, _)) in primaries(&roles, store) {
        for node in store.nodes_of(group).iter().filter(|n| **n != primary) {
            let replica = roles.get(node).is_some_and(|r| !r.primary);
            if replica && !is_prefix(logs.of(node), logs.of(&primary)) {
                let message = format!("at the end, {}", divergence(node, logs.of(node), &primary, logs.of(&primary)));
                violations.push(Violation::new(message).at(context.end));
            }
        }
    }
    capped(violations, "divergences")
}

/// `convergence` (liveness): by `converge_within` after the heal, every
/// replica of each group holds the primary's log as of the heal (or as of
/// its promotion, if later).
pub fn check_convergence(store: &Store, context: &CheckContext<'_, Store>) -> CheckResult {
    let deadline = context.heal_at + store.converge_within.as_nanos();
    if deadline > context.end {
        return Err(Unjudged(format!(
            "the heal phase ends at {}, before converge_within ({}) has passed: lengthen heal",
            seconds(context.end),
            seconds(store.converge_within.as_nanos())
        )));
    }
    let mut roles: BTreeMap<String, RoleAt> = BTreeMap::new();
    for (at, host, event) in context.events().take_while(|(at, _, _)| *at <= deadline) {
        note_role(&mut roles, at, host, event);
    }
    let primaries = primaries(&roles, store);
    let mut violations = Vec::new();
    for group in 1..=store.groups() {
        let up_at_deadline =
            |host: &str| !context.down_intervals(host).iter().any(|(a, b)| *a <= deadline && deadline < *b);
        if !store.nodes_of(group).iter().any(|n| up_at_deadline(n)) {
            continue;
        }
        let Some((primary, role)) = primaries.get(&group) else {
            violations
                .push(Violation::new(format!("group {group} had no primary at {}", seconds(deadline))).at(deadline));
            continue;
        };
        let target_at = context.heal_at.max(role.since);
        let replicas: Vec<String> = store
            .nodes_of(group)
            .into_iter()
            .filter(|n| n != primary && up_at_deadline(n) && roles.get(n).is_none_or(|r| !r.primary))
            .collect();
        violations.extend(converged(context, primary, target_at, deadline, &replicas));
    }
    Ok(violations)
}

/// Which of `replicas` held `primary`'s log as of `target_at` by `deadline`.
fn converged(
    context: &CheckContext<'_, Store>,
    primary: &str,
    target_at: Nanos,
    deadline: Nanos,
    replicas: &[String],
) -> Vec<Violation> {
    let mut logs = Logs::default();
    let mut target: Option<Vec<u64>> = None;
    let mut reached: BTreeSet<&str> = BTreeSet::new();
    for (at, host, event) in context.events().take_while(|(at, _, _)| *at <= deadline) {
        if at > target_at && target.is_none() {
            target = Some(logs.of(primary).to_vec());
        }
        logs.apply(host, event);
        if let Some(target) = &target {
            for replica in replicas.iter().filter(|r| is_prefix(target, logs.of(r))) {
                reached.insert(replica);
            }
        }
    }
    let target = target.unwrap_or_else(|| logs.of(primary).to_vec());
    for replica in replicas.iter().filter(|r| is_prefix(&target, logs.of(r))) {
        reached.insert(replica);
    }
    replicas
        .iter()
        .filter(|r| !reached.contains(r.as_str()))
        .map(|replica| {
            let log = logs.of(replica);
            Violation::new(format!(
                "{replica} did not converge by {}: it had {} entries ({} matching), {primary} had {} at {}",
                seconds(deadline),
                log.len(),
                first_difference(log, &target),
                target.len(),
                seconds(target_at)
            ))
            .at(deadline)
        })
        .collect()
}

/// Each client's operations, in the order it invoked them.
fn sessions(history: &History<StoreOp, StoreRes>) -> BTreeMap<u32, Vec<&Op>> {
    let mut sessions: BTreeMap<u32, Vec<&Op>> = BTreeMap::new();
    for op in &history.ops {
        sessions.entry(op.client).or_default().push(op);
    }
    for ops in sessions.values_mut() {
        ops.sort_by_key(|op| (op.invoked, op.seq));
    }
    sessions
}

/// `read-your-writes`: a client's read of a key, invoked after one of its
/// own writes to that key was acknowledged, holds that write.
pub fn check_read_your_writes(history: &History<StoreOp, StoreRes>) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (client, ops) in sessions(history) {
        for read in ops.iter().filter(|op| read_values(op).is_some()) {
            let values = read_values(read).expect("filtered to reads");
            let missing = ops.iter().find(|w| {
                w.op.key() == read.op.key()
                    && w.completed <= read.invoked
                    && written(w).is_some_and(|value| !values.contains(&value))
            });
            if let Some(write) = missing {
                violations.push(
                    Violation::new(format!(
                        "client {client}'s read #{} of key {} at {} returned {} without its own write {} \
                         (#{}, acknowledged at {}){}",
                        read.id,
                        read.op.key(),
                        seconds(read.invoked),
                        tail(values),
                        label(written(write).unwrap_or(0)),
                        write.id,
                        seconds(write.completed),
                        served_by(read)
                    ))
                    .at(read.invoked)
                    .ops([read.id, write.id]),
                );
            }
        }
    }
    capped(violations, "reads without the client's own writes")
}

fn served_by(op: &Op) -> String {
    match op.outcome.value() {
        Some(StoreRes::Values { host, .. }) => format!(", served by {host}"),
        _ => String::new(),
    }
}

/// `monotonic-reads`: a client's read of a key extends every read of that
/// key it completed before invoking this one (never shorter, never different).
pub fn check_monotonic_reads(history: &History<StoreOp, StoreRes>) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (client, ops) in sessions(history) {
        let reads: Vec<&&Op> = ops.iter().filter(|op| read_values(op).is_some()).collect();
        for (at, later) in reads.iter().enumerate() {
            let values = read_values(later).expect("filtered to reads");
            let earlier = reads[..at]
                .iter()
                .filter(|r| r.op.key() == later.op.key() && r.completed <= later.invoked)
                .max_by_key(|r| (read_values(r).map_or(0, Vec::len), r.completed));
            let Some(earlier) = earlier else { continue };
            let before = read_values(earlier).expect("filtered to reads");
            if !is_prefix(before, values) {
                violations.push(
                    Violation::new(format!(
                        "client {client}'s read #{} of key {} at {} returned {}{}, after its read #{} had returned {}{}",
                        later.id,
                        later.op.key(),
                        seconds(later.invoked),
                        tail(values),
                        served_by(later),
                        earlier.id,
                        tail(before),
                        served_by(earlier)
                    ))
                    .at(later.invoked)
                    .ops([later.id, earlier.id]),
                );
            }
        }
    }
    capped(violations, "reads that went back in time")
}

/// The history as the list model's operations.
pub fn list_history(history: &History<StoreOp, StoreRes>) -> Vec<LinOp<ListInput, ListOutput>> {
    let mut operations = Vec::new();
    for op in &history.ops {
        let client = u64::from(op.client);
        let operation = match (&op.op, &op.outcome) {
            (StoreOp::Write { key, value }, Outcome::Ok(_)) => LinOp::returned(
                client,
                op.invoked,
                op.completed,
                ListInput::Append { key: *key, value: *value },
                ListOutput::Appended,
            ),
            (StoreOp::Write { key, value }, _) => {
                // An error or a timeout says nothing of whether it took effect.
                LinOp::indeterminate(client, op.invoked, ListInput::Append { key: *key, value: *value })
            }
            (StoreOp::Read { key, .. } | StoreOp::Audit { key }, Outcome::Ok(StoreRes::Values { values, .. })) => {
                LinOp::returned(
                    client,
                    op.invoked,
                    op.completed,
                    ListInput::Read { key: *key },
                    ListOutput::Read(values.clone()),
                )
            }
            _ => continue,
        };
        operations.push(operation);
    }
    operations
}

/// `linearizable`: the whole history, by the harness's checker with the list model.
pub fn check_linearizable(history: &History<StoreOp, StoreRes>) -> CheckResult {
    faultline_harness::checks::linearizable(&Lists, &list_history(history))
}

/// Replication lag of each replica: for every entry, the time from its
/// primary appending it to the replica appending it (ms), by replica.
pub fn replication_lags(context: &CheckContext<'_, Store>) -> BTreeMap<String, Vec<f64>> {
    let mut appended: BTreeMap<u64, Nanos> = BTreeMap::new();
    let mut lags: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut counted: BTreeSet<(String, u64)> = BTreeSet::new();
    for (at, host, event) in context.events() {
        let StoreEvent::Append { id, from, .. } = event else { continue };
        match from {
            None => {
                appended.insert(*id, at);
            }
            Some(_) => {
                if let Some(start) = appended.get(id) {
                    if counted.insert((host.to_string(), *id)) {
                        lags.entry(host.to_string()).or_default().push((at - start) as f64 / 1e6);
                    }
                }
            }
        }
    }
    lags
}

/// The value at quantile `q` of `values` (nearest rank).
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The share of the workload's reads (audits left out) each host served.
pub fn read_shares(history: &History<StoreOp, StoreRes>) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut total = 0u64;
    for op in history.ops.iter().filter(|op| matches!(op.op, StoreOp::Read { .. })) {
        if let Some(StoreRes::Values { host, .. }) = op.outcome.value() {
            *counts.entry(host.clone()).or_default() += 1;
            total += 1;
        }
    }
    counts.into_iter().map(|(host, n)| (host, n as f64 / total.max(1) as f64)).collect()
}

/// Write availability (acknowledged writes / writes) and write outages:
/// runs of consecutive failed writes (by intended start), each from its
/// first write's intended start to the next acknowledged write's answer.
pub fn write_outages(history: &History<StoreOp, StoreRes>) -> (f64, Vec<f64>) {
    let mut writes: Vec<&Op> = history.ops.iter().filter(|op| matches!(op.op, StoreOp::Write { .. })).collect();
    writes.sort_by_key(|op| (op.intended, op.client, op.seq));
    let good = writes.iter().filter(|op| written(op).is_some()).count();
    let mut outages = Vec::new();
    let mut down_since: Option<Nanos> = None;
    for op in &writes {
        match (written(op).is_some(), down_since) {
            (false, None) => down_since = Some(op.intended),
            (true, Some(since)) => {
                outages.push(op.completed.saturating_sub(since) as f64 / SECOND);
                down_since = None;
            }
            _ => {}
        }
    }
    (good as f64 / writes.len().max(1) as f64, outages)
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
