//! Every scenario file under scenarios/ is a test: its seeds (the file's
//! `seeds`) must pass, each `expect = "violation:..."` must be found by some
//! seed, and every `reached` event must be reported. A checker that stops
//! finding a known flaw fails the build here.

fn main() {
    faultline::harness::testing::scenario_tests("scenarios", faultline_systems::registry())
}
