//! Each step's Graph action module over real HTTP against the simulated tenant, with its page; the CSV reader.
//!
//! One test binary for several test files (each file stays a module of its own, by its old
//! name): fewer binaries to link. `tests/suites/app.rs` checks every file is in one suite.

#[path = "../assignment.rs"]
mod assignment;
#[path = "../deployment.rs"]
mod deployment;
#[path = "../esp.rs"]
mod esp;
#[path = "../group.rs"]
mod group;
#[path = "../harvest.rs"]
mod harvest;
#[path = "../hwid.rs"]
mod hwid;
#[path = "../import.rs"]
mod import;
#[path = "../join_permission.rs"]
mod join_permission;
#[path = "../profile.rs"]
mod profile;
#[path = "../readiness.rs"]
mod readiness;
#[path = "../removal.rs"]
mod removal;
#[path = "../support/mod.rs"]
mod support;
#[path = "../validate.rs"]
mod validate;
