//! Sign-in against the simulated tenant over real HTTP: device code, browser (PKCE through the
//! loopback listener), refresh, silent re-sign-in, sign-out, token storage and redaction.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use autopilot_wizard::graph::auth::{
    AuthConfig, AuthError, Authenticator, Opener, SignInFlows, Sleeper,
};
use autopilot_wizard::graph::cloud::{ClientApp, Endpoints};
use autopilot_wizard::graph::token_store::{MemoryStore, StoreKey, TokenStore};
use autopilot_wizard::graph::{ApiVersion, GraphClient};
use autopilot_wizard::sim::{self, SimConfig, SimHandle};
use autopilot_wizard::steps::sign_in as step;
use base64::Engine;
use sha2::Digest;
use tokio_util::sync::CancellationToken;

/// What the fake browser saw at the end: status and page.
type Seen = Arc<Mutex<Option<(u16, String)>>>;

const CLIENT: &str = "11111111-2222-3333-4444-555555555555";

struct Setup {
    sim: SimHandle,
    store: Arc<MemoryStore>,
    sleeps: Arc<Mutex<Vec<Duration>>>,
    flows: SignInFlows,
}

async fn setup(config: SimConfig) -> Setup {
    let sim = sim::spawn(config).await.expect("sim starts");
    let store = Arc::new(MemoryStore::new());
    let sleeps: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let recorded = sleeps.clone();
    // Records the waits the poller asks for, without waiting.
    let sleeper: Sleeper = Arc::new(move |d| {
        recorded.lock().unwrap().push(d);
        Box::pin(tokio::task::yield_now())
    });
    let auth_config = AuthConfig {
        endpoints: Endpoints::simulated(&sim.url()),
        tenant: "contoso.onmicrosoft.com".into(),
        client: ClientApp::Own {
            client_id: CLIENT.into(),
        },
    };
    let flows = SignInFlows::new(
        auth_config,
        store.clone() as Arc<dyn TokenStore>,
        &autopilot_wizard::steps::required_scopes(),
    )
    .with_sleeper(sleeper)
    .with_opener(fetching_opener(None));
    Setup {
        sim,
        store,
        sleeps,
        flows,
    }
}

/// Plays the browser: follows the authorize URL (the sim redirects straight to the loopback
/// listener) and records the final status and page.
fn fetching_opener(seen: Option<Seen>) -> Opener {
    Arc::new(move |url: &str| {
        let url = url.to_string();
        let seen = seen.clone();
        tokio::spawn(async move {
            let resp = reqwest::get(&url).await;
            if let (Some(seen), Ok(r)) = (seen, resp) {
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                *seen.lock().unwrap() = Some((status, body));
            }
        });
        Ok(())
    })
}

/// Every access token string the sim issued.
fn issued_access(sim: &SimHandle) -> Vec<String> {
    sim.with_state(|s| s.core.access_tokens.keys().cloned().collect())
}

fn issued_refresh(sim: &SimHandle) -> Vec<String> {
    sim.with_state(|s| s.core.refresh_tokens.keys().cloned().collect())
}

/// A test tenant whose device-code sign-in is approved on poll number `polls`.
fn approving_after(polls: u32) -> SimConfig {
    SimConfig {
        approve_device_code_after_polls: polls,
        ..SimConfig::test()
    }
}

async fn device_sign_in(s: &Setup) -> Authenticator {
    let code = s
        .flows
        .start_device_code()
        .await
        .expect("device code starts");
    s.flows
        .finish_device_code(&code, &CancellationToken::new())
        .await
        .expect("device code sign-in finishes")
}

#[tokio::test]
async fn device_code_polls_through_pending_then_succeeds() {
    let s = setup(approving_after(3)).await;
    let code = s.flows.start_device_code().await.unwrap();
    assert_eq!(code.prompt.user_code.len(), 9);
    assert!(code.prompt.verification_uri.contains("devicelogin"));
    let message = code
        .prompt
        .message
        .clone()
        .expect("Microsoft's message is kept");
    assert!(message.contains(&code.prompt.user_code), "{message}");
    assert_eq!(code.prompt.expires_in_secs, 900);

    let auth = s
        .flows
        .finish_device_code(&code, &CancellationToken::new())
        .await
        .unwrap();
    // Two pending answers, each followed by a wait of the server's interval (5 s).
    assert_eq!(
        *s.sleeps.lock().unwrap(),
        vec![Duration::from_secs(5), Duration::from_secs(5)]
    );
    let polls = s.sim.with_state(
        |st| st.identity.token_requests["urn:ietf:params:oauth:grant-type:device_code"],
    );
    assert_eq!(polls, 3);
    let token = auth.token(false).await.unwrap();
    assert!(issued_access(&s.sim).contains(&token));
    assert!(
        auth.granted_scopes()
            .contains(&"DeviceManagementServiceConfig.ReadWrite.All".to_string())
    );
    // Nothing is saved until the account is known.
    assert!(s.store.is_empty());
}

#[tokio::test]
async fn device_code_slow_down_adds_five_seconds() {
    let s = setup(approving_after(2)).await;
    s.sim.with_state(|st| st.identity.slow_down_polls = 1);
    device_sign_in(&s).await;
    // slow_down: 5 + 5; then pending keeps the new interval.
    assert_eq!(
        *s.sleeps.lock().unwrap(),
        vec![Duration::from_secs(10), Duration::from_secs(10)]
    );
}

#[tokio::test]
async fn device_code_expiry_and_decline_are_explained() {
    let s = setup(SimConfig::test()).await;
    s.sim
        .with_state(|st| st.identity.device_code_lifetime = Duration::ZERO);
    let code = s.flows.start_device_code().await.unwrap();
    let err = s
        .flows
        .finish_device_code(&code, &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::DeviceCodeExpired);
    assert!(err.to_string().contains("new code"));

    s.sim.with_state(|st| {
        st.identity.device_code_lifetime = Duration::from_secs(900);
        st.identity.decline = true;
    });
    let code = s.flows.start_device_code().await.unwrap();
    let err = s
        .flows
        .finish_device_code(&code, &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::Declined);
}

#[tokio::test]
async fn device_code_wait_can_be_cancelled() {
    let s = setup(approving_after(u32::MAX)).await;
    let code = s.flows.start_device_code().await.unwrap();
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.cancel();
    });
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        s.flows.finish_device_code(&code, &cancel),
    )
    .await
    .expect("cancel ends the wait")
    .unwrap_err();
    assert_eq!(err, AuthError::Cancelled);
}

#[tokio::test]
async fn browser_sign_in_round_trip_with_pkce() {
    let s = setup(SimConfig::test()).await;
    let seen: Seen = Arc::default();
    let opened: Arc<Mutex<Vec<String>>> = Arc::default();
    let fetch = fetching_opener(Some(seen.clone()));
    let log = opened.clone();
    let opener: Opener = Arc::new(move |url: &str| {
        log.lock().unwrap().push(url.to_string());
        fetch(url)
    });
    let flows = s.flows.clone().with_opener(opener);
    let auth = tokio::time::timeout(
        Duration::from_secs(10),
        flows.browser(&CancellationToken::new()),
    )
    .await
    .expect("the loopback answer arrives")
    .expect("browser sign-in succeeds");

    let url = url::Url::parse(&opened.lock().unwrap()[0]).unwrap();
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["client_id"], CLIENT);
    assert!(q["redirect_uri"].starts_with("http://localhost:"));
    assert!(q["scope"].contains("https://graph.microsoft.com/Group.ReadWrite.All"));
    assert!(q["scope"].contains("offline_access"));

    let token = auth.token(false).await.unwrap();
    assert!(issued_access(&s.sim).contains(&token));
    assert_eq!(issued_refresh(&s.sim).len(), 1);

    // The browser got the "close this tab" page, and the listener is gone afterwards.
    for _ in 0..100 {
        if seen.lock().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = seen.lock().unwrap().clone().expect("page served");
    assert_eq!(status, 200);
    assert!(body.contains("close this tab"), "{body}");
    let port = url::Url::parse(&q["redirect_uri"]).unwrap().port().unwrap();
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "listener closed after one answer"
    );
}

#[tokio::test]
async fn browser_answer_with_wrong_state_is_rejected() {
    let s = setup(SimConfig::test()).await;
    let seen: Seen = Arc::default();
    let record = seen.clone();
    // A browser that delivers an answer whose state was tampered with.
    let opener: Opener = Arc::new(move |url: &str| {
        let url = url.to_string();
        let record = record.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let r = http.get(&url).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 302);
            let location = r.headers()["location"].to_str().unwrap().to_string();
            let mut loc = url::Url::parse(&location).unwrap();
            let pairs: Vec<(String, String)> = loc
                .query_pairs()
                .into_owned()
                .map(|(k, v)| {
                    if k == "state" {
                        (k, "forged".into())
                    } else {
                        (k, v)
                    }
                })
                .collect();
            loc.query_pairs_mut().clear().extend_pairs(pairs);
            let r = http.get(loc.as_str()).send().await.unwrap();
            let status = r.status().as_u16();
            *record.lock().unwrap() = Some((status, r.text().await.unwrap()));
        });
        Ok(())
    });
    let err = s
        .flows
        .clone()
        .with_opener(opener)
        .browser(&CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::StateMismatch);
    assert!(err.to_string().contains("rejected"));
    for _ in 0..100 {
        if seen.lock().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = seen.lock().unwrap().clone().unwrap();
    assert_eq!(status, 400);
    assert!(body.contains("rejected"));
    // The code was never redeemed.
    assert!(issued_access(&s.sim).is_empty());
}

#[tokio::test]
async fn browser_sign_in_reports_declined_consent() {
    let s = setup(SimConfig::test()).await;
    s.sim.with_state(|st| st.identity.decline = true);
    let err = s
        .flows
        .browser(&CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.codes(), &[65004]);
    assert!(err.to_string().contains("declined"), "{err}");
}

#[tokio::test]
async fn sim_rejects_a_wrong_code_verifier() {
    let s = setup(SimConfig::test()).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let verifier = "a-verifier-that-is-long-enough-to-be-valid-0123456789";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let base = format!("{}/organizations/oauth2/v2.0", s.sim.url());
    let redirect = "http://localhost:1234";
    let get_code = || async {
        let r = http
            .get(format!("{base}/authorize"))
            .query(&[
                ("client_id", CLIENT),
                ("response_type", "code"),
                ("redirect_uri", redirect),
                (
                    "scope",
                    "https://graph.microsoft.com/Device.Read.All offline_access",
                ),
                ("state", "s1"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 302);
        let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        assert_eq!(loc.port(), Some(1234));
        let q: std::collections::HashMap<String, String> = loc.query_pairs().into_owned().collect();
        assert_eq!(q["state"], "s1");
        q["code"].clone()
    };
    let redeem = |code: String, verifier: &'static str| {
        let http = http.clone();
        let base = base.clone();
        async move {
            http.post(format!("{base}/token"))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("client_id", CLIENT),
                    ("code", code.as_str()),
                    ("redirect_uri", redirect),
                    ("code_verifier", verifier),
                ])
                .send()
                .await
                .unwrap()
        }
    };

    let r = redeem(
        get_code().await,
        "the-wrong-verifier-0123456789-0123456789-abc",
    )
    .await;
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_codes"][0], 501481);
    let desc = body["error_description"].as_str().unwrap();
    assert!(desc.starts_with("AADSTS501481:"));
    for k in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[k].is_string(), "{k} in {body}");
    }
    let err = AuthError::from_oauth("invalid_grant", Some(desc));
    assert!(err.to_string().contains("PKCE"), "{err}");

    let r = redeem(get_code().await, verifier).await;
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["refresh_token"].is_string());
    assert!(body["scope"].as_str().unwrap().contains("Device.Read.All"));
    assert!(body["expires_in"].as_u64().unwrap() > 0);
}

#[test]
fn memory_store_round_trip() {
    let store = MemoryStore::new();
    let key = StoreKey::new("TID", "Admin@Contoso.com");
    assert_eq!(store.load(&key).unwrap(), None);
    store.save(&key, "rt-one").unwrap();
    assert_eq!(
        store
            .load(&StoreKey::new("tid", "admin@contoso.com"))
            .unwrap()
            .as_deref(),
        Some("rt-one"),
        "keys ignore case"
    );
    store.save(&key, "rt-two").unwrap();
    assert_eq!(store.load(&key).unwrap().as_deref(), Some("rt-two"));
    assert_eq!(
        store
            .load(&StoreKey::new("tid", "other@contoso.com"))
            .unwrap(),
        None
    );
    store.delete(&key).unwrap();
    assert_eq!(store.load(&key).unwrap(), None);
    assert!(!store.remembers());
}

#[tokio::test]
async fn silent_sign_in_rotates_and_saves_the_refresh_token() {
    let s = setup(SimConfig::test()).await;
    let first = device_sign_in(&s).await;
    let key = StoreKey::new("tenant-id", "admin@contoso.com");
    first.remember_as(key.clone()).await.unwrap();
    let saved = s.store.load(&key).unwrap().expect("saved");
    assert!(issued_refresh(&s.sim).contains(&saved));
    let first_access = first.token(false).await.unwrap();

    let second = s
        .flows
        .silent(&key)
        .await
        .unwrap()
        .expect("a saved sign-in");
    let access = second.token(false).await.unwrap();
    assert_ne!(access, first_access);
    assert!(issued_access(&s.sim).contains(&access));
    let rotated = s.store.load(&key).unwrap().unwrap();
    assert_ne!(rotated, saved, "rotated refresh token saved");
    let live = issued_refresh(&s.sim);
    assert!(live.contains(&rotated));
    // Entra does not revoke a redeemed refresh token: it stays usable until it expires.
    assert!(live.contains(&saved), "the redeemed token still works");

    // Nothing saved for another account: no silent sign-in, no error.
    let none = s
        .flows
        .silent(&StoreKey::new("tenant-id", "someone@else"))
        .await
        .unwrap();
    assert!(none.is_none());
}

#[tokio::test]
async fn revoked_saved_sign_in_is_removed() {
    let s = setup(SimConfig::test()).await;
    let key = StoreKey::new("t", "u");
    s.store
        .save(&key, "not-a-refresh-token-the-sim-knows")
        .unwrap();
    let err = s.flows.silent(&key).await.unwrap_err();
    assert!(matches!(err, AuthError::SignInRequired(_)), "{err:?}");
    assert!(err.to_string().contains("Sign in again"));
    assert_eq!(s.store.load(&key).unwrap(), None);
}

#[tokio::test]
async fn sign_out_removes_the_saved_token() {
    let s = setup(SimConfig::test()).await;
    let auth = device_sign_in(&s).await;
    let key = StoreKey::new("tenant-id", "admin@contoso.com");
    auth.remember_as(key.clone()).await.unwrap();
    assert!(s.store.load(&key).unwrap().is_some());
    auth.sign_out().await.unwrap();
    assert_eq!(s.store.load(&key).unwrap(), None);
    let err = auth.token(false).await.unwrap_err();
    assert!(matches!(err, AuthError::SignInRequired(_)));
    assert!(s.flows.silent(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn forced_refresh_gets_a_new_access_token() {
    let s = setup(SimConfig::test()).await;
    let auth = device_sign_in(&s).await;
    let key = StoreKey::new("tenant-id", "admin@contoso.com");
    auth.remember_as(key.clone()).await.unwrap();
    let saved = s.store.load(&key).unwrap().unwrap();
    let a = auth.token(false).await.unwrap();
    assert_eq!(auth.token(false).await.unwrap(), a, "cached while valid");
    let b = auth.token(true).await.unwrap();
    assert_ne!(a, b);
    assert_ne!(s.store.load(&key).unwrap().unwrap(), saved);

    // A token that is about to expire is renewed without being forced.
    s.sim
        .with_state(|st| st.identity.access_token_lifetime = Duration::from_secs(1));
    let c = auth.token(true).await.unwrap();
    tokio::time::sleep(Duration::from_millis(850)).await;
    let d = auth.token(false).await.unwrap();
    assert_ne!(c, d, "renewed once four fifths of its lifetime had passed");
}

#[tokio::test]
async fn short_lived_tokens_are_renewed_at_a_fraction_of_their_lifetime() {
    assert_eq!(
        autopilot_wizard::graph::auth::renewal_margin(Duration::from_secs(3600)),
        Duration::from_secs(60)
    );
    assert_eq!(
        autopilot_wizard::graph::auth::renewal_margin(Duration::from_secs(30)),
        Duration::from_secs(6)
    );
    let s = setup(SimConfig::test()).await;
    s.sim
        .with_state(|st| st.identity.access_token_lifetime = Duration::from_secs(30));
    let auth = device_sign_in(&s).await;
    let before = issued_access(&s.sim).len();
    // Shorter than the old fixed one-minute margin: that renewed before every request.
    let first = auth.token(false).await.unwrap();
    for _ in 0..20 {
        assert_eq!(auth.token(false).await.unwrap(), first);
    }
    assert_eq!(
        issued_access(&s.sim).len(),
        before,
        "no token request while the 30-second token is fresh"
    );
}

#[tokio::test]
async fn no_token_in_debug_output_or_errors() {
    let s = setup(SimConfig::test()).await;
    let code = s.flows.start_device_code().await.unwrap();
    let auth = s
        .flows
        .finish_device_code(&code, &CancellationToken::new())
        .await
        .unwrap();
    let key = StoreKey::new("tenant-id", "admin@contoso.com");
    auth.remember_as(key.clone()).await.unwrap();
    let access = auth.token(false).await.unwrap();
    let refresh = s.store.load(&key).unwrap().unwrap();

    let mut texts = vec![
        format!("{auth:?}"),
        format!("{code:?}"),
        format!("{:?}", s.flows),
        format!("{:?}", s.store),
    ];
    // Errors after the session ended, and a refused refresh.
    auth.sign_out().await.unwrap();
    texts.push(auth.token(false).await.unwrap_err().to_string());
    s.store.save(&key, &refresh).unwrap();
    s.sim.with_state(|st| st.core.refresh_tokens.clear());
    let err = s.flows.silent(&key).await.unwrap_err();
    texts.push(err.to_string());
    texts.push(format!("{err:?}"));
    for t in &texts {
        assert!(!t.contains(&access), "access token leaked: {t}");
        assert!(!t.contains(&refresh), "refresh token leaked: {t}");
    }
    assert!(texts[0].contains("Authenticator"));
}

mod page {
    //! The sign-in page driven through egui_kittest by its labels, with its jobs run on tokio
    //! against the simulated tenant.

    use super::*;
    use autopilot_wizard::steps::Outcomes;
    use autopilot_wizard::ui::sign_in::{SignInConfig, SignInPage, SignInPhase};
    use autopilot_wizard::ui::{self, Job, Outbox, Page, PageCx, Session};
    use egui_kittest::Harness;

    pub struct State {
        pub page: SignInPage,
        pub session: Session,
        pub outcomes: Outcomes,
        pub jobs: Vec<Job>,
    }

    pub fn harness(sim: &SimHandle, store: Arc<dyn TokenStore>) -> Harness<'static, State> {
        let mut config = SignInConfig::new(Endpoints::simulated(&sim.url()), store);
        config.simulated = true;
        config.tenant = "contoso.onmicrosoft.com".into();
        config.client_id = CLIENT.into();
        let state = State {
            page: SignInPage::new(config),
            session: Session::default(),
            outcomes: Outcomes::default(),
            jobs: Vec::new(),
        };
        Harness::new_ui_state(
            |ui, s: &mut State| {
                let mut cx = PageCx::new(&mut s.session, &mut s.outcomes, &mut s.jobs);
                s.page.ui(ui, &mut cx);
            },
            state,
        )
    }

    /// Starts queued jobs and routes their messages to the page until `done` holds.
    pub fn pump(
        h: &mut Harness<'static, State>,
        rt: &tokio::runtime::Runtime,
        tx: &std::sync::mpsc::Sender<ui::Msg>,
        rx: &std::sync::mpsc::Receiver<ui::Msg>,
        done: impl Fn(&SignInPhase) -> bool,
    ) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            h.step();
            let ctx = h.ctx.clone();
            let s = h.state_mut();
            for job in s.jobs.drain(..) {
                rt.spawn((job.run)(Outbox::new(tx.clone(), ctx.clone())));
            }
            while let Ok(ui::Msg::SignIn(m)) = rx.try_recv() {
                let mut cx = PageCx::new(&mut s.session, &mut s.outcomes, &mut s.jobs);
                s.page.on_msg(m, &mut cx);
            }
            if done(s.page.phase()) {
                h.step();
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "page stuck in {:?}",
                s.page.phase()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn page_shows_the_device_code_copies_it_and_cancels() {
    use autopilot_wizard::ui::Page;
    use autopilot_wizard::ui::sign_in::SignInPhase;
    use egui_kittest::kittest::Queryable;

    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = rt
        .block_on(sim::spawn(SimConfig {
            approve_device_code_after_polls: u32::MAX,
            ..SimConfig::test()
        }))
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut h = page::harness(&sim, Arc::new(MemoryStore::new()));
    h.step();
    assert!(h.query_by_label("Sign in with browser").is_some());
    h.get_by_label("Sign in with a code").click();
    page::pump(&mut h, &rt, &tx, &rx, |p| {
        matches!(p, SignInPhase::WaitingForCode(_))
    });
    let SignInPhase::WaitingForCode(prompt) = h.state().page.phase().clone() else {
        unreachable!()
    };
    assert!(h.query_by_label(&prompt.user_code).is_some(), "code shown");
    h.get_by_label("Copy code").click();
    h.step();
    let copied = h
        .output()
        .platform_output
        .commands
        .iter()
        .any(|c| matches!(c, egui::OutputCommand::CopyText(t) if *t == prompt.user_code));
    assert!(copied, "the code went to the clipboard");
    assert!(h.state().page.status() == autopilot_wizard::ui::StepStatus::InProgress);

    h.get_by_label("Cancel").click();
    h.step();
    assert_eq!(*h.state().page.phase(), SignInPhase::Idle);
    assert!(!h.state().page.validated());
    assert!(h.query_by_label_contains("cancelled").is_some());
    drop(sim);
}

#[tokio::test]
async fn graph_client_renews_the_token_after_401() {
    let s = setup(SimConfig::test()).await;
    let auth = device_sign_in(&s).await;
    let graph = GraphClient::new(&s.sim.url(), Arc::new(auth.clone()));
    let me: serde_json::Value = graph.get_json(ApiVersion::V1, "/me").await.unwrap();
    assert_eq!(
        me["userPrincipalName"],
        s.sim.admin().user_principal_name.as_str()
    );

    let first = auth.token(false).await.unwrap();
    // The service stops accepting the token although the client still thinks it valid.
    s.sim.expire_access_token(&first);
    let me: serde_json::Value = graph.get_json(ApiVersion::V1, "/me").await.unwrap();
    assert_eq!(me["id"], s.sim.admin().id.as_str());
    let second = auth.token(false).await.unwrap();
    assert_ne!(first, second);
    let refreshes = s
        .sim
        .with_state(|st| st.identity.token_requests.get("refresh_token").copied());
    assert_eq!(refreshes, Some(1));
}

#[tokio::test]
async fn sign_in_step_reads_account_tenant_and_saves_the_sign_in() {
    let s = setup(SimConfig::test()).await;
    let auth = device_sign_in(&s).await;
    let (graph, signed) = step::complete(auth).await.unwrap();
    let admin = s.sim.admin();
    let org = s.sim.with_state(|st| st.core.organization.clone());
    assert_eq!(signed.user_upn, admin.user_principal_name);
    assert_eq!(signed.user_name, admin.display_name);
    assert_eq!(signed.user_id, admin.id);
    assert_eq!(signed.tenant_id, org.id);
    assert_eq!(signed.tenant_name, org.display_name);
    let domains: Vec<String> = org
        .verified_domains
        .iter()
        .map(|d| d.name.clone())
        .collect();
    assert_eq!(signed.verified_domains, domains);
    assert_eq!(
        signed.default_domain,
        org.verified_domains
            .iter()
            .find(|d| d.is_default)
            .map(|d| d.name.clone())
    );
    assert!(
        signed.missing_scopes.is_empty(),
        "{:?}",
        signed.missing_scopes
    );
    assert!(signed.admin_consent_url.is_none());
    assert_eq!(signed.client_id, CLIENT);
    // Saved under tenant id + account, and the silent sign-in finds it.
    let key = StoreKey::new(&org.id, &admin.user_principal_name);
    assert_eq!(signed.store_key(), key);
    assert!(s.store.load(&key).unwrap().is_some());
    assert!(
        !signed.remembered,
        "memory store does not survive a restart"
    );
    assert!(s.flows.silent(&key).await.unwrap().is_some());
    // The client works for the next steps.
    let me: serde_json::Value = graph.get_json(ApiVersion::V1, "/me").await.unwrap();
    assert_eq!(me["id"], admin.id.as_str());
    // Plain data: survives a JSON round trip.
    let json = serde_json::to_string(&signed).unwrap();
    assert_eq!(
        serde_json::from_str::<step::SignedIn>(&json).unwrap(),
        signed
    );
}

#[tokio::test]
async fn missing_consent_is_named_with_the_fix() {
    let s = setup(SimConfig::test()).await;
    s.sim.with_state(|st| {
        st.identity.withheld_scopes = vec![
            "Policy.Read.All".into(),
            "DeviceManagementServiceConfig.ReadWrite.All".into(),
        ]
    });
    let auth = device_sign_in(&s).await;
    let (_graph, signed) = step::complete(auth).await.unwrap();
    assert_eq!(
        signed.missing_scopes,
        // In procedure order: step 2 reads the policies before step 3 writes profiles.
        vec![
            "Policy.Read.All".to_string(),
            "DeviceManagementServiceConfig.ReadWrite.All".to_string(),
        ]
    );
    assert!(signed.fix.contains("admin consent"), "{}", signed.fix);
    assert!(signed.fix.contains("Policy.Read.All"));
    let url = signed.admin_consent_url.clone().unwrap();
    assert!(
        url.contains(&format!("/{}/v2.0/adminconsent", signed.tenant_id)),
        "{url}"
    );
    assert!(url.contains(&format!("client_id={CLIENT}")), "{url}");
    assert!(url.contains("Policy.Read.All"), "{url}");
}

#[test]
fn page_signs_in_with_a_code_then_signs_out_and_resumes_silently() {
    use autopilot_wizard::ui::sign_in::SignInPhase;
    use autopilot_wizard::ui::{Page, PageCx, StepStatus};
    use egui_kittest::kittest::Queryable;

    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let store = Arc::new(MemoryStore::new());
    let (tx, rx) = std::sync::mpsc::channel();
    let mut h = page::harness(&sim, store.clone());
    h.step();
    h.get_by_label("Sign in with a code").click();
    page::pump(&mut h, &rt, &tx, &rx, |p| {
        matches!(p, SignInPhase::SignedIn(_) | SignInPhase::Failed(_))
    });
    let SignInPhase::SignedIn(signed) = h.state().page.phase().clone() else {
        panic!("not signed in: {:?}", h.state().page.phase());
    };
    let admin = sim.admin();
    assert!(
        h.query_by_label_contains(&format!("Signed in as {}", admin.display_name))
            .is_some()
    );
    assert!(h.query_by_label_contains(&signed.tenant_name).is_some());
    assert!(h.state().page.validated());
    assert_eq!(h.state().page.status(), StepStatus::Done);
    assert!(h.state().session.graph.is_some());
    assert_eq!(h.state().outcomes.signed_in.as_ref(), Some(&*signed));
    assert!(
        h.query_by_label_contains("will sign in again").is_some(),
        "not-remembered notice"
    );
    assert_eq!(store.len(), 1);

    // Sign out: session gone, saved token removed.
    h.get_by_label("Sign out").click();
    page::pump(&mut h, &rt, &tx, &rx, |p| matches!(p, SignInPhase::Idle));
    for _ in 0..200 {
        if store.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(store.is_empty());
    assert!(h.state().session.graph.is_none());
    assert!(h.state().outcomes.signed_in.is_none());
    assert!(!h.state().page.validated());
    // The sign-in lived in memory only: nothing saved was removed, and the page says so
    // (issue 18, point 11).
    for _ in 0..200 {
        if h.query_by_label_contains("Signed out").is_some() {
            break;
        }
        page::pump(&mut h, &rt, &tx, &rx, |_| true);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        h.query_by_label_contains("Nothing was saved on this computer")
            .is_some()
    );
    assert!(
        h.query_by_label_contains("saved sign-in was removed")
            .is_none()
    );

    // A later start with a saved sign-in resumes without the user.
    let rt2 = &rt;
    let refresh = rt2.block_on(async {
        let s = SignInFlows::new(
            AuthConfig {
                endpoints: Endpoints::simulated(&sim.url()),
                tenant: String::new(),
                client: ClientApp::Own {
                    client_id: CLIENT.into(),
                },
            },
            store.clone() as Arc<dyn TokenStore>,
            &autopilot_wizard::steps::required_scopes(),
        );
        let code = s.start_device_code().await.unwrap();
        let auth = s
            .finish_device_code(&code, &CancellationToken::new())
            .await
            .unwrap();
        auth.remember_as(signed.store_key()).await.unwrap();
        store.load(&signed.store_key()).unwrap().unwrap()
    });
    let mut h = page::harness(&sim, store.clone());
    {
        let state = h.state_mut();
        state.outcomes.signed_in = Some((*signed).clone());
        let mut cx = PageCx::new(&mut state.session, &mut state.outcomes, &mut state.jobs);
        state.page.try_silent(&mut cx);
        assert_eq!(*state.page.phase(), SignInPhase::Resuming);
    }
    page::pump(&mut h, &rt, &tx, &rx, |p| {
        matches!(p, SignInPhase::SignedIn(_) | SignInPhase::Failed(_))
    });
    assert!(
        matches!(h.state().page.phase(), SignInPhase::SignedIn(_)),
        "{:?}",
        h.state().page.phase()
    );
    assert!(h.state().session.graph.is_some());
    assert_ne!(
        store.load(&signed.store_key()).unwrap().unwrap(),
        refresh,
        "rotated"
    );
}

/// A credential store that keeps tokens past a restart (the system's, on a desktop).
#[derive(Debug, Default)]
struct KeptStore(MemoryStore);

impl TokenStore for KeptStore {
    fn load(
        &self,
        key: &StoreKey,
    ) -> Result<Option<String>, autopilot_wizard::graph::token_store::TokenStoreError> {
        self.0.load(key)
    }
    fn save(
        &self,
        key: &StoreKey,
        token: &str,
    ) -> Result<(), autopilot_wizard::graph::token_store::TokenStoreError> {
        self.0.save(key, token)
    }
    fn delete(
        &self,
        key: &StoreKey,
    ) -> Result<(), autopilot_wizard::graph::token_store::TokenStoreError> {
        self.0.delete(key)
    }
    fn remembers(&self) -> bool {
        true
    }
    fn keys(&self) -> Result<Vec<StoreKey>, autopilot_wizard::graph::token_store::TokenStoreError> {
        self.0.keys()
    }
}

/// "The saved sign-in was removed" only where one was saved: with a credential store that keeps
/// it, signing out removes it and says so; signing out again has nothing left to remove.
#[test]
fn page_says_a_saved_sign_in_was_removed_only_when_one_was() {
    use autopilot_wizard::ui::sign_in::SignInPhase;
    use egui_kittest::kittest::Queryable;

    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let store = Arc::new(KeptStore::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let mut h = page::harness(&sim, store.clone());
    h.step();
    h.get_by_label("Sign in with a code").click();
    page::pump(&mut h, &rt, &tx, &rx, |p| {
        matches!(p, SignInPhase::SignedIn(_) | SignInPhase::Failed(_))
    });
    assert!(matches!(h.state().page.phase(), SignInPhase::SignedIn(_)));
    assert_eq!(store.0.len(), 1, "saved in the store that keeps it");
    h.get_by_label("Sign out").click();
    for _ in 0..300 {
        if h.query_by_label_contains("Signed out").is_some() {
            break;
        }
        page::pump(&mut h, &rt, &tx, &rx, |_| true);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(store.0.is_empty());
    assert!(
        h.query_by_label_contains("the saved sign-in was removed from this computer")
            .is_some()
    );
    assert!(h.query_by_label_contains("Nothing was saved").is_none());
}

/// The token endpoint sheds load like Graph (429/503 with Retry-After, dropped connections):
/// the sign-in tries again instead of failing.
#[tokio::test]
async fn device_code_sign_in_rides_out_a_busy_login_service() {
    use autopilot_wizard::sim::core::{Fault, FaultConfig, ScriptedFault};
    let s = setup(SimConfig {
        faults: FaultConfig {
            include_identity: true,
            ..FaultConfig::default()
        },
        ..SimConfig::test()
    })
    .await;
    let quick = Duration::from_millis(20);
    s.sim.script_faults(vec![
        ScriptedFault::new(None, "/oauth2/v2.0/devicecode", Fault::DropConnection, 1),
        ScriptedFault::new(
            None,
            "/oauth2/v2.0/token",
            Fault::Throttle { retry_after: quick },
            2,
        ),
        ScriptedFault::new(
            None,
            "/oauth2/v2.0/token",
            Fault::Unavailable {
                retry_after: Some(quick),
            },
            1,
        ),
    ]);
    let auth = device_sign_in(&s).await;
    assert!(issued_access(&s.sim).contains(&auth.token(false).await.unwrap()));
    let statuses: Vec<u16> = s
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("/oauth2/"))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![0, 200, 429, 429, 503, 200], "{statuses:?}");
}

/// Device-code sign-in over raw HTTP, as a client library other than ours would do it.
async fn raw_device_sign_in(sim: &SimHandle, scope: &str, client_info: bool) -> serde_json::Value {
    let http = support::raw_http();
    let code: serde_json::Value = http
        .post(format!(
            "{}/organizations/oauth2/v2.0/devicecode",
            sim.url()
        ))
        .form(&[("client_id", CLIENT), ("scope", scope)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut form = vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:device_code".to_string(),
        ),
        ("client_id", CLIENT.to_string()),
        (
            "device_code",
            code["device_code"].as_str().unwrap().to_string(),
        ),
    ];
    if client_info {
        form.push(("client_info", "1".to_string()));
    }
    let resp = http
        .post(format!("{}/organizations/oauth2/v2.0/token", sim.url()))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn openid_discovery_document_names_every_endpoint() {
    let sim = sim::spawn(SimConfig::test()).await.unwrap();
    let tid = sim.tenant_id();
    let http = support::raw_http();
    let get = |path: String| http.get(format!("{}{path}", sim.url())).send();
    let doc: serde_json::Value = get(format!("/{tid}/v2.0/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let base = format!("{}/{tid}", sim.url());
    assert_eq!(doc["issuer"], format!("{base}/v2.0"));
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{base}/oauth2/v2.0/authorize")
    );
    assert_eq!(doc["token_endpoint"], format!("{base}/oauth2/v2.0/token"));
    assert_eq!(
        doc["device_authorization_endpoint"],
        format!("{base}/oauth2/v2.0/devicecode")
    );
    assert_eq!(
        doc["end_session_endpoint"],
        format!("{base}/oauth2/v2.0/logout")
    );
    assert_eq!(doc["jwks_uri"], format!("{base}/discovery/v2.0/keys"));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    // A domain names the same tenant; "organizations" keeps Entra's issuer placeholder.
    let by_domain: serde_json::Value =
        get("/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration".into())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(by_domain["issuer"], doc["issuer"]);
    let multi: serde_json::Value =
        get("/organizations/v2.0/.well-known/openid-configuration".into())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(multi["issuer"], format!("{}/{{tenantid}}/v2.0", sim.url()));
    assert_eq!(
        multi["token_endpoint"],
        format!("{}/organizations/oauth2/v2.0/token", sim.url())
    );
    // The JWKS the document points at has one RSA signing key.
    let jwks: serde_json::Value = http
        .get(doc["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[0]["use"], "sig");
}

#[derive(Debug, serde::Deserialize)]
struct IdClaims {
    aud: String,
    iss: String,
    tid: String,
    oid: String,
    sub: String,
    preferred_username: String,
    name: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    ver: String,
}

#[tokio::test]
async fn id_token_is_signed_by_the_jwks_key_and_carries_the_usual_claims() {
    let sim = sim::spawn(SimConfig::test()).await.unwrap();
    let tid = sim.tenant_id();
    let admin = sim.admin();
    let answer = raw_device_sign_in(
        &sim,
        "https://graph.microsoft.com/.default openid profile offline_access",
        true,
    )
    .await;
    let id_token = answer["id_token"].as_str().expect("an id_token for openid");

    let jwks: jsonwebtoken::jwk::JwkSet = support::raw_http()
        .get(format!("{}/{tid}/discovery/v2.0/keys", sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let kid = header.kid.expect("kid in the header");
    let jwk = jwks.find(&kid).expect("the kid is in the JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[CLIENT]);
    validation.set_issuer(&[format!("{}/{tid}/v2.0", sim.url())]);
    let data = jsonwebtoken::decode::<IdClaims>(id_token, &key, &validation)
        .expect("the signature verifies against the JWKS");
    let c = data.claims;
    assert_eq!(c.aud, CLIENT);
    assert_eq!(c.iss, format!("{}/{tid}/v2.0", sim.url()));
    assert_eq!(c.tid, tid);
    assert_eq!(c.oid, admin.id);
    assert_eq!(c.preferred_username, admin.user_principal_name);
    assert_eq!(c.name, admin.display_name);
    assert_eq!(c.ver, "2.0");
    assert!(!c.sub.is_empty() && c.sub != c.oid, "sub is pairwise");
    assert!(c.nbf <= c.iat && c.exp > c.iat);

    // A tampered token does not verify.
    let mut parts: Vec<String> = id_token.split('.').map(str::to_string).collect();
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(r#"{"aud":"x","iss":"y","tid":"t","oid":"o","sub":"s","preferred_username":"p","name":"n","iat":0,"nbf":0,"exp":9999999999,"ver":"2.0"}"#);
    parts[1] = forged;
    assert!(jsonwebtoken::decode::<IdClaims>(&parts.join("."), &key, &validation).is_err());

    // client_info: base64url JSON of the user's object id and the tenant id.
    let info = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(answer["client_info"].as_str().expect("client_info"))
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info).unwrap();
    assert_eq!(info["uid"], admin.id.as_str());
    assert_eq!(info["utid"], tid.as_str());

    // Without openid: no id_token.
    let plain = raw_device_sign_in(
        &sim,
        "https://graph.microsoft.com/.default offline_access",
        false,
    )
    .await;
    assert!(plain.get("id_token").is_none(), "{plain}");
}

#[tokio::test]
async fn a_refresh_token_can_be_redeemed_twice_until_sign_out() {
    let sim = sim::spawn(SimConfig::test()).await.unwrap();
    let answer = raw_device_sign_in(
        &sim,
        "https://graph.microsoft.com/.default openid offline_access",
        false,
    )
    .await;
    let refresh = answer["refresh_token"].as_str().unwrap().to_string();
    let http = support::raw_http();
    let redeem = || {
        http.post(format!("{}/organizations/oauth2/v2.0/token", sim.url()))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", CLIENT),
                ("refresh_token", refresh.as_str()),
            ])
            .send()
    };
    for attempt in 1..=2 {
        let resp = redeem().await.unwrap();
        assert_eq!(resp.status(), 200, "redemption {attempt}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(body["access_token"].is_string());
        assert!(body["id_token"].is_string(), "openid kept on refresh");
        assert_ne!(
            body["refresh_token"],
            refresh.as_str(),
            "a new one every time"
        );
    }
    // Signing out ends every refresh token of the user.
    let out = http
        .get(format!("{}/organizations/oauth2/v2.0/logout", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    let resp = redeem().await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_tokens_expire_after_their_lifetime() {
    let sim = sim::spawn(SimConfig {
        refresh_token_lifetime: Duration::from_millis(300),
        ..SimConfig::test()
    })
    .await
    .unwrap();
    let answer = raw_device_sign_in(&sim, "User.Read offline_access", false).await;
    let refresh = answer["refresh_token"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let resp = support::raw_http()
        .post(format!("{}/organizations/oauth2/v2.0/token", sim.url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["error_codes"][0] == 700082, "{body}");
}

/// `autopilot-wizard sign-out [--tenant T]` over a keyring-core credential store (the mock
/// store stands in for Credential Manager / the Secret Service).
#[test]
fn sign_out_on_the_command_line_removes_saved_sign_ins() {
    use autopilot_wizard::graph::token_store::KeyringStore;
    let store = KeyringStore::with_store(keyring_core::mock::Store::new().unwrap());
    let contoso = StoreKey::new(
        "11111111-1111-1111-1111-111111111111",
        "Admin@Contoso.onmicrosoft.com",
    );
    let contoso2 = StoreKey::new(
        "11111111-1111-1111-1111-111111111111",
        "rowan@contoso.onmicrosoft.com",
    );
    let fabrikam = StoreKey::new("22222222-2222-2222-2222-222222222222", "admin@fabrikam.com");
    for k in [&contoso, &contoso2, &fabrikam] {
        store.save(k, "refresh-token").unwrap();
    }
    assert_eq!(store.keys().unwrap().len(), 3);

    let run = |tenant: Option<&str>| {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = autopilot_wizard::cli::sign_out(&store, tenant, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    };
    // By the account's domain, as an admin knows the tenant.
    let (code, out, err) = run(Some("CONTOSO.onmicrosoft.com"));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("admin@contoso.onmicrosoft.com")
            && out.contains("rowan@contoso.onmicrosoft.com"),
        "{out}"
    );
    assert_eq!(store.load(&contoso).unwrap(), None);
    assert_eq!(store.load(&contoso2).unwrap(), None);
    assert_eq!(
        store.load(&fabrikam).unwrap().as_deref(),
        Some("refresh-token")
    );
    // Nothing left for that tenant: says so, and that is not a failure.
    let (code, out, _) = run(Some("contoso.onmicrosoft.com"));
    assert_eq!(code, 0);
    assert!(
        out.starts_with("No saved sign-in for contoso.onmicrosoft.com"),
        "{out}"
    );
    // By tenant id.
    let (code, out, _) = run(Some("22222222-2222-2222-2222-222222222222"));
    assert_eq!(code, 0);
    assert!(out.contains("admin@fabrikam.com"), "{out}");
    assert_eq!(store.load(&fabrikam).unwrap(), None);
    assert!(store.keys().unwrap().is_empty());

    // Without --tenant: every saved sign-in.
    store.save(&contoso, "again").unwrap();
    store.save(&fabrikam, "again").unwrap();
    let (code, out, _) = run(None);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(store.keys().unwrap().is_empty());
    assert_eq!(store.load(&contoso).unwrap(), None);
}
