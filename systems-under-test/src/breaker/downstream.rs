//! The downstream: answers each call with a user's items after a service
//! time, with an error for a share of calls (`downstream_failure_rate`), or
//! with "bad request" for user 0. It logs every call it receives, with the
//! time the app sent it, so the checkers see what the breaker let through
//! without taking the breaker's word for it.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use faultline_harness::system::HostResult;
use faultline_harness::HostContext;
use rand::Rng;

use super::knobs::Breaker;
use super::protocol::{BreakerEvent, DownstreamReply, DownstreamRequest, DOWNSTREAM_PORT, PROBE_USER};
use crate::kit::{draw, serve};

pub async fn serve(config: Arc<Breaker>, context: HostContext<BreakerEvent>) -> HostResult {
    let rng = Rc::new(RefCell::new(context.rng));
    let events = context.events;
    serve::serve(DOWNSTREAM_PORT, move |request: DownstreamRequest| {
        let (config, rng, events) = (Arc::clone(&config), Rc::clone(&rng), events.clone());
        async move {
            let probe = request.user == PROBE_USER;
            events.emit(BreakerEvent::DownstreamCall { attempt: request.attempt, sent: request.sent, probe });
            let (pause, fail) = {
                let mut rng = rng.borrow_mut();
                (draw::duration(&mut rng, config.service_time), rng.random_bool(config.downstream_failure_rate))
            };
            tokio::time::sleep(pause).await;
            Some(if request.user == 0 {
                DownstreamReply::BadRequest
            } else if fail {
                DownstreamReply::Error
            } else {
                DownstreamReply::Items
            })
        }
    })
    .await?;
    Ok(())
}
