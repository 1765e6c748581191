//! The scenario file format as a JSON Schema (draft-07), for editors with
//! TOML schema support (taplo, Even Better TOML): completion and checks of
//! keys as they are typed.
//!
//! Built from what the parser itself accepts: the keys of each table come
//! from the parser's own types ([`scenario::file_keys`]), the fault and chaos
//! kinds and SLO metrics from the parser's tables, the systems from a
//! [`Registry`], and each system's `[knobs]` from its [`SystemDoc`] (an
//! `if`/`then` on the `system` name, so knobs are checked per system). What
//! a key means and its type are written here, once per key; a test fails
//! when the parser accepts a key this module does not describe.
//!
//! The schema checks the shape of a file; the parser stays the judge (host
//! names, ranges, knobs that conflict). Regenerate the copy kept in the
//! repository with `faultline schema > schema/scenario.schema.json`.

use serde_json::{json, Map, Value};

use crate::registry::Registry;
use crate::scenario::{self, SloUnit, CHAOS_KINDS, FAULT_KINDS, SLO_METRICS};
use crate::system::{KnobDoc, SystemDoc};

/// Where the repository keeps the generated schema.
pub const SCHEMA_PATH: &str = "schema/scenario.schema.json";

fn duration() -> Value {
    json!({ "type": "string", "pattern": "^\\s*[0-9]", "examples": ["250ms", "10s", "1m30s"] })
}

fn duration_range() -> Value {
    json!({ "type": "string", "pattern": "^\\s*[0-9]", "examples": ["5ms", "1ms..20ms"] })
}

fn rate() -> Value {
    json!({ "type": "string", "pattern": "/\\s*(s|m|h|min|sec|second|minute|hour)\\s*$", "examples": ["200/s"] })
}

fn probability() -> Value {
    json!({ "anyOf": [{ "type": "number", "minimum": 0, "maximum": 1 }, { "type": "string", "pattern": "%\\s*$" }],
            "examples": [0.05, "5%"] })
}

fn hosts() -> Value {
    json!({ "type": "array", "items": { "type": "string" }, "examples": [["db"], ["app-*"]] })
}

fn count() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

fn described(mut schema: Value, about: &str) -> Value {
    schema["description"] = Value::String(about.to_string());
    schema
}

/// The type and meaning of a key of a table that holds values (not tables).
#[allow(clippy::too_many_lines)] // one arm a key: the format's reference, read top to bottom
fn value_key(table: &str, key: &str) -> Option<Value> {
    let (schema, about) = match (table, key) {
        ("", "name") => (json!({ "type": "string" }), "the scenario's name, shown in reports"),
        ("", "about") => (json!({ "type": "string" }), "what the scenario shows, in a sentence or two"),
        ("", "system") => (json!({ "type": "string" }), "the system under test (`faultline list` shows them)"),
        ("", "duration") => (duration(), "length of the fault phase; the heal phase follows"),
        ("", "heal") => (duration(), "length of the heal phase, every fault off (default 5s)"),
        ("", "tick") => (duration(), "the simulation's step (default 1ms)"),
        ("", "seeds") => (count(), "seeds `cargo test` and `sweep` run by default: 1..=seeds"),
        ("", "seed") => {
            (json!({ "type": ["integer", "string"] }), "pins the scenario to one seed (a shrunk reproducer)")
        }
        ("network", "latency") => (duration_range(), "one-way latency of every link, drawn per message"),
        ("network", "tcp_capacity") => (count(), "turmoil's per-host TCP buffer capacity, in segments"),
        ("workload", "clients") => (count(), "workload clients (client-0..client-N-1)"),
        ("workload", "mode") => {
            (json!({ "enum": ["open", "closed"] }), "open loop (arrivals at `rate`) or closed-loop sessions (`think`)")
        }
        ("workload", "rate") => (rate(), "total request rate over all clients (open loop)"),
        ("workload", "arrival") => {
            (json!({ "enum": ["poisson", "uniform"] }), "how arrivals are spaced (default poisson)")
        }
        ("workload", "think") => (duration_range(), "a closed-loop session's pause between answer and next request"),
        ("workload", "deadline") => (duration(), "a request with no answer by then times out"),
        ("workload.stages", "duration") => (duration(), "how long the stage ramps"),
        ("workload.stages", "target") => (rate(), "the rate reached at the stage's end"),
        ("fault", "kind") => {
            (json!({ "enum": FAULT_KINDS.iter().map(|(k, _)| *k).collect::<Vec<_>>() }), "what the fault does")
        }
        ("fault", "at") => (duration(), "when it starts, from the start of the run"),
        ("fault", "for") => (duration(), "how long it lasts (default: until the heal phase)"),
        ("fault", "hosts") => (hosts(), "the hosts a crash or restart acts on (globs allowed)"),
        ("fault", "between") => (
            json!({ "type": "array", "items": { "type": "array", "items": { "type": "string" } } }),
            "two host groups a link fault acts between",
        ),
        ("fault", "oneway") => (
            json!({ "type": "boolean" }),
            "a partition or blackhole acts only on messages from the first group to the second",
        ),
        ("fault", "restart_after") => (duration(), "a crash's hosts start again after this long"),
        ("fault", "latency") => (duration_range(), "a latency fault's one-way latency"),
        ("fault", "rate") => (probability(), "a loss fault's chance that a message fails"),
        ("chaos", "swarm") => (json!({ "type": "boolean" }), "a random subset of the generators per seed"),
        ("chaos.crash", "hosts") | ("chaos.restart", "hosts") | ("chaos.link", "hosts") => {
            (hosts(), "the hosts the generator picks from")
        }
        ("chaos.crash", "mtbf") => (duration(), "mean time between a host's crashes (or power losses)"),
        ("chaos.crash", "mttr") => (duration(), "mean time a crashed (or powered-off) host stays down"),
        ("chaos.restart", "every") | ("chaos.link", "every") => {
            (duration(), "mean time between the generator's faults")
        }
        ("chaos.link", "for") => (duration_range(), "how long each fault lasts"),
        ("chaos.link", "latency") => (duration_range(), "a latency generator's one-way latency"),
        ("chaos.link", "rate") => (probability(), "a loss generator's chance that a message fails"),
        ("check", "invariants") => (
            json!({ "type": "array", "items": { "type": "string" } }),
            "invariants to check (default: what the system promises)",
        ),
        ("check", "expect") => (
            json!({ "anyOf": [{ "type": "string" }, { "type": "array", "items": { "type": "string" } }] }),
            "\"pass\", or \"violation:<invariant>\" (or a list) for a known flaw",
        ),
        ("check", "reached") => {
            (json!({ "type": "array", "items": { "type": "string" } }), "event kinds some seed must report")
        }
        ("check", "recover_within") => {
            (duration(), "liveness: requests invoked this long after the heal must be served")
        }
        ("metrics", "probe_interval") => (duration(), "send the health probe this often (time view from the probe)"),
        ("metrics", "window") => (duration(), "request-window width of the time view without a probe"),
        ("metrics", "up_ratio") => (probability(), "a window is up when this share of its requests is good"),
        ("metrics", "probe_threshold") => (count(), "consecutive probes that must disagree to change the state"),
        ("metrics", "probe_up") => (json!({ "enum": ["served", "fresh"] }), "what counts as an up probe"),
        _ => return None,
    };
    Some(described(schema, about))
}

/// The keys of `table` that hold tables, and their schemas.
fn table_key(table: &str, key: &str) -> Option<Value> {
    let object = |name: &str| object_of(name);
    Some(match (table, key) {
        ("", "network" | "workload" | "chaos" | "check" | "metrics") => object(key),
        ("", "fault") => described(json!({ "type": "array", "items": object("fault") }), "a planned fault ([[fault]])"),
        ("", "knobs") => described(json!({ "type": "object" }), "the system's own settings (checked per system)"),
        ("", "slo") => slo(),
        ("workload", "stages") => {
            described(json!({ "type": "array", "items": object("workload.stages") }), "k6-style ramping stages")
        }
        ("chaos", "crash" | "restart") => object(&format!("chaos.{key}")),
        ("chaos", "power-off") => object("chaos.crash"),
        ("chaos", kind) if CHAOS_KINDS.iter().any(|(k, _)| *k == kind) => object("chaos.link"),
        _ => return None,
    })
}

/// The schema of the table `name`, from the keys its parser type accepts.
fn object_of(name: &str) -> Value {
    let keys = scenario::file_keys().into_iter().find(|(table, _)| *table == name).map_or(&[][..], |(_, keys)| keys);
    let mut properties = Map::new();
    for key in keys {
        let schema = table_key(name, key).or_else(|| value_key(name, key)).unwrap_or_else(|| json!({}));
        properties.insert((*key).to_string(), schema);
    }
    let mut object = json!({ "type": "object", "properties": properties, "additionalProperties": false });
    let required: Vec<&str> = match name {
        "" => vec!["name", "system", "duration", "workload"],
        "fault" => vec!["kind", "at"],
        "workload.stages" => vec!["duration", "target"],
        "chaos.crash" => vec!["hosts", "mtbf", "mttr"],
        "chaos.restart" => vec!["hosts", "every"],
        "chaos.link" => vec!["every", "for"],
        _ => Vec::new(),
    };
    if !required.is_empty() {
        object["required"] = json!(required);
    }
    object
}

fn slo() -> Value {
    let mut properties = Map::new();
    for (metric, unit, about) in SLO_METRICS {
        let example = match unit {
            SloUnit::Percent => ">= 99.5%",
            SloUnit::Duration => "<= 200ms",
        };
        let schema =
            json!({ "type": "string", "pattern": "^\\s*(<=|>=|<|>|==)", "description": about, "examples": [example] });
        properties.insert((*metric).to_string(), schema);
    }
    described(
        json!({ "type": "object", "properties": properties, "additionalProperties": false }),
        "service-level objectives held against each run's figures",
    )
}

/// A knob's schema, by the unit its doc gives.
fn knob(doc: &KnobDoc) -> Value {
    let schema = match doc.unit {
        "bool" => json!({ "type": "boolean" }),
        "count" => count(),
        "number" => json!({ "type": "number" }),
        "probability" => probability(),
        "duration" => duration(),
        "duration range" => duration_range(),
        "rate" => rate(),
        "string" => json!({ "type": "string" }),
        _ => json!({ "type": ["integer", "number", "string", "boolean"] }),
    };
    described(schema, &format!("{} ({}; default {})", doc.about, doc.unit, doc.default))
}

fn knobs_of(doc: &SystemDoc) -> Value {
    let properties: Map<String, Value> = doc.knobs.iter().map(|k| (k.name.to_string(), knob(k))).collect();
    json!({
        "if": { "properties": { "system": { "const": doc.name } }, "required": ["system"] },
        "then": { "properties": { "knobs": {
            "type": "object",
            "description": format!("the knobs of system {} (`faultline list` shows them)", doc.name),
            "properties": properties,
            "additionalProperties": false,
        } } },
    })
}

/// The scenario file format as a JSON Schema, for the systems of `registry`.
pub fn scenario_schema(registry: &Registry) -> Value {
    let mut schema = object_of("");
    let names: Vec<&str> = registry.names().collect();
    schema["properties"]["system"]["enum"] = json!(names);
    let per_system: Vec<Value> = registry.entries().map(|entry| knobs_of(entry.doc)).collect();
    let mut root = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "faultline scenario",
        "description": "A faultline scenario file (docs/scenarios.md). Generated by `faultline schema`: do not edit.",
    });
    let root_map = root.as_object_mut().expect("an object");
    for (key, value) in schema.as_object().expect("an object") {
        root_map.insert(key.clone(), value.clone());
    }
    root_map.insert("allOf".into(), Value::Array(per_system));
    root
}

/// The schema as the repository keeps it: pretty JSON and a final newline.
pub fn scenario_schema_text(registry: &Registry) -> String {
    let mut text = serde_json::to_string_pretty(&scenario_schema(registry)).expect("a schema serializes");
    text.push('\n');
    text
}

/// Keys the parser accepts that this module does not describe, as
/// `[table] key` (a test holds it empty).
pub fn undescribed_keys() -> Vec<String> {
    let mut missing = Vec::new();
    for (table, keys) in scenario::file_keys() {
        for key in keys {
            if table_key(table, key).is_none() && value_key(table, key).is_none() {
                missing.push(format!("[{table}] {key}"));
            }
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_the_parser_accepts_is_described() {
        assert_eq!(undescribed_keys(), Vec::<String>::new(), "describe these keys in harness/src/schema.rs");
        let top = scenario::file_keys();
        assert!(top.iter().any(|(table, keys)| table.is_empty() && keys.contains(&"workload")), "{top:?}");
        assert!(top.iter().any(|(table, keys)| *table == "fault" && keys.contains(&"for")), "renames are read");
    }
}
