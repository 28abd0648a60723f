//! The "Sign in" page: tenant, app registration and cloud; browser or device-code sign-in;
//! who is signed in, which permissions are missing and how to fix that; sign out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{Outbox, Page, PageCx, StepStatus};
use crate::graph::cloud::{ClientApp, Cloud, Endpoints, GRAPH_CLI_CLIENT_ID};
use crate::graph::token_store::{StoreNotice, TokenStore};
use crate::steps::sign_in::{
    self as step, AuthConfig, BrowserAddress, DeviceCodePrompt, Flows, Opener, SignInError,
    SignedIn, browser_opener,
};

/// How long "Sign in with browser" waits for the browser's answer before it gives up and says so.
pub const BROWSER_TIMEOUT: Duration = Duration::from_secs(300);

/// What the page needs from the app, given once at construction.
#[derive(Clone)]
pub struct SignInConfig {
    pub endpoints: Endpoints,
    /// The app registration's client id; empty or the default means Microsoft Graph Command
    /// Line Tools.
    pub client_id: String,
    /// Domain or tenant id; empty means the account's home tenant (`organizations`).
    pub tenant: String,
    /// Talking to the built-in simulated tenant.
    pub simulated: bool,
    pub store: Arc<dyn TokenStore>,
    /// Why sign-ins will not be remembered, from [`crate::graph::token_store::open_default_store`].
    pub store_notice: Option<StoreNotice>,
    pub opener: Opener,
    /// How long the browser sign-in waits ([`BROWSER_TIMEOUT`]; tests shorten it).
    pub browser_timeout: Duration,
}

impl SignInConfig {
    /// Defaults for everything but where to sign in and where tokens go.
    pub fn new(endpoints: Endpoints, store: Arc<dyn TokenStore>) -> Self {
        SignInConfig {
            endpoints,
            client_id: String::new(),
            tenant: String::new(),
            simulated: false,
            store,
            store_notice: None,
            opener: browser_opener(),
            browser_timeout: BROWSER_TIMEOUT,
        }
    }
}

/// The browser sign-in while it waits for the browser's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowserWait {
    /// The sign-in address, to copy into a browser that did not come up by itself.
    pub address: Option<String>,
    /// When the wait ends with a message.
    pub deadline: Instant,
}

/// Where the page stands.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum SignInPhase {
    #[default]
    Idle,
    /// Signing in again from the saved refresh token.
    Resuming,
    WaitingForBrowser(BrowserWait),
    RequestingCode,
    WaitingForCode(DeviceCodePrompt),
    SignedIn(Box<SignedIn>),
    Failed(String),
}

impl SignInPhase {
    pub fn is_running(&self) -> bool {
        matches!(
            self,
            SignInPhase::Resuming
                | SignInPhase::WaitingForBrowser(_)
                | SignInPhase::RequestingCode
                | SignInPhase::WaitingForCode(_)
        )
    }
}

/// The form, kept across restarts (no secrets).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
struct FormState {
    tenant: String,
    own_app: bool,
    client_id: String,
    cloud: Option<Cloud>,
}

/// Messages from this page's background jobs. `run` tells apart a job that was cancelled or
/// replaced from the current one.
#[derive(Debug)]
pub enum Msg {
    BrowserAddress {
        run: u64,
        address: BrowserAddress,
    },
    DeviceCode {
        run: u64,
        prompt: DeviceCodePrompt,
    },
    Done {
        run: u64,
        session: Box<step::Session>,
    },
    /// Silent sign-in found nothing saved.
    NothingSaved {
        run: u64,
    },
    Failed {
        run: u64,
        error: String,
    },
    /// Sign-out finished: whether a saved sign-in was removed, or why it could not be.
    SignedOut {
        result: Result<bool, String>,
    },
}

pub struct SignInPage {
    endpoints: Endpoints,
    tenant: String,
    own_app: bool,
    client_id: String,
    simulated: bool,
    store: Arc<dyn TokenStore>,
    store_notice: Option<StoreNotice>,
    opener: Opener,
    browser_timeout: Duration,
    phase: SignInPhase,
    run: u64,
    cancel: Option<CancellationToken>,
    session: Option<Arc<step::Session>>,
    note: Option<String>,
    /// Why the browser sign-in gave way to the code sign-in (the system's raw reason).
    no_browser: Option<String>,
}

impl SignInPage {
    pub fn new(config: SignInConfig) -> Self {
        let client = ClientApp::from_client_id(&config.client_id);
        let own_app = matches!(client, ClientApp::Own { .. });
        SignInPage {
            endpoints: config.endpoints,
            tenant: config.tenant,
            own_app,
            client_id: if own_app {
                client.client_id().to_string()
            } else {
                String::new()
            },
            simulated: config.simulated,
            store: config.store,
            store_notice: config.store_notice,
            opener: config.opener,
            browser_timeout: config.browser_timeout,
            phase: SignInPhase::Idle,
            run: 0,
            cancel: None,
            session: None,
            note: None,
            no_browser: None,
        }
    }

    pub fn phase(&self) -> &SignInPhase {
        &self.phase
    }

    /// The configuration the form describes.
    pub fn auth_config(&self) -> AuthConfig {
        AuthConfig {
            endpoints: self.endpoints.clone(),
            tenant: self.tenant.trim().to_string(),
            client: if self.own_app {
                ClientApp::from_client_id(&self.client_id)
            } else {
                ClientApp::GraphCommandLineTools
            },
        }
    }

    fn flows(&self) -> Flows {
        Flows::new(self.auth_config(), self.store.clone(), self.opener.clone())
            .with_browser_timeout(self.browser_timeout)
    }

    fn next_run(&mut self) -> u64 {
        if let Some(c) = self.cancel.take() {
            c.cancel();
        }
        self.run += 1;
        self.note = None;
        self.no_browser = None;
        self.run
    }

    /// Signs in from the refresh token saved last time, if any. The app calls this once at
    /// start; without a previous sign-in it does nothing.
    pub fn try_silent(&mut self, cx: &mut PageCx<'_>) {
        let Some(prev) = cx.outcomes.signed_in.clone() else {
            return;
        };
        if prev.cloud != self.endpoints.cloud || self.phase.is_running() {
            return;
        }
        self.tenant = prev.tenant_id.clone();
        let client = ClientApp::from_client_id(&prev.client_id);
        self.own_app = matches!(client, ClientApp::Own { .. });
        if self.own_app {
            self.client_id = client.client_id().to_string();
        }
        let flows = self.flows();
        let run = self.next_run();
        self.phase = SignInPhase::Resuming;
        let key = prev.store_key();
        let token = cx.spawn("Signing in again", move |out, cancel| async move {
            let result = tokio::select! {
                _ = cancel.cancelled() => return,
                r = flows.silent(&key) => r,
            };
            match result {
                Ok(Some(session)) => finish(&out, run, Ok(session)),
                Ok(None) => send(&out, Msg::NothingSaved { run }),
                Err(e) => finish(&out, run, Err(e)),
            }
        });
        self.cancel = Some(token);
    }

    fn start_browser(&mut self, cx: &mut PageCx<'_>) {
        let flows = self.flows();
        let run = self.next_run();
        self.phase = SignInPhase::WaitingForBrowser(BrowserWait {
            address: None,
            deadline: Instant::now() + self.browser_timeout,
        });
        let token = cx.spawn(
            "Signing in with the browser",
            move |out, cancel| async move {
                let events = out.clone();
                let on_address = move |address| send(&events, Msg::BrowserAddress { run, address });
                let result = flows.browser(on_address, &cancel).await;
                finish(&out, run, result);
            },
        );
        self.cancel = Some(token);
    }

    fn start_device_code(&mut self, cx: &mut PageCx<'_>) {
        let flows = self.flows();
        let run = self.next_run();
        self.phase = SignInPhase::RequestingCode;
        let token = cx.spawn("Signing in with a code", move |out, cancel| async move {
            let code = tokio::select! {
                _ = cancel.cancelled() => return,
                r = flows.start_device_code() => r,
            };
            let code = match code {
                Ok(c) => c,
                Err(e) => return finish(&out, run, Err(e)),
            };
            send(
                &out,
                Msg::DeviceCode {
                    run,
                    prompt: code.prompt.clone(),
                },
            );
            let result = flows.finish_device_code(&code, &cancel).await;
            finish(&out, run, result);
        });
        self.cancel = Some(token);
    }

    fn cancel(&mut self) {
        if let Some(c) = self.cancel.take() {
            c.cancel();
        }
        self.run += 1;
        self.phase = SignInPhase::Idle;
        self.note = Some("Sign-in cancelled.".into());
    }

    fn sign_out(&mut self, cx: &mut PageCx<'_>) {
        cx.session.graph = None;
        cx.outcomes.signed_in = None;
        self.next_run();
        self.phase = SignInPhase::Idle;
        if let Some(session) = self.session.take() {
            cx.spawn("Signing out", move |out, _cancel| async move {
                let result = session.sign_out().await.map_err(|e| {
                    tracing::warn!(error = ?e, "the saved sign-in could not be removed");
                    e.to_string()
                });
                send(&out, Msg::SignedOut { result });
            });
        }
    }

    /// Waiting for the browser: how long it still waits, the address to copy where no browser
    /// opened, and the code sign-in as the way that always works.
    fn browser_wait_ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>, wait: &BrowserWait) {
        let left = wait.deadline.saturating_duration_since(Instant::now());
        let waiting = format!(
            "waiting {}:{:02} more",
            left.as_secs() / 60,
            left.as_secs() % 60
        );
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(format!(
                "Finish the sign-in in your web browser, then come back here ({waiting})."
            ));
        });
        // The countdown moves although nothing else happens.
        ui.ctx().request_repaint_after(Duration::from_secs(1));
        if let Some(address) = &wait.address {
            ui.label(
                "No browser window? Copy the sign-in address into a web browser on this \
                 computer (the answer comes back to this computer), or sign in with a code \
                 from any device instead.",
            );
            ui.horizontal(|ui| {
                if ui.button("Copy sign-in address").clicked() {
                    ui.ctx().copy_text(address.clone());
                    self.note = Some("Sign-in address copied.".into());
                }
                let mut shown = address.as_str();
                let label = ui.label("Sign-in address");
                ui.add(
                    egui::TextEdit::singleline(&mut shown)
                        .desired_width(ui.available_width().min(520.0))
                        .font(egui::TextStyle::Monospace),
                )
                .labelled_by(label.id);
            });
        }
        if ui.button("Sign in with a code instead").clicked() {
            self.start_device_code(cx);
        }
    }

    fn form(&mut self, ui: &mut egui::Ui, enabled: bool) {
        ui.add_enabled_ui(enabled, |ui| {
            egui::Grid::new("sign_in_form")
                .num_columns(2)
                .spacing([12.0, 8.0])
                .show(ui, |ui| {
                    let label = ui.label("Tenant (domain or tenant ID)");
                    ui.add(
                        egui::TextEdit::singleline(&mut self.tenant)
                            .hint_text("contoso.com — empty: your account's own tenant")
                            .desired_width(320.0),
                    )
                    .labelled_by(label.id);
                    ui.end_row();

                    let label = ui.label("Cloud");
                    let mut cloud = self.endpoints.cloud;
                    egui::ComboBox::from_id_salt("sign_in_cloud")
                        .selected_text(cloud.label())
                        .show_ui(ui, |ui| {
                            for c in Cloud::ALL {
                                ui.selectable_value(&mut cloud, c, c.label());
                            }
                        })
                        .response
                        .labelled_by(label.id);
                    if cloud != self.endpoints.cloud {
                        self.endpoints = self.endpoints.with_cloud(cloud);
                    }
                    ui.end_row();

                    ui.label("App registration");
                    ui.vertical(|ui| {
                        ui.checkbox(
                            &mut self.own_app,
                            "Use my organisation's app registration",
                        );
                        if self.own_app {
                            ui.horizontal(|ui| {
                                let label = ui.label("Application (client) ID");
                                ui.add(
                                    egui::TextEdit::singleline(&mut self.client_id)
                                        .hint_text("00000000-0000-0000-0000-000000000000")
                                        .desired_width(300.0),
                                )
                                .labelled_by(label.id);
                            });
                            ui.small(
                                "A public client: \"Allow public client flows\" on, and http://localhost as a \
                                 mobile and desktop redirect URI.",
                            );
                        } else {
                            ui.small(format!(
                                "Microsoft Graph Command Line Tools ({GRAPH_CLI_CLIENT_ID})"
                            ));
                        }
                    });
                    ui.end_row();
                });
        });
    }

    fn signed_in_view(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>, s: &SignedIn) {
        ui.label(
            egui::RichText::new(format!(
                "Signed in as {} ({}) to {}",
                s.user_name, s.user_upn, s.tenant_name
            ))
            .strong(),
        );
        ui.label(format!("Tenant ID: {}", s.tenant_id));
        if !s.verified_domains.is_empty() {
            ui.label(format!(
                "Verified domains: {}",
                s.verified_domains.join(", ")
            ));
        }
        if s.missing_scopes.is_empty() {
            ui.label("All permissions the wizard needs were granted.");
        } else {
            ui.add_space(6.0);
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("Missing permissions: {}", s.missing_scopes.join(", ")),
            );
            ui.label(&s.fix);
            if let Some(url) = &s.admin_consent_url {
                ui.hyperlink_to("Open the admin consent page", url);
                if ui.button("Copy admin consent link").clicked() {
                    ui.ctx().copy_text(url.clone());
                }
            }
        }
        if !s.remembered {
            // One sentence, each source already says that the next start asks again.
            let (why, detail) = match (&s.not_remembered_reason, &self.store_notice) {
                (Some(why), _) => (why.clone(), None),
                (None, Some(n)) => (n.message.clone(), Some(n.detail.clone())),
                (None, None) if self.simulated => (
                    "Sign-ins to the simulated tenant are kept in memory only: you will sign \
                     in again next time."
                        .to_string(),
                    None,
                ),
                (None, None) => (
                    "This computer keeps the sign-in in memory only: you will sign in again \
                     next time you start the wizard."
                        .to_string(),
                    None,
                ),
            };
            let r = ui.label(why);
            if let Some(d) = detail {
                r.on_hover_text(format!("Credential store: {d}"));
            }
        }
        ui.add_space(8.0);
        if ui.button("Sign out").clicked() {
            self.sign_out(cx);
        }
    }
}

fn send(out: &Outbox, msg: Msg) {
    out.send(super::Msg::SignIn(msg));
}

/// Reports how a sign-in ended; a cancelled one says nothing (the page already moved on).
fn finish(out: &Outbox, run: u64, result: Result<step::Session, SignInError>) {
    let msg = match result {
        Ok(session) => Msg::Done {
            run,
            session: Box::new(session),
        },
        Err(e) if e.is_cancelled() => return,
        Err(e) => {
            tracing::warn!(error = ?e, "sign-in failed");
            Msg::Failed {
                run,
                error: e.to_string(),
            }
        }
    };
    send(out, msg);
}

impl Page for SignInPage {
    type Msg = Msg;

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        ui.heading("Sign in to your Microsoft 365 tenant");
        if self.simulated {
            ui.label(
                "Simulated tenant: any tenant name works, and sign-ins are approved automatically.",
            );
        }
        ui.add_space(6.0);

        if let SignInPhase::SignedIn(s) = self.phase.clone() {
            self.signed_in_view(ui, cx, &s);
            return;
        }

        let running = self.phase.is_running();
        self.form(ui, !running);
        ui.add_space(8.0);
        ui.add_enabled_ui(!running, |ui| {
            ui.horizontal(|ui| {
                if ui.button("Sign in with browser").clicked() {
                    self.start_browser(cx);
                }
                if ui.button("Sign in with a code").clicked() {
                    self.start_device_code(cx);
                }
            });
        });
        if let Some(notice) = &self.store_notice {
            ui.label(notice.message.as_str())
                .on_hover_text(format!("Credential store: {}", notice.detail));
        }
        ui.add_space(8.0);
        if let Some(why) = &self.no_browser {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                "No web browser opened on this computer, so sign in with a code instead:",
            )
            .on_hover_text(format!("The system said: {why}"));
        }

        match self.phase.clone() {
            SignInPhase::Idle => {
                if let Some(prev) = &cx.outcomes.signed_in {
                    ui.label(format!(
                        "Last time you were signed in as {} to {}. Sign in again to continue.",
                        prev.user_upn, prev.tenant_name
                    ));
                }
            }
            SignInPhase::Resuming => {
                super::widgets::busy(ui, "Signing in with the saved sign-in…");
            }
            SignInPhase::WaitingForBrowser(wait) => self.browser_wait_ui(ui, cx, &wait),
            SignInPhase::RequestingCode => {
                super::widgets::busy(ui, "Asking Microsoft for a code…");
            }
            SignInPhase::WaitingForCode(p) => {
                ui.label(format!(
                    "On any device, open {} and enter this code:",
                    p.verification_uri
                ));
                ui.label(
                    egui::RichText::new(&p.user_code)
                        .monospace()
                        .size(36.0)
                        .strong(),
                );
                ui.horizontal(|ui| {
                    if ui.button("Copy code").clicked() {
                        ui.ctx().copy_text(p.user_code.clone());
                        self.note = Some("Code copied.".into());
                    }
                    ui.hyperlink_to("Open the sign-in page", &p.verification_uri);
                });
                if let Some(m) = &p.message {
                    ui.small(m.as_str());
                }
                ui.small(format!(
                    "The code is valid for {} minutes. Sign in with an administrator account of the tenant.",
                    p.expires_in_secs.div_ceil(60)
                ));
                super::widgets::busy(ui, "Waiting for you to finish signing in…");
            }
            SignInPhase::Failed(e) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            SignInPhase::SignedIn(_) => {}
        }
        if running && ui.button("Cancel").clicked() {
            self.cancel();
        }
        // Outcomes ("Sign-in cancelled.", "Signed out…") are read, not fine print.
        if let Some(n) = &self.note {
            ui.label(n.as_str());
        }
    }

    fn on_msg(&mut self, msg: Msg, cx: &mut PageCx<'_>) {
        let current = |run: u64| run == self.run;
        match msg {
            Msg::BrowserAddress { run, address } if current(run) => {
                let mut no_browser = None;
                if let SignInPhase::WaitingForBrowser(wait) = &mut self.phase {
                    wait.address = Some(address.url);
                    if let Some(Err(why)) = address.opened {
                        no_browser = Some(why);
                    }
                }
                // Nobody could finish a browser sign-in here: the code works from any device.
                if let Some(why) = no_browser {
                    self.start_device_code(cx);
                    self.no_browser = Some(why);
                }
            }
            Msg::DeviceCode { run, prompt } if current(run) => {
                self.phase = SignInPhase::WaitingForCode(prompt);
            }
            Msg::Done { run, session } if current(run) => {
                let session = Arc::new(*session);
                cx.session.graph = Some(session.graph.clone());
                cx.outcomes.signed_in = Some(session.signed_in.clone());
                self.cancel = None;
                self.phase = SignInPhase::SignedIn(Box::new(session.signed_in.clone()));
                self.session = Some(session);
            }
            Msg::NothingSaved { run } if current(run) => {
                self.cancel = None;
                self.phase = SignInPhase::Idle;
            }
            Msg::Failed { run, error } if current(run) => {
                self.cancel = None;
                self.phase = SignInPhase::Failed(error);
            }
            Msg::SignedOut { result } => {
                self.note = Some(match result {
                    Ok(true) => {
                        "Signed out; the saved sign-in was removed from this computer.".into()
                    }
                    // Memory only (no credential store, or `--demo`): say so, not "removed".
                    Ok(false) => "Signed out. Nothing was saved on this computer: the sign-in \
                                  was kept only while the wizard ran."
                        .into(),
                    Err(warning) => warning,
                });
            }
            // A job that was cancelled or replaced.
            _ => {}
        }
    }

    fn save_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(FormState {
            tenant: self.tenant.clone(),
            own_app: self.own_app,
            client_id: self.client_id.clone(),
            cloud: Some(self.endpoints.cloud),
        })
        .ok()
    }

    /// What the app was given at construction (command line, settings) wins; the stored form
    /// only fills what is still empty.
    fn load_state(&mut self, state: serde_json::Value) {
        let Ok(form) = serde_json::from_value::<FormState>(state) else {
            return;
        };
        if self.tenant.trim().is_empty() {
            self.tenant = form.tenant;
        }
        if !self.own_app && form.own_app {
            self.own_app = true;
            self.client_id = form.client_id;
        }
        if let Some(cloud) = form.cloud
            && self.endpoints == Endpoints::for_cloud(Cloud::Global)
        {
            self.endpoints = Endpoints::for_cloud(cloud);
        }
    }

    fn status(&self) -> StepStatus {
        match &self.phase {
            SignInPhase::Idle => StepStatus::NotStarted,
            SignInPhase::SignedIn(s) if s.missing_scopes.is_empty() => StepStatus::Done,
            SignInPhase::SignedIn(_) | SignInPhase::Failed(_) => StepStatus::NeedsAttention,
            _ => StepStatus::InProgress,
        }
    }

    fn validated(&self) -> bool {
        matches!(self.phase, SignInPhase::SignedIn(_)) && self.session.is_some()
    }
}
