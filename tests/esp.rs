//! The Enrollment Status Page step: the Graph module over real HTTP against the simulated tenant
//! (resolution order, every documented problem, the recommended ESP read back, re-runs, plan
//! mode, validation items, bodies against the documented schema) and the page in egui_kittest.

use crate::support;

use autopilot_wizard::graph::{ApiVersion, GraphClient};
use autopilot_wizard::sim::{SimConfig, SimHandle, core::fixed_guid, esp as sim_esp};
use autopilot_wizard::steps::esp::{
    self, AppKind, EspError, EspMode, EspPlan, Problem, Reach, Resolution,
};
use autopilot_wizard::steps::validate::Verdict;
use serde_json::{Value, json};

fn autopilot_group() -> String {
    fixed_guid("group:autopilot-all-devices")
}

fn staff_group() -> String {
    fixed_guid("group:all-staff")
}

async fn start() -> (SimHandle, GraphClient) {
    support::signed_in_sim(SimConfig::test()).await
}

fn keys(r: &Resolution) -> Vec<&'static str> {
    r.problems.iter().map(|p| p.key()).collect()
}

// ---------------------------------------------------------------------------------------------
// The documented shape (Graph beta: windows10EnrollmentCompletionPageConfiguration, inheriting
// deviceEnrollmentConfiguration; enrollmentConfigurationAssignment; mobileApp). The schema
// extract in tests/fixtures/schema has no Intune enrollment or app types, so the property table
// is transcribed here from the beta resource pages (reference §9 names the same fields).

const ESP_PROPS: &[(&str, &str)] = &[
    ("id", "string"),
    ("displayName", "string?"),
    ("description", "string?"),
    ("priority", "int32"),
    ("createdDateTime", "datetime"),
    ("lastModifiedDateTime", "datetime"),
    ("version", "int32"),
    ("roleScopeTagIds", "strings"),
    ("deviceEnrollmentConfigurationType", "configType"),
    ("showInstallationProgress", "bool"),
    ("blockDeviceSetupRetryByUser", "bool"),
    ("allowDeviceResetOnInstallFailure", "bool"),
    ("allowLogCollectionOnInstallFailure", "bool"),
    ("customErrorMessage", "string?"),
    ("installProgressTimeoutInMinutes", "int32"),
    ("allowDeviceUseOnInstallFailure", "bool"),
    ("selectedMobileAppIds", "strings"),
    ("allowNonBlockingAppInstallation", "bool"),
    ("installQualityUpdates", "bool"),
    ("trackInstallProgressForAutopilotOnly", "bool"),
    ("disableUserStatusTrackingAfterFirstUser", "bool"),
    ("assignments", "assignments"),
];

const CONFIG_TYPES: &[&str] = &[
    "unknown",
    "limit",
    "platformRestrictions",
    "windowsHelloForBusiness",
    "defaultLimit",
    "defaultPlatformRestrictions",
    "defaultWindowsHelloForBusiness",
    "defaultWindows10EnrollmentCompletionPageConfiguration",
    "windows10EnrollmentCompletionPageConfiguration",
    "deviceComanagementAuthorityConfiguration",
    "singlePlatformRestriction",
    "unknownFutureValue",
    "enrollmentNotificationsConfiguration",
];

const APP_PROPS: &[&str] = &[
    "id",
    "displayName",
    "description",
    "publisher",
    "largeIcon",
    "createdDateTime",
    "lastModifiedDateTime",
    "isFeatured",
    "privacyInformationUrl",
    "informationUrl",
    "owner",
    "developer",
    "notes",
    "uploadState",
    "publishingState",
    "isAssigned",
    "roleScopeTagIds",
    "dependentAppCount",
    "supersedingAppCount",
    "supersededAppCount",
    "assignments",
];

const APP_TYPES: &[&str] = &[
    "#microsoft.graph.win32LobApp",
    "#microsoft.graph.windowsMobileMSI",
    "#microsoft.graph.officeSuiteApp",
    "#microsoft.graph.winGetApp",
];

/// Problems with one ESP body (request or response) against the documented properties.
fn esp_problems(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(o) = v.as_object() else {
        return vec!["not an object".into()];
    };
    if o.get("@odata.type").and_then(|t| t.as_str())
        != Some("#microsoft.graph.windows10EnrollmentCompletionPageConfiguration")
    {
        out.push(format!("@odata.type is {:?}", o.get("@odata.type")));
    }
    for (k, val) in o {
        if k.starts_with('@') {
            continue;
        }
        let Some((_, kind)) = ESP_PROPS.iter().find(|(n, _)| n == k) else {
            out.push(format!("{k}: not a property of the type"));
            continue;
        };
        let ok = match *kind {
            "string" => val.is_string(),
            "string?" => val.is_string() || val.is_null(),
            "int32" => val.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
            "bool" => val.is_boolean(),
            "strings" => val
                .as_array()
                .is_some_and(|a| a.iter().all(|x| x.is_string())),
            "datetime" => val
                .as_str()
                .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
            "configType" => val.as_str().is_some_and(|s| CONFIG_TYPES.contains(&s)),
            "assignments" => val.as_array().is_some_and(|a| {
                a.iter().all(|x| {
                    let target_ok = x.get("target").is_some_and(|t| {
                        let errs = support::schema::validate(
                            "beta",
                            "microsoft.graph.deviceAndAppManagementAssignmentTarget",
                            t,
                        );
                        if !errs.is_empty() {
                            eprintln!("{errs:?}");
                        }
                        errs.is_empty()
                    });
                    target_ok
                        && x.get("id").is_some_and(|i| i.is_string())
                        && x.as_object().is_some_and(|m| {
                            m.keys().all(|k| {
                                ["id", "target", "source", "sourceId"].contains(&k.as_str())
                            })
                        })
                })
            }),
            _ => false,
        };
        if !ok {
            out.push(format!("{k}: {val} is not a valid {kind}"));
        }
    }
    out
}

#[track_caller]
fn assert_esp_valid(v: &Value) {
    let p = esp_problems(v);
    assert!(p.is_empty(), "ESP body invalid: {p:?}\n{v:#}");
}

// ---------------------------------------------------------------------------------------------
// Helpers that set up a tenant over Graph, as an admin would in the portal

async fn create_esp(graph: &GraphClient, name: &str, extra: Value) -> String {
    let mut body = json!({
        "@odata.type": "#microsoft.graph.windows10EnrollmentCompletionPageConfiguration",
        "displayName": name,
        "showInstallationProgress": true,
        "blockDeviceSetupRetryByUser": false,
        "installProgressTimeoutInMinutes": 120,
        "installQualityUpdates": false,
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    assert_esp_valid(&body);
    let v: Value = graph
        .post_json(ApiVersion::Beta, esp::CONFIGS_PATH, &body)
        .await
        .expect("create ESP");
    assert_esp_valid(&v);
    v["id"].as_str().unwrap().to_string()
}

async fn assign(graph: &GraphClient, id: &str, targets: Vec<Value>) {
    let list: Vec<Value> = targets
        .into_iter()
        .map(|t| json!({ "target": t }))
        .collect();
    for t in &list {
        support::schema::assert_valid(
            "beta",
            "microsoft.graph.deviceAndAppManagementAssignmentTarget",
            &t["target"],
        );
    }
    graph
        .post_no_content(
            ApiVersion::Beta,
            &format!("{}/{id}/assign", esp::CONFIGS_PATH),
            Some(&json!({ "enrollmentConfigurationAssignments": list })),
        )
        .await
        .expect("assign");
}

async fn set_priority(graph: &GraphClient, id: &str, p: i64) {
    graph
        .post_no_content(
            ApiVersion::Beta,
            &format!("{}/{id}/setPriority", esp::CONFIGS_PATH),
            Some(&json!({ "priority": p })),
        )
        .await
        .expect("setPriority");
}

fn group_target(id: &str) -> Value {
    json!({"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": id})
}

// ---------------------------------------------------------------------------------------------
// Graph module

#[tokio::test]
async fn the_demo_staff_esp_is_explained_with_each_of_its_problems() {
    let (_sim, graph) = start().await;
    let r = esp::resolve(&graph, &autopilot_group()).await.unwrap();
    let (chosen, reach) = r.chosen.clone().unwrap();
    assert_eq!(chosen.display_name, "Staff apps at first sign-in");
    assert_eq!(
        reach,
        Reach::UserGroup {
            group_id: staff_group(),
            group_name: "All staff".into()
        }
    );
    let names: Vec<(String, AppKind)> = r
        .tracked
        .iter()
        .map(|a| (a.name.clone(), a.kind.clone()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("Contoso Timesheets".into(), AppKind::Win32),
            ("Legacy VPN Client".into(), AppKind::Msi),
            (
                "Microsoft 365 Apps for enterprise".into(),
                AppKind::Microsoft365Apps
            ),
        ]
    );
    let k = keys(&r);
    for expected in [
        "user-targeted",
        "mixed-msi-win32",
        "microsoft-365-apps",
        "timeout-too-short",
    ] {
        assert!(k.contains(&expected), "{expected} missing from {k:?}");
    }
    assert!(!k.contains(&"default-hides-progress"), "{k:?}");
    let words: Vec<String> = r.behaviour().into_iter().map(|(w, _)| w).collect();
    let all = words.join("\n");
    assert!(all.contains("user group \"All staff\""), "{all}");
    assert!(all.contains("After 30 minutes"), "{all}");
    assert!(
        all.contains("Contoso Timesheets (Win32 app)")
            && all.contains("Legacy VPN Client (MSI line-of-business app)"),
        "{all}"
    );
    assert!(all.contains("every new user"), "{all}");
    // Every problem says what to do.
    for p in &r.problems {
        assert!(!p.fix().is_empty() && !p.what().is_empty(), "{p:?}");
    }
    match r.problems.iter().find(|p| p.key() == "timeout-too-short") {
        Some(Problem::TimeoutTooShort { timeout, needed }) => {
            assert_eq!(*timeout, 30);
            assert!(*needed > 30);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn default_esp_applies_when_nothing_else_reaches_and_its_hidden_progress_is_named() {
    let (sim, graph) = support::signed_in_sim(support::tenant::empty_config()).await;
    let group =
        sim.with_state(|s| support::tenant::add_group(s, "Autopilot devices", None, Vec::new()));
    let r = esp::resolve(&graph, &group).await.unwrap();
    let (c, reach) = r.chosen.clone().unwrap();
    assert!(c.is_default, "{c:?}");
    assert_eq!(reach, Reach::Default);
    assert!(!c.show_progress);
    assert_eq!(keys(&r), vec!["no-esp-for-group", "default-hides-progress"]);
    // The tenant also lists a device limit restriction: it is not taken for an ESP.
    assert_eq!(r.configs.len(), 1, "{:?}", r.configs);
}

#[tokio::test]
async fn device_targets_win_by_priority_over_user_targets_and_exclusions_count() {
    let (_sim, graph) = start().await;
    let group = autopilot_group();
    // The demo's staff ESP is priority 1 (user-targeted). A device ESP at priority 3 still wins.
    let group_esp = create_esp(&graph, "Group ESP", json!({})).await;
    assign(&graph, &group_esp, vec![group_target(&group)]).await;
    let all_devices = create_esp(&graph, "All devices ESP", json!({})).await;
    assign(
        &graph,
        &all_devices,
        vec![json!({"@odata.type": "#microsoft.graph.allDevicesAssignmentTarget"})],
    )
    .await;
    let r = esp::resolve(&graph, &group).await.unwrap();
    let (c, reach) = r.chosen.clone().unwrap();
    assert_eq!(
        (c.id.as_str(), reach),
        (group_esp.as_str(), Reach::DeviceGroup)
    );
    assert_eq!(c.priority, 2);

    // The All-devices one moved to priority 1: it now wins for these devices.
    set_priority(&graph, &all_devices, 1).await;
    let r = esp::resolve(&graph, &group).await.unwrap();
    let (c, reach) = r.chosen.clone().unwrap();
    assert_eq!(
        (c.id.as_str(), reach),
        (all_devices.as_str(), Reach::AllDevices)
    );
    let priorities: Vec<(String, i64)> = r
        .configs
        .iter()
        .map(|c| (c.display_name.clone(), c.priority))
        .collect();
    assert_eq!(
        priorities,
        vec![
            ("All devices ESP".into(), 1),
            ("Staff apps at first sign-in".into(), 2),
            ("Group ESP".into(), 3),
            ("All users and all devices".into(), 0),
        ]
    );

    // Excluding the group from it hands the devices back to the group's own ESP.
    assign(
        &graph,
        &all_devices,
        vec![
            json!({"@odata.type": "#microsoft.graph.allDevicesAssignmentTarget"}),
            json!({"@odata.type": "#microsoft.graph.exclusionGroupAssignmentTarget", "groupId": group}),
        ],
    )
    .await;
    let r = esp::resolve(&graph, &group).await.unwrap();
    assert_eq!(r.chosen_id(), Some(group_esp.as_str()));
}

#[tokio::test]
async fn an_esp_on_a_group_of_every_autopilot_device_reaches_a_tag_group_too() {
    let (sim, graph) = start().await;
    let sales = sim.with_state(|s| {
        support::tenant::add_group(
            s,
            "Autopilot - Sales",
            Some(support::tenant::SALES_RULE),
            Vec::new(),
        )
    });
    let id = create_esp(&graph, "Every Autopilot device", json!({})).await;
    assign(&graph, &id, vec![group_target(&autopilot_group())]).await;
    let r = esp::resolve(&graph, &sales).await.unwrap();
    let (c, reach) = r.chosen.clone().unwrap();
    assert_eq!(c.id, id);
    assert_eq!(
        reach,
        Reach::OtherDeviceGroup {
            group_id: autopilot_group(),
            group_name: "Autopilot - All devices".into()
        }
    );
    assert!(!keys(&r).contains(&"user-targeted"), "{:?}", keys(&r));
    // The kiosk group (another tag, none of these devices) reaches nothing here.
    let kiosk = create_esp(&graph, "Kiosk", json!({})).await;
    assign(
        &graph,
        &kiosk,
        vec![group_target(
            autopilot_wizard::sim::profiles::DEMO_KIOSK_GROUP_ID,
        )],
    )
    .await;
    set_priority(&graph, &kiosk, 1).await;
    let r = esp::resolve(&graph, &sales).await.unwrap();
    assert_eq!(r.chosen_id(), Some(id.as_str()));
}

#[tokio::test]
async fn more_than_100_blocking_apps_and_deleted_apps_are_named() {
    let (_sim, graph) = start().await;
    let group = autopilot_group();
    let ids: Vec<String> = (0..101)
        .map(|i| format!("00000000-0000-0000-0000-{i:012}"))
        .collect();
    let id = create_esp(&graph, "Everything", json!({ "selectedMobileAppIds": ids })).await;
    assign(&graph, &id, vec![group_target(&group)]).await;
    let r = esp::resolve(&graph, &group).await.unwrap();
    assert_eq!(r.chosen_id(), Some(id.as_str()));
    assert!(
        r.problems
            .contains(&Problem::TooManyBlockingApps { count: 101 }),
        "{:?}",
        keys(&r)
    );
    assert!(keys(&r).contains(&"missing-apps"));
}

#[tokio::test]
async fn a_device_esp_with_progress_hidden_fails_the_reach_check() {
    let (_sim, graph) = start().await;
    let group = autopilot_group();
    let id = create_esp(
        &graph,
        "Quiet",
        json!({"showInstallationProgress": false, "blockDeviceSetupRetryByUser": true}),
    )
    .await;
    assign(&graph, &id, vec![group_target(&group)]).await;
    let checks = esp::validation_checks(&graph, &group).await;
    assert_eq!(checks[0].key, "esp-reaches-group");
    assert_eq!(checks[0].verdict, Verdict::Fail, "{:?}", checks[0]);
    assert!(checks[0].fix.is_some());
}

#[tokio::test]
async fn create_recommended_reads_every_field_back_and_a_rerun_finds_it() {
    let (sim, graph) = start().await;
    let group = autopilot_group();
    let body = esp::recommended_body("Autopilot - All devices");
    assert_esp_valid(&body);
    support::schema::assert_valid(
        "beta",
        "microsoft.graph.deviceAndAppManagementAssignmentTarget",
        &esp::assign_target(&group)["target"],
    );

    let before = esp::validation_checks(&graph, &group).await;
    assert!(
        before.iter().all(|c| c.verdict == Verdict::Fail),
        "{before:?}"
    );

    let steps = std::sync::Mutex::new(Vec::new());
    let rep = esp::create_recommended(&graph, &group, &|s: &str| {
        steps.lock().unwrap().push(s.to_string())
    })
    .await
    .unwrap();
    assert!(rep.created);
    assert!(
        steps
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.contains("Reading every setting back"))
    );
    let c = &rep.esp;
    assert_eq!(c.display_name, "Autopilot ESP – Autopilot - All devices");
    assert!(c.show_progress && c.block_device_use && c.allow_reset && c.allow_log_collection);
    assert!(!c.allow_use_on_failure && c.only_at_oobe());
    assert!(c.track_autopilot_only && c.disable_after_first_user);
    assert_eq!((c.timeout_minutes, c.priority), (60, 1));
    assert_eq!(rep.resolution.chosen_id(), Some(c.id.as_str()));
    assert_eq!(
        rep.resolution.chosen.as_ref().unwrap().1,
        Reach::DeviceGroup
    );
    assert!(
        rep.resolution.problems.is_empty(),
        "{:?}",
        rep.resolution.problems
    );
    assert!(rep.resolution.is_recommended());
    // The inverted field as stored by the tenant, and the wire shape of the read.
    let stored = sim.with_state(|s| s.esp.esp(&c.id).cloned().unwrap());
    assert_eq!(stored.setting("blockDeviceSetupRetryByUser"), &json!(false));
    assert_eq!(stored.priority, 1);
    assert_esp_valid(&c.raw);
    // The demo's staff ESP moved down.
    let staff = sim.with_state(|s| s.esp.esp(sim_esp::DEMO_STAFF_ESP_ID).cloned().unwrap());
    assert_eq!(staff.priority, 2);

    let after = esp::validation_checks(&graph, &group).await;
    assert!(
        after.iter().all(|c| c.verdict == Verdict::Pass),
        "{after:?}"
    );
    let keys: Vec<&str> = after.iter().map(|c| c.key).collect();
    assert_eq!(
        keys,
        vec!["esp-reaches-group", "esp-tracked-apps", "esp-timeout"]
    );

    // Someone lowered the timeout in the portal: the re-run puts it back, creates nothing.
    graph
        .patch_json(
            ApiVersion::Beta,
            &format!("{}/{}", esp::CONFIGS_PATH, c.id),
            &json!({"installProgressTimeoutInMinutes": 15}),
        )
        .await
        .unwrap();
    let again = esp::create_recommended(&graph, &group, &|_: &str| {})
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.esp.id, c.id);
    assert_eq!(again.esp.timeout_minutes, 60);
    assert_eq!(sim.with_state(|s| s.esp.creates), 1);
}

#[tokio::test]
async fn plan_modes_check_and_create_record_the_esp_and_the_group() {
    let (sim, graph) = start().await;
    let group = autopilot_group();
    let plan: EspPlan = toml::from_str("mode = \"check\"").unwrap();
    assert_eq!(plan.mode, EspMode::Check);
    let checked = esp::run_unattended(&graph, &group, &plan).await.unwrap();
    assert_eq!(checked.group_id, group);
    assert_eq!(checked.esp_id.as_deref(), Some(sim_esp::DEMO_STAFF_ESP_ID));
    assert!(checked.problems.contains(&"user-targeted".to_string()));
    assert!(!checked.created);
    assert_eq!(sim.with_state(|s| s.esp.creates), 0);

    let plan: EspPlan = toml::from_str("mode = \"create-recommended\"").unwrap();
    let made = esp::run_unattended(&graph, &group, &plan).await.unwrap();
    assert!(made.created && made.problems.is_empty(), "{made:?}");
    assert_ne!(made.esp_id, checked.esp_id);
    // Plain data that survives a round trip (the state file).
    let text = serde_json::to_string(&made).unwrap();
    assert_eq!(
        serde_json::from_str::<esp::EspOutcome>(&text).unwrap(),
        made
    );
    assert!(toml::from_str::<EspPlan>("mode = \"create\"").is_err());
    assert!(toml::from_str::<EspPlan>("modes = \"check\"").is_err());
}

#[tokio::test]
async fn missing_app_permission_and_unknown_group_are_said_in_words() {
    let (sim, _graph) = start().await;
    let token = sim.issue_token_with(
        &sim.admin().user_principal_name,
        &[
            "DeviceManagementServiceConfig.ReadWrite.All",
            "Group.ReadWrite.All",
        ],
        std::time::Duration::from_secs(600),
    );
    let graph = GraphClient::new(
        &sim.url(),
        std::sync::Arc::new(autopilot_wizard::graph::client::StaticToken(token)),
    )
    .with_retry(support::fast_retry());
    let err = esp::resolve(&graph, &autopilot_group()).await.unwrap_err();
    assert!(matches!(err, EspError::Forbidden { .. }), "{err:?}");
    assert!(
        err.to_string().contains("DeviceManagementApps.Read.All"),
        "{err}"
    );

    let (_sim, graph) = start().await;
    let err = esp::resolve(&graph, "11111111-2222-3333-4444-555555555555")
        .await
        .unwrap_err();
    assert!(matches!(err, EspError::GroupNotFound { .. }), "{err:?}");
    let checks = esp::validation_checks(&graph, "11111111-2222-3333-4444-555555555555").await;
    assert!(checks.iter().all(|c| c.verdict == Verdict::Unknown));
}

#[tokio::test]
async fn the_tenant_answers_in_the_documented_shape_and_refuses_bad_bodies() {
    let (_sim, graph) = start().await;
    let page: Value = graph
        .get_json(
            ApiVersion::Beta,
            &format!("{}?$expand=assignments", esp::CONFIGS_PATH),
        )
        .await
        .unwrap();
    let items = page["value"].as_array().unwrap();
    let esps: Vec<&Value> = items
        .iter()
        .filter(|v| {
            v["@odata.type"] == "#microsoft.graph.windows10EnrollmentCompletionPageConfiguration"
        })
        .collect();
    assert_eq!(esps.len(), 2);
    for v in &esps {
        assert_esp_valid(v);
    }
    let default = esps.iter().find(|v| v["priority"] == 0).unwrap();
    assert_eq!(
        default["deviceEnrollmentConfigurationType"],
        "defaultWindows10EnrollmentCompletionPageConfiguration"
    );
    assert!(
        default["id"]
            .as_str()
            .unwrap()
            .ends_with("_DefaultWindows10EnrollmentCompletionPageConfiguration")
    );

    let apps: Value = graph
        .get_json(
            ApiVersion::V1,
            &format!("{}?$expand=assignments", esp::APPS_PATH),
        )
        .await
        .unwrap();
    for a in apps["value"].as_array().unwrap() {
        assert!(
            APP_TYPES.contains(&a["@odata.type"].as_str().unwrap()),
            "{a}"
        );
        for k in a
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !k.starts_with('@'))
        {
            assert!(APP_PROPS.contains(&k.as_str()), "{k} in {a}");
        }
        for x in a["assignments"].as_array().unwrap() {
            support::schema::assert_valid(
                "beta",
                "microsoft.graph.deviceAndAppManagementAssignmentTarget",
                &x["target"],
            );
        }
    }

    // What Intune refuses, the tenant refuses.
    for bad in [
        json!({"@odata.type": "#microsoft.graph.windows10EnrollmentCompletionPageConfiguration", "displayName": "x", "blockDeviceUse": true}),
        json!({"@odata.type": "#microsoft.graph.windows10EnrollmentCompletionPageConfiguration", "displayName": "x", "installProgressTimeoutInMinutes": "60"}),
        json!({"@odata.type": "#microsoft.graph.windows10EnrollmentCompletionPageConfiguration", "displayName": "x", "installProgressTimeoutInMinutes": 0}),
        json!({"displayName": "x"}),
    ] {
        let err = graph
            .post_json::<_, Value>(ApiVersion::Beta, esp::CONFIGS_PATH, &bad)
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(400), "{bad}: {err}");
    }
    let default_id = default["id"].as_str().unwrap();
    let err = graph
        .delete(
            ApiVersion::Beta,
            &format!("{}/{default_id}", esp::CONFIGS_PATH),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    let err = graph
        .post_no_content(
            ApiVersion::Beta,
            &format!("{}/{default_id}/assign", esp::CONFIGS_PATH),
            Some(&json!({"enrollmentConfigurationAssignments": [esp::assign_target(&autopilot_group())]})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
}

#[tokio::test]
async fn throttled_or_lost_creates_leave_exactly_one_recommended_esp() {
    use autopilot_wizard::sim::core::{Fault, ScriptedFault};
    let (sim, graph) = start().await;
    let group = autopilot_group();
    // Throttled once on the create and once on setPriority: retried, one ESP.
    sim.script_faults(vec![
        ScriptedFault::new(
            Some(reqwest::Method::POST),
            "deviceEnrollmentConfigurations",
            Fault::Throttle {
                retry_after: std::time::Duration::from_millis(10),
            },
            1,
        ),
        ScriptedFault::new(
            Some(reqwest::Method::POST),
            "setPriority",
            Fault::Unavailable { retry_after: None },
            1,
        ),
    ]);
    let rep = esp::create_recommended(&graph, &group, &|_: &str| {})
        .await
        .unwrap();
    assert!(rep.created);
    assert_eq!(sim.with_state(|s| s.esp.creates), 1);

    // Every attempt of a create in another group's run is lost: said in words, nothing made.
    let (sim, graph) = start().await;
    sim.script_faults(vec![ScriptedFault::new(
        Some(reqwest::Method::POST),
        "deviceEnrollmentConfigurations",
        Fault::DropConnection,
        20,
    )]);
    let err = esp::create_recommended(&graph, &group, &|_: &str| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Could not create the Enrollment Status Page"),
        "{err}"
    );
    assert_eq!(sim.with_state(|s| s.esp.creates), 0);
    sim.with_state(|s| s.core.faults.script.clear());
    esp::create_recommended(&graph, &group, &|_: &str| {})
        .await
        .unwrap();
    assert_eq!(sim.with_state(|s| s.esp.creates), 1);
}

// ---------------------------------------------------------------------------------------------
// The page

mod page {
    use super::*;
    use autopilot_wizard::steps::Outcomes;
    use autopilot_wizard::steps::group::{GroupKind, GroupRef};
    use autopilot_wizard::ui::esp::EspPage;
    use autopilot_wizard::ui::{Page, StepStatus};
    use egui_kittest::kittest::Queryable;
    use support::ui::{click, runtime, wait_for_text};

    /// The ESP page's messages among the app's, as the app routes them.
    fn esp_msg(m: autopilot_wizard::ui::Msg) -> Option<autopilot_wizard::ui::esp::Msg> {
        match m {
            autopilot_wizard::ui::Msg::Esp(m) => Some(m),
            _ => None,
        }
    }

    fn outcomes() -> Outcomes {
        Outcomes {
            group: Some(GroupRef {
                id: autopilot_group(),
                display_name: "Autopilot - All devices".into(),
                kind: GroupKind::Static,
            }),
            ..Outcomes::default()
        }
    }

    #[test]
    fn opening_explains_the_staff_esp_and_create_makes_it_the_groups_esp() {
        let rt = runtime();
        let (sim, graph) = rt.block_on(start());
        let mut h = support::page::page_harness(
            EspPage::new(),
            graph,
            outcomes(),
            rt.handle().clone(),
            esp_msg,
        );
        h.run_ok();
        wait_for_text(&mut h, "Staff apps at first sign-in");
        wait_for_text(&mut h, "It is assigned to the user group \"All staff\"");
        wait_for_text(&mut h, "Legacy VPN Client (MSI line-of-business app)");
        wait_for_text(&mut h, "What to do: Repackage the MSI apps as Win32 apps");
        wait_for_text(&mut h, "Microsoft 365 Apps app type");
        assert!(!h.state().page.validated());
        assert_eq!(h.state().page.status(), StepStatus::NeedsAttention);

        // The problems are warnings: continuing with them is a decision.
        click(&mut h, "Continue with this ESP");
        assert!(h.state().page.validated());
        click(&mut h, "Continue with this ESP");
        assert!(!h.state().page.validated());

        click(&mut h, "Create the recommended ESP for this group");
        wait_for_text(
            &mut h,
            "read every setting back: it is now this group's Enrollment Status Page",
        );
        support::ui::wait_for_label(&mut h, "Autopilot ESP – Autopilot - All devices");
        wait_for_text(
            &mut h,
            "It is assigned to the device group \"Autopilot - All devices\".",
        );
        wait_for_text(
            &mut h,
            "No documented Enrollment Status Page problem applies",
        );
        assert!(h.state().page.validated());
        assert_eq!(h.state().page.status(), StepStatus::Done);
        assert!(!support::ui::is_enabled(
            &h,
            "Create the recommended ESP for this group"
        ));
        let outcome = h.state().page.outcome().unwrap();
        assert_eq!(outcome.group_id, autopilot_group());
        assert!(outcome.created);
        assert_eq!(
            outcome.esp_id,
            sim.with_state(|s| s
                .esp
                .configs
                .iter()
                .find(|c| c.display_name == "Autopilot ESP – Autopilot - All devices")
                .map(|c| c.id.clone()))
        );
    }

    #[test]
    fn a_missing_permission_is_shown_in_words_and_blocks_continue() {
        let rt = runtime();
        let (sim, _graph) = rt.block_on(start());
        let token = sim.issue_token_with(
            &sim.admin().user_principal_name,
            &[
                "DeviceManagementServiceConfig.ReadWrite.All",
                "Group.ReadWrite.All",
            ],
            std::time::Duration::from_secs(600),
        );
        let graph = GraphClient::new(
            &sim.url(),
            std::sync::Arc::new(autopilot_wizard::graph::client::StaticToken(token)),
        )
        .with_retry(support::fast_retry());
        let mut h = support::page::page_harness(
            EspPage::new(),
            graph,
            outcomes(),
            rt.handle().clone(),
            esp_msg,
        );
        wait_for_text(&mut h, "DeviceManagementApps.Read.All");
        assert!(!h.state().page.validated());
        assert_eq!(h.state().page.status(), StepStatus::NeedsAttention);
        assert!(h.query_by_label("Continue with this ESP").is_none());
        assert!(support::ui::is_enabled(&h, "Check again"));
    }

    #[test]
    fn a_different_group_makes_the_shown_esp_stale_and_reads_again() {
        let rt = runtime();
        let (_sim, graph) = rt.block_on(start());
        let mut h = support::page::page_harness(
            EspPage::new(),
            graph,
            outcomes(),
            rt.handle().clone(),
            esp_msg,
        );
        wait_for_text(&mut h, "Staff apps at first sign-in");
        click(&mut h, "Continue with this ESP");
        assert!(h.state().page.validated());
        h.state_mut().outcomes.group = Some(GroupRef {
            id: fixed_guid("group:all-staff"),
            display_name: "All staff".into(),
            kind: GroupKind::Static,
        });
        h.run_ok();
        assert!(
            !h.state().page.validated(),
            "the acknowledgement was for another group"
        );
        wait_for_text(&mut h, "Device group: All staff");
        wait_for_text(&mut h, "It is assigned to the device group \"All staff\".");

        // A change made while the page is not shown: `tick` (called for every page every frame)
        // takes the step out of Done before anyone looks at it.
        click(&mut h, "Continue with this ESP");
        assert!(h.state().page.validated());
        let mut session = autopilot_wizard::ui::Session::default();
        let mut changed = outcomes();
        let mut jobs = Vec::new();
        h.state_mut().page.tick(
            &egui::Context::default(),
            &mut autopilot_wizard::ui::PageCx::new(&mut session, &mut changed, &mut jobs),
        );
        assert!(!h.state().page.validated());
        assert!(jobs.is_empty(), "a hidden page does not start Graph work");
        // The page is shown again with the same (app-wide) outcomes: it reads for the new group.
        h.state_mut().outcomes = changed;
        h.run_ok();
        wait_for_text(&mut h, "Device group: Autopilot - All devices");
        wait_for_text(&mut h, "It is assigned to the user group \"All staff\"");

        h.state_mut().outcomes.group = None;
        h.run_ok();
        wait_for_text(&mut h, "Choose or create the device group first");
        assert!(!h.state().page.validated());
    }
}
