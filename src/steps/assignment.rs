//! Steps 6: every registered device gets the deployment profile.
//!
//! The procedure (reference procedure §1.2–§1.4): a dynamic group picks devices up on its own;
//! a static group needs each device's Entra object added by hand, and that object exists only
//! after the import finished and Intune synced. Then the Autopilot service assigns the profile,
//! minutes to hours later, with no SLA. A device is ready when its
//! `deploymentProfileAssignmentStatus` starts with `assigned`, a date assigned is set, and the
//! assigned profile is the expected one. When several profiles target a device, the oldest wins.
//!
//! Everything here is plain data plus async functions over [`GraphClient`]; the page draws the
//! [`Board`] and calls these.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::graph::client::{encode, odata_string};
use crate::graph::models::autopilot::{AutopilotDevice, UpdateDeviceProperties};
use crate::graph::models::directory::{MAX_MEMBERS_PER_PATCH, MembersBind, ObjectRef};
use crate::graph::{ApiVersion, GraphClient, GraphError};

const DEVICES_PATH: &str = "/deviceManagement/windowsAutopilotDeviceIdentities";

/// What went wrong, in words for the IT person running the wizard.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AssignmentError {
    #[error(transparent)]
    Graph(Box<GraphError>),
    #[error(
        "Gave up waiting after {waited_min} min while {phase}. Still waiting for: {pending}. \
         Microsoft gives no time limit for this; it usually takes minutes but can take hours. \
         {hint}"
    )]
    Timeout {
        phase: String,
        waited_min: u64,
        pending: String,
        hint: String,
    },
    #[error("The edit was not sent: {0}")]
    InvalidEdit(String),
    #[error("Autopilot device {0} no longer exists. It may have been deleted; refresh the list.")]
    DeviceGone(String),
    #[error("Could not write the CSV file: {0}")]
    Export(String),
    #[error(transparent)]
    Group(Box<crate::steps::group::GroupError>),
    #[error("Cancelled.")]
    Cancelled,
}

impl AssignmentError {
    fn from_group(e: crate::steps::group::GroupError) -> Self {
        use crate::steps::group::GroupError;
        match e {
            GroupError::Graph { source, .. } | GroupError::Forbidden { source, .. }
                if matches!(*source, GraphError::Cancelled) =>
            {
                AssignmentError::Cancelled
            }
            other => AssignmentError::Group(Box::new(other)),
        }
    }

    fn from_graph(e: GraphError) -> Self {
        match e {
            GraphError::Cancelled => AssignmentError::Cancelled,
            other => AssignmentError::Graph(Box::new(other)),
        }
    }
}

impl From<GraphError> for AssignmentError {
    fn from(e: GraphError) -> Self {
        AssignmentError::from_graph(e)
    }
}

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
    /// The target of the profile from step 3 and the group from step 4.
    pub fn from_steps(
        profile: &crate::steps::profile::ProfileRef,
        group: &crate::steps::group::GroupRef,
    ) -> Target {
        use crate::steps::group::GroupKind;
        Target {
            group_id: group.id.clone(),
            group_name: group.display_name.clone(),
            membership: match &group.kind {
                GroupKind::Dynamic { rule } => GroupMembership::Dynamic { rule: rule.clone() },
                GroupKind::Static => GroupMembership::Static,
            },
            profile_id: profile.id.clone(),
            profile_name: profile.display_name.clone(),
        }
    }

    /// The group tag a dynamic `[OrderID]:<tag>` rule selects, if the rule is of that form.
    pub fn rule_group_tag(&self) -> Option<String> {
        let GroupMembership::Dynamic { rule } = &self.membership else {
            return None;
        };
        let lower = rule.to_ascii_lowercase();
        let start = lower.find("[orderid]:")? + "[orderid]:".len();
        let rest = &rule[start..];
        let end = rest.find('"')?;
        Some(rest[..end].to_string())
    }
}

/// Polling and timeouts of the waits. No SLA exists, so the defaults are generous; tests shrink
/// them.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitOptions {
    pub first_poll: Duration,
    /// Polls back off up to this interval.
    pub max_poll: Duration,
    /// Each phase (Entra objects, membership, assignment) gives up after this long.
    pub phase_timeout: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            first_poll: Duration::from_secs(5),
            max_poll: Duration::from_secs(60),
            phase_timeout: Duration::from_secs(4 * 3600),
        }
    }
}

impl WaitOptions {
    fn next_poll(&self, current: Duration) -> Duration {
        current.mul_f64(1.5).min(self.max_poll).max(self.first_poll)
    }
}

/// What the waits report while they run.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Looking up the Entra device objects of the Autopilot devices (static groups).
    ResolvingEntraObjects { found: usize, total: usize },
    /// Adding devices to the static group.
    AddingMembers {
        added: usize,
        already: usize,
        total: usize,
    },
    /// Waiting for the dynamic group to take the devices in.
    Membership {
        members: usize,
        total: usize,
        processing: Option<String>,
    },
    /// Waiting for the Autopilot service to assign the profile.
    Assignment { summary: Summary },
}

impl Progress {
    /// An honest sentence for the status line.
    pub fn message(&self) -> String {
        match self {
            Progress::ResolvingEntraObjects { found, total } => format!(
                "Found the Entra device object of {found} of {total} devices. Entra creates it after the \
                 import finished and Intune synced; the wizard keeps looking."
            ),
            Progress::AddingMembers {
                added,
                already,
                total,
            } => format!(
                "Group membership: added {added}, already members {already}, of {total} devices."
            ),
            Progress::Membership {
                members,
                total,
                processing,
            } => {
                let state = processing
                    .as_deref()
                    .map(|p| format!(" (rule processing: {p})"))
                    .unwrap_or_default();
                format!(
                    "{members} of {total} devices are members of the dynamic group{state}. Entra evaluates \
                     dynamic rules on its own schedule, usually within minutes."
                )
            }
            Progress::Assignment { summary } => format!(
                "{} of {} devices have the profile ({} pending, {} not assigned, {} failed). The Autopilot \
                 service assigns profiles on its own schedule: usually minutes, sometimes hours, and \
                 Microsoft promises no time. You can leave the wizard open or come back later.",
                summary.assigned,
                summary.total,
                summary.pending,
                summary.not_assigned,
                summary.failed
            ),
        }
    }
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
}

impl BoardRow {
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

/// The one thing to do about a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FixAction {
    /// Nothing: the device is ready.
    None,
    /// Wait for the service; refreshing shows progress.
    Wait,
    /// Ask Autopilot to sync.
    SyncNow,
    /// Add the device to the static group.
    AddToGroup,
    /// Set the device's group tag so the dynamic rule picks it up.
    SetGroupTag(String),
    /// Something outside this wizard (hardware, the other profile's assignment).
    Manual,
}

impl FixAction {
    pub fn label(&self) -> String {
        match self {
            FixAction::None => "Nothing to do".into(),
            FixAction::Wait => "Wait and refresh".into(),
            FixAction::SyncNow => "Sync now".into(),
            FixAction::AddToGroup => "Add to group".into(),
            FixAction::SetGroupTag(t) => format!("Set group tag to {t}"),
            FixAction::Manual => "See the explanation".into(),
        }
    }
}

/// Why a device is (not yet) assigned, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub reason: String,
    pub what_to_do: String,
    pub action: FixAction,
}

/// What step 6 leaves for later steps and restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssignmentOutcome {
    pub summary: Summary,
    /// Every device assigned the expected profile with a date.
    pub all_ready: bool,
    pub checked_at: Option<DateTime<Utc>>,
}

impl AssignmentOutcome {
    pub fn from_board(board: &Board) -> Self {
        Self::from_board_in(board, None)
    }

    /// The outcome over the devices in `serials` (see [`Board::summary_in`]).
    pub fn from_board_in(board: &Board, serials: Option<&HashSet<String>>) -> Self {
        let summary = board.summary_in(serials);
        AssignmentOutcome {
            all_ready: summary.total > 0 && summary.ready == summary.total,
            summary,
            checked_at: Some(board.loaded_at),
        }
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

/// Columns the board sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SortKey {
    #[default]
    Serial,
    Manufacturer,
    Model,
    GroupTag,
    Membership,
    Profile,
    Status,
    AssignedAt,
    Enrollment,
    LastContact,
}

/// What the board shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BoardQuery {
    /// Case-insensitive substring of the serial number.
    pub search: String,
    /// Only rows with this chip.
    pub chip: Option<Chip>,
    pub sort: SortKey,
    pub descending: bool,
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

    /// Indices of the rows to show, filtered and sorted.
    pub fn view(&self, q: &BoardQuery) -> Vec<usize> {
        let needle = q.search.trim().to_lowercase();
        let mut idx: Vec<usize> = self
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| q.chip.is_none_or(|c| r.chip == c))
            .filter(|(_, r)| needle.is_empty() || r.serial.to_lowercase().contains(&needle))
            .map(|(i, _)| i)
            .collect();
        let rows = &self.rows;
        idx.sort_by(|&a, &b| {
            let (x, y) = (&rows[a], &rows[b]);
            let ord = match q.sort {
                SortKey::Serial => x.serial.cmp(&y.serial),
                SortKey::Manufacturer => x.manufacturer.cmp(&y.manufacturer),
                SortKey::Model => x.model.cmp(&y.model),
                SortKey::GroupTag => x.group_tag.cmp(&y.group_tag),
                SortKey::Membership => x.membership.cmp(&y.membership),
                SortKey::Profile => x.profile_name.cmp(&y.profile_name),
                SortKey::Status => x.chip.cmp(&y.chip).then(x.status_raw.cmp(&y.status_raw)),
                SortKey::AssignedAt => x.assigned_at.cmp(&y.assigned_at),
                SortKey::Enrollment => x.enrollment_state.cmp(&y.enrollment_state),
                SortKey::LastContact => x.last_contact.cmp(&y.last_contact),
            }
            .then_with(|| x.serial.cmp(&y.serial));
            if q.descending { ord.reverse() } else { ord }
        });
        idx
    }

    /// Why the device in `row` is not (yet) assigned the expected profile, and the one thing to
    /// do about it.
    pub fn diagnose(&self, row: &BoardRow) -> Diagnosis {
        diagnose(&self.target, &self.group, row)
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
        if r.is_ready(expected_profile) {
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
    }
}

/// The per-device explanation. Order matters: the first blocking cause is the one to fix.
pub fn diagnose(target: &Target, group: &GroupSnapshot, row: &BoardRow) -> Diagnosis {
    let d = |reason: String, what: String, action: FixAction| Diagnosis {
        reason,
        what_to_do: what,
        action,
    };
    let other_profile = row
        .profile_id
        .as_deref()
        .or(row.intended_profile_id.as_deref())
        .filter(|p| !p.eq_ignore_ascii_case(&target.profile_id));
    if row.is_ready(&target.profile_id) {
        return d(
            format!(
                "Assigned \"{}\" on {}.",
                target.profile_name,
                fmt_date(row.assigned_at)
            ),
            "Nothing: this device is ready to deploy.".into(),
            FixAction::None,
        );
    }
    if row.chip == Chip::Failed {
        let detail = row.detailed_status.as_str();
        let why = match detail {
            "hardwareRequirementsNotMet" => {
                "The hardware does not meet the requirements of this profile (for example TPM 2.0 \
                 attestation or the device type)."
            }
            "holoLensProfileNotSupported"
            | "surfaceHubProfileNotSupported"
            | "surfaceHub2SProfileNotSupported" => {
                "This device type cannot use a Windows PC user-driven profile."
            }
            _ => "The Autopilot service could not assign the profile.",
        };
        return d(
            format!("{why} (status {}, detail {detail})", row.status_raw),
            "Use a different device for this profile, or remove this one from the group. \
             Re-importing will not help."
                .into(),
            FixAction::Manual,
        );
    }
    if row.remediation_state == "manualRemediationRequired" {
        return d(
            "Autopilot reports that this device needs manual remediation (its hardware hash \
             changed, for example after a motherboard replacement)."
                .into(),
            "Capture the hardware hash again and re-import the device.".into(),
            FixAction::Manual,
        );
    }
    if let Some(other) = other_profile {
        let name = row
            .profile_name
            .clone()
            .filter(|_| row.profile_id.as_deref() == Some(other))
            .or_else(|| row.intended_profile_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| other.to_string());
        return d(
            format!(
                "Another profile wins: \"{name}\" also targets this device and is older than \"{}\" \
                 (when several profiles apply, the oldest one wins).",
                target.profile_name
            ),
            format!(
                "Remove the device from the group that \"{name}\" is assigned to, or remove that \
                 assignment, then wait for the service."
            ),
            FixAction::Manual,
        );
    }
    match row.membership {
        MemberState::NoEntraObject => {
            return d(
                "Entra has not created this device's object yet; it appears after the import \
                 finished and Intune synced."
                    .into(),
                "Run a sync, then wait a few minutes.".into(),
                FixAction::SyncNow,
            );
        }
        MemberState::NotMember => {
            return match &target.membership {
                GroupMembership::Static => d(
                    format!("The device is not a member of \"{}\".", target.group_name),
                    "Add it to the group.".into(),
                    FixAction::AddToGroup,
                ),
                GroupMembership::Dynamic { .. } => {
                    let processing = group.processing.as_deref().unwrap_or("unknown");
                    match target.rule_group_tag() {
                        Some(tag) if !row.group_tag.eq_ignore_ascii_case(&tag) => d(
                            format!(
                                "Not a member: the group's rule selects group tag \"{tag}\", the \
                                 device has \"{}\".",
                                row.group_tag
                            ),
                            format!("Set the device's group tag to \"{tag}\"."),
                            FixAction::SetGroupTag(tag),
                        ),
                        _ if processing == "Failed" => d(
                            "Entra could not process the group's membership rule.".into(),
                            "Check the rule on the Device group step.".into(),
                            FixAction::Manual,
                        ),
                        _ => d(
                            format!(
                                "Membership pending: Entra has not added the device to the \
                                 dynamic group yet (rule processing: {processing})."
                            ),
                            "Wait: Entra evaluates dynamic groups on its own schedule, usually \
                             within minutes."
                                .into(),
                            FixAction::Wait,
                        ),
                    }
                }
            };
        }
        MemberState::Member => {}
    }
    match row.chip {
        Chip::OutOfSync => d(
            "The profile is assigned but the device has not picked it up yet (out of sync).".into(),
            "Run a sync.".into(),
            FixAction::SyncNow,
        ),
        Chip::Assigned => d(
            format!(
                "Status is {} but {}.",
                row.status_raw,
                if row.assigned_at.is_none() {
                    "no date assigned is set yet"
                } else {
                    "the assigned profile is not known yet"
                }
            ),
            "Wait and refresh.".into(),
            FixAction::Wait,
        ),
        Chip::Pending => d(
            "The Autopilot service is assigning the profile (pending).".into(),
            "Wait: assignment takes minutes to hours and has no guaranteed time.".into(),
            FixAction::Wait,
        ),
        _ => d(
            "The device is in the group but the service has not started the assignment yet.".into(),
            "Wait; if nothing moves for an hour, run a sync.".into(),
            FixAction::Wait,
        ),
    }
}

fn fmt_date(d: Option<DateTime<Utc>>) -> String {
    d.map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Writes the rows (in the given order) as CSV with a header line.
pub fn export_csv<'a, W: std::io::Write>(
    board: &'a Board,
    rows: impl IntoIterator<Item = &'a BoardRow>,
    out: W,
) -> Result<(), AssignmentError> {
    let err = |e: csv::Error| AssignmentError::Export(e.to_string());
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "Serial number",
        "Manufacturer",
        "Model",
        "Group tag",
        "Computer name",
        "Assigned user",
        "Group membership",
        "Assigned profile",
        "Status",
        "Raw status",
        "Detailed status",
        "Date assigned",
        "Enrollment state",
        "Last contact",
        "Why / what to do",
    ])
    .map_err(err)?;
    for r in rows {
        let diag = board.diagnose(r);
        w.write_record([
            r.serial.as_str(),
            &r.manufacturer,
            &r.model,
            &r.group_tag,
            &r.display_name,
            &r.user_principal_name,
            r.membership.label(),
            r.profile_name.as_deref().unwrap_or(""),
            r.chip.label(),
            &r.status_raw,
            &r.detailed_status,
            &r.assigned_at.map(|d| d.to_rfc3339()).unwrap_or_default(),
            &r.enrollment_state,
            &r.last_contact.map(|d| d.to_rfc3339()).unwrap_or_default(),
            &format!("{} {}", diag.reason, diag.what_to_do),
        ])
        .map_err(err)?;
    }
    w.flush()
        .map_err(|e| AssignmentError::Export(e.to_string()))?;
    Ok(())
}

/// Changes the user can make to one device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEdit {
    pub group_tag: Option<String>,
    /// Computer name applied at deployment (Entra join only).
    pub display_name: Option<String>,
    /// Assigned user; an empty string removes the assignment.
    pub user_principal_name: Option<String>,
}

impl DeviceEdit {
    pub fn is_empty(&self) -> bool {
        self.group_tag.is_none()
            && self.display_name.is_none()
            && self.user_principal_name.is_none()
    }

    /// Checks the values the service would reject (or would accept and fail at deployment).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(name) = &self.display_name {
            validate_computer_name(name)?;
        }
        if let Some(tag) = &self.group_tag
            && (tag.contains('"') || tag.chars().any(|c| c.is_control()))
        {
            return Err(
                "The group tag cannot contain quotes or control characters (dynamic group rules \
                 quote it)."
                    .into(),
            );
        }
        if let Some(upn) = &self.user_principal_name {
            let upn = upn.trim();
            if !upn.is_empty()
                && (upn.matches('@').count() != 1
                    || upn.starts_with('@')
                    || upn.ends_with('@')
                    || upn.contains(' '))
            {
                return Err(format!(
                    "\"{upn}\" is not a user principal name (name@domain); leave it empty to \
                     remove the assigned user."
                ));
            }
        }
        Ok(())
    }
}

/// A Windows computer name as Autopilot applies it: 1–15 characters, letters, digits and
/// hyphens, not only digits (NetBIOS rules). An empty name clears it.
pub fn validate_computer_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Ok(());
    }
    let len = name.chars().count();
    if len > 15 {
        return Err(format!(
            "The computer name \"{name}\" has {len} characters; Windows allows at most 15."
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "The computer name cannot contain \"{bad}\"; use letters, digits and hyphens."
        ));
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err("The computer name cannot be only digits.".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Graph

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntraDevice {
    id: String,
    #[serde(default)]
    device_id: Option<String>,
}

/// Reads every Autopilot device (beta, for the assignment fields): one paged list read.
pub async fn list_devices(graph: &GraphClient) -> Result<Vec<AutopilotDevice>, AssignmentError> {
    graph
        .get_all(ApiVersion::Beta, DEVICES_PATH)
        .await
        .map_err(AssignmentError::from_graph)
}

/// One device with its `deploymentProfile` and `intendedDeploymentProfile` expanded.
pub async fn get_device_expanded(
    graph: &GraphClient,
    id: &str,
) -> Result<AutopilotDevice, AssignmentError> {
    graph
        .get_json(
            ApiVersion::Beta,
            &format!(
                "{DEVICES_PATH}/{}?$expand=deploymentProfile,intendedDeploymentProfile",
                encode(id)
            ),
        )
        .await
        .map_err(|e| match e {
            e if e.is_not_found() => AssignmentError::DeviceGone(id.to_string()),
            e => AssignmentError::from_graph(e),
        })
}

/// The Entra `deviceId`s of the group's device members, and the rule processing status.
pub async fn read_group(
    graph: &GraphClient,
    target: &Target,
) -> Result<GroupSnapshot, AssignmentError> {
    let members: Vec<EntraDevice> = graph
        .get_all(
            ApiVersion::V1,
            &format!(
                "/groups/{}/members/microsoft.graph.device?$select=id,deviceId,displayName",
                encode(&target.group_id)
            ),
        )
        .await
        .map_err(AssignmentError::from_graph)?;
    let processing = if matches!(target.membership, GroupMembership::Dynamic { .. }) {
        // Step 4's read-back already knows beta's processing status and the v1.0 fallback;
        // one attempt, since the group exists by now.
        let once = crate::steps::group::ReadBackPolicy {
            attempts: 1,
            delay: Duration::ZERO,
        };
        crate::steps::group::read_back(graph, &target.group_id, once)
            .await
            .map_err(AssignmentError::from_group)?
            .processing_status
    } else {
        None
    };
    Ok(GroupSnapshot {
        member_device_ids: members.into_iter().filter_map(|m| m.device_id).collect(),
        processing,
    })
}

/// Fills in profile names for devices the list returned without expansion: devices that
/// report a profile status but no profile are read once with `$expand`.
async fn expand_where_needed(
    graph: &GraphClient,
    devices: &mut [AutopilotDevice],
    known: &mut HashMap<String, (Option<String>, AutopilotDevice)>,
) -> Result<(), AssignmentError> {
    for d in devices.iter_mut() {
        let status = d.deployment_profile_assignment_status.clone();
        let needs = d.deployment_profile.is_none()
            && d.intended_deployment_profile.is_none()
            && status.as_deref().is_some_and(|s| s != "notAssigned");
        if !needs {
            continue;
        }
        if let Some((s, cached)) = known.get(&d.id)
            && *s == status
        {
            d.deployment_profile = cached.deployment_profile.clone();
            d.intended_deployment_profile = cached.intended_deployment_profile.clone();
            continue;
        }
        let full = match get_device_expanded(graph, &d.id).await {
            Ok(f) => f,
            Err(AssignmentError::DeviceGone(_)) => continue,
            Err(e) => return Err(e),
        };
        d.deployment_profile = full.deployment_profile.clone();
        d.intended_deployment_profile = full.intended_deployment_profile.clone();
        known.insert(d.id.clone(), (status, full));
    }
    Ok(())
}

/// Reads the board once: the device list, the group, and the profile of every device that
/// has one.
pub async fn load_board(graph: &GraphClient, target: &Target) -> Result<Board, AssignmentError> {
    BoardReader::new(target.clone()).read(graph).await
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileName {
    id: String,
    #[serde(default)]
    display_name: Option<String>,
}

/// Reads the board repeatedly with as few requests as possible: one paged list read and one
/// group read per refresh, an expanded read only for devices whose status changed, and the
/// profile names once.
#[derive(Debug, Clone)]
pub struct BoardReader {
    target: Target,
    expanded: HashMap<String, (Option<String>, AutopilotDevice)>,
    names: HashMap<String, String>,
}

impl BoardReader {
    pub fn new(target: Target) -> Self {
        let names = HashMap::from([(target.profile_id.clone(), target.profile_name.clone())]);
        BoardReader {
            target,
            expanded: HashMap::new(),
            names,
        }
    }

    pub async fn read(&mut self, graph: &GraphClient) -> Result<Board, AssignmentError> {
        let mut devices = list_devices(graph).await?;
        expand_where_needed(graph, &mut devices, &mut self.expanded).await?;
        let unnamed = devices.iter().any(|d| {
            [&d.deployment_profile, &d.intended_deployment_profile]
                .into_iter()
                .flatten()
                .any(|p| {
                    !p.id.is_empty() && p.display_name.is_empty() && !self.names.contains_key(&p.id)
                })
        });
        if unnamed {
            let list: Vec<ProfileName> = graph
                .get_all(
                    ApiVersion::Beta,
                    "/deviceManagement/windowsAutopilotDeploymentProfiles?$select=id,displayName",
                )
                .await
                .map_err(AssignmentError::from_graph)?;
            for p in list {
                self.names.insert(p.id, p.display_name.unwrap_or_default());
            }
        }
        let group = read_group(graph, &self.target).await?;
        Ok(Board::build(
            self.target.clone(),
            &devices,
            group,
            &self.names,
        ))
    }
}

async fn sleep_or_cancel(graph: &GraphClient, d: Duration) -> Result<(), AssignmentError> {
    tokio::select! {
        _ = graph.cancel_token().cancelled() => Err(AssignmentError::Cancelled),
        _ = tokio::time::sleep(d) => Ok(()),
    }
}

/// One waiting phase: the growing poll interval and the phase's deadline.
struct Poll<'a> {
    opts: &'a WaitOptions,
    started: tokio::time::Instant,
    wait: Duration,
}

impl<'a> Poll<'a> {
    fn new(opts: &'a WaitOptions) -> Self {
        Poll {
            opts,
            started: tokio::time::Instant::now(),
            wait: opts.first_poll,
        }
    }

    /// Polls fast again (a new sub-phase) without restarting the phase's deadline.
    fn reset_interval(&mut self) {
        self.wait = self.opts.first_poll;
    }

    fn expired(&self) -> bool {
        self.started.elapsed() >= self.opts.phase_timeout
    }

    fn waited_min(&self) -> u64 {
        self.started.elapsed().as_secs() / 60
    }

    async fn sleep(&mut self, graph: &GraphClient) -> Result<(), AssignmentError> {
        sleep_or_cancel(graph, self.wait).await?;
        self.wait = self.opts.next_poll(self.wait);
        Ok(())
    }
}

fn list_serials<'a>(serials: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = serials.collect();
    if v.len() > 10 {
        format!("{} and {} more", v[..10].join(", "), v.len() - 10)
    } else {
        v.join(", ")
    }
}

/// Looks up the Entra objects of `device_ids` (Entra `deviceId`s), 15 per request with an
/// `or`-joined filter. Returns `deviceId` (lower case) → object id.
async fn resolve_entra(
    graph: &GraphClient,
    device_ids: &[String],
) -> Result<HashMap<String, String>, AssignmentError> {
    let mut out = HashMap::new();
    for chunk in device_ids.chunks(15) {
        let filter = chunk
            .iter()
            .map(|id| format!("deviceId eq {}", odata_string(id)))
            .collect::<Vec<_>>()
            .join("%20or%20");
        let found: Vec<EntraDevice> = graph
            .get_all(
                ApiVersion::V1,
                &format!("/devices?$filter={filter}&$select=id,deviceId,displayName"),
            )
            .await
            .map_err(AssignmentError::from_graph)?;
        for d in found {
            if let Some(did) = d.device_id {
                out.insert(did.to_ascii_lowercase(), d.id);
            }
        }
    }
    Ok(out)
}

/// The result of putting devices into a static group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipReport {
    pub added: Vec<String>,
    pub already_members: Vec<String>,
    /// Serials now confirmed members by reading the group back.
    pub confirmed: Vec<String>,
}

/// Static group: finds each device's Entra object (waiting while Entra has not created it
/// yet), adds the missing ones to the group and reads the membership back. Safe to re-run:
/// existing members are skipped.
pub async fn ensure_static_members(
    graph: &GraphClient,
    target: &Target,
    devices: &[AutopilotDevice],
    opts: &WaitOptions,
    mut progress: impl FnMut(Progress) + Send,
) -> Result<MembershipReport, AssignmentError> {
    let mut poll = Poll::new(opts);
    let total = devices.len();
    let mut devices: Vec<AutopilotDevice> = devices.to_vec();
    // deviceId (lower) → object id
    let mut resolved: HashMap<String, String> = HashMap::new();
    loop {
        // An Autopilot record gets its azureActiveDirectoryDeviceId when the Entra object is
        // created, so records without one are read again.
        if devices.iter().any(|d| d.entra_device_id().is_none()) {
            let all = list_devices(graph).await?;
            let by_id: HashMap<&str, &AutopilotDevice> =
                all.iter().map(|d| (d.id.as_str(), d)).collect();
            for d in devices.iter_mut() {
                if d.entra_device_id().is_none()
                    && let Some(f) = by_id.get(d.id.as_str())
                {
                    *d = (*f).clone();
                }
            }
        }
        let wanted: Vec<String> = devices
            .iter()
            .filter_map(|d| d.entra_device_id())
            .map(|s| s.to_ascii_lowercase())
            .filter(|id| !resolved.contains_key(id))
            .collect();
        resolved.extend(resolve_entra(graph, &wanted).await?);
        let missing: Vec<&AutopilotDevice> = devices
            .iter()
            .filter(|d| {
                d.entra_device_id()
                    .is_none_or(|id| !resolved.contains_key(&id.to_ascii_lowercase()))
            })
            .collect();
        progress(Progress::ResolvingEntraObjects {
            found: total - missing.len(),
            total,
        });
        if missing.is_empty() {
            break;
        }
        if poll.expired() {
            return Err(AssignmentError::Timeout {
                phase: "waiting for Entra to create the device objects".into(),
                waited_min: poll.waited_min(),
                pending: list_serials(missing.iter().map(|d| d.serial_number.as_str())),
                hint: "Run a sync on the Import step and check that the import finished without \
                       errors, then run this step again."
                    .into(),
            });
        }
        poll.sleep(graph).await?;
    }

    let before = read_group(graph, target).await?;
    let members_lower: HashSet<String> = before
        .member_device_ids
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let mut report = MembershipReport::default();
    let mut to_add: Vec<(&AutopilotDevice, &str)> = Vec::new();
    for d in &devices {
        let did = d
            .entra_device_id()
            .map(|s| s.to_ascii_lowercase())
            .unwrap_or_default();
        if members_lower.contains(&did) {
            report.already_members.push(d.serial_number.clone());
        } else if let Some(object_id) = resolved.get(&did) {
            to_add.push((d, object_id));
        }
    }
    // Twenty per request instead of one: 500 devices cost 25 requests, not 500.
    for batch in to_add.chunks(MAX_MEMBERS_PER_PATCH) {
        let body = MembersBind {
            members: batch
                .iter()
                .map(|(_, oid)| directory_object_url(graph, oid))
                .collect(),
        };
        match graph
            .patch_json(
                ApiVersion::V1,
                &format!("/groups/{}", encode(&target.group_id)),
                &body,
            )
            .await
        {
            Ok(_) => report
                .added
                .extend(batch.iter().map(|(d, _)| d.serial_number.clone())),
            // All or nothing: one device added meanwhile (another run, a replica catching up)
            // or one object Graph does not find refuses the whole batch. One by one, each
            // device gets its own answer.
            Err(e) if matches!(e.status(), Some(400 | 404)) => {
                tracing::debug!(error = %e, size = batch.len(), "batch add refused; adding one by one");
                for (d, object_id) in batch {
                    add_one_member(graph, target, d, object_id, &mut report).await?;
                }
            }
            Err(e) => return Err(AssignmentError::from_graph(e)),
        }
        progress(Progress::AddingMembers {
            added: report.added.len(),
            already: report.already_members.len(),
            total,
        });
    }
    progress(Progress::AddingMembers {
        added: report.added.len(),
        already: report.already_members.len(),
        total,
    });

    // Read back: directory writes are eventually consistent, so allow a short wait.
    poll.reset_interval();
    loop {
        let after = read_group(graph, target).await?;
        let lower: HashSet<String> = after
            .member_device_ids
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        let (ok, not): (Vec<&AutopilotDevice>, Vec<&AutopilotDevice>) =
            devices.iter().partition(|d| {
                d.entra_device_id()
                    .is_some_and(|id| lower.contains(&id.to_ascii_lowercase()))
            });
        if not.is_empty() {
            report.confirmed = ok.iter().map(|d| d.serial_number.clone()).collect();
            return Ok(report);
        }
        if poll.expired() {
            return Err(AssignmentError::Timeout {
                phase: "reading the group membership back".into(),
                waited_min: poll.waited_min(),
                pending: list_serials(not.iter().map(|d| d.serial_number.as_str())),
                hint: "The devices were added but the group does not list them yet; refresh \
                       later."
                    .into(),
            });
        }
        poll.sleep(graph).await?;
    }
}

/// The reference to a directory object on the same Graph host the request goes to
/// (graph.microsoft.us, microsoftgraph.chinacloudapi.cn, … in national clouds).
fn directory_object_url(graph: &GraphClient, object_id: &str) -> String {
    format!(
        "{}/v1.0/directoryObjects/{}",
        graph.base(),
        encode(object_id)
    )
}

/// Adds one device with `POST members/$ref`; "already a member" counts as done.
async fn add_one_member(
    graph: &GraphClient,
    target: &Target,
    d: &AutopilotDevice,
    object_id: &str,
    report: &mut MembershipReport,
) -> Result<(), AssignmentError> {
    let body = ObjectRef {
        odata_id: directory_object_url(graph, object_id),
    };
    match graph
        .post_no_content(
            ApiVersion::V1,
            &format!("/groups/{}/members/$ref", encode(&target.group_id)),
            Some(&body),
        )
        .await
    {
        Ok(_) => report.added.push(d.serial_number.clone()),
        // Added meanwhile (another run, or a replica that had not caught up): fine.
        Err(e)
            if e.status() == Some(400)
                && e.to_string().to_lowercase().contains("already exist") =>
        {
            report.already_members.push(d.serial_number.clone())
        }
        Err(e) => return Err(AssignmentError::from_graph(e)),
    }
    Ok(())
}

/// Dynamic group: waits until every device (that has an Entra object) is a member.
pub async fn wait_dynamic_membership(
    graph: &GraphClient,
    target: &Target,
    devices: &[AutopilotDevice],
    opts: &WaitOptions,
    mut progress: impl FnMut(Progress) + Send,
) -> Result<GroupSnapshot, AssignmentError> {
    let mut poll = Poll::new(opts);
    loop {
        let snap = read_group(graph, target).await?;
        let lower: HashSet<String> = snap
            .member_device_ids
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        let missing: Vec<&AutopilotDevice> = devices
            .iter()
            .filter(|d| {
                d.entra_device_id()
                    .is_none_or(|id| !lower.contains(&id.to_ascii_lowercase()))
            })
            .collect();
        progress(Progress::Membership {
            members: devices.len() - missing.len(),
            total: devices.len(),
            processing: snap.processing.clone(),
        });
        if missing.is_empty() {
            return Ok(snap);
        }
        if poll.expired() {
            let hint = match target.rule_group_tag() {
                Some(tag) => format!(
                    "The rule selects devices with group tag \"{tag}\"; check the group tag of \
                     the devices still missing."
                ),
                None => "Check that the group's rule matches these devices.".into(),
            };
            return Err(AssignmentError::Timeout {
                phase: format!("waiting for the dynamic group \"{}\"", target.group_name),
                waited_min: poll.waited_min(),
                pending: list_serials(missing.iter().map(|d| d.serial_number.as_str())),
                hint,
            });
        }
        poll.sleep(graph).await?;
    }
}

/// Follows `deploymentProfileAssignmentStatus` until every device in `device_ids` (Autopilot
/// ids; empty = every device) is settled: assigned, failed, or assigned another profile. One
/// paged list read per poll, plus one expanded read when a device's status changes.
pub async fn wait_for_assignment(
    graph: &GraphClient,
    target: &Target,
    device_ids: &[String],
    opts: &WaitOptions,
    mut progress: impl FnMut(Progress) + Send,
) -> Result<Board, AssignmentError> {
    let mut poll = Poll::new(opts);
    let mut reader = BoardReader::new(target.clone());
    let wanted: HashSet<&str> = device_ids.iter().map(|s| s.as_str()).collect();
    loop {
        let mut board = reader.read(graph).await?;
        if !wanted.is_empty() {
            board.rows.retain(|r| wanted.contains(r.id.as_str()));
        }
        let summary = board.summary();
        progress(Progress::Assignment { summary });
        let open: Vec<&BoardRow> = board
            .rows
            .iter()
            .filter(|r| match r.chip {
                Chip::Failed => false,
                Chip::Assigned => r.assigned_at.is_none() || r.profile_id.is_none(),
                _ => true,
            })
            .collect();
        if open.is_empty() {
            return Ok(board);
        }
        if poll.expired() {
            return Err(AssignmentError::Timeout {
                phase: format!("waiting for \"{}\" to be assigned", target.profile_name),
                waited_min: poll.waited_min(),
                pending: list_serials(open.iter().map(|r| r.serial.as_str())),
                hint: "Nothing is wrong yet if the devices show Pending; open the board to see \
                       each device's reason, and come back later."
                    .into(),
            });
        }
        poll.sleep(graph).await?;
    }
}

/// Puts every Autopilot device (or those in `device_ids`) into the group and waits until each
/// is assigned: static groups get the missing members added, dynamic groups are waited for,
/// then the assignment status is followed. Safe to re-run.
pub async fn run(
    graph: &GraphClient,
    target: &Target,
    device_ids: &[String],
    opts: &WaitOptions,
    mut progress: impl FnMut(Progress) + Send,
) -> Result<Board, AssignmentError> {
    let mut devices = list_devices(graph).await?;
    if !device_ids.is_empty() {
        devices.retain(|d| device_ids.contains(&d.id));
    }
    if devices.is_empty() {
        return load_board(graph, target).await;
    }
    match &target.membership {
        GroupMembership::Static => {
            ensure_static_members(graph, target, &devices, opts, &mut progress).await?;
        }
        GroupMembership::Dynamic { .. } => {
            wait_dynamic_membership(graph, target, &devices, opts, &mut progress).await?;
        }
    }
    let ids: Vec<String> = devices.iter().map(|d| d.id.clone()).collect();
    wait_for_assignment(graph, target, &ids, opts, &mut progress).await
}

/// Autopilot allows one manual sync about every 10 minutes (reference §6.5).
pub const SYNC_INTERVAL: Duration = Duration::from_secs(600);

/// What "Sync now" did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncNow {
    Triggered,
    /// A sync is running or was requested recently; the service will pick changes up anyway.
    AlreadySyncing,
    /// The last manual sync was too recent: try again after this long.
    TooSoon(Duration),
}

/// Asks Autopilot to sync, respecting the rate limit the service reports through
/// `lastManualSyncTriggerDateTime` instead of running into it.
pub async fn sync_now(graph: &GraphClient) -> Result<SyncNow, AssignmentError> {
    sync_now_within(graph, SYNC_INTERVAL).await
}

/// [`sync_now`] with another manual-sync window (a simulated tenant's clock runs faster).
pub async fn sync_now_within(
    graph: &GraphClient,
    min_interval: Duration,
) -> Result<SyncNow, AssignmentError> {
    let settings: crate::graph::models::autopilot::AutopilotSettings = graph
        .get_json(
            ApiVersion::Beta,
            "/deviceManagement/windowsAutopilotSettings",
        )
        .await
        .map_err(AssignmentError::from_graph)?;
    if settings.is_syncing() {
        return Ok(SyncNow::AlreadySyncing);
    }
    let wait = crate::steps::import::sync_wait_remaining(&settings, min_interval, Utc::now());
    if !wait.is_zero() {
        return Ok(SyncNow::TooSoon(wait));
    }
    // One attempt: a 429 here means "already syncing", not "retry for minutes".
    let once = graph.clone().with_retry(crate::graph::client::RetryPolicy {
        max_attempts: 1,
        ..Default::default()
    });
    match once
        .post_no_content::<()>(
            ApiVersion::Beta,
            "/deviceManagement/windowsAutopilotSettings/sync",
            None,
        )
        .await
    {
        Ok(_) => Ok(SyncNow::Triggered),
        Err(e) if matches!(e.status(), Some(429) | Some(400)) => Ok(SyncNow::AlreadySyncing),
        Err(e) => Err(AssignmentError::from_graph(e)),
    }
}

/// Result of an edit: the device as read back, and whether every change shows.
#[derive(Debug, Clone, PartialEq)]
pub struct EditOutcome {
    pub device: AutopilotDevice,
    /// Fields that did not read back as sent (the service applies some after a sync).
    pub not_yet_visible: Vec<String>,
}

/// Sends `updateDeviceProperties` with only the changed fields, then reads the device back.
pub async fn update_device(
    graph: &GraphClient,
    id: &str,
    edit: &DeviceEdit,
) -> Result<EditOutcome, AssignmentError> {
    edit.validate().map_err(AssignmentError::InvalidEdit)?;
    if edit.is_empty() {
        return Err(AssignmentError::InvalidEdit("nothing was changed.".into()));
    }
    let upn = edit
        .user_principal_name
        .as_ref()
        .map(|u| u.trim().to_string());
    // Clearing the user has its own action (reference §7); an empty UPN in
    // updateDeviceProperties is not documented to clear it.
    let unassign = upn.as_deref() == Some("");
    let set_upn = upn.clone().filter(|u| !u.is_empty());
    let body = UpdateDeviceProperties {
        user_principal_name: set_upn.clone(),
        // The service shows this name in OOBE; the UPN is the natural value.
        addressable_user_name: set_upn,
        group_tag: edit.group_tag.as_ref().map(|t| t.trim().to_string()),
        display_name: edit.display_name.clone(),
    };
    let gone = |e: crate::graph::GraphError| match e {
        e if e.is_not_found() => AssignmentError::DeviceGone(id.to_string()),
        e => AssignmentError::from_graph(e),
    };
    if unassign {
        graph
            .post_no_content::<()>(
                ApiVersion::Beta,
                &format!("{DEVICES_PATH}/{}/unassignUserFromDevice", encode(id)),
                None,
            )
            .await
            .map_err(gone)?;
    }
    if body != UpdateDeviceProperties::default() {
        graph
            .post_no_content(
                ApiVersion::Beta,
                &format!("{DEVICES_PATH}/{}/updateDeviceProperties", encode(id)),
                Some(&body),
            )
            .await
            .map_err(gone)?;
    }
    let device = get_device_expanded(graph, id).await?;
    let mut not_yet_visible = Vec::new();
    let same = |a: &Option<String>, b: &Option<String>| {
        a.as_deref().unwrap_or("") == b.as_deref().unwrap_or("")
    };
    if body.group_tag.is_some() && !same(&body.group_tag, &device.group_tag) {
        not_yet_visible.push("group tag".into());
    }
    if body.display_name.is_some() && !same(&body.display_name, &device.display_name) {
        not_yet_visible.push("computer name".into());
    }
    if upn.is_some() && !same(&upn, &device.user_principal_name) {
        not_yet_visible.push("assigned user".into());
    }
    Ok(EditOutcome {
        device,
        not_yet_visible,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(m: GroupMembership) -> Target {
        Target {
            group_id: "g".into(),
            group_name: "Autopilot".into(),
            membership: m,
            profile_id: "p".into(),
            profile_name: "User-driven".into(),
        }
    }

    fn row(serial: &str, status: &str) -> BoardRow {
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
        }
    }

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
    fn reasons_name_the_blocking_cause() {
        let dynamic = target(GroupMembership::Dynamic {
            rule: r#"(device.devicePhysicalIds -any (_ -eq "[OrderID]:SALES"))"#.into(),
        });
        let group = GroupSnapshot::default();
        let mut r = row("A1", "notAssigned");
        r.membership = MemberState::NotMember;
        let d = diagnose(&dynamic, &group, &r);
        assert_eq!(d.action, FixAction::SetGroupTag("SALES".into()));
        r.group_tag = "sales".into();
        assert_eq!(diagnose(&dynamic, &group, &r).action, FixAction::Wait);
        assert!(
            diagnose(&dynamic, &group, &r)
                .reason
                .contains("Membership pending")
        );
        let stat = target(GroupMembership::Static);
        assert_eq!(diagnose(&stat, &group, &r).action, FixAction::AddToGroup);

        let mut other = row("B1", "assignedInSync");
        other.profile_id = Some("old".into());
        other.profile_name = Some("Old profile".into());
        other.assigned_at = Some(Utc::now());
        let d = diagnose(&stat, &group, &other);
        assert!(d.reason.contains("Another profile wins"), "{}", d.reason);
        assert!(d.reason.contains("Old profile"));

        let mut ok = other.clone();
        ok.profile_id = Some("p".into());
        assert_eq!(diagnose(&stat, &group, &ok).action, FixAction::None);

        let mut hw = row("C1", "failed");
        hw.detailed_status = "hardwareRequirementsNotMet".into();
        assert!(diagnose(&stat, &group, &hw).reason.contains("hardware"));
    }

    #[test]
    fn view_filters_searches_and_sorts() {
        let board = Board {
            target: target(GroupMembership::Static),
            rows: vec![
                row("ZZ9", "pending"),
                row("AB1", "failed"),
                row("AB2", "pending"),
            ],
            group: GroupSnapshot::default(),
            loaded_at: Utc::now(),
        };
        let q = BoardQuery::default();
        let serials = |v: Vec<usize>| {
            v.iter()
                .map(|&i| board.rows[i].serial.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(serials(board.view(&q)), ["AB1", "AB2", "ZZ9"]);
        let q = BoardQuery {
            chip: Some(Chip::Pending),
            descending: true,
            ..BoardQuery::default()
        };
        assert_eq!(serials(board.view(&q)), ["ZZ9", "AB2"]);
        let q = BoardQuery {
            search: "ab".into(),
            ..BoardQuery::default()
        };
        assert_eq!(serials(board.view(&q)), ["AB1", "AB2"]);
        let s = board.summary();
        assert_eq!((s.total, s.pending, s.failed), (3, 2, 1));
    }

    #[test]
    fn computer_names_follow_windows_rules() {
        assert!(validate_computer_name("HQ-LAPTOP-01").is_ok());
        assert!(validate_computer_name("").is_ok());
        assert!(validate_computer_name("THIS-NAME-IS-TOO-LONG").is_err());
        assert!(validate_computer_name("PC 1").is_err());
        assert!(validate_computer_name("12345").is_err());
        let e = DeviceEdit {
            user_principal_name: Some("anna".into()),
            ..DeviceEdit::default()
        };
        assert!(e.validate().is_err());
    }

    #[test]
    fn csv_has_header_and_quotes() {
        let mut r = row("S,1", "pending");
        r.model = "Model \"X\"".into();
        let board = Board {
            target: target(GroupMembership::Static),
            rows: vec![r],
            group: GroupSnapshot::default(),
            loaded_at: Utc::now(),
        };
        let mut out = Vec::new();
        export_csv(&board, board.rows.iter(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("Serial number,"));
        assert!(text.contains("\"S,1\""));
        assert!(text.contains("\"Model \"\"X\"\"\""));
    }
}
