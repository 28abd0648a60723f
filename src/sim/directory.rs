//! Users' groups, members, Entra device objects, the device registration policy and the MDM
//! user scope of the simulated tenant.
//!
//! Written from reference §2 and §4 on its own (no `crate::graph` types). Groups and devices are
//! typed structs rendered to Graph JSON by hand; users live in the core.
//!
//! Other areas use: [`register_autopilot_device_object`] and [`set_device_order_id`] (Autopilot
//! registration), [`rule_matches`] plus the public `groups` / `devices` fields (dynamic
//! membership evaluation in `assignment`).

use std::time::{Duration, Instant};

use axum::Router;
use chrono::{DateTime, Utc};

use super::{Seed, Shared, SimState};

/// Intune's MDM application id (reference §2.2).
pub const INTUNE_MDM_APP_ID: &str = "0000000a-0000-0000-c000-000000000000";

/// An Entra group as the directory stores it.
#[derive(Debug, Clone)]
pub struct SimGroup {
    pub id: String,
    pub display_name: String,
    pub description: Option<String>,
    pub mail_nickname: String,
    pub mail_enabled: bool,
    pub security_enabled: bool,
    /// `["DynamicMembership"]` for dynamic groups, empty for assigned security groups.
    pub group_types: Vec<String>,
    pub membership_rule: Option<String>,
    /// `"On"` or `"Paused"` for dynamic groups, absent for assigned ones.
    pub membership_rule_processing_state: Option<String>,
    pub created_date_time: DateTime<Utc>,
    /// Object ids of direct members: users, devices or groups.
    pub members: Vec<String>,
    /// Beta `membershipRuleProcessingStatus`, kept up to date by membership evaluation.
    pub processing_status: RuleProcessingStatus,
    /// Replication: the group is not readable by id or listed until this instant.
    pub visible_after: Instant,
}

impl SimGroup {
    pub fn is_dynamic(&self) -> bool {
        self.group_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case("DynamicMembership"))
    }
}

/// Beta `membershipRuleProcessingStatus` (PascalCase status values are the service's own).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleProcessingStatus {
    /// `NotStarted`, `Running`, `Failed` or `Succeeded`.
    pub status: String,
    pub last_membership_updated: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
}

impl Default for RuleProcessingStatus {
    fn default() -> Self {
        RuleProcessingStatus {
            status: "NotStarted".into(),
            last_membership_updated: None,
            error_message: None,
        }
    }
}

/// An Entra device object.
#[derive(Debug, Clone)]
pub struct SimDevice {
    /// Object id (what `members/$ref` uses).
    pub id: String,
    /// Device id (what Autopilot calls `azureActiveDirectoryDeviceId`).
    pub device_id: String,
    pub display_name: String,
    pub operating_system: String,
    pub operating_system_version: Option<String>,
    pub account_enabled: bool,
    /// `[ZTDId]:…`, `[OrderID]:…`, `[PurchaseOrderId]:…`, `[HWID]:…` strings.
    pub physical_ids: Vec<String>,
    pub trust_type: Option<String>,
    pub profile_type: Option<String>,
    pub device_ownership: Option<String>,
    pub enrollment_profile_name: Option<String>,
    pub is_managed: Option<bool>,
    pub is_compliant: Option<bool>,
    pub registration_date_time: DateTime<Utc>,
    pub approximate_last_sign_in_date_time: Option<DateTime<Utc>>,
}

/// Who a device-registration membership covers (`allowedToJoin`, `allowedToRegister`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinScope {
    All,
    /// Object ids of users and groups.
    Selected {
        users: Vec<String>,
        groups: Vec<String>,
    },
    None,
}

/// Which JSON shape `GET /policies/deviceRegistrationPolicy` answers with (reference §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyShape {
    /// `allowedToJoin` with `@odata.type` discriminated memberships.
    #[default]
    Current,
    /// `appliesTo: "1"`, `allowedUsers`, `allowedGroups`, `multiFactorAuthConfiguration: "0"`.
    Legacy,
}

#[derive(Debug, Clone)]
pub struct RegistrationPolicy {
    pub join: JoinScope,
    pub register: JoinScope,
    pub user_device_quota: i32,
    pub mfa_required: bool,
    pub local_admin_password_enabled: bool,
    pub shape: PolicyShape,
}

impl Default for RegistrationPolicy {
    fn default() -> Self {
        RegistrationPolicy {
            join: JoinScope::All,
            register: JoinScope::All,
            user_device_quota: 50,
            mfa_required: false,
            local_admin_password_enabled: false,
            shape: PolicyShape::Current,
        }
    }
}

/// The MDM user scope of one mobility management application (`appliesTo` + `includedGroups`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MdmScope {
    All,
    /// Group object ids.
    Selected(Vec<String>),
    None,
}

#[derive(Debug, Clone)]
pub struct MdmPolicy {
    pub id: String,
    pub display_name: String,
    pub scope: MdmScope,
}

/// Denies reads of a policy endpoint with 403, as Graph does when the caller lacks a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyAccess {
    pub deny_registration_policy: bool,
    pub deny_mdm_policies: bool,
}

#[derive(Debug)]
pub struct DirectoryState {
    pub groups: Vec<SimGroup>,
    pub devices: Vec<SimDevice>,
    pub registration_policy: RegistrationPolicy,
    pub mdm_policies: Vec<MdmPolicy>,
    pub access: PolicyAccess,
    /// How long (service time) a new group stays invisible to reads, like Entra replication.
    pub replication_delay: Duration,
}

impl Default for DirectoryState {
    fn default() -> Self {
        DirectoryState {
            groups: Vec::new(),
            devices: Vec::new(),
            registration_policy: RegistrationPolicy::default(),
            mdm_policies: vec![MdmPolicy {
                id: INTUNE_MDM_APP_ID.into(),
                display_name: "Microsoft Intune".into(),
                scope: MdmScope::All,
            }],
            access: PolicyAccess::default(),
            replication_delay: Duration::from_secs(5),
        }
    }
}

impl DirectoryState {
    pub fn group(&self, id: &str) -> Option<&SimGroup> {
        self.groups.iter().find(|g| g.id.eq_ignore_ascii_case(id))
    }

    pub fn group_mut(&mut self, id: &str) -> Option<&mut SimGroup> {
        self.groups
            .iter_mut()
            .find(|g| g.id.eq_ignore_ascii_case(id))
    }

    pub fn device(&self, id: &str) -> Option<&SimDevice> {
        self.devices.iter().find(|d| d.id.eq_ignore_ascii_case(id))
    }

    pub fn device_by_device_id(&self, device_id: &str) -> Option<&SimDevice> {
        self.devices
            .iter()
            .find(|d| d.device_id.eq_ignore_ascii_case(device_id))
    }
}

fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Creates the Entra device object that Autopilot registration creates for an imported device
/// and returns its `deviceId` (Autopilot's `azureActiveDirectoryDeviceId`).
pub fn register_autopilot_device_object(
    state: &mut SimState,
    serial: &str,
    ztd_id: &str,
    group_tag: Option<&str>,
    purchase_order: Option<&str>,
) -> String {
    let mut physical_ids = vec![format!("[ZTDId]:{ztd_id}")];
    if let Some(tag) = group_tag.filter(|t| !t.is_empty()) {
        physical_ids.push(format!("[OrderID]:{tag}"));
    }
    if let Some(po) = purchase_order.filter(|p| !p.is_empty()) {
        physical_ids.push(format!("[PurchaseOrderId]:{po}"));
    }
    let device_id = new_guid();
    state.directory.devices.push(SimDevice {
        id: new_guid(),
        device_id: device_id.clone(),
        display_name: serial.to_string(),
        operating_system: "Windows".into(),
        operating_system_version: None,
        account_enabled: true,
        physical_ids,
        trust_type: Some("AzureAd".into()),
        profile_type: Some("RegisteredDevice".into()),
        device_ownership: Some("Company".into()),
        enrollment_profile_name: None,
        is_managed: Some(false),
        is_compliant: Some(false),
        registration_date_time: Utc::now(),
        approximate_last_sign_in_date_time: None,
    });
    device_id
}

/// Replaces the `[OrderID]` entry of the device with `device_id` (its `deviceId`, not its object
/// id) after the Autopilot group tag changed; `None` or an empty tag removes it. Returns false
/// when no such device exists.
pub fn set_device_order_id(state: &mut SimState, device_id: &str, group_tag: Option<&str>) -> bool {
    let Some(dev) = state
        .directory
        .devices
        .iter_mut()
        .find(|d| d.device_id.eq_ignore_ascii_case(device_id))
    else {
        return false;
    };
    dev.physical_ids
        .retain(|p| !p.to_ascii_lowercase().starts_with("[orderid]:"));
    if let Some(tag) = group_tag.filter(|t| !t.is_empty()) {
        dev.physical_ids.push(format!("[OrderID]:{tag}"));
    }
    true
}

/// One comparison inside `device.devicePhysicalIds -any (_ <op> "<value>")`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RuleOp {
    Contains,
    StartsWith,
    Eq,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RuleClause {
    op: RuleOp,
    value: String,
}

/// Whether a device with `physical_ids` matches `rule`, for the rule forms Autopilot groups use:
/// `(device.devicePhysicalIds -any (_ -contains "[ZTDID]"))`, `… -startsWith "[ZTDId]"`,
/// `… -eq "[OrderID]:tag"`, `… -eq "[PurchaseOrderId]:po"`, and clauses joined by `-or`.
/// `None` means the rule is outside these forms. String comparison is case-insensitive, like
/// Entra's rule engine.
pub fn rule_matches(rule: &str, physical_ids: &[String]) -> Option<bool> {
    let clauses = parse_rule(rule)?;
    Some(clauses.iter().any(|c| {
        let v = c.value.to_lowercase();
        physical_ids.iter().any(|p| {
            let p = p.to_lowercase();
            match c.op {
                RuleOp::Contains => p.contains(&v),
                RuleOp::StartsWith => p.starts_with(&v),
                RuleOp::Eq => p == v,
            }
        })
    }))
}

fn parse_rule(rule: &str) -> Option<Vec<RuleClause>> {
    let parts = split_keyword(rule.trim(), "-or")?;
    parts.iter().map(|p| parse_clause(p)).collect()
}

/// Splits on a `-keyword` outside quotes and parentheses depth > 0 of the whole text.
fn split_keyword(text: &str, keyword: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut depth: i32 = 0;
    let mut in_quote = false;
    let mut cur = String::new();
    let chars: Vec<char> = text.chars().collect();
    let kw: Vec<char> = keyword.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            in_quote = !in_quote;
        } else if !in_quote {
            if c == '(' {
                depth += 1;
            } else if c == ')' {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
            } else if depth == 0
                && i + kw.len() <= chars.len()
                && chars[i..i + kw.len()]
                    .iter()
                    .zip(&kw)
                    .all(|(a, b)| a.eq_ignore_ascii_case(b))
                && (i == 0 || chars[i - 1].is_whitespace() || chars[i - 1] == ')')
                && chars
                    .get(i + kw.len())
                    .is_none_or(|n| n.is_whitespace() || *n == '(')
            {
                parts.push(std::mem::take(&mut cur));
                i += kw.len();
                continue;
            }
        }
        cur.push(c);
        i += 1;
    }
    if in_quote || depth != 0 {
        return None;
    }
    parts.push(cur);
    Some(parts)
}

fn strip_outer_parens(s: &str) -> &str {
    let mut s = s.trim();
    while s.starts_with('(') && s.ends_with(')') && balanced(&s[1..s.len() - 1]) {
        s = s[1..s.len() - 1].trim();
    }
    s
}

fn balanced(s: &str) -> bool {
    let mut depth = 0i32;
    let mut in_quote = false;
    for c in s.chars() {
        match c {
            '"' => in_quote = !in_quote,
            '(' if !in_quote => depth += 1,
            ')' if !in_quote => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0 && !in_quote
}

fn parse_clause(text: &str) -> Option<RuleClause> {
    let s = strip_outer_parens(text);
    let lower = s.to_ascii_lowercase();
    let rest = lower.strip_prefix("device.devicephysicalids")?;
    let offset = s.len() - rest.len();
    let rest_orig = s[offset..].trim_start();
    let after_any = rest_orig
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("-any"))
        .map(|_| rest_orig[4..].trim())?;
    let inner = after_any.strip_prefix('(')?.strip_suffix(')')?.trim();
    let inner = inner.strip_prefix('_')?.trim_start();
    let (op_text, value_text) = inner.split_once(char::is_whitespace)?;
    let op = match op_text.to_ascii_lowercase().as_str() {
        "-contains" => RuleOp::Contains,
        "-startswith" => RuleOp::StartsWith,
        "-eq" => RuleOp::Eq,
        _ => return None,
    };
    let value = value_text
        .trim()
        .strip_prefix('"')?
        .strip_suffix('"')?
        .to_string();
    if value.contains('"') {
        return None;
    }
    Some(RuleClause { op, value })
}

pub(crate) fn seed(_state: &mut SimState, _seed: Seed) {}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn autopilot_rule_forms() {
        let dev = ids(&["[ZTDId]:abc", "[OrderID]:Sales", "[PurchaseOrderId]:PO-7"]);
        let plain = ids(&["[HWID]:h:1"]);
        for rule in [
            r#"(device.devicePhysicalIDs -any (_ -contains "[ZTDID]"))"#,
            r#"(device.devicePhysicalIDs -any (_ -startsWith "[ZTDid]"))"#,
            r#"(device.devicePhysicalIds -any (_ -eq "[OrderID]:sales"))"#,
            r#"(device.devicePhysicalIds -any (_ -eq "[PurchaseOrderId]:PO-7"))"#,
        ] {
            assert_eq!(rule_matches(rule, &dev), Some(true), "{rule}");
            assert_eq!(rule_matches(rule, &plain), Some(false), "{rule}");
        }
        let either = r#"(device.devicePhysicalIds -any (_ -eq "[OrderID]:HR")) -or (device.devicePhysicalIds -any (_ -eq "[OrderID]:Sales"))"#;
        assert_eq!(rule_matches(either, &dev), Some(true));
        assert_eq!(rule_matches(either, &plain), Some(false));
        assert_eq!(
            rule_matches(r#"(device.displayName -eq "PC1")"#, &dev),
            None
        );
        assert_eq!(
            rule_matches(
                r#"(device.devicePhysicalIds -any (_ -eq "[OrderID]:x)"#,
                &dev
            ),
            None
        );
    }

    #[test]
    fn registration_creates_device_and_order_id_follows_tag() {
        let mut state = SimState::default();
        let did = register_autopilot_device_object(&mut state, "SER1", "ztd-1", Some("T1"), None);
        let dev = state.directory.device_by_device_id(&did).unwrap();
        assert_eq!(dev.display_name, "SER1");
        assert_ne!(dev.id, dev.device_id);
        assert_eq!(dev.physical_ids, ids(&["[ZTDId]:ztd-1", "[OrderID]:T1"]));
        assert!(set_device_order_id(&mut state, &did, Some("T2")));
        let dev = state.directory.device_by_device_id(&did).unwrap();
        assert_eq!(dev.physical_ids, ids(&["[ZTDId]:ztd-1", "[OrderID]:T2"]));
        assert!(set_device_order_id(&mut state, &did, None));
        let dev = state.directory.device_by_device_id(&did).unwrap();
        assert_eq!(dev.physical_ids, ids(&["[ZTDId]:ztd-1"]));
        assert!(!set_device_order_id(&mut state, "nope", None));
    }
}
