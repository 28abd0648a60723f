//! Removing and re-using devices (issue 16): the Graph module over real HTTP against the
//! simulated tenant — the order of the requests, the refusals, the resume without a second
//! wipe, the three modes — and the simulated tenant's answers against the documented shapes.

use std::sync::Mutex;
use std::time::Duration;

use crate::support;

use autopilot_wizard::graph::{ApiVersion, GraphClient};
use autopilot_wizard::sim::{
    self, SimConfig, SimHandle, core::RequestRecord, removal as sim_removal,
};
use autopilot_wizard::steps::assignment::SYNC_INTERVAL;
use autopilot_wizard::steps::removal::{
    self, Action, DeviceOutcome, Known, KnownDevices, Mode, Options, Pace, Refusal,
    RemovalObserver, RunRecord,
};
use serde_json::{Value, json};

async fn start() -> (SimHandle, GraphClient) {
    support::signed_in_sim(SimConfig::test()).await
}

/// The demo's wipe policy out of the way (most tests are not about it).
fn without_approval(sim: &SimHandle) {
    sim.with_state(|s| s.removal.policies.clear());
}

fn fast(dir: &std::path::Path, mode: Mode, wipe: bool) -> Options {
    Options {
        mode,
        wipe,
        hash_dir: dir.to_path_buf(),
        pace: Pace {
            interval: Duration::from_millis(10),
            timeout: Duration::from_secs(20),
            sync_interval: sim::Speed::TEST.scaled(SYNC_INTERVAL),
        },
    }
}

#[derive(Default)]
struct Kept {
    saves: Mutex<Vec<RunRecord>>,
    lines: Mutex<Vec<String>>,
}

impl RemovalObserver for Kept {
    fn progress(&self, serial: &str, text: &str) {
        self.lines.lock().unwrap().push(format!("{serial}: {text}"));
    }
    fn save(&self, record: &RunRecord) {
        self.saves.lock().unwrap().push(record.clone());
    }
}

async fn run(
    graph: &GraphClient,
    serials: &[&str],
    opts: &Options,
    known: &KnownDevices,
    record: &mut RunRecord,
) -> removal::Plan {
    let serials: Vec<String> = serials.iter().map(|s| s.to_string()).collect();
    let plan = removal::plan(graph, &serials, opts.mode, opts.wipe, known)
        .await
        .expect("plan");
    removal::execute(graph, &plan, opts, known, record, &Kept::default()).await;
    plan
}

/// Index of the first request matching `method` and a path ending in `tail`.
fn first(reqs: &[RequestRecord], method: &str, tail: &str) -> Option<usize> {
    reqs.iter()
        .position(|r| r.method.as_str() == method && r.path.ends_with(tail))
}

fn last(reqs: &[RequestRecord], method: &str, tail: &str) -> Option<usize> {
    reqs.iter()
        .rposition(|r| r.method.as_str() == method && r.path.ends_with(tail))
}

fn ids(sim: &SimHandle, serial: &str) -> (String, String, String) {
    sim.with_state(|s| {
        let d = s.autopilot.device_by_serial(serial).expect("identity");
        (
            d.id.clone(),
            d.managed_device_id.clone(),
            d.azure_ad_device_id.clone(),
        )
    })
}

fn done(record: &RunRecord, serial: &str) -> String {
    match record.device(serial).and_then(|d| d.outcome.clone()) {
        Some(DeviceOutcome::Done { summary }) => summary,
        other => panic!("{serial} not done: {other:?}"),
    }
}

#[tokio::test]
async fn leave_goes_intune_then_user_then_autopilot_and_sends_no_entra_delete_when_it_went_by_itself()
 {
    let (sim, graph) = start().await;
    without_approval(&sim);
    let (identity, managed, entra) = ids(&sim, "DEMO-HQ-0001");
    assert!(!managed.is_empty(), "the demo device is enrolled");
    let dir = tempfile::tempdir().unwrap();
    let opts = fast(dir.path(), Mode::Leave, false);
    sim.clear_requests();
    let mut record = RunRecord::default();
    let plan = run(
        &graph,
        &["DEMO-HQ-0001"],
        &opts,
        &KnownDevices::default(),
        &mut record,
    )
    .await;
    assert_eq!(
        plan.devices[0].actions,
        [
            Action::DeleteIntune,
            Action::UnassignUser,
            Action::DeleteIdentity,
            Action::DeleteEntraIfLeft
        ]
    );
    let summary = done(&record, "DEMO-HQ-0001");
    assert!(summary.contains("went by itself"), "{summary}");
    let reqs = sim.requests();
    let del_managed = first(&reqs, "DELETE", &format!("/managedDevices/{managed}")).unwrap();
    let managed_404 = reqs
        .iter()
        .position(|r| {
            r.method.as_str() == "GET"
                && r.path.ends_with(&format!("/managedDevices/{managed}"))
                && r.status == 404
        })
        .expect("polled until 404");
    let unassign = first(&reqs, "POST", "/unassignUserFromDevice").unwrap();
    let del_identity = first(
        &reqs,
        "DELETE",
        &format!("/windowsAutopilotDeviceIdentities/{identity}"),
    )
    .unwrap();
    let identity_404 = reqs
        .iter()
        .position(|r| {
            r.method.as_str() == "GET"
                && r.path
                    .ends_with(&format!("/windowsAutopilotDeviceIdentities/{identity}"))
                && r.status == 404
        })
        .expect("polled until gone");
    let sync = first(&reqs, "POST", "/windowsAutopilotSettings/sync").expect("a sync");
    assert!(
        del_managed < managed_404 && managed_404 < unassign,
        "Intune first"
    );
    assert!(unassign < del_identity && del_identity < sync && sync < identity_404);
    assert!(
        !reqs
            .iter()
            .any(|r| r.method.as_str() == "DELETE" && r.path.contains("/devices/")),
        "no Entra delete when the object went by itself"
    );
    let entra_check = last(&reqs, "GET", "/devices").expect("Entra looked up");
    assert!(entra_check > identity_404);
    sim.with_state(|s| {
        assert!(s.autopilot.device_by_serial("DEMO-HQ-0001").is_none());
        assert!(s.removal.managed_by_serial("DEMO-HQ-0001").is_none());
        assert!(s.directory.device_by_device_id(&entra).is_none());
    });
}

#[tokio::test]
async fn the_entra_object_is_deleted_only_after_the_autopilot_identity_is_gone() {
    let (sim, graph) = start().await;
    without_approval(&sim);
    let (identity, _, entra) = ids(&sim, "DEMO-LAB-0001");
    let object_id = support::tenant::object_id_of(&sim, &entra);
    let dir = tempfile::tempdir().unwrap();
    sim.clear_requests();
    let mut record = RunRecord::default();
    run(
        &graph,
        &["DEMO-LAB-0001"],
        &fast(dir.path(), Mode::Leave, false),
        &KnownDevices::default(),
        &mut record,
    )
    .await;
    let summary = done(&record, "DEMO-LAB-0001");
    assert!(summary.contains("had not gone by itself"), "{summary}");
    let reqs = sim.requests();
    let identity_404 = reqs
        .iter()
        .position(|r| {
            r.path
                .ends_with(&format!("/windowsAutopilotDeviceIdentities/{identity}"))
                && r.status == 404
        })
        .unwrap();
    let entra_delete =
        first(&reqs, "DELETE", &format!("/devices/{object_id}")).expect("Entra delete");
    assert!(
        identity_404 < entra_delete,
        "no Entra delete before the identity is gone"
    );
    assert_eq!(
        reqs.iter()
            .filter(|r| r.method.as_str() == "DELETE" && r.path.contains("/devices/"))
            .count(),
        1
    );
    sim.with_state(|s| assert!(s.directory.device_by_device_id(&entra).is_none()));
    assert_eq!(
        record.device("DEMO-LAB-0001").unwrap().entra_went_by_itself,
        Some(false)
    );
}

/// Autopilot allows one manual sync per 10 minutes and a registration goes only with a sync
/// after its delete: every device's delete goes first, so one sync serves them all (one device
/// after the other asked a sync each, a 10-minute window each against the real service).
#[tokio::test]
async fn several_devices_leave_under_one_sync() {
    let (sim, graph) = start().await;
    without_approval(&sim);
    let (hq, _, _) = ids(&sim, "DEMO-HQ-0001");
    let (lab, _, _) = ids(&sim, "DEMO-LAB-0001");
    let dir = tempfile::tempdir().unwrap();
    sim.clear_requests();
    let mut record = RunRecord::default();
    run(
        &graph,
        &["DEMO-HQ-0001", "DEMO-LAB-0001"],
        &fast(dir.path(), Mode::Leave, false),
        &KnownDevices::default(),
        &mut record,
    )
    .await;
    done(&record, "DEMO-HQ-0001");
    done(&record, "DEMO-LAB-0001");
    let reqs = sim.requests();
    let syncs: Vec<usize> = reqs
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.method.as_str() == "POST"
                && r.path.ends_with("/windowsAutopilotSettings/sync")
                && r.status == 204
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(syncs.len(), 1, "one sync for both devices");
    for id in [&hq, &lab] {
        let del = first(
            &reqs,
            "DELETE",
            &format!("/windowsAutopilotDeviceIdentities/{id}"),
        )
        .expect("the registration's delete");
        assert!(del < syncs[0], "every delete before the sync");
        assert_eq!(
            reqs.iter()
                .filter(|r| r.method.as_str() == "DELETE"
                    && r.path
                        .ends_with(&format!("/windowsAutopilotDeviceIdentities/{id}")))
                .count(),
            1,
            "each registration deleted once"
        );
    }
}

#[tokio::test]
async fn the_tenant_refuses_an_autopilot_delete_while_the_intune_record_is_there() {
    let (sim, graph) = start().await;
    let (identity, _, _) = ids(&sim, "DEMO-HQ-0001");
    let e = graph
        .delete(
            ApiVersion::V1,
            &format!("{}/{identity}", removal::IDENTITIES),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    // A registered-only device: accepted, still listed until a sync ran.
    let (other, _, _) = ids(&sim, "DEMO-HQ-0002");
    sim.with_state(|s| {
        s.autopilot.settings.periodic_sync_interval = Duration::from_secs(1_000_000)
    });
    graph
        .delete(ApiVersion::V1, &format!("{}/{other}", removal::IDENTITIES))
        .await
        .unwrap();
    assert!(
        sim.with_state(|s| s.autopilot.device_by_serial("DEMO-HQ-0002").is_some()),
        "gone only after a sync"
    );
    graph
        .post_no_content::<Value>(
            ApiVersion::Beta,
            "/deviceManagement/windowsAutopilotSettings/sync",
            None,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(sim.with_state(|s| s.autopilot.device_by_serial("DEMO-HQ-0002").is_none()));
}

#[tokio::test]
async fn multi_admin_approval_is_a_refusal_before_anything_is_sent() {
    let (sim, graph) = start().await;
    let dir = tempfile::tempdir().unwrap();
    sim.clear_requests();
    let mut record = RunRecord::default();
    let plan = run(
        &graph,
        &["DEMO-HQ-0001"],
        &fast(dir.path(), Mode::Leave, true),
        &KnownDevices::default(),
        &mut record,
    )
    .await;
    let refusal = plan.devices[0].refusal.clone().expect("held");
    assert!(
        matches!(refusal, Refusal::ApprovalRequired { .. }),
        "{refusal:?}"
    );
    let words = refusal.to_string();
    assert!(
        words.contains("Multi Admin Approval") && words.contains("Received requests"),
        "{words}"
    );
    assert!(
        words.contains("Device wipe needs a second admin"),
        "{words}"
    );
    let reqs = sim.requests();
    assert!(
        reqs.iter().all(|r| r.method.as_str() == "GET"),
        "nothing sent: {:?}",
        reqs.iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
    );
    assert!(matches!(
        record.device("DEMO-HQ-0001").unwrap().outcome,
        Some(DeviceOutcome::Refused(_))
    ));
    // Without the wipe, Leave is not held by a wipe policy.
    let plan = removal::plan(
        &graph,
        &["DEMO-HQ-0001".into()],
        Mode::Leave,
        false,
        &KnownDevices::default(),
    )
    .await
    .unwrap();
    assert!(plan.devices[0].refusal.is_none());
    // A delete policy holds the Intune delete.
    sim.with_state(|s| {
        sim_removal::add_approval_policy(s, "deviceDelete", sim_removal::DEMO_APPROVER_GROUP_ID);
    });
    let plan = removal::plan(
        &graph,
        &["DEMO-HQ-0001".into()],
        Mode::Leave,
        false,
        &KnownDevices::default(),
    )
    .await
    .unwrap();
    assert!(
        plan.devices[0]
            .refusal
            .as_ref()
            .unwrap()
            .to_string()
            .contains("delete of the Intune record")
    );
}

#[tokio::test]
async fn a_request_held_at_send_time_is_explained_too() {
    // The policy list could not be read (no permission): the held answer itself is explained.
    let (sim, _) = start().await;
    let admin = sim.admin().user_principal_name;
    let scopes: Vec<&str> = autopilot_wizard::sim::consented_permissions()
        .into_iter()
        .filter(|s| *s != "DeviceManagementRBAC.Read.All")
        .collect();
    let token = sim.issue_token_with(&admin, &scopes, Duration::from_secs(600));
    let graph = GraphClient::new(
        &sim.url(),
        std::sync::Arc::new(autopilot_wizard::graph::client::StaticToken(token)),
    )
    .with_retry(support::fast_retry());
    let dir = tempfile::tempdir().unwrap();
    let mut record = RunRecord::default();
    let plan = run(
        &graph,
        &["DEMO-HQ-0001"],
        &fast(dir.path(), Mode::Leave, true),
        &KnownDevices::default(),
        &mut record,
    )
    .await;
    assert!(
        plan.notes.iter().any(|n| n.contains("could not be read")),
        "{:?}",
        plan.notes
    );
    let words = record.result_words("DEMO-HQ-0001");
    assert!(words.contains("Multi Admin Approval"), "{words}");
    assert_eq!(sim.with_state(|s| s.removal.held.len()), 1);
    assert!(
        sim.with_state(|s| s.removal.managed_by_serial("DEMO-HQ-0001").is_some()),
        "nothing deleted after the hold"
    );
}

#[tokio::test]
async fn a_missing_permission_names_the_permission_and_the_role() {
    let (sim, _) = start().await;
    without_approval(&sim);
    let admin = sim.admin().user_principal_name;
    let scopes: Vec<&str> = autopilot_wizard::sim::consented_permissions()
        .into_iter()
        .filter(|s| *s != "DeviceManagementManagedDevices.PrivilegedOperations.All")
        .collect();
    let token = sim.issue_token_with(&admin, &scopes, Duration::from_secs(600));
    let graph = GraphClient::new(
        &sim.url(),
        std::sync::Arc::new(autopilot_wizard::graph::client::StaticToken(token)),
    )
    .with_retry(support::fast_retry());
    let dir = tempfile::tempdir().unwrap();
    let mut record = RunRecord::default();
    run(
        &graph,
        &["DEMO-HQ-0001"],
        &fast(dir.path(), Mode::Leave, true),
        &KnownDevices::default(),
        &mut record,
    )
    .await;
    let words = record.result_words("DEMO-HQ-0001");
    assert!(
        words.contains("DeviceManagementManagedDevices.PrivilegedOperations.All"),
        "{words}"
    );
    assert!(words.contains("Intune Administrator"), "{words}");
    assert!(
        sim.with_state(|s| s.removal.managed_by_serial("DEMO-HQ-0001").is_some()),
        "stopped before the delete"
    );
}

#[tokio::test]
async fn another_tenants_device_is_refused_with_the_support_facts() {
    let (sim, graph) = start().await;
    let mut known = KnownDevices::default();
    known.insert(
        "PF5MT6SC",
        Known {
            hash: "AAAA".into(),
            product_key: String::new(),
            file: "sample.csv".into(),
            other_tenant: true,
        },
    );
    sim.clear_requests();
    let plan = removal::plan(
        &graph,
        &["PF5MT6SC".into(), "NOT-HERE-1".into()],
        Mode::Leave,
        false,
        &known,
    )
    .await
    .unwrap();
    let words = plan.devices[0].refusal.as_ref().unwrap().to_string();
    assert!(
        words.contains("808") && words.contains("Microsoft support"),
        "{words}"
    );
    assert!(
        words.contains("serial number PF5MT6SC") && words.contains("sample.csv"),
        "{words}"
    );
    assert!(matches!(
        plan.devices[1].refusal,
        Some(Refusal::NotFound { .. })
    ));
    assert!(sim.requests().iter().all(|r| r.method.as_str() == "GET"));
}

#[tokio::test]
async fn an_interrupted_run_continues_without_a_second_wipe() {
    let (sim, graph) = start().await;
    without_approval(&sim);
    // The device takes long to pick the wipe up: the first run gives up waiting.
    sim.with_state(|s| s.removal.settings.wipe_time = Duration::from_secs(100_000));
    let dir = tempfile::tempdir().unwrap();
    let mut opts = fast(dir.path(), Mode::Leave, true);
    opts.pace.timeout = Duration::from_millis(60);
    let mut record = RunRecord::default();
    run(
        &graph,
        &["DEMO-HQ-0001"],
        &opts,
        &KnownDevices::default(),
        &mut record,
    )
    .await;
    let words = record.result_words("DEMO-HQ-0001");
    assert!(
        words.contains("gave up waiting") && words.contains("continues from here"),
        "{words}"
    );
    assert!(
        record
            .device("DEMO-HQ-0001")
            .unwrap()
            .wipe_sent_at
            .is_some()
    );
    // The record survives as plain serde.
    let text = serde_json::to_string(&record).unwrap();
    let mut record: RunRecord = serde_json::from_str(&text).unwrap();
    sim.with_state(|s| s.removal.settings.wipe_time = Duration::from_secs(60));
    opts.pace.timeout = Duration::from_secs(20);
    let plan = run(
        &graph,
        &["DEMO-HQ-0001"],
        &opts,
        &KnownDevices::default(),
        &mut record,
    )
    .await;
    assert!(plan.devices[0].steps_in_words()[0].contains("will not be sent again"));
    done(&record, "DEMO-HQ-0001");
    assert_eq!(
        sim.with_state(|s| s.removal.count("wipe")),
        1,
        "one wipe in all"
    );
}

#[tokio::test]
async fn a_wipe_sent_before_a_kill_left_no_record_is_not_sent_again() {
    let (sim, graph) = start().await;
    without_approval(&sim);
    let (_, managed, _) = ids(&sim, "DEMO-HQ-0001");
    // The request went out and the process died before it recorded anything.
    graph
        .post_no_content(
            ApiVersion::V1,
            &format!("{}/{managed}/wipe", removal::MANAGED),
            Some(&json!({"keepEnrollmentData": false, "keepUserData": false})),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut record = RunRecord::default();
    run(
        &graph,
        &["DEMO-HQ-0001"],
        &fast(dir.path(), Mode::Leave, true),
        &KnownDevices::default(),
        &mut record,
    )
    .await;
    done(&record, "DEMO-HQ-0001");
    assert_eq!(sim.with_state(|s| s.removal.count("wipe")), 1);
}

#[tokio::test]
async fn a_wipe_the_device_reports_failed_keeps_the_intune_record() {
    let (sim, graph) = start().await;
    without_approval(&sim);
    let (_, managed, _) = ids(&sim, "DEMO-HQ-0001");
    graph
        .post_no_content(
            ApiVersion::V1,
            &format!("{}/{managed}/wipe", removal::MANAGED),
            Some(&json!({"keepEnrollmentData": false, "keepUserData": false})),
        )
        .await
        .unwrap();
    sim.with_state(|s| {
        let m = s
            .removal
            .managed
            .iter_mut()
            .find(|m| m.id == managed)
            .unwrap();
        m.actions[0].state = "failed".into();
    });
    let dir = tempfile::tempdir().unwrap();
    let mut record = RunRecord::default();
    run(
        &graph,
        &["DEMO-HQ-0001"],
        &fast(dir.path(), Mode::Leave, true),
        &KnownDevices::default(),
        &mut record,
    )
    .await;
    let words = record.result_words("DEMO-HQ-0001");
    assert!(words.contains("reports the wipe as failed"), "{words}");
    assert!(sim.with_state(|s| s.removal.managed_by_serial("DEMO-HQ-0001").is_some()));
    assert_eq!(sim.with_state(|s| s.removal.count("deleteManaged")), 0);
}

#[tokio::test]
async fn redeploy_sends_autopilot_reset_or_releases_a_blocked_enrollment() {
    let (sim, graph) = start().await;
    without_approval(&sim);
    sim.with_state(|s| {
        let d = s
            .autopilot
            .devices
            .iter_mut()
            .find(|d| d.serial_number == "DEMO-HQ-0002")
            .unwrap();
        d.enrollment_state = "blocked".into();
    });
    let dir = tempfile::tempdir().unwrap();
    let mut record = RunRecord::default();
    let plan = run(
        &graph,
        &["DEMO-HQ-0001", "DEMO-HQ-0002", "PC0NVWSH"],
        &fast(dir.path(), Mode::Redeploy, false),
        &KnownDevices::default(),
        &mut record,
    )
    .await;
    assert_eq!(plan.devices[0].actions, [Action::AutopilotReset]);
    assert_eq!(plan.devices[1].actions, [Action::AllowNextEnrollment]);
    assert!(plan.devices[2].actions.is_empty());
    for s in ["DEMO-HQ-0001", "DEMO-HQ-0002", "PC0NVWSH"] {
        done(&record, s);
    }
    sim.with_state(|s| {
        let m = s
            .removal
            .managed_by_serial("DEMO-HQ-0001")
            .expect("Intune record stays");
        let w = m.actions.last().expect("reset sent");
        assert!(
            w.keep_enrollment_data && !w.keep_user_data,
            "Autopilot Reset's parameters"
        );
        assert!(
            s.autopilot.device_by_serial("DEMO-HQ-0001").is_some(),
            "registration stays"
        );
        assert_eq!(
            s.autopilot
                .device_by_serial("DEMO-HQ-0002")
                .unwrap()
                .enrollment_state,
            "notContacted"
        );
        assert_eq!(s.removal.count("allowNextEnrollment"), 1);
    });
}

#[tokio::test]
async fn move_saves_the_hash_first_or_refuses_without_one() {
    let (sim, graph) = start().await;
    without_approval(&sim);
    let dir = tempfile::tempdir().unwrap();
    let opts = fast(dir.path(), Mode::Move, false);
    let mut record = RunRecord::default();
    let plan = run(
        &graph,
        &["DEMO-HQ-0002"],
        &opts,
        &KnownDevices::default(),
        &mut record,
    )
    .await;
    assert!(matches!(
        plan.devices[0].refusal,
        Some(Refusal::NoHash { .. })
    ));
    assert!(sim.with_state(|s| s.autopilot.device_by_serial("DEMO-HQ-0002").is_some()));
    let mut known = KnownDevices::default();
    known.insert(
        "DEMO-HQ-0002",
        Known {
            hash: "T0FBQUFBQUE=".into(),
            product_key: String::new(),
            file: "hq.csv".into(),
            other_tenant: false,
        },
    );
    let mut record = RunRecord::default();
    let plan = run(&graph, &["DEMO-HQ-0002"], &opts, &known, &mut record).await;
    assert_eq!(plan.devices[0].actions[0], Action::SaveHash);
    done(&record, "DEMO-HQ-0002");
    let file = record
        .device("DEMO-HQ-0002")
        .unwrap()
        .hash_file
        .clone()
        .unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let text: String = String::from_utf16_lossy(
        &bytes[2..]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect::<Vec<_>>(),
    );
    assert!(
        text.contains("DEMO-HQ-0002") && text.contains("T0FBQUFBQUE="),
        "{text}"
    );
    let csv = record.to_csv();
    assert!(
        csv.starts_with("serial,mode,result,details") && csv.contains("DEMO-HQ-0002,move,done"),
        "{csv}"
    );
}

#[tokio::test]
async fn the_plan_says_what_goes_what_stays_and_what_cannot_be_undone() {
    let (sim, graph) = start().await;
    without_approval(&sim);
    let plan = removal::plan(
        &graph,
        &["DEMO-HQ-0001".into(), "demo-hq-0001".into()],
        Mode::Leave,
        true,
        &KnownDevices::default(),
    )
    .await
    .unwrap();
    assert_eq!(plan.devices.len(), 1, "a serial once");
    let d = &plan.devices[0];
    let words = d.steps_in_words().join("\n");
    assert!(words.starts_with("1. Wipe the device"), "{words}");
    assert!(
        words.contains("Unassign the user") && words.contains("@"),
        "{words}"
    );
    assert!(
        d.irreversible()
            .iter()
            .any(|w| w.contains("cannot be recovered"))
    );
    assert!(
        d.stays(Mode::Leave)
            .iter()
            .any(|w| w.contains("Users, groups"))
    );
    assert!(!plan.needs_typed_count());
}

// ---------------------------------------------------------------------------------------------
// Wire format. The schema extract has neither managedDevice nor operationApprovalPolicy nor
// deletedWindowsAutopilotDeviceState: their property names are transcribed here from the
// Graph docs (v1.0 intune-devices-manageddevice.md; beta intune-rbac-operationapprovalpolicy.md;
// intune-enrollment-deletedwindowsautopilotdevicestate.md).

const MANAGED_DEVICE_PROPS: &[&str] = &[
    "id",
    "userId",
    "deviceName",
    "managedDeviceOwnerType",
    "deviceActionResults",
    "enrolledDateTime",
    "lastSyncDateTime",
    "operatingSystem",
    "complianceState",
    "jailBroken",
    "managementAgent",
    "osVersion",
    "easActivated",
    "easDeviceId",
    "easActivationDateTime",
    "azureADRegistered",
    "deviceEnrollmentType",
    "activationLockBypassCode",
    "emailAddress",
    "azureADDeviceId",
    "deviceRegistrationState",
    "deviceCategoryDisplayName",
    "isSupervised",
    "exchangeLastSuccessfulSyncDateTime",
    "exchangeAccessState",
    "exchangeAccessStateReason",
    "remoteAssistanceSessionUrl",
    "remoteAssistanceSessionErrorDetails",
    "isEncrypted",
    "userPrincipalName",
    "model",
    "manufacturer",
    "imei",
    "complianceGracePeriodExpirationDateTime",
    "serialNumber",
    "phoneNumber",
    "androidSecurityPatchLevel",
    "userDisplayName",
    "configurationManagerClientEnabledFeatures",
    "wiFiMacAddress",
    "deviceHealthAttestationState",
    "subscriberCarrier",
    "meid",
    "totalStorageSpaceInBytes",
    "freeStorageSpaceInBytes",
    "managedDeviceName",
    "partnerReportedThreatState",
];
const ACTION_RESULT_PROPS: &[&str] = &[
    "actionName",
    "actionState",
    "startDateTime",
    "lastUpdatedDateTime",
];
const ACTION_STATES: &[&str] = &[
    "none",
    "pending",
    "canceled",
    "active",
    "done",
    "failed",
    "notSupported",
];
const POLICY_PROPS: &[&str] = &[
    "id",
    "displayName",
    "description",
    "lastModifiedDateTime",
    "policyType",
    "policyPlatform",
    "policySet",
    "approverGroupIds",
];
const POLICY_TYPES: &[&str] = &[
    "unknown",
    "deviceAction",
    "deviceWipe",
    "deviceRetire",
    "deviceRetireNonCompliant",
    "deviceDelete",
    "deviceLock",
    "deviceErase",
    "deviceDisableActivationLock",
    "windowsEnrollment",
    "compliancePolicy",
    "configurationPolicy",
    "appProtectionPolicy",
    "policySet",
    "filter",
    "endpointSecurityPolicy",
    "app",
    "script",
    "role",
    "deviceResetPasscode",
    "unknownFutureValue",
    "operationApprovalPolicy",
];
const POLICY_PLATFORMS: &[&str] = &[
    "notApplicable",
    "androidDeviceAdministrator",
    "androidEnterprise",
    "iOSiPadOS",
    "macOS",
    "windows10AndLater",
    "windows81AndLater",
    "windows10X",
    "unknownFutureValue",
];
const DELETED_STATE_PROPS: &[&str] = &[
    "serialNumber",
    "deviceRegistrationId",
    "deletionState",
    "errorMessage",
];

fn only_documented(v: &Value, props: &[&str], what: &str) {
    for k in v.as_object().expect("object").keys() {
        assert!(
            k.starts_with('@') || props.contains(&k.as_str()),
            "{what}: undocumented property {k}"
        );
    }
}

async fn raw(
    sim: &SimHandle,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let token = sim.issue_token(&sim.admin().user_principal_name);
    let mut req = support::raw_http()
        .request(method, format!("{}{path}", sim.url()))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_tenant_answers_in_the_documented_shapes() {
    let (sim, _) = start().await;
    let (_, managed, entra) = ids(&sim, "DEMO-HQ-0001");
    let (status, page) = raw(
        &sim,
        reqwest::Method::GET,
        "/v1.0/deviceManagement/managedDevices",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let items = page["value"].as_array().unwrap();
    assert_eq!(items.len(), 2, "two enrolled demo devices");
    for m in items {
        only_documented(m, MANAGED_DEVICE_PROPS, "managedDevice");
    }
    let (_, _) = raw(
        &sim,
        reqwest::Method::POST,
        &format!("/v1.0/deviceManagement/managedDevices/{managed}/wipe"),
        Some(json!({"keepEnrollmentData": true, "keepUserData": false})),
    )
    .await;
    let (_, m) = raw(
        &sim,
        reqwest::Method::GET,
        &format!("/v1.0/deviceManagement/managedDevices/{managed}"),
        None,
    )
    .await;
    // The demo policy holds wipes: nothing recorded on the device, the request is held.
    assert!(m["deviceActionResults"].as_array().unwrap().is_empty());
    assert_eq!(m["azureADDeviceId"], entra);
    assert_eq!(m["serialNumber"], "DEMO-HQ-0001");
    without_approval(&sim);
    let (status, err) = raw(
        &sim,
        reqwest::Method::POST,
        &format!("/v1.0/deviceManagement/managedDevices/{managed}/wipe"),
        Some(json!({"keepEnrollmentData": true, "keepEnrolmentData": false})),
    )
    .await;
    assert_eq!(status, 400, "a misspelt parameter is refused");
    support::schema::assert_valid("v1.0", "microsoft.graph.ODataErrors.ODataError", &err);
    let (status, _) = raw(
        &sim,
        reqwest::Method::POST,
        &format!("/v1.0/deviceManagement/managedDevices/{managed}/wipe"),
        Some(json!({"keepEnrollmentData": true, "keepUserData": false})),
    )
    .await;
    assert_eq!(status, 204);
    let (_, m) = raw(
        &sim,
        reqwest::Method::GET,
        &format!("/v1.0/deviceManagement/managedDevices/{managed}"),
        None,
    )
    .await;
    let a = &m["deviceActionResults"][0];
    only_documented(a, ACTION_RESULT_PROPS, "deviceActionResult");
    assert!(ACTION_STATES.contains(&a["actionState"].as_str().unwrap()));
    assert_eq!(a["actionName"], "wipe");
    // The enrolled identity still matches the schema, naming its managed device.
    let (_, d) = raw(&sim, reqwest::Method::GET, "/beta/deviceManagement/windowsAutopilotDeviceIdentities?$filter=contains(serialNumber,'DEMO-HQ-0001')", None).await;
    support::schema::assert_valid("beta", "windowsAutopilotDeviceIdentity", &d["value"][0]);
    assert_eq!(d["value"][0]["managedDeviceId"], managed.as_str());
    assert_eq!(d["value"][0]["enrollmentState"], "enrolled");
    // Approval policies (beta only).
    sim.with_state(|s| {
        sim_removal::add_approval_policy(s, "deviceDelete", sim_removal::DEMO_APPROVER_GROUP_ID);
    });
    let (status, page) = raw(
        &sim,
        reqwest::Method::GET,
        "/beta/deviceManagement/operationApprovalPolicies",
        None,
    )
    .await;
    assert_eq!(status, 200);
    for p in page["value"].as_array().unwrap() {
        only_documented(p, POLICY_PROPS, "operationApprovalPolicy");
        assert!(POLICY_TYPES.contains(&p["policyType"].as_str().unwrap()));
        assert!(POLICY_PLATFORMS.contains(&p["policyPlatform"].as_str().unwrap()));
        assert!(p["approverGroupIds"].is_array());
        assert_eq!(p["policySet"]["policyType"], p["policyType"]);
    }
    let (status, _) = raw(
        &sim,
        reqwest::Method::GET,
        "/v1.0/deviceManagement/operationApprovalPolicies",
        None,
    )
    .await;
    assert_ne!(status, 200, "beta only");
    // deleteDevices (beta): one state per serial.
    let (status, page) = raw(
        &sim,
        reqwest::Method::POST,
        "/beta/deviceManagement/windowsAutopilotDeviceIdentities/deleteDevices",
        Some(json!({"serialNumbers": ["DEMO-HQ-0002", "DEMO-HQ-0001", "NOPE"]})),
    )
    .await;
    assert_eq!(status, 200);
    let states = page["value"].as_array().unwrap();
    assert_eq!(states.len(), 3);
    for s in states {
        only_documented(s, DELETED_STATE_PROPS, "deletedWindowsAutopilotDeviceState");
    }
    let by = |serial: &str| {
        states.iter().find(|s| s["serialNumber"] == serial).unwrap()["deletionState"].clone()
    };
    assert_eq!(by("DEMO-HQ-0002"), "accepted");
    assert_eq!(by("DEMO-HQ-0001"), "failed", "still enrolled in Intune");
    assert_eq!(by("NOPE"), "failed");
}

#[tokio::test]
async fn the_bulk_delete_reads_its_per_serial_answer() {
    let (sim, graph) = start().await;
    let states = removal::delete_devices(&graph, &["PC0NVWSH".into(), "DEMO-LAB-0001".into()])
        .await
        .unwrap();
    assert_eq!(states.len(), 2);
    assert_eq!(states[0].deletion_state, "accepted");
    assert_eq!(states[1].deletion_state, "failed");
    assert!(
        states[1]
            .error_message
            .as_deref()
            .unwrap()
            .contains("Intune")
    );
    assert!(sim.with_state(|s| s.removal.identity_deletes.len() == 1));
}

#[tokio::test]
async fn enrol_device_links_identity_intune_and_entra() {
    let (sim, _) = start().await;
    let id = sim
        .with_state(|s| sim_removal::enrol_device(s, "PC0NVWSH", None))
        .expect("registered serial");
    sim.with_state(|s| {
        let d = s.autopilot.device_by_serial("PC0NVWSH").unwrap();
        assert_eq!(d.managed_device_id, id);
        let m = s.removal.managed_by_serial("PC0NVWSH").unwrap();
        assert_eq!(m.azure_ad_device_id, d.azure_ad_device_id);
        let e = s
            .directory
            .device_by_device_id(&d.azure_ad_device_id)
            .unwrap();
        assert_eq!(e.trust_type.as_deref(), Some("AzureAd"));
        assert_eq!(e.is_managed, Some(true));
        assert!(sim_removal::enrol_device(s, "NOT-REGISTERED", None).is_none());
    });
}

#[tokio::test]
async fn the_validation_report_names_the_approval_policies() {
    let (sim, graph) = start().await;
    let inputs = autopilot_wizard::steps::validate::ValidateInputs {
        tenant: "t".into(),
        deployers: Vec::new(),
        target: support::tenant::target(
            "g",
            autopilot_wizard::steps::assignment::GroupMembership::Static,
            "p",
            "n",
        ),
        expected_serials: Vec::new(),
        outcomes: Default::default(),
    };
    let items = removal::validate_items(&graph, &inputs).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].id, removal::CHECK_APPROVAL);
    let text = items[0].evidence.join("\n");
    assert!(
        text.contains("Device wipe needs a second admin") && text.contains("Received requests"),
        "{text}"
    );
    without_approval(&sim);
    let items = removal::validate_items(&graph, &inputs).await;
    assert!(items[0].evidence[0].contains("No Multi Admin Approval policy"));
    assert!(autopilot_wizard::steps::validate::CheckId::ALL.contains(&removal::CHECK_APPROVAL));
}

mod page {
    use super::*;
    use autopilot_wizard::steps::Outcomes;
    use autopilot_wizard::ui::removal::RemovalPage;
    use autopilot_wizard::ui::widgets::FixedSavePath;
    use autopilot_wizard::ui::{Page, StepStatus};
    use egui_kittest::kittest::Queryable;
    use support::ui::{click, is_enabled, runtime, type_into, wait_for_label, wait_for_text};

    fn page(dir: &std::path::Path) -> RemovalPage {
        let mut p = RemovalPage::new()
            .with_save_picker(std::sync::Arc::new(FixedSavePath(dir.join("results.csv"))));
        p.pace = Pace {
            interval: Duration::from_millis(10),
            timeout: Duration::from_secs(20),
            sync_interval: sim::Speed::TEST.scaled(SYNC_INTERVAL),
        };
        p
    }

    #[test]
    fn leave_shows_the_plan_then_the_result_and_exports_it() {
        let rt = runtime();
        let (sim, graph) = rt.block_on(start());
        without_approval(&sim);
        let dir = tempfile::tempdir().unwrap();
        let mut h = support::page::page_harness(
            page(dir.path()),
            graph,
            Outcomes::default(),
            rt.handle().clone(),
            |_| None,
        );
        h.run_ok();
        assert!(!is_enabled(&h, "Show the plan"), "no serials yet");
        click(&mut h, "Leave the organisation");
        type_into(
            &mut h,
            "Serial numbers (one per line)",
            "DEMO-HQ-0001\nNOT-HERE-9",
        );
        click(&mut h, "Show the plan");
        wait_for_text(
            &mut h,
            "1. Delete the Intune record and wait until Intune no longer has it",
        );
        wait_for_text(
            &mut h,
            "Delete the Entra ID device only if it did not go by itself",
        );
        wait_for_text(
            &mut h,
            "Cannot be undone: Once the Autopilot registration is gone",
        );
        wait_for_text(&mut h, "NOT-HERE-9 is not registered in this tenant");
        assert_eq!(
            sim.with_state(|s| s.removal.count("deleteManaged")),
            0,
            "nothing sent for the plan"
        );
        click(&mut h, "Carry out the plan for 1 device");
        wait_for_text(
            &mut h,
            "DEMO-HQ-0001: Left the organisation: Intune record deleted",
        );
        wait_for_text(&mut h, "Entra ID device went by itself");
        assert_eq!(h.state().page.status(), StepStatus::Done);
        click(&mut h, "Export the results as CSV");
        wait_for_text(&mut h, "Saved to");
        let csv = std::fs::read_to_string(dir.path().join("results.csv")).unwrap();
        assert!(
            csv.contains("DEMO-HQ-0001,leave,done") && csv.contains("NOT-HERE-9,leave,stopped"),
            "{csv}"
        );
        assert!(sim.with_state(|s| s.autopilot.device_by_serial("DEMO-HQ-0001").is_none()));
    }

    #[test]
    fn a_wipe_held_by_multi_admin_approval_is_explained_with_where_to_approve() {
        let rt = runtime();
        let (sim, graph) = rt.block_on(start());
        let dir = tempfile::tempdir().unwrap();
        let mut h = support::page::page_harness(
            page(dir.path()),
            graph,
            Outcomes::default(),
            rt.handle().clone(),
            |_| None,
        );
        h.run_ok();
        click(&mut h, "Re-deploy here");
        type_into(&mut h, "Serial numbers (one per line)", "DEMO-HQ-0001");
        click(&mut h, "Show the plan");
        wait_for_text(
            &mut h,
            "Multi Admin Approval holds the Autopilot Reset (a wipe) of DEMO-HQ-0001",
        );
        wait_for_text(&mut h, "Received requests");
        wait_for_text(&mut h, "No device has anything to send.");
        assert!(h.query_by_label_contains("Carry out the plan").is_none());
        assert_eq!(sim.with_state(|s| s.removal.count("wipe")), 0);
    }

    #[test]
    fn more_than_five_devices_need_their_number_typed() {
        let rt = runtime();
        let (sim, graph) = rt.block_on(start());
        without_approval(&sim);
        let serials: Vec<String> = (1..=6).map(|i| format!("BULK-{i:04}")).collect();
        sim.with_state(|s| {
            for serial in &serials {
                support::tenant::add_device(s, serial, "", true);
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let mut p = page(dir.path());
        p.select(&serials);
        let mut h =
            support::page::page_harness(p, graph, Outcomes::default(), rt.handle().clone(), |_| {
                None
            });
        h.run_ok();
        click(&mut h, "Show the plan");
        wait_for_label(&mut h, "Carry out the plan for 6 devices");
        assert!(!is_enabled(&h, "Carry out the plan for 6 devices"));
        type_into(&mut h, "Type the number of devices (6) to confirm", "1");
        assert!(
            !is_enabled(&h, "Carry out the plan for 6 devices"),
            "a wrong number does not confirm"
        );
        // "1" then "6" is 16: still wrong.
        type_into(&mut h, "Type the number of devices (6) to confirm", "6");
        assert!(!is_enabled(&h, "Carry out the plan for 6 devices"));
        h.state_mut().page.set_typed_count("6");
        h.run_ok();
        assert!(is_enabled(&h, "Carry out the plan for 6 devices"));
        click(&mut h, "Carry out the plan for 6 devices");
        support::ui::step_until(
            &mut h,
            "the run finished",
            |h| h.state().page.status() == StepStatus::Done,
            Duration::from_secs(20),
        );
        assert!(sim.with_state(|st| {
            serials
                .iter()
                .all(|s| st.autopilot.device_by_serial(s).is_none())
        }));
    }

    #[test]
    fn an_unfinished_record_is_kept_and_continued_after_a_restart() {
        let rt = runtime();
        let (sim, graph) = rt.block_on(start());
        without_approval(&sim);
        sim.with_state(|s| s.removal.settings.wipe_time = Duration::from_secs(100_000));
        let dir = tempfile::tempdir().unwrap();
        let mut p = page(dir.path());
        p.pace.timeout = Duration::from_millis(60);
        let mut h = support::page::page_harness(
            p,
            graph.clone(),
            Outcomes::default(),
            rt.handle().clone(),
            |_| None,
        );
        h.run_ok();
        click(&mut h, "Wipe the devices first");
        type_into(&mut h, "Serial numbers (one per line)", "DEMO-HQ-0001");
        click(&mut h, "Show the plan");
        click(&mut h, "Carry out the plan for 1 device");
        wait_for_text(
            &mut h,
            "gave up waiting until the device reports the wipe done",
        );
        let saved = h.state().page.save_state().unwrap();
        drop(h);
        // The window restarts with the saved state.
        sim.with_state(|s| s.removal.settings.wipe_time = Duration::from_secs(60));
        let mut p = page(dir.path());
        p.load_state(saved);
        let mut h =
            support::page::page_harness(p, graph, Outcomes::default(), rt.handle().clone(), |_| {
                None
            });
        h.run_ok();
        wait_for_text(&mut h, "An earlier removal did not finish");
        click(&mut h, "Show the plan");
        wait_for_text(&mut h, "already sent earlier, it will not be sent again");
        click(&mut h, "Carry out the plan for 1 device");
        wait_for_text(&mut h, "DEMO-HQ-0001: Left the organisation: wiped");
        assert_eq!(sim.with_state(|s| s.removal.count("wipe")), 1);
    }
}
