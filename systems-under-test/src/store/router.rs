//! The routers, and the workload client's call to one.
//!
//! A router sends each write to the primary of the key's shard group (the
//! chapter's `DatabaseManager`), and each read where its read policy says:
//! replicas in turn, the primary, or (session) a replica whose log covers the
//! client's session token, waiting up to `session_wait`, else the primary.
//! Audits always go to the primary. Keys map to groups by `sharding`
//! (`hash % n`, the chapter's `ShardManager`, or consistent hashing).
//!
//! A router learns who is primary by polling every node every
//! `health_interval` ("who are you?", carrying its own view of the term and
//! the primary). With fencing it follows the claimant of the highest term and
//! sends that term with every write; without fencing it cannot tell two
//! claimants apart and keeps its current primary while that one still
//! claims the role (else the first claimant in its configuration).
//!
//! The first router also reshards at `reshard_at`: it starts the extra
//! group's hosts (the system's pool), stops writes, waits for those in
//! flight, copies the keys whose group changes to their new primaries,
//! switches to n+1 groups and lets writes go again.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use faultline_harness::system::{HostResult, Pool};
use faultline_harness::{ClientContext, EventSink, HostContext, Outcome};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::knobs::{Mode, ReadPolicy, Store};
use super::protocol::{
    NodeReply, NodeRequest, NodeStatus, Position, Role, RouterReply, RouterRequest, StoreEvent, StoreOp, StoreRes,
    NODE_PORT, PROBE_KEY, PROBE_VALUE_FLAG, ROUTER_PORT,
};
use crate::kit::pool::Caller;
use crate::kit::request::{ask_within, CallError};
use crate::kit::route::Router as KeyRouter;
use crate::kit::serve;
use crate::kit::wire::describe;

/// A workload client's (or the probe's) call: one request to its router.
pub async fn call(config: Arc<Store>, client: ClientContext<StoreEvent>, op: StoreOp) -> Outcome<StoreRes> {
    // The probe writes a key of its own, a fresh value each time.
    let op = match op {
        StoreOp::Write { key: PROBE_KEY, .. } => {
            StoreOp::Write { key: PROBE_KEY, value: PROBE_VALUE_FLAG | client.seq }
        }
        other => other,
    };
    let caller = crate::kit::pool::client_caller(&client.local, config.connections);
    match caller.ask::<_, RouterReply>(&config.router_for(client.index), ROUTER_PORT, &RouterRequest { op }).await {
        Ok(RouterReply::Ok(result)) => Outcome::Ok(result),
        Ok(RouterReply::Error(error)) => Outcome::Failed(error),
        Err(error) => Outcome::Failed(describe(&error)),
    }
}

/// What a router knows of one group.
#[derive(Clone, Debug, Default)]
struct GroupView {
    primary: Option<String>,
    term: u64,
    /// The nodes that answered the last poll, with what they said.
    nodes: BTreeMap<String, NodeStatus>,
}

pub(super) struct Router {
    pub config: Arc<Store>,
    pub name: String,
    pub incarnation: u32,
    pub events: EventSink<StoreEvent>,
    pub pool: Pool,
    /// Views of groups 1..=groups (index g - 1).
    views: RefCell<Vec<GroupView>>,
    /// Groups keys are routed over (the shards, one more after a reshard).
    pub active: Cell<u32>,
    rotation: Cell<usize>,
    /// True while a reshard moves keys: writes wait.
    pub moving: watch::Sender<bool>,
    pub writes_in_flight: Cell<u32>,
    /// Keys a reshard moved, with the import's position: a session read of
    /// one must see at least that.
    pub import_floor: RefCell<BTreeMap<u32, Position>>,
    /// How the router reads and writes on the nodes (`connections`).
    caller: Caller,
}

pub async fn serve(config: Arc<Store>, mut context: HostContext<StoreEvent>) -> HostResult {
    let caller = Caller::new(config.connections, &mut context.rng);
    let views = vec![GroupView::default(); config.groups() as usize];
    // Only a resharding store keeps a map on the router's disk.
    let (map, active) = match config.reshard_at {
        Some(_) => {
            let (map, active) = super::reshard::open_map(&config).await?;
            (Some(map), active)
        }
        None => (None, config.shards),
    };
    let router = Rc::new(Router {
        active: Cell::new(active),
        config,
        name: context.name,
        incarnation: context.incarnation,
        events: context.events,
        pool: context.pool,
        views: RefCell::new(views),
        rotation: Cell::new(0),
        moving: watch::channel(false).0,
        writes_in_flight: Cell::new(0),
        import_floor: RefCell::new(BTreeMap::new()),
        caller,
    });
    for group in 1..=router.config.groups() {
        // Until a poll says otherwise, the configured primary of the term 1.
        let primary = router.config.primary_of(group);
        router.views.borrow_mut()[group as usize - 1] =
            GroupView { primary: Some(primary), term: 1, ..Default::default() };
    }
    tokio::task::spawn_local(poll(Rc::clone(&router)));
    let first = router.config.router_hosts()[0] == router.name;
    if let (true, Some(map)) = (first, map) {
        tokio::task::spawn_local(super::reshard::run(Rc::clone(&router), map));
    }
    serve::serve(ROUTER_PORT, move |request: RouterRequest| {
        let router = Rc::clone(&router);
        async move {
            Some(match router.handle(request.op).await {
                Ok(result) => RouterReply::Ok(result),
                Err(error) => RouterReply::Error(error),
            })
        }
    })
    .await?;
    Ok(())
}

/// Polls every node of every group each `health_interval`.
async fn poll(router: Rc<Router>) {
    loop {
        for group in 1..=router.config.groups() {
            router.poll_group(group).await;
        }
        tokio::time::sleep(router.config.health_interval.0).await;
    }
}

impl Router {
    /// The group's primary and term as this router knows them.
    pub fn primary(&self, group: u32) -> Option<(String, u64)> {
        let view = self.view(group);
        view.primary.map(|p| (p, view.term))
    }

    fn view(&self, group: u32) -> GroupView {
        self.views.borrow()[group as usize - 1].clone()
    }

    async fn poll_group(&self, group: u32) {
        let (term, primary) = {
            let view = self.view(group);
            (view.term, view.primary)
        };
        let mut asks = JoinSet::new();
        for node in self.config.nodes_of(group) {
            let request = NodeRequest::Status { term, primary: primary.clone() };
            let timeout = self.config.node_timeout.0;
            asks.spawn_local(async move {
                let answer = ask_within::<_, NodeReply>(timeout, &node, NODE_PORT, &request).await;
                (node, answer)
            });
        }
        let mut answers = BTreeMap::new();
        while let Some(joined) = asks.join_next().await {
            if let Ok((node, Ok(NodeReply::Status(status)))) = joined {
                answers.insert(node, status);
            }
        }
        self.update(group, answers);
    }

    /// Takes a poll's answers in: the group's term and its primary.
    fn update(&self, group: u32, answers: BTreeMap<String, NodeStatus>) {
        let mut views = self.views.borrow_mut();
        let view = &mut views[group as usize - 1];
        let before = view.primary.clone();
        let claimants: Vec<(&String, &NodeStatus)> = answers.iter().filter(|(_, s)| s.role == Role::Primary).collect();
        if self.config.fencing {
            if let Some((node, status)) = claimants.iter().max_by_key(|(_, s)| s.term) {
                if status.term >= view.term {
                    view.primary = Some((*node).clone());
                }
            }
            view.term = answers.values().map(|s| s.term).chain([view.term]).max().unwrap_or(view.term);
        } else {
            let current_claims = view.primary.as_ref().is_some_and(|p| claimants.iter().any(|(n, _)| *n == p));
            if !current_claims {
                let order = self.config.nodes_of(group);
                let first = order.iter().find(|n| claimants.iter().any(|(c, _)| c == n));
                if let Some(first) = first {
                    view.primary = Some(first.clone());
                }
            }
            if let Some(status) = view.primary.as_ref().and_then(|p| answers.get(p)) {
                view.term = status.term;
            }
        }
        view.nodes = answers;
        if view.primary != before {
            let (primary, term) = (view.primary.clone(), view.term);
            drop(views);
            self.events.emit(StoreEvent::RouterPrimary { group, primary, term });
        }
    }

    fn group_of_key(&self, key: u32) -> u32 {
        KeyRouter::new(self.config.sharding, self.active.get()).shard(u64::from(key)) + 1
    }

    async fn handle(self: &Rc<Self>, op: StoreOp) -> Result<StoreRes, String> {
        match op {
            StoreOp::Write { key, value } => self.write(key, value).await,
            StoreOp::Audit { key } => {
                let group = self.group_of_key(key);
                self.read_primary(group, key).await
            }
            StoreOp::Read { key, session } => self.read(key, &session).await,
        }
    }

    /// How long a router waits for a primary to commit a write.
    fn write_timeout(&self) -> Duration {
        match self.config.mode {
            Mode::Async => self.config.node_timeout.0,
            Mode::SemiSyncAfterCommit | Mode::SemiSyncAfterSync => {
                self.config.node_timeout.0 + self.config.semi_sync_timeout.0
            }
            // No fallback: the client's deadline ends the wait.
            Mode::SyncMajority => Duration::from_secs(30),
        }
    }

    async fn write(self: &Rc<Self>, key: u32, value: u64) -> Result<StoreRes, String> {
        let mut moving = self.moving.subscribe();
        while *moving.borrow_and_update() {
            moving.changed().await.map_err(|_| "the router is stopping".to_string())?;
        }
        self.writes_in_flight.set(self.writes_in_flight.get() + 1);
        let result = self.write_to_primary(key, value).await;
        self.writes_in_flight.set(self.writes_in_flight.get() - 1);
        result
    }

    async fn write_to_primary(&self, key: u32, value: u64) -> Result<StoreRes, String> {
        let group = self.group_of_key(key);
        let mut target = self.view(group).primary;
        for _ in 0..2 {
            let Some(primary) = target.take() else { return Err(format!("shard {group} has no primary")) };
            let term = self.config.fencing.then(|| self.view(group).term);
            let request = NodeRequest::Write { key, value, term };
            match self.caller.ask_within::<_, NodeReply>(self.write_timeout(), &primary, NODE_PORT, &request).await {
                Ok(NodeReply::Written { at }) => return Ok(StoreRes::Written { at }),
                Ok(NodeReply::NotPrimary { primary: named, .. }) => {
                    // Refused before appending: safe to send to the node it names.
                    target = named.filter(|n| *n != primary);
                    if target.is_none() {
                        return Err(format!("{primary} is not the primary"));
                    }
                }
                Ok(NodeReply::StaleTerm { term }) => {
                    let mut views = self.views.borrow_mut();
                    let view = &mut views[group as usize - 1];
                    view.term = view.term.max(term);
                    return Err(format!("{primary} is in a newer term ({term})"));
                }
                Ok(NodeReply::Refused(reason)) => return Err(format!("{primary}: {reason}")),
                Ok(other) => return Err(format!("{primary} answered a write with {other:?}")),
                Err(error) => return Err(format!("{primary}: {error}")),
            }
        }
        Err("the primary moved twice".into())
    }

    async fn read_from(&self, host: &str, key: u32, after: Option<Position>) -> Result<Option<StoreRes>, CallError> {
        let wait_ms = if after.is_some() { self.config.session_wait.0.as_millis() as u64 } else { 0 };
        let timeout = self.config.node_timeout.0 + Duration::from_millis(wait_ms);
        let request = NodeRequest::Read { key, after, wait_ms };
        match self.caller.ask_within::<_, NodeReply>(timeout, host, NODE_PORT, &request).await? {
            NodeReply::Values { values, at } => Ok(Some(StoreRes::Values { values, at, host: host.to_string() })),
            NodeReply::Behind => Ok(None),
            other => Err(CallError::Io(format!("{host} answered a read with {other:?}"))),
        }
    }

    async fn read_primary(&self, group: u32, key: u32) -> Result<StoreRes, String> {
        let Some(primary) = self.view(group).primary else { return Err(format!("shard {group} has no primary")) };
        match self.read_from(&primary, key, None).await {
            Ok(Some(result)) => Ok(result),
            Ok(None) => Err(format!("{primary} was behind")),
            Err(error) => Err(format!("{primary}: {error}")),
        }
    }

    /// The replicas a read may go to, in turn: those that answered the last
    /// poll as replicas, within `max_lag` if set.
    fn next_replica(&self, group: u32) -> Option<String> {
        let view = self.view(group);
        let max_lag_ms = self.config.max_lag.map(|lag| lag.0.as_millis() as u64);
        let candidates: Vec<&String> = view
            .nodes
            .iter()
            .filter(|(node, status)| {
                Some(*node) != view.primary.as_ref()
                    && matches!(status.role, Role::Replica { .. })
                    && max_lag_ms.is_none_or(|max| status.lag_ms.is_some_and(|lag| lag <= max))
            })
            .map(|(node, _)| node)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let turn = self.rotation.get();
        self.rotation.set(turn.wrapping_add(1));
        Some(candidates[turn % candidates.len()].clone())
    }

    async fn read(&self, key: u32, session: &[Position]) -> Result<StoreRes, String> {
        let group = self.group_of_key(key);
        if self.config.read_policy == ReadPolicy::Primary {
            return self.read_primary(group, key).await;
        }
        let after = match self.config.read_policy {
            ReadPolicy::Session => Some(self.session_floor(group, key, session)),
            _ => None,
        };
        if let Some(replica) = self.next_replica(group) {
            if let Ok(Some(result)) = self.read_from(&replica, key, after).await {
                return Ok(result);
            }
        }
        // No replica up, behind, or failing: the primary.
        self.read_primary(group, key).await
    }

    /// The position a session read of `key` must see: the client's token
    /// for the group, or the import that moved the key there if newer.
    fn session_floor(&self, group: u32, key: u32, session: &[Position]) -> Position {
        let token = session.iter().find(|p| p.group == group).copied().unwrap_or(Position::start(group));
        match self.import_floor.borrow().get(&key) {
            Some(floor) if floor.group == group && floor.newer_than(&token) => *floor,
            _ => token,
        }
    }
}
