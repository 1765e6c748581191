//! The popular-items cache: it always has them, when it can be reached. The
//! app's fallback asks it before falling back further, to static defaults.

use faultline_harness::system::HostResult;

use super::protocol::{CacheReply, CACHE_PORT};
use crate::kit::serve;

pub async fn serve() -> HostResult {
    serve::serve(CACHE_PORT, |(): ()| async { Some::<CacheReply>(true) }).await?;
    Ok(())
}
