//! Service code that several systems share, written once: the wire format,
//! a serve loop with idle timeouts, requests with deadlines, pooled
//! connections, retry policies (backoff, jitter, budgets), key routing,
//! portable random draws and an append-only log on the simulated disk.
//!
//! Everything here runs inside simulated hosts except `retry`'s envelopes,
//! `route` and `draw`, which are pure and usable from checkers too.

pub mod disk;
pub mod draw;
pub mod pool;
pub mod request;
pub mod retry;
pub mod route;
pub mod serve;
pub mod wire;
