//! The echo system's knobs and its configured form.

use faultline_harness::units::{Dur, DurRange, Probability};
use faultline_harness::{InputError, Knobs};
use serde::{Deserialize, Serialize};

use crate::kit::pool::Connections;

/// The configured echo system (its knobs are its whole state).
#[derive(Debug, Serialize)]
pub struct Echo {
    pub corrupt_rate: f64,
    pub service_time: DurRange,
    pub note_requests: bool,
    /// How clients hold their connections to the server.
    pub connections: Connections,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EchoKnobs {
    corrupt_rate: Option<Probability>,
    service_time: Option<DurRange>,
    note_requests: Option<bool>,
    connections: Option<Connections>,
}

pub fn configure(knobs: &Knobs<'_>) -> Result<Echo, InputError> {
    let raw: EchoKnobs = knobs.parse()?;
    Ok(Echo {
        corrupt_rate: raw.corrupt_rate.map_or(0.0, |p| p.0),
        service_time: raw.service_time.unwrap_or(DurRange::fixed(Dur::ZERO)),
        note_requests: raw.note_requests.unwrap_or(false),
        connections: raw.connections.unwrap_or_default(),
    })
}
