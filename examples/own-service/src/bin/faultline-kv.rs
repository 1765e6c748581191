//! faultline's whole command line over this crate's systems.
fn main() -> std::process::ExitCode {
    faultline::main(own_service::faultline_system::registry())
}
