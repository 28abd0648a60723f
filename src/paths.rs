//! Names the whole program shares: the GUI, `run --plan` and the logs find their files by them.

/// The eframe app id: names the persistence file and the data directory of the log files and
/// the plan state files.
pub const APP_ID: &str = "autopilot-wizard";
