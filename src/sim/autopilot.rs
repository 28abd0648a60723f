//! Hardware-hash import, Autopilot device identities, windowsAutopilotSettings and sync
//! (reference §6, §7).
//!
//! Service behaviour modelled here:
//! - An import record is `pending` until its service time has passed; [`advance`] then decides
//!   its outcome from the tenant as it is at that moment (806 already here, 808 other tenant,
//!   802 invalid hash, 803 no serial, `ZtdDeviceDuplicated`, 640 storage error).
//! - A completed import does not show up in `windowsAutopilotDeviceIdentities` until a sync that
//!   started after the import completed has finished (or the periodic service sync ran).
//! - Manual sync is rate limited: a second one inside the minimum interval answers 429.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use axum::Router;
use chrono::{DateTime, Utc};

use super::{Seed, Shared, SimState};

/// `deviceErrorCode` the simulator uses for `ZtdDeviceDuplicated`. The real number is
/// **unconfirmed** (reference §6.4 lists none); clients must match on the name.
pub const DUPLICATED_CODE: i32 = 809;

/// A registered Autopilot device (`windowsAutopilotDeviceIdentity`). The profile assignment
/// simulation (`sim::assignment`) reads and updates the `assignment_*` / profile fields.
#[derive(Debug, Clone, PartialEq)]
pub struct AutopilotDevice {
    /// ZTD device id; also the `deviceRegistrationId` of the import record that created it.
    pub id: String,
    pub serial_number: String,
    pub product_key: String,
    /// Decoded from the hardware hash at import (TLV type 0x0F).
    pub manufacturer: String,
    /// Decoded from the hardware hash at import (TLV type 0x11, product name).
    pub model: String,
    /// Empty when none. Surfaces on the Entra device as `[OrderID]:<tag>`.
    pub group_tag: String,
    /// Empty when none. Surfaces on the Entra device as `[PurchaseOrderId]:<po>`.
    pub purchase_order_identifier: String,
    /// Computer name applied at deployment; empty when none.
    pub display_name: String,
    /// Assigned user (`userPrincipalName` and `addressableUserName`); empty when none.
    pub user_principal_name: String,
    /// `unknown, enrolled, pendingReset, failed, notContacted, blocked`.
    pub enrollment_state: String,
    pub last_contacted: Option<DateTime<Utc>>,
    /// Entra `device.deviceId` of the object created for this device (rendered as both
    /// `azureActiveDirectoryDeviceId` and, in beta, `azureAdDeviceId`).
    pub azure_ad_device_id: String,
    /// `deploymentProfileAssignmentStatus`: `unknown, assignedInSync, assignedOutOfSync,
    /// assignedUnkownSyncState, notAssigned, pending, failed`.
    pub assignment_status: String,
    /// `deploymentProfileAssignmentDetailedStatus`: `none, hardwareRequirementsNotMet, …`.
    pub assignment_detailed_status: String,
    /// Id of the profile the device has (`deploymentProfile`).
    pub assigned_profile_id: Option<String>,
    /// Id of the profile the device is meant to get (`intendedDeploymentProfile`).
    pub intended_profile_id: Option<String>,
    /// `deploymentProfileAssignedDateTime`.
    pub assigned_at: Option<DateTime<Utc>>,
    /// `remediationState`.
    pub remediation_state: String,
    /// Intune managed device id after enrollment; empty before.
    pub managed_device_id: String,
    /// Decoded hardware hash, to recognise a re-import of the same hardware.
    pub hardware_hash: Vec<u8>,
    pub registered_at: DateTime<Utc>,
}

impl AutopilotDevice {
    /// A freshly registered device: no profile yet, never contacted.
    pub fn new(id: String, serial_number: String) -> Self {
        AutopilotDevice {
            id,
            serial_number,
            product_key: String::new(),
            manufacturer: String::new(),
            model: String::new(),
            group_tag: String::new(),
            purchase_order_identifier: String::new(),
            display_name: String::new(),
            user_principal_name: String::new(),
            enrollment_state: "notContacted".into(),
            last_contacted: None,
            azure_ad_device_id: String::new(),
            assignment_status: "notAssigned".into(),
            assignment_detailed_status: "none".into(),
            assigned_profile_id: None,
            intended_profile_id: None,
            assigned_at: None,
            remediation_state: "noRemediationRequired".into(),
            managed_device_id: String::new(),
            hardware_hash: Vec::new(),
            registered_at: Utc::now(),
        }
    }
}

/// One `importedWindowsAutopilotDeviceIdentity`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRecord {
    pub id: String,
    /// Shared by every record of one `import` call (server-set batch id).
    pub import_id: String,
    pub serial_number: String,
    pub product_key: String,
    pub group_tag: String,
    pub assigned_user_principal_name: String,
    /// Decoded `hardwareIdentifier`.
    pub hardware_identifier: Vec<u8>,
    /// `unknown, pending, partial, complete, error`.
    pub status: String,
    pub error_code: i32,
    pub error_name: String,
    /// Id of the device identity created on success; empty otherwise.
    pub registration_id: String,
    /// When the service decides this record.
    pub due: Instant,
    /// Another record of the same upload carries the same hash and wins.
    pub duplicate_in_upload: bool,
}

/// A device whose import completed but which no sync has published yet.
#[derive(Debug, Clone, PartialEq)]
pub struct AwaitingSync {
    pub device: AutopilotDevice,
    pub completed: Instant,
}

/// `windowsAutopilotSettings` plus the timers behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncState {
    pub id: String,
    pub last_sync: Option<DateTime<Utc>>,
    pub last_manual_trigger: Option<DateTime<Utc>>,
    /// When the last manual sync was accepted (drives the rate limit).
    pub last_manual_trigger_at: Option<Instant>,
    /// `unknown, inProgress, completed, failed`.
    pub status: String,
    /// The running sync: when it started and when it finishes.
    pub running: Option<(Instant, Instant)>,
    /// Last time the service published devices on its own.
    pub last_periodic: Instant,
}

impl Default for SyncState {
    fn default() -> Self {
        SyncState {
            id: uuid::Uuid::new_v4().to_string(),
            last_sync: None,
            last_manual_trigger: None,
            last_manual_trigger_at: None,
            status: "unknown".into(),
            running: None,
            last_periodic: Instant::now(),
        }
    }
}

/// Knobs of this area, in service time (scaled by [`super::Speed`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AutopilotSimSettings {
    /// Serials the "other tenant" owns: importing them ends in 808.
    pub other_tenant_serials: Vec<String>,
    /// Share (0.0–1.0) of otherwise good records that fail with 640 StorageError.
    pub storage_error_rate: f64,
    /// Time from upload to the record's outcome.
    pub import_service_time: Duration,
    /// Duration of a sync.
    pub sync_service_time: Duration,
    /// A manual sync inside this interval after the previous one gets 429.
    pub manual_sync_min_interval: Duration,
    /// The service publishes completed imports on its own after this long.
    pub periodic_sync_interval: Duration,
}

impl Default for AutopilotSimSettings {
    fn default() -> Self {
        AutopilotSimSettings {
            other_tenant_serials: Vec::new(),
            storage_error_rate: 0.0,
            import_service_time: Duration::from_secs(120),
            sync_service_time: Duration::from_secs(60),
            manual_sync_min_interval: Duration::from_secs(600),
            periodic_sync_interval: Duration::from_secs(3600),
        }
    }
}

/// A scripted failure for this area's routes: the next `count` requests whose method matches
/// and whose path contains `path_contains` get `status` (with `Retry-After` if set).
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedFault {
    pub method: String,
    pub path_contains: String,
    pub status: u16,
    pub retry_after_secs: Option<f64>,
    pub count: u32,
}

#[derive(Debug, Default)]
pub struct AutopilotState {
    /// Registered devices, as the list shows them.
    pub devices: Vec<AutopilotDevice>,
    /// Completed imports waiting for a sync.
    pub awaiting_sync: Vec<AwaitingSync>,
    /// Import records, oldest first.
    pub imports: Vec<ImportRecord>,
    pub sync: SyncState,
    pub settings: AutopilotSimSettings,
    /// Requests served per route kind (`"import"`, `"listImported"`, `"getImported"`,
    /// `"deleteImported"`, `"createImported"`, `"listDevices"`, `"getDevice"`, `"deleteDevice"`,
    /// `"updateDeviceProperties"`, `"getSettings"`, `"sync"`, `"batch"`), for tests and benches.
    pub requests: BTreeMap<String, u64>,
    /// Rows received through `import` and single creates, in total.
    pub rows_received: u64,
    pub faults: VecDeque<ScriptedFault>,
}

impl AutopilotState {
    pub fn device_by_serial(&self, serial: &str) -> Option<&AutopilotDevice> {
        self.devices
            .iter()
            .find(|d| d.serial_number.eq_ignore_ascii_case(serial))
    }

    pub fn device_mut(&mut self, id: &str) -> Option<&mut AutopilotDevice> {
        self.devices.iter_mut().find(|d| d.id == id)
    }

    pub fn count(&self, kind: &str) -> u64 {
        self.requests.get(kind).copied().unwrap_or(0)
    }
}

pub(crate) fn seed(_state: &mut SimState, _seed: Seed) {}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
}

pub(crate) fn advance(_state: &mut SimState, _config: &super::SimConfig) {}
