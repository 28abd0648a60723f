//! Autopilot deployment profiles (beta) and their assignments.
//!
//! Paths (beta only; v1.0 has no such navigation, reference §0.1):
//! `GET|POST /beta/deviceManagement/windowsAutopilotDeploymentProfiles`,
//! `GET|PATCH|DELETE …/{id}`, `GET|POST …/{id}/assignments`, `GET|DELETE …/{id}/assignments/{aid}`,
//! `GET …/{id}/assignedDevices` (the Autopilot area's devices whose `deploymentProfile` is `{id}`).
//!
//! What the tenant rejects, like Graph: a body without `@odata.type` or with the abstract base
//! type, unknown properties ("The property 'x' does not exist on type …"), wrong enum members,
//! wrong JSON types, `null` for non-nullable booleans, a 351st profile (tenant limit 350).
//!
//! Both generations of property names are accepted on write (`language`/`locale`,
//! `extractHardwareHash`/`hardwareHashExtractionEnabled`, `enableWhiteGlove`/
//! `preprovisioningAllowed`, `outOfBoxExperienceSettings`/`outOfBoxExperienceSetting`). Reads
//! answer in the mixed shape of the field evidence (reference §0.3): the new top-level names and
//! the old plural `outOfBoxExperienceSettings` block, so a client must read both generations.
//!
//! Assignments get the id `{profileId}_{groupId}` (`{profileId}_allDevices` for All devices).
//! Assigning a group a profile already targets is answered with **409 Conflict** and the id of
//! the existing assignment in the message; a client is expected to list assignments first.
//!
//! Permissions: when the bearer token is one the simulated identity platform issued, reads need
//! `DeviceManagementServiceConfig.Read.All` (or ReadWrite) and writes
//! `DeviceManagementServiceConfig.ReadWrite.All` (create also accepts
//! `DeviceManagementConfiguration.ReadWrite.All`), else 403 like Intune. Tokens the simulator
//! does not know are left to the core middleware.

// Body readers return Graph's finished error response as their `Err`; it is built once per
// rejected request, so its size does not matter.
#![allow(clippy::result_large_err)]

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};

use super::odata;
use super::{Seed, Shared, SimState};

/// Intune's documented maximum number of Autopilot profiles per tenant (procedure §1.5).
pub const MAX_PROFILES: usize = 350;

pub const TYPE_BASE: &str = "microsoft.graph.windowsAutopilotDeploymentProfile";
pub const TYPE_ENTRA: &str = "microsoft.graph.azureADWindowsAutopilotDeploymentProfile";
pub const TYPE_HYBRID: &str = "microsoft.graph.activeDirectoryWindowsAutopilotDeploymentProfile";
const TYPE_ASSIGNMENT: &str = "microsoft.graph.windowsAutopilotDeploymentProfileAssignment";

/// Group the demo's seeded self-deploying profile is assigned to. The directory area seeds a
/// group with this id so the conflict warning of step 4 can be demonstrated.
pub const DEMO_KIOSK_GROUP_ID: &str = "5e1f2a90-7c1d-4b7e-9a39-0d4c8a7b6f01";

/// One stored profile. Stored once, in neutral form; rendered in Graph's mixed shape.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredProfile {
    pub id: String,
    /// Qualified type without `#`: [`TYPE_ENTRA`] or [`TYPE_HYBRID`].
    pub odata_type: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub locale: Option<String>,
    pub device_name_template: Option<String>,
    pub device_type: String,
    pub hardware_hash_extraction: bool,
    pub preprovisioning: bool,
    pub role_scope_tag_ids: Vec<String>,
    pub management_service_app_id: Option<String>,
    pub oobe: StoredOobe,
    pub enrollment_status_screen: Option<Value>,
    pub hybrid_skip_connectivity_check: Option<bool>,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredOobe {
    pub privacy_settings_hidden: bool,
    pub eula_hidden: bool,
    pub user_type: String,
    pub device_usage_type: String,
    pub keyboard_selection_page_skipped: bool,
    pub escape_link_hidden: bool,
}

impl Default for StoredOobe {
    fn default() -> Self {
        // Documented defaults of outOfBoxExperienceSetting.
        StoredOobe {
            privacy_settings_hidden: false,
            eula_hidden: false,
            user_type: "administrator".into(),
            device_usage_type: "singleUser".into(),
            keyboard_selection_page_skipped: false,
            escape_link_hidden: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StoredTarget {
    Group(String),
    ExclusionGroup(String),
    AllDevices,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredAssignment {
    pub id: String,
    pub profile_id: String,
    pub target: StoredTarget,
    pub filter_id: Option<String>,
    pub filter_type: String,
}

#[derive(Debug, Default)]
pub struct ProfileState {
    /// In creation order.
    pub profiles: Vec<StoredProfile>,
    pub assignments: Vec<StoredAssignment>,
    /// Successful profile creates, so tests can prove a re-run did not POST again.
    pub creates: usize,
    /// Successful assignment creates.
    pub assignment_creates: usize,
}

impl ProfileState {
    /// Every profile as `(id, createdDateTime, displayName, targets)`, oldest first: what the
    /// assignment simulation (`sim::assignment`) needs to decide which profile a device gets.
    pub fn profiles_with_targets(&self) -> Vec<(String, DateTime<Utc>, String, Vec<StoredTarget>)> {
        let mut out: Vec<_> = self
            .profiles
            .iter()
            .map(|p| {
                (
                    p.id.clone(),
                    p.created,
                    p.display_name.clone().unwrap_or_default(),
                    self.targets(&p.id),
                )
            })
            .collect();
        out.sort_by_key(|(_, created, _, _)| *created);
        out
    }

    /// What `profile_id` is assigned to, for the assignment simulation (`sim::assignment`).
    pub fn targets(&self, profile_id: &str) -> Vec<StoredTarget> {
        self.assignments
            .iter()
            .filter(|a| a.profile_id == profile_id)
            .map(|a| a.target.clone())
            .collect()
    }
}

fn date(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 9, 30, 0)
        .single()
        .unwrap_or_else(Utc::now)
}

pub(crate) fn seed(state: &mut SimState, seed: Seed) {
    if !seed.has_demo_data() {
        return;
    }
    let legacy = StoredProfile {
        id: "7f3c1e52-1b2a-4c8e-9d61-3a5b2f0c4e11".into(),
        odata_type: TYPE_ENTRA.into(),
        display_name: Some(
            if seed == Seed::Demo {
                "Default profile - all devices"
            } else {
                "Default profile - user driven"
            }
            .into(),
        ),
        description: Some("Created in 2023 by the previous IT partner".into()),
        locale: Some("os-default".into()),
        device_name_template: Some("".into()),
        device_type: "windowsPc".into(),
        hardware_hash_extraction: false,
        preprovisioning: false,
        role_scope_tag_ids: vec!["0".into()],
        management_service_app_id: None,
        oobe: StoredOobe {
            privacy_settings_hidden: true,
            eula_hidden: true,
            user_type: "administrator".into(),
            device_usage_type: "singleUser".into(),
            keyboard_selection_page_skipped: false,
            escape_link_hidden: false,
        },
        enrollment_status_screen: None,
        hybrid_skip_connectivity_check: None,
        created: date(2023, 5, 14),
        modified: date(2023, 6, 2),
    };
    let kiosk = StoredProfile {
        id: "c2d94a07-5e8f-4b13-a6f0-81e7d3b9c5a2".into(),
        odata_type: TYPE_ENTRA.into(),
        display_name: Some("Kiosk - self-deploying".into()),
        description: Some("Reception and meeting room PCs".into()),
        locale: Some("en-US".into()),
        device_name_template: Some("KIOSK-%RAND:4%".into()),
        device_type: "windowsPc".into(),
        hardware_hash_extraction: false,
        preprovisioning: false,
        role_scope_tag_ids: vec!["0".into()],
        management_service_app_id: None,
        oobe: StoredOobe {
            privacy_settings_hidden: true,
            eula_hidden: true,
            user_type: "standard".into(),
            device_usage_type: "shared".into(),
            keyboard_selection_page_skipped: true,
            escape_link_hidden: true,
        },
        enrollment_status_screen: None,
        hybrid_skip_connectivity_check: None,
        created: date(2024, 2, 1),
        modified: date(2024, 2, 1),
    };
    if seed == Seed::Demo {
        state.profiles.assignments.push(StoredAssignment {
            id: format!("{}_allDevices", legacy.id),
            profile_id: legacy.id.clone(),
            target: StoredTarget::AllDevices,
            filter_id: None,
            filter_type: "none".into(),
        });
    }
    state.profiles.assignments.push(StoredAssignment {
        id: format!("{}_{}", kiosk.id, DEMO_KIOSK_GROUP_ID),
        profile_id: kiosk.id.clone(),
        target: StoredTarget::Group(DEMO_KIOSK_GROUP_ID.into()),
        filter_id: None,
        filter_type: "none".into(),
    });
    state.profiles.profiles.push(legacy);
    state.profiles.profiles.push(kiosk);
}

pub(crate) fn routes() -> Router<Shared> {
    const BASE: &str = "/beta/deviceManagement/windowsAutopilotDeploymentProfiles";
    Router::new()
        .route(BASE, get(list_profiles).post(create_profile))
        .route(
            &format!("{BASE}/{{id}}"),
            get(get_profile).patch(patch_profile).delete(delete_profile),
        )
        .route(
            &format!("{BASE}/{{id}}/assignments"),
            get(list_assignments).post(create_assignment),
        )
        .route(
            &format!("{BASE}/{{id}}/assignments/{{aid}}"),
            get(get_assignment).delete(delete_assignment),
        )
        .route(
            &format!("{BASE}/{{id}}/assignedDevices"),
            get(assigned_devices),
        )
}

// ---------------------------------------------------------------------------------------------
// Permissions

#[derive(Clone, Copy, PartialEq)]
enum Access {
    Read,
    Write,
    Create,
}

/// 403 when the token is one the simulated identity platform issued and lacks the scope.
fn check_scope(state: &SimState, headers: &HeaderMap, access: Access) -> Result<(), Response> {
    let Some(granted) = super::core::granted_scopes(state, headers) else {
        return Ok(());
    };
    let has = |s: &str| granted.iter().any(|g| g.eq_ignore_ascii_case(s));
    let ok = match access {
        Access::Read => {
            has("DeviceManagementServiceConfig.Read.All")
                || has("DeviceManagementServiceConfig.ReadWrite.All")
        }
        Access::Write => has("DeviceManagementServiceConfig.ReadWrite.All"),
        Access::Create => {
            has("DeviceManagementServiceConfig.ReadWrite.All")
                || has("DeviceManagementConfiguration.ReadWrite.All")
        }
    };
    if ok {
        return Ok(());
    }
    let needed = match access {
        Access::Read => {
            "DeviceManagementServiceConfig.Read.All, DeviceManagementServiceConfig.ReadWrite.All"
        }
        Access::Write => "DeviceManagementServiceConfig.ReadWrite.All",
        Access::Create => {
            "DeviceManagementServiceConfig.ReadWrite.All, DeviceManagementConfiguration.ReadWrite.All"
        }
    };
    Err(odata::error(
        StatusCode::FORBIDDEN,
        "Forbidden",
        &format!(
            "Application is not authorized to perform this operation. Application must have one of the following scopes: {needed} - Operation ID (for customer support): {} - Activity ID: {}",
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4()
        ),
    ))
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// A stored profile as Graph renders it, for navigations of other areas (`$expand`).
pub(crate) fn render_profile_by_id(state: &ProfileState, id: &str) -> Option<Value> {
    state
        .profiles
        .iter()
        .find(|p| p.id == id)
        .map(render_profile)
}

fn render_profile(p: &StoredProfile) -> Value {
    let mut m = Map::new();
    m.insert("@odata.type".into(), json!(format!("#{}", p.odata_type)));
    m.insert("id".into(), json!(p.id));
    m.insert("displayName".into(), json!(p.display_name));
    m.insert("description".into(), json!(p.description));
    m.insert("locale".into(), json!(p.locale));
    m.insert(
        "createdDateTime".into(),
        json!(
            p.created
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
    );
    m.insert(
        "lastModifiedDateTime".into(),
        json!(
            p.modified
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
    );
    m.insert(
        "outOfBoxExperienceSettings".into(),
        json!({
            "hidePrivacySettings": p.oobe.privacy_settings_hidden,
            "hideEULA": p.oobe.eula_hidden,
            "userType": p.oobe.user_type,
            "deviceUsageType": p.oobe.device_usage_type,
            "skipKeyboardSelectionPage": p.oobe.keyboard_selection_page_skipped,
            "hideEscapeLink": p.oobe.escape_link_hidden,
        }),
    );
    m.insert(
        "enrollmentStatusScreenSettings".into(),
        p.enrollment_status_screen.clone().unwrap_or(Value::Null),
    );
    m.insert(
        "hardwareHashExtractionEnabled".into(),
        json!(p.hardware_hash_extraction),
    );
    m.insert("deviceNameTemplate".into(), json!(p.device_name_template));
    m.insert("deviceType".into(), json!(p.device_type));
    m.insert("preprovisioningAllowed".into(), json!(p.preprovisioning));
    m.insert("roleScopeTagIds".into(), json!(p.role_scope_tag_ids));
    m.insert(
        "managementServiceAppId".into(),
        json!(p.management_service_app_id),
    );
    if p.odata_type == TYPE_HYBRID {
        m.insert(
            "hybridAzureADJoinSkipConnectivityCheck".into(),
            json!(p.hybrid_skip_connectivity_check.unwrap_or(false)),
        );
    }
    Value::Object(m)
}

/// A `windowsAutopilotDeviceIdentity` (beta) as the `assignedDevices` navigation lists it: the
/// identity and assignment fields, from the Autopilot area's device records.
fn render_assigned_device(d: &super::autopilot::AutopilotDevice) -> Value {
    let time = |t: &Option<DateTime<Utc>>| {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    json!({
        "@odata.type": "#microsoft.graph.windowsAutopilotDeviceIdentity",
        "id": d.id,
        "serialNumber": d.serial_number,
        "productKey": d.product_key,
        "manufacturer": d.manufacturer,
        "model": d.model,
        "groupTag": d.group_tag,
        "purchaseOrderIdentifier": d.purchase_order_identifier,
        "displayName": d.display_name,
        "userPrincipalName": d.user_principal_name,
        "addressableUserName": d.user_principal_name,
        "enrollmentState": d.enrollment_state,
        "lastContactedDateTime": time(&d.last_contacted),
        "azureActiveDirectoryDeviceId": d.azure_ad_device_id,
        "azureAdDeviceId": d.azure_ad_device_id,
        "managedDeviceId": d.managed_device_id,
        "deploymentProfileAssignmentStatus": d.assignment_status,
        "deploymentProfileAssignmentDetailedStatus": d.assignment_detailed_status,
        "deploymentProfileAssignedDateTime": time(&d.assigned_at),
        "remediationState": d.remediation_state,
    })
}

fn render_target(t: &StoredTarget, filter_id: &Option<String>, filter_type: &str) -> Value {
    let mut m = Map::new();
    let (ty, group) = match t {
        StoredTarget::Group(g) => ("#microsoft.graph.groupAssignmentTarget", Some(g)),
        StoredTarget::ExclusionGroup(g) => {
            ("#microsoft.graph.exclusionGroupAssignmentTarget", Some(g))
        }
        StoredTarget::AllDevices => ("#microsoft.graph.allDevicesAssignmentTarget", None),
    };
    m.insert("@odata.type".into(), json!(ty));
    m.insert(
        "deviceAndAppManagementAssignmentFilterId".into(),
        json!(filter_id),
    );
    m.insert(
        "deviceAndAppManagementAssignmentFilterType".into(),
        json!(filter_type),
    );
    if let Some(g) = group {
        m.insert("groupId".into(), json!(g));
    }
    Value::Object(m)
}

fn render_assignment(a: &StoredAssignment) -> Value {
    json!({
        "@odata.type": format!("#{TYPE_ASSIGNMENT}"),
        "id": a.id,
        "target": render_target(&a.target, &a.filter_id, &a.filter_type),
        "source": "direct",
        "sourceId": null,
    })
}

// ---------------------------------------------------------------------------------------------
// Body reading, with Graph's rejections

fn invalid_property(name: &str, ty: &str) -> Response {
    odata::bad_request(
        "BadRequest",
        &format!(
            "The property '{name}' does not exist on type '{ty}'. Make sure to only use property names that are defined by the type or mark the type as open type."
        ),
    )
}

fn wrong_type(name: &str, expected: &str, found: &Value) -> Response {
    odata::bad_request(
        "BadRequest",
        &format!(
            "Cannot convert the literal '{}' to the expected type '{expected}' of property '{name}'.",
            found
        ),
    )
}

fn bad_enum(name: &str, enum_type: &str, value: &str) -> Response {
    odata::bad_request(
        "BadRequest",
        &format!(
            "Requested value '{value}' was not found. The value of property '{name}' must be a member of enum '{enum_type}'."
        ),
    )
}

fn string_opt(name: &str, v: &Value) -> Result<Option<String>, Response> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(wrong_type(name, "Edm.String", other)),
    }
}

/// Non-nullable boolean: the old names are `Edm.Boolean` with `Nullable="false"`.
fn bool_required(name: &str, v: &Value) -> Result<bool, Response> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Null => Err(odata::bad_request(
            "BadRequest",
            &format!(
                "A null value was found for the property named '{name}', which has the expected type 'Edm.Boolean[Nullable=False]'. The expected type 'Edm.Boolean[Nullable=False]' does not allow null values."
            ),
        )),
        other => Err(wrong_type(name, "Edm.Boolean", other)),
    }
}

fn bool_nullable(name: &str, v: &Value) -> Result<Option<bool>, Response> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        other => Err(wrong_type(name, "Edm.Boolean", other)),
    }
}

fn enum_member(
    name: &str,
    enum_type: &str,
    members: &[&str],
    v: &Value,
) -> Result<String, Response> {
    match v {
        Value::String(s) if members.contains(&s.as_str()) => Ok(s.clone()),
        Value::String(s) => Err(bad_enum(name, enum_type, s)),
        other => Err(wrong_type(name, enum_type, other)),
    }
}

const DEVICE_TYPES: &[&str] = &[
    "windowsPc",
    "surfaceHub2",
    "holoLens",
    "surfaceHub2S",
    "virtualMachine",
    "unknownFutureValue",
];
const USER_TYPES: &[&str] = &["administrator", "standard", "unknownFutureValue"];
const USAGE_TYPES: &[&str] = &["singleUser", "shared", "unknownFutureValue"];

/// Reads an OOBE block in either generation into `oobe`. `plural` selects the old names.
fn read_oobe(field: &str, v: &Value, plural: bool, oobe: &mut StoredOobe) -> Result<(), Response> {
    let (ty, obj) = match v {
        Value::Null => return Ok(()),
        Value::Object(o) => (
            if plural {
                "microsoft.graph.outOfBoxExperienceSettings"
            } else {
                "microsoft.graph.outOfBoxExperienceSetting"
            },
            o,
        ),
        other => {
            return Err(wrong_type(
                field,
                "microsoft.graph.outOfBoxExperienceSettings",
                other,
            ));
        }
    };
    for (k, val) in obj {
        if k.starts_with('@') {
            continue;
        }
        let path = format!("{field}.{k}");
        match (plural, k.as_str()) {
            (true, "hidePrivacySettings") | (false, "privacySettingsHidden") => {
                oobe.privacy_settings_hidden = bool_required(&path, val)?
            }
            (true, "hideEULA") | (false, "eulaHidden") => {
                oobe.eula_hidden = bool_required(&path, val)?
            }
            (true, "skipKeyboardSelectionPage") | (false, "keyboardSelectionPageSkipped") => {
                oobe.keyboard_selection_page_skipped = bool_required(&path, val)?
            }
            (true, "hideEscapeLink") | (false, "escapeLinkHidden") => {
                oobe.escape_link_hidden = bool_required(&path, val)?
            }
            (_, "userType") => {
                oobe.user_type =
                    enum_member(&path, "microsoft.graph.windowsUserType", USER_TYPES, val)?
            }
            (_, "deviceUsageType") => {
                oobe.device_usage_type = enum_member(
                    &path,
                    "microsoft.graph.windowsDeviceUsageType",
                    USAGE_TYPES,
                    val,
                )?
            }
            _ => return Err(invalid_property(k, ty)),
        }
    }
    Ok(())
}

fn read_esp(v: &Value) -> Result<Option<Value>, Response> {
    const TY: &str = "microsoft.graph.windowsEnrollmentStatusScreenSettings";
    let obj = match v {
        Value::Null => return Ok(None),
        Value::Object(o) => o,
        other => return Err(wrong_type("enrollmentStatusScreenSettings", TY, other)),
    };
    let mut out = Map::new();
    for (k, val) in obj {
        if k.starts_with('@') {
            continue;
        }
        let path = format!("enrollmentStatusScreenSettings.{k}");
        let stored = match k.as_str() {
            "hideInstallationProgress"
            | "allowDeviceUseBeforeProfileAndAppInstallComplete"
            | "blockDeviceSetupRetryByUser"
            | "allowLogCollectionOnInstallFailure"
            | "allowDeviceUseOnInstallFailure" => json!(bool_required(&path, val)?),
            "customErrorMessage" => json!(string_opt(&path, val)?),
            "installProgressTimeoutInMinutes" => match val {
                Value::Null => Value::Null,
                Value::Number(n) if n.as_i64().is_some_and(|x| i32::try_from(x).is_ok()) => {
                    val.clone()
                }
                other => return Err(wrong_type(&path, "Edm.Int32", other)),
            },
            _ => return Err(invalid_property(k, TY)),
        };
        out.insert(k.clone(), stored);
    }
    Ok(Some(Value::Object(out)))
}

/// Applies a create or PATCH body to `p`. `p.odata_type` must already be the concrete type.
fn apply_body(p: &mut StoredProfile, body: &Map<String, Value>) -> Result<(), Response> {
    let ty = p.odata_type.clone();
    // New names win over old ones when a body carries both, whatever the key order.
    let mut new_oobe: Option<&Value> = None;
    let mut deferred_new: Vec<(&str, &Value)> = Vec::new();
    for (k, v) in body {
        if k.starts_with('@') || k.contains("@odata.") {
            continue;
        }
        match k.as_str() {
            // Read-only: Graph ignores them on write.
            "id" | "createdDateTime" | "lastModifiedDateTime" => {}
            "displayName" => p.display_name = string_opt(k, v)?,
            "description" => p.description = string_opt(k, v)?,
            "deviceNameTemplate" => p.device_name_template = string_opt(k, v)?,
            "managementServiceAppId" => p.management_service_app_id = string_opt(k, v)?,
            "language" => p.locale = string_opt(k, v)?,
            "extractHardwareHash" => p.hardware_hash_extraction = bool_required(k, v)?,
            "enableWhiteGlove" => p.preprovisioning = bool_required(k, v)?,
            "locale" | "hardwareHashExtractionEnabled" | "preprovisioningAllowed" => {
                deferred_new.push((k.as_str(), v))
            }
            "deviceType" => {
                p.device_type = enum_member(
                    k,
                    "microsoft.graph.windowsAutopilotDeviceType",
                    DEVICE_TYPES,
                    v,
                )?
            }
            "roleScopeTagIds" => match v {
                Value::Array(items) => {
                    let mut ids = Vec::new();
                    for i in items {
                        match i {
                            Value::String(s) => ids.push(s.clone()),
                            other => return Err(wrong_type(k, "Collection(Edm.String)", other)),
                        }
                    }
                    p.role_scope_tag_ids = ids;
                }
                Value::Null => p.role_scope_tag_ids = Vec::new(),
                other => return Err(wrong_type(k, "Collection(Edm.String)", other)),
            },
            "outOfBoxExperienceSettings" => read_oobe(k, v, true, &mut p.oobe)?,
            "outOfBoxExperienceSetting" => new_oobe = Some(v),
            "enrollmentStatusScreenSettings" => p.enrollment_status_screen = read_esp(v)?,
            "hybridAzureADJoinSkipConnectivityCheck" if ty == TYPE_HYBRID => {
                p.hybrid_skip_connectivity_check = bool_nullable(k, v)?
            }
            "assignments" | "assignedDevices" => {
                return Err(odata::bad_request(
                    "BadRequest",
                    &format!(
                        "Navigation property '{k}' cannot be written with the profile; use the '{k}' collection of the profile."
                    ),
                ));
            }
            _ => return Err(invalid_property(k, &ty)),
        }
    }
    for (k, v) in deferred_new {
        match k {
            "locale" => {
                if let Some(s) = string_opt(k, v)? {
                    p.locale = Some(s);
                }
            }
            "hardwareHashExtractionEnabled" => {
                if let Some(b) = bool_nullable(k, v)? {
                    p.hardware_hash_extraction = b;
                }
            }
            _ => {
                if let Some(b) = bool_nullable(k, v)? {
                    p.preprovisioning = b;
                }
            }
        }
    }
    if let Some(v) = new_oobe {
        read_oobe("outOfBoxExperienceSetting", v, false, &mut p.oobe)?;
    }
    Ok(())
}

/// The concrete type named by `@odata.type`, or Graph's 400.
fn concrete_type(body: &Map<String, Value>) -> Result<String, Response> {
    let Some(t) = body.get("@odata.type") else {
        return Err(odata::bad_request(
            "BadRequest",
            &format!(
                "Cannot create an instance of the abstract type '{TYPE_BASE}'. The request body must carry '@odata.type' naming a derived type."
            ),
        ));
    };
    let Some(t) = t.as_str() else {
        return Err(wrong_type("@odata.type", "Edm.String", t));
    };
    let name = t.trim_start_matches('#');
    match name {
        TYPE_ENTRA | TYPE_HYBRID => Ok(name.to_string()),
        TYPE_BASE => Err(odata::bad_request(
            "BadRequest",
            &format!("Cannot create an instance of the abstract type '{TYPE_BASE}'."),
        )),
        other => Err(odata::bad_request(
            "BadRequest",
            &format!(
                "A type named '{other}' could not be resolved by the model, or is not derived from '{TYPE_BASE}'."
            ),
        )),
    }
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, Response> {
    match odata::json_body(body)? {
        Value::Object(m) => Ok(m),
        _ => Err(odata::bad_request(
            "BadRequest",
            "The request body must be a JSON object.",
        )),
    }
}

fn profile_not_found(id: &str) -> Response {
    odata::error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        &format!("The windowsAutopilotDeploymentProfile with id '{id}' was not found."),
    )
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn list_profiles(State(shared): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let items: Vec<Value> = {
        let state = shared.lock();
        if let Err(r) = check_scope(&state, &headers, Access::Read) {
            return r;
        }
        state.profiles.profiles.iter().map(render_profile).collect()
    };
    let items = match odata::apply_filter(&uri, items) {
        Ok(i) => i,
        Err(r) => return r,
    };
    shared.page(
        &uri,
        items,
        "deviceManagement/windowsAutopilotDeploymentProfiles",
    )
}

async fn get_profile(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    let state = shared.lock();
    if let Err(r) = check_scope(&state, &headers, Access::Read) {
        return r;
    }
    match state.profiles.profiles.iter().find(|p| p.id == id) {
        Some(p) => odata::entity(&uri, render_profile(p)),
        None => profile_not_found(&id),
    }
}

async fn create_profile(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut state = shared.lock();
    if let Err(r) = check_scope(&state, &headers, Access::Create) {
        return r;
    }
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ty = match concrete_type(&body) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if state.profiles.profiles.len() >= MAX_PROFILES {
        return odata::bad_request(
            "BadRequest",
            &format!(
                "The maximum number of Windows Autopilot deployment profiles ({MAX_PROFILES}) for this tenant has been reached."
            ),
        );
    }
    let now = Utc::now();
    let mut p = StoredProfile {
        id: uuid::Uuid::new_v4().to_string(),
        odata_type: ty,
        display_name: None,
        description: None,
        locale: None,
        device_name_template: None,
        device_type: "windowsPc".into(),
        hardware_hash_extraction: false,
        preprovisioning: false,
        role_scope_tag_ids: vec!["0".into()],
        management_service_app_id: None,
        oobe: StoredOobe::default(),
        enrollment_status_screen: None,
        hybrid_skip_connectivity_check: None,
        created: now,
        modified: now,
    };
    if let Err(r) = apply_body(&mut p, &body) {
        return r;
    }
    if p.display_name.as_deref().unwrap_or("").trim().is_empty() {
        return odata::bad_request(
            "BadRequest",
            "The property 'displayName' is required and cannot be empty.",
        );
    }
    let rendered = render_profile(&p);
    state.profiles.profiles.push(p);
    state.profiles.creates += 1;
    (StatusCode::CREATED, Json(rendered)).into_response()
}

async fn patch_profile(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let mut state = shared.lock();
    if let Err(r) = check_scope(&state, &headers, Access::Write) {
        return r;
    }
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(existing) = state.profiles.profiles.iter_mut().find(|p| p.id == id) else {
        return profile_not_found(&id);
    };
    if let Some(t) = body.get("@odata.type") {
        let named = t.as_str().unwrap_or("").trim_start_matches('#');
        if named != existing.odata_type {
            return odata::bad_request(
                "BadRequest",
                &format!(
                    "The type of a profile cannot be changed (it is '{}', the request names '{named}').",
                    existing.odata_type
                ),
            );
        }
    }
    let mut updated = existing.clone();
    if let Err(r) = apply_body(&mut updated, &body) {
        return r;
    }
    updated.modified = Utc::now();
    *existing = updated;
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_profile(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut state = shared.lock();
    if let Err(r) = check_scope(&state, &headers, Access::Write) {
        return r;
    }
    let before = state.profiles.profiles.len();
    state.profiles.profiles.retain(|p| p.id != id);
    if state.profiles.profiles.len() == before {
        return profile_not_found(&id);
    }
    // Intune removes the profile's assignments with it.
    state.profiles.assignments.retain(|a| a.profile_id != id);
    StatusCode::NO_CONTENT.into_response()
}

async fn assigned_devices(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    profile_collection(&shared, &headers, &id, &uri, "assignedDevices", |state| {
        state
            .autopilot
            .devices
            .iter()
            .filter(|d| d.assigned_profile_id.as_deref() == Some(id.as_str()))
            .map(render_assigned_device)
            .collect()
    })
}

async fn list_assignments(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    profile_collection(&shared, &headers, &id, &uri, "assignments", |state| {
        state
            .profiles
            .assignments
            .iter()
            .filter(|a| a.profile_id == id)
            .map(render_assignment)
            .collect()
    })
}

/// A collection below one profile (`.../{id}/{segment}`): read scope and an existing profile
/// first, then one page of what `items` picks from the state.
fn profile_collection(
    shared: &Shared,
    headers: &HeaderMap,
    id: &str,
    uri: &Uri,
    segment: &str,
    items: impl FnOnce(&SimState) -> Vec<Value>,
) -> Response {
    let items = {
        let state = shared.lock();
        if let Err(r) = check_scope(&state, headers, Access::Read) {
            return r;
        }
        if !state.profiles.profiles.iter().any(|p| p.id == id) {
            return profile_not_found(id);
        }
        items(&state)
    };
    shared.page(
        uri,
        items,
        &format!("deviceManagement/windowsAutopilotDeploymentProfiles('{id}')/{segment}"),
    )
}

fn read_target(v: &Value) -> Result<(StoredTarget, Option<String>, String), Response> {
    const BASE_TARGET: &str = "microsoft.graph.deviceAndAppManagementAssignmentTarget";
    let Some(obj) = v.as_object() else {
        return Err(wrong_type("target", BASE_TARGET, v));
    };
    let Some(ty) = obj.get("@odata.type").and_then(|t| t.as_str()) else {
        return Err(odata::bad_request(
            "BadRequest",
            &format!(
                "Cannot create an instance of the abstract type '{BASE_TARGET}' (property 'target'). The target must carry '@odata.type'."
            ),
        ));
    };
    let ty = ty.trim_start_matches('#');
    let mut group_id: Option<String> = None;
    let mut filter_id = None;
    let mut filter_type = "none".to_string();
    let takes_group = matches!(
        ty,
        "microsoft.graph.groupAssignmentTarget" | "microsoft.graph.exclusionGroupAssignmentTarget"
    );
    for (k, val) in obj {
        if k.starts_with('@') {
            continue;
        }
        let path = format!("target.{k}");
        match k.as_str() {
            "groupId" if takes_group => group_id = string_opt(&path, val)?,
            "deviceAndAppManagementAssignmentFilterId" => filter_id = string_opt(&path, val)?,
            "deviceAndAppManagementAssignmentFilterType" => {
                filter_type = enum_member(
                    &path,
                    "microsoft.graph.deviceAndAppManagementAssignmentFilterType",
                    &["none", "include", "exclude"],
                    val,
                )?
            }
            _ => return Err(invalid_property(k, ty)),
        }
    }
    let target = match ty {
        "microsoft.graph.groupAssignmentTarget"
        | "microsoft.graph.exclusionGroupAssignmentTarget" => {
            let Some(g) = group_id.filter(|g| !g.trim().is_empty()) else {
                return Err(odata::bad_request(
                    "BadRequest",
                    "The property 'groupId' of the assignment target is required.",
                ));
            };
            if ty == "microsoft.graph.groupAssignmentTarget" {
                StoredTarget::Group(g)
            } else {
                StoredTarget::ExclusionGroup(g)
            }
        }
        "microsoft.graph.allDevicesAssignmentTarget" => StoredTarget::AllDevices,
        "microsoft.graph.allLicensedUsersAssignmentTarget" => {
            return Err(odata::bad_request(
                "BadRequest",
                "Windows Autopilot deployment profiles can only be assigned to device groups or All devices, not to users.",
            ));
        }
        other => {
            return Err(odata::bad_request(
                "BadRequest",
                &format!(
                    "A type named '{other}' could not be resolved by the model, or is not derived from '{BASE_TARGET}'."
                ),
            ));
        }
    };
    Ok((target, filter_id, filter_type))
}

async fn create_assignment(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let mut state = shared.lock();
    if let Err(r) = check_scope(&state, &headers, Access::Write) {
        return r;
    }
    if !state.profiles.profiles.iter().any(|p| p.id == id) {
        return profile_not_found(&id);
    }
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(t) = body.get("@odata.type") {
        let named = t.as_str().unwrap_or("").trim_start_matches('#');
        if named != TYPE_ASSIGNMENT {
            return odata::bad_request(
                "BadRequest",
                &format!(
                    "A type named '{named}' could not be resolved by the model, or is not '{TYPE_ASSIGNMENT}'."
                ),
            );
        }
    }
    let mut target = None;
    for (k, v) in &body {
        if k.starts_with('@') || k.contains("@odata.") {
            continue;
        }
        match k.as_str() {
            "id" | "source" | "sourceId" => {}
            "target" => match read_target(v) {
                Ok(t) => target = Some(t),
                Err(r) => return r,
            },
            _ => return invalid_property(k, TYPE_ASSIGNMENT),
        }
    }
    let Some((target, filter_id, filter_type)) = target else {
        return odata::bad_request(
            "BadRequest",
            "The property 'target' is required to create an assignment.",
        );
    };
    let group_of = |t: &StoredTarget| match t {
        StoredTarget::Group(g) | StoredTarget::ExclusionGroup(g) => Some(g.to_lowercase()),
        StoredTarget::AllDevices => None,
    };
    let existing = state.profiles.assignments.iter().find(|a| {
        a.profile_id == id
            && match (&a.target, &target) {
                (StoredTarget::AllDevices, StoredTarget::AllDevices) => true,
                (x, y) => group_of(x).is_some() && group_of(x) == group_of(y),
            }
    });
    if let Some(a) = existing {
        let message = if std::mem::discriminant(&a.target) == std::mem::discriminant(&target) {
            format!(
                "An assignment with the same target already exists for this profile (assignment id '{}').",
                a.id
            )
        } else {
            format!(
                "The group is already {} by this profile (assignment id '{}'); a group cannot be both included and excluded.",
                if matches!(a.target, StoredTarget::ExclusionGroup(_)) {
                    "excluded"
                } else {
                    "included"
                },
                a.id
            )
        };
        return odata::error(StatusCode::CONFLICT, "Conflict", &message);
    }
    let aid = match &target {
        StoredTarget::Group(g) => format!("{id}_{g}"),
        StoredTarget::ExclusionGroup(g) => format!("{id}_{g}_exclusion"),
        StoredTarget::AllDevices => format!("{id}_allDevices"),
    };
    let a = StoredAssignment {
        id: aid,
        profile_id: id,
        target,
        filter_id,
        filter_type,
    };
    let rendered = render_assignment(&a);
    state.profiles.assignments.push(a);
    state.profiles.assignment_creates += 1;
    (StatusCode::CREATED, Json(rendered)).into_response()
}

async fn get_assignment(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path((id, aid)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let state = shared.lock();
    if let Err(r) = check_scope(&state, &headers, Access::Read) {
        return r;
    }
    match state
        .profiles
        .assignments
        .iter()
        .find(|a| a.profile_id == id && a.id == aid)
    {
        Some(a) => odata::entity(&uri, render_assignment(a)),
        None => odata::error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!(
                "The windowsAutopilotDeploymentProfileAssignment with id '{aid}' was not found."
            ),
        ),
    }
}

async fn delete_assignment(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path((id, aid)): Path<(String, String)>,
) -> Response {
    let mut state = shared.lock();
    if let Err(r) = check_scope(&state, &headers, Access::Write) {
        return r;
    }
    let before = state.profiles.assignments.len();
    state
        .profiles
        .assignments
        .retain(|a| !(a.profile_id == id && a.id == aid));
    if state.profiles.assignments.len() == before {
        return odata::error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!(
                "The windowsAutopilotDeploymentProfileAssignment with id '{aid}' was not found."
            ),
        );
    }
    StatusCode::NO_CONTENT.into_response()
}
