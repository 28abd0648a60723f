//! Windows Autopilot deployment profiles and their assignments (beta only, reference §3, §5).
//!
//! Two generations of property names coexist in beta (reference §0.3). We **write the old
//! names** (the documented create example, §3.2) and **read every combination**: the field
//! evidence shows the service answering with new top-level names and the old plural OOBE block.
//! When both names of a setting carry a value, the new name wins.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `@odata.type` of a profile for Microsoft Entra join.
pub const ODATA_TYPE_ENTRA_JOIN: &str = "#microsoft.graph.azureADWindowsAutopilotDeploymentProfile";
/// `@odata.type` of a profile for Microsoft Entra hybrid join (not created by this wizard).
pub const ODATA_TYPE_HYBRID_JOIN: &str =
    "#microsoft.graph.activeDirectoryWindowsAutopilotDeploymentProfile";
/// `@odata.type` of the old OOBE block (no `#`, as in the documented example).
pub const ODATA_TYPE_OOBE_SETTINGS: &str = "microsoft.graph.outOfBoxExperienceSettings";
pub const ODATA_TYPE_ASSIGNMENT: &str =
    "#microsoft.graph.windowsAutopilotDeploymentProfileAssignment";
pub const ODATA_TYPE_GROUP_TARGET: &str = "#microsoft.graph.groupAssignmentTarget";
pub const ODATA_TYPE_EXCLUSION_TARGET: &str = "#microsoft.graph.exclusionGroupAssignmentTarget";
pub const ODATA_TYPE_ALL_DEVICES_TARGET: &str = "#microsoft.graph.allDevicesAssignmentTarget";
pub const ODATA_TYPE_ALL_USERS_TARGET: &str = "#microsoft.graph.allLicensedUsersAssignmentTarget";

/// Collection path (beta).
pub const PROFILES_PATH: &str = "/deviceManagement/windowsAutopilotDeploymentProfiles";

/// `language` value meaning "use the operating system's language".
pub const LANGUAGE_OS_DEFAULT: &str = "os-default";

/// The create body, with the old property names of reference §3.2.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateProfileBody {
    #[serde(rename = "@odata.type")]
    pub odata_type: String,
    pub display_name: String,
    pub description: String,
    pub language: String,
    pub device_name_template: String,
    /// `windowsAutopilotDeviceType`; the wizard always sends `windowsPc`.
    pub device_type: String,
    pub enable_white_glove: bool,
    pub extract_hardware_hash: bool,
    pub role_scope_tag_ids: Vec<String>,
    pub out_of_box_experience_settings: OobeSettingsBody,
}

/// `outOfBoxExperienceSettings` (old, plural) as sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OobeSettingsBody {
    #[serde(rename = "@odata.type")]
    pub odata_type: String,
    #[serde(rename = "hidePrivacySettings")]
    pub hide_privacy_settings: bool,
    #[serde(rename = "hideEULA")]
    pub hide_eula: bool,
    /// `windowsUserType`: `administrator` | `standard`.
    #[serde(rename = "userType")]
    pub user_type: String,
    /// `windowsDeviceUsageType`: `singleUser` (user-driven) | `shared` (self-deploying).
    #[serde(rename = "deviceUsageType")]
    pub device_usage_type: String,
    #[serde(rename = "skipKeyboardSelectionPage")]
    pub skip_keyboard_selection_page: bool,
    #[serde(rename = "hideEscapeLink")]
    pub hide_escape_link: bool,
}

/// How devices join, from the profile's `@odata.type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinType {
    EntraJoin,
    HybridJoin,
    /// A type this wizard does not know (kept verbatim).
    Other(String),
}

impl JoinType {
    pub fn from_odata_type(t: Option<&str>) -> JoinType {
        let name = t.unwrap_or("").trim_start_matches('#');
        if name.eq_ignore_ascii_case(ODATA_TYPE_ENTRA_JOIN.trim_start_matches('#')) {
            JoinType::EntraJoin
        } else if name.eq_ignore_ascii_case(ODATA_TYPE_HYBRID_JOIN.trim_start_matches('#')) {
            JoinType::HybridJoin
        } else {
            JoinType::Other(name.to_string())
        }
    }

    pub fn label(&self) -> String {
        match self {
            JoinType::EntraJoin => "Microsoft Entra joined".into(),
            JoinType::HybridJoin => "Microsoft Entra hybrid joined".into(),
            JoinType::Other(t) if t.is_empty() => "unknown join type".into(),
            JoinType::Other(t) => format!("unknown join type ({t})"),
        }
    }
}

/// Deployment mode, from `deviceUsageType` (reference §3.1: singleUser = user-driven,
/// shared = self-deploying).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeploymentMode {
    UserDriven,
    SelfDeploying,
    Other(String),
}

impl DeploymentMode {
    pub fn from_usage(u: Option<&str>) -> DeploymentMode {
        match u {
            Some("singleUser") => DeploymentMode::UserDriven,
            Some("shared") => DeploymentMode::SelfDeploying,
            Some(other) => DeploymentMode::Other(other.to_string()),
            None => DeploymentMode::Other(String::new()),
        }
    }

    pub fn label(&self) -> String {
        match self {
            DeploymentMode::UserDriven => "User-driven".into(),
            DeploymentMode::SelfDeploying => "Self-deploying".into(),
            DeploymentMode::Other(t) if t.is_empty() => "unknown mode".into(),
            DeploymentMode::Other(t) => format!("unknown mode ({t})"),
        }
    }
}

/// The OOBE settings of a profile, whichever block they came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OobeRead {
    pub privacy_settings_hidden: Option<bool>,
    pub eula_hidden: Option<bool>,
    pub user_type: Option<String>,
    pub device_usage_type: Option<String>,
    pub keyboard_selection_page_skipped: Option<bool>,
    pub escape_link_hidden: Option<bool>,
}

/// A profile as read from Graph, normalised across both property generations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "ProfileWire", into = "ProfileWire")]
pub struct DeploymentProfile {
    pub id: String,
    pub odata_type: Option<String>,
    pub display_name: String,
    pub description: Option<String>,
    /// `locale` / `language`.
    pub locale: Option<String>,
    pub device_name_template: Option<String>,
    pub device_type: Option<String>,
    /// `hardwareHashExtractionEnabled` / `extractHardwareHash`: "Convert all targeted devices".
    pub convert_all_targeted: Option<bool>,
    /// `preprovisioningAllowed` / `enableWhiteGlove`.
    pub preprovisioning_allowed: Option<bool>,
    pub role_scope_tag_ids: Vec<String>,
    pub oobe: OobeRead,
    pub created: Option<DateTime<Utc>>,
    pub last_modified: Option<DateTime<Utc>>,
}

impl DeploymentProfile {
    pub fn join_type(&self) -> JoinType {
        JoinType::from_odata_type(self.odata_type.as_deref())
    }

    pub fn mode(&self) -> DeploymentMode {
        DeploymentMode::from_usage(self.oobe.device_usage_type.as_deref())
    }
}

/// Every name either generation uses; unknown properties are ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ProfileWire {
    id: String,
    #[serde(rename = "@odata.type", skip_serializing_if = "Option::is_none")]
    odata_type: Option<String>,
    display_name: Option<String>,
    description: Option<String>,
    language: Option<String>,
    locale: Option<String>,
    device_name_template: Option<String>,
    device_type: Option<String>,
    extract_hardware_hash: Option<bool>,
    hardware_hash_extraction_enabled: Option<bool>,
    enable_white_glove: Option<bool>,
    preprovisioning_allowed: Option<bool>,
    role_scope_tag_ids: Option<Vec<Option<String>>>,
    out_of_box_experience_settings: Option<OobeOldWire>,
    out_of_box_experience_setting: Option<OobeNewWire>,
    created_date_time: Option<String>,
    last_modified_date_time: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct OobeOldWire {
    #[serde(rename = "hidePrivacySettings")]
    hide_privacy_settings: Option<bool>,
    #[serde(rename = "hideEULA")]
    hide_eula: Option<bool>,
    #[serde(rename = "userType")]
    user_type: Option<String>,
    #[serde(rename = "deviceUsageType")]
    device_usage_type: Option<String>,
    #[serde(rename = "skipKeyboardSelectionPage")]
    skip_keyboard_selection_page: Option<bool>,
    #[serde(rename = "hideEscapeLink")]
    hide_escape_link: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct OobeNewWire {
    privacy_settings_hidden: Option<bool>,
    eula_hidden: Option<bool>,
    user_type: Option<String>,
    device_usage_type: Option<String>,
    keyboard_selection_page_skipped: Option<bool>,
    escape_link_hidden: Option<bool>,
}

fn parse_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

impl From<ProfileWire> for DeploymentProfile {
    fn from(w: ProfileWire) -> Self {
        let old = w.out_of_box_experience_settings.unwrap_or_default();
        let new = w.out_of_box_experience_setting.unwrap_or_default();
        DeploymentProfile {
            id: w.id,
            odata_type: w.odata_type,
            display_name: w.display_name.unwrap_or_default(),
            description: w.description,
            locale: w.locale.or(w.language),
            device_name_template: w.device_name_template,
            device_type: w.device_type,
            convert_all_targeted: w
                .hardware_hash_extraction_enabled
                .or(w.extract_hardware_hash),
            preprovisioning_allowed: w.preprovisioning_allowed.or(w.enable_white_glove),
            role_scope_tag_ids: w
                .role_scope_tag_ids
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .collect(),
            oobe: OobeRead {
                privacy_settings_hidden: new.privacy_settings_hidden.or(old.hide_privacy_settings),
                eula_hidden: new.eula_hidden.or(old.hide_eula),
                user_type: new.user_type.or(old.user_type),
                device_usage_type: new.device_usage_type.or(old.device_usage_type),
                keyboard_selection_page_skipped: new
                    .keyboard_selection_page_skipped
                    .or(old.skip_keyboard_selection_page),
                escape_link_hidden: new.escape_link_hidden.or(old.hide_escape_link),
            },
            created: parse_time(w.created_date_time.as_deref()),
            last_modified: parse_time(w.last_modified_date_time.as_deref()),
        }
    }
}

impl From<DeploymentProfile> for ProfileWire {
    /// For persistence only (never sent to Graph): the new names.
    fn from(p: DeploymentProfile) -> Self {
        ProfileWire {
            id: p.id,
            odata_type: p.odata_type,
            display_name: Some(p.display_name),
            description: p.description,
            locale: p.locale,
            device_name_template: p.device_name_template,
            device_type: p.device_type,
            hardware_hash_extraction_enabled: p.convert_all_targeted,
            preprovisioning_allowed: p.preprovisioning_allowed,
            role_scope_tag_ids: Some(p.role_scope_tag_ids.into_iter().map(Some).collect()),
            out_of_box_experience_setting: Some(OobeNewWire {
                privacy_settings_hidden: p.oobe.privacy_settings_hidden,
                eula_hidden: p.oobe.eula_hidden,
                user_type: p.oobe.user_type,
                device_usage_type: p.oobe.device_usage_type,
                keyboard_selection_page_skipped: p.oobe.keyboard_selection_page_skipped,
                escape_link_hidden: p.oobe.escape_link_hidden,
            }),
            created_date_time: p.created.map(|d| d.to_rfc3339()),
            last_modified_date_time: p.last_modified.map(|d| d.to_rfc3339()),
            ..ProfileWire::default()
        }
    }
}

/// POST body of `…/{profileId}/assignments` (reference §5).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateAssignmentBody {
    #[serde(rename = "@odata.type")]
    pub odata_type: String,
    pub target: AssignmentTargetBody,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssignmentTargetBody {
    #[serde(rename = "@odata.type")]
    pub odata_type: String,
    #[serde(rename = "groupId")]
    pub group_id: String,
}

impl CreateAssignmentBody {
    /// Includes the group in the profile's assignments.
    pub fn group(group_id: &str) -> Self {
        CreateAssignmentBody {
            odata_type: ODATA_TYPE_ASSIGNMENT.into(),
            target: AssignmentTargetBody {
                odata_type: ODATA_TYPE_GROUP_TARGET.into(),
                group_id: group_id.into(),
            },
        }
    }
}

/// What an assignment targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AssignmentTarget {
    Group(String),
    ExcludedGroup(String),
    AllDevices,
    AllLicensedUsers,
    Other(String),
}

/// An assignment as read from Graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "AssignmentWire")]
pub struct ProfileAssignment {
    pub id: String,
    pub target: AssignmentTarget,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct AssignmentWire {
    id: String,
    target: Option<TargetWire>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct TargetWire {
    #[serde(rename = "@odata.type")]
    odata_type: Option<String>,
    #[serde(rename = "groupId")]
    group_id: Option<String>,
}

impl From<AssignmentWire> for ProfileAssignment {
    fn from(w: AssignmentWire) -> Self {
        let t = w.target.unwrap_or_default();
        let ty = t.odata_type.unwrap_or_default();
        let name = ty.trim_start_matches('#');
        let is = |c: &str| name.eq_ignore_ascii_case(c.trim_start_matches('#'));
        let target = if is(ODATA_TYPE_EXCLUSION_TARGET) {
            AssignmentTarget::ExcludedGroup(t.group_id.unwrap_or_default())
        } else if is(ODATA_TYPE_GROUP_TARGET) {
            AssignmentTarget::Group(t.group_id.unwrap_or_default())
        } else if is(ODATA_TYPE_ALL_DEVICES_TARGET) {
            AssignmentTarget::AllDevices
        } else if is(ODATA_TYPE_ALL_USERS_TARGET) {
            AssignmentTarget::AllLicensedUsers
        } else {
            AssignmentTarget::Other(ty)
        };
        ProfileAssignment { id: w.id, target }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_mixed_shape_and_prefers_new_names() {
        // New top-level names, old plural OOBE block (reference §0.3 field evidence).
        let p: DeploymentProfile = serde_json::from_value(serde_json::json!({
            "@odata.type": "#microsoft.graph.azureADWindowsAutopilotDeploymentProfile",
            "id": "p1", "displayName": "X", "locale": "de-DE", "language": "en-US",
            "preprovisioningAllowed": null, "enableWhiteGlove": true,
            "hardwareHashExtractionEnabled": false,
            "outOfBoxExperienceSettings": {"hideEULA": true, "deviceUsageType": "shared", "userType": "standard"},
            "outOfBoxExperienceSetting": {"eulaHidden": false},
            "createdDateTime": "2024-02-01T09:30:00Z", "unknownNewThing": 1
        }))
        .unwrap();
        assert_eq!(p.locale.as_deref(), Some("de-DE"));
        assert_eq!(
            p.preprovisioning_allowed,
            Some(true),
            "null new name falls back to old"
        );
        assert_eq!(p.convert_all_targeted, Some(false));
        assert_eq!(p.oobe.eula_hidden, Some(false), "new block wins");
        assert_eq!(p.oobe.user_type.as_deref(), Some("standard"));
        assert_eq!(p.join_type(), JoinType::EntraJoin);
        assert_eq!(p.mode(), DeploymentMode::SelfDeploying);
        assert!(p.created.is_some());
        // Old names only.
        let p: DeploymentProfile = serde_json::from_value(serde_json::json!({
            "@odata.type": "#microsoft.graph.activeDirectoryWindowsAutopilotDeploymentProfile",
            "id": "p2", "language": "en-GB", "extractHardwareHash": true,
            "outOfBoxExperienceSettings": {"deviceUsageType": "singleUser"}
        }))
        .unwrap();
        assert_eq!(p.locale.as_deref(), Some("en-GB"));
        assert_eq!(p.convert_all_targeted, Some(true));
        assert_eq!(p.join_type(), JoinType::HybridJoin);
        assert_eq!(p.mode(), DeploymentMode::UserDriven);
    }
}
