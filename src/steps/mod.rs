//! One Graph action module per wizard step, no UI: each performs its step, then validates the
//! result by reading it back from Graph. Re-running a step is safe: it finds what exists
//! instead of creating duplicates.

pub mod assignment;
pub mod validate;

/// The results of the steps, kept across restarts through eframe persistence. Plain data, never
/// secrets: ids and names the next steps need.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Outcomes {
    /// Step 6: how far the profile assignment got when last read.
    pub assignment: Option<assignment::AssignmentOutcome>,
    /// Step 7: the verdict of the last validation.
    pub validation: Option<validate::ValidationOutcome>,
}
