//! The supervisor (`failover = true`): health-checks every group's primary
//! and, when it has not answered for `failover_after`, promotes a replica in
//! a new term.
//!
//! Every `health_interval` it asks each node of each group "who are you?",
//! carrying the term and primary it knows (with fencing, that message alone
//! makes a stale primary step down). It tells replicas that follow someone
//! else (or an older term) to follow the current primary. On a failover it
//! elects by `election`: `any` promotes a random replica among those that
//! answered, at once; `most-up-to-date` waits until enough replicas answer
//! that one of them must hold every acknowledged write (all of them in
//! semi-sync, a majority's complement in sync-majority, one in async) and
//! promotes the one with the newest log. Without fencing it never touches a
//! node that still claims to be a primary: an old primary that returns keeps
//! its role. Terms are written to its disk before a promotion, so a
//! restarted supervisor never hands out a term twice.
//!
//! A group is supervised once its primary has answered once (the extra group
//! of a reshard starts down).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use faultline_harness::system::HostResult;
use faultline_harness::{EventSink, HostContext};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::knobs::{Election, Store};
use super::protocol::{NodeReply, NodeRequest, NodeStatus, Role, StoreEvent, NODE_PORT};
use crate::kit::disk::Log;
use crate::kit::request::ask_within;

const TERMS_PATH: &str = "/supervisor/terms.log";

/// A group's term and primary, as written before a promotion.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TermRecord {
    group: u32,
    term: u64,
    primary: String,
}

/// What the supervisor knows of one group.
#[derive(Clone, Debug)]
struct Watch {
    primary: String,
    term: u64,
    /// When the primary last answered as the primary of `term` (none: the
    /// group has not been seen yet).
    last_ok: Option<Instant>,
    /// A failover is under way (reported once).
    failing: bool,
    /// The answer count last reported by `failover.wait`.
    waiting: Option<u32>,
}

struct Supervisor {
    config: Arc<Store>,
    events: EventSink<StoreEvent>,
    rng: RefCell<ChaCha8Rng>,
    watches: RefCell<Vec<Watch>>,
    terms: Mutex<Log>,
}

pub async fn serve(config: Arc<Store>, context: HostContext<StoreEvent>) -> HostResult {
    let (terms, records) = Log::open::<TermRecord>(TERMS_PATH).await?;
    let start = Instant::now();
    let watches = (1..=config.groups())
        .map(|group| {
            let last = records.iter().rev().find(|r| r.group == group);
            Watch {
                primary: last.map_or_else(|| config.primary_of(group), |r| r.primary.clone()),
                term: last.map_or(1, |r| r.term),
                // The starting groups are up from the start; a reshard's extra group is not.
                last_ok: (group <= config.shards).then_some(start),
                failing: false,
                waiting: None,
            }
        })
        .collect();
    let supervisor = Rc::new(Supervisor {
        config,
        events: context.events,
        rng: RefCell::new(context.rng),
        watches: RefCell::new(watches),
        terms: Mutex::new(terms),
    });
    loop {
        for group in 1..=supervisor.config.groups() {
            supervisor.round(group).await;
        }
        tokio::time::sleep(supervisor.config.health_interval.0).await;
    }
}

impl Supervisor {
    fn watch(&self, group: u32) -> Watch {
        self.watches.borrow()[group as usize - 1].clone()
    }

    fn set_watch(&self, group: u32, watch: Watch) {
        self.watches.borrow_mut()[group as usize - 1] = watch;
    }

    async fn ask(&self, node: &str, request: &NodeRequest) -> Option<NodeReply> {
        ask_within::<_, NodeReply>(self.config.node_timeout.0, node, NODE_PORT, request).await.ok()
    }

    /// Asks every node of the group who it is, at once.
    async fn poll(&self, group: u32, watch: &Watch) -> BTreeMap<String, NodeStatus> {
        let mut asks = JoinSet::new();
        for node in self.config.nodes_of(group) {
            let request = NodeRequest::Status { term: watch.term, primary: Some(watch.primary.clone()) };
            let timeout = self.config.node_timeout.0;
            asks.spawn_local(async move {
                (node.clone(), ask_within::<_, NodeReply>(timeout, &node, NODE_PORT, &request).await)
            });
        }
        let mut answers = BTreeMap::new();
        while let Some(joined) = asks.join_next().await {
            if let Ok((node, Ok(NodeReply::Status(status)))) = joined {
                answers.insert(node, status);
            }
        }
        answers
    }

    async fn round(&self, group: u32) {
        let mut watch = self.watch(group);
        let answers = self.poll(group, &watch).await;
        let primary_answered =
            answers.get(&watch.primary).is_some_and(|s| s.role == Role::Primary && s.term == watch.term);
        if primary_answered {
            (watch.last_ok, watch.failing, watch.waiting) = (Some(Instant::now()), false, None);
            self.set_watch(group, watch.clone());
        }
        let Some(last_ok) = watch.last_ok else { return };
        self.reconfigure(&watch, &answers).await;
        if self.config.failover && last_ok.elapsed() >= self.config.failover_after.0 {
            self.failover(group, watch, &answers).await;
        }
    }

    /// Tells nodes that follow someone else, or an older term, to follow
    /// the current primary. Without fencing, a node that claims to be a
    /// primary is left alone.
    async fn reconfigure(&self, watch: &Watch, answers: &BTreeMap<String, NodeStatus>) {
        for (node, status) in answers {
            if *node == watch.primary {
                continue;
            }
            let stray = match &status.role {
                Role::Replica { following } => following.as_ref() != Some(&watch.primary) || status.term < watch.term,
                Role::Primary => self.config.fencing && status.term < watch.term,
            };
            if stray {
                let order = NodeRequest::Follow { primary: watch.primary.clone(), term: watch.term };
                let _ = self.ask(node, &order).await;
            }
        }
    }

    async fn failover(&self, group: u32, mut watch: Watch, answers: &BTreeMap<String, NodeStatus>) {
        let term = watch.term + 1;
        if !watch.failing {
            watch.failing = true;
            self.events.emit(StoreEvent::FailoverStart { group, term, suspect: watch.primary.clone() });
            self.set_watch(group, watch.clone());
        }
        let candidates: Vec<(&String, &NodeStatus)> = answers
            .iter()
            .filter(|(node, status)| **node != watch.primary && matches!(status.role, Role::Replica { .. }))
            .collect();
        let Some((chosen, applied)) = self.elect(group, &mut watch, &candidates) else {
            self.set_watch(group, watch);
            return;
        };
        // The term goes to disk before anyone hears of it.
        let record = TermRecord { group, term, primary: chosen.clone() };
        {
            let mut terms = self.terms.lock().await;
            if terms.append(&record).await.is_err() || terms.sync().await.is_err() {
                return;
            }
        }
        watch.term = term;
        if let Some(NodeReply::Done) = self.ask(&chosen, &NodeRequest::Promote { term }).await {
            (watch.primary, watch.last_ok, watch.failing, watch.waiting) =
                (chosen.clone(), Some(Instant::now()), false, None);
            self.events.emit(StoreEvent::FailoverDone { group, term, primary: chosen, applied });
        }
        // A refused or lost promotion burns the term; the next round tries a newer one.
        self.set_watch(group, watch);
    }

    /// The replica to promote, with its log length, or none yet.
    fn elect(&self, group: u32, watch: &mut Watch, candidates: &[(&String, &NodeStatus)]) -> Option<(String, u64)> {
        let needed = match self.config.election {
            Election::Any => 1,
            Election::MostUpToDate => self.config.election_quorum(),
        };
        let answered = candidates.len() as u32;
        if answered < needed {
            if watch.waiting != Some(answered) {
                watch.waiting = Some(answered);
                self.events.emit(StoreEvent::FailoverWait { group, answered, needed });
            }
            return None;
        }
        let (node, status) = match self.config.election {
            Election::Any => candidates[self.rng.borrow_mut().random_range(0..candidates.len())],
            Election::MostUpToDate => {
                // The newest log: the latest term, then the longest; ties go
                // to the first in name order (max_by_key keeps the last).
                *candidates.iter().rev().max_by_key(|(_, s)| (s.last.term, s.last.index))?
            }
        };
        Some(((*node).clone(), status.applied))
    }
}
