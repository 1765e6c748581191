//! The app servers: the cache-aside pattern itself, and the client's call.
//!
//! A read GETs the cache; on a miss it reads the database and SETs the value
//! with the TTL. A write writes the database, then DELs the key, and answers
//! the client whether or not the DEL arrived. An app gives up on the cache
//! after `cache_timeout` and reads the database instead, without filling the
//! cache. With coalescing, one database load per key is in flight per app.
//! With `cache_connections = "pooled"`, an app keeps idle connections to the
//! cache in the kit's pool and reuses them (closing one whose request failed
//! or timed out); `"pooled-reuse-timed-out"` is a planted flaw, a textbook
//! pool of its own here that keeps those too. `connections = "pooled"`
//! pools the clients' connections to the apps and the apps' to the database.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use faultline_harness::system::HostResult;
use faultline_harness::{EventSink, HostContext, Outcome};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::oneshot;

use super::knobs::{Cache, CacheConnections, Invalidation};
use super::protocol::{
    app_host, Access, AppReply, AppRequest, CacheEvent, CacheOp, CacheReply, CacheRequest, DbReply, DbRequest,
    APP_PORT, CACHE, CACHE_PORT, DB, DB_PORT,
};
use crate::kit::pool::{Caller, Connections};
use crate::kit::request::{ask_within, CallError};
use crate::kit::serve;
use crate::kit::wire::{describe, read_frame, write_frame};

/// With coalescing, how many loads a lease holder waits out before it gives
/// up filling the cache itself.
const LOAD_ROUNDS_MAX: usize = 4;

/// Idle cache connections an app keeps at most (`cache_connections =
/// "pooled"`); more are closed.
const POOL_IDLE_MAX: usize = 32;

/// A workload client's call: one request to the op's app. The harness's
/// deadline bounds it.
pub async fn call(caller: Rc<Caller>, op: CacheOp) -> Outcome<u64> {
    let request = match op.access {
        Access::Read => AppRequest::Read { key: op.key },
        Access::Write => AppRequest::Write { key: op.key },
    };
    match caller.ask::<_, AppReply>(&app_host(op.app), APP_PORT, &request).await {
        Ok(AppReply::Version(version)) => Outcome::Ok(version),
        Ok(AppReply::Error(error)) => Outcome::Failed(error),
        Err(error) => Outcome::Failed(describe(&error)),
    }
}

/// Writes one request on `stream` and reads the next answer on it.
async fn exchange(stream: &mut turmoil::net::TcpStream, request: &CacheRequest) -> std::io::Result<CacheReply> {
    write_frame(stream, request).await?;
    read_frame(stream)
        .await?
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the cache closed the connection"))
}

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
    events: EventSink<CacheEvent>,
    rng: RefCell<ChaCha8Rng>,
    /// Coalescing: loads in flight by key, with the callers waiting for them.
    loading: RefCell<BTreeMap<u32, Vec<LoadWaiter>>>,
    /// Loads started by this incarnation.
    loads: Cell<u64>,
    /// Idle connections to the cache, with the planted flaw's textbook pool.
    pool: RefCell<Vec<turmoil::net::TcpStream>>,
    /// The kit's pool to the cache, with `cache_connections = "pooled"`.
    cache_pool: Caller,
    /// How this app calls the database (`connections`).
    db: Caller,
}

pub async fn serve(cache: Arc<Cache>, mut context: HostContext<CacheEvent>) -> HostResult {
    let db = Caller::new(cache.connections, &mut context.rng);
    let kit_pool =
        if cache.cache_connections == CacheConnections::Pooled { Connections::Pooled } else { Connections::PerRequest };
    let cache_pool = Caller::new(kit_pool, &mut context.rng);
    let app = Rc::new(App {
        cache,
        events: context.events,
        rng: RefCell::new(context.rng),
        loading: RefCell::new(BTreeMap::new()),
        loads: Cell::new(0),
        pool: RefCell::new(Vec::new()),
        cache_pool,
        db,
    });
    serve::serve(APP_PORT, move |request: AppRequest| {
        let app = Rc::clone(&app);
        async move {
            let result = match request {
                AppRequest::Read { key } => app.read(key).await,
                AppRequest::Write { key } => app.write(key).await,
            };
            Some(match result {
                Ok(version) => AppReply::Version(version),
                Err(error) => AppReply::Error(error),
            })
        }
    })
    .await?;
    Ok(())
}

impl App {
    async fn cache_call(&self, request: &CacheRequest) -> Result<CacheReply, CallError> {
        match self.cache.cache_connections {
            CacheConnections::Fresh => ask_within(self.cache.cache_timeout.0, CACHE, CACHE_PORT, request).await,
            CacheConnections::Pooled => {
                self.cache_pool.ask_within(self.cache.cache_timeout.0, CACHE, CACHE_PORT, request).await
            }
            CacheConnections::PooledReuseTimedOut => self.pooled_call(request).await,
        }
    }

    /// The planted flaw's textbook pool: one request over an idle pooled
    /// connection (or a new one) within `cache_timeout`. An answered
    /// connection goes back to the pool, one that failed is closed, and one
    /// that timed out is kept: the next request on it reads that late answer
    /// as its own.
    async fn pooled_call(&self, request: &CacheRequest) -> Result<CacheReply, CallError> {
        let deadline = self.cache.cache_timeout.0;
        let started = tokio::time::Instant::now();
        let idle = self.pool.borrow_mut().pop();
        let mut stream = match idle {
            Some(stream) => stream,
            None => match tokio::time::timeout(deadline, crate::kit::request::connect(CACHE, CACHE_PORT)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => return Err(CallError::Io(describe(&error))),
                Err(_) => return Err(CallError::Timeout(deadline)),
            },
        };
        let left = deadline.saturating_sub(started.elapsed());
        let result = tokio::time::timeout(left, exchange(&mut stream, request)).await;
        let (keep, answer) = match result {
            Ok(Ok(reply)) => (true, Ok(reply)),
            Ok(Err(error)) => (false, Err(CallError::Io(describe(&error)))),
            Err(_) => (true, Err(CallError::Timeout(deadline))),
        };
        let mut pool = self.pool.borrow_mut();
        if keep && pool.len() < POOL_IDLE_MAX {
            pool.push(stream);
        }
        assert!(pool.len() <= POOL_IDLE_MAX, "the pool stays bounded");
        answer
    }

    async fn db_call(&self, request: &DbRequest) -> Result<u64, String> {
        match self.db.ask_within(self.cache.db_timeout.0, DB, DB_PORT, request).await {
            Ok(DbReply::Version(version)) => Ok(version),
            Ok(DbReply::Overloaded) => Err("the database is overloaded".into()),
            Err(error) => Err(format!("database: {error}")),
        }
    }

    async fn read(self: &Rc<Self>, key: u32) -> Result<u64, String> {
        match self.cache_call(&CacheRequest::Get { key }).await {
            Ok(CacheReply::Hit(version)) => Ok(version),
            Ok(CacheReply::Miss { token }) => {
                self.events.emit(CacheEvent::Miss { key });
                self.load(key, Fill::Cache(token)).await
            }
            Ok(other) => Err(format!("the cache answered a GET with {other:?}")),
            Err(error) => {
                // Degrade to the database; do not fill a cache we cannot reach.
                self.events.emit(CacheEvent::Unavailable { key, error: error.to_string() });
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
            let Some(waiter) = self.join_load(key) else {
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

    /// Waits for the load of `key` in flight, or (with none) marks one as
    /// started by the caller and returns `None`.
    fn join_load(&self, key: u32) -> Option<oneshot::Receiver<Result<u64, String>>> {
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
    }

    async fn load_once(&self, key: u32, fill: Fill) -> Result<u64, String> {
        let load = self.loads.get() + 1;
        self.loads.set(load);
        self.events.emit(CacheEvent::LoadStart { key, load });
        let result = self.db_call(&DbRequest::Read { key }).await;
        self.events.emit(CacheEvent::LoadEnd { key, load });
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
        assert!(version >= 1, "a committed write has a version above the initial 0");
        let fence = (self.cache.invalidation == Invalidation::Versioned).then_some(version);
        if let Err(error) = self.cache_call(&CacheRequest::Delete { key, version: fence }).await {
            // The textbook pattern answers the client anyway: the write is in
            // the database. The stale value lives until its TTL ends.
            self.events.emit(CacheEvent::DeleteLost { key, version, error: error.to_string() });
        }
        Ok(version)
    }
}
