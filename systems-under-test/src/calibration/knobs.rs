//! The calibration system's knobs and its configured form.

use faultline_harness::units::{Dur, Probability, Rate};
use faultline_harness::{InputError, Knobs};
use serde::{Deserialize, Serialize};
use toml::Spanned;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    Queue,
    Flaky,
    Replicas,
}

/// The order the queue server takes waiting requests in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Discipline {
    Fifo,
    /// A planted flaw: the newest waiting request first.
    Lifo,
}

#[derive(Debug, Serialize)]
pub struct Calibration {
    pub model: Model,
    pub service_rate: f64,
    pub capacity: u32,
    pub discipline: Discipline,
    pub fail_probability: f64,
    pub attempts_max: u32,
    pub replicas: u32,
    pub replica_timeout: Dur,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CalibrationKnobs {
    model: Option<Model>,
    service_rate: Option<Spanned<Rate>>,
    capacity: Option<Spanned<i64>>,
    discipline: Option<Discipline>,
    fail_probability: Option<Probability>,
    attempts_max: Option<Spanned<i64>>,
    replicas: Option<Spanned<i64>>,
    replica_timeout: Option<Spanned<Dur>>,
}

pub fn configure(knobs: &Knobs<'_>) -> Result<Calibration, InputError> {
    let raw: CalibrationKnobs = knobs.parse()?;
    Ok(Calibration {
        model: raw.model.unwrap_or(Model::Queue),
        service_rate: knobs.rate(&raw.service_rate, 10.0, "service_rate")?,
        capacity: knobs.count(&raw.capacity, 0, 0..=1_000_000, "capacity")?,
        discipline: raw.discipline.unwrap_or(Discipline::Fifo),
        fail_probability: raw.fail_probability.map_or(0.3, |p| p.0),
        attempts_max: knobs.count(&raw.attempts_max, 3, 1..=100, "attempts_max")?,
        replicas: knobs.count(&raw.replicas, 3, 1..=16, "replicas")?,
        replica_timeout: knobs.positive(&raw.replica_timeout, Dur::from_millis(20), "replica_timeout")?,
    })
}
