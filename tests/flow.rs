//! The whole procedure through the real app, by clicking labelled widgets, against an
//! in-process simulated tenant: sign in, join permission, deployment profile, device group and
//! profile assignment. Next must stay disabled on every page until its result was read back.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use autopilot_wizard::app::{AppConfig, WizardApp};
use autopilot_wizard::sim::directory::JoinScope;
use autopilot_wizard::sim::profiles::StoredTarget;
use autopilot_wizard::sim::{self, Shared, SimConfig, SimHandle, SimState, Speed};
use autopilot_wizard::ui::{FixedFilePicker, StepId, StepStatus};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use support::ui::{
    ASYNC_TIMEOUT, is_enabled, offered, runtime, step_until, visible_labels, wait_shown,
};

type H = Harness<'static, WizardApp>;

/// The group tag the devices of this office get, and the dynamic group that collects them.
const TAG: &str = "Contoso-Office";
const GROUP: &str = "Autopilot - Contoso office";
const PROFILE: &str = "Contoso - user-driven";
/// The real hardware-hash files from three PCs (one device each).
const SAMPLES: &[&str] = &[
    "01-utf16-plain-hp.csv",
    "03-utf16-plain-lenovo.csv",
    "04-utf16-plain-lenovo2.csv",
];

/// The real sample CSVs (UTF-16 with BOM, as Windows PowerShell writes them) copied to `dir`
/// with a Group Tag column, as `Get-WindowsAutopilotInfo -GroupTag` writes it. Returns the
/// paths and the serial numbers.
fn tagged_samples(dir: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let mut paths = Vec::new();
    let mut serials = Vec::new();
    for name in SAMPLES {
        let bytes = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/csv")
                .join(name),
        )
        .unwrap();
        assert_eq!(&bytes[..2], &[0xFF, 0xFE], "{name} is UTF-16 LE with BOM");
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let text = String::from_utf16(&units).unwrap();
        let mut out = String::new();
        for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            if i == 0 {
                out.push_str(&format!("{line},Group Tag\r\n"));
            } else {
                serials.push(line.split(',').next().unwrap().to_string());
                out.push_str(&format!("{line},{TAG}\r\n"));
            }
        }
        let mut encoded = vec![0xFF, 0xFE];
        for u in out.encode_utf16() {
            encoded.extend_from_slice(&u.to_le_bytes());
        }
        let path = dir.join(name);
        std::fs::write(&path, encoded).unwrap();
        paths.push(path);
    }
    (paths, serials)
}

/// Reads or changes the simulated tenant the app talks to (the app owns its handle).
fn tenant<R>(shared: &Shared, f: impl FnOnce(&mut SimState) -> R) -> R {
    f(&mut shared.lock())
}

fn app(rt: &tokio::runtime::Runtime, sim: SimHandle, picked: Vec<PathBuf>) -> H {
    let config = AppConfig {
        file_picker: Arc::new(FixedFilePicker { paths: picked }),
        sim_speed: Speed::TEST,
        ..AppConfig::default()
    }
    .with_sim(sim);
    // Tall, so every page fits without scrolling (kittest clicks at a widget's centre).
    Harness::builder()
        .with_size([1280.0, 2400.0])
        .build_ui_state(
            |ui, app: &mut WizardApp| app.show(ui),
            WizardApp::new(config, rt.handle().clone()),
        )
}

thread_local! {
    /// Clicks and typed fields of the README story, from the first page to READY (issue 18:
    /// a newcomer gets there in at most 20 clicks). What the test tenant's own trap needs (an
    /// older All-devices profile, which the demo does not have) is not counted.
    static STORY: std::cell::Cell<(usize, usize, bool)> = const { std::cell::Cell::new((0, 0, true)) };
}

fn count(click: usize, typed: usize) {
    STORY.with(|c| {
        let (clicks, fields, on) = c.get();
        if on {
            c.set((clicks + click, fields + typed, on));
        }
    });
}

/// Stops (or resumes) counting: for what only the test tenant asks for.
fn counting(on: bool) {
    STORY.with(|c| {
        let (clicks, fields, _) = c.get();
        c.set((clicks, fields, on));
    });
}

/// The most clicks the README story may take, from the first page to READY.
const MAX_CLICKS: usize = 20;

/// Clicks the widget labelled exactly `label` once it shows and is enabled (a click of the
/// story).
fn press(h: &mut H, label: &str) {
    count(1, 0);
    support::ui::press(h, label);
}

/// Replaces the text of the text field labelled `label` (a typed field of the story).
fn type_into(h: &mut H, label: &str, text: &str) {
    count(0, 1);
    support::ui::replace_text(h, label, text);
}

fn assert_on(h: &H, step: StepId) {
    assert_eq!(
        h.state().current_step(),
        Some(step),
        "visible:\n{}",
        visible_labels(h)
    );
}

fn status_of(h: &Harness<'_, WizardApp>, step: StepId) -> StepStatus {
    h.state()
        .step_statuses()
        .into_iter()
        .find(|(s, _)| *s == step)
        .map(|(_, st)| st)
        .unwrap_or_else(|| panic!("{step:?} is not in the stepper"))
}

/// Next is disabled on arrival, and opens the following step once the page validated.
fn next_after(h: &mut H, step: StepId, done_text: &str) {
    wait_shown(h, done_text);
    step_until(
        h,
        &format!("{step:?} validated (Next enabled)"),
        |h| {
            h.query_by_label("Next")
                .is_some_and(|n| !n.accesskit_node().is_disabled())
        },
        ASYNC_TIMEOUT,
    );
    assert_eq!(status_of(h, step), StepStatus::Done, "{step:?} status");
    press(h, "Next");
}

/// Step 5 as a new user does it: waits for the read, creates the recommended ESP for the
/// group, and waits until the step is Done (read back).
fn pass_esp(h: &mut H) {
    step_until(
        h,
        "the ESP read (the create button enabled)",
        |h| is_enabled(h, "Create the recommended ESP for this group"),
        ASYNC_TIMEOUT,
    );
    press(h, "Create the recommended ESP for this group");
    step_until(
        h,
        "the ESP step done once the recommended ESP was read back",
        |h| status_of(h, StepId::Esp) == StepStatus::Done,
        ASYNC_TIMEOUT,
    );
}

fn sign_in(h: &mut H) {
    h.run_ok();
    assert_on(h, StepId::SignIn);
    assert!(!is_enabled(h, "Next"), "Next before sign-in");
    press(h, "Sign in with a code");
    next_after(h, StepId::SignIn, "Signed in as");
    assert_on(h, StepId::JoinPermission);
}

fn choose_technicians(h: &mut H) {
    assert!(!is_enabled(h, "Next"), "Next before the join check");
    type_into(h, "Search users or groups", "technicians");
    press(h, "Search");
    press(h, "Add IT Technicians (group)");
}

#[test]
fn the_whole_procedure_by_clicking() {
    let rt = runtime();
    // Over HTTPS, as the real service is reached: the wizard trusts the tenant's CA as it would
    // a company proxy's (`--ca-file`), besides the system's store.
    let sim = rt
        .block_on(sim::spawn(SimConfig {
            tls: true,
            ..SimConfig::test()
        }))
        .unwrap();
    assert!(sim.url().starts_with("https://127.0.0.1:"), "{}", sim.url());
    support::trust_sim_ca(&sim);
    let dir = tempfile::tempdir().unwrap();
    let (picked, serials) = tagged_samples(dir.path());
    let shared = sim.shared.clone();
    let mut h = app(&rt, sim, picked);
    assert_eq!(
        h.state().steps(),
        StepId::ALL.to_vec(),
        "every step has its page, in procedure order"
    );

    sign_in(&mut h);

    // Step 2: the technicians deploy; both are covered by the demo tenant's policies.
    choose_technicians(&mut h);
    next_after(
        &mut h,
        StepId::JoinPermission,
        "Every deploying user may join devices",
    );
    assert_eq!(
        h.state()
            .outcomes()
            .join_permission
            .as_ref()
            .map(|o| o.validated),
        Some(true)
    );

    // Step 3: a user-driven, Entra join profile.
    assert_on(&h, StepId::Profile);
    assert!(!is_enabled(&h, "Next"), "Next before a profile is chosen");
    wait_shown(&mut h, "Kiosk - self-deploying");
    type_into(&mut h, "Name", PROFILE);
    press(&mut h, "Create profile");
    next_after(
        &mut h,
        StepId::Profile,
        &format!("Created the profile \"{PROFILE}\"."),
    );
    let profile = h
        .state()
        .outcomes()
        .profile
        .clone()
        .expect("profile outcome");
    assert_eq!(profile.display_name, PROFILE);

    // Step 4: a dynamic group for the office's group tag, with the profile assigned.
    assert_on(&h, StepId::Group);
    assert!(!is_enabled(&h, "Next"), "Next before the group");
    type_into(&mut h, "Group name", GROUP);
    press(&mut h, "Devices with these group tags (dynamic)");
    type_into(&mut h, "Group tags (comma-separated)", TAG);
    // One action: the group, then the profile assigned to it, both read back.
    press(&mut h, "Create group and assign the profile");
    wait_shown(&mut h, "Read back from Microsoft Entra and as expected.");
    wait_shown(&mut h, "confirmed by reading the assignments back");
    let group = h.state().outcomes().group.clone().expect("group outcome");
    assert_eq!(group.display_name, GROUP);
    // The demo tenant's older "all devices" profile would win over ours: the page says so,
    // flags the step and keeps Next closed until the user says they will fix it in Intune.
    wait_shown(&mut h, "the oldest profile wins");
    assert_eq!(status_of(&h, StepId::Group), StepStatus::NeedsAttention);
    assert!(!is_enabled(&h, "Next"), "Next while an older profile wins");
    // The demo has no such trap: what it takes here is not part of the README story.
    counting(false);
    press(&mut h, "I will remove that assignment in Intune, continue");
    assert!(is_enabled(&h, "Next"), "Next after the acknowledgement");
    // The fix, as the user would make it in Intune: remove the older profile's assignment.
    tenant(&shared, |s| {
        let before = s.profiles.assignments.len();
        s.profiles
            .assignments
            .retain(|a| a.target != StoredTarget::AllDevices);
        assert_eq!(
            s.profiles.assignments.len(),
            before - 1,
            "one All devices assignment"
        );
    });
    press(&mut h, &format!("Assign profile \"{PROFILE}\""));
    step_until(
        &mut h,
        "the group step done once the conflict is gone",
        |h| status_of(h, StepId::Group) == StepStatus::Done,
        ASYNC_TIMEOUT,
    );
    counting(true);
    press(&mut h, "Next");

    // The Enrollment Status Page: the recommended one is created for the group, read back, and the step is done.
    assert_on(&h, StepId::Esp);
    assert!(!is_enabled(&h, "Next"), "Next before the ESP was read");
    pass_esp(&mut h);
    press(&mut h, "Next");

    // The real sample CSVs, tagged for the group as Get-WindowsAutopilotInfo -GroupTag
    // writes them.
    assert_on(&h, StepId::Import);
    assert!(!is_enabled(&h, "Next"), "Next before the import");
    press(&mut h, "Choose CSV files…");
    // The demo tenant already has one of them, tagged for another office: it is skipped,
    // and the page offers to retag it so the group picks it up too.
    wait_shown(
        &mut h,
        "3 rows: 2 ready, 1 already registered (skipped), 0 with errors; 0 fixed automatically",
    );
    for serial in &serials {
        wait_shown(&mut h, serial);
    }
    wait_shown(&mut h, "PC0NVWSH: Already registered (group tag \"Sales\"");
    let retag = format!("Set group tag of PC0NVWSH to {TAG}");
    let import_at = h.get_by_label("Import").rect();
    press(&mut h, &retag);
    step_until(
        &mut h,
        "the retag read back",
        |h| h.query_by_label(&retag).is_none(),
        ASYNC_TIMEOUT,
    );
    // Issue 18: the retag is said where it was offered; "Import" stays under the pointer.
    wait_shown(&mut h, &format!("Gave PC0NVWSH the group tag {TAG}"));
    assert_eq!(h.get_by_label("Import").rect(), import_at, "the page moved");
    assert!(!is_enabled(&h, "Next"), "Next before the import ran");
    press(&mut h, "Import");
    // The demo tenant's third sample PC belongs to another organisation (error 808): the page
    // says what to do, and the step is done once it is deliberately left out.
    wait_shown(&mut h, "Import finished.");
    wait_shown(&mut h, "PF5MT6SC: Registered to another organisation (808)");
    assert!(!is_enabled(&h, "Next"), "Next with a failed device");
    assert_eq!(status_of(&h, StepId::Import), StepStatus::NeedsAttention);
    press(&mut h, "Leave failed devices out");
    next_after(
        &mut h,
        StepId::Import,
        "Every chosen device is registered or deliberately left out.",
    );
    let mut registered = tenant(&shared, |s| {
        s.autopilot
            .devices
            .iter()
            .filter(|d| serials.contains(&d.serial_number) && d.group_tag == TAG)
            .map(|d| d.serial_number.clone())
            .collect::<Vec<_>>()
    });
    registered.sort();
    assert_eq!(
        registered,
        ["5CG1457YL8", "PC0NVWSH"],
        "imported and retagged devices carry the tag"
    );

    // Step 6: the dynamic group picks them up and the profile reaches every device.
    assert_on(&h, StepId::Assignment);
    step_until(
        &mut h,
        "every device assigned",
        |h| status_of(h, StepId::Assignment) == StepStatus::Done,
        ASYNC_TIMEOUT,
    );
    wait_shown(
        &mut h,
        &format!(
            "Ready (assigned \"{PROFILE}\" with a date): 2 of 2 devices imported in {}",
            StepId::Import.step_n()
        ),
    );
    press(&mut h, "Next");

    // Step 7: the checklist over everything.
    // Opening it runs the checklist (issue 18: no click on "Run validation").
    assert_on(&h, StepId::Validate);
    wait_shown(&mut h, "READY: devices can be deployed");
    let (clicks, typed, _) = STORY.with(|c| c.get());
    counting(false);
    eprintln!("READY in {clicks} clicks and {typed} typed fields");
    assert!(
        clicks <= MAX_CLICKS,
        "READY took {clicks} clicks, more than {MAX_CLICKS}"
    );
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let said = format!("READY in {clicks} clicks and {typed} typed fields");
    assert!(
        readme.contains(&said),
        "the README says how many clicks the story takes: put \"{said}\" in it"
    );
    assert_eq!(status_of(&h, StepId::Validate), StepStatus::Done);
    assert_eq!(
        h.state().outcomes().validation.as_ref().map(|v| v.ready),
        Some(true)
    );
    assert!(!is_enabled(&h, "Next"), "the last step");
    for (step, status) in h.state().step_statuses() {
        assert_eq!(status, StepStatus::Done, "{step:?} at the end");
    }

    // Another deployer in step 2: the report of step 7 was about the old ones. Steps 3-6 do
    // not depend on the deployers and stay Done; step 7 leaves Done at once, and opened again
    // it runs the checklist by itself (no click on "Run validation").
    // Everyone may join and enroll, so the new deployer is covered too.
    tenant(&shared, |s| {
        s.directory.registration_policy.join = JoinScope::All;
        for p in &mut s.directory.mdm_policies {
            p.scope = autopilot_wizard::sim::directory::MdmScope::All;
        }
    });
    press(
        &mut h,
        &format!("{}. Join permission", StepId::JoinPermission.number()),
    );
    type_into(&mut h, "Search users or groups", "dana");
    press(&mut h, "Search");
    step_until(
        &mut h,
        "a user to add",
        |h| h.query_all_by_label_contains("Add Dana").next().is_some(),
        ASYNC_TIMEOUT,
    );
    h.query_all_by_label_contains("Add Dana")
        .next()
        .unwrap()
        .click();
    h.run_ok();
    step_until(
        &mut h,
        "the new deployers checked",
        |h| {
            h.state()
                .outcomes()
                .join_permission
                .as_ref()
                .is_some_and(|j| j.deployers.len() == 2)
        },
        ASYNC_TIMEOUT,
    );
    h.run_ok();
    assert_ne!(status_of(&h, StepId::Validate), StepStatus::Done);
    for step in [
        StepId::Profile,
        StepId::Group,
        StepId::Import,
        StepId::Assignment,
    ] {
        assert_eq!(status_of(&h, step), StepStatus::Done, "{step:?}");
    }
    assert_eq!(status_of(&h, StepId::JoinPermission), StepStatus::Done);
    {
        press(&mut h, &format!("{}. Validate", StepId::Validate.number()));
        assert!(
            h.query_by_label("READY: devices can be deployed").is_none(),
            "the verdict about the old deployers is gone"
        );
        // Nobody pressed "Run validation": the fresh page ran it on being opened.
        wait_shown(&mut h, "READY: devices can be deployed");
        assert_eq!(status_of(&h, StepId::Validate), StepStatus::Done);
    }

    // Done follows its inputs (issue 14): in step 4 the person switches to another existing
    // group, with none of the devices in it, and assigns the profile there. Every step computed
    // from the old group leaves Done at once, its old messages go with it, and step 7 checks
    // again by itself when opened.
    const OTHER: &str = "Autopilot - second office";
    tenant(&shared, |s| {
        let mut g = s
            .directory
            .groups
            .iter()
            .find(|g| g.display_name == GROUP)
            .unwrap()
            .clone();
        g.id = "22222222-0000-0000-0000-000000000001".into();
        g.display_name = OTHER.into();
        g.mail_nickname = "second-office".into();
        g.members.clear();
        g.group_types.clear();
        g.membership_rule = None;
        g.membership_rule_processing_state = None;
        s.directory.groups.push(g);
    });
    press(&mut h, &format!("{}. Device group", StepId::Group.number()));
    assert_on(&h, StepId::Group);
    press(&mut h, "Use an existing group");
    type_into(&mut h, "Search groups", "second");
    press(&mut h, "Find groups");
    press(&mut h, &format!("Use {OTHER}"));
    step_until(
        &mut h,
        "the other group read back",
        |h| {
            h.state()
                .outcomes()
                .group
                .as_ref()
                .is_some_and(|g| g.display_name == OTHER)
        },
        ASYNC_TIMEOUT,
    );
    h.run_ok();
    // The profile was assigned to the group before, not to this one: step 4 waits for it.
    assert_ne!(status_of(&h, StepId::Group), StepStatus::Done);
    assert!(
        h.query_all_by_label_contains("Removed the assignment")
            .next()
            .is_none()
    );
    for step in [StepId::Assignment, StepId::Validate] {
        assert_ne!(
            status_of(&h, step),
            StepStatus::Done,
            "{step:?} right after another group was picked"
        );
    }
    press(&mut h, &format!("Assign profile \"{PROFILE}\""));
    step_until(
        &mut h,
        "the group step done with the other group",
        |h| status_of(h, StepId::Group) == StepStatus::Done,
        ASYNC_TIMEOUT,
    );
    // The board follows the new group: none of the devices is a member, so step 6 is not Done
    // and never says the old "2 of 2".
    for _ in 0..20 {
        h.run_ok();
        assert_ne!(status_of(&h, StepId::Assignment), StepStatus::Done);
        assert_ne!(status_of(&h, StepId::Validate), StepStatus::Done);
    }
    // The ESP of step 5 was read for the old group: it waits too, and is done again once the
    // recommended ESP is in place for the new one.
    assert_ne!(status_of(&h, StepId::Esp), StepStatus::Done);
    press(
        &mut h,
        &format!("{}. Enrollment Status Page", StepId::Esp.number()),
    );
    pass_esp(&mut h);
    press(
        &mut h,
        &format!("{}. Profile assignment", StepId::Assignment.number()),
    );
    step_until(
        &mut h,
        "the board of the other group",
        |h| h.query_all_by_label_contains(OTHER).next().is_some(),
        ASYNC_TIMEOUT,
    );
    assert!(
        h.query_all_by_label_contains("2 of 2 devices imported")
            .next()
            .is_none(),
        "step 6 still says every device is ready:\n{}",
        visible_labels(&h)
    );
    // Step 7 opens (the stepper lets the person look) and runs the checklist by itself: the old
    // READY went with the old group.
    if status_of(&h, StepId::Validate) != StepStatus::NotStarted
        || h.state()
            .step_views()
            .iter()
            .any(|v| v.step == StepId::Validate && v.reachable)
    {
        press(&mut h, &format!("{}. Validate", StepId::Validate.number()));
        assert!(
            h.query_by_label("READY: devices can be deployed").is_none(),
            "the old verdict is gone"
        );
        wait_shown(&mut h, "NOT READY");
    }
    assert_ne!(status_of(&h, StepId::Validate), StepStatus::Done);
}

#[test]
fn nobody_may_join_shows_the_fix_and_next_stays_disabled() {
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    sim.with_state(|s| s.directory.registration_policy.join = JoinScope::None);
    let mut h = app(&rt, sim, Vec::new());
    sign_in(&mut h);
    choose_technicians(&mut h);
    wait_shown(&mut h, "Not ready yet");
    assert!(
        h.query_all_by_label_contains("No: ").next().is_some(),
        "the coverage table says who is not covered; visible:\n{}",
        visible_labels(&h)
    );
    assert!(h.query_by_label("Open Entra device settings").is_some());
    assert!(!is_enabled(&h, "Next"), "Next stays disabled");
    assert_eq!(
        status_of(&h, StepId::JoinPermission),
        StepStatus::NeedsAttention
    );
    // The later steps cannot be opened from the stepper either.
    let entry = h.get_by_label_contains("3. Deployment profile");
    assert!(entry.accesskit_node().is_disabled());
}

/// What `--demo` shows (the walkthrough seed) must let a person take a profile they create all
/// the way: no older profile claims every device, while the kiosk group still demonstrates the
/// oldest-profile-wins warning.
#[test]
fn the_demo_tenant_lets_a_new_profile_win_its_own_group() {
    use autopilot_wizard::steps::profile as step;
    let rt = runtime();
    rt.block_on(async {
        let config = SimConfig {
            speed: Speed::TEST,
            ..SimConfig::default()
        };
        assert_eq!(
            config.seed,
            sim::Seed::Walkthrough,
            "--demo uses the walkthrough"
        );
        let (sim, graph) = support::signed_in_sim(config).await;
        let kiosk = sim::profiles::DEMO_KIOSK_GROUP_ID;
        assert!(
            sim.with_state(|s| s
                .profiles
                .assignments
                .iter()
                .all(|a| a.target != StoredTarget::AllDevices)),
            "no All devices assignment in the walkthrough"
        );
        let form = step::ProfileForm {
            name: PROFILE.into(),
            ..step::ProfileForm::default()
        };
        let valid = step::validate(&form, &[] as &[&str]).expect("a valid form");
        let ours = step::create_profile(&graph, &valid).await.unwrap().profile;
        let fresh_group = "0b6f3c7e-5d1a-4f2e-8c3b-9a7d6e5f4c21";
        let none = step::conflicts_for_group(&graph, fresh_group, &ours.id)
            .await
            .unwrap();
        assert!(none.is_empty(), "{none:#?}");
        let kiosk_conflicts = step::conflicts_for_group(&graph, kiosk, &ours.id)
            .await
            .unwrap();
        assert_eq!(kiosk_conflicts.len(), 1, "{kiosk_conflicts:#?}");
        assert!(kiosk_conflicts[0].other_wins);
        assert!(
            sim.with_state(|s| s.directory.group(kiosk).is_some()),
            "the kiosk group the seeded profile targets exists"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Done follows its inputs, under any order of page actions (issue 14 §2): from READY, a random
// sequence of what a person does in the window; after every frame, no step is shown Done while
// the simulated tenant disagrees with what it claims.

const EMPTY_GROUP: &str = "Autopilot - second office";
const TAGGED_GROUP: &str = "Autopilot - tagged copy";

#[derive(Debug, Clone)]
enum Action {
    /// Opens a step from the stepper (when it is reachable).
    Visit(StepId),
    /// Step 4: use an existing group and assign the profile to it.
    UseGroup(&'static str),
    /// Step 4: "Assign profile" again, when it is offered.
    AssignAgain,
    /// Step 5: "Create the recommended ESP for this group", when offered.
    CreateEsp,
    /// Step 7: "Check now", when offered.
    CheckBoard,
    /// Step 8: "Run validation", when offered.
    RunValidation,
    /// Step 2: another deployer, checked.
    AddDeployer,
}

fn action() -> impl proptest::strategy::Strategy<Value = Action> {
    use proptest::prelude::*;
    prop_oneof![
        proptest::sample::select(StepId::ALL.to_vec()).prop_map(Action::Visit),
        proptest::sample::select(vec![GROUP, EMPTY_GROUP, TAGGED_GROUP]).prop_map(Action::UseGroup),
        Just(Action::AssignAgain),
        Just(Action::CreateEsp),
        Just(Action::CheckBoard),
        Just(Action::RunValidation),
        Just(Action::AddDeployer),
    ]
}

/// Opens `step` from the stepper; false when the stepper does not let the person go there.
fn visit(h: &mut H, step: StepId) -> bool {
    let label = format!("{}. {}", step.number(), step.title());
    let reachable = h
        .query_all_by_label_contains(&label)
        .next()
        .is_some_and(|n| !n.accesskit_node().is_disabled());
    if reachable {
        h.query_all_by_label_contains(&label)
            .next()
            .unwrap()
            .click();
        h.run_ok();
    }
    reachable
}

/// Clicks `label` if it shows and is enabled now; false otherwise.
fn press_if_offered(h: &mut H, label: &str) -> bool {
    if !offered(h, label) {
        return false;
    }
    press(h, label);
    true
}

fn perform(h: &mut H, action: &Action) {
    match action {
        Action::Visit(step) => {
            visit(h, *step);
        }
        Action::UseGroup(name) => {
            if !visit(h, StepId::Group) {
                return;
            }
            press(h, "Use an existing group");
            type_into(h, "Search groups", name);
            press(h, "Find groups");
            press(h, &format!("Use {name}"));
            let assign = format!("Assign profile \"{PROFILE}\"");
            step_until(
                h,
                "the group read back (assign offered or done)",
                |h| offered(h, &assign) || status_of(h, StepId::Group) == StepStatus::Done,
                ASYNC_TIMEOUT,
            );
            press_if_offered(h, &assign);
        }
        Action::AssignAgain => {
            if visit(h, StepId::Group) {
                press_if_offered(h, &format!("Assign profile \"{PROFILE}\""));
            }
        }
        Action::CreateEsp => {
            if visit(h, StepId::Esp) {
                press_if_offered(h, "Create the recommended ESP for this group");
            }
        }
        Action::CheckBoard => {
            if visit(h, StepId::Assignment) {
                press_if_offered(h, "Check now");
            }
        }
        Action::RunValidation => {
            if visit(h, StepId::Validate) {
                press_if_offered(h, "Run validation");
            }
        }
        Action::AddDeployer => {
            if !visit(h, StepId::JoinPermission) {
                return;
            }
            let has_dana = |h: &H| {
                h.state()
                    .outcomes()
                    .join_permission
                    .as_ref()
                    .is_some_and(|j| {
                        j.deployers
                            .iter()
                            .any(|d| format!("{d:?}").contains("Dana"))
                    })
            };
            if has_dana(h) {
                return;
            }
            type_into(h, "Search users or groups", "dana");
            press(h, "Search");
            step_until(
                h,
                "a user to add",
                |h| h.query_all_by_label_contains("Add Dana").next().is_some(),
                ASYNC_TIMEOUT,
            );
            if let Some(n) = h.query_all_by_label_contains("Add Dana").next() {
                n.click();
            }
            // Choosing a deployer checks the join permission by itself.
            h.run_ok();
        }
    }
}

/// Every step shown Done agrees with the simulated tenant, read directly.
fn assert_done_agrees(h: &H, shared: &Shared, after: &[Action]) {
    let statuses = h.state().step_statuses();
    let done = |s: StepId| {
        statuses
            .iter()
            .any(|(id, st)| *id == s && *st == StepStatus::Done)
    };
    let o = h.state().outcomes();
    let fail = |what: &str| -> ! {
        panic!(
            "{what}\nafter {after:?}\nstatuses {statuses:?}\nvisible:\n{}",
            visible_labels(h)
        )
    };
    for (step, status) in &statuses {
        if *status != StepStatus::Done {
            continue;
        }
        for up in step.def().depends_on {
            // An upstream step checking again (reads in flight) leaves the last read-back
            // standing; one that needs attention or has no result does not.
            let rechecking = statuses
                .iter()
                .any(|(id, st)| id == up && *st == StepStatus::InProgress);
            if !done(*up) && !rechecking {
                fail(&format!(
                    "{step:?} is Done while {up:?}, which it depends on, is not"
                ));
            }
        }
    }
    let s = shared.lock();
    let profile_id = o.profile.as_ref().map(|p| p.id.clone());
    let group_id = o.group.as_ref().map(|g| g.id.clone());
    let profile_reaches_group = || {
        s.profiles.assignments.iter().any(|a| {
            Some(&a.profile_id) == profile_id.as_ref()
                && matches!(&a.target, StoredTarget::Group(g) if Some(g) == group_id.as_ref())
        })
    };
    let serials: Vec<String> = o
        .import
        .as_ref()
        .map(|j| j.expected_serials().collect())
        .unwrap_or_default();
    let devices_ready = || {
        let members = group_id
            .as_deref()
            .map(|g| autopilot_wizard::sim::directory::transitive_members(&s.directory, g))
            .unwrap_or_default();
        serials.iter().all(|serial| {
            s.autopilot.devices.iter().any(|d| {
                d.serial_number == *serial
                    && d.assigned_profile_id == profile_id
                    && s.directory
                        .device_by_device_id(&d.azure_ad_device_id)
                        .is_some_and(|e| members.contains(&e.id.to_ascii_lowercase()))
            })
        })
    };
    if done(StepId::Group) && !profile_reaches_group() {
        fail("step 4 is Done but the profile is not assigned to its group");
    }
    if done(StepId::Esp) && o.esp.as_ref().map(|e| &e.group_id) != group_id.as_ref() {
        fail("step 5 is Done for another group than step 4's");
    }
    if done(StepId::Import)
        && !serials
            .iter()
            .all(|x| s.autopilot.devices.iter().any(|d| d.serial_number == *x))
    {
        fail("step 6 is Done but a device of the import is not registered");
    }
    if done(StepId::Assignment) && !devices_ready() {
        fail("step 7 is Done but a device is not in the group with the profile");
    }
    if done(StepId::Validate)
        && !(o.validation.as_ref().is_some_and(|v| v.ready)
            && profile_reaches_group()
            && devices_ready())
    {
        fail("step 8 is Done but the tenant is not READY");
    }
}

/// The procedure to READY, as short as a person does it on a tenant without the conflicts the
/// main walk demonstrates.
fn walk_to_ready(h: &mut H) {
    sign_in(h);
    choose_technicians(h);
    next_after(
        h,
        StepId::JoinPermission,
        "Every deploying user may join devices",
    );
    wait_shown(h, "Kiosk - self-deploying");
    type_into(h, "Name", PROFILE);
    press(h, "Create profile");
    next_after(
        h,
        StepId::Profile,
        &format!("Created the profile \"{PROFILE}\"."),
    );
    type_into(h, "Group name", GROUP);
    press(h, "Devices with these group tags (dynamic)");
    type_into(h, "Group tags (comma-separated)", TAG);
    press(h, "Create group and assign the profile");
    wait_shown(h, "Read back from Microsoft Entra and as expected.");
    next_after(
        h,
        StepId::Group,
        "confirmed by reading the assignments back",
    );
    pass_esp(h);
    press(h, "Next");
    press(h, "Choose CSV files…");
    wait_shown(h, "3 rows:");
    let retag = format!("Set group tag of PC0NVWSH to {TAG}");
    press(h, &retag);
    step_until(
        h,
        "the retag read back",
        |h| h.query_by_label(&retag).is_none(),
        ASYNC_TIMEOUT,
    );
    press(h, "Import");
    wait_shown(h, "Import finished.");
    press(h, "Leave failed devices out");
    next_after(
        h,
        StepId::Import,
        "Every chosen device is registered or deliberately left out.",
    );
    step_until(
        h,
        "every device assigned",
        |h| status_of(h, StepId::Assignment) == StepStatus::Done,
        ASYNC_TIMEOUT,
    );
    press(h, "Next");
    wait_shown(h, "READY: devices can be deployed");
}

/// Walks to READY on a fresh tenant, then performs `actions`, checking every frame.
fn check_sequence(actions: &[Action]) -> (tokio::runtime::Runtime, H, Shared) {
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (picked, _) = tagged_samples(dir.path());
    let shared = sim.shared.clone();
    tenant(&shared, |s| {
        // No older profile claims every device, and anyone may join: the actions, not the
        // seed's deliberate problems, decide what is Done.
        s.profiles
            .assignments
            .retain(|a| a.target != StoredTarget::AllDevices);
        s.directory.registration_policy.join = JoinScope::All;
        for p in &mut s.directory.mdm_policies {
            p.scope = autopilot_wizard::sim::directory::MdmScope::All;
        }
        let mut base = s
            .directory
            .groups
            .iter()
            .find(|g| g.display_name.starts_with("Autopilot"))
            .expect("a device group in the seed")
            .clone();
        base.members.clear();
        base.id = "22222222-0000-0000-0000-000000000001".into();
        base.display_name = EMPTY_GROUP.into();
        base.mail_nickname = "second-office".into();
        base.group_types.clear();
        base.membership_rule = None;
        base.membership_rule_processing_state = None;
        s.directory.groups.push(base.clone());
        base.id = "22222222-0000-0000-0000-000000000002".into();
        base.display_name = TAGGED_GROUP.into();
        base.mail_nickname = "tagged-copy".into();
        base.group_types = vec!["DynamicMembership".into()];
        base.membership_rule = Some(format!(
            "(device.devicePhysicalIds -any (_ -eq \"[OrderID]:{TAG}\"))"
        ));
        base.membership_rule_processing_state = Some("On".into());
        s.directory.groups.push(base);
    });
    let mut h = app(&rt, sim, picked);
    walk_to_ready(&mut h);
    assert_done_agrees(&h, &shared, &[]);
    for (i, a) in actions.iter().enumerate() {
        perform(&mut h, a);
        // Every frame while the page works, not only the settled state.
        for _ in 0..60 {
            h.run_ok();
            assert_done_agrees(&h, &shared, &actions[..=i]);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    (rt, h, shared)
}

#[test]
fn no_step_is_done_while_the_tenant_disagrees_whatever_the_person_clicks() {
    use proptest::test_runner::{Config, TestRunner};
    // The sequences the issue reported first, then random ones.
    let (_rt, h, shared) = check_sequence(&[
        Action::UseGroup(EMPTY_GROUP),
        Action::CreateEsp,
        Action::Visit(StepId::Import),
        Action::Visit(StepId::Assignment),
        Action::Visit(StepId::Validate),
    ]);
    // The check itself is not blind: with step 4 Done, the profile's assignment removed behind
    // the window's back is a disagreement it reports.
    assert_eq!(status_of(&h, StepId::Group), StepStatus::Done);
    tenant(&shared, |s| s.profiles.assignments.clear());
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_done_agrees(&h, &shared, &[]);
    }));
    assert!(
        caught.is_err(),
        "a Done step 4 without its assignment went unnoticed"
    );
    let mut runner = TestRunner::new(Config {
        cases: 5,
        max_shrink_iters: 16,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = proptest::collection::vec(action(), 3..8);
    let result = runner.run(&strategy, |actions| {
        drop(check_sequence(&actions));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
