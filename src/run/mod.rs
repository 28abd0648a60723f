//! `autopilot-wizard run --plan PLAN.toml`: steps 2–7 from a plan file, without a window.
//!
//! The engine calls the same `steps` modules the pages call, in the same order, with the same
//! read-back validation, and ends with the same report as the validate page. What it learns is
//! kept as [`Outcomes`] in a state file per plan (written after every change, atomically), so a
//! run that was interrupted — Ctrl-C, a crash, `kill -9` — continues where it stopped, and a
//! run of a plan that already holds only reads and reports READY.
//!
//! Every step is safe to repeat (it finds what exists instead of creating it again; the import
//! looks for the records of an interrupted upload before uploading), so a step that failed on a
//! transient service error (connection lost, still throttled after the client's retries) is
//! simply run again, a few times, before the run gives up with exit code 4.

pub mod cli;
pub mod events;
pub mod preflight;
pub mod remove_cli;
pub mod state;
pub mod terminal;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::graph::auth::{AuthConfig, AuthError, Opener, SignInFlows, Sleeper, tokio_sleeper};
use crate::graph::cloud::{ClientApp, Endpoints};
use crate::graph::token_store::TokenStore;
use crate::graph::{GraphClient, GraphError};
use crate::hwid::{self, CheckOptions};
use crate::plan::{GroupPlan, Plan};
use crate::steps::StepId;
use crate::steps::assignment::{self, AssignmentError, WaitOptions};
use crate::steps::deployment;
use crate::steps::group::{self, GroupError, GroupKind, GroupSpec, ReadBackPolicy};
use crate::steps::import::{self, ImportError, ImportEvent, ImportJob, ImportOptions, RowOutcome};
use crate::steps::join_permission::{self, Deployer, JoinPermissionError, JoinPermissionOutcome};
use crate::steps::profile::{self, ProfileError, ProfileRef};
use crate::steps::registry::{FailureKind, PlanCx, PlanRunner, StepFailure};
use crate::steps::sign_in::{self, SignInError};
use crate::steps::validate::{self, Report, ValidationOutcome};

use events::{Event, EventSink, Step};
use state::PlanState;

/// The exit codes of `run`, as documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Exit {
    Ready = 0,
    NotReady = 1,
    BadInput = 2,
    SignIn = 3,
    Service = 4,
    /// Another process is running the same plan (it holds the plan's lock).
    Busy = 5,
    /// Ctrl-C: stopped cleanly, the state saved.
    Interrupted = 130,
    /// SIGTERM (or, on Windows, the console closing or the system shutting down): stopped
    /// cleanly like Ctrl-C, told apart for the scheduler that sent it (128 + 15).
    Terminated = 143,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn verdict(self) -> &'static str {
        match self {
            Exit::Ready => "READY",
            Exit::NotReady => "NOT READY",
            Exit::BadInput => "BAD PLAN OR INPUT",
            Exit::SignIn => "SIGN-IN OR PERMISSION REFUSED",
            Exit::Service => "SERVICE FAILED",
            Exit::Busy => "ALREADY RUNNING",
            Exit::Interrupted => "INTERRUPTED",
            Exit::Terminated => "TERMINATED",
        }
    }

    /// The exit code of several plans: 0 only when all are READY, else the largest.
    pub fn combine(all: &[Exit]) -> Exit {
        all.iter().copied().max().unwrap_or(Exit::Ready)
    }
}

/// Why a step stopped the run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    pub exit: Exit,
    /// Worth running the step again (connection lost, still throttled, 5xx).
    pub transient: bool,
    pub message: String,
}

impl StepError {
    fn new(exit: Exit, message: impl Into<String>) -> Self {
        StepError {
            exit,
            transient: false,
            message: message.into(),
        }
    }

    fn input(message: impl Into<String>) -> Self {
        StepError::new(Exit::BadInput, message)
    }

    fn from_graph(e: &GraphError, message: String) -> Self {
        let (exit, transient) = match e {
            GraphError::Cancelled => (Exit::Interrupted, false),
            GraphError::Auth(_) => (Exit::SignIn, false),
            GraphError::Service {
                status: 401 | 403, ..
            } => (Exit::SignIn, false),
            GraphError::Service { status, .. } if *status >= 500 || *status == 429 => {
                (Exit::Service, true)
            }
            GraphError::Network { .. } | GraphError::GaveUp { .. } => (Exit::Service, true),
            _ => (Exit::Service, false),
        };
        StepError {
            exit,
            transient,
            message,
        }
    }
}

impl From<StepFailure> for StepError {
    fn from(f: StepFailure) -> Self {
        let (exit, transient) = match f.kind {
            FailureKind::Input => (Exit::BadInput, false),
            FailureKind::Auth => (Exit::SignIn, false),
            FailureKind::Transient => (Exit::Service, true),
            FailureKind::Service => (Exit::Service, false),
        };
        StepError {
            exit,
            transient,
            message: f.message,
        }
    }
}

impl From<ImportError> for StepError {
    fn from(e: ImportError) -> Self {
        match &e {
            ImportError::Graph { source, .. } => StepError::from_graph(source, e.to_string()),
            ImportError::Cancelled => StepError::new(Exit::Interrupted, e.to_string()),
            ImportError::Timeout { .. } => StepError::new(Exit::Service, e.to_string()),
        }
    }
}

impl From<GroupError> for StepError {
    fn from(e: GroupError) -> Self {
        match &e {
            GroupError::Invalid(_) | GroupError::Rejected { .. } => StepError::input(e.to_string()),
            GroupError::Forbidden { source, .. } => {
                let mut s = StepError::from_graph(source, e.to_string());
                if s.exit != Exit::Interrupted {
                    s.exit = Exit::SignIn;
                }
                s
            }
            GroupError::NotReplicated { .. } => StepError {
                exit: Exit::Service,
                transient: true,
                message: e.to_string(),
            },
            GroupError::Graph { source, .. } => StepError::from_graph(source, e.to_string()),
        }
    }
}

impl From<ProfileError> for StepError {
    fn from(e: ProfileError) -> Self {
        match &e {
            ProfileError::Forbidden { .. } => StepError::new(Exit::SignIn, e.to_string()),
            ProfileError::Rejected { .. }
            | ProfileError::TenantLimit { .. }
            | ProfileError::GroupExcluded { .. } => StepError::input(e.to_string()),
            ProfileError::ProfileNotFound { .. } | ProfileError::NotConfirmed { .. } => StepError {
                exit: Exit::Service,
                transient: true,
                message: e.to_string(),
            },
            ProfileError::Graph(g) => StepError::from_graph(g, e.to_string()),
        }
    }
}

impl From<JoinPermissionError> for StepError {
    fn from(e: JoinPermissionError) -> Self {
        match &e {
            JoinPermissionError::Forbidden { source, .. } => {
                let mut s = StepError::from_graph(source, e.to_string());
                if s.exit != Exit::Interrupted {
                    s.exit = Exit::SignIn;
                }
                s
            }
            JoinPermissionError::Graph { source, .. } => {
                StepError::from_graph(source, e.to_string())
            }
            JoinPermissionError::Shape(_) => StepError::new(Exit::Service, e.to_string()),
        }
    }
}

impl From<AssignmentError> for StepError {
    fn from(e: AssignmentError) -> Self {
        match e {
            AssignmentError::Graph(g) => {
                let message = g.to_string();
                StepError::from_graph(&g, message)
            }
            AssignmentError::Group(g) => StepError::from(*g),
            AssignmentError::Cancelled => StepError::new(Exit::Interrupted, "Cancelled."),
            // Not a failure of the service: the devices are still on their way. The run goes on
            // to the report, which says which ones and why.
            e @ AssignmentError::Timeout { .. } => StepError::new(Exit::NotReady, e.to_string()),
            e => StepError::new(Exit::Service, e.to_string()),
        }
    }
}

impl From<AuthError> for StepError {
    fn from(e: AuthError) -> Self {
        match &e {
            AuthError::Cancelled => StepError::new(Exit::Interrupted, e.to_string()),
            AuthError::Network(_) => StepError {
                exit: Exit::Service,
                transient: true,
                message: e.to_string(),
            },
            _ => StepError::new(Exit::SignIn, e.to_string()),
        }
    }
}

impl From<SignInError> for StepError {
    fn from(e: SignInError) -> Self {
        match e {
            SignInError::Auth(a) => StepError::from(a),
            other => StepError {
                exit: Exit::Service,
                transient: true,
                message: other.to_string(),
            },
        }
    }
}

/// How a run talks to the tenant and where it keeps its state.
#[derive(Clone)]
pub struct RunConfig {
    /// Override the plan's Graph and login URLs (`--graph-url`, `--login-url`, `--demo`).
    pub graph_url: Option<String>,
    pub login_url: Option<String>,
    /// One state file per plan lives here.
    pub state_dir: PathBuf,
    /// Where refresh tokens are kept (the system credential store, or memory).
    pub token_store: Arc<dyn TokenStore>,
    /// Opens the system browser when there is a desktop; `None` signs in with a device code.
    pub browser: Option<Opener>,
    /// Waits between device-code polls.
    pub sleeper: Sleeper,
    pub import: ImportOptions,
    /// Polling of the assignment waits; the plan's `assignment_wait` sets the timeout.
    pub wait: WaitOptions,
    pub read_back: ReadBackPolicy,
    /// Times a step is tried when it fails on a transient service error.
    pub step_attempts: u32,
    /// Pause before trying a step again.
    pub step_retry_delay: Duration,
    /// Set when the run was stopped by SIGTERM rather than Ctrl-C (its own exit code).
    pub terminated: Arc<AtomicBool>,
    /// The tenants signed in to by the plans of this call, by Graph root and tenant id (as the
    /// sign-in returns it): a second plan for the same tenant stops before it writes.
    pub tenants: Arc<Mutex<HashMap<(String, String), String>>>,
    /// The files the other plans of this call read or write (plan files, CSVs, reports): a
    /// report of this plan must not overwrite one of them.
    pub other_plans_files: Vec<PathBuf>,
}

impl RunConfig {
    /// Against Microsoft: the steps' own defaults.
    pub fn new(state_dir: PathBuf, token_store: Arc<dyn TokenStore>) -> Self {
        RunConfig {
            graph_url: None,
            login_url: None,
            state_dir,
            token_store,
            browser: None,
            sleeper: tokio_sleeper(),
            import: ImportOptions::default(),
            wait: WaitOptions::default(),
            read_back: ReadBackPolicy::default(),
            step_attempts: 5,
            step_retry_delay: Duration::from_secs(10),
            terminated: Arc::new(AtomicBool::new(false)),
            tenants: Arc::new(Mutex::new(HashMap::new())),
            other_plans_files: Vec::new(),
        }
    }

    /// Every wait multiplied by `scale` (real seconds per service second), for a simulated
    /// tenant whose clock runs faster, as the GUI does for `--demo`.
    pub fn scaled(mut self, scale: f64) -> Self {
        let s = |d: Duration| d.mul_f64(scale.max(0.0));
        self.import = ImportOptions::scaled(scale);
        let w = WaitOptions::default();
        self.wait = WaitOptions {
            first_poll: s(w.first_poll),
            max_poll: s(w.max_poll),
            phase_timeout: w.phase_timeout,
        };
        self.read_back = ReadBackPolicy {
            attempts: ReadBackPolicy::default().attempts,
            delay: s(ReadBackPolicy::default().delay),
        };
        self.step_retry_delay = s(self.step_retry_delay);
        self.sleeper = Arc::new(move |d: Duration| Box::pin(tokio::time::sleep(d.mul_f64(scale))));
        self
    }

    /// Also points every plan at this simulated tenant (or any Graph/login root).
    pub fn with_urls(mut self, graph: Option<String>, login: Option<String>) -> Self {
        self.graph_url = graph;
        self.login_url = login;
        self
    }
}

/// What a finished run hands back.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub plan: String,
    pub tenant: String,
    pub exit: Exit,
    pub error: Option<String>,
    pub report: Option<Report>,
    pub report_files: Vec<PathBuf>,
    /// Graph requests of the import, per phase (the requests-per-device figures).
    pub import_stats: Option<import::RequestStats>,
    pub devices: usize,
}

/// Runs one plan to the end (or until `cancel`), reporting to `sink`. Never panics on service
/// answers; every way out is an exit code.
pub async fn run_plan(
    plan: &Plan,
    config: &RunConfig,
    sink: &dyn EventSink,
    cancel: &CancellationToken,
) -> RunResult {
    let name = plan.name();
    let state_path = state::path_for(&config.state_dir, plan, &effective_graph_url(plan, config));
    // Nothing is sent before the files the run needs are known to work: the state folder
    // (without it a killed run could not resume), this plan's lock (one runner per plan), and
    // every report path.
    let lock = preflight::state_dir(&config.state_dir)
        .map_err(StepError::input)
        .and_then(|()| state::PlanLock::acquire(&state_path))
        .and_then(|lock| {
            preflight::outputs(plan, &config.other_plans_files).map_err(StepError::input)?;
            Ok(lock)
        });
    let mut engine = Engine {
        plan,
        config,
        sink,
        cancel,
        name: name.clone(),
        state: PlanState::default(),
        state_path,
        graph: None,
        stats: None,
        devices: 0,
        save_failed: Arc::new(Mutex::new(None)),
        board_reader: None,
    };
    let outcome = match lock {
        Ok(_lock) => engine.run().await,
        Err(e) => Err(e),
    };
    let (mut exit, error, report, files) = match outcome {
        Ok((report, files)) => {
            let exit = if report.ready {
                Exit::Ready
            } else {
                Exit::NotReady
            };
            (exit, None, Some(report), files)
        }
        Err(e) => (e.exit, Some(e.message), None, Vec::new()),
    };
    if exit == Exit::Interrupted && config.terminated.load(Ordering::SeqCst) {
        exit = Exit::Terminated;
    }
    sink.emit(Event::Finished {
        plan: name.clone(),
        verdict: exit.verdict().into(),
        exit_code: exit.code(),
        error: error.clone(),
        report: report
            .as_ref()
            .and_then(|r| serde_json::from_str(&r.to_json()).ok()),
        report_files: files.iter().map(|f| f.display().to_string()).collect(),
    });
    RunResult {
        plan: name,
        tenant: plan.tenant.id.clone(),
        exit,
        error,
        report,
        report_files: files,
        import_stats: engine.stats,
        devices: engine.devices,
    }
}

/// A plan that stops before it runs (unreadable, or refused for the whole call): its own
/// `finished` event and summary line, so the other plans of the call still run and a script
/// reading `--json` always sees how every plan ended.
pub fn refused(
    plan: String,
    tenant: String,
    exit: Exit,
    message: String,
    sink: &dyn EventSink,
) -> RunResult {
    sink.emit(Event::Finished {
        plan: plan.clone(),
        verdict: exit.verdict().into(),
        exit_code: exit.code(),
        error: Some(message.clone()),
        report: None,
        report_files: Vec::new(),
    });
    RunResult {
        plan,
        tenant,
        exit,
        error: Some(message),
        report: None,
        report_files: Vec::new(),
        import_stats: None,
        devices: 0,
    }
}

fn effective_graph_url(plan: &Plan, config: &RunConfig) -> String {
    config
        .graph_url
        .clone()
        .or_else(|| plan.tenant.graph_url.clone())
        .unwrap_or_else(|| Endpoints::for_cloud(plan.tenant.cloud).graph_url)
}

struct Engine<'a> {
    plan: &'a Plan,
    config: &'a RunConfig,
    sink: &'a dyn EventSink,
    cancel: &'a CancellationToken,
    name: String,
    state: PlanState,
    state_path: PathBuf,
    graph: Option<GraphClient>,
    stats: Option<import::RequestStats>,
    devices: usize,
    /// Set by the import's observer when a save failed (it cannot return the error itself).
    save_failed: Arc<Mutex<Option<String>>>,
    /// The assignment wait's device reads, for the validation.
    board_reader: Option<assignment::BoardReader>,
}

/// Why a run stops when its state cannot be saved: without the file, a killed run would upload
/// again instead of continuing, so it does not go on.
fn save_error(path: &std::path::Path, e: &std::io::Error) -> String {
    format!(
        "The state of this plan could not be saved to {}: {e}. The run stops here, because without it a rerun could not continue where this one stopped. Free space or fix the permissions of that folder (or give another with --state-dir) and run the plan again.",
        path.display()
    )
}

impl Engine<'_> {
    fn emit(&self, event: Event) {
        self.sink.emit(event);
    }

    fn started(&self, step: Step) {
        self.emit(Event::StepStarted {
            plan: self.name.clone(),
            step,
            title: step.title().into(),
        });
    }

    fn finished(&self, step: Step, ok: bool, summary: impl Into<String>) {
        self.emit(Event::StepFinished {
            plan: self.name.clone(),
            step,
            ok,
            summary: summary.into(),
        });
    }

    fn warn(&self, step: Step, message: impl Into<String>) {
        self.emit(Event::Warning {
            plan: self.name.clone(),
            step,
            message: message.into(),
        });
    }

    fn save(&self) -> Result<(), StepError> {
        state::save(&self.state_path, &self.state).map_err(|e| {
            tracing::warn!(path = %self.state_path.display(), error = %e, "plan state not saved");
            StepError::input(save_error(&self.state_path, &e))
        })
    }

    fn graph(&self) -> GraphClient {
        self.graph
            .clone()
            .expect("signed in before the Graph steps")
            .with_cancel(self.cancel.clone())
    }

    /// Runs `f` until it succeeds, fails for good, or the attempts are used up; a transient
    /// failure is told and tried again after a pause.
    async fn retrying<T, F, Fut>(&mut self, step: Step, mut f: F) -> Result<T, StepError>
    where
        F: FnMut(&mut Self) -> Fut,
        Fut: std::future::Future<Output = Result<T, StepError>>,
    {
        let mut attempt = 1;
        loop {
            if self.cancel.is_cancelled() {
                return Err(StepError::new(Exit::Interrupted, "Cancelled."));
            }
            match f(self).await {
                Ok(v) => return Ok(v),
                Err(e) if e.transient => {
                    let why = format!("{} Trying the step again", e.message);
                    if !self.another_attempt(step, &mut attempt, why, "").await? {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The one place a step is tried again: when `attempt` has not used up the attempts, says
    /// why (`"{why} (2 of 5){after}."`), waits the pause and counts the attempt. `false` when
    /// the attempts are used up; cancelling during the pause ends the run.
    async fn another_attempt(
        &mut self,
        step: Step,
        attempt: &mut u32,
        why: String,
        after: &str,
    ) -> Result<bool, StepError> {
        if *attempt >= self.config.step_attempts {
            return Ok(false);
        }
        *attempt += 1;
        let of = self.config.step_attempts;
        self.warn(step, format!("{why} ({attempt} of {of}){after}."));
        tokio::select! {
            _ = self.cancel.cancelled() => Err(StepError::new(Exit::Interrupted, "Cancelled.")),
            _ = tokio::time::sleep(self.config.step_retry_delay) => Ok(true),
        }
    }

    async fn run(&mut self) -> Result<(Report, Vec<PathBuf>), StepError> {
        let (state, resumed) = match state::load(&self.state_path) {
            Ok(Some(s)) => (s, true),
            Ok(None) => (PlanState::default(), false),
            Err(e) => {
                return Err(StepError::input(format!(
                    "The saved state of this plan ({}) cannot be read: {e}. Move the file away to start over.",
                    self.state_path.display()
                )));
            }
        };
        self.state = state;
        self.state.plan_file = self.plan.path.display().to_string();
        self.emit(Event::RunStarted {
            plan: self.name.clone(),
            tenant: self.plan.tenant.id.clone(),
            resumed,
        });
        // The CSV files first: a file problem is exit 2 before anything is sent.
        self.started(Step::Plan);
        let rows = self.read_csv(&[])?;
        self.finished(
            Step::Plan,
            true,
            format!(
                "{} devices in {} CSV file(s); state in {}",
                rows.len(),
                self.plan.csv_files.len(),
                self.state_path.display()
            ),
        );

        // The procedure's steps in order; a registered step runs through its own runner, the
        // steps that came before the registry through the engine's code below.
        let mut verdict = None;
        for &step in StepId::ALL {
            if step == StepId::Profile {
                self.check_before_writes().await?;
            }
            match step.def().runner {
                Some(runner) => self.registered(step, runner).await?,
                None => {
                    if let Some(report) = self.built_in(step).await? {
                        verdict = Some(report);
                    }
                }
            }
            if step != StepId::SignIn {
                self.state.outcomes.record_inputs(step);
            }
        }
        let (mut report, mut files) =
            verdict.ok_or_else(|| StepError::input("the validation step did not run"))?;
        if let Some(wait) = self.plan.deployment_wait
            && self.follow_deployments(wait, &mut report).await?
        {
            files = self.write_report_files(&report)?;
        }
        Ok((report, files))
    }

    /// Writes the report files the plan names; the files written.
    fn write_report_files(&self, report: &Report) -> Result<Vec<PathBuf>, StepError> {
        let mut files = Vec::new();
        let r = &self.plan.report;
        for (path, body) in [
            (&r.html, report.to_html()),
            (&r.json, report.to_json()),
            (&r.text, report.to_text()),
        ] {
            let Some(path) = path else { continue };
            if let Some(dir) = path.parent()
                && !dir.as_os_str().is_empty()
            {
                let _ = std::fs::create_dir_all(dir);
            }
            std::fs::write(path, body).map_err(|e| {
                StepError::input(format!(
                    "The report could not be written to {}: {e}",
                    path.display()
                ))
            })?;
            files.push(path.clone());
        }
        Ok(files)
    }

    /// `[deployment] wait`: follows the plan's devices through OOBE until each succeeded or
    /// failed, or `wait` is over; one `device` event per change, a countdown while waiting. The
    /// report gains the "Deployments" items (a failed device fails it: exit 1). Returns whether
    /// the report changed.
    async fn follow_deployments(
        &mut self,
        wait: Duration,
        report: &mut Report,
    ) -> Result<bool, StepError> {
        use crate::board::DeploymentPhase;
        let at = Step::Deployment;
        self.started(at);
        if !report.ready {
            self.finished(
                at,
                false,
                "not followed: the validation is NOT READY, fix that before the devices are \
                 switched on",
            );
            return Ok(false);
        }
        let serials: Vec<String> = validate::inputs_from_outcomes(&self.state.outcomes)
            .map(|i| i.expected_serials)
            .unwrap_or_default();
        let total = serials.len();
        let deadline = std::time::Instant::now() + wait;
        let poll = self.config.wait.max_poll.max(Duration::from_millis(10));
        let mut told: BTreeMap<String, (DeploymentPhase, String)> = BTreeMap::new();
        let mut read_errors = 0;
        let by_serial = loop {
            let read = deployment::read(&self.graph()).await;
            let by_serial = match read {
                Ok(m) => {
                    read_errors = 0;
                    m
                }
                Err(e) if e.is_auth() => return Err(StepError::new(Exit::SignIn, e.to_string())),
                Err(e) => {
                    read_errors += 1;
                    if read_errors >= self.config.step_attempts {
                        return Err(StepError::new(Exit::Service, e.to_string()));
                    }
                    self.warn(at, format!("{e} Trying again."));
                    BTreeMap::new()
                }
            };
            for serial in &serials {
                let key = serial.trim().to_ascii_uppercase();
                let Some(d) = by_serial.get(&key) else {
                    continue;
                };
                let now = (d.phase, d.words());
                if told.get(&key) != Some(&now) {
                    self.emit(Event::Device {
                        plan: self.name.clone(),
                        step: at,
                        serial: d.serial.clone(),
                        outcome: phase_key(d.phase).into(),
                        detail: d.explanation(),
                    });
                    told.insert(key, now);
                }
            }
            let c = deployment::counts(&by_serial, &serials);
            let settled = c.succeeded + c.failed;
            self.emit(Event::Progress {
                plan: self.name.clone(),
                step: at,
                done: settled as u64,
                total: total as u64,
                message: format!(
                    "{} succeeded, {} failed, {} in progress, {} not switched on yet",
                    c.succeeded, c.failed, c.in_progress, c.not_started
                ),
            });
            if (settled == total && read_errors == 0) || std::time::Instant::now() >= deadline {
                break by_serial;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let next = poll.min(left);
            self.emit(Event::Waiting {
                plan: self.name.clone(),
                step: at,
                message: format!(
                    "Waiting for {} device(s) to finish setup ({} left of the wait)",
                    total - settled,
                    crate::board::deployment::duration_words(left.as_secs())
                ),
                next_check: chrono::Utc::now()
                    + chrono::Duration::from_std(next).unwrap_or_default(),
            });
            tokio::select! {
                _ = self.cancel.cancelled() => {
                    return Err(StepError::new(Exit::Interrupted, "Cancelled."));
                }
                _ = tokio::time::sleep(next) => {}
            }
        };
        let items = deployment::items_of(&by_serial, &serials);
        let c = deployment::counts(&by_serial, &serials);
        report
            .items
            .retain(|i| i.id != deployment::CHECK_DEPLOYMENT);
        let failed: Vec<String> = items
            .iter()
            .filter(|i| i.verdict == validate::Verdict::Fail)
            .map(|i| i.title.clone())
            .collect();
        report.items.extend(items);
        report
            .items
            .sort_by_key(|i| validate::CheckId::ALL.iter().position(|c| *c == i.id));
        report.ready = report.ready && failed.is_empty();
        let summary = format!(
            "{} of {total} devices succeeded, {} failed{}",
            c.succeeded,
            c.failed,
            match c.in_progress + c.not_started {
                0 => String::new(),
                n => format!(", {n} not finished when the wait ended"),
            }
        );
        if c.in_progress + c.not_started > 0 {
            self.warn(at, deployment::REPORT_LIMITS);
        }
        self.finished(
            at,
            failed.is_empty(),
            if failed.is_empty() {
                summary
            } else {
                format!("{summary}: {}", failed.join("; "))
            },
        );
        Ok(true)
    }

    /// The reads that can refuse the plan, made before the profile step's first write: a run
    /// that stops on them has changed nothing in the tenant.
    async fn check_before_writes(&mut self) -> Result<(), StepError> {
        let GroupPlan::Existing { name } = &self.plan.group else {
            return Ok(());
        };
        let name = name.clone();
        self.retrying(Step::Of(StepId::Group), |e| {
            let graph = e.graph();
            let name = name.clone();
            async move { find_existing_group(&graph, &name).await.map(|_| ()) }
        })
        .await
    }

    /// The steps the engine performs itself; the validation returns the report.
    async fn built_in(
        &mut self,
        step: StepId,
    ) -> Result<Option<(Report, Vec<PathBuf>)>, StepError> {
        match step {
            StepId::SignIn => self.sign_in().await?,
            StepId::JoinPermission => self.join_permission().await?,
            StepId::Profile => self.profile().await?,
            StepId::Group => self.group().await?,
            StepId::Import => self.import().await?,
            StepId::Assignment => self.assignment().await?,
            StepId::Validate => return self.validate().await.map(Some),
            // Every later step declares its runner in the registry and never comes here.
            other => {
                return Err(StepError::input(format!(
                    "the step \"{}\" has no way to run unattended",
                    other.title()
                )));
            }
        }
        Ok(None)
    }

    /// A step with a runner in the registry: its table of the plan, the outcomes so far, and
    /// the same retries on a transient failure as every step.
    async fn registered(&mut self, step: StepId, runner: PlanRunner) -> Result<(), StepError> {
        let at = Step::Of(step);
        self.started(at);
        let (summary, outcomes) = self
            .retrying(at, |e| {
                let graph = e.graph();
                let section = e.plan.section(step.def().plan_section).cloned();
                let mut outcomes = e.state.outcomes.clone();
                let sink = e.sink;
                let name = e.name.clone();
                async move {
                    let note = move |message: String| {
                        sink.emit(Event::Warning {
                            plan: name.clone(),
                            step: at,
                            message,
                        })
                    };
                    let summary = runner(PlanCx {
                        graph: &graph,
                        section: section.as_ref(),
                        outcomes: &mut outcomes,
                        note: &note,
                    })
                    .await?;
                    Ok((summary, outcomes))
                }
            })
            .await?;
        self.state.outcomes = outcomes;
        self.save()?;
        self.finished(at, true, summary);
        Ok(())
    }

    /// Reads the CSV files with the hardware-hash reader of the import page. Any file or row
    /// error refuses the run: a plan runs unattended, so nothing is left out silently.
    fn read_csv(&self, verified_domains: &[String]) -> Result<Vec<import::ImportRow>, StepError> {
        let options = CheckOptions::default().with_verified_domains(verified_domains);
        let report = hwid::check_files(&self.plan.csv_files, &options);
        let mut problems = Vec::new();
        for f in &report.files {
            for x in f
                .findings
                .iter()
                .filter(|x| x.severity == hwid::Severity::Error)
            {
                problems.push(format!("{}: {}", f.path, x.message));
            }
            for r in &f.rows {
                if r.status == hwid::RowStatus::Error
                    && let Some(x) = r
                        .findings
                        .iter()
                        .find(|x| x.severity == hwid::Severity::Error)
                {
                    problems.push(format!("{}, line {}: {}", f.path, r.line, x.message));
                }
            }
        }
        if !problems.is_empty() {
            let more = problems.len().saturating_sub(10);
            problems.truncate(10);
            let mut msg = format!(
                "The CSV files have problems; fix them and run the plan again (check them with `autopilot-wizard check-csv`):\n  {}",
                problems.join("\n  ")
            );
            if more > 0 {
                msg.push_str(&format!("\n  … and {more} more"));
            }
            return Err(StepError::input(msg));
        }
        let mut rows: Vec<import::ImportRow> = import::rows_from_report(&report)
            .into_iter()
            .map(|(r, _, _)| r)
            .collect();
        if rows.is_empty() {
            return Err(StepError::input("The CSV files hold no devices."));
        }
        self.apply_group_tags(&mut rows)?;
        Ok(rows)
    }

    /// The group tags the plan's group collects, when it is a group by group tag.
    fn group_tags(&self) -> Option<Vec<String>> {
        match &self.plan.group {
            GroupPlan::Create {
                rule: Some(group::RuleSpec::GroupTags(tags)),
                ..
            } => Some(tags.clone()),
            _ => None,
        }
    }

    /// The rows' group tags against the group's, as the import page checks them before its
    /// upload (`ImportJob::kept_out_of_group`): a row without a tag gets the group's first tag
    /// when the plan says `tag_untagged = true`; any other row the group would not collect
    /// stops the run, named, before anything is sent.
    fn apply_group_tags(&self, rows: &mut [import::ImportRow]) -> Result<(), StepError> {
        let Some(tags) = self.group_tags() else {
            return Ok(());
        };
        let kept_out = ImportJob::new(rows.to_vec()).kept_out_of_group(&tags);
        let (untagged, other): (Vec<usize>, Vec<usize>) = kept_out
            .into_iter()
            .partition(|&i| rows[i].group_tag.trim().is_empty());
        let wanted = tags.first().cloned().unwrap_or_default();
        let list = |idx: &[usize], with_tag: bool| {
            let mut names: Vec<String> = idx
                .iter()
                .take(20)
                .map(|&i| {
                    if with_tag {
                        format!("{} (\"{}\")", rows[i].serial, rows[i].group_tag)
                    } else {
                        rows[i].serial.clone()
                    }
                })
                .collect();
            if idx.len() > 20 {
                names.push(format!("… and {} more", idx.len() - 20));
            }
            names.join(", ")
        };
        let mut problems = Vec::new();
        if !other.is_empty() {
            problems.push(format!(
                "{} devices in the CSV files have another group tag than {}, so they would never join the group \"{}\": {}. Correct their Group Tag column, or add their tag to [group] group_tags.",
                other.len(),
                tags.join(" or "),
                self.plan.group.name(),
                list(&other, true)
            ));
        }
        if !untagged.is_empty() && !self.plan.tag_untagged {
            problems.push(format!(
                "{} devices in the CSV files have no group tag, so they would never join the group \"{}\": {}. Add tag_untagged = true under [group] to give them the tag {wanted}, or fill in their Group Tag column.",
                untagged.len(),
                self.plan.group.name(),
                list(&untagged, false)
            ));
        }
        if !problems.is_empty() {
            return Err(StepError::input(problems.join("\n")));
        }
        for i in untagged {
            rows[i].group_tag = wanted.clone();
        }
        Ok(())
    }

    fn auth_config(&self) -> AuthConfig {
        let t = &self.plan.tenant;
        let endpoints = Endpoints::with_overrides(
            t.cloud,
            self.config.graph_url.clone().or(t.graph_url.clone()),
            self.config.login_url.clone().or(t.login_url.clone()),
        );
        AuthConfig {
            endpoints,
            tenant: t.id.clone(),
            client: match &t.client_id {
                Some(id) => ClientApp::from_client_id(id),
                None => ClientApp::GraphCommandLineTools,
            },
        }
    }

    async fn sign_in(&mut self) -> Result<(), StepError> {
        self.started(Step::Of(StepId::SignIn));
        if let Some(ca) = &self.plan.tenant.ca_file {
            crate::graph::tls::trust_ca_file(ca).map_err(|e| StepError::input(e.to_string()))?;
        }
        let config = self.auth_config();
        let mut flows = SignInFlows::new(
            config.clone(),
            self.config.token_store.clone(),
            &crate::steps::required_scopes(),
        )
        .with_sleeper(self.config.sleeper.clone());
        if let Some(opener) = &self.config.browser {
            flows = flows.with_opener(opener.clone());
        }
        let mut auth = None;
        // The refresh token saved by the last run, under the tenant and account it signed in.
        if let Some(prev) = &self.state.outcomes.signed_in
            && prev.cloud == config.endpoints.cloud
            && prev.client_id == config.client_id()
        {
            match flows.silent(&prev.store_key()).await {
                Ok(Some(a)) => auth = Some(a),
                Ok(None) => {}
                Err(e) => self.warn(
                    Step::Of(StepId::SignIn),
                    format!("The saved sign-in was not used: {e}"),
                ),
            }
        }
        let auth = match auth {
            Some(a) => a,
            None => self.interactive(&flows).await?,
        };
        let (graph, signed) = sign_in::complete(auth).await?;
        if !signed.all_scopes_granted() {
            return Err(StepError::new(Exit::SignIn, signed.fix.clone()));
        }
        // The tenant the plan names must be the tenant signed in to.
        let want = self.plan.tenant.id.to_ascii_lowercase();
        if want != signed.tenant_id.to_ascii_lowercase()
            && !signed
                .verified_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&want))
        {
            return Err(StepError::new(
                Exit::SignIn,
                format!(
                    "Signed in to {} ({}), but the plan is for {}. Sign in with an account of that tenant.",
                    signed.tenant_name, signed.tenant_id, self.plan.tenant.id
                ),
            ));
        }
        // One plan per tenant: compared by the tenant id the sign-in returned, so a plan naming
        // the tenant by its domain and another by its id are caught too, before either writes.
        {
            let key = (
                effective_graph_url(self.plan, self.config),
                signed.tenant_id.to_ascii_lowercase(),
            );
            let mut tenants = self
                .config
                .tenants
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match tenants.get(&key) {
                Some(other) if *other != self.plan.path.display().to_string() => {
                    return Err(StepError::input(format!(
                        "{other} is for the same tenant ({}, {}) and runs in this call. Run one plan per tenant at a time: they would work on the same devices.",
                        signed.tenant_name, signed.tenant_id
                    )));
                }
                _ => {
                    tenants.insert(key, self.plan.path.display().to_string());
                }
            }
        }
        if let Some(why) = &signed.not_remembered_reason {
            self.warn(
                Step::Of(StepId::SignIn),
                format!("The sign-in will not be remembered: {why}"),
            );
        }
        let summary = format!(
            "{} ({}) in {}",
            signed.user_name, signed.user_upn, signed.tenant_name
        );
        self.state.outcomes.signed_in = Some(signed);
        self.graph = Some(graph);
        self.save()?;
        self.finished(Step::Of(StepId::SignIn), true, summary);
        Ok(())
    }

    async fn interactive(
        &self,
        flows: &SignInFlows,
    ) -> Result<crate::graph::auth::Authenticator, StepError> {
        if self.config.browser.is_some() {
            match flows.browser(self.cancel).await {
                Ok(a) => return Ok(a),
                Err(e @ (AuthError::Browser(_) | AuthError::Listener(_))) => {
                    self.warn(
                        Step::Of(StepId::SignIn),
                        format!("{e} Signing in with a code instead."),
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        let code = flows.start_device_code().await?;
        let p = &code.prompt;
        self.emit(Event::DeviceCode {
            plan: self.name.clone(),
            url: p.verification_uri.clone(),
            code: p.user_code.clone(),
            message: p.message.clone().unwrap_or_else(|| {
                format!(
                    "To sign in, open {} and enter the code {}.",
                    p.verification_uri, p.user_code
                )
            }),
        });
        Ok(flows.finish_device_code(&code, self.cancel).await?)
    }

    async fn join_permission(&mut self) -> Result<(), StepError> {
        self.started(Step::Of(StepId::JoinPermission));
        let (deployers, ok, todo) = self
            .retrying(Step::Of(StepId::JoinPermission), |e| {
                let graph = e.graph();
                let wanted = e.plan.deployers.clone();
                async move {
                    let mut deployers = Vec::new();
                    for upn in &wanted.users {
                        let found = join_permission::search_deployers(&graph, upn).await?;
                        let d = found.into_iter().find(|d| {
                            matches!(d, Deployer::User { upn: Some(u), .. } if u.eq_ignore_ascii_case(upn))
                        });
                        deployers.push(d.ok_or_else(|| {
                            StepError::input(format!(
                                "The plan names the deploying user {upn}, but the tenant has no user with that sign-in name. Correct [deployers] users."
                            ))
                        })?);
                    }
                    for name in &wanted.groups {
                        let found = join_permission::search_deployers(&graph, name).await?;
                        let d = found.into_iter().find(|d| {
                            matches!(d, Deployer::Group { name: n, .. } if n.eq_ignore_ascii_case(name))
                        });
                        deployers.push(d.ok_or_else(|| {
                            StepError::input(format!(
                                "The plan names the deploying group \"{name}\", but the tenant has no group with that name. Correct [deployers] groups."
                            ))
                        })?);
                    }
                    let check = join_permission::check_join(&graph, &deployers).await?;
                    let (ok, todo) = match check.verdict {
                        Ok(()) => (true, Vec::new()),
                        Err(todo) => (false, todo),
                    };
                    Ok((deployers, ok, todo))
                }
            })
            .await?;
        for t in &todo {
            self.warn(Step::Of(StepId::JoinPermission), t.clone());
        }
        let names: Vec<String> = deployers.iter().map(|d| d.label()).collect();
        self.state.outcomes.join_permission = Some(JoinPermissionOutcome {
            deployers,
            validated: ok,
        });
        self.save()?;
        self.finished(
            Step::Of(StepId::JoinPermission),
            ok,
            if ok {
                format!("{} may join devices and enroll them", names.join(", "))
            } else {
                "not everyone may join or enroll devices (the report lists what to change)".into()
            },
        );
        Ok(())
    }

    async fn profile(&mut self) -> Result<(), StepError> {
        self.started(Step::Of(StepId::Profile));
        let (profile, created, warnings) = self
            .retrying(Step::Of(StepId::Profile), |e| {
                let graph = e.graph();
                let plan = e.plan.profile.clone();
                async move {
                    let list = profile::list_profiles(&graph).await?;
                    if let Some(p) = list
                        .iter()
                        .find(|p| p.display_name.trim().eq_ignore_ascii_case(&plan.name))
                    {
                        let picked = profile::pick_profile(&graph, &p.id).await?;
                        return Ok((ProfileRef::from(&picked.profile), false, picked.warnings));
                    }
                    if !plan.create {
                        return Err(StepError::input(format!(
                            "The tenant has no deployment profile named \"{}\". Correct [profile] name, or add create = true to create it.",
                            plan.name
                        )));
                    }
                    let names: Vec<&str> = list.iter().map(|p| p.display_name.as_str()).collect();
                    let valid = profile::validate(&plan.form, &names).map_err(|errs| {
                        StepError::input(
                            errs.iter()
                                .map(|e| format!("{}: {}", e.field.label(), e.message))
                                .collect::<Vec<_>>()
                                .join(" "),
                        )
                    })?;
                    let out = profile::create_profile(&graph, &valid).await?;
                    let mut warnings = out.warnings;
                    if !out.comparison.all_match() {
                        warnings.push(out.comparison.summary());
                    }
                    Ok((ProfileRef::from(&out.profile), out.created, warnings))
                }
            })
            .await?;
        for w in warnings {
            self.warn(Step::Of(StepId::Profile), w);
        }
        let summary = format!(
            "\"{}\" {}",
            profile.display_name,
            if created {
                "created and read back"
            } else {
                "found and read back"
            }
        );
        self.state.outcomes.profile = Some(profile);
        self.save()?;
        self.finished(Step::Of(StepId::Profile), true, summary);
        Ok(())
    }

    async fn group(&mut self) -> Result<(), StepError> {
        self.started(Step::Of(StepId::Group));
        let read_back = self.config.read_back;
        let (group, note) = self
            .retrying(Step::Of(StepId::Group), |e| {
                let graph = e.graph();
                let plan = e.plan.group.clone();
                async move {
                    let (existing, expected) = match &plan {
                        GroupPlan::Existing { name } => {
                            let (g, note) = find_existing_group(&graph, name).await?;
                            let kind = group::GroupRef::from_group(&g).kind;
                            ((g.id.clone(), note), kind)
                        }
                        GroupPlan::Create {
                            name,
                            description,
                            rule,
                        } => {
                            let spec = GroupSpec {
                                display_name: name.clone(),
                                description: description.clone(),
                                rule: rule.clone(),
                            };
                            let expected = spec
                                .expected_kind()
                                .map_err(|e| StepError::input(e.message))?;
                            let (g, note) = match group::create_group(&graph, &spec).await? {
                                group::CreateOutcome::Created(g) => (g, None),
                                group::CreateOutcome::Exists(g) => {
                                    (g, Some("a group with this name existed and is used".into()))
                                }
                            };
                            ((g.id.clone(), note), expected)
                        }
                    };
                    let (id, note) = existing;
                    let read = group::read_back(&graph, &id, read_back).await?;
                    group::validate(&read, &expected).map_err(StepError::input)?;
                    Ok((read.group, note))
                }
            })
            .await?;
        if let Some(n) = note {
            self.warn(Step::Of(StepId::Group), n);
        }
        self.state.outcomes.group = Some(group.clone());
        self.save()?;
        let profile = self
            .state
            .outcomes
            .profile
            .clone()
            .expect("profile step ran");
        let (assigned, conflicts) = self
            .retrying(Step::Of(StepId::Group), |e| {
                let graph = e.graph();
                let (pid, gid) = (profile.id.clone(), group.id.clone());
                async move { Ok(profile::assign_and_check(&graph, &pid, &gid).await?) }
            })
            .await?;
        for c in conflicts {
            self.warn(Step::Of(StepId::Group), c.explanation);
        }
        self.finished(
            Step::Of(StepId::Group),
            true,
            format!(
                "\"{}\" ({}), profile {}",
                group.display_name,
                match &group.kind {
                    GroupKind::Dynamic { rule } => format!("dynamic: {rule}"),
                    GroupKind::Static => "assigned membership".into(),
                },
                match assigned {
                    profile::AssignmentOutcome::Created { .. } => "assigned",
                    profile::AssignmentOutcome::AlreadyAssigned { .. } => "already assigned",
                }
            ),
        );
        Ok(())
    }

    async fn import(&mut self) -> Result<(), StepError> {
        self.started(Step::Of(StepId::Import));
        let domains = self
            .state
            .outcomes
            .signed_in
            .as_ref()
            .map(|s| s.verified_domains.clone())
            .unwrap_or_default();
        let rows = self.read_csv(&domains)?;
        self.devices = rows.len();
        let fingerprint = state::rows_fingerprint(&rows);
        // The saved job continues when it is about the same devices; a changed CSV starts a
        // new one (its precheck finds what the old one already registered).
        let mut job = match self.state.outcomes.import.take() {
            Some(job) if self.state.csv_fingerprint.as_deref() == Some(fingerprint.as_str()) => job,
            _ => {
                let opts = self.config.import.clone();
                self.retrying(Step::Of(StepId::Import), |e| {
                    let graph = e.graph();
                    let rows = rows.clone();
                    let opts = opts.clone();
                    async move { Ok(import::precheck(&graph, rows, &opts).await?) }
                })
                .await?
            }
        };
        self.state.csv_fingerprint = Some(fingerprint);
        self.state.outcomes.import = Some(job.clone());
        self.save()?;
        // Devices the tenant already has under another group tag would never join the group:
        // said now, before the upload, instead of after the whole assignment wait.
        if let Some(tags) = self.group_tags() {
            let kept_out = job.kept_out_of_group(&tags);
            if !kept_out.is_empty() {
                let rows: Vec<String> = kept_out
                    .iter()
                    .map(|&i| {
                        format!(
                            "{} (group tag \"{}\")",
                            job.rows[i].row.serial,
                            job.effective_tag(i).unwrap_or_default()
                        )
                    })
                    .collect();
                return Err(StepError::input(format!(
                    "{} devices would not join the group, which collects the group tag {}: {}. Give them that tag in Intune (Devices > Enrollment > Windows Autopilot > Devices, Group tag), or take them out of the CSV files, and run the plan again.",
                    rows.len(),
                    tags.join(" or "),
                    rows.join(", ")
                )));
            }
        }
        if !job.is_validated() {
            let mut attempt = 1;
            loop {
                // A failed save cancels this token: the upload after it is never sent.
                let stop = self.cancel.child_token();
                let graph = self.graph().with_cancel(stop.clone());
                let result = {
                    let observer = Observer {
                        engine: &*self,
                        stop: stop.clone(),
                    };
                    import::run(&graph, &mut job, &self.config.import, &observer, &stop).await
                };
                if let Some(e) = self
                    .save_failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                {
                    return Err(StepError::input(e));
                }
                self.state.outcomes.import = Some(job.clone());
                self.save()?;
                match result {
                    Ok(()) => break,
                    Err(e) => {
                        let e = StepError::from(e);
                        let why = format!("{} Continuing the import", e.message);
                        if e.transient
                            && self
                                .another_attempt(
                                    Step::Of(StepId::Import),
                                    &mut attempt,
                                    why,
                                    "; nothing is uploaded twice",
                                )
                                .await?
                        {
                            continue;
                        }
                        return Err(e);
                    }
                }
            }
        }
        let c = job.counts();
        self.stats = Some(job.stats.clone());
        for r in &job.rows {
            if let RowOutcome::Failed {
                summary, action, ..
            } = &r.outcome
            {
                self.warn(
                    Step::Of(StepId::Import),
                    format!("{}: {summary} {action}", r.row.serial),
                );
            }
        }
        self.finished(
            Step::Of(StepId::Import),
            c.failed == 0,
            format!(
                "{} registered ({} already were), {} failed, {} left out",
                c.registered + c.already_registered,
                c.already_registered,
                c.failed,
                c.excluded
            ),
        );
        Ok(())
    }

    /// Serials the assignment and the report look at: every imported or registered row, as the
    /// assignment page scopes its board.
    fn expected_serials(&self) -> HashSet<String> {
        self.state
            .outcomes
            .import
            .as_ref()
            .map(|job| job.expected_serials().collect())
            .unwrap_or_default()
    }

    async fn assignment(&mut self) -> Result<(), StepError> {
        self.started(Step::Of(StepId::Assignment));
        let (Some(profile), Some(group)) = (
            self.state.outcomes.profile.clone(),
            self.state.outcomes.group.clone(),
        ) else {
            return Err(StepError::input(
                "the profile and group steps did not finish",
            ));
        };
        let target = assignment::target_of(&profile, &group);
        let serials = self.expected_serials();
        let mut opts = self.config.wait.clone();
        opts.phase_timeout = self.plan.assignment_wait;
        let result = self
            .retrying(Step::Of(StepId::Assignment), |e| {
                let graph = e.graph();
                let target = target.clone();
                let serials = serials.clone();
                let opts = opts.clone();
                let sink = e.sink;
                let plan = e.name.clone();
                async move {
                    let devices = assignment::list_devices(&graph).await?;
                    let ids: Vec<String> = devices
                        .iter()
                        .filter(|d| serials.contains(&d.serial_number.trim().to_ascii_uppercase()))
                        .map(|d| d.id.clone())
                        .collect();
                    if ids.is_empty() {
                        return Ok(None);
                    }
                    let mut tracker = WaitTracker::new(&opts);
                    let mut reader = assignment::BoardReader::new(target.clone());
                    let board = assignment::run_with(&graph, &mut reader, &ids, &opts, |p| {
                        tracker.report(sink, &plan, &p)
                    })
                    .await?;
                    Ok(Some((board, reader)))
                }
            })
            .await;
        match result {
            Ok(Some((board, reader))) => {
                // The validation reads the same devices: what this wait read expanded is not
                // read again unless it changed.
                self.board_reader = Some(reader);
                let outcome = assignment::AssignmentOutcome::from_board_in(&board, Some(&serials));
                for r in &board.rows {
                    self.emit(Event::Device {
                        plan: self.name.clone(),
                        step: Step::Of(StepId::Assignment),
                        serial: r.serial.clone(),
                        outcome: if r.is_ready(&target.profile_id) {
                            "ready".into()
                        } else {
                            "not-ready".into()
                        },
                        detail: r.chip.label().into(),
                    });
                }
                let s = outcome.summary;
                self.state.outcomes.assignment = Some(outcome);
                self.save()?;
                self.finished(
                    Step::Of(StepId::Assignment),
                    s.failed == 0 && s.ready == s.total,
                    format!("{} of {} devices have the profile", s.ready, s.total),
                );
                Ok(())
            }
            Ok(None) => {
                self.finished(
                    Step::Of(StepId::Assignment),
                    false,
                    "no imported device to assign",
                );
                Ok(())
            }
            // Waited as long as the plan allows: the report says what is still open.
            Err(e) if e.exit == Exit::NotReady => {
                self.finished(Step::Of(StepId::Assignment), false, e.message);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn validate(&mut self) -> Result<(Report, Vec<PathBuf>), StepError> {
        self.started(Step::Of(StepId::Validate));
        let Some(inputs) = validate::inputs_from_outcomes(&self.state.outcomes) else {
            return Err(StepError::input(
                "the profile and group steps did not finish",
            ));
        };
        // The checks only read, and one that could not be made (still throttled, connection
        // lost) says nothing about the tenant: check again before calling it NOT READY.
        let mut attempt = 1;
        let report = loop {
            let report =
                validate::run_with(&self.graph(), &inputs, self.board_reader.as_mut()).await;
            if self.cancel.is_cancelled() {
                return Err(StepError::new(Exit::Interrupted, "Cancelled."));
            }
            let unknown: Vec<&str> = report
                .items
                .iter()
                .filter(|i| i.verdict == validate::Verdict::Unknown)
                .map(|i| i.title.as_str())
                .collect();
            if unknown.is_empty() {
                break report;
            }
            let why = format!("Could not check: {}. Checking again", unknown.join(", "));
            if !self
                .another_attempt(Step::Of(StepId::Validate), &mut attempt, why, "")
                .await?
            {
                break report;
            }
        };
        self.state.outcomes.validation = Some(ValidationOutcome::from_report(&report));
        self.save()?;
        let files = self.write_report_files(&report)?;
        self.finished(
            Step::Of(StepId::Validate),
            report.ready,
            match report.first_problem() {
                None => report.verdict_text().to_string(),
                Some(p) => format!("{}: {p}", report.verdict_text()),
            },
        );
        Ok((report, files))
    }
}

/// A deployment's outcome in `device` events of `run --json`.
fn phase_key(p: crate::board::DeploymentPhase) -> &'static str {
    use crate::board::DeploymentPhase as P;
    match p {
        P::NotStarted => "not-started",
        P::Enrolling => "enrolling",
        P::DeviceSetup => "device-setup",
        P::AccountSetup => "account-setup",
        P::Succeeded => "succeeded",
        P::Failed => "failed",
    }
}

/// The plan's `existing` group: exactly one group of that name, usable for devices.
async fn find_existing_group(
    graph: &GraphClient,
    name: &str,
) -> Result<(crate::graph::models::directory::Group, Option<String>), StepError> {
    let found = group::find_by_display_name(graph, name).await?;
    let g = match found.as_slice() {
        [] => {
            return Err(StepError::input(format!(
                "The tenant has no group named \"{name}\". Correct [group] name, or choose a membership that creates it (e.g. membership = \"group-tag\")."
            )));
        }
        [g] => g.clone(),
        _ => {
            return Err(StepError::input(format!(
                "The tenant has {} groups named \"{name}\"; rename one so the plan names exactly one.",
                found.len()
            )));
        }
    };
    let note = group::assess_existing(&g).map_err(StepError::input)?;
    Ok((g, note))
}

/// Turns the import's events into run events and saves the job after every change, so a
/// killed run resumes from the last change (the import saves before each upload).
struct Observer<'a, 'b> {
    engine: &'a Engine<'b>,
    /// Cancelled when a save fails: the import stops before its next request.
    stop: CancellationToken,
}

impl import::ImportObserver for Observer<'_, '_> {
    fn event(&self, event: ImportEvent) {
        let e = self.engine;
        let plan = e.name.clone();
        match event {
            ImportEvent::Phase(p) => e.emit(Event::Progress {
                plan,
                step: Step::Of(StepId::Import),
                done: 0,
                total: 0,
                message: p.label().into(),
            }),
            ImportEvent::Counts(c) => {
                let done = (c.total - c.ready - c.submitted - c.imported) as u64;
                e.emit(Event::Progress {
                    plan,
                    step: Step::Of(StepId::Import),
                    done,
                    total: c.total as u64,
                    message: format!(
                        "{} uploaded, {} registered, {} failed",
                        c.submitted + c.imported + c.registered,
                        c.registered,
                        c.failed
                    ),
                })
            }
            ImportEvent::Row { index, outcome } => {
                let serial = e
                    .state
                    .outcomes
                    .import
                    .as_ref()
                    .and_then(|j| j.rows.get(index))
                    .map(|r| r.row.serial.clone())
                    .unwrap_or_default();
                let (name, detail) = row_outcome(&outcome);
                e.emit(Event::Device {
                    plan,
                    step: Step::Of(StepId::Import),
                    serial,
                    outcome: name.into(),
                    detail,
                })
            }
            // Told every second (a terminal counts down); the JSON sink passes on the first.
            ImportEvent::SyncCountdown { remaining } if !remaining.is_zero() => {
                e.emit(Event::Waiting {
                    plan,
                    step: Step::Of(StepId::Import),
                    message:
                        "Intune allows one sync every 10 minutes; syncing when the window opens"
                            .into(),
                    next_check: chrono::Utc::now()
                        + chrono::Duration::from_std(remaining).unwrap_or_default(),
                })
            }
            ImportEvent::SyncCountdown { .. } => e.emit(Event::Progress {
                plan,
                step: Step::Of(StepId::Import),
                done: 0,
                total: 0,
                message: "The sync window is open; syncing".into(),
            }),
            ImportEvent::Note(n) => e.warn(Step::Of(StepId::Import), n),
        }
    }

    fn save(&self, job: &ImportJob) {
        let mut state = self.engine.state.clone();
        state.outcomes.import = Some(job.clone());
        if let Err(err) = state::save(&self.engine.state_path, &state) {
            tracing::warn!(error = %err, "import state not saved");
            let mut failed = self
                .engine
                .save_failed
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if failed.is_none() {
                *failed = Some(save_error(&self.engine.state_path, &err));
            }
            self.stop.cancel();
        }
    }
}

fn row_outcome(o: &RowOutcome) -> (&'static str, String) {
    match o {
        RowOutcome::Ready => ("ready", String::new()),
        RowOutcome::Excluded { reason } => ("excluded", reason.clone()),
        RowOutcome::Duplicate { .. } => ("duplicate", o.label()),
        RowOutcome::AlreadyRegistered { .. } => ("already-registered", o.label()),
        RowOutcome::Submitted { .. } => ("uploaded", o.label()),
        RowOutcome::Imported { .. } => ("imported", o.label()),
        RowOutcome::Registered { .. } => ("registered", o.label()),
        RowOutcome::Failed {
            summary, action, ..
        } => ("failed", format!("{summary} {action}")),
    }
}

/// Follows the assignment waits' polling (first poll, growing by half up to the maximum) to
/// tell when the next check comes; the steps do not report it themselves.
struct WaitTracker {
    first: Duration,
    max: Duration,
    current: Duration,
    kind: Option<std::mem::Discriminant<assignment::Progress>>,
}

impl WaitTracker {
    fn new(opts: &WaitOptions) -> Self {
        WaitTracker {
            first: opts.first_poll,
            max: opts.max_poll,
            current: opts.first_poll,
            kind: None,
        }
    }

    fn report(&mut self, sink: &dyn EventSink, plan: &str, p: &assignment::Progress) {
        use assignment::Progress as P;
        let kind = std::mem::discriminant(p);
        if self.kind != Some(kind) {
            self.kind = Some(kind);
            self.current = self.first;
        } else {
            self.current = self.current.mul_f64(1.5).min(self.max).max(self.first);
        }
        let (done, total) = match p {
            P::ResolvingEntraObjects { found, total } => (*found, *total),
            P::AddingMembers {
                added,
                already,
                total,
            } => (added + already, *total),
            P::Membership { members, total, .. } => (*members, *total),
            P::Assignment { summary } => (summary.ready, summary.total),
        };
        sink.emit(Event::Progress {
            plan: plan.to_string(),
            step: Step::Of(StepId::Assignment),
            done: done as u64,
            total: total as u64,
            message: p.message(),
        });
        if done < total {
            sink.emit(Event::Waiting {
                plan: plan.to_string(),
                step: Step::Of(StepId::Assignment),
                message: p.message(),
                next_check: chrono::Utc::now()
                    + chrono::Duration::from_std(self.current).unwrap_or_default(),
            });
        }
    }
}
