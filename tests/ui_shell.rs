//! The application shell driven through egui_kittest: stepper, Back / Next, the simulated
//! tenant, persistence. The real app runs against an in-process simulated tenant.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use autopilot_wizard::app::{AppConfig, Settings, WizardApp};
use autopilot_wizard::sim::{self, SimConfig, Speed};
use autopilot_wizard::ui::{FixedFilePicker, StepId};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use support::ui::{ASYNC_TIMEOUT, is_enabled, step_until, visible_labels};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn config() -> AppConfig {
    AppConfig {
        file_picker: Arc::new(FixedFilePicker::default()),
        sim_speed: Speed::TEST,
        ..AppConfig::default()
    }
}

fn harness(app: WizardApp) -> Harness<'static, WizardApp> {
    Harness::builder()
        .with_size([1100.0, 720.0])
        .build_ui_state(|ui, app: &mut WizardApp| app.show(ui), app)
}

/// An in-memory eframe storage, as eframe would hand it to `save` and `cc.storage`.
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

#[test]
fn stepper_lists_the_existing_steps_in_order() {
    let rt = runtime();
    let app = WizardApp::new(config(), rt.handle().clone());
    let steps = app.steps();
    let mut h = harness(app);
    h.run();
    assert_eq!(
        steps,
        StepId::ALL.to_vec(),
        "every step that exists gets a page"
    );
    for (i, step) in steps.iter().enumerate() {
        let text = format!("{}. {}", i + 1, step.title());
        assert!(
            h.query_by_label_contains(&text).is_some(),
            "stepper entry {text:?} missing; visible:\n{}",
            visible_labels(&h)
        );
    }
}

#[test]
fn next_is_disabled_before_sign_in_and_back_on_the_first_step() {
    let rt = runtime();
    let mut h = harness(WizardApp::new(config(), rt.handle().clone()));
    h.run();
    assert!(!is_enabled(&h, "Next"), "Next must wait for sign-in");
    assert!(!is_enabled(&h, "Back"), "nothing before the first step");
    assert!(h.query_by_label_contains("Microsoft docs").is_some());
    assert!(
        h.query_by_label("Simulated tenant").is_none(),
        "no banner for a real tenant"
    );
}

#[test]
fn simulated_tenant_can_be_started_when_no_tenant_is_configured() {
    let rt = runtime();
    let mut h = harness(WizardApp::new(config(), rt.handle().clone()));
    h.run();
    h.get_by_label("Try the simulated tenant").click();
    step_until(
        &mut h,
        "the simulated tenant banner",
        |h| h.state().connection().simulated && h.query_by_label("Simulated tenant").is_some(),
        ASYNC_TIMEOUT,
    );
    let graph = h.state().connection().auth.endpoints.graph_url.clone();
    assert!(graph.starts_with("http://127.0.0.1:"), "{graph}");
    assert!(h.state().session().simulated);
    assert!(h.query_by_label("Try the simulated tenant").is_none());
}

#[test]
fn the_offer_is_not_shown_when_a_tenant_is_configured() {
    let rt = runtime();
    let mut cfg = config();
    cfg.settings.tenant = Some("contoso.onmicrosoft.com".into());
    let mut h = harness(WizardApp::new(cfg, rt.handle().clone()));
    h.run();
    assert!(h.query_by_label("Try the simulated tenant").is_none());
}

#[test]
fn demo_config_shows_the_banner_from_the_start() {
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let url = sim.url();
    let mut h = harness(WizardApp::new(config().with_sim(sim), rt.handle().clone()));
    h.run();
    assert!(h.query_by_label("Simulated tenant").is_some());
    assert_eq!(h.state().connection().auth.endpoints.login_url, url);
}

#[test]
fn settings_persist_and_the_command_line_wins() {
    let rt = runtime();
    let mut storage = MemoryStorage::default();
    let mut cfg = config();
    cfg.settings = Settings {
        tenant: Some("contoso.onmicrosoft.com".into()),
        client_id: Some("11111111-2222-3333-4444-555555555555".into()),
        ..Settings::default()
    };
    WizardApp::new(cfg, rt.handle().clone()).save_to(&mut storage);
    let saved = storage.0.values().cloned().collect::<Vec<_>>().join("\n");
    assert!(saved.contains("contoso.onmicrosoft.com"), "{saved}");

    // Next run: no tenant on the command line, another client id.
    let mut cfg = config();
    cfg.settings.client_id = Some("99999999-2222-3333-4444-555555555555".into());
    let app = WizardApp::with_storage(cfg, rt.handle().clone(), Some(&storage));
    let auth = &app.connection().auth;
    assert_eq!(auth.tenant, "contoso.onmicrosoft.com");
    assert_eq!(auth.client_id(), "99999999-2222-3333-4444-555555555555");
}

#[test]
fn old_or_broken_saved_state_still_starts_the_app() {
    let rt = runtime();
    let mut storage = MemoryStorage::default();
    storage.0.insert(
        "settings".into(),
        r#"{"tenant":"fabrikam.com","retired":1}"#.into(),
    );
    storage.0.insert("outcomes".into(), "not json".into());
    storage
        .0
        .insert("current_step".into(), r#""NoSuchStep""#.into());
    let app = WizardApp::with_storage(config(), rt.handle().clone(), Some(&storage));
    assert_eq!(app.connection().auth.tenant, "fabrikam.com");
    assert_eq!(app.current_step(), StepId::ALL.first().copied());
}

#[test]
fn a_simulated_run_does_not_overwrite_the_real_settings() {
    let rt = runtime();
    let mut storage = MemoryStorage::default();
    let mut cfg = config();
    cfg.settings.tenant = Some("contoso.onmicrosoft.com".into());
    WizardApp::new(cfg, rt.handle().clone()).save_to(&mut storage);

    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let demo = WizardApp::with_storage(config().with_sim(sim), rt.handle().clone(), Some(&storage));
    demo.save_to(&mut storage);
    let settings = storage.0.get("settings").unwrap();
    assert!(!settings.contains("127.0.0.1"), "{settings}");
    assert!(settings.contains("contoso.onmicrosoft.com"), "{settings}");
}
