//! The sink: where a job's side effect lands (a payment, an email, a row).
//! It applies each effect after `sink_time`, serving at most
//! `sink_capacity` at once (more are refused as overloaded, a transient
//! failure) and reports every effect it applies. With `idempotency` it
//! keeps each key's payload and result in a log on its disk, synced before
//! it answers: the same key again gets the stored result and no new
//! effect, the same key with another payload is refused.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use faultline_harness::system::HostResult;
use faultline_harness::{EventSink, HostContext};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::knobs::Queue;
use super::protocol::{Apply, QueueEvent, SinkReply, ID_INCARNATION_SHIFT, SINK_PORT};
use crate::kit::disk::Log;
use crate::kit::{draw, serve};

/// Where an idempotent sink keeps its results.
pub const LOG_PATH: &str = "/data/sink.log";

/// A key's stored result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    key: u64,
    payload: u64,
    effect: u64,
}

struct Sink {
    config: Arc<Queue>,
    events: EventSink<QueueEvent>,
    rng: RefCell<ChaCha8Rng>,
    in_progress: Cell<u32>,
    /// The next effect's id: this incarnation's, so none repeats.
    next_effect: Cell<u64>,
    /// Idempotency: results by key, and the log that keeps them.
    results: RefCell<BTreeMap<u64, Stored>>,
    log: Option<Mutex<Log>>,
}

/// Counts an effect in progress while it lives.
struct InProgress<'a>(&'a Cell<u32>);

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

pub async fn serve(config: Arc<Queue>, context: HostContext<QueueEvent>) -> HostResult {
    let mut results = BTreeMap::new();
    let log = if config.idempotency {
        let (log, records) = Log::open::<Stored>(LOG_PATH).await?;
        results.extend(records.into_iter().map(|stored| (stored.key, stored)));
        Some(Mutex::new(log))
    } else {
        None
    };
    let sink = Rc::new(Sink {
        config,
        events: context.events,
        rng: RefCell::new(context.rng),
        in_progress: Cell::new(0),
        next_effect: Cell::new(u64::from(context.incarnation) << ID_INCARNATION_SHIFT),
        results: RefCell::new(results),
        log,
    });
    serve::serve(SINK_PORT, move |apply: Apply| {
        let sink = Rc::clone(&sink);
        async move { Some(sink.apply(apply).await) }
    })
    .await?;
    Ok(())
}

impl Sink {
    async fn apply(&self, apply: Apply) -> SinkReply {
        let Apply { key, payload, job, token } = apply;
        if self.config.sink_capacity.is_some_and(|capacity| self.in_progress.get() >= capacity) {
            self.events.emit(QueueEvent::Overloaded { key, job });
            return SinkReply::Overloaded;
        }
        self.in_progress.set(self.in_progress.get() + 1);
        let _counted = InProgress(&self.in_progress);
        let pause = draw::duration(&mut self.rng.borrow_mut(), self.config.sink_time);
        tokio::time::sleep(pause).await;
        let Some(log) = &self.log else {
            let effect = self.new_effect();
            self.events.emit(QueueEvent::Applied { key, job, token, effect });
            return SinkReply::Applied { effect };
        };
        // Check and store under the log's lock: two runs of one key in
        // flight at once see each other.
        let mut log = log.lock().await;
        let stored = self.results.borrow().get(&key).copied();
        match stored {
            Some(stored) if stored.payload == payload => {
                self.events.emit(QueueEvent::Stored { key, job, token, effect: stored.effect });
                SinkReply::Stored { effect: stored.effect }
            }
            Some(_) => {
                self.events.emit(QueueEvent::Conflict { key, job });
                SinkReply::Conflict
            }
            None => {
                let stored = Stored { key, payload, effect: self.new_effect() };
                log.append(&stored).await.expect("the simulated disk does not fail");
                log.sync().await.expect("the simulated disk does not fail");
                self.results.borrow_mut().insert(key, stored);
                self.events.emit(QueueEvent::Applied { key, job, token, effect: stored.effect });
                SinkReply::Applied { effect: stored.effect }
            }
        }
    }

    fn new_effect(&self) -> u64 {
        let effect = self.next_effect.get();
        self.next_effect.set(effect + 1);
        effect
    }
}
