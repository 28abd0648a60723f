//! What else decides whether a device gets through OOBE (reference §10): the users' licences
//! and the tenant's subscriptions, Conditional Access policies, the devices each user already
//! joined (against the registration policy's quota), the enrollment restrictions (kept in the
//! `deviceEnrollmentConfigurations` collection that [`super::esp`] serves) and company branding.
//!
//! Written from the reference and Microsoft's resource pages on its own (no `crate::graph` or
//! `crate::steps` types). The demo tenant carries one problem of each kind, each on a person or
//! a policy the walkthrough's technicians do not depend on, or as a warning that does not stop
//! READY (README, "The simulated tenant"):
//! - Lucía Ferrández (office manager) has Microsoft 365 Business Standard, without Intune or
//!   Entra ID P1, and the "Front desk" platform restriction blocks Windows enrollment for her;
//! - "Require MFA to join" is on while a Conditional Access policy also asks for MFA on
//!   "Register or join devices" (sim/directory.rs seeds the first);
//! - a report-only compliant-device policy does not exclude Microsoft Intune Enrollment;
//! - Rowan Achterberg has joined 18 devices of the 20 the policy allows;
//! - the MDM user scope names a device group (sim/directory.rs);
//! - no company branding.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::core::{CurrentUser, fixed_guid};
use super::odata;
use super::{Seed, Shared, SimState};

/// The delegated permissions this area adds to what the tenant consented.
pub const CONSENTED: &[&str] = &[
    "LicenseAssignment.Read.All",
    "Policy.ReadWrite.DeviceConfiguration",
];

/// Service plan ids (reference §10).
pub const INTUNE_A: &str = "c1ec4a95-1f05-45b3-a911-aa3fa01094f5";
pub const AAD_PREMIUM: &str = "41781fb2-bc02-4b7c-bd55-b576c07bb09d";
const EXCHANGE_S_STANDARD: &str = "9aaf7827-d63c-4b61-89c3-182f06f82e5c";
const SHAREPOINTSTANDARD: &str = "c7699d2e-19aa-44de-8edf-1736da088ca1";
const TEAMS1: &str = "57ff2da0-773e-42df-b2af-ffb7a2317929";
/// Microsoft 365 Business Premium (SPB) and Business Standard (O365_BUSINESS_PREMIUM).
pub const SKU_BUSINESS_PREMIUM: &str = "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46";
pub const SKU_BUSINESS_STANDARD: &str = "f245ecc8-75af-4f8e-b61f-27d8114de5f3";

/// First-party application ids Conditional Access policies name.
pub const INTUNE_ENROLLMENT_APP: &str = "d4ebce55-015a-49b5-a083-c84d1797ae8c";
pub const INTUNE_APP: &str = "0000000a-0000-0000-c000-000000000000";
/// The user action "Register or join devices".
pub const REGISTER_OR_JOIN: &str = "urn:user:registerdevice";

const PLATFORM_RESTRICTION_TYPE: &str =
    "microsoft.graph.deviceEnrollmentPlatformRestrictionConfiguration";
const PLATFORM_RESTRICTIONS_TYPE: &str =
    "microsoft.graph.deviceEnrollmentPlatformRestrictionsConfiguration";

#[derive(Debug, Clone)]
pub struct Sku {
    pub sku_id: String,
    pub part_number: String,
    /// Seats bought (`prepaidUnits.enabled`).
    pub enabled: i32,
    /// (servicePlanId, servicePlanName)
    pub plans: Vec<(String, String)>,
}

/// One licence assigned to a user, with the provisioning status of plans that are not
/// `Success` (the rest are).
#[derive(Debug, Clone)]
pub struct UserLicence {
    pub sku_id: String,
    pub plan_status: HashMap<String, String>,
}

/// A Conditional Access policy, stored as Graph renders it (`conditions`, `grantControls`…):
/// the checks read every part of it, and a test may set any.
#[derive(Debug, Clone)]
pub struct CaPolicy {
    pub id: String,
    pub display_name: String,
    /// `enabled`, `disabled` or `enabledForReportingButNotEnforced`.
    pub state: String,
    pub conditions: Value,
    pub grant_controls: Value,
}

#[derive(Debug, Clone)]
pub struct Branding {
    pub sign_in_page_text: Option<String>,
    pub background_color: Option<String>,
    /// Locales with their own branding besides the default ("0").
    pub locales: Vec<String>,
}

#[derive(Debug, Default)]
pub struct ReadinessState {
    pub skus: Vec<Sku>,
    /// User object id -> licences.
    pub licences: HashMap<String, Vec<UserLicence>>,
    pub ca_policies: Vec<CaPolicy>,
    /// `None`: the tenant has no company branding (GET answers 404).
    pub branding: Option<Branding>,
    /// User object id -> display names of the Entra devices the user registered (owns).
    pub owned_devices: HashMap<String, Vec<String>>,
}

impl ReadinessState {
    /// Seats of `sku_id` in use: one per user holding it.
    pub fn consumed(&self, sku_id: &str) -> i32 {
        self.licences
            .values()
            .filter(|l| l.iter().any(|x| x.sku_id == sku_id))
            .count() as i32
    }

    /// Gives `user_id` a licence of `sku_id`, every plan provisioned.
    pub fn assign(&mut self, user_id: &str, sku_id: &str) {
        let l = self.licences.entry(user_id.to_string()).or_default();
        if !l.iter().any(|x| x.sku_id == sku_id) {
            l.push(UserLicence {
                sku_id: sku_id.into(),
                plan_status: HashMap::new(),
            });
        }
    }
}

fn premium() -> Sku {
    let plan = |id: &str, n: &str| (id.to_string(), n.to_string());
    Sku {
        sku_id: SKU_BUSINESS_PREMIUM.into(),
        part_number: "SPB".into(),
        enabled: 10,
        plans: vec![
            plan(INTUNE_A, "INTUNE_A"),
            plan(AAD_PREMIUM, "AAD_PREMIUM"),
            plan(EXCHANGE_S_STANDARD, "EXCHANGE_S_STANDARD"),
            plan(TEAMS1, "TEAMS1"),
        ],
    }
}

fn standard() -> Sku {
    let plan = |id: &str, n: &str| (id.to_string(), n.to_string());
    Sku {
        sku_id: SKU_BUSINESS_STANDARD.into(),
        part_number: "O365_BUSINESS_PREMIUM".into(),
        enabled: 5,
        plans: vec![
            plan(EXCHANGE_S_STANDARD, "EXCHANGE_S_STANDARD"),
            plan(SHAREPOINTSTANDARD, "SHAREPOINTSTANDARD"),
            plan(TEAMS1, "TEAMS1"),
        ],
    }
}

fn ca(id: &str, name: &str, state: &str, conditions: Value, grant: Value) -> CaPolicy {
    CaPolicy {
        id: fixed_guid(&format!("ca:{id}")),
        display_name: name.into(),
        state: state.into(),
        conditions,
        grant_controls: grant,
    }
}

/// The conditions of a policy for every user and `apps` (or a user action).
pub fn conditions(
    apps: &[&str],
    excluded_apps: &[&str],
    actions: &[&str],
    clients: &[&str],
) -> Value {
    json!({
        "applications": {
            "includeApplications": apps,
            "excludeApplications": excluded_apps,
            "includeUserActions": actions,
            "includeAuthenticationContextClassReferences": [],
        },
        "users": {
            "includeUsers": ["All"],
            "excludeUsers": [],
            "includeGroups": [],
            "excludeGroups": [],
            "includeRoles": [],
            "excludeRoles": [],
        },
        "clientAppTypes": clients,
        "platforms": null,
        "locations": null,
        "signInRiskLevels": [],
        "userRiskLevels": [],
    })
}

/// Grant controls: `controls` joined by OR, Terms of use agreement ids.
pub fn grant(controls: &[&str], terms_of_use: &[&str]) -> Value {
    json!({
        "operator": "OR",
        "builtInControls": controls,
        "customAuthenticationFactors": [],
        "termsOfUse": terms_of_use,
    })
}

/// A single-platform restriction for Windows, as Intune stores it in
/// `deviceEnrollmentConfigurations`, assigned to `groups`.
pub fn windows_restriction(
    id: &str,
    name: &str,
    priority: i64,
    blocked: bool,
    personal_blocked: bool,
    groups: &[&str],
    now: DateTime<Utc>,
) -> Value {
    json!({
        "@odata.type": format!("#{PLATFORM_RESTRICTION_TYPE}"),
        "id": id,
        "displayName": name,
        "description": null,
        "priority": priority,
        "createdDateTime": now.to_rfc3339(),
        "lastModifiedDateTime": now.to_rfc3339(),
        "version": 1,
        "roleScopeTagIds": ["0"],
        "deviceEnrollmentConfigurationType": "singlePlatformRestriction",
        "platformType": "windows",
        "platformRestriction": {
            "platformBlocked": blocked,
            "personalDeviceEnrollmentBlocked": personal_blocked,
            "osMinimumVersion": null,
            "osMaximumVersion": null,
            "blockedManufacturers": [],
            "blockedSkus": [],
        },
        "assignments": groups.iter().map(|g| json!({
            "id": format!("{id}_{g}"),
            "source": "direct",
            "sourceId": id,
            "target": {
                "@odata.type": "#microsoft.graph.groupAssignmentTarget",
                "deviceAndAppManagementAssignmentFilterId": null,
                "deviceAndAppManagementAssignmentFilterType": "none",
                "groupId": g,
            },
        })).collect::<Vec<_>>(),
    })
}

fn open_restriction() -> Value {
    json!({
        "platformBlocked": false,
        "personalDeviceEnrollmentBlocked": false,
        "osMinimumVersion": null,
        "osMaximumVersion": null,
        "blockedManufacturers": [],
        "blockedSkus": [],
    })
}

pub(crate) fn seed(state: &mut SimState, seed: Seed) {
    let tenant = state.core.organization.id.clone();
    let now = Utc::now();
    // The default platform restriction of every tenant (the older combined type), everything
    // allowed; the default device limit is in sim/esp.rs.
    state.esp.others.push(json!({
        "@odata.type": format!("#{PLATFORM_RESTRICTIONS_TYPE}"),
        "id": format!("{tenant}_DefaultPlatformRestrictions"),
        "displayName": "All users",
        "description": "This is the default Device Type Restriction applied with the lowest priority to all users regardless of group membership.",
        "priority": 0,
        "createdDateTime": now.to_rfc3339(),
        "lastModifiedDateTime": now.to_rfc3339(),
        "version": 1,
        "roleScopeTagIds": ["0"],
        "deviceEnrollmentConfigurationType": "defaultPlatformRestrictions",
        "iosRestriction": open_restriction(),
        "windowsRestriction": open_restriction(),
        "windowsHomeSkuRestriction": open_restriction(),
        "windowsMobileRestriction": open_restriction(),
        "androidRestriction": open_restriction(),
        "androidForWorkRestriction": open_restriction(),
        "macRestriction": open_restriction(),
        "macOSRestriction": open_restriction(),
    }));
    let r = &mut state.readiness;
    r.skus = vec![premium()];
    // The admin of every seed holds the suite that carries Intune and Entra ID P1.
    let admin = state.core.interactive_user_id.clone();
    r.assign(&admin, SKU_BUSINESS_PREMIUM);
    if !seed.has_demo_data() {
        return;
    }
    r.skus.push(standard());
    let mut office_manager = None;
    let mut rowan = None;
    for u in &state.core.users {
        if u.user_type != "Member" || !u.account_enabled || u.id == admin {
            continue;
        }
        if u.user_principal_name.starts_with("lucia.ferrandez@") {
            office_manager = Some(u.id.clone());
            r.assign(&u.id, SKU_BUSINESS_STANDARD);
        } else {
            if u.user_principal_name.starts_with("rowan.achterberg@") {
                rowan = Some(u.id.clone());
            }
            r.assign(&u.id, SKU_BUSINESS_PREMIUM);
        }
    }
    // One technician signs in on every PC: 18 of the 20 devices the policy allows are his.
    if let Some(id) = rowan {
        r.owned_devices
            .insert(id, (1..=18).map(|n| format!("FAB-LT-{n:03}")).collect());
    }
    r.ca_policies = vec![
        ca(
            "mfa-register",
            "Device registration: MFA",
            "enabled",
            conditions(&[], &[], &[REGISTER_OR_JOIN], &["all"]),
            grant(&["mfa"], &[]),
        ),
        ca(
            "compliant-pilot",
            "Require a compliant device for Microsoft 365 (pilot)",
            "enabledForReportingButNotEnforced",
            conditions(&["All"], &[], &[], &["all"]),
            grant(&["compliantDevice"], &[]),
        ),
        ca(
            "block-legacy",
            "Block legacy authentication",
            "enabled",
            conditions(&["All"], &[], &[], &["exchangeActiveSync", "other"]),
            grant(&["block"], &[]),
        ),
        ca(
            "old-compliant",
            "Old: require a compliant device",
            "disabled",
            conditions(&["All"], &[], &[], &["all"]),
            grant(&["compliantDevice"], &[]),
        ),
    ];
    if office_manager.is_some() {
        let front_desk = fixed_guid("group:front-desk");
        state.esp.others.push(windows_restriction(
            &fixed_guid("restriction:front-desk"),
            "Front desk: no Windows enrollment",
            1,
            true,
            false,
            &[&front_desk],
            now,
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Routes

pub(crate) fn routes() -> Router<Shared> {
    let mut r = Router::new();
    for v in ["/v1.0", "/beta"] {
        r = r
            .route(
                &format!("{v}/users/{{id}}/licenseDetails"),
                get(license_details),
            )
            .route(
                &format!("{v}/users/{{id}}/ownedDevices"),
                get(owned_devices),
            )
            .route(&format!("{v}/subscribedSkus"), get(subscribed_skus))
            .route(
                &format!("{v}/identity/conditionalAccess/policies"),
                get(ca_policies),
            )
            .route(
                &format!("{v}/identity/conditionalAccess/policies/{{id}}"),
                get(ca_policy),
            )
            .route(&format!("{v}/organization/{{id}}/branding"), get(branding))
            .route(
                &format!("{v}/organization/{{id}}/branding/localizations"),
                get(branding_localizations),
            );
    }
    r
}

fn forbidden(scopes: &[&str]) -> Response {
    odata::error(
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        &format!(
            "Insufficient privileges to complete the operation. One of these permissions is needed: {}.",
            scopes.join(", ")
        ),
    )
}

fn allowed(user: &Option<Extension<CurrentUser>>, scopes: &[&str]) -> bool {
    match user {
        Some(Extension(u)) => scopes.iter().any(|s| u.has_scope(s)),
        None => true,
    }
}

const LICENCE_SCOPES: &[&str] = &[
    "LicenseAssignment.Read.All",
    "LicenseAssignment.ReadWrite.All",
    "User.Read.All",
    "Directory.Read.All",
    "Organization.Read.All",
];
const CA_SCOPES: &[&str] = &["Policy.Read.All", "Policy.ReadWrite.ConditionalAccess"];
const DEVICE_SCOPES: &[&str] = &["Device.Read.All", "Directory.Read.All", "User.Read.All"];

fn version(uri: &Uri) -> &'static str {
    if uri.path().starts_with("/beta") {
        "beta"
    } else {
        "v1.0"
    }
}

async fn license_details(
    State(shared): State<Shared>,
    user: Option<Extension<CurrentUser>>,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    if !allowed(&user, LICENCE_SCOPES) {
        return forbidden(LICENCE_SCOPES);
    }
    let items: Vec<Value> = {
        let state = shared.lock();
        let Some(u) = super::core::user_by_id_or_upn(&state.core, &id) else {
            return odata::not_found("user", &id);
        };
        state
            .readiness
            .licences
            .get(&u.id)
            .map(|ls| {
                ls.iter()
                    .filter_map(|l| {
                        let sku = state.readiness.skus.iter().find(|s| s.sku_id == l.sku_id)?;
                        Some(json!({
                            "id": format!("{}-{}", u.id, sku.sku_id),
                            "skuId": sku.sku_id,
                            "skuPartNumber": sku.part_number,
                            "servicePlans": sku.plans.iter().map(|(pid, name)| json!({
                                "servicePlanId": pid,
                                "servicePlanName": name,
                                "provisioningStatus": l.plan_status.get(pid).map(String::as_str).unwrap_or("Success"),
                                "appliesTo": "User",
                            })).collect::<Vec<_>>(),
                        }))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    shared.page(&uri, items, &format!("users('{id}')/licenseDetails"))
}

async fn subscribed_skus(
    State(shared): State<Shared>,
    user: Option<Extension<CurrentUser>>,
    uri: Uri,
) -> Response {
    if !allowed(&user, LICENCE_SCOPES) {
        return forbidden(LICENCE_SCOPES);
    }
    let items: Vec<Value> = {
        let state = shared.lock();
        let tenant = state.core.organization.id.clone();
        state
            .readiness
            .skus
            .iter()
            .map(|s| {
                json!({
                    "id": format!("{tenant}_{}", s.sku_id),
                    "accountId": tenant,
                    "accountName": state.core.organization.display_name,
                    "appliesTo": "User",
                    "capabilityStatus": "Enabled",
                    "consumedUnits": state.readiness.consumed(&s.sku_id),
                    "prepaidUnits": {"enabled": s.enabled, "lockedOut": 0, "suspended": 0, "warning": 0},
                    "servicePlans": s.plans.iter().map(|(pid, name)| json!({
                        "servicePlanId": pid,
                        "servicePlanName": name,
                        "provisioningStatus": "Success",
                        "appliesTo": "User",
                    })).collect::<Vec<_>>(),
                    "skuId": s.sku_id,
                    "skuPartNumber": s.part_number,
                    "subscriptionIds": [fixed_guid(&format!("subscription:{}", s.sku_id))],
                })
            })
            .collect()
    };
    shared.page(&uri, items, "subscribedSkus")
}

async fn owned_devices(
    State(shared): State<Shared>,
    user: Option<Extension<CurrentUser>>,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    if !allowed(&user, DEVICE_SCOPES) && !allowed(&user, &["User.ReadBasic.All"]) {
        return forbidden(DEVICE_SCOPES);
    }
    let items: Vec<Value> = {
        let state = shared.lock();
        let Some(u) = super::core::user_by_id_or_upn(&state.core, &id) else {
            return odata::not_found("user", &id);
        };
        state
            .readiness
            .owned_devices
            .get(&u.id)
            .map(|names| {
                names
                    .iter()
                    .map(|n| {
                        json!({
                            "@odata.type": "#microsoft.graph.device",
                            "id": fixed_guid(&format!("owned:{n}")),
                            "deviceId": fixed_guid(&format!("owned-deviceid:{n}")),
                            "displayName": n,
                            "operatingSystem": "Windows",
                            "trustType": "AzureAd",
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    shared.page(&uri, items, &format!("users('{id}')/ownedDevices"))
}

fn ca_json(p: &CaPolicy) -> Value {
    json!({
        "id": p.id,
        "displayName": p.display_name,
        "state": p.state,
        "createdDateTime": "2025-06-02T08:14:00Z",
        "modifiedDateTime": null,
        "templateId": null,
        "conditions": p.conditions,
        "grantControls": p.grant_controls,
        "sessionControls": null,
    })
}

async fn ca_policies(
    State(shared): State<Shared>,
    user: Option<Extension<CurrentUser>>,
    uri: Uri,
) -> Response {
    if !allowed(&user, CA_SCOPES) {
        return forbidden(CA_SCOPES);
    }
    let items: Vec<Value> = shared
        .lock()
        .readiness
        .ca_policies
        .iter()
        .map(ca_json)
        .collect();
    shared.page(&uri, items, "identity/conditionalAccess/policies")
}

async fn ca_policy(
    State(shared): State<Shared>,
    user: Option<Extension<CurrentUser>>,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    if !allowed(&user, CA_SCOPES) {
        return forbidden(CA_SCOPES);
    }
    let found = shared
        .lock()
        .readiness
        .ca_policies
        .iter()
        .find(|p| p.id == id)
        .map(ca_json);
    match found {
        Some(v) => odata::entity(&uri, v),
        None => odata::not_found("conditionalAccessPolicy", &id),
    }
}

fn branding_json(b: &Branding, id: &str) -> Value {
    json!({
        "id": id,
        "backgroundColor": b.background_color,
        "backgroundImageRelativeUrl": null,
        "bannerLogoRelativeUrl": if id == "0" { Some("c1c6b6c8-4e4a/logintenantbranding/0/bannerlogo") } else { None },
        "cdnList": ["aadcdn.msftauthimages.net"],
        "signInPageText": b.sign_in_page_text,
        "squareLogoRelativeUrl": null,
        "usernameHintText": null,
    })
}

/// 404 when the tenant has no default branding, as Graph documents it.
async fn branding(State(shared): State<Shared>, Path(id): Path<String>, uri: Uri) -> Response {
    let state = shared.lock();
    if !state.core.organization.id.eq_ignore_ascii_case(&id) {
        return odata::not_found("organization", &id);
    }
    match &state.readiness.branding {
        Some(b) => {
            let mut v = branding_json(b, "0");
            if let Some(m) = v.as_object_mut() {
                m.insert(
                    "@odata.context".into(),
                    json!(format!(
                        "{}/{}/$metadata#organization('{id}')/branding/$entity",
                        shared.base_url,
                        version(&uri)
                    )),
                );
            }
            Json(v).into_response()
        }
        None => odata::error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            "Resource 'branding' does not exist or one of its queried reference-property objects are not present.",
        ),
    }
}

async fn branding_localizations(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    let items: Vec<Value> = {
        let state = shared.lock();
        if !state.core.organization.id.eq_ignore_ascii_case(&id) {
            return odata::not_found("organization", &id);
        }
        match &state.readiness.branding {
            Some(b) => std::iter::once("0".to_string())
                .chain(b.locales.iter().cloned())
                .map(|l| branding_json(b, &l))
                .collect(),
            None => Vec::new(),
        }
    };
    shared.page(
        &uri,
        items,
        &format!("organization('{id}')/branding/localizations"),
    )
}
