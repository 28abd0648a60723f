//! `autopilot-wizard harvest`, the command line around the harvest: print or write the row,
//! or `--upload`, which asks its questions on the terminal and then goes through the same
//! [`crate::steps::this_pc`] functions as "Add this PC".

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::graph::auth::SignInFlows;
use crate::hwid::harvest::{self, HarvestError, HarvestOptions, WmiSource};
use crate::steps::this_pc::{UploadOptions, device_code_sign_in, register, tenant_group_tags};

/// `harvest --upload`: harvest, sign in, confirm the group tag, upload, wait. Returns the exit
/// code (0 registered with a profile, 1 refused or failed, 2 harvesting is impossible here).
pub async fn run_upload(
    options: HarvestOptions,
    source: Result<Box<dyn WmiSource>, HarvestError>,
    flows: &SignInFlows,
    opts: &UploadOptions,
    out: Arc<Mutex<dyn Write + Send>>,
    input: &mut (dyn BufRead + Send),
    ask_tag: bool,
) -> i32 {
    let say_out = out.clone();
    let say = move |line: String| {
        let mut o = say_out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(o, "{line}");
        let _ = o.flush();
    };
    let harvested = match source.and_then(|s| harvest::harvest(s.as_ref(), &options)) {
        Ok(h) => h,
        Err(e) => {
            say(e.to_string());
            return if matches!(e, HarvestError::Rejected { .. }) {
                1
            } else {
                2
            };
        }
    };
    say(format!(
        "This PC: {} (serial number {}), hardware hash read and checked ({}).",
        harvested.device_name(),
        harvested.row.serial,
        harvested.row.status.as_str()
    ));
    for f in &harvested.row.findings {
        say(format!("  {}: {}", f.severity.as_str(), f.message));
    }
    let cancel = CancellationToken::new();
    let graph = match device_code_sign_in(flows, &cancel, &say).await {
        Ok(g) => g,
        Err(e) => {
            say(e.to_string());
            return 1;
        }
    };
    let mut harvested = harvested;
    if ask_tag {
        let tags = tenant_group_tags(&graph).await;
        let current = harvested.csv_row.group_tag.clone();
        if !tags.is_empty() {
            say(format!(
                "Your tenant's dynamic groups collect the group tags: {}.",
                tags.join(", ")
            ));
        }
        say(if current.is_empty() {
            "Group tag for this PC (Enter for none):".into()
        } else {
            format!("Group tag for this PC (Enter keeps \"{current}\"):")
        });
        let mut line = String::new();
        if input.read_line(&mut line).is_ok() && !line.trim().is_empty() {
            let options = HarvestOptions {
                group_tag: line.trim().to_owned(),
                ..options.clone()
            };
            // The new tag goes through the same checks as the rest of the row.
            match harvest::harvest_again(&harvested, &options) {
                Ok(h) => harvested = h,
                Err(e) => {
                    say(e.to_string());
                    return 1;
                }
            }
        }
    }
    match register(&graph, &harvested, opts, &cancel, &say).await {
        Ok(r) => {
            say(format!(
                "Done: this PC (serial number {}) is registered and has the deployment profile \
                 \"{}\" ({}). You can restart it into setup now: close this window and restart \
                 (or run `shutdown /r /t 0`); setup then shows your organisation's sign-in.",
                r.serial, r.profile_name, r.status_raw
            ));
            0
        }
        Err(e) => {
            say(e.to_string());
            1
        }
    }
}

/// `autopilot-wizard harvest`: read this PC's hardware hash (Windows, as administrator), check
/// it, then print it, write it as Get-WindowsAutopilotInfo does, or upload it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HarvestArgs {
    /// Write the row to this CSV (UTF-16 with BOM, as Get-WindowsAutopilotInfo writes it).
    #[arg(long, value_name = "FILE.csv")]
    pub out: Option<std::path::PathBuf>,
    /// Add the row to the --out file instead of replacing it (refuses a serial already there).
    #[arg(long, requires = "out")]
    pub append: bool,
    /// Group tag (the [OrderID] a dynamic device group selects on).
    #[arg(long, value_name = "TAG")]
    pub group_tag: Option<String>,
    /// User principal name to pre-fill at the sign-in screen of setup.
    #[arg(long, value_name = "UPN")]
    pub assigned_user: Option<String>,
    /// Print the checked row as JSON (never the hash itself).
    #[arg(long)]
    pub json: bool,
    /// Sign in with a device code, upload this PC and wait until it has its deployment profile
    /// (the path for a PC at its first setup screen: Shift+F10).
    #[arg(long, conflicts_with_all = ["out", "json"])]
    pub upload: bool,
    /// Tenant for --upload: a domain such as contoso.onmicrosoft.com, or its id.
    #[arg(long, requires = "upload")]
    pub tenant: Option<String>,
    /// Application (client) id of your own app registration, for --upload.
    #[arg(long, requires = "upload")]
    pub client_id: Option<String>,
    /// Graph root URL (overrides the global cloud's), for --upload.
    #[arg(long, hide = true)]
    pub graph_url: Option<String>,
    /// Login root URL (overrides the global cloud's), for --upload.
    #[arg(long, hide = true)]
    pub login_url: Option<String>,
    /// Without administrator rights, restart as administrator first (the UAC prompt).
    #[arg(long)]
    pub elevate: bool,
    /// Answer the WMI reads from a JSON recording instead of this PC (tests, demonstrations).
    #[arg(long, value_name = "FILE.json", hide = true)]
    pub wmi_recording: Option<std::path::PathBuf>,
}

impl HarvestArgs {
    fn options(&self) -> HarvestOptions {
        HarvestOptions {
            group_tag: self.group_tag.clone().unwrap_or_default(),
            assigned_user: self.assigned_user.clone().unwrap_or_default(),
            check: crate::hwid::CheckOptions::default(),
        }
    }

    fn source(&self) -> Result<Box<dyn WmiSource>, HarvestError> {
        match &self.wmi_recording {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| HarvestError::Wmi {
                    what: "the WMI recording",
                    detail: format!("{}: {e}", path.display()),
                })?;
                let rec: harvest::RecordedWmi =
                    serde_json::from_str(&text).map_err(|e| HarvestError::Wmi {
                        what: "the WMI recording",
                        detail: format!("{}: {e}", path.display()),
                    })?;
                Ok(Box::new(rec))
            }
            None => harvest::system_source(),
        }
    }
}

/// Runs `harvest`; returns the exit code (see [`harvest::run_harvest`] and [`run_upload`]).
pub fn run_command(args: HarvestArgs) -> i32 {
    let source = args.source();
    if args.elevate
        && let Ok(s) = &source
        && s.elevated() == Some(false)
    {
        return match harvest::restart_elevated() {
            Ok(()) => {
                println!("Continuing in the administrator window that just opened.");
                0
            }
            Err(e) => {
                eprintln!("{e}");
                2
            }
        };
    }
    if !args.upload {
        let cmd = harvest::HarvestCommand {
            out: args.out.clone(),
            append: args.append,
            json: args.json,
            options: args.options(),
        };
        return harvest::run_harvest(
            &cmd,
            source,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Could not start the background workers: {e}");
            return 2;
        }
    };
    let config = crate::graph::auth::AuthConfig {
        endpoints: crate::graph::cloud::Endpoints::with_overrides(
            crate::graph::cloud::Cloud::Global,
            args.graph_url.clone(),
            args.login_url.clone(),
        ),
        tenant: args.tenant.clone().unwrap_or_default(),
        client: crate::graph::cloud::ClientApp::from_client_id(
            args.client_id.as_deref().unwrap_or_default(),
        ),
    };
    // A PC at its first setup screen is about to be reset by setup: nothing is remembered.
    let store = Arc::new(crate::graph::token_store::MemoryStore::new());
    let flows = SignInFlows::new(config, store, &crate::steps::required_scopes());
    let out: Arc<Mutex<dyn Write + Send>> = Arc::new(Mutex::new(std::io::stdout()));
    let mut input = std::io::BufReader::new(std::io::stdin());
    let ask_tag = args.group_tag.is_none();
    runtime.block_on(run_upload(
        args.options(),
        source,
        &flows,
        &UploadOptions::default(),
        out,
        &mut input,
        ask_tag,
    ))
}
