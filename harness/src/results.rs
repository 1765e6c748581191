//! Sweep results as JSON lines: one line per (scenario, seed), written as
//! each run finishes, read back to resume a killed sweep or to merge the
//! files of many shards into the result of one sweep.
//!
//! A line holds the scenario file's path and the SHA-256 of its bytes, the
//! seed, the run's wall time and the whole [`RunReport`]: everything a
//! sweep's table, figures, SLO shares and known-flaw lines are made from.
//! [`rebuild`] groups the reports by scenario and judges each with
//! [`judge_scenario`], the function a live sweep calls, so a merged result is
//! computed by the same code as one sweep.
//!
//! This module runs nothing and prints nothing: it reads and writes files
//! and judges reports.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::InputError;
use crate::judge::RunReport;
use crate::registry::{self, Loaded, Registry};
use crate::sweep::{judge_scenario, ScenarioResult};

/// The version of the line format; a reader refuses lines of another.
pub const RESULTS_FORMAT: u32 = 1;

/// The longest line a reader accepts: 64 MiB (a report keeps at most 20
/// violations per invariant; a line is a few KiB).
pub const LINE_BYTES_MAX: usize = 64 << 20;

/// One slice of a sharded sweep: shard `index` of `count` (`--shard K/N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Shard {
    /// Which slice, from 0.
    pub index: usize,
    /// How many slices the sweep was cut into.
    pub count: usize,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `K/N`, with `0 <= K < N`.
    fn from_str(text: &str) -> Result<Shard, String> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| format!("expected a shard K/N such as 0/4 (shard K of N, from 0), found {text:?}"))?;
        let index: usize = index.trim().parse().map_err(|_| format!("{index:?} is not a shard number (K of K/N)"))?;
        let count: usize = count.trim().parse().map_err(|_| format!("{count:?} is not a shard count (N of K/N)"))?;
        if count == 0 || count > SHARDS_MAX {
            return Err(format!("the shard count must be from 1 to {SHARDS_MAX}, not {count}"));
        }
        if index >= count {
            return Err(format!("shard {index} of {count} does not exist: shards are numbered 0 to {}", count - 1));
        }
        Ok(Shard { index, count })
    }
}

/// Most shards a sweep may be cut into.
pub const SHARDS_MAX: usize = 100_000;

/// One finished (scenario, seed): a line of a results file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResultLine {
    /// [`RESULTS_FORMAT`] when it was written.
    pub format: u32,
    /// The scenario file's path, as the sweep named it.
    pub scenario: String,
    /// SHA-256 of the scenario file's bytes (hex): a line of a file that
    /// changed since is never taken for a result of the new file.
    pub scenario_sha256: String,
    /// The scenario's place in the sweep's list of files (merged results
    /// list scenarios in this order, as the sweep did).
    pub position: usize,
    /// The seed that ran.
    pub seed: u64,
    /// The run's wall time, in milliseconds.
    pub wall_ms: f64,
    /// The shard that ran it, for a sharded sweep.
    pub shard: Option<Shard>,
    /// How many (scenario, seed) pairs the whole sweep has, all shards
    /// together (`None` for `--until-failure`, which has no fixed number):
    /// `merge` refuses results that lack some.
    pub sweep_runs: Option<usize>,
    /// The whole judged run.
    pub report: RunReport,
}

/// SHA-256 of a file's bytes, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a scenario file as a results line records it.
pub fn scenario_sha256(path: &Path) -> Result<String, InputError> {
    crate::scenario::read(path).map(|text| sha256_hex(text.as_bytes()))
}

/// What a results file held.
#[derive(Debug, Default)]
pub struct ReadLines {
    /// Every whole line, in file order.
    pub lines: Vec<ResultLine>,
    /// The length in bytes of the whole lines (where a resumed sweep goes on
    /// writing).
    pub whole_bytes: u64,
    /// The bytes of a last line cut short (a sweep killed while writing it),
    /// dropped.
    pub torn_bytes: u64,
}

/// Reads a results file. A last line without its newline is a line a killed
/// sweep was writing: it is dropped (`torn_bytes` counts it). Any other line
/// that is not a results line is an error naming its line number.
pub fn read(path: &Path) -> Result<ReadLines, InputError> {
    let name = path.display().to_string();
    let file =
        std::fs::File::open(path).map_err(|e| InputError::new(&name, format!("cannot read this results file: {e}")))?;
    let mut reader = std::io::BufReader::new(file);
    let mut read = ReadLines::default();
    let mut buffer = Vec::new();
    for number in 1.. {
        buffer.clear();
        let length = (&mut reader)
            .take(LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut buffer)
            .map_err(|e| InputError::new(&name, format!("cannot read this results file: {e}")))?;
        if length == 0 {
            break;
        }
        if buffer.last() != Some(&b'\n') {
            if length > LINE_BYTES_MAX {
                return Err(InputError::new(
                    format!("{name}:{number}"),
                    "a line longer than 64 MiB: not a results file",
                ));
            }
            read.torn_bytes = length as u64;
            break;
        }
        read.whole_bytes += length as u64;
        if buffer.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        read.lines.push(parse_line(&buffer).map_err(|message| InputError::new(format!("{name}:{number}"), message))?);
    }
    Ok(read)
}

fn parse_line(bytes: &[u8]) -> Result<ResultLine, String> {
    #[derive(Deserialize)]
    struct FormatOnly {
        format: u32,
    }
    let head: FormatOnly = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a faultline results line: {e} (results files are written by `sweep --out`)"))?;
    if head.format != RESULTS_FORMAT {
        return Err(format!(
            "a results line of format {}, and this faultline reads format {RESULTS_FORMAT}: merge with the faultline that wrote it",
            head.format
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| format!("not a faultline results line: {e}"))
}

/// A results file being written: one line per finished run, each written
/// whole and handed to the operating system at once, so a killed sweep
/// leaves every finished line (and at most one torn line) behind.
#[derive(Debug)]
pub struct Writer {
    file: Mutex<std::fs::File>,
}

impl Writer {
    /// Starts a new results file; an existing file is refused, never
    /// overwritten or appended to (that is [`Writer::resume`]).
    pub fn create(path: &Path) -> Result<Writer, InputError> {
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(path).map_err(|e| {
            let error = InputError::new(path.display().to_string(), format!("cannot start a results file: {e}"));
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                error.with_help("pass --resume to go on with it, or remove it, or --out another file")
            } else {
                error
            }
        })?;
        Ok(Writer { file: Mutex::new(file) })
    }

    /// Opens a results file to go on with it: reads its lines, cuts off a
    /// torn last line, and appends after the whole ones. A missing file is
    /// started empty.
    pub fn resume(path: &Path) -> Result<(Writer, ReadLines), InputError> {
        if !path.exists() {
            return Ok((Writer::create(path)?, ReadLines::default()));
        }
        let read = read(path)?;
        let name = path.display().to_string();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| InputError::new(&name, format!("cannot append to this results file: {e}")))?;
        file.set_len(read.whole_bytes)
            .map_err(|e| InputError::new(&name, format!("cannot cut the torn last line off: {e}")))?;
        let mut file = file;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(read.whole_bytes))
            .map_err(|e| InputError::new(&name, format!("cannot append to this results file: {e}")))?;
        Ok((Writer { file: Mutex::new(file) }, read))
    }

    /// Writes one line, whole, and flushes it.
    pub fn append(&self, line: &ResultLine) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        let mut file = self.file.lock().map_err(|_| std::io::Error::other("a results writer panicked"))?;
        file.write_all(&bytes)?;
        file.flush()
    }
}

/// What [`rebuild`] made of lines: the per-scenario results, and notes for
/// the user (duplicates dropped).
#[derive(Debug)]
pub struct Rebuilt {
    /// Each scenario's result, in the sweep's order of files.
    pub results: Vec<ScenarioResult>,
    /// One line each: what was dropped, and why.
    pub notes: Vec<String>,
}

/// Rebuilds a sweep's per-scenario results from results lines (of one file
/// or many): loads each scenario file the lines name, refuses a file whose
/// bytes changed since its lines were written, drops a (scenario, seed) seen
/// twice with the same digest, refuses one seen twice with different
/// digests, and judges each scenario with [`judge_scenario`], its reports in
/// seed order.
pub fn rebuild(lines: Vec<ResultLine>, registry: &Registry) -> Result<Rebuilt, Vec<InputError>> {
    let mut notes = Vec::new();
    let mut errors = Vec::new();
    let mut by_scenario: BTreeMap<String, Group> = BTreeMap::new();
    let mut sizes = BTreeSet::new();
    for line in lines {
        sizes.insert(line.sweep_runs);
        let group = by_scenario.entry(line.scenario.clone()).or_insert_with(|| Group {
            position: line.position,
            sha256: line.scenario_sha256.clone(),
            reports: BTreeMap::new(),
        });
        if group.sha256 != line.scenario_sha256 {
            errors.push(
                InputError::new(
                    &line.scenario,
                    "the results hold runs of two different versions of this file (their SHA-256 differ)",
                )
                .with_help("merge the results of one version: run every shard on the same files"),
            );
            continue;
        }
        group.position = group.position.min(line.position);
        match group.reports.get(&line.seed) {
            Some(kept) if kept.digest == line.report.digest => {
                notes.push(format!("{} seed {}: in the results twice, same digest; kept once", line.scenario, line.seed));
            }
            Some(kept) => errors.push(InputError::new(
                &line.scenario,
                format!(
                    "seed {} is in the results twice with different digests ({} and {}): the runs were not the same",
                    line.seed, kept.digest, line.report.digest
                ),
            )
            .with_help("were the shards built from different sources or Cargo.lock? `replay --seed N` shows which is right")),
            None => {
                group.reports.insert(line.seed, line.report);
            }
        }
    }
    if let Err(error) = complete(&sizes, by_scenario.values().map(|g| g.reports.len()).sum()) {
        errors.push(error);
    }
    let mut order: Vec<(usize, String)> = by_scenario.iter().map(|(file, g)| (g.position, file.clone())).collect();
    order.sort();
    let mut results = Vec::new();
    for (_, file) in order {
        let group = by_scenario.remove(&file).expect("every ordered file has a group");
        match load_unchanged(&file, &group.sha256, registry) {
            Ok(loaded) => results.push(judge_scenario(&loaded.scenario, group.reports.into_values().collect())),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(Rebuilt { results, notes })
    } else {
        Err(errors)
    }
}

/// Do the results hold every run of their sweep? `sizes` are the lines'
/// `sweep_runs`; `held` the distinct (scenario, seed) pairs they hold.
fn complete(sizes: &BTreeSet<Option<usize>>, held: usize) -> Result<(), InputError> {
    let known: Vec<usize> = sizes.iter().flatten().copied().collect();
    match known.as_slice() {
        [] => Ok(()),
        [size] if *size == held => Ok(()),
        [size] if held < *size => Err(InputError::new(
            "results",
            format!("hold {held} of the sweep's {size} runs: {} missing", size - held),
        )
        .with_help(
            "merge every shard's file; a shard killed before it finished goes on with `sweep ... --out FILE --resume`",
        )),
        [size] => Err(InputError::new(
            "results",
            format!("hold {held} runs, more than the {size} of the sweep that wrote them"),
        )),
        _ => Err(InputError::new(
            "results",
            format!("come from sweeps of different sizes ({}): merge the shards of one sweep", join(&known)),
        )),
    }
}

fn join(sizes: &[usize]) -> String {
    sizes.iter().map(|s| format!("{s} runs")).collect::<Vec<_>>().join(", ")
}

struct Group {
    position: usize,
    sha256: String,
    reports: BTreeMap<u64, RunReport>,
}

/// Loads a scenario file and checks it is the file the results were made of.
fn load_unchanged(file: &str, sha256: &str, registry: &Registry) -> Result<Loaded, InputError> {
    let path = Path::new(file);
    let now = scenario_sha256(path)?;
    if now != sha256 {
        return Err(InputError::new(
            file,
            format!("changed since its results were written (SHA-256 {} then, {} now)", short(sha256), short(&now)),
        )
        .with_help("run its seeds again, or check out the version the results were made of"));
    }
    registry::load(path, registry)
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// The (scenario, seed) pairs the lines hold for the scenarios named in
/// `current` (path -> SHA-256 now), and the lines that belong to a changed
/// file: a resumed sweep skips the first and refuses to go on past the second.
pub fn done_pairs<'a>(
    lines: &'a [ResultLine],
    current: &BTreeMap<String, String>,
) -> (BTreeSet<(String, u64)>, Vec<&'a ResultLine>) {
    let mut done = BTreeSet::new();
    let mut changed = Vec::new();
    for line in lines {
        match current.get(&line.scenario) {
            Some(sha256) if *sha256 == line.scenario_sha256 => {
                done.insert((line.scenario.clone(), line.seed));
            }
            Some(_) => changed.push(line),
            None => {}
        }
    }
    (done, changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_refuse_what_does_not_exist() {
        assert_eq!("1/4".parse::<Shard>(), Ok(Shard { index: 1, count: 4 }));
        assert!("4/4".parse::<Shard>().unwrap_err().contains("numbered 0 to 3"));
        assert!("0/0".parse::<Shard>().unwrap_err().contains("from 1"));
        assert!("1".parse::<Shard>().unwrap_err().contains("K/N"));
        assert_eq!(Shard { index: 2, count: 5 }.to_string(), "2/5");
    }

    #[test]
    fn hashes_are_sha256_in_hex() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
