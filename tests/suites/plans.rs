//! `run --plan`: parsing, whole runs, kills and secrets.
//!
//! One test binary for several test files (each file stays a module of its own, by its old
//! name): fewer binaries to link. `tests/suites/app.rs` checks every file is in one suite.

#[path = "../plan_kill.rs"]
mod plan_kill;
#[path = "../plan_parse.rs"]
mod plan_parse;
#[path = "../plan_run.rs"]
mod plan_run;
#[path = "../plan_secrets.rs"]
mod plan_secrets;
#[path = "../support/mod.rs"]
mod support;
