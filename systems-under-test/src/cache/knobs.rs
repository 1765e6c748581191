//! The cache-aside system's knobs and its configured form.

use faultline_harness::units::{Dur, Probability, Rate};
use faultline_harness::{InputError, Knobs};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::kit::draw::Zipf;
use crate::kit::pool::Connections;

/// How a write invalidates the cached value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Invalidation {
    /// The textbook pattern: DEL the key.
    Delete,
    /// memcache's leases: a miss hands out a token, a DEL voids it, a SET
    /// with a void token is refused.
    Lease,
    /// Version fences: the cache keeps the highest version it has seen per
    /// key, even past a DEL, and refuses older SETs.
    Versioned,
}

/// How an app holds its connections to the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheConnections {
    /// A fresh connection per request (the default).
    Fresh,
    /// A pool of idle connections, each reused by the next request; a
    /// connection whose request failed or timed out is closed, since its
    /// answer may still be on the way.
    Pooled,
    /// A planted flaw: the pool takes back a connection whose request timed
    /// out, so the late answer to that request is read as the answer to the
    /// next one on it (redis-py's connection reuse after a cancelled
    /// command, behind OpenAI's incident of 20 March 2023; docs/cache.md).
    PooledReuseTimedOut,
}

/// The configured cache-aside system.
#[derive(Debug, Serialize)]
pub struct Cache {
    pub invalidation: Invalidation,
    pub ttl: Dur,
    pub ttl_jitter: Dur,
    /// Each hit extends the entry's life by its TTL (expire after access),
    /// a real flaw against lost invalidations: a stale value that is read
    /// often enough never expires.
    pub sliding_ttl: bool,
    pub coalescing: bool,
    pub cache_connections: CacheConnections,
    /// How clients hold their connections to the apps, and apps theirs to
    /// the database (`cache_connections` for the cache; it follows this
    /// knob unless set).
    pub connections: Connections,
    pub cache_timeout: Dur,
    pub db_timeout: Dur,
    /// Requests per second.
    pub db_capacity: f64,
    pub db_queue: u32,
    pub db_latency: Dur,
    pub apps: u32,
    pub keys: u32,
    pub read_ratio: f64,
    pub zipf: f64,
    /// The key distribution when `zipf > 0` (uniform otherwise), built once.
    #[serde(skip)]
    pub(super) key_draw: Option<Zipf>,
}

impl Cache {
    /// The longest a cached value may live: `ttl + ttl_jitter`, in nanoseconds.
    pub fn ttl_max_nanos(&self) -> u64 {
        self.ttl.as_nanos().saturating_add(self.ttl_jitter.as_nanos())
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CacheKnobs {
    invalidation: Option<Invalidation>,
    ttl: Option<Spanned<Dur>>,
    ttl_jitter: Option<Dur>,
    sliding_ttl: Option<bool>,
    coalescing: Option<bool>,
    cache_connections: Option<CacheConnections>,
    connections: Option<Connections>,
    cache_timeout: Option<Spanned<Dur>>,
    db_timeout: Option<Spanned<Dur>>,
    db_capacity: Option<Spanned<Rate>>,
    db_queue: Option<Spanned<i64>>,
    db_latency: Option<Dur>,
    apps: Option<Spanned<i64>>,
    keys: Option<Spanned<i64>>,
    read_ratio: Option<Probability>,
    zipf: Option<Spanned<f64>>,
}

pub fn configure(knobs: &Knobs<'_>) -> Result<Cache, InputError> {
    let raw: CacheKnobs = knobs.parse()?;
    let keys = knobs.count(&raw.keys, 50, 1..=1_000_000, "keys")?;
    let zipf = knobs.number(&raw.zipf, 0.0, 0.0..=10.0, "zipf")?;
    let connections = raw.connections.unwrap_or_default();
    Ok(Cache {
        invalidation: raw.invalidation.unwrap_or(Invalidation::Delete),
        ttl: knobs.positive(&raw.ttl, Dur::from_secs(5), "ttl")?,
        ttl_jitter: raw.ttl_jitter.unwrap_or(Dur::ZERO),
        sliding_ttl: raw.sliding_ttl.unwrap_or(false),
        coalescing: raw.coalescing.unwrap_or(false),
        cache_connections: raw.cache_connections.unwrap_or(match connections {
            Connections::PerRequest => CacheConnections::Fresh,
            Connections::Pooled | Connections::PooledUnchecked => CacheConnections::Pooled,
        }),
        connections,
        cache_timeout: knobs.positive(&raw.cache_timeout, Dur::from_millis(50), "cache_timeout")?,
        db_timeout: knobs.positive(&raw.db_timeout, Dur::from_millis(500), "db_timeout")?,
        db_capacity: knobs.rate(&raw.db_capacity, 2000.0, "db_capacity")?,
        db_queue: knobs.count(&raw.db_queue, 200, 1..=1_000_000, "db_queue")?,
        db_latency: raw.db_latency.unwrap_or(Dur::ZERO),
        apps: knobs.count(&raw.apps, 2, 1..=16, "apps")?,
        keys,
        read_ratio: raw.read_ratio.map_or(0.9, |p| p.0),
        zipf,
        key_draw: (zipf > 0.0).then(|| Zipf::new(keys, zipf)),
    })
}
