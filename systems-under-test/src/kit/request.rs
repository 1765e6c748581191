//! Requests from one host to another: one request per fresh connection
//! ([`ask`]), and the same within a deadline ([`ask_within`]) with an error
//! that says which of the two went wrong.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::wire::{describe, read_frame, write_frame};

/// One request over a fresh connection to `host:port`, and its answer.
pub async fn ask<Q: Serialize, A: DeserializeOwned>(host: &str, port: u16, request: &Q) -> std::io::Result<A> {
    let mut stream = turmoil::net::TcpStream::connect((host, port)).await?;
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
