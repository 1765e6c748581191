//! Records the versions a replay depends on (rustc, turmoil), so failure
//! output can name them.
use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|text| text.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=FAULTLINE_RUSTC_VERSION={version}");

    // The workspace's lock file pins turmoil; read the version from it.
    let lock = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let turmoil = std::fs::read_to_string(&lock)
        .ok()
        .and_then(|text| {
            let at = text.find("name = \"turmoil\"")?;
            let rest = &text[at..];
            let line = rest.lines().nth(1)?;
            Some(line.trim().trim_start_matches("version = ").trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=FAULTLINE_TURMOIL_VERSION={turmoil}");
    println!("cargo:rerun-if-changed=build.rs");
}
