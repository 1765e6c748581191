//! Replication over long-lived connections: a primary ships its log to each
//! replica that subscribes, and a replica follows its primary.
//!
//! In turmoil a TCP connection that lost a segment never recovers (there is
//! no retransmission), and a partition gives neither side an error: the
//! connection just goes silent. So both sides time silence out: the primary
//! sends a heartbeat when it has nothing to ship, the replica acknowledges
//! every frame, and either side that hears nothing for
//! `replication_timeout` drops the connection; the replica then reconnects
//! with backoff. (`replication_timeout = "off"` is the planted flaw: a
//! silent connection is kept forever, and the replica never converges.)
//!
//! On subscribing, a replica that rewinds sends checkpoints of its log (its
//! last entry, then exponentially further back); the primary answers with
//! the longest prefix they share and the replica cuts its log back to it.
//! A replica that resumes by position asks for the entries after its own
//! length, whatever they are.

use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use turmoil::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use turmoil::net::{TcpListener, TcpStream};

use super::knobs::{Rejoin, Timeout};
use super::node::{Node, State};
use super::protocol::{Ack, Position, Shipment, StoreEvent, Subscribe, REPLICATION_PORT};
use crate::kit::retry::{Backoff, Jitter};
use crate::kit::wire::{read_frame, write_frame};
use faultline_harness::units::Dur;

/// Entries in one shipment at most.
const SHIPMENT_ENTRIES_MAX: usize = 64;

/// How often a primary with nothing to ship says it is alive.
fn heartbeat_every(node: &Node) -> Duration {
    match node.config.replication_timeout {
        Timeout::After(timeout) => timeout.0 / 4,
        Timeout::Off => Duration::from_millis(250),
    }
}

/// The silence after which a side drops the connection (`None`: never).
fn silence_limit(node: &Node) -> Option<Duration> {
    match node.config.replication_timeout {
        Timeout::After(timeout) => Some(timeout.0),
        Timeout::Off => None,
    }
}

/// Accepts replication connections and ships to each in its own task.
pub async fn ship_all(node: Rc<Node>) {
    let Ok(listener) = TcpListener::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), REPLICATION_PORT)).await else {
        return;
    };
    while let Ok((stream, _)) = listener.accept().await {
        tokio::task::spawn_local(ship(Rc::clone(&node), stream));
    }
}

/// Where the stream to a subscriber starts: after the longest prefix its
/// checkpoints share with this log, or (resuming by position) after its length.
fn start_of(state: &State, subscribe: &Subscribe) -> u64 {
    if subscribe.checkpoints.is_empty() {
        return subscribe.applied;
    }
    let length = state.log.len() as u64;
    subscribe
        .checkpoints
        .iter()
        .filter(|c| c.index <= length)
        .filter(|c| c.index == 0 || state.log[c.index as usize - 1].id == c.id)
        .map(|c| c.index)
        .max()
        .unwrap_or(0)
}

/// One replica's stream: entries as they are appended, heartbeats when
/// there are none, until the connection breaks or goes silent, or this node
/// stops being the primary of the term it started in.
async fn ship(node: Rc<Node>, stream: TcpStream) {
    let (mut reader, mut writer) = stream.into_split();
    let first = tokio::time::timeout(node.config.node_timeout.0, read_frame::<_, Subscribe>(&mut reader)).await;
    let Ok(Ok(Some(subscribe))) = first else { return };
    if node.config.fencing {
        node.observe_term(subscribe.term, None, &subscribe.replica).await;
    }
    let start = {
        let state = node.state.borrow();
        state.is_primary().then(|| (state.term, start_of(&state, &subscribe)))
    };
    let Some((term, from)) = start else {
        let (term, primary) = (node.state.borrow().term, node.state.borrow().following());
        let _ = write_frame(&mut writer, &Shipment::Refused { term, primary }).await;
        return;
    };
    if write_frame(&mut writer, &Shipment::Start { term, from }).await.is_err() {
        return;
    }
    let acks = tokio::task::spawn_local(read_acks(Rc::clone(&node), reader, subscribe.replica));
    stream_to(&node, &mut writer, term, from, &acks).await;
    acks.abort();
}

async fn stream_to(node: &Node, writer: &mut OwnedWriteHalf, term: u64, from: u64, acks: &tokio::task::JoinHandle<()>) {
    let heartbeat = heartbeat_every(node);
    let mut tick = node.tick.subscribe();
    let (mut sent, mut sent_visible, mut last_sent) = (from, u64::MAX, Instant::now());
    while !acks.is_finished() {
        let (length, visible, entries) = {
            let state = node.state.borrow();
            if !state.is_primary() || state.term != term {
                return;
            }
            let length = state.log.len() as u64;
            let end = length.min(sent + SHIPMENT_ENTRIES_MAX as u64);
            let entries = if end > sent { state.log[sent as usize..end as usize].to_vec() } else { Vec::new() };
            (length, state.visible, entries)
        };
        let shipment = if !entries.is_empty() {
            sent += entries.len() as u64;
            Some(Shipment::Entries { term, entries, length, visible })
        } else if visible != sent_visible || last_sent.elapsed() >= heartbeat {
            Some(Shipment::Heartbeat { term, length, visible })
        } else {
            None
        };
        if let Some(shipment) = shipment {
            if write_frame(writer, &shipment).await.is_err() {
                return;
            }
            (sent_visible, last_sent) = (visible, Instant::now());
            continue;
        }
        tokio::select! {
            biased;
            changed = tick.changed() => if changed.is_err() { return },
            () = tokio::time::sleep_until(last_sent + heartbeat) => {}
        }
    }
}

/// Reads a replica's acknowledgements into the primary's progress table
/// until the connection breaks or goes silent.
async fn read_acks(node: Rc<Node>, mut reader: OwnedReadHalf, replica: String) {
    loop {
        let frame = match silence_limit(&node) {
            Some(limit) => match tokio::time::timeout(limit, read_frame::<_, Ack>(&mut reader)).await {
                Ok(frame) => frame,
                Err(_) => return,
            },
            None => read_frame::<_, Ack>(&mut reader).await,
        };
        let Ok(Some(ack)) = frame else { return };
        let back_on = {
            let mut state = node.state.borrow_mut();
            state.progress.insert(replica.clone(), ack);
            let caught_up = ack.received >= state.log.len() as u64;
            let back_on = state.is_primary() && !state.semi_sync && caught_up;
            if back_on {
                state.semi_sync = true;
            }
            back_on
        };
        if back_on {
            node.events.emit(StoreEvent::SemiSyncOn { index: ack.received });
        }
        node.bump();
    }
}

/// How a replication session ended.
enum Ended {
    /// Could not connect or subscribe: back off before the next try.
    Failed,
    /// A working stream broke or went silent: reconnect soon.
    Lost,
    /// This node's primary or role changed.
    Moved,
}

/// A replica's loop: follow whichever primary this node is told to follow.
pub async fn follow(node: Rc<Node>) {
    let backoff = Backoff { base: Dur::from_millis(50), factor: 2.0, cap: Dur::from_secs(1), jitter: Jitter::Full };
    let mut tick = node.tick.subscribe();
    let mut failures = 0u32;
    loop {
        let Some(primary) = node.state.borrow().following() else {
            if tick.changed().await.is_err() {
                return;
            }
            continue;
        };
        match session(&node, &primary).await {
            Ended::Failed => {
                failures += 1;
                let delay = backoff.delay(failures, backoff.base.0, &mut node.rng.borrow_mut());
                tokio::time::sleep(delay.max(Duration::from_millis(1))).await;
            }
            Ended::Lost => {
                failures = 0;
                tokio::time::sleep(backoff.base.0).await;
            }
            Ended::Moved => failures = 0,
        }
    }
}

/// Checkpoints of this log for a subscription: the last entry, then
/// entries 1, 2, 4, 8... back from it, and the empty log.
fn checkpoints(node: &Node) -> Vec<Position> {
    let state = node.state.borrow();
    let length = state.log.len() as u64;
    let mut points = Vec::new();
    let mut back = 0u64;
    while back < length {
        points.push(state.position(node.group, length - back));
        back = if back == 0 { 1 } else { back * 2 };
    }
    points.push(Position::start(node.group));
    points
}

/// One connection to `primary`: subscribe, rewind if asked, then apply
/// what it ships until something ends the session.
async fn session(node: &Rc<Node>, primary: &str) -> Ended {
    let connect = crate::kit::request::connect(primary, REPLICATION_PORT);
    let Ok(Ok(stream)) = tokio::time::timeout(node.config.node_timeout.0, connect).await else {
        return Ended::Failed;
    };
    let (mut reader, mut writer) = stream.into_split();
    let subscribe = Subscribe {
        replica: node.name.clone(),
        term: node.state.borrow().term,
        applied: node.state.borrow().log.len() as u64,
        checkpoints: if node.config.rejoin == Rejoin::Rewind { checkpoints(node) } else { Vec::new() },
    };
    if write_frame(&mut writer, &subscribe).await.is_err() {
        return Ended::Failed;
    }
    let first = tokio::time::timeout(node.config.node_timeout.0, read_frame::<_, Shipment>(&mut reader)).await;
    let from = match first {
        Ok(Ok(Some(Shipment::Start { term, from }))) => match start(node, primary, term, from).await {
            Some(from) => from,
            None => return Ended::Failed,
        },
        Ok(Ok(Some(Shipment::Refused { term, primary: named }))) => {
            node.observe_term(term, named, primary).await;
            return Ended::Failed;
        }
        _ => return Ended::Failed,
    };
    node.events.emit(StoreEvent::Connected { primary: primary.to_string(), from });
    let (frames, inbox) = mpsc::channel(16);
    let forward = tokio::task::spawn_local(forward_frames(reader, frames));
    let ended = apply_stream(node, primary, inbox, &mut writer).await;
    forward.abort();
    ended
}

/// Accepts a stream's start: checks its term (with fencing, an older term's
/// primary is refused), adopts a newer one, and rewinds to `from`.
async fn start(node: &Rc<Node>, primary: &str, term: u64, from: u64) -> Option<u64> {
    let mine = node.state.borrow().term;
    if node.config.fencing && term < mine {
        return None;
    }
    let mut wal = node.wal.lock().await;
    if node.state.borrow().following().as_deref() != Some(primary) {
        return None;
    }
    node.state.borrow_mut().term = mine.max(term);
    if node.config.rejoin == Rejoin::Rewind {
        node.truncate(&mut wal, from).await.ok()?;
    }
    Some(from)
}

/// Reads frames off the connection into a channel, so the session can wait
/// on frames and on role changes at once without cutting a frame in half.
async fn forward_frames(mut reader: OwnedReadHalf, frames: mpsc::Sender<Option<Shipment>>) {
    loop {
        let frame = read_frame::<_, Shipment>(&mut reader).await.ok().flatten();
        let end = frame.is_none();
        if frames.send(frame).await.is_err() || end {
            return;
        }
    }
}

async fn apply_stream(
    node: &Rc<Node>,
    primary: &str,
    mut inbox: mpsc::Receiver<Option<Shipment>>,
    writer: &mut OwnedWriteHalf,
) -> Ended {
    let mut tick = node.tick.subscribe();
    let limit = silence_limit(node);
    let mut heard = Instant::now();
    loop {
        let silence = async {
            match limit {
                Some(limit) => tokio::time::sleep_until(heard + limit).await,
                None => std::future::pending().await,
            }
        };
        let shipment = tokio::select! {
            biased;
            frame = inbox.recv() => match frame.flatten() {
                Some(shipment) => shipment,
                None => return Ended::Lost,
            },
            changed = tick.changed() => {
                if changed.is_err() || node.state.borrow().following().as_deref() != Some(primary) {
                    return Ended::Moved;
                }
                continue;
            }
            () = silence => {
                node.events.emit(StoreEvent::Silence { primary: primary.to_string() });
                return Ended::Lost;
            }
        };
        heard = Instant::now();
        if let Err(ended) = apply(node, primary, shipment).await {
            return ended;
        }
        let ack = {
            let state = node.state.borrow();
            Ack { received: state.log.len() as u64, durable: state.durable }
        };
        if write_frame(writer, &ack).await.is_err() {
            return Ended::Lost;
        }
    }
}

/// Applies one shipment: entries appended in order, the primary's visible
/// prefix and whether this replica has caught up.
async fn apply(node: &Rc<Node>, primary: &str, shipment: Shipment) -> Result<(), Ended> {
    let (term, entries, length, visible) = match shipment {
        Shipment::Entries { term, entries, length, visible } => (term, entries, length, visible),
        Shipment::Heartbeat { term, length, visible } => (term, Vec::new(), length, visible),
        Shipment::Start { .. } | Shipment::Refused { .. } => return Err(Ended::Lost),
    };
    if node.config.fencing && term < node.state.borrow().term {
        return Err(Ended::Failed);
    }
    let mut wal = node.wal.lock().await;
    if node.state.borrow().following().as_deref() != Some(primary) {
        return Err(Ended::Moved);
    }
    for entry in entries {
        if entry.index != node.state.borrow().log.len() as u64 + 1 {
            return Err(Ended::Lost);
        }
        let (entry_term, index, id) = (entry.term, entry.index, entry.id);
        if node.append(&mut wal, entry).await.is_err() {
            return Err(Ended::Lost);
        }
        node.events.emit(StoreEvent::Append { term: entry_term, index, id, from: Some(primary.to_string()) });
    }
    drop(wal);
    node.note_primary(length, visible);
    Ok(())
}
