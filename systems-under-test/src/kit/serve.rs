//! The serve loop every server here runs: accept connections on a port and
//! answer each request frame with the handler's reply, until the peer closes
//! the connection, an I/O error breaks it, or it has been idle too long.
//!
//! The idle timeout matters in turmoil: a request or FIN that a partition
//! ate leaves the server holding a socket for the client's port; without a
//! timeout it holds it forever, and a long run reuses that port a full wrap
//! of the ephemeral range later and panics. [`IDLE_TIMEOUT`] is far shorter
//! than a wrap at any rate a scenario allows.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use turmoil::net::{TcpListener, TcpStream};

use super::wire::{read_frame, write_frame};

/// How long a connection may wait for its next request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Binds `port` on every address (turmoil listeners bind only `0.0.0.0` or
/// localhost) and answers every request with `handler`, each connection in
/// its own task. Returns only if the listener fails.
pub async fn serve<Q, A, F, Fut>(port: u16, handler: F) -> std::io::Result<()>
where
    Q: DeserializeOwned + 'static,
    A: Serialize + 'static,
    F: Fn(Q) -> Fut + 'static,
    Fut: Future<Output = Option<A>> + 'static,
{
    let listener = TcpListener::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), port)).await?;
    let handler = Rc::new(handler);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::task::spawn_local(connection(stream, Rc::clone(&handler)));
    }
}

/// Answers the requests of one connection in order. A handler that returns
/// `None` answers nothing and closes the connection (a server that drops a
/// request on the floor).
async fn connection<Q, A, F, Fut>(mut stream: TcpStream, handler: Rc<F>)
where
    Q: DeserializeOwned,
    A: Serialize,
    F: Fn(Q) -> Fut,
    Fut: Future<Output = Option<A>>,
{
    loop {
        let request = match tokio::time::timeout(IDLE_TIMEOUT, read_frame::<_, Q>(&mut stream)).await {
            Ok(Ok(Some(request))) => request,
            // Closed, broken, or idle too long: this connection is done.
            _ => return,
        };
        let Some(reply) = handler(request).await else { return };
        if write_frame(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}
