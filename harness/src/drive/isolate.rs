//! `--isolate`: one seed in a child process of its own, for what a thread
//! cannot be protected from. The child limits its own address space (so a
//! host that allocates without bound fails that seed, not the machine),
//! runs the seed under the same watchdogs, writes the recording to its
//! standard output and exits, which ends any thread it had to abandon. The
//! parent judges the recording (`Configured::analyze`), so an isolated
//! seed's report is the same as an in-process one's, digest and all.
//!
//! The child is the same program: [`Launcher`] says how to start it (the
//! CLI starts its own executable; a test binary starts itself at an entry
//! test), and [`serve`] is what the child runs first. The job travels in
//! the environment variable [`JOB_VARIABLE`], the scenario's text on
//! standard input, and the answer after a marker line on standard output.
//!
//! The memory limit is an address-space limit (`RLIMIT_AS`), set by the
//! child on itself through the `rlimit` crate: the workspace forbids
//! `unsafe`, `rlimit` wraps `setrlimit` safely, and a process may always
//! lower its own limits (no `pre_exec` hook in the parent, which would need
//! `unsafe`; no `prlimit` or `ulimit` command, which a machine may lack).
//! It exists on Unix; elsewhere the child runs without a memory limit.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{aborted, fail, watched, RunOptions};
use crate::plan::Plan;
use crate::recording::FailureClass;
use crate::registry::{self, Keep, Loaded, Ran, Registry};

/// The environment variable that makes a process a child serving one seed.
pub const JOB_VARIABLE: &str = "FAULTLINE_ISOLATED_RUN";

/// The line after which a child's answer starts on its standard output (a
/// test binary prints its own lines before it).
const MARKER: &str = "=== faultline isolated run: answer ===";

/// How long past its wall-clock limit a child may take before the parent
/// kills it: the child's own watchdog answers at the limit.
const GRACE: Duration = Duration::from_secs(20);

/// How an isolated seed runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Isolation {
    /// The child's address-space limit, in MiB.
    pub memory_limit_mib: u64,
}

/// The default memory limit of an isolated seed: 4 GiB of address space,
/// ten times what the shipped scenarios use, and well within a CI machine.
pub const MEMORY_LIMIT_MIB_DEFAULT: u64 = 4096;

/// How to start a child that serves an isolated seed: a program and the
/// arguments that bring it to [`serve`].
#[derive(Clone, Debug)]
pub struct Launcher {
    /// The executable to start: usually the running binary itself.
    pub program: PathBuf,
    /// The arguments that make it serve one seed instead of its usual job.
    pub args: Vec<String>,
}

static LAUNCHER: OnceLock<Launcher> = OnceLock::new();

/// Is this process a child serving an isolated seed?
static SERVING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Is this process a child serving an isolated seed? (Its abandoned
/// threads end with it.)
pub fn serving() -> bool {
    SERVING.load(std::sync::atomic::Ordering::Relaxed)
}

/// Says how to start children (once per process; the CLI's default, this
/// executable without arguments, needs no call). Returns false if it was
/// already set.
pub fn set_launcher(launcher: Launcher) -> bool {
    LAUNCHER.set(launcher).is_ok()
}

fn launcher() -> Result<Launcher, String> {
    if let Some(launcher) = LAUNCHER.get() {
        return Ok(launcher.clone());
    }
    let program = std::env::current_exe().map_err(|e| format!("cannot find this program to start a child: {e}"))?;
    Ok(Launcher { program, args: Vec::new() })
}

/// What the parent asks of a child.
#[derive(Serialize, Deserialize)]
struct Job {
    file: String,
    seed: u64,
    wall_limit_ms: Option<u64>,
    memory_limit_mib: u64,
}

/// What a child answers: failures outside the recording, and whether the
/// recording follows (it does not when the run was abandoned).
#[derive(Serialize, Deserialize)]
struct Answer {
    aborted: Option<(FailureClass, String)>,
    failures: Vec<(FailureClass, String)>,
    recorded: bool,
}

/// If this process is a child serving an isolated seed (its environment
/// holds a job), serves it and exits; otherwise returns at once. A binary
/// built on faultline calls it first (the CLI does).
pub fn serve(registry: &Registry) {
    let Ok(job) = std::env::var(JOB_VARIABLE) else { return };
    SERVING.store(true, std::sync::atomic::Ordering::Relaxed);
    let answer = match serde_json::from_str::<Job>(&job) {
        Ok(job) => child(&job, registry),
        Err(error) => Err(format!("a child cannot read its job {job:?}: {error}")),
    };
    let (answer, recording) = answer.unwrap_or_else(|reason| {
        (Answer { aborted: Some((FailureClass::HarnessPanic, reason)), failures: Vec::new(), recorded: false }, None)
    });
    let mut out = std::io::stdout().lock();
    let header = serde_json::to_string(&answer).expect("answers serialize");
    let written = writeln!(out, "\n{MARKER}\n{header}")
        .and_then(|()| recording.map_or(Ok(()), |text| out.write_all(text.as_bytes())))
        .and_then(|()| out.flush());
    // Exit at once: a thread the run abandoned (spinning, asleep, started
    // by the system) ends with the process.
    std::process::exit(i32::from(written.is_err()))
}

fn child(job: &Job, registry: &Registry) -> Result<(Answer, Option<String>), String> {
    limit_memory(job.memory_limit_mib)?;
    let mut source = String::new();
    std::io::stdin().read_to_string(&mut source).map_err(|e| format!("a child cannot read its scenario: {e}"))?;
    let loaded = registry::parse(&job.file, &source, registry)
        .map_err(|e| format!("a child cannot load the scenario its parent loaded: {e}"))?;
    let options =
        RunOptions { save: true, wall_limit: job.wall_limit_ms.map(Duration::from_millis), ..RunOptions::default() };
    let loaded = Arc::new(loaded);
    let plan = Plan::expand(&loaded.scenario, job.seed);
    let (ran, failures) = watched(&loaded, plan, options);
    let answer = match (&ran.recording, &ran.report.aborted) {
        (Some(_), _) => Answer { aborted: None, failures, recorded: true },
        (None, reason) => {
            let class = ran.report.classes.first().copied().unwrap_or(FailureClass::HarnessPanic);
            let reason = reason.clone().unwrap_or_else(|| "the run produced no recording".into());
            Answer { aborted: Some((class, reason)), failures, recorded: false }
        }
    };
    Ok((answer, ran.recording))
}

#[cfg(unix)]
fn limit_memory(mib: u64) -> Result<(), String> {
    let bytes = mib.saturating_mul(1 << 20);
    rlimit::setrlimit(rlimit::Resource::AS, bytes, bytes)
        .map_err(|e| format!("a child cannot limit its memory to {mib} MiB: {e}"))
}

#[cfg(not(unix))]
fn limit_memory(_mib: u64) -> Result<(), String> {
    Ok(())
}

/// Runs `seed` of `loaded` in a child process and judges its recording here.
pub fn run(loaded: &Arc<Loaded>, seed: u64, isolation: Isolation, options: RunOptions) -> Ran {
    let plan = Plan::expand(&loaded.scenario, seed);
    match spawn(loaded, seed, isolation, options) {
        Err(reason) => aborted(loaded, plan, FailureClass::HarnessPanic, reason),
        Ok(Finished::Answered(answer, recording)) => judged(loaded, plan, answer, recording, options),
        Ok(Finished::Died { class, reason }) => aborted(loaded, plan, class, reason),
    }
}

/// How a child ended.
enum Finished {
    Answered(Answer, String),
    Died { class: FailureClass, reason: String },
}

/// Starts a child for the seed, feeds it the scenario, and waits for it
/// (killing it `GRACE` after its wall-clock limit).
fn spawn(loaded: &Loaded, seed: u64, isolation: Isolation, options: RunOptions) -> Result<Finished, String> {
    let launcher = launcher()?;
    let job = Job {
        file: loaded.scenario.file.clone(),
        seed,
        wall_limit_ms: options.wall_limit.map(|l| u64::try_from(l.as_millis()).unwrap_or(u64::MAX)),
        memory_limit_mib: isolation.memory_limit_mib,
    };
    let mut child = Command::new(&launcher.program)
        .args(&launcher.args)
        .env(JOB_VARIABLE, serde_json::to_string(&job).expect("jobs serialize"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start a child process for the seed ({}): {e}", launcher.program.display()))?;
    let source = loaded.scenario.source.clone();
    let mut stdin = child.stdin.take().expect("a piped stdin");
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(source.as_bytes());
    });
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = reader(Box::new(child.stdout.take().expect("a piped stdout")));
    let stderr = reader(Box::new(child.stderr.take().expect("a piped stderr")));
    let deadline = options.wall_limit.map(|limit| limit + GRACE);
    let (status, killed) = wait(&mut child, deadline)?;
    let _ = feeder.join();
    let stdout = stdout.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
    Ok(ended(status, killed, &stdout, &stderr, isolation, deadline))
}

/// Waits for `child`, killing it at `deadline`. Returns its status and
/// whether it was killed.
// The wait is measured in wall time, outside every simulation.
#[allow(clippy::disallowed_methods)]
fn wait(
    child: &mut std::process::Child,
    deadline: Option<Duration>,
) -> Result<(std::process::ExitStatus, bool), String> {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("could not wait for the child process: {e}"))? {
            return Ok((status, false));
        }
        if deadline.is_some_and(|d| started.elapsed() >= d) {
            let _ = child.kill();
            let status = child.wait().map_err(|e| format!("could not wait for the killed child process: {e}"))?;
            return Ok((status, true));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What a child's end means for its seed.
fn ended(
    status: std::process::ExitStatus,
    killed: bool,
    stdout: &[u8],
    stderr: &str,
    isolation: Isolation,
    deadline: Option<Duration>,
) -> Finished {
    let last_words = last_lines(stderr, 6);
    if killed {
        let after = deadline.map_or(String::new(), |d| format!(" {}", crate::units::format_duration(d)));
        return Finished::Died {
            class: FailureClass::Crashed,
            reason: format!(
                "the child process running the seed did not answer within{after} and was killed{last_words}"
            ),
        };
    }
    if let Some(line) = stderr.lines().find(|l| l.contains("memory allocation of")).filter(|_| !status.success()) {
        let mib = isolation.memory_limit_mib;
        let last_words = format!("; its last words: {}", line.trim());
        return Finished::Died {
            class: FailureClass::Memory,
            reason: format!(
                "memory limit: the run needed more than the {mib} MiB of address space its child process may use \
                 (a host or client allocating without bound?); --memory-limit raises it{last_words}"
            ),
        };
    }
    if status.success() {
        let text = String::from_utf8_lossy(stdout);
        if let Some((_, answer)) = text.rsplit_once(MARKER) {
            let answer = answer.trim_start_matches(['\r', '\n']);
            let (header, recording) = answer.split_once('\n').unwrap_or((answer, ""));
            if let Ok(header) = serde_json::from_str::<Answer>(header) {
                return Finished::Answered(header, recording.to_string());
            }
        }
        return Finished::Died {
            class: FailureClass::Crashed,
            reason: format!("the child process running the seed ended without an answer{last_words}"),
        };
    }
    Finished::Died {
        class: FailureClass::Crashed,
        reason: format!("the child process running the seed died ({}){last_words}", describe(status)),
    }
}

/// An exit status in words: a code, or the signal that ended it.
fn describe(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                6 => " (SIGABRT: an abort)",
                9 => " (SIGKILL: killed, perhaps by the out-of-memory killer)",
                11 => " (SIGSEGV: a stack overflow or a bad memory access)",
                _ => "",
            };
            return format!("killed by signal {signal}{name}");
        }
    }
    match status.code() {
        Some(code) => format!("exit code {code}"),
        None => "no exit code".to_string(),
    }
}

/// The last `count` lines of a child's standard error, for a reason.
fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(count)..];
    format!("; its last words: {}", tail.join(" | "))
}

/// The seed's report from a child's answer: its recording judged here, and
/// the failures the child's watchdog saw added.
fn judged(loaded: &Loaded, plan: Plan, answer: Answer, recording: String, options: RunOptions) -> Ran {
    if let Some((class, reason)) = answer.aborted {
        let mut ran = aborted(loaded, plan, class, reason);
        answer.failures.into_iter().for_each(|(class, reason)| fail(&mut ran.report, class, reason));
        return ran;
    }
    let keep = Keep { records: options.keep_records, recording: false };
    let mut report = match loaded.system.analyze(&loaded.scenario, &recording, keep) {
        Ok(report) => report,
        Err(error) => {
            let reason = format!("the child's recording could not be judged: {error}");
            return aborted(loaded, plan, FailureClass::HarnessPanic, reason);
        }
    };
    for (class, reason) in answer.failures {
        fail(&mut report, class, reason);
    }
    Ran { report, recording: options.save.then_some(recording) }
}
