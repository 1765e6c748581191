//! `app-tier`: stateless app instances behind a load balancer, as the
//! reliability chapter builds them (docs/app-tier.md): health checks that
//! take failed instances out of rotation, sessions in an external store
//! with a TTL so any instance can serve any user, per-client rate limiting,
//! and horizontal autoscaling between a minimum and a maximum.
//!
//! Hosts: `lb` (lb.rs: rate limiter, routing, active and passive health,
//! panic threshold), `app-1..N` (app.rs: stateless; sticky sessions in
//! memory as the flawed variant), `sessions` (sessions.rs: a TTL store that
//! journals to its simulated disk), `db` (db.rs: what readiness checks look
//! at) and `autoscaler` (autoscaler.rs: the HPA rule; it starts and stops
//! instances through the harness's pool). Users are the workload's clients:
//! each logs in, then asks for pages with its session (per-client state).
//!
//! The checkers (checks.rs) hold the lb's recorded decisions and the users'
//! answers to the harness's ground truth (ground.rs).

mod app;
mod autoscaler;
mod checks;
mod db;
mod ground;
mod knobs;
mod lanes;
mod lb;
mod limiter;
mod protocol;
mod sessions;

use std::sync::Arc;

use faultline_harness::system::{EventDoc, HostResult, KnobDoc, LocalFuture};
use faultline_harness::{
    CheckContext, ClientContext, HostContext, InputError, Invariant, Knobs, Lane, Outcome, System, SystemDoc,
};
use rand_chacha::ChaCha8Rng;

pub use autoscaler::{Recommender, TOLERANCE};
pub use checks::{
    bucket_breaches, check_fail_open, check_rate_limit, check_scaling_bounds, check_session_continuity, eject_times,
    misroutes, window_breaches, Breaches,
};
pub use ground::{Ground, Intervals};
pub use knobs::{AppTier, Balancing, Limiter};
pub use protocol::{Answer, Ejection, HealthCheck, Session, TierEvent, TierOp};

use protocol::{app_host, AUTOSCALER, DB, LB, SESSIONS};

static DOC: SystemDoc = SystemDoc {
    name: "app-tier",
    about: "stateless app instances behind a load balancer: health checks, external sessions, rate limits, autoscaling",
    hosts: "lb, db, sessions (not when sticky), autoscaler (with autoscale), app-1..app-N",
    knobs: KNOBS,
    events: EVENTS,
};

static KNOBS: &[KnobDoc] = &[
    KnobDoc { name: "instances", unit: "count", default: "3", about: "app instances at the start (always, without autoscaling), 1 to 16" },
    KnobDoc { name: "balancing", unit: "string", default: "round-robin", about: "round-robin | least-connections" },
    KnobDoc {
        name: "connections",
        unit: "string",
        default: "per-request",
        about: "users to the lb, the lb to instances, instances to the session store and the database: per-request | pooled (health checks and control open one each)",
    },
    KnobDoc { name: "health_check", unit: "string", default: "readiness", about: "what the lb's checks ask: liveness (the process is up) | readiness (it can reach the database)" },
    KnobDoc { name: "check_interval", unit: "duration", default: "200ms", about: "the lb checks every instance this often" },
    KnobDoc { name: "check_timeout", unit: "duration", default: "100ms", about: "a check unanswered this long failed; at most check_interval" },
    KnobDoc { name: "unhealthy_after", unit: "count", default: "2", about: "consecutive failed checks that take an instance out of rotation" },
    KnobDoc { name: "healthy_after", unit: "count", default: "2", about: "consecutive passed checks that put it back" },
    KnobDoc { name: "eject_after", unit: "count", default: "0", about: "passive health: consecutive unanswered requests that eject an instance (0: off)" },
    KnobDoc { name: "ejection_time", unit: "duration", default: "1s", about: "how long a passive ejection lasts (ended at the next check round)" },
    KnobDoc { name: "retries", unit: "count", default: "1", about: "attempts on other instances after one does not answer" },
    KnobDoc { name: "attempt_timeout", unit: "duration", default: "250ms", about: "how long the lb waits for an instance's answer" },
    KnobDoc { name: "panic_threshold", unit: "probability", default: "0.5", about: "below this share of members in rotation the lb routes to all of them (Envoy's panic threshold); 0: off, 503 when none is in rotation" },
    KnobDoc { name: "sticky", unit: "bool", default: "false", about: "the flawed variant: sessions in the instances' memory, routed by affinity" },
    KnobDoc { name: "session_ttl", unit: "duration", default: "30s", about: "a session expires this long after its last use" },
    KnobDoc { name: "sessions_fsync", unit: "string", default: "never", about: "when the session store syncs its journal: always (before answering) | batch (every 100ms) | never; a crash loses what was not synced" },
    KnobDoc { name: "sessions_timeout", unit: "duration", default: "100ms", about: "an instance gives up on the session store after this" },
    KnobDoc { name: "db_timeout", unit: "duration", default: "100ms", about: "an instance gives up on the database after this (and answers degraded)" },
    KnobDoc { name: "service_time", unit: "duration range", default: "2ms..6ms", about: "work per request on an instance" },
    KnobDoc { name: "workers", unit: "count", default: "8", about: "requests an instance works on at once; the rest wait in line" },
    KnobDoc { name: "boot_time", unit: "duration", default: "0s", about: "how long a started instance takes before it serves" },
    KnobDoc { name: "limiter", unit: "string", default: "none", about: "the lb's per-client rate limiter: none | token-bucket | fixed-window | sliding-window" },
    KnobDoc { name: "limit", unit: "rate", default: "50/s", about: "each client's rate limit" },
    KnobDoc { name: "burst", unit: "count", default: "limit x 1s", about: "a token bucket's size" },
    KnobDoc { name: "window", unit: "duration", default: "1s", about: "a window limiter's window (limit x window requests per window)" },
    KnobDoc { name: "autoscale", unit: "bool", default: "false", about: "run the autoscaler over a pool of instances_max instances" },
    KnobDoc { name: "instances_min", unit: "count", default: "instances", about: "the autoscaler keeps at least this many" },
    KnobDoc { name: "instances_max", unit: "count", default: "instances", about: "and at most this many (the pool)" },
    KnobDoc { name: "target_rps", unit: "rate", default: "100/s", about: "requests per second per instance the autoscaler aims at" },
    KnobDoc { name: "scale_interval", unit: "duration", default: "1s", about: "how often the autoscaler measures and decides" },
    KnobDoc { name: "stabilization", unit: "bool", default: "true", about: "false: the flawed autoscaler that scales down on every low sample" },
    KnobDoc { name: "stabilization_window", unit: "duration", default: "10s", about: "a scale-down goes no lower than the highest recommendation of this window (and scaling-bounds holds it)" },
    KnobDoc { name: "drain_time", unit: "duration", default: "500ms", about: "a scaled-in instance leaves the lb's members this long before it is stopped" },
];

static EVENTS: &[EventDoc] = &[
    EventDoc { name: "lb.admit", about: "the rate limiter let a client's request through", detects: false },
    EventDoc { name: "lb.throttle", about: "the rate limiter refused a client's request (429)", detects: false },
    EventDoc { name: "lb.route", about: "the lb sent an attempt of a request to an instance", detects: false },
    EventDoc {
        name: "lb.no_upstream",
        about: "the lb refused a request: no instance in rotation (503)",
        detects: false,
    },
    EventDoc {
        name: "lb.eject",
        about: "the lb took an instance out of rotation (by checks or passive health)",
        detects: true,
    },
    EventDoc { name: "lb.restore", about: "the lb put an instance back in rotation", detects: false },
    EventDoc {
        name: "lb.panic.start",
        about: "too few members in rotation: the lb routes to all of them",
        detects: false,
    },
    EventDoc { name: "lb.panic.end", about: "enough members in rotation again", detects: false },
    EventDoc { name: "lb.members", about: "the lb's members changed (from the autoscaler)", detects: false },
    EventDoc { name: "app.start", about: "an instance finished booting", detects: false },
    EventDoc { name: "app.session.create", about: "an instance created a session", detects: false },
    EventDoc {
        name: "sessions.recover",
        about: "the session store started with the sessions its disk kept",
        detects: false,
    },
    EventDoc { name: "autoscaler.sample", about: "the autoscaler's measurement and decision", detects: false },
    EventDoc { name: "autoscaler.scale", about: "the autoscaler changed the instance count", detects: false },
];

const NO_ROUTING_TO_DEAD: &str = "no-routing-to-dead";
const SESSION_CONTINUITY: &str = "session-continuity";
const RATE_LIMIT: &str = "rate-limit";
const SCALING_BOUNDS: &str = "scaling-bounds";
const FAIL_OPEN: &str = "fail-open";

/// A user: their session once logged in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    pub session: Option<Session>,
    /// A login is in flight: browse meanwhile rather than log in twice.
    pub logging_in: bool,
}

impl System for AppTier {
    type Op = TierOp;
    type Res = Answer;
    type Event = TierEvent;
    type Client = User;

    fn doc() -> &'static SystemDoc {
        &DOC
    }

    fn invariants() -> Vec<Invariant<Self>> {
        vec![
            Invariant {
                name: NO_ROUTING_TO_DEAD,
                about: "after the detection bound (check_interval x unhealthy_after + check_timeout), no request is \
                        routed to an instance that is down or cannot reach the database (in panic, while too few \
                        members are ready, it may be)",
                check: |tier, context| Ok(misroutes(tier, context).violations),
            },
            Invariant {
                name: SESSION_CONTINUITY,
                about:
                    "a logged-in user stays logged in while their session is unexpired, whichever instance serves them",
                check: |tier, context| Ok(check_session_continuity(tier, context)),
            },
            Invariant {
                name: RATE_LIMIT,
                about: "no client gets more than its limit (token bucket: burst + limit x time over any span; \
                        windows: limit x window in any window), and no request within it is refused",
                check: |tier, context| Ok(check_rate_limit(tier, context)),
            },
            Invariant {
                name: SCALING_BOUNDS,
                about: "the running instances stay within instances_min..=instances_max, and none is stopped sooner \
                        than stabilization_window after one was started (no flapping)",
                check: |tier, context| Ok(check_scaling_bounds(tier, context)),
            },
            Invariant {
                name: FAIL_OPEN,
                about: "the lb answers 503 only when no member instance has been alive and reachable for the \
                        restoration bound: a live instance can at least answer degraded",
                check: |tier, context| Ok(check_fail_open(tier, context)),
            },
        ]
    }

    fn configure(knobs: &Knobs<'_>) -> Result<AppTier, InputError> {
        knobs::configure(knobs)
    }

    fn hosts(&self) -> Vec<String> {
        let mut hosts = vec![LB.to_string(), DB.to_string()];
        if !self.sticky {
            hosts.push(SESSIONS.into());
        }
        if self.autoscale {
            hosts.push(AUTOSCALER.into());
        }
        hosts.extend((1..=self.pool_size()).map(app_host));
        hosts
    }

    fn pool(&self) -> Vec<String> {
        if self.autoscale {
            (1..=self.pool_size()).map(app_host).collect()
        } else {
            Vec::new()
        }
    }

    fn down_at_start(&self) -> Vec<String> {
        (self.instances + 1..=self.pool_size()).map(app_host).collect()
    }

    fn host(self: &Arc<Self>, context: HostContext<TierEvent>) -> LocalFuture<HostResult> {
        let tier = Arc::clone(self);
        match context.name.as_str() {
            LB => Box::pin(lb::serve(tier, context)),
            DB => Box::pin(db::serve()),
            SESSIONS => Box::pin(sessions::serve(tier, context)),
            AUTOSCALER => Box::pin(autoscaler::serve(tier, context)),
            _ => Box::pin(app::serve(tier, context)),
        }
    }

    fn client(&self, _index: u32) -> User {
        User::default()
    }

    fn next_op(&self, user: &mut User, _rng: &mut ChaCha8Rng) -> TierOp {
        match user.session {
            Some(session) => TierOp::Page { session },
            None if user.logging_in => TierOp::Browse,
            None => {
                user.logging_in = true;
                TierOp::Login
            }
        }
    }

    fn observe(&self, user: &mut User, op: &TierOp, outcome: &Outcome<Answer>) {
        match (op, outcome) {
            (TierOp::Login, Outcome::Ok(Answer::LoggedIn(session))) => {
                user.logging_in = false;
                user.session = Some(*session);
            }
            (TierOp::Login, _) => user.logging_in = false,
            (TierOp::Page { session }, Outcome::Ok(Answer::LoggedOut)) if user.session == Some(*session) => {
                user.session = None;
            }
            _ => {}
        }
    }

    fn op_kind(&self, op: &TierOp) -> &'static str {
        match op {
            TierOp::Login => "login",
            TierOp::Page { .. } => "page",
            TierOp::Browse => "browse",
        }
    }

    fn probe_op(&self) -> Option<TierOp> {
        Some(TierOp::Browse)
    }

    fn call(self: &Arc<Self>, client: ClientContext<TierEvent>, op: TierOp) -> LocalFuture<Outcome<Answer>> {
        let config = Arc::clone(self);
        Box::pin(async move { app::call(&config, client, op).await })
    }

    /// What the configuration promises: the rate limit only with a limiter,
    /// the scaling bounds only with an autoscaler; the rest always.
    fn promises(&self) -> Vec<&'static str> {
        let mut promised = vec![NO_ROUTING_TO_DEAD, SESSION_CONTINUITY];
        if self.limiter != Limiter::None {
            promised.push(RATE_LIMIT);
        }
        if self.autoscale {
            promised.push(SCALING_BOUNDS);
        }
        promised.push(FAIL_OPEN);
        promised
    }

    /// `eject_ms`, `eject_ms_max`: time from an instance failing to the lb
    /// taking it out of rotation; `misrouted_share`: routes to failed
    /// instances after the detection bound; `logged_out_share`; the rate
    /// limiter's and the autoscaler's figures (checks.rs).
    fn figures(&self, context: &CheckContext<'_, Self>) -> Vec<(&'static str, f64)> {
        let mut figures = Vec::new();
        let ejects = eject_times(self, context);
        if !ejects.is_empty() {
            let ms = |n: u64| n as f64 / 1e6;
            figures.push(("eject_ms", ejects.iter().map(|n| ms(*n)).sum::<f64>() / ejects.len() as f64));
            figures.push(("eject_ms_max", ms(*ejects.iter().max().expect("not empty"))));
        }
        let routes = misroutes(self, context);
        if routes.routes > 0 {
            figures.push(("misrouted_share", routes.late as f64 / routes.routes as f64));
        }
        if let Some(share) = checks::logged_out_share(context.history) {
            figures.push(("logged_out_share", share));
        }
        figures.extend(checks::limit_figures(self, context));
        figures.extend(checks::scaling_figures(self, context));
        figures
    }

    fn lanes(&self, context: &CheckContext<'_, Self>) -> Vec<Lane> {
        lanes::lanes(self, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_pool_follow_the_configuration() {
        let plain = AppTier::from_knobs("");
        assert_eq!(plain.hosts(), ["lb", "db", "sessions", "app-1", "app-2", "app-3"]);
        assert!(plain.pool().is_empty() && plain.down_at_start().is_empty());
        let sticky = AppTier::from_knobs("sticky = true\ninstances = 2");
        assert_eq!(sticky.hosts(), ["lb", "db", "app-1", "app-2"]);
        let scaled = AppTier::from_knobs("autoscale = true\ninstances = 2\ninstances_max = 4");
        assert_eq!(scaled.hosts(), ["lb", "db", "sessions", "autoscaler", "app-1", "app-2", "app-3", "app-4"]);
        assert_eq!(scaled.pool(), ["app-1", "app-2", "app-3", "app-4"]);
        assert_eq!(scaled.down_at_start(), ["app-3", "app-4"]);
    }

    #[test]
    fn promises_follow_the_configuration_and_are_invariants() {
        let names: Vec<&str> = AppTier::invariants().iter().map(|i| i.name).collect();
        let plain = AppTier::from_knobs("");
        assert_eq!(plain.promises(), [NO_ROUTING_TO_DEAD, SESSION_CONTINUITY, FAIL_OPEN]);
        let all = AppTier::from_knobs("limiter = \"token-bucket\"\nautoscale = true\ninstances_max = 4");
        assert_eq!(all.promises().len(), 5);
        assert!(all.promises().iter().all(|p| names.contains(p)));
    }

    #[test]
    fn a_user_logs_in_once_browses_meanwhile_and_again_after_a_logout() {
        let tier = AppTier::from_knobs("");
        let mut user = tier.client(0);
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        assert_eq!(tier.next_op(&mut user, &mut rng), TierOp::Login);
        assert_eq!(tier.next_op(&mut user, &mut rng), TierOp::Browse);
        let session = Session { id: 9, instance: 2 };
        tier.observe(&mut user, &TierOp::Login, &Outcome::Ok(Answer::LoggedIn(session)));
        assert_eq!(tier.next_op(&mut user, &mut rng), TierOp::Page { session });
        tier.observe(&mut user, &TierOp::Page { session }, &Outcome::Failed("502".into()));
        assert_eq!(user.session, Some(session), "a failed request is no logout");
        tier.observe(&mut user, &TierOp::Page { session }, &Outcome::Ok(Answer::LoggedOut));
        assert_eq!(tier.next_op(&mut user, &mut rng), TierOp::Login);
    }
}
