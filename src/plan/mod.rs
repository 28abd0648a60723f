//! The plan file of `autopilot-wizard run --plan PLAN.toml`: the whole procedure (steps 2–7) for
//! one tenant, written down once and replayed without a window.
//!
//! Parsing refuses unknown keys and bad values before anything is sent, with the file, the line
//! and what to write instead: serde's own messages name the accepted keys and values, and the
//! checks serde cannot express (a group tag rule without tags, a missing CSV file) point at the
//! value through its span.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::graph::cloud::Cloud;
use crate::steps::group::{self, RuleSpec};
use crate::steps::profile::{ProfileForm, UserAccountType};

/// A problem in a plan file, worded for the person who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}{}", hint.as_ref().map(|h| format!("\n  {h}")).unwrap_or_default())]
pub struct PlanError {
    pub file: String,
    /// 1-based; 0 when the problem is the file as a whole (unreadable).
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// What to write instead, when there is a better sentence than the message's own.
    pub hint: Option<String>,
}

/// The plan as written, before the checks serde cannot make. Every table refuses keys it does
/// not know, so a typo is an error instead of a silently ignored setting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    tenant: RawTenant,
    deployers: RawDeployers,
    profile: RawProfile,
    group: RawGroup,
    devices: RawDevices,
    #[serde(default)]
    report: RawReport,
    /// Optional: wait after the validation for the devices to go through OOBE.
    #[serde(default)]
    deployment: Option<RawDeployment>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeployment {
    /// How long to follow the devices through OOBE, e.g. "2h".
    wait: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    /// Primary domain or tenant id.
    id: Spanned<String>,
    #[serde(default)]
    cloud: CloudName,
    #[serde(default)]
    client_id: Option<Spanned<String>>,
    #[serde(default)]
    graph_url: Option<Spanned<String>>,
    #[serde(default)]
    login_url: Option<Spanned<String>>,
    /// A CA certificate to trust besides the system's (TLS-inspecting proxy, `sim --tls`).
    #[serde(default)]
    ca_file: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum CloudName {
    #[default]
    Global,
    UsgovHigh,
    UsgovDod,
    China,
}

impl From<CloudName> for Cloud {
    fn from(c: CloudName) -> Cloud {
        match c {
            CloudName::Global => Cloud::Global,
            CloudName::UsgovHigh => Cloud::UsGovHigh,
            CloudName::UsgovDod => Cloud::UsGovDod,
            CloudName::China => Cloud::China,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeployers {
    #[serde(default)]
    users: Vec<Spanned<String>>,
    #[serde(default)]
    groups: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: Spanned<String>,
    /// Create the profile with the settings below when none has this name.
    #[serde(default)]
    create: bool,
    description: Option<String>,
    convert_all_targeted: Option<bool>,
    language: Option<String>,
    configure_keyboard_automatically: Option<bool>,
    hide_privacy_settings: Option<bool>,
    hide_eula: Option<bool>,
    hide_change_account_options: Option<bool>,
    user_account_type: Option<AccountType>,
    allow_preprovisioning: Option<bool>,
    device_name_template: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum AccountType {
    Standard,
    Administrator,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Spanned<String>,
    membership: Spanned<Membership>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    group_tags: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    purchase_order: Option<Spanned<String>>,
    /// Give the CSV rows without a group tag the plan's first tag before the upload.
    #[serde(default)]
    tag_untagged: Option<Spanned<bool>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Membership {
    Existing,
    GroupTag,
    AllAutopilot,
    PurchaseOrder,
    Assigned,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevices {
    csv: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    assignment_wait: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReport {
    html: Option<String>,
    json: Option<String>,
    text: Option<String>,
}

/// The tenant a plan works on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TenantPlan {
    /// Primary domain or tenant id, as the sign-in takes it.
    pub id: String,
    pub cloud: Cloud,
    /// Own app registration; `None` is Microsoft Graph Command Line Tools.
    pub client_id: Option<String>,
    pub graph_url: Option<String>,
    pub login_url: Option<String>,
    /// Extra CA certificate (PEM or DER), relative paths resolved against the plan's folder.
    pub ca_file: Option<PathBuf>,
}

/// Who will deploy: users by UPN, groups by display name.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct DeployersPlan {
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

/// The deployment profile: picked by name, or created with `form` when `create` is set and no
/// profile has the name.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProfilePlan {
    pub name: String,
    pub create: bool,
    pub form: ProfileForm,
}

/// How the device group gets its members.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum GroupPlan {
    /// A group that exists already, by display name.
    Existing { name: String },
    /// Create (or reuse by name) a group; `rule` `None` is an assigned (static) group.
    Create {
        name: String,
        description: String,
        rule: Option<RuleSpec>,
    },
}

impl GroupPlan {
    pub fn name(&self) -> &str {
        match self {
            GroupPlan::Existing { name } | GroupPlan::Create { name, .. } => name,
        }
    }
}

/// Where to write the validation report (paths already resolved against the plan's folder).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ReportPlan {
    pub html: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub text: Option<PathBuf>,
}

/// A checked plan: every value valid, every path resolved against the plan's folder.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Plan {
    /// The plan file, as given.
    pub path: PathBuf,
    pub tenant: TenantPlan,
    pub deployers: DeployersPlan,
    pub profile: ProfilePlan,
    pub group: GroupPlan,
    pub csv_files: Vec<PathBuf>,
    /// Rows of the CSV files without a group tag get the group's first tag (`tag_untagged`);
    /// otherwise such rows stop the run before the upload.
    pub tag_untagged: bool,
    /// How long to wait for each phase of the assignment (membership, profile).
    pub assignment_wait: Duration,
    pub report: ReportPlan,
    /// `[deployment] wait`: after the validation, follow the plan's devices through OOBE this
    /// long (until each succeeded or failed); `None`: the run ends with the validation.
    pub deployment_wait: Option<Duration>,
    /// The tables of registered steps the plan reader does not know itself (`[esp]`…), by name;
    /// each step reads its own (see `StepDef::plan_section`).
    pub sections: std::collections::BTreeMap<String, toml::Value>,
}

impl Plan {
    /// The table `name` of the plan, for a registered step's runner.
    pub fn section(&self, name: &str) -> Option<&toml::Value> {
        self.sections.get(name)
    }
}

/// The tables [`RawPlan`] reads itself.
const BUILT_IN_SECTIONS: &[&str] = &[
    "tenant",
    "deployers",
    "profile",
    "group",
    "devices",
    "report",
    "deployment",
];

/// Splits the tables of registered steps that [`RawPlan`] does not know out of `text`: their
/// values, and the text with their lines blanked (same length, so every span and line number
/// of the rest stays right).
/// The table `remove --plan` reads (removing devices is no step; `run --plan` leaves it alone).
pub const REMOVE_SECTION: &str = "remove";

fn split_step_sections(text: &str) -> (String, std::collections::BTreeMap<String, toml::Value>) {
    let extra: Vec<&str> = crate::steps::STEPS
        .iter()
        .map(|d| d.plan_section)
        .filter(|s| !BUILT_IN_SECTIONS.contains(s))
        .chain(std::iter::once(REMOVE_SECTION))
        .collect();
    split_sections(text, &extra)
}

fn split_sections(
    text: &str,
    extra: &[&str],
) -> (String, std::collections::BTreeMap<String, toml::Value>) {
    let mut sections = std::collections::BTreeMap::new();
    if extra.is_empty() {
        return (text.to_string(), sections);
    }
    // A file that does not parse is reported by the full parse below, with its position.
    let Ok(table) = text.parse::<toml::Table>() else {
        return (text.to_string(), sections);
    };
    for name in extra {
        if let Some(v) = table.get(*name) {
            sections.insert(name.to_string(), v.clone());
        }
    }
    if sections.is_empty() {
        return (text.to_string(), sections);
    }
    let header_name = |line: &str| -> Option<String> {
        let t = line.trim_start();
        let inner = t.strip_prefix("[[").or_else(|| t.strip_prefix('['))?;
        let end = inner.find(']')?;
        let first = inner[..end].split('.').next()?.trim().trim_matches('"');
        Some(first.to_string())
    };
    let mut out = String::with_capacity(text.len());
    let mut blank = false;
    for line in text.split_inclusive('\n') {
        if let Some(name) = header_name(line) {
            blank = sections.contains_key(&name);
        }
        if blank {
            out.extend(
                line.chars()
                    .map(|c| if c == '\n' || c == '\r' { c } else { ' ' }),
            );
        } else {
            out.push_str(line);
        }
    }
    (out, sections)
}

impl Plan {
    /// A short name for messages and the summary table: the file name without `.toml`.
    pub fn name(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string())
    }
}

/// The default wait for assignment when the plan does not say.
pub const DEFAULT_ASSIGNMENT_WAIT: Duration = Duration::from_secs(4 * 3600);

/// Reads and checks a plan file.
pub fn load(path: &Path) -> Result<Plan, PlanError> {
    let file = path.display().to_string();
    let whole = |message: String, hint: &str| PlanError {
        file: file.clone(),
        line: 0,
        column: 0,
        message,
        hint: Some(hint.into()),
    };
    if path.is_dir() {
        return Err(whole(
            "this is a folder, not a plan file".into(),
            "Give --plan the .toml file itself, e.g. --plan plans/contoso.toml.",
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        whole(
            format!("the plan could not be read: {e}"),
            "Check the path given to --plan.",
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let before = String::from_utf8_lossy(&e.as_bytes()[..at]).into_owned();
        let (line, column) = line_col(&before, before.len());
        PlanError {
            file: file.clone(),
            line,
            column,
            message: "the plan is not UTF-8 text".into(),
            hint: Some(
                "Save it as UTF-8 (in Notepad: File > Save as, Encoding: UTF-8) and run again."
                    .into(),
            ),
        }
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, &file, base, true)
}

/// Parses plan text. `file` names it in errors; relative paths are resolved against `base`.
/// With `check_files`, every CSV file must exist (the fuzz tests turn it off).
pub fn parse(text: &str, file: &str, base: &Path, check_files: bool) -> Result<Plan, PlanError> {
    let at = |span: Option<std::ops::Range<usize>>, message: String, hint: Option<String>| {
        let (line, column) = span.map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        PlanError {
            file: file.to_string(),
            line,
            column,
            message,
            hint,
        }
    };
    let (core_text, sections) = split_step_sections(text);
    let raw: RawPlan = toml::from_str(&core_text).map_err(|e| {
        let message = e.message().trim().to_string();
        let key = e.span().and_then(|s| key_at(&core_text, s.start));
        let hint = hint_for(&message, key.as_deref());
        at(e.span(), message, hint)
    })?;

    let tenant_id = raw.tenant.id.get_ref().trim().to_string();
    if tenant_id.is_empty() {
        return Err(at(
            Some(raw.tenant.id.span()),
            "the tenant id is empty".into(),
            Some(
                "Write the primary domain or the tenant id, e.g. id = \"contoso.onmicrosoft.com\"."
                    .into(),
            ),
        ));
    }
    if let Err(why) = check_tenant_id(&tenant_id) {
        return Err(at(
            Some(raw.tenant.id.span()),
            format!("the tenant id \"{}\" {why}", shorten(&tenant_id)),
            Some("Write the primary domain (e.g. id = \"contoso.onmicrosoft.com\") or the tenant id, a GUID such as \"72f988bf-86f1-41af-91ab-2d7cd011db47\".".into()),
        ));
    }
    let url = |v: &Option<Spanned<String>>, key: &str| -> Result<Option<String>, PlanError> {
        match v {
            None => Ok(None),
            Some(s) => check_root_url(s.get_ref(), key)
                .map(Some)
                .map_err(|(message, hint)| at(Some(s.span()), message, Some(hint))),
        }
    };
    let client_id = match &raw.tenant.client_id {
        None => None,
        Some(c) => {
            let v = c.get_ref().trim();
            if uuid::Uuid::parse_str(v).is_err() {
                return Err(at(
                    Some(c.span()),
                    format!("client_id \"{v}\" is not an application (client) id"),
                    Some("Copy the Application (client) ID of your app registration (a GUID), or leave client_id out to use Microsoft Graph Command Line Tools.".into()),
                ));
            }
            Some(v.to_string())
        }
    };
    let tenant = TenantPlan {
        id: tenant_id,
        cloud: raw.tenant.cloud.into(),
        client_id,
        graph_url: url(&raw.tenant.graph_url, "graph_url")?,
        login_url: url(&raw.tenant.login_url, "login_url")?,
        ca_file: raw
            .tenant
            .ca_file
            .as_ref()
            .map(|c| c.get_ref().trim())
            .filter(|c| !c.is_empty())
            .map(|c| base.join(c)),
    };

    let mut deployers = DeployersPlan::default();
    for u in &raw.deployers.users {
        let v = u.get_ref().trim();
        if !v.contains('@') || v.starts_with('@') || v.ends_with('@') {
            return Err(at(
                Some(u.span()),
                format!("\"{v}\" is not a user principal name"),
                Some(
                    "List deploying users by sign-in name, e.g. users = [\"rowan@contoso.com\"]."
                        .into(),
                ),
            ));
        }
        deployers.users.push(v.to_string());
    }
    for g in &raw.deployers.groups {
        let v = g.get_ref().trim();
        if v.is_empty() {
            return Err(at(
                Some(g.span()),
                "a deploying group name is empty".into(),
                Some("Write the group's display name, e.g. groups = [\"IT Technicians\"].".into()),
            ));
        }
        deployers.groups.push(v.to_string());
    }
    if deployers.users.is_empty() && deployers.groups.is_empty() {
        return Err(at(
            find_key(text, "[deployers]"),
            "no deploying users or groups are named".into(),
            Some("Add users = [\"someone@contoso.com\"] or groups = [\"IT Technicians\"] under [deployers]: the check of who may join devices needs them.".into()),
        ));
    }

    let p = &raw.profile;
    let profile_name = p.name.get_ref().trim().to_string();
    if profile_name.is_empty() {
        return Err(at(
            Some(p.name.span()),
            "the profile name is empty".into(),
            Some("Write the name of the deployment profile to use or create.".into()),
        ));
    }
    let n = profile_name.chars().count();
    if n > MAX_PROFILE_NAME {
        return Err(at(
            Some(p.name.span()),
            format!(
                "the profile name is {n} characters long; Intune takes at most {MAX_PROFILE_NAME}"
            ),
            Some("Shorten [profile] name.".into()),
        ));
    }
    let defaults = ProfileForm::default();
    let form = ProfileForm {
        name: profile_name.clone(),
        description: p.description.clone().unwrap_or(defaults.description),
        convert_all_targeted: p
            .convert_all_targeted
            .unwrap_or(defaults.convert_all_targeted),
        language: p.language.clone().unwrap_or(defaults.language),
        configure_keyboard_automatically: p
            .configure_keyboard_automatically
            .unwrap_or(defaults.configure_keyboard_automatically),
        hide_privacy_settings: p
            .hide_privacy_settings
            .unwrap_or(defaults.hide_privacy_settings),
        hide_eula: p.hide_eula.unwrap_or(defaults.hide_eula),
        hide_change_account_options: p
            .hide_change_account_options
            .unwrap_or(defaults.hide_change_account_options),
        user_account_type: match p.user_account_type {
            Some(AccountType::Administrator) => UserAccountType::Administrator,
            Some(AccountType::Standard) => UserAccountType::Standard,
            None => defaults.user_account_type,
        },
        allow_preprovisioning: p
            .allow_preprovisioning
            .unwrap_or(defaults.allow_preprovisioning),
        device_name_template: p
            .device_name_template
            .as_ref()
            .map(|t| t.get_ref().clone())
            .unwrap_or(defaults.device_name_template),
    };
    if p.create {
        // The same checks as the profile page, minus the ones that need the tenant's list.
        if let Err(errors) = crate::steps::profile::validate(&form, &[] as &[&str]) {
            let first = &errors[0];
            let span = match first.field {
                crate::steps::profile::ProfileField::DeviceNameTemplate => {
                    p.device_name_template.as_ref().map(|t| t.span())
                }
                crate::steps::profile::ProfileField::Name => Some(p.name.span()),
                _ => find_key(text, "[profile]"),
            };
            return Err(at(
                span,
                format!(
                    "profile setting \"{}\": {}",
                    first.field.label(),
                    first.message
                ),
                None,
            ));
        }
    } else if p.description.is_some()
        || p.convert_all_targeted.is_some()
        || p.language.is_some()
        || p.device_name_template.is_some()
        || p.user_account_type.is_some()
        || p.allow_preprovisioning.is_some()
        || p.hide_eula.is_some()
        || p.hide_privacy_settings.is_some()
        || p.hide_change_account_options.is_some()
        || p.configure_keyboard_automatically.is_some()
    {
        return Err(at(
            find_key(text, "[profile]"),
            "profile settings are given, but create is not set".into(),
            Some("Add create = true to create the profile with these settings when none has this name, or remove the settings to only pick an existing profile.".into()),
        ));
    }
    let profile = ProfilePlan {
        name: profile_name,
        create: p.create,
        form,
    };

    let g = &raw.group;
    let group_name = g.name.get_ref().trim().to_string();
    if group_name.is_empty() {
        return Err(at(
            Some(g.name.span()),
            "the group name is empty".into(),
            Some("Write the display name of the device group.".into()),
        ));
    }
    let n = group_name.chars().count();
    if n > MAX_GROUP_NAME {
        return Err(at(
            Some(g.name.span()),
            format!(
                "the group name is {n} characters long; Microsoft Entra takes at most {MAX_GROUP_NAME}"
            ),
            Some("Shorten [group] name.".into()),
        ));
    }
    if let Some(d) = &g.description {
        let n = d.chars().count();
        if n > MAX_GROUP_DESCRIPTION {
            return Err(at(
                find_key(text, "[group]"),
                format!(
                    "the group description is {n} characters long; Microsoft Entra takes at most {MAX_GROUP_DESCRIPTION}"
                ),
                Some("Shorten [group] description.".into()),
            ));
        }
    }
    let membership = *g.membership.get_ref();
    let unused = |present: bool, key: &str, span: Option<std::ops::Range<usize>>| {
        if present {
            Err(at(
                span,
                format!("{key} does not apply to membership = \"{}\"", membership_name(membership)),
                Some(match key {
                    "group_tags" => "Use membership = \"group-tag\" for a dynamic group by group tag, or remove group_tags.".into(),
                    _ => "Use membership = \"purchase-order\" for a dynamic group by purchase order, or remove purchase_order.".into(),
                }),
            ))
        } else {
            Ok(())
        }
    };
    if membership != Membership::GroupTag {
        unused(
            g.group_tags.is_some(),
            "group_tags",
            g.group_tags.as_ref().map(|t| t.span()),
        )?;
    }
    if membership != Membership::GroupTag
        && let Some(t) = &g.tag_untagged
    {
        return Err(at(
            Some(t.span()),
            format!(
                "tag_untagged does not apply to membership = \"{}\"",
                membership_name(membership)
            ),
            Some("Remove tag_untagged: only a group by group tag needs the rows' tags.".into()),
        ));
    }
    if membership != Membership::PurchaseOrder {
        unused(
            g.purchase_order.is_some(),
            "purchase_order",
            g.purchase_order.as_ref().map(|t| t.span()),
        )?;
    }
    let rule = match membership {
        Membership::Existing | Membership::Assigned => None,
        Membership::AllAutopilot => Some(RuleSpec::AllAutopilot),
        Membership::GroupTag => {
            let Some(tags) = &g.group_tags else {
                return Err(at(
                    Some(g.membership.span()),
                    "membership = \"group-tag\" needs the group tags".into(),
                    Some("Add group_tags = [\"HQ\"] under [group] (the tags in the CSV's Group Tag column).".into()),
                ));
            };
            Some((RuleSpec::GroupTags(tags.get_ref().clone()), tags.span()))
                .map(|(r, span)| check_rule(r, span, &at))
                .transpose()?
        }
        Membership::PurchaseOrder => {
            let Some(po) = &g.purchase_order else {
                return Err(at(
                    Some(g.membership.span()),
                    "membership = \"purchase-order\" needs the purchase order".into(),
                    Some("Add purchase_order = \"PO-1234\" under [group].".into()),
                ));
            };
            Some(check_rule(
                RuleSpec::PurchaseOrder(po.get_ref().clone()),
                po.span(),
                &at,
            )?)
        }
    };
    let group = match membership {
        Membership::Existing => {
            if g.description.is_some() {
                return Err(at(
                    find_key(text, "description"),
                    "description does not apply to an existing group".into(),
                    Some(
                        "Remove description, or choose a membership that creates the group.".into(),
                    ),
                ));
            }
            GroupPlan::Existing { name: group_name }
        }
        _ => GroupPlan::Create {
            description: g
                .description
                .clone()
                .unwrap_or_else(|| "Autopilot devices (created by autopilot-wizard)".into()),
            name: group_name,
            rule,
        },
    };

    let mut csv_files = Vec::new();
    if raw.devices.csv.get_ref().is_empty() {
        return Err(at(
            Some(raw.devices.csv.span()),
            "no CSV files are listed".into(),
            Some("List the hardware-hash files, e.g. csv = [\"devices.csv\"] (paths relative to the plan).".into()),
        ));
    }
    for c in raw.devices.csv.get_ref() {
        let p = base.join(c.get_ref());
        if check_files && p.is_dir() {
            return Err(at(
                Some(c.span()),
                format!("{} is a folder, not a CSV file", p.display()),
                Some("List each CSV file by name, e.g. csv = [\"devices/batch1.csv\"].".into()),
            ));
        }
        if check_files && !p.is_file() {
            return Err(at(
                Some(c.span()),
                format!("the CSV file {} does not exist", p.display()),
                Some("Paths are relative to the plan file's folder; check the name.".into()),
            ));
        }
        csv_files.push(p);
    }
    let assignment_wait = match &raw.devices.assignment_wait {
        None => DEFAULT_ASSIGNMENT_WAIT,
        Some(w) => wait_duration("assignment_wait", w, "\"30m\", \"4h\" or \"1h30m\"", &at)?,
    };
    let deployment_wait = match &raw.deployment {
        None => None,
        Some(d) => Some(wait_duration(
            "wait",
            &d.wait,
            "\"2h\", \"90m\" or \"1h30m\"",
            &at,
        )?),
    };
    let resolve = |p: &Option<String>| p.as_ref().map(|p| base.join(p));
    let report = ReportPlan {
        html: resolve(&raw.report.html),
        json: resolve(&raw.report.json),
        text: resolve(&raw.report.text),
    };
    let tag_untagged = g.tag_untagged.as_ref().is_some_and(|t| *t.get_ref());
    Ok(Plan {
        path: PathBuf::from(file),
        tenant,
        deployers,
        profile,
        group,
        csv_files,
        tag_untagged,
        assignment_wait,
        report,
        deployment_wait,
        sections,
    })
}

/// A positive duration written as `key = "…"`, or the plan error that says what is wrong with it.
fn wait_duration(
    key: &str,
    w: &Spanned<String>,
    examples: &str,
    at: &impl Fn(Option<std::ops::Range<usize>>, String, Option<String>) -> PlanError,
) -> Result<Duration, PlanError> {
    parse_duration(w.get_ref()).ok_or_else(|| {
        let v = w.get_ref().trim();
        let what = if v.starts_with('-') {
            "is negative: a wait cannot be"
        } else if v.chars().all(|c| c.is_ascii_digit() || "smhd".contains(c))
            && v.chars().any(|c| c.is_ascii_digit())
            && !v.chars().any(|c| matches!(c, '1'..='9'))
        {
            "is zero: the devices would never be waited for"
        } else {
            "is not a duration"
        };
        at(
            Some(w.span()),
            format!("{key} \"{}\" {what}", shorten(v)),
            Some(format!(
                "Write a positive number with s, m, h or d, e.g. {key} = {examples}."
            )),
        )
    })
}

fn check_rule(
    rule: RuleSpec,
    span: std::ops::Range<usize>,
    at: &impl Fn(Option<std::ops::Range<usize>>, String, Option<String>) -> PlanError,
) -> Result<RuleSpec, PlanError> {
    match group::build_rule(&rule) {
        Ok(_) => Ok(rule),
        Err(e) => Err(at(Some(span), e.message, None)),
    }
}

fn membership_name(m: Membership) -> &'static str {
    match m {
        Membership::Existing => "existing",
        Membership::GroupTag => "group-tag",
        Membership::AllAutopilot => "all-autopilot",
        Membership::PurchaseOrder => "purchase-order",
        Membership::Assigned => "assigned",
    }
}

/// A better "what to write instead" for serde's messages, which already list the accepted keys
/// and values. `key` is the key on the line the message points at, when there is one.
fn hint_for(message: &str, key: Option<&str>) -> Option<String> {
    let key = key.unwrap_or("key");
    if message.starts_with("missing field") {
        Some("Add the key; the example plan (packaging/example-plan.toml) shows every key with a comment.".into())
    } else if message.starts_with("unknown field") {
        Some("Check the spelling; keys are lower case with underscores.".into())
    } else if message.contains("expected a sequence") {
        Some(format!(
            "{key} takes a list in square brackets, e.g. {key} = [\"first\", \"second\"] (one item: [\"only\"])."
        ))
    } else if message.contains("expected a boolean") {
        Some(format!(
            "{key} takes true or false, without quotes: {key} = true."
        ))
    } else if message.contains("expected a string") {
        Some(format!(
            "{key} takes text in double quotes, e.g. {key} = \"…\"."
        ))
    } else if message.contains("expected a table") || message.contains("expected struct") {
        Some("This name is a table: write it as a [section] header with its keys below it.".into())
    } else if message.contains("unknown variant") {
        Some("Write one of the values listed, in double quotes and lower case.".into())
    } else {
        None
    }
}

/// The key written on the line that holds byte `offset`, for hints that name it.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.contains(char::is_whitespace)).then(|| key.to_string())
}

/// Intune's limit on a deployment profile's name (`displayName`: "Max allowed length is 200
/// chars", Graph v1.0 schema of windowsAutopilotDeploymentProfile).
pub const MAX_PROFILE_NAME: usize = 200;
/// Microsoft Entra's limit on a group's `displayName` (Graph's group resource: 256), the same
/// limit the group page applies (`steps::group::check_spec`).
pub const MAX_GROUP_NAME: usize = 256;
/// Microsoft Entra's limit on a group's description (1,024 characters in the Entra admin
/// center; the Graph schema states none, so this is the portal's).
pub const MAX_GROUP_DESCRIPTION: usize = 1024;

/// A value cut for a message: a 10 MB name is not repeated back whole.
fn shorten(s: &str) -> String {
    if s.chars().count() <= 60 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(57).collect::<String>())
    }
}

/// A tenant id as the sign-in takes it into its URL path: a domain name or a GUID.
pub fn check_tenant_id(id: &str) -> Result<(), &'static str> {
    if uuid::Uuid::parse_str(id).is_ok() {
        return Ok(());
    }
    if id.len() > 253 {
        return Err("is too long for a domain name");
    }
    let labels: Vec<&str> = id.split('.').collect();
    if labels.len() < 2 {
        return Err("is neither a domain name nor a GUID");
    }
    for l in labels {
        if l.is_empty()
            || l.len() > 63
            || l.starts_with('-')
            || l.ends_with('-')
            || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err("is neither a domain name nor a GUID");
        }
    }
    Ok(())
}

/// A Graph or login root as the client takes it: http(s), a host, nothing after it (the
/// client adds `/v1.0/…` and `/{tenant}/oauth2/…` itself). Returns it without a trailing `/`;
/// the error is a message and a hint.
pub fn check_root_url(value: &str, key: &str) -> Result<String, (String, String)> {
    let u = value.trim();
    let example = if key.contains("login") {
        "https://login.microsoftonline.com"
    } else {
        "https://graph.microsoft.com"
    };
    let hint = format!(
        "Write only the scheme and the host, such as {key} = \"{example}\", or leave {key} out to use the cloud's."
    );
    let parsed = match url::Url::parse(u) {
        Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => p,
        _ => {
            return Err((
                format!("{key} \"{}\" is not an http(s) URL", shorten(u)),
                hint,
            ));
        }
    };
    if !matches!(parsed.path(), "" | "/")
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err((
            format!(
                "{key} \"{}\" has more than the scheme and host (the client adds the path itself)",
                shorten(u)
            ),
            hint,
        ));
    }
    Ok(u.trim_end_matches('/').to_string())
}

/// The span of the first occurrence of `needle` in `text`, to point at a table or key serde
/// did not keep a span for.
fn find_key(text: &str, needle: &str) -> Option<std::ops::Range<usize>> {
    text.find(needle).map(|i| i..i + needle.len())
}

/// 1-based line and column of byte `offset`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut cut = offset;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let before = &text[..cut];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// `90s`, `30m`, `4h`, `1h30m`, or plain seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<u64>() {
        return (n > 0).then(|| Duration::from_secs(n));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    if !num.is_empty() || total == 0 {
        return None;
    }
    Some(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("4x"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("0m"), None);
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("a\nbc\n", 3), (2, 2));
        assert_eq!(line_col("é\nx", 1), (1, 1));
    }
}

#[cfg(test)]
mod section_tests {
    use super::*;

    /// A registered step's table leaves the text the built-in reader sees without moving a
    /// line, and reaches the step whole.
    #[test]
    fn a_step_table_is_split_out_and_every_line_stays_put() {
        let text = "[tenant]\nid = \"x\"\n\n[esp]\nmode = \"create\"\ntimeout = 60\n[esp.apps]\nx = 1\n\n[group]\nname = \"G\"\n";
        let (core, sections) = split_sections(text, &["esp"]);
        assert_eq!(core.len(), text.len());
        assert_eq!(core.lines().count(), text.lines().count());
        assert!(!core.contains("esp") && !core.contains("mode"));
        assert!(core.contains("[group]\nname = \"G\""));
        let esp = &sections["esp"];
        assert_eq!(esp["mode"].as_str(), Some("create"));
        assert_eq!(esp["apps"]["x"].as_integer(), Some(1));
        let (same, none) = split_sections(text, &[]);
        assert_eq!(same, text);
        assert!(none.is_empty());
    }
}
