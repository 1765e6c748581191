//! The database: authoritative, every write makes a new version of its key.
//! Queries wait `db_latency` (they overlap: an expensive origin), then join a
//! FIFO queue `db_queue` deep that one worker serves at `db_capacity`; a
//! query that finds the queue full is refused at once. Rows live in memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use faultline_harness::system::HostResult;
use faultline_harness::{EventSink, HostContext};
use tokio::sync::{mpsc, oneshot};

use super::knobs::Cache;
use super::protocol::{CacheEvent, DbReply, DbRequest, DB_PORT};
use crate::kit::serve;

/// A query in the queue, and where its answer goes.
struct Job {
    request: DbRequest,
    reply: oneshot::Sender<u64>,
}

pub async fn serve(cache: Arc<Cache>, context: HostContext<CacheEvent>) -> HostResult {
    assert!(cache.db_capacity > 0.0, "the database serves at a positive rate");
    assert!(cache.db_queue >= 1, "the database queues at least one query");
    let (queue, jobs) = mpsc::channel::<Job>(cache.db_queue as usize);
    let service = Duration::from_secs_f64(1.0 / cache.db_capacity);
    tokio::task::spawn_local(work(jobs, service, context.events.clone()));
    let (events, latency) = (context.events, cache.db_latency.0);
    serve::serve(DB_PORT, move |request: DbRequest| {
        let (queue, events) = (queue.clone(), events.clone());
        async move {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            let key = request.key();
            let (reply, answer) = oneshot::channel();
            if queue.try_send(Job { request, reply }).is_err() {
                events.emit(CacheEvent::DbOverload { key });
                return Some(DbReply::Overloaded);
            }
            // A dropped job (the worker died with the host) answers nothing.
            answer.await.ok().map(DbReply::Version)
        }
    })
    .await?;
    Ok(())
}

/// The single worker: serves queued queries in order, `service` each.
async fn work(mut jobs: mpsc::Receiver<Job>, service: Duration, events: EventSink<CacheEvent>) {
    let mut versions: BTreeMap<u32, u64> = BTreeMap::new();
    while let Some(job) = jobs.recv().await {
        tokio::time::sleep(service).await;
        let version = match job.request {
            DbRequest::Read { key } => {
                let version = versions.get(&key).copied().unwrap_or(0);
                events.emit(CacheEvent::DbRead { key, version });
                version
            }
            DbRequest::Write { key } => {
                let previous = versions.get(&key).copied().unwrap_or(0);
                let version = previous + 1;
                versions.insert(key, version);
                assert!(version > previous, "every write makes a newer version");
                events.emit(CacheEvent::DbWrite { key, version });
                version
            }
        };
        let _ = job.reply.send(version);
    }
}
