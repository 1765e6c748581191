//! The api: the clients' door. A submit is forwarded to the broker and
//! answered 202 with the job's id, 429 when the queue is full, or 503 when
//! the broker does not answer within `broker_timeout`: every submit the api
//! receives gets an explicit answer, never silence. A status look-up is
//! forwarded the same way. The client's side of both is here too.

use std::sync::Arc;

use faultline_harness::system::HostResult;
use faultline_harness::{ClientContext, HostContext, Outcome};

use super::knobs::Queue;
use super::protocol::{
    ApiReply, ApiRequest, BrokerReply, BrokerRequest, QueueEvent, QueueOp, QueueRes, SubmitAnswer, API, API_PORT,
    BROKER, BROKER_PORT,
};
use crate::kit::request::{ask, ask_within};
use crate::kit::serve;
use crate::kit::wire::describe;

/// What a client's failed submit says: the status code and why.
pub const FULL: &str = "429: the queue is full";
pub const UNAVAILABLE: &str = "503: the broker did not answer in time";

/// The name of a client's operation, for the api's events: client index and
/// sequence number.
pub fn request_id(client: u32, seq: u64) -> u64 {
    assert!(seq < 1 << 32, "a client sends fewer than 2^32 operations");
    (u64::from(client) << 32) | seq
}

/// A workload client's call: one request to the api.
pub async fn call(client: ClientContext<QueueEvent>, op: QueueOp) -> Outcome<QueueRes> {
    let request = match op {
        QueueOp::Submit { key, payload } => {
            ApiRequest::Submit { key, payload, request: request_id(client.index, client.seq) }
        }
        QueueOp::Status { job } => ApiRequest::Status { job },
    };
    match ask::<_, ApiReply>(API, API_PORT, &request).await {
        Ok(ApiReply::Submit(SubmitAnswer::Accepted { job })) => Outcome::Ok(QueueRes::Accepted { job }),
        Ok(ApiReply::Submit(SubmitAnswer::Full)) => Outcome::Failed(FULL.into()),
        Ok(ApiReply::Submit(SubmitAnswer::Unavailable) | ApiReply::Unavailable) => Outcome::Failed(UNAVAILABLE.into()),
        Ok(ApiReply::Status(view)) => Outcome::Ok(QueueRes::Status(view)),
        Err(error) => Outcome::Failed(describe(&error)),
    }
}

pub async fn serve(config: Arc<Queue>, context: HostContext<QueueEvent>) -> HostResult {
    let events = context.events;
    serve::serve(API_PORT, move |request: ApiRequest| {
        let (config, events) = (Arc::clone(&config), events.clone());
        async move {
            let timeout = config.broker_timeout.0;
            Some(match request {
                ApiRequest::Submit { key, payload, request } => {
                    events.emit(QueueEvent::ApiSubmit { request });
                    let forwarded = BrokerRequest::Submit { key, payload };
                    let answer = match ask_within(timeout, BROKER, BROKER_PORT, &forwarded).await {
                        Ok(BrokerReply::Accepted { job }) => SubmitAnswer::Accepted { job },
                        Ok(BrokerReply::Full) => SubmitAnswer::Full,
                        Ok(_) | Err(_) => SubmitAnswer::Unavailable,
                    };
                    events.emit(QueueEvent::ApiAnswer { request, answer });
                    ApiReply::Submit(answer)
                }
                ApiRequest::Status { job } => {
                    match ask_within(timeout, BROKER, BROKER_PORT, &BrokerRequest::Status { job }).await {
                        Ok(BrokerReply::Status(view)) => ApiReply::Status(view),
                        Ok(_) | Err(_) => ApiReply::Unavailable,
                    }
                }
            })
        }
    })
    .await?;
    Ok(())
}
