//! Step 6 against the simulated tenant over HTTP: static groups whose Entra objects appear late,
//! dynamic groups, the oldest-profile-wins conflict, timeouts, edits; and the board page.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use autopilot_wizard::board::{
    Board, BoardRow, Chip, DeviceEdit, FixAction, GroupMembership, GroupSnapshot, MemberState,
    Target,
};
use autopilot_wizard::sim::directory;
use autopilot_wizard::steps::assignment::{self as steps, AssignmentError, Progress, WaitOptions};
use autopilot_wizard::ui::assignment::{AssignmentPage, CheckPlan, FixedSavePath};
use autopilot_wizard::ui::{Page, PageCx, Session, StepId, StepStatus};
use chrono::Utc;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use support::tenant::{
    SALES_RULE, add_device, add_group, add_profile, empty_config, fast_wait, object_id_of, target,
};
use support::ui::{ASYNC_TIMEOUT, step_until};

#[tokio::test]
async fn static_group_waits_for_the_late_entra_object_then_adds_and_reads_back() {
    let (sim, graph) = support::signed_in_sim(empty_config()).await;
    let (a_id, a_did, b_id, group, profile) = sim.with_state(|s| {
        let (a_id, a_did) = add_device(s, "STAT-0001", "", true);
        // The second device is registered, but Entra has not created its object yet.
        let (b_id, _) = add_device(s, "STAT-0002", "", false);
        let group = add_group(s, "Autopilot static", None, vec![]);
        let profile = add_profile(s, "User-driven", 2025, &[&group]);
        (a_id, a_did, b_id, group, profile)
    });
    let shared = sim.shared.clone();
    let b_for_task = b_id.clone();
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let mut st = shared.lock();
        let did = directory::register_autopilot_device_object(
            &mut st,
            "STAT-0002",
            &b_for_task,
            None,
            None,
        );
        let dev = st.autopilot.device_mut(&b_for_task).expect("device");
        dev.azure_ad_device_id = did.clone();
        did
    });
    let t = target(&group, GroupMembership::Static, &profile, "User-driven");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let board = steps::run(&graph, &t, &[], &fast_wait(), move |p| {
        s2.lock().unwrap().push(p)
    })
    .await
    .expect("assignment completes");
    let b_did = late.await.expect("late object task");

    let progress = seen.lock().unwrap().clone();
    assert!(
        progress.contains(&Progress::ResolvingEntraObjects { found: 1, total: 2 }),
        "the wait saw one object missing first: {progress:?}"
    );
    let members = sim.with_state(|s| s.directory.group(&group).unwrap().members.clone());
    assert!(members.contains(&object_id_of(&sim, &a_did)));
    assert!(members.contains(&object_id_of(&sim, &b_did)));
    assert_eq!(board.rows.len(), 2);
    for r in &board.rows {
        assert!(r.is_ready(&profile), "{} not ready: {r:?}", r.serial);
        assert_eq!(r.profile_name.as_deref(), Some("User-driven"));
        assert_eq!(r.membership, MemberState::Member);
    }
    assert_eq!(board.summary().ready, 2);

    // Re-running adds nothing: both are members already.
    let devices = steps::list_devices(&graph).await.unwrap();
    let again = steps::ensure_static_members(&graph, &t, &devices, &fast_wait(), |_| {})
        .await
        .unwrap();
    assert!(again.added.is_empty(), "{again:?}");
    assert_eq!(again.already_members.len(), 2);
    let _ = a_id;
}

#[tokio::test]
async fn dynamic_group_is_waited_for_and_the_board_explains_the_wrong_tag() {
    let (sim, graph) = support::signed_in_sim(empty_config()).await;
    let (group, profile, hr_id) = sim.with_state(|s| {
        // Slow enough that the group is seen "Running" first.
        s.assignment.config.slowness = 20.0;
        add_device(s, "DYN-0001", "SALES", true);
        add_device(s, "DYN-0002", "SALES", true);
        let (hr_id, _) = add_device(s, "DYN-0003", "HR", true);
        let group = add_group(s, "Sales devices", Some(SALES_RULE), vec![]);
        let profile = add_profile(s, "Sales user-driven", 2025, &[&group]);
        (group, profile, hr_id)
    });
    let t = target(
        &group,
        GroupMembership::Dynamic {
            rule: SALES_RULE.into(),
        },
        &profile,
        "Sales user-driven",
    );
    let devices: Vec<_> = steps::list_devices(&graph)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.group_tag.as_deref() == Some("SALES"))
        .collect();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let snap = steps::wait_dynamic_membership(&graph, &t, &devices, &fast_wait(), move |p| {
        s2.lock().unwrap().push(p)
    })
    .await
    .expect("membership arrives");
    assert_eq!(snap.member_device_ids.len(), 2);
    let progress = seen.lock().unwrap().clone();
    assert!(
        matches!(
            progress.first(),
            Some(Progress::Membership {
                members: 0,
                total: 2,
                ..
            })
        ),
        "first poll saw no members yet: {progress:?}"
    );
    assert!(
        progress.iter().any(
            |p| matches!(p, Progress::Membership { processing: Some(s), .. } if s == "Running")
        )
    );

    let board = steps::load_board(&graph, &t).await.unwrap();
    let hr = board.row_by_id(&hr_id).unwrap();
    assert_eq!(hr.membership, MemberState::NotMember);
    let d = board.diagnose(hr);
    assert_eq!(d.action, FixAction::SetGroupTag("SALES".into()), "{d:?}");
    assert!(d.reason.contains("\"HR\""), "{}", d.reason);
}

#[tokio::test]
async fn an_older_profile_on_the_same_group_wins_and_the_board_says_so() {
    let (sim, graph) = support::signed_in_sim(empty_config()).await;
    let (dev_id, group, ours) = sim.with_state(|s| {
        let (dev_id, did) = add_device(s, "CONF-0001", "", true);
        let obj = s.directory.device_by_device_id(&did).unwrap().id.clone();
        let group = add_group(s, "Autopilot static", None, vec![obj]);
        add_profile(s, "Old kiosk profile", 2021, &[&group]);
        let ours = add_profile(s, "New user-driven", 2025, &[&group]);
        (dev_id, group, ours)
    });
    let t = target(&group, GroupMembership::Static, &ours, "New user-driven");
    let board = steps::wait_for_assignment(
        &graph,
        &t,
        std::slice::from_ref(&dev_id),
        &fast_wait(),
        |_| {},
    )
    .await
    .expect("the device settles");
    let row = board.row_by_id(&dev_id).unwrap();
    assert_eq!(row.chip, Chip::Assigned);
    assert!(row.assigned_at.is_some());
    assert_eq!(row.profile_name.as_deref(), Some("Old kiosk profile"));
    assert!(!row.is_ready(&ours));
    let d = board.diagnose(row);
    assert!(d.reason.contains("Another profile wins"), "{}", d.reason);
    assert!(d.reason.contains("Old kiosk profile"), "{}", d.reason);
    assert_eq!(board.summary().ready, 0);

    // The navigation endpoint agrees with the list.
    let http = support::raw_http();
    let token = sim.issue_token(&sim.admin().user_principal_name);
    let url = format!(
        "{}/beta/deviceManagement/windowsAutopilotDeviceIdentities/{dev_id}/deploymentProfile",
        sim.url()
    );
    let body: serde_json::Value = http
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["displayName"], "Old kiosk profile");
}

#[tokio::test]
async fn a_very_slow_service_ends_in_a_clear_timeout() {
    let (sim, graph) = support::signed_in_sim(empty_config()).await;
    let (dev_id, group, profile) = sim.with_state(|s| {
        s.assignment.config.slowness = 1_000_000.0;
        let (dev_id, did) = add_device(s, "SLOW-0001", "", true);
        let obj = s.directory.device_by_device_id(&did).unwrap().id.clone();
        let group = add_group(s, "Autopilot static", None, vec![obj]);
        let profile = add_profile(s, "User-driven", 2025, &[&group]);
        (dev_id, group, profile)
    });
    let t = target(&group, GroupMembership::Static, &profile, "User-driven");
    let opts = WaitOptions {
        phase_timeout: Duration::from_millis(300),
        ..fast_wait()
    };
    let err = steps::wait_for_assignment(&graph, &t, &[dev_id], &opts, |_| {})
        .await
        .expect_err("times out");
    assert!(matches!(err, AssignmentError::Timeout { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("Gave up waiting"), "{msg}");
    assert!(msg.contains("SLOW-0001"), "{msg}");
    assert!(msg.contains("no time limit"), "{msg}");
}

#[tokio::test]
async fn edits_are_sent_read_back_and_move_the_order_id() {
    let (sim, graph) = support::signed_in_sim(empty_config()).await;
    let (dev_id, did) = sim.with_state(|s| add_device(s, "EDIT-0001", "SALES", true));
    let edit = DeviceEdit {
        group_tag: Some("HR".into()),
        display_name: Some("HR-LAPTOP-01".into()),
        user_principal_name: None,
    };
    let out = steps::update_device(&graph, &dev_id, &edit).await.unwrap();
    assert_eq!(out.device.group_tag.as_deref(), Some("HR"));
    assert_eq!(out.device.display_name.as_deref(), Some("HR-LAPTOP-01"));
    assert!(out.not_yet_visible.is_empty(), "{:?}", out.not_yet_visible);
    let ids = sim.with_state(|s| {
        s.directory
            .device_by_device_id(&did)
            .unwrap()
            .physical_ids
            .clone()
    });
    assert!(ids.contains(&"[OrderID]:HR".to_string()), "{ids:?}");
    assert!(!ids.iter().any(|i| i == "[OrderID]:SALES"), "{ids:?}");

    // A 16-character computer name never reaches Graph.
    let bad = DeviceEdit {
        display_name: Some("ABCDEFGHIJKLMNOP".into()),
        ..DeviceEdit::default()
    };
    let err = steps::update_device(&graph, &dev_id, &bad)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at most 15"), "{err}");

    // The service refuses parameters the version does not have.
    let http = support::raw_http();
    let token = sim.issue_token(&sim.admin().user_principal_name);
    let url = |v: &str| {
        format!(
            "{}/{v}/deviceManagement/windowsAutopilotDeviceIdentities/{dev_id}/updateDeviceProperties",
            sim.url()
        )
    };
    let r = http
        .post(url("v1.0"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"deviceFriendlyName": "Hub"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .post(url("beta"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"deviceFriendlyName": "Hub"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn assigning_then_clearing_the_user_uses_the_documented_actions() {
    let (sim, graph) = support::signed_in_sim(empty_config()).await;
    let (dev_id, _) = sim.with_state(|s| add_device(s, "EDIT-0002", "SALES", true));
    let upn = sim.admin().user_principal_name;
    let assign = DeviceEdit {
        user_principal_name: Some(upn.clone()),
        ..DeviceEdit::default()
    };
    let out = steps::update_device(&graph, &dev_id, &assign)
        .await
        .unwrap();
    assert_eq!(
        out.device.user_principal_name.as_deref(),
        Some(upn.as_str())
    );

    sim.clear_requests();
    let clear = DeviceEdit {
        user_principal_name: Some(String::new()),
        ..DeviceEdit::default()
    };
    let out = steps::update_device(&graph, &dev_id, &clear).await.unwrap();
    assert!(
        out.device
            .user_principal_name
            .as_deref()
            .unwrap_or("")
            .is_empty(),
        "{:?}",
        out.device.user_principal_name
    );
    let posts: Vec<String> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path)
        .collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(posts[0].ends_with("/unassignUserFromDevice"), "{posts:?}");
}

#[tokio::test]
async fn sync_now_respects_the_ten_minute_window() {
    let (_sim, graph) = support::signed_in_sim(empty_config()).await;
    let first = steps::sync_now(&graph).await.unwrap();
    assert_eq!(first, steps::SyncNow::Triggered);
    // At test speed the simulated service would accept another sync after a few ms; the
    // wizard still refuses, from the trigger time Graph reports (10 real minutes).
    tokio::time::sleep(Duration::from_millis(100)).await;
    match steps::sync_now(&graph).await.unwrap() {
        steps::SyncNow::TooSoon(d) => assert!(d > Duration::from_secs(9 * 60), "{d:?}"),
        other => panic!("a second sync was not held back: {other:?}"),
    }
}

// ---- the board page --------------------------------------------------------------------------

fn row(serial: &str, status: &str, profile: Option<&str>) -> BoardRow {
    BoardRow {
        id: serial.to_lowercase(),
        serial: serial.into(),
        manufacturer: "Contoso".into(),
        model: "Laptop 7".into(),
        group_tag: "HQ".into(),
        display_name: String::new(),
        user_principal_name: String::new(),
        entra_device_id: Some(format!("e-{serial}")),
        membership: MemberState::Member,
        profile_id: profile.map(|p| p.to_string()),
        profile_name: profile.map(|_| "User-driven".to_string()),
        intended_profile_id: profile.map(|p| p.to_string()),
        intended_profile_name: None,
        status_raw: status.into(),
        chip: Chip::from_raw(status),
        detailed_status: if status == "failed" {
            "hardwareRequirementsNotMet".into()
        } else {
            "none".into()
        },
        assigned_at: profile.map(|_| Utc::now()),
        enrollment_state: "notContacted".into(),
        last_contact: None,
        remediation_state: "noRemediationRequired".into(),
        deployment: None,
    }
}

fn mixed_board() -> Board {
    Board {
        target: Target {
            group_id: "g".into(),
            group_name: "Autopilot devices".into(),
            membership: GroupMembership::Static,
            profile_id: "p".into(),
            profile_name: "User-driven".into(),
        },
        rows: vec![
            row("PC-A1", "assignedInSync", Some("p")),
            row("PC-A2", "assignedUnkownSyncState", Some("p")),
            row("PC-P1", "pending", None),
            row("PC-N1", "notAssigned", None),
            row("HL-F1", "failed", None),
        ],
        group: GroupSnapshot::default(),
        loaded_at: Utc::now(),
    }
}

struct PageState {
    page: AssignmentPage,
    session: Session,
    outcomes: autopilot_wizard::steps::Outcomes,
    jobs: Vec<autopilot_wizard::ui::Job>,
    /// What the board handed to "Remove devices".
    removal: Option<Vec<String>>,
}

fn board_harness(page: AssignmentPage) -> Harness<'static, PageState> {
    let state = PageState {
        page,
        session: Session::default(),
        outcomes: Default::default(),
        jobs: Vec::new(),
        removal: None,
    };
    Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_ui_state(
            |ui, s: &mut PageState| {
                let mut cx = PageCx::new(&mut s.session, &mut s.outcomes, &mut s.jobs);
                s.page.ui(ui, &mut cx);
                if let Some(r) = cx.take_removal_request() {
                    s.removal = Some(r);
                }
            },
            state,
        )
}

#[test]
fn the_board_shows_counts_chips_and_filters() {
    let mut h = board_harness(AssignmentPage::new(None).with_board(mixed_board()));
    h.run();
    h.get_by_label("Assigned: 2");
    h.get_by_label("Pending: 1");
    h.get_by_label("Not assigned: 1");
    h.get_by_label("Failed: 1");
    h.get_by_label("Ready (assigned \"User-driven\" with a date): 2 of 5");
    // Issue 18: one "Check now", in the toolbar, also while the device that is not ready
    // yet is only pending (its problem line says to wait, without a second button).
    let mut pending = mixed_board();
    pending
        .rows
        .retain(|r| r.serial == "PC-A1" || r.serial == "PC-P1");
    let mut hp = board_harness(AssignmentPage::new(None).with_board(pending));
    hp.run();
    hp.get_by_label_contains("Not ready: PC-P1");
    assert_eq!(hp.query_all_by_label("Check now").count(), 1);
    // One chip per row (the legend shows their colours).
    assert_eq!(h.query_all_by_label(" Assigned ").count(), 2);
    assert_eq!(h.query_all_by_label(" Failed ").count(), 1);

    h.get_by_label("Failed (1)").click();
    h.run();
    assert_eq!(
        h.state_mut().page.visible_serials(),
        vec!["HL-F1".to_string()]
    );
    h.get_by_label("All (5)").click();
    h.run();
    assert_eq!(h.state_mut().page.visible_serials().len(), 5);

    let search = h.get_by_role_and_label(egui::accesskit::Role::TextInput, "Search serial");
    search.focus();
    h.run();
    h.get_by_role_and_label(egui::accesskit::Role::TextInput, "Search serial")
        .type_text("pc-a");
    h.run();
    assert_eq!(
        h.state_mut().page.visible_serials(),
        vec!["PC-A1".to_string(), "PC-A2".to_string()]
    );
    assert!(!h.state().page.validated());
    // Issue 16: the rows shown go to "Remove devices" together (nothing is sent from here).
    assert_eq!(h.state().removal, None);
    h.get_by_label("Remove the 2 devices shown…").click();
    h.run();
    assert_eq!(
        h.state().removal,
        Some(vec!["PC-A1".to_string(), "PC-A2".to_string()])
    );
}

#[test]
fn the_details_panel_gives_the_reason_and_the_edit_validates_the_name() {
    let mut page = AssignmentPage::new(None)
        .with_board(mixed_board())
        .with_save_picker(Arc::new(FixedSavePath("unused.csv".into())));
    page.select_serial("HL-F1");
    let mut h = board_harness(page);
    h.run();
    h.get_by_label_contains("does not meet the requirements");
    // Issue 18: the maker is said once when the model already names it.
    h.get_by_label("Contoso Laptop 7");
    let mut board = mixed_board();
    for r in &mut board.rows {
        r.manufacturer = "HP".into();
        r.model = "HP EliteBook 840 G8 Notebook PC".into();
    }
    let mut hp = AssignmentPage::new(None).with_board(board);
    hp.select_serial("HL-F1");
    let mut h2 = board_harness(hp);
    h2.run();
    h2.get_by_label_contains("does not meet the requirements");
    assert!(h2.query_by_label_contains("HP HP").is_none());
    h.get_by_label("Edit…").click();
    h.run();
    let name = h.get_by_role_and_label(egui::accesskit::Role::TextInput, "Computer name");
    name.focus();
    h.run();
    h.get_by_role_and_label(egui::accesskit::Role::TextInput, "Computer name")
        .type_text("THIS-NAME-IS-TOO-LONG");
    h.run();
    h.get_by_label_contains("Windows allows at most 15");
}

#[test]
fn export_writes_the_filtered_rows_as_csv() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("board.csv");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut h = board_harness(
        AssignmentPage::new(None)
            .with_board(mixed_board())
            .with_save_picker(Arc::new(FixedSavePath(path.clone()))),
    );
    h.run();
    h.get_by_label("Pending (1)").click();
    h.run();
    h.get_by_label("Export CSV").click();
    h.run();
    // Run the queued job like the app would, and hand its message back to the page.
    let jobs = std::mem::take(&mut h.state_mut().jobs);
    assert_eq!(jobs.len(), 1);
    let (tx, rx) = std::sync::mpsc::channel();
    let ctx = egui::Context::default();
    for job in jobs {
        rt.block_on((job.run)(autopilot_wizard::ui::Outbox::new(
            tx.clone(),
            ctx.clone(),
        )));
    }
    let msg = rx.try_recv().expect("export message");
    let autopilot_wizard::ui::Msg::Assignment(m) = msg else {
        panic!("wrong page");
    };
    {
        let s = h.state_mut();
        let mut cx = PageCx::new(&mut s.session, &mut s.outcomes, &mut s.jobs);
        s.page.on_msg(m, &mut cx);
    }
    h.run();
    h.get_by_label_contains("Exported to");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("Serial number,"));
    assert!(lines[1].starts_with("PC-P1,"));
    // Issue 18: words where a person reads, the raw values only in their own columns.
    let mut csv = ::csv::Reader::from_reader(text.as_bytes());
    let header = csv.headers().unwrap().clone();
    let record = csv.records().next().unwrap().unwrap();
    let cell = |name: &str| {
        let i = header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{name}: {header:?}"));
        record[i].to_string()
    };
    assert_eq!(cell("Enrollment state"), "Not contacted yet");
    assert_eq!(cell("Raw enrollment state"), "notContacted");
    assert_eq!(cell("Detailed status"), "No details");
    assert_eq!(cell("Raw detailed status"), "none");
    assert_eq!(cell("Raw status"), "pending");
    for (name, value) in header.iter().zip(record.iter()) {
        if !name.starts_with("Raw ") {
            assert!(
                !["notContacted", "none", "pending", "assignedInSync"].contains(&value),
                "{name} carries the raw {value:?}"
            );
        }
    }
}

// ---- issue 9: statuses that never go stale, fixes where the problem is named ------------------

fn assignment_msg(m: autopilot_wizard::ui::Msg) -> Option<autopilot_wizard::ui::assignment::Msg> {
    match m {
        autopilot_wizard::ui::Msg::Assignment(m) => Some(m),
        _ => None,
    }
}

/// Checks in milliseconds, so the tests see several automatic checks.
fn quick_checks() -> CheckPlan {
    CheckPlan {
        first: Duration::from_millis(60),
        max: Duration::from_millis(200),
        settled: Duration::from_millis(300),
        after_change: Duration::from_secs(30),
    }
}

#[test]
fn a_device_that_falls_back_leaves_done_on_the_next_automatic_check() {
    let rt = support::ui::runtime();
    let (sim, graph) = rt.block_on(support::signed_in_sim(empty_config()));
    let (group, profile) = sim.with_state(|s| {
        let (_, did) = add_device(s, "STALE-0001", "", true);
        let obj = s.directory.device_by_device_id(&did).unwrap().id.clone();
        let group = add_group(s, "Autopilot static", None, vec![obj]);
        let profile = add_profile(s, "User-driven", 2025, &[&group]);
        (group, profile)
    });
    let mut page = AssignmentPage::new(Some(target(
        &group,
        GroupMembership::Static,
        &profile,
        "User-driven",
    )));
    page.checks = CheckPlan {
        // Settled boards are still checked; nothing else may bring the regression in.
        after_change: Duration::ZERO,
        ..quick_checks()
    };
    let mut h = support::page::page_harness(
        page,
        graph,
        Default::default(),
        rt.handle().clone(),
        assignment_msg,
    );
    step_until(
        &mut h,
        "the device is assigned and step 6 is Done",
        |h| h.state().page.status() == StepStatus::Done,
        ASYNC_TIMEOUT,
    );
    assert!(h.state().page.validated());
    // The next check is announced beside "Check now", with when the last one was.
    h.get_by_label("Check now");
    h.get_by_label_contains("Next check in");
    h.get_by_label_contains("last checked ");
    // Issue 18: nothing is left to wait for.
    assert!(
        h.query_by_label_contains("to get the profile").is_none()
            && h.query_by_label_contains("to the group and wait").is_none(),
        "{}",
        support::ui::visible_labels(&h)
    );

    // The profile's assignment is removed in the tenant. No click from here on.
    sim.with_state(|s| s.profiles.assignments.clear());
    step_until(
        &mut h,
        "step 6 leaves Done on an automatic check",
        |h| h.state().page.status() != StepStatus::Done,
        ASYNC_TIMEOUT,
    );
    assert!(!h.state().page.validated());
    let outcome = h.state().outcomes.assignment.clone().expect("read-back");
    assert!(!outcome.all_ready, "{outcome:?}");
    h.get_by_label_contains("Not ready: STALE-0001");
}

#[test]
fn checks_stay_within_the_cap_while_nothing_moves() {
    let rt = support::ui::runtime();
    let (sim, graph) = rt.block_on(support::signed_in_sim(empty_config()));
    let (group, profile) = sim.with_state(|s| {
        // Not in any group: "not assigned", so the board keeps checking.
        add_device(s, "IDLE-0001", "", true);
        let group = add_group(s, "Autopilot static", None, vec![]);
        let profile = add_profile(s, "User-driven", 2025, &[&group]);
        (group, profile)
    });
    let mut page = AssignmentPage::new(Some(target(
        &group,
        GroupMembership::Static,
        &profile,
        "User-driven",
    )));
    page.checks = quick_checks();
    let plan = page.checks.clone();
    let mut h = support::page::page_harness(
        page,
        graph,
        Default::default(),
        rt.handle().clone(),
        assignment_msg,
    );
    support::ui::wait_for_text(&mut h, "Not ready: IDLE-0001");
    let started = std::time::Instant::now();
    let mut seen = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        h.step();
        if let Some(next) = h.state().page.next_check_in() {
            seen += 1;
            assert!(next <= plan.max, "next check in {next:?}, over the cap");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(seen > 0, "no automatic check was ever planned");
}

#[test]
fn the_fix_on_the_problem_line_retags_and_the_board_sees_it_soon() {
    let rt = support::ui::runtime();
    let (sim, graph) = rt.block_on(support::signed_in_sim(empty_config()));
    let (group, profile, dev) = sim.with_state(|s| {
        let (dev, _) = add_device(s, "RETAG-0001", "HQ", true);
        let group = add_group(s, "Sales devices", Some(SALES_RULE), vec![]);
        let profile = add_profile(s, "Sales user-driven", 2025, &[&group]);
        (group, profile, dev)
    });
    let mut page = AssignmentPage::new(Some(target(
        &group,
        GroupMembership::Dynamic {
            rule: SALES_RULE.into(),
        },
        &profile,
        "Sales user-driven",
    )));
    // The default cap, but the first interval short: the test waits for real checks.
    page.checks = CheckPlan {
        first: Duration::from_millis(100),
        ..CheckPlan::default()
    };
    let mut h = support::page::page_harness(
        page,
        graph,
        Default::default(),
        rt.handle().clone(),
        assignment_msg,
    );
    support::ui::wait_for_text(&mut h, "Not ready: RETAG-0001");
    // The fix is a button on the line that names the problem; no row has to be found first.
    support::ui::click(&mut h, "Set group tag to SALES");
    support::ui::wait_for_text(&mut h, "Saved");
    let tag = sim.with_state(|s| {
        s.autopilot
            .devices
            .iter()
            .find(|d| d.id == dev)
            .map(|d| d.group_tag.clone())
    });
    assert_eq!(tag.as_deref(), Some("SALES"));
    let next = h.state().page.next_check_in().expect("a check is planned");
    assert!(next <= Duration::from_millis(100), "next check in {next:?}");
    step_until(
        &mut h,
        "the board sees the retagged device get the profile by itself",
        |h| h.state().page.status() == StepStatus::Done,
        ASYNC_TIMEOUT,
    );
}

fn board_harness_at(page: AssignmentPage, size: egui::Vec2) -> Harness<'static, PageState> {
    let mut h = board_harness(page);
    h.set_size(size);
    h.run();
    h
}

#[test]
fn a_click_on_a_rows_text_opens_its_details_without_moving_it() {
    let mut h = board_harness_at(
        AssignmentPage::new(None).with_board(mixed_board()),
        egui::vec2(870.0, 720.0),
    );
    let before = h.get_by_label("PC-N1").rect();
    assert!(h.query_by_label("Device PC-N1").is_none());
    h.get_by_label("PC-N1").click();
    h.run();
    h.get_by_label("Device PC-N1");
    let after = h.get_by_label("PC-N1").rect();
    assert_eq!(before.min.y, after.min.y, "the clicked row moved");
    // The row's other text opens it too, and a right click as well.
    h.get_by_label("Close").click();
    h.run();
    assert!(h.query_by_label("Device PC-N1").is_none());
    h.get_by_label("HL-F1").click_secondary();
    h.run();
    h.get_by_label("Device HL-F1");
}

#[test]
fn graph_values_show_as_words_with_the_raw_value_kept_for_support() {
    let mut page = AssignmentPage::new(None).with_board(mixed_board());
    page.select_serial("PC-A1");
    let mut h = board_harness(page);
    h.run();
    assert!(h.query_all_by_label("Not contacted yet").count() >= 1);
    h.get_by_label("Assigned, in sync");
    for raw in ["notContacted", "assignedInSync", "notAssigned", "pending"] {
        assert!(
            h.query_by_label(raw).is_none(),
            "{raw} is shown as it came from Graph"
        );
    }
}

#[test]
fn the_board_columns_fit_a_laptop_window_with_the_serial_first() {
    // The central area of the wizard at 1100 px (the step list takes 230).
    let mut h = board_harness_at(
        AssignmentPage::new(None).with_board(mixed_board()),
        egui::vec2(870.0, 720.0),
    );
    let serial = h.get_by_label("Serial number ^").rect();
    let date = h.get_by_label("Date assigned").rect();
    assert!(serial.min.x < date.min.x);
    assert!(date.max.x <= 870.0, "Date assigned is cut: {date:?}");
    // Issue 18: the legend is one line.
    let first = h.get_by_label("Assigned: 2").rect();
    let end = h.get_by_label("Failed: 1").rect();
    assert_eq!(first.center().y, end.center().y, "the legend wraps");
    // The last row is above the window's bottom edge.
    let last = h.get_by_label("PC-P1").rect();
    assert!(last.max.y <= 720.0, "{last:?}");
    // With the details open the table narrows; the serial stays, nothing spills.
    h.get_by_label("PC-P1").click();
    h.run();
    let serial = h.get_by_label("Serial number ^").rect();
    assert!(serial.min.x < 20.0, "{serial:?}");
    let close = h.get_by_label("Close").rect();
    assert!(close.max.x <= 870.0, "{close:?}");
}

fn import_of(serials: &[&str]) -> autopilot_wizard::steps::import::ImportJob {
    use autopilot_wizard::steps::import::{ImportJob, ImportRow};
    ImportJob::new(
        serials
            .iter()
            .enumerate()
            .map(|(i, s)| ImportRow {
                serial: s.to_string(),
                file: "devices.csv".into(),
                line: i + 2,
                ..ImportRow::default()
            })
            .collect(),
    )
}

#[test]
fn counts_agree_an_empty_filter_says_so_and_assign_says_what_it_does() {
    let mut h = board_harness(AssignmentPage::new(None).with_board(mixed_board()));
    h.state_mut().outcomes.import = Some(import_of(&["PC-A1", "PC-A2"]));
    h.run();
    // Bar, legend, ready line and filter all count the two imported devices.
    h.get_by_label(&format!(
        "2 of 2 devices imported in {} ready",
        StepId::Import.step_n()
    ));
    h.get_by_label("Assigned: 2");
    h.get_by_label_contains("Ready (assigned \"User-driven\" with a date): 2 of 2");
    h.get_by_label("All (2)");
    // Both have the profile: nothing is left to wait for (issue 18).
    assert!(h.query_by_label_contains("to the group and wait").is_none());
    h.get_by_label("Show all devices in the tenant").click();
    h.run();
    h.get_by_label("All (5)");
    h.get_by_label(&format!(
        "2 of 2 devices imported in {} ready",
        StepId::Import.step_n()
    ));

    support::ui::type_into(&mut h, "Search serial", "nothing-like-this");
    h.get_by_label("No devices match");
    h.get_by_label("Show all").click();
    h.run();
    assert_eq!(h.state_mut().page.visible_serials().len(), 5);
    // One of the imported devices still pending: the button says what it will do.
    let mut h = board_harness(AssignmentPage::new(None).with_board(mixed_board()));
    h.state_mut().outcomes.import = Some(import_of(&["PC-A1", "PC-P1"]));
    h.run();
    h.get_by_label("Add 2 devices to the group and wait");
}

/// The board follows step 5's job by its revision, not by walking its rows every frame (issue 18,
/// point 14): every stored job is a new revision, so a device left out after the import leaves
/// the board's counts at once, and an unchanged job is not looked at again.
#[test]
fn the_import_scope_follows_each_stored_job_and_only_then() {
    use autopilot_wizard::steps::import::RowOutcome;
    let job = import_of(&["PC-A1", "PC-A2"]);
    // A copy may be changed on its own: it is another revision, but the same value.
    let copy = job.clone();
    assert_ne!(copy.revision.get(), job.revision.get());
    assert_eq!(copy, job);
    let json = serde_json::to_string(&job).unwrap();
    let back: autopilot_wizard::steps::import::ImportJob = serde_json::from_str(&json).unwrap();
    assert_ne!(back.revision.get(), job.revision.get());
    assert_eq!(back, job);

    let mut h = board_harness(AssignmentPage::new(None).with_board(mixed_board()));
    h.state_mut().outcomes.import = Some(job.clone());
    h.run();
    h.get_by_label("All (2)");
    // Step 5 leaves PC-A2 out and stores its job again: the board counts one device.
    let mut left_out = job.clone();
    left_out.rows[1].outcome = RowOutcome::Excluded {
        reason: "left out".into(),
    };
    h.state_mut().outcomes.import = Some(left_out.clone());
    h.run();
    h.get_by_label("All (1)");
    h.get_by_label(&format!(
        "1 of 1 devices imported in {} ready",
        StepId::Import.step_n()
    ));
    // Back to both devices (a new job value), and to nothing imported at all.
    h.state_mut().outcomes.import = Some(job);
    h.run();
    h.get_by_label("All (2)");
    h.state_mut().outcomes.import = None;
    h.run();
    h.get_by_label("All (5)");
}

/// The app ticks every page every frame: with 9,000 devices imported, a tick after the first
/// must not walk the import again (a hash of its rows each frame made the board's frames three
/// times slower, issue 18 point 14). Timed against the first tick, which builds the scope.
#[test]
fn a_tick_does_not_walk_an_unchanged_import() {
    let serials: Vec<String> = (0..9_000).map(|i| format!("SN{i:08}")).collect();
    let refs: Vec<&str> = serials.iter().map(String::as_str).collect();
    let mut outcomes = autopilot_wizard::steps::Outcomes {
        import: Some(import_of(&refs)),
        ..Default::default()
    };
    let mut session = Session::default();
    let mut jobs = Vec::new();
    let mut page = AssignmentPage::new(None);
    let ctx = egui::Context::default();
    let mut cx = PageCx::new(&mut session, &mut outcomes, &mut jobs);
    let started = std::time::Instant::now();
    page.tick(&ctx, &mut cx);
    let first = started.elapsed();
    let started = std::time::Instant::now();
    for _ in 0..100 {
        page.tick(&ctx, &mut cx);
    }
    let hundred = started.elapsed();
    assert!(
        hundred < first * 2,
        "100 ticks took {hundred:?}, the first (building the scope) {first:?}: the import is \
         walked every frame"
    );
}

#[test]
fn a_retag_is_offered_only_for_devices_of_the_import() {
    let mut board = mixed_board();
    board.target.membership = GroupMembership::Dynamic {
        rule: SALES_RULE.into(),
    };
    for r in &mut board.rows {
        r.membership = MemberState::NotMember;
    }
    let mut page = AssignmentPage::new(None).with_board(board);
    page.select_serial("PC-N1");
    let mut h = board_harness(page);
    h.state_mut().outcomes.import = Some(import_of(&["PC-P1"]));
    h.run();
    h.get_by_label("Device PC-N1");
    assert!(
        h.query_by_label("Set group tag to SALES").is_none() || {
            // The problem line (PC-P1, in the import) may offer it; the details of PC-N1 must not.
            h.query_all_by_label("Set group tag to SALES").count() == 1
        }
    );
    h.get_by_label_contains("not part of the wizard's import");
    h.get_by_label("Show all devices in the tenant").click();
    h.run();
    h.get_by_label("PC-P1").click();
    h.run();
    h.get_by_label("Device PC-P1");
    // Problem line and details both offer the fix for the imported device.
    assert_eq!(h.query_all_by_label("Set group tag to SALES").count(), 2);
}

/// Where no save dialog can open, "Export CSV" says so at once (not "cancelled") and offers a
/// path in the Documents folder that saves without any dialog.
#[test]
fn export_without_a_save_dialog_offers_a_path_that_works() {
    use autopilot_wizard::ui::{NoDialog, NoDialogPicker};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typed.csv");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut h = board_harness(
        AssignmentPage::new(None)
            .with_board(mixed_board())
            .with_save_picker(Arc::new(NoDialogPicker(NoDialog {
                why: "there is no desktop session bus (D-Bus) and zenity is not installed".into(),
            }))),
    );
    h.run();
    h.get_by_label("Export CSV").click();
    h.run();
    assert!(
        h.state().jobs.is_empty(),
        "nothing waits for a dialog that cannot open"
    );
    h.get_by_label_contains("No file dialog can open here");
    h.get_by_label_contains("zenity");
    assert!(h.query_by_label_contains("cancelled").is_none());
    let field = h.get_by_role_and_label(egui::accesskit::Role::TextInput, "Export to");
    let default = field.value().unwrap_or_default();
    assert!(
        default.contains("autopilot-devices-") && default.ends_with(".csv"),
        "a sensible default file name: {default}"
    );
    field.focus();
    h.run();
    for _ in 0..default.chars().count() + 2 {
        h.key_press(egui::Key::Backspace);
    }
    h.get_by_role_and_label(egui::accesskit::Role::TextInput, "Export to")
        .type_text(&path.display().to_string());
    h.run();
    h.get_by_label("Save here").click();
    h.run();
    let jobs = std::mem::take(&mut h.state_mut().jobs);
    assert_eq!(jobs.len(), 1);
    let (tx, rx) = std::sync::mpsc::channel();
    let ctx = egui::Context::default();
    for job in jobs {
        rt.block_on((job.run)(autopilot_wizard::ui::Outbox::new(
            tx.clone(),
            ctx.clone(),
        )));
    }
    let autopilot_wizard::ui::Msg::Assignment(m) = rx.try_recv().expect("export message") else {
        panic!("wrong page");
    };
    {
        let s = h.state_mut();
        let mut cx = PageCx::new(&mut s.session, &mut s.outcomes, &mut s.jobs);
        s.page.on_msg(m, &mut cx);
    }
    h.run();
    h.get_by_label_contains("Exported to");
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("Serial number,")
    );
    assert!(
        h.query_by_label_contains("No file dialog can open here")
            .is_none()
    );
}

/// 25 devices: two `PATCH /groups/{id}` (20 + 5). A device added by someone else between the
/// read and the second batch makes Graph refuse that batch whole; those five go one by one.
#[tokio::test]
async fn static_members_are_added_twenty_at_a_time_with_per_device_fallback() {
    let (sim, graph) = support::signed_in_sim(empty_config()).await;
    let (group, profile, dids) = sim.with_state(|s| {
        let dids: Vec<String> = (0..25)
            .map(|i| add_device(s, &format!("BATCH-{i:04}"), "", true).1)
            .collect();
        let group = add_group(s, "Static batch", None, vec![]);
        let profile = add_profile(s, "User-driven", 2025, &[&group]);
        (group, profile, dids)
    });
    let t = target(&group, GroupMembership::Static, &profile, "User-driven");
    let devices = steps::list_devices(&graph).await.unwrap();
    // The last device: in the second batch, which the first batch's progress report precedes.
    let late_object = object_id_of(&sim, &dids[24]);
    let shared = sim.shared.clone();
    let group_for_cb = group.clone();
    let mut raced = false;
    sim.clear_requests();
    let report = steps::ensure_static_members(&graph, &t, &devices, &fast_wait(), move |p| {
        if let Progress::AddingMembers { added: 20, .. } = p
            && !raced
        {
            raced = true;
            let mut st = shared.lock();
            let g = st.directory.group_mut(&group_for_cb).unwrap();
            g.members.push(late_object.clone());
        }
    })
    .await
    .expect("members added");
    assert_eq!(report.added.len(), 24, "{report:?}");
    assert_eq!(report.already_members, vec!["BATCH-0024".to_string()]);
    assert_eq!(report.confirmed.len(), 25);
    let reqs = sim.requests();
    let count = |method: &str, suffix: &str| {
        reqs.iter()
            .filter(|r| r.method.as_str() == method && r.path.ends_with(suffix))
            .count()
    };
    let patches: Vec<u16> = reqs
        .iter()
        .filter(|r| r.method.as_str() == "PATCH")
        .map(|r| r.status)
        .collect();
    assert_eq!(
        patches,
        vec![204, 400],
        "20 accepted, then the raced batch refused"
    );
    assert_eq!(
        count("POST", "/members/$ref"),
        5,
        "fallback only for the refused batch"
    );
    let members = sim.with_state(|s| s.directory.group(&group).unwrap().members.clone());
    assert_eq!(members.len(), 25);
}

// ---- issue 15: following each device through OOBE ----------------------------------------------

#[test]
fn the_deployment_column_follows_devices_switched_on_through_oobe() {
    use autopilot_wizard::sim::esp::StoredApp;
    let rt = support::ui::runtime();
    let (sim, graph) = rt.block_on(support::signed_in_sim(empty_config()));
    let (group, profile) = sim.with_state(|s| {
        let mut objects = Vec::new();
        for serial in ["OOBE-0001", "OOBE-0002", "OOBE-0003"] {
            let (_, did) = add_device(s, serial, "", true);
            objects.push(s.directory.device_by_device_id(&did).unwrap().id.clone());
        }
        let group = add_group(s, "Autopilot static", None, objects);
        let profile = add_profile(s, "User-driven", 2025, &[&group]);
        // The default ESP waits for one Win32 app: the one that fails on one PC.
        s.esp.apps.push(StoredApp {
            id: "app-1".into(),
            odata_type: "microsoft.graph.win32LobApp".into(),
            display_name: "Contoso Timesheets".into(),
            publisher: "Contoso".into(),
            required_for: vec![None],
        });
        s.esp.configs[0]
            .settings
            .insert("selectedMobileAppIds".into(), serde_json::json!(["app-1"]));
        (group, profile)
    });
    let mut page = AssignmentPage::new(Some(target(
        &group,
        GroupMembership::Static,
        &profile,
        "User-driven",
    )));
    page.checks = quick_checks();
    let mut h = support::page::page_harness(
        page,
        graph,
        Default::default(),
        rt.handle().clone(),
        assignment_msg,
    );
    step_until(
        &mut h,
        "the devices have the profile",
        |h| h.state().page.status() == StepStatus::Done,
        ASYNC_TIMEOUT,
    );
    // Before OOBE: every device "Not started", no deployment summary.
    assert!(h.query_by_label_contains("Deployments:").is_none());
    support::ui::click(&mut h, "Switch on 3 devices");
    support::ui::wait_for_text(&mut h, "Switched on OOBE-0001, OOBE-0002, OOBE-0003");
    support::ui::wait_for_text(&mut h, "Deployments: 2 succeeded, 1 failed");
    h.get_by_label("Deployment");
    assert_eq!(
        h.query_all_by_label_contains("Succeeded in 19 min").count(),
        2
    );
    h.get_by_label("Failed: Contoso Timesheets");
    // The device details show the timeline and what to do.
    h.get_by_label("OOBE-0003").click();
    h.run();
    h.get_by_label("Deployment timeline");
    h.get_by_label("Account setup: failed (6 min)");
    h.get_by_label_contains("stopped at account setup: the app \"Contoso Timesheets\"");
    // Nothing is deploying any more: no report read of its own is planned (the next board
    // check reads it again), so an idle board does not wake up for it.
    assert_eq!(h.state().page.next_deployments_check_in(), None);
    // The CSV carries the words and the raw state.
    let board = h.state().page.board().unwrap().clone();
    let mut out = Vec::new();
    autopilot_wizard::board::export_csv(&board, board.rows.iter(), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("Deployment,Raw deployment state"), "{text}");
    assert!(
        text.contains("Failed: Contoso Timesheets,failure"),
        "{text}"
    );
    assert!(text.contains("Succeeded in 19 min,success"), "{text}");
}
