//! The eframe application: the stepper, the current page, Back / Next, background jobs,
//! persistence and the log panel. The only place that knows every page.
//!
//! [`WizardApp::show`] draws one frame into any `egui::Ui` and needs no `eframe::Frame`, so
//! egui_kittest drives the real app (`Harness::new_ui_state(|ui, app| app.show(ui), app)`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::graph::auth::{AuthConfig, Opener, browser_opener};
use crate::graph::cloud::{ClientApp, Cloud, Endpoints};
use crate::graph::token_store::{MemoryStore, StoreNotice, TokenStore};
use crate::sim::{self, SimConfig, SimHandle, Speed};
use crate::steps::Outcomes;
use crate::ui::sign_in::SignInConfig;
use crate::ui::{
    self, FilePicker, Job, Outbox, Page, PageCx, PageEnv, PageSlot, Session, Slot, StepId,
    StepStatus,
};

// The log and the app id are the whole program's (`run` uses them too); kept reachable here.
pub use crate::logging;
pub use crate::paths::APP_ID;

pub use logging::{LogBuffer, LogLine};

/// What the user configured: remembered across runs (never secrets). `None` means "not set",
/// i.e. the default (global cloud, the built-in client id).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Tenant id or primary domain (`contoso.onmicrosoft.com`).
    pub tenant: Option<String>,
    /// Application (client) id of the app registration used to sign in.
    pub client_id: Option<String>,
    /// National cloud; `None` is the global cloud.
    pub cloud: Option<Cloud>,
    /// Overrides the Graph root (`https://graph.microsoft.com`).
    pub graph_url: Option<String>,
    /// Overrides the login root (`https://login.microsoftonline.com`).
    pub login_url: Option<String>,
}

impl Settings {
    /// `self` with every field `over` sets replaced (command-line options over remembered ones).
    pub fn overridden_by(mut self, over: &Settings) -> Settings {
        fn pick(mine: &mut Option<String>, theirs: &Option<String>) {
            if let Some(v) = theirs.as_ref().filter(|v| !v.trim().is_empty()) {
                *mine = Some(v.trim().to_string());
            }
        }
        pick(&mut self.tenant, &over.tenant);
        pick(&mut self.client_id, &over.client_id);
        if over.cloud.is_some() {
            self.cloud = over.cloud;
        }
        pick(&mut self.graph_url, &over.graph_url);
        pick(&mut self.login_url, &over.login_url);
        self
    }

    pub fn has_tenant(&self) -> bool {
        self.tenant.as_deref().is_some_and(|t| !t.trim().is_empty())
    }

    /// What to sign in to: cloud endpoints (with overrides), tenant and client app.
    pub fn auth_config(&self) -> AuthConfig {
        AuthConfig {
            endpoints: Endpoints::with_overrides(
                self.cloud.unwrap_or_default(),
                self.graph_url.clone(),
                self.login_url.clone(),
            ),
            tenant: self.tenant.clone().unwrap_or_default().trim().to_string(),
            client: ClientApp::from_client_id(self.client_id.as_deref().unwrap_or_default()),
        }
    }
}

/// Where the app talks to, once settings and the simulated tenant are taken into account.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub auth: AuthConfig,
    /// True when `auth` points at the built-in simulated tenant.
    pub simulated: bool,
}

/// Everything the app is built from. Tests inject a simulated tenant URL and a fixed file picker.
pub struct AppConfig {
    /// Settings given on the command line; they win over remembered ones.
    pub settings: Settings,
    /// Talk to the simulated tenant `sim` (or the URLs in `settings`) and say so in a banner.
    pub simulated: bool,
    /// A simulated tenant to keep running for the app's lifetime (`--demo`).
    pub sim: Option<SimHandle>,
    /// How fast the simulated tenant runs when the user starts it from the sign-in page.
    pub sim_speed: Speed,
    pub file_picker: Arc<dyn FilePicker>,
    /// Reads this PC's hardware hash for "Add this PC" (import page); `None` where harvesting
    /// cannot work, which hides the button.
    pub harvester: Option<Arc<dyn crate::hwid::harvest::WmiSource>>,
    /// Where refresh tokens are kept (the system credential store, or memory).
    pub token_store: Arc<dyn TokenStore>,
    /// Why sign-ins will not be remembered, when `token_store` is memory only.
    pub token_store_note: Option<StoreNotice>,
    /// Opens the browser for the browser sign-in (tests follow the URL themselves).
    pub opener: Opener,
    /// Where the log panel reads from ([`logging::init`] returns the one the subscriber fills).
    pub log: LogBuffer,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            settings: Settings::default(),
            simulated: false,
            sim: None,
            sim_speed: Speed::DEMO,
            file_picker: Arc::new(ui::RfdFilePicker),
            harvester: None,
            token_store: Arc::new(MemoryStore::new()),
            token_store_note: None,
            opener: browser_opener(),
            log: LogBuffer::new(500),
        }
    }
}

impl AppConfig {
    /// Points the config at a running simulated tenant and keeps it alive with the app. Its
    /// tokens stay in memory: they must not replace a real sign-in in the credential store.
    pub fn with_sim(mut self, sim: SimHandle) -> Self {
        self.token_store = Arc::new(MemoryStore::new());
        self.token_store_note = None;
        self.settings.graph_url = Some(sim.url());
        self.settings.login_url = Some(sim.url());
        self.simulated = true;
        self.sim = Some(sim);
        self
    }
}

/// Keys in eframe storage. Values are JSON strings, so every type keeps `#[serde(default)]`
/// semantics and old state keeps loading.
mod keys {
    pub const SETTINGS: &str = "settings";
    pub const OUTCOMES: &str = "outcomes";
    pub const PAGES: &str = "pages";
    pub const CURRENT: &str = "current_step";
    pub const REMOVAL: &str = "removal";
}

/// A step as the stepper shows it: the page's own status, unless a step before it no longer
/// validates, in which case whatever the page last saw no longer counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepView {
    pub step: StepId,
    pub status: StepStatus,
    /// The status in words, as the stepper shows it.
    pub word: String,
    /// The step can be opened (every step before it validated).
    pub reachable: bool,
}

/// A job the app spawned and can still cancel.
struct RunningJob {
    label: String,
    step: Option<StepId>,
    cancel: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

/// Results of the app's own background work (not a page's).
enum AppEvent {
    SimStarted(Result<SimHandle, String>),
}

/// Starting the simulated tenant from the sign-in page.
#[derive(Debug, Clone, PartialEq, Default)]
enum SimStart {
    #[default]
    NotAsked,
    Starting,
    Failed(String),
}

/// The wizard.
pub struct WizardApp {
    rt: Handle,
    /// Remembered settings merged with the command line; what the next run starts from.
    settings: Settings,
    connection: Connection,
    session: Session,
    outcomes: Outcomes,
    pages: Vec<Box<dyn Slot>>,
    current: usize,
    /// Page state read from storage for pages that are added later (e.g. after the simulated
    /// tenant is chosen the sign-in page is rebuilt).
    stored_pages: HashMap<StepId, serde_json::Value>,
    jobs_queued: Vec<Job>,
    jobs_running: Vec<RunningJob>,
    tx: Sender<ui::Msg>,
    rx: Receiver<ui::Msg>,
    app_tx: Sender<AppEvent>,
    app_rx: Receiver<AppEvent>,
    file_picker: Arc<dyn FilePicker>,
    harvester: Option<Arc<dyn crate::hwid::harvest::WmiSource>>,
    token_store: Arc<dyn TokenStore>,
    token_store_note: Option<StoreNotice>,
    opener: Opener,
    /// The pages' `start` hooks ran (again after the pages are rebuilt).
    started: bool,
    sim: Option<SimHandle>,
    sim_speed: Speed,
    sim_start: SimStart,
    log: LogBuffer,
    log_open: bool,
    /// The step open when the app was last closed, until it is reachable again.
    resume_to: Option<StepId>,
    /// Steps already asked to read their result back since the current sign-in; cleared when
    /// the Graph session goes away, so the next sign-in checks everything again.
    revalidation_asked: Vec<StepId>,
    /// Pages built afresh because an earlier step's outcome changed: they check their step
    /// against the new inputs when next shown.
    recheck_on_visit: Vec<StepId>,
    /// The first window was checked against the screen ([`WizardApp::fit_window_once`]).
    window_fitted: bool,
    /// Last frame's step list and Back/Next bar ([`WizardApp::layout`]).
    layout: Option<(egui::Rect, egui::Rect)>,
    /// Statuses shown last frame, to log changes.
    last_statuses: Vec<(StepId, StepStatus)>,
    /// The step shown last frame, to log when another one opens.
    last_step: Option<StepId>,
    /// "Remove devices": beside the procedure, not a step of it.
    removal: crate::ui::removal::RemovalPage,
    /// The removal page is shown instead of the current step.
    showing_removal: bool,
}

impl WizardApp {
    /// A fresh app that remembers nothing.
    pub fn new(config: AppConfig, rt: Handle) -> Self {
        Self::with_storage(config, rt, None)
    }

    /// The app as eframe builds it: remembered settings, outcomes and page state from
    /// `storage` (`cc.storage`), command-line settings on top.
    pub fn with_storage(
        config: AppConfig,
        rt: Handle,
        storage: Option<&dyn eframe::Storage>,
    ) -> Self {
        let load = |key: &str| storage.and_then(|s| s.get_string(key));
        let remembered: Settings = load(keys::SETTINGS)
            .and_then(|s| parse_or_warn(keys::SETTINGS, &s))
            .unwrap_or_default();
        let settings = if config.simulated {
            // The simulated tenant's URLs change every run: never remember them.
            remembered
                .clone()
                .overridden_by(&without_endpoints(&config.settings))
        } else {
            remembered.clone().overridden_by(&config.settings)
        };
        let connection = connection_for(
            &remembered.overridden_by(&config.settings),
            config.simulated,
        );
        // A simulated tenant starts empty every run: results from an earlier run (real or
        // simulated) do not describe it.
        let (outcomes, stored_pages, current) = if config.simulated {
            (Outcomes::default(), HashMap::new(), None)
        } else {
            (
                load(keys::OUTCOMES)
                    .and_then(|s| parse_or_warn(keys::OUTCOMES, &s))
                    .unwrap_or_default(),
                load(keys::PAGES)
                    .and_then(|s| {
                        parse_or_warn::<HashMap<StepId, serde_json::Value>>(keys::PAGES, &s)
                    })
                    .unwrap_or_default(),
                load(keys::CURRENT).and_then(|s| parse_or_warn::<StepId>(keys::CURRENT, &s)),
            )
        };
        let (tx, rx) = channel();
        let (app_tx, app_rx) = channel();
        let mut app = WizardApp {
            rt,
            settings,
            session: Session {
                graph: None,
                simulated: connection.simulated,
            },
            connection,
            outcomes,
            pages: Vec::new(),
            current: 0,
            stored_pages,
            jobs_queued: Vec::new(),
            jobs_running: Vec::new(),
            tx,
            rx,
            app_tx,
            app_rx,
            file_picker: config.file_picker,
            harvester: config.harvester,
            token_store: config.token_store,
            token_store_note: config.token_store_note,
            opener: config.opener,
            started: false,
            sim: config.sim,
            sim_speed: config.sim_speed,
            sim_start: SimStart::default(),
            log: config.log,
            log_open: false,
            last_statuses: Vec::new(),
            last_step: None,
            resume_to: None,
            revalidation_asked: Vec::new(),
            recheck_on_visit: Vec::new(),
            window_fitted: false,
            layout: None,
            removal: crate::ui::removal::RemovalPage::new(),
            showing_removal: false,
        };
        if let Some(state) =
            load(keys::REMOVAL).and_then(|s| parse_or_warn::<serde_json::Value>(keys::REMOVAL, &s))
        {
            crate::ui::Page::load_state(&mut app.removal, state);
        }
        app.build_pages();
        // Earlier steps validate again (silent sign-in, read-backs) after start; the step the
        // user was on opens as soon as it is reachable.
        app.resume_to = current;
        tracing::info!(
            simulated = app.connection.simulated,
            tenant = app.connection.auth.tenant_segment(),
            login = %app.connection.auth.endpoints.login_url,
            steps = app.pages.len(),
            "wizard started"
        );
        app
    }

    /// Creates the pages of every step that exists, in procedure order.
    fn build_pages(&mut self) {
        self.pages.clear();
        for step in StepId::ALL {
            if let Some(slot) = self.make_page(*step) {
                self.pages.push(slot);
            }
        }
        let stored = std::mem::take(&mut self.stored_pages);
        for slot in &mut self.pages {
            if let Some(state) = stored.get(&slot.id()) {
                slot.load_state(state.clone());
            }
        }
        self.stored_pages = stored;
        self.current = self.current.min(self.pages.len().saturating_sub(1));
        self.started = false;
        // The removal page waits on the service's clock too (polls, the sync window).
        self.removal.pace = match self.sim_speed_in_use() {
            Some(speed) => crate::steps::removal::Pace::scaled(speed.scale),
            None => crate::steps::removal::Pace::default(),
        };
    }

    /// The page for `step`, built from the current endpoints; `None` while the step has no page.
    fn make_page(&self, step: StepId) -> Option<Box<dyn Slot>> {
        ui::make_page(step, &self.page_env())
    }

    /// What pages are built from: the sign-in endpoints and the simulated tenant's speed.
    fn page_env(&self) -> PageEnv {
        let auth = &self.connection.auth;
        PageEnv {
            sign_in: SignInConfig {
                endpoints: auth.endpoints.clone(),
                client_id: match &auth.client {
                    ClientApp::Own { client_id } => client_id.clone(),
                    ClientApp::GraphCommandLineTools => String::new(),
                },
                tenant: auth.tenant.clone(),
                simulated: self.connection.simulated,
                store: self.token_store.clone(),
                store_notice: self.token_store_note.clone(),
                // The in-process simulated tenant approves by itself: no browser to wait for.
                opener: if self.sim_speed_in_use().is_some() {
                    crate::steps::sign_in::simulated_browser()
                } else {
                    self.opener.clone()
                },
                browser_timeout: crate::ui::sign_in::BROWSER_TIMEOUT,
            },
            sim_speed: self.sim_speed_in_use(),
        }
    }

    /// How fast the simulated tenant the app talks to runs, when it runs in this process: the
    /// service-side waits (Autopilot's 10-minute manual-sync window) shrink with its clock, so
    /// a demo never waits real minutes.
    fn sim_speed_in_use(&self) -> Option<Speed> {
        self.sim
            .as_ref()
            .filter(|_| self.connection.simulated)
            .map(|sim| sim.shared.config.speed)
    }

    /// Adds a page (replacing the page of the same step, if any), in procedure order.
    /// `extract` picks this page's messages out of [`ui::Msg`]
    /// (`|m| match m { ui::Msg::Group(m) => Some(m), _ => None }`).
    pub fn add_page<P: Page + 'static>(
        &mut self,
        id: StepId,
        mut page: P,
        extract: fn(ui::Msg) -> Option<P::Msg>,
    ) {
        if let Some(state) = self.stored_pages.get(&id) {
            page.load_state(state.clone());
        }
        let slot = PageSlot::boxed(id, page, extract);
        match self.pages.iter().position(|p| p.id() == id) {
            Some(i) => self.pages[i] = slot,
            None => {
                let at = self
                    .pages
                    .iter()
                    .position(|p| procedure_order(p.id()) > procedure_order(id))
                    .unwrap_or(self.pages.len());
                if at <= self.current && !self.pages.is_empty() {
                    self.current += 1;
                }
                self.pages.insert(at, slot);
            }
        }
        self.started = false;
    }

    /// Each step in the stepper with the status it shows, in order.
    pub fn step_statuses(&self) -> Vec<(StepId, StepStatus)> {
        self.step_views()
            .into_iter()
            .map(|v| (v.step, v.status))
            .collect()
    }

    /// What the stepper shows for each step. A step's status is the page's verdict on its latest
    /// read-back; a step after one that does not validate (any more) waits for it instead of
    /// keeping an old "Done", and a step shown Done can always be opened.
    pub fn step_views(&self) -> Vec<StepView> {
        let mut blocked_by: Option<usize> = None;
        let mut views = Vec::with_capacity(self.pages.len());
        for (i, page) in self.pages.iter().enumerate() {
            let own = page.status();
            let (status, word) = match blocked_by {
                Some(j) => (
                    StepStatus::NotStarted,
                    format!("Waiting for step {}", self.pages[j].id().number()),
                ),
                // Done is a promise that the next step can open: only a validated page keeps it.
                None if own == StepStatus::Done && !page.validated() => (
                    StepStatus::InProgress,
                    status_word(StepStatus::InProgress).to_string(),
                ),
                None => (own, status_word(own).to_string()),
            };
            views.push(StepView {
                step: page.id(),
                status,
                word,
                reachable: blocked_by.is_none(),
            });
            if blocked_by.is_none() && !page.validated() {
                blocked_by = Some(i);
            }
        }
        views
    }

    /// The steps shown in the stepper, in order.
    pub fn steps(&self) -> Vec<StepId> {
        self.pages.iter().map(|p| p.id()).collect()
    }

    pub fn current_step(&self) -> Option<StepId> {
        self.pages.get(self.current).map(|p| p.id())
    }

    /// The settings the next run starts from (remembered ones with the command line on top).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Where the app signs in and talks to Graph.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    pub fn outcomes(&self) -> &Outcomes {
        &self.outcomes
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Labels of the jobs still running.
    pub fn running_jobs(&self) -> Vec<String> {
        self.jobs_running
            .iter()
            .filter(|j| !j.handle.is_finished())
            .map(|j| j.label.clone())
            .collect()
    }

    /// A step can be opened when every step before it is validated.
    fn reachable(&self, index: usize) -> bool {
        index < self.pages.len() && self.pages[..index].iter().all(|p| p.validated())
    }

    /// Opens the step saved last time once everything before it validated again.
    fn resume(&mut self) {
        let Some(step) = self.resume_to else { return };
        match self.pages.iter().position(|p| p.id() == step) {
            Some(i) if self.reachable(i) => {
                self.current = i;
                self.resume_to = None;
            }
            Some(_) => {}
            None => self.resume_to = None,
        }
    }

    /// After a sign-in (the silent one at start included) each step reads its result back by
    /// itself, in order: a step is asked once every step before it validated, so a restored
    /// session walks forward to where it was without anyone clicking.
    fn revalidate_in_order(&mut self) {
        if self.session.graph.is_none() {
            self.revalidation_asked.clear();
            return;
        }
        let mut cx = PageCx::new(&mut self.session, &mut self.outcomes, &mut self.jobs_queued)
            .with_file_picker(self.file_picker.clone());
        for i in 1..self.pages.len() {
            if !self.pages[i - 1].validated() {
                break;
            }
            let page = &mut self.pages[i];
            let step = page.id();
            if self.revalidation_asked.contains(&step) {
                continue;
            }
            self.revalidation_asked.push(step);
            if !page.validated() {
                tracing::info!(step = step.title(), "checking the step again");
                cx.set_owner(step);
                page.revalidate(&mut cx);
            }
        }
    }

    /// Done follows its inputs, for every step at once. A step's result counts only while the
    /// outcomes it was computed from (its `depends_on` in the procedure) are the ones the earlier
    /// steps hold now. When one changed (another group picked in step 4…), every dependent page
    /// is built afresh: its old read-backs and messages belonged to the old inputs and go with
    /// it (the form the person filled in stays), its running work is cancelled, and it checks
    /// its step again with reads only when next shown.
    fn follow_inputs(&mut self) {
        for i in 0..self.pages.len() {
            let step = self.pages[i].id();
            if self.outcomes.inputs_changed(step) {
                tracing::info!(
                    step = step.title(),
                    "an earlier step changed: this step is checked again"
                );
                self.outcomes.inputs.remove(&step);
                self.rebuild_page(i);
                self.revalidation_asked.retain(|s| *s != step);
                if !self.recheck_on_visit.contains(&step) {
                    self.recheck_on_visit.push(step);
                }
            } else if self.pages[i].validated() {
                // Validated against what the earlier steps hold now: remember it (an input
                // that was unknown when the result was first recorded is filled in).
                let now = self.outcomes.current_inputs(step);
                let merged: Vec<Option<String>> = match self.outcomes.inputs.get(&step) {
                    Some(was) if was.len() == now.len() => now
                        .into_iter()
                        .zip(was)
                        .map(|(n, w)| n.or_else(|| w.clone()))
                        .collect(),
                    _ => now,
                };
                if self.outcomes.inputs.get(&step) != Some(&merged) {
                    self.outcomes.inputs.insert(step, merged);
                }
            }
        }
    }

    /// Replaces the page at `index` with a fresh one that keeps the form (its saved state) and
    /// cancels the work the old one started.
    fn rebuild_page(&mut self, index: usize) {
        let step = self.pages[index].id();
        for job in self.jobs_running.iter().filter(|j| j.step == Some(step)) {
            job.cancel.cancel();
        }
        self.jobs_queued.retain(|j| {
            let mine = j.step == Some(step);
            if mine {
                j.cancel.cancel();
            }
            !mine
        });
        let saved = self.pages[index].save_state();
        if let Some(mut fresh) = self.make_page(step) {
            if let Some(state) = saved.or_else(|| self.stored_pages.get(&step).cloned()) {
                fresh.load_state(state);
            }
            self.pages[index] = fresh;
        }
    }

    /// Draws one frame. Never blocks: work runs on the runtime and comes back as messages.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        // Ctrl+Q (Cmd+Q) closes the window like its close button: eframe saves the state first,
        // so scripts and keyboard users can quit without losing where they were.
        if ctx.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::Q)) {
            tracing::info!("quit with the keyboard");
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        self.drain_app_events();
        self.drain_messages();
        self.prune_jobs();
        if !self.started {
            self.started = true;
            let mut cx = PageCx::new(&mut self.session, &mut self.outcomes, &mut self.jobs_queued)
                .with_file_picker(self.file_picker.clone())
                .with_harvester(self.harvester.clone());
            for page in &mut self.pages {
                cx.set_owner(page.id());
                page.start(&mut cx);
            }
        }
        {
            let mut cx = PageCx::new(&mut self.session, &mut self.outcomes, &mut self.jobs_queued)
                .with_file_picker(self.file_picker.clone());
            for page in &mut self.pages {
                cx.set_owner(page.id());
                page.tick(&ctx, &mut cx);
            }
        }
        self.follow_inputs();
        self.revalidate_in_order();
        self.resume();

        if self.connection.simulated {
            egui::Panel::top("simulated_banner")
                .frame(egui::Frame::NONE)
                .show(ui, |ui| self.banner_ui(ui));
        }
        let bar = egui::Panel::bottom("navigation").show(ui, |ui| self.navigation_ui(ui));
        if self.log_open {
            egui::Panel::bottom("log_panel")
                .resizable(true)
                .default_size(180.0)
                .show(ui, |ui| self.log_ui(ui));
        }
        // The step list scrolls inside its panel: on a short or scaled screen (1024×600 at
        // 150 %) it would otherwise run on under the Back/Next bar.
        let stepper = egui::Panel::left("stepper")
            .resizable(false)
            .default_size(230.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("stepper_scroll")
                    .auto_shrink([false, false])
                    .show(ui, |ui| self.stepper_ui(ui));
            });
        self.layout = Some((stepper.response.rect, bar.response.rect));
        egui::CentralPanel::default_margins().show(ui, |ui| {
            egui::ScrollArea::vertical()
                .auto_shrink([false, false])
                .show(ui, |ui| self.page_ui(ui));
        });

        self.spawn_queued(&ctx);
        self.log_status_changes();
    }

    fn log_status_changes(&mut self) {
        let step = self.current_step();
        if step != self.last_step {
            if let Some(step) = step {
                tracing::info!(step = step.title(), "step opened");
            }
            // What a page said about an action was for the visit that made it.
            if let Some(left) = self.last_step
                && let Some(page) = self.pages.iter_mut().find(|p| p.id() == left)
            {
                page.left();
            }
            self.last_step = step;
        }
        let now = self.step_statuses();
        if now != self.last_statuses {
            for (step, status) in &now {
                let before = self.last_statuses.iter().find(|(s, _)| s == step);
                if before.is_some_and(|(_, b)| b != status) {
                    tracing::info!(
                        step = step.title(),
                        status = status_word(*status),
                        "step status"
                    );
                }
            }
            self.last_statuses = now;
        }
    }

    fn banner_ui(&mut self, ui: &mut egui::Ui) {
        let amber = ui::widgets::palette::PENDING;
        egui::Frame::new()
            .fill(amber)
            .inner_margin(egui::Margin::symmetric(8, 4))
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.horizontal_wrapped(|ui| {
                    let dark = ui::widgets::palette::on(amber);
                    ui.label(egui::RichText::new("Simulated tenant").strong().color(dark));
                    ui.label(
                        egui::RichText::new(
                            "Nothing here touches a real Microsoft 365 tenant; its data is gone \
                             when you close. The wizard still writes its log and keeps your own settings.",
                        )
                        .color(dark),
                    );
                });
            });
    }

    fn stepper_ui(&mut self, ui: &mut egui::Ui) {
        ui.add_space(6.0);
        ui.heading("Autopilot setup");
        ui.weak("Windows Autopilot user-driven mode, Microsoft Entra join");
        ui.add_space(8.0);
        let mut go_to = None;
        for (i, view) in self.step_views().into_iter().enumerate() {
            let StepView {
                step,
                status,
                word,
                reachable,
            } = view;
            let response = ui
                .horizontal(|ui| {
                    status_icon(ui, status);
                    let text = format!("{}. {}", step.number(), step.title());
                    let current = i == self.current && !self.showing_removal;
                    ui.add_enabled(reachable, egui::Button::selectable(current, text))
                        .on_hover_text(&word)
                        .on_disabled_hover_text(format!("{word}. Finish the steps above first."))
                })
                .inner;
            ui.indent(("step_status", i), |ui| {
                ui.weak(&word);
            });
            ui.add_space(2.0);
            if response.clicked() {
                go_to = Some(i);
            }
        }
        if let Some(i) = go_to {
            self.current = i;
            self.resume_to = None;
            self.showing_removal = false;
        }
        ui.separator();
        // Beyond READY, not a step: devices that are there already leave, deploy again or move.
        if ui
            .add(egui::Button::selectable(self.showing_removal, "Remove devices"))
            .on_hover_text("Take devices out of the tenant, re-deploy them here, or move them to another tenant")
            .clicked()
        {
            self.show_removal(None);
        }
    }

    /// Opens "Remove devices", with `serials` picked when given (the board's selection).
    pub fn show_removal(&mut self, serials: Option<&[String]>) {
        if let Some(serials) = serials {
            self.removal.select(serials);
        }
        self.showing_removal = true;
        self.resume_to = None;
    }

    /// "Remove devices" is shown instead of a step.
    pub fn showing_removal(&self) -> bool {
        self.showing_removal
    }

    fn navigation_ui(&mut self, ui: &mut egui::Ui) {
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            let can_back = self.current > 0;
            if ui
                .add_enabled(can_back, egui::Button::new("Back"))
                .clicked()
            {
                self.current -= 1;
                self.resume_to = None;
                self.showing_removal = false;
            }
            let has_next = self.current + 1 < self.pages.len();
            // Not only this step: an earlier one that stopped validating closes the way too.
            let open = self.reachable(self.current + 1);
            let next = ui
                .add_enabled(has_next && open, egui::Button::new("Next"))
                .on_disabled_hover_text(if has_next {
                    "Finish this step first: Next opens once its result was read back from \
                     Microsoft 365 and matched."
                } else {
                    "This is the last step."
                });
            if next.clicked() {
                self.current += 1;
                self.resume_to = None;
                self.showing_removal = false;
            }
            if self.showing_removal {
                ui.separator();
                ui.hyperlink_to(
                    "Microsoft docs: Deregister a device",
                    crate::ui::removal::DOC_URL,
                );
            } else if let Some(page) = self.pages.get(self.current) {
                let step = page.id();
                ui.separator();
                ui.hyperlink_to(format!("Microsoft docs: {}", step.title()), step.doc_url());
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.toggle_value(&mut self.log_open, "Log");
                let running = self.running_jobs();
                if let Some(first) = running.first() {
                    let more = if running.len() > 1 {
                        format!(" (+{} more)", running.len() - 1)
                    } else {
                        String::new()
                    };
                    ui.label(format!("{first}{more}"));
                    ui.spinner();
                }
            });
        });
        ui.add_space(4.0);
    }

    fn log_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.strong("Log");
            if let Some(path) = self.log.file_path() {
                ui.weak(format!("also written to {}", path.display()));
            }
        });
        egui::ScrollArea::vertical()
            .stick_to_bottom(true)
            .auto_shrink([false, false])
            .show(ui, |ui| {
                for line in self.log.lines() {
                    let color = match line.level {
                        tracing::Level::ERROR => ui.visuals().error_fg_color,
                        tracing::Level::WARN => ui.visuals().warn_fg_color,
                        _ => ui.visuals().text_color(),
                    };
                    ui.label(
                        egui::RichText::new(line.to_string())
                            .monospace()
                            .size(11.0)
                            .color(color),
                    );
                }
            });
    }

    fn page_ui(&mut self, ui: &mut egui::Ui) {
        if self.showing_removal {
            let mut cx = PageCx::new(&mut self.session, &mut self.outcomes, &mut self.jobs_queued)
                .with_file_picker(self.file_picker.clone());
            crate::ui::Page::ui(&mut self.removal, ui, &mut cx);
            return;
        }
        let Some(step) = self.current_step() else {
            ui.label("The wizard has no steps in this build.");
            return;
        };
        let signed_in = self.outcomes.signed_in.is_some() || self.session.graph.is_some();
        if step == StepId::SignIn
            && !self.connection.simulated
            && !self.settings.has_tenant()
            && !signed_in
        {
            self.offer_simulated_tenant(ui);
        }
        if step == StepId::SignIn && !self.connection.simulated && self.custom_endpoints() {
            self.custom_endpoint_note(ui);
        }
        self.resume_note(ui);
        let mut cx = PageCx::new(&mut self.session, &mut self.outcomes, &mut self.jobs_queued)
            .with_file_picker(self.file_picker.clone())
            .with_harvester(self.harvester.clone());
        if let Some(page) = self.pages.get_mut(self.current) {
            cx.set_owner(page.id());
            if let Some(i) = self.recheck_on_visit.iter().position(|s| *s == page.id()) {
                self.recheck_on_visit.remove(i);
                tracing::info!(
                    step = page.id().title(),
                    "checking the step against its new inputs"
                );
                page.inputs_changed(&mut cx);
            }
            page.ui(ui, &mut cx);
        }
        if let Some(serials) = cx.take_removal_request() {
            self.show_removal(Some(&serials));
        }
    }

    /// While a restored session walks back to the step it was on: which step, and what it waits
    /// for (the sign-in, or the earlier steps being checked again).
    fn resume_note(&self, ui: &mut egui::Ui) {
        let Some(target) = self.resume_to else { return };
        let Some(index) = self.pages.iter().position(|p| p.id() == target) else {
            return;
        };
        if index == self.current {
            return;
        }
        let where_ = format!("{}, {}", target.step_n(), target.title());
        let views = self.step_views();
        let blocking = views[..index]
            .iter()
            .enumerate()
            .find(|(i, _)| !self.pages[*i].validated());
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.set_width(ui.available_width());
            if self.session.graph.is_none() {
                ui.label(format!("Sign in to pick up where you left off ({where_})."));
                return;
            }
            match blocking {
                Some((_, v)) if v.status == StepStatus::NeedsAttention => {
                    ui.label(format!(
                        "Picking up where you left off ({where_}): step {} needs attention \
                         first.",
                        v.step.number()
                    ));
                }
                Some((_, v)) => {
                    ui.horizontal_wrapped(|ui| {
                        ui.spinner();
                        ui.label(format!(
                            "Picking up where you left off ({where_}): checking step {}, {} \
                             again…",
                            v.step.number(),
                            v.step.title()
                        ));
                    });
                }
                None => {}
            }
        });
        ui.add_space(6.0);
    }

    /// Where the step list and the Back/Next bar were drawn last frame (points).
    pub fn layout(&self) -> Option<(egui::Rect, egui::Rect)> {
        self.layout
    }

    /// Whether Graph or the login service is reached at an address other than the cloud's own
    /// (`--graph-url` / `--login-url`, remembered from an earlier start).
    pub fn custom_endpoints(&self) -> bool {
        let e = &self.connection.auth.endpoints;
        *e != Endpoints::for_cloud(e.cloud)
    }

    /// Says where the wizard connects when that is not Microsoft's own service, with a way back:
    /// a remembered proxy or test server that is gone otherwise fails as a network error.
    fn custom_endpoint_note(&mut self, ui: &mut egui::Ui) {
        let e = self.connection.auth.endpoints.clone();
        let own = Endpoints::for_cloud(e.cloud);
        let mut reset = false;
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.strong("The wizard connects to a custom address");
            if e.graph_url != own.graph_url {
                ui.label(format!("Microsoft Graph: {}", e.graph_url))
                    .on_hover_text(format!("Microsoft's own: {}", own.graph_url));
            }
            if e.login_url != own.login_url {
                ui.label(format!("Sign-in: {}", e.login_url))
                    .on_hover_text(format!("Microsoft's own: {}", own.login_url));
            }
            ui.label(
                "It was set with --graph-url or --login-url and is remembered. Unless your IT                  sends Microsoft 365 through a proxy at that address, use Microsoft's service.",
            );
            reset = ui.button("Use Microsoft's service").clicked();
        });
        ui.add_space(8.0);
        if reset {
            self.use_microsoft_service();
        }
    }

    /// Forgets the custom addresses (also for later starts) and connects to the cloud's own.
    fn use_microsoft_service(&mut self) {
        tracing::info!(
            graph = %self.connection.auth.endpoints.graph_url,
            login = %self.connection.auth.endpoints.login_url,
            "custom endpoints dropped: using Microsoft's service"
        );
        for job in &self.jobs_running {
            job.cancel.cancel();
        }
        self.settings.graph_url = None;
        self.settings.login_url = None;
        self.connection = connection_for(&self.settings, false);
        // Whatever was read through the other address says nothing about this service.
        self.session = Session {
            graph: None,
            simulated: false,
        };
        self.outcomes = Outcomes::default();
        self.current = 0;
        self.resume_to = None;
        self.build_pages();
    }

    /// Lets someone without a tenant (or without admin rights yet) try the whole procedure.
    fn offer_simulated_tenant(&mut self, ui: &mut egui::Ui) {
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.strong("No tenant configured yet?");
            ui.label(
                "Try the wizard against a simulated tenant first: it runs on this computer, \
                 behaves like Microsoft 365 and changes nothing real.",
            );
            match &self.sim_start {
                SimStart::Starting => {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label("Starting the simulated tenant…");
                    });
                }
                state => {
                    if let SimStart::Failed(why) = state {
                        ui.colored_label(ui.visuals().error_fg_color, why);
                    }
                    if ui.button("Try the simulated tenant").clicked() {
                        self.start_simulated_tenant(ui.ctx());
                    }
                }
            }
        });
        ui.add_space(8.0);
    }

    fn start_simulated_tenant(&mut self, ctx: &egui::Context) {
        self.sim_start = SimStart::Starting;
        let tx = self.app_tx.clone();
        let ctx = ctx.clone();
        let config = SimConfig {
            speed: self.sim_speed,
            ..SimConfig::default()
        };
        tracing::info!("starting the simulated tenant");
        self.rt.spawn(async move {
            let result = sim::spawn(config).await.map_err(|e| {
                format!(
                    "The simulated tenant could not start ({e}). Check that this computer \
                     allows programs to listen on 127.0.0.1, then try again."
                )
            });
            let _ = tx.send(AppEvent::SimStarted(result));
            ctx.request_repaint();
        });
    }

    fn drain_app_events(&mut self) {
        while let Ok(event) = self.app_rx.try_recv() {
            match event {
                AppEvent::SimStarted(Ok(sim)) => {
                    tracing::info!(url = %sim.url(), "simulated tenant running");
                    self.use_simulated_tenant(sim);
                }
                AppEvent::SimStarted(Err(why)) => {
                    tracing::warn!("{why}");
                    self.sim_start = SimStart::Failed(why);
                }
            }
        }
    }

    /// Switches the app to `sim`: new endpoints, a banner, pages rebuilt against it.
    fn use_simulated_tenant(&mut self, sim: SimHandle) {
        for job in &self.jobs_running {
            job.cancel.cancel();
        }
        let mut settings = self.settings.clone();
        settings.graph_url = Some(sim.url());
        settings.login_url = Some(sim.url());
        self.connection = connection_for(&settings, true);
        self.token_store = Arc::new(MemoryStore::new());
        self.token_store_note = None;
        self.session = Session {
            graph: None,
            simulated: true,
        };
        self.outcomes = Outcomes::default();
        self.stored_pages.clear();
        self.sim = Some(sim);
        self.sim_start = SimStart::NotAsked;
        self.current = 0;
        self.resume_to = None;
        self.build_pages();
    }

    fn drain_messages(&mut self) {
        while let Ok(msg) = self.rx.try_recv() {
            let step = msg.step();
            let mut cx = PageCx::new(&mut self.session, &mut self.outcomes, &mut self.jobs_queued)
                .with_file_picker(self.file_picker.clone())
                .with_harvester(self.harvester.clone());
            cx.set_owner(step);
            match self.pages.iter_mut().find(|p| p.id() == step) {
                Some(page) => page.on_msg(msg, &mut cx),
                None => tracing::warn!(?step, "a message arrived for a step without a page"),
            }
        }
    }

    fn spawn_queued(&mut self, ctx: &egui::Context) {
        for job in self.jobs_queued.drain(..) {
            let outbox = Outbox::new(self.tx.clone(), ctx.clone());
            let cancel = job.cancel.clone();
            let label = job.label.clone();
            let work = (job.run)(outbox);
            tracing::debug!(job = %label, "job started");
            let done_label = label.clone();
            let handle = self.rt.spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => tracing::debug!(job = %done_label, "job cancelled"),
                    _ = work => tracing::debug!(job = %done_label, "job finished"),
                }
            });
            self.jobs_running.push(RunningJob {
                label,
                step: job.step,
                cancel: job.cancel,
                handle,
            });
        }
        if !self.jobs_running.is_empty() {
            // Keeps the spinner turning; results themselves repaint through the outbox.
            ctx.request_repaint_after(std::time::Duration::from_millis(250));
        }
    }

    fn prune_jobs(&mut self) {
        self.jobs_running.retain(|j| !j.handle.is_finished());
    }

    /// Stops every running job (on exit, and when the tenant changes).
    pub fn cancel_jobs(&mut self) {
        for job in self.jobs_running.drain(..) {
            job.cancel.cancel();
        }
        for job in self.jobs_queued.drain(..) {
            job.cancel.cancel();
        }
    }

    /// Writes what the next run should remember. A simulated run keeps the user's settings
    /// but not its outcomes or page state: they describe a tenant that is gone.
    pub fn save_to(&self, storage: &mut dyn eframe::Storage) {
        let mut put = |key: &str, value: Result<String, serde_json::Error>| match value {
            Ok(s) => storage.set_string(key, s),
            Err(e) => tracing::warn!(key, error = %e, "could not save state"),
        };
        put(keys::SETTINGS, serde_json::to_string(&self.settings));
        if self.connection.simulated {
            return;
        }
        put(keys::OUTCOMES, serde_json::to_string(&self.outcomes));
        let mut pages = self.stored_pages.clone();
        for page in &self.pages {
            if let Some(state) = page.save_state() {
                pages.insert(page.id(), state);
            }
        }
        put(keys::PAGES, serde_json::to_string(&pages));
        if let Some(state) = crate::ui::Page::save_state(&self.removal) {
            put(keys::REMOVAL, serde_json::to_string(&state));
        }
        if let Some(step) = self.current_step() {
            put(keys::CURRENT, serde_json::to_string(&step));
        }
    }
}

/// The window's preferred inner size, in points.
pub const PREFERRED_WINDOW: egui::Vec2 = egui::vec2(1100.0, 720.0);

/// Room the window frame takes around the inner size (title bar, borders), in points.
const WINDOW_FRAME: egui::Vec2 = egui::vec2(16.0, 40.0);

/// The inner size for a window that wants `preferred` on a work area of `work_area` (both in
/// points): the preferred size where it fits, else the work area less the window frame.
pub fn fit_window_size(preferred: egui::Vec2, work_area: egui::Vec2) -> egui::Vec2 {
    preferred
        .min(work_area - WINDOW_FRAME)
        .max(egui::vec2(320.0, 240.0))
}

/// The work area (the screen less the taskbar) in points, where the system says it.
#[cfg(windows)]
fn work_area(pixels_per_point: f32) -> Option<(egui::Pos2, egui::Vec2)> {
    use windows::Win32::Foundation::RECT;
    use windows::Win32::UI::WindowsAndMessaging::{
        SPI_GETWORKAREA, SYSTEM_PARAMETERS_INFO_UPDATE_FLAGS, SystemParametersInfoW,
    };
    let mut r = RECT::default();
    // SAFETY: SPI_GETWORKAREA writes one RECT through the pointer, which lives for the call.
    unsafe {
        SystemParametersInfoW(
            SPI_GETWORKAREA,
            0,
            Some(&mut r as *mut RECT as *mut core::ffi::c_void),
            SYSTEM_PARAMETERS_INFO_UPDATE_FLAGS(0),
        )
    }
    .ok()?;
    let ppp = pixels_per_point.max(0.1);
    Some((
        egui::pos2(r.left as f32 / ppp, r.top as f32 / ppp),
        egui::vec2(
            (r.right - r.left) as f32 / ppp,
            (r.bottom - r.top) as f32 / ppp,
        ),
    ))
}

#[cfg(not(windows))]
fn work_area(_pixels_per_point: f32) -> Option<(egui::Pos2, egui::Vec2)> {
    None
}

impl WizardApp {
    /// Once, on the first frame (the monitor is known only once the window exists): shrinks a
    /// window that does not fit its screen's work area and moves it into it, so Back/Next are
    /// on screen without maximising.
    fn fit_window_once(&mut self, ctx: &egui::Context) {
        if self.window_fitted {
            return;
        }
        let (inner, monitor) = ctx.input(|i| {
            let v = i.viewport();
            (v.inner_rect.map(|r| r.size()), v.monitor_size)
        });
        let (Some(inner), Some(monitor)) = (inner, monitor) else {
            return;
        };
        self.window_fitted = true;
        // Without the system's work area, leave room for a taskbar or panel.
        let (origin, area) = work_area(ctx.pixels_per_point())
            .unwrap_or((egui::Pos2::ZERO, monitor - egui::vec2(0.0, 48.0)));
        let fit = fit_window_size(inner, area);
        if fit != inner {
            tracing::info!(
                from = ?inner,
                to = ?fit,
                work_area = ?area,
                "window resized to fit the screen"
            );
            ctx.send_viewport_cmd(egui::ViewportCommand::InnerSize(fit));
            ctx.send_viewport_cmd(egui::ViewportCommand::OuterPosition(origin));
        }
    }
}

impl eframe::App for WizardApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        if !self.window_fitted {
            ui::widgets::set_dialog_parent(&*frame);
        }
        self.fit_window_once(ui.ctx());
        self.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        self.save_to(storage);
    }

    /// While work runs (an import above all), save every few seconds so a crash or a killed
    /// window loses at most that much of the job's progress; idle, eframe's default is plenty.
    fn auto_save_interval(&self) -> std::time::Duration {
        if self.running_jobs().is_empty() {
            std::time::Duration::from_secs(30)
        } else {
            std::time::Duration::from_secs(2)
        }
    }
}

impl Drop for WizardApp {
    fn drop(&mut self) {
        self.cancel_jobs();
    }
}

/// The connection `settings` describe; a simulated tenant serves Graph and login at one root.
fn connection_for(settings: &Settings, simulated: bool) -> Connection {
    let mut auth = settings.auth_config();
    if simulated && let Some(root) = settings.graph_url.as_deref() {
        auth.endpoints = Endpoints::simulated(root);
    }
    Connection { auth, simulated }
}

fn without_endpoints(settings: &Settings) -> Settings {
    Settings {
        graph_url: None,
        login_url: None,
        ..settings.clone()
    }
}

fn parse_or_warn<T: serde::de::DeserializeOwned>(key: &str, text: &str) -> Option<T> {
    match serde_json::from_str(text) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(key, error = %e, "ignoring saved state that no longer reads");
            None
        }
    }
}

/// Position of `step` in the procedure (independent of which steps have pages).
fn procedure_order(step: StepId) -> usize {
    step.number() - 1
}

/// How the stepper names a step status.
pub fn status_word(status: StepStatus) -> &'static str {
    match status {
        StepStatus::NotStarted => "Not started",
        StepStatus::InProgress => "In progress",
        StepStatus::Done => "Done",
        StepStatus::NeedsAttention => "Needs attention",
    }
}

/// A painted status mark (the default fonts have no symbol glyphs): an empty ring, a half
/// filled ring, a green disc with a check, an amber disc with an exclamation mark.
fn status_icon(ui: &mut egui::Ui, status: StepStatus) {
    let size = egui::vec2(16.0, 16.0);
    let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
    let painter = ui.painter();
    let c = rect.center();
    let r = 6.5;
    let muted = ui.visuals().weak_text_color();
    use ui::widgets::palette;
    let blue = palette::ACTIVE;
    let green = palette::SUCCESS;
    let amber = palette::PENDING;
    let white = egui::Color32::WHITE;
    match status {
        StepStatus::NotStarted => {
            painter.circle_stroke(c, r, egui::Stroke::new(1.5, muted));
        }
        StepStatus::InProgress => {
            painter.circle_stroke(c, r, egui::Stroke::new(1.5, blue));
            let half: Vec<egui::Pos2> = (0..=16)
                .map(|k| {
                    let a = -std::f32::consts::FRAC_PI_2 + std::f32::consts::PI * k as f32 / 16.0;
                    c + egui::vec2(a.cos(), a.sin()) * (r - 1.5)
                })
                .collect();
            painter.add(egui::Shape::convex_polygon(half, blue, egui::Stroke::NONE));
        }
        StepStatus::Done => {
            painter.circle_filled(c, r, green);
            let stroke = egui::Stroke::new(1.8, white);
            painter.line_segment(
                [c + egui::vec2(-3.2, 0.2), c + egui::vec2(-0.8, 2.6)],
                stroke,
            );
            painter.line_segment(
                [c + egui::vec2(-0.8, 2.6), c + egui::vec2(3.4, -2.4)],
                stroke,
            );
        }
        StepStatus::NeedsAttention => {
            painter.circle_filled(c, r, amber);
            let dark = palette::on(amber);
            painter.line_segment(
                [c + egui::vec2(0.0, -3.6), c + egui::vec2(0.0, 1.0)],
                egui::Stroke::new(1.8, dark),
            );
            painter.circle_filled(c + egui::vec2(0.0, 3.2), 1.0, dark);
        }
    }
}
