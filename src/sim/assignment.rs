//! Dynamic membership evaluation and Autopilot profile assignment progress.

use axum::Router;

use super::{Seed, Shared, SimState};

#[derive(Debug, Default)]
pub struct AssignmentState {}

pub(crate) fn seed(_state: &mut SimState, _seed: Seed) {}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
}
pub(crate) fn advance(_state: &mut SimState, _config: &super::SimConfig) {}
