//! The whole procedure through the real app, by clicking labelled widgets, against an
//! in-process simulated tenant: sign in, join permission, deployment profile, device group and
//! profile assignment. Next must stay disabled on every page until its result was read back.

mod support;

use std::sync::Arc;

use autopilot_wizard::app::{AppConfig, WizardApp};
use autopilot_wizard::sim::directory::JoinScope;
use autopilot_wizard::sim::{self, SimConfig, SimHandle, Speed};
use autopilot_wizard::ui::{FixedFilePicker, StepId, StepStatus};
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use support::ui::{ASYNC_TIMEOUT, is_enabled, step_until, visible_labels};

type H = Harness<'static, WizardApp>;

/// The group tag the devices of this office get, and the dynamic group that collects them.
const TAG: &str = "Contoso-Office";
const GROUP: &str = "Autopilot - Contoso office";
const PROFILE: &str = "Contoso - user-driven";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn app(rt: &tokio::runtime::Runtime, sim: SimHandle, picked: Vec<std::path::PathBuf>) -> H {
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

/// Clicks the widget labelled exactly `label` once it shows and is enabled.
fn press(h: &mut H, label: &str) {
    step_until(
        h,
        &format!("an enabled widget labelled {label:?}"),
        |h| {
            h.query_by_label(label)
                .is_some_and(|n| !n.accesskit_node().is_disabled())
        },
        ASYNC_TIMEOUT,
    );
    h.get_by_label(label).scroll_to_me();
    h.run_ok();
    h.get_by_label(label).click();
    h.run_ok();
}

/// Waits until some widget's label contains `text` (several may).
fn wait_shown(h: &mut H, text: &str) {
    step_until(
        h,
        &format!("a widget whose label contains {text:?}"),
        |h| h.query_all_by_label_contains(text).next().is_some(),
        ASYNC_TIMEOUT,
    );
}

/// Replaces the text of the text field labelled `label`.
fn type_into(h: &mut H, label: &str, text: &str) {
    step_until(
        h,
        &format!("a text field labelled {label:?}"),
        |h| h.query_by_role_and_label(Role::TextInput, label).is_some(),
        ASYNC_TIMEOUT,
    );
    h.get_by_role_and_label(Role::TextInput, label).focus();
    h.run_ok();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.key_press(egui::Key::Backspace);
    h.run_ok();
    h.get_by_role_and_label(Role::TextInput, label)
        .type_text(text);
    h.run_ok();
    assert_eq!(
        h.get_by_role_and_label(Role::TextInput, label)
            .value()
            .as_deref(),
        Some(text),
        "typed into {label:?}"
    );
}

fn assert_on(h: &H, step: StepId) {
    assert_eq!(
        h.state().current_step(),
        Some(step),
        "visible:\n{}",
        visible_labels(h)
    );
}

fn status_of(h: &H, step: StepId) -> StepStatus {
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
    press(h, "Check join permission");
}

#[test]
fn the_whole_procedure_by_clicking() {
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let mut h = app(&rt, sim, Vec::new());
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
    press(&mut h, "Create group");
    wait_shown(&mut h, "Read back from Microsoft Entra and as expected.");
    assert!(
        !is_enabled(&h, "Next"),
        "Next before the profile is assigned to the group"
    );
    press(&mut h, &format!("Assign profile \"{PROFILE}\""));
    wait_shown(&mut h, "confirmed by reading the assignments back");
    let group = h.state().outcomes().group.clone().expect("group outcome");
    assert_eq!(group.display_name, GROUP);
    assert_eq!(status_of(&h, StepId::Group), StepStatus::Done);
    assert!(
        !h.state().steps().contains(&StepId::Import) || is_enabled(&h, "Next"),
        "Next after the group page validated"
    );
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
