//! Step 7 against the simulated tenant over HTTP: a healthy tenant is "ready", a broken one is
//! "not ready" with the reason; the report escapes names; the page shows the verdict.

use crate::support;

use autopilot_wizard::sim::SimHandle;
use autopilot_wizard::sim::directory::JoinScope;
use autopilot_wizard::steps::assignment::{self as assignment, GroupMembership};
use autopilot_wizard::steps::deployment;
use autopilot_wizard::steps::validate::{
    self as validate, CheckId, CheckItem, DeviceVerdict, Report, ValidateInputs, Verdict,
};
use autopilot_wizard::ui::validate::ValidatePage;
use autopilot_wizard::ui::{Page, PageCx, Session, StepStatus};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use support::tenant::{add_device, add_group, add_profile, empty_config, fast_wait, target};

/// A tenant where everything is in place: one device in a static group, a user-driven Entra
/// join profile assigned to the group, everyone may join and enroll. Returns the inputs after
/// waiting for the service to assign the profile.
async fn healthy(
    profile_name: &str,
) -> (
    SimHandle,
    autopilot_wizard::graph::GraphClient,
    ValidateInputs,
) {
    let (sim, graph) = support::signed_in_sim(empty_config()).await;
    let (dev_id, group, profile) = sim.with_state(|s| {
        let (dev_id, did) = add_device(s, "VAL-0001", "", true);
        let obj = s.directory.device_by_device_id(&did).unwrap().id.clone();
        let group = add_group(s, "Autopilot <devices>", None, vec![obj]);
        let profile = add_profile(s, profile_name, 2025, &[&group]);
        (dev_id, group, profile)
    });
    let t = target(&group, GroupMembership::Static, &profile, profile_name);
    assignment::wait_for_assignment(&graph, &t, &[dev_id], &fast_wait(), |_| {})
        .await
        .expect("the device gets the profile");
    // A healthy tenant has an Enrollment Status Page that protects the group.
    autopilot_wizard::steps::esp::create_recommended(&graph, &group, &|_| {})
        .await
        .expect("the recommended ESP");
    let inputs = ValidateInputs {
        tenant: "Contoso".into(),
        deployers: vec![],
        target: t,
        expected_serials: vec!["VAL-0001".into()],
        outcomes: Default::default(),
    };
    (sim, graph, inputs)
}

fn item(report: &Report, id: CheckId) -> &CheckItem {
    report.items.iter().find(|i| i.id == id).expect("item")
}

#[tokio::test]
async fn a_healthy_tenant_is_ready() {
    let (_sim, graph, inputs) = healthy("User-driven").await;
    let report = validate::run(&graph, &inputs).await;
    for i in &report.items {
        assert_eq!(i.verdict, Verdict::Pass, "{}: {:?}", i.title, i.evidence);
    }
    assert!(report.ready, "{}", report.to_text());
    assert_eq!(report.devices.len(), 1);
    assert!(report.devices[0].ready);
    assert!(report.devices[0].assigned_at.is_some());
    assert_eq!(
        report.devices[0].profile_name.as_deref(),
        Some("User-driven")
    );
}

#[tokio::test]
async fn nobody_may_join_makes_it_not_ready_with_the_reason() {
    let (sim, graph, inputs) = healthy("User-driven").await;
    sim.with_state(|s| s.directory.registration_policy.join = JoinScope::None);
    let report = validate::run(&graph, &inputs).await;
    assert!(!report.ready);
    let join = item(&report, CheckId::JoinPermission);
    assert_eq!(join.verdict, Verdict::Fail, "{:?}", join.evidence);
    assert!(join.evidence[0].contains("None"), "{:?}", join.evidence);
    let problem = report.first_problem().unwrap();
    assert!(problem.contains("join devices"), "{problem}");
    // The rest still passes: the verdict points at the one thing that is wrong.
    assert_eq!(item(&report, CheckId::Devices).verdict, Verdict::Pass);
}

#[tokio::test]
async fn a_profile_not_assigned_to_the_group_is_not_ready() {
    let (sim, graph, inputs) = healthy("User-driven").await;
    sim.with_state(|s| s.profiles.assignments.clear());
    let report = validate::run(&graph, &inputs).await;
    assert!(!report.ready);
    let a = item(&report, CheckId::ProfileAssignment);
    assert_eq!(a.verdict, Verdict::Fail, "{:?}", a.evidence);
    assert!(a.evidence[0].contains("NOT assigned"), "{:?}", a.evidence);
    assert!(a.fix.as_deref().unwrap().contains("Assign the profile"));
}

#[tokio::test]
async fn the_html_report_has_the_checklist_and_escapes_names() {
    let (_sim, graph, inputs) = healthy("Sales & <HQ> \"laptops\"").await;
    let report = validate::run(&graph, &inputs).await;
    let html = report.to_html();
    // The "Deployments" items come once a device has been through OOBE (below).
    let before_oobe: Vec<&CheckId> = CheckId::ALL
        .iter()
        .filter(|c| **c != deployment::CHECK_DEPLOYMENT)
        .collect();
    for id in &before_oobe {
        assert!(
            html.contains(&validate::escape_html(id.title())),
            "missing item {id:?}"
        );
    }
    assert!(html.contains("Sales &amp; &lt;HQ&gt; &quot;laptops&quot;"));
    assert!(html.contains("Autopilot &lt;devices&gt;"));
    assert!(!html.contains("<HQ>"));
    assert!(!html.contains("<devices>"));
    assert!(html.contains("VAL-0001"));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["items"].as_array().unwrap().len(), before_oobe.len());
    assert!(report.to_text().contains("[✔]"));
}

#[tokio::test]
async fn a_deployments_section_comes_once_a_device_went_through_oobe_and_a_failure_fails_it() {
    let (sim, graph, inputs) = healthy("User-driven").await;
    let report = validate::run(&graph, &inputs).await;
    assert!(
        report
            .items
            .iter()
            .all(|i| i.id != deployment::CHECK_DEPLOYMENT),
        "no section before any device was switched on"
    );
    assert!(report.ready, "{}", report.to_text());
    sim.switch_on(&autopilot_wizard::sim::oobe::SwitchOn {
        serials: vec!["VAL-0001".into()],
        count: 0,
        fail: Some("VAL-0001".into()),
    });
    let start = std::time::Instant::now();
    let report = loop {
        let r = validate::run(&graph, &inputs).await;
        if r.items
            .iter()
            .any(|i| i.id == deployment::CHECK_DEPLOYMENT && i.verdict == Verdict::Fail)
        {
            break r;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{}",
            r.to_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(!report.ready, "a failed deployment is not READY");
    let item = item(&report, deployment::CHECK_DEPLOYMENT);
    assert!(
        item.title.starts_with("Deployment of VAL-0001: Failed"),
        "{}",
        item.title
    );
    assert!(item.fix.as_deref().unwrap().contains("VAL-0001"));
    assert!(report.to_text().contains("Deployment of VAL-0001"));
    // The recommended ESP of the healthy tenant names it in the evidence.
    assert!(
        item.evidence
            .iter()
            .any(|e| e.contains("Enrollment Status Page")),
        "{:?}",
        item.evidence
    );
}

// ---- the page --------------------------------------------------------------------------------

struct PageState {
    page: ValidatePage,
    session: Session,
    outcomes: autopilot_wizard::steps::Outcomes,
    jobs: Vec<autopilot_wizard::ui::Job>,
}

fn page_harness(page: ValidatePage) -> Harness<'static, PageState> {
    Harness::builder()
        .with_size(egui::vec2(1100.0, 900.0))
        .build_ui_state(
            |ui, s: &mut PageState| {
                let mut cx = PageCx::new(&mut s.session, &mut s.outcomes, &mut s.jobs);
                s.page.ui(ui, &mut cx);
            },
            PageState {
                page,
                session: Session::default(),
                outcomes: Default::default(),
                jobs: Vec::new(),
            },
        )
}

fn sample_report(join_ok: bool) -> Report {
    let items = CheckId::ALL
        .iter()
        .map(|&id| {
            let ok = id != CheckId::JoinPermission || join_ok;
            CheckItem::new(
                id,
                if ok { Verdict::Pass } else { Verdict::Fail },
                vec![format!("evidence for {id:?}")],
                (!ok).then(|| "Allow the deploying users to join devices.".to_string()),
            )
        })
        .collect();
    let devices = vec![DeviceVerdict {
        id: "d1".into(),
        serial: "VAL-0001".into(),
        ready: true,
        status_raw: "assignedInSync".into(),
        profile_name: Some("User-driven".into()),
        assigned_at: Some(chrono::Utc::now()),
        in_group: true,
        reason: String::new(),
    }];
    Report::new(
        "Contoso",
        "User-driven",
        "Autopilot devices",
        items,
        devices,
    )
}

#[test]
fn the_page_shows_ready() {
    let mut h = page_harness(ValidatePage::new(None).with_report(sample_report(true)));
    h.run();
    h.get_by_label("READY: devices can be deployed");
    h.get_by_label("evidence for Devices");
    h.get_by_label("Devices: 1 of 1 ready");
    h.get_by_label("Save report (HTML)");
    h.get_by_label("Copy as text").click();
    h.run();
    h.get_by_label("Copied to the clipboard.");
    assert!(h.state().page.validated());
    assert_eq!(h.state().page.status(), StepStatus::Done);
}

/// Issue 18: the report says the status in words (the raw value only in its own HTML column),
/// and names the devices left out on purpose with why, on the page, in "Copy as text" and in
/// the HTML.
#[test]
fn the_report_says_words_and_names_the_devices_left_out() {
    use autopilot_wizard::steps::validate::LeftOut;
    let report = sample_report(true).with_left_out(vec![LeftOut {
        serial: "SN-808".into(),
        reason: "left out after the import failed (registered to another organisation)".into(),
    }]);
    let mut h = page_harness(ValidatePage::new(None).with_report(report.clone()));
    h.run();
    h.get_by_label("Left out on purpose: 1");
    h.get_by_label_contains("SN-808: left out after the import failed");
    h.get_by_label("Copy as text").click();
    h.step();
    let copied = h
        .output()
        .platform_output
        .commands
        .iter()
        .find_map(|c| match c {
            egui::OutputCommand::CopyText(t) => Some(t.clone()),
            _ => None,
        })
        .expect("copied");
    assert!(copied.contains("Assigned, in sync"), "{copied}");
    assert!(!copied.contains("assignedInSync"), "{copied}");
    assert!(copied.contains("Left out on purpose: 1"), "{copied}");
    assert!(
        copied.contains("SN-808  left out after the import failed"),
        "{copied}"
    );
    let html = report.to_html();
    assert!(html.contains("<td>Assigned, in sync</td>"), "{html}");
    assert!(html.contains("<th>Raw status</th>"));
    assert_eq!(
        html.matches("assignedInSync").count(),
        1,
        "only in its column"
    );
    assert!(html.contains("<td>SN-808</td><td>left out after the import failed"));
}

#[test]
fn the_page_shows_not_ready_with_the_reason() {
    let mut h = page_harness(ValidatePage::new(None).with_report(sample_report(false)));
    h.run();
    h.get_by_label("NOT READY");
    h.get_by_label_contains("Reason: The deploying users may join devices");
    h.get_by_label("To do: Allow the deploying users to join devices.");
    assert_eq!(h.query_all_by_label("failed").count(), 1);
    assert_eq!(
        h.query_all_by_label("passed").count(),
        // Every item but the failed one, and the device.
        CheckId::ALL.len() - 1 + 1
    );
    assert!(!h.state().page.validated());
    assert_eq!(h.state().page.status(), StepStatus::NeedsAttention);
}

/// Where no save dialog can open, "Save report" says so at once (never "cancelled") and saves
/// to a typed path.
#[test]
fn save_report_without_a_dialog_offers_a_path_that_works() {
    use autopilot_wizard::ui::{NoDialog, NoDialogPicker};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.html");
    let page = ValidatePage::new(None)
        .with_report(sample_report(true))
        .with_save_picker(std::sync::Arc::new(NoDialogPicker(NoDialog {
            why: "xdg-desktop-portal is not installed and neither is zenity".into(),
        })));
    let mut h = page_harness(page);
    h.run();
    h.get_by_label("Save report (HTML)").click();
    h.run();
    assert!(h.state().jobs.is_empty());
    h.get_by_label_contains("No file dialog can open here");
    assert!(h.query_by_label_contains("cancelled").is_none());
    let field = h.get_by_role_and_label(egui::accesskit::Role::TextInput, "Save report to");
    let default = field.value().unwrap_or_default();
    assert!(
        default.contains("autopilot-validation-") && default.ends_with(".html"),
        "{default}"
    );
    field.focus();
    h.run();
    for _ in 0..default.chars().count() + 2 {
        h.key_press(egui::Key::Backspace);
    }
    h.get_by_role_and_label(egui::accesskit::Role::TextInput, "Save report to")
        .type_text(&path.display().to_string());
    h.run();
    h.get_by_label("Save here").click();
    h.run();
    let jobs = std::mem::take(&mut h.state_mut().jobs);
    assert_eq!(jobs.len(), 1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for job in jobs {
        rt.block_on((job.run)(autopilot_wizard::ui::Outbox::new(
            tx.clone(),
            egui::Context::default(),
        )));
    }
    let autopilot_wizard::ui::Msg::Validate(m) = rx.try_recv().expect("saved message") else {
        panic!("wrong page");
    };
    {
        let s = h.state_mut();
        let mut cx = PageCx::new(&mut s.session, &mut s.outcomes, &mut s.jobs);
        s.page.on_msg(m, &mut cx);
    }
    h.run();
    h.get_by_label_contains("Saved to");
    assert!(std::fs::read_to_string(&path).unwrap().contains("VAL-0001"));
}

// ---- issue 9: the verdict stays in view, names the failing check, and never goes stale --------

fn report_with_devices(n: usize) -> Report {
    let items = CheckId::ALL
        .iter()
        .map(|&id| {
            CheckItem::new(
                id,
                Verdict::Pass,
                vec![
                    format!("first evidence for {id:?}"),
                    format!("second evidence for {id:?}"),
                    format!("third evidence for {id:?}"),
                ],
                None,
            )
        })
        .collect();
    let devices = (0..n)
        .map(|i| DeviceVerdict {
            id: format!("d{i}"),
            serial: format!("VAL-{i:04}"),
            ready: true,
            status_raw: "assignedInSync".into(),
            profile_name: Some("User-driven".into()),
            assigned_at: Some(chrono::Utc::now()),
            in_group: true,
            reason: String::new(),
        })
        .collect();
    Report::new(
        "Contoso",
        "User-driven",
        "Autopilot devices",
        items,
        devices,
    )
}

/// The page as the wizard shows it: inside the window's scroll area, at 1100x720 minus the
/// step list.
fn laptop_harness(page: ValidatePage) -> Harness<'static, PageState> {
    Harness::builder()
        .with_size(egui::vec2(870.0, 720.0))
        .build_ui_state(
            |ui, s: &mut PageState| {
                egui::ScrollArea::vertical()
                    .auto_shrink([false, false])
                    .show(ui, |ui| {
                        let mut cx = PageCx::new(&mut s.session, &mut s.outcomes, &mut s.jobs);
                        s.page.ui(ui, &mut cx);
                    });
            },
            PageState {
                page,
                session: Session::default(),
                outcomes: Default::default(),
                jobs: Vec::new(),
            },
        )
}

#[test]
fn the_verdict_and_its_actions_stay_at_the_top() {
    let mut h = laptop_harness(ValidatePage::new(None).with_report(report_with_devices(60)));
    h.run();
    let verdict = h.get_by_label("READY: devices can be deployed").rect();
    for label in ["Save report (HTML)", "Save report (JSON)", "Copy as text"] {
        let r = h.get_by_label(label).rect();
        assert!(r.max.y <= 720.0, "{label} is out of view: {r:?}");
        assert!(r.min.y > verdict.min.y, "{label} is above the verdict");
    }
    // The details come after the actions.
    let first_item = h
        .get_by_label("The deploying users may join devices to Microsoft Entra")
        .rect();
    assert!(first_item.min.y > h.get_by_label("Copy as text").rect().max.y);
    // Statuses in words; the raw value only in the tooltip.
    assert!(h.query_all_by_label("Assigned, in sync").count() > 0);
    assert!(h.query_by_label("assignedInSync").is_none());
}

/// Issue 18: in a laptop window the devices (and those left out on purpose) are in view
/// under the verdict, not below the checklist.
#[test]
fn the_devices_are_in_view_under_the_verdict() {
    use autopilot_wizard::steps::validate::LeftOut;
    let report = report_with_devices(3).with_left_out(vec![LeftOut {
        serial: "SN-808".into(),
        reason: "left out after the import failed".into(),
    }]);
    let mut h = laptop_harness(ValidatePage::new(None).with_report(report));
    h.run();
    for label in [
        "Devices: 3 of 3 ready",
        "VAL-0002",
        "Left out on purpose: 1",
    ] {
        let r = h.get_by_label(label).rect();
        assert!(r.max.y <= 720.0, "{label} is out of view: {r:?}");
    }
}

#[test]
fn the_headline_names_the_failing_check_and_the_cause() {
    use autopilot_wizard::board::{Board, BoardRow, Chip, GroupSnapshot, MemberState};
    let target = target(
        "g",
        GroupMembership::Dynamic {
            rule: support::tenant::SALES_RULE.into(),
        },
        "p",
        "User-driven",
    );
    let row = |serial: &str| BoardRow {
        id: serial.to_lowercase(),
        serial: serial.into(),
        manufacturer: "Contoso".into(),
        model: "Laptop 7".into(),
        group_tag: "HQ".into(),
        display_name: String::new(),
        user_principal_name: String::new(),
        entra_device_id: Some(format!("e-{serial}")),
        membership: MemberState::NotMember,
        profile_id: None,
        profile_name: None,
        intended_profile_id: None,
        intended_profile_name: None,
        status_raw: "notAssigned".into(),
        chip: Chip::NotAssigned,
        detailed_status: "none".into(),
        assigned_at: None,
        enrollment_state: "notContacted".into(),
        last_contact: None,
        remediation_state: "noRemediationRequired".into(),
        deployment: None,
    };
    let board = Board {
        target,
        rows: vec![row("TAG-1"), row("TAG-2")],
        group: GroupSnapshot::default(),
        loaded_at: chrono::Utc::now(),
    };
    let devices = validate::devices_item(&board, &["TAG-1".into(), "TAG-2".into()]);
    assert_eq!(devices.verdict, Verdict::Fail);
    let fix = devices.fix.clone().unwrap();
    assert!(
        fix.contains("2 devices have a group tag") && fix.contains("\"SALES\""),
        "{fix}"
    );
    assert!(!fix.contains("only need more time"), "{fix}");
    let mut items: Vec<CheckItem> = CheckId::ALL
        .iter()
        .filter(|&&id| id != CheckId::Devices)
        .map(|&id| CheckItem::new(id, Verdict::Pass, vec!["ok".into()], None))
        .collect();
    items.push(devices);
    let report = Report::new("Contoso", "User-driven", "Sales", items, vec![]);
    let mut h = laptop_harness(ValidatePage::new(None).with_report(report));
    h.run();
    h.get_by_label("NOT READY");
    let reason = h.get_by_label_contains("Reason: Every device is registered");
    assert!(
        h.query_all_by_label_contains("2 devices have a group tag that keeps them out of")
            .any(|n| n.rect() == reason.rect()),
        "the headline does not name the cause"
    );
    assert!(reason.rect().max.y <= 720.0);
}

#[test]
fn a_newer_board_read_back_takes_a_ready_report_out_of_done() {
    use autopilot_wizard::board::Summary;
    use autopilot_wizard::steps::assignment::AssignmentOutcome;
    let mut h = laptop_harness(ValidatePage::new(None).with_report(report_with_devices(1)));
    h.run();
    assert_eq!(h.state().page.status(), StepStatus::Done);
    // Step 6 reads the devices again after the check (an edit on the board): one fell back.
    h.state_mut().outcomes.assignment = Some(AssignmentOutcome {
        summary: Summary {
            total: 1,
            not_assigned: 1,
            ..Summary::default()
        },
        all_ready: false,
        checked_at: Some(chrono::Utc::now() + chrono::Duration::seconds(1)),
    });
    h.state_mut().outcomes.validation = Some(Default::default());
    h.run();
    assert_ne!(h.state().page.status(), StepStatus::Done);
    assert!(!h.state().page.validated());
    assert!(h.state().outcomes.validation.is_none());
    h.get_by_label_contains("no longer holds");
    // An older read-back (from before the check) does not.
    let mut h = laptop_harness(ValidatePage::new(None).with_report(report_with_devices(1)));
    h.state_mut().outcomes.assignment = Some(AssignmentOutcome {
        summary: Summary::default(),
        all_ready: false,
        checked_at: Some(chrono::Utc::now() - chrono::Duration::seconds(60)),
    });
    h.run();
    assert_eq!(h.state().page.status(), StepStatus::Done);
}
