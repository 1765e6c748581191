//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use faultline_harness::{scenario, InputError, Registry, Scenario};

/// The systems the CLI knows, plus the misbehaving test systems.
pub fn registry() -> Registry {
    let mut registry = faultline_systems::registry();
    registry.register(crate::robustness::entry());
    registry
}

pub fn parse(source: &str) -> Result<Scenario, InputError> {
    scenario::parse("test.toml", source, &registry())
}

pub fn scenario(source: &str) -> Arc<Scenario> {
    Arc::new(parse(source).unwrap_or_else(|e| panic!("scenario should parse:\n{e}")))
}

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn repo_file(relative: &str) -> PathBuf {
    root().join(relative)
}

/// Runs the built `faultline` binary from the repository root.
pub fn faultline(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the faultline binary runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A small echo scenario; `extra` is appended (faults, checks, ...).
pub fn echo(extra: &str) -> String {
    format!(
        "name = \"test echo\"\nsystem = \"echo\"\nduration = \"3s\"\nheal = \"2s\"\n\n[workload]\nclients = 2\nrate = \"100/s\"\ndeadline = \"300ms\"\n{extra}"
    )
}
