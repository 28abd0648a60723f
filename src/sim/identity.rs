//! Identity platform endpoints: `/{tenant}/oauth2/v2.0/{devicecode,token,authorize}`.

use axum::Router;

use super::Shared;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
}
