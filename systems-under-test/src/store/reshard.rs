//! A timed reshard from n to n+1 groups, run by the first router.
//!
//! At `reshard_at` the router starts the extra group's hosts (registered
//! from the start as the system's pool, kept down until now), waits for its
//! primary to answer, stops writes and waits for those in flight, lists the
//! keys each old primary holds, copies each key whose group changes to its
//! new group's primary (one import entry per group, committed per the
//! mode), switches to n+1 groups (written to its own disk first, so a
//! restarted router routes the same way), and lets writes go again. It
//! reports how many keys moved and how long writes stopped.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::knobs::Store;
use super::protocol::{NodeReply, NodeRequest, Position, StoreEvent, IMPORT_ID_FLAG, NODE_PORT, PROBE_KEY};
use super::router::Router;
use crate::kit::disk::Log;
use crate::kit::request::ask_within;
use crate::kit::route::Router as KeyRouter;

const MAP_PATH: &str = "/router/map.log";
/// How long the reshard waits for the new group's primary to answer.
const NEW_GROUP_WAIT: Duration = Duration::from_secs(5);
/// Attempts of each step before the reshard gives up.
const STEP_ATTEMPTS: u32 = 5;
/// How long a step may take: a dump, an import waiting for its commit.
const STEP_TIMEOUT: Duration = Duration::from_secs(2);

/// The router's map on its disk: how many groups keys are routed over.
pub(super) async fn open_map(config: &Store) -> std::io::Result<(Log, u32)> {
    let (map, records) = Log::open::<u32>(MAP_PATH).await?;
    let active = records.last().copied().unwrap_or(config.shards);
    assert!((config.shards..=config.groups()).contains(&active), "the map names a configured group count");
    Ok((map, active))
}

pub(super) async fn run(router: Rc<Router>, mut map: Log) {
    let config = Arc::clone(&router.config);
    let (from, to) = (config.shards, config.shards + 1);
    if router.active.get() == to {
        return;
    }
    let at = config.reshard_at.expect("only a configured reshard runs").0;
    let now = turmoil::sim_elapsed().unwrap_or_default();
    tokio::time::sleep(at.saturating_sub(now)).await;
    router.events.emit(StoreEvent::ReshardStart { from, to });
    for host in config.nodes_of(to) {
        if let Err(error) = router.pool.start(&host) {
            return fail(&router, error);
        }
    }
    if !new_group_answers(&router, to).await {
        return fail(&router, format!("group {to}'s primary did not answer within {NEW_GROUP_WAIT:?}"));
    }
    let stopped = Instant::now();
    router.moving.send_replace(true);
    while router.writes_in_flight.get() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    match move_keys(&router, from, to).await {
        Ok((present, moved, floors)) => {
            let persisted = map.append(&to).await.and(map.sync().await);
            if let Err(error) = persisted {
                router.moving.send_replace(false);
                return fail(&router, format!("the map: {}", crate::kit::wire::describe(&error)));
            }
            router.import_floor.borrow_mut().extend(floors);
            router.active.set(to);
            router.moving.send_replace(false);
            let write_stop_ms = stopped.elapsed().as_millis() as u64;
            router.events.emit(StoreEvent::ReshardDone { keys: present, moved, write_stop_ms });
        }
        Err(reason) => {
            router.moving.send_replace(false);
            fail(&router, reason);
        }
    }
}

fn fail(router: &Router, reason: String) {
    router.events.emit(StoreEvent::ReshardFailed { reason });
}

async fn new_group_answers(router: &Router, group: u32) -> bool {
    let deadline = Instant::now() + NEW_GROUP_WAIT;
    while Instant::now() < deadline {
        if let Some((primary, term)) = router.primary(group) {
            let request = NodeRequest::Status { term, primary: Some(primary.clone()) };
            if let Ok(NodeReply::Status(status)) =
                ask_within(router.config.node_timeout.0, &primary, NODE_PORT, &request).await
            {
                if status.role == super::protocol::Role::Primary {
                    return true;
                }
            }
        }
        tokio::time::sleep(router.config.health_interval.0).await;
    }
    false
}

/// One request to a group's primary, tried a few times.
async fn ask_primary(router: &Router, group: u32, request: &NodeRequest) -> Result<NodeReply, String> {
    let mut last = String::new();
    for _ in 0..STEP_ATTEMPTS {
        if let Some((primary, _)) = router.primary(group) {
            match ask_within::<_, NodeReply>(STEP_TIMEOUT, &primary, NODE_PORT, request).await {
                Ok(NodeReply::Refused(reason)) => last = format!("{primary}: {reason}"),
                Ok(NodeReply::NotPrimary { .. }) => last = format!("{primary} is not the primary"),
                Ok(reply) => return Ok(reply),
                Err(error) => last = format!("{primary}: {error}"),
            }
        } else {
            last = format!("group {group} has no primary");
        }
        tokio::time::sleep(router.config.health_interval.0).await;
    }
    Err(last)
}

/// Copies every key whose group changes from n to n+1 groups; the keys
/// present (the probe's left out), how many moved, and each moved key's
/// import position.
async fn move_keys(router: &Router, from: u32, to: u32) -> Result<(u64, u64, Vec<(u32, Position)>), String> {
    let config = &router.config;
    let (old, new) = (KeyRouter::new(config.sharding, from), KeyRouter::new(config.sharding, to));
    let mut imports: BTreeMap<u32, Vec<(u32, Vec<u64>)>> = BTreeMap::new();
    let (mut present, mut moved) = (0u64, 0u64);
    for group in 1..=from {
        let NodeReply::KeyList { keys } = ask_primary(router, group, &NodeRequest::Keys).await? else {
            return Err(format!("group {group}'s primary did not list its keys"));
        };
        let keys: Vec<u32> = keys.into_iter().filter(|k| old.shard(u64::from(*k)) + 1 == group).collect();
        let leaving: Vec<u32> = keys.iter().copied().filter(|k| new.shard(u64::from(*k)) + 1 != group).collect();
        present += keys.iter().filter(|k| **k != PROBE_KEY).count() as u64;
        moved += leaving.iter().filter(|k| **k != PROBE_KEY).count() as u64;
        if leaving.is_empty() {
            continue;
        }
        let NodeReply::Dumped { keys: dumped } =
            ask_primary(router, group, &NodeRequest::Dump { keys: leaving }).await?
        else {
            return Err(format!("group {group}'s primary did not dump its keys"));
        };
        for (key, values) in dumped {
            imports.entry(new.shard(u64::from(key)) + 1).or_default().push((key, values));
        }
    }
    let mut floors = Vec::new();
    for (group, keys) in imports {
        let id = IMPORT_ID_FLAG | (u64::from(router.incarnation) << 40) | (u64::from(group) << 32);
        let moved_keys: Vec<u32> = keys.iter().map(|(k, _)| *k).collect();
        let term = router.config.fencing.then(|| router.primary(group).map_or(0, |(_, t)| t));
        let reply = ask_primary(router, group, &NodeRequest::Import { id, keys, term }).await?;
        let NodeReply::Written { at } = reply else {
            return Err(format!("group {group}'s primary answered an import with {reply:?}"));
        };
        floors.extend(moved_keys.into_iter().map(|k| (k, at)));
    }
    assert!(moved <= present, "only keys present move");
    Ok((present, moved, floors))
}
