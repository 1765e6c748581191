//! What the calibration services say: operations, replies and events.

use serde::{Deserialize, Serialize};

pub const PORT: u16 = 7100;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CalibrationOp {
    Request,
    /// The health probe: answered at once, bypassing the queue.
    Ping,
}

/// What the server says to a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Served,
    Rejected,
    Failed,
}

/// What a successful request returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub attempts: u32,
}

faultline_harness::system_events! {
    /// What the calibration servers report.
    pub enum CalibrationEvent {
        /// flaky: the server received an attempt.
        Attempt = "calibration.attempt" { failed: bool },
        /// queue: a request found the queue full.
        Rejected = "calibration.rejected" { in_system: u32 },
        /// queue: the server finished the request it received as number `received`.
        Served = "calibration.served" { received: u64 },
        /// queue: the time integral of the number in the system (request-seconds)
        /// and the time it covers (seconds) since the host started.
        Load = "calibration.load" { area: f64, covered: f64 },
    }
}
