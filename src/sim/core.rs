//! Core of the simulated tenant: bearer-token check, fault injection, request log, `/me`,
//! `/organization`.

use axum::Router;

use super::{Seed, Shared, SimState};

/// Faults to inject, by rate or by script.
#[derive(Debug, Clone, Default)]
pub struct FaultConfig {}

/// What an access token issued by [`super::identity`] grants. Tokens are opaque random strings.
#[derive(Debug, Clone)]
pub struct AccessGrant {
    /// Object id of the signed-in user (a key of the users the core keeps).
    pub user_id: String,
    /// Granted delegated scopes, short form (`Group.ReadWrite.All`).
    pub scopes: Vec<String>,
    pub expires_at: std::time::Instant,
}

/// What a refresh token can be redeemed for.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub user_id: String,
    pub scopes: Vec<String>,
    pub client_id: String,
}

#[derive(Debug, Default)]
pub struct CoreState {
    /// Access token string -> grant. Written by `identity`, checked by the bearer middleware.
    pub access_tokens: std::collections::HashMap<String, AccessGrant>,
    /// Refresh token string -> grant. Refresh tokens rotate on use, like Entra's.
    pub refresh_tokens: std::collections::HashMap<String, RefreshGrant>,
    /// The user interactive sign-ins (browser, device code) authenticate as in the demo.
    pub interactive_user_id: String,
}

pub(crate) fn seed(_state: &mut SimState, _seed: Seed) {}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
}

/// Wraps every route in the middleware that checks tokens, injects faults and logs requests.
pub(crate) fn wrap(routes: Router<Shared>, _shared: Shared) -> Router<Shared> {
    routes
}
