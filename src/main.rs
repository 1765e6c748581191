//! The `faultline` binary: the command line over the systems this
//! repository ships. A crate testing its own services writes the same three
//! lines with its own registry (docs/own-system.md).

fn main() -> std::process::ExitCode {
    faultline::main(faultline_systems::registry())
}
