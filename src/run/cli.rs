//! The `run` subcommand: reads the plans, signs in and runs them concurrently (one task per
//! plan), prints progress or JSON events, a summary table, and turns the results into the exit
//! code. Ctrl-C cancels every run cleanly; their state is saved for the next run.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::events::{EventSink, JsonLines, OnChange};
use super::terminal::Terminal;
use super::{Exit, RunConfig, RunResult, refused, run_plan};
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
            // Every line of the problem, indented under the row (a multi-line problem lists
            // the rows or files to correct).
            (Some(e), _) => e.lines().collect::<Vec<_>>().join(&format!(
                "\n{:indent$}",
                "",
                indent = w + t + 30 + 4 + 8
            )),
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
///
/// Every plan ends with a `finished` event and a summary line, whatever stops it: a plan that
/// cannot be read or is refused stops only itself, the others of the call run.
pub fn main(args: RunArgs, runtime: &tokio::runtime::Runtime, speed: Speed) -> u8 {
    let sink: Arc<dyn EventSink> = if args.json {
        Arc::new(OnChange::new(JsonLines))
    } else {
        Arc::new(Terminal::new(args.plans.len() > 1))
    };
    let mut results: Vec<(usize, RunResult)> = Vec::new();
    let mut plans: Vec<(usize, Plan)> = Vec::new();
    // Every plan is checked before anything is sent.
    for (i, p) in args.plans.iter().enumerate() {
        match plan::load(p) {
            Ok(plan) => plans.push((i, plan)),
            Err(e) => {
                let name = p
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| p.display().to_string());
                results.push((
                    i,
                    refused(
                        name,
                        "?".into(),
                        Exit::BadInput,
                        e.to_string(),
                        sink.as_ref(),
                    ),
                ));
            }
        }
    }
    // A problem of the whole call refuses every plan, each with its own `finished` event.
    let mut global = None;
    for (key, value) in [
        ("--graph-url", &args.graph_url),
        ("--login-url", &args.login_url),
    ] {
        if let Some(v) = value
            && let Err((message, _)) = plan::check_root_url(v, key)
        {
            global = Some(format!(
                "{message}. Give {key} only the scheme and the host, e.g. {key} https://graph.microsoft.com."
            ));
        }
    }
    let state_dir = args.state_dir.clone().or_else(|| {
        let dir = super::state::default_dir()?;
        if let Some(legacy) = super::state::legacy_dir() {
            super::state::adopt_legacy(&legacy, &dir);
        }
        Some(dir)
    });
    if state_dir.is_none() {
        global = Some(
            "This system has no data directory for the plan state; give one with --state-dir."
                .into(),
        );
    }
    let url = |p: &Plan| {
        args.graph_url
            .clone()
            .or_else(|| p.tenant.graph_url.clone())
            .unwrap_or_default()
    };
    let mut runnable = Vec::new();
    for (i, a) in std::mem::take(&mut plans) {
        if let Some(g) = &global {
            results.push((i, refuse_plan(&a, g.clone(), sink.as_ref())));
            continue;
        }
        // The same tenant named the same way: the later plan stops before it signs in (the
        // sign-in compares the tenant ids it returns, for tenants named two ways).
        let twin = runnable
            .iter()
            .find(|(_, b): &&(usize, Plan)| {
                a.tenant.id.eq_ignore_ascii_case(&b.tenant.id) && url(&a) == url(b)
            })
            .map(|(_, b)| b.path.display().to_string());
        match twin {
            Some(b) => {
                let message = format!(
                    "{b} is for the same tenant ({}) and runs in this call. Run one plan per tenant at a time: they would work on the same devices.",
                    a.tenant.id
                );
                results.push((i, refuse_plan(&a, message, sink.as_ref())));
            }
            None => runnable.push((i, a)),
        }
    }
    let plans = runnable;
    let Some(state_dir) = state_dir else {
        return finish(results, args.json);
    };
    if plans.is_empty() {
        return finish(results, args.json);
    }

    let ran = runtime.block_on(async move {
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
        for (i, plan) in &plans {
            let mut c = base.clone();
            c.other_plans_files = plans
                .iter()
                .filter(|(j, _)| j != i)
                .flat_map(|(_, p)| super::preflight::files_of(p))
                .collect();
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
                        let message = format!("The simulated tenant could not start: {e}");
                        return plans
                            .iter()
                            .map(|(i, p)| {
                                let mut r = refuse_plan(p, message.clone(), sink.as_ref());
                                r.exit = Exit::Service;
                                (*i, r)
                            })
                            .collect();
                    }
                }
            }
            let _ = plan;
            configs.push(c);
        }

        let cancel = CancellationToken::new();
        {
            let cancel = cancel.clone();
            let terminated = base.terminated.clone();
            tokio::spawn(async move {
                let why = stop_signal().await;
                if why == Exit::Terminated {
                    terminated.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                eprintln!(
                    "{}: stopping cleanly; run the same plan again to continue.",
                    if why == Exit::Terminated {
                        "Terminated"
                    } else {
                        "Interrupted"
                    }
                );
                cancel.cancel();
            });
        }
        let tasks: Vec<_> = plans
            .into_iter()
            .zip(configs)
            .map(|((i, plan), config)| {
                let sink = sink.clone();
                let cancel = cancel.clone();
                let task =
                    tokio::spawn(
                        async move { run_plan(&plan, &config, sink.as_ref(), &cancel).await },
                    );
                (i, task)
            })
            .collect();
        let mut results = Vec::new();
        for (i, t) in tasks {
            match t.await {
                Ok(r) => results.push((i, r)),
                Err(e) => {
                    // A panic in one plan's task must not hide the others' results.
                    eprintln!("A plan run stopped unexpectedly: {e}");
                    results.push((
                        i,
                        refused(
                            args.plans[i]
                                .file_stem()
                                .map(|s| s.to_string_lossy().into_owned())
                                .unwrap_or_default(),
                            "?".into(),
                            Exit::Service,
                            e.to_string(),
                            sink.as_ref(),
                        ),
                    ));
                }
            }
        }
        drop(sims);
        results
    });
    results.extend(ran);
    finish(results, args.json)
}

/// A readable plan refused before it runs (exit 2 unless the caller changes it).
fn refuse_plan(plan: &Plan, message: String, sink: &dyn EventSink) -> RunResult {
    refused(
        plan.name(),
        plan.tenant.id.clone(),
        Exit::BadInput,
        message,
        sink,
    )
}

/// The summary table (in the order the plans were given) and the exit code of the call.
fn finish(mut results: Vec<(usize, RunResult)>, json: bool) -> u8 {
    results.sort_by_key(|(i, _)| *i);
    let results: Vec<RunResult> = results.into_iter().map(|(_, r)| r).collect();
    if !json {
        print!("{}", summary_table(&results));
    }
    Exit::combine(&results.iter().map(|r| r.exit).collect::<Vec<_>>()).code()
}

/// Waits for Ctrl-C (`Interrupted`) or a request to end the process (`Terminated`: SIGTERM
/// on Unix; on Windows the console closing, or the system logging off or shutting down).
async fn stop_signal() -> Exit {
    // A signal that cannot be listened to never fires (instead of firing at once).
    async fn ctrl_c() {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = ctrl_c() => Exit::Interrupted,
                _ = term.recv() => Exit::Terminated,
            },
            Err(_) => {
                ctrl_c().await;
                Exit::Interrupted
            }
        }
    }
    #[cfg(windows)]
    {
        use tokio::signal::windows::{ctrl_close, ctrl_logoff, ctrl_shutdown};
        async fn recv(s: std::io::Result<tokio::signal::windows::CtrlClose>) {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        }
        async fn recv_shutdown(s: std::io::Result<tokio::signal::windows::CtrlShutdown>) {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        }
        async fn recv_logoff(s: std::io::Result<tokio::signal::windows::CtrlLogoff>) {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = ctrl_c() => Exit::Interrupted,
            _ = recv(ctrl_close()) => Exit::Terminated,
            _ = recv_shutdown(ctrl_shutdown()) => Exit::Terminated,
            _ = recv_logoff(ctrl_logoff()) => Exit::Terminated,
        }
    }
    #[cfg(not(any(unix, windows)))]
    {
        ctrl_c().await;
        Exit::Interrupted
    }
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
