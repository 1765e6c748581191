//! A data node: a versioned key-value store (each key keeps every value
//! written to it, oldest first) with a write-ahead log on the simulated disk,
//! in the role of a group's primary or of one of its replicas.
//!
//! The write path of a primary: append the entry to the log (synced per
//! `fsync`), then commit it per `mode`: make it visible and acknowledge
//! (async); make it visible, wait for one replica's receipt, acknowledge
//! (semi-sync after commit); wait for the receipt, make it visible,
//! acknowledge (semi-sync after sync); or wait until a majority of the group
//! has it on disk (sync-majority). A semi-sync primary that waits longer
//! than `semi_sync_timeout` goes on asynchronously, silently to the client,
//! until a replica catches up again, as MySQL's does.
//!
//! Reads see the committed prefix: on a primary its visible entries, on a
//! replica the entries its primary had made visible when it last said.
//! Replication itself (shipping and following) is in `replication.rs`.
//!
//! The role and term are written to a second log, always synced: a node must
//! never forget a promotion. With `fencing`, a node that hears of a newer term
//! (from a router, the supervisor, a replica or a write) steps down and
//! follows the primary of that term, cutting its log back to what it had made
//! visible; without fencing it notes the newer term and carries on.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use faultline_harness::system::HostResult;
use faultline_harness::{EventSink, HostContext};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

use super::knobs::{Mode, Store};
use super::protocol::{Ack, Change, Entry, NodeReply, NodeRequest, NodeStatus, Position, Role, StoreEvent, NODE_PORT};
use crate::kit::disk::{Fsync, Log};
use crate::kit::serve;

const WAL_PATH: &str = "/store/wal.log";
const META_PATH: &str = "/store/meta.log";

/// What the write-ahead log holds: entries, and the cuts a rewind made.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum WalRecord {
    Entry(Entry),
    Truncate { to: u64 },
}

/// The role and term, as last written.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Meta {
    term: u64,
    role: Role,
}

/// A node's memory: lost on a crash, rebuilt from its disk.
pub(super) struct State {
    pub role: Role,
    pub term: u64,
    pub log: Vec<Entry>,
    /// A primary's entries that reads may see (a prefix of the log).
    pub visible: u64,
    /// A replica's view of its primary's visible prefix.
    pub primary_visible: u64,
    /// Entries synced to disk.
    pub durable: u64,
    /// The store after `applied` entries (what reads see).
    kv: BTreeMap<u32, Vec<u64>>,
    applied: u64,
    /// A semi-sync primary waits for receipts (false after a timeout).
    pub semi_sync: bool,
    /// A primary's replicas, by name: what each acknowledged.
    pub progress: BTreeMap<String, Ack>,
    /// A replica: when it last knew it had everything its primary had.
    pub caught_up: Option<Instant>,
    /// The newest term this node has heard of (for `term.seen`, once each).
    pub seen: u64,
}

impl State {
    /// Entries reads may see.
    pub fn readable(&self) -> u64 {
        let length = self.log.len() as u64;
        match self.role {
            Role::Primary => self.visible.min(length),
            Role::Replica { .. } => self.primary_visible.min(length),
        }
    }

    pub fn is_primary(&self) -> bool {
        self.role == Role::Primary
    }

    pub fn following(&self) -> Option<String> {
        match &self.role {
            Role::Replica { following } => following.clone(),
            Role::Primary => None,
        }
    }

    /// The position of the entry at `index` (the start for 0).
    pub fn position(&self, group: u32, index: u64) -> Position {
        match index.checked_sub(1).and_then(|i| self.log.get(i as usize)) {
            Some(entry) => Position { group, term: entry.term, index: entry.index, id: entry.id },
            None => Position::start(group),
        }
    }

    /// Whether the readable log holds the entry `at` names.
    pub fn covers(&self, at: &Position) -> bool {
        at.index == 0
            || (at.index <= self.readable() && self.log.get(at.index as usize - 1).is_some_and(|e| e.id == at.id))
    }

    /// Brings the key-value view up to the readable prefix (rebuilding it
    /// if the prefix shrank).
    fn refresh(&mut self) {
        let target = self.readable();
        if target < self.applied {
            self.kv.clear();
            self.applied = 0;
        }
        while self.applied < target {
            match &self.log[self.applied as usize].change {
                Change::Write { key, value } => self.kv.entry(*key).or_default().push(*value),
                Change::Import { keys } => {
                    for (key, values) in keys {
                        self.kv.insert(*key, values.clone());
                    }
                }
            }
            self.applied += 1;
        }
        assert_eq!(self.applied, target, "the view covers exactly the readable prefix");
    }

    pub fn values(&self, key: u32) -> Vec<u64> {
        assert_eq!(self.applied, self.readable(), "the view is fresh when read");
        self.kv.get(&key).cloned().unwrap_or_default()
    }

    pub fn keys(&self) -> Vec<u32> {
        self.kv.keys().copied().collect()
    }
}

/// One data node's running software.
pub(super) struct Node {
    pub config: Arc<Store>,
    pub name: String,
    pub group: u32,
    pub events: EventSink<StoreEvent>,
    pub rng: RefCell<ChaCha8Rng>,
    pub state: RefCell<State>,
    /// Appends and cuts to the log, one at a time (also held while the role changes).
    pub wal: Mutex<Log>,
    meta: Mutex<Log>,
    /// Bumped on every change a waiter may care about: the log, the visible
    /// prefix, durability, the role, a replica's acknowledgement.
    pub tick: watch::Sender<u64>,
}

pub async fn serve(config: Arc<Store>, context: HostContext<StoreEvent>) -> HostResult {
    let group = config.group_of(&context.name).expect("a data node belongs to a group");
    let node = Rc::new(open(config, context, group).await?);
    tokio::task::spawn_local(super::replication::follow(Rc::clone(&node)));
    tokio::task::spawn_local(super::replication::ship_all(Rc::clone(&node)));
    if node.config.fsync == Fsync::Batch {
        tokio::task::spawn_local(sync_on_timer(Rc::clone(&node)));
    }
    serve::serve(NODE_PORT, move |request: NodeRequest| {
        let node = Rc::clone(&node);
        async move { Some(node.handle(request).await) }
    })
    .await?;
    Ok(())
}

/// Reads the node's disk back: its role and term, and its log.
async fn open(config: Arc<Store>, context: HostContext<StoreEvent>, group: u32) -> Result<Node, std::io::Error> {
    let (mut meta, metas) = Log::open::<Meta>(META_PATH).await?;
    let meta_now = match metas.last() {
        Some(meta) => meta.clone(),
        None => {
            let primary = config.primary_of(group);
            let role = if context.name == primary { Role::Primary } else { Role::Replica { following: Some(primary) } };
            let first = Meta { term: 1, role };
            meta.append(&first).await?;
            meta.sync().await?;
            first
        }
    };
    let (mut wal, records) = Log::open::<WalRecord>(WAL_PATH).await?;
    let mut log: Vec<Entry> = Vec::new();
    for record in records {
        match record {
            WalRecord::Entry(entry) => {
                assert_eq!(entry.index, log.len() as u64 + 1, "the log's entries are numbered in order");
                log.push(entry);
            }
            WalRecord::Truncate { to } => log.truncate(to as usize),
        }
    }
    let durable = if config.fsync == Fsync::Never {
        0
    } else {
        wal.sync().await?;
        log.len() as u64
    };
    let events = context.events;
    events.emit(StoreEvent::Recovered { term: meta_now.term, ids: log.iter().map(|e| e.id).collect() });
    match &meta_now.role {
        Role::Primary => events.emit(StoreEvent::BecamePrimary { term: meta_now.term }),
        Role::Replica { following } => {
            events.emit(StoreEvent::BecameReplica { term: meta_now.term, following: following.clone() });
        }
    }
    let length = log.len() as u64;
    let mut state = State {
        role: meta_now.role,
        term: meta_now.term,
        log,
        // A primary that restarts makes its whole log visible, as a database
        // commits what its log holds on crash recovery.
        visible: length,
        primary_visible: 0,
        durable,
        kv: BTreeMap::new(),
        applied: 0,
        semi_sync: true,
        progress: BTreeMap::new(),
        caught_up: None,
        seen: meta_now.term,
    };
    state.refresh();
    Ok(Node {
        config,
        name: context.name,
        group,
        events,
        rng: RefCell::new(context.rng),
        state: RefCell::new(state),
        wal: Mutex::new(wal),
        meta: Mutex::new(meta),
        tick: watch::channel(0).0,
    })
}

/// `fsync = "batch"`: syncs the log every `fsync_interval`.
async fn sync_on_timer(node: Rc<Node>) {
    loop {
        tokio::time::sleep(node.config.fsync_interval.0).await;
        let mut wal = node.wal.lock().await;
        if wal.sync().await.is_err() {
            continue;
        }
        let length = node.state.borrow().log.len() as u64;
        node.state.borrow_mut().durable = length;
        drop(wal);
        node.bump();
    }
}

impl Node {
    /// Wakes every waiter to look again.
    pub fn bump(&self) {
        self.tick.send_modify(|tick| *tick = tick.wrapping_add(1));
    }

    /// A replica heard from its primary: its log length and visible prefix.
    pub fn note_primary(&self, length: u64, visible: u64) {
        let mut state = self.state.borrow_mut();
        state.primary_visible = visible;
        if state.log.len() as u64 >= length {
            state.caught_up = Some(Instant::now());
        }
        state.refresh();
        drop(state);
        self.bump();
    }

    pub fn status(&self) -> NodeStatus {
        let state = self.state.borrow();
        let length = state.log.len() as u64;
        let lag_ms = match state.role {
            Role::Primary => None,
            Role::Replica { .. } => Some(state.caught_up.map_or(u64::MAX, |at| at.elapsed().as_millis() as u64)),
        };
        NodeStatus {
            role: state.role.clone(),
            term: state.term,
            applied: length,
            last: state.position(self.group, length),
            lag_ms,
        }
    }

    async fn handle(self: &Rc<Self>, request: NodeRequest) -> NodeReply {
        match request {
            NodeRequest::Write { key, value, term } => self.accept(Change::Write { key, value }, value, term).await,
            NodeRequest::Import { id, keys, term } => self.accept(Change::Import { keys }, id, term).await,
            NodeRequest::Read { key, after, wait_ms } => self.read(key, after, wait_ms).await,
            NodeRequest::Status { term, primary } => {
                self.observe_term(term, primary, "status").await;
                NodeReply::Status(self.status())
            }
            NodeRequest::Promote { term } => self.promote(term).await,
            NodeRequest::Follow { primary, term } => self.follow_order(primary, term).await,
            NodeRequest::Keys => NodeReply::KeyList { keys: self.state.borrow().keys() },
            NodeRequest::Dump { keys } => {
                let state = self.state.borrow();
                NodeReply::Dumped { keys: keys.into_iter().map(|key| (key, state.values(key))).collect() }
            }
        }
    }

    fn not_primary(&self) -> NodeReply {
        let state = self.state.borrow();
        NodeReply::NotPrimary { term: state.term, primary: state.following() }
    }

    /// A primary accepts a write (or an import): appends it, then commits it per mode.
    async fn accept(self: &Rc<Self>, change: Change, id: u64, term: Option<u64>) -> NodeReply {
        if self.config.fencing {
            if let Some(term) = term {
                let mine = self.state.borrow().term;
                if term > mine {
                    self.observe_term(term, None, "a write").await;
                } else if term < mine && self.state.borrow().is_primary() {
                    return NodeReply::StaleTerm { term: mine };
                }
            }
        }
        let mut wal = self.wal.lock().await;
        if !self.state.borrow().is_primary() {
            return self.not_primary();
        }
        let (term, index) = {
            let state = self.state.borrow();
            (state.term, state.log.len() as u64 + 1)
        };
        let entry = Entry { term, index, id, change };
        if let Err(error) = self.append(&mut wal, entry).await {
            return NodeReply::Refused(format!("log: {}", crate::kit::wire::describe(&error)));
        }
        // Reported under the lock: a newer term heard meanwhile is reported
        // after this entry, never before it.
        self.events.emit(StoreEvent::Append { term, index, id, from: None });
        drop(wal);
        self.bump();
        match self.commit(index, term).await {
            Ok(()) => NodeReply::Written { at: self.state.borrow().position(self.group, index) },
            Err(reason) => NodeReply::Refused(reason),
        }
    }

    /// Appends an entry to the disk log (synced per `fsync = "always"`) and to memory.
    pub async fn append(&self, wal: &mut Log, entry: Entry) -> std::io::Result<()> {
        assert_eq!(entry.index, self.state.borrow().log.len() as u64 + 1, "entries are appended in order");
        wal.append(&WalRecord::Entry(entry.clone())).await?;
        let always = self.config.fsync == Fsync::Always;
        if always {
            wal.sync().await?;
        }
        let mut state = self.state.borrow_mut();
        state.log.push(entry);
        if always {
            state.durable = state.log.len() as u64;
        }
        state.refresh();
        Ok(())
    }

    /// Cuts the log back to `to` entries (a rewind, or a step-down).
    pub async fn truncate(&self, wal: &mut Log, to: u64) -> std::io::Result<()> {
        let length = self.state.borrow().log.len() as u64;
        if to >= length {
            return Ok(());
        }
        wal.append(&WalRecord::Truncate { to }).await?;
        if self.config.fsync == Fsync::Always {
            wal.sync().await?;
        }
        let dropped: Vec<u64> = {
            let mut state = self.state.borrow_mut();
            let dropped = state.log.split_off(to as usize).into_iter().map(|e| e.id).collect();
            state.visible = state.visible.min(to);
            state.durable = state.durable.min(to);
            state.refresh();
            dropped
        };
        self.events.emit(StoreEvent::Truncate { to, dropped });
        self.bump();
        Ok(())
    }

    /// Commits entry `index` of `term` per the mode; an error if this node
    /// stopped being that term's primary meanwhile.
    async fn commit(&self, index: u64, term: u64) -> Result<(), String> {
        match self.config.mode {
            Mode::Async => self.make_visible(index),
            Mode::SemiSyncAfterCommit => {
                self.make_visible(index);
                self.wait_receipt(index, term).await?;
            }
            Mode::SemiSyncAfterSync => {
                self.wait_receipt(index, term).await?;
                self.make_visible(index);
            }
            Mode::SyncMajority => {
                self.wait_majority(index, term).await?;
                self.make_visible(index);
            }
        }
        Ok(())
    }

    fn make_visible(&self, index: u64) {
        let mut state = self.state.borrow_mut();
        if state.is_primary() {
            let length = state.log.len() as u64;
            state.visible = state.visible.max(index.min(length));
            state.refresh();
        }
        drop(state);
        self.bump();
    }

    fn still_primary_of(&self, term: u64) -> Result<(), String> {
        let state = self.state.borrow();
        if state.is_primary() && state.term == term {
            Ok(())
        } else {
            Err("no longer the primary".into())
        }
    }

    /// Semi-sync: waits for one replica's receipt of `index`, or until the
    /// timeout, after which the primary goes on asynchronously.
    async fn wait_receipt(&self, index: u64, term: u64) -> Result<(), String> {
        let deadline = Instant::now() + self.config.semi_sync_timeout.0;
        let mut tick = self.tick.subscribe();
        loop {
            self.still_primary_of(term)?;
            {
                let state = self.state.borrow();
                if !state.semi_sync || state.progress.values().any(|ack| ack.received >= index) {
                    return Ok(());
                }
            }
            if tokio::time::timeout_at(deadline, tick.changed()).await.is_err() {
                let mut state = self.state.borrow_mut();
                if state.semi_sync {
                    state.semi_sync = false;
                    drop(state);
                    self.events.emit(StoreEvent::SemiSyncOff { index });
                    self.bump();
                }
                return Ok(());
            }
        }
    }

    /// Sync-majority: waits until the primary and enough replicas to make a
    /// majority have `index` on disk. No timeout: the client's deadline ends it.
    async fn wait_majority(&self, index: u64, term: u64) -> Result<(), String> {
        let replicas_needed = self.config.majority() as usize - 1;
        let mut tick = self.tick.subscribe();
        loop {
            self.still_primary_of(term)?;
            {
                let state = self.state.borrow();
                let durable_replicas = state.progress.values().filter(|ack| ack.durable >= index).count();
                if state.durable >= index && durable_replicas >= replicas_needed {
                    return Ok(());
                }
            }
            if tick.changed().await.is_err() {
                return Err("the node is shutting down".into());
            }
        }
    }

    async fn read(&self, key: u32, after: Option<Position>, wait_ms: u64) -> NodeReply {
        if let Some(after) = after.filter(|a| a.group == self.group) {
            let mut tick = self.tick.subscribe();
            let deadline = Instant::now() + Duration::from_millis(wait_ms);
            while !self.state.borrow().covers(&after) {
                if tokio::time::timeout_at(deadline, tick.changed()).await.is_err() {
                    return NodeReply::Behind;
                }
            }
        }
        let state = self.state.borrow();
        NodeReply::Values { values: state.values(key), at: state.position(self.group, state.readable()) }
    }

    async fn persist_role(&self) {
        let meta = {
            let state = self.state.borrow();
            Meta { term: state.term, role: state.role.clone() }
        };
        let mut log = self.meta.lock().await;
        // A failed write of the role leaves the node's memory ahead of its
        // disk; a restart then comes back in the older role, which fencing
        // (or the supervisor) corrects.
        if log.append(&meta).await.is_ok() {
            let _ = log.sync().await;
        }
    }

    /// The supervisor makes this node the primary of `term`.
    async fn promote(&self, term: u64) -> NodeReply {
        let wal = self.wal.lock().await;
        {
            let mut state = self.state.borrow_mut();
            if term <= state.term {
                return NodeReply::Refused(format!("term {term} is not newer than {}", state.term));
            }
            state.role = Role::Primary;
            state.term = term;
            state.seen = state.seen.max(term);
            state.visible = state.log.len() as u64;
            state.semi_sync = true;
            state.progress.clear();
            state.refresh();
        }
        self.persist_role().await;
        drop(wal);
        self.events.emit(StoreEvent::BecamePrimary { term });
        self.bump();
        NodeReply::Done
    }

    /// The supervisor tells this node to follow `primary` in `term`.
    async fn follow_order(&self, primary: String, term: u64) -> NodeReply {
        let (mine, is_primary) = {
            let state = self.state.borrow();
            (state.term, state.is_primary())
        };
        if term < mine {
            return NodeReply::Refused(format!("term {term} is older than {mine}"));
        }
        if is_primary && !self.config.fencing {
            return NodeReply::Refused("a primary without fencing does not step down".into());
        }
        self.become_replica(term, Some(primary)).await;
        NodeReply::Done
    }

    /// Notes a term heard from `from`; with fencing, a newer one makes this
    /// node follow that term's primary. Under the log's lock, so that a write
    /// accepted after this is reported after it.
    pub async fn observe_term(&self, term: u64, primary: Option<String>, from: &str) {
        {
            let state = self.state.borrow();
            if term <= state.seen && term <= state.term {
                return;
            }
        }
        let mut wal = self.wal.lock().await;
        let (mine, newly_seen) = {
            let mut state = self.state.borrow_mut();
            let newly_seen = term > state.seen;
            state.seen = state.seen.max(term);
            (state.term, newly_seen)
        };
        if term <= mine {
            return;
        }
        if newly_seen {
            self.events.emit(StoreEvent::TermSeen { term: mine, seen: term, from: from.to_string() });
        }
        if self.config.fencing {
            let following = primary.filter(|p| *p != self.name).or_else(|| self.state.borrow().following());
            self.become_replica_locked(&mut wal, term, following).await;
        }
    }

    /// Becomes a replica of `following` in `term`.
    async fn become_replica(&self, term: u64, following: Option<String>) {
        let mut wal = self.wal.lock().await;
        self.become_replica_locked(&mut wal, term, following).await;
    }

    /// The same, holding the log's lock. A primary stepping down first cuts
    /// its log back to what it had made visible: the rest was never
    /// acknowledged nor read.
    async fn become_replica_locked(&self, wal: &mut Log, term: u64, following: Option<String>) {
        let (was_primary, visible) = {
            let state = self.state.borrow();
            (state.is_primary(), state.visible)
        };
        if was_primary {
            // A failed cut is found again by the rewind when it reconnects.
            let _ = self.truncate(wal, visible).await;
        }
        let changed = {
            let mut state = self.state.borrow_mut();
            let role = Role::Replica { following: following.clone() };
            let changed = state.role != role || state.term != term;
            if was_primary {
                state.primary_visible = state.visible;
            }
            state.role = role;
            state.term = state.term.max(term);
            state.seen = state.seen.max(term);
            state.refresh();
            changed
        };
        if changed {
            self.persist_role().await;
            self.events.emit(StoreEvent::BecameReplica { term, following });
            self.bump();
        }
    }
}
