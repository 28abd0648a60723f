//! Removing and re-using devices (reference §12; §10 for Multi Admin Approval). Not a step of
//! the procedure: it starts from devices that are already there.
//!
//! Three modes:
//! - **Leave the organisation**: optional wipe, the Intune record (polled until 404), the
//!   assigned user, the Autopilot identity (sync, polled until gone), then the Entra object only
//!   if it is still there (an Entra-joined device's object goes by itself; deleting it first
//!   leaves an Autopilot record that fails its next deployment, 0x801C03F3).
//! - **Re-deploy here**: Autopilot Reset (`wipe` with `keepEnrollmentData: true`,
//!   `keepUserData: false`), or `allowNextEnrollment` (beta) for a blocked next enrollment.
//! - **Move to another tenant**: the hardware-hash CSV saved first, then as Leave. The hash is
//!   not readable from the Autopilot identity (`windowsAutopilotDeviceIdentity` has no hash
//!   property in v1.0 or beta; only the import record has `hardwareIdentifier`, and import
//!   records are deleted after the import): it comes from the person's import files.
//!
//! [`plan`] reads everything and says in words what will happen per device before anything is
//! sent; [`execute`] performs it, reads each step back until it holds, and records per device
//! what is done ([`RunRecord`], plain serde) so an interrupted run continues without repeating a
//! wipe (the device's own `deviceActionResults` are read before any wipe as well, for a kill
//! between the request and the record).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::graph::client::{encode, odata_string};
use crate::graph::models::autopilot::AutopilotDevice;
use crate::graph::models::directory::Device;
use crate::graph::{ApiVersion, GraphClient, GraphError};
use crate::steps::poll::{PollPolicy, Poller};
use crate::steps::registry::{BoxFuture, Permission};
use crate::steps::validate::{CheckId, CheckItem, ValidateInputs, Verdict};

/// Deletes Intune records (reference §12 step 3).
pub const MANAGED_DEVICES_WRITE: Permission =
    Permission::new("DeviceManagementManagedDevices.ReadWrite.All", &[]);
/// Wipe and Autopilot Reset: Graph refuses them with ReadWrite.All alone (graph-docs #17172).
pub const PRIVILEGED_OPERATIONS: Permission = Permission::new(
    "DeviceManagementManagedDevices.PrivilegedOperations.All",
    &[],
);
/// Deletes an Entra device object that did not go by itself (reference §12 step 6).
pub const DEVICES_WRITE: Permission =
    Permission::new("Device.ReadWrite.All", &["Directory.ReadWrite.All"]);
/// Reads the Multi Admin Approval policies (`operationApprovalPolicies`, beta).
pub const APPROVAL_POLICIES_READ: Permission = Permission::new(
    "DeviceManagementRBAC.Read.All",
    &[
        "DeviceManagementRBAC.ReadWrite.All",
        "DeviceManagementConfiguration.Read.All",
        "DeviceManagementConfiguration.ReadWrite.All",
    ],
);

/// What removing devices needs beyond the procedure's own permissions; the sign-in asks for them
/// (see `steps::required_permissions`).
pub const PERMISSIONS: &[Permission] = &[
    crate::steps::profile::SERVICE_CONFIG,
    MANAGED_DEVICES_WRITE,
    PRIVILEGED_OPERATIONS,
    DEVICES_WRITE,
    APPROVAL_POLICIES_READ,
];

/// The validation report's Multi Admin Approval item (issue 15, point 8).
pub const CHECK_APPROVAL: CheckId = CheckId::new(
    "MultiAdminApproval",
    "Multi Admin Approval for wipes and deletes",
);

pub const IDENTITIES: &str = "/deviceManagement/windowsAutopilotDeviceIdentities";
pub const MANAGED: &str = "/deviceManagement/managedDevices";
pub const POLICIES: &str = "/deviceManagement/operationApprovalPolicies";
const IMPORTED: &str = "/deviceManagement/importedWindowsAutopilotDeviceIdentities";

/// Where a second administrator approves a held request.
pub const APPROVE_WHERE: &str = "Intune admin center > Tenant administration > Multi Admin Approval > Received requests (https://intune.microsoft.com/#view/Microsoft_Intune_DeviceSettings/TenantAdminMenu/~/multiAdminApproval)";

// ---------------------------------------------------------------------------------------------
// Read models (Graph's wire names; unknown properties ignored)

/// `managedDevice` (v1.0), the properties this flow reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ManagedDevice {
    pub id: String,
    pub device_name: Option<String>,
    pub serial_number: Option<String>,
    #[serde(rename = "azureADDeviceId")]
    pub azure_ad_device_id: Option<String>,
    pub user_principal_name: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub device_action_results: Vec<DeviceActionResult>,
}

/// `deviceActionResult`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeviceActionResult {
    pub action_name: String,
    /// `none, pending, canceled, active, done, failed, notSupported`.
    pub action_state: String,
}

impl ManagedDevice {
    /// The last wipe the device was sent, with its state.
    pub fn wipe_state(&self) -> Option<&str> {
        self.device_action_results
            .iter()
            .rev()
            .find(|a| a.action_name.eq_ignore_ascii_case("wipe"))
            .map(|a| a.action_state.as_str())
    }
}

/// `operationApprovalPolicy` (beta).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApprovalPolicy {
    pub id: String,
    pub display_name: String,
    pub policy_type: String,
    pub policy_platform: String,
    pub approver_group_ids: Vec<String>,
}

impl ApprovalPolicy {
    /// Holds `policy_type` (`deviceWipe`, `deviceDelete`) for Windows devices.
    pub fn holds(&self, policy_type: &str) -> bool {
        self.policy_type.eq_ignore_ascii_case(policy_type)
            && matches!(
                self.policy_platform.as_str(),
                "windows10AndLater" | "notApplicable" | ""
            )
    }
}

/// `deletedWindowsAutopilotDeviceState`, one per serial of `deleteDevices`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeletedDeviceState {
    pub serial_number: String,
    pub device_registration_id: Option<String>,
    /// `unknown, failed, accepted, error`.
    pub deletion_state: String,
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ImportRecord {
    serial_number: String,
    device_error_code: Option<i32>,
}

// ---------------------------------------------------------------------------------------------
// Modes, plan, refusals

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Sold, returned, scrapped.
    #[default]
    Leave,
    /// Repair, new user: the device stays registered here.
    Redeploy,
    /// The other tenant imports the saved hash.
    Move,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Leave, Mode::Redeploy, Mode::Move];

    pub fn key(self) -> &'static str {
        match self {
            Mode::Leave => "leave",
            Mode::Redeploy => "redeploy",
            Mode::Move => "move",
        }
    }

    pub fn from_key(s: &str) -> Option<Mode> {
        Mode::ALL
            .into_iter()
            .find(|m| m.key().eq_ignore_ascii_case(s.trim()))
    }

    pub fn title(self) -> &'static str {
        match self {
            Mode::Leave => "Leave the organisation",
            Mode::Redeploy => "Re-deploy here",
            Mode::Move => "Move to another tenant",
        }
    }

    pub fn explanation(self) -> &'static str {
        match self {
            Mode::Leave => {
                "Sold, returned or scrapped: the device is taken out of Intune, Autopilot and Entra ID, optionally wiped first."
            }
            Mode::Redeploy => {
                "Repaired or handed to someone else: the device stays registered here and deploys again (Autopilot Reset, or its blocked next enrollment released)."
            }
            Mode::Move => {
                "Going to another organisation: the hardware hash is saved for the other tenant to import, then the device is deregistered here."
            }
        }
    }
}

/// One thing done to a device, in the order [`plan`] puts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    SaveHash,
    Wipe,
    AutopilotReset,
    AllowNextEnrollment,
    DeleteIntune,
    UnassignUser,
    DeleteIdentity,
    DeleteEntraIfLeft,
}

impl Action {
    /// What happens, in words.
    pub fn words(self) -> &'static str {
        match self {
            Action::SaveHash => "Save the hardware hash as a CSV file the other tenant can import",
            Action::Wipe => {
                "Wipe the device (everything on it is erased) and wait until it reports the wipe done"
            }
            Action::AutopilotReset => {
                "Autopilot Reset: remove personal files, apps and settings, keep the registration and enrollment; the device deploys again at its next start"
            }
            Action::AllowNextEnrollment => {
                "Release the blocked next enrollment so the device can deploy again"
            }
            Action::DeleteIntune => {
                "Delete the Intune record and wait until Intune no longer has it"
            }
            Action::UnassignUser => "Unassign the user from the Autopilot registration",
            Action::DeleteIdentity => {
                "Delete the Autopilot registration, sync, and wait until it is gone"
            }
            Action::DeleteEntraIfLeft => {
                "Delete the Entra ID device only if it did not go by itself"
            }
        }
    }

    /// Cannot be undone.
    pub fn irreversible(self) -> Option<&'static str> {
        match self {
            Action::Wipe => Some("The wipe erases the device: its data cannot be recovered."),
            Action::AutopilotReset => {
                Some("Autopilot Reset removes the user's files and apps from the device.")
            }
            Action::DeleteIdentity => Some(
                "Once the Autopilot registration is gone, the device deploys here again only after its hardware hash is imported again.",
            ),
            Action::DeleteIntune => Some(
                "The Intune record's history (compliance, BitLocker recovery keys kept by Intune) is gone with it.",
            ),
            _ => None,
        }
    }
}

/// Why a device is not (or no longer) being worked on, in words for an IT person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("{serial} is not registered in this tenant: there is nothing to remove here.")]
    NotFound { serial: String },
    #[error(
        "{serial} is registered to another organisation (808). Only that organisation, or Microsoft support with proof of ownership, can release it; this tenant cannot delete it. Facts for support: {facts}."
    )]
    OtherTenant { serial: String, facts: String },
    #[error(
        "Multi Admin Approval holds the {operation} of {serial} (access policy {policies}). This wizard cannot send it: start the {operation} in the Intune admin center (Devices > {serial}), have a second administrator approve it at {APPROVE_WHERE}, then complete it there. Run this again afterwards: a wipe already on the device is not sent again."
    )]
    ApprovalRequired {
        serial: String,
        operation: String,
        policies: String,
    },
    #[error(
        "The sign-in may not {what} ({serial}). The app needs the delegated permission {permission} consented, and your account the role {role}. Sign in again after an administrator has granted it."
    )]
    MissingPermission {
        serial: String,
        what: String,
        permission: String,
        role: String,
    },
    #[error(
        "The hardware hash of {serial} is not in the selected import files, and Graph does not hand out the hash of a registered device. Add the CSV the device was imported with (or harvest it on the device with Get-WindowsAutopilotInfo before it leaves), then plan again."
    )]
    NoHash { serial: String },
    #[error("{serial}: {message}")]
    Failed { serial: String, message: String },
}

/// What is known about one device before anything is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    pub serial: String,
    pub identity_id: Option<String>,
    pub managed_device_id: Option<String>,
    pub entra_device_id: Option<String>,
    pub assigned_user: Option<String>,
    pub enrollment_state: Option<String>,
    pub manufacturer: String,
    pub model: String,
    pub device_name: Option<String>,
    /// A wipe already sent to the device (its `deviceActionResults`): its state.
    pub wipe_state: Option<String>,
}

/// What the person's own files say about a serial (the import CSVs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub hash: String,
    pub product_key: String,
    /// The file the hash came from (for the support facts).
    pub file: String,
    /// The import answered 808 for it.
    pub other_tenant: bool,
}

/// Serial (upper case) → what the import files say.
#[derive(Debug, Clone, Default)]
pub struct KnownDevices(pub HashMap<String, Known>);

impl KnownDevices {
    pub fn get(&self, serial: &str) -> Option<&Known> {
        self.0.get(&serial.trim().to_ascii_uppercase())
    }

    pub fn insert(&mut self, serial: &str, known: Known) {
        self.0.insert(serial.trim().to_ascii_uppercase(), known);
    }

    /// From the import step's rows (the files the person selected) and their outcomes.
    pub fn from_import(job: &crate::steps::import::ImportJob) -> Self {
        let mut out = KnownDevices::default();
        for state in &job.rows {
            let row = &state.row;
            out.insert(
                &row.serial,
                Known {
                    hash: row.hash.clone(),
                    product_key: row.product_key.clone(),
                    file: row.file.clone(),
                    other_tenant: crate::steps::import::is_808(&state.outcome),
                },
            );
        }
        out
    }

    /// From hardware-hash CSV files (`remove --csv`): the serials in file order, and what the
    /// files say about them.
    pub fn from_csv_files(paths: &[PathBuf]) -> (Vec<String>, KnownDevices) {
        let report = crate::hwid::check_files(paths, &crate::hwid::CheckOptions::default());
        let mut serials = Vec::new();
        let mut out = KnownDevices::default();
        for (row, _, _) in crate::steps::import::rows_from_report(&report) {
            if row.serial.trim().is_empty() {
                continue;
            }
            if !serials
                .iter()
                .any(|s: &String| s.eq_ignore_ascii_case(row.serial.trim()))
            {
                serials.push(row.serial.trim().to_string());
            }
            out.insert(
                &row.serial,
                Known {
                    hash: row.hash.clone(),
                    product_key: row.product_key.clone(),
                    file: row.file.clone(),
                    other_tenant: false,
                },
            );
        }
        (serials, out)
    }
}

/// One device's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicePlan {
    pub facts: Facts,
    /// In order.
    pub actions: Vec<Action>,
    /// Set: nothing is sent for this device.
    pub refusal: Option<Refusal>,
}

impl DevicePlan {
    /// The plan in words: what happens, in order.
    pub fn steps_in_words(&self) -> Vec<String> {
        if let Some(r) = &self.refusal {
            return vec![format!("Nothing will be sent. {r}")];
        }
        if self.actions.is_empty() {
            return vec![
                "Nothing to do: the device is registered and will deploy as it is.".into(),
            ];
        }
        self.actions
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let extra = match a {
                    Action::UnassignUser => self
                        .facts
                        .assigned_user
                        .as_deref()
                        .map(|u| format!(" ({u})"))
                        .unwrap_or_default(),
                    Action::Wipe | Action::AutopilotReset if self.facts.wipe_state.is_some() => {
                        " — already sent earlier, it will not be sent again".into()
                    }
                    _ => String::new(),
                };
                format!("{}. {}{extra}", i + 1, a.words())
            })
            .collect()
    }

    /// What stays after the plan ran.
    pub fn stays(&self, mode: Mode) -> Vec<String> {
        if self.refusal.is_some() {
            return vec!["Everything stays as it is.".into()];
        }
        let mut out = Vec::new();
        match mode {
            Mode::Redeploy => {
                out.push("The Autopilot registration, its group tag and profile stay.".into());
                if self.facts.managed_device_id.is_some()
                    && self.actions.contains(&Action::AutopilotReset)
                {
                    out.push("The Intune record and the Entra ID device stay.".into());
                }
            }
            Mode::Leave | Mode::Move => {
                if !self.actions.contains(&Action::Wipe) {
                    out.push("The data on the device itself stays (no wipe).".into());
                }
                if mode == Mode::Move {
                    out.push("The saved hash file stays with you for the other tenant.".into());
                }
                out.push("Users, groups and profiles in this tenant stay.".into());
            }
        }
        out
    }

    pub fn irreversible(&self) -> Vec<&'static str> {
        if self.refusal.is_some() {
            return Vec::new();
        }
        self.actions
            .iter()
            .filter(|a| {
                !(matches!(a, Action::Wipe | Action::AutopilotReset)
                    && self.facts.wipe_state.is_some())
            })
            .filter_map(|a| a.irreversible())
            .collect()
    }
}

/// The whole plan, computed by reads only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub mode: Mode,
    pub wipe: bool,
    pub devices: Vec<DevicePlan>,
    /// Multi Admin Approval policies that hold wipes or deletes.
    pub approval_policies: Vec<ApprovalPolicy>,
    /// Things worth knowing that are not per device (a policy list that could not be read…).
    pub notes: Vec<String>,
}

impl Plan {
    /// Devices something will be sent for.
    pub fn actionable(&self) -> usize {
        self.devices
            .iter()
            .filter(|d| d.refusal.is_none() && !d.actions.is_empty())
            .count()
    }

    /// More than five devices: the confirmation asks for their number.
    pub fn needs_typed_count(&self) -> bool {
        self.actionable() > 5
    }
}

/// What the run needs besides the devices.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub mode: Mode,
    /// Leave / Move: wipe first.
    pub wipe: bool,
    /// Move: where the hash CSVs go.
    pub hash_dir: PathBuf,
    /// Polling of the read-backs.
    pub pace: Pace,
}

/// How read-backs poll.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    pub interval: Duration,
    /// Each wait gives up after this long (the run can be started again).
    pub timeout: Duration,
    /// Autopilot's manual-sync window: a refused sync is asked again when it has passed, not
    /// on every poll.
    pub sync_interval: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(45 * 60),
            sync_interval: crate::steps::assignment::SYNC_INTERVAL,
        }
    }
}

impl Pace {
    /// The read-backs poll at a fixed interval until the give-up time.
    fn policy(&self) -> PollPolicy {
        PollPolicy {
            initial: self.interval,
            max: self.interval,
            factor: 1.0,
            timeout: self.timeout,
        }
    }

    /// The pace for a tenant whose clock runs `scale` times real time (a simulated tenant):
    /// polls and the sync window shrink with it; the give-up time only as far as 5 s.
    pub fn scaled(scale: f64) -> Pace {
        let d = Pace::default();
        Pace {
            interval: d.interval.mul_f64(scale).max(Duration::from_millis(5)),
            timeout: d.timeout.mul_f64(scale).max(Duration::from_secs(5)),
            sync_interval: d.sync_interval.mul_f64(scale),
        }
    }
}

fn upper(s: &str) -> String {
    s.trim().to_ascii_uppercase()
}

fn nonempty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty() && *s != "00000000-0000-0000-0000-000000000000")
        .map(str::to_string)
}

/// The Multi Admin Approval policies that hold a wipe or delete of a Windows device.
pub async fn read_approval_policies(
    graph: &GraphClient,
) -> Result<Vec<ApprovalPolicy>, GraphError> {
    let all: Vec<ApprovalPolicy> = graph.get_all(ApiVersion::Beta, POLICIES).await?;
    Ok(all
        .into_iter()
        .filter(|p| p.holds("deviceWipe") || p.holds("deviceDelete"))
        .collect())
}

async fn find_identity(
    graph: &GraphClient,
    serial: &str,
) -> Result<Option<AutopilotDevice>, GraphError> {
    // contains() on the first token, exact match here (reference §7).
    let token = serial.split_whitespace().next().unwrap_or(serial);
    let found: Vec<AutopilotDevice> = graph
        .get_all(
            ApiVersion::Beta,
            &format!(
                "{IDENTITIES}?$filter=contains(serialNumber,{})",
                odata_string(token)
            ),
        )
        .await?;
    Ok(found
        .into_iter()
        .find(|d| d.serial_number.trim().eq_ignore_ascii_case(serial.trim())))
}

async fn get_managed(graph: &GraphClient, id: &str) -> Result<Option<ManagedDevice>, GraphError> {
    match graph
        .get_json::<ManagedDevice>(ApiVersion::V1, &format!("{MANAGED}/{}", encode(id)))
        .await
    {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

async fn managed_by_serial(
    graph: &GraphClient,
    serial: &str,
) -> Result<Option<ManagedDevice>, GraphError> {
    let found: Vec<ManagedDevice> = graph
        .get_all(
            ApiVersion::V1,
            &format!("{MANAGED}?$filter=serialNumber eq {}", odata_string(serial)),
        )
        .await?;
    Ok(found.into_iter().find(|m| {
        m.serial_number
            .as_deref()
            .is_some_and(|s| s.trim().eq_ignore_ascii_case(serial.trim()))
    }))
}

async fn entra_devices(graph: &GraphClient, device_id: &str) -> Result<Vec<Device>, GraphError> {
    graph
        .get_all(
            ApiVersion::V1,
            &format!("/devices?$filter=deviceId eq {}", odata_string(device_id)),
        )
        .await
}

async fn other_tenant_in_import_records(graph: &GraphClient, serial: &str) -> bool {
    let records: Result<Vec<ImportRecord>, _> = graph.get_all(ApiVersion::Beta, IMPORTED).await;
    records.is_ok_and(|rs| {
        rs.iter().any(|r| {
            r.serial_number.trim().eq_ignore_ascii_case(serial.trim())
                && r.device_error_code == Some(808)
        })
    })
}

/// The support facts for a device another organisation holds.
pub fn support_facts(serial: &str, facts: &Facts, known: Option<&Known>) -> String {
    let mut parts = vec![format!("serial number {serial}")];
    let model = [facts.manufacturer.as_str(), facts.model.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    if !model.is_empty() {
        parts.push(format!("model {model}"));
    }
    match known {
        Some(k) if !k.hash.is_empty() => parts.push(format!("hardware hash in {}", k.file)),
        _ => {
            parts.push("hardware hash: harvest it on the device (Get-WindowsAutopilotInfo)".into())
        }
    }
    parts.push("proof of purchase (invoice)".into());
    parts.join(", ")
}

fn refusal_for_approval(
    facts: &Facts,
    actions: &[Action],
    policies: &[ApprovalPolicy],
) -> Option<Refusal> {
    let names = |t: &str| {
        policies
            .iter()
            .filter(|p| p.holds(t))
            .map(|p| format!("\"{}\"", p.display_name))
            .collect::<Vec<_>>()
    };
    let wipe_pending = facts.wipe_state.is_none()
        && actions
            .iter()
            .any(|a| matches!(a, Action::Wipe | Action::AutopilotReset));
    let wipe = names("deviceWipe");
    if wipe_pending && !wipe.is_empty() {
        return Some(Refusal::ApprovalRequired {
            serial: facts.serial.clone(),
            operation: if actions.contains(&Action::AutopilotReset) {
                "Autopilot Reset (a wipe)".into()
            } else {
                "wipe".into()
            },
            policies: wipe.join(", "),
        });
    }
    let delete = names("deviceDelete");
    if actions.contains(&Action::DeleteIntune) && !delete.is_empty() {
        return Some(Refusal::ApprovalRequired {
            serial: facts.serial.clone(),
            operation: "delete of the Intune record".into(),
            policies: delete.join(", "),
        });
    }
    None
}

/// Reads every device and says what will happen, before anything is sent.
pub async fn plan(
    graph: &GraphClient,
    serials: &[String],
    mode: Mode,
    wipe: bool,
    known: &KnownDevices,
) -> Result<Plan, GraphError> {
    let mut notes = Vec::new();
    let policies = match read_approval_policies(graph).await {
        Ok(p) => p,
        Err(e) => {
            notes.push(format!(
                "The Multi Admin Approval policies could not be read ({e}); a wipe or delete they hold is reported when Graph answers."
            ));
            Vec::new()
        }
    };
    let mut devices = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for serial in serials {
        let serial = serial.trim();
        if serial.is_empty() || seen.contains(&upper(serial)) {
            continue;
        }
        seen.push(upper(serial));
        devices.push(plan_device(graph, serial, mode, wipe, known, &policies).await?);
    }
    Ok(Plan {
        mode,
        wipe,
        devices,
        approval_policies: policies,
        notes,
    })
}

async fn plan_device(
    graph: &GraphClient,
    serial: &str,
    mode: Mode,
    wipe: bool,
    known: &KnownDevices,
    policies: &[ApprovalPolicy],
) -> Result<DevicePlan, GraphError> {
    let mut facts = Facts {
        serial: serial.to_string(),
        ..Facts::default()
    };
    let k = known.get(serial);
    let identity = find_identity(graph, serial).await?;
    let Some(identity) = identity else {
        let other = k.is_some_and(|k| k.other_tenant)
            || other_tenant_in_import_records(graph, serial).await;
        let refusal = if other {
            Refusal::OtherTenant {
                serial: serial.into(),
                facts: support_facts(serial, &facts, k),
            }
        } else {
            Refusal::NotFound {
                serial: serial.into(),
            }
        };
        return Ok(DevicePlan {
            facts,
            actions: Vec::new(),
            refusal: Some(refusal),
        });
    };
    facts.identity_id = Some(identity.id.clone());
    facts.manufacturer = identity.manufacturer.clone().unwrap_or_default();
    facts.model = identity.model.clone().unwrap_or_default();
    facts.assigned_user = nonempty(identity.user_principal_name.as_deref());
    facts.enrollment_state = identity.enrollment_state.clone();
    facts.entra_device_id = identity.entra_device_id().map(str::to_string);
    let managed = match nonempty(identity.managed_device_id.as_deref()) {
        Some(id) => match get_managed(graph, &id).await? {
            Some(m) => Some(m),
            None => managed_by_serial(graph, serial).await?,
        },
        None => managed_by_serial(graph, serial).await?,
    };
    if let Some(m) = &managed {
        facts.managed_device_id = Some(m.id.clone());
        facts.device_name = m.device_name.clone();
        facts.wipe_state = m.wipe_state().map(str::to_string);
        if facts.entra_device_id.is_none() {
            facts.entra_device_id = nonempty(m.azure_ad_device_id.as_deref());
        }
    }
    let enrolled = facts.managed_device_id.is_some();
    let mut actions = Vec::new();
    match mode {
        Mode::Redeploy => {
            if facts.enrollment_state.as_deref() == Some("blocked") {
                actions.push(Action::AllowNextEnrollment);
            } else if enrolled {
                actions.push(Action::AutopilotReset);
            }
        }
        Mode::Leave | Mode::Move => {
            if mode == Mode::Move {
                actions.push(Action::SaveHash);
            }
            if wipe && enrolled {
                actions.push(Action::Wipe);
            }
            if enrolled {
                actions.push(Action::DeleteIntune);
            }
            if facts.assigned_user.is_some() {
                actions.push(Action::UnassignUser);
            }
            actions.push(Action::DeleteIdentity);
            if facts.entra_device_id.is_some() {
                actions.push(Action::DeleteEntraIfLeft);
            }
        }
    }
    let mut refusal = refusal_for_approval(&facts, &actions, policies);
    if refusal.is_none() && mode == Mode::Move && k.is_none_or(|k| k.hash.trim().is_empty()) {
        refusal = Some(Refusal::NoHash {
            serial: serial.into(),
        });
    }
    Ok(DevicePlan {
        facts,
        actions,
        refusal,
    })
}

// ---------------------------------------------------------------------------------------------
// The recorded run

/// Where one device stands, in words and as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceOutcome {
    /// Every action done and read back.
    Done { summary: String },
    /// Stopped before (or while) sending, with why.
    Refused(Refusal),
}

/// The recorded state of one device: what is done (skipped on a resume).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub serial: String,
    pub done: Vec<Action>,
    /// When this run sent a wipe (or Autopilot Reset): never sent twice.
    pub wipe_sent_at: Option<DateTime<Utc>>,
    /// The Entra object went by itself (no DELETE was sent for it).
    pub entra_went_by_itself: Option<bool>,
    /// The Autopilot registration's DELETE was accepted (its wait may still be ahead).
    #[serde(default)]
    pub identity_delete_sent: bool,
    pub hash_file: Option<String>,
    pub outcome: Option<DeviceOutcome>,
    /// What the device went through, one line per step.
    pub log: Vec<String>,
}

/// The recorded state of a whole run (plain serde; the command line keeps it in a file, the
/// window in its saved state).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub mode: Mode,
    pub wipe: bool,
    pub devices: Vec<DeviceRecord>,
}

impl RunRecord {
    pub fn new(mode: Mode, wipe: bool) -> Self {
        RunRecord {
            mode,
            wipe,
            devices: Vec::new(),
        }
    }

    pub fn device(&self, serial: &str) -> Option<&DeviceRecord> {
        self.devices
            .iter()
            .find(|d| d.serial.eq_ignore_ascii_case(serial))
    }

    fn device_mut(&mut self, serial: &str) -> &mut DeviceRecord {
        if let Some(i) = self
            .devices
            .iter()
            .position(|d| d.serial.eq_ignore_ascii_case(serial))
        {
            return &mut self.devices[i];
        }
        self.devices.push(DeviceRecord {
            serial: serial.to_string(),
            ..DeviceRecord::default()
        });
        self.devices.last_mut().expect("just pushed")
    }

    /// Every device has an outcome.
    pub fn finished(&self) -> bool {
        !self.devices.is_empty() && self.devices.iter().all(|d| d.outcome.is_some())
    }

    /// A device is not done and may be continued: not reached, or stopped by a wait that gave
    /// up or an error (a refusal such as 808 or a held wipe is an answer, not an interruption).
    pub fn unfinished(&self) -> bool {
        self.devices.iter().any(|d| {
            matches!(
                d.outcome,
                None | Some(DeviceOutcome::Refused(Refusal::Failed { .. }))
            )
        })
    }

    /// The result per device in words.
    pub fn result_words(&self, serial: &str) -> String {
        match self.device(serial).and_then(|d| d.outcome.as_ref()) {
            Some(DeviceOutcome::Done { summary }) => summary.clone(),
            Some(DeviceOutcome::Refused(r)) => r.to_string(),
            None => "Not finished yet.".into(),
        }
    }

    /// `serial,mode,result,details` per device, for the export.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("serial,mode,result,details\r\n");
        for d in &self.devices {
            let (result, details) = match &d.outcome {
                Some(DeviceOutcome::Done { summary }) => ("done", summary.clone()),
                Some(DeviceOutcome::Refused(r)) => ("stopped", r.to_string()),
                None => ("not finished", d.log.join(" / ")),
            };
            out.push_str(&format!(
                "{},{},{},{}\r\n",
                csv_field(&d.serial),
                self.mode.key(),
                result,
                csv_field(&details)
            ));
        }
        out
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// What the person sees while a run goes on, and where the record is kept.
pub trait RemovalObserver: Send + Sync {
    /// A visible wait or a finished step of `serial`.
    fn progress(&self, serial: &str, text: &str);
    /// The record changed: keep it (an interrupted run continues from it).
    fn save(&self, record: &RunRecord);
}

/// An observer that shows and keeps nothing.
pub struct NoObserver;

impl RemovalObserver for NoObserver {
    fn progress(&self, _: &str, _: &str) {}
    fn save(&self, _: &RunRecord) {}
}

fn permission_for(action: Action) -> (&'static str, &'static str, &'static str) {
    match action {
        Action::Wipe | Action::AutopilotReset => (
            "wipe the device",
            PRIVILEGED_OPERATIONS.name,
            "Intune Administrator (or an Intune role with Remote tasks > Wipe)",
        ),
        Action::DeleteIntune => (
            "delete the Intune record",
            MANAGED_DEVICES_WRITE.name,
            "Intune Administrator (or an Intune role with Managed devices > Delete)",
        ),
        Action::UnassignUser | Action::DeleteIdentity | Action::AllowNextEnrollment => (
            "change Autopilot registrations",
            crate::steps::profile::SERVICE_CONFIG.name,
            "Intune Administrator (or an Intune role with Enrollment programs > Delete device)",
        ),
        Action::DeleteEntraIfLeft => (
            "delete Entra ID devices",
            DEVICES_WRITE.name,
            "Cloud Device Administrator (or Intune Administrator)",
        ),
        Action::SaveHash => ("save the hash", "", ""),
    }
}

/// Maps a Graph error of `action` to a refusal where it is one (permission, approval).
fn refusal_from(serial: &str, action: Action, e: &GraphError) -> Refusal {
    let text = e.to_string();
    let held = text.contains("Multi Admin Approval") || text.contains("MultiAdminApproval");
    if e.status() == Some(403) && held {
        return Refusal::ApprovalRequired {
            serial: serial.into(),
            operation: match action {
                Action::DeleteIntune => "delete of the Intune record".into(),
                Action::AutopilotReset => "Autopilot Reset (a wipe)".into(),
                _ => "wipe".into(),
            },
            policies: "named in the Intune admin center".into(),
        };
    }
    if e.is_forbidden() {
        let (what, permission, role) = permission_for(action);
        return Refusal::MissingPermission {
            serial: serial.into(),
            what: what.into(),
            permission: permission.into(),
            role: role.into(),
        };
    }
    Refusal::Failed {
        serial: serial.into(),
        message: text,
    }
}

/// Runs the plan, reading each step back until it holds: every device up to its Autopilot
/// registration's delete, then the waits, so one sync serves them all. `record` is the
/// recorded state (empty for a new run): what it says is done is not done again.
pub async fn execute(
    graph: &GraphClient,
    plan: &Plan,
    opts: &Options,
    known: &KnownDevices,
    record: &mut RunRecord,
    obs: &dyn RemovalObserver,
) {
    // Every step of a removal is in the log as well: deletes are worth an audit trail.
    let obs = &Logged(obs);
    record.mode = plan.mode;
    record.wipe = plan.wipe;
    // Two passes: every device up to its registration's DELETE first, then the waits. A
    // registration goes only with a sync that starts after its delete, and Autopilot allows one
    // manual sync per 10 minutes: one device after the other would wait a window each.
    let mut paused = Vec::new();
    for device in &plan.devices {
        let serial = device.facts.serial.clone();
        if record
            .device(&serial)
            .is_some_and(|d| matches!(d.outcome, Some(DeviceOutcome::Done { .. })))
        {
            continue;
        }
        record.device_mut(&serial).outcome = None;
        if let Some(r) = &device.refusal {
            record.device_mut(&serial).outcome = Some(DeviceOutcome::Refused(r.clone()));
            obs.save(record);
            continue;
        }
        let result = run_device(graph, device, opts, known, record, obs, true).await;
        if matches!(result, Ok(false)) {
            paused.push(device);
            continue;
        }
        finish_device(plan.mode, device, result.map(|_| ()), record, obs);
    }
    for device in paused {
        let result = run_device(graph, device, opts, known, record, obs, false).await;
        finish_device(plan.mode, device, result.map(|_| ()), record, obs);
    }
}

/// Records a device's outcome and tells it.
fn finish_device(
    mode: Mode,
    device: &DevicePlan,
    result: Result<(), Refusal>,
    record: &mut RunRecord,
    obs: &dyn RemovalObserver,
) {
    let serial = device.facts.serial.clone();
    let rec = record.device_mut(&serial);
    rec.outcome = Some(match result {
        Ok(()) => DeviceOutcome::Done {
            summary: summary(mode, device, rec),
        },
        Err(r) => DeviceOutcome::Refused(r),
    });
    obs.progress(&serial, &record.result_words(&serial));
    obs.save(record);
}

/// Tells the log what the observer is told.
struct Logged<'a>(&'a dyn RemovalObserver);

impl RemovalObserver for Logged<'_> {
    fn progress(&self, serial: &str, text: &str) {
        tracing::info!("removal: {serial}: {text}");
        self.0.progress(serial, text);
    }

    fn save(&self, record: &RunRecord) {
        self.0.save(record);
    }
}

fn summary(mode: Mode, device: &DevicePlan, rec: &DeviceRecord) -> String {
    if device.actions.is_empty() {
        return "Nothing was needed: the device deploys as it is.".into();
    }
    let mut parts: Vec<String> = Vec::new();
    for a in &device.actions {
        parts.push(
            match a {
                Action::SaveHash => format!(
                    "hash saved to {}",
                    rec.hash_file.as_deref().unwrap_or("the hash folder")
                ),
                Action::Wipe => "wiped".into(),
                Action::AutopilotReset => {
                    "Autopilot Reset sent (the device resets at its next check-in)".into()
                }
                Action::AllowNextEnrollment => "next enrollment released".into(),
                Action::DeleteIntune => "Intune record deleted".into(),
                Action::UnassignUser => "user unassigned".into(),
                Action::DeleteIdentity => "Autopilot registration deleted".into(),
                Action::DeleteEntraIfLeft => match rec.entra_went_by_itself {
                    Some(true) => "Entra ID device went by itself".into(),
                    _ => "Entra ID device deleted (it had not gone by itself)".into(),
                },
            }
            .to_string(),
        );
    }
    let lead = match mode {
        Mode::Leave => "Left the organisation",
        Mode::Redeploy => "Ready to deploy again",
        Mode::Move => "Ready for the other tenant",
    };
    format!("{lead}: {}.", parts.join(", "))
}

/// Polls `check` until it answers `true`, showing the wait (the steps' one poller at a fixed
/// interval).
async fn wait_until<F, Fut>(
    cancel: &tokio_util::sync::CancellationToken,
    opts: &Options,
    obs: &dyn RemovalObserver,
    serial: &str,
    what: &str,
    mut check: F,
) -> Result<(), Refusal>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, GraphError>>,
{
    let poller = Poller::new(opts.pace.policy());
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => {
                return Err(Refusal::Failed {
                    serial: serial.into(),
                    message: format!("while waiting until {what}: {e}"),
                });
            }
        }
        let waited = poller.waited();
        if poller.expired() {
            return Err(Refusal::Failed {
                serial: serial.into(),
                message: format!(
                    "gave up waiting until {what} after {} s. Nothing is lost: run the removal again later and it continues from here.",
                    waited.as_secs()
                ),
            });
        }
        obs.progress(
            serial,
            &format!("Waiting until {what} ({} s so far)…", waited.as_secs()),
        );
        if poller.sleep(cancel).await.is_err() {
            return Err(Refusal::Failed {
                serial: serial.into(),
                message: "Cancelled. Run the removal again to continue from here.".into(),
            });
        }
    }
}

async fn run_device(
    graph: &GraphClient,
    device: &DevicePlan,
    opts: &Options,
    known: &KnownDevices,
    record: &mut RunRecord,
    obs: &dyn RemovalObserver,
    pause_after_identity_delete: bool,
) -> Result<bool, Refusal> {
    let serial = device.facts.serial.as_str();
    let facts = &device.facts;
    for &action in &device.actions {
        if record.device_mut(serial).done.contains(&action) {
            continue;
        }
        obs.progress(serial, action.words());
        let err = |e: GraphError| refusal_from(serial, action, &e);
        match action {
            Action::SaveHash => {
                let path = save_hash(serial, known, &opts.hash_dir)?;
                record.device_mut(serial).hash_file = Some(path.display().to_string());
            }
            Action::Wipe | Action::AutopilotReset => {
                let id = facts.managed_device_id.clone().unwrap_or_default();
                let reset = action == Action::AutopilotReset;
                // The device's own record first: a wipe sent by an earlier, interrupted run (or
                // by a person) is not sent again.
                let already = record.device_mut(serial).wipe_sent_at.is_some()
                    || get_managed(graph, &id)
                        .await
                        .map_err(err)?
                        .is_some_and(|m| m.wipe_state().is_some());
                if !already {
                    let body = if reset {
                        json!({"keepEnrollmentData": true, "keepUserData": false})
                    } else {
                        json!({"keepEnrollmentData": false, "keepUserData": false})
                    };
                    graph
                        .post_no_content(
                            ApiVersion::V1,
                            &format!("{MANAGED}/{}/wipe", encode(&id)),
                            Some(&body),
                        )
                        .await
                        .map_err(err)?;
                    record.device_mut(serial).wipe_sent_at = Some(Utc::now());
                    obs.save(record);
                }
                // Leave: the Intune record may go only once the device has the wipe (deleting
                // it first drops the pending command). Re-deploy: seen by Intune is enough.
                let what = if reset {
                    "Intune shows the Autopilot Reset"
                } else {
                    "the device reports the wipe done"
                };
                let g = graph.clone();
                let id2 = id.clone();
                wait_until(graph.cancel_token(), opts, obs, serial, what, move || {
                    let g = g.clone();
                    let id = id2.clone();
                    async move {
                        let m = get_managed(&g, &id).await?;
                        Ok(match m.as_ref().and_then(|m| m.wipe_state()) {
                            Some("done" | "failed" | "canceled" | "notSupported") => true,
                            Some(_) => reset,
                            None => m.is_none(),
                        })
                    }
                })
                .await?;
                // A wipe the device refused or that was cancelled: the Intune record must not
                // go (it is how the device is found again).
                if let Some(state @ ("failed" | "canceled" | "notSupported")) =
                    get_managed(graph, &id)
                        .await
                        .map_err(err)?
                        .as_ref()
                        .and_then(|m| m.wipe_state())
                {
                    return Err(Refusal::Failed {
                        serial: serial.into(),
                        message: format!(
                            "the device reports the wipe as {state}. Nothing else was changed; look at the device in the Intune admin center (Devices > {serial} > Device actions status) before running this again."
                        ),
                    });
                }
            }
            Action::AllowNextEnrollment => {
                let id = facts.identity_id.clone().unwrap_or_default();
                graph
                    .post_no_content::<Value>(
                        ApiVersion::Beta,
                        &format!("{IDENTITIES}/{}/allowNextEnrollment", encode(&id)),
                        None,
                    )
                    .await
                    .map_err(err)?;
                let g = graph.clone();
                wait_until(
                    graph.cancel_token(),
                    opts,
                    obs,
                    serial,
                    "the next enrollment is released",
                    move || {
                        let g = g.clone();
                        let id = id.clone();
                        async move {
                            let d: AutopilotDevice = g
                                .get_json(
                                    ApiVersion::Beta,
                                    &format!("{IDENTITIES}/{}", encode(&id)),
                                )
                                .await?;
                            Ok(d.enrollment_state.as_deref() != Some("blocked"))
                        }
                    },
                )
                .await?;
            }
            Action::DeleteIntune => {
                let id = facts.managed_device_id.clone().unwrap_or_default();
                delete_if_there(graph, &format!("{MANAGED}/{}", encode(&id)))
                    .await
                    .map_err(err)?;
                let g = graph.clone();
                wait_until(
                    graph.cancel_token(),
                    opts,
                    obs,
                    serial,
                    "Intune no longer has the record",
                    move || {
                        let g = g.clone();
                        let id = id.clone();
                        async move { Ok(get_managed(&g, &id).await?.is_none()) }
                    },
                )
                .await?;
            }
            Action::UnassignUser => {
                let id = facts.identity_id.clone().unwrap_or_default();
                match graph
                    .post_no_content::<Value>(
                        ApiVersion::V1,
                        &format!("{IDENTITIES}/{}/unassignUserFromDevice", encode(&id)),
                        None,
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(err(e)),
                }
                let g = graph.clone();
                wait_until(
                    graph.cancel_token(),
                    opts,
                    obs,
                    serial,
                    "the user is unassigned",
                    move || {
                        let g = g.clone();
                        let id = id.clone();
                        async move {
                            match g
                                .get_json::<AutopilotDevice>(
                                    ApiVersion::V1,
                                    &format!("{IDENTITIES}/{}", encode(&id)),
                                )
                                .await
                            {
                                Ok(d) => Ok(nonempty(d.user_principal_name.as_deref()).is_none()),
                                Err(e) if e.is_not_found() => Ok(true),
                                Err(e) => Err(e),
                            }
                        }
                    },
                )
                .await?;
            }
            Action::DeleteIdentity => {
                let id = facts.identity_id.clone().unwrap_or_default();
                if !record.device_mut(serial).identity_delete_sent {
                    delete_if_there(graph, &format!("{IDENTITIES}/{}", encode(&id)))
                        .await
                        .map_err(err)?;
                    record.device_mut(serial).identity_delete_sent = true;
                    obs.save(record);
                }
                if pause_after_identity_delete {
                    return Ok(false);
                }
                let g = graph.clone();
                // When the next sync may be asked for: now, then after each answer (a sync
                // refused as too soon says how long the window still runs).
                let next_sync = std::sync::Arc::new(std::sync::Mutex::new(Instant::now()));
                let sync_interval = opts.pace.sync_interval;
                let recheck = opts.pace.interval * 6;
                wait_until(
                    graph.cancel_token(),
                    opts,
                    obs,
                    serial,
                    "Autopilot no longer lists the registration (after a sync)",
                    move || {
                        let g = g.clone();
                        let id = id.clone();
                        let next_sync = next_sync.clone();
                        async move {
                            match g
                                .get_json::<AutopilotDevice>(
                                    ApiVersion::Beta,
                                    &format!("{IDENTITIES}/{}", encode(&id)),
                                )
                                .await
                            {
                                Err(e) if e.is_not_found() => return Ok(true),
                                Err(e) => return Err(e),
                                Ok(_) => {}
                            }
                            // The delete shows after a sync that started after it.
                            let due = *next_sync.lock().unwrap_or_else(|p| p.into_inner());
                            if Instant::now() >= due {
                                let wait = sync_after_delete(&g, sync_interval).await;
                                *next_sync.lock().unwrap_or_else(|p| p.into_inner()) =
                                    Instant::now() + wait.unwrap_or(recheck);
                            }
                            Ok(false)
                        }
                    },
                )
                .await?;
            }
            Action::DeleteEntraIfLeft => {
                let device_id = facts.entra_device_id.clone().unwrap_or_default();
                let left = entra_devices(graph, &device_id).await.map_err(err)?;
                if left.is_empty() {
                    record.device_mut(serial).entra_went_by_itself = Some(true);
                } else {
                    record.device_mut(serial).entra_went_by_itself = Some(false);
                    for d in &left {
                        delete_if_there(graph, &format!("/devices/{}", encode(&d.id)))
                            .await
                            .map_err(err)?;
                    }
                    let g = graph.clone();
                    wait_until(
                        graph.cancel_token(),
                        opts,
                        obs,
                        serial,
                        "Entra ID no longer has the device",
                        move || {
                            let g = g.clone();
                            let id = device_id.clone();
                            async move { Ok(entra_devices(&g, &id).await?.is_empty()) }
                        },
                    )
                    .await?;
                }
            }
        }
        let rec = record.device_mut(serial);
        rec.done.push(action);
        rec.log.push(format!("{}: done", action.words()));
        obs.save(record);
    }
    Ok(true)
}

/// Deletes `path`; an object that is gone already is what the delete wanted (a rerun after an
/// interruption finds it so).
async fn delete_if_there(graph: &GraphClient, path: &str) -> Result<(), GraphError> {
    match graph.delete(ApiVersion::V1, path).await {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

/// Asks Autopilot to sync for a delete, within the manual-sync window. `Some(wait)`: too soon,
/// ask again after `wait`; `None`: a sync was started or is running (its end publishes the
/// delete). A failed ask is not an error: the service's periodic sync publishes it too.
async fn sync_after_delete(graph: &GraphClient, window: Duration) -> Option<Duration> {
    use crate::steps::assignment::{SyncNow, sync_now_within};
    match sync_now_within(graph, window).await {
        Ok(SyncNow::TooSoon(wait)) => Some(wait),
        Ok(SyncNow::Triggered | SyncNow::AlreadySyncing) => None,
        Err(e) => {
            tracing::warn!("removal: asking Autopilot to sync failed: {e}");
            None
        }
    }
}

/// Writes `<dir>/<serial>-hardware-hash.csv` in Get-WindowsAutopilotInfo's format.
fn save_hash(serial: &str, known: &KnownDevices, dir: &Path) -> Result<PathBuf, Refusal> {
    let Some(k) = known.get(serial).filter(|k| !k.hash.trim().is_empty()) else {
        return Err(Refusal::NoHash {
            serial: serial.into(),
        });
    };
    let failed = |e: std::io::Error| Refusal::Failed {
        serial: serial.into(),
        message: format!(
            "the hash file could not be written in {}: {e}",
            dir.display()
        ),
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let safe: String = serial
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{safe}-hardware-hash.csv"));
    let bytes = crate::hwid::harvest::write_csv(&[crate::hwid::harvest::CsvRow {
        serial: serial.to_string(),
        product_key: k.product_key.clone(),
        hash: k.hash.clone(),
        group_tag: String::new(),
        assigned_user: String::new(),
    }]);
    std::fs::write(&path, bytes).map_err(failed)?;
    Ok(path)
}

// ---------------------------------------------------------------------------------------------
// The validation report's item (issue 15, point 8)

/// Adds the Multi Admin Approval item to the validation report. Policies that hold wipes or
/// deletes do not stop a deployment, so the item passes either way and says what a removal will
/// meet; a list that cannot be read is said as such.
pub fn validate_items<'a>(
    graph: &'a GraphClient,
    _inputs: &'a ValidateInputs,
) -> BoxFuture<'a, Vec<CheckItem>> {
    Box::pin(async move {
        let item = match read_approval_policies(graph).await {
            Ok(p) if p.is_empty() => CheckItem::new(
                CHECK_APPROVAL,
                Verdict::Pass,
                vec!["No Multi Admin Approval policy holds device wipes or deletes: removing devices with this wizard is not held.".into()],
                None,
            ),
            Ok(p) => {
                let mut evidence: Vec<String> = p
                    .iter()
                    .map(|p| {
                        format!(
                            "Access policy \"{}\" holds every {} of a Windows device until a second administrator approves it.",
                            p.display_name,
                            if p.holds("deviceWipe") { "wipe (and Autopilot Reset)" } else { "Intune delete" }
                        )
                    })
                    .collect();
                evidence.push(format!("Deploying is not affected. A removal that needs one of these actions stops and sends you to: {APPROVE_WHERE}."));
                CheckItem::new(CHECK_APPROVAL, Verdict::Pass, evidence, None)
            }
            Err(e) => CheckItem::new(
                CHECK_APPROVAL,
                Verdict::Pass,
                vec![format!(
                    "The Multi Admin Approval policies could not be read ({e}); deploying does not depend on them. The removal flow reports a held wipe or delete when Graph answers."
                )],
                Some(format!(
                    "To see them here, consent {} for the app.",
                    APPROVAL_POLICIES_READ.name
                )),
            ),
        };
        vec![item]
    })
}

/// Reads the tenant's Multi Admin Approval evidence once more, for texts outside the report.
pub fn approval_words(policies: &[ApprovalPolicy]) -> Vec<String> {
    policies
        .iter()
        .map(|p| {
            format!(
                "\"{}\" ({}, {})",
                p.display_name, p.policy_type, p.policy_platform
            )
        })
        .collect()
}

/// A `serialNumbers` body for the bulk delete (`deleteDevices`, beta).
pub fn delete_devices_body(serials: &[String]) -> Value {
    json!({ "serialNumbers": serials })
}

/// The bulk delete (beta `deleteDevices`): the per-serial answer.
pub async fn delete_devices(
    graph: &GraphClient,
    serials: &[String],
) -> Result<Vec<DeletedDeviceState>, GraphError> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        value: Vec<DeletedDeviceState>,
    }
    let a: Answer = graph
        .post_json(
            ApiVersion::Beta,
            &format!("{IDENTITIES}/deleteDevices"),
            &delete_devices_body(serials),
        )
        .await?;
    Ok(a.value)
}
