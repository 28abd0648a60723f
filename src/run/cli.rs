//! The `run` subcommand: reads the plans, signs in and runs them concurrently (one task per
//! plan), prints progress or JSON events, a summary table, and turns the results into the exit
//! code. Ctrl-C cancels every run cleanly; their state is saved for the next run.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::events::{EventSink, JsonLines};
use super::terminal::Terminal;
use super::{Exit, RunConfig, RunResult, run_plan};
use crate::graph::token_store::{self, MemoryStore, TokenStore};
use crate::plan::{self, Plan};
use crate::sim::{self, SimConfig, Speed};

/// `autopilot-wizard run --plan PLAN.toml [--plan MORE.toml …] [--json]`
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// A plan file (TOML; see packaging/example-plan.toml). Repeat for several tenants at once.
    #[arg(long = "plan", value_name = "PLAN.toml", required = true)]
    pub plans: Vec<PathBuf>,
    /// Print one JSON event per line on stdout instead of progress on the terminal.
    #[arg(long)]
    pub json: bool,
    /// Run against a built-in simulated tenant (nothing real is touched).
    #[arg(long)]
    pub demo: bool,
    /// Graph root URL for every plan (overrides the plan's and the cloud's).
    #[arg(long)]
    pub graph_url: Option<String>,
    /// Login root URL for every plan (overrides the plan's and the cloud's).
    #[arg(long)]
    pub login_url: Option<String>,
    /// Sign in with a device code even when a browser could open.
    #[arg(long)]
    pub device_code: bool,
    /// Folder of the per-plan state files (default: the app's data directory).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Multiply every poll interval and wait by this factor (tests against a fast simulated
    /// tenant started with `sim --speed test`).
    #[arg(long, value_name = "FACTOR", hide = true)]
    pub wait_scale: Option<f64>,
}

/// One line per plan: the table printed at the end.
pub fn summary_table(results: &[RunResult]) -> String {
    let w = results
        .iter()
        .map(|r| r.plan.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let t = results
        .iter()
        .map(|r| r.tenant.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut out = format!(
        "{:<w$}  {:<t$}  {:<30}  {:>4}  {}\n",
        "plan", "tenant", "result", "exit", "report / problem"
    );
    for r in results {
        let detail = match (&r.error, r.report_files.first()) {
            (Some(e), _) => e.lines().next().unwrap_or_default().to_string(),
            (None, Some(f)) => f.display().to_string(),
            (None, None) => r
                .report
                .as_ref()
                .and_then(|rep| rep.first_problem())
                .unwrap_or_default(),
        };
        out.push_str(&format!(
            "{:<w$}  {:<t$}  {:<30}  {:>4}  {}\n",
            r.plan,
            r.tenant,
            r.exit.verdict(),
            r.exit.code(),
            detail
        ));
    }
    out
}

/// Runs the subcommand on `runtime`; returns the process exit code.
pub fn main(args: RunArgs, runtime: &tokio::runtime::Runtime, speed: Speed) -> u8 {
    // Every plan is checked before anything is sent.
    let mut plans: Vec<Plan> = Vec::new();
    let mut bad = false;
    for p in &args.plans {
        match plan::load(p) {
            Ok(plan) => plans.push(plan),
            Err(e) => {
                eprintln!("{e}");
                bad = true;
            }
        }
    }
    if bad {
        return Exit::BadInput.code();
    }
    for (i, a) in plans.iter().enumerate() {
        for b in &plans[..i] {
            let url = |p: &Plan| {
                args.graph_url
                    .clone()
                    .or_else(|| p.tenant.graph_url.clone())
                    .unwrap_or_default()
            };
            if a.tenant.id.eq_ignore_ascii_case(&b.tenant.id) && url(a) == url(b) {
                eprintln!(
                    "{} and {} are both for tenant {}. Run one plan per tenant at a time: they would work on the same devices.",
                    b.path.display(),
                    a.path.display(),
                    a.tenant.id
                );
                return Exit::BadInput.code();
            }
        }
    }
    let Some(state_dir) = args.state_dir.clone().or_else(super::state::default_dir) else {
        eprintln!(
            "This system has no data directory for the plan state; give one with --state-dir."
        );
        return Exit::BadInput.code();
    };

    runtime.block_on(async move {
        let mut sims = Vec::new();
        // Simulated sign-ins never touch the system credential store.
        let store: Arc<dyn TokenStore> = if args.demo {
            Arc::new(MemoryStore::new())
        } else {
            let (store, note) = token_store::open_default_store();
            if let Some(n) = note {
                eprintln!("{}", n.message);
                tracing::info!(detail = %n.detail, "credential store unavailable");
            }
            store
        };
        let mut base = RunConfig::new(state_dir.clone(), store);
        if args.demo {
            // One simulated tenant per plan, like one real tenant per plan; the demo's state
            // lives apart from real tenants' and starts over each time (the tenant does too).
            base.state_dir = state_dir.join("demo");
            let _ = std::fs::remove_dir_all(&base.state_dir);
            base = base.scaled(speed.scale);
        } else if let Some(scale) = args.wait_scale {
            base = base.scaled(scale);
        }
        if !args.device_code && !args.demo && has_desktop() {
            base.browser = Some(crate::graph::auth::browser_opener());
        }
        base.graph_url = args.graph_url.clone();
        base.login_url = args.login_url.clone();
        let mut configs = Vec::new();
        for _ in &plans {
            let mut c = base.clone();
            if args.demo {
                match sim::spawn(SimConfig {
                    speed,
                    ..SimConfig::default()
                })
                .await
                {
                    Ok(s) => {
                        c.graph_url = Some(s.url());
                        c.login_url = Some(s.url());
                        sims.push(s);
                    }
                    Err(e) => {
                        eprintln!("The simulated tenant could not start: {e}");
                        return Exit::Service.code();
                    }
                }
            }
            configs.push(c);
        }

        let sink: Arc<dyn EventSink> = if args.json {
            Arc::new(JsonLines)
        } else {
            Arc::new(Terminal::new(plans.len() > 1))
        };
        let cancel = CancellationToken::new();
        {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!(
                        "Interrupted: stopping cleanly; run the same plan again to continue."
                    );
                    cancel.cancel();
                }
            });
        }
        let tasks: Vec<_> = plans
            .into_iter()
            .zip(configs)
            .map(|(plan, config)| {
                let sink = sink.clone();
                let cancel = cancel.clone();
                tokio::spawn(async move { run_plan(&plan, &config, sink.as_ref(), &cancel).await })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            match t.await {
                Ok(r) => results.push(r),
                Err(e) => {
                    // A panic in one plan's task must not hide the others' results.
                    eprintln!("A plan run stopped unexpectedly: {e}");
                    results.push(RunResult {
                        plan: "?".into(),
                        tenant: "?".into(),
                        exit: Exit::Service,
                        error: Some(e.to_string()),
                        report: None,
                        report_files: Vec::new(),
                        import_stats: None,
                        devices: 0,
                    });
                }
            }
        }
        drop(sims);
        let exit = Exit::combine(&results.iter().map(|r| r.exit).collect::<Vec<_>>());
        if !args.json {
            print!("{}", summary_table(&results));
        }
        exit.code()
    })
}

/// Whether a browser can open here (a desktop session), for the browser sign-in.
fn has_desktop() -> bool {
    if cfg!(any(windows, target_os = "macos")) {
        return true;
    }
    std::env::var_os("DISPLAY").is_some_and(|v| !v.is_empty())
        || std::env::var_os("WAYLAND_DISPLAY").is_some_and(|v| !v.is_empty())
}

/// Logging for `run`: the same redacting sink as the GUI into the daily log file, and to stderr
/// only when `RUST_LOG` asks (stderr carries the progress).
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _};

    use crate::logging::{LogBuffer, LogSink, log_dir};
    let buffer = LogBuffer::new(100);
    let stderr = std::env::var_os("RUST_LOG").is_some();
    let sink = match log_dir(crate::paths::APP_ID) {
        Some(dir) => LogSink::new(buffer.clone())
            .with_stderr(stderr)
            .with_daily_file(&dir)
            .unwrap_or_else(|_| LogSink::new(buffer.clone()).with_stderr(stderr)),
        None => LogSink::new(buffer).with_stderr(stderr),
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,autopilot_wizard=debug"));
    let _ = tracing_subscriber::registry()
        .with(sink.with_filter(filter))
        .try_init();
}
