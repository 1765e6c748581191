//! Requests from one host to another: one request per fresh connection
//! ([`ask`]), and the same within a deadline ([`ask_within`]) with an error
//! that says which of the two went wrong. Persistent connections are in
//! [`super::pool`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::wire::{describe, read_frame, write_frame};

/// Connects attempted through [`connect`] in this process, and those that
/// failed or were cancelled, for measurements only (docs/performance.md,
/// examples/pooling.rs): nothing in a simulation reads them, so they cannot
/// change a run. Process-wide: seeds run in parallel add up.
static CONNECTS: AtomicU64 = AtomicU64::new(0);
static CONNECTS_FAILED: AtomicU64 = AtomicU64::new(0);

/// Connects attempted in this process so far, and how many of them failed
/// or were cancelled: in turmoil 0.7.2 each of those keeps its client port
/// for the rest of its run (a measurement only).
pub fn connects_attempted() -> (u64, u64) {
    (CONNECTS.load(Ordering::Relaxed), CONNECTS_FAILED.load(Ordering::Relaxed))
}

/// Counts a connect as failed unless it completed.
struct Counted {
    connected: bool,
}

impl Drop for Counted {
    fn drop(&mut self) {
        if !self.connected {
            CONNECTS_FAILED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Opens a connection to `host:port`, counted in [`connects_attempted`].
/// Every connect in this crate's systems goes through it.
pub async fn connect(host: &str, port: u16) -> std::io::Result<turmoil::net::TcpStream> {
    CONNECTS.fetch_add(1, Ordering::Relaxed);
    let mut counted = Counted { connected: false };
    let stream = turmoil::net::TcpStream::connect((host, port)).await?;
    counted.connected = true;
    Ok(stream)
}

/// One request over a fresh connection to `host:port`, and its answer.
pub async fn ask<Q: Serialize, A: DeserializeOwned>(host: &str, port: u16, request: &Q) -> std::io::Result<A> {
    let mut stream = connect(host, port).await?;
    write_frame(&mut stream, request).await?;
    read_frame(&mut stream)
        .await?
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{host} closed the connection")))
}

/// Why a request got no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// No answer within the deadline.
    Timeout(Duration),
    /// The connection failed (refused, reset, closed): the error's kind.
    Io(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Timeout(after) => {
                write!(f, "no answer within {}", faultline_harness::units::format_duration(*after))
            }
            CallError::Io(kind) => f.write_str(kind),
        }
    }
}

/// [`ask`] within `deadline`.
pub async fn ask_within<Q: Serialize, A: DeserializeOwned>(
    deadline: Duration,
    host: &str,
    port: u16,
    request: &Q,
) -> Result<A, CallError> {
    match tokio::time::timeout(deadline, ask(host, port, request)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(error)) => Err(CallError::Io(describe(&error))),
        Err(_) => Err(CallError::Timeout(deadline)),
    }
}
