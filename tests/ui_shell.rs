//! The application shell driven through egui_kittest: stepper, Back / Next, the simulated
//! tenant, persistence. The real app runs against an in-process simulated tenant.

use crate::support;

use std::sync::Arc;
use support::MemoryStorage;

use autopilot_wizard::app::{AppConfig, Settings, WizardApp};
use autopilot_wizard::sim::{self, SimConfig, Speed};
use autopilot_wizard::ui::profile::ProfilePage;
use autopilot_wizard::ui::{self as wui, FixedFilePicker, StepId, StepStatus};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use support::ui::{
    ASYNC_TIMEOUT, click, click_link, is_enabled, step_until, visible_labels, wait_for_text,
};

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

/// For tests that open other steps' pages: their accessibility is checked by their own tests,
/// this file checks the shell's (every other test keeps the check on).
fn harness_visiting_other_pages(app: WizardApp) -> Harness<'static, WizardApp> {
    Harness::builder()
        .with_size([1100.0, 720.0])
        .with_accessibility_check(false)
        .build_ui_state(|ui, app: &mut WizardApp| app.show(ui), app)
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
    // The footer's documentation link reaches the system's opener.
    let docs = format!("Microsoft docs: {}", StepId::SignIn.title());
    assert_eq!(
        click_link(&mut h, &docs),
        vec![StepId::SignIn.doc_url().to_string()]
    );
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

/// The demo's tenant approves every sign-in by itself, so "Sign in with browser" signs in with
/// this one click, through the browser sign-in, also where this computer has no browser.
#[test]
fn in_the_demo_one_click_on_sign_in_with_browser_signs_in() {
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let shared = sim.shared.clone();
    let cfg = AppConfig {
        opener: Arc::new(|_url: &str| Err("no browser on this computer".to_string())),
        ..config()
    };
    let mut h = harness(WizardApp::new(cfg.with_sim(sim), rt.handle().clone()));
    h.run();
    h.get_by_label("Sign in with browser").click();
    wait_for_text(&mut h, "Signed in as");
    let grants = shared.lock().identity.token_requests.clone();
    assert!(
        grants.contains_key("authorization_code") && grants.len() == 1,
        "one browser sign-in, no code sign-in: {grants:?}"
    );
    assert!(is_enabled(&h, "Next"));
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

/// Makes sure there is a step after sign-in for Next to open, whichever pages this build has.
fn with_a_second_step(app: &mut WizardApp) {
    if app.steps().len() < 2 {
        app.add_page(StepId::Profile, ProfilePage::new(), |m| match m {
            wui::Msg::Profile(m) => Some(m),
            _ => None,
        });
    }
}

#[test]
fn signing_in_with_a_code_to_the_simulated_tenant_enables_next() {
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let tenant_name = sim.with_state(|s| s.core.organization.display_name.clone());
    let mut app = WizardApp::new(config().with_sim(sim), rt.handle().clone());
    with_a_second_step(&mut app);
    let second = app.steps()[1];
    let mut h = harness_visiting_other_pages(app);
    h.run();
    assert!(!is_enabled(&h, "Next"), "Next before sign-in");
    assert_eq!(
        h.state().step_statuses()[0],
        (StepId::SignIn, StepStatus::NotStarted)
    );
    assert!(h.query_all_by_label("Not started").next().is_some());

    click(&mut h, "Sign in with a code");
    wait_for_text(&mut h, &format!("to {tenant_name}"));
    assert!(
        h.state().session().graph.is_some(),
        "the app holds a Graph client"
    );
    assert!(
        h.state().outcomes().signed_in.is_some(),
        "the sign-in is an outcome"
    );
    assert_eq!(
        h.state().step_statuses()[0],
        (StepId::SignIn, StepStatus::Done)
    );
    assert!(
        h.query_all_by_label("Done").next().is_some(),
        "stepper shows the step done; visible:\n{}",
        visible_labels(&h)
    );
    assert!(is_enabled(&h, "Next"), "Next after sign-in");

    h.get_by_label("Next").click();
    h.run_ok();
    assert_eq!(h.state().current_step(), Some(second));
    assert!(is_enabled(&h, "Back"));
    h.get_by_label("Back").click();
    h.run_ok();
    assert_eq!(h.state().current_step(), Some(StepId::SignIn));
}

#[test]
fn later_steps_cannot_be_opened_before_sign_in() {
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let mut app = WizardApp::new(config().with_sim(sim), rt.handle().clone());
    with_a_second_step(&mut app);
    let second = app.steps()[1];
    let mut h = harness(app);
    h.run();
    let entry = format!("2. {}", second.title());
    let node = h.get_by_label_contains(&entry);
    assert!(
        node.accesskit_node().is_disabled(),
        "{entry:?} must be disabled before sign-in"
    );
    node.click();
    h.run_ok();
    assert_eq!(h.state().current_step(), Some(StepId::SignIn));
}

#[test]
fn the_simulated_tenant_started_from_the_sign_in_page_signs_in() {
    let rt = runtime();
    let mut h = harness(WizardApp::new(config(), rt.handle().clone()));
    h.run();
    click(&mut h, "Try the simulated tenant");
    step_until(
        &mut h,
        "the sign-in page against the simulated tenant",
        |h| h.state().connection().simulated && h.query_by_label("Sign in with a code").is_some(),
        ASYNC_TIMEOUT,
    );
    click(&mut h, "Sign in with a code");
    wait_for_text(&mut h, "Signed in as");
    assert!(h.state().session().simulated);
}

#[test]
fn a_restart_signs_in_again_silently_and_reopens_the_step() {
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let store: Arc<dyn autopilot_wizard::graph::token_store::TokenStore> =
        Arc::new(autopilot_wizard::graph::token_store::MemoryStore::new());
    // A "real" tenant that happens to live at the sim's address: persistence is on.
    let real = || {
        let mut cfg = config();
        cfg.settings.graph_url = Some(sim.url());
        cfg.settings.login_url = Some(sim.url());
        cfg.token_store = store.clone();
        cfg
    };
    let mut storage = MemoryStorage::default();
    let second = {
        let mut app = WizardApp::new(real(), rt.handle().clone());
        with_a_second_step(&mut app);
        let second = app.steps()[1];
        let mut h = harness_visiting_other_pages(app);
        h.run();
        click(&mut h, "Sign in with a code");
        wait_for_text(&mut h, "Signed in as");
        click(&mut h, "Next");
        assert_eq!(h.state().current_step(), Some(second));
        h.state().save_to(&mut storage);
        second
    };
    let saved = storage.0.get("outcomes").cloned().unwrap_or_default();
    assert!(saved.contains("signed_in"), "{saved}");
    let refresh_tokens =
        sim.with_state(|s| s.core.refresh_tokens.keys().cloned().collect::<Vec<_>>());
    assert!(!refresh_tokens.is_empty());
    for value in storage.0.values() {
        for token in &refresh_tokens {
            assert!(
                !value.contains(token),
                "a refresh token was saved in eframe storage"
            );
        }
    }

    let mut app = WizardApp::with_storage(real(), rt.handle().clone(), Some(&storage));
    with_a_second_step(&mut app);
    assert!(app.outcomes().signed_in.is_some(), "outcomes restored");
    assert_eq!(
        app.current_step(),
        Some(StepId::SignIn),
        "not reachable yet"
    );
    let mut h = harness_visiting_other_pages(app);
    step_until(
        &mut h,
        "the silent sign-in at start, then the step open last time",
        |h| h.state().session().graph.is_some() && h.state().current_step() == Some(second),
        ASYNC_TIMEOUT,
    );
}

/// Where `.ci/smoke.sh` clicks in the real `--demo` window: the same app at the same size lays
/// out identically, so the centre of "Sign in with a code" here is the centre there. Written to
/// `target/tmp/smoke-click-points.sh` (sourced by the smoke script).
#[test]
fn smoke_click_points() {
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    // kittest draws inside an 8-point outer margin: grow the screen by it on each side so the
    // app gets exactly the window's 1100×720, then shift back to window coordinates.
    const MARGIN: f32 = 8.0;
    let mut h = Harness::builder()
        .with_size([1100.0 + 2.0 * MARGIN, 720.0 + 2.0 * MARGIN])
        .build_ui_state(
            |ui, app: &mut WizardApp| app.show(ui),
            WizardApp::new(config().with_sim(sim), rt.handle().clone()),
        );
    h.run();
    let centre = h.get_by_label("Sign in with a code").rect().center() - egui::vec2(MARGIN, MARGIN);
    assert!(
        centre.x > 0.0 && centre.y > 0.0 && centre.x < 1100.0 && centre.y < 720.0,
        "{centre:?}"
    );
    let log = h.get_by_label("Log").rect().center() - egui::vec2(MARGIN, MARGIN);
    let next = h.get_by_label("Next").rect().center() - egui::vec2(MARGIN, MARGIN);
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("smoke-click-points.sh");
    std::fs::write(
        &path,
        format!(
            "SIGN_IN_CODE_X={}\nSIGN_IN_CODE_Y={}\nLOG_X={}\nLOG_Y={}\nNEXT_X={}\nNEXT_Y={}\n",
            centre.x.round(),
            centre.y.round(),
            log.x.round(),
            log.y.round(),
            next.x.round(),
            next.y.round()
        ),
    )
    .unwrap();
}

/// A 1024×600 screen (less a 40-pixel taskbar) at 100 %, 125 % and 150 %: the first window is
/// sized to it, Back and Next are inside it, and the step list stays above the Back/Next bar.
#[test]
fn back_and_next_stay_on_screen_on_a_small_scaled_display() {
    use autopilot_wizard::app::{PREFERRED_WINDOW, fit_window_size};
    let rt = runtime();
    for ppp in [1.0_f32, 1.25, 1.5] {
        let work_area = egui::vec2(1024.0, 560.0) / ppp;
        let size = fit_window_size(PREFERRED_WINDOW, work_area);
        assert!(
            size.x <= work_area.x && size.y <= work_area.y,
            "{size:?} in {work_area:?}"
        );
        let mut h = Harness::builder()
            .with_size(size)
            .with_pixels_per_point(ppp)
            .build_ui_state(
                |ui, app: &mut WizardApp| app.show(ui),
                WizardApp::new(config(), rt.handle().clone()),
            );
        h.run();
        // Twice: panels know their size from the frame before.
        h.run();
        let screen = egui::Rect::from_min_size(egui::Pos2::ZERO, size);
        for label in ["Back", "Next"] {
            let r = h.get_by_label(label).rect();
            assert!(
                screen.contains_rect(r),
                "{label} at {r:?} outside the {size:?} window at {ppp}"
            );
        }
        let (stepper, bar) = h.state().layout().expect("laid out");
        assert!(screen.contains_rect(bar), "the bar {bar:?} at {ppp}");
        assert!(
            stepper.bottom() <= bar.top() + 0.5,
            "step list {stepper:?} runs into the bar {bar:?} at {ppp}"
        );
        // The last step is in the list (scrolled to, not cut off for good).
        let last = StepId::ALL.last().unwrap();
        assert!(
            h.query_by_label_contains(&format!("{}. {}", StepId::ALL.len(), last.title()))
                .is_some()
        );
    }
    // The preferred size where it fits.
    assert_eq!(
        autopilot_wizard::app::fit_window_size(
            autopilot_wizard::app::PREFERRED_WINDOW,
            egui::vec2(1920.0, 1040.0)
        ),
        egui::vec2(1100.0, 720.0)
    );
}

/// Addresses given with --graph-url/--login-url once are remembered; the sign-in page shows
/// them with a way back to Microsoft's service, and the simulated tenant does not inherit them.
#[test]
fn a_remembered_custom_endpoint_is_shown_and_one_click_resets_it() {
    let rt = runtime();
    let mut storage = MemoryStorage::default();
    let mut first = config();
    first.settings.graph_url = Some("https://proxy.contoso.test/graph".into());
    first.settings.login_url = Some("https://proxy.contoso.test/login".into());
    WizardApp::new(first, rt.handle().clone()).save_to(&mut storage);

    // A later start without the flags.
    let app = WizardApp::with_storage(config(), rt.handle().clone(), Some(&storage));
    assert!(app.custom_endpoints());
    let mut h = harness(app);
    h.run();
    assert!(
        h.query_by_label("The wizard connects to a custom address")
            .is_some()
    );
    assert!(
        h.query_by_label("Microsoft Graph: https://proxy.contoso.test/graph")
            .is_some(),
        "{}",
        visible_labels(&h)
    );
    assert!(
        h.query_by_label("Sign-in: https://proxy.contoso.test/login")
            .is_some()
    );
    click(&mut h, "Use Microsoft's service");
    assert!(
        h.query_by_label("The wizard connects to a custom address")
            .is_none()
    );
    let e = &h.state().connection().auth.endpoints;
    assert_eq!(e.graph_url, "https://graph.microsoft.com");
    assert_eq!(e.login_url, "https://login.microsoftonline.com");
    // Forgotten for the next start too.
    let mut after = MemoryStorage::default();
    h.state().save_to(&mut after);
    let next = WizardApp::with_storage(config(), rt.handle().clone(), Some(&after));
    assert!(!next.custom_endpoints());
    assert!(!after.0.values().any(|v| v.contains("proxy.contoso.test")));

    // The simulated tenant, tried from a start with the custom address, talks to itself only.
    let app = WizardApp::with_storage(config(), rt.handle().clone(), Some(&storage));
    let mut h = harness(app);
    h.run();
    click(&mut h, "Try the simulated tenant");
    step_until(
        &mut h,
        "the simulated tenant",
        |h| h.state().connection().simulated,
        ASYNC_TIMEOUT,
    );
    let e = h.state().connection().auth.endpoints.clone();
    assert!(e.graph_url.starts_with("http://127.0.0.1:"), "{e:?}");
    assert_eq!(e.login_url, e.graph_url);
    assert!(
        h.query_by_label("The wizard connects to a custom address")
            .is_none()
    );
    assert!(h.query_by_label("Use Microsoft's service").is_none());
}

/// "Remove devices" is no step: the step list offers it below the steps from the start page on,
/// and it plans against the signed-in tenant; a step click goes back to the procedure.
#[test]
fn remove_devices_opens_from_the_step_list_and_plans() {
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let mut h = harness(WizardApp::new(config().with_sim(sim), rt.handle().clone()));
    h.run();
    click(&mut h, "Remove devices");
    assert!(h.state().showing_removal());
    wait_for_text(&mut h, "in Microsoft's order");
    assert!(!is_enabled(&h, "Show the plan"), "not signed in yet");
    click(
        &mut h,
        &format!("{}. {}", StepId::SignIn.number(), StepId::SignIn.title()),
    );
    assert!(!h.state().showing_removal());
    h.get_by_label("Sign in with browser").click();
    wait_for_text(&mut h, "Signed in as");
    // The board's hand-off: the app opens the page with the devices picked.
    h.state_mut()
        .show_removal(Some(&["DEMO-LAB-0001".to_string()]));
    h.run();
    click(&mut h, "Show the plan");
    wait_for_text(&mut h, "DEMO-LAB-0001 — Fabrikam Laptop 14");
    wait_for_text(&mut h, "Delete the Intune record");
}
