//! Helpers shared by the integration tests (each `tests/<area>.rs` does `mod support;`).

pub mod schema;
pub mod ui;
