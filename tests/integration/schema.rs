//! The scenario file format's JSON Schema (schema/scenario.schema.json):
//! kept fresh, and true to the parser: every shipped scenario file passes
//! it, and it refuses a knob of another system.

use serde_json::Value;

use crate::support::{repo_file, root};

const REGENERATE: &str = "regenerate it: `cargo run -- schema > schema/scenario.schema.json` \
                          (or FAULTLINE_BLESS=1 cargo test --test integration schema)";

fn schema() -> Value {
    serde_json::from_str(&faultline_harness::schema::scenario_schema_text(&faultline_systems::registry()))
        .expect("the schema is JSON")
}

#[test]
fn the_kept_schema_is_the_generated_one() {
    let generated = faultline_harness::schema::scenario_schema_text(&faultline_systems::registry());
    let path = repo_file(faultline_harness::schema::SCHEMA_PATH);
    if std::env::var_os("FAULTLINE_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("the schema is written");
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        kept == generated,
        "{} is stale (a system, a knob or a scenario key changed): {REGENERATE}",
        path.display()
    );
}

/// A validator for the part of JSON Schema the generated schema uses
/// (types, enums, consts, properties, required, items, anyOf, allOf,
/// if/then, minimum/maximum; patterns are left to the parser).
fn errors(value: &Value, schema: &Value, at: &str, found: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else { return };
    if let Some(types) = schema.get("type") {
        let names: Vec<&str> = match types {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let fits = names.iter().any(|name| match *name {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            _ => false,
        });
        if !fits {
            found.push(format!("{at}: {value} is not of type {types}"));
            return;
        }
    }
    if let Some(Value::Array(options)) = schema.get("enum") {
        if !options.contains(value) {
            found.push(format!("{at}: {value} is not one of {options:?}"));
        }
    }
    if let Some(constant) = schema.get("const") {
        if constant != value {
            found.push(format!("{at}: {value} is not {constant}"));
        }
    }
    if let (Some(min), Some(number)) = (schema.get("minimum").and_then(Value::as_f64), value.as_f64()) {
        if number < min {
            found.push(format!("{at}: {number} is below {min}"));
        }
    }
    if let (Some(max), Some(number)) = (schema.get("maximum").and_then(Value::as_f64), value.as_f64()) {
        if number > max {
            found.push(format!("{at}: {number} is above {max}"));
        }
    }
    object_errors(value, schema, at, found);
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (index, item) in array.iter().enumerate() {
            errors(item, items, &format!("{at}[{index}]"), found);
        }
    }
    if let Some(Value::Array(options)) = schema.get("anyOf") {
        let fits = options.iter().any(|option| {
            let mut inner = Vec::new();
            errors(value, option, at, &mut inner);
            inner.is_empty()
        });
        if !fits {
            found.push(format!("{at}: {value} matches none of anyOf"));
        }
    }
    for part in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        errors(value, part, at, found);
    }
    if let (Some(condition), Some(then)) = (schema.get("if"), schema.get("then")) {
        let mut inner = Vec::new();
        errors(value, condition, at, &mut inner);
        if inner.is_empty() {
            errors(value, then, at, found);
        }
    }
}

fn object_errors(value: &Value, schema: &serde_json::Map<String, Value>, at: &str, found: &mut Vec<String>) {
    let Some(object) = value.as_object() else { return };
    let properties = schema.get("properties").and_then(Value::as_object);
    for key in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        if !object.contains_key(key) {
            found.push(format!("{at}: missing {key}"));
        }
    }
    for (key, item) in object {
        match properties.and_then(|p| p.get(key)) {
            Some(property) => errors(item, property, &format!("{at}.{key}"), found),
            None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                found.push(format!("{at}: unknown key {key}"));
            }
            None => {}
        }
    }
}

fn validate(source: &str) -> Vec<String> {
    let table: toml::Table = source.parse().expect("TOML");
    let value = serde_json::to_value(table).expect("TOML as JSON");
    let mut found = Vec::new();
    errors(&value, &schema(), "", &mut found);
    found
}

fn scenario_files(dir: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a scenarios folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            scenario_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "toml") {
            files.push(path);
        }
    }
}

#[test]
fn every_shipped_scenario_passes_the_schema() {
    let mut files = Vec::new();
    scenario_files(&root().join("scenarios"), &mut files);
    scenario_files(&root().join("tests/golden"), &mut files);
    assert!(files.len() > 40, "{} files", files.len());
    for file in files {
        let found = validate(&std::fs::read_to_string(&file).expect("a scenario"));
        assert!(found.is_empty(), "{}: {found:#?}", file.display());
    }
}

#[test]
fn knobs_are_checked_per_system_and_unknown_keys_are_refused() {
    let breaker = "name = \"x\"\nsystem = \"breaker\"\nduration = \"1s\"\n[workload]\nrate = \"10/s\"\n[knobs]\n";
    assert_eq!(validate(&format!("{breaker}failure_threshold = 3\n")), Vec::<String>::new());
    let misspelled = validate(&format!("{breaker}failure_treshold = 3\n"));
    assert!(misspelled.iter().any(|e| e.contains("unknown key failure_treshold")), "{misspelled:?}");
    let echo = breaker.replace("breaker", "echo");
    let foreign = validate(&format!("{echo}failure_threshold = 3\n"));
    assert!(
        foreign.iter().any(|e| e.contains("unknown key failure_threshold")),
        "echo has no breaker knobs: {foreign:?}"
    );
    let typo =
        validate("name = \"x\"\nsystem = \"echo\"\nduration = \"1s\"\nduraton = \"1s\"\n[workload]\nrate = \"1/s\"\n");
    assert!(typo.iter().any(|e| e.contains("unknown key duraton")), "{typo:?}");
    let kind = validate("name = \"x\"\nsystem = \"echo\"\nduration = \"1s\"\n[workload]\nrate = \"1/s\"\n[[fault]]\nkind = \"crahs\"\nat = \"1s\"\n");
    assert!(kind.iter().any(|e| e.contains("crahs")), "{kind:?}");
}
