//! faultline as a library: the whole command line for any registry of
//! systems. A crate that tests its own tokio services builds a binary of
//! three lines, `fn main() -> ExitCode { faultline::main(my_registry()) }`,
//! and gets every verb (`run`, `replay`, `sweep`, `check`, `list`, `shrink`,
//! `analyze`, ...) with the same flags, output and exit codes as faultline's
//! own binary.
//!
//! The harness itself (the `System` trait, scenarios, runs, checks) is
//! re-exported as [`harness`], and the test entry point that makes every
//! scenario file a `cargo test` test is [`harness::testing`].
#![forbid(unsafe_code)]

#[cfg(not(tokio_unstable))]
compile_error!("build with --cfg tokio_unstable (set in .cargo/config.toml; a RUSTFLAGS variable replaces it)");

mod bench;
mod chrome;
mod cli;
mod estimate;
mod json;
mod junit;
mod page;
mod report;
mod scale;

pub use faultline_harness as harness;

use std::process::ExitCode;

/// Exit codes, as `--help` and the README document them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  every check passed and every `expect` was met
  1  a check failed: a violation, an SLO breach, an expected violation not found, a panic or hang
  2  bad input: a scenario file, a flag or a seed that is not valid
  3  could not judge: nothing failed, but a check had too little to go on (too few requests after
     the heal for liveness, a linearizability search out of its budget)";

/// Runs the command line (from the process's arguments) over `registry`
/// and returns the exit code.
pub fn main(registry: harness::Registry) -> ExitCode {
    cli::main(std::env::args_os(), &registry)
}

/// Runs the command line with explicit arguments (the first is the program
/// name), as [`main`] does with the process's.
pub fn run<I, T>(args: I, registry: &harness::Registry) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    cli::main(args, registry)
}
