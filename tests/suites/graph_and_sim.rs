//! The Graph client, the sign-in and the simulated tenant's wire format, over real HTTP.
//!
//! One test binary for several test files (each file stays a module of its own, by its old
//! name): fewer binaries to link. `tests/suites/app.rs` checks every file is in one suite.

#[path = "../auth.rs"]
mod auth;
#[path = "../fuzz_graph.rs"]
mod fuzz_graph;
#[path = "../graph_client.rs"]
mod graph_client;
#[path = "../sim_cli.rs"]
mod sim_cli;
#[path = "../sim_core.rs"]
mod sim_core;
#[path = "../support/mod.rs"]
mod support;
#[path = "../wire_format.rs"]
mod wire_format;
