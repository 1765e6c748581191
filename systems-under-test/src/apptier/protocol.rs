//! What the app tier says: the users' operations and answers, the messages
//! between clients, the load balancer, the app instances, the session store,
//! the database and the autoscaler, and the typed events its hosts report.
//! Every event a checker or figure reads carries its instance, client and
//! request as fields.

use serde::{Deserialize, Serialize};

pub const LB: &str = "lb";
pub const SESSIONS: &str = "sessions";
pub const DB: &str = "db";
pub const AUTOSCALER: &str = "autoscaler";

pub const LB_PORT: u16 = 7000;
pub const APP_PORT: u16 = 7001;
pub const SESSIONS_PORT: u16 = 7002;
pub const DB_PORT: u16 = 7003;

/// The client index the harness gives its health probe: a monitoring client
/// without a session and without a rate-limit quota.
pub const PROBE_CLIENT: u32 = u32::MAX;

/// The name of app instance `index` (from 1).
pub fn app_host(index: u32) -> String {
    assert!(index >= 1, "app instances are numbered from 1");
    format!("app-{index}")
}

/// The instance number of an app host's name ("app-3" is 3).
pub fn app_index(host: &str) -> Option<u32> {
    host.strip_prefix("app-")?.parse().ok().filter(|index| *index >= 1)
}

/// A user's session, as its cookie carries it: the id the store knows it
/// by, and the instance that created it (the affinity a sticky balancer
/// routes by, as HAProxy's server cookie does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Session {
    pub id: u64,
    pub instance: u32,
}

/// One user operation. The user is the workload client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TierOp {
    /// Log in: a new session.
    Login,
    /// A page that needs the user's session.
    Page { session: Session },
    /// A page anyone may see (a user while their login is in flight, and the
    /// health probe).
    Browse,
}

/// What a user gets back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    LoggedIn(Session),
    /// A page, served by `instance`.
    Page {
        instance: u32,
    },
    /// The session is unknown to the instance that served the request: the
    /// user must log in again.
    LoggedOut,
    /// 429: the user is over their rate limit. An answer, not a failure: the
    /// lb did what it should (the `rate-limit` checker names the refusals
    /// it should not have made, and those count as wrong answers).
    TooManyRequests,
}

/// A request to the load balancer.
#[derive(Debug, Serialize, Deserialize)]
pub enum LbRequest {
    /// A user's operation; `(client, seq)` names it in the lb's events.
    Client { client: u32, seq: u64, op: TierOp },
    /// The autoscaler asks how many requests the lb has admitted so far.
    Stats,
    /// The autoscaler's instances: route to these only.
    Members { members: Vec<u32> },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum LbReply {
    /// An instance's answer; `degraded` when it served without its database.
    Answer {
        answer: Answer,
        degraded: bool,
    },
    /// An instance answered with an error, or no instance answered (502).
    Error(String),
    /// 429: the client is over its rate limit.
    TooManyRequests,
    /// 503: no instance is in rotation.
    NoUpstream,
    /// Requests admitted since the lb started.
    Stats {
        admitted: u64,
    },
    MembersSet,
}

/// What a health check asks an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheck {
    /// Is the process up? (Kubernetes' liveness probe.)
    Liveness,
    /// Can it serve: is its database reachable? (Kubernetes' readiness probe.)
    Readiness,
}

/// A request from the lb to an app instance.
#[derive(Debug, Serialize, Deserialize)]
pub enum AppRequest {
    Serve { client: u32, op: TierOp },
    Health(HealthCheck),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum AppReply {
    Answer {
        answer: Answer,
        degraded: bool,
    },
    /// The instance could not serve (its session store is unreachable).
    Error(String),
    Alive,
    Ready(bool),
}

/// A request from an app instance to the session store.
#[derive(Debug, Serialize, Deserialize)]
pub enum SessionRequest {
    /// Stores a new session of `user`.
    Put { id: u64, user: u32 },
    /// Looks a session up and refreshes its TTL (a sliding expiry, as a
    /// Redis `GETEX` with `EX` does).
    Get { id: u64 },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum SessionReply {
    Stored,
    Found { user: u32 },
    Missing,
}

/// A request from an app instance to the database.
#[derive(Debug, Serialize, Deserialize)]
pub enum DbRequest {
    Query,
    Ping,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum DbReply {
    Row,
    Pong,
}

/// Why the lb took an instance out of rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ejection {
    /// `unhealthy_after` consecutive active health checks failed.
    Checks,
    /// `eject_after` consecutive requests failed to connect or answer (passive
    /// health, Envoy's outlier detection).
    Passive,
}

faultline_harness::system_events! {
    /// What the app tier's hosts report.
    pub enum TierEvent {
        /// The lb let request `seq` of `client` through its rate limiter.
        Admit = "lb.admit" { client: u32, seq: u64 },
        /// The lb refused request `seq` of `client` with a 429.
        Throttle = "lb.throttle" { client: u32, seq: u64 },
        /// The lb sent attempt `attempt` (0 first) of `client`'s request `seq`
        /// to `instance`; `panic` when it routed ignoring health (the panic
        /// threshold).
        Route = "lb.route" { instance: u32, client: u32, seq: u64, attempt: u32, panic: bool },
        /// The lb refused `client`'s request `seq` with a 503: no instance in rotation.
        NoUpstream = "lb.no_upstream" { client: u32, seq: u64 },
        /// The lb took `instance` out of rotation.
        Eject = "lb.eject" { instance: u32, by: Ejection },
        /// The lb put `instance` back in rotation.
        Restore = "lb.restore" { instance: u32 },
        /// Fewer than the panic threshold of the members are in rotation: the
        /// lb routes to every member, ignoring health.
        PanicStart = "lb.panic.start" { in_rotation: u32, members: u32 },
        PanicEnd = "lb.panic.end" { in_rotation: u32, members: u32 },
        /// The lb's membership changed (from the autoscaler).
        Members = "lb.members" { members: Vec<u32> },
        /// App `instance` finished booting and serves (incarnation from 0).
        AppStart = "app.start" { instance: u32, incarnation: u32 },
        /// App `instance` created session `id` for `user`.
        SessionCreate = "app.session.create" { instance: u32, id: u64, user: u32 },
        /// The session store started with `sessions` live sessions read back from its disk.
        SessionsRecover = "sessions.recover" { sessions: u32 },
        /// The autoscaler measured `rps` over its interval with `current`
        /// instances; the HPA rule recommended `recommended`, and after the
        /// clamp and stabilization it wants `desired`.
        Sample = "autoscaler.sample" { rps: f64, current: u32, recommended: u32, desired: u32 },
        /// The autoscaler changed the instance count.
        Scale = "autoscaler.scale" { from: u32, to: u32 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_hosts_and_indexes_round_trip() {
        assert_eq!(app_host(3), "app-3");
        assert_eq!(app_index("app-3"), Some(3));
        assert_eq!(app_index("app-0"), None);
        assert_eq!(app_index("lb"), None);
        assert_eq!(app_index("app-x"), None);
    }
}
