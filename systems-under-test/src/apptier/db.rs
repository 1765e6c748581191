//! The database: the dependency an instance's readiness looks at. It answers
//! a query with a row and a ping with a pong at once; what matters here is
//! only whether an instance can reach it.

use faultline_harness::system::HostResult;

use super::protocol::{DbReply, DbRequest, DB_PORT};
use crate::kit::serve;

pub async fn serve() -> HostResult {
    serve::serve(DB_PORT, |request: DbRequest| async move {
        Some(match request {
            DbRequest::Query => DbReply::Row,
            DbRequest::Ping => DbReply::Pong,
        })
    })
    .await?;
    Ok(())
}
