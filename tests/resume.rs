//! Picking up where you left off, through the real app by clicking labelled widgets: steps 1–4
//! against a simulated tenant the app treats as a real one (so it remembers), a restart, and
//! the wizard signs in again by itself, checks steps 2–4 again, reopens step 4 and every form is
//! as it was. Then the statuses follow the read-backs: a step that stops validating takes the
//! later ones out of "Done".

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use autopilot_wizard::app::{AppConfig, WizardApp};
use autopilot_wizard::graph::token_store::{MemoryStore, TokenStore};
use autopilot_wizard::sim::directory::JoinScope;
use autopilot_wizard::sim::{self, SimConfig, SimHandle, Speed};
use autopilot_wizard::ui::{FixedFilePicker, StepId, StepStatus};
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use support::ui::{ASYNC_TIMEOUT, is_enabled, runtime, step_until, visible_labels};

type H = Harness<'static, WizardApp>;

const TAG: &str = "Contoso-Office";
const GROUP: &str = "Autopilot - Contoso office";
const PROFILE: &str = "Contoso - user-driven";
const TEMPLATE: &str = "CON-%RAND:5%";

/// An in-memory eframe storage, as eframe hands it to `save` and `cc.storage`.
#[derive(Default)]
struct MemoryStorage(HashMap<String, String>);

impl eframe::Storage for MemoryStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }
    fn flush(&mut self) {}
}

/// A "real" tenant that lives at the simulated tenant's address: persistence is on, and the
/// refresh token goes to `store` (standing in for the credential store across the restart).
fn real_config(sim: &SimHandle, store: &Arc<dyn TokenStore>) -> AppConfig {
    let mut cfg = AppConfig {
        file_picker: Arc::new(FixedFilePicker::default()),
        sim_speed: Speed::TEST,
        token_store: store.clone(),
        ..AppConfig::default()
    };
    cfg.settings.graph_url = Some(sim.url());
    cfg.settings.login_url = Some(sim.url());
    cfg
}

fn harness(app: WizardApp) -> H {
    // Tall, so every page fits without scrolling (kittest clicks at a widget's centre).
    Harness::builder()
        .with_size([1280.0, 2400.0])
        .with_accessibility_check(false)
        .build_ui_state(|ui, app: &mut WizardApp| app.show(ui), app)
}

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
    h.get_by_label(label).click();
    h.run_ok();
}

fn wait_shown(h: &mut H, text: &str) {
    step_until(
        h,
        &format!("a widget whose label contains {text:?}"),
        |h| h.query_all_by_label_contains(text).next().is_some(),
        ASYNC_TIMEOUT,
    );
}

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
}

fn field_value(h: &H, label: &str) -> String {
    h.get_by_role_and_label(Role::TextInput, label)
        .value()
        .unwrap_or_default()
}

fn status_of(h: &Harness<'_, WizardApp>, step: StepId) -> StepStatus {
    h.state()
        .step_statuses()
        .into_iter()
        .find(|(s, _)| *s == step)
        .map(|(_, st)| st)
        .unwrap()
}

fn word_of(h: &Harness<'_, WizardApp>, step: StepId) -> String {
    h.state()
        .step_views()
        .into_iter()
        .find(|v| v.step == step)
        .map(|v| v.word)
        .unwrap()
}

/// Steps 1–4 by clicking, ending on step 4 with the profile assigned to the group.
fn walk_to_the_group_step(h: &mut H) {
    h.run_ok();
    press(h, "Sign in with a code");
    wait_shown(h, "Signed in as");
    press(h, "Next");

    type_into(h, "Search users or groups", "technicians");
    press(h, "Search");
    press(h, "Add IT Technicians (group)");
    press(h, "Check join permission");
    wait_shown(h, "Every deploying user may join devices");
    press(h, "Next");

    wait_shown(h, "Kiosk - self-deploying");
    type_into(h, "Name", PROFILE);
    type_into(h, "Device name template", TEMPLATE);
    press(h, "Create profile");
    wait_shown(h, &format!("Created the profile \"{PROFILE}\"."));
    press(h, "Next");

    type_into(h, "Group name", GROUP);
    press(h, "Devices with these group tags (dynamic)");
    type_into(h, "Group tags (comma-separated)", TAG);
    press(h, "Create group");
    wait_shown(h, "Read back from Microsoft Entra and as expected.");
    press(h, &format!("Assign profile \"{PROFILE}\""));
    wait_shown(h, "confirmed by reading the assignments back");
    assert_eq!(h.state().current_step(), Some(StepId::Group));
}

#[test]
fn a_restart_at_step_4_signs_in_rechecks_and_reopens_it_with_every_form_filled() {
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let mut storage = MemoryStorage::default();
    {
        let mut h = harness(WizardApp::new(
            real_config(&sim, &store),
            rt.handle().clone(),
        ));
        walk_to_the_group_step(&mut h);
        h.state().save_to(&mut storage);
    }
    let saved = storage.0.values().cloned().collect::<Vec<_>>().join("\n");
    assert!(
        saved.contains(TEMPLATE),
        "the profile form is saved: {saved}"
    );

    let app = WizardApp::with_storage(
        real_config(&sim, &store),
        rt.handle().clone(),
        Some(&storage),
    );
    let mut h = harness(app);
    h.run_ok();
    // Before the sign-in is back, nothing after step 1 claims progress it has not checked.
    if h.state().session().graph.is_none() {
        assert_eq!(
            status_of(&h, StepId::JoinPermission),
            StepStatus::NotStarted
        );
        assert_eq!(word_of(&h, StepId::Profile), "Waiting for step 1");
    }
    step_until(
        &mut h,
        "the silent sign-in, steps 2–4 checked again and step 4 open",
        |h| h.state().current_step() == Some(StepId::Group),
        ASYNC_TIMEOUT,
    );
    // Step 4 read its group and the assignment back by itself (nothing was clicked).
    wait_shown(&mut h, "confirmed by reading the assignments back");
    assert_eq!(field_value(&h, "Group name"), GROUP);
    assert_eq!(field_value(&h, "Group tags (comma-separated)"), TAG);
    assert!(is_enabled(&h, "Next"), "step 4 validated again");
    assert_eq!(status_of(&h, StepId::JoinPermission), StepStatus::Done);
    assert_eq!(status_of(&h, StepId::Profile), StepStatus::Done);
    assert_ne!(status_of(&h, StepId::Group), StepStatus::NotStarted);

    // Step 3: the chosen profile was read back, and the form is as it was typed.
    h.get_by_label_contains("3. Deployment profile").click();
    h.run_ok();
    assert_eq!(h.state().current_step(), Some(StepId::Profile));
    assert_eq!(field_value(&h, "Device name template"), TEMPLATE);
    assert_eq!(field_value(&h, "Name"), PROFILE);
    assert_eq!(
        h.state()
            .outcomes()
            .profile
            .as_ref()
            .map(|p| p.display_name.as_str()),
        Some(PROFILE)
    );

    // Step 2: the deployers came back and were checked again.
    h.get_by_label_contains("2. Join permission").click();
    h.run_ok();
    wait_shown(&mut h, "IT Technicians");
    wait_shown(&mut h, "Every deploying user may join devices");

    // Nobody may join any more: step 2 leaves Done, and so do the steps after it.
    sim.with_state(|s| s.directory.registration_policy.join = JoinScope::None);
    press(&mut h, "Check again");
    step_until(
        &mut h,
        "step 2 needs attention",
        |h| status_of(h, StepId::JoinPermission) == StepStatus::NeedsAttention,
        ASYNC_TIMEOUT,
    );
    for later in [StepId::Profile, StepId::Group] {
        assert_ne!(status_of(&h, later), StepStatus::Done, "{later:?}");
        assert_eq!(word_of(&h, later), "Waiting for step 2", "{later:?}");
    }
    assert!(
        h.query_all_by_label("Waiting for step 2").next().is_some(),
        "the stepper says why; visible:\n{}",
        visible_labels(&h)
    );
    assert!(!is_enabled(&h, "Next"));
    let entry = h.get_by_label_contains("4. Device group");
    assert!(
        entry.accesskit_node().is_disabled(),
        "step 4 cannot be opened"
    );
}

/// Without the saved sign-in, the restored steps wait for step 1 (not "In progress"), the page
/// says what signing in will do, and a manual sign-in walks on to step 4 just the same.
#[test]
fn without_a_sign_in_the_restored_steps_wait_instead_of_showing_progress() {
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let mut storage = MemoryStorage::default();
    {
        let mut h = harness(WizardApp::new(
            real_config(&sim, &store),
            rt.handle().clone(),
        ));
        walk_to_the_group_step(&mut h);
        h.state().save_to(&mut storage);
    }
    // The saved sign-in is gone (another computer, a cleared keyring): the person must sign in.
    let empty: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let mut h = harness(WizardApp::with_storage(
        real_config(&sim, &empty),
        rt.handle().clone(),
        Some(&storage),
    ));
    step_until(
        &mut h,
        "the silent sign-in finds nothing",
        |h| {
            h.query_by_label("Sign in with a code")
                .is_some_and(|n| !n.accesskit_node().is_disabled())
        },
        ASYNC_TIMEOUT,
    );
    for later in [StepId::JoinPermission, StepId::Profile, StepId::Group] {
        assert_eq!(status_of(&h, later), StepStatus::NotStarted, "{later:?}");
        assert_eq!(word_of(&h, later), "Waiting for step 1", "{later:?}");
    }
    assert!(h.query_all_by_label("In progress").next().is_none());
    wait_shown(&mut h, "Sign in to pick up where you left off");
    press(&mut h, "Sign in with a code");
    step_until(
        &mut h,
        "step 4 open again after signing in",
        |h| h.state().current_step() == Some(StepId::Group),
        ASYNC_TIMEOUT,
    );
    assert_eq!(field_value(&h, "Group name"), GROUP);
}
