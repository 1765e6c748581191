//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use faultline_harness::{registry as loading, InputError, Loaded, Registry, SystemEntry};

/// The systems the CLI knows, plus the misbehaving test system.
pub fn registry() -> Registry {
    faultline_systems::registry()
        .with(SystemEntry::of::<crate::robustness::Misbehave>())
        .with(SystemEntry::of::<crate::hostile::Hostile>())
}

pub fn parse(source: &str) -> Result<Loaded, InputError> {
    loading::parse("test.toml", source, &registry())
}

pub fn scenario(source: &str) -> Arc<Loaded> {
    Arc::new(parse(source).unwrap_or_else(|e| panic!("scenario should parse:\n{e}")))
}

/// Loads a scenario file of the repository.
pub fn load(relative: &str) -> Arc<Loaded> {
    Arc::new(loading::load(&repo_file(relative), &registry()).unwrap_or_else(|e| panic!("{relative} loads:\n{e}")))
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

/// The server side of the test systems' one-byte exchange: read a byte and
/// send it back.
pub async fn answer_one_byte(mut stream: turmoil::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut byte = [0u8; 1];
    if stream.read_exact(&mut byte).await.is_ok() {
        let _ = stream.write_all(&byte).await;
    }
}

/// The client side: a new connection, one byte out, one byte back; an
/// error is reduced to its kind.
pub async fn ask_one_byte(to: (&str, u16), op: u8) -> faultline_harness::history::Outcome<u8> {
    use faultline_harness::history::Outcome;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let result: std::io::Result<u8> = async {
        let mut stream = turmoil::net::TcpStream::connect(to).await?;
        stream.write_all(&[op]).await?;
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await?;
        Ok(byte[0])
    }
    .await;
    match result {
        Ok(answer) => Outcome::Ok(answer),
        Err(error) => Outcome::Failed(error.kind().to_string()),
    }
}
