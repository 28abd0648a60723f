//! Devices going through the out-of-box experience, and the deployment report Intune keeps of
//! it (reference §11: `GET /beta/deviceManagement/autopilotEvents`).
//!
//! Paths: `GET /beta/deviceManagement/autopilotEvents` (paged, `$filter` on simple properties
//! such as `deviceSerialNumber`, `$expand=policyStatusDetails`), `GET …/autopilotEvents/{id}`
//! and `GET …/autopilotEvents/{id}/policyStatusDetails`. Property names and enum members are
//! those of Microsoft's beta documentation of `deviceManagementAutopilotEvent` and
//! `deviceManagementAutopilotPolicyStatusDetail` (the schema extract in `shared/reference` does
//! not carry these types); `policyStatusDetails` is a relationship, so it is only in the body
//! when expanded.
//!
//! Nothing switches a simulated PC on by itself: [`switch_on`] (the demo's "Switch on N devices"
//! and `POST /_sim/oobe/switch-on`, which is not a Graph path) starts devices through device
//! setup and account setup over service time ([`super::Speed`]). Every device succeeds except
//! one per tenant, the first time several are switched on together: it fails in account setup
//! on a Win32 or MSI app its Enrollment Status Page waits for. A device that finishes (either
//! way: MDM enrollment comes before the ESP) is enrolled: its Autopilot identity says
//! `enrolled`, has a `managedDeviceId`, and its Entra device object is joined and managed.
//!
//! Permissions: reading the events needs `DeviceManagementManagedDevices.Read.All` (or the
//! ReadWrite, or `DeviceManagementConfiguration.Read.All`/`ReadWrite.All`, as the list page of
//! the documentation names them).

#![allow(clippy::result_large_err)]

use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::odata;
use super::{Seed, Shared, SimConfig, SimState};

/// The permission this area needs beyond the others.
pub const CONSENTED: &[&str] = &["DeviceManagementManagedDevices.Read.All"];

const BASE: &str = "/beta/deviceManagement/autopilotEvents";
/// The sim's own control route (not Graph): switches devices on.
pub const SWITCH_ON_PATH: &str = "/_sim/oobe/switch-on";

/// Service time of each phase, as a small office sees it with a few apps.
const ENROLLMENT: Duration = Duration::from_secs(90);
const DEVICE_SETUP: Duration = Duration::from_secs(7 * 60);
const ACCOUNT_SETUP: Duration = Duration::from_secs(11 * 60);
/// When the failing app gives up, into account setup.
const FAILS_AFTER: Duration = Duration::from_secs(6 * 60);
/// Devices switched on together start this far apart (people do not press all buttons at once).
const STAGGER: Duration = Duration::from_secs(45);
/// 0x87D1041C: the app installed but was not detected afterwards (a common Win32 failure).
const APP_ERROR: i64 = -2016345060;

/// What the person asked to switch on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SwitchOn {
    /// These serial numbers; empty: the next `count` devices that have a profile.
    pub serials: Vec<String>,
    pub count: usize,
    /// Make this serial fail; `None`: the tenant's one planned failure, if not played yet.
    pub fail: Option<String>,
}

/// One device's way through OOBE.
#[derive(Debug, Clone)]
pub struct Play {
    pub event_id: String,
    pub autopilot_id: String,
    pub serial: String,
    pub started: Instant,
    /// Service time after `started` this device was switched on (devices of one batch).
    pub stagger: Duration,
    pub started_utc: DateTime<Utc>,
    pub user_principal_name: String,
    pub profile_name: String,
    pub esp_id: String,
    pub esp_name: String,
    /// `(app id, name, type)` the ESP waits for.
    pub apps: Vec<(String, String, String)>,
    /// The device fails in account setup.
    pub fails: bool,
    /// The app (id) that fails it; `None` with `fails`: the ESP tracks no app, a policy fails.
    pub failing_app: Option<String>,
    pub managed_device_id: String,
    pub managed_device_name: String,
    /// Set once the device has finished and its objects were updated.
    pub finished: bool,
}

#[derive(Debug, Default)]
pub struct OobeState {
    pub plays: Vec<Play>,
    /// The one failure of the demo was played.
    pub failure_played: bool,
}

pub(crate) fn seed(_state: &mut SimState, _seed: Seed) {
    // No device has been switched on in a fresh tenant: the report is empty.
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route(BASE, get(list_events))
        .route(&format!("{BASE}/{{id}}"), get(get_event))
        .route(
            &format!("{BASE}/{{id}}/policyStatusDetails"),
            get(list_details),
        )
        .route(SWITCH_ON_PATH, post(switch_on_route))
}

/// Service time since the device was switched on.
fn service_elapsed(p: &Play, config: &SimConfig) -> Duration {
    let real = p.started.elapsed();
    if config.speed.scale <= 0.0 {
        return Duration::MAX;
    }
    Duration::from_secs_f64((real.as_secs_f64() / config.speed.scale).min(1e9))
}

/// Switches devices on; returns their serial numbers (empty: none could be).
pub fn switch_on(state: &mut SimState, req: &SwitchOn) -> Vec<String> {
    let playing: Vec<String> = state
        .oobe
        .plays
        .iter()
        .map(|p| p.serial.to_ascii_uppercase())
        .collect();
    let chosen: Vec<usize> = if req.serials.is_empty() {
        let mut ids: Vec<usize> = state
            .autopilot
            .devices
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                d.assigned_profile_id.is_some()
                    && d.assignment_status.starts_with("assigned")
                    && d.enrollment_state != "enrolled"
                    && !playing.contains(&d.serial_number.to_ascii_uppercase())
            })
            .map(|(i, _)| i)
            .collect();
        ids.sort_by(|a, b| {
            state.autopilot.devices[*a]
                .serial_number
                .cmp(&state.autopilot.devices[*b].serial_number)
        });
        ids.truncate(req.count);
        ids
    } else {
        req.serials
            .iter()
            .filter_map(|s| {
                state
                    .autopilot
                    .devices
                    .iter()
                    .position(|d| d.serial_number.eq_ignore_ascii_case(s.trim()))
            })
            .collect()
    };
    // The demo's one failure: the last of a batch of several, once per tenant.
    let fail_serial = req.fail.clone().or_else(|| {
        (!state.oobe.failure_played && chosen.len() >= 2)
            .then_some(())
            .and_then(|_| chosen.last())
            .map(|i| state.autopilot.devices[*i].serial_number.clone())
    });
    let (esp_id, esp_name, apps) = esp_for_devices(state);
    let failing_app = apps
        .iter()
        .find(|(_, _, ty)| ty.ends_with("win32LobApp") || ty.ends_with("windowsMobileMSI"))
        .or(apps.first())
        .map(|a| a.0.clone());
    let user = deploying_user(state);
    let now = Instant::now();
    let mut out = Vec::new();
    for i in chosen {
        let d = &state.autopilot.devices[i];
        let profile_name = d
            .assigned_profile_id
            .as_ref()
            .and_then(|id| state.profiles.profiles.iter().find(|p| &p.id == id))
            .and_then(|p| p.display_name.clone())
            .unwrap_or_default();
        let fails = fail_serial
            .as_deref()
            .is_some_and(|f| f.eq_ignore_ascii_case(&d.serial_number));
        if fails {
            state.oobe.failure_played = true;
        }
        // A device enrolled before (reset, re-deployed) keeps its Intune record.
        let known = state
            .removal
            .managed_by_serial(&d.serial_number)
            .map(|m| (m.id.clone(), m.device_name.clone()));
        let (managed_id, name) = match known {
            Some(k) => k,
            None => (uuid::Uuid::new_v4().to_string(), String::new()),
        };
        let name = if !name.is_empty() {
            name
        } else if d.display_name.is_empty() {
            format!(
                "DESKTOP-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..7]
            )
            .to_uppercase()
        } else {
            d.display_name.clone()
        };
        let play = Play {
            event_id: uuid::Uuid::new_v4().to_string(),
            autopilot_id: d.id.clone(),
            serial: d.serial_number.clone(),
            started: now,
            stagger: Duration::ZERO,
            started_utc: Utc::now(),
            user_principal_name: if d.user_principal_name.is_empty() {
                user.clone()
            } else {
                d.user_principal_name.clone()
            },
            profile_name,
            esp_id: esp_id.clone(),
            esp_name: esp_name.clone(),
            apps: apps.clone(),
            fails,
            failing_app: if fails { failing_app.clone() } else { None },
            managed_device_id: managed_id,
            managed_device_name: name,
            finished: false,
        };
        out.push(play.serial.clone());
        state.oobe.plays.push(play);
    }
    // Staggered starts: later devices were switched on a little later (in service time, so
    // that tests and demos keep the order at any speed).
    let k = out.len();
    for (n, p) in state.oobe.plays.iter_mut().rev().take(k).rev().enumerate() {
        p.stagger = STAGGER.mul_f64(n as f64);
    }
    out
}

/// The ESP a deploying user's device gets: the highest-priority one (lowest number above the
/// default) that tracks apps, else the default.
fn esp_for_devices(state: &SimState) -> (String, String, Vec<(String, String, String)>) {
    let mut esps: Vec<_> = state.esp.configs.iter().collect();
    esps.sort_by_key(|c| if c.is_default { i64::MAX } else { c.priority });
    let Some(esp) = esps.first() else {
        return (String::new(), String::new(), Vec::new());
    };
    let apps = esp
        .setting("selectedMobileAppIds")
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|v| v.as_str())
                .filter_map(|id| state.esp.apps.iter().find(|a| a.id == id))
                .map(|a| (a.id.clone(), a.display_name.clone(), a.odata_type.clone()))
                .collect()
        })
        .unwrap_or_default();
    (esp.id.clone(), esp.display_name.clone(), apps)
}

/// Who signs in at the PC: the first enabled member user who is not the admin.
fn deploying_user(state: &SimState) -> String {
    let admin = &state.core.interactive_user_id;
    state
        .core
        .users
        .iter()
        .find(|u| &u.id != admin && u.account_enabled && u.user_type == "Member")
        .or(state.core.users.first())
        .map(|u| u.user_principal_name.clone())
        .unwrap_or_default()
}

/// Finishes the devices whose OOBE is over: enrolled, managed, joined.
pub(crate) fn advance(state: &mut SimState, config: &SimConfig) {
    let done: Vec<usize> = state
        .oobe
        .plays
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.finished && matches!(phase(p, config), Phase::Done { .. }))
        .map(|(i, _)| i)
        .collect();
    for i in done {
        state.oobe.plays[i].finished = true;
        let p = state.oobe.plays[i].clone();
        // Intune's record first (the removal area owns managed devices), with the id and
        // name the events already carry; then the identity and Entra object as OOBE leaves them.
        super::removal::enrol_device_as(
            state,
            &p.serial,
            Some(&p.user_principal_name)
                .filter(|u| !u.is_empty())
                .map(|u| u.as_str()),
            Some((p.managed_device_id.clone(), p.managed_device_name.clone())),
        );
        enroll_autopilot_device(state, &p);
    }
}

/// Where a device is in OOBE.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Not switched on yet (a staggered start).
    Waiting,
    Enrolling,
    DeviceSetup {
        into: Duration,
    },
    AccountSetup {
        into: Duration,
    },
    Done {
        failed: bool,
    },
}

fn phase(p: &Play, config: &SimConfig) -> Phase {
    let t = service_elapsed(p, config);
    let Some(t) = t.checked_sub(p.stagger) else {
        return Phase::Waiting;
    };
    if t < ENROLLMENT {
        return Phase::Enrolling;
    }
    let t = t - ENROLLMENT;
    if t < DEVICE_SETUP {
        return Phase::DeviceSetup { into: t };
    }
    let t = t - DEVICE_SETUP;
    let limit = if p.fails { FAILS_AFTER } else { ACCOUNT_SETUP };
    if t < limit {
        return Phase::AccountSetup { into: t };
    }
    Phase::Done { failed: p.fails }
}

/// The Autopilot identity after OOBE: enrolled, with its managed device, and its Entra object
/// joined. Returns the Entra `deviceId`.
fn enroll_autopilot_device(state: &mut SimState, p: &Play) -> String {
    let Some(i) = state
        .autopilot
        .devices
        .iter()
        .position(|d| d.id == p.autopilot_id)
    else {
        return String::new();
    };
    let mut entra = state.autopilot.devices[i].azure_ad_device_id.clone();
    if entra.is_empty() {
        let (serial, tag) = {
            let d = &state.autopilot.devices[i];
            (d.serial_number.clone(), d.group_tag.clone())
        };
        entra = super::directory::register_autopilot_device_object(
            state,
            &serial,
            &p.autopilot_id,
            Some(&tag),
            None,
        );
    }
    let d = &mut state.autopilot.devices[i];
    d.enrollment_state = "enrolled".into();
    d.managed_device_id = p.managed_device_id.clone();
    d.azure_ad_device_id = entra.clone();
    d.last_contacted = Some(Utc::now());
    if let Some(dev) = state
        .directory
        .devices
        .iter_mut()
        .find(|x| x.device_id.eq_ignore_ascii_case(&entra))
    {
        dev.display_name = p.managed_device_name.clone();
        dev.is_managed = Some(true);
        dev.trust_type = Some("AzureAd".into());
        dev.operating_system_version = Some(OS_VERSION.into());
        dev.enrollment_profile_name = Some(p.profile_name.clone()).filter(|n| !n.is_empty());
        dev.approximate_last_sign_in_date_time = Some(Utc::now());
    }
    entra
}

const OS_VERSION: &str = "10.0.22631.4460";
const WIFI_POLICY: &str = "Office Wi-Fi";
/// 0x87D1FDE8: remediation of a configuration setting failed.
const POLICY_ERROR: i64 = -2016281112;

/// `PT7M30S`-style duration, as Graph writes `Edm.Duration`.
pub fn iso_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::from("PT");
    if h > 0 {
        out.push_str(&format!("{h}H"));
    }
    if m > 0 {
        out.push_str(&format!("{m}M"));
    }
    let frac = d.subsec_millis();
    if s > 0 || frac > 0 || out == "PT" {
        if frac > 0 {
            out.push_str(&format!("{s}.{frac:03}S"));
        } else {
            out.push_str(&format!("{s}S"));
        }
    }
    out
}

fn render_event(p: &Play, config: &SimConfig, expand: bool) -> Option<Value> {
    let ph = phase(p, config);
    if ph == Phase::Waiting {
        return None;
    }
    // Wall-clock times: the start as it really happened, later moments in service time after it.
    let start_utc = p.started_utc
        + chrono::Duration::from_std(config.speed.scaled(p.stagger)).unwrap_or_default();
    let since = |d: Duration| start_utc + chrono::Duration::from_std(d).unwrap_or_default();
    let (deployment, device_setup, account_setup, device_secs, account_secs, end) = match ph {
        Phase::Waiting | Phase::Enrolling => (
            "inProgress",
            "notAttempted",
            "notAttempted",
            Duration::ZERO,
            Duration::ZERO,
            None,
        ),
        Phase::DeviceSetup { into } => (
            "inProgress",
            "inProgress",
            "notAttempted",
            into,
            Duration::ZERO,
            None,
        ),
        Phase::AccountSetup { into } => (
            "inProgress",
            "success",
            "inProgress",
            DEVICE_SETUP,
            into,
            None,
        ),
        Phase::Done { failed } => {
            let account = if failed { FAILS_AFTER } else { ACCOUNT_SETUP };
            (
                if failed { "failure" } else { "success" },
                "success",
                if failed { "failure" } else { "success" },
                DEVICE_SETUP,
                account,
                Some(ENROLLMENT + DEVICE_SETUP + account),
            )
        }
    };
    let total = ENROLLMENT + device_secs + account_secs;
    let failing = p
        .failing_app
        .as_ref()
        .filter(|_| matches!(ph, Phase::Done { failed: true }))
        .and_then(|id| p.apps.iter().find(|a| &a.0 == id));
    let mut v = json!({
        "@odata.type": "#microsoft.graph.deviceManagementAutopilotEvent",
        "id": p.event_id,
        "deviceId": p.managed_device_id,
        "eventDateTime": since(end.unwrap_or(total)).to_rfc3339(),
        "deviceRegisteredDateTime": since(ENROLLMENT).to_rfc3339(),
        "enrollmentStartDateTime": start_utc.to_rfc3339(),
        "enrollmentType": "azureADJoinedWithAutopilotProfile",
        "deviceSerialNumber": p.serial,
        "managedDeviceName": p.managed_device_name,
        "userPrincipalName": p.user_principal_name,
        "windowsAutopilotDeploymentProfileDisplayName": p.profile_name,
        "enrollmentState": "enrolled",
        "windows10EnrollmentCompletionPageConfigurationDisplayName": p.esp_name,
        "windows10EnrollmentCompletionPageConfigurationId": p.esp_id,
        "deploymentState": deployment,
        "deviceSetupStatus": device_setup,
        "accountSetupStatus": account_setup,
        "osVersion": OS_VERSION,
        "deploymentDuration": iso_duration(total),
        "deploymentTotalDuration": iso_duration(total + Duration::from_secs(if end.is_some() { 40 } else { 0 })),
        "devicePreparationDuration": iso_duration(ENROLLMENT),
        "deviceSetupDuration": iso_duration(device_secs),
        "accountSetupDuration": iso_duration(account_secs),
        "deploymentStartDateTime": start_utc.to_rfc3339(),
        "deploymentEndDateTime": end.map(|e| since(e).to_rfc3339()).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        "targetedAppCount": p.apps.len(),
        "targetedPolicyCount": 2,
        "enrollmentFailureDetails": match (ph, failing) {
            (Phase::Done { failed: true }, Some(a)) => Some(format!("The app \"{}\" failed to install (0x87D1041C): the Enrollment Status Page stopped at account setup.", a.1)),
            (Phase::Done { failed: true }, None) => Some(format!("The policy \"{WIFI_POLICY}\" failed to apply: the Enrollment Status Page stopped at account setup.")),
            _ => None,
        },
    });
    if expand && let Some(o) = v.as_object_mut() {
        o.insert("policyStatusDetails".into(), render_details(p, ph));
    }
    Some(v)
}

fn render_details(p: &Play, ph: Phase) -> Value {
    let reached_account = matches!(ph, Phase::AccountSetup { .. } | Phase::Done { .. });
    // Without an app to fail on, the device fails on its policy.
    let policy_failed = p.fails && p.failing_app.is_none() && matches!(ph, Phase::Done { .. });
    let mut out = vec![json!({
        "id": format!("{}_policy_wifi", p.event_id),
        "displayName": WIFI_POLICY,
        "policyType": "configurationPolicy",
        "complianceStatus": if policy_failed { "error" } else if matches!(ph, Phase::Enrolling) { "unknown" } else { "compliant" },
        "trackedOnEnrollmentStatus": true,
        "lastReportedDateTime": p.started_utc.to_rfc3339(),
        "errorCode": if policy_failed { POLICY_ERROR } else { 0 },
    })];
    for (id, name, _) in &p.apps {
        let failed = p.failing_app.as_deref() == Some(id) && matches!(ph, Phase::Done { .. });
        let status = if failed {
            "error"
        } else if matches!(ph, Phase::Done { failed: false })
            || (reached_account && p.failing_app.as_deref() != Some(id))
        {
            // Apps install during device setup; the failing one is still trying.
            "installed"
        } else {
            "notInstalled"
        };
        out.push(json!({
            "id": format!("{}_{id}", p.event_id),
            "displayName": name,
            "policyType": "application",
            "complianceStatus": status,
            "trackedOnEnrollmentStatus": true,
            "lastReportedDateTime": Utc::now().to_rfc3339(),
            "errorCode": if failed { APP_ERROR } else { 0 },
        }));
    }
    Value::Array(out)
}

fn check_scope(state: &SimState, headers: &HeaderMap) -> Result<(), Response> {
    super::core::require_one_of(
        state,
        headers,
        &[
            "DeviceManagementManagedDevices.Read.All",
            "DeviceManagementManagedDevices.ReadWrite.All",
            "DeviceManagementConfiguration.Read.All",
            "DeviceManagementConfiguration.ReadWrite.All",
        ],
    )
}

fn expands_details(uri: &Uri) -> bool {
    odata::query(uri)
        .get("$expand")
        .is_some_and(|e| e.split(',').any(|x| x.trim() == "policyStatusDetails"))
}

async fn list_events(State(shared): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let items: Vec<Value> = {
        let state = shared.lock();
        if let Err(r) = check_scope(&state, &headers) {
            return r;
        }
        let expand = expands_details(&uri);
        state
            .oobe
            .plays
            .iter()
            .filter_map(|p| render_event(p, &shared.config, expand))
            .collect()
    };
    let items = match odata::apply_filter(&uri, items) {
        Ok(i) => i,
        Err(r) => return r,
    };
    shared.page(&uri, items, "deviceManagement/autopilotEvents")
}

async fn get_event(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    let state = shared.lock();
    if let Err(r) = check_scope(&state, &headers) {
        return r;
    }
    let found = state
        .oobe
        .plays
        .iter()
        .filter(|p| p.event_id == id)
        .find_map(|p| render_event(p, &shared.config, expands_details(&uri)));
    match found {
        Some(v) => odata::entity(&uri, v),
        None => odata::not_found("deviceManagementAutopilotEvent", &id),
    }
}

async fn list_details(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    let items = {
        let state = shared.lock();
        if let Err(r) = check_scope(&state, &headers) {
            return r;
        }
        let Some(p) = state.oobe.plays.iter().find(|p| p.event_id == id) else {
            return odata::not_found("deviceManagementAutopilotEvent", &id);
        };
        let ph = phase(p, &shared.config);
        if ph == Phase::Waiting {
            return odata::not_found("deviceManagementAutopilotEvent", &id);
        }
        match render_details(p, ph) {
            Value::Array(a) => a,
            _ => Vec::new(),
        }
    };
    shared.page(
        &uri,
        items,
        &format!("deviceManagement/autopilotEvents('{id}')/policyStatusDetails"),
    )
}

/// `POST /_sim/oobe/switch-on` with `{"count": 3}` or `{"serials": [...], "fail": "SERIAL"}`:
/// answers `{"switchedOn": [serials]}`, or 409 when no device has a profile yet.
async fn switch_on_route(State(shared): State<Shared>, body: axum::body::Bytes) -> Response {
    let v: Value = if body.is_empty() {
        json!({})
    } else {
        match odata::json_body(&body) {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
    let req = SwitchOn {
        serials: v["serials"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        count: v["count"].as_u64().unwrap_or(3) as usize,
        fail: v["fail"].as_str().map(str::to_string),
    };
    let on = {
        let mut state = shared.lock();
        switch_on(&mut state, &req)
    };
    if on.is_empty() {
        return (
            StatusCode::CONFLICT,
            Json(json!({"error": "No device to switch on: no Autopilot device has a profile assigned that has not been through OOBE yet."})),
        )
            .into_response();
    }
    Json(json!({ "switchedOn": on })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_iso_8601() {
        assert_eq!(iso_duration(Duration::ZERO), "PT0S");
        assert_eq!(iso_duration(Duration::from_secs(90)), "PT1M30S");
        assert_eq!(iso_duration(Duration::from_secs(3600 + 120)), "PT1H2M");
        assert_eq!(iso_duration(Duration::from_millis(1500)), "PT1.500S");
    }
}
