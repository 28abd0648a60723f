//! Directory objects: groups, users (as search results and members), Entra devices
//! (reference §4, v1.0 `group`, `device`, `user`).

use serde::{Deserialize, Serialize};

/// `group` as the wizard reads it. Unknown properties are ignored.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Group {
    pub id: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub mail_nickname: Option<String>,
    pub mail_enabled: Option<bool>,
    pub security_enabled: Option<bool>,
    pub group_types: Vec<String>,
    pub membership_rule: Option<String>,
    /// `On` or `Paused` (a plain string in the schema).
    pub membership_rule_processing_state: Option<String>,
    pub created_date_time: Option<String>,
    /// Beta only, and only when `$select`ed.
    pub membership_rule_processing_status: Option<MembershipRuleProcessingStatus>,
}

impl Group {
    pub fn is_dynamic(&self) -> bool {
        self.group_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case("DynamicMembership"))
    }

    pub fn name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.id)
    }
}

/// Beta `membershipRuleProcessingStatus` (`status`: NotStarted, Running, Failed, Succeeded,
/// UnsupportedFutureValue; PascalCase on the wire).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MembershipRuleProcessingStatus {
    pub status: Option<String>,
    pub last_membership_updated: Option<String>,
    pub error_message: Option<String>,
}

/// The body of `POST /groups` (reference §4.1). Only properties the wizard sets; `None` fields
/// are left out so assigned groups carry no rule properties at all.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewGroup {
    pub display_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub mail_enabled: bool,
    pub mail_nickname: String,
    pub security_enabled: bool,
    pub group_types: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub membership_rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub membership_rule_processing_state: Option<String>,
}

/// A user as search results and member lists return it.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct User {
    pub id: String,
    pub display_name: Option<String>,
    pub user_principal_name: Option<String>,
    pub mail: Option<String>,
}

/// One entry of a polymorphic directory-object collection (`members`, `transitiveMemberOf`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DirectoryObject {
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    pub id: String,
    pub display_name: Option<String>,
    pub user_principal_name: Option<String>,
    pub device_id: Option<String>,
}

impl DirectoryObject {
    fn is(&self, kind: &str) -> bool {
        self.odata_type
            .as_deref()
            .is_some_and(|t| t.trim_start_matches('#').eq_ignore_ascii_case(kind))
    }

    pub fn is_user(&self) -> bool {
        self.is("microsoft.graph.user")
    }

    pub fn is_group(&self) -> bool {
        self.is("microsoft.graph.group")
    }

    pub fn is_device(&self) -> bool {
        self.is("microsoft.graph.device")
    }
}

/// An Entra device object (v1.0 `device`). `device_id` is what Autopilot calls
/// `azureActiveDirectoryDeviceId`; `id` is the object id group membership uses.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Device {
    pub id: String,
    pub device_id: Option<String>,
    pub display_name: Option<String>,
    pub operating_system: Option<String>,
    pub account_enabled: Option<bool>,
    pub physical_ids: Vec<String>,
    pub trust_type: Option<String>,
}

/// The body of `POST /groups/{id}/members/$ref`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectRef {
    #[serde(rename = "@odata.id")]
    pub odata_id: String,
}

/// The body of `PATCH /groups/{id}` that adds several members at once (reference §4.2; at most
/// [`MAX_MEMBERS_PER_PATCH`] per request, all or nothing).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MembersBind {
    #[serde(rename = "members@odata.bind")]
    pub members: Vec<String>,
}

/// Graph refuses more than 20 link changes in one request ("A resource cannot contain more
/// than 20 link changes").
pub const MAX_MEMBERS_PER_PATCH: usize = 20;
