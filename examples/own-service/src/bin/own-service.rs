//! The real server: listens on 0.0.0.0:7379 with the fixed `INCR`.
use std::time::Duration;

use own_service::{net, serve, Config, Incr};

fn main() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let listener = net::TcpListener::bind(("0.0.0.0", 7379)).await?;
        serve(listener, Config { incr: Incr::Locked, audit_delay: Duration::from_millis(1) }).await
    })
}
