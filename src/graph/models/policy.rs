//! The device registration policy (who may join devices to Entra) and the MDM auto-enrollment
//! user scope (reference §2). Read only: the wizard never writes these policies.

use serde::Deserialize;
use serde_json::Value;

/// Who a `deviceRegistrationMembership` covers, from either policy shape.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Membership {
    All,
    /// Object ids.
    Selected {
        users: Vec<String>,
        groups: Vec<String>,
    },
    None,
    /// A shape this wizard does not know (a future `@odata.type`); shown as is.
    Unknown(String),
}

/// `GET /policies/deviceRegistrationPolicy`, normalised from the current shape
/// (`allowedToJoin` with `@odata.type`) or the legacy one (`appliesTo`, `allowedUsers`,
/// `allowedGroups`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RegistrationPolicy {
    pub join: Membership,
    pub user_device_quota: Option<i32>,
    pub mfa_required: Option<bool>,
    /// True when the legacy shape was read.
    pub legacy_shape: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPolicy {
    #[serde(default)]
    user_device_quota: Option<i32>,
    #[serde(default)]
    multi_factor_auth_configuration: Option<Value>,
    #[serde(default, rename = "azureADJoin")]
    azure_ad_join: Option<Value>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(|x| x.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn membership_current(v: &Value) -> Membership {
    let t = v
        .get("@odata.type")
        .and_then(|t| t.as_str())
        .unwrap_or("")
        .trim_start_matches('#')
        .to_ascii_lowercase();
    match t.as_str() {
        "microsoft.graph.alldeviceregistrationmembership" => Membership::All,
        "microsoft.graph.nodeviceregistrationmembership" => Membership::None,
        "microsoft.graph.enumerateddeviceregistrationmembership" => Membership::Selected {
            users: strings(v.get("users")),
            groups: strings(v.get("groups")),
        },
        other => Membership::Unknown(other.to_string()),
    }
}

/// Legacy `appliesTo` holds the `policyScope` member as a string or number: 0 none, 1 all,
/// 2 selected (or the member names).
fn membership_legacy(v: &Value) -> Membership {
    let applies = match v.get("appliesTo") {
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    match applies.as_str() {
        "0" | "none" => Membership::None,
        "1" | "all" => Membership::All,
        "2" | "selected" => Membership::Selected {
            users: strings(v.get("allowedUsers")),
            groups: strings(v.get("allowedGroups")),
        },
        other => Membership::Unknown(format!("appliesTo {other}")),
    }
}

impl RegistrationPolicy {
    /// Parses either shape. `Err` names what is missing.
    pub fn from_json(v: &Value) -> Result<RegistrationPolicy, String> {
        let raw: RawPolicy = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        let join = raw
            .azure_ad_join
            .ok_or("the policy has no azureADJoin section")?;
        let (join, legacy) = if let Some(m) = join.get("allowedToJoin") {
            (membership_current(m), false)
        } else if join.get("appliesTo").is_some() {
            (membership_legacy(&join), true)
        } else {
            return Err("azureADJoin has neither allowedToJoin nor appliesTo".into());
        };
        let mfa_required = match raw.multi_factor_auth_configuration {
            Some(Value::String(s)) => match s.as_str() {
                "required" | "1" => Some(true),
                "notRequired" | "0" => Some(false),
                _ => None,
            },
            Some(Value::Number(n)) => Some(n.as_i64() == Some(1)),
            _ => None,
        };
        Ok(RegistrationPolicy {
            join,
            user_device_quota: raw.user_device_quota,
            mfa_required,
            legacy_shape: legacy,
        })
    }
}

/// Beta `mobilityManagementPolicy` (one entry of `/policies/mobileDeviceManagementPolicies`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MobilityManagementPolicy {
    pub id: String,
    pub display_name: Option<String>,
    /// `none`, `all`, `selected` or `unknownFutureValue`.
    pub applies_to: Option<String>,
    pub is_valid: Option<bool>,
}

/// Intune's MDM application id (reference §2.2).
pub const INTUNE_MDM_APP_ID: &str = "0000000a-0000-0000-c000-000000000000";

impl MobilityManagementPolicy {
    pub fn is_intune(&self) -> bool {
        self.id.eq_ignore_ascii_case(INTUNE_MDM_APP_ID)
            || self
                .display_name
                .as_deref()
                .is_some_and(|n| n.to_ascii_lowercase().contains("intune"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_current_and_legacy_shapes() {
        let current = json!({
            "id": "deviceRegistrationPolicy",
            "userDeviceQuota": 20,
            "multiFactorAuthConfiguration": "notRequired",
            "azureADJoin": {"allowedToJoin": {
                "@odata.type": "#microsoft.graph.enumeratedDeviceRegistrationMembership",
                "users": ["u1"], "groups": ["g1"]}}
        });
        let p = RegistrationPolicy::from_json(&current).unwrap();
        assert_eq!(
            p.join,
            Membership::Selected {
                users: vec!["u1".into()],
                groups: vec!["g1".into()]
            }
        );
        assert_eq!(p.user_device_quota, Some(20));
        assert_eq!(p.mfa_required, Some(false));
        assert!(!p.legacy_shape);
        let legacy = json!({
            "userDeviceQuota": 50,
            "multiFactorAuthConfiguration": "0",
            "azureADJoin": {"appliesTo": "1", "isAdminConfigurable": true,
                            "allowedUsers": [], "allowedGroups": []}
        });
        let p = RegistrationPolicy::from_json(&legacy).unwrap();
        assert_eq!(p.join, Membership::All);
        assert!(p.legacy_shape);
        let none = json!({"azureADJoin": {"allowedToJoin": {
            "@odata.type": "#microsoft.graph.noDeviceRegistrationMembership"}}});
        assert_eq!(
            RegistrationPolicy::from_json(&none).unwrap().join,
            Membership::None
        );
        assert!(RegistrationPolicy::from_json(&json!({"id": "x"})).is_err());
    }
}
