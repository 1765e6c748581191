//! What the replicated store says: host names, the client operations and
//! answers, the log's entries and positions, the messages between routers,
//! data nodes and the supervisor, and the typed events its hosts report.
//!
//! Every event a checker reads carries its term, index and entry id as
//! fields; checkers never parse text.

use serde::{Deserialize, Serialize};

/// Clients, routers and the supervisor talk to a data node here.
pub const NODE_PORT: u16 = 9000;
/// A replica's long-lived replication connection to its primary.
pub const REPLICATION_PORT: u16 = 9001;
/// Clients talk to a router here.
pub const ROUTER_PORT: u16 = 9002;

pub const SUPERVISOR: &str = "supervisor";

/// The key the health probe writes: outside the workload's key space, so
/// the checkers and figures leave it out.
pub const PROBE_KEY: u32 = u32::MAX;
/// The probe's values have this bit set (the workload's never do).
pub const PROBE_VALUE_FLAG: u64 = 1 << 63;
/// Entries a router writes while resharding (imports) have ids with this bit set.
pub const IMPORT_ID_FLAG: u64 = 1 << 62;

/// A workload value: unique per client and operation, so a read names the
/// exact writes it saw.
pub fn workload_value(client: u32, counter: u32) -> u64 {
    ((u64::from(client) + 1) << 32) | u64::from(counter)
}

/// A data node's current role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Primary,
    /// A replica applies the log of the primary it follows (none while it
    /// waits to be told whom to follow).
    Replica {
        following: Option<String>,
    },
}

/// What an entry does to the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Appends `value` to the key's versions.
    Write { key: u32, value: u64 },
    /// Sets whole keys (a reshard moving them in from another group).
    Import { keys: Vec<(u32, Vec<u64>)> },
}

/// One entry of a group's log. `id` is unique in the run (a write's value,
/// or a flagged import id), so two logs agree at an index exactly when their
/// entries there have the same id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: u64,
    /// From 1.
    pub index: u64,
    pub id: u64,
    pub change: Change,
}

/// A point in a group's log: the entry at `index` (0 for the empty log),
/// named by its term and id. A session token is a set of these, one per group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub group: u32,
    pub term: u64,
    pub index: u64,
    pub id: u64,
}

impl Position {
    /// The empty log of `group`.
    pub fn start(group: u32) -> Position {
        Position { group, term: 0, index: 0, id: 0 }
    }

    /// Newer positions first by term, then by index: a later term's log is
    /// the one that survives.
    pub fn newer_than(&self, other: &Position) -> bool {
        (self.term, self.index) > (other.term, other.index)
    }
}

/// One client operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreOp {
    /// Appends `value` (unique in the run) to `key`'s versions.
    Write { key: u32, value: u64 },
    /// Reads `key`'s versions as the router's read policy sends it; `session`
    /// is the client's session token (with the session policy only).
    Read {
        key: u32,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        session: Vec<Position>,
    },
    /// Reads `key` back from its primary, whatever the read policy: how the
    /// lost-write check sees what survived.
    Audit { key: u32 },
}

impl StoreOp {
    pub fn key(&self) -> u32 {
        match self {
            StoreOp::Write { key, .. } | StoreOp::Read { key, .. } | StoreOp::Audit { key } => *key,
        }
    }
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreRes {
    /// The write's entry.
    Written { at: Position },
    /// The key's versions, oldest first, as `host` had them at position `at`.
    Values { values: Vec<u64>, at: Position, host: String },
}

/// A client's request to a router.
#[derive(Debug, Serialize, Deserialize)]
pub struct RouterRequest {
    pub op: StoreOp,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RouterReply {
    Ok(StoreRes),
    Error(String),
}

/// What a node says about itself to routers and the supervisor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub role: Role,
    pub term: u64,
    /// Entries in its log (a replica applies each as it arrives).
    pub applied: u64,
    /// Its last entry (the empty log's start if none).
    pub last: Position,
    /// How long since it last heard from its primary, for a replica (ms).
    pub lag_ms: Option<u64>,
}

/// A request to a data node.
#[derive(Debug, Serialize, Deserialize)]
pub enum NodeRequest {
    /// A client write through a router; with fencing, the term the router
    /// believes current.
    Write { key: u32, value: u64, term: Option<u64> },
    /// A read. With `after`, wait up to `wait_ms` for the log to cover that
    /// position, else answer `Behind`.
    Read { key: u32, after: Option<Position>, wait_ms: u64 },
    /// "Who are you?", carrying the sender's view: the current term of the
    /// group and its primary.
    Status { term: u64, primary: Option<String> },
    /// The supervisor makes this node the primary of a new term.
    Promote { term: u64 },
    /// The supervisor tells this node to follow `primary` in `term`.
    Follow { primary: String, term: u64 },
    /// Resharding: the versions of the keys this primary holds among `keys`.
    Dump { keys: Vec<u32> },
    /// Resharding: the keys this primary lists.
    Keys,
    /// Resharding: take these keys over (one log entry); with fencing, the
    /// term the router believes current.
    Import { id: u64, keys: Vec<(u32, Vec<u64>)>, term: Option<u64> },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum NodeReply {
    Written {
        at: Position,
    },
    Values {
        values: Vec<u64>,
        at: Position,
    },
    /// A session read this replica could not serve in time.
    Behind,
    /// Not the primary; who is, as far as this node knows.
    NotPrimary {
        term: u64,
        primary: Option<String>,
    },
    /// Fencing: the write carried an older term than this primary's.
    StaleTerm {
        term: u64,
    },
    Status(NodeStatus),
    Dumped {
        keys: Vec<(u32, Vec<u64>)>,
    },
    KeyList {
        keys: Vec<u32>,
    },
    Done,
    Refused(String),
}

/// A replica's first frame on a replication connection.
#[derive(Debug, Serialize, Deserialize)]
pub struct Subscribe {
    pub replica: String,
    /// The replica's term (with fencing, a primary of an older term refuses it).
    pub term: u64,
    /// Entries the replica holds.
    pub applied: u64,
    /// Some of its entries (the last, then exponentially further back), for
    /// the primary to find the longest prefix they share; empty when the
    /// replica resumes by position.
    pub checkpoints: Vec<Position>,
}

/// What a primary sends on a replication connection.
#[derive(Debug, Serialize, Deserialize)]
pub enum Shipment {
    /// The stream starts after `from` entries: a replica that rewinds cuts
    /// its log back to them first.
    Start { term: u64, from: u64 },
    /// Entries in order, the primary's log length and how many of its
    /// entries are visible.
    Entries { term: u64, entries: Vec<Entry>, length: u64, visible: u64 },
    /// Nothing new; the primary is alive, has `length` entries and shows `visible`.
    Heartbeat { term: u64, length: u64, visible: u64 },
    /// This node is not (or no longer) a primary that may ship to the replica.
    Refused { term: u64, primary: Option<String> },
}

/// A replica's acknowledgement: entries received (written to its log) and
/// durable (synced to its disk).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Ack {
    pub received: u64,
    pub durable: u64,
}

faultline_harness::system_events! {
    /// What the replicated store's hosts report.
    pub enum StoreEvent {
        /// A node appended an entry: as the primary accepting a write or an
        /// import (`from` none), or as a replica from `from`.
        Append = "log.append" {
            term: u64,
            index: u64,
            id: u64,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            from: Option<String>,
        },
        /// A replica cut its log back to `to` entries (`dropped` ids).
        Truncate = "log.truncate" { to: u64, dropped: Vec<u64> },
        /// A node started and read its log back from disk (the ids, in order).
        Recovered = "log.recovered" { term: u64, ids: Vec<u64> },
        /// A node became the primary of `term`.
        BecamePrimary = "role.primary" { term: u64 },
        /// A node became (or stayed) a replica following `following` in `term`.
        BecameReplica = "role.replica" {
            term: u64,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            following: Option<String>,
        },
        /// A node heard of a newer term than its own (`seen`), from `from`.
        TermSeen = "term.seen" { term: u64, seen: u64, from: String },
        /// A primary gave up waiting for a replica's receipt and went on
        /// asynchronously (semi-sync timeout).
        SemiSyncOff = "semisync.off" { index: u64 },
        /// A replica caught up and the primary waits for receipts again.
        SemiSyncOn = "semisync.on" { index: u64 },
        /// A replica's replication stream from `primary` started after `from` entries.
        Connected = "repl.connected" { primary: String, from: u64 },
        /// A replica heard nothing from `primary` for the replication timeout
        /// and dropped the connection.
        Silence = "repl.silence" { primary: String },
        /// The supervisor found the primary of `group` unreachable for
        /// `failover_after` and starts a failover to `term`.
        FailoverStart = "failover.start" { group: u32, term: u64, suspect: String },
        /// The supervisor promoted `primary` in `term` (it had `applied` entries).
        FailoverDone = "failover.done" { group: u32, term: u64, primary: String, applied: u64 },
        /// A failover waits: too few replicas answered to elect safely.
        FailoverWait = "failover.wait" { group: u32, answered: u32, needed: u32 },
        /// A router now sends `group`'s writes to `primary` (term as it knows it).
        RouterPrimary = "router.primary" {
            group: u32,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            primary: Option<String>,
            term: u64,
        },
        /// The router started moving keys from `from` groups to `to`.
        ReshardStart = "reshard.start" { from: u32, to: u32 },
        /// The router finished: `moved` of the `keys` present changed group;
        /// writes waited `write_stop_ms`.
        ReshardDone = "reshard.done" { keys: u64, moved: u64, write_stop_ms: u64 },
        /// The reshard gave up and kept the old groups.
        ReshardFailed = "reshard.failed" { reason: String },
    }
}
