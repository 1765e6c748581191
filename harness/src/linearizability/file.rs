//! Stored histories: JSON lines of Jepsen-style records, read into
//! [`Operation`]s for the register or key-value model, checked, and reported.
//!
//! One record a line (blank lines are skipped):
//!
//! ```text
//! {"process":0,"type":"invoke","f":"write","value":3,"time":12}
//! {"process":0,"type":"ok","f":"write","value":3,"time":15}
//! ```
//!
//! - `process`: a non-negative integer. A record whose process is not an
//!   integer (Jepsen's `"nemesis"`) is skipped.
//! - `type`: `invoke`, then one of `ok`, `fail` (definitely did not happen:
//!   removed) or `info` (indeterminate) from the same process. An invoke left
//!   open at the end of the file is indeterminate. A leading `:` is accepted.
//! - `f`: `read` (or `get`), `write` (or `put`), `cas`.
//! - `value`: a read's invoke has none (or null) and its `ok` has the value
//!   read, an integer or null (never written); a write has the integer
//!   written; a cas has `[old, new]`.
//! - `key` (kv model only, required there): a string or an integer (an
//!   integer key is the same key as its decimal string).
//! - `time`: a non-negative integer, in any unit, the same clock for all
//!   records; either every record has one or none does, in which case the
//!   line order is the clock. A completion may not come before its invoke.
//! - Any other field is ignored.
//!
//! Errors name the file, line and column of the offending value and say
//! what was expected. This module reads and reports; the verdict comes from
//! `check`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::ops::Range;
use std::path::Path;

use serde_json::Value;

use super::check::{check_partitions, partitions, CheckOptions, Prepared, Verdict};
use super::model::{KeyValue, KvInput, Model, Register, RegisterInput, RegisterOutput};
use super::operation::{Completion, Operation};
use super::render::{timeline, WIDTH};
use crate::error::InputError;

/// The models a file can be checked against, as `check_file` spells them.
pub const MODELS: [&str; 2] = ["register", "kv"];

/// How many of the prefix's last operations a report draws.
const PREFIX_TAIL: usize = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// One record, as read.
struct Record {
    /// 0-based line number and the byte range of the line in the source.
    line: usize,
    span: Range<usize>,
    process: u64,
    kind: Kind,
    f: String,
    key: Option<String>,
    value: Value,
    time: Option<u64>,
}

/// The file being read, for errors with positions.
struct Source<'a> {
    file: &'a str,
    text: &'a str,
}

impl Source<'_> {
    /// An error at the value of `field` in `record` (at the line's start if
    /// the field is absent).
    fn error(&self, record: &Record, field: &str, message: impl Into<String>) -> InputError {
        let line = &self.text[record.span.clone()];
        let offset = value_offset(line, field).unwrap_or(0);
        InputError::at(self.file, self.text, record.span.start + offset..record.span.end, message)
    }
}

/// The byte offset in `line` of the value of `"field"`, found textually
/// (serde_json keeps no positions).
fn value_offset(line: &str, field: &str) -> Option<usize> {
    let quoted = format!("\"{field}\"");
    let mut from = 0;
    while let Some(found) = line[from..].find(&quoted) {
        let after = from + found + quoted.len();
        let rest = &line[after..];
        let trimmed = rest.trim_start();
        if let Some(value) = trimmed.strip_prefix(':') {
            let value_start = value.len() - value.trim_start().len();
            return Some(after + (rest.len() - trimmed.len()) + 1 + value_start);
        }
        from = after;
    }
    None
}

fn parse_line(source: &Source<'_>, line: usize, span: Range<usize>) -> Result<Option<Record>, InputError> {
    let text = &source.text[span.clone()];
    let value: Value = serde_json::from_str(text).map_err(|error| {
        let offset = text.len().min(error.column().saturating_sub(1));
        InputError::at(source.file, source.text, span.start + offset..span.end, format!("bad JSON: {error}"))
            .with_help("one JSON object a line, like {\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"time\":1}")
    })?;
    let Value::Object(object) = value else {
        return Err(InputError::at(source.file, source.text, span, "expected a JSON object"));
    };
    let mut record = Record {
        line,
        span,
        process: 0,
        kind: Kind::Invoke,
        f: String::new(),
        key: None,
        value: object.get("value").cloned().unwrap_or(Value::Null),
        time: None,
    };
    match object.get("process") {
        Some(Value::Number(number)) => {
            record.process = number.as_u64().ok_or_else(|| {
                source.error(&record, "process", format!("expected a non-negative integer process, found {number}"))
            })?;
        }
        // Jepsen's nemesis and other non-client records: not operations.
        Some(Value::String(_)) => return Ok(None),
        Some(other) => {
            return Err(source.error(&record, "process", format!("expected an integer process, found {other}")))
        }
        None => return Err(source.error(&record, "process", "missing \"process\"")),
    }
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.trim_start_matches(':'),
        Some(other) => return Err(source.error(&record, "type", format!("expected a string type, found {other}"))),
        None => return Err(source.error(&record, "type", "missing \"type\"")),
    };
    record.kind = match kind {
        "invoke" => Kind::Invoke,
        "ok" => Kind::Ok,
        "fail" => Kind::Fail,
        "info" => Kind::Info,
        other => {
            return Err(source
                .error(&record, "type", format!("unknown type \"{other}\""))
                .with_help("expected one of \"invoke\", \"ok\", \"fail\", \"info\""))
        }
    };
    record.f = match object.get("f") {
        Some(Value::String(f)) => f.trim_start_matches(':').to_string(),
        Some(other) => return Err(source.error(&record, "f", format!("expected a string f, found {other}"))),
        None => return Err(source.error(&record, "f", "missing \"f\"")),
    };
    record.key = match object.get("key") {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) => Some(key.clone()),
        Some(Value::Number(number)) if number.is_i64() || number.is_u64() => Some(number.to_string()),
        Some(other) => {
            return Err(source.error(&record, "key", format!("expected a string or integer key, found {other}")))
        }
    };
    record.time = match object.get("time") {
        None => None,
        Some(Value::Number(number)) => Some(number.as_u64().ok_or_else(|| {
            source.error(&record, "time", format!("expected a non-negative integer time, found {number}"))
        })?),
        Some(other) => return Err(source.error(&record, "time", format!("expected an integer time, found {other}"))),
    };
    Ok(Some(record))
}

/// An invoke and how it ended (`None`: open at the end of the file).
struct Pair {
    invoke: Record,
    completion: Option<Record>,
}

/// Reads the records of `text` and pairs each invoke with its process's
/// next completion.
// One pass over the records with its per-process state in view: split, the
// pairing rules (invoke, ok, fail, info, a second invoke) would be harder to check.
#[allow(clippy::too_many_lines)]
fn pairs(source: &Source<'_>) -> Result<(Vec<Pair>, usize), InputError> {
    let mut pairs: Vec<Pair> = Vec::new();
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    let mut records = 0;
    let mut timed: Option<(bool, usize)> = None;
    let mut offset = 0;
    for (line, raw) in source.text.split_inclusive('\n').enumerate() {
        let span = offset..offset + raw.trim_end_matches(['\n', '\r']).len();
        offset += raw.len();
        if source.text[span.clone()].trim().is_empty() {
            continue;
        }
        let Some(record) = parse_line(source, line, span)? else { continue };
        records += 1;
        match timed {
            None => timed = Some((record.time.is_some(), record.line)),
            Some((has_time, first_line)) if has_time != record.time.is_some() => {
                let message = if has_time {
                    format!("missing \"time\", which line {} has", first_line + 1)
                } else {
                    format!("a \"time\", which line {} has not", first_line + 1)
                };
                return Err(source
                    .error(&record, "time", message)
                    .with_help("give every record a time, or none (then the line order is the clock)"));
            }
            Some(_) => {}
        }
        match record.kind {
            Kind::Invoke => {
                if let Some(&earlier) = open.get(&record.process) {
                    let message = format!(
                        "process {} invoked again before its {} at line {} completed",
                        record.process,
                        pairs[earlier].invoke.f,
                        pairs[earlier].invoke.line + 1
                    );
                    return Err(source.error(&record, "process", message).with_help(
                        "each process has at most one operation in flight; end the first with ok, fail or info",
                    ));
                }
                open.insert(record.process, pairs.len());
                pairs.push(Pair { invoke: record, completion: None });
            }
            Kind::Ok | Kind::Fail | Kind::Info => {
                let Some(index) = open.remove(&record.process) else {
                    let kind = format!("{:?}", record.kind).to_lowercase();
                    return Err(source.error(
                        &record,
                        "type",
                        format!("{kind} for process {} without an invoke", record.process),
                    ));
                };
                let invoke = &pairs[index].invoke;
                if invoke.f != record.f {
                    let message = format!(
                        "f \"{}\" does not match the invoke of process {} at line {} (\"{}\")",
                        record.f,
                        record.process,
                        invoke.line + 1,
                        invoke.f
                    );
                    return Err(source.error(&record, "f", message));
                }
                if record.key.is_some() && record.key != invoke.key {
                    let message = format!("key does not match the invoke at line {}", invoke.line + 1);
                    return Err(source.error(&record, "key", message));
                }
                if let (Some(call), Some(ret)) = (invoke.time, record.time) {
                    if ret < call {
                        let message = format!(
                            "completion at time {ret}, before its invoke at time {call} (line {})",
                            invoke.line + 1
                        );
                        return Err(source.error(&record, "time", message));
                    }
                }
                pairs[index].completion = Some(record);
            }
        }
    }
    Ok((pairs, records))
}

fn integer(value: &Value) -> Option<i64> {
    value.as_i64()
}

/// The register operation of a pair: its input and, when it returned, its
/// output.
fn register_op(source: &Source<'_>, pair: &Pair) -> Result<(RegisterInput, Option<RegisterOutput>), InputError> {
    let invoke = &pair.invoke;
    let returned = pair.completion.as_ref().filter(|completion| completion.kind == Kind::Ok);
    match invoke.f.as_str() {
        "read" | "get" => {
            let output = match returned {
                None => None,
                Some(completion) => match &completion.value {
                    Value::Null => Some(RegisterOutput::Read(None)),
                    value => Some(RegisterOutput::Read(Some(integer(value).ok_or_else(|| {
                        source.error(completion, "value", format!("expected the integer read (or null), found {value}"))
                    })?))),
                },
            };
            Ok((RegisterInput::Read, output))
        }
        "write" | "put" => {
            let value = integer(&invoke.value).ok_or_else(|| {
                source.error(invoke, "value", format!("expected the integer to write, found {}", invoke.value))
            })?;
            Ok((RegisterInput::Write(value), returned.map(|_| RegisterOutput::Write)))
        }
        "cas" => {
            let pair = match &invoke.value {
                Value::Array(items) if items.len() == 2 => integer(&items[0]).zip(integer(&items[1])),
                _ => None,
            };
            let (old, new) = pair.ok_or_else(|| {
                source.error(invoke, "value", format!("expected [old, new] integers for a cas, found {}", invoke.value))
            })?;
            Ok((RegisterInput::Cas { old, new }, returned.map(|_| RegisterOutput::Cas(true))))
        }
        other => Err(source
            .error(invoke, "f", format!("unknown f \"{other}\""))
            .with_help("expected one of \"read\" (or \"get\"), \"write\" (or \"put\"), \"cas\"")),
    }
}

/// The operations of `pairs`, each built by `convert` (input and, when it
/// returned, output).
fn operations<I, O>(
    pairs: &[Pair],
    mut convert: impl FnMut(&Pair) -> Result<(I, Option<O>), InputError>,
) -> Result<Vec<Operation<I, O>>, InputError> {
    pairs
        .iter()
        .map(|pair| {
            let (input, output) = convert(pair)?;
            // Without times, the line order is the clock.
            let call = pair.invoke.time.unwrap_or(pair.invoke.line as u64);
            let completion = match (&pair.completion, output) {
                (Some(completion), Some(output)) if completion.kind == Kind::Ok => {
                    Completion::Returned { ret: completion.time.unwrap_or(completion.line as u64), output }
                }
                (Some(completion), _) if completion.kind == Kind::Fail => Completion::Failed,
                _ => Completion::Indeterminate,
            };
            Ok(Operation { client: pair.invoke.process, call, input, completion })
        })
        .collect()
}

/// Reads a register history from `text` (the contents of `file`).
pub fn read_register(file: &str, text: &str) -> Result<Vec<Operation<RegisterInput, RegisterOutput>>, InputError> {
    let source = Source { file, text };
    let (pairs, _) = pairs(&source)?;
    operations(&pairs, |pair| {
        if pair.invoke.key.is_some() {
            return Err(source
                .error(&pair.invoke, "key", "the register model takes no \"key\"")
                .with_help("check the file with the kv model"));
        }
        register_op(&source, pair)
    })
}

/// Reads a key-value history from `text` (the contents of `file`).
pub fn read_kv(file: &str, text: &str) -> Result<Vec<Operation<KvInput, RegisterOutput>>, InputError> {
    let source = Source { file, text };
    let (pairs, _) = pairs(&source)?;
    operations(&pairs, |pair| {
        let key = pair.invoke.key.clone().ok_or_else(|| {
            source.error(&pair.invoke, "key", "missing \"key\"").with_help("the kv model needs a key on every invoke")
        })?;
        let (op, output) = register_op(&source, pair)?;
        Ok((KvInput { key, op }, output))
    })
}

/// Reads the history in `path` and checks it against the model named
/// `model_name` (one of [`MODELS`]). The register starts nil.
pub fn check_file(path: &Path, model_name: &str, options: &CheckOptions) -> Result<Report, InputError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|error| InputError::new(&file, format!("cannot read the history: {error}")))?;
    match model_name {
        "register" => Ok(report(&Register { initial: None }, &file, &read_register(&file, &text)?, options)),
        "kv" => Ok(report(&KeyValue, &file, &read_kv(&file, &text)?, options)),
        other => Err(InputError::new(&file, format!("unknown model \"{other}\""))
            .with_help(format!("expected one of {}", MODELS.map(|name| format!("\"{name}\"")).join(", ")))),
    }
}

/// What a check found, ready to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Where the history came from (a file name, a system's name).
    pub source: String,
    /// The model's name ([`Model::name`]: "register", "kv").
    pub model: &'static str,
    /// What preparation removed and how many partitions were left.
    pub prepared: Prepared,
    /// The verdict, with its evidence rendered.
    pub verdict: ReportVerdict,
}

/// [`Verdict`] with its operations rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportVerdict {
    /// Every partition has a linearization.
    Linearizable,
    /// The first partition in key order that has none, with its evidence.
    NotLinearizable {
        /// The partition's key, as the model labels it ([`Model::describe_key`]).
        partition: String,
        /// Operations of the partition the search saw.
        partition_operations: usize,
        /// Operations in the smallest failing slice the shrinker found.
        slice_operations: usize,
        /// Does the slice fail from every initial state the model offers
        /// (so it stands on its own), or only from the real one?
        slice_from_any_state: bool,
        /// The slice, drawn as a timeline, one line per operation.
        slice_timeline: String,
        /// Operations in the longest prefix proved linearizable.
        prefix_operations: usize,
        /// The prefix's last operations (at most 24), drawn.
        prefix_tail_timeline: String,
        /// The operation called right after the prefix, as `p<client>
        /// <call>..<ret> <label>` (`..?` when it never returned); `None` when
        /// the prefix is the whole partition.
        next_operation: Option<String>,
        /// Set when shrinking stopped at a budget: the slice may not be the
        /// smallest, nor the prefix the longest.
        shrink_incomplete: Option<String>,
    },
    /// A budget ran out before a verdict; never a pass.
    Unknown {
        /// Which budget ran out, and in which partition.
        reason: String,
    },
}

/// Checks `history` against `model` and renders what it found; `source`
/// names the history in the text.
pub fn report<M: Model>(
    model: &M,
    source: &str,
    history: &[Operation<M::Input, M::Output>],
    options: &CheckOptions,
) -> Report {
    let (parts, prepared) = partitions(model, history);
    let verdict = match check_partitions(model, history, &parts, options) {
        Verdict::Linearizable => ReportVerdict::Linearizable,
        Verdict::Unknown { reason } => ReportVerdict::Unknown { reason },
        Verdict::NotLinearizable(violation) => {
            let tail = &violation.prefix[violation.prefix.len().saturating_sub(PREFIX_TAIL)..];
            ReportVerdict::NotLinearizable {
                partition: model.describe_key(&violation.key),
                partition_operations: violation.partition_operations,
                slice_operations: violation.slice.len(),
                slice_from_any_state: violation.slice_from_any_state,
                slice_timeline: timeline(model, &violation.slice, WIDTH),
                prefix_operations: violation.prefix.len(),
                prefix_tail_timeline: timeline(model, tail, WIDTH),
                next_operation: violation.next_operation.as_ref().map(|op| {
                    let when = op.ret().map_or_else(|| format!("{}..?", op.call), |ret| format!("{}..{ret}", op.call));
                    format!("p{} {when} {}", op.client, model.describe(&op.input, op.output()))
                }),
                shrink_incomplete: violation.shrink_incomplete.clone(),
            }
        }
    };
    Report { source: source.to_string(), model: model.name(), prepared, verdict }
}

impl Report {
    /// Is the verdict [`ReportVerdict::Linearizable`]?
    pub fn is_linearizable(&self) -> bool {
        self.verdict == ReportVerdict::Linearizable
    }

    /// The report as text: the history's counts, the verdict and, on a
    /// violation, the slice and the prefix's end as timelines.
    pub fn render(&self) -> String {
        let p = &self.prepared;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "history: {} ({} model): {} operations, {} failed (removed), {} indeterminate ({} of them reads, dropped), {} partition{}",
            self.source,
            self.model,
            p.operations,
            p.failed_removed,
            p.indeterminate,
            p.indeterminate_reads_dropped,
            p.partitions,
            if p.partitions == 1 { "" } else { "s" }
        );
        match &self.verdict {
            ReportVerdict::Linearizable => out.push_str("verdict: linearizable\n"),
            ReportVerdict::Unknown { reason } => {
                let _ = writeln!(out, "verdict: unknown: {reason}");
            }
            ReportVerdict::NotLinearizable {
                partition,
                partition_operations,
                slice_operations,
                slice_from_any_state,
                slice_timeline,
                prefix_operations,
                prefix_tail_timeline,
                next_operation,
                shrink_incomplete,
            } => {
                let _ = writeln!(out, "verdict: not linearizable: {partition} ({partition_operations} operations)");
                let bar = if *slice_from_any_state { "from any initial state" } else { "from the initial state" };
                let _ = writeln!(
                    out,
                    "\nsmallest failing slice found: {slice_operations} operations, not linearizable {bar}"
                );
                out.push_str(slice_timeline);
                let shown = (*prefix_operations).min(PREFIX_TAIL);
                let _ = writeln!(
                    out,
                    "\nlongest linearizable prefix: {prefix_operations} of {partition_operations} operations in call order \
                     (operations still running at the cut count as indeterminate); its last {shown}:"
                );
                out.push_str(prefix_tail_timeline);
                if let Some(next) = next_operation {
                    let _ = writeln!(out, "the prefix stops before: {next}");
                }
                if let Some(note) = shrink_incomplete {
                    let _ = writeln!(out, "note: {note}");
                }
            }
        }
        out
    }
}
