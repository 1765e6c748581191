//! `store`: a replicated, sharded key-value store under faults: the
//! chapter's `DatabaseManager` (writes to a primary, reads round-robin over
//! read replicas) and `ShardManager` (`hash % n`), the replication modes and
//! failover designs real deployments use, and the flaws they have shown
//! (docs/replication.md).
//!
//! Hosts: per shard group a `primary` and `replica-1..N` (with more than one
//! group, `s<g>-primary`, `s<g>-replica-<i>`), each a versioned store with a
//! write-ahead log on the simulated disk; `router` (or `router-1..M`);
//! `supervisor` with `failover = true`. A reshard's extra group is the
//! system's pool: registered from the start, down until the reshard.
//!
//! The workload: each client is a session that writes unique values,
//! reads, and every `audit_every`-th operation reads a key back from its
//! primary, in turn over the keys, so the last audits of a run show what
//! survived. Each key keeps every value written to it, so a read names
//! exactly the writes it saw.

mod checks;
mod knobs;
mod lanes;
mod model;
mod node;
mod protocol;
mod replication;
mod reshard;
mod router;
mod supervisor;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};

use faultline_harness::system::{HostResult, LocalFuture};
use faultline_harness::{
    CheckContext, ClientContext, HostContext, InputError, Invariant, Knobs, Lane, Outcome, System, SystemDoc,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub use checks::{
    check_convergence, check_linearizable, check_log_prefix, check_monotonic_reads, check_no_lost_writes,
    check_read_your_writes, check_single_writer, losses, quantile, read_shares, replication_lags, write_outages,
    Losses,
};
pub use knobs::{Election, Mode, ReadPolicy, Rejoin, Store, Timeout};
pub use model::{ListInput, ListOutput, Lists};
pub use protocol::{Position, StoreEvent, StoreOp, StoreRes, PROBE_KEY};

mod doc;

const NO_LOST_WRITES: &str = "no-lost-acknowledged-writes";
const SINGLE_WRITER: &str = "single-writer-per-term";
const LOG_PREFIX: &str = "log-prefix";
const CONVERGENCE: &str = "convergence";
const READ_YOUR_WRITES: &str = "read-your-writes";
const MONOTONIC_READS: &str = "monotonic-reads";
const LINEARIZABLE: &str = "linearizable";

/// A workload client's session, kept for the whole run.
#[derive(Clone, Debug, Default)]
pub struct Session {
    index: u32,
    /// Writes made (each value is unique: client and counter).
    writes: u32,
    ops: u64,
    /// The next key to read back, counted from the client's own offset.
    audits: u32,
    /// The newest position seen in each group: the session token.
    tokens: BTreeMap<u32, Position>,
}

impl System for Store {
    type Op = StoreOp;
    type Res = StoreRes;
    type Event = StoreEvent;
    type Client = Session;

    fn doc() -> &'static SystemDoc {
        &doc::DOC
    }

    fn invariants() -> Vec<Invariant<Self>> {
        vec![
            Invariant {
                name: NO_LOST_WRITES,
                about: "after the heal, every acknowledged write is in its key's last read-back from the primary; \
                        the count lost and the seconds of data they span are the RPO",
                check: |_, context| check_no_lost_writes(context.history, context.heal_at),
            },
            Invariant {
                name: SINGLE_WRITER,
                about: "in each group and term one node accepts writes, and no node accepts a write after it heard \
                        of a newer term",
                check: |store, context| Ok(check_single_writer(store, context)),
            },
            Invariant {
                name: LOG_PREFIX,
                about: "every replica's log is a prefix of the log of the primary it follows",
                check: |store, context| Ok(check_log_prefix(store, context)),
            },
            Invariant {
                name: CONVERGENCE,
                about: "within converge_within of the heal, every replica holds its primary's log as of the heal",
                check: check_convergence,
            },
            Invariant {
                name: READ_YOUR_WRITES,
                about: "a client's read of a key holds every write of its own to that key acknowledged before the read",
                check: |_, context| Ok(check_read_your_writes(context.history)),
            },
            Invariant {
                name: MONOTONIC_READS,
                about: "a client's read of a key extends every earlier read of that key by the same client",
                check: |_, context| Ok(check_monotonic_reads(context.history)),
            },
            Invariant {
                name: LINEARIZABLE,
                about:
                    "the whole history is linearizable, each key a list that writes append to (the harness's checker)",
                check: |_, context| check_linearizable(context.history),
            },
        ]
    }

    fn configure(knobs: &Knobs<'_>) -> Result<Store, InputError> {
        knobs::configure(knobs)
    }

    fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = (1..=self.groups()).flat_map(|g| self.nodes_of(g)).collect();
        hosts.extend(self.router_hosts());
        if self.failover {
            hosts.push(protocol::SUPERVISOR.to_string());
        }
        hosts
    }

    fn pool(&self) -> Vec<String> {
        match self.reshard_at {
            Some(_) => self.nodes_of(self.groups()),
            None => Vec::new(),
        }
    }

    fn down_at_start(&self) -> Vec<String> {
        self.pool()
    }

    fn host(self: &Arc<Self>, context: HostContext<StoreEvent>) -> LocalFuture<HostResult> {
        let store = Arc::clone(self);
        if self.group_of(&context.name).is_some() {
            Box::pin(node::serve(store, context))
        } else if self.router_hosts().contains(&context.name) {
            Box::pin(router::serve(store, context))
        } else if context.name == protocol::SUPERVISOR {
            Box::pin(supervisor::serve(store, context))
        } else {
            let error = format!("the store has no host {:?}", context.name);
            Box::pin(async move { Err(error.into()) })
        }
    }

    fn client(&self, index: u32) -> Session {
        Session { index, ..Session::default() }
    }

    fn next_op(&self, session: &mut Session, rng: &mut ChaCha8Rng) -> StoreOp {
        session.ops += 1;
        if self.audit_every > 0 && session.ops.is_multiple_of(u64::from(self.audit_every)) {
            let key = (session.audits.wrapping_add(session.index)) % self.keys;
            session.audits = session.audits.wrapping_add(1);
            return StoreOp::Audit { key };
        }
        let key = rng.random_range(0..self.keys);
        if rng.random_bool(self.read_ratio) {
            let session_token = match self.read_policy {
                ReadPolicy::Session => session.tokens.values().copied().collect(),
                _ => Vec::new(),
            };
            StoreOp::Read { key, session: session_token }
        } else {
            session.writes += 1;
            StoreOp::Write { key, value: protocol::workload_value(session.index, session.writes) }
        }
    }

    fn observe(&self, session: &mut Session, _op: &StoreOp, outcome: &Outcome<StoreRes>) {
        let at = match outcome.value() {
            Some(StoreRes::Written { at } | StoreRes::Values { at, .. }) => *at,
            None => return,
        };
        let token = session.tokens.entry(at.group).or_insert(at);
        if at.newer_than(token) {
            *token = at;
        }
    }

    fn op_kind(&self, op: &StoreOp) -> &'static str {
        match op {
            StoreOp::Write { .. } => "write",
            StoreOp::Read { .. } => "read",
            StoreOp::Audit { .. } => "audit",
        }
    }

    /// The probe writes a key of its own: the time view is write availability.
    fn probe_op(&self) -> Option<StoreOp> {
        Some(StoreOp::Write { key: PROBE_KEY, value: 0 })
    }

    fn call(self: &Arc<Self>, client: ClientContext<StoreEvent>, op: StoreOp) -> LocalFuture<Outcome<StoreRes>> {
        Box::pin(router::call(Arc::clone(self), client, op))
    }

    /// What this configuration promises (docs/replication.md has the table).
    fn promises(&self) -> Vec<&'static str> {
        let mut promised = Vec::new();
        let keeps = self.keeps_acknowledged_writes();
        if keeps {
            promised.push(NO_LOST_WRITES);
        }
        if !self.failover || self.fencing {
            promised.push(SINGLE_WRITER);
        }
        if self.rejoin == Rejoin::Rewind {
            promised.push(LOG_PREFIX);
            if self.replication_timeout != Timeout::Off {
                promised.push(CONVERGENCE);
            }
        }
        if keeps && self.read_policy != ReadPolicy::RoundRobin {
            promised.push(READ_YOUR_WRITES);
            promised.push(MONOTONIC_READS);
        }
        // A deposed primary that has not heard of its successor still
        // serves reads (there are no read leases), so only a store without
        // failover reading its primary is linearizable.
        if keeps && !self.failover && self.read_policy == ReadPolicy::Primary {
            promised.push(LINEARIZABLE);
        }
        promised
    }

    fn figures(&self, context: &CheckContext<'_, Self>) -> Vec<(&'static str, f64)> {
        let mut figures = Vec::new();
        if let Ok(losses) = losses(context.history, context.heal_at) {
            figures.push(("rpo_writes", losses.lost.len() as f64));
            figures.push(("rpo_s", losses.rpo_seconds));
        }
        let (availability, outages) = write_outages(context.history);
        figures.push(("write_availability", availability));
        figures.push(("write_outages", outages.len() as f64));
        if !outages.is_empty() {
            figures.push(("write_mttr_s", outages.iter().sum::<f64>() / outages.len() as f64));
            figures.push(("write_outage_max_s", outages.iter().copied().fold(0.0, f64::max)));
        }
        for (replica, lags) in replication_lags(context) {
            figures.push((figure_name("lag_p50_ms.", &replica), quantile(&lags, 0.5)));
            figures.push((figure_name("lag_p99_ms.", &replica), quantile(&lags, 0.99)));
            figures.push((figure_name("lag_max_ms.", &replica), quantile(&lags, 1.0)));
        }
        for (host, share) in read_shares(context.history) {
            figures.push((figure_name("read_share.", &host), share));
        }
        figures.extend(event_figures(context));
        figures
    }

    fn lanes(&self, context: &CheckContext<'_, Self>) -> Vec<Lane> {
        lanes::lanes(self, context)
    }
}

/// Figures from the system's events: failovers, and the reshard.
fn event_figures(context: &CheckContext<'_, Store>) -> Vec<(&'static str, f64)> {
    let mut figures = Vec::new();
    let mut failovers = 0u32;
    for (_, _, event) in context.events() {
        match event {
            StoreEvent::FailoverDone { .. } => failovers += 1,
            StoreEvent::ReshardDone { keys, moved, write_stop_ms } => {
                figures.push(("reshard_keys", *keys as f64));
                figures.push(("reshard_moved", *moved as f64));
                figures.push(("reshard_moved_share", *moved as f64 / (*keys).max(1) as f64));
                figures.push(("reshard_write_stop_s", *write_stop_ms as f64 / 1000.0));
            }
            _ => {}
        }
    }
    figures.push(("failovers", f64::from(failovers)));
    figures
}

/// A figure's name with a host in it, as the `&'static str` figures are
/// named by: each distinct name is made once and kept (there are a few per
/// host, and hosts are few).
fn figure_name(prefix: &str, host: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<BTreeSet<&'static str>>> = OnceLock::new();
    let name = format!("{prefix}{host}");
    let mut names = NAMES.get_or_init(Mutex::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = names.get(name.as_str()) {
        return known;
    }
    let made: &'static str = Box::leak(name.into_boxed_str());
    names.insert(made);
    made
}

#[cfg(test)]
mod tests;
