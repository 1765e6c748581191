//! What the echo system says: its operation, its port and its events. The
//! wire format is a payload (u64) in a frame, answered with a u64.

use serde::{Deserialize, Serialize};

pub const PORT: u16 = 7000;
pub const SERVER: &str = "server";

/// One client operation: echo this payload.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EchoOp {
    pub payload: u64,
}

faultline_harness::system_events! {
    /// What the echo server reports.
    pub enum EchoEvent {
        /// The server is listening.
        ServerStart = "server.start" { incarnation: u32 },
        /// The server answered `payload` with `sent`.
        Corrupted = "echo.corrupted" { payload: u64, sent: u64 },
        /// The server read a request for `payload` (with `note_requests`).
        Received = "echo.received" { payload: u64 },
    }
}
