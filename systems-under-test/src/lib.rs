//! Systems that faultline runs under faults. Each is real tokio service code
//! over turmoil's simulated network, plugged into the harness through its
//! `System` trait; `registry()` lists them for the CLI and the tests.
//!
//! Systems never touch `Sim`, fault functions, wall clocks or unseeded
//! randomness: time comes from `tokio::time`, randomness from the RNG the
//! harness hands each host.
#![forbid(unsafe_code)]

#[cfg(not(tokio_unstable))]
compile_error!("build with --cfg tokio_unstable (set in .cargo/config.toml; a RUSTFLAGS variable replaces it)");

pub mod breaker;
pub mod cache;
pub mod calibration;
pub mod echo;
pub mod theory;
pub mod wire;

use faultline_harness::Registry;

/// Every system this crate provides, by name.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register(breaker::entry());
    registry.register(cache::entry());
    registry.register(calibration::entry());
    registry.register(echo::entry());
    registry
}
