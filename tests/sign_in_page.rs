//! The sign-in page where no browser comes back (remote session, locked-down PC, Wine): the
//! address to copy, "Sign in with a code instead" while waiting, a wait that ends with a message;
//! and the credential-store note in words, once, with the raw error only in the tooltip.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use autopilot_wizard::graph::auth::Opener;
use autopilot_wizard::graph::cloud::Endpoints;
use autopilot_wizard::graph::token_store::{MemoryStore, no_store_notice};
use autopilot_wizard::sim::{self, SimConfig, SimHandle};
use autopilot_wizard::steps::Outcomes;
use autopilot_wizard::ui::sign_in::{Msg, SignInConfig, SignInPage, SignInPhase};
use autopilot_wizard::ui::{self, Page};
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use support::page::{PageState, page_harness};
use support::ui::{click, click_link, runtime, step_until, visible_labels, wait_for_text};

const RAW_DBUS: &str = "org.freedesktop.DBus.Error.ServiceUnknown: The name org.freedesktop.secrets was not provided by any .service files";

fn page(sim: &SimHandle, opener: Opener, timeout: Duration) -> SignInPage {
    let mut config = SignInConfig::new(
        Endpoints::simulated(&sim.url()),
        Arc::new(MemoryStore::new()),
    );
    config.simulated = true;
    config.tenant = "contoso.onmicrosoft.com".into();
    config.opener = opener;
    config.browser_timeout = timeout;
    config.store_notice = Some(no_store_notice(RAW_DBUS));
    SignInPage::new(config)
}

fn harness(
    sim: &SimHandle,
    rt: &tokio::runtime::Runtime,
    page: SignInPage,
) -> Harness<'static, PageState<SignInPage>> {
    let graph = support::client_for(sim, &sim.admin().user_principal_name);
    let extract = |m| match m {
        ui::Msg::SignIn(m) => Some::<Msg>(m),
        _ => None,
    };
    let mut h = page_harness(
        page,
        graph,
        Outcomes::default(),
        rt.handle().clone(),
        extract,
    );
    // The sign-in page puts the Graph client there itself.
    h.state_mut().session.graph = None;
    h.run_ok();
    h
}

/// A system "open this address" that never returns (as seen under Wine).
fn hanging_opener() -> Opener {
    Arc::new(|_url: &str| {
        std::thread::sleep(Duration::from_secs(600));
        Ok(())
    })
}

fn no_raw_text<S>(h: &Harness<'_, S>) {
    let visible = visible_labels(h);
    assert!(
        !visible.contains("org.freedesktop"),
        "a raw credential-store error is shown:\n{visible}"
    );
}

#[test]
fn a_browser_that_never_answers_shows_the_address_and_the_wait_ends_with_a_message() {
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let mut h = harness(
        &sim,
        &rt,
        page(&sim, hanging_opener(), Duration::from_secs(3)),
    );
    click(&mut h, "Sign in with browser");
    wait_for_text(&mut h, "Copy sign-in address");
    let address = h
        .get_by_role_and_label(Role::TextInput, "Sign-in address")
        .value()
        .unwrap_or_default();
    assert!(
        address.starts_with(&sim.url()) && address.contains("/oauth2/v2.0/authorize?"),
        "{address}"
    );
    assert!(
        h.query_by_label_contains("waiting 0:0").is_some(),
        "the wait shows how long it still lasts; visible:\n{}",
        visible_labels(&h)
    );
    h.get_by_label("Copy sign-in address").click();
    h.step();
    let copied = h
        .output()
        .platform_output
        .commands
        .iter()
        .any(|c| matches!(c, egui::OutputCommand::CopyText(t) if *t == address));
    assert!(copied, "the address went to the clipboard");
    assert!(h.query_by_label("Sign in with a code instead").is_some());

    step_until(
        &mut h,
        "the browser wait to end",
        |h| matches!(h.state().page.phase(), SignInPhase::Failed(_)),
        Duration::from_secs(15),
    );
    wait_for_text(&mut h, "No answer came back from the browser in time");
    assert!(h.query_by_label("Copy sign-in address").is_none());
    assert!(!h.state().page.validated());
    no_raw_text(&h);
}

/// Where no browser opens, the page goes straight to the code sign-in: one click, no dead wait.
#[test]
fn where_no_browser_opens_the_code_sign_in_takes_over_by_itself() {
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let failing: Opener = Arc::new(|_url: &str| Err(format!("xdg-open failed: {RAW_DBUS}")));
    let mut h = harness(&sim, &rt, page(&sim, failing, Duration::from_secs(300)));
    click(&mut h, "Sign in with browser");
    wait_for_text(&mut h, "Signed in as");
    assert!(h.state().page.validated());
    assert!(h.state().session.graph.is_some());
    let grants = sim.with_state(|s| s.identity.token_requests.clone());
    assert!(
        grants.contains_key("urn:ietf:params:oauth:grant-type:device_code")
            && !grants.contains_key("authorization_code"),
        "{grants:?}"
    );
    no_raw_text(&h);
}

/// While the code is shown (the tenant waits for it), the page says why there is no browser,
/// and its "Open the sign-in page" link reaches the system's opener.
#[test]
fn the_code_shown_instead_of_a_browser_says_why_and_its_link_opens() {
    let rt = runtime();
    let sim = rt
        .block_on(sim::spawn(SimConfig {
            approve_device_code_after_polls: 100_000,
            ..SimConfig::test()
        }))
        .unwrap();
    let failing: Opener = Arc::new(|_url: &str| Err(format!("xdg-open failed: {RAW_DBUS}")));
    let mut h = harness(&sim, &rt, page(&sim, failing, Duration::from_secs(300)));
    click(&mut h, "Sign in with browser");
    wait_for_text(&mut h, "No web browser opened on this computer");
    step_until(
        &mut h,
        "the code",
        |h| matches!(h.state().page.phase(), SignInPhase::WaitingForCode(_)),
        support::ui::ASYNC_TIMEOUT,
    );
    let SignInPhase::WaitingForCode(prompt) = h.state().page.phase().clone() else {
        unreachable!()
    };
    assert!(h.query_by_label("Copy sign-in address").is_none());
    no_raw_text(&h);
    assert_eq!(
        click_link(&mut h, "Open the sign-in page"),
        vec![prompt.verification_uri.clone()]
    );
}

/// A tenant without admin consent: the consent page's link reaches the system's opener.
#[test]
fn the_admin_consent_link_opens() {
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    sim.with_state(|st| st.identity.withheld_scopes = vec!["Policy.Read.All".into()]);
    let failing: Opener = Arc::new(|_url: &str| Err("no browser".to_string()));
    let mut h = harness(&sim, &rt, page(&sim, failing, Duration::from_secs(300)));
    click(&mut h, "Sign in with a code");
    wait_for_text(&mut h, "Missing permissions");
    let SignInPhase::SignedIn(s) = h.state().page.phase().clone() else {
        panic!("signed in")
    };
    let url = s.admin_consent_url.clone().expect("a consent address");
    assert_eq!(click_link(&mut h, "Open the admin consent page"), vec![url]);
}

#[test]
fn cancelling_says_so_in_normal_text_and_the_store_note_is_said_once_in_words() {
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let mut h = harness(
        &sim,
        &rt,
        page(&sim, hanging_opener(), Duration::from_secs(300)),
    );
    // Before signing in: the note is there, in words.
    wait_for_text(&mut h, "no credential store the wizard can use");
    no_raw_text(&h);

    click(&mut h, "Sign in with browser");
    click(&mut h, "Cancel");
    wait_for_text(&mut h, "Sign-in cancelled.");
    let cancelled = h.get_by_label("Sign-in cancelled.");
    let height = cancelled.rect().height();
    let body = h
        .get_by_label_contains("no credential store")
        .rect()
        .height();
    // One line of body text (the note wraps to more), not the small print it was before.
    assert!(
        height >= 14.0,
        "cancelled note is {height} high, body {body}"
    );

    click(&mut h, "Sign in with a code");
    wait_for_text(&mut h, "Signed in as");
    let sentences = h
        .query_all_by_label_contains("sign in again next time")
        .count();
    assert_eq!(sentences, 1, "said once; visible:\n{}", visible_labels(&h));
    no_raw_text(&h);
}
