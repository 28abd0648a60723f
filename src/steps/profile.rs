//! Step 3: the Windows Autopilot deployment profile (user-driven, Microsoft Entra join), and the
//! profile-to-group assignment that step 4 uses.
//!
//! - [`list_profiles`] reads what exists; [`pick_profile`] re-reads a chosen one and says why it
//!   may be the wrong kind ([`pick_warnings`]).
//! - [`validate`] turns a [`ProfileForm`] into a [`ValidProfile`] (or field errors);
//!   [`create_profile`] creates it, reads it back and compares every setting sent. Re-running is
//!   safe: a profile with the same name is reused, never created twice.
//! - [`assign_to_group`] assigns a profile to a group (recognising an existing assignment) and
//!   confirms it by reading the assignments back; [`conflicts_for_group`] lists other profiles
//!   that would also reach the group's devices, and which one wins.
//!
//! Every Autopilot call is beta (reference §0.1).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::graph::models::profile::{
    AssignmentTarget, CreateAssignmentBody, CreateProfileBody, DeploymentMode, DeploymentProfile,
    JoinType, LANGUAGE_OS_DEFAULT, ODATA_TYPE_ENTRA_JOIN, ODATA_TYPE_OOBE_SETTINGS,
    OobeSettingsBody, PROFILES_PATH, ProfileAssignment,
};
use crate::graph::{ApiVersion, GraphClient, GraphError};

use crate::steps::registry::Permission;

/// Autopilot profiles, devices, imports and enrollment configurations (Intune service config).
pub const SERVICE_CONFIG: Permission =
    Permission::new("DeviceManagementServiceConfig.ReadWrite.All", &[]);

/// Intune's limit of Autopilot profiles per tenant (procedure §1.5).
pub const MAX_PROFILES_PER_TENANT: usize = 350;
/// Windows computer names are at most 15 characters (NetBIOS).
pub const MAX_DEVICE_NAME_LEN: usize = 15;
/// How many characters `%SERIAL%` is counted as. Serial numbers of common OEMs: Dell 7,
/// Lenovo 8, HP 10, Microsoft Surface 12. Virtual machines and a few vendors have longer ones,
/// which Windows cuts off; 12 covers the physical PCs a small office buys.
pub const SERIAL_WORST_CASE_LEN: usize = 12;

/// What a profile is saved as in [`crate::steps::Outcomes`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProfileRef {
    pub id: String,
    pub display_name: String,
}

impl From<&DeploymentProfile> for ProfileRef {
    fn from(p: &DeploymentProfile) -> Self {
        ProfileRef {
            id: p.id.clone(),
            display_name: p.display_name.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "You are not allowed to {action}. Sign in with an account that has the Intune Administrator role \
         (or an Intune role with all \"Enrollment programs\" permissions), and make sure an administrator \
         granted this app consent for DeviceManagementServiceConfig.ReadWrite.All. ({detail})"
    )]
    Forbidden { action: String, detail: String },
    #[error("Microsoft Graph rejected the {what}{}: {message} Correct it and try again.", field_note(.property))]
    Rejected {
        what: String,
        /// The wire property the service named, such as `deviceNameTemplate`.
        property: Option<String>,
        /// The form field that property belongs to, when there is one.
        field: Option<ProfileField>,
        message: String,
    },
    #[error(
        "The tenant already has {count} Autopilot deployment profiles, the most Intune allows \
         ({MAX_PROFILES_PER_TENANT}). Pick an existing profile, or delete profiles you no longer use in \
         Intune (Devices > Windows > Enrollment > Deployment profiles)."
    )]
    TenantLimit { count: usize },
    #[error(
        "The deployment profile {id} does not exist (any more). It may have been deleted in Intune; reload the list."
    )]
    ProfileNotFound { id: String },
    #[error(
        "Intune accepted the request, but reading it back did not show it: {detail}. Wait a minute and run this step again; \
         it will find what was created."
    )]
    NotConfirmed { detail: String },
    #[error(
        "This profile excludes the group (assignment {assignment_id}), so it cannot also be assigned to it. \
         Remove the exclusion in Intune (profile > Assignments) and try again."
    )]
    GroupExcluded { assignment_id: String },
    #[error("{0}")]
    Graph(GraphError),
}

fn field_note(property: &Option<String>) -> String {
    match property {
        Some(p) => format!(" (setting '{p}')"),
        None => String::new(),
    }
}

impl ProfileError {
    /// Classifies a Graph error of the call that `action` describes ("create the deployment
    /// profile", ...) and `what` names ("profile", "assignment").
    pub fn from_graph(e: GraphError, action: &str, what: &str) -> ProfileError {
        match e.status() {
            Some(403) => ProfileError::Forbidden {
                action: action.to_string(),
                detail: graph_message(&e),
            },
            Some(400) => {
                let message = graph_message(&e);
                let property = property_named(&message);
                ProfileError::Rejected {
                    what: what.to_string(),
                    field: property.as_deref().and_then(ProfileField::from_property),
                    property,
                    message,
                }
            }
            _ => ProfileError::Graph(e),
        }
    }
}

fn graph_message(e: &GraphError) -> String {
    match e {
        GraphError::Service { code, message, .. } => format!("{code}: {message}"),
        other => other.to_string(),
    }
}

/// The property a Graph 400 message names: `property 'x'` or `property named 'x'`.
pub fn property_named(message: &str) -> Option<String> {
    for marker in ["property named '", "property '"] {
        if let Some(start) = message.find(marker) {
            let rest = &message[start + marker.len()..];
            if let Some(end) = rest.find('\'') {
                let name = &rest[..end];
                if !name.is_empty() {
                    return Some(name.to_string());
                }
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// The form

/// User account type on the device after deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum UserAccountType {
    Administrator,
    #[default]
    Standard,
}

impl UserAccountType {
    pub fn wire(self) -> &'static str {
        match self {
            UserAccountType::Administrator => "administrator",
            UserAccountType::Standard => "standard",
        }
    }
}

/// Every setting a person chooses for the profile (procedure §1.5). Deployment mode and join
/// type are fixed by this wizard: user-driven, Microsoft Entra joined.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ProfileForm {
    pub name: String,
    pub description: String,
    /// "Convert all targeted devices to Autopilot".
    pub convert_all_targeted: bool,
    /// A locale such as `en-US`, or [`LANGUAGE_OS_DEFAULT`].
    pub language: String,
    pub configure_keyboard_automatically: bool,
    pub hide_privacy_settings: bool,
    pub hide_eula: bool,
    pub hide_change_account_options: bool,
    pub user_account_type: UserAccountType,
    pub allow_preprovisioning: bool,
    /// Empty: no template (Windows picks a name).
    pub device_name_template: String,
}

impl Default for ProfileForm {
    fn default() -> Self {
        ProfileForm {
            name: "Autopilot - User-driven - Entra join".into(),
            description: "Created by autopilot-wizard".into(),
            convert_all_targeted: false,
            language: LANGUAGE_OS_DEFAULT.into(),
            configure_keyboard_automatically: false,
            hide_privacy_settings: true,
            hide_eula: true,
            hide_change_account_options: true,
            user_account_type: UserAccountType::Standard,
            allow_preprovisioning: false,
            device_name_template: String::new(),
        }
    }
}

/// The fields of [`ProfileForm`], for errors shown on the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ProfileField {
    Name,
    Description,
    ConvertAllTargeted,
    Language,
    ConfigureKeyboard,
    PrivacySettings,
    Eula,
    ChangeAccountOptions,
    UserAccountType,
    Preprovisioning,
    DeviceNameTemplate,
    /// The tenant as a whole (the profile limit).
    Tenant,
}

impl ProfileField {
    pub fn label(self) -> &'static str {
        match self {
            ProfileField::Name => "Name",
            ProfileField::Description => "Description",
            ProfileField::ConvertAllTargeted => "Convert all targeted devices to Autopilot",
            ProfileField::Language => "Language (Region)",
            ProfileField::ConfigureKeyboard => "Automatically configure keyboard",
            ProfileField::PrivacySettings => "Privacy settings",
            ProfileField::Eula => "Microsoft Software License Terms",
            ProfileField::ChangeAccountOptions => "Hide change account options",
            ProfileField::UserAccountType => "User account type",
            ProfileField::Preprovisioning => "Allow pre-provisioned deployment",
            ProfileField::DeviceNameTemplate => "Device name template",
            ProfileField::Tenant => "Tenant",
        }
    }

    /// The form field a Graph property (either generation) belongs to.
    pub fn from_property(p: &str) -> Option<ProfileField> {
        let last = p.rsplit('.').next().unwrap_or(p);
        Some(match last {
            "displayName" => ProfileField::Name,
            "description" => ProfileField::Description,
            "extractHardwareHash" | "hardwareHashExtractionEnabled" => {
                ProfileField::ConvertAllTargeted
            }
            "language" | "locale" => ProfileField::Language,
            "skipKeyboardSelectionPage" | "keyboardSelectionPageSkipped" => {
                ProfileField::ConfigureKeyboard
            }
            "hidePrivacySettings" | "privacySettingsHidden" => ProfileField::PrivacySettings,
            "hideEULA" | "eulaHidden" => ProfileField::Eula,
            "hideEscapeLink" | "escapeLinkHidden" => ProfileField::ChangeAccountOptions,
            "userType" => ProfileField::UserAccountType,
            "enableWhiteGlove" | "preprovisioningAllowed" => ProfileField::Preprovisioning,
            "deviceNameTemplate" => ProfileField::DeviceNameTemplate,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    pub field: ProfileField,
    pub message: String,
}

/// A form that passed [`validate`]; the only input [`create_profile`] takes.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidProfile {
    form: ProfileForm,
}

impl ValidProfile {
    pub fn form(&self) -> &ProfileForm {
        &self.form
    }
}

/// Checks the form against Intune's rules and the profiles that exist. `existing_names` are the
/// display names of every profile in the tenant (their number is checked against the limit).
pub fn validate<S: AsRef<str>>(
    form: &ProfileForm,
    existing_names: &[S],
) -> Result<ValidProfile, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut err = |field, message: String| errors.push(FieldError { field, message });
    let name = form.name.trim();
    if name.is_empty() {
        err(
            ProfileField::Name,
            "Enter a name for the profile, e.g. \"Autopilot - User-driven - Entra join\".".into(),
        );
    } else if existing_names
        .iter()
        .any(|n| n.as_ref().trim().eq_ignore_ascii_case(name))
    {
        err(
            ProfileField::Name,
            format!(
                "A profile named \"{name}\" already exists. Use it from the list of existing profiles, or choose another name."
            ),
        );
    }
    if existing_names.len() >= MAX_PROFILES_PER_TENANT {
        err(
            ProfileField::Tenant,
            format!(
                "The tenant already has {} profiles, the most Intune allows ({MAX_PROFILES_PER_TENANT}). Pick an existing profile or delete unused ones in Intune.",
                existing_names.len()
            ),
        );
    }
    if form.description.chars().count() > 1500 {
        err(
            ProfileField::Description,
            "The description is longer than 1500 characters; shorten it.".into(),
        );
    }
    if let Err(m) = check_language(&form.language) {
        err(ProfileField::Language, m);
    }
    if let Err(m) = check_device_name_template(&form.device_name_template) {
        err(ProfileField::DeviceNameTemplate, m);
    }
    if errors.is_empty() {
        let mut form = form.clone();
        form.name = name.to_string();
        form.device_name_template = form.device_name_template.trim().to_string();
        form.language = form.language.trim().to_string();
        Ok(ValidProfile { form })
    } else {
        Err(errors)
    }
}

/// `os-default`, `user-select`, or a locale tag such as `en-US`, `de-DE`, `sr-Latn-RS`.
fn check_language(lang: &str) -> Result<(), String> {
    let l = lang.trim();
    if l.is_empty() || l == LANGUAGE_OS_DEFAULT || l == "user-select" {
        return Ok(());
    }
    let parts: Vec<&str> = l.split('-').collect();
    let ok = parts.len() >= 2
        && (2..=3).contains(&parts[0].len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 8 && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{l}\" is not a language and region such as en-US or de-DE. Choose one from the list, or \"Operating system default\"."
        ))
    }
}

/// Intune's device name rules (procedure §1.5): at most 15 characters after the macros expand,
/// letters, digits and hyphens only, not all digits, only `%SERIAL%` and `%RAND:x%`.
pub fn check_device_name_template(template: &str) -> Result<(), String> {
    let t = template.trim();
    if t.is_empty() {
        return Ok(());
    }
    let mut worst_len = 0usize;
    let mut literal_non_digit = false;
    let mut has_serial = false;
    let mut rest = t;
    while let Some(c) = rest.chars().next() {
        if c == '%' {
            let after = &rest[1..];
            let Some(end) = after.find('%') else {
                return Err(
                    "The template has a '%' without its closing '%'. Macros are written %SERIAL% or %RAND:x%, e.g. %RAND:4%."
                        .into(),
                );
            };
            let name = &after[..end];
            if name == "SERIAL" {
                worst_len += SERIAL_WORST_CASE_LEN;
                has_serial = true;
            } else if let Some(n) = name.strip_prefix("RAND:") {
                match n.parse::<usize>() {
                    Ok(x) if x >= 1 => worst_len += x,
                    _ => {
                        return Err(format!(
                            "%{name}% is not valid: write %RAND:x% with x the number of random digits, e.g. %RAND:4%."
                        ));
                    }
                }
            } else if name.eq_ignore_ascii_case("SERIAL")
                || name.to_ascii_uppercase().starts_with("RAND:")
            {
                return Err(format!(
                    "Write the macro %{name}% in capitals: %{}%.",
                    name.to_ascii_uppercase()
                ));
            } else {
                return Err(format!(
                    "%{name}% is not a supported macro. Only %SERIAL% (the serial number) and %RAND:x% (x random digits) can be used."
                ));
            }
            rest = &after[end + 1..];
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '-' {
            if !c.is_ascii_digit() {
                literal_non_digit = true;
            }
            worst_len += 1;
        } else {
            let shown = if c == ' ' {
                "a space".to_string()
            } else {
                format!("'{c}'")
            };
            return Err(format!(
                "The template contains {shown}. Device names can contain only letters (A-Z), digits and hyphens."
            ));
        }
        rest = &rest[c.len_utf8()..];
    }
    if worst_len > MAX_DEVICE_NAME_LEN {
        let serial_note = if has_serial {
            format!(
                " %SERIAL% is counted as {SERIAL_WORST_CASE_LEN} characters, the longest common serial number (Dell 7, Lenovo 8, HP 10, Surface 12); Windows cuts longer names."
            )
        } else {
            String::new()
        };
        return Err(format!(
            "Device names can be at most {MAX_DEVICE_NAME_LEN} characters, but this template can produce {worst_len}.{serial_note} Shorten the fixed text or use fewer random digits."
        ));
    }
    if !literal_non_digit {
        return Err(
            "Device names cannot be all digits, and the macros can produce only digits (random digits; many serial numbers are all digits). Add a letter or a hyphen, e.g. PC-%RAND:6%."
                .into(),
        );
    }
    Ok(())
}

/// The create body for `valid` (old property names, reference §3.2). Always user-driven
/// (`singleUser`) and Microsoft Entra join.
pub fn create_body(valid: &ValidProfile) -> CreateProfileBody {
    let f = &valid.form;
    CreateProfileBody {
        odata_type: ODATA_TYPE_ENTRA_JOIN.into(),
        display_name: f.name.clone(),
        description: f.description.clone(),
        language: if f.language.is_empty() {
            LANGUAGE_OS_DEFAULT.into()
        } else {
            f.language.clone()
        },
        device_name_template: f.device_name_template.clone(),
        device_type: "windowsPc".into(),
        enable_white_glove: f.allow_preprovisioning,
        extract_hardware_hash: f.convert_all_targeted,
        role_scope_tag_ids: vec!["0".into()],
        out_of_box_experience_settings: OobeSettingsBody {
            odata_type: ODATA_TYPE_OOBE_SETTINGS.into(),
            hide_privacy_settings: f.hide_privacy_settings,
            hide_eula: f.hide_eula,
            user_type: f.user_account_type.wire().into(),
            device_usage_type: "singleUser".into(),
            skip_keyboard_selection_page: f.configure_keyboard_automatically,
            hide_escape_link: f.hide_change_account_options,
        },
    }
}

/// The assignment body `assign_to_group` sends.
pub fn assignment_body(group_id: &str) -> CreateAssignmentBody {
    CreateAssignmentBody::group(group_id)
}

// ---------------------------------------------------------------------------------------------
// Read-back comparison

/// One setting, as sent and as read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SettingCheck {
    pub setting: String,
    pub sent: String,
    pub read_back: String,
}

impl SettingCheck {
    pub fn matches(&self) -> bool {
        self.sent == self.read_back
    }
}

/// Every setting sent, compared with what Graph returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Comparison {
    pub checks: Vec<SettingCheck>,
}

impl Comparison {
    pub fn all_match(&self) -> bool {
        self.checks.iter().all(|c| c.matches())
    }

    pub fn differences(&self) -> Vec<&SettingCheck> {
        self.checks.iter().filter(|c| !c.matches()).collect()
    }

    /// "Read back from Graph: all 14 settings match" or the number that differ.
    pub fn summary(&self) -> String {
        let d = self.differences().len();
        if d == 0 {
            format!(
                "Read back from Graph: all {} settings match",
                self.checks.len()
            )
        } else {
            format!(
                "Read back from Graph: {d} of {} settings differ from what was sent",
                self.checks.len()
            )
        }
    }
}

fn yes_no(b: Option<bool>) -> String {
    match b {
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
        None => "(not returned)".into(),
    }
}

fn shown(s: Option<&str>) -> String {
    match s {
        Some(s) => s.to_string(),
        None => "(not returned)".into(),
    }
}

/// Compares every setting of `body` with `read` (the profile read back).
pub fn compare(body: &CreateProfileBody, read: &DeploymentProfile) -> Comparison {
    let o = &body.out_of_box_experience_settings;
    let r = &read.oobe;
    // An empty value and "not set" are the same setting to Intune.
    let lang = |s: Option<&str>| match s {
        None | Some("") => LANGUAGE_OS_DEFAULT.to_string(),
        Some(s) => s.to_string(),
    };
    let template = |s: Option<&str>| s.unwrap_or("").to_string();
    let row = |setting: &str, sent: String, read_back: String| SettingCheck {
        setting: setting.to_string(),
        sent,
        read_back,
    };
    let checks = vec![
        row(
            "Join type",
            JoinType::from_odata_type(Some(&body.odata_type)).label(),
            read.join_type().label(),
        ),
        row(
            "Deployment mode",
            DeploymentMode::from_usage(Some(&o.device_usage_type)).label(),
            read.mode().label(),
        ),
        row("Name", body.display_name.clone(), read.display_name.clone()),
        row(
            "Description",
            body.description.clone(),
            shown(read.description.as_deref()),
        ),
        row(
            ProfileField::Language.label(),
            lang(Some(&body.language)),
            lang(read.locale.as_deref()),
        ),
        row(
            ProfileField::DeviceNameTemplate.label(),
            template(Some(&body.device_name_template)),
            template(read.device_name_template.as_deref()),
        ),
        row(
            "Device type",
            body.device_type.clone(),
            shown(read.device_type.as_deref()),
        ),
        row(
            ProfileField::ConvertAllTargeted.label(),
            yes_no(Some(body.extract_hardware_hash)),
            yes_no(read.convert_all_targeted),
        ),
        row(
            ProfileField::Preprovisioning.label(),
            yes_no(Some(body.enable_white_glove)),
            yes_no(read.preprovisioning_allowed),
        ),
        row(
            "Hide privacy settings",
            yes_no(Some(o.hide_privacy_settings)),
            yes_no(r.privacy_settings_hidden),
        ),
        row(
            "Hide license terms (EULA)",
            yes_no(Some(o.hide_eula)),
            yes_no(r.eula_hidden),
        ),
        row(
            ProfileField::ChangeAccountOptions.label(),
            yes_no(Some(o.hide_escape_link)),
            yes_no(r.escape_link_hidden),
        ),
        row(
            ProfileField::UserAccountType.label(),
            o.user_type.clone(),
            shown(r.user_type.as_deref()),
        ),
        row(
            ProfileField::ConfigureKeyboard.label(),
            yes_no(Some(o.skip_keyboard_selection_page)),
            yes_no(r.keyboard_selection_page_skipped),
        ),
        row(
            "Scope tags",
            body.role_scope_tag_ids.join(", "),
            read.role_scope_tag_ids.join(", "),
        ),
    ];
    Comparison { checks }
}

// ---------------------------------------------------------------------------------------------
// Listing, picking, creating

/// Every deployment profile in the tenant, in the order Graph returns them.
pub async fn list_profiles(graph: &GraphClient) -> Result<Vec<DeploymentProfile>, ProfileError> {
    graph
        .get_all(ApiVersion::Beta, PROFILES_PATH)
        .await
        .map_err(|e| {
            ProfileError::from_graph(e, "read the Autopilot deployment profiles", "request")
        })
}

/// Reads one profile; 404 is [`ProfileError::ProfileNotFound`].
pub async fn get_profile(graph: &GraphClient, id: &str) -> Result<DeploymentProfile, ProfileError> {
    let path = format!("{PROFILES_PATH}/{}", crate::graph::client::encode(id));
    graph.get_json(ApiVersion::Beta, &path).await.map_err(|e| {
        if e.is_not_found() {
            ProfileError::ProfileNotFound { id: id.to_string() }
        } else {
            ProfileError::from_graph(e, "read the Autopilot deployment profile", "request")
        }
    })
}

/// Why a profile may not fit this wizard's procedure; empty when it is user-driven Entra join.
pub fn pick_warnings(p: &DeploymentProfile) -> Vec<String> {
    let mut w = Vec::new();
    match p.mode() {
        DeploymentMode::UserDriven => {}
        DeploymentMode::SelfDeploying => w.push(format!(
            "\"{}\" is a self-deploying profile (shared devices, no user sign-in during setup, TPM 2.0 required). \
             This wizard sets up user-driven deployment; pick or create a user-driven profile unless you really want self-deploying.",
            p.display_name
        )),
        other => w.push(format!(
            "\"{}\" has deployment mode {}; this wizard expects a user-driven profile.",
            p.display_name,
            other.label()
        )),
    }
    match p.join_type() {
        JoinType::EntraJoin => {}
        JoinType::HybridJoin => w.push(format!(
            "\"{}\" joins devices to on-premises Active Directory (hybrid join), which needs a domain-join profile and \
             the Intune Connector. This wizard sets up Microsoft Entra join; pick or create an Entra join profile.",
            p.display_name
        )),
        other => w.push(format!(
            "\"{}\" has {}; this wizard expects Microsoft Entra join.",
            p.display_name,
            other.label()
        )),
    }
    w
}

/// A profile chosen from the list, read back from Graph.
#[derive(Debug, Clone, PartialEq)]
pub struct PickedProfile {
    pub profile: DeploymentProfile,
    pub warnings: Vec<String>,
}

/// Re-reads the chosen profile (it may have changed or gone since the list was read).
pub async fn pick_profile(graph: &GraphClient, id: &str) -> Result<PickedProfile, ProfileError> {
    let profile = get_profile(graph, id).await?;
    let warnings = pick_warnings(&profile);
    Ok(PickedProfile { profile, warnings })
}

/// What [`create_profile`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateOutcome {
    /// The profile as read back from Graph.
    pub profile: DeploymentProfile,
    /// False when a profile with the same name existed and was reused (nothing was sent).
    pub created: bool,
    /// The form's settings against the profile read back. For a reused profile, differences
    /// are settings the existing profile has otherwise than the form.
    pub comparison: Comparison,
    pub warnings: Vec<String>,
}

/// Creates the profile unless one with the same name exists, then reads it back and compares
/// every setting sent.
pub async fn create_profile(
    graph: &GraphClient,
    valid: &ValidProfile,
) -> Result<CreateOutcome, ProfileError> {
    let body = create_body(valid);
    let existing = list_profiles(graph).await?;
    if let Some(p) = existing.iter().find(|p| {
        p.display_name
            .trim()
            .eq_ignore_ascii_case(&body.display_name)
    }) {
        let profile = get_profile(graph, &p.id).await?;
        return Ok(CreateOutcome {
            comparison: compare(&body, &profile),
            warnings: pick_warnings(&profile),
            profile,
            created: false,
        });
    }
    if existing.len() >= MAX_PROFILES_PER_TENANT {
        return Err(ProfileError::TenantLimit {
            count: existing.len(),
        });
    }
    let created: DeploymentProfile = graph
        .post_json(ApiVersion::Beta, PROFILES_PATH, &body)
        .await
        .map_err(|e| {
            ProfileError::from_graph(e, "create Autopilot deployment profiles", "profile")
        })?;
    if created.id.is_empty() {
        return Err(ProfileError::NotConfirmed {
            detail: "the create answer carried no profile id".into(),
        });
    }
    let profile = read_back(graph, &created.id).await?;
    Ok(CreateOutcome {
        comparison: compare(&body, &profile),
        warnings: pick_warnings(&profile),
        profile,
        created: true,
    })
}

/// GET by id, retrying a few 404s: a new object may not be readable at once (reference §8).
async fn read_back(graph: &GraphClient, id: &str) -> Result<DeploymentProfile, ProfileError> {
    let mut delay = Duration::from_millis(250);
    for attempt in 0..6 {
        match get_profile(graph, id).await {
            Err(ProfileError::ProfileNotFound { .. }) if attempt < 5 => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(8));
            }
            Err(ProfileError::ProfileNotFound { .. }) => {
                return Err(ProfileError::NotConfirmed {
                    detail: format!("the new profile {id} could not be read back"),
                });
            }
            other => return other,
        }
    }
    Err(ProfileError::NotConfirmed {
        detail: format!("the new profile {id} could not be read back"),
    })
}

// ---------------------------------------------------------------------------------------------
// Assignment (used by step 4)

/// Assignments of one profile.
pub async fn list_assignments(
    graph: &GraphClient,
    profile_id: &str,
) -> Result<Vec<ProfileAssignment>, ProfileError> {
    let path = format!(
        "{PROFILES_PATH}/{}/assignments",
        crate::graph::client::encode(profile_id)
    );
    graph.get_all(ApiVersion::Beta, &path).await.map_err(|e| {
        if e.is_not_found() {
            ProfileError::ProfileNotFound {
                id: profile_id.to_string(),
            }
        } else {
            ProfileError::from_graph(e, "read the profile's assignments", "request")
        }
    })
}

/// What [`assign_to_group`] did; either way the assignment was read back and targets the group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AssignmentOutcome {
    Created { assignment_id: String },
    AlreadyAssigned { assignment_id: String },
}

impl AssignmentOutcome {
    pub fn assignment_id(&self) -> &str {
        match self {
            AssignmentOutcome::Created { assignment_id }
            | AssignmentOutcome::AlreadyAssigned { assignment_id } => assignment_id,
        }
    }
}

fn includes_group(a: &ProfileAssignment, group_id: &str) -> bool {
    matches!(&a.target, AssignmentTarget::Group(g) if g.eq_ignore_ascii_case(group_id))
}

fn excludes_group(a: &ProfileAssignment, group_id: &str) -> bool {
    matches!(&a.target, AssignmentTarget::ExcludedGroup(g) if g.eq_ignore_ascii_case(group_id))
}

/// The id of the profile's assignment to the group, if there is one. A read only: checking a
/// step again after a restart must not assign what someone removed meanwhile.
pub async fn assignment_to_group(
    graph: &GraphClient,
    profile_id: &str,
    group_id: &str,
) -> Result<Option<String>, ProfileError> {
    let assignments = list_assignments(graph, profile_id).await?;
    Ok(assignments
        .iter()
        .find(|a| includes_group(a, group_id))
        .map(|a| a.id.clone()))
}

/// Assigns the profile to the group (read back), then lists the other profiles that would win
/// over it for the group's devices: the step-4 action of the page and of `run --plan`.
pub async fn assign_and_check(
    graph: &GraphClient,
    profile_id: &str,
    group_id: &str,
) -> Result<(AssignmentOutcome, Vec<Conflict>), ProfileError> {
    let assigned = assign_to_group(graph, profile_id, group_id).await?;
    let conflicts = conflicts_for_group(graph, group_id, profile_id).await?;
    Ok((assigned, conflicts))
}

/// Assigns the profile to the group, unless it already is, and confirms by reading the
/// assignments back.
pub async fn assign_to_group(
    graph: &GraphClient,
    profile_id: &str,
    group_id: &str,
) -> Result<AssignmentOutcome, ProfileError> {
    let before = list_assignments(graph, profile_id).await?;
    if let Some(a) = before.iter().find(|a| includes_group(a, group_id)) {
        return Ok(AssignmentOutcome::AlreadyAssigned {
            assignment_id: a.id.clone(),
        });
    }
    if let Some(a) = before.iter().find(|a| excludes_group(a, group_id)) {
        return Err(ProfileError::GroupExcluded {
            assignment_id: a.id.clone(),
        });
    }
    let path = format!(
        "{PROFILES_PATH}/{}/assignments",
        crate::graph::client::encode(profile_id)
    );
    let posted: Result<ProfileAssignment, GraphError> = graph
        .post_json(ApiVersion::Beta, &path, &assignment_body(group_id))
        .await;
    let created = match posted {
        Ok(_) => true,
        // Someone (or an earlier attempt whose answer was lost) assigned it meanwhile: the
        // read-back below decides.
        Err(e) if e.status() == Some(409) => false,
        Err(e) if e.is_not_found() => {
            return Err(ProfileError::ProfileNotFound {
                id: profile_id.to_string(),
            });
        }
        Err(e) => {
            return Err(ProfileError::from_graph(
                e,
                "assign Autopilot deployment profiles",
                "assignment",
            ));
        }
    };
    let after = list_assignments(graph, profile_id).await?;
    match after.iter().find(|a| includes_group(a, group_id)) {
        Some(a) if created => Ok(AssignmentOutcome::Created {
            assignment_id: a.id.clone(),
        }),
        Some(a) => Ok(AssignmentOutcome::AlreadyAssigned {
            assignment_id: a.id.clone(),
        }),
        None => Err(ProfileError::NotConfirmed {
            detail: format!("the profile's assignments do not include group {group_id}"),
        }),
    }
}

/// Removes one assignment of the profile (used to undo an assignment this wizard made on the
/// wrong group) and confirms by reading the assignments back. An assignment already gone
/// counts as removed.
pub async fn remove_assignment(
    graph: &GraphClient,
    profile_id: &str,
    assignment_id: &str,
) -> Result<(), ProfileError> {
    let path = format!(
        "{PROFILES_PATH}/{}/assignments/{}",
        crate::graph::client::encode(profile_id),
        crate::graph::client::encode(assignment_id)
    );
    match graph.delete(ApiVersion::Beta, &path).await {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => {
            return Err(ProfileError::from_graph(
                e,
                "remove Autopilot profile assignments",
                "request",
            ));
        }
    }
    let after = list_assignments(graph, profile_id).await?;
    if after.iter().any(|a| a.id == assignment_id) {
        return Err(ProfileError::NotConfirmed {
            detail: format!("the assignment {assignment_id} is still listed"),
        });
    }
    Ok(())
}

/// How another profile reaches the group's devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConflictVia {
    /// It is assigned to the same group.
    SameGroup,
    /// It is assigned to All devices.
    AllDevices,
}

/// Another profile that also targets the group's devices.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Conflict {
    pub profile: ProfileRef,
    pub created: Option<DateTime<Utc>>,
    pub mode: DeploymentMode,
    pub join: JoinType,
    pub via: ConflictVia,
    /// True when the other profile is older, so devices get it instead of ours.
    pub other_wins: bool,
    pub explanation: String,
}

/// Other profiles assigned to the group (or to All devices without excluding the group), with
/// which profile wins: when several profiles target a device, the **oldest** one applies
/// (procedure §1.3, "Autopilot profile priority").
pub async fn conflicts_for_group(
    graph: &GraphClient,
    group_id: &str,
    profile_id: &str,
) -> Result<Vec<Conflict>, ProfileError> {
    let profiles = list_profiles(graph).await?;
    let ours = profiles.iter().find(|p| p.id == profile_id);
    let our_created = ours.and_then(|p| p.created);
    let our_name = ours
        .map(|p| p.display_name.clone())
        .unwrap_or_else(|| "your profile".into());
    let mut out = Vec::new();
    for p in profiles.iter().filter(|p| p.id != profile_id) {
        let assignments = match list_assignments(graph, &p.id).await {
            Ok(a) => a,
            // Deleted between the two reads: it conflicts with nothing.
            Err(ProfileError::ProfileNotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let via = if assignments.iter().any(|a| includes_group(a, group_id)) {
            ConflictVia::SameGroup
        } else if assignments
            .iter()
            .any(|a| a.target == AssignmentTarget::AllDevices)
            && !assignments.iter().any(|a| excludes_group(a, group_id))
        {
            ConflictVia::AllDevices
        } else {
            continue;
        };
        let other_wins = match (p.created, our_created) {
            (Some(theirs), Some(ours)) => theirs < ours,
            // Unknown dates: assume the worst, the existing profile is older.
            _ => true,
        };
        let date = |d: Option<DateTime<Utc>>| {
            d.map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| "an unknown date".into())
        };
        let how = match via {
            ConflictVia::SameGroup => "is also assigned to this group",
            ConflictVia::AllDevices => {
                "is assigned to All devices, which includes this group's devices"
            }
        };
        let kind = format!("{}, {}", p.mode().label(), p.join_type().label());
        let explanation = if other_wins {
            format!(
                "\"{}\" ({kind}, created {}) {how}. When several profiles target a device, the oldest profile wins: \
                 \"{}\" is older than \"{our_name}\" (created {}), so these devices will get \"{}\", not yours. \
                 Remove that assignment in Intune, or exclude this group from it, before deploying.",
                p.display_name,
                date(p.created),
                p.display_name,
                date(our_created),
                p.display_name
            )
        } else {
            format!(
                "\"{}\" ({kind}, created {}) {how}. When several profiles target a device, the oldest profile wins: \
                 \"{our_name}\" (created {}) is older, so these devices get yours. The other assignment has no effect on them.",
                p.display_name,
                date(p.created),
                date(our_created)
            )
        };
        out.push(Conflict {
            profile: ProfileRef::from(p),
            created: p.created,
            mode: p.mode(),
            join: p.join_type(),
            via,
            other_wins,
            explanation,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_property_a_graph_message_names() {
        assert_eq!(
            property_named("The property 'foo' does not exist on type 'x'.").as_deref(),
            Some("foo")
        );
        assert_eq!(
            property_named(
                "A null value was found for the property named 'extractHardwareHash', which"
            )
            .as_deref(),
            Some("extractHardwareHash")
        );
        assert_eq!(property_named("Something else"), None);
        assert_eq!(
            ProfileField::from_property("outOfBoxExperienceSettings.hideEULA"),
            Some(ProfileField::Eula)
        );
    }
}
