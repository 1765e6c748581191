//! The load balancer: admits a client's request through its rate limiter
//! (or answers 429), picks an instance in rotation (round robin or least
//! connections; by the session's affinity when sticky), forwards the request
//! within `attempt_timeout` and, when the instance does not answer, retries
//! on another one up to `retries` times.
//!
//! An instance is in rotation while it is a member (the autoscaler says
//! which instances are; without one, all of them), its active health checks
//! pass and passive health has not ejected it. Every `check_interval` the lb
//! checks every instance of the pool, by liveness or readiness as
//! `health_check` says; `unhealthy_after` consecutive failures take it out
//! of rotation, `healthy_after` consecutive passes put it back. An instance
//! the lb has never seen pass starts out of rotation, except the members it
//! starts with, which it trusts until their checks say otherwise. Passive
//! health (`eject_after` consecutive requests the instance did not answer)
//! takes it out for `ejection_time`, ended at the next check round.
//!
//! When fewer than `panic_threshold` of the members are in rotation, the lb
//! routes to every member, ignoring health (Envoy's panic threshold): with
//! `panic_threshold = 0` it answers 503 when no member is in rotation. A
//! member that joined and has not passed a check yet is left out of that
//! count (Envoy's excluded hosts), so that scaling out, whose new instances
//! are still booting, does not tip the lb into panic; its first passed check
//! puts it in rotation (Envoy needs one success at a host's startup).
//!
//! Everything lives in the lb's memory: a restart starts it afresh (the
//! configured members, trusted; fresh rate limits).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use faultline_harness::history::nanos;
use faultline_harness::system::HostResult;
use faultline_harness::{EventSink, HostContext, Nanos};
use tokio::time::Instant;

use super::knobs::{AppTier, Balancing};
use super::limiter::Limiters;
use super::protocol::{
    app_host, AppReply, AppRequest, Ejection, HealthCheck, LbReply, LbRequest, TierEvent, TierOp, APP_PORT, LB_PORT,
    PROBE_CLIENT,
};
use crate::kit::pool::Caller;
use crate::kit::request::{ask_within, CallError};
use crate::kit::serve;

fn now() -> Nanos {
    turmoil::sim_elapsed().map_or(0, nanos)
}

/// What the lb knows of one instance.
#[derive(Clone, Debug)]
struct Instance {
    member: bool,
    /// The active checks' verdict.
    healthy: bool,
    passes: u32,
    failures: u32,
    /// Consecutive requests it did not answer.
    unanswered: u32,
    /// Passive health took it out of rotation until the first check round after this.
    ejected_until: Option<Nanos>,
    in_flight: u32,
    /// A member that joined and has not passed a check since: left out of
    /// the panic count, so that scaling out does not tip the lb into panic
    /// (Envoy's excluded hosts), though still routed to in panic.
    excluded: bool,
}

impl Instance {
    fn in_rotation(&self) -> bool {
        self.healthy && self.ejected_until.is_none()
    }
}

struct Lb {
    config: Arc<AppTier>,
    events: EventSink<TierEvent>,
    /// Instance `i + 1` at index `i`.
    instances: RefCell<Vec<Instance>>,
    limiters: RefCell<Limiters>,
    /// Round robin: where the next search starts.
    cursor: Cell<usize>,
    admitted: Cell<u64>,
    panicking: Cell<bool>,
    /// How the lb forwards requests to the instances (`connections`; its
    /// health checks open a connection each either way).
    caller: Caller,
}

pub async fn serve(config: Arc<AppTier>, mut context: HostContext<TierEvent>) -> HostResult {
    let caller = Caller::new(config.connections, &mut context.rng);
    let instances = (1..=config.pool_size())
        .map(|index| {
            let member = index <= config.instances;
            Instance {
                member,
                healthy: member,
                passes: 0,
                failures: 0,
                unanswered: 0,
                ejected_until: None,
                in_flight: 0,
                excluded: false,
            }
        })
        .collect();
    let lb = Rc::new(Lb {
        limiters: RefCell::new(Limiters::new(&config)),
        config,
        events: context.events,
        instances: RefCell::new(instances),
        cursor: Cell::new(0),
        admitted: Cell::new(0),
        panicking: Cell::new(false),
        caller,
    });
    tokio::task::spawn_local(check_rounds(Rc::clone(&lb)));
    serve::serve(LB_PORT, move |request: LbRequest| {
        let lb = Rc::clone(&lb);
        async move {
            Some(match request {
                LbRequest::Client { client, seq, op } => lb.forward(client, seq, op).await,
                LbRequest::Stats => LbReply::Stats { admitted: lb.admitted.get() },
                LbRequest::Members { members } => {
                    lb.set_members(&members);
                    LbReply::MembersSet
                }
            })
        }
    })
    .await?;
    Ok(())
}

impl Lb {
    /// A client's request: the rate limiter, then up to `1 + retries`
    /// attempts on distinct instances.
    async fn forward(&self, client: u32, seq: u64, op: TierOp) -> LbReply {
        if client != PROBE_CLIENT {
            if !self.limiters.borrow_mut().admit(client, now()) {
                self.events.emit(TierEvent::Throttle { client, seq });
                return LbReply::TooManyRequests;
            }
            self.events.emit(TierEvent::Admit { client, seq });
        }
        self.admitted.set(self.admitted.get() + 1);
        let mut tried = Vec::new();
        let mut last_error = None;
        for attempt in 0..=self.config.retries {
            let Some((instance, panic)) = self.pick(&op, &tried) else { break };
            tried.push(instance);
            self.events.emit(TierEvent::Route { instance, client, seq, attempt, panic });
            match self.attempt(instance, client, &op).await {
                Ok(AppReply::Answer { answer, degraded }) => return LbReply::Answer { answer, degraded },
                Ok(AppReply::Error(error)) => return LbReply::Error(error),
                Ok(other) => return LbReply::Error(format!("app-{instance} answered a request with {other:?}")),
                Err(error) => last_error = Some(error),
            }
        }
        match last_error {
            None => {
                self.events.emit(TierEvent::NoUpstream { client, seq });
                LbReply::NoUpstream
            }
            Some(error) => LbReply::Error(format!("502 bad gateway: {error}")),
        }
    }

    /// One attempt on `instance`, counted for least connections and passive health.
    async fn attempt(&self, instance: u32, client: u32, op: &TierOp) -> Result<AppReply, CallError> {
        let slot = (instance - 1) as usize;
        self.instances.borrow_mut()[slot].in_flight += 1;
        let request = AppRequest::Serve { client, op: op.clone() };
        let reply =
            self.caller.ask_within(self.config.attempt_timeout.0, &app_host(instance), APP_PORT, &request).await;
        let mut instances = self.instances.borrow_mut();
        let state = &mut instances[slot];
        assert!(state.in_flight > 0, "an attempt ends only after it began");
        state.in_flight -= 1;
        if reply.is_ok() {
            state.unanswered = 0;
        } else {
            state.unanswered += 1;
            let eject_after = self.config.eject_after;
            if eject_after > 0 && state.unanswered >= eject_after && state.in_rotation() {
                state.ejected_until = Some(now() + self.config.ejection_time.as_nanos());
                state.unanswered = 0;
                self.events.emit(TierEvent::Eject { instance, by: Ejection::Passive });
            }
        }
        reply
    }

    /// The instance for the next attempt (and whether the lb is in panic),
    /// among those not tried yet; `None` when there is none.
    fn pick(&self, op: &TierOp, tried: &[u32]) -> Option<(u32, bool)> {
        let instances = self.instances.borrow();
        let members: Vec<u32> = (1..).zip(instances.iter()).filter(|(_, i)| i.member).map(|(n, _)| n).collect();
        let in_rotation: Vec<u32> =
            members.iter().copied().filter(|n| instances[(*n - 1) as usize].in_rotation()).collect();
        let counted = members.iter().filter(|n| !instances[(**n - 1) as usize].excluded).count();
        let panic = self.config.panic_threshold > 0.0
            && counted > 0
            && (in_rotation.len() as f64) < self.config.panic_threshold * counted as f64;
        self.note_panic(panic, in_rotation.len(), counted);
        let pool = if panic { members } else { in_rotation };
        let candidates: Vec<u32> = pool.into_iter().filter(|n| !tried.contains(n)).collect();
        if candidates.is_empty() {
            return None;
        }
        if let (true, TierOp::Page { session }) = (self.config.sticky, op) {
            if candidates.contains(&session.instance) {
                return Some((session.instance, panic));
            }
        }
        let size = instances.len();
        let start = self.cursor.get();
        // Candidates in round-robin order from the cursor.
        let mut ordered = candidates;
        ordered.sort_by_key(|n| ((*n - 1) as usize + size - start) % size);
        let chosen = match self.config.balancing {
            Balancing::RoundRobin => ordered[0],
            Balancing::LeastConnections => {
                *ordered.iter().min_by_key(|n| instances[(**n - 1) as usize].in_flight).expect("not empty")
            }
        };
        self.cursor.set(chosen as usize % size);
        Some((chosen, panic))
    }

    fn note_panic(&self, panic: bool, in_rotation: usize, members: usize) {
        if panic == self.panicking.get() {
            return;
        }
        self.panicking.set(panic);
        let (in_rotation, members) = (in_rotation as u32, members as u32);
        self.events.emit(if panic {
            TierEvent::PanicStart { in_rotation, members }
        } else {
            TierEvent::PanicEnd { in_rotation, members }
        });
    }

    fn set_members(&self, members: &[u32]) {
        let mut instances = self.instances.borrow_mut();
        let mut changed = false;
        for (index, instance) in (1..).zip(instances.iter_mut()) {
            let member = members.contains(&index);
            if member && !instance.member {
                instance.excluded = !instance.in_rotation();
            }
            changed |= member != instance.member;
            instance.member = member;
        }
        if changed {
            let members = (1..).zip(instances.iter()).filter(|(_, i)| i.member).map(|(n, _)| n).collect();
            self.events.emit(TierEvent::Members { members });
        }
    }

    /// Counts a check's result; may take the instance out of rotation or put it back.
    fn record_check(&self, instance: u32, passed: bool) {
        let mut instances = self.instances.borrow_mut();
        let state = &mut instances[(instance - 1) as usize];
        let was = state.in_rotation();
        if passed {
            state.failures = 0;
            state.passes = state.passes.saturating_add(1);
            // A member that just joined needs one passed check, not
            // healthy_after (as Envoy marks a host healthy at startup).
            state.healthy |= state.excluded || state.passes >= self.config.healthy_after;
            state.excluded = false;
        } else {
            state.passes = 0;
            state.failures = state.failures.saturating_add(1);
            state.healthy &= state.failures < self.config.unhealthy_after;
        }
        match (was, state.in_rotation()) {
            (true, false) => self.events.emit(TierEvent::Eject { instance, by: Ejection::Checks }),
            (false, true) => self.events.emit(TierEvent::Restore { instance }),
            _ => {}
        }
    }

    /// Ends passive ejections whose time is up (at a check round).
    fn end_ejections(&self, now: Nanos) {
        let mut instances = self.instances.borrow_mut();
        for (instance, state) in (1..).zip(instances.iter_mut()) {
            if state.ejected_until.is_some_and(|until| until <= now) {
                state.ejected_until = None;
                if state.in_rotation() {
                    self.events.emit(TierEvent::Restore { instance });
                }
            }
        }
    }
}

/// Every `check_interval`, a health check of every instance of the pool,
/// each within `check_timeout` (which is at most the interval).
async fn check_rounds(lb: Rc<Lb>) {
    let interval = lb.config.check_interval.0;
    let start = Instant::now();
    let mut round: u32 = 0;
    loop {
        round = round.saturating_add(1);
        tokio::time::sleep_until(start + interval * round).await;
        lb.end_ejections(now());
        for instance in 1..=lb.config.pool_size() {
            tokio::task::spawn_local(check(Rc::clone(&lb), instance));
        }
    }
}

async fn check(lb: Rc<Lb>, instance: u32) {
    let kind = lb.config.health_check;
    let timeout: Duration = lb.config.check_timeout.0;
    let reply = ask_within::<_, AppReply>(timeout, &app_host(instance), APP_PORT, &AppRequest::Health(kind)).await;
    let passed = matches!(
        (kind, reply),
        (HealthCheck::Liveness, Ok(AppReply::Alive)) | (HealthCheck::Readiness, Ok(AppReply::Ready(true)))
    );
    lb.record_check(instance, passed);
}
