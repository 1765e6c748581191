//! `cache`: cache-aside with a TTL, as the reliability chapter recommends,
//! and the variants that fix its known flaws.
//!
//! Hosts: `db` (authoritative; every write makes a new version; a bounded
//! queue served at `db_capacity`), `cache` (GET, SET with TTL, DEL, leases
//! and version fences; memory only) and `app-1..N` (the pattern itself).
//! Clients send reads and writes to a random app.
//!
//! The pattern: a read GETs the cache; on a miss it reads the db and SETs the
//! value with a TTL. A write writes the db, then DELs the key. Its known
//! flaws: the stale-set race (a reader misses and reads the old row, a writer
//! updates the row and deletes the key, then the reader sets the old value)
//! and lost invalidations (the DEL never reaches the cache). `invalidation =
//! "lease"` (memcache's leases: a miss hands out a token, a DEL voids it, a
//! SET with a void token is refused) and `"versioned"` (the cache keeps the
//! highest version it has seen, even past a DEL, and refuses older sets) fix
//! the race; neither fixes a lost invalidation, which only the TTL bounds.
//!
//! Every event detail that a checker reads has the form "key=K version=V".

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use faultline_harness::history::{Nanos, TraceEvent};
use faultline_harness::system::{
    erase, Configured, EventDoc, HostResult, InvariantDoc, KnobDoc, LocalFuture, SystemEntry,
};
use faultline_harness::units::{Dur, Probability, Rate};
use faultline_harness::{
    ClientContext, EventSink, History, HostContext, InputError, Knobs, Outcome, System, SystemDoc, Violation,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use turmoil::net::TcpListener;

use crate::wire::{ask, describe, read_frame, write_frame};

const APP_PORT: u16 = 8000;
const DB_PORT: u16 = 8001;
const CACHE_PORT: u16 = 8002;
/// A lease not used within this long may be handed out again (its holder may
/// have crashed); memcache uses a similar bound.
const LEASE_TTL: Duration = Duration::from_secs(2);
/// The key the health probe reads: outside the workload's key space, so
/// its misses stay out of the workload's figures.
const PROBE_KEY: u32 = u32::MAX;
/// With coalescing, how many loads a lease holder waits out before it gives
/// up filling the cache itself.
const LOAD_ROUNDS_MAX: usize = 4;

pub static DOC: SystemDoc = SystemDoc {
    name: "cache",
    about: "cache-aside with a TTL in front of a database: the textbook pattern, leases, version fences, coalescing",
    hosts: "db, cache, app-1..app-N",
    knobs: &[
        KnobDoc { name: "invalidation", unit: "string", default: "delete", about: "delete (the textbook pattern) | lease | versioned" },
        KnobDoc { name: "ttl", unit: "duration", default: "5s", about: "how long a cached value lives" },
        KnobDoc { name: "ttl_jitter", unit: "duration", default: "0s", about: "a random extra TTL, uniform up to this, per SET" },
        KnobDoc { name: "coalescing", unit: "bool", default: "false", about: "one database load per key in flight per app; other misses wait for it" },
        KnobDoc { name: "cache_timeout", unit: "duration", default: "50ms", about: "an app gives up on the cache after this and uses the database" },
        KnobDoc { name: "db_timeout", unit: "duration", default: "500ms", about: "an app gives up on the database after this" },
        KnobDoc { name: "db_capacity", unit: "rate", default: "2000/s", about: "requests per second the database serves; beyond it they queue" },
        KnobDoc { name: "db_queue", unit: "count", default: "200", about: "requests the database queues at most; beyond it they fail at once" },
        KnobDoc { name: "db_latency", unit: "duration", default: "0s", about: "time each query takes before it queues for the server (queries overlap): an expensive origin" },
        KnobDoc { name: "apps", unit: "count", default: "2", about: "app servers" },
        KnobDoc { name: "keys", unit: "count", default: "50", about: "size of the key space (the probe reads a key of its own)" },
        KnobDoc { name: "read_ratio", unit: "probability", default: "0.9", about: "share of operations that are reads" },
        KnobDoc { name: "zipf", unit: "number", default: "0", about: "key skew: Zipf exponent (0 is uniform; 1 makes a few keys hot)" },
    ],
    invariants: &[
        InvariantDoc { name: "reads-see-written-values", about: "every read returns a version some write produced, or the initial version 0" },
        InvariantDoc { name: "bounded-staleness", about: "every read returns a version that was current at some time no earlier than its invocation minus ttl + ttl_jitter" },
        InvariantDoc { name: "read-your-writes", about: "a read invoked after a write to the same key completed never returns an older version" },
        InvariantDoc { name: "origin-protection", about: "at most one database load per key is in flight per app (what coalescing promises)" },
    ],
    events: &[
        EventDoc { name: "cache.miss", about: "an app missed the cache", detects: false },
        EventDoc { name: "cache.unavailable", about: "an app could not reach the cache in time and read the database", detects: true },
        EventDoc { name: "cache.set", about: "the cache stored a value", detects: false },
        EventDoc { name: "cache.set.refused", about: "the cache refused a SET (void lease or older version)", detects: false },
        EventDoc { name: "cache.delete", about: "the cache deleted a key", detects: false },
        EventDoc { name: "cache.delete.lost", about: "an app's invalidation did not reach the cache", detects: false },
        EventDoc { name: "db.read", about: "the database served a read", detects: false },
        EventDoc { name: "db.write", about: "the database committed a write", detects: false },
        EventDoc { name: "db.overload", about: "the database's queue was full and it refused a request", detects: false },
        EventDoc { name: "app.load.start", about: "an app started a database load after a miss", detects: false },
        EventDoc { name: "app.load.end", about: "an app's database load ended", detects: false },
    ],
};

pub fn entry() -> SystemEntry {
    SystemEntry { doc: &DOC, configure }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Invalidation {
    Delete,
    Lease,
    Versioned,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CacheKnobs {
    invalidation: Option<Invalidation>,
    ttl: Option<toml::Spanned<Dur>>,
    ttl_jitter: Option<Dur>,
    coalescing: Option<bool>,
    cache_timeout: Option<toml::Spanned<Dur>>,
    db_timeout: Option<toml::Spanned<Dur>>,
    db_capacity: Option<toml::Spanned<Rate>>,
    db_queue: Option<toml::Spanned<i64>>,
    db_latency: Option<Dur>,
    apps: Option<toml::Spanned<i64>>,
    keys: Option<toml::Spanned<i64>>,
    read_ratio: Option<Probability>,
    zipf: Option<toml::Spanned<f64>>,
}

fn configure(knobs: &Knobs<'_>) -> Result<Arc<dyn Configured>, InputError> {
    let raw: CacheKnobs = knobs.parse()?;
    let db_capacity = match &raw.db_capacity {
        None => 2000.0,
        Some(r) if r.get_ref().per_second > 0.0 => r.get_ref().per_second,
        Some(r) => return Err(knobs.error(r.span(), "db_capacity must be above zero")),
    };
    let zipf = match &raw.zipf {
        None => 0.0,
        Some(z) if (0.0..=10.0).contains(z.get_ref()) => *z.get_ref(),
        Some(z) => return Err(knobs.error(z.span(), format!("zipf must be between 0 and 10, found {}", z.get_ref()))),
    };
    let cache = Cache {
        invalidation: raw.invalidation.unwrap_or(Invalidation::Delete),
        ttl: knobs.positive(&raw.ttl, Dur::from_secs(5), "ttl")?,
        ttl_jitter: raw.ttl_jitter.unwrap_or(Dur::ZERO),
        coalescing: raw.coalescing.unwrap_or(false),
        cache_timeout: knobs.positive(&raw.cache_timeout, Dur::from_millis(50), "cache_timeout")?,
        db_timeout: knobs.positive(&raw.db_timeout, Dur::from_millis(500), "db_timeout")?,
        db_capacity,
        db_queue: knobs.count(&raw.db_queue, 200, 1..=1_000_000, "db_queue")?,
        db_latency: raw.db_latency.unwrap_or(Dur::ZERO),
        apps: knobs.count(&raw.apps, 2, 1..=16, "apps")?,
        keys: knobs.count(&raw.keys, 50, 1..=1_000_000, "keys")?,
        read_ratio: raw.read_ratio.map_or(0.9, |p| p.0),
        zipf,
    };
    Ok(erase(cache, &DOC))
}

/// The configured cache-aside system.
#[derive(Debug, Serialize)]
pub struct Cache {
    pub invalidation: Invalidation,
    pub ttl: Dur,
    pub ttl_jitter: Dur,
    pub coalescing: bool,
    pub cache_timeout: Dur,
    pub db_timeout: Dur,
    pub db_capacity: f64,
    pub db_queue: u32,
    pub db_latency: Dur,
    pub apps: u32,
    pub keys: u32,
    pub read_ratio: f64,
    pub zipf: f64,
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

// The wire messages.
#[derive(Debug, Serialize, Deserialize)]
enum AppRequest {
    Read { key: u32 },
    Write { key: u32 },
}

#[derive(Debug, Serialize, Deserialize)]
enum AppReply {
    /// The key's version (reads) or the new version (writes).
    Version(u64),
    Error(String),
}

#[derive(Debug, Serialize, Deserialize)]
enum DbRequest {
    Read { key: u32 },
    Write { key: u32 },
}

#[derive(Debug, Serialize, Deserialize)]
enum DbReply {
    Version(u64),
    Overloaded,
}

#[derive(Debug, Serialize, Deserialize)]
enum CacheRequest {
    Get { key: u32 },
    Set { key: u32, version: u64, ttl_ms: u64, token: Option<u64> },
    Delete { key: u32, version: Option<u64> },
}

#[derive(Debug, Serialize, Deserialize)]
enum CacheReply {
    Hit(u64),
    /// A miss; with leases, the token that lets this caller SET the key.
    Miss {
        token: Option<u64>,
    },
    Stored,
    Refused,
    Deleted,
}

impl System for Cache {
    type Op = CacheOp;
    type Res = u64;

    fn hosts(&self) -> Vec<String> {
        let mut hosts = vec!["db".to_string(), "cache".to_string()];
        hosts.extend((1..=self.apps).map(|i| format!("app-{i}")));
        hosts
    }

    fn host(self: &Arc<Self>, context: HostContext) -> LocalFuture<HostResult> {
        let this = Arc::clone(self);
        match context.name.as_str() {
            "db" => Box::pin(serve_db(this, context)),
            "cache" => Box::pin(serve_cache(this, context)),
            _ => Box::pin(serve_app(this, context)),
        }
    }

    fn next_op(&self, _client: u32, rng: &mut ChaCha8Rng) -> CacheOp {
        let access = if rng.random_bool(self.read_ratio) { Access::Read } else { Access::Write };
        let key = if self.zipf > 0.0 {
            let zipf = Zipf::new(f64::from(self.keys), self.zipf).expect("validated Zipf parameters");
            zipf.sample(rng) as u32 - 1
        } else {
            rng.random_range(0..self.keys)
        };
        CacheOp { access, key, app: rng.random_range(1..=self.apps) }
    }

    fn op_kind(&self, op: &CacheOp) -> &'static str {
        match op.access {
            Access::Read => "read",
            Access::Write => "write",
        }
    }

    fn probe_op(&self) -> Option<CacheOp> {
        Some(CacheOp { access: Access::Read, key: PROBE_KEY, app: 1 })
    }

    fn call(self: &Arc<Self>, _client: ClientContext, op: CacheOp) -> LocalFuture<Outcome<u64>> {
        Box::pin(async move {
            let request = match op.access {
                Access::Read => AppRequest::Read { key: op.key },
                Access::Write => AppRequest::Write { key: op.key },
            };
            match ask::<_, AppReply>(&format!("app-{}", op.app), APP_PORT, &request).await {
                Ok(AppReply::Version(version)) => Outcome::Ok(version),
                Ok(AppReply::Error(error)) => Outcome::Failed(error),
                Err(error) => Outcome::Failed(describe(&error)),
            }
        })
    }

    fn check(&self, invariant: &str, history: &History<CacheOp, u64>, trace: &[TraceEvent]) -> Vec<Violation> {
        match invariant {
            "reads-see-written-values" => check_reads_see_written_values(history, trace),
            "bounded-staleness" => {
                check_bounded_staleness(history, trace, self.ttl.as_nanos() + self.ttl_jitter.as_nanos())
            }
            "read-your-writes" => check_read_your_writes(history),
            "origin-protection" => check_origin_protection(trace),
            other => unreachable!("scenario validation admits only documented invariants, not {other:?}"),
        }
    }

    fn figures(&self, history: &History<CacheOp, u64>, trace: &[TraceEvent]) -> Vec<(&'static str, f64)> {
        let reads = history.ops.iter().filter(|op| op.op.access == Access::Read).count();
        let probe_miss = format!("key={PROBE_KEY}");
        let misses = trace.iter().filter(|e| e.kind == "cache.miss" && e.detail != probe_miss).count();
        let mut figures = Vec::new();
        if reads > 0 {
            figures.push(("hit_ratio", 1.0 - (misses as f64 / reads as f64).min(1.0)));
        }
        if let Some(stampede) = stampede(trace) {
            figures.push(("db_peak_per_s", stampede.peak_per_s));
            figures.push(("db_steady_per_s", stampede.steady_db_per_s));
            figures.push(("misses_steady_per_s", stampede.steady_misses_per_s));
            figures.push(("stampede_factor", stampede.factor()));
        }
        figures
    }
}

fn detail(key: u32, version: u64) -> String {
    format!("key={key} version={version}")
}

/// Reads "key=K version=V" from an event's detail.
pub fn parse_detail(detail: &str) -> Option<(u32, u64)> {
    let mut key = None;
    let mut version = None;
    for part in detail.split_whitespace() {
        if let Some(k) = part.strip_prefix("key=") {
            key = k.parse().ok();
        } else if let Some(v) = part.strip_prefix("version=") {
            version = v.parse().ok();
        }
    }
    Some((key?, version?))
}

// ---------------------------------------------------------------------------
// The database: a FIFO queue served at db_capacity.

struct DbJob {
    request: DbRequest,
    reply: oneshot::Sender<u64>,
}

async fn serve_db(cache: Arc<Cache>, context: HostContext) -> HostResult {
    let listener = TcpListener::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), DB_PORT)).await?;
    let (queue, mut jobs) = mpsc::channel::<DbJob>(cache.db_queue as usize);
    let events = context.events.clone();
    let service = Duration::from_secs_f64(1.0 / cache.db_capacity);
    tokio::task::spawn_local(async move {
        let mut versions: BTreeMap<u32, u64> = BTreeMap::new();
        while let Some(job) = jobs.recv().await {
            tokio::time::sleep(service).await;
            let version = match job.request {
                DbRequest::Read { key } => {
                    let version = versions.get(&key).copied().unwrap_or(0);
                    events.emit("db.read", detail(key, version));
                    version
                }
                DbRequest::Write { key } => {
                    let version = versions.get(&key).copied().unwrap_or(0) + 1;
                    versions.insert(key, version);
                    events.emit("db.write", detail(key, version));
                    version
                }
            };
            let _ = job.reply.send(version);
        }
    });
    loop {
        let (mut stream, _) = listener.accept().await?;
        let (queue, events, latency) = (queue.clone(), context.events.clone(), cache.db_latency.0);
        tokio::task::spawn_local(async move {
            let Ok(Some(request)) = read_frame::<_, DbRequest>(&mut stream).await else { return };
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            let (reply, answer) = oneshot::channel();
            let reply = match queue.try_send(DbJob { request, reply }) {
                Ok(()) => match answer.await {
                    Ok(version) => DbReply::Version(version),
                    Err(_) => return,
                },
                Err(_) => {
                    events.emit("db.overload", "the queue is full");
                    DbReply::Overloaded
                }
            };
            let _ = write_frame(&mut stream, &reply).await;
        });
    }
}

// ---------------------------------------------------------------------------
// The cache: GET, SET with TTL, DEL, leases and version fences.

struct Entry {
    version: u64,
    expires: tokio::time::Instant,
}

#[derive(Default)]
struct CacheState {
    entries: BTreeMap<u32, Entry>,
    /// Lease tokens handed out on misses, with when.
    leases: BTreeMap<u32, (u64, tokio::time::Instant)>,
    next_token: u64,
    /// The highest version a DEL announced per key (versioned invalidation).
    fences: BTreeMap<u32, u64>,
}

async fn serve_cache(cache: Arc<Cache>, context: HostContext) -> HostResult {
    let listener = TcpListener::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), CACHE_PORT)).await?;
    let state = Rc::new(RefCell::new(CacheState::default()));
    loop {
        let (mut stream, _) = listener.accept().await?;
        let (cache, state, events) = (Arc::clone(&cache), Rc::clone(&state), context.events.clone());
        tokio::task::spawn_local(async move {
            let Ok(Some(request)) = read_frame::<_, CacheRequest>(&mut stream).await else { return };
            let reply = apply_cache(&cache, &mut state.borrow_mut(), &events, request);
            let _ = write_frame(&mut stream, &reply).await;
        });
    }
}

fn apply_cache(cache: &Cache, state: &mut CacheState, events: &EventSink, request: CacheRequest) -> CacheReply {
    let now = tokio::time::Instant::now();
    match request {
        CacheRequest::Get { key } => {
            if let Some(entry) = state.entries.get(&key).filter(|e| e.expires > now) {
                return CacheReply::Hit(entry.version);
            }
            state.entries.remove(&key);
            let token = if cache.invalidation == Invalidation::Lease {
                match state.leases.get(&key) {
                    Some((_, issued)) if now - *issued < LEASE_TTL => None,
                    _ => {
                        state.next_token += 1;
                        state.leases.insert(key, (state.next_token, now));
                        Some(state.next_token)
                    }
                }
            } else {
                None
            };
            CacheReply::Miss { token }
        }
        CacheRequest::Set { key, version, ttl_ms, token } => {
            let allowed = match cache.invalidation {
                Invalidation::Delete => true,
                Invalidation::Lease => match (token, state.leases.get(&key)) {
                    (Some(token), Some((held, _))) => token == *held,
                    _ => false,
                },
                Invalidation::Versioned => {
                    let fence = state.fences.get(&key).copied().unwrap_or(0);
                    let cached = state.entries.get(&key).map_or(0, |e| e.version);
                    version >= fence && version >= cached
                }
            };
            if !allowed {
                events.emit("cache.set.refused", detail(key, version));
                return CacheReply::Refused;
            }
            if cache.invalidation == Invalidation::Lease {
                state.leases.remove(&key);
            }
            state.entries.insert(key, Entry { version, expires: now + Duration::from_millis(ttl_ms) });
            events.emit("cache.set", detail(key, version));
            CacheReply::Stored
        }
        CacheRequest::Delete { key, version } => {
            state.entries.remove(&key);
            state.leases.remove(&key);
            if let Some(version) = version {
                let fence = state.fences.entry(key).or_insert(0);
                *fence = (*fence).max(version);
            }
            events.emit("cache.delete", format!("key={key}"));
            CacheReply::Deleted
        }
    }
}

// ---------------------------------------------------------------------------
// The app: the cache-aside pattern.

/// A caller waiting for a coalesced load's result.
type LoadWaiter = oneshot::Sender<Result<u64, String>>;

/// What a database load does with its result.
#[derive(Clone, Copy)]
enum Fill {
    /// SET it in the cache, with the lease token the miss handed out.
    Cache(Option<u64>),
    /// Only return it (the cache is unreachable).
    Skip,
}

struct App {
    cache: Arc<Cache>,
    name: String,
    events: EventSink,
    rng: RefCell<ChaCha8Rng>,
    /// Coalescing: loads in flight by key, with the callers waiting for them.
    loading: RefCell<BTreeMap<u32, Vec<LoadWaiter>>>,
    loads: Cell<u64>,
}

async fn serve_app(cache: Arc<Cache>, context: HostContext) -> HostResult {
    let listener = TcpListener::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), APP_PORT)).await?;
    let app = Rc::new(App {
        cache,
        name: context.name.clone(),
        events: context.events,
        rng: RefCell::new(context.rng),
        loading: RefCell::new(BTreeMap::new()),
        loads: Cell::new(0),
    });
    loop {
        let (mut stream, _) = listener.accept().await?;
        let app = Rc::clone(&app);
        tokio::task::spawn_local(async move {
            let Ok(Some(request)) = read_frame::<_, AppRequest>(&mut stream).await else { return };
            let result = match request {
                AppRequest::Read { key } => app.read(key).await,
                AppRequest::Write { key } => app.write(key).await,
            };
            let reply = match result {
                Ok(version) => AppReply::Version(version),
                Err(error) => AppReply::Error(error),
            };
            let _ = write_frame(&mut stream, &reply).await;
        });
    }
}

impl App {
    async fn cache_call(&self, request: &CacheRequest) -> Result<CacheReply, String> {
        match tokio::time::timeout(self.cache.cache_timeout.0, ask("cache", CACHE_PORT, request)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(error)) => Err(describe(&error)),
            Err(_) => Err(format!("no answer within {}", self.cache.cache_timeout)),
        }
    }

    async fn db_call(&self, request: &DbRequest) -> Result<u64, String> {
        match tokio::time::timeout(self.cache.db_timeout.0, ask("db", DB_PORT, request)).await {
            Ok(Ok(DbReply::Version(version))) => Ok(version),
            Ok(Ok(DbReply::Overloaded)) => Err("the database is overloaded".into()),
            Ok(Err(error)) => Err(format!("database: {}", describe(&error))),
            Err(_) => Err(format!("the database gave no answer within {}", self.cache.db_timeout)),
        }
    }

    async fn read(self: &Rc<Self>, key: u32) -> Result<u64, String> {
        match self.cache_call(&CacheRequest::Get { key }).await {
            Ok(CacheReply::Hit(version)) => Ok(version),
            Ok(CacheReply::Miss { token }) => {
                self.events.emit("cache.miss", format!("key={key}"));
                self.load(key, Fill::Cache(token)).await
            }
            Ok(other) => Err(format!("the cache answered a GET with {other:?}")),
            Err(error) => {
                // Degrade to the database; do not fill a cache we cannot reach.
                self.events.emit("cache.unavailable", format!("key={key}: {error}"));
                self.load(key, Fill::Skip).await
            }
        }
    }

    /// Reads the database after a miss (then fills the cache) or when the
    /// cache is unreachable. With coalescing, one load per key is in flight
    /// in this app and other callers wait for its result. A waiter that holds
    /// the lease token cannot SET the result it waited for (that read may
    /// predate the token and be stale), so it then loads again itself, in
    /// turn, to fill the cache.
    async fn load(self: &Rc<Self>, key: u32, fill: Fill) -> Result<u64, String> {
        if !self.cache.coalescing {
            return self.load_once(key, fill).await;
        }
        let holds_token = matches!(fill, Fill::Cache(Some(_)));
        let mut waited = Err("no load ran".to_string());
        for _ in 0..LOAD_ROUNDS_MAX {
            let waiter = {
                let mut loading = self.loading.borrow_mut();
                match loading.get_mut(&key) {
                    Some(waiters) => {
                        let (sender, receiver) = oneshot::channel();
                        waiters.push(sender);
                        Some(receiver)
                    }
                    None => {
                        loading.insert(key, Vec::new());
                        None
                    }
                }
            };
            let Some(waiter) = waiter else {
                let result = self.load_once(key, fill).await;
                let waiters = self.loading.borrow_mut().remove(&key).unwrap_or_default();
                for waiter in waiters {
                    let _ = waiter.send(result.clone());
                }
                return result;
            };
            waited = waiter.await.unwrap_or_else(|_| Err("the coalesced load was abandoned".into()));
            if !holds_token || waited.is_err() {
                return waited;
            }
        }
        // Still not our turn: answer with what we waited for, unfilled.
        waited
    }

    async fn load_once(&self, key: u32, fill: Fill) -> Result<u64, String> {
        let load = self.loads.get() + 1;
        self.loads.set(load);
        self.events.emit("app.load.start", format!("key={key} load={}/{load}", self.name));
        let result = self.db_call(&DbRequest::Read { key }).await;
        self.events.emit("app.load.end", format!("key={key} load={}/{load}", self.name));
        let version = result?;
        let token = match fill {
            Fill::Skip => return Ok(version),
            Fill::Cache(token) => token,
        };
        // With leases, a miss that got no token (another caller holds the
        // lease) must not fill the cache.
        if self.cache.invalidation != Invalidation::Lease || token.is_some() {
            let jitter = self.cache.ttl_jitter.as_nanos();
            let extra = if jitter > 0 { self.rng.borrow_mut().random_range(0..=jitter) } else { 0 };
            let ttl_ms = (self.cache.ttl.as_nanos() + extra) / 1_000_000;
            // A failed SET only costs a later miss.
            let _ = self.cache_call(&CacheRequest::Set { key, version, ttl_ms, token }).await;
        }
        Ok(version)
    }

    async fn write(&self, key: u32) -> Result<u64, String> {
        let version = self.db_call(&DbRequest::Write { key }).await?;
        let fence = (self.cache.invalidation == Invalidation::Versioned).then_some(version);
        if let Err(error) = self.cache_call(&CacheRequest::Delete { key, version: fence }).await {
            // The textbook pattern answers the client anyway: the write is in
            // the database. The stale value lives until its TTL ends.
            self.events.emit("cache.delete.lost", format!("{} key={key} version={version}: {error}", self.name));
        }
        Ok(version)
    }
}

// ---------------------------------------------------------------------------
// Checkers: pure functions of the history and the trace.

/// Commit times of each version of each key, from the database's events.
fn commits(trace: &[TraceEvent]) -> BTreeMap<u32, BTreeMap<u64, Nanos>> {
    let mut commits: BTreeMap<u32, BTreeMap<u64, Nanos>> = BTreeMap::new();
    for event in trace.iter().filter(|e| e.kind == "db.write" && e.source == "db") {
        if let Some((key, version)) = parse_detail(&event.detail) {
            commits.entry(key).or_default().insert(version, event.at);
        }
    }
    commits
}

fn reads(history: &History<CacheOp, u64>) -> impl Iterator<Item = (&faultline_harness::Operation<CacheOp, u64>, u64)> {
    history.ops.iter().filter(|op| op.op.access == Access::Read).filter_map(|op| op.outcome.value().map(|v| (op, *v)))
}

/// `reads-see-written-values`: every version a read returns was committed by
/// the database (or is the initial 0).
pub fn check_reads_see_written_values(history: &History<CacheOp, u64>, trace: &[TraceEvent]) -> Vec<Violation> {
    let commits = commits(trace);
    reads(history)
        .filter(|(op, version)| *version != 0 && !commits.get(&op.op.key).is_some_and(|c| c.contains_key(version)))
        .map(|(op, version)| Violation {
            invariant: "reads-see-written-values".into(),
            message: format!(
                "read #{} of key {} returned version {version}, which no write produced",
                op.id, op.op.key
            ),
            at: Some(op.completed),
            ops: vec![op.id],
        })
        .collect()
}

/// `bounded-staleness`: a read may return version v only if v was current
/// (committed, and not yet replaced) at some time no earlier than the
/// read's invocation minus `bound`. Staleness is the invocation time minus
/// when v was replaced.
pub fn check_bounded_staleness(history: &History<CacheOp, u64>, trace: &[TraceEvent], bound: Nanos) -> Vec<Violation> {
    let commits = commits(trace);
    let mut violations = Vec::new();
    for (op, version) in reads(history) {
        let Some(replaced) = commits.get(&op.op.key).and_then(|c| c.get(&(version + 1))) else { continue };
        let staleness = op.invoked.saturating_sub(*replaced);
        if staleness > bound {
            violations.push(Violation {
                invariant: "bounded-staleness".into(),
                message: format!(
                    "read #{} of key {} returned version {version}, replaced {:.3}s before the read began (bound {:.3}s)",
                    op.id,
                    op.op.key,
                    staleness as f64 / 1e9,
                    bound as f64 / 1e9
                ),
                at: Some(op.invoked),
                ops: vec![op.id],
            });
        }
    }
    violations
}

/// `read-your-writes`: once a write of version w to a key has completed, a
/// read of that key invoked later never returns a version below w.
pub fn check_read_your_writes(history: &History<CacheOp, u64>) -> Vec<Violation> {
    // Per key: completed writes as (completion time, version), sorted.
    let mut writes: BTreeMap<u32, Vec<(Nanos, u64, usize)>> = BTreeMap::new();
    for op in history.ops.iter().filter(|op| op.op.access == Access::Write) {
        if let Some(version) = op.outcome.value() {
            writes.entry(op.op.key).or_default().push((op.completed, *version, op.id));
        }
    }
    // Turn each list into running maxima by completion time.
    for list in writes.values_mut() {
        list.sort();
        let mut best: (u64, usize) = (0, usize::MAX);
        for entry in list.iter_mut() {
            if entry.1 >= best.0 {
                best = (entry.1, entry.2);
            }
            entry.1 = best.0;
            entry.2 = best.1;
        }
    }
    let mut violations = Vec::new();
    for (op, version) in reads(history) {
        let Some(list) = writes.get(&op.op.key) else { continue };
        let before = list.partition_point(|(completed, _, _)| *completed < op.invoked);
        if before == 0 {
            continue;
        }
        let (completed, required, write_id) = list[before - 1];
        if version < required {
            violations.push(Violation {
                invariant: "read-your-writes".into(),
                message: format!(
                    "read #{} of key {} began at {:.6}s and returned version {version}, but write #{write_id} of version {required} had completed at {:.6}s",
                    op.id,
                    op.op.key,
                    op.invoked as f64 / 1e9,
                    completed as f64 / 1e9
                ),
                at: Some(op.invoked),
                ops: vec![op.id, write_id],
            });
        }
    }
    violations
}

/// `origin-protection`: per app and key, database loads never overlap.
pub fn check_origin_protection(trace: &[TraceEvent]) -> Vec<Violation> {
    let mut in_flight: BTreeMap<(String, u32), u32> = BTreeMap::new();
    let mut violations = Vec::new();
    for event in trace {
        // A crashed app's loads died with it.
        if matches!(event.kind.as_str(), "host.crash" | "host.restart") {
            in_flight.retain(|(app, _), _| *app != event.detail);
            continue;
        }
        let Some(key) =
            event.detail.split_whitespace().find_map(|p| p.strip_prefix("key=")).and_then(|k| k.parse::<u32>().ok())
        else {
            continue;
        };
        let slot = (event.source.clone(), key);
        match event.kind.as_str() {
            "app.load.start" => {
                let count = in_flight.entry(slot).or_insert(0);
                *count += 1;
                if *count > 1 {
                    violations.push(Violation {
                        invariant: "origin-protection".into(),
                        message: format!("{} had {count} database loads of key {key} in flight at once", event.source),
                        at: Some(event.at),
                        ops: Vec::new(),
                    });
                }
            }
            "app.load.end" => {
                if let Some(count) = in_flight.get_mut(&slot) {
                    *count = count.saturating_sub(1);
                }
            }
            _ => {}
        }
    }
    violations
}

/// How hard losing the cache hits the origin. The peak is the busiest 100ms
/// bin of database reads, per second, from the cache's crash until 2s after
/// it restarts. The stampede factor divides it by the steady *miss* rate (cache
/// misses per second over the 2s before the crash): the load the workload's
/// misses put on the database when each one reads it, as without coalescing.
/// Dividing by the database's own steady rate instead would reward nothing:
/// coalescing lowers that rate too (it merges the misses after each
/// invalidation), so the ratio would rise while the peak falls.
pub fn stampede(trace: &[TraceEvent]) -> Option<Stampede> {
    const SECOND: Nanos = 1_000_000_000;
    const BIN: Nanos = 100_000_000;
    let crash = trace.iter().find(|e| e.kind == "host.crash" && e.detail == "cache")?.at;
    let restart = trace.iter().find(|e| e.kind == "host.restart" && e.detail == "cache" && e.at >= crash)?.at;
    let before = |kind: &str| {
        trace.iter().filter(|e| e.kind == kind && e.at + 2 * SECOND >= crash && e.at < crash).count() as f64 / 2.0
    };
    let (misses, db_reads) = (before("cache.miss"), before("db.read"));
    // (The probe reads PROBE_KEY: a miss or load every TTL at most, noise here.)
    if misses == 0.0 {
        return None;
    }
    let end = restart + 2 * SECOND;
    let mut bins = vec![0u32; (end - crash).div_ceil(BIN) as usize];
    for event in trace.iter().filter(|e| e.kind == "db.read" && e.at >= crash && e.at < end) {
        bins[((event.at - crash) / BIN) as usize] += 1;
    }
    let peak = f64::from(*bins.iter().max().expect("at least one bin")) * (SECOND / BIN) as f64;
    Some(Stampede { peak_per_s: peak, steady_misses_per_s: misses, steady_db_per_s: db_reads })
}

/// Database reads per second at the peak after a cache crash, and the
/// steady miss and database-read rates before it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stampede {
    pub peak_per_s: f64,
    pub steady_misses_per_s: f64,
    pub steady_db_per_s: f64,
}

impl Stampede {
    pub fn factor(&self) -> f64 {
        self.peak_per_s / self.steady_misses_per_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_harness::Operation;

    const MS: Nanos = 1_000_000;

    fn op(
        id: usize,
        access: Access,
        key: u32,
        invoked_ms: u64,
        completed_ms: u64,
        outcome: Outcome<u64>,
    ) -> Operation<CacheOp, u64> {
        Operation {
            id,
            client: 0,
            seq: id as u64,
            kind: if access == Access::Read { "read" } else { "write" },
            op: CacheOp { access, key, app: 1 },
            intended: invoked_ms * MS,
            invoked: invoked_ms * MS,
            completed: completed_ms * MS,
            outstanding: 0,
            outcome,
        }
    }

    fn event(at_ms: u64, source: &str, kind: &str, detail: &str) -> TraceEvent {
        TraceEvent { at: at_ms * MS, source: source.into(), kind: kind.into(), detail: detail.into() }
    }

    #[test]
    fn details_parse() {
        assert_eq!(parse_detail("key=3 version=7"), Some((3, 7)));
        assert_eq!(parse_detail("key=3"), None);
    }

    #[test]
    fn reads_must_return_committed_versions() {
        let history = History::new(vec![
            op(0, Access::Read, 1, 0, 5, Outcome::Ok(0)),
            op(0, Access::Read, 1, 10, 15, Outcome::Ok(1)),
            op(0, Access::Read, 1, 20, 25, Outcome::Ok(2)),
        ]);
        let trace = [event(8, "db", "db.write", "key=1 version=1")];
        let violations = check_reads_see_written_values(&history, &trace);
        assert_eq!(violations.len(), 1);
        assert!(violations[0].message.contains("returned version 2"), "{}", violations[0].message);
    }

    #[test]
    fn staleness_is_measured_from_the_replacing_commit() {
        // Version 1 replaced by version 2 at 100ms; bound 50ms.
        let trace = [event(10, "db", "db.write", "key=1 version=1"), event(100, "db", "db.write", "key=1 version=2")];
        let history = History::new(vec![
            op(0, Access::Read, 1, 140, 145, Outcome::Ok(1)), // 40ms stale: fine
            op(0, Access::Read, 1, 160, 165, Outcome::Ok(1)), // 60ms stale: too much
            op(0, Access::Read, 1, 500, 505, Outcome::Ok(2)), // current
        ]);
        let violations = check_bounded_staleness(&history, &trace, 50 * MS);
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].ops, vec![1]);
        assert!(violations[0].message.contains("0.060s"), "{}", violations[0].message);
    }

    #[test]
    fn the_stale_set_race_breaks_read_your_writes() {
        // A write of version 2 completes at 50ms; a read begun at 60ms sees 1.
        let history = History::new(vec![
            op(0, Access::Write, 1, 10, 50, Outcome::Ok(2)),
            op(0, Access::Read, 1, 60, 65, Outcome::Ok(1)),
            op(0, Access::Read, 1, 40, 70, Outcome::Ok(1)), // concurrent with the write: fine
            op(0, Access::Read, 2, 60, 65, Outcome::Ok(0)), // another key: fine
            op(0, Access::Read, 1, 80, 85, Outcome::Ok(2)),
        ]);
        let violations = check_read_your_writes(&history);
        assert_eq!(violations.len(), 1, "{violations:?}");
        let read = &history.ops[violations[0].ops[0]];
        assert_eq!(read.invoked, 60 * MS);
        assert!(violations[0].message.contains("version 2 had completed"), "{}", violations[0].message);
    }

    #[test]
    fn a_failed_write_sets_no_floor() {
        let history = History::new(vec![
            op(0, Access::Write, 1, 10, 50, Outcome::Timeout),
            op(0, Access::Read, 1, 60, 65, Outcome::Ok(0)),
        ]);
        assert!(check_read_your_writes(&history).is_empty());
    }

    #[test]
    fn overlapping_loads_of_one_key_in_one_app_break_origin_protection() {
        let trace = [
            event(1, "app-1", "app.load.start", "key=3 load=app-1/1"),
            event(2, "app-2", "app.load.start", "key=3 load=app-2/1"), // another app: fine
            event(3, "app-1", "app.load.start", "key=4 load=app-1/2"), // another key: fine
            event(4, "app-1", "app.load.end", "key=3 load=app-1/1"),
            event(5, "app-1", "app.load.start", "key=3 load=app-1/3"), // after the first ended: fine
            event(6, "app-1", "app.load.start", "key=3 load=app-1/4"), // overlaps: violation
            event(7, "harness", "host.crash", "app-1"),
            event(8, "harness", "host.restart", "app-1"),
            event(9, "app-1", "app.load.start", "key=3 load=app-1/5"), // the crash ended the others: fine
        ];
        let violations = check_origin_protection(&trace);
        assert_eq!(violations.len(), 1);
        assert!(violations[0].message.contains("app-1 had 2 database loads of key 3"), "{}", violations[0].message);
    }

    #[test]
    fn the_stampede_factor_compares_the_peak_with_the_steady_miss_rate() {
        let mut trace = Vec::new();
        // Steady, over the 2s before the crash at 5s: 10 misses and 5 database reads per second.
        for i in 0..20 {
            trace.push(event(3000 + i * 100, "app-1", "cache.miss", "key=1"));
            if i % 2 == 0 {
                trace.push(event(3000 + i * 100, "db", "db.read", "key=1 version=0"));
            }
        }
        trace.push(event(5000, "harness", "host.crash", "cache"));
        trace.push(event(6000, "harness", "host.restart", "cache"));
        // 8 reads in one 100ms bin while the cache is down = 80/s; 3 after the restart.
        for i in 0..8 {
            trace.push(event(5300 + i, "db", "db.read", "key=1 version=0"));
        }
        for i in 0..3 {
            trace.push(event(6010 + i, "db", "db.read", "key=1 version=0"));
        }
        let stampede = stampede(&trace).unwrap();
        assert_eq!(stampede, Stampede { peak_per_s: 80.0, steady_misses_per_s: 10.0, steady_db_per_s: 5.0 });
        assert_eq!(stampede.factor(), 8.0);
        assert_eq!(super::stampede(&trace[..30]), None, "no crash, no stampede");
    }
}
