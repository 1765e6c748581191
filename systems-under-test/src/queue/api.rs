//! The api: the clients' door. A submit is forwarded to the broker and
//! answered 202 with the job's id, 429 when the queue is full, or 503 when
//! the broker does not answer within `api_timeout`: every submit the api
//! receives gets an explicit answer, never silence. (`api_timeout = "none"`
//! is a planted flaw: the api waits on the broker as long as it takes, and
//! its clients time out unanswered.) A status look-up is
//! forwarded the same way. The client's side of both is here too.

use std::rc::Rc;
use std::sync::Arc;

use faultline_harness::system::HostResult;
use faultline_harness::units::Dur;
use faultline_harness::{ClientContext, HostContext, Outcome};

use super::knobs::Queue;
use super::protocol::{
    request_id, ApiReply, ApiRequest, BrokerReply, BrokerRequest, QueueEvent, QueueOp, QueueRes, SubmitAnswer, API,
    API_PORT, BROKER, BROKER_PORT,
};
use crate::kit::pool::Caller;
use crate::kit::request::CallError;
use crate::kit::serve;
use crate::kit::wire::describe;

/// What a client's failed submit says: the status code and why.
pub const FULL: &str = "429: the queue is full";
pub const UNAVAILABLE: &str = "503: the broker did not answer in time";

/// A workload client's call: one request to the api.
pub async fn call(config: &Queue, client: ClientContext<QueueEvent>, op: QueueOp) -> Outcome<QueueRes> {
    let caller = crate::kit::pool::client_caller(&client.local, config.connections);
    let request = match op {
        QueueOp::Submit { key, payload } => {
            ApiRequest::Submit { key, payload, request: request_id(client.index, client.seq) }
        }
        QueueOp::Status { job } => ApiRequest::Status { job },
    };
    match caller.ask::<_, ApiReply>(API, API_PORT, &request).await {
        Ok(ApiReply::Submit(SubmitAnswer::Accepted { job })) => Outcome::Ok(QueueRes::Accepted { job }),
        Ok(ApiReply::Submit(SubmitAnswer::Full)) => Outcome::Failed(FULL.into()),
        Ok(ApiReply::Submit(SubmitAnswer::Unavailable) | ApiReply::Unavailable) => Outcome::Failed(UNAVAILABLE.into()),
        Ok(ApiReply::Status(view)) => Outcome::Ok(QueueRes::Status(view)),
        Err(error) => Outcome::Failed(describe(&error)),
    }
}

/// A request to the broker, within `timeout` if there is one.
async fn forward(caller: &Caller, timeout: Option<Dur>, request: &BrokerRequest) -> Result<BrokerReply, CallError> {
    match timeout {
        Some(timeout) => caller.ask_within(timeout.0, BROKER, BROKER_PORT, request).await,
        None => caller.ask(BROKER, BROKER_PORT, request).await.map_err(|error| CallError::Io(describe(&error))),
    }
}

pub async fn serve(config: Arc<Queue>, mut context: HostContext<QueueEvent>) -> HostResult {
    let caller = Rc::new(Caller::new(config.connections, &mut context.rng));
    let events = context.events;
    serve::serve(API_PORT, move |request: ApiRequest| {
        let (config, events, caller) = (Arc::clone(&config), events.clone(), Rc::clone(&caller));
        async move {
            Some(match request {
                ApiRequest::Submit { key, payload, request } => {
                    events.emit(QueueEvent::ApiSubmit { request });
                    let forwarded = BrokerRequest::Submit { key, payload };
                    let answer = match forward(&caller, config.api_timeout, &forwarded).await {
                        Ok(BrokerReply::Accepted { job }) => SubmitAnswer::Accepted { job },
                        Ok(BrokerReply::Full) => SubmitAnswer::Full,
                        Ok(_) | Err(_) => SubmitAnswer::Unavailable,
                    };
                    events.emit(QueueEvent::ApiAnswer { request, answer });
                    ApiReply::Submit(answer)
                }
                ApiRequest::Status { job } => {
                    match forward(&caller, config.api_timeout, &BrokerRequest::Status { job }).await {
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
