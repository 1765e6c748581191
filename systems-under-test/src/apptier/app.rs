//! An app instance, and the user's call through the load balancer.
//!
//! An instance is stateless: it reads and writes a user's session in the
//! session store, and queries the database for the page. `workers` requests
//! are worked on at once, each for a `service_time`; the others wait in
//! line, and one that waited longer than the lb's `attempt_timeout` is
//! dropped unworked (the lb has given up on it). An instance the pool or a
//! restart starts takes `boot_time` before it listens.
//! Without its database it answers from what it has, marked degraded (a page
//! without the database's part), so it stays alive but is not ready.
//!
//! `sticky = true` is the flawed alternative: sessions live in the
//! instance's memory, and the lb routes a session to the instance that
//! created it. A crash, a restart or a scale-in of that instance loses them.
//!
//! Health checks are answered apart from the workers (a probe must not wait
//! behind user requests): liveness says the process is up; readiness pings
//! the database within `db_timeout`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use faultline_harness::history::nanos;
use faultline_harness::system::HostResult;
use faultline_harness::{ClientContext, EventSink, HostContext, Nanos, Outcome};
use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::knobs::AppTier;
use super::protocol::{
    app_index, Answer, AppReply, AppRequest, DbReply, DbRequest, HealthCheck, LbReply, LbRequest, Session,
    SessionReply, SessionRequest, TierEvent, TierOp, APP_PORT, DB, DB_PORT, LB, LB_PORT, SESSIONS, SESSIONS_PORT,
};
use crate::kit::draw;
use crate::kit::pool::Caller;
use crate::kit::serve;
use crate::kit::wire::describe;

/// A user's call: one request to the lb, which the harness's deadline bounds.
pub async fn call(config: &AppTier, context: ClientContext<TierEvent>, op: TierOp) -> Outcome<Answer> {
    let caller = crate::kit::pool::client_caller(&context.local, config.connections);
    let request = LbRequest::Client { client: context.index, seq: context.seq, op };
    match caller.ask::<_, LbReply>(LB, LB_PORT, &request).await {
        Ok(LbReply::Answer { answer, degraded: false }) => Outcome::Ok(answer),
        Ok(LbReply::Answer { answer, degraded: true }) => Outcome::Degraded(answer),
        Ok(LbReply::Error(error)) => Outcome::Failed(error),
        Ok(LbReply::TooManyRequests) => Outcome::Ok(Answer::TooManyRequests),
        Ok(LbReply::NoUpstream) => Outcome::Failed("503 no healthy upstream".into()),
        Ok(other) => Outcome::Failed(format!("the lb answered a request with {other:?}")),
        Err(error) => Outcome::Failed(describe(&error)),
    }
}

fn now() -> Nanos {
    turmoil::sim_elapsed().map_or(0, nanos)
}

struct Instance {
    config: Arc<AppTier>,
    index: u32,
    events: EventSink<TierEvent>,
    rng: RefCell<ChaCha8Rng>,
    workers: Semaphore,
    /// Sticky sessions only: id to (user, expiry), lost with the process.
    memory: RefCell<BTreeMap<u64, (u32, Nanos)>>,
    /// How the instance calls the session store and the database (`connections`).
    caller: Caller,
}

pub async fn serve(config: Arc<AppTier>, mut context: HostContext<TierEvent>) -> HostResult {
    let index = app_index(&context.name).ok_or_else(|| format!("{:?} is not an app instance's name", context.name))?;
    // An instance running when the run starts has booted already; one the
    // pool or a restart starts takes its boot time.
    if context.incarnation > 0 && !config.boot_time.0.is_zero() {
        tokio::time::sleep(config.boot_time.0).await;
    }
    context.events.emit(TierEvent::AppStart { instance: index, incarnation: context.incarnation });
    let caller = Caller::new(config.connections, &mut context.rng);
    let instance = Rc::new(Instance {
        workers: Semaphore::new(config.workers as usize),
        config,
        index,
        events: context.events,
        caller,
        rng: RefCell::new(context.rng),
        memory: RefCell::new(BTreeMap::new()),
    });
    serve::serve(APP_PORT, move |request: AppRequest| {
        let instance = Rc::clone(&instance);
        async move {
            Some(match request {
                AppRequest::Health(HealthCheck::Liveness) => AppReply::Alive,
                AppRequest::Health(HealthCheck::Readiness) => AppReply::Ready(instance.query(DbRequest::Ping).await),
                AppRequest::Serve { client, op } => instance.serve(client, op).await,
            })
        }
    })
    .await?;
    Ok(())
}

impl Instance {
    /// A user request: waits for a worker and works for a service time (a
    /// worker is busy only while it works, not while it waits on the session
    /// store or the database), then does what the operation needs. A request
    /// that waited in line longer than the lb waits for an answer is dropped
    /// unworked: nobody is waiting for it any more.
    async fn serve(&self, client: u32, op: TierOp) -> AppReply {
        let queued = Instant::now();
        {
            let Ok(_worker) = self.workers.acquire().await else {
                return AppReply::Error("the instance is shutting down".into());
            };
            if queued.elapsed() > self.config.attempt_timeout.0 {
                return AppReply::Error("dropped after waiting in line past the lb's timeout".into());
            }
            let pause = draw::duration(&mut self.rng.borrow_mut(), self.config.service_time);
            tokio::time::sleep(pause).await;
        }
        match op {
            TierOp::Login => self.login(client).await,
            TierOp::Page { session } => match self.session(session).await {
                Ok(true) => self.page().await,
                Ok(false) => AppReply::Answer { answer: Answer::LoggedOut, degraded: false },
                Err(error) => AppReply::Error(error),
            },
            TierOp::Browse => self.page().await,
        }
    }

    async fn login(&self, user: u32) -> AppReply {
        let id = self.rng.borrow_mut().next_u64();
        if self.config.sticky {
            let expires = now() + self.config.session_ttl.as_nanos();
            self.memory.borrow_mut().insert(id, (user, expires));
        } else {
            match self.store(&SessionRequest::Put { id, user }).await {
                Ok(SessionReply::Stored) => {}
                Ok(other) => return AppReply::Error(format!("the session store answered a put with {other:?}")),
                Err(error) => return AppReply::Error(error),
            }
        }
        self.events.emit(TierEvent::SessionCreate { instance: self.index, id, user });
        AppReply::Answer { answer: Answer::LoggedIn(Session { id, instance: self.index }), degraded: false }
    }

    /// Is `session` live? Reading it refreshes its TTL. An error when the
    /// store cannot say (the user is not logged out for that).
    async fn session(&self, session: Session) -> Result<bool, String> {
        if self.config.sticky {
            let now = now();
            let mut memory = self.memory.borrow_mut();
            return Ok(match memory.get_mut(&session.id) {
                Some((_, expires)) if *expires > now => {
                    *expires = now + self.config.session_ttl.as_nanos();
                    true
                }
                _ => false,
            });
        }
        match self.store(&SessionRequest::Get { id: session.id }).await? {
            SessionReply::Found { .. } => Ok(true),
            SessionReply::Missing => Ok(false),
            SessionReply::Stored => Err("the session store answered a get with stored".into()),
        }
    }

    async fn store(&self, request: &SessionRequest) -> Result<SessionReply, String> {
        self.caller
            .ask_within(self.config.sessions_timeout.0, SESSIONS, SESSIONS_PORT, request)
            .await
            .map_err(|error| format!("session store: {error}"))
    }

    /// The page: fresh with the database's row, degraded without it.
    async fn page(&self) -> AppReply {
        let fresh = self.query(DbRequest::Query).await;
        AppReply::Answer { answer: Answer::Page { instance: self.index }, degraded: !fresh }
    }

    /// Did the database answer `request` within `db_timeout`?
    async fn query(&self, request: DbRequest) -> bool {
        matches!(
            self.caller.ask_within::<_, DbReply>(self.config.db_timeout.0, DB, DB_PORT, &request).await,
            Ok(DbReply::Row | DbReply::Pong)
        )
    }
}
