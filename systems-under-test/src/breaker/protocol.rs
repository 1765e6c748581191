//! What the breaker's hosts say: the client's operation, where an answer
//! came from, the messages between app, downstream and cache, and the typed
//! events checkers and figures read.

use faultline_harness::Nanos;
use serde::{Deserialize, Serialize};

use super::rule::OpenReason;

pub const APP: &str = "app";
pub const DOWNSTREAM: &str = "downstream";
pub const CACHE: &str = "cache";

pub const APP_PORT: u16 = 9000;
pub const DOWNSTREAM_PORT: u16 = 9001;
pub const CACHE_PORT: u16 = 9002;

/// The user the health probe asks for; its calls are left out of retry
/// amplification and wasted calls. Workload users are 0..=1000.
pub const PROBE_USER: u32 = 1_000_000;

/// A client's request: the items for `user` (user 0 is a client error).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerOp {
    pub user: u32,
}

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    Downstream,
    Cache,
    Static,
    /// The request was a client error, and the answer says so.
    BadRequest,
}

/// A client's request to the app.
#[derive(Debug, Serialize, Deserialize)]
pub struct AppRequest {
    pub user: u32,
}

/// The app's answer: items, labelled with their source, or (with
/// `fallback = false`) none.
#[derive(Debug, Serialize, Deserialize)]
pub enum AppReply {
    Items(Source),
    /// The calls failed or the breaker refused, and there is no fallback.
    Unavailable,
}

/// One attempt of the app at the downstream.
#[derive(Debug, Serialize, Deserialize)]
pub struct DownstreamRequest {
    pub user: u32,
    /// The app's id for this attempt.
    pub attempt: u64,
    /// When the app sent it (simulated time), so the downstream's log says
    /// what the breaker let through and when, without the breaker's word.
    pub sent: Nanos,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum DownstreamReply {
    Items,
    Error,
    BadRequest,
}

/// The cache's answer to a request for the popular items (`()`): `true`,
/// it has them (it always does, when it can be reached).
pub type CacheReply = bool;

/// A call's result, as the breaker counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallResult {
    /// The downstream answered with items in time.
    Ok,
    /// The downstream answered that the request was a client error: it is
    /// fine, so this counts as a success.
    ClientError,
    /// Items, but slower than `slow_call_threshold`: counts as a failure.
    Slow,
    /// An error answer, a refused or broken connection, or no answer within
    /// `call_timeout`.
    Failed,
}

impl CallResult {
    /// Does the breaker's rule count it as a failure?
    pub fn counts_as_failure(self) -> bool {
        matches!(self, CallResult::Slow | CallResult::Failed)
    }
}

/// The breaker's state when it counted a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    /// A late answer to a call sent before the breaker opened.
    Open,
    HalfOpen,
    /// No breaker at all (`breaker = false`): every call goes through.
    Disabled,
}

faultline_harness::system_events! {
    /// What the breaker's hosts report.
    pub enum BreakerEvent {
        /// The breaker opened, by `rule`, for `for_ns` nanoseconds.
        Open = "breaker.open" { rule: OpenReason, for_ns: u64 },
        /// The open duration passed and a call arrived: trial calls may go through.
        HalfOpen = "breaker.half_open",
        /// The breaker closed after `successes` successful trial calls.
        Close = "breaker.close" { successes: u32 },
        /// A call's result, as the breaker counted it in `state`; `probe`
        /// marks the health probe's calls.
        Record = "breaker.record" { result: CallResult, state: BreakerState, probe: bool },
        /// The breaker refused a call for `user`.
        Reject = "breaker.reject" { user: u32 },
        /// A retry for `user` was not made: the budget was spent.
        RetrySkipped = "retry.skipped" { user: u32 },
        /// The downstream received attempt `attempt`, which the app sent at `sent`.
        DownstreamCall = "downstream.call" { attempt: u64, sent: u64, probe: bool },
        /// The app answered `user` with cached popular items.
        FallbackCache = "fallback.cache" { user: u32 },
        /// The app answered `user` with static defaults.
        FallbackStatic = "fallback.static" { user: u32 },
    }
}
