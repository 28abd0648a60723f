//! The profile assignment board as plain data: one row per Autopilot device, measured against
//! the profile and group of steps 3 and 4. Filtering, sorting, counting, the per-device
//! diagnosis, CSV export and the edit form live here; reading and writing the tenant is
//! [`crate::steps::assignment`]'s job. No egui, no network: the page draws this, the step fills
//! it, the validation report reads it.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::graph::models::autopilot::AutopilotDevice;

pub mod deployment;
mod diagnose;
mod edit;
mod export;
mod query;
pub mod words;

pub use deployment::{Deployment, DeploymentPhase, FailingItem};
pub use diagnose::{Diagnosis, FixAction, diagnose, diagnose_in};
pub use edit::{DeviceEdit, EditForm, validate_computer_name};
pub use export::{ExportError, export_csv};
pub use query::{BoardQuery, SortKey};

/// The Deployment column for an enrolled device the deployment report does not name.
pub const ENROLLED_EARLIER: &str = "Enrolled earlier (not in the report)";

/// How the group gets its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupMembership {
    /// A dynamic device group with this rule.
    Dynamic { rule: String },
    /// An assigned group: the wizard adds each device.
    Static,
}

/// The group the devices go into and the profile they should end up with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub group_id: String,
    pub group_name: String,
    pub membership: GroupMembership,
    pub profile_id: String,
    pub profile_name: String,
}

impl Target {
    /// The group tag a dynamic `[OrderID]:<tag>` rule selects, if the rule is of that form.
    pub fn rule_group_tag(&self) -> Option<String> {
        let GroupMembership::Dynamic { rule } = &self.membership else {
            return None;
        };
        group_tags_in_rule(rule).into_iter().next()
    }
}

/// The group tags a dynamic membership rule selects (`"[OrderID]:<tag>"`, in the order
/// written). Entra compares the attribute name without regard to case, so `[orderId]:` counts
/// too; the tag keeps its case as written.
pub fn group_tags_in_rule(rule: &str) -> Vec<String> {
    const KEY: &str = "[orderid]:";
    // ASCII lower-casing keeps every byte offset, so positions found in `lower` cut `rule`.
    let lower = rule.to_ascii_lowercase();
    let mut tags = Vec::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find(KEY) {
        let start = from + at + KEY.len();
        let rest = &rule[start..];
        let end = rest.find('"').unwrap_or(rest.len());
        let tag = rest[..end].trim();
        if !tag.is_empty() {
            tags.push(tag.to_string());
        }
        from = start;
    }
    tags
}

/// Colour category of a `deploymentProfileAssignmentStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Chip {
    Assigned,
    OutOfSync,
    Pending,
    NotAssigned,
    Failed,
}

impl Chip {
    pub const ALL: [Chip; 5] = [
        Chip::Assigned,
        Chip::OutOfSync,
        Chip::Pending,
        Chip::NotAssigned,
        Chip::Failed,
    ];

    /// `unknown` and values this wizard does not know count as not assigned; the raw value
    /// stays visible next to the chip.
    pub fn from_raw(raw: &str) -> Chip {
        match raw {
            "assignedInSync" | "assignedUnkownSyncState" | "assignedUnknownSyncState" => {
                Chip::Assigned
            }
            "assignedOutOfSync" => Chip::OutOfSync,
            "pending" => Chip::Pending,
            "failed" => Chip::Failed,
            _ => Chip::NotAssigned,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Chip::Assigned => "Assigned",
            Chip::OutOfSync => "Out of sync",
            Chip::Pending => "Pending",
            Chip::NotAssigned => "Not assigned",
            Chip::Failed => "Failed",
        }
    }
}

/// Whether a device is in the target group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MemberState {
    Member,
    /// The Entra object exists but is not a member (yet).
    NotMember,
    /// Entra has not created the device object yet.
    NoEntraObject,
}

impl MemberState {
    pub fn label(self) -> &'static str {
        match self {
            MemberState::Member => "Member",
            MemberState::NotMember => "Not a member",
            MemberState::NoEntraObject => "No Entra object yet",
        }
    }
}

/// One device on the board.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoardRow {
    pub id: String,
    pub serial: String,
    pub manufacturer: String,
    pub model: String,
    pub group_tag: String,
    pub display_name: String,
    pub user_principal_name: String,
    pub entra_device_id: Option<String>,
    pub membership: MemberState,
    /// Id and name of the profile the device has (`deploymentProfile`).
    pub profile_id: Option<String>,
    pub profile_name: Option<String>,
    /// The profile the service means to give it (`intendedDeploymentProfile`).
    pub intended_profile_id: Option<String>,
    pub intended_profile_name: Option<String>,
    /// `deploymentProfileAssignmentStatus` as Graph sent it.
    pub status_raw: String,
    pub chip: Chip,
    pub detailed_status: String,
    pub assigned_at: Option<DateTime<Utc>>,
    pub enrollment_state: String,
    pub last_contact: Option<DateTime<Utc>>,
    pub remediation_state: String,
    /// The device's latest deployment through OOBE (`None`: none reported).
    #[serde(default)]
    pub deployment: Option<Deployment>,
}

impl BoardRow {
    /// Where the device is in OOBE.
    /// Whether the device could still be switched on for a first deployment.
    pub fn awaits_first_deployment(&self) -> bool {
        self.deployment.is_none() && self.enrollment_state != "enrolled"
    }

    pub fn deployment_phase(&self) -> DeploymentPhase {
        self.deployment
            .as_ref()
            .map_or(DeploymentPhase::NotStarted, |d| d.phase)
    }

    /// The Deployment column in words. An enrolled device the report does not name went through
    /// OOBE before the report's window (or was enrolled without Autopilot): not "not started".
    pub fn deployment_words(&self) -> String {
        match &self.deployment {
            Some(d) => d.words(),
            None if self.enrollment_state == "enrolled" => ENROLLED_EARLIER.to_string(),
            None => DeploymentPhase::NotStarted.label().to_string(),
        }
    }

    /// The three conditions of procedure §1.3: status Assigned, a date assigned, the expected
    /// profile.
    pub fn is_ready(&self, expected_profile_id: &str) -> bool {
        self.chip == Chip::Assigned
            && self.assigned_at.is_some()
            && self
                .profile_id
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case(expected_profile_id))
    }
}

/// Counts per chip.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub total: usize,
    pub assigned: usize,
    pub out_of_sync: usize,
    pub pending: usize,
    pub not_assigned: usize,
    pub failed: usize,
    /// Assigned with a date and the expected profile.
    pub ready: usize,
}

impl Summary {
    pub fn count(&self, chip: Chip) -> usize {
        match chip {
            Chip::Assigned => self.assigned,
            Chip::OutOfSync => self.out_of_sync,
            Chip::Pending => self.pending,
            Chip::NotAssigned => self.not_assigned,
            Chip::Failed => self.failed,
        }
    }

    /// Nothing the service is still working on (nothing to poll for).
    pub fn settled(&self) -> bool {
        self.pending == 0 && self.not_assigned == 0 && self.out_of_sync == 0
    }
}

/// Everything the board needs besides the devices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    /// Entra `deviceId`s of the group's device members.
    pub member_device_ids: HashSet<String>,
    /// Beta `membershipRuleProcessingStatus.status` of a dynamic group.
    pub processing: Option<String>,
}

/// The profile assignment board: one row per Autopilot device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Board {
    pub target: Target,
    pub rows: Vec<BoardRow>,
    pub group: GroupSnapshot,
    pub loaded_at: DateTime<Utc>,
}

impl Board {
    /// Builds rows from devices as Graph returned them. `profile_names` maps profile ids to
    /// display names for devices read without `$expand`.
    pub fn build(
        target: Target,
        devices: &[AutopilotDevice],
        group: GroupSnapshot,
        profile_names: &HashMap<String, String>,
    ) -> Board {
        let members_lower: HashSet<String> = group
            .member_device_ids
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        let rows = devices
            .iter()
            .map(|d| row_from_device(d, &members_lower, profile_names))
            .collect();
        Board {
            target,
            rows,
            group,
            loaded_at: Utc::now(),
        }
    }

    pub fn summary(&self) -> Summary {
        summarize(&self.rows, &self.target.profile_id)
    }

    /// The counts over the devices whose serial number is in `serials` (upper-case), or over
    /// every device when `None`: step 6 is about the devices imported in step 5, not the
    /// tenant's other devices with their own profiles.
    pub fn summary_in(&self, serials: Option<&HashSet<String>>) -> Summary {
        match serials {
            None => self.summary(),
            Some(wanted) => {
                let rows = self
                    .rows
                    .iter()
                    .filter(|r| wanted.contains(&r.serial.trim().to_ascii_uppercase()));
                summarize(rows, &self.target.profile_id)
            }
        }
    }

    /// Why the device in `row` is not (yet) assigned the expected profile, and the one thing to
    /// do about it.
    pub fn diagnose(&self, row: &BoardRow) -> Diagnosis {
        diagnose(&self.target, &self.group, row)
    }

    /// [`Board::diagnose`] limited to what the wizard may change (see [`diagnose_in`]).
    pub fn diagnose_in(&self, row: &BoardRow, in_scope: bool) -> Diagnosis {
        diagnose_in(&self.target, &self.group, row, in_scope)
    }

    /// Puts each device's latest deployment (by upper-case serial number) on its row; rows
    /// without one have none. Returns whether anything changed.
    pub fn set_deployments(
        &mut self,
        by_serial: &std::collections::BTreeMap<String, Deployment>,
    ) -> bool {
        let mut changed = false;
        for r in &mut self.rows {
            let d = by_serial.get(&r.serial.trim().to_ascii_uppercase());
            if r.deployment.as_ref() != d {
                r.deployment = d.cloned();
                changed = true;
            }
        }
        changed
    }

    /// Some device of `scope` (or any, with `None`) is still going through OOBE.
    pub fn deploying(&self) -> bool {
        self.rows.iter().any(|r| r.deployment_phase().in_progress())
    }

    pub fn row_by_id(&self, id: &str) -> Option<&BoardRow> {
        self.rows.iter().find(|r| r.id == id)
    }
}

fn summarize<'a>(rows: impl IntoIterator<Item = &'a BoardRow>, expected_profile: &str) -> Summary {
    let mut s = Summary::default();
    for r in rows {
        s.total += 1;
        match r.chip {
            Chip::Assigned => s.assigned += 1,
            Chip::OutOfSync => s.out_of_sync += 1,
            Chip::Pending => s.pending += 1,
            Chip::NotAssigned => s.not_assigned += 1,
            Chip::Failed => s.failed += 1,
        }
        // Ready through the group: a device that has the profile through another assignment
        // but is not a member is not what the group's assignment promises (it loses the profile
        // when that other assignment goes).
        if r.is_ready(expected_profile) && r.membership == MemberState::Member {
            s.ready += 1;
        }
    }
    s
}

fn row_from_device(
    d: &AutopilotDevice,
    members_lower: &HashSet<String>,
    profile_names: &HashMap<String, String>,
) -> BoardRow {
    let entra = d.entra_device_id().map(|s| s.to_string());
    let membership = match &entra {
        None => MemberState::NoEntraObject,
        Some(id) if members_lower.contains(&id.to_ascii_lowercase()) => MemberState::Member,
        Some(_) => MemberState::NotMember,
    };
    let name_of = |p: &Option<crate::graph::models::autopilot::ProfileRef>| {
        p.as_ref().filter(|p| !p.id.is_empty()).map(|p| {
            let name = if p.display_name.is_empty() {
                profile_names.get(&p.id).cloned().unwrap_or_default()
            } else {
                p.display_name.clone()
            };
            (p.id.clone(), name)
        })
    };
    let assigned = name_of(&d.deployment_profile);
    let intended = name_of(&d.intended_deployment_profile);
    let status_raw = d
        .deployment_profile_assignment_status
        .clone()
        .unwrap_or_else(|| "unknown".into());
    BoardRow {
        id: d.id.clone(),
        serial: d.serial_number.clone(),
        manufacturer: d.manufacturer.clone().unwrap_or_default(),
        model: d.model.clone().unwrap_or_default(),
        group_tag: d.group_tag.clone().unwrap_or_default(),
        display_name: d.display_name.clone().unwrap_or_default(),
        user_principal_name: d.user_principal_name.clone().unwrap_or_default(),
        entra_device_id: entra,
        membership,
        profile_id: assigned.as_ref().map(|p| p.0.clone()),
        profile_name: assigned.map(|p| p.1),
        intended_profile_id: intended.as_ref().map(|p| p.0.clone()),
        intended_profile_name: intended.map(|p| p.1),
        chip: Chip::from_raw(&status_raw),
        status_raw,
        detailed_status: d
            .deployment_profile_assignment_detailed_status
            .clone()
            .unwrap_or_else(|| "none".into()),
        assigned_at: d.deployment_profile_assigned_date_time,
        enrollment_state: d.enrollment_state.clone().unwrap_or_default(),
        last_contact: d.last_contacted_date_time,
        remediation_state: d.remediation_state.clone().unwrap_or_default(),
        deployment: None,
    }
}

/// Rows and targets for the unit tests of the board's parts.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub fn target(m: GroupMembership) -> Target {
        Target {
            group_id: "g".into(),
            group_name: "Autopilot".into(),
            membership: m,
            profile_id: "p".into(),
            profile_name: "User-driven".into(),
        }
    }

    pub fn row(serial: &str, status: &str) -> BoardRow {
        BoardRow {
            id: serial.to_lowercase(),
            serial: serial.into(),
            manufacturer: "Contoso".into(),
            model: "Laptop".into(),
            group_tag: "HQ".into(),
            display_name: String::new(),
            user_principal_name: String::new(),
            entra_device_id: Some(format!("e-{serial}")),
            membership: MemberState::Member,
            profile_id: None,
            profile_name: None,
            intended_profile_id: None,
            intended_profile_name: None,
            status_raw: status.into(),
            chip: Chip::from_raw(status),
            detailed_status: "none".into(),
            assigned_at: None,
            enrollment_state: "notContacted".into(),
            last_contact: None,
            remediation_state: "noRemediationRequired".into(),
            deployment: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chips_follow_the_raw_status() {
        assert_eq!(Chip::from_raw("assignedUnkownSyncState"), Chip::Assigned);
        assert_eq!(Chip::from_raw("assignedInSync"), Chip::Assigned);
        assert_eq!(Chip::from_raw("assignedOutOfSync"), Chip::OutOfSync);
        assert_eq!(Chip::from_raw("pending"), Chip::Pending);
        assert_eq!(Chip::from_raw("failed"), Chip::Failed);
        assert_eq!(Chip::from_raw("unknown"), Chip::NotAssigned);
    }

    #[test]
    fn an_enrolled_device_missing_from_the_report_is_not_called_not_started() {
        let mut r = fixtures::row("S1", "assignedInSync");
        assert_eq!(r.deployment_words(), "Not started");
        assert!(r.awaits_first_deployment());
        r.enrollment_state = "enrolled".into();
        assert_eq!(r.deployment_words(), ENROLLED_EARLIER);
        assert!(
            !r.awaits_first_deployment(),
            "not switched on again by the demo button"
        );
    }
}
