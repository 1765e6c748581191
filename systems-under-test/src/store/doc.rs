//! The store's documentation as `faultline list` shows it: its knobs with
//! unit, default and meaning, and its events.

use faultline_harness::system::{EventDoc, KnobDoc};
use faultline_harness::SystemDoc;

pub static DOC: SystemDoc = SystemDoc {
    name: "store",
    about: "a replicated, sharded key-value store: read/write split over read replicas, replication modes, \
            failover in terms, sharding and resharding",
    hosts: "primary, replica-1..N (per group s<g>-primary, s<g>-replica-<i> with shards), router or \
            router-1..M, supervisor (with failover)",
    knobs: KNOBS,
    events: EVENTS,
};

const KNOBS: &[KnobDoc] = &[
    KnobDoc {
        name: "mode",
        unit: "string",
        default: "async",
        about: "async | semi-sync-after-commit | semi-sync-after-sync | sync-majority: when a primary acknowledges",
    },
    KnobDoc {
        name: "semi_sync_timeout",
        unit: "duration",
        default: "10s",
        about: "semi-sync modes: after this long without a replica's receipt the primary goes on asynchronously, \
                silently (as MySQL's does), until a replica catches up",
    },
    KnobDoc {
        name: "connections",
        unit: "string",
        default: "per-request",
        about: "clients to routers, routers to nodes for reads and writes: per-request | pooled",
    },
    KnobDoc { name: "replicas", unit: "count", default: "2", about: "replicas per group, 0 to 4" },
    KnobDoc {
        name: "fsync",
        unit: "string",
        default: "always",
        about: "always | batch | never: when the write-ahead log is synced (a crash loses what was not)",
    },
    KnobDoc { name: "fsync_interval", unit: "duration", default: "100ms", about: "fsync = batch: how often" },
    KnobDoc {
        name: "read_policy",
        unit: "string",
        default: "round-robin",
        about: "round-robin (replicas in turn, the chapter's) | primary | session (a replica that covers the \
                client's session token, else the primary)",
    },
    KnobDoc {
        name: "max_lag",
        unit: "duration",
        default: "none",
        about: "reads skip a replica that has not been caught up with its primary for longer than this",
    },
    KnobDoc {
        name: "session_wait",
        unit: "duration",
        default: "100ms",
        about: "read_policy = session: how long a replica may wait to catch up with a session before the \
                primary serves it",
    },
    KnobDoc { name: "failover", unit: "bool", default: "false", about: "run a supervisor that promotes a replica" },
    KnobDoc {
        name: "failover_after",
        unit: "duration",
        default: "1s",
        about: "how long the primary must fail health checks before a failover",
    },
    KnobDoc {
        name: "health_interval",
        unit: "duration",
        default: "100ms",
        about: "how often the supervisor and the routers ask every node who it is",
    },
    KnobDoc {
        name: "election",
        unit: "string",
        default: "most-up-to-date",
        about: "any (a random replica that answers, at once) | most-up-to-date (the newest log among enough \
                replicas to hold every acknowledged write)",
    },
    KnobDoc {
        name: "fencing",
        unit: "bool",
        default: "true",
        about: "terms fence old primaries: every write and replication message carries the term, and a node \
                that hears of a newer one steps down and rejoins as a replica",
    },
    KnobDoc {
        name: "rejoin",
        unit: "string",
        default: "rewind",
        about: "rewind (cut the log back to the prefix shared with the primary) | position (resume after the \
                own log's length, keeping a diverged tail)",
    },
    KnobDoc {
        name: "replication_timeout",
        unit: "duration",
        default: "1s",
        about: "either side drops a replication connection silent this long, and the replica reconnects; \"off\" \
                keeps silent connections forever (a planted flaw)",
    },
    KnobDoc { name: "shards", unit: "count", default: "1", about: "shard groups at the start, 1 to 4" },
    KnobDoc {
        name: "sharding",
        unit: "string",
        default: "modulo",
        about: "modulo (hash % n, the chapter's ShardManager) | consistent (a ring of 64 virtual nodes per group)",
    },
    KnobDoc {
        name: "reshard_at",
        unit: "duration",
        default: "none",
        about: "when the router moves from shards to shards + 1 groups (the extra group's hosts are the pool)",
    },
    KnobDoc { name: "routers", unit: "count", default: "1", about: "routers, 1 to 3; client i uses router i mod n" },
    KnobDoc {
        name: "node_timeout",
        unit: "duration",
        default: "250ms",
        about: "how long a router or the supervisor waits for a node's answer (a write also waits for its commit)",
    },
    KnobDoc { name: "keys", unit: "count", default: "8", about: "size of the key space" },
    KnobDoc { name: "read_ratio", unit: "probability", default: "0.5", about: "share of operations that are reads" },
    KnobDoc {
        name: "audit_every",
        unit: "count",
        default: "4",
        about: "every Nth operation of a session reads a key back from its primary, in turn over the keys (0: \
                never; the lost-write check needs them)",
    },
    KnobDoc {
        name: "converge_within",
        unit: "duration",
        default: "3s",
        about: "how long after the heal every replica has to hold its primary's log",
    },
];

const EVENTS: &[EventDoc] = &[
    EventDoc {
        name: "log.append",
        about: "a node appended an entry: as primary (a write or import it accepted) or from its primary (from)",
        detects: false,
    },
    EventDoc { name: "log.truncate", about: "a node cut its log back (to, the dropped ids)", detects: false },
    EventDoc { name: "log.recovered", about: "a node started and read its log back from disk (ids)", detects: false },
    EventDoc { name: "role.primary", about: "a node is the primary of a term", detects: false },
    EventDoc { name: "role.replica", about: "a node is a replica following a primary in a term", detects: false },
    EventDoc { name: "term.seen", about: "a node heard of a newer term than its own", detects: false },
    EventDoc {
        name: "semisync.off",
        about: "a semi-sync primary timed out waiting for a receipt and went on asynchronously",
        detects: false,
    },
    EventDoc { name: "semisync.on", about: "a replica caught up and semi-sync resumed", detects: false },
    EventDoc { name: "repl.connected", about: "a replica's stream from its primary started (from)", detects: false },
    EventDoc {
        name: "repl.silence",
        about: "a replica heard nothing for replication_timeout and dropped the connection",
        detects: false,
    },
    EventDoc {
        name: "failover.start",
        about: "the supervisor found a primary unreachable for failover_after and starts a failover",
        detects: true,
    },
    EventDoc { name: "failover.done", about: "the supervisor promoted a replica in a new term", detects: false },
    EventDoc {
        name: "failover.wait",
        about: "a failover waits for enough replicas to answer to elect safely",
        detects: false,
    },
    EventDoc { name: "router.primary", about: "a router now sends a group's writes to another node", detects: false },
    EventDoc { name: "reshard.start", about: "the router started moving keys to one more group", detects: false },
    EventDoc {
        name: "reshard.done",
        about: "the reshard finished: keys present, keys moved, how long writes stopped",
        detects: false,
    },
    EventDoc { name: "reshard.failed", about: "the reshard gave up and kept the old groups", detects: false },
];
