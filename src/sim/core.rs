//! Core of the simulated tenant: bearer-token check, fault injection, request log, `/me`,
//! `/organization`.

use axum::Router;

use super::{Seed, Shared, SimState};

/// Faults to inject, by rate or by script.
#[derive(Debug, Clone, Default)]
pub struct FaultConfig {}

#[derive(Debug, Default)]
pub struct CoreState {}

pub(crate) fn seed(_state: &mut SimState, _seed: Seed) {}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
}

/// Wraps every route in the middleware that checks tokens, injects faults and logs requests.
pub(crate) fn wrap(routes: Router<Shared>, _shared: Shared) -> Router<Shared> {
    routes
}
