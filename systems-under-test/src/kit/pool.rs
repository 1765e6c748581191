//! Persistent connections: a pool of idle connections per destination
//! (`host:port`), each reused for the next request/response exchange, as a
//! real service's HTTP keep-alive or database driver pool does.
//!
//! The rules, each one a classic bug site:
//!
//! - **A connection that failed is never reused.** After a timeout, an I/O
//!   error or an unexpected EOF the connection is dropped, never returned: in
//!   turmoil a connection that lost a segment never recovers (there is no
//!   retransmission), and one whose request timed out may still deliver that
//!   request's late answer to the next request.
//! - **A stale idle connection is not handed out.** Before reuse the pool
//!   looks (without waiting) whether the peer closed it or sent something
//!   unasked: a crashed server's connections (turmoil's crash is a kill -9,
//!   its peers see the close at once) and ones the server closed for
//!   idleness are dropped. An idle connection older than [`IDLE_LIMIT`] is
//!   dropped too, since the kit's servers close theirs after
//!   [`super::serve::IDLE_TIMEOUT`]: a client that keeps one longer races
//!   the server's close.
//! - **A dead destination costs one connect at a time.** After a connect to
//!   a destination fails (refused, or cancelled by its caller's deadline),
//!   new connections to it wait out a backoff ([`RECONNECT`], from
//!   [`super::retry`]); requests in that time fail at once as refused, and
//!   when it ends one connect is tried (single flight) while the others keep
//!   failing at once. In turmoil 0.7.2 a connect that fails or is cancelled
//!   never frees its client socket (docs/performance.md), so without this a
//!   down destination leaks one ephemeral port per request.
//!
//! [`Connections`] is the knob that chooses between this and a fresh
//! connection per request ([`super::request::ask`]), and [`Caller`] the
//! helper every host and client calls through.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use faultline_harness::units::Dur;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::ReadBuf;
use tokio::time::Instant;
use turmoil::net::TcpStream;

use super::request::{ask, connect, CallError};
use super::retry::{Backoff, Jitter};
use super::wire::{describe, read_frame, write_frame};

/// How a host or client holds its connections to another host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Connections {
    /// A fresh connection per request, closed after its answer (the default:
    /// what every shipped scenario was written against).
    #[default]
    PerRequest,
    /// Idle connections kept per destination and reused ([`Pool`]).
    Pooled,
    /// A planted flaw, the textbook pool: idle connections are handed out
    /// without looking whether the peer closed them, however long they have
    /// idled. A crashed and restarted server's connections, and those a
    /// server closed for idleness, fail the next request sent on them
    /// (Apache HttpClient's stale connections, its "connection eviction
    /// policy"; the keep-alive race behind load balancers' 502s when a
    /// client keeps idle connections longer than the server does).
    PooledUnchecked,
}

/// The knob's documentation line, the same on every system.
pub const KNOB_ABOUT: &str = "per-request (a fresh TCP connection per request) | pooled (idle connections kept \
                              per destination and reused; dropped after any error or timeout; reconnects \
                              single-flight with backoff) | pooled-unchecked (a planted flaw: idle connections \
                              reused without a look at whether the peer closed them)";

/// Idle connections kept per destination; more are closed.
pub const IDLE_MAX: usize = 16;

/// An idle connection older than this is closed rather than reused: well
/// under the kit's servers' 30 s idle timeout, so the pool never sends a
/// request on a connection the server is closing.
pub const IDLE_LIMIT: Duration = Duration::from_secs(20);

/// The wait before a new connection to a destination whose last connect
/// failed: 10 ms doubling to 1 s, with equal jitter.
pub const RECONNECT: Backoff = Backoff {
    base: Dur(Duration::from_millis(10)),
    factor: 2.0,
    cap: Dur(Duration::from_secs(1)),
    jitter: Jitter::Equal,
};

/// What a pool did, for tests and measurements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connects attempted (each takes a client port in turmoil).
    pub connects: u64,
    /// Connects that failed or were cancelled.
    pub connect_failures: u64,
    /// Exchanges on a reused idle connection.
    pub reused: u64,
    /// Connections closed instead of reused: failed, timed out, stale, too old.
    pub discarded: u64,
    /// Requests failed at once because their destination was backing off.
    pub backed_off: u64,
}

/// One destination's idle connections and reconnect state.
#[derive(Default)]
struct Destination {
    /// Idle connections, the most recently used last, with when they went idle.
    idle: Vec<(TcpStream, Instant)>,
    /// Connects failed in a row.
    failures: u32,
    /// The last backoff delay (for decorrelated jitter).
    delay: Duration,
    /// No new connect before this, after a failure.
    retry_at: Option<Instant>,
    /// A connect after failures is in flight (the single flight).
    probing: bool,
}

/// Idle connections per destination, on one host (or one client).
pub struct Pool {
    backoff: Backoff,
    /// Look at an idle connection before reuse, and age it out (false is the
    /// planted flaw, [`Connections::PooledUnchecked`]).
    checked: bool,
    rng: RefCell<ChaCha8Rng>,
    destinations: RefCell<BTreeMap<(String, u16), Destination>>,
    stats: Cell<PoolStats>,
}

impl Pool {
    /// A pool whose reconnect backoff draws its jitter from `rng` (a host's
    /// own stream).
    pub fn new(rng: ChaCha8Rng) -> Pool {
        Pool::with_backoff(RECONNECT, rng)
    }

    pub fn with_backoff(backoff: Backoff, rng: ChaCha8Rng) -> Pool {
        Pool {
            backoff,
            checked: true,
            rng: RefCell::new(rng),
            destinations: RefCell::new(BTreeMap::new()),
            stats: Cell::new(PoolStats::default()),
        }
    }

    /// The planted flaw's pool: idle connections handed out unlooked-at.
    pub fn unchecked(mut self) -> Pool {
        self.checked = false;
        self
    }

    pub fn stats(&self) -> PoolStats {
        self.stats.get()
    }

    fn count(&self, change: impl FnOnce(&mut PoolStats)) {
        let mut stats = self.stats.get();
        change(&mut stats);
        self.stats.set(stats);
    }

    /// Idle connections kept for `host:port` now.
    pub fn idle(&self, host: &str, port: u16) -> usize {
        self.destinations.borrow().get(&(host.to_string(), port)).map_or(0, |d| d.idle.len())
    }

    /// One request over an idle connection to `host:port` (or a new one) and
    /// its answer. The connection goes back to the pool only if the answer
    /// came; if this future is dropped (a caller's deadline), so is the
    /// connection.
    pub async fn ask<Q: Serialize, A: DeserializeOwned>(&self, host: &str, port: u16, request: &Q) -> io::Result<A> {
        let mut stream = self.checkout(host, port).await?;
        let answer = async {
            write_frame(&mut stream, request).await?;
            read_frame(&mut stream)
                .await?
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, format!("{host} closed the connection")))
        };
        let mut discard = Discard { pool: self, armed: true };
        let answer = answer.await?;
        discard.armed = false;
        self.checkin(host, port, stream);
        Ok(answer)
    }

    /// [`Pool::ask`] within `deadline` (connect included).
    pub async fn ask_within<Q: Serialize, A: DeserializeOwned>(
        &self,
        deadline: Duration,
        host: &str,
        port: u16,
        request: &Q,
    ) -> Result<A, CallError> {
        match tokio::time::timeout(deadline, self.ask(host, port, request)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(CallError::Io(describe(&error))),
            Err(_) => Err(CallError::Timeout(deadline)),
        }
    }

    /// A live idle connection to `host:port`, or a new one.
    async fn checkout(&self, host: &str, port: u16) -> io::Result<TcpStream> {
        let key = (host.to_string(), port);
        let now = Instant::now();
        {
            let mut destinations = self.destinations.borrow_mut();
            let destination = destinations.entry(key.clone()).or_default();
            while let Some((mut stream, since)) = destination.idle.pop() {
                let usable =
                    !self.checked || (now.duration_since(since) <= IDLE_LIMIT && !closed_or_unasked(&mut stream));
                if usable {
                    self.count(|s| s.reused += 1);
                    return Ok(stream);
                }
                self.count(|s| s.discarded += 1);
            }
            if let Some(retry_at) = destination.retry_at {
                if now < retry_at || destination.probing {
                    self.count(|s| s.backed_off += 1);
                    return Err(io::Error::new(io::ErrorKind::ConnectionRefused, format!("{host} is backing off")));
                }
                destination.probing = true;
            }
        }
        self.count(|s| s.connects += 1);
        let mut attempt = Attempt { pool: self, key, armed: true };
        let stream = connect(host, port).await?;
        attempt.armed = false;
        attempt.record(true);
        Ok(stream)
    }

    fn checkin(&self, host: &str, port: u16, stream: TcpStream) {
        let mut destinations = self.destinations.borrow_mut();
        let destination = destinations.entry((host.to_string(), port)).or_default();
        if destination.idle.len() < IDLE_MAX {
            destination.idle.push((stream, Instant::now()));
        } else {
            self.count(|s| s.discarded += 1);
        }
    }
}

/// A connect in flight: when dropped unfinished (failed or cancelled) it
/// records the failure and starts the destination's backoff.
struct Attempt<'a> {
    pool: &'a Pool,
    key: (String, u16),
    armed: bool,
}

impl Attempt<'_> {
    fn record(&self, connected: bool) {
        let mut destinations = self.pool.destinations.borrow_mut();
        let destination = destinations.entry(self.key.clone()).or_default();
        destination.probing = false;
        if connected {
            destination.failures = 0;
            destination.retry_at = None;
            return;
        }
        self.pool.count(|s| s.connect_failures += 1);
        destination.failures = destination.failures.saturating_add(1);
        let previous = if destination.failures == 1 { self.pool.backoff.base.0 } else { destination.delay };
        let delay = self.pool.backoff.delay(destination.failures, previous, &mut self.pool.rng.borrow_mut());
        destination.delay = delay;
        destination.retry_at = Some(Instant::now() + delay);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.record(false);
        }
    }
}

/// Counts a connection dropped before its answer (an error, or the caller's
/// deadline dropping the exchange).
struct Discard<'a> {
    pool: &'a Pool,
    armed: bool,
}

impl Drop for Discard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.pool.count(|s| s.discarded += 1);
        }
    }
}

/// Whether an idle connection can no longer carry a request: the peer closed
/// it (EOF), reset it, or sent bytes nobody asked for. Looks without waiting.
fn closed_or_unasked(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    let mut buffer = ReadBuf::new(&mut byte);
    let mut context = Context::from_waker(Waker::noop());
    !matches!(stream.poll_peek(&mut context, &mut buffer), Poll::Pending)
}

/// How one host (or client) calls others, by the `connections` knob: a fresh
/// connection per request, or through its own [`Pool`].
pub struct Caller {
    pool: Option<Pool>,
}

impl Caller {
    /// A caller for `connections`. A pool's backoff jitter gets a stream of
    /// its own seeded from `rng` (a host's stream), drawn only when pooled, so
    /// a per-request host's draws are what they were before pooling existed.
    pub fn new(connections: Connections, rng: &mut ChaCha8Rng) -> Caller {
        let pool = |rng: &mut ChaCha8Rng| Pool::new(ChaCha8Rng::seed_from_u64(rng.random()));
        Caller {
            pool: match connections {
                Connections::PerRequest => None,
                Connections::Pooled => Some(pool(rng)),
                Connections::PooledUnchecked => Some(pool(rng).unchecked()),
            },
        }
    }

    /// The pool, when pooled.
    pub fn pool(&self) -> Option<&Pool> {
        self.pool.as_ref()
    }

    /// One request to `host:port` and its answer, bounded by the caller
    /// (a workload call, which the harness's deadline drops).
    pub async fn ask<Q: Serialize, A: DeserializeOwned>(&self, host: &str, port: u16, request: &Q) -> io::Result<A> {
        match &self.pool {
            Some(pool) => pool.ask(host, port, request).await,
            None => ask(host, port, request).await,
        }
    }

    /// One request within `deadline`.
    pub async fn ask_within<Q: Serialize, A: DeserializeOwned>(
        &self,
        deadline: Duration,
        host: &str,
        port: u16,
        request: &Q,
    ) -> Result<A, CallError> {
        match &self.pool {
            Some(pool) => pool.ask_within(deadline, host, port, request).await,
            None => super::request::ask_within(deadline, host, port, request).await,
        }
    }
}

/// A workload client's [`Caller`], kept in its host's local slot between
/// calls. Clients have no seeded stream in `call`, so a client's pool
/// backs off without jitter (its delays are the backoff's ceilings).
pub fn client_caller(local: &faultline_harness::ClientLocal, connections: Connections) -> std::rc::Rc<Caller> {
    local.get_or_insert_with(|| {
        let fixed = || Pool::with_backoff(Backoff { jitter: Jitter::None, ..RECONNECT }, ChaCha8Rng::seed_from_u64(0));
        Caller {
            pool: match connections {
                Connections::PerRequest => None,
                Connections::Pooled => Some(fixed()),
                Connections::PooledUnchecked => Some(fixed().unchecked()),
            },
        }
    })
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
