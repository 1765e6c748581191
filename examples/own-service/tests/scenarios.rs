//! Every scenario file under scenarios/ is a test.
fn main() {
    faultline::harness::testing::scenario_tests("scenarios", own_service::faultline_system::registry())
}
