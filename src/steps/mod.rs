//! One Graph action module per wizard step, no UI: each performs its step, then validates the
//! result by reading it back from Graph. Re-running a step is safe: it finds what exists
//! instead of creating duplicates.

pub mod assignment;
pub mod esp;
pub mod group;
pub mod import;
pub mod join_permission;
pub mod profile;
pub mod sign_in;
pub mod this_pc;
pub mod validate;

/// The results of the steps, kept across restarts through eframe persistence. Plain data, never
/// secrets: ids and names the next steps need.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Outcomes {
    /// Step 1: who signed in to which tenant.
    pub signed_in: Option<sign_in::SignedIn>,
    /// Step 2: the chosen deployers and whether they were covered when last checked.
    pub join_permission: Option<join_permission::JoinPermissionOutcome>,
    /// Step 3: the deployment profile chosen or created, read back from Graph.
    pub profile: Option<profile::ProfileRef>,
    /// Step 4: the device group, once read back.
    pub group: Option<group::GroupRef>,
    /// Step 5: the hardware-hash import, resumable after a restart.
    pub import: Option<import::ImportJob>,
    /// Step 6: how far the profile assignment got when last read.
    pub assignment: Option<assignment::AssignmentOutcome>,
    /// Step 7: the verdict of the last validation.
    pub validation: Option<validate::ValidationOutcome>,
}
