//! Records the rustc version of the build, so that failure output can name
//! it beside the faultline and turmoil versions a replay depends on. It reads
//! `$RUSTC -V` (the compiler cargo runs), which works in any crate that
//! depends on the harness; the turmoil version is a constant in the harness,
//! pinned exactly in Cargo.toml.
use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=FAULTLINE_RUSTC_VERSION={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
    println!("cargo:rerun-if-changed=build.rs");
}
