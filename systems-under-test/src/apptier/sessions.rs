//! The session store: a key-value store with a TTL, as Redis holds sessions
//! for the chapter's stateless instances. A session expires `session_ttl`
//! after it was last read (every read refreshes it).
//!
//! The store keeps its sessions in memory and journals every change to an
//! append-only log on its simulated disk (kit::disk), synced as
//! `sessions_fsync` says: `always` before it answers, `batch` every
//! [`BATCH_INTERVAL`], `never` not at all. A crash loses what was not synced
//! (with `never`, every session); a restart loses nothing. At start it reads
//! the log back and keeps the sessions that have not expired. Expiry times
//! are simulated times since the run began, which a restart does not reset.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use faultline_harness::history::nanos;
use faultline_harness::system::HostResult;
use faultline_harness::{HostContext, Nanos};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::knobs::AppTier;
use super::protocol::{SessionReply, SessionRequest, TierEvent, SESSIONS_PORT};
use crate::kit::disk::{Fsync, Log};
use crate::kit::serve;

/// How often a `batch` store syncs its log.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(100);

const LOG_PATH: &str = "/data/sessions.log";

/// One journalled change.
#[derive(Debug, Serialize, Deserialize)]
enum Record {
    Put { id: u64, user: u32, expires: Nanos },
    Touch { id: u64, expires: Nanos },
}

/// A live session: its user and when it expires.
type Sessions = BTreeMap<u64, (u32, Nanos)>;

struct Store {
    sessions: RefCell<Sessions>,
    /// A tokio mutex: an append and its sync await, and the requests of
    /// several connections must not interleave inside one.
    log: Mutex<Log>,
    fsync: Fsync,
    ttl: Nanos,
}

fn now() -> Nanos {
    turmoil::sim_elapsed().map_or(0, nanos)
}

pub async fn serve(config: Arc<AppTier>, context: HostContext<TierEvent>) -> HostResult {
    let (log, records) = Log::open::<Record>(LOG_PATH).await?;
    let sessions = replay(records, now());
    let count = u32::try_from(sessions.len()).unwrap_or(u32::MAX);
    context.events.emit(TierEvent::SessionsRecover { sessions: count });
    let store = Rc::new(Store {
        sessions: RefCell::new(sessions),
        log: Mutex::new(log),
        fsync: config.sessions_fsync,
        ttl: config.session_ttl.as_nanos(),
    });
    if store.fsync == Fsync::Batch {
        tokio::task::spawn_local(sync_every(Rc::clone(&store), BATCH_INTERVAL));
    }
    serve::serve(SESSIONS_PORT, move |request: SessionRequest| {
        let store = Rc::clone(&store);
        async move { store.answer(request).await }
    })
    .await?;
    Ok(())
}

/// The sessions a log leaves that are still live at `now`.
fn replay(records: Vec<Record>, now: Nanos) -> Sessions {
    let mut sessions = Sessions::new();
    for record in records {
        match record {
            Record::Put { id, user, expires } => {
                sessions.insert(id, (user, expires));
            }
            Record::Touch { id, expires } => {
                if let Some(session) = sessions.get_mut(&id) {
                    session.1 = session.1.max(expires);
                }
            }
        }
    }
    sessions.retain(|_, (_, expires)| *expires > now);
    sessions
}

async fn sync_every(store: Rc<Store>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        // A failed sync leaves the records pending; the next one tries again.
        let _ = store.log.lock().await.sync().await;
    }
}

impl Store {
    /// Answers a request once its change is journalled (and synced, with
    /// `always`); `None`, no answer, when the disk fails.
    async fn answer(&self, request: SessionRequest) -> Option<SessionReply> {
        let now = now();
        let (record, reply) = match request {
            SessionRequest::Put { id, user } => {
                let expires = now + self.ttl;
                self.sessions.borrow_mut().insert(id, (user, expires));
                (Record::Put { id, user, expires }, SessionReply::Stored)
            }
            SessionRequest::Get { id } => {
                let mut sessions = self.sessions.borrow_mut();
                match sessions.get_mut(&id) {
                    Some((user, expires)) if *expires > now => {
                        *expires = now + self.ttl;
                        (Record::Touch { id, expires: *expires }, SessionReply::Found { user: *user })
                    }
                    Some(_) => {
                        sessions.remove(&id);
                        return Some(SessionReply::Missing);
                    }
                    None => return Some(SessionReply::Missing),
                }
            }
        };
        let mut log = self.log.lock().await;
        log.append(&record).await.ok()?;
        if self.fsync == Fsync::Always {
            log.sync().await.ok()?;
            assert_eq!(log.unsynced(), 0, "an always-synced store answers only durable changes");
        }
        Some(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_keeps_live_sessions_at_their_latest_expiry() {
        let records = vec![
            Record::Put { id: 1, user: 10, expires: 100 },
            Record::Put { id: 2, user: 20, expires: 100 },
            Record::Touch { id: 1, expires: 300 },
            // A touch of a session the log never created is ignored.
            Record::Touch { id: 3, expires: 300 },
        ];
        let sessions = replay(records, 200);
        assert_eq!(sessions.into_iter().collect::<Vec<_>>(), vec![(1, (10, 300))]);
    }
}
