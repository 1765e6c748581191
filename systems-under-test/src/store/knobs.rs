//! The replicated store's knobs, their validation (knobs that cannot work
//! together are errors naming both), and its configured form: the hosts of
//! each shard group and the bounds that follow from the knobs.

use std::fmt;

use faultline_harness::units::{Dur, Probability};
use faultline_harness::{InputError, Knobs};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::kit::disk::Fsync;
use crate::kit::pool::Connections;
use crate::kit::route::Sharding;

/// When a primary acknowledges a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Acknowledge, then ship: replicas may lag any amount.
    Async,
    /// Commit and make the write visible, then wait for one replica's
    /// receipt before acknowledging (MySQL's AFTER_COMMIT).
    SemiSyncAfterCommit,
    /// Wait for one replica's receipt before making the write visible and
    /// acknowledging it (MySQL's AFTER_SYNC, "lossless").
    SemiSyncAfterSync,
    /// Acknowledge (and make visible) once a majority of the group has the
    /// write on disk.
    SyncMajority,
}

impl Mode {
    pub fn semi_sync(self) -> bool {
        matches!(self, Mode::SemiSyncAfterCommit | Mode::SemiSyncAfterSync)
    }
}

/// Where a router sends reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadPolicy {
    /// Replicas in turn (the chapter's `DatabaseManager`), the primary only
    /// when no replica is up.
    RoundRobin,
    Primary,
    /// A replica whose log covers the client's session token, waiting up to
    /// `session_wait`, else the primary.
    Session,
}

/// Which replica a failover promotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Election {
    /// Any replica that answers, at random, without waiting for the others.
    Any,
    /// The replica with the newest log, among enough replicas that one of
    /// them must hold every acknowledged write.
    MostUpToDate,
}

/// How a replica resumes on a (new) primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rejoin {
    /// Find the longest prefix it shares with the primary (by entry id, as
    /// GTIDs do) and cut its log back to it.
    Rewind,
    /// Ask for the entries after its own length, as file-and-position
    /// replication does: a tail the primary never had stays.
    Position,
}

/// `replication_timeout`: a duration, or "off".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// Never give up on a silent connection (a planted flaw: a connection
    /// that lost a segment stays silent forever).
    Off,
    After(Dur),
}

impl Serialize for Timeout {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Timeout::Off => serializer.serialize_str("off"),
            Timeout::After(timeout) => timeout.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Timeout {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Timeout;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration (\"1s\") or \"off\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timeout, E> {
                if v == "off" {
                    return Ok(Timeout::Off);
                }
                match Dur::parse(v) {
                    Ok(d) if !d.0.is_zero() => Ok(Timeout::After(d)),
                    Ok(_) => Err(E::custom("replication_timeout must be longer than zero, or \"off\"")),
                    Err(error) => Err(E::custom(error)),
                }
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// Data nodes in a group at most (a primary and its replicas).
pub const REPLICAS_MAX: u32 = 4;
/// Groups at most, counting the one a reshard adds (so shards is at most 4).
pub const GROUPS_MAX: u32 = 5;

/// The configured replicated store.
#[derive(Debug, Serialize)]
pub struct Store {
    pub mode: Mode,
    pub semi_sync_timeout: Dur,
    pub replicas: u32,
    pub fsync: Fsync,
    pub fsync_interval: Dur,
    pub read_policy: ReadPolicy,
    pub max_lag: Option<Dur>,
    pub session_wait: Dur,
    pub failover: bool,
    pub failover_after: Dur,
    pub health_interval: Dur,
    pub election: Election,
    pub fencing: bool,
    pub rejoin: Rejoin,
    pub replication_timeout: Timeout,
    pub shards: u32,
    pub sharding: Sharding,
    pub reshard_at: Option<Dur>,
    pub routers: u32,
    pub node_timeout: Dur,
    pub keys: u32,
    pub read_ratio: f64,
    pub audit_every: u32,
    pub converge_within: Dur,
    /// How clients hold their connections to the routers, and routers theirs
    /// to the nodes for reads and writes (polls and health checks stay one
    /// connection each).
    pub connections: Connections,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StoreKnobs {
    mode: Option<Spanned<Mode>>,
    semi_sync_timeout: Option<Spanned<Dur>>,
    replicas: Option<Spanned<i64>>,
    fsync: Option<Spanned<Fsync>>,
    fsync_interval: Option<Spanned<Dur>>,
    read_policy: Option<Spanned<ReadPolicy>>,
    max_lag: Option<Spanned<Dur>>,
    session_wait: Option<Spanned<Dur>>,
    failover: Option<Spanned<bool>>,
    failover_after: Option<Spanned<Dur>>,
    health_interval: Option<Spanned<Dur>>,
    election: Option<Spanned<Election>>,
    fencing: Option<Spanned<bool>>,
    rejoin: Option<Rejoin>,
    replication_timeout: Option<Timeout>,
    shards: Option<Spanned<i64>>,
    sharding: Option<Sharding>,
    reshard_at: Option<Spanned<Dur>>,
    routers: Option<Spanned<i64>>,
    node_timeout: Option<Spanned<Dur>>,
    keys: Option<Spanned<i64>>,
    read_ratio: Option<Probability>,
    audit_every: Option<Spanned<i64>>,
    converge_within: Option<Spanned<Dur>>,
    connections: Option<Connections>,
}

pub fn configure(knobs: &Knobs<'_>) -> Result<Store, InputError> {
    let raw: StoreKnobs = knobs.parse()?;
    let failover_after = knobs.positive(&raw.failover_after, Dur::from_secs(1), "failover_after")?;
    let health_interval = knobs.positive(&raw.health_interval, Dur::from_millis(100), "health_interval")?;
    let store = Store {
        mode: raw.mode.as_ref().map_or(Mode::Async, |m| *m.get_ref()),
        semi_sync_timeout: knobs.positive(&raw.semi_sync_timeout, Dur::from_secs(10), "semi_sync_timeout")?,
        replicas: knobs.count(&raw.replicas, 2, 0..=i64::from(REPLICAS_MAX), "replicas")?,
        fsync: raw.fsync.as_ref().map_or(Fsync::Always, |f| *f.get_ref()),
        fsync_interval: knobs.positive(&raw.fsync_interval, Dur::from_millis(100), "fsync_interval")?,
        read_policy: raw.read_policy.as_ref().map_or(ReadPolicy::RoundRobin, |p| *p.get_ref()),
        max_lag: raw.max_lag.as_ref().map(|d| *d.get_ref()),
        session_wait: knobs.positive(&raw.session_wait, Dur::from_millis(100), "session_wait")?,
        failover: raw.failover.as_ref().is_some_and(|f| *f.get_ref()),
        failover_after,
        health_interval,
        election: raw.election.as_ref().map_or(Election::MostUpToDate, |e| *e.get_ref()),
        fencing: raw.fencing.as_ref().is_none_or(|f| *f.get_ref()),
        rejoin: raw.rejoin.unwrap_or(Rejoin::Rewind),
        replication_timeout: raw.replication_timeout.unwrap_or(Timeout::After(Dur::from_secs(1))),
        shards: knobs.count(&raw.shards, 1, 1..=i64::from(GROUPS_MAX - 1), "shards")?,
        sharding: raw.sharding.unwrap_or(Sharding::Modulo),
        reshard_at: raw.reshard_at.as_ref().map(|d| *d.get_ref()),
        routers: knobs.count(&raw.routers, 1, 1..=3, "routers")?,
        node_timeout: knobs.positive(&raw.node_timeout, Dur::from_millis(250), "node_timeout")?,
        keys: knobs.count(&raw.keys, 8, 1..=1_000_000, "keys")?,
        read_ratio: raw.read_ratio.map_or(0.5, |p| p.0),
        audit_every: knobs.count(&raw.audit_every, 4, 0..=1000, "audit_every")?,
        converge_within: knobs.positive(&raw.converge_within, Dur::from_secs(3), "converge_within")?,
        connections: raw.connections.unwrap_or_default(),
    };
    conflicts(knobs, &raw, &store)?;
    if store.failover && failover_after.0 <= health_interval.0 {
        let span = raw.failover_after.as_ref().or(raw.health_interval.as_ref()).expect("one of them was set");
        return Err(knobs.error(span.span(), "failover_after must be longer than health_interval"));
    }
    Ok(store)
}

/// Knobs that cannot work together: an error naming both, at the one the
/// file sets (the first when it sets both).
fn conflicts(knobs: &Knobs<'_>, raw: &StoreKnobs, store: &Store) -> Result<(), InputError> {
    let no_replicas = store.replicas == 0;
    if no_replicas && store.mode != Mode::Async {
        let why = "it waits for replicas, and there are none";
        return Err(pair(knobs, &raw.mode, "mode", &raw.replicas, "replicas = 0", why));
    }
    if no_replicas && store.read_policy != ReadPolicy::Primary {
        let why = "it reads from replicas, and there are none (use read_policy = \"primary\")";
        return Err(pair(knobs, &raw.read_policy, "read_policy", &raw.replicas, "replicas = 0", why));
    }
    if no_replicas && store.failover {
        let why = "a failover promotes a replica, and there is only one host";
        return Err(pair(knobs, &raw.failover, "failover", &raw.replicas, "replicas = 0", why));
    }
    if store.mode == Mode::SyncMajority && store.fsync == Fsync::Never {
        let why = "it acknowledges what a majority has on disk, and nothing ever reaches the disk";
        return Err(pair(knobs, &raw.mode, "mode = sync-majority", &raw.fsync, "fsync = never", why));
    }
    if let Some(span) = &raw.semi_sync_timeout {
        if !store.mode.semi_sync() {
            return Err(knobs.conflict(span, "semi_sync_timeout", "this mode", "only semi-sync modes fall back"));
        }
    }
    if let Some(span) = &raw.fsync_interval {
        if store.fsync != Fsync::Batch {
            return Err(knobs.conflict(
                span,
                "fsync_interval",
                "this fsync",
                "only fsync = \"batch\" syncs on a timer",
            ));
        }
    }
    if let Some(span) = &raw.max_lag {
        if store.read_policy == ReadPolicy::Primary {
            return Err(knobs.conflict(span, "max_lag", "read_policy = primary", "it reads no replica"));
        }
    }
    if let Some(span) = &raw.session_wait {
        if store.read_policy != ReadPolicy::Session {
            return Err(knobs.conflict(span, "session_wait", "this read_policy", "only session reads wait"));
        }
    }
    failover_conflicts(knobs, raw, store)?;
    shard_conflicts(knobs, raw, store)
}

fn failover_conflicts(knobs: &Knobs<'_>, raw: &StoreKnobs, store: &Store) -> Result<(), InputError> {
    if store.failover {
        return Ok(());
    }
    let why = "they only matter when a failover happens";
    if let Some(span) = &raw.election {
        return Err(knobs.conflict(span, "election", "failover = false", why));
    }
    if let Some(span) = &raw.fencing {
        return Err(knobs.conflict(span, "fencing", "failover = false", why));
    }
    if let Some(span) = &raw.failover_after {
        return Err(knobs.conflict(span, "failover_after", "failover = false", why));
    }
    Ok(())
}

fn shard_conflicts(knobs: &Knobs<'_>, raw: &StoreKnobs, store: &Store) -> Result<(), InputError> {
    let Some(span) = &raw.reshard_at else { return Ok(()) };
    if store.routers > 1 {
        return Err(knobs.conflict(span, "reshard_at", "routers > 1", "one router coordinates the move"));
    }
    if store.reshard_at.is_some_and(|at| at.0.is_zero()) {
        return Err(knobs.error(span.span(), "reshard_at must be later than the start"));
    }
    Ok(())
}

/// A conflict between two knobs, placed at whichever the file sets.
fn pair<A, B>(
    knobs: &Knobs<'_>,
    first: &Option<Spanned<A>>,
    first_name: &str,
    second: &Option<Spanned<B>>,
    second_name: &str,
    why: &str,
) -> InputError {
    match (first, second) {
        (Some(span), _) => knobs.conflict(span, first_name, second_name, why),
        (None, Some(span)) => knobs.conflict(span, second_name, first_name, why),
        (None, None) => knobs.table_error(format!("{first_name} cannot be used with {second_name}: {why}")),
    }
}

impl Store {
    /// Groups the run may have: the starting shards, and one more if it reshards.
    pub fn groups(&self) -> u32 {
        self.shards + u32::from(self.reshard_at.is_some())
    }

    /// Whether host names carry a group prefix (more than one group ever).
    fn prefixed(&self) -> bool {
        self.groups() > 1
    }

    /// The starting primary of group `group` (from 1).
    pub fn primary_of(&self, group: u32) -> String {
        assert!((1..=self.groups()).contains(&group), "groups are numbered from 1");
        if self.prefixed() {
            format!("s{group}-primary")
        } else {
            "primary".to_string()
        }
    }

    /// The starting replicas of group `group`.
    pub fn replicas_of(&self, group: u32) -> Vec<String> {
        assert!((1..=self.groups()).contains(&group), "groups are numbered from 1");
        (1..=self.replicas)
            .map(|i| if self.prefixed() { format!("s{group}-replica-{i}") } else { format!("replica-{i}") })
            .collect()
    }

    /// Every data node of `group`, the starting primary first.
    pub fn nodes_of(&self, group: u32) -> Vec<String> {
        let mut nodes = vec![self.primary_of(group)];
        nodes.extend(self.replicas_of(group));
        nodes
    }

    /// The group a data node belongs to.
    pub fn group_of(&self, host: &str) -> Option<u32> {
        (1..=self.groups()).find(|g| self.nodes_of(*g).iter().any(|n| n == host))
    }

    pub fn router_hosts(&self) -> Vec<String> {
        if self.routers == 1 {
            vec!["router".to_string()]
        } else {
            (1..=self.routers).map(|i| format!("router-{i}")).collect()
        }
    }

    /// The router a workload client talks to.
    pub fn router_for(&self, client: u32) -> String {
        let routers = self.router_hosts();
        routers[(client % self.routers) as usize].clone()
    }

    /// Nodes of a group that must hold a write before it is acknowledged
    /// durable by the mode (the primary included): one replica's receipt in
    /// semi-sync, a majority in sync-majority.
    pub fn majority(&self) -> u32 {
        let nodes = self.replicas + 1;
        nodes / 2 + 1
    }

    /// Replicas a most-up-to-date election must hear from, so that one of
    /// them holds every acknowledged write: all of them when one receipt
    /// acknowledges (semi-sync), enough to meet every majority
    /// (sync-majority), and one when nothing is promised (async).
    pub fn election_quorum(&self) -> u32 {
        match self.mode {
            Mode::Async => 1,
            Mode::SemiSyncAfterCommit | Mode::SemiSyncAfterSync => self.replicas,
            Mode::SyncMajority => self.replicas + 2 - self.majority(),
        }
    }

    /// No acknowledged write is ever lost: every one is on disk, and a
    /// failover (if any) promotes a replica that has it and fences the old
    /// primary. (A semi-sync primary that falls back to async on its
    /// timeout breaks this silently, as MySQL's does.)
    pub fn keeps_acknowledged_writes(&self) -> bool {
        let failover_safe = !self.failover
            || (matches!(self.mode, Mode::SemiSyncAfterSync | Mode::SyncMajority)
                && self.election == Election::MostUpToDate
                && self.fencing);
        self.fsync == Fsync::Always && failover_safe
    }
}
