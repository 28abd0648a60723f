//! `autopilot-wizard remove`: the removal flow (`steps::removal`) without a window.
//!
//! Exit codes as `run`: 0 every device done, 1 a device was refused (another tenant's, held by
//! Multi Admin Approval, not registered, no hash), 2 bad input (no serials, unreadable CSV, no
//! confirmation), 3 sign-in or a missing permission, 4 the service failed or a wait gave up (run
//! it again: it continues from the state file without repeating a wipe).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::graph::GraphClient;
use crate::graph::auth::{AuthConfig, SignInFlows};
use crate::graph::cloud::{ClientApp, Cloud, Endpoints};
use crate::graph::token_store::MemoryStore;
use crate::run::Exit;
use crate::sim::Speed;
use crate::steps::removal::{
    self, DeviceOutcome, KnownDevices, Mode, Options, Pace, Plan, Refusal, RemovalObserver,
    RunRecord,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    Leave,
    Redeploy,
    Move,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Leave => Mode::Leave,
            ModeArg::Redeploy => Mode::Redeploy,
            ModeArg::Move => Mode::Move,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// A device's serial number. Repeat for several devices.
    #[arg(long = "serial", value_name = "SERIAL")]
    pub serials: Vec<String>,
    /// Hardware-hash CSV files: their devices (and, for --mode move, their hashes).
    #[arg(long = "csv", value_name = "FILE")]
    pub csv: Vec<PathBuf>,
    /// leave: out of the organisation; redeploy: Autopilot Reset or release a blocked
    /// enrollment; move: save the hash, then as leave. Required unless the plan's [remove]
    /// table names it.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// A plan file: its [tenant] signs in, its [remove] table (serials, csv, mode, wipe,
    /// hash_dir) names the devices. The command line adds to it and wins.
    #[arg(long, value_name = "PLAN.toml")]
    pub plan: Option<PathBuf>,
    /// Wipe the devices first (leave, move).
    #[arg(long)]
    pub wipe: bool,
    /// Print one JSON object per line instead of words.
    #[arg(long)]
    pub json: bool,
    /// Carry out the plan without asking.
    #[arg(long)]
    pub yes: bool,
    /// Run against a built-in simulated tenant (nothing real is touched).
    #[arg(long)]
    pub demo: bool,
    /// The tenant to sign in to (its id or a verified domain; default: the account's own).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Graph root URL (a separately started `sim`, a proxy).
    #[arg(long)]
    pub graph_url: Option<String>,
    /// Login root URL.
    #[arg(long)]
    pub login_url: Option<String>,
    /// Where the run's state is kept (default: the app's data directory, removal-state.json).
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,
    /// Folder for the hash CSVs of --mode move (default: the current folder).
    #[arg(long, value_name = "DIR")]
    pub hash_dir: Option<PathBuf>,
    /// Multiply every poll interval and wait by this factor (tests against `sim --speed test`).
    #[arg(long, value_name = "FACTOR", hide = true)]
    pub wait_scale: Option<f64>,
}

/// The `[remove]` table of a plan file.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoveSection {
    pub serials: Vec<String>,
    /// Hardware-hash CSVs, relative to the plan's folder.
    pub csv: Vec<PathBuf>,
    /// `leave`, `redeploy` or `move`.
    pub mode: Option<String>,
    pub wipe: bool,
    pub hash_dir: Option<PathBuf>,
}

impl RemoveSection {
    /// Reads the table from `plan` (absent: empty), paths resolved against the plan's folder.
    pub fn of(plan: &crate::plan::Plan) -> Result<RemoveSection, String> {
        let Some(v) = plan.section(crate::plan::REMOVE_SECTION) else {
            return Ok(RemoveSection::default());
        };
        let mut r: RemoveSection = v.clone().try_into().map_err(|e: toml::de::Error| {
            format!(
                "{}: [remove] {}. It takes serials = [\"…\"], csv = [\"…\"], mode = \"leave\" | \"redeploy\" | \"move\", wipe = true | false, hash_dir = \"…\".",
                plan.path.display(),
                e.message().trim()
            )
        })?;
        if let Some(m) = &r.mode
            && Mode::from_key(m).is_none()
        {
            return Err(format!(
                "{}: [remove] mode = \"{m}\" is not a mode: write \"leave\", \"redeploy\" or \"move\".",
                plan.path.display()
            ));
        }
        let base = plan.path.parent().unwrap_or(std::path::Path::new("."));
        for f in &mut r.csv {
            if f.is_relative() {
                *f = base.join(&*f);
            }
        }
        if let Some(d) = &mut r.hash_dir
            && d.is_relative()
        {
            *d = base.join(&*d);
        }
        Ok(r)
    }
}

struct Printer {
    json: bool,
    state_file: PathBuf,
    last: Mutex<Vec<(String, String)>>,
}

impl Printer {
    fn line(&self, value: serde_json::Value, words: String) {
        let mut out = std::io::stdout().lock();
        let _ = if self.json {
            writeln!(out, "{value}")
        } else {
            writeln!(out, "{words}")
        };
    }
}

impl RemovalObserver for Printer {
    fn progress(&self, serial: &str, text: &str) {
        // A wait prints once per minute of waiting at most: its text changes every poll.
        let key = text.split(" (").next().unwrap_or(text).to_string();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.iter().any(|(s, t)| s == serial && *t == key) {
            return;
        }
        last.retain(|(s, _)| s != serial);
        last.push((serial.to_string(), key));
        drop(last);
        self.line(
            json!({"event": "progress", "serial": serial, "text": text}),
            format!("  {serial}: {text}"),
        );
    }

    fn save(&self, record: &RunRecord) {
        if let Err(e) = save_record(&self.state_file, record) {
            eprintln!(
                "Could not save the state to {}: {e}",
                self.state_file.display()
            );
        }
    }
}

fn save_record(path: &std::path::Path, record: &RunRecord) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(record).unwrap_or_default())?;
    std::fs::rename(&tmp, path)
}

fn print_plan(p: &Printer, plan: &Plan) {
    for n in &plan.notes {
        p.line(json!({"event": "note", "text": n}), format!("Note: {n}"));
    }
    for d in &plan.devices {
        let words = d.steps_in_words();
        p.line(
            json!({
                "event": "plan",
                "serial": d.facts.serial,
                "actions": d.actions,
                "steps": words,
                "stays": d.stays(plan.mode),
                "irreversible": d.irreversible(),
                "refusal": d.refusal.as_ref().map(|r| r.to_string()),
            }),
            {
                let mut s = format!("{} ({}):", d.facts.serial, plan.mode.title());
                for w in &words {
                    s.push_str(&format!("\n  {w}"));
                }
                for w in d.stays(plan.mode) {
                    s.push_str(&format!("\n  Stays: {w}"));
                }
                for w in d.irreversible() {
                    s.push_str(&format!("\n  Cannot be undone: {w}"));
                }
                s
            },
        );
    }
}

fn exit_of(record: &RunRecord) -> Exit {
    let mut exit = Exit::Ready;
    for d in &record.devices {
        let e = match &d.outcome {
            Some(DeviceOutcome::Done { .. }) => Exit::Ready,
            Some(DeviceOutcome::Refused(Refusal::MissingPermission { .. })) => Exit::SignIn,
            Some(DeviceOutcome::Refused(Refusal::Failed { .. })) | None => Exit::Service,
            Some(DeviceOutcome::Refused(_)) => Exit::NotReady,
        };
        if e.code() > exit.code() {
            exit = e;
        }
    }
    exit
}

fn confirm(plan: &Plan) -> bool {
    let n = plan.actionable();
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return false;
    }
    let ask = if plan.needs_typed_count() {
        format!("Type the number of devices ({n}) to carry out the plan: ")
    } else {
        format!("Carry out the plan for {n} device(s)? Type yes: ")
    };
    eprint!("{ask}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if stdin.lock().read_line(&mut answer).is_err() {
        return false;
    }
    let a = answer.trim();
    if plan.needs_typed_count() {
        a == n.to_string()
    } else {
        a.eq_ignore_ascii_case("yes") || a.eq_ignore_ascii_case("y")
    }
}

async fn sign_in(
    args: &RemoveArgs,
    tenant: Option<&crate::plan::TenantPlan>,
) -> Result<(GraphClient, Option<crate::sim::SimHandle>), (Exit, String)> {
    if args.demo {
        let sim = crate::sim::spawn(crate::sim::SimConfig {
            speed: Speed::DEMO,
            ..crate::sim::SimConfig::default()
        })
        .await
        .map_err(|e| {
            (
                Exit::Service,
                format!("The simulated tenant did not start: {e}"),
            )
        })?;
        let token = sim.issue_token(&sim.admin().user_principal_name);
        let graph = GraphClient::new(
            &sim.url(),
            Arc::new(crate::graph::client::StaticToken(token)),
        );
        return Ok((graph, Some(sim)));
    }
    let endpoints = Endpoints::with_overrides(
        tenant.map(|t| t.cloud).unwrap_or(Cloud::Global),
        args.graph_url
            .clone()
            .or_else(|| tenant.and_then(|t| t.graph_url.clone())),
        args.login_url
            .clone()
            .or_else(|| tenant.and_then(|t| t.login_url.clone())),
    );
    let config = AuthConfig {
        endpoints,
        tenant: args
            .tenant
            .clone()
            .or_else(|| tenant.map(|t| t.id.clone()))
            .unwrap_or_else(|| "organizations".into()),
        client: match tenant.and_then(|t| t.client_id.as_deref()) {
            Some(id) => ClientApp::from_client_id(id),
            None => ClientApp::GraphCommandLineTools,
        },
    };
    let flows = SignInFlows::new(
        config,
        Arc::new(MemoryStore::new()),
        &crate::steps::required_scopes(),
    );
    let code = flows
        .start_device_code()
        .await
        .map_err(|e| (Exit::SignIn, e.to_string()))?;
    let p = &code.prompt;
    eprintln!(
        "{}",
        p.message.clone().unwrap_or_else(|| format!(
            "To sign in, open {} and enter the code {}.",
            p.verification_uri, p.user_code
        ))
    );
    let cancel = tokio_util::sync::CancellationToken::new();
    let auth = flows
        .finish_device_code(&code, &cancel)
        .await
        .map_err(|e| (Exit::SignIn, e.to_string()))?;
    let (graph, signed) = crate::steps::sign_in::complete(auth)
        .await
        .map_err(|e| (Exit::SignIn, e.to_string()))?;
    if !signed.all_scopes_granted() {
        // Removing may still work for the modes whose permissions were granted: say it and go on.
        eprintln!("{}", signed.fix);
    }
    Ok((graph, None))
}

/// Runs the subcommand on `runtime`; returns the exit code.
pub fn main(mut args: RemoveArgs, runtime: &tokio::runtime::Runtime) -> u8 {
    let plan = match &args.plan {
        None => None,
        Some(p) => match crate::plan::load(p) {
            Ok(plan) => Some(plan),
            Err(e) => {
                eprintln!("{e}");
                return Exit::BadInput.code();
            }
        },
    };
    if let Some(ca) = plan.as_ref().and_then(|p| p.tenant.ca_file.as_ref())
        && let Err(e) = crate::graph::tls::trust_ca_file(ca)
    {
        eprintln!("{e}");
        return Exit::BadInput.code();
    }
    let section = match plan.as_ref().map(RemoveSection::of).transpose() {
        Ok(s) => s.unwrap_or_default(),
        Err(e) => {
            eprintln!("{e}");
            return Exit::BadInput.code();
        }
    };
    let mode: Mode = match (args.mode, section.mode.as_deref().and_then(Mode::from_key)) {
        (Some(m), _) => m.into(),
        (None, Some(m)) => m,
        (None, None) => {
            eprintln!(
                "Say what happens to the devices: --mode leave, redeploy or move (or mode = \"…\" under [remove] in the plan)."
            );
            return Exit::BadInput.code();
        }
    };
    args.wipe |= section.wipe;
    args.serials.extend(section.serials.iter().cloned());
    args.csv.extend(section.csv.iter().cloned());
    if args.hash_dir.is_none() {
        args.hash_dir = section.hash_dir.clone();
    }
    let (csv_serials, known) = if args.csv.is_empty() {
        (Vec::new(), KnownDevices::default())
    } else {
        for f in &args.csv {
            if !f.is_file() {
                eprintln!("{} is not a readable file.", f.display());
                return Exit::BadInput.code();
            }
        }
        KnownDevices::from_csv_files(&args.csv)
    };
    let mut serials = args.serials.clone();
    serials.extend(csv_serials);
    if serials.is_empty() {
        eprintln!("Name the devices with --serial SERIAL (repeatable) or --csv FILE.");
        return Exit::BadInput.code();
    }
    let Some(state_file) = args
        .state_file
        .clone()
        .or_else(|| crate::paths::local_data_dir().map(|d| d.join("removal-state.json")))
    else {
        eprintln!("This system has no data directory for the state; give one with --state-file.");
        return Exit::BadInput.code();
    };
    let scale = args
        .wait_scale
        .unwrap_or(if args.demo { 1.0 / 60.0 } else { 1.0 });
    let opts = Options {
        mode,
        wipe: args.wipe,
        hash_dir: args.hash_dir.clone().unwrap_or_else(|| PathBuf::from(".")),
        pace: Pace::scaled(scale),
    };
    let printer = Printer {
        json: args.json,
        state_file: state_file.clone(),
        last: Mutex::new(Vec::new()),
    };
    runtime.block_on(async move {
        let (graph, _sim) = match sign_in(&args, plan.as_ref().map(|p| &p.tenant)).await {
            Ok(g) => g,
            Err((exit, message)) => {
                eprintln!("{message}");
                return exit.code();
            }
        };
        let plan = match removal::plan(&graph, &serials, mode, args.wipe, &known).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("The devices could not be read: {e}");
                return if e.is_forbidden() { Exit::SignIn } else { Exit::Service }.code();
            }
        };
        print_plan(&printer, &plan);
        // The state of an earlier run of the same mode continues (no second wipe).
        let mut record = std::fs::read(&state_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<RunRecord>(&b).ok())
            .filter(|r| r.mode == mode && r.unfinished())
            .unwrap_or_else(|| RunRecord::new(mode, args.wipe));
        if plan.actionable() > 0 && !args.yes && !confirm(&plan) {
            eprintln!(
                "Nothing was sent. Add --yes to carry out the plan without a question (scripts), or answer the question in a terminal."
            );
            return Exit::BadInput.code();
        }
        removal::execute(&graph, &plan, &opts, &known, &mut record, &printer).await;
        let _ = save_record(&state_file, &record);
        for d in &record.devices {
            let words = record.result_words(&d.serial);
            printer.line(
                json!({"event": "result", "serial": d.serial, "done": matches!(d.outcome, Some(DeviceOutcome::Done{..})), "text": words, "wipe_sent_at": d.wipe_sent_at}),
                format!("{}: {words}", d.serial),
            );
        }
        let exit = exit_of(&record);
        printer.line(
            json!({"event": "finished", "exit": exit.code()}),
            format!("Exit {} ({})", exit.code(), match exit { Exit::Ready => "every device done", Exit::NotReady => "a device was refused", Exit::SignIn => "a permission is missing", _ => "run it again to continue" }),
        );
        exit.code()
    })
}
