//! Registering the PC the wizard runs on: the path for a new PC at its first setup screen
//! (Shift+F10, the exe from a USB stick). Sign in with a device code (there is no browser at
//! OOBE), confirm the group tag, upload the harvested row with the import step, follow it to
//! "registered", then wait until the Autopilot service assigned a deployment profile, read the
//! way the assignment board reads it. Then the PC can restart into setup.
//!
//! The harvest itself is [`crate::hwid::harvest`]; this module only adds the network part, and
//! `harvest --upload` (its terminal prompts) is [`crate::harvest_cli`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::assignment::{self, AssignmentError};
use super::import::{
    self, FnObserver, ImportError, ImportEvent, ImportJob, ImportOptions, ImportPhase, ImportRow,
    RowOutcome,
};
use super::sign_in::{self, SignInError};
use crate::board::Chip;
use crate::graph::GraphClient;
use crate::graph::auth::{AuthError, SignInFlows};
use crate::hwid::harvest::{HarvestError, Harvested, THIS_PC};

/// Polling of the profile assignment after the device is registered. No SLA exists; the
/// default waits an hour and then says how to continue.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    pub import: ImportOptions,
    pub first_poll: Duration,
    pub max_poll: Duration,
    pub profile_timeout: Duration,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            import: ImportOptions::default(),
            first_poll: Duration::from_secs(15),
            max_poll: Duration::from_secs(60),
            profile_timeout: Duration::from_secs(60 * 60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ThisPcError {
    #[error(transparent)]
    Harvest(#[from] HarvestError),
    #[error("Sign-in failed: {0}")]
    Auth(#[from] AuthError),
    #[error("Sign-in failed: {0}")]
    SignIn(#[from] SignInError),
    #[error(
        "The signed-in account lacks permissions the upload needs ({missing}). {fix} Then run \
         the command again."
    )]
    Permissions { missing: String, fix: String },
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error("The Autopilot service refused this PC: {0}")]
    Refused(String),
    #[error("The upload stopped before the PC was registered: {0}")]
    NotRegistered(String),
    #[error(transparent)]
    Assignment(#[from] AssignmentError),
    #[error(
        "The Autopilot service reports the profile assignment as failed ({status}). Open the \
         device in Intune (Devices > Enrollment > Devices) or run the wizard's Profile \
         assignment step on another PC to see why."
    )]
    AssignmentFailed { status: String },
    #[error(
        "This PC is registered, but no deployment profile was assigned within {waited_min} min \
         (status: {status}). The service gives no time limit. Check that a profile is assigned \
         to a group this PC joins (group tag \"{group_tag}\"), then run the command again: it \
         picks up where it stopped."
    )]
    ProfileTimeout {
        waited_min: u64,
        status: String,
        group_tag: String,
    },
    #[error("Cancelled.")]
    Cancelled,
}

/// The end state: registered, with the profile the service assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub device_id: String,
    pub serial: String,
    pub group_tag: String,
    pub profile_name: String,
    /// `deploymentProfileAssignmentStatus` as Graph sent it.
    pub status_raw: String,
}

/// Progress lines, in words.
pub type Say<'a> = &'a (dyn Fn(String) + Send + Sync);

/// The harvested row as the import step takes it.
pub fn import_row(h: &Harvested) -> ImportRow {
    ImportRow {
        serial: h.csv_row.serial.clone(),
        product_key: h.csv_row.product_key.clone(),
        hash: h.csv_row.hash.clone(),
        group_tag: h.csv_row.group_tag.clone(),
        assigned_user: h.csv_row.assigned_user.clone(),
        file: THIS_PC.to_owned(),
        line: 2,
    }
}

/// The group tags the tenant's dynamic groups collect (`[OrderID]:<tag>` rules), for the
/// "pick or confirm" question. Reads the first page of groups only: enough for a small office.
pub async fn tenant_group_tags(graph: &GraphClient) -> Vec<String> {
    let groups = match super::group::search_groups(graph, "").await {
        Ok(g) => g,
        Err(e) => {
            tracing::info!(error = %e, "group tags not read");
            return Vec::new();
        }
    };
    let mut tags: Vec<String> = groups
        .iter()
        .filter(|g| g.is_dynamic())
        .filter_map(|g| g.membership_rule.as_deref())
        .flat_map(crate::board::group_tags_in_rule)
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

/// Uploads this PC and waits for "registered" and "profile assigned".
pub async fn register(
    graph: &GraphClient,
    harvested: &Harvested,
    opts: &UploadOptions,
    cancel: &CancellationToken,
    say: Say<'_>,
) -> Result<Registered, ThisPcError> {
    let wanted_tag = harvested.csv_row.group_tag.clone();
    say("Checking whether your tenant already has this PC…".into());
    let mut job: ImportJob =
        import::precheck(graph, vec![import_row(harvested)], &opts.import).await?;
    let device_id = match job.rows[0].outcome.clone() {
        RowOutcome::AlreadyRegistered {
            device_id,
            group_tag,
            ..
        } => {
            say(format!(
                "This PC is already registered in your tenant (group tag \"{group_tag}\"); \
                 nothing to upload."
            ));
            if !wanted_tag.is_empty() && wanted_tag != group_tag {
                import::update_group_tag(graph, &device_id, &wanted_tag).await?;
                say(format!("Group tag changed to \"{wanted_tag}\"."));
            }
            device_id
        }
        RowOutcome::Failed {
            summary, action, ..
        } => return Err(ThisPcError::Refused(format!("{summary} {action}"))),
        _ => {
            let last_phase = Mutex::new(String::new());
            let obs = FnObserver(
                |e: ImportEvent| match e {
                    // "Done" is said below, with what it means for this PC.
                    ImportEvent::Phase(p) if p != ImportPhase::Done => {
                        let label = p.label().to_string();
                        let mut last = last_phase.lock().unwrap_or_else(|p| p.into_inner());
                        if *last != label {
                            say(format!("{label}…"));
                            *last = label;
                        }
                    }
                    ImportEvent::Note(n) => say(n),
                    _ => {}
                },
                |_: &ImportJob| {},
            );
            import::run(graph, &mut job, &opts.import, &obs, cancel).await?;
            match job.rows[0].outcome.clone() {
                RowOutcome::Registered { device_id } => {
                    say("Registered: this PC is now a Windows Autopilot device.".into());
                    device_id
                }
                RowOutcome::Failed {
                    summary, action, ..
                } => return Err(ThisPcError::Refused(format!("{summary} {action}"))),
                other => return Err(ThisPcError::NotRegistered(other.label())),
            }
        }
    };
    wait_for_profile(graph, &device_id, &wanted_tag, opts, cancel, say).await
}

/// Polls the device until `deploymentProfileAssignmentStatus` is one the board calls Assigned.
async fn wait_for_profile(
    graph: &GraphClient,
    device_id: &str,
    wanted_tag: &str,
    opts: &UploadOptions,
    cancel: &CancellationToken,
    say: Say<'_>,
) -> Result<Registered, ThisPcError> {
    let started = Instant::now();
    let mut interval = opts.first_poll;
    let mut last = String::new();
    say(
        "Waiting for the Autopilot service to assign a deployment profile (usually minutes, \
         sometimes longer)…"
            .into(),
    );
    loop {
        let d = assignment::get_device_expanded(graph, device_id).await?;
        let raw = d
            .deployment_profile_assignment_status
            .clone()
            .unwrap_or_else(|| "unknown".into());
        let chip = Chip::from_raw(&raw);
        let profile = d
            .deployment_profile
            .as_ref()
            .or(d.intended_deployment_profile.as_ref())
            .map(|p| p.display_name.clone())
            .unwrap_or_default();
        if raw != last {
            let waited = started.elapsed().as_secs();
            say(format!(
                "Profile assignment: {} ({raw}) after {}:{:02}",
                chip.label(),
                waited / 60,
                waited % 60
            ));
            last = raw.clone();
        }
        match chip {
            Chip::Assigned => {
                return Ok(Registered {
                    device_id: device_id.to_owned(),
                    serial: d.serial_number.clone(),
                    group_tag: d.group_tag.clone().unwrap_or_default(),
                    profile_name: profile,
                    status_raw: raw,
                });
            }
            Chip::Failed => return Err(ThisPcError::AssignmentFailed { status: raw }),
            _ => {}
        }
        if started.elapsed() >= opts.profile_timeout {
            return Err(ThisPcError::ProfileTimeout {
                waited_min: started.elapsed().as_secs() / 60,
                status: raw,
                group_tag: wanted_tag.to_owned(),
            });
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(ThisPcError::Cancelled),
            _ = tokio::time::sleep(interval) => {}
        }
        interval = (interval * 3 / 2).min(opts.max_poll);
    }
}

/// Device-code sign-in for a console: prints where to go and the code, waits, checks the
/// granted permissions.
pub async fn device_code_sign_in(
    flows: &SignInFlows,
    cancel: &CancellationToken,
    say: Say<'_>,
) -> Result<GraphClient, ThisPcError> {
    let code = flows.start_device_code().await?;
    let p = &code.prompt;
    say(p.message.clone().unwrap_or_else(|| {
        format!(
            "To sign in, open {} on your phone or another computer and enter the code {}.",
            p.verification_uri, p.user_code
        )
    }));
    say(format!(
        "Waiting for the sign-in (the code is valid for {} min)…",
        p.expires_in_secs / 60
    ));
    let auth = flows.finish_device_code(&code, cancel).await?;
    let (graph, signed) = sign_in::complete(auth).await?;
    if !signed.missing_scopes.is_empty() {
        return Err(ThisPcError::Permissions {
            missing: signed.missing_scopes.join(", "),
            fix: signed.fix,
        });
    }
    say(format!(
        "Signed in as {} to {}.",
        signed.user_upn, signed.tenant_name
    ));
    Ok(graph)
}
