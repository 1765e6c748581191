//! Unit tests of the store's configuration and promises; the checkers'
//! tests are in checks_tests.rs.
