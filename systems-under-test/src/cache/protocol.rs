//! What the cache-aside system says: the client operation, the wire messages
//! between clients, apps, the cache and the database, and the typed events
//! its hosts report. Every event a checker or figure reads carries its key
//! and version as fields.

use serde::{Deserialize, Serialize};

pub const APP_PORT: u16 = 8000;
pub const DB_PORT: u16 = 8001;
pub const CACHE_PORT: u16 = 8002;
pub const DB: &str = "db";
pub const CACHE: &str = "cache";

/// The key the health probe reads: outside the workload's key space, so its
/// misses stay out of the workload's figures.
pub const PROBE_KEY: u32 = u32::MAX;

/// The name of app host `index` (from 1).
pub fn app_host(index: u32) -> String {
    assert!(index >= 1, "apps are numbered from 1");
    format!("app-{index}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    Read,
    Write,
}

/// One client operation: a read or a write of `key`, through app `app`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheOp {
    pub access: Access,
    pub key: u32,
    pub app: u32,
}

/// A client's request to an app.
#[derive(Debug, Serialize, Deserialize)]
pub enum AppRequest {
    Read { key: u32 },
    Write { key: u32 },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum AppReply {
    /// The key's version (reads) or the new version (writes).
    Version(u64),
    Error(String),
}

/// An app's request to the database.
#[derive(Debug, Serialize, Deserialize)]
pub enum DbRequest {
    Read {
        key: u32,
    },
    /// Makes a new version of the key.
    Write {
        key: u32,
    },
}

impl DbRequest {
    pub fn key(&self) -> u32 {
        match self {
            DbRequest::Read { key } | DbRequest::Write { key } => *key,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub enum DbReply {
    Version(u64),
    /// The database's queue was full.
    Overloaded,
}

/// An app's request to the cache.
#[derive(Debug, Serialize, Deserialize)]
pub enum CacheRequest {
    Get {
        key: u32,
    },
    /// Stores `version` for `ttl_ms`; with leases, only with the token the miss handed out.
    Set {
        key: u32,
        version: u64,
        ttl_ms: u64,
        token: Option<u64>,
    },
    /// Invalidates the key; with version fences, `version` is the write's new version.
    Delete {
        key: u32,
        version: Option<u64>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum CacheReply {
    Hit(u64),
    /// A miss; with leases, the token that lets this caller SET the key.
    Miss {
        token: Option<u64>,
    },
    Stored,
    Refused,
    Deleted,
}

/// Why the cache refused a SET.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// Leases: the SET's token is not the key's current lease (a DEL voided
    /// it, another caller holds it, or the miss got none).
    VoidLease,
    /// Version fences: a DEL or a cached value announced a newer version.
    OlderVersion,
}

faultline_harness::system_events! {
    /// What the cache-aside system's hosts report.
    pub enum CacheEvent {
        /// An app missed the cache for `key`.
        Miss = "cache.miss" { key: u32 },
        /// An app could not reach the cache in time and read the database.
        Unavailable = "cache.unavailable" { key: u32, error: String },
        /// The cache stored `version` of `key`.
        Set = "cache.set" { key: u32, version: u64 },
        /// The cache refused to store `version` of `key`.
        SetRefused = "cache.set.refused" { key: u32, version: u64, reason: Refusal },
        /// The cache deleted `key`; with version fences, the version the DEL announced.
        Delete = "cache.delete" {
            key: u32,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            fence: Option<u64>,
        },
        /// An app's invalidation of `key` after writing `version` did not reach the cache.
        DeleteLost = "cache.delete.lost" { key: u32, version: u64, error: String },
        /// The database served a read of `key` at `version`.
        DbRead = "db.read" { key: u32, version: u64 },
        /// The database committed `version` of `key`.
        DbWrite = "db.write" { key: u32, version: u64 },
        /// The database's queue was full and it refused a request for `key`.
        DbOverload = "db.overload" { key: u32 },
        /// An app started its load number `load` (per incarnation) of `key` from the database.
        LoadStart = "app.load.start" { key: u32, load: u64 },
        /// That load ended (answered or failed).
        LoadEnd = "app.load.end" { key: u32, load: u64 },
    }
}
