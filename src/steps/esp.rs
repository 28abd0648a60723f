//! The Enrollment Status Page (reference §9): which ESP the Autopilot devices of the step-4
//! group will get, what it will do at OOBE in words, the documented problems it can predict, and
//! the recommended ESP for the group (created, assigned, given priority 1 and read back).
//!
//! Every field that matters is beta-only, so every ESP call uses beta. The list is read without a
//! `$filter` (the default ESP carries its own type name and enrollment restrictions share the
//! collection); ESPs are picked out by type here.
//!
//! Which ESP applies (reference §9): the highest-priority ESP targeted at the device (its
//! groups, or All devices); else the highest-priority one targeted at the user; else the default.
//! Priority 1 is the highest; the default has priority 0 and always comes last.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::graph::{ApiVersion, GraphClient, GraphError, client::encode};
use crate::steps::Outcome;
use crate::steps::registry::{BoxFuture, FailureKind, PlanCx, StepFailure};
use crate::steps::validate::{CheckId, CheckItem, ValidateInputs, Verdict};

use crate::steps::registry::Permission;

/// Names the apps an Enrollment Status Page waits for (reference §9).
pub const APPS_READ: Permission = Permission::new(
    "DeviceManagementApps.Read.All",
    &["DeviceManagementApps.ReadWrite.All"],
);

pub const CONFIGS_PATH: &str = "/deviceManagement/deviceEnrollmentConfigurations";
pub const APPS_PATH: &str = "/deviceAppManagement/mobileApps";
const ESP_TYPE: &str = "#microsoft.graph.windows10EnrollmentCompletionPageConfiguration";

/// The recommended settings (reference §9, "settings that matter for user-driven Entra join").
pub const RECOMMENDED_TIMEOUT_MINUTES: u32 = 60;
/// The service's documented limit of blocking apps per ESP.
pub const MAX_BLOCKING_APPS: usize = 100;
/// What quality updates add at OOBE, at most (reference §9: 20–40 minutes).
pub const QUALITY_UPDATE_MINUTES: u32 = 40;
/// Policies, certificates and the first sync before any app starts.
pub const BASE_SETUP_MINUTES: u32 = 10;

/// What the name of the recommended ESP for `group_name` is; re-running finds it by this name.
pub fn recommended_name(group_name: &str) -> String {
    format!("Autopilot ESP – {group_name}")
}

// ---------------------------------------------------------------------------------------------
// Errors

#[derive(Debug, Clone, thiserror::Error)]
pub enum EspError {
    #[error(
        "Your account may not {action}. The app needs DeviceManagementServiceConfig.ReadWrite.All (Enrollment Status Pages) and DeviceManagementApps.Read.All (apps) consented, and your account a role such as Intune Administrator. ({source})"
    )]
    Forbidden {
        action: &'static str,
        source: Box<GraphError>,
    },
    #[error(
        "The device group {group_id} was not found in Microsoft Entra. Go back to the device group step and pick or create it again."
    )]
    GroupNotFound { group_id: String },
    #[error("Intune refused the Enrollment Status Page: {message} ({source})")]
    Rejected {
        message: String,
        source: Box<GraphError>,
    },
    #[error(
        "The Enrollment Status Page \"{name}\" was saved but reads back differently: {}. Open it in Intune (Devices > Enrollment > Enrollment Status Page) and correct these settings, or press the button again.",
        .fields.join("; ")
    )]
    ReadBackMismatch { name: String, fields: Vec<String> },
    #[error("Could not {action}: {source}")]
    Graph {
        action: &'static str,
        source: Box<GraphError>,
    },
}

fn graph_err(action: &'static str) -> impl Fn(GraphError) -> EspError {
    move |source| {
        if source.is_forbidden() {
            EspError::Forbidden {
                action,
                source: Box::new(source),
            }
        } else if source.status() == Some(400) {
            EspError::Rejected {
                message: source.to_string(),
                source: Box::new(source),
            }
        } else {
            EspError::Graph {
                action,
                source: Box::new(source),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Wire shapes (read leniently: unknown properties are ignored, missing ones take the service's
// documented defaults)

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    id: String,
    #[serde(rename = "@odata.type", default)]
    odata_type: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    priority: Option<i64>,
    #[serde(default)]
    device_enrollment_configuration_type: Option<String>,
    #[serde(default)]
    show_installation_progress: Option<bool>,
    #[serde(default)]
    block_device_setup_retry_by_user: Option<bool>,
    #[serde(default)]
    allow_device_reset_on_install_failure: Option<bool>,
    #[serde(default)]
    allow_log_collection_on_install_failure: Option<bool>,
    #[serde(default)]
    allow_device_use_on_install_failure: Option<bool>,
    #[serde(default)]
    install_progress_timeout_in_minutes: Option<i64>,
    #[serde(default)]
    selected_mobile_app_ids: Option<Vec<String>>,
    #[serde(default)]
    allow_non_blocking_app_installation: Option<bool>,
    #[serde(default)]
    install_quality_updates: Option<bool>,
    #[serde(default)]
    track_install_progress_for_autopilot_only: Option<bool>,
    #[serde(default)]
    disable_user_status_tracking_after_first_user: Option<bool>,
    #[serde(default)]
    custom_error_message: Option<String>,
    #[serde(default)]
    assignments: Option<Vec<RawAssignment>>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawAssignment {
    #[serde(default)]
    target: Option<RawTarget>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTarget {
    #[serde(rename = "@odata.type", default)]
    odata_type: Option<String>,
    #[serde(default)]
    group_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawApp {
    id: String,
    #[serde(rename = "@odata.type", default)]
    odata_type: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    assignments: Option<Vec<RawAppAssignment>>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawAppAssignment {
    #[serde(default)]
    intent: Option<String>,
    #[serde(default)]
    target: Option<RawTarget>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawGroup {
    id: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    membership_rule: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The model

/// Who an ESP is assigned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EspTarget {
    Group(String),
    AllDevices,
    AllUsers,
    Excluded(String),
    Other(String),
}

impl EspTarget {
    fn from_raw(t: &RawTarget) -> EspTarget {
        let ty = t
            .odata_type
            .as_deref()
            .unwrap_or("")
            .trim_start_matches('#')
            .trim_start_matches("microsoft.graph.");
        let gid = t.group_id.clone().unwrap_or_default();
        match ty {
            "groupAssignmentTarget" => EspTarget::Group(gid),
            "exclusionGroupAssignmentTarget" => EspTarget::Excluded(gid),
            "allDevicesAssignmentTarget" => EspTarget::AllDevices,
            "allLicensedUsersAssignmentTarget" => EspTarget::AllUsers,
            other => EspTarget::Other(other.to_string()),
        }
    }
}

/// One Enrollment Status Page as read from Intune, in the wizard's terms. `block_device_use` is
/// the portal's "Block device use until all apps and profiles are installed", which Graph sends
/// inverted as `blockDeviceSetupRetryByUser` (reference §9, trap).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EspConfig {
    pub id: String,
    pub display_name: String,
    pub is_default: bool,
    pub priority: i64,
    pub show_progress: bool,
    pub block_device_use: bool,
    pub allow_reset: bool,
    pub allow_log_collection: bool,
    pub allow_use_on_failure: bool,
    pub timeout_minutes: u32,
    /// Blocking apps; empty means "every required app".
    pub selected_app_ids: Vec<String>,
    pub install_quality_updates: bool,
    pub track_autopilot_only: bool,
    pub disable_after_first_user: bool,
    pub allow_non_blocking_apps: bool,
    pub custom_error_message: Option<String>,
    pub targets: Vec<EspTarget>,
    /// The JSON as Graph sent it, for tooltips and the log.
    pub raw: Value,
}

impl EspConfig {
    /// Shown only at OOBE (Autopilot) rather than to every new user who signs in. Peers disagree
    /// on the field (reference §9), so either one counts.
    pub fn only_at_oobe(&self) -> bool {
        self.track_autopilot_only || self.disable_after_first_user
    }

    fn from_raw(r: RawConfig, raw: Value) -> EspConfig {
        let is_default = is_default_esp(&r);
        EspConfig {
            display_name: r.display_name.clone().unwrap_or_else(|| r.id.clone()),
            is_default,
            priority: r.priority.unwrap_or(if is_default { 0 } else { i64::MAX }),
            show_progress: r.show_installation_progress.unwrap_or(false),
            block_device_use: !r.block_device_setup_retry_by_user.unwrap_or(true),
            allow_reset: r.allow_device_reset_on_install_failure.unwrap_or(false),
            allow_log_collection: r.allow_log_collection_on_install_failure.unwrap_or(false),
            allow_use_on_failure: r.allow_device_use_on_install_failure.unwrap_or(false),
            timeout_minutes: r
                .install_progress_timeout_in_minutes
                .unwrap_or(60)
                .clamp(0, u32::MAX as i64) as u32,
            selected_app_ids: r.selected_mobile_app_ids.clone().unwrap_or_default(),
            install_quality_updates: r.install_quality_updates.unwrap_or(false),
            track_autopilot_only: r.track_install_progress_for_autopilot_only.unwrap_or(false),
            disable_after_first_user: r
                .disable_user_status_tracking_after_first_user
                .unwrap_or(false),
            allow_non_blocking_apps: r.allow_non_blocking_app_installation.unwrap_or(false),
            custom_error_message: r.custom_error_message.clone(),
            targets: r
                .assignments
                .iter()
                .flatten()
                .filter_map(|a| a.target.as_ref().map(EspTarget::from_raw))
                .collect(),
            id: r.id,
            raw,
        }
    }
}

fn type_name(t: &str) -> String {
    t.trim_start_matches('#')
        .trim_start_matches("microsoft.graph.")
        .to_ascii_lowercase()
}

fn is_esp(r: &RawConfig) -> bool {
    let t = type_name(r.odata_type.as_deref().unwrap_or(""));
    let k = r
        .device_enrollment_configuration_type
        .as_deref()
        .unwrap_or("")
        .to_ascii_lowercase();
    t.ends_with("windows10enrollmentcompletionpageconfiguration")
        || k.ends_with("windows10enrollmentcompletionpageconfiguration")
}

fn is_default_esp(r: &RawConfig) -> bool {
    let t = type_name(r.odata_type.as_deref().unwrap_or(""));
    let k = r
        .device_enrollment_configuration_type
        .as_deref()
        .unwrap_or("")
        .to_ascii_lowercase();
    t.starts_with("default")
        || k.starts_with("default")
        || r.id
            .to_ascii_lowercase()
            .ends_with("defaultwindows10enrollmentcompletionpageconfiguration")
}

/// The kind of an app, from its `@odata.type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppKind {
    Win32,
    Msi,
    Microsoft365Apps,
    WinGet,
    Store,
    Msix,
    WebLink,
    Other(String),
}

impl AppKind {
    pub fn from_odata_type(t: &str) -> AppKind {
        match type_name(t).as_str() {
            "win32lobapp" | "win32catalogapp" => AppKind::Win32,
            "windowsmobilemsi" => AppKind::Msi,
            "officesuiteapp" => AppKind::Microsoft365Apps,
            "wingetapp" => AppKind::WinGet,
            "microsoftstoreforbusinessapp" | "windowsstoreapp" => AppKind::Store,
            "windowsuniversalappx" | "windowsappx" => AppKind::Msix,
            "windowswebapp" | "weblink" => AppKind::WebLink,
            _ => AppKind::Other(t.trim_start_matches('#').to_string()),
        }
    }

    pub fn word(&self) -> String {
        match self {
            AppKind::Win32 => "Win32 app".into(),
            AppKind::Msi => "MSI line-of-business app".into(),
            AppKind::Microsoft365Apps => "Microsoft 365 Apps".into(),
            AppKind::WinGet => "Microsoft Store app (new)".into(),
            AppKind::Store => "Microsoft Store app".into(),
            AppKind::Msix => "MSIX/AppX app".into(),
            AppKind::WebLink => "web link".into(),
            AppKind::Other(t) => format!("app of type {t}"),
        }
    }

    /// A plausible install time at OOBE on an ordinary connection, for the timeout check only.
    pub fn plausible_minutes(&self) -> u32 {
        match self {
            AppKind::Microsoft365Apps => 20,
            AppKind::Win32 | AppKind::WinGet | AppKind::Store => 10,
            AppKind::Msi | AppKind::Msix => 5,
            AppKind::WebLink => 1,
            AppKind::Other(_) => 10,
        }
    }
}

/// One app the ESP waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackedApp {
    pub id: String,
    pub name: String,
    pub kind: AppKind,
    /// The `@odata.type` as Graph sent it.
    pub odata_type: String,
    /// False when the ESP names an app id that does not exist (any more).
    pub found: bool,
}

/// How the chosen ESP reaches the group's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reach {
    /// Assigned to the step-4 group itself.
    DeviceGroup,
    AllDevices,
    /// Assigned to another device group that holds these devices too.
    OtherDeviceGroup {
        group_id: String,
        group_name: String,
    },
    /// Assigned to a group of users; it applies when the person signing in is a member.
    UserGroup {
        group_id: String,
        group_name: String,
    },
    AllUsers,
    /// Nothing else applies: the tenant's default ESP.
    Default,
}

impl Reach {
    pub fn words(&self, group_name: &str) -> String {
        match self {
            Reach::DeviceGroup => format!("It is assigned to the device group \"{group_name}\"."),
            Reach::AllDevices => "It is assigned to All devices.".into(),
            Reach::OtherDeviceGroup { group_name: g, .. } => format!(
                "It is assigned to the device group \"{g}\", which holds these devices too."
            ),
            Reach::UserGroup { group_name: g, .. } => format!(
                "It is assigned to the user group \"{g}\": it applies only when the person signing in is a member, and only in the user phase."
            ),
            Reach::AllUsers => "It is assigned to All users: it applies in the user phase.".into(),
            Reach::Default => "No other Enrollment Status Page reaches these devices, so the tenant's default one applies.".into(),
        }
    }

    pub fn is_device(&self) -> bool {
        matches!(
            self,
            Reach::DeviceGroup | Reach::AllDevices | Reach::OtherDeviceGroup { .. }
        )
    }
}

/// A documented problem the wizard can see, with what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Problem {
    DefaultHidesProgress,
    UserTargeted {
        group_name: String,
    },
    MixedMsiAndWin32 {
        msi: Vec<String>,
        win32: Vec<String>,
    },
    Microsoft365AppsTracked {
        names: Vec<String>,
    },
    TooManyBlockingApps {
        count: usize,
    },
    TimeoutTooShort {
        timeout: u32,
        needed: u32,
    },
    NoEspForGroup,
    MissingApps {
        ids: Vec<String>,
    },
}

impl Problem {
    /// A stable key (plan reports, logs, tests).
    pub fn key(&self) -> &'static str {
        match self {
            Problem::DefaultHidesProgress => "default-hides-progress",
            Problem::UserTargeted { .. } => "user-targeted",
            Problem::MixedMsiAndWin32 { .. } => "mixed-msi-win32",
            Problem::Microsoft365AppsTracked { .. } => "microsoft-365-apps",
            Problem::TooManyBlockingApps { .. } => "too-many-apps",
            Problem::TimeoutTooShort { .. } => "timeout-too-short",
            Problem::NoEspForGroup => "no-esp-for-group",
            Problem::MissingApps { .. } => "missing-apps",
        }
    }

    pub fn what(&self) -> String {
        match self {
            Problem::DefaultHidesProgress => "The default Enrollment Status Page hides the installation progress: the person reaches the desktop while apps and policies are still installing, and OOBE cannot wait for anything.".into(),
            Problem::UserTargeted { group_name } => format!("The Enrollment Status Page is assigned to the user group \"{group_name}\": its list of apps to wait for is ignored in the device phase, so device apps are not waited for."),
            Problem::MixedMsiAndWin32 { msi, win32 } => format!(
                "MSI line-of-business apps ({}) and Win32 apps ({}) are both tracked: they can collide at OOBE (\"another installation is in progress\") and the page fails.",
                msi.join(", "),
                win32.join(", ")
            ),
            Problem::Microsoft365AppsTracked { names } => format!(
                "The Microsoft 365 Apps app type ({}) is tracked: its installer can overlap a Win32 install and fail the page.",
                names.join(", ")
            ),
            Problem::TooManyBlockingApps { count } => format!(
                "{count} apps are tracked; an Enrollment Status Page can block on at most {MAX_BLOCKING_APPS}."
            ),
            Problem::TimeoutTooShort { timeout, needed } => format!(
                "The timeout is {timeout} minutes, but the tracked apps plausibly need about {needed} minutes (with quality updates where they install): the page may time out and show an error."
            ),
            Problem::NoEspForGroup => "No Enrollment Status Page is assigned to this device group or to All devices.".into(),
            Problem::MissingApps { ids } => format!(
                "{} tracked app(s) no longer exist in Intune ({}); the page would wait for something that never installs.",
                ids.len(),
                ids.join(", ")
            ),
        }
    }

    pub fn fix(&self) -> String {
        match self {
            Problem::DefaultHidesProgress => "Leave the default as it is and give this group its own page: create the recommended Enrollment Status Page (button below).".into(),
            Problem::NoEspForGroup => "Create the recommended Enrollment Status Page for this group (button below): progress shown, device use blocked until the required apps install, 60 minutes, only at OOBE.".into(),
            Problem::UserTargeted { .. } => "Assign an Enrollment Status Page to the device group instead (Microsoft's advice); the recommended one below does that.".into(),
            Problem::MixedMsiAndWin32 { .. } => "Repackage the MSI apps as Win32 apps (.intunewin), or stop tracking one kind in the Enrollment Status Page.".into(),
            Problem::Microsoft365AppsTracked { .. } => "Deploy Microsoft 365 Apps as a Win32 app, or remove it from the apps the page waits for.".into(),
            Problem::TooManyBlockingApps { .. } => "Keep only the apps a person needs on the first day in the list (at most 100); the rest install after the desktop appears.".into(),
            Problem::TimeoutTooShort { needed, .. } => format!(
                "Raise the timeout to at least {} minutes in Intune, or track fewer apps.",
                needed.div_ceil(10) * 10
            ),
            Problem::MissingApps { .. } => "Remove the deleted apps from the Enrollment Status Page's list in Intune.".into(),
        }
    }
}

/// What the step found for one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    pub group_id: String,
    pub group_name: String,
    /// Every ESP in the tenant, default included, highest priority first.
    pub configs: Vec<EspConfig>,
    /// The ESP these devices get and how it reaches them; `None` only when the tenant has no
    /// ESP at all (not even the default).
    pub chosen: Option<(EspConfig, Reach)>,
    /// The apps the chosen ESP waits for.
    pub tracked: Vec<TrackedApp>,
    /// True when the chosen ESP names no app, so it waits for every required app (`tracked`
    /// then holds the apps required for the group or All devices).
    pub waits_for_all_required: bool,
    /// The minutes OOBE plausibly needs for `tracked` (plus quality updates where they apply).
    pub needed_minutes: u32,
    pub problems: Vec<Problem>,
}

impl Resolution {
    pub fn chosen_id(&self) -> Option<&str> {
        self.chosen.as_ref().map(|(c, _)| c.id.as_str())
    }

    /// What OOBE will do, one sentence per line, each with the raw values it was read from
    /// (for a tooltip).
    pub fn behaviour(&self) -> Vec<(String, String)> {
        let Some((c, reach)) = &self.chosen else {
            return vec![(
                "The tenant has no Enrollment Status Page at all: OOBE goes straight to the desktop.".into(),
                "no windows10EnrollmentCompletionPageConfiguration in deviceEnrollmentConfigurations".into(),
            )];
        };
        let targets = c
            .targets
            .iter()
            .map(|t| format!("{t:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut out = vec![(
            reach.words(&self.group_name),
            format!("id {}, priority {}, targets [{targets}]", c.id, c.priority),
        )];
        if !c.show_progress {
            out.push((
                "Progress is not shown: the person reaches the desktop while apps and policies are still installing.".into(),
                "showInstallationProgress: false".into(),
            ));
            return out;
        }
        out.push((
            "Progress is shown during OOBE.".into(),
            "showInstallationProgress: true".into(),
        ));
        out.push((
            if c.block_device_use {
                "Device use is blocked until the tracked apps and policies are installed.".into()
            } else {
                "Device use is not blocked: the person may start using the device before the apps are installed.".into()
            },
            format!(
                "blockDeviceSetupRetryByUser: {} (false means block device use: Yes)",
                !c.block_device_use
            ),
        ));
        out.push((
            format!(
                "After {} minutes without finishing, the page shows an error{}.",
                c.timeout_minutes,
                match (c.allow_reset, c.allow_use_on_failure, c.allow_log_collection) {
                    (true, _, true) => " and offers to reset the device and to collect logs",
                    (true, _, false) => " and offers to reset the device",
                    (false, true, _) => " and lets the person continue anyway",
                    (false, false, true) => " and offers to collect logs",
                    (false, false, false) => "",
                }
            ),
            format!(
                "installProgressTimeoutInMinutes: {}, allowDeviceResetOnInstallFailure: {}, allowLogCollectionOnInstallFailure: {}, allowDeviceUseOnInstallFailure: {}",
                c.timeout_minutes, c.allow_reset, c.allow_log_collection, c.allow_use_on_failure
            ),
        ));
        let apps_raw = format!(
            "selectedMobileAppIds: [{}]; {}",
            c.selected_app_ids.join(", "),
            self.tracked
                .iter()
                .map(|a| format!("{} = {}", a.id, a.odata_type))
                .collect::<Vec<_>>()
                .join(", ")
        );
        out.push((
            if self.tracked.is_empty() {
                if self.waits_for_all_required {
                    "It waits for every required app; none is required for this group or All devices today.".into()
                } else {
                    "It waits for no app.".into()
                }
            } else {
                let names: Vec<String> = self
                    .tracked
                    .iter()
                    .map(|a| format!("{} ({})", a.name, a.kind.word()))
                    .collect();
                format!(
                    "It waits for {} app{}{}: {}.",
                    self.tracked.len(),
                    if self.tracked.len() == 1 { "" } else { "s" },
                    if self.waits_for_all_required {
                        " (every required app of this group)"
                    } else {
                        ""
                    },
                    names.join(", ")
                )
            },
            apps_raw,
        ));
        out.push((
            if c.install_quality_updates && reach.is_device() {
                format!(
                    "Windows quality updates install during OOBE: 20–{QUALITY_UPDATE_MINUTES} minutes more, and the device may restart."
                )
            } else if c.install_quality_updates {
                "Quality updates are switched on but ignored: they only install from a device-targeted page.".into()
            } else {
                "Windows quality updates are not installed during OOBE.".into()
            },
            format!("installQualityUpdates: {}", c.install_quality_updates),
        ));
        out.push((
            if c.only_at_oobe() {
                "Shown only at OOBE (Autopilot), not to later users.".into()
            } else {
                "Shown to every new user who signs in on the device, not only at OOBE.".into()
            },
            format!(
                "trackInstallProgressForAutopilotOnly: {}, disableUserStatusTrackingAfterFirstUser: {}",
                c.track_autopilot_only, c.disable_after_first_user
            ),
        ));
        out
    }

    /// True when the chosen ESP is the recommended one for this group with every setting as
    /// recommended.
    pub fn is_recommended(&self) -> bool {
        self.chosen.as_ref().is_some_and(|(c, reach)| {
            *reach == Reach::DeviceGroup
                && c.display_name == recommended_name(&self.group_name)
                && recommended_differences(c).is_empty()
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Reading and resolving

/// Every ESP in the tenant with its assignments, highest priority first, the default last.
pub async fn list_esps(graph: &GraphClient) -> Result<Vec<EspConfig>, EspError> {
    let items: Vec<Value> = graph
        .get_all(
            ApiVersion::Beta,
            &format!("{CONFIGS_PATH}?$expand=assignments"),
        )
        .await
        .map_err(graph_err("read the Enrollment Status Pages"))?;
    let mut out = Vec::new();
    for v in items {
        let Ok(r) = serde_json::from_value::<RawConfig>(v.clone()) else {
            continue;
        };
        if is_esp(&r) {
            out.push(EspConfig::from_raw(r, v));
        }
    }
    out.sort_by_key(|c| (c.is_default, c.priority));
    Ok(out)
}

async fn read_group(graph: &GraphClient, id: &str) -> Result<Option<RawGroup>, EspError> {
    match graph
        .get_json::<RawGroup>(
            ApiVersion::V1,
            &format!(
                "/groups/{}?$select=id,displayName,membershipRule",
                encode(id)
            ),
        )
        .await
    {
        Ok(g) => Ok(Some(g)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(graph_err(
            "read a group an Enrollment Status Page is assigned to",
        )(e)),
    }
}

async fn read_apps(graph: &GraphClient) -> Result<Vec<RawApp>, EspError> {
    let items: Vec<Value> = graph
        .get_all(ApiVersion::V1, &format!("{APPS_PATH}?$expand=assignments"))
        .await
        .map_err(graph_err("read the Intune apps"))?;
    Ok(items
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect())
}

/// What a group an ESP is assigned to is to the devices of the step-4 group.
#[derive(Debug, Clone, PartialEq)]
enum GroupRole {
    Users {
        name: String,
    },
    /// A device group holding at least one of these devices (or every Autopilot device).
    Devices {
        name: String,
    },
    Unrelated,
}

#[derive(Debug, Clone, Deserialize)]
struct RawMember {
    id: String,
    #[serde(rename = "@odata.type", default)]
    odata_type: Option<String>,
}

async fn member_ids(graph: &GraphClient, group_id: &str) -> Result<Vec<RawMember>, EspError> {
    match graph
        .get_all::<RawMember>(
            ApiVersion::V1,
            &format!("/groups/{}/transitiveMembers?$select=id", encode(group_id)),
        )
        .await
    {
        Ok(m) => Ok(m),
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        Err(e) => Err(graph_err(
            "read the members of a group an Enrollment Status Page is assigned to",
        )(e)),
    }
}

/// Users by rule or membership; devices when the rule takes every Autopilot device
/// (`[ZTDId]`) or the group holds one of ours; otherwise unrelated.
async fn classify(
    graph: &GraphClient,
    g: &str,
    ours_id: &str,
    ours: &mut Option<Vec<String>>,
) -> Result<GroupRole, EspError> {
    let Some(rg) = read_group(graph, g).await? else {
        return Ok(GroupRole::Unrelated);
    };
    let name = rg.display_name.clone().unwrap_or_else(|| rg.id.clone());
    let rule = rg
        .membership_rule
        .as_deref()
        .unwrap_or("")
        .to_ascii_lowercase();
    if rule.contains("user.") {
        return Ok(GroupRole::Users { name });
    }
    if rule.contains("[ztdid]") {
        return Ok(GroupRole::Devices { name });
    }
    let members = member_ids(graph, g).await?;
    if ours.is_none() {
        *ours = Some(
            member_ids(graph, ours_id)
                .await?
                .into_iter()
                .map(|m| m.id)
                .collect(),
        );
    }
    let ours = ours.as_deref().unwrap_or_default();
    if members.iter().any(|m| ours.contains(&m.id)) {
        return Ok(GroupRole::Devices { name });
    }
    let is_user = |m: &RawMember| {
        m.odata_type
            .as_deref()
            .is_some_and(|t| type_name(t) == "user")
    };
    if rule.is_empty() && members.iter().any(is_user) {
        return Ok(GroupRole::Users { name });
    }
    Ok(GroupRole::Unrelated)
}

fn pick(configs: &[EspConfig], pred: impl Fn(&EspConfig) -> bool) -> Option<&EspConfig> {
    configs
        .iter()
        .filter(|c| !c.is_default && pred(c))
        .min_by_key(|c| c.priority)
}

/// Reads the ESPs, the apps and the groups they are assigned to, and works out what the devices
/// of `group_id` will get.
pub async fn resolve(graph: &GraphClient, group_id: &str) -> Result<Resolution, EspError> {
    let group = read_group(graph, group_id)
        .await?
        .ok_or_else(|| EspError::GroupNotFound {
            group_id: group_id.to_string(),
        })?;
    let group_name = group
        .display_name
        .clone()
        .unwrap_or_else(|| group.id.clone());
    let configs = list_esps(graph).await?;

    // What every other assigned group is to these devices: a group of users, a device group
    // that holds (some of) them, or neither.
    let mut kinds: HashMap<String, GroupRole> = HashMap::new();
    let mut ours: Option<Vec<String>> = None;
    for c in configs.iter().filter(|c| !c.is_default) {
        for t in &c.targets {
            if let EspTarget::Group(g) = t
                && g != group_id
                && !kinds.contains_key(g)
            {
                let role = classify(graph, g, group_id, &mut ours).await?;
                kinds.insert(g.clone(), role);
            }
        }
    }
    let role = |g: &str| kinds.get(g).cloned().unwrap_or(GroupRole::Unrelated);

    let excluded = |c: &EspConfig| {
        c.targets
            .contains(&EspTarget::Excluded(group_id.to_string()))
    };
    let device_reach = |c: &EspConfig| -> Option<Reach> {
        if excluded(c) {
            return None;
        }
        if c.targets.contains(&EspTarget::Group(group_id.to_string())) {
            return Some(Reach::DeviceGroup);
        }
        c.targets.iter().find_map(|t| match t {
            EspTarget::AllDevices => Some(Reach::AllDevices),
            EspTarget::Group(g) => match role(g) {
                GroupRole::Devices { name } => Some(Reach::OtherDeviceGroup {
                    group_id: g.clone(),
                    group_name: name,
                }),
                _ => None,
            },
            _ => None,
        })
    };
    let user_reach = |c: &EspConfig| -> Option<Reach> {
        c.targets.iter().find_map(|t| match t {
            EspTarget::AllUsers => Some(Reach::AllUsers),
            EspTarget::Group(g) => match role(g) {
                GroupRole::Users { name } => Some(Reach::UserGroup {
                    group_id: g.clone(),
                    group_name: name,
                }),
                _ => None,
            },
            _ => None,
        })
    };
    let chosen = pick(&configs, |c| device_reach(c).is_some())
        .and_then(|c| device_reach(c).map(|r| (c.clone(), r)))
        .or_else(|| {
            pick(&configs, |c| user_reach(c).is_some())
                .and_then(|c| user_reach(c).map(|r| (c.clone(), r)))
        })
        .or_else(|| {
            configs
                .iter()
                .find(|c| c.is_default)
                .map(|c| (c.clone(), Reach::Default))
        });

    let apps = match &chosen {
        Some((c, _)) if c.show_progress => read_apps(graph).await?,
        _ => Vec::new(),
    };
    Ok(analyse(group_id, &group_name, configs, chosen, &apps))
}

fn analyse(
    group_id: &str,
    group_name: &str,
    configs: Vec<EspConfig>,
    chosen: Option<(EspConfig, Reach)>,
    apps: &[RawApp],
) -> Resolution {
    let mut problems = Vec::new();
    let mut tracked = Vec::new();
    let mut waits_for_all_required = false;
    let mut needed = 0;
    let by_id: HashMap<&str, &RawApp> = apps.iter().map(|a| (a.id.as_str(), a)).collect();
    let tracked_app = |a: &RawApp| {
        let t = a.odata_type.clone().unwrap_or_default();
        TrackedApp {
            id: a.id.clone(),
            name: a.display_name.clone().unwrap_or_else(|| a.id.clone()),
            kind: AppKind::from_odata_type(&t),
            odata_type: t,
            found: true,
        }
    };
    match &chosen {
        None => problems.push(Problem::NoEspForGroup),
        Some((c, reach)) => {
            if !reach.is_device() {
                if matches!(reach, Reach::Default) {
                    problems.push(Problem::NoEspForGroup);
                }
                if let Reach::UserGroup { group_name, .. } = reach {
                    problems.push(Problem::UserTargeted {
                        group_name: group_name.clone(),
                    });
                }
                if let Reach::AllUsers = reach {
                    problems.push(Problem::UserTargeted {
                        group_name: "All users".into(),
                    });
                }
            }
            if c.is_default && !c.show_progress {
                problems.push(Problem::DefaultHidesProgress);
            }
            if c.show_progress {
                if c.selected_app_ids.is_empty() {
                    waits_for_all_required = true;
                    tracked = apps
                        .iter()
                        .filter(|a| {
                            a.assignments.iter().flatten().any(|x| {
                                x.intent.as_deref() == Some("required")
                                    && x.target.as_ref().is_some_and(|t| {
                                        matches!(EspTarget::from_raw(t), EspTarget::AllDevices)
                                            || EspTarget::from_raw(t)
                                                == EspTarget::Group(group_id.to_string())
                                    })
                            })
                        })
                        .map(tracked_app)
                        .collect();
                } else {
                    let mut missing = Vec::new();
                    for id in &c.selected_app_ids {
                        match by_id.get(id.as_str()) {
                            Some(a) => tracked.push(tracked_app(a)),
                            None => missing.push(id.clone()),
                        }
                    }
                    if c.selected_app_ids.len() > MAX_BLOCKING_APPS {
                        problems.push(Problem::TooManyBlockingApps {
                            count: c.selected_app_ids.len(),
                        });
                    }
                    if !missing.is_empty() {
                        problems.push(Problem::MissingApps { ids: missing });
                    }
                }
                let names = |k: AppKind| -> Vec<String> {
                    tracked
                        .iter()
                        .filter(|a| a.kind == k)
                        .map(|a| a.name.clone())
                        .collect()
                };
                let (msi, win32, office) = (
                    names(AppKind::Msi),
                    names(AppKind::Win32),
                    names(AppKind::Microsoft365Apps),
                );
                if !msi.is_empty() && !win32.is_empty() {
                    problems.push(Problem::MixedMsiAndWin32 { msi, win32 });
                }
                if !office.is_empty() {
                    problems.push(Problem::Microsoft365AppsTracked { names: office });
                }
                needed = BASE_SETUP_MINUTES
                    + tracked
                        .iter()
                        .map(|a| a.kind.plausible_minutes())
                        .sum::<u32>()
                    + if c.install_quality_updates && reach.is_device() {
                        QUALITY_UPDATE_MINUTES
                    } else {
                        0
                    };
                if c.timeout_minutes < needed {
                    problems.push(Problem::TimeoutTooShort {
                        timeout: c.timeout_minutes,
                        needed,
                    });
                }
            }
        }
    }
    Resolution {
        group_id: group_id.to_string(),
        group_name: group_name.to_string(),
        configs,
        chosen,
        tracked,
        waits_for_all_required,
        needed_minutes: needed,
        problems,
    }
}

// ---------------------------------------------------------------------------------------------
// The recommended ESP

/// The create body of the recommended ESP (reference §9). `blockDeviceSetupRetryByUser: false`
/// is the portal's "Block device use … = Yes"; both OOBE-only fields are set, as the portal does.
pub fn recommended_body(group_name: &str) -> Value {
    json!({
        "@odata.type": ESP_TYPE,
        "displayName": recommended_name(group_name),
        "description": format!("Created by Autopilot Wizard for the Autopilot devices of \"{group_name}\"."),
        "showInstallationProgress": true,
        "blockDeviceSetupRetryByUser": false,
        "allowDeviceResetOnInstallFailure": true,
        "allowLogCollectionOnInstallFailure": true,
        "allowDeviceUseOnInstallFailure": false,
        "customErrorMessage": "Setup could not finish. Contact your IT department and tell them the time this happened.",
        "installProgressTimeoutInMinutes": RECOMMENDED_TIMEOUT_MINUTES,
        "selectedMobileAppIds": [],
        "allowNonBlockingAppInstallation": false,
        "installQualityUpdates": true,
        "trackInstallProgressForAutopilotOnly": true,
        "disableUserStatusTrackingAfterFirstUser": true,
    })
}

/// The settings of `c` that differ from the recommended ones, in words with raw values.
pub fn recommended_differences(c: &EspConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |ok: bool, what: &str| {
        if !ok {
            out.push(what.to_string());
        }
    };
    check(
        c.show_progress,
        "progress is not shown (showInstallationProgress)",
    );
    check(
        c.block_device_use,
        "device use is not blocked (blockDeviceSetupRetryByUser should be false)",
    );
    check(
        c.allow_reset,
        "reset on failure is not allowed (allowDeviceResetOnInstallFailure)",
    );
    check(
        c.allow_log_collection,
        "log collection is not allowed (allowLogCollectionOnInstallFailure)",
    );
    check(
        !c.allow_use_on_failure,
        "device use after a failure is allowed (allowDeviceUseOnInstallFailure)",
    );
    check(
        c.timeout_minutes == RECOMMENDED_TIMEOUT_MINUTES,
        &format!(
            "the timeout is {} minutes, not {RECOMMENDED_TIMEOUT_MINUTES} (installProgressTimeoutInMinutes)",
            c.timeout_minutes
        ),
    );
    check(
        c.selected_app_ids.is_empty(),
        "it tracks a selected list of apps, not every required app (selectedMobileAppIds)",
    );
    check(
        c.track_autopilot_only,
        "it is not limited to Autopilot (trackInstallProgressForAutopilotOnly)",
    );
    check(
        c.disable_after_first_user,
        "it is shown to later users too (disableUserStatusTrackingAfterFirstUser)",
    );
    check(
        !c.allow_non_blocking_apps,
        "apps install as non-blocking (allowNonBlockingAppInstallation)",
    );
    check(
        c.install_quality_updates,
        "quality updates are off (installQualityUpdates)",
    );
    out
}

/// What [`create_recommended`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateReport {
    /// False when an ESP of that name existed and was reused.
    pub created: bool,
    pub esp: EspConfig,
    /// The resolution read afterwards: the group's ESP is the recommended one.
    pub resolution: Resolution,
}

/// Progress of [`create_recommended`], for the page.
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// Creates (or finds) the recommended ESP for the group, brings its settings to the recommended
/// ones, assigns it to the group (keeping other assignments), gives it priority 1 and reads
/// every field back.
pub async fn create_recommended(
    graph: &GraphClient,
    group_id: &str,
    progress: Progress<'_>,
) -> Result<CreateReport, EspError> {
    progress("Reading the device group…");
    let group = read_group(graph, group_id)
        .await?
        .ok_or_else(|| EspError::GroupNotFound {
            group_id: group_id.to_string(),
        })?;
    let group_name = group
        .display_name
        .clone()
        .unwrap_or_else(|| group.id.clone());
    let name = recommended_name(&group_name);
    let body = recommended_body(&group_name);

    progress("Looking for an existing recommended Enrollment Status Page…");
    let existing = list_esps(graph)
        .await?
        .into_iter()
        .find(|c| !c.is_default && c.display_name == name);
    let (id, created, targets, priority) = match existing {
        Some(c) => {
            if !recommended_differences(&c).is_empty() {
                progress("Bringing its settings to the recommended ones…");
                let mut patch = body.clone();
                if let Some(o) = patch.as_object_mut() {
                    o.remove("displayName");
                    o.remove("description");
                }
                graph
                    .patch_json(
                        ApiVersion::Beta,
                        &format!("{CONFIGS_PATH}/{}", encode(&c.id)),
                        &patch,
                    )
                    .await
                    .map_err(graph_err("update the Enrollment Status Page"))?;
            }
            (c.id, false, c.targets, Some(c.priority))
        }
        None => {
            progress("Creating the Enrollment Status Page…");
            match graph
                .post_json::<_, Value>(ApiVersion::Beta, CONFIGS_PATH, &body)
                .await
            {
                Ok(v) => {
                    let id = v
                        .get("id")
                        .and_then(|i| i.as_str())
                        .unwrap_or_default()
                        .to_string();
                    (id, true, Vec::new(), None)
                }
                // A create whose answer was lost (connection dropped, 5xx after the write) may
                // have landed: look once more before reporting, so a retry never makes two.
                Err(e) if e.status().is_none_or(|s| s >= 500) => {
                    match list_esps(graph)
                        .await?
                        .into_iter()
                        .find(|c| !c.is_default && c.display_name == name)
                    {
                        Some(c) => (c.id, true, c.targets, Some(c.priority)),
                        None => return Err(graph_err("create the Enrollment Status Page")(e)),
                    }
                }
                Err(e) => return Err(graph_err("create the Enrollment Status Page")(e)),
            }
        }
    };

    if !targets.contains(&EspTarget::Group(group_id.to_string())) {
        progress("Assigning it to the device group…");
        let mut list: Vec<Value> = targets
            .iter()
            .filter_map(|t| match t {
                EspTarget::Group(g) => Some(json!({"target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": g}})),
                EspTarget::Excluded(g) if g != group_id => Some(json!({"target": {"@odata.type": "#microsoft.graph.exclusionGroupAssignmentTarget", "groupId": g}})),
                EspTarget::AllDevices => Some(json!({"target": {"@odata.type": "#microsoft.graph.allDevicesAssignmentTarget"}})),
                EspTarget::AllUsers => Some(json!({"target": {"@odata.type": "#microsoft.graph.allLicensedUsersAssignmentTarget"}})),
                _ => None,
            })
            .collect();
        list.push(assign_target(group_id));
        graph
            .post_no_content(
                ApiVersion::Beta,
                &format!("{CONFIGS_PATH}/{}/assign", encode(&id)),
                Some(&json!({ "enrollmentConfigurationAssignments": list })),
            )
            .await
            .map_err(graph_err("assign the Enrollment Status Page to the group"))?;
    }

    // Found at priority 1 already: a re-run only reads.
    if priority != Some(1) {
        progress("Giving it priority 1…");
        graph
            .post_no_content(
                ApiVersion::Beta,
                &format!("{CONFIGS_PATH}/{}/setPriority", encode(&id)),
                Some(&json!({ "priority": 1 })),
            )
            .await
            .map_err(graph_err("set the Enrollment Status Page's priority"))?;
    }

    progress("Reading every setting back…");
    let v: Value = graph
        .get_json(
            ApiVersion::Beta,
            &format!("{CONFIGS_PATH}/{}?$expand=assignments", encode(&id)),
        )
        .await
        .map_err(graph_err("read the Enrollment Status Page back"))?;
    let raw: RawConfig =
        serde_json::from_value(v.clone()).map_err(|e| EspError::ReadBackMismatch {
            name: name.clone(),
            fields: vec![format!("the answer could not be read ({e})")],
        })?;
    let esp = EspConfig::from_raw(raw, v);
    let mut fields = recommended_differences(&esp);
    if esp.display_name != name {
        fields.push(format!("its name is \"{}\"", esp.display_name));
    }
    if esp.priority != 1 {
        fields.push(format!("its priority is {}, not 1", esp.priority));
    }
    if !esp
        .targets
        .contains(&EspTarget::Group(group_id.to_string()))
    {
        fields.push(format!("it is not assigned to \"{group_name}\""));
    }
    if !fields.is_empty() {
        return Err(EspError::ReadBackMismatch { name, fields });
    }
    progress("Checking which Enrollment Status Page the devices now get…");
    let resolution = resolve(graph, group_id).await?;
    if resolution.chosen_id() != Some(esp.id.as_str()) {
        return Err(EspError::ReadBackMismatch {
            name,
            fields: vec![format!(
                "the devices still get \"{}\"",
                resolution
                    .chosen
                    .as_ref()
                    .map(|(c, _)| c.display_name.as_str())
                    .unwrap_or("no page")
            )],
        });
    }
    Ok(CreateReport {
        created,
        esp,
        resolution,
    })
}

/// The assignment entry for one group, as `assign` takes it.
pub fn assign_target(group_id: &str) -> Value {
    json!({"target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group_id}})
}

// ---------------------------------------------------------------------------------------------
// Unattended run and validation

/// The `[esp]` section of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EspPlan {
    #[serde(default)]
    pub mode: EspMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EspMode {
    /// Read and report only.
    #[default]
    Check,
    /// Create (or find) the recommended ESP for the group.
    CreateRecommended,
}

/// The step's result, kept across restarts: which ESP the group's devices get, computed for
/// which group.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EspOutcome {
    /// The group the resolution was computed for; the outcome is stale when the group changes.
    pub group_id: String,
    /// The ESP the devices get (`None`: the tenant has none).
    pub esp_id: Option<String>,
    pub esp_name: Option<String>,
    /// True when the wizard created the recommended ESP in this run.
    pub created: bool,
    /// The problem keys found ([`Problem::key`]).
    pub problems: Vec<String>,
    /// The problems in words, each with its fix.
    pub problem_texts: Vec<String>,
}

impl EspOutcome {
    pub fn from_resolution(r: &Resolution, created: bool) -> EspOutcome {
        EspOutcome {
            group_id: r.group_id.clone(),
            esp_id: r.chosen_id().map(str::to_string),
            esp_name: r.chosen.as_ref().map(|(c, _)| c.display_name.clone()),
            created,
            problems: r.problems.iter().map(|p| p.key().to_string()).collect(),
            problem_texts: r
                .problems
                .iter()
                .map(|p| format!("{} {}", p.what(), p.fix()))
                .collect(),
        }
    }
}

/// What `run --plan` does for `[esp]`.
pub async fn run_unattended(
    graph: &GraphClient,
    group_id: &str,
    plan: &EspPlan,
) -> Result<EspOutcome, EspError> {
    match plan.mode {
        EspMode::Check => Ok(EspOutcome::from_resolution(
            &resolve(graph, group_id).await?,
            false,
        )),
        EspMode::CreateRecommended => {
            let report = create_recommended(graph, group_id, &|_| {}).await?;
            Ok(EspOutcome::from_resolution(
                &report.resolution,
                report.created,
            ))
        }
    }
}

/// One item the ESP step adds to the validation report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EspCheck {
    /// Stable id: `esp-reaches-group`, `esp-tracked-apps`, `esp-timeout`.
    pub key: &'static str,
    pub title: &'static str,
    pub verdict: Verdict,
    pub evidence: Vec<String>,
    pub fix: Option<String>,
}

pub const CHECK_REACHES: (&str, &str) = (
    "esp-reaches-group",
    "An Enrollment Status Page assigned to the device group shows progress and blocks device use",
);
pub const CHECK_APPS: (&str, &str) = (
    "esp-tracked-apps",
    "The apps the Enrollment Status Page waits for can install together",
);
pub const CHECK_TIMEOUT: (&str, &str) = (
    "esp-timeout",
    "The Enrollment Status Page's timeout leaves room for its apps and quality updates",
);

fn check(
    (key, title): (&'static str, &'static str),
    verdict: Verdict,
    evidence: Vec<String>,
    fix: Option<String>,
) -> EspCheck {
    EspCheck {
        key,
        title,
        verdict,
        evidence,
        fix,
    }
}

/// Checks from a resolution already read.
pub fn checks_from(r: &Resolution) -> Vec<EspCheck> {
    let of = |keys: &[&str]| -> Vec<&Problem> {
        r.problems
            .iter()
            .filter(|p| keys.contains(&p.key()))
            .collect()
    };
    let build = |id, keys: &[&str], evidence: Vec<String>| {
        let found = of(keys);
        let mut ev = evidence;
        ev.extend(found.iter().map(|p| p.what()));
        let fix = (!found.is_empty())
            .then(|| found.iter().map(|p| p.fix()).collect::<Vec<_>>().join(" "));
        let verdict = if found.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        check(id, verdict, ev, fix)
    };
    let chosen = match &r.chosen {
        Some((c, reach)) => format!(
            "Devices of \"{}\" get \"{}\" (id {}, priority {}). {}",
            r.group_name,
            c.display_name,
            c.id,
            c.priority,
            reach.words(&r.group_name)
        ),
        None => "The tenant has no Enrollment Status Page.".into(),
    };
    let mut reach_ev = vec![chosen];
    let mut reach_check = build(
        CHECK_REACHES,
        &[
            "no-esp-for-group",
            "user-targeted",
            "default-hides-progress",
        ],
        reach_ev.clone(),
    );
    if let Some((c, reach)) = &r.chosen
        && reach.is_device()
        && (!c.show_progress || !c.block_device_use)
    {
        reach_ev.push(format!(
            "showInstallationProgress {}, blockDeviceSetupRetryByUser {} (device use {}blocked).",
            c.show_progress,
            !c.block_device_use,
            if c.block_device_use { "" } else { "not " }
        ));
        reach_check = check(
            CHECK_REACHES,
            Verdict::Fail,
            reach_ev,
            Some("Turn on \"Show app and profile configuration progress\" and \"Block device use until all apps and profiles are installed\" in the page assigned to the group, or create the recommended one.".into()),
        );
    }
    let apps_ev = vec![if r.tracked.is_empty() {
        "No app is tracked: the page waits for none today.".to_string()
    } else {
        format!(
            "{} tracked app(s): {}",
            r.tracked.len(),
            r.tracked
                .iter()
                .map(|a| format!("{} [{}]", a.name, a.odata_type.trim_start_matches('#')))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }];
    let timeout_ev = vec![match &r.chosen {
        Some((c, _)) => format!(
            "Timeout {} minutes; plausible need {} minutes.",
            c.timeout_minutes, r.needed_minutes
        ),
        None => "No page, no timeout.".into(),
    }];
    vec![
        reach_check,
        build(
            CHECK_APPS,
            &[
                "mixed-msi-win32",
                "microsoft-365-apps",
                "too-many-apps",
                "missing-apps",
            ],
            apps_ev,
        ),
        build(CHECK_TIMEOUT, &["timeout-too-short"], timeout_ev),
    ]
}

/// The ESP items of the validation report, read live. A failed read makes every item Unknown
/// with the error as evidence.
pub async fn validation_checks(graph: &GraphClient, group_id: &str) -> Vec<EspCheck> {
    checks_of(resolve(graph, group_id).await, None)
}

/// The checks of one read; problems `accepted` at the step are warnings (see
/// [`accepted_at_the_step`]).
fn checks_of(read: Result<Resolution, EspError>, accepted: Option<&EspOutcome>) -> Vec<EspCheck> {
    match read {
        Ok(r) => {
            let mut checks = checks_from(&r);
            if accepted_at_the_step(&r, accepted) {
                accept(&mut checks);
            }
            checks
        }
        Err(e) => [CHECK_REACHES, CHECK_APPS, CHECK_TIMEOUT]
            .into_iter()
            .map(|id| {
                check(
                    id,
                    Verdict::Unknown,
                    vec![e.to_string()],
                    Some("Fix the error above and validate again.".into()),
                )
            })
            .collect(),
    }
}

// ---- The step's place in the procedure (see `steps::registry`) ----

/// The ESP items of the validation report, under the names the report and `--json` use.
pub const CHECK_ESP_REACHES: CheckId = CheckId::new("EspReachesGroup", CHECK_REACHES.1);
pub const CHECK_ESP_APPS: CheckId = CheckId::new("EspTrackedApps", CHECK_APPS.1);
pub const CHECK_ESP_TIMEOUT: CheckId = CheckId::new("EspTimeout", CHECK_TIMEOUT.1);

impl EspCheck {
    /// The report item this check is.
    pub fn into_item(self) -> CheckItem {
        let id = match self.key {
            k if k == CHECK_APPS.0 => CHECK_ESP_APPS,
            k if k == CHECK_TIMEOUT.0 => CHECK_ESP_TIMEOUT,
            _ => CHECK_ESP_REACHES,
        };
        CheckItem::new(id, self.verdict, self.evidence, self.fix)
    }
}

impl Outcome for EspOutcome {
    /// The ESP the group's devices get, for that group: the validation report depends on it.
    fn identity(&self) -> Option<String> {
        Some(format!(
            "{}:{}",
            self.group_id,
            self.esp_id.as_deref().unwrap_or("-")
        ))
    }
}

impl EspError {
    /// How an unattended run ends on this error.
    fn failure_kind(&self) -> FailureKind {
        match self {
            EspError::Forbidden { .. } => FailureKind::Auth,
            EspError::GroupNotFound { .. } => FailureKind::Input,
            EspError::Rejected { .. } | EspError::ReadBackMismatch { .. } => FailureKind::Service,
            EspError::Graph { source, .. } => match source.as_ref() {
                GraphError::Network { .. } | GraphError::GaveUp { .. } => FailureKind::Transient,
                GraphError::Service { status, .. } if *status >= 500 || *status == 429 => {
                    FailureKind::Transient
                }
                _ => FailureKind::Service,
            },
        }
    }
}

/// `run --plan`'s ESP step: the `[esp]` table (check only when absent), for the group of the
/// plan's group step.
pub fn run_plan<'a>(cx: PlanCx<'a>) -> BoxFuture<'a, Result<String, StepFailure>> {
    Box::pin(async move {
        let plan: EspPlan = match cx.section {
            None => EspPlan::default(),
            Some(v) => v.clone().try_into().map_err(|e: toml::de::Error| {
                StepFailure::new(
                    FailureKind::Input,
                    format!(
                        "[esp]: {}. Write mode = \"check\" or mode = \"create-recommended\".",
                        e.message()
                    ),
                )
            })?,
        };
        let Some(group) = cx.outcomes.group.clone() else {
            return Err(StepFailure::new(
                FailureKind::Input,
                "The Enrollment Status Page step needs the device group, which the run has not reached.",
            ));
        };
        let outcome = run_unattended(cx.graph, &group.id, &plan)
            .await
            .map_err(|e| StepFailure::new(e.failure_kind(), e.to_string()))?;
        for text in &outcome.problem_texts {
            (cx.note)(format!("Enrollment Status Page: {text}"));
        }
        let summary = match (&outcome.esp_name, outcome.created) {
            (Some(name), true) => format!("created \"{name}\" for {}", group.display_name),
            (Some(name), false) => format!(
                "the devices of {} get \"{name}\"{}",
                group.display_name,
                match outcome.problems.len() {
                    0 => String::new(),
                    1 => " (1 problem, see the warning)".into(),
                    n => format!(" ({n} problems, see the warnings)"),
                }
            ),
            (None, _) => format!("no Enrollment Status Page reaches {}", group.display_name),
        };
        cx.outcomes.esp = Some(outcome);
        Ok(summary)
    })
}

/// The ESP items of the validation report, read live for the report's group.
pub fn validate_items<'a>(
    graph: &'a GraphClient,
    inputs: &'a ValidateInputs,
) -> BoxFuture<'a, Vec<CheckItem>> {
    Box::pin(async move {
        let read = resolve(graph, &inputs.target.group_id).await;
        let checks = checks_of(read, inputs.outcomes.esp.as_ref());
        checks.into_iter().map(EspCheck::into_item).collect()
    })
}

/// Problems the person knowingly kept when the ESP step was completed ("Continue with this
/// ESP" on the page, `mode = "check"` in a plan) are warnings in the report, not failures:
/// only while the group's ESP is still the one the step saw and no new problem appeared.
fn accepted_at_the_step(r: &Resolution, outcome: Option<&EspOutcome>) -> bool {
    let Some(o) = outcome else { return false };
    o.group_id == r.group_id
        && o.esp_id.as_deref() == r.chosen_id()
        && r.problems
            .iter()
            .all(|p| o.problems.iter().any(|k| k == p.key()))
}

fn accept(checks: &mut [EspCheck]) {
    let step = crate::steps::StepId::Esp;
    for c in checks.iter_mut().filter(|c| c.verdict == Verdict::Fail) {
        c.verdict = Verdict::Pass;
        c.evidence.insert(
            0,
            format!(
                "Warning, kept knowingly in {} ({}): {}",
                step.step_n(),
                step.title(),
                c.fix.take().unwrap_or_default()
            ),
        );
    }
}
