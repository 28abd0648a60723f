//! Enrollment Status Pages and the Intune apps they wait for (reference §9).
//!
//! Paths: `GET|POST /beta/deviceManagement/deviceEnrollmentConfigurations` (`$expand=assignments`,
//! `$filter` on simple properties), `GET|PATCH|DELETE …/{id}`, `GET …/{id}/assignments`,
//! `POST …/{id}/assign`, `POST …/{id}/setPriority`; `GET /{v1.0,beta}/deviceAppManagement/mobileApps`
//! (`$expand=assignments`) and `…/mobileApps/{id}`.
//!
//! Like Intune: every tenant has the default ESP (id `{tenantId}_DefaultWindows10EnrollmentCompletionPageConfiguration`,
//! type `defaultWindows10EnrollmentCompletionPageConfiguration`, priority 0, progress hidden) and
//! the default device limit restriction in the same collection, so a client must pick ESPs out by
//! type. The default ESP can be edited but not deleted, assigned or reordered. At most 51 ESPs
//! (default + 50). `assign` replaces the assignments; `setPriority` moves one ESP and renumbers the
//! others 1…n. Bodies are checked property by property: unknown names, wrong JSON types, a timeout
//! outside 1…1440 minutes and an assignment to a group that does not exist are answered with 400.
//!
//! Permissions (tokens the simulated identity platform issued): ESP reads need
//! `DeviceManagementServiceConfig.Read.All` or `.ReadWrite.All`, writes `.ReadWrite.All`; app reads
//! `DeviceManagementApps.Read.All` or `.ReadWrite.All`.

#![allow(clippy::result_large_err)]

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::odata;
use super::{Seed, Shared, SimState};

/// The permission this area needs beyond the core ones: it names the apps an ESP tracks.
pub const CONSENTED: &[&str] = &["DeviceManagementApps.Read.All"];

pub const ESP_TYPE: &str = "microsoft.graph.windows10EnrollmentCompletionPageConfiguration";
const LIMIT_TYPE: &str = "microsoft.graph.deviceEnrollmentLimitConfiguration";
/// Default ESP plus 50 (reference §9).
pub const MAX_ESPS: usize = 51;

/// The demo's user-targeted ESP, so the page has something to explain.
pub const DEMO_STAFF_ESP_ID: &str = "3c7d2e14-5a8b-4f21-9e07-6b1d4c2a9f35";
pub const DEMO_APP_WIN32: &str = "a1e5c0d2-7b34-4c9e-8f12-0d6b3a9e4c71";
pub const DEMO_APP_MSI: &str = "b2f6d1e3-8c45-4da0-9a23-1e7c4b0f5d82";
pub const DEMO_APP_OFFICE: &str = "c3a7e2f4-9d56-4eb1-8b34-2f8d5c1a6e93";
pub const DEMO_APP_STORE: &str = "d4b8f3a5-ae67-4fc2-9c45-3a9e6d2b7fa4";

/// The settings an ESP carries, with the JSON kind each accepts.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Int,
    Str,
    StrList,
}

const SETTINGS: &[(&str, Kind)] = &[
    ("showInstallationProgress", Kind::Bool),
    ("blockDeviceSetupRetryByUser", Kind::Bool),
    ("allowDeviceResetOnInstallFailure", Kind::Bool),
    ("allowLogCollectionOnInstallFailure", Kind::Bool),
    ("customErrorMessage", Kind::Str),
    ("installProgressTimeoutInMinutes", Kind::Int),
    ("allowDeviceUseOnInstallFailure", Kind::Bool),
    ("selectedMobileAppIds", Kind::StrList),
    ("allowNonBlockingAppInstallation", Kind::Bool),
    ("installQualityUpdates", Kind::Bool),
    ("trackInstallProgressForAutopilotOnly", Kind::Bool),
    ("disableUserStatusTrackingAfterFirstUser", Kind::Bool),
];

/// Base properties of `deviceEnrollmentConfiguration` a client may write.
const BASE_WRITABLE: &[(&str, Kind)] = &[
    ("displayName", Kind::Str),
    ("description", Kind::Str),
    ("roleScopeTagIds", Kind::StrList),
];
/// Read-only base properties a client may echo back (Graph ignores them on write).
const BASE_READ_ONLY: &[&str] = &[
    "id",
    "priority",
    "createdDateTime",
    "lastModifiedDateTime",
    "version",
    "deviceEnrollmentConfigurationType",
];

#[derive(Debug, Clone, PartialEq)]
pub enum StoredTarget {
    Group(String),
    Exclusion(String),
    AllDevices,
    AllUsers,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredEsp {
    pub id: String,
    pub is_default: bool,
    pub display_name: String,
    pub description: Option<String>,
    pub priority: i64,
    /// The ESP settings by Graph name, every one present.
    pub settings: Map<String, Value>,
    pub role_scope_tag_ids: Vec<String>,
    pub targets: Vec<StoredTarget>,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub version: i64,
}

impl StoredEsp {
    pub fn setting(&self, name: &str) -> &Value {
        self.settings.get(name).unwrap_or(&Value::Null)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredApp {
    pub id: String,
    /// Qualified type without `#`, e.g. `microsoft.graph.win32LobApp`.
    pub odata_type: String,
    pub display_name: String,
    pub publisher: String,
    /// Required assignments: group ids, or `None` for All devices.
    pub required_for: Vec<Option<String>>,
}

#[derive(Debug, Default)]
pub struct EspState {
    pub configs: Vec<StoredEsp>,
    pub apps: Vec<StoredApp>,
    /// Enrollment restrictions sharing the collection (rendered as they are).
    pub others: Vec<Value>,
    /// ESPs created through POST (tests check re-runs create nothing).
    pub creates: u32,
}

impl EspState {
    pub fn esp(&self, id: &str) -> Option<&StoredEsp> {
        self.configs.iter().find(|c| c.id == id)
    }
}

fn default_settings() -> Map<String, Value> {
    let v = json!({
        "showInstallationProgress": false,
        "blockDeviceSetupRetryByUser": false,
        "allowDeviceResetOnInstallFailure": false,
        "allowLogCollectionOnInstallFailure": false,
        "customErrorMessage": null,
        "installProgressTimeoutInMinutes": 60,
        "allowDeviceUseOnInstallFailure": false,
        "selectedMobileAppIds": [],
        "allowNonBlockingAppInstallation": false,
        "installQualityUpdates": true,
        "trackInstallProgressForAutopilotOnly": false,
        "disableUserStatusTrackingAfterFirstUser": false,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn app(
    id: &str,
    ty: &str,
    name: &str,
    publisher: &str,
    required_for: Vec<Option<String>>,
) -> StoredApp {
    StoredApp {
        id: id.into(),
        odata_type: format!("microsoft.graph.{ty}"),
        display_name: name.into(),
        publisher: publisher.into(),
        required_for,
    }
}

pub(crate) fn seed(state: &mut SimState, seed: Seed) {
    let tenant = state.core.organization.id.clone();
    let now = Utc::now();
    let mut default = StoredEsp {
        id: format!("{tenant}_DefaultWindows10EnrollmentCompletionPageConfiguration"),
        is_default: true,
        display_name: "All users and all devices".into(),
        description: Some("This is the default enrollment status screen configuration applied with the lowest priority to all users and all devices regardless of group membership.".into()),
        priority: 0,
        settings: default_settings(),
        role_scope_tag_ids: vec!["0".into()],
        targets: Vec::new(),
        created: now,
        modified: now,
        version: 1,
    };
    // As shipped: progress hidden, quality updates off.
    default
        .settings
        .insert("blockDeviceSetupRetryByUser".into(), json!(true));
    default
        .settings
        .insert("installQualityUpdates".into(), json!(false));
    state.esp.configs.push(default);
    state.esp.others.push(json!({
        "@odata.type": format!("#{LIMIT_TYPE}"),
        "id": format!("{tenant}_DefaultLimit"),
        "displayName": "All users and all devices",
        "description": "This is the default Device Limit Restriction applied with the lowest priority to all users regardless of group membership.",
        "priority": 0,
        "createdDateTime": now.to_rfc3339(),
        "lastModifiedDateTime": now.to_rfc3339(),
        "version": 1,
        "roleScopeTagIds": ["0"],
        "deviceEnrollmentConfigurationType": "limit",
        "limit": 15,
    }));
    if !seed.has_demo_data() {
        return;
    }
    let staff = super::core::fixed_guid("group:all-staff");
    state.esp.apps = vec![
        app(
            DEMO_APP_WIN32,
            "win32LobApp",
            "Contoso Timesheets",
            "Contoso",
            vec![Some(staff.clone())],
        ),
        app(
            DEMO_APP_MSI,
            "windowsMobileMSI",
            "Legacy VPN Client",
            "Fabrikam",
            vec![Some(staff.clone())],
        ),
        app(
            DEMO_APP_OFFICE,
            "officeSuiteApp",
            "Microsoft 365 Apps for enterprise",
            "Microsoft",
            vec![Some(staff.clone())],
        ),
        app(
            DEMO_APP_STORE,
            "winGetApp",
            "Company Portal",
            "Microsoft Corporation",
            vec![],
        ),
    ];
    let mut staff_esp = StoredEsp {
        id: DEMO_STAFF_ESP_ID.into(),
        is_default: false,
        display_name: "Staff apps at first sign-in".into(),
        description: Some("Waits for the staff apps when someone signs in.".into()),
        priority: 1,
        settings: default_settings(),
        role_scope_tag_ids: vec!["0".into()],
        targets: vec![StoredTarget::Group(staff)],
        created: now,
        modified: now,
        version: 3,
    };
    for (k, v) in [
        ("showInstallationProgress", json!(true)),
        ("installProgressTimeoutInMinutes", json!(30)),
        (
            "selectedMobileAppIds",
            json!([DEMO_APP_WIN32, DEMO_APP_MSI, DEMO_APP_OFFICE]),
        ),
    ] {
        staff_esp.settings.insert(k.into(), v);
    }
    state.esp.configs.push(staff_esp);
}

pub(crate) fn routes() -> Router<Shared> {
    const BASE: &str = "/beta/deviceManagement/deviceEnrollmentConfigurations";
    let mut r = Router::new()
        .route(BASE, get(list_configs).post(create_config))
        .route(
            &format!("{BASE}/{{id}}"),
            get(get_config).patch(patch_config).delete(delete_config),
        )
        .route(&format!("{BASE}/{{id}}/assignments"), get(list_assignments))
        .route(&format!("{BASE}/{{id}}/assign"), post(assign))
        .route(&format!("{BASE}/{{id}}/setPriority"), post(set_priority));
    for v in ["v1.0", "beta"] {
        r = r
            .route(
                &format!("/{v}/deviceAppManagement/mobileApps"),
                get(list_apps),
            )
            .route(
                &format!("/{v}/deviceAppManagement/mobileApps/{{id}}"),
                get(get_app),
            );
    }
    r
}

// ---------------------------------------------------------------------------------------------
// Permissions

#[derive(Clone, Copy)]
enum Access {
    Read,
    Write,
    Apps,
}

fn check_scope(state: &SimState, headers: &HeaderMap, access: Access) -> Result<(), Response> {
    let needed: &[&str] = match access {
        Access::Read => &[
            "DeviceManagementServiceConfig.Read.All",
            "DeviceManagementServiceConfig.ReadWrite.All",
        ],
        Access::Write => &["DeviceManagementServiceConfig.ReadWrite.All"],
        Access::Apps => &[
            "DeviceManagementApps.Read.All",
            "DeviceManagementApps.ReadWrite.All",
        ],
    };
    super::core::require_one_of(state, headers, needed)
}

// ---------------------------------------------------------------------------------------------
// Rendering

fn render_target(t: &StoredTarget) -> Value {
    let filter = json!({
        "deviceAndAppManagementAssignmentFilterId": null,
        "deviceAndAppManagementAssignmentFilterType": "none",
    });
    let mut v = match t {
        StoredTarget::Group(g) => {
            json!({"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": g})
        }
        StoredTarget::Exclusion(g) => {
            json!({"@odata.type": "#microsoft.graph.exclusionGroupAssignmentTarget", "groupId": g})
        }
        StoredTarget::AllDevices => {
            json!({"@odata.type": "#microsoft.graph.allDevicesAssignmentTarget"})
        }
        StoredTarget::AllUsers => {
            json!({"@odata.type": "#microsoft.graph.allLicensedUsersAssignmentTarget"})
        }
    };
    if let (Some(o), Some(f)) = (v.as_object_mut(), filter.as_object()) {
        o.extend(f.clone());
    }
    v
}

fn target_key(t: &StoredTarget) -> String {
    match t {
        StoredTarget::Group(g) | StoredTarget::Exclusion(g) => g.clone(),
        StoredTarget::AllDevices => "allDevices".into(),
        StoredTarget::AllUsers => "allLicensedUsers".into(),
    }
}

fn render_assignments(c: &StoredEsp) -> Value {
    Value::Array(
        c.targets
            .iter()
            .map(|t| {
                json!({
                    "id": format!("{}_{}", c.id, target_key(t)),
                    "target": render_target(t),
                    "source": "direct",
                    "sourceId": c.id,
                })
            })
            .collect(),
    )
}

fn render_esp(c: &StoredEsp, expand: bool) -> Value {
    let mut m = Map::new();
    m.insert("@odata.type".into(), json!(format!("#{ESP_TYPE}")));
    m.insert("id".into(), json!(c.id));
    m.insert("displayName".into(), json!(c.display_name));
    m.insert("description".into(), json!(c.description));
    m.insert("priority".into(), json!(c.priority));
    m.insert("createdDateTime".into(), json!(c.created.to_rfc3339()));
    m.insert(
        "lastModifiedDateTime".into(),
        json!(c.modified.to_rfc3339()),
    );
    m.insert("version".into(), json!(c.version));
    m.insert("roleScopeTagIds".into(), json!(c.role_scope_tag_ids));
    m.insert(
        "deviceEnrollmentConfigurationType".into(),
        json!(if c.is_default {
            "defaultWindows10EnrollmentCompletionPageConfiguration"
        } else {
            "windows10EnrollmentCompletionPageConfiguration"
        }),
    );
    m.extend(c.settings.clone());
    if expand {
        m.insert("assignments".into(), render_assignments(c));
    }
    Value::Object(m)
}

fn render_app(a: &StoredApp, expand: bool) -> Value {
    let now = "2026-01-12T09:30:00Z";
    let mut v = json!({
        "@odata.type": format!("#{}", a.odata_type),
        "id": a.id,
        "displayName": a.display_name,
        "description": a.display_name,
        "publisher": a.publisher,
        "createdDateTime": now,
        "lastModifiedDateTime": now,
        "isFeatured": false,
        "publishingState": "published",
        "isAssigned": !a.required_for.is_empty(),
        "roleScopeTagIds": ["0"],
    });
    if expand && let Some(o) = v.as_object_mut() {
        o.insert(
            "assignments".into(),
            Value::Array(
                a.required_for
                    .iter()
                    .map(|t| {
                        let target = match t {
                            Some(g) => StoredTarget::Group(g.clone()),
                            None => StoredTarget::AllDevices,
                        };
                        json!({
                            "id": format!("{}_{}", a.id, target_key(&target)),
                            "intent": "required",
                            "target": render_target(&target),
                        })
                    })
                    .collect(),
            ),
        );
    }
    v
}

fn expands_assignments(uri: &Uri) -> bool {
    odata::query(uri)
        .get("$expand")
        .is_some_and(|e| e.split(',').any(|p| p.trim() == "assignments"))
}

// ---------------------------------------------------------------------------------------------
// Body reading

fn bad(message: &str) -> Response {
    odata::bad_request("BadRequest", message)
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, Response> {
    match odata::json_body(body)? {
        Value::Object(m) => Ok(m),
        _ => Err(bad("The request body must be a JSON object.")),
    }
}

fn check_kind(name: &str, kind: Kind, v: &Value) -> Result<(), Response> {
    let ok = match kind {
        Kind::Bool => v.is_boolean(),
        Kind::Int => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        Kind::Str => v.is_string() || v.is_null(),
        Kind::StrList => v
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x.is_string())),
    };
    if ok {
        return Ok(());
    }
    let edm = match kind {
        Kind::Bool => "Edm.Boolean",
        Kind::Int => "Edm.Int32",
        Kind::Str => "Edm.String",
        Kind::StrList => "Collection(Edm.String)",
    };
    Err(bad(&format!(
        "Cannot convert the literal '{v}' to the expected type '{edm}' of property '{name}'."
    )))
}

/// Applies a create or update body to `c`, refusing what Intune refuses.
fn apply_body(c: &mut StoredEsp, body: &Map<String, Value>) -> Result<(), Response> {
    for (k, v) in body {
        if k.starts_with('@') {
            continue;
        }
        if let Some((_, kind)) = SETTINGS.iter().find(|(n, _)| n == k) {
            check_kind(k, *kind, v)?;
            if k == "installProgressTimeoutInMinutes" {
                let n = v.as_i64().unwrap_or(0);
                if !(1..=1440).contains(&n) {
                    return Err(bad(&format!(
                        "installProgressTimeoutInMinutes must be between 1 and 1440, not {n}."
                    )));
                }
            }
            c.settings.insert(k.clone(), v.clone());
        } else if let Some((_, kind)) = BASE_WRITABLE.iter().find(|(n, _)| n == k) {
            check_kind(k, *kind, v)?;
            match k.as_str() {
                "displayName" => {
                    let s = v.as_str().unwrap_or("").trim().to_string();
                    if s.is_empty() {
                        return Err(bad(
                            "The property 'displayName' is required and cannot be empty.",
                        ));
                    }
                    c.display_name = s;
                }
                "description" => c.description = v.as_str().map(str::to_string),
                _ => {
                    c.role_scope_tag_ids = v
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                }
            }
        } else if !BASE_READ_ONLY.contains(&k.as_str()) {
            return Err(bad(&format!(
                "The property '{k}' does not exist on type '{ESP_TYPE}'. Make sure to only use property names that are defined by the type or mark the type as open type."
            )));
        }
    }
    Ok(())
}

fn not_found(id: &str) -> Response {
    odata::error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        &format!("The deviceEnrollmentConfiguration with id '{id}' was not found."),
    )
}

/// Non-default ESPs renumbered 1…n in their current order.
fn renumber(state: &mut SimState) {
    let mut order: Vec<(i64, usize)> = state
        .esp
        .configs
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.is_default)
        .map(|(i, c)| (c.priority, i))
        .collect();
    order.sort();
    for (n, (_, i)) in order.into_iter().enumerate() {
        state.esp.configs[i].priority = n as i64 + 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn list_configs(State(shared): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let items: Vec<Value> = {
        let state = shared.lock();
        if let Err(r) = check_scope(&state, &headers, Access::Read) {
            return r;
        }
        let expand = expands_assignments(&uri);
        let mut items: Vec<Value> = state.esp.others.clone();
        // Restrictions may carry their assignments (sim/readiness.rs); they show only when
        // expanded, as navigation properties do.
        for o in items.iter_mut().filter_map(|v| v.as_object_mut()) {
            if expand {
                o.entry("assignments").or_insert_with(|| json!([]));
            } else {
                o.remove("assignments");
            }
        }
        items.extend(state.esp.configs.iter().map(|c| render_esp(c, expand)));
        items
    };
    let items = match odata::apply_filter(&uri, items) {
        Ok(i) => i,
        Err(r) => return r,
    };
    shared.page(
        &uri,
        items,
        "deviceManagement/deviceEnrollmentConfigurations",
    )
}

async fn get_config(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    let state = shared.lock();
    if let Err(r) = check_scope(&state, &headers, Access::Read) {
        return r;
    }
    if let Some(c) = state.esp.esp(&id) {
        return odata::entity(&uri, render_esp(c, expands_assignments(&uri)));
    }
    match state.esp.others.iter().find(|o| o["id"] == id.as_str()) {
        Some(o) => {
            let mut o = o.clone();
            if let Some(m) = o.as_object_mut() {
                if expands_assignments(&uri) {
                    m.entry("assignments").or_insert_with(|| json!([]));
                } else {
                    m.remove("assignments");
                }
            }
            odata::entity(&uri, o)
        }
        None => not_found(&id),
    }
}

async fn create_config(
    State(shared): State<Shared>,
    headers: HeaderMap,
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
    match body.get("@odata.type").and_then(|t| t.as_str()) {
        Some(t) if t.trim_start_matches('#') == ESP_TYPE => {}
        Some(t) => {
            return bad(&format!(
                "The simulated tenant creates only '{ESP_TYPE}' in this collection, not '{}'.",
                t.trim_start_matches('#')
            ));
        }
        None => {
            return bad(
                "Cannot create an instance of the abstract type 'microsoft.graph.deviceEnrollmentConfiguration'. The request body must carry '@odata.type' naming a derived type.",
            );
        }
    }
    if state.esp.configs.len() >= MAX_ESPS {
        return bad(&format!(
            "The maximum number of Enrollment Status Page profiles ({MAX_ESPS}, the default included) for this tenant has been reached."
        ));
    }
    if !body.contains_key("displayName") {
        return bad("The property 'displayName' is required and cannot be empty.");
    }
    let now = Utc::now();
    let mut c = StoredEsp {
        id: uuid::Uuid::new_v4().to_string(),
        is_default: false,
        display_name: String::new(),
        description: None,
        // New pages go last, as in the portal.
        priority: state.esp.configs.iter().filter(|c| !c.is_default).count() as i64 + 1,
        settings: default_settings(),
        role_scope_tag_ids: vec!["0".into()],
        targets: Vec::new(),
        created: now,
        modified: now,
        version: 1,
    };
    if let Err(r) = apply_body(&mut c, &body) {
        return r;
    }
    let rendered = render_esp(&c, false);
    state.esp.configs.push(c);
    state.esp.creates += 1;
    (StatusCode::CREATED, Json(rendered)).into_response()
}

async fn patch_config(
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
    let Some(existing) = state.esp.configs.iter_mut().find(|c| c.id == id) else {
        return not_found(&id);
    };
    let mut updated = existing.clone();
    if let Err(r) = apply_body(&mut updated, &body) {
        return r;
    }
    updated.modified = Utc::now();
    updated.version += 1;
    *existing = updated;
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_config(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut state = shared.lock();
    if let Err(r) = check_scope(&state, &headers, Access::Write) {
        return r;
    }
    match state.esp.esp(&id) {
        None => return not_found(&id),
        Some(c) if c.is_default => {
            return bad("The default Enrollment Status Page cannot be deleted.");
        }
        Some(_) => {}
    }
    state.esp.configs.retain(|c| c.id != id);
    renumber(&mut state);
    StatusCode::NO_CONTENT.into_response()
}

async fn list_assignments(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    let items = {
        let state = shared.lock();
        if let Err(r) = check_scope(&state, &headers, Access::Read) {
            return r;
        }
        match state.esp.esp(&id) {
            Some(c) => match render_assignments(c) {
                Value::Array(a) => a,
                _ => Vec::new(),
            },
            None => return not_found(&id),
        }
    };
    shared.page(
        &uri,
        items,
        &format!("deviceManagement/deviceEnrollmentConfigurations('{id}')/assignments"),
    )
}

fn read_target(state: &SimState, v: &Value) -> Result<StoredTarget, Response> {
    let Some(t) = v.get("target").and_then(|t| t.as_object()) else {
        return Err(bad(
            "Each enrollment configuration assignment needs a 'target' object.",
        ));
    };
    for k in t.keys() {
        if !matches!(
            k.as_str(),
            "@odata.type"
                | "groupId"
                | "deviceAndAppManagementAssignmentFilterId"
                | "deviceAndAppManagementAssignmentFilterType"
                | "collectionId"
        ) {
            return Err(bad(&format!(
                "The property '{k}' does not exist on type 'microsoft.graph.deviceAndAppManagementAssignmentTarget'."
            )));
        }
    }
    let ty = t
        .get("@odata.type")
        .and_then(|x| x.as_str())
        .unwrap_or("")
        .trim_start_matches('#')
        .trim_start_matches("microsoft.graph.");
    let group = || -> Result<String, Response> {
        let g = t.get("groupId").and_then(|g| g.as_str()).unwrap_or("");
        if state.directory.group(g).is_none() {
            return Err(bad(&format!("The group '{g}' was not found.")));
        }
        Ok(g.to_string())
    };
    match ty {
        "groupAssignmentTarget" => Ok(StoredTarget::Group(group()?)),
        "exclusionGroupAssignmentTarget" => Ok(StoredTarget::Exclusion(group()?)),
        "allDevicesAssignmentTarget" => Ok(StoredTarget::AllDevices),
        "allLicensedUsersAssignmentTarget" => Ok(StoredTarget::AllUsers),
        "" => Err(bad(
            "Cannot create an instance of the abstract type 'microsoft.graph.deviceAndAppManagementAssignmentTarget'. The target must carry '@odata.type'.",
        )),
        other => Err(bad(&format!(
            "A type named 'microsoft.graph.{other}' could not be resolved by the model."
        ))),
    }
}

async fn assign(
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
    if let Some(k) = body
        .keys()
        .find(|k| *k != "enrollmentConfigurationAssignments")
    {
        return bad(&format!(
            "The parameter '{k}' in the request payload is not a valid parameter for the operation 'assign'."
        ));
    }
    let Some(list) = body
        .get("enrollmentConfigurationAssignments")
        .and_then(|l| l.as_array())
    else {
        return bad(
            "The parameter 'enrollmentConfigurationAssignments' is required and must be an array.",
        );
    };
    match state.esp.esp(&id) {
        None => return not_found(&id),
        Some(c) if c.is_default => {
            return bad(
                "The default Enrollment Status Page applies to all users and devices and cannot be assigned.",
            );
        }
        Some(_) => {}
    }
    let mut targets = Vec::new();
    for a in list {
        match read_target(&state, a) {
            Ok(t) if !targets.contains(&t) => targets.push(t),
            Ok(_) => {}
            Err(r) => return r,
        }
    }
    if let Some(c) = state.esp.configs.iter_mut().find(|c| c.id == id) {
        c.targets = targets;
        c.modified = Utc::now();
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn set_priority(
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
    if let Some(k) = body.keys().find(|k| *k != "priority") {
        return bad(&format!(
            "The parameter '{k}' in the request payload is not a valid parameter for the operation 'setPriority'."
        ));
    }
    let count = state.esp.configs.iter().filter(|c| !c.is_default).count() as i64;
    let Some(p) = body.get("priority").and_then(|p| p.as_i64()) else {
        return bad("The parameter 'priority' is required and must be an Edm.Int32.");
    };
    match state.esp.esp(&id) {
        None => return not_found(&id),
        Some(c) if c.is_default => {
            return bad("The priority of the default Enrollment Status Page cannot be changed.");
        }
        Some(_) => {}
    }
    if !(1..=count).contains(&p) {
        return bad(&format!(
            "The priority must be between 1 and {count}, not {p}."
        ));
    }
    // Move it before whatever holds `p` now, then renumber 1…n.
    for c in state.esp.configs.iter_mut().filter(|c| !c.is_default) {
        c.priority *= 2;
        if c.id == id {
            c.priority = p * 2 - 1;
        }
    }
    renumber(&mut state);
    StatusCode::NO_CONTENT.into_response()
}

async fn list_apps(State(shared): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let items: Vec<Value> = {
        let state = shared.lock();
        if let Err(r) = check_scope(&state, &headers, Access::Apps) {
            return r;
        }
        let expand = expands_assignments(&uri);
        state
            .esp
            .apps
            .iter()
            .map(|a| render_app(a, expand))
            .collect()
    };
    let items = match odata::apply_filter(&uri, items) {
        Ok(i) => i,
        Err(r) => return r,
    };
    shared.page(&uri, items, "deviceAppManagement/mobileApps")
}

async fn get_app(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    let state = shared.lock();
    if let Err(r) = check_scope(&state, &headers, Access::Apps) {
        return r;
    }
    match state.esp.apps.iter().find(|a| a.id == id) {
        Some(a) => odata::entity(&uri, render_app(a, expands_assignments(&uri))),
        None => odata::error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!("The mobileApp with id '{id}' was not found."),
        ),
    }
}
