//! The "Deployment profile" page.

/// Messages from this page's background jobs.
#[derive(Debug)]
pub enum Msg {}
