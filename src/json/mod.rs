//! `--format json` of the verbs whose results are not already serialisable
//! harness types: `shrink`, `lincheck`, `list`, `calibrate` and `report`
//! (`bench` builds its own in src/bench.rs). Each verb's document is one
//! typed struct, so its field names are fixed in one place; the docs page
//! of each verb shows its shape.
//!
//! Units are in the field names: `_ns` (simulated nanoseconds), `wall_ms`
//! (milliseconds of wall-clock time), `_per_second`. Verdicts are strings.

pub mod calibrate;
pub mod lincheck;
pub mod list;
pub mod report;
pub mod shrink;

use serde::Serialize;

/// Prints `value` as one JSON document, on one line, on standard output.
pub fn print<T: Serialize>(value: &T) {
    println!("{}", serde_json::to_string(value).expect("output documents serialize"));
}
