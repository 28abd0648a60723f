//! Serde models of Graph resources, written from `shared/reference/graph-autopilot.md` and checked
//! against the official schema in tests. Unknown properties are ignored on read.

pub mod autopilot;
pub mod directory;
pub mod identity;
pub mod policy;
pub mod profile;
