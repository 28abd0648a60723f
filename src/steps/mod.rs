//! One Graph action module per wizard step, no UI: each performs its step, then validates the
//! result by reading it back from Graph. Re-running a step is safe: it finds what exists
//! instead of creating duplicates.

pub mod group;
pub mod join_permission;

/// The results of the steps, kept across restarts through eframe persistence. Plain data, never
/// secrets: ids and names the next steps need.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Outcomes {
    /// Step 2: the chosen deployers and whether they were covered when last checked.
    pub join_permission: Option<join_permission::JoinPermissionOutcome>,
    /// Step 4: the device group, once read back.
    pub group: Option<group::GroupRef>,
}
