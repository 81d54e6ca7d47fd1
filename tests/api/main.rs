//! Gatehouse's integration tests: one binary, a fresh server and database per test.

mod helpers;

mod smoke;
