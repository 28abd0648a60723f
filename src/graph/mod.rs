//! Microsoft Graph: HTTP client, sign-in, token storage and the serde models of the resources the
//! wizard reads and writes.

pub mod auth;
pub mod client;
pub mod cloud;
pub mod error;
pub mod models;
pub mod tls;
pub mod token_store;

pub use client::{ApiVersion, GraphClient, TokenSource};
pub use error::GraphError;
