//! Following devices through OOBE: the simulated tenant's deployment report against Microsoft's
//! documented shape, and the deployment step module over real HTTP (paging, the latest
//! deployment per device, the failing app named, the device enrolled afterwards).

use crate::support;

use std::time::{Duration, Instant};

use autopilot_wizard::board::DeploymentPhase;
use autopilot_wizard::sim::{self, SimConfig, SimHandle, Speed, oobe::SwitchOn};
use autopilot_wizard::steps::deployment;
use autopilot_wizard::steps::validate::Verdict;
use serde_json::Value;

// The documented shape (Graph beta, "deviceManagementAutopilotEvent resource type" and
// "deviceManagementAutopilotPolicyStatusDetail resource type" on learn.microsoft.com). The
// schema extract in shared/reference has neither type, so the tables are transcribed here.
const EVENT_PROPS: &[&str] = &[
    "@odata.type",
    "id",
    "deviceId",
    "userId",
    "eventDateTime",
    "deviceRegisteredDateTime",
    "enrollmentStartDateTime",
    "enrollmentType",
    "deviceSerialNumber",
    "managedDeviceName",
    "userPrincipalName",
    "windowsAutopilotDeploymentProfileDisplayName",
    "enrollmentState",
    "windows10EnrollmentCompletionPageConfigurationDisplayName",
    "windows10EnrollmentCompletionPageConfigurationId",
    "deploymentState",
    "deviceSetupStatus",
    "accountSetupStatus",
    "osVersion",
    "deploymentDuration",
    "deploymentTotalDuration",
    "devicePreparationDuration",
    "deviceSetupDuration",
    "accountSetupDuration",
    "deploymentStartDateTime",
    "deploymentEndDateTime",
    "targetedAppCount",
    "targetedPolicyCount",
    "enrollmentFailureDetails",
    "policyStatusDetails",
];
const DURATIONS: &[&str] = &[
    "deploymentDuration",
    "deploymentTotalDuration",
    "devicePreparationDuration",
    "deviceSetupDuration",
    "accountSetupDuration",
];
const DATES: &[&str] = &[
    "eventDateTime",
    "deviceRegisteredDateTime",
    "enrollmentStartDateTime",
    "deploymentStartDateTime",
    "deploymentEndDateTime",
];
/// `windowsAutopilotDeploymentState`.
const DEPLOYMENT_STATES: &[&str] = &[
    "unknown",
    "success",
    "inProgress",
    "failure",
    "successWithTimeout",
    "notAttempted",
    "disabled",
    "successOnRetry",
];
/// `windowsAutopilotEnrollmentType`.
const ENROLLMENT_TYPES: &[&str] = &[
    "unknown",
    "azureADJoinedWithAutopilotProfile",
    "offlineDomainJoined",
    "azureADJoinedUsingDeviceAuthWithAutopilotProfile",
    "azureADJoinedUsingDeviceAuthWithoutAutopilotProfile",
    "azureADJoinedWithOfflineAutopilotProfile",
    "azureADJoinedWithWhiteGlove",
    "offlineDomainJoinedWithWhiteGlove",
    "offlineDomainJoinedWithOfflineAutopilotProfile",
];
/// `enrollmentState`.
const ENROLLMENT_STATES: &[&str] = &[
    "unknown",
    "enrolled",
    "pendingReset",
    "failed",
    "notContacted",
    "blocked",
];
const DETAIL_PROPS: &[&str] = &[
    "id",
    "displayName",
    "policyType",
    "complianceStatus",
    "trackedOnEnrollmentStatus",
    "lastReportedDateTime",
    "errorCode",
];
/// `deviceManagementAutopilotPolicyType`.
const POLICY_TYPES: &[&str] = &["unknown", "application", "appModel", "configurationPolicy"];
/// `deviceManagementAutopilotPolicyComplianceStatus`.
const COMPLIANCE: &[&str] = &[
    "unknown",
    "compliant",
    "installed",
    "notCompliant",
    "notInstalled",
    "error",
];

const SERIALS: [&str; 3] = ["DEMO-HQ-0001", "DEMO-HQ-0002", "DEMO-LAB-0001"];

/// Service time runs 600 times faster: a whole OOBE (about 20 service minutes) takes 2 s.
fn config() -> SimConfig {
    SimConfig {
        speed: Speed { scale: 1.0 / 600.0 },
        page_size: 2,
        ..SimConfig::test()
    }
}

fn switch_on_three(sim: &SimHandle) {
    let on = sim.switch_on(&SwitchOn {
        serials: SERIALS.iter().map(|s| s.to_string()).collect(),
        count: 0,
        fail: None,
    });
    assert_eq!(on, SERIALS);
}

async fn get(sim: &SimHandle, token: &str, path_and_query: &str) -> (u16, Value) {
    let resp = support::raw_http()
        .get(format!("{}{path_and_query}", sim.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn all_events(sim: &SimHandle, token: &str, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let (status, mut page) = get(
        sim,
        token,
        &format!("/beta/deviceManagement/autopilotEvents{query}"),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    loop {
        out.extend(page["value"].as_array().cloned().unwrap_or_default());
        let Some(next) = page["@odata.nextLink"].as_str().map(str::to_string) else {
            break;
        };
        let path = next.trim_start_matches(&sim.url()).to_string();
        page = get(sim, token, &path).await.1;
    }
    out
}

fn check_event(e: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(o) = e.as_object() else {
        return vec!["not an object".into()];
    };
    for k in o.keys() {
        if !EVENT_PROPS.contains(&k.as_str()) {
            problems.push(format!("undocumented property {k}"));
        }
    }
    for k in ["deploymentState", "deviceSetupStatus", "accountSetupStatus"] {
        if !DEPLOYMENT_STATES.contains(&e[k].as_str().unwrap_or("")) {
            problems.push(format!("{k}: {}", e[k]));
        }
    }
    if !ENROLLMENT_TYPES.contains(&e["enrollmentType"].as_str().unwrap_or("")) {
        problems.push(format!("enrollmentType: {}", e["enrollmentType"]));
    }
    if !ENROLLMENT_STATES.contains(&e["enrollmentState"].as_str().unwrap_or("")) {
        problems.push(format!("enrollmentState: {}", e["enrollmentState"]));
    }
    for k in DURATIONS {
        if deployment::parse_iso_duration(e[k].as_str().unwrap_or("")).is_none() {
            problems.push(format!("{k} is not an ISO 8601 duration: {}", e[k]));
        }
    }
    for k in DATES {
        if chrono::DateTime::parse_from_rfc3339(e[k].as_str().unwrap_or("")).is_err() {
            problems.push(format!("{k} is not a date-time: {}", e[k]));
        }
    }
    for k in ["targetedAppCount", "targetedPolicyCount"] {
        if !e[k].is_i64() {
            problems.push(format!("{k} is not an Int32"));
        }
    }
    if let Some(details) = e.get("policyStatusDetails") {
        for d in details.as_array().into_iter().flatten() {
            problems.extend(check_detail(d));
        }
    }
    problems
}

fn check_detail(d: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for k in d.as_object().into_iter().flat_map(|o| o.keys()) {
        if !DETAIL_PROPS.contains(&k.as_str()) {
            problems.push(format!("undocumented detail property {k}"));
        }
    }
    if !POLICY_TYPES.contains(&d["policyType"].as_str().unwrap_or("")) {
        problems.push(format!("policyType: {}", d["policyType"]));
    }
    if !COMPLIANCE.contains(&d["complianceStatus"].as_str().unwrap_or("")) {
        problems.push(format!("complianceStatus: {}", d["complianceStatus"]));
    }
    if !d["errorCode"].is_i64() || !d["trackedOnEnrollmentStatus"].is_boolean() {
        problems.push(format!("errorCode/trackedOnEnrollmentStatus types: {d}"));
    }
    problems
}

async fn wait_until_finished(sim: &SimHandle, token: &str) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let events = all_events(sim, token, "").await;
        if events.len() == SERIALS.len()
            && events.iter().all(|e| e["deploymentState"] != "inProgress")
        {
            return events;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still deploying: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_simulated_report_has_the_documented_shape_from_switch_on_to_the_end() {
    let sim = sim::spawn(config()).await.unwrap();
    let token = sim.issue_token(&sim.admin().user_principal_name);
    assert!(all_events(&sim, &token, "").await.is_empty());
    switch_on_three(&sim);
    // Right after switch-on: in progress, every state a documented member.
    let early = all_events(&sim, &token, "?$expand=policyStatusDetails").await;
    assert!(!early.is_empty());
    for e in &early {
        assert_eq!(e["deploymentState"], "inProgress", "{e}");
        assert_eq!(check_event(e), Vec::<String>::new(), "{e}");
    }
    let events = wait_until_finished(&sim, &token).await;
    for e in &events {
        assert_eq!(check_event(e), Vec::<String>::new(), "{e}");
        // A relationship: only with $expand.
        assert!(e.get("policyStatusDetails").is_none());
    }
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["deploymentState"] == "failure")
        .collect();
    assert_eq!(failed.len(), 1, "one failure: {events:?}");
    let f = failed[0];
    assert_eq!(f["deviceSerialNumber"], "DEMO-LAB-0001");
    assert_eq!(f["accountSetupStatus"], "failure");
    assert_eq!(
        f["windows10EnrollmentCompletionPageConfigurationDisplayName"],
        "Staff apps at first sign-in"
    );
    let (status, details) = get(
        &sim,
        &token,
        &format!(
            "/beta/deviceManagement/autopilotEvents/{}/policyStatusDetails",
            f["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(status, 200);
    let details = details["value"].as_array().cloned().unwrap_or_default();
    for d in &details {
        assert_eq!(check_detail(d), Vec::<String>::new());
    }
    let errors: Vec<&Value> = details
        .iter()
        .filter(|d| d["complianceStatus"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{details:?}");
    assert_eq!(errors[0]["displayName"], "Contoso Timesheets");
    assert_eq!(errors[0]["policyType"], "application");
    assert_ne!(errors[0]["errorCode"], 0);

    // $filter on the serial number, as the portal's device search does.
    let one = all_events(
        &sim,
        &token,
        "?$filter=deviceSerialNumber%20eq%20%27demo-hq-0002%27",
    )
    .await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["deviceSerialNumber"], "DEMO-HQ-0002");

    // Without a permission that covers the report: Graph's 403.
    let weak = sim.issue_token_with(
        &sim.admin().user_principal_name,
        &["DeviceManagementServiceConfig.Read.All"],
        Duration::from_secs(600),
    );
    let (status, body) = get(&sim, &weak, "/beta/deviceManagement/autopilotEvents").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "Forbidden");

    // OOBE left every device enrolled, with its managed device and a joined Entra device.
    sim.with_state(|s| {
        for serial in SERIALS {
            let d = s.autopilot.device_by_serial(serial).unwrap();
            assert_eq!(d.enrollment_state, "enrolled", "{serial}");
            assert!(!d.managed_device_id.is_empty());
            let entra = s
                .directory
                .devices
                .iter()
                .find(|x| x.device_id == d.azure_ad_device_id)
                .expect("an Entra device");
            assert_eq!(entra.is_managed, Some(true));
            assert!(
                s.removal
                    .managed
                    .iter()
                    .any(|m| m.id == d.managed_device_id && m.serial_number == serial),
                "Intune's record is the removal area's, with the id the events named"
            );
        }
    });
}

#[tokio::test]
async fn the_sim_switches_on_the_next_devices_that_have_a_profile_through_its_control_route() {
    let (sim, graph) = support::signed_in_sim(config()).await;
    // The demo tenant's All-devices profile reaches its four devices after a while.
    let start = Instant::now();
    while !sim.with_state(|s| {
        s.autopilot
            .devices
            .iter()
            .all(|d| d.assigned_profile_id.is_some() && d.assignment_status.starts_with("assigned"))
    }) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no profile assigned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = deployment::switch_on_simulated(&graph, &[], 3)
        .await
        .unwrap();
    // DEMO-HQ-0001 and DEMO-LAB-0001 are enrolled already (sim::removal): not switched on again.
    assert_eq!(first, ["DEMO-HQ-0002", "PC0NVWSH"]);
    let err = deployment::switch_on_simulated(&graph, &[], 3)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no Autopilot device has a profile"),
        "{err}"
    );
}

#[tokio::test]
async fn the_step_reads_every_page_and_keeps_the_latest_deployment_per_device() {
    let (sim, graph) = support::signed_in_sim(config()).await;
    assert!(deployment::read(&graph).await.unwrap().is_empty());
    switch_on_three(&sim);
    let early = deployment::read(&graph).await.unwrap();
    assert!(early.values().all(|d| d.phase.in_progress()), "{early:?}");
    let start = Instant::now();
    let done = loop {
        let d = deployment::read(&graph).await.unwrap();
        if d.len() == 3 && d.values().all(|x| x.phase.finished()) {
            break d;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{d:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ok = &done["DEMO-HQ-0001"];
    assert_eq!(ok.phase, DeploymentPhase::Succeeded);
    // 90 s enrollment + 7 min device setup + 11 min account setup.
    assert_eq!(ok.total_secs, Some(1170));
    assert_eq!(ok.device_setup_secs, Some(420));
    assert_eq!(ok.words(), "Succeeded in 19 min");
    let bad = &done["DEMO-LAB-0001"];
    assert_eq!(bad.phase, DeploymentPhase::Failed);
    assert_eq!(bad.esp_name, "Staff apps at first sign-in");
    assert_eq!(bad.words(), "Failed: Contoso Timesheets");
    assert!(
        bad.explanation()
            .contains("the app \"Contoso Timesheets\" (error 0x87D1041C) did not install"),
        "{}",
        bad.explanation()
    );
    assert!(bad.explanation().contains("stopped at account setup"));
    assert!(
        bad.timeline()
            .iter()
            .any(|l| l == "Account setup: failed (6 min)")
    );
    // Three events on pages of two: the second page was followed.
    let pages = sim
        .requests()
        .iter()
        .filter(|r| r.path == "/beta/deviceManagement/autopilotEvents")
        .filter(|r| r.query.as_deref().is_some_and(|q| q.contains("skiptoken")))
        .count();
    assert!(pages > 0, "no second page was read");

    // The same device deployed again later: the newest deployment counts.
    sim.with_state(|s| {
        s.oobe.failure_played = true;
    });
    sim.switch_on(&SwitchOn {
        serials: vec!["DEMO-LAB-0001".into()],
        count: 0,
        fail: None,
    });
    let again = deployment::read(&graph).await.unwrap();
    assert!(again["DEMO-LAB-0001"].phase.in_progress());

    // The validation items: one per device deployed, the failure failing.
    let items = deployment::items_of(&done, &[]);
    assert_eq!(items.len(), 3);
    let failing: Vec<_> = items
        .iter()
        .filter(|i| i.verdict == Verdict::Fail)
        .collect();
    assert_eq!(failing.len(), 1);
    assert!(failing[0].title.contains("DEMO-LAB-0001"));
    assert!(
        failing[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("Contoso Timesheets")
    );
    assert!(
        deployment::items_of(&done, &["OTHER-1".into()]).is_empty(),
        "devices of another plan are not in the report"
    );
}
