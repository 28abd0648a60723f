//! Users, groups, members, Entra device objects, device registration and MDM policies.

use axum::Router;

use super::{Seed, Shared, SimState};

#[derive(Debug, Default)]
pub struct DirectoryState {}

pub(crate) fn seed(_state: &mut SimState, _seed: Seed) {}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
}
