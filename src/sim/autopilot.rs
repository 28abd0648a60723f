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

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::odata;

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
    /// Serial number of every row accepted, in arrival order (a serial uploaded twice shows
    /// twice), for tests that prove nothing is uploaded twice.
    pub serials_received: Vec<String>,
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

/// What a hardware hash says about the device (reference §6, procedure §2): a TLV list after a
/// 4-byte header `OA` + u16; each entry is u16 LE type, u16 LE length including the 4-byte
/// entry header, then a NUL-terminated string for the fields read here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashInfo {
    /// Type 0x0E.
    pub serial: Option<String>,
    /// Type 0x0F.
    pub manufacturer: Option<String>,
    /// Type 0x11 (product name).
    pub model: Option<String>,
}

const TLV_SERIAL: u16 = 0x0E;
const TLV_MANUFACTURER: u16 = 0x0F;
const TLV_BASEBOARD_MANUFACTURER: u16 = 0x10;
const TLV_PRODUCT: u16 = 0x11;

/// Reads serial, manufacturer and model out of a decoded hash; anything unreadable is `None`.
pub fn decode_hardware_hash(bytes: &[u8]) -> HashInfo {
    let mut info = HashInfo::default();
    if bytes.len() < 4 || &bytes[..2] != b"OA" {
        return info;
    }
    let mut i = 4;
    while i + 4 <= bytes.len() {
        let t = u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        let l = u16::from_le_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        if l < 4 || i + l > bytes.len() {
            break;
        }
        let value = &bytes[i + 4..i + l];
        let text = || {
            let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
            let s = String::from_utf8_lossy(&value[..end]).trim().to_string();
            (!s.is_empty()).then_some(s)
        };
        match t {
            TLV_SERIAL => info.serial = text(),
            TLV_MANUFACTURER => info.manufacturer = text(),
            TLV_PRODUCT => info.model = text(),
            _ => {}
        }
        i += l;
    }
    info
}

fn push_tlv(out: &mut Vec<u8>, t: u16, value: &[u8]) {
    out.extend_from_slice(&t.to_le_bytes());
    out.extend_from_slice(&((value.len() + 4) as u16).to_le_bytes());
    out.extend_from_slice(value);
}

/// A synthetic hardware hash in the real layout, for seeds, tests and demos. An empty
/// `serial` or `manufacturer` leaves that entry out (which the service rejects with 802).
/// `salt` makes hashes of otherwise identical hardware differ.
pub fn build_hardware_hash(serial: &str, manufacturer: &str, model: &str, salt: u64) -> Vec<u8> {
    let mut body = Vec::new();
    push_tlv(&mut body, 0x01, &salt.to_le_bytes().repeat(3));
    let z = |s: &str| {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    };
    if !serial.is_empty() {
        push_tlv(&mut body, TLV_SERIAL, &z(serial));
    }
    if !manufacturer.is_empty() {
        push_tlv(&mut body, TLV_MANUFACTURER, &z(manufacturer));
        push_tlv(&mut body, TLV_BASEBOARD_MANUFACTURER, &z(manufacturer));
    }
    if !model.is_empty() {
        push_tlv(&mut body, TLV_PRODUCT, &z(model));
    }
    let mut x = salt ^ 0x9E37_79B9_7F4A_7C15;
    // Real hashes are about 3,000 bytes (4,000 Base64 characters); readers check that.
    let filler: Vec<u8> = (0..2900)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    push_tlv(&mut body, 0x20, &filler);
    // The u16 after "OA" is the record length, header included.
    let mut out = b"OA".to_vec();
    out.extend_from_slice(&((body.len() + 4) as u16).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Creates the Entra device object for a newly published Autopilot device; returns its
/// `deviceId`. The directory area owns what that object looks like.
fn create_entra_object(
    state: &mut SimState,
    serial: &str,
    ztd_id: &str,
    group_tag: &str,
    purchase_order: &str,
) -> String {
    super::directory::register_autopilot_device_object(
        state,
        serial,
        ztd_id,
        Some(group_tag),
        Some(purchase_order),
    )
}

pub(crate) fn seed(state: &mut SimState, seed: Seed) {
    if !seed.has_demo_data() {
        return;
    }
    // PC0NVWSH is the serial of a shared sample CSV, so the demo shows "already registered";
    // PF5MT6SC (another sample) belongs to another tenant, so the demo shows 808.
    let existing = [
        ("PC0NVWSH", "LENOVO", "20K5S0B700", "Sales"),
        ("DEMO-HQ-0001", "Contoso Hardware", "Desk 5", "HQ"),
        ("DEMO-HQ-0002", "Contoso Hardware", "Desk 5", "HQ"),
        ("DEMO-LAB-0001", "Fabrikam", "Laptop 14", ""),
    ];
    for (n, (serial, manufacturer, model, tag)) in existing.into_iter().enumerate() {
        let id = uuid::Uuid::new_v4().to_string();
        let mut d = AutopilotDevice::new(id.clone(), serial.into());
        d.manufacturer = manufacturer.into();
        d.model = model.into();
        d.group_tag = tag.into();
        d.hardware_hash = build_hardware_hash(serial, manufacturer, model, 1000 + n as u64);
        d.azure_ad_device_id = create_entra_object(state, serial, &id, tag, "");
        state.autopilot.devices.push(d);
    }
    state
        .autopilot
        .settings
        .other_tenant_serials
        .push("PF5MT6SC".into());
    state.autopilot.sync.status = "completed".into();
    state.autopilot.sync.last_sync = Some(Utc::now() - chrono::Duration::hours(3));
}

/// Decides due import records, finishes a running sync, and publishes devices.
pub(crate) fn advance(state: &mut SimState, config: &super::SimConfig) {
    let now = Instant::now();
    let due: Vec<usize> = state
        .autopilot
        .imports
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == "pending" && r.due <= now)
        .map(|(i, _)| i)
        .collect();
    for i in due {
        decide(state, i);
    }
    let ap = &mut state.autopilot;
    if let Some((started, ends)) = ap.sync.running
        && ends <= now
    {
        ap.sync.running = None;
        ap.sync.status = "completed".into();
        ap.sync.last_sync =
            Some(Utc::now() - chrono::Duration::from_std(now - ends).unwrap_or_default());
        publish(state, |a| a.completed <= started);
    }
    let period = config
        .speed
        .scaled(state.autopilot.settings.periodic_sync_interval);
    if now.duration_since(state.autopilot.sync.last_periodic) >= period {
        state.autopilot.sync.last_periodic = now;
        publish(state, |_| true);
    }
}

fn publish(state: &mut SimState, which: impl Fn(&AwaitingSync) -> bool) {
    let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut state.autopilot.awaiting_sync)
        .into_iter()
        .partition(|a| which(a));
    state.autopilot.awaiting_sync = waiting;
    for a in ready {
        let mut d = a.device;
        d.azure_ad_device_id = create_entra_object(
            state,
            &d.serial_number,
            &d.id,
            &d.group_tag,
            &d.purchase_order_identifier,
        );
        d.registered_at = Utc::now();
        state.autopilot.devices.push(d);
    }
}

fn decide(state: &mut SimState, i: usize) {
    let ap = &state.autopilot;
    let r = &ap.imports[i];
    let info = decode_hardware_hash(&r.hardware_identifier);
    let serial = r.serial_number.trim().to_string();
    let same = |d: &AutopilotDevice| {
        d.serial_number.eq_ignore_ascii_case(&serial)
            || (!r.hardware_identifier.is_empty() && d.hardware_hash == r.hardware_identifier)
    };
    let outcome: Result<(), (i32, &str)> = if r.duplicate_in_upload {
        Err((DUPLICATED_CODE, "ZtdDeviceDuplicated"))
    } else if serial.is_empty() && r.product_key.trim().is_empty() {
        Err((803, "MissingZtdSerialNumberAndProductKey"))
    } else if info.serial.is_none() || info.manufacturer.is_none() {
        Err((802, "InvalidZtdHardwareHash"))
    } else if ap
        .settings
        .other_tenant_serials
        .iter()
        .any(|s| s.eq_ignore_ascii_case(&serial))
    {
        Err((808, "ZtdDeviceAssignedToOtherTenant"))
    } else if ap.devices.iter().any(same) || ap.awaiting_sync.iter().any(|a| same(&a.device)) {
        Err((806, "ZtdDeviceAlreadyAssigned"))
    } else if ap.settings.storage_error_rate > 0.0
        && rand::random::<f64>() < ap.settings.storage_error_rate
    {
        Err((640, "StorageError"))
    } else {
        Ok(())
    };
    match outcome {
        Err((code, name)) => {
            let r = &mut state.autopilot.imports[i];
            r.status = "error".into();
            r.error_code = code;
            r.error_name = name.into();
        }
        Ok(()) => {
            let id = uuid::Uuid::new_v4().to_string();
            let r = &state.autopilot.imports[i];
            let mut d = AutopilotDevice::new(id.clone(), serial);
            d.product_key = r.product_key.clone();
            d.manufacturer = info.manufacturer.unwrap_or_default();
            d.model = info.model.unwrap_or_default();
            d.group_tag = r.group_tag.clone();
            d.user_principal_name = r.assigned_user_principal_name.clone();
            d.hardware_hash = r.hardware_identifier.clone();
            state.autopilot.awaiting_sync.push(AwaitingSync {
                device: d,
                completed: Instant::now(),
            });
            let r = &mut state.autopilot.imports[i];
            r.status = "complete".into();
            r.registration_id = id;
        }
    }
}

// ---- HTTP ----------------------------------------------------------------------------------

const IMPORTED: &str = "/deviceManagement/importedWindowsAutopilotDeviceIdentities";
const DEVICES: &str = "/deviceManagement/windowsAutopilotDeviceIdentities";
const SETTINGS: &str = "/deviceManagement/windowsAutopilotSettings";

pub(crate) fn routes() -> Router<Shared> {
    let mut r = Router::new();
    for ver in ["/v1.0", "/beta"] {
        r = r
            .route(
                &format!("{ver}{IMPORTED}"),
                get(list_imported).post(create_imported),
            )
            .route(&format!("{ver}{IMPORTED}/import"), post(import_action))
            .route(
                &format!("{ver}{IMPORTED}/{{id}}"),
                get(get_imported).delete(delete_imported),
            )
            .route(&format!("{ver}{DEVICES}"), get(list_devices))
            .route(
                &format!("{ver}{DEVICES}/{{id}}"),
                get(get_device).delete(delete_device),
            )
            .route(
                &format!("{ver}{DEVICES}/{{id}}/updateDeviceProperties"),
                post(update_device_properties),
            )
            .route(
                &format!("{ver}{DEVICES}/{{id}}/unassignUserFromDevice"),
                post(unassign_user_from_device),
            )
            .route(&format!("{ver}/$batch"), post(batch));
    }
    // windowsAutopilotSettings is beta only (reference §0.1): v1.0 answers 400 like Graph does
    // for a segment it does not know.
    r.route(&format!("/beta{SETTINGS}"), get(get_settings))
        .route(&format!("/beta{SETTINGS}/sync"), post(sync))
}

fn is_beta(uri: &Uri) -> bool {
    uri.path().starts_with("/beta/")
}

/// Counts the request by route kind (faults are injected by the core middleware).
fn enter(ap: &mut AutopilotState, kind: &str) {
    *ap.requests.entry(kind.to_string()).or_default() += 1;
}

fn render_import(r: &ImportRecord) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.importedWindowsAutopilotDeviceIdentity",
        "id": r.id,
        "groupTag": r.group_tag,
        "serialNumber": r.serial_number,
        "productKey": r.product_key,
        "importId": r.import_id,
        "hardwareIdentifier": B64.encode(&r.hardware_identifier),
        "assignedUserPrincipalName": r.assigned_user_principal_name,
        "state": {
            "@odata.type": "microsoft.graph.importedWindowsAutopilotDeviceIdentityState",
            "deviceImportStatus": r.status,
            "deviceRegistrationId": r.registration_id,
            "deviceErrorCode": r.error_code,
            "deviceErrorName": r.error_name,
        }
    })
}

fn date(d: &Option<DateTime<Utc>>) -> Value {
    match d {
        Some(t) => Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        None => Value::String("0001-01-01T00:00:00Z".into()),
    }
}

/// `profile` renders an expanded navigation target by id (`None` when it no longer exists).
fn render_device(
    d: &AutopilotDevice,
    beta: bool,
    expand: &str,
    profile: &dyn Fn(&str) -> Option<Value>,
) -> Value {
    let mut v = json!({
        "@odata.type": "#microsoft.graph.windowsAutopilotDeviceIdentity",
        "id": d.id,
        "groupTag": d.group_tag,
        "purchaseOrderIdentifier": d.purchase_order_identifier,
        "serialNumber": d.serial_number,
        "productKey": d.product_key,
        "manufacturer": d.manufacturer,
        "model": d.model,
        "enrollmentState": d.enrollment_state,
        "lastContactedDateTime": date(&d.last_contacted),
        "addressableUserName": d.user_principal_name,
        "userPrincipalName": d.user_principal_name,
        "resourceName": "",
        "skuNumber": "",
        "systemFamily": "",
        "azureActiveDirectoryDeviceId": d.azure_ad_device_id,
        "managedDeviceId": d.managed_device_id,
        "displayName": d.display_name,
    });
    if beta && let Value::Object(m) = &mut v {
        let extra = json!({
            "azureAdDeviceId": d.azure_ad_device_id,
            "deploymentProfileAssignmentStatus": d.assignment_status,
            "deploymentProfileAssignmentDetailedStatus": d.assignment_detailed_status,
            "deploymentProfileAssignedDateTime": date(&d.assigned_at),
            "deviceAccountUpn": "",
            "deviceAccountPassword": "",
            "deviceFriendlyName": "",
            "remediationState": d.remediation_state,
            "remediationStateLastModifiedDateTime": date(&Some(d.registered_at)),
            "userlessEnrollmentStatus": "unknown",
        });
        if let Value::Object(e) = extra {
            m.extend(e);
        }
        let expand = expand.to_ascii_lowercase();
        for (nav, id) in [
            ("deploymentProfile", &d.assigned_profile_id),
            ("intendedDeploymentProfile", &d.intended_profile_id),
        ] {
            let asked = expand
                .split(',')
                .any(|e| e.trim() == nav.to_ascii_lowercase());
            // Graph expands to the whole entity, with the concrete profile type.
            if asked {
                m.insert(
                    nav.into(),
                    id.as_deref().and_then(profile).unwrap_or(Value::Null),
                );
            }
        }
    }
    v
}

fn str_field(v: &Value, name: &str) -> String {
    v.get(name)
        .and_then(|x| x.as_str())
        .unwrap_or_default()
        .to_string()
}

/// Validates and stores the rows of one upload. Either every row is accepted or the request
/// fails as a whole (the Edm.Binary conversion error fails the entire POST).
fn accept_rows(
    ap: &mut AutopilotState,
    rows: &[Value],
    due: Instant,
) -> Result<Vec<ImportRecord>, Response> {
    let import_id = uuid::Uuid::new_v4().to_string();
    let mut out: Vec<ImportRecord> = Vec::with_capacity(rows.len());
    for row in rows {
        let hash_text = str_field(row, "hardwareIdentifier");
        let hash = B64.decode(hash_text.as_bytes()).map_err(|_| {
            odata::bad_request(
                "BadRequest",
                &format!(
                    "Cannot convert the literal '{hash_text}' to the expected type 'Edm.Binary'."
                ),
            )
        })?;
        let duplicate_in_upload =
            !hash.is_empty() && out.iter().any(|r| r.hardware_identifier == hash);
        out.push(ImportRecord {
            id: uuid::Uuid::new_v4().to_string(),
            import_id: import_id.clone(),
            serial_number: str_field(row, "serialNumber"),
            product_key: str_field(row, "productKey"),
            group_tag: str_field(row, "groupTag"),
            assigned_user_principal_name: str_field(row, "assignedUserPrincipalName"),
            hardware_identifier: hash,
            status: "pending".into(),
            error_code: 0,
            error_name: String::new(),
            registration_id: String::new(),
            due,
            duplicate_in_upload,
        });
    }
    ap.rows_received += out.len() as u64;
    ap.serials_received
        .extend(out.iter().map(|r| r.serial_number.clone()));
    ap.imports.extend(out.iter().cloned());
    Ok(out)
}

async fn import_action(State(sh): State<Shared>, _uri: Uri, body: Bytes) -> Response {
    let mut st = sh.lock();
    let ap = &mut st.autopilot;
    enter(ap, "import");
    let v = match odata::json_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(rows) = v
        .get("importedWindowsAutopilotDeviceIdentities")
        .and_then(|x| x.as_array())
    else {
        return odata::bad_request(
            "BadRequest",
            "The parameter 'importedWindowsAutopilotDeviceIdentities' is missing or is not an array.",
        );
    };
    let due = Instant::now() + sh.scaled(ap.settings.import_service_time);
    match accept_rows(ap, rows, due) {
        Ok(records) => Json(json!({
            "@odata.context": format!("{}/$metadata#Collection(microsoft.graph.importedWindowsAutopilotDeviceIdentity)", sh.base_url),
            "value": records.iter().map(render_import).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(r) => r,
    }
}

async fn create_imported(State(sh): State<Shared>, _uri: Uri, body: Bytes) -> Response {
    let mut st = sh.lock();
    let ap = &mut st.autopilot;
    enter(ap, "createImported");
    let v = match odata::json_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let due = Instant::now() + sh.scaled(ap.settings.import_service_time);
    match accept_rows(ap, std::slice::from_ref(&v), due) {
        Ok(records) => (StatusCode::CREATED, Json(render_import(&records[0]))).into_response(),
        Err(r) => r,
    }
}

async fn list_imported(State(sh): State<Shared>, uri: Uri) -> Response {
    let mut st = sh.lock();
    let ap = &mut st.autopilot;
    enter(ap, "listImported");
    let items: Vec<Value> = ap.imports.iter().map(render_import).collect();
    match odata::apply_filter(&uri, items) {
        Ok(items) => sh.page(
            &uri,
            items,
            "deviceManagement/importedWindowsAutopilotDeviceIdentities",
        ),
        Err(r) => r,
    }
}

async fn get_imported(State(sh): State<Shared>, uri: Uri, Path(id): Path<String>) -> Response {
    let mut st = sh.lock();
    let ap = &mut st.autopilot;
    enter(ap, "getImported");
    match ap.imports.iter().find(|r| r.id == id) {
        Some(r) => odata::entity(&uri, render_import(r)),
        None => odata::not_found("importedWindowsAutopilotDeviceIdentity", &id),
    }
}

async fn delete_imported(State(sh): State<Shared>, _uri: Uri, Path(id): Path<String>) -> Response {
    let mut st = sh.lock();
    let ap = &mut st.autopilot;
    enter(ap, "deleteImported");
    let before = ap.imports.len();
    ap.imports.retain(|r| r.id != id);
    if ap.imports.len() == before {
        return odata::not_found("importedWindowsAutopilotDeviceIdentity", &id);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn list_devices(State(sh): State<Shared>, uri: Uri) -> Response {
    let mut st = sh.lock();
    let ap = &mut st.autopilot;
    enter(ap, "listDevices");
    // $expand on the list is ignored, as the reference recommends reading one device for it.
    let beta = is_beta(&uri);
    let items: Vec<Value> = ap
        .devices
        .iter()
        .map(|d| render_device(d, beta, "", &|_| None))
        .collect();
    match odata::apply_filter(&uri, items) {
        Ok(items) => sh.page(
            &uri,
            items,
            "deviceManagement/windowsAutopilotDeviceIdentities",
        ),
        Err(r) => r,
    }
}

async fn get_device(State(sh): State<Shared>, uri: Uri, Path(id): Path<String>) -> Response {
    let mut st = sh.lock();
    enter(&mut st.autopilot, "getDevice");
    let q = odata::query(&uri);
    let expand = q.get("$expand").map(|s| s.as_str()).unwrap_or("");
    let profiles = &st.profiles;
    let profile = |pid: &str| super::profiles::render_profile_by_id(profiles, pid);
    match st.autopilot.devices.iter().find(|d| d.id == id) {
        Some(d) => odata::entity(&uri, render_device(d, is_beta(&uri), expand, &profile)),
        None => odata::not_found("windowsAutopilotDeviceIdentity", &id),
    }
}

async fn delete_device(State(sh): State<Shared>, _uri: Uri, Path(id): Path<String>) -> Response {
    let mut st = sh.lock();
    let ap = &mut st.autopilot;
    enter(ap, "deleteDevice");
    // The identity goes with the next sync (reference §12), see `sim::removal`.
    match super::removal::request_identity_delete(&mut st, &id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => r,
    }
}

async fn update_device_properties(
    State(sh): State<Shared>,
    uri: Uri,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let mut st = sh.lock();
    let ap = &mut st.autopilot;
    enter(ap, "updateDeviceProperties");
    let v = match odata::json_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match super::assignment::apply_device_update(&mut st, is_beta(&uri), &id, &v) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => r,
    }
}

/// `unassignUserFromDevice` (reference §7): no body, 204, the assigned user is gone.
async fn unassign_user_from_device(State(sh): State<Shared>, Path(id): Path<String>) -> Response {
    let mut st = sh.lock();
    enter(&mut st.autopilot, "unassignUserFromDevice");
    match st.autopilot.devices.iter_mut().find(|d| d.id == id) {
        Some(dev) => {
            dev.user_principal_name.clear();
            StatusCode::NO_CONTENT.into_response()
        }
        None => odata::not_found("windowsAutopilotDeviceIdentity", &id),
    }
}

fn render_settings(s: &SyncState) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.windowsAutopilotSettings",
        "id": s.id,
        "lastSyncDateTime": date(&s.last_sync),
        "lastManualSyncTriggerDateTime": date(&s.last_manual_trigger),
        "syncStatus": s.status,
    })
}

async fn get_settings(State(sh): State<Shared>, uri: Uri) -> Response {
    let mut st = sh.lock();
    let ap = &mut st.autopilot;
    enter(ap, "getSettings");
    odata::entity(&uri, render_settings(&ap.sync))
}

async fn sync(State(sh): State<Shared>, _uri: Uri) -> Response {
    let mut st = sh.lock();
    let ap = &mut st.autopilot;
    enter(ap, "sync");
    let now = Instant::now();
    let window = sh.scaled(ap.settings.manual_sync_min_interval);
    if let Some(last) = ap.sync.last_manual_trigger_at {
        let since = now.duration_since(last);
        if since < window {
            let wait = window - since;
            let mut resp = odata::error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "{\"_version\":3,\"Message\":\"A sync was requested recently. Windows Autopilot allows one manual sync every 10 minutes.\",\"CustomApiErrorPhrase\":\"\"}",
            );
            if let Ok(v) =
                HeaderValue::from_str(&crate::sim::core::retry_after_seconds(wait).to_string())
            {
                resp.headers_mut().insert("retry-after", v);
            }
            return resp;
        }
    }
    ap.sync.last_manual_trigger_at = Some(now);
    ap.sync.last_manual_trigger = Some(Utc::now());
    ap.sync.status = "inProgress".into();
    ap.sync.running = Some((now, now + sh.scaled(ap.settings.sync_service_time)));
    StatusCode::NO_CONTENT.into_response()
}

/// JSON batching (reference §8): at most 20 requests, run in order through this same server so
/// every inner request meets the same checks, faults and logs; `dependsOn` on a failed request
/// gives 424.
async fn batch(State(sh): State<Shared>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    {
        let mut st = sh.lock();
        *st.autopilot.requests.entry("batch".into()).or_default() += 1;
    }
    let v = match odata::json_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(reqs) = v.get("requests").and_then(|r| r.as_array()) else {
        return odata::bad_request(
            "BadRequest",
            "The batch request must have a 'requests' array.",
        );
    };
    if reqs.len() > 20 {
        return odata::bad_request(
            "BadRequest",
            "The number of batch requests exceeds the limit of 20.",
        );
    }
    let ver = if is_beta(&uri) { "beta" } else { "v1.0" };
    let http = sh.loopback_http();
    let mut failed: Vec<String> = Vec::new();
    let mut responses = Vec::new();
    for r in reqs {
        let id = str_field(r, "id");
        let method = str_field(r, "method").to_ascii_uppercase();
        let url = str_field(r, "url");
        let depends: Vec<String> = r
            .get("dependsOn")
            .and_then(|d| d.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if depends.iter().any(|d| failed.contains(d)) {
            failed.push(id.clone());
            responses.push(json!({"id": id, "status": 424, "headers": {}, "body": {"error": {"code": "FailedDependency", "message": "A request this one depends on failed."}}}));
            continue;
        }
        // Reference §8: an inner request with a body must say its Content-Type.
        let has_content_type = r
            .get("headers")
            .and_then(|h| h.as_object())
            .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("content-type")));
        if r.get("body").is_some() && !has_content_type {
            failed.push(id.clone());
            responses.push(json!({"id": id, "status": 400, "headers": {}, "body": {"error": {"code": "BadRequest", "message": "Content-Type header must be specified when a body is present in a batch request."}}}));
            continue;
        }
        let Ok(m) = reqwest::Method::from_bytes(method.as_bytes()) else {
            failed.push(id.clone());
            responses.push(json!({"id": id, "status": 400, "headers": {}, "body": {"error": {"code": "BadRequest", "message": "Invalid method."}}}));
            continue;
        };
        let path = if url.starts_with('/') {
            url.clone()
        } else {
            format!("/{url}")
        };
        let mut req = http.request(m, format!("{}/{ver}{path}", sh.base_url));
        if let Some(auth) = headers.get("authorization").and_then(|h| h.to_str().ok()) {
            req = req.header("Authorization", auth);
        }
        if let Some(b) = r.get("body") {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let (status, hdrs, body) = match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let mut h = serde_json::Map::new();
                for name in ["retry-after", "content-type"] {
                    if let Some(v) = resp.headers().get(name).and_then(|v| v.to_str().ok()) {
                        h.insert(name.to_string(), Value::String(v.to_string()));
                    }
                }
                let bytes = resp.bytes().await.unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                (status, Value::Object(h), body)
            }
            Err(_) => (503, json!({}), Value::Null),
        };
        if status >= 400 {
            failed.push(id.clone());
        }
        let mut item = json!({"id": id, "status": status, "headers": hdrs});
        if !body.is_null() {
            item["body"] = body;
        }
        responses.push(item);
    }
    Json(json!({"responses": responses})).into_response()
}
