//! Removing and re-using devices (reference §12, §10 for Multi Admin Approval): Intune managed
//! devices linked to Autopilot identities and Entra devices, `wipe`, the delayed deletes, the
//! beta actions `deleteDevices` and `allowNextEnrollment`, and operation approval policies.
//!
//! Service behaviour modelled here:
//! - `DELETE managedDevices/{id}` answers 204 and the record stays readable until its service
//!   time has passed (clients poll until 404).
//! - `DELETE windowsAutopilotDeviceIdentities/{id}` (and `deleteDevices`) answers 204 / accepted,
//!   and the identity disappears only once a sync that ended after the request has run (or the
//!   periodic service sync). While its Intune record still exists the delete is refused: the
//!   reference's order is Intune record first (whether Graph refuses or silently leaves a broken
//!   record is **unconfirmed**; refusing makes a client that gets the order wrong fail loudly).
//! - The Entra object of an Entra-joined device goes by itself once the identity is gone, except
//!   for the serials in [`RemovalSimSettings::entra_stays`] (a device whose object a person has
//!   to delete by hand).
//! - An operation approval policy (`deviceWipe`, `deviceDelete`) holds the matching action of a
//!   signed-in admin. How Graph answers a held request is **unconfirmed** (no source found: a
//!   field report says app-only calls were not held at all, DeviceOffboardingManager #58); this
//!   tenant answers 403 with a message naming Multi Admin Approval and records the request.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::core::fixed_guid;
use super::odata;
use super::{Seed, Shared, SimState};

/// The delegated permissions this area needs consented (beside the core's).
pub const CONSENTED: &[&str] = &[
    "DeviceManagementManagedDevices.ReadWrite.All",
    "DeviceManagementManagedDevices.PrivilegedOperations.All",
    "Device.ReadWrite.All",
    "DeviceManagementRBAC.Read.All",
];

const MANAGED: &str = "/deviceManagement/managedDevices";
const IDENTITIES: &str = "/deviceManagement/windowsAutopilotDeviceIdentities";
const POLICIES: &str = "/deviceManagement/operationApprovalPolicies";

/// The demo's Multi Admin Approval policy (holds wipes of Windows devices).
pub const DEMO_WIPE_POLICY_ID: &str = "5e0b7c1a-3d29-4f86-9a41-7c2d8e6f0b53";
/// The demo's approver group (named in the policy).
pub const DEMO_APPROVER_GROUP_ID: &str = "8a4f2c6e-1b37-4d95-8e20-3f6a9c1d7b48";

/// One entry of `deviceActionResults`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceAction {
    /// `wipe`, …
    pub name: String,
    /// `none, pending, canceled, active, done, failed, notSupported`.
    pub state: String,
    pub started: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub keep_enrollment_data: bool,
    pub keep_user_data: bool,
    /// When the device reports the action done.
    pub done_at: Instant,
}

/// An Intune `managedDevice`.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedDevice {
    pub id: String,
    pub serial_number: String,
    pub device_name: String,
    /// Entra `deviceId` (`azureADDeviceId`).
    pub azure_ad_device_id: String,
    pub user_principal_name: String,
    pub user_id: String,
    pub manufacturer: String,
    pub model: String,
    pub enrolled: DateTime<Utc>,
    pub last_sync: DateTime<Utc>,
    pub actions: Vec<DeviceAction>,
    /// Deleted: the record goes at this instant.
    pub gone_at: Option<Instant>,
}

/// An `operationApprovalPolicy` (beta).
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalPolicy {
    pub id: String,
    pub display_name: String,
    pub description: String,
    /// `deviceWipe`, `deviceDelete`, `deviceRetire`, `app`, `script`, …
    pub policy_type: String,
    /// `notApplicable`, `windows10AndLater`, `macOS`, …
    pub policy_platform: String,
    pub approver_group_ids: Vec<String>,
    pub last_modified: DateTime<Utc>,
}

impl ApprovalPolicy {
    /// Holds `policy_type` on a Windows device.
    pub fn holds(&self, policy_type: &str) -> bool {
        self.policy_type.eq_ignore_ascii_case(policy_type)
            && matches!(
                self.policy_platform.as_str(),
                "windows10AndLater" | "notApplicable" | ""
            )
    }
}

/// A request Multi Admin Approval held.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldRequest {
    pub policy_id: String,
    /// `deviceWipe`, `deviceDelete`.
    pub policy_type: String,
    /// The managed device id.
    pub target: String,
    pub at: DateTime<Utc>,
}

/// An accepted delete of an Autopilot identity, waiting for a sync.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityDelete {
    pub id: String,
    pub serial: String,
    pub requested: Instant,
    pub requested_utc: DateTime<Utc>,
}

/// Knobs of this area, in service time.
#[derive(Debug, Clone, PartialEq)]
pub struct RemovalSimSettings {
    /// Time from `DELETE managedDevices/{id}` to 404.
    pub managed_delete_time: Duration,
    /// Time from `wipe` to the device reporting it done.
    pub wipe_time: Duration,
    /// Serials whose Entra object stays after the Autopilot identity went.
    pub entra_stays: Vec<String>,
}

impl Default for RemovalSimSettings {
    fn default() -> Self {
        RemovalSimSettings {
            managed_delete_time: Duration::from_secs(90),
            wipe_time: Duration::from_secs(300),
            entra_stays: Vec::new(),
        }
    }
}

#[derive(Debug, Default)]
pub struct RemovalState {
    pub managed: Vec<ManagedDevice>,
    pub policies: Vec<ApprovalPolicy>,
    pub identity_deletes: Vec<IdentityDelete>,
    pub held: Vec<HeldRequest>,
    pub settings: RemovalSimSettings,
    /// Requests served per kind (`"wipe"`, `"deleteManaged"`, `"deleteDevices"`,
    /// `"allowNextEnrollment"`, `"listPolicies"`), for tests.
    pub counts: BTreeMap<String, u64>,
}

impl RemovalState {
    pub fn count(&self, kind: &str) -> u64 {
        self.counts.get(kind).copied().unwrap_or(0)
    }

    pub fn managed_by_serial(&self, serial: &str) -> Option<&ManagedDevice> {
        self.managed
            .iter()
            .find(|m| m.serial_number.eq_ignore_ascii_case(serial))
    }

    fn enter(&mut self, kind: &str) {
        *self.counts.entry(kind.into()).or_default() += 1;
    }
}

/// Enrols the registered Autopilot device `serial` as a device that went through OOBE does: its
/// Entra object becomes Entra-joined and managed, an Intune managed device appears, and the
/// identity names it (`managedDeviceId`, `enrollmentState: enrolled`). `user` (UPN) is the
/// person who signed in at OOBE. Returns the managed device id; `None` when no identity has this
/// serial. Enrolling again returns the existing record.
pub fn enrol_device(state: &mut SimState, serial: &str, user: Option<&str>) -> Option<String> {
    enrol_device_as(state, serial, user, None)
}

/// [`enrol_device`] with the managed device's id and name already chosen (`(id, name)`): OOBE
/// played by [`super::oobe`] names them in its `autopilotEvents` before the device enrols.
pub(crate) fn enrol_device_as(
    state: &mut SimState,
    serial: &str,
    user: Option<&str>,
    chosen: Option<(String, String)>,
) -> Option<String> {
    let idx = state
        .autopilot
        .devices
        .iter()
        .position(|d| d.serial_number.eq_ignore_ascii_case(serial))?;
    if let Some(m) = state.removal.managed_by_serial(serial) {
        return Some(m.id.clone());
    }
    let (ztd_id, tag, po, manufacturer, model, mut entra_id) = {
        let d = &state.autopilot.devices[idx];
        (
            d.id.clone(),
            d.group_tag.clone(),
            d.purchase_order_identifier.clone(),
            d.manufacturer.clone(),
            d.model.clone(),
            d.azure_ad_device_id.clone(),
        )
    };
    if entra_id.is_empty() || state.directory.device_by_device_id(&entra_id).is_none() {
        entra_id = super::directory::register_autopilot_device_object(
            state,
            serial,
            &ztd_id,
            Some(&tag),
            Some(&po),
        );
    }
    let (upn, user_id) = match user.and_then(|u| super::core::user_by_id_or_upn(&state.core, u)) {
        Some(u) => (u.user_principal_name.clone(), u.id.clone()),
        None => (user.unwrap_or_default().to_string(), String::new()),
    };
    let (id, name) = chosen.unwrap_or_else(|| {
        (
            uuid::Uuid::new_v4().to_string(),
            format!("DESKTOP-{}", &fixed_guid(&format!("name:{serial}"))[..7]).to_uppercase(),
        )
    });
    if let Some(e) = state
        .directory
        .devices
        .iter_mut()
        .find(|e| e.device_id == entra_id)
    {
        e.trust_type = Some("AzureAd".into());
        e.is_managed = Some(true);
        e.is_compliant = Some(true);
        e.display_name = name.clone();
        e.enrollment_profile_name = None;
        e.approximate_last_sign_in_date_time = Some(Utc::now());
    }
    state.removal.managed.push(ManagedDevice {
        id: id.clone(),
        serial_number: serial.to_string(),
        device_name: name,
        azure_ad_device_id: entra_id.clone(),
        user_principal_name: upn.clone(),
        user_id,
        manufacturer,
        model,
        enrolled: Utc::now(),
        last_sync: Utc::now(),
        actions: Vec::new(),
        gone_at: None,
    });
    let d = &mut state.autopilot.devices[idx];
    d.managed_device_id = id.clone();
    d.azure_ad_device_id = entra_id;
    d.enrollment_state = "enrolled".into();
    d.last_contacted = Some(Utc::now());
    if d.user_principal_name.is_empty() && !upn.is_empty() {
        d.user_principal_name = upn;
    }
    Some(id)
}

/// A Multi Admin Approval policy holding `policy_type` (`deviceWipe`, `deviceDelete`) for
/// Windows devices, approved by `approver_group_id`. Returns its id.
pub fn add_approval_policy(
    state: &mut SimState,
    policy_type: &str,
    approver_group_id: &str,
) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    state.removal.policies.push(ApprovalPolicy {
        id: id.clone(),
        display_name: format!("Approve {policy_type}"),
        description: String::new(),
        policy_type: policy_type.into(),
        policy_platform: "windows10AndLater".into(),
        approver_group_ids: vec![approver_group_id.into()],
        last_modified: Utc::now(),
    });
    id
}

pub(crate) fn seed(state: &mut SimState, seed: Seed) {
    if !seed.has_demo_data() {
        return;
    }
    // DEMO-HQ-0001: enrolled, assigned to a user (the whole Leave sequence).
    // DEMO-LAB-0001: enrolled, and its Entra object does not go by itself.
    // DEMO-HQ-0002, PC0NVWSH: registered only. PF5MT6SC: another tenant's (808, sim::autopilot).
    let user = state
        .core
        .users
        .iter()
        .find(|u| u.account_enabled && u.id != state.core.interactive_user_id)
        .map(|u| u.user_principal_name.clone());
    enrol_device(state, "DEMO-HQ-0001", user.as_deref());
    enrol_device(state, "DEMO-LAB-0001", None);
    state
        .removal
        .settings
        .entra_stays
        .push("DEMO-LAB-0001".into());
    state.removal.policies.push(ApprovalPolicy {
        id: DEMO_WIPE_POLICY_ID.into(),
        display_name: "Device wipe needs a second admin".into(),
        description: "Every wipe of a Windows device is approved by a second administrator.".into(),
        policy_type: "deviceWipe".into(),
        policy_platform: "windows10AndLater".into(),
        approver_group_ids: vec![DEMO_APPROVER_GROUP_ID.into()],
        last_modified: Utc::now() - chrono::Duration::days(20),
    });
}

/// Finishes deletes and wipes that are due, and publishes identity deletes after a sync.
pub(crate) fn advance(state: &mut SimState, _config: &super::SimConfig) {
    let now = Instant::now();
    let gone: Vec<String> = state
        .removal
        .managed
        .iter()
        .filter(|m| m.gone_at.is_some_and(|t| t <= now))
        .map(|m| m.id.clone())
        .collect();
    if !gone.is_empty() {
        state.removal.managed.retain(|m| !gone.contains(&m.id));
        for d in &mut state.autopilot.devices {
            if gone.contains(&d.managed_device_id) {
                d.managed_device_id.clear();
            }
        }
    }
    for m in &mut state.removal.managed {
        for a in &mut m.actions {
            if a.state == "pending" && a.done_at <= now {
                a.state = "done".into();
                a.updated = Utc::now();
            }
        }
    }
    // An identity goes with the first sync that ends after its delete was accepted (the
    // running sync in `sim::autopilot` sets `last_sync` when it ends), or with the periodic one.
    let sync = &state.autopilot.sync;
    let synced_after = |d: &IdentityDelete| {
        (sync.running.is_none() && sync.last_sync.is_some_and(|t| t >= d.requested_utc))
            || sync.last_periodic > d.requested
    };
    let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut state.removal.identity_deletes)
        .into_iter()
        .partition(|d| synced_after(d));
    state.removal.identity_deletes = waiting;
    for d in due {
        let entra = state
            .autopilot
            .devices
            .iter()
            .find(|x| x.id == d.id)
            .map(|x| x.azure_ad_device_id.clone())
            .unwrap_or_default();
        state.autopilot.devices.retain(|x| x.id != d.id);
        let stays = state
            .removal
            .settings
            .entra_stays
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&d.serial));
        if !entra.is_empty() && !stays {
            super::directory::remove_device_object(state, &entra);
        }
    }
}

/// Accepts the delete of the Autopilot identity `id` (reference §12 step 5): `Err` with the
/// response when it cannot be deleted now.
pub(crate) fn request_identity_delete(state: &mut SimState, id: &str) -> Result<(), Response> {
    let Some(d) = state.autopilot.devices.iter().find(|d| d.id == id) else {
        return Err(odata::not_found("windowsAutopilotDeviceIdentity", id));
    };
    if let Some(reason) = identity_delete_refusal(state, &d.serial_number, &d.managed_device_id) {
        return Err(odata::bad_request("BadRequest", &reason));
    }
    if !state.removal.identity_deletes.iter().any(|x| x.id == id) {
        state.removal.identity_deletes.push(IdentityDelete {
            id: id.into(),
            serial: d.serial_number.clone(),
            requested: Instant::now(),
            requested_utc: Utc::now(),
        });
    }
    Ok(())
}

fn identity_delete_refusal(state: &SimState, serial: &str, managed_id: &str) -> Option<String> {
    let enrolled = !managed_id.is_empty()
        && state
            .removal
            .managed
            .iter()
            .any(|m| m.id == managed_id && m.gone_at.is_none());
    enrolled.then(|| {
        format!(
            "{{\"_version\":3,\"Message\":\"The device {serial} is still enrolled in Intune. Delete its managed device first. - Operation ID (for customer support): {}\",\"CustomApiErrorPhrase\":\"ZtdDeviceEnrolledInIntune\"}}",
            uuid::Uuid::new_v4()
        )
    })
}

// ---- HTTP ----------------------------------------------------------------------------------

pub(crate) fn routes() -> Router<Shared> {
    let mut r = Router::new();
    for ver in ["/v1.0", "/beta"] {
        r = r
            .route(&format!("{ver}{MANAGED}"), get(list_managed))
            .route(
                &format!("{ver}{MANAGED}/{{id}}"),
                get(get_managed).delete(delete_managed),
            )
            .route(&format!("{ver}{MANAGED}/{{id}}/wipe"), post(wipe));
    }
    // Beta only (reference §7): the bulk delete, allowNextEnrollment and the approval policies.
    r.route(
        &format!("/beta{IDENTITIES}/deleteDevices"),
        post(delete_devices),
    )
    .route(
        &format!("/beta{IDENTITIES}/{{id}}/allowNextEnrollment"),
        post(allow_next_enrollment),
    )
    .route(&format!("/beta{POLICIES}"), get(list_policies))
    .route(&format!("/beta{POLICIES}/{{id}}"), get(get_policy))
}

enum Access {
    ReadDevices,
    WriteDevices,
    Privileged,
    ReadPolicies,
    WriteServiceConfig,
}

fn check_scope(state: &SimState, headers: &HeaderMap, access: Access) -> Result<(), Response> {
    let needed: &[&str] = match access {
        Access::ReadDevices => &[
            "DeviceManagementManagedDevices.Read.All",
            "DeviceManagementManagedDevices.ReadWrite.All",
        ],
        Access::WriteDevices => &["DeviceManagementManagedDevices.ReadWrite.All"],
        // Field reports: ReadWrite.All alone is refused for wipe (graph-docs #17172).
        Access::Privileged => &["DeviceManagementManagedDevices.PrivilegedOperations.All"],
        Access::ReadPolicies => &[
            "DeviceManagementRBAC.Read.All",
            "DeviceManagementRBAC.ReadWrite.All",
            "DeviceManagementConfiguration.Read.All",
            "DeviceManagementConfiguration.ReadWrite.All",
        ],
        Access::WriteServiceConfig => &["DeviceManagementServiceConfig.ReadWrite.All"],
    };
    super::core::require_one_of(state, headers, needed)
}

/// The held answer (see the module comment: the real shape is unconfirmed).
fn held(state: &mut SimState, policy_type: &str, target: &str) -> Option<Response> {
    let policy = state
        .removal
        .policies
        .iter()
        .find(|p| p.holds(policy_type))?
        .clone();
    state.removal.held.push(HeldRequest {
        policy_id: policy.id.clone(),
        policy_type: policy_type.into(),
        target: target.into(),
        at: Utc::now(),
    });
    Some(odata::error(
        StatusCode::FORBIDDEN,
        "Forbidden",
        &format!(
            "{{\"_version\":3,\"Message\":\"This operation is protected by Multi Admin Approval (access policy '{}', {}): it needs the approval of another administrator before it runs. - Operation ID (for customer support): {}\",\"CustomApiErrorPhrase\":\"MultiAdminApprovalRequired\"}}",
            policy.display_name,
            policy.id,
            uuid::Uuid::new_v4()
        ),
    ))
}

fn date(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// v1.0 `managedDevice` (the properties a Windows device has; documented names only).
fn render_managed(m: &ManagedDevice) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.managedDevice",
        "id": m.id,
        "userId": m.user_id,
        "deviceName": m.device_name,
        "managedDeviceName": format!("{}_Windows_{}", m.user_principal_name.split('@').next().unwrap_or(""), m.enrolled.format("%-m/%-d/%Y_%-I:%M %p")),
        "managedDeviceOwnerType": "company",
        "deviceActionResults": m.actions.iter().map(|a| json!({
            "@odata.type": "microsoft.graph.deviceActionResult",
            "actionName": a.name,
            "actionState": a.state,
            "startDateTime": date(&a.started),
            "lastUpdatedDateTime": date(&a.updated),
        })).collect::<Vec<_>>(),
        "enrolledDateTime": date(&m.enrolled),
        "lastSyncDateTime": date(&m.last_sync),
        "operatingSystem": "Windows",
        "complianceState": "compliant",
        "jailBroken": "Unknown",
        "managementAgent": "mdm",
        "osVersion": "10.0.22631.4460",
        "easActivated": false,
        "easDeviceId": "",
        "azureADRegistered": true,
        "deviceEnrollmentType": "windowsAzureADJoin",
        "emailAddress": m.user_principal_name,
        "azureADDeviceId": m.azure_ad_device_id,
        "deviceRegistrationState": "registered",
        "isSupervised": false,
        "isEncrypted": true,
        "userPrincipalName": m.user_principal_name,
        "model": m.model,
        "manufacturer": m.manufacturer,
        "serialNumber": m.serial_number,
        "userDisplayName": "",
        "totalStorageSpaceInBytes": 255_999_672_320_i64,
        "freeStorageSpaceInBytes": 190_000_000_000_i64,
    })
}

fn render_policy(p: &ApprovalPolicy) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.operationApprovalPolicy",
        "id": p.id,
        "displayName": p.display_name,
        "description": p.description,
        "lastModifiedDateTime": date(&p.last_modified),
        "policyType": p.policy_type,
        "policyPlatform": p.policy_platform,
        "policySet": {
            "@odata.type": "microsoft.graph.operationApprovalPolicySet",
            "policyType": p.policy_type,
            "policyPlatform": p.policy_platform,
        },
        "approverGroupIds": p.approver_group_ids,
    })
}

async fn list_managed(State(sh): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let mut st = sh.lock();
    if let Err(r) = check_scope(&st, &headers, Access::ReadDevices) {
        return r;
    }
    st.removal.enter("listManaged");
    let items: Vec<Value> = st.removal.managed.iter().map(render_managed).collect();
    match odata::apply_filter(&uri, items) {
        Ok(items) => sh.page(&uri, items, "deviceManagement/managedDevices"),
        Err(r) => r,
    }
}

async fn get_managed(
    State(sh): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    let mut st = sh.lock();
    if let Err(r) = check_scope(&st, &headers, Access::ReadDevices) {
        return r;
    }
    st.removal.enter("getManaged");
    match st.removal.managed.iter().find(|m| m.id == id) {
        Some(m) => odata::entity(&uri, render_managed(m)),
        None => odata::not_found("managedDevice", &id),
    }
}

async fn delete_managed(
    State(sh): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut st = sh.lock();
    if let Err(r) = check_scope(&st, &headers, Access::WriteDevices) {
        return r;
    }
    st.removal.enter("deleteManaged");
    if !st.removal.managed.iter().any(|m| m.id == id) {
        return odata::not_found("managedDevice", &id);
    }
    if let Some(r) = held(&mut st, "deviceDelete", &id) {
        return r;
    }
    let due = Instant::now() + sh.scaled(st.removal.settings.managed_delete_time);
    if let Some(m) = st.removal.managed.iter_mut().find(|m| m.id == id) {
        m.gone_at.get_or_insert(due);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `wipe` (v1.0 and beta): `keepEnrollmentData`, `keepUserData`, `macOsUnlockCode`,
/// `persistEsimDataPlan` (beta adds `obliterationBehavior`, `useProtectedWipe`); 204.
async fn wipe(
    State(sh): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let mut st = sh.lock();
    if let Err(r) = check_scope(&st, &headers, Access::Privileged) {
        return r;
    }
    st.removal.enter("wipe");
    let v = if body.is_empty() {
        json!({})
    } else {
        match odata::json_body(&body) {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
    const KNOWN: &[&str] = &[
        "keepEnrollmentData",
        "keepUserData",
        "macOsUnlockCode",
        "persistEsimDataPlan",
        "obliterationBehavior",
        "useProtectedWipe",
    ];
    if let Some(obj) = v.as_object() {
        if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return odata::bad_request(
                "BadRequest",
                &format!(
                    "The parameter '{k}' in the request payload is not a valid parameter for the operation 'wipe'."
                ),
            );
        }
        for k in ["keepEnrollmentData", "keepUserData", "persistEsimDataPlan"] {
            if obj.get(k).is_some_and(|x| !x.is_boolean() && !x.is_null()) {
                return odata::bad_request(
                    "BadRequest",
                    &format!(
                        "Cannot convert the literal to the expected type 'Edm.Boolean' ({k})."
                    ),
                );
            }
        }
    }
    if !st
        .removal
        .managed
        .iter()
        .any(|m| m.id == id && m.gone_at.is_none())
    {
        return odata::not_found("managedDevice", &id);
    }
    if let Some(r) = held(&mut st, "deviceWipe", &id) {
        return r;
    }
    let flag = |k: &str| v.get(k).and_then(|x| x.as_bool()).unwrap_or(false);
    let done_at = Instant::now() + sh.scaled(st.removal.settings.wipe_time);
    if let Some(m) = st.removal.managed.iter_mut().find(|m| m.id == id) {
        m.actions.push(DeviceAction {
            name: "wipe".into(),
            state: "pending".into(),
            started: Utc::now(),
            updated: Utc::now(),
            keep_enrollment_data: flag("keepEnrollmentData"),
            keep_user_data: flag("keepUserData"),
            done_at,
        });
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `deleteDevices` (beta): `{"serialNumbers": [...]}` → a `deletedWindowsAutopilotDeviceState`
/// per serial (`deletionState`: `unknown, failed, accepted, error`).
async fn delete_devices(State(sh): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut st = sh.lock();
    if let Err(r) = check_scope(&st, &headers, Access::WriteServiceConfig) {
        return r;
    }
    st.removal.enter("deleteDevices");
    let v = match odata::json_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(serials) = v.get("serialNumbers").and_then(|s| s.as_array()) else {
        return odata::bad_request(
            "BadRequest",
            "The request body needs 'serialNumbers', a collection of strings.",
        );
    };
    let serials: Vec<String> = serials
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    let mut out = Vec::new();
    for serial in serials {
        let found = st
            .autopilot
            .devices
            .iter()
            .find(|d| d.serial_number.eq_ignore_ascii_case(&serial))
            .map(|d| d.id.clone());
        let (state, id, message) = match found {
            None => (
                "failed",
                String::new(),
                format!("No Autopilot device with serial number {serial} in this tenant."),
            ),
            Some(id) => match request_identity_delete(&mut st, &id) {
                Ok(()) => ("accepted", id, String::new()),
                Err(_) => (
                    "failed",
                    id,
                    "The device is still enrolled in Intune. Delete its managed device first."
                        .into(),
                ),
            },
        };
        out.push(json!({
            "@odata.type": "#microsoft.graph.deletedWindowsAutopilotDeviceState",
            "serialNumber": serial,
            "deviceRegistrationId": id,
            "deletionState": state,
            "errorMessage": message,
        }));
    }
    Json(json!({
        "@odata.context": format!("{}/beta/$metadata#Collection(microsoft.graph.deletedWindowsAutopilotDeviceState)", sh.base_url),
        "value": out,
    }))
    .into_response()
}

/// `allowNextEnrollment` (beta, no body, 204): a device whose next enrollment is blocked may
/// enrol again. What the service changes on the identity is **unconfirmed**; here the state
/// goes from `blocked` to `notContacted`.
async fn allow_next_enrollment(
    State(sh): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut st = sh.lock();
    if let Err(r) = check_scope(&st, &headers, Access::WriteServiceConfig) {
        return r;
    }
    st.removal.enter("allowNextEnrollment");
    match st.autopilot.devices.iter_mut().find(|d| d.id == id) {
        Some(d) => {
            if d.enrollment_state == "blocked" {
                d.enrollment_state = "notContacted".into();
            }
            StatusCode::NO_CONTENT.into_response()
        }
        None => odata::not_found("windowsAutopilotDeviceIdentity", &id),
    }
}

async fn list_policies(State(sh): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let mut st = sh.lock();
    if let Err(r) = check_scope(&st, &headers, Access::ReadPolicies) {
        return r;
    }
    st.removal.enter("listPolicies");
    let items: Vec<Value> = st.removal.policies.iter().map(render_policy).collect();
    sh.page(&uri, items, "deviceManagement/operationApprovalPolicies")
}

async fn get_policy(
    State(sh): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    let st = sh.lock();
    if let Err(r) = check_scope(&st, &headers, Access::ReadPolicies) {
        return r;
    }
    match st.removal.policies.iter().find(|p| p.id == id) {
        Some(p) => odata::entity(&uri, render_policy(p)),
        None => odata::not_found("operationApprovalPolicy", &id),
    }
}
