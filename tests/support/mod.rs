//! Helpers shared by the integration tests (each test binary does `mod support;`).

pub mod ui;
