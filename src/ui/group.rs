//! The "Device group" page.

/// Messages from this page's background jobs.
#[derive(Debug)]
pub enum Msg {}
