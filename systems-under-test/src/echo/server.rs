//! The echo server: answers each payload with itself, after a service time,
//! or with one bit flipped when the planted `corrupt_rate` says so.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use faultline_harness::system::HostResult;
use faultline_harness::HostContext;
use rand::Rng;

use super::protocol::{EchoEvent, PORT};
use super::Echo;
use crate::kit::{draw, serve};

pub async fn serve(echo: Arc<Echo>, context: HostContext<EchoEvent>) -> HostResult {
    context.events.emit(EchoEvent::ServerStart { incarnation: context.incarnation });
    let rng = Rc::new(RefCell::new(context.rng));
    let events = context.events;
    serve::serve(PORT, move |payload: u64| {
        let (echo, rng, events) = (Arc::clone(&echo), Rc::clone(&rng), events.clone());
        async move {
            if echo.note_requests {
                events.emit(EchoEvent::Received { payload });
            }
            let (pause, corrupt) = {
                let mut rng = rng.borrow_mut();
                let pause = draw::duration(&mut rng, echo.service_time);
                (pause, echo.corrupt_rate > 0.0 && rng.random_bool(echo.corrupt_rate))
            };
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            if !corrupt {
                return Some(payload);
            }
            let sent = payload ^ (1 << (payload % 64));
            events.emit(EchoEvent::Corrupted { payload, sent });
            Some(sent)
        }
    })
    .await?;
    Ok(())
}
