//! The cache: GET, SET with a TTL, DEL, plus memcache-style leases and
//! version fences. Memory only: a crash empties it. With `sliding_ttl`, a
//! hit extends the entry's life by its TTL (expire after access).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use faultline_harness::system::HostResult;
use faultline_harness::{EventSink, HostContext};
use tokio::time::Instant;

use super::knobs::{Cache, Invalidation};
use super::protocol::{CacheEvent, CacheReply, CacheRequest, Refusal, CACHE_PORT};
use crate::kit::serve;

/// A lease not used within this long may be handed out again (its holder may
/// have crashed); memcache uses a similar bound.
pub const LEASE_TTL: Duration = Duration::from_secs(2);

struct Entry {
    version: u64,
    expires: Instant,
    /// The TTL the SET gave it, which a hit renews with `sliding_ttl`.
    ttl: Duration,
}

/// What the cache holds.
struct State {
    invalidation: Invalidation,
    sliding_ttl: bool,
    entries: BTreeMap<u32, Entry>,
    /// Lease tokens handed out on misses, with when.
    leases: BTreeMap<u32, (u64, Instant)>,
    next_token: u64,
    /// The highest version a DEL announced per key (version fences).
    fences: BTreeMap<u32, u64>,
    events: EventSink<CacheEvent>,
}

pub async fn serve(cache: Arc<Cache>, context: HostContext<CacheEvent>) -> HostResult {
    let state = Rc::new(RefCell::new(State {
        invalidation: cache.invalidation,
        sliding_ttl: cache.sliding_ttl,
        entries: BTreeMap::new(),
        leases: BTreeMap::new(),
        next_token: 0,
        fences: BTreeMap::new(),
        events: context.events,
    }));
    serve::serve(CACHE_PORT, move |request: CacheRequest| {
        let state = Rc::clone(&state);
        async move { Some(state.borrow_mut().apply(request, Instant::now())) }
    })
    .await?;
    Ok(())
}

impl State {
    fn apply(&mut self, request: CacheRequest, now: Instant) -> CacheReply {
        match request {
            CacheRequest::Get { key } => self.get(key, now),
            CacheRequest::Set { key, version, ttl_ms, token } => {
                self.set(key, version, token, now, Duration::from_millis(ttl_ms))
            }
            CacheRequest::Delete { key, version } => self.delete(key, version),
        }
    }

    /// A hit, or a miss (with leases, with a token unless another caller's
    /// lease on the key is still fresh).
    fn get(&mut self, key: u32, now: Instant) -> CacheReply {
        if let Some(entry) = self.entries.get_mut(&key).filter(|e| e.expires > now) {
            if self.sliding_ttl {
                entry.expires = now + entry.ttl;
            }
            return CacheReply::Hit(entry.version);
        }
        self.entries.remove(&key);
        if self.invalidation != Invalidation::Lease {
            return CacheReply::Miss { token: None };
        }
        if let Some((_, issued)) = self.leases.get(&key) {
            if now - *issued < LEASE_TTL {
                return CacheReply::Miss { token: None };
            }
        }
        self.next_token += 1;
        self.leases.insert(key, (self.next_token, now));
        CacheReply::Miss { token: Some(self.next_token) }
    }

    fn set(&mut self, key: u32, version: u64, token: Option<u64>, now: Instant, ttl: Duration) -> CacheReply {
        if let Some(reason) = self.refusal(key, version, token) {
            self.events.emit(CacheEvent::SetRefused { key, version, reason });
            return CacheReply::Refused;
        }
        if self.invalidation == Invalidation::Lease {
            let lease = self.leases.remove(&key);
            assert!(lease.is_some_and(|(held, _)| Some(held) == token), "a lease SET spends the key's lease");
        }
        self.entries.insert(key, Entry { version, expires: now + ttl, ttl });
        self.events.emit(CacheEvent::Set { key, version });
        CacheReply::Stored
    }

    /// Why a SET of `version` with `token` may not land, if it may not.
    fn refusal(&self, key: u32, version: u64, token: Option<u64>) -> Option<Refusal> {
        match self.invalidation {
            Invalidation::Delete => None,
            Invalidation::Lease => {
                let held = self.leases.get(&key).map(|(held, _)| *held);
                (token.is_none() || token != held).then_some(Refusal::VoidLease)
            }
            Invalidation::Versioned => {
                let fence = self.fences.get(&key).copied().unwrap_or(0);
                let cached = self.entries.get(&key).map_or(0, |e| e.version);
                (version < fence || version < cached).then_some(Refusal::OlderVersion)
            }
        }
    }

    /// Deletes the key and voids its lease; a versioned DEL raises the key's fence.
    fn delete(&mut self, key: u32, version: Option<u64>) -> CacheReply {
        self.entries.remove(&key);
        self.leases.remove(&key);
        if let Some(version) = version {
            let fence = self.fences.entry(key).or_insert(0);
            *fence = (*fence).max(version);
        }
        self.events.emit(CacheEvent::Delete { key, fence: version });
        CacheReply::Deleted
    }
}
