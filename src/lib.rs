//! autopilot-wizard: Windows Autopilot user-driven mode with Microsoft Entra join, step by step,
//! through Microsoft Graph.
//!
//! Layers, one direction only:
//! - [`graph`]: HTTP client, sign-in, token storage, serde models of Graph resources. No UI.
//! - [`steps`]: one Graph action module per wizard step. Performs the step and validates it by
//!   reading it back. No UI.
//! - [`board`]: the profile-assignment board as plain data (filter, sort, counts, diagnosis, CSV,
//!   edit form). No UI, no network.
//! - [`hwid`]: the hardware-hash CSV reader. No UI, no network.
//! - [`ui`]: one page per step plus shared widgets; pages call `steps`, never Graph directly.
//! - [`plan`], [`run`]: `run --plan`, the same steps from a plan file without a window.
//! - [`app`]: the eframe application, the only place that knows pages, tasks and persistence.
//! - [`logging`], [`paths`]: the log (file and in-memory panel) and the app id, for the GUI and
//!   `run` alike.
//! - [`sim`]: the simulated tenant (an axum server speaking Graph's wire format). It shares no
//!   types with `graph`, on purpose: two independent readings of the reference.

pub mod app;
pub mod board;
pub mod cli;
pub mod console;
pub mod graph;
pub mod harvest_cli;
pub mod hwid;
pub mod logging;
pub mod paths;
pub mod plan;
pub mod run;
pub mod sim;
pub mod steps;
pub mod ui;
