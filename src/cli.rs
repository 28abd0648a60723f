//! The command line of both Windows binaries (and the one Linux binary): argument parsing, the
//! tokio runtime, the window. `src/main.rs` is the windowed exe, `src/bin/autopilot-wizard-cli.rs`
//! its console companion (shipped as `autopilot-wizard.com`); both call [`main`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::app::{self, AppConfig, Settings, WizardApp};
use crate::graph::cloud::Cloud;
use crate::graph::token_store;
use crate::hwid;
use crate::sim::{self, SimConfig, Speed};
use crate::ui::{FixedFilePicker, RfdFilePicker};

/// Windows Autopilot user-driven mode with Microsoft Entra join, step by step.
#[derive(Debug, Parser)]
#[command(name = "autopilot-wizard", version, about)]
struct Cli {
    /// Run against the built-in simulated tenant (nothing real is touched).
    #[arg(long)]
    demo: bool,
    /// Tenant id or primary domain, e.g. contoso.onmicrosoft.com.
    #[arg(long)]
    tenant: Option<String>,
    /// Application (client) id of your own app registration (public client).
    #[arg(long)]
    client_id: Option<String>,
    /// National cloud (default: global).
    #[arg(long, value_enum)]
    cloud: Option<CloudArg>,
    /// Graph root URL (overrides the cloud's).
    #[arg(long)]
    graph_url: Option<String>,
    /// Login root URL (overrides the cloud's).
    #[arg(long)]
    login_url: Option<String>,
    /// Also trust this CA certificate (PEM or DER), besides the system's store: a TLS-inspecting
    /// proxy, or `sim --tls`. The AUTOPILOT_WIZARD_CA_FILE environment variable does the same.
    #[arg(long, value_name = "FILE", global = true)]
    ca_file: Option<PathBuf>,
    /// How fast the simulated tenant's background work runs.
    #[arg(long, value_enum, default_value_t = SpeedArg::Demo)]
    sim_speed: SpeedArg,
    /// Scripted runs: "Choose CSV files…" in step 5 takes these files instead of opening a
    /// file dialog. Repeat for more files.
    // `--pick` is the old name, kept (hidden) for the scripts that use it.
    #[arg(long = "choose-csv", alias = "pick", value_name = "FILE")]
    choose_csv: Vec<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run only the simulated tenant, for scripts and other tools (Ctrl-C stops it).
    Sim(sim::standalone::SimArgs),
    /// Run the procedure from plan files, without a window (exit code 0: READY).
    Run(crate::run::cli::RunArgs),
    /// Take devices out of the tenant, re-deploy them here, or move them to another tenant
    /// (exit code 0: every device done; as `run` otherwise).
    Remove(crate::run::remove_cli::RemoveArgs),
    /// Check hardware-hash CSV files before importing them (exit code 0: all importable).
    CheckCsv {
        /// The CSV files, as Get-WindowsAutopilotInfo or the OEM wrote them.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the findings as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Read this PC's hardware hash (Windows 10/11, as administrator): print it, write it as
    /// Get-WindowsAutopilotInfo does (--out), or upload it from the first setup screen (--upload).
    Harvest(crate::harvest_cli::HarvestArgs),
    /// Remove the saved sign-in from this computer's credential store (all, or one tenant's).
    SignOut {
        /// Only this tenant: its id, or the domain of the account that signed in
        /// (e.g. contoso.onmicrosoft.com).
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CloudArg {
    /// Worldwide Microsoft 365, including GCC.
    Global,
    /// US Government GCC High.
    UsgovHigh,
    /// US Government DoD.
    UsgovDod,
    /// Microsoft 365 operated by 21Vianet.
    China,
}

impl From<CloudArg> for Cloud {
    fn from(c: CloudArg) -> Cloud {
        match c {
            CloudArg::Global => Cloud::Global,
            CloudArg::UsgovHigh => Cloud::UsGovHigh,
            CloudArg::UsgovDod => Cloud::UsGovDod,
            CloudArg::China => Cloud::China,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SpeedArg {
    /// Background work finishes within seconds.
    Demo,
    /// As slow as the real service (imports take minutes).
    Realistic,
    /// Milliseconds (for scripts).
    Test,
}

impl From<SpeedArg> for Speed {
    fn from(s: SpeedArg) -> Speed {
        match s {
            SpeedArg::Demo => Speed::DEMO,
            SpeedArg::Realistic => Speed::REALISTIC,
            SpeedArg::Test => Speed::TEST,
        }
    }
}

/// Which of the two Windows binaries is running: the windowed exe (no console of its own) or the
/// console companion `autopilot-wizard.com`. Elsewhere both behave the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// `autopilot-wizard.exe`: GUI subsystem, borrows the shell's console for command-line modes.
    Windowed,
    /// `autopilot-wizard.com`: console subsystem, so `cmd` waits for it and `%ERRORLEVEL%` is its
    /// exit code. Started without a subcommand it hands the window to the windowed exe.
    Console,
}

/// The command line as given, with the Windows help switch `/?` read as `--help`.
fn arguments() -> Vec<std::ffi::OsString> {
    std::env::args_os()
        .enumerate()
        .map(|(i, a)| {
            if i > 0 && a == "/?" {
                "--help".into()
            } else {
                a
            }
        })
        .collect()
}

/// Both binaries' `main`.
pub fn main(launcher: Launcher) -> ExitCode {
    // Anything that prints instead of opening the window (a subcommand, --help, --version, a
    // usage error) needs the shell's console on Windows; the window itself must not take it.
    let cli = match Cli::try_parse_from(arguments()) {
        Ok(cli) => cli,
        Err(e) => {
            crate::console::attach_parent();
            e.exit()
        }
    };
    if cli.command.is_some() {
        crate::console::attach_parent();
    }
    // Before any client is built: clients read the extra CAs when they are made.
    if let Err(e) = crate::graph::tls::trust_ca_from_env().and_then(|_| match &cli.ca_file {
        Some(f) => crate::graph::tls::trust_ca_file(f).map(Some),
        None => Ok(None),
    }) {
        crate::console::attach_parent();
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    if let Some(Command::CheckCsv { files, json }) = &cli.command {
        let code = hwid::run_check_csv(files, *json, &mut std::io::stdout().lock());
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    if let Some(Command::SignOut { tenant }) = &cli.command {
        let (store, _) = token_store::open_default_store();
        return ExitCode::from(sign_out(
            store.as_ref(),
            tenant.as_deref(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        ));
    }
    if let Some(Command::Harvest(args)) = cli.command {
        let code = crate::harvest_cli::run_command(args);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    if cli.command.is_none()
        && launcher == Launcher::Console
        && let Some(code) = hand_to_windowed_exe()
    {
        return code;
    }
    if matches!(cli.command, Some(Command::Run(_) | Command::Remove(_))) {
        crate::run::cli::init_logging();
    }
    let log = app::logging::init(app::APP_ID);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("wizard-worker")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Could not start the background workers: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Sim(args)) = cli.command {
        return match runtime.block_on(sim::standalone::run(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Remove(mut args)) = cli.command {
        args.demo |= cli.demo;
        args.graph_url = args.graph_url.or(cli.graph_url);
        args.login_url = args.login_url.or(cli.login_url);
        return ExitCode::from(crate::run::remove_cli::main(args, &runtime));
    }
    if let Some(Command::Run(mut args)) = cli.command {
        args.demo |= cli.demo;
        args.graph_url = args.graph_url.or(cli.graph_url);
        args.login_url = args.login_url.or(cli.login_url);
        let code = crate::run::cli::main(args, &runtime, cli.sim_speed.into());
        return ExitCode::from(code);
    }
    run_gui(cli, &runtime, log)
}

fn run_gui(cli: Cli, runtime: &tokio::runtime::Runtime, log: app::LogBuffer) -> ExitCode {
    let (token_store, token_store_note) = if cli.demo {
        // Simulated sign-ins never touch the system credential store.
        (None, None)
    } else {
        let (store, note) = token_store::open_default_store();
        (Some(store), note)
    };
    let defaults = AppConfig::default();
    let token_store = token_store.unwrap_or(defaults.token_store);
    let mut config = AppConfig {
        settings: Settings {
            tenant: cli.tenant,
            client_id: cli.client_id,
            cloud: cli.cloud.map(Cloud::from),
            graph_url: cli.graph_url,
            login_url: cli.login_url,
        },
        sim_speed: cli.sim_speed.into(),
        file_picker: if cli.choose_csv.is_empty() {
            Arc::new(RfdFilePicker)
        } else {
            Arc::new(FixedFilePicker {
                paths: cli.choose_csv,
            })
        },
        // Probed on its own thread: WMI initialises COM for the calling thread, and the window's
        // thread needs it as winit sets it up (drag and drop).
        harvester: match std::thread::spawn(hwid::harvest::system_source).join() {
            Ok(Ok(source)) => {
                tracing::info!("harvesting this PC: available (\"Add this PC\" is offered)");
                Some(Arc::from(source))
            }
            Ok(Err(e)) => {
                tracing::info!(reason = %e, "harvesting this PC: not available here");
                None
            }
            Err(_) => None,
        },
        token_store,
        token_store_note,
        log,
        ..AppConfig::default()
    };
    if cli.demo {
        let sim_config = SimConfig {
            speed: cli.sim_speed.into(),
            ..SimConfig::default()
        };
        match runtime.block_on(sim::spawn(sim_config)) {
            Ok(sim) => {
                tracing::info!(url = %sim.url(), "demo: simulated tenant running");
                config = config.with_sim(sim);
            }
            Err(e) => {
                eprintln!("The simulated tenant could not start: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

    let mut viewport = egui::ViewportBuilder::default()
        .with_title(if cli.demo {
            "Autopilot Wizard (simulated tenant)"
        } else {
            "Autopilot Wizard"
        })
        .with_app_id(app::APP_ID)
        .with_inner_size(app::PREFERRED_WINDOW)
        // Small enough for 1024×600 at 150 % (683×400 points less the taskbar): the first frame
        // shrinks a window that does not fit (WizardApp::fit_window_once).
        .with_min_inner_size([480.0, 320.0]);
    match eframe::icon_data::from_png_bytes(include_bytes!("../assets/icon.png")) {
        Ok(icon) => viewport = viewport.with_icon(Arc::new(icon)),
        Err(e) => tracing::warn!(error = %e, "app icon not loaded"),
    }
    let options = eframe::NativeOptions {
        viewport,
        renderer: eframe::Renderer::Glow,
        // A portable copy keeps its settings beside the exe too; installed, eframe's folder.
        persistence_path: crate::paths::Environment::current().settings_file(),
        ..Default::default()
    };
    let handle = runtime.handle().clone();
    let result = eframe::run_native(
        app::APP_ID,
        options,
        Box::new(move |cc| {
            Ok(Box::new(WizardApp::with_storage(
                config, handle, cc.storage,
            )))
        }),
    );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "The window could not open: {e}\n\
                 On Linux, install the graphics libraries listed at the top of the README \
                 (libgl1-mesa-dri libegl1 libxkbcommon-x11-0 …) and check that DISPLAY or \
                 WAYLAND_DISPLAY is set."
            );
            ExitCode::FAILURE
        }
    }
}

/// Where the credential store keeps the entries, in the words of this platform.
const STORE_PLACE: &str = if cfg!(windows) {
    "Windows Credential Manager (Windows Credentials, generic credentials ending in .autopilot-wizard)"
} else if cfg!(target_os = "macos") {
    "the login keychain (service autopilot-wizard)"
} else {
    "the Secret Service keyring (service autopilot-wizard)"
};

/// `sign-out [--tenant T]`: removes the saved sign-ins from `store`. Exit code 0 also when there
/// was nothing to remove (the goal, no saved sign-in, holds); 1 when the store failed.
pub fn sign_out(
    store: &dyn token_store::TokenStore,
    tenant: Option<&str>,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> u8 {
    match token_store::sign_out(store, tenant) {
        Ok(removed) if removed.is_empty() => {
            let which = tenant.map(|t| format!(" for {t}")).unwrap_or_default();
            let _ = writeln!(out, "No saved sign-in{which} in {STORE_PLACE}.");
            0
        }
        Ok(removed) => {
            for k in &removed {
                let _ = writeln!(
                    out,
                    "Signed out {} (tenant {}): the saved sign-in was removed from {STORE_PLACE}.",
                    k.account, k.tenant
                );
            }
            0
        }
        Err(e) => {
            let _ = writeln!(err, "{e}");
            if let Some(d) = e.detail() {
                let _ = writeln!(err, "  ({d})");
            }
            1
        }
    }
}

/// The console companion started without a subcommand: the window belongs to the windowed exe
/// beside it (no console window behind the wizard, and the prompt comes back at once). `None`
/// where there is no such exe (a cargo build on Linux): the window then opens from here.
fn hand_to_windowed_exe() -> Option<ExitCode> {
    if !cfg!(windows) {
        return None;
    }
    let exe = std::env::current_exe()
        .ok()?
        .with_file_name("autopilot-wizard.exe");
    if !exe.is_file() {
        return None;
    }
    match std::process::Command::new(&exe)
        .args(arguments().into_iter().skip(1))
        .spawn()
    {
        Ok(_) => Some(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("Could not start {}: {e}", exe.display());
            Some(ExitCode::FAILURE)
        }
    }
}
