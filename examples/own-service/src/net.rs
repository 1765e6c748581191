//! The one place the service names its network: tokio's real sockets, or,
//! with the `simulation` feature, turmoil's simulated ones. turmoil's
//! `TcpListener` and `TcpStream` mirror tokio's API (bind, accept, connect,
//! AsyncRead, AsyncWrite), so the rest of the service is the same code in
//! production and under faultline.
//!
//! Why a feature and not `cfg(test)` or a trait: `cfg(test)` is set only for
//! this crate's own unit tests, not for a simulation binary or an
//! integration test that links the crate, so it cannot choose the network a
//! simulation runs on; a trait over listeners and streams would thread a
//! type parameter through every function that touches a socket. A feature
//! is one module and two lines.
//!
//! turmoil's listeners bind only `0.0.0.0` (or localhost): bind the wildcard
//! address, which works in production too.

#[cfg(feature = "simulation")]
pub use turmoil::net::{TcpListener, TcpStream};

#[cfg(not(feature = "simulation"))]
pub use tokio::net::{TcpListener, TcpStream};
