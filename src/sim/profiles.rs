//! Autopilot deployment profiles (beta) and their assignments.

use axum::Router;

use super::{Seed, Shared, SimState};

#[derive(Debug, Default)]
pub struct ProfileState {}

pub(crate) fn seed(_state: &mut SimState, _seed: Seed) {}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
}
