//! Users' groups, members, Entra device objects, the device registration policy and the MDM
//! user scope of the simulated tenant.
//!
//! Written from reference §2 and §4 on its own (no `crate::graph` types). Groups and devices are
//! typed structs rendered to Graph JSON by hand; users live in the core.
//!
//! Other areas use: [`register_autopilot_device_object`] and [`set_device_order_id`] (Autopilot
//! registration), [`rule_matches`] plus the public `groups` / `devices` fields (dynamic
//! membership evaluation in `assignment`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::core::CurrentUser;
use super::odata;
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
    /// `azureADJoin.localAdmins.registeringUsers`: who becomes a local administrator of the
    /// devices they join.
    pub registering_users_admins: JoinScope,
    /// `azureADJoin.localAdmins.enableGlobalAdmins`.
    pub global_admins_local: bool,
    pub shape: PolicyShape,
    /// Replacements of the policy (`PUT`) received, for tests.
    pub updates: u32,
}

impl Default for RegistrationPolicy {
    fn default() -> Self {
        RegistrationPolicy {
            join: JoinScope::All,
            register: JoinScope::All,
            user_device_quota: 50,
            mfa_required: false,
            local_admin_password_enabled: false,
            registering_users_admins: JoinScope::All,
            global_admins_local: true,
            shape: PolicyShape::Current,
            updates: 0,
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

/// Removes the Entra device whose `deviceId` is `device_id`, and its group memberships.
pub fn remove_device_object(state: &mut SimState, device_id: &str) {
    let ids: Vec<String> = state
        .directory
        .devices
        .iter()
        .filter(|d| d.device_id.eq_ignore_ascii_case(device_id))
        .map(|d| d.id.clone())
        .collect();
    state.directory.devices.retain(|d| !ids.contains(&d.id));
    for g in &mut state.directory.groups {
        g.members.retain(|m| !ids.contains(m));
    }
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

// ---------------------------------------------------------------------------------------------
// Membership

/// Every group that contains `object_id`, directly or through nested groups.
pub fn transitive_member_of(dir: &DirectoryState, object_id: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut frontier = vec![object_id.to_ascii_lowercase()];
    while let Some(cur) = frontier.pop() {
        for g in &dir.groups {
            let gid = g.id.to_ascii_lowercase();
            if !found.contains(&gid) && g.members.iter().any(|m| m.eq_ignore_ascii_case(&cur)) {
                found.push(gid.clone());
                frontier.push(gid);
            }
        }
    }
    found
}

/// Every object inside group `group_id`, nested groups and their members included.
pub fn transitive_members(dir: &DirectoryState, group_id: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut frontier = vec![group_id.to_string()];
    let mut seen_groups = vec![group_id.to_ascii_lowercase()];
    while let Some(cur) = frontier.pop() {
        let Some(g) = dir.group(&cur) else { continue };
        for m in &g.members {
            let ml = m.to_ascii_lowercase();
            if !found.contains(&ml) {
                found.push(ml.clone());
            }
            if dir.group(m).is_some() && !seen_groups.contains(&ml) {
                seen_groups.push(ml);
                frontier.push(m.clone());
            }
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------
// JSON rendering

fn ts(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn is_beta(uri: &Uri) -> bool {
    uri.path().starts_with("/beta/")
}

fn group_json(g: &SimGroup) -> Value {
    json!({
        "id": g.id,
        "deletedDateTime": null,
        "classification": null,
        "createdDateTime": ts(&g.created_date_time),
        "description": g.description,
        "displayName": g.display_name,
        "expirationDateTime": null,
        "groupTypes": g.group_types,
        "isAssignableToRole": null,
        "mail": null,
        "mailEnabled": g.mail_enabled,
        "mailNickname": g.mail_nickname,
        "membershipRule": g.membership_rule,
        "membershipRuleProcessingState": g.membership_rule_processing_state,
        "onPremisesDomainName": null,
        "onPremisesLastSyncDateTime": null,
        "onPremisesNetBiosName": null,
        "onPremisesSamAccountName": null,
        "onPremisesSecurityIdentifier": null,
        "onPremisesSyncEnabled": null,
        "preferredDataLocation": null,
        "preferredLanguage": null,
        "proxyAddresses": [],
        "renewedDateTime": ts(&g.created_date_time),
        "resourceBehaviorOptions": [],
        "resourceProvisioningOptions": [],
        "securityEnabled": g.security_enabled,
        "securityIdentifier": format!("S-1-12-1-{}", g.id.len() * 7919),
        "theme": null,
        "visibility": null,
        "onPremisesProvisioningErrors": [],
        "serviceProvisioningErrors": [],
    })
}

/// Beta only, and only when `$select`ed (Graph leaves it out of the default property set).
fn processing_status_json(g: &SimGroup) -> Value {
    json!({
        "status": g.processing_status.status,
        "lastMembershipUpdated": g.processing_status.last_membership_updated.as_ref().map(ts),
        "errorMessage": g.processing_status.error_message,
    })
}

fn device_json(d: &SimDevice) -> Value {
    json!({
        "id": d.id,
        "deletedDateTime": null,
        "accountEnabled": d.account_enabled,
        "approximateLastSignInDateTime": d.approximate_last_sign_in_date_time.as_ref().map(ts),
        "complianceExpirationDateTime": null,
        "deviceCategory": null,
        "deviceId": d.device_id,
        "deviceMetadata": null,
        "deviceOwnership": d.device_ownership,
        "deviceVersion": 2,
        "displayName": d.display_name,
        "enrollmentProfileName": d.enrollment_profile_name,
        "enrollmentType": null,
        "isCompliant": d.is_compliant,
        "isManaged": d.is_managed,
        "isRooted": false,
        "managementType": null,
        "manufacturer": null,
        "mdmAppId": null,
        "model": null,
        "onPremisesLastSyncDateTime": null,
        "onPremisesSyncEnabled": null,
        "operatingSystem": d.operating_system,
        "operatingSystemVersion": d.operating_system_version,
        "physicalIds": d.physical_ids,
        "profileType": d.profile_type,
        "registrationDateTime": ts(&d.registration_date_time),
        "systemLabels": [],
        "trustType": d.trust_type,
        "alternativeSecurityIds": [],
    })
}

fn with_type(mut v: Value, odata_type: &str) -> Value {
    if let Value::Object(m) = &mut v {
        m.insert("@odata.type".into(), Value::String(odata_type.into()));
    }
    v
}

fn user_json(state: &SimState, id: &str) -> Option<Value> {
    state
        .core
        .users
        .iter()
        .find(|u| u.id.eq_ignore_ascii_case(id))
        .map(|u| with_type(u.to_json(), "#microsoft.graph.user"))
}

/// Any directory object by object id, with its `@odata.type`, as member lists return them.
fn object_json(state: &SimState, id: &str) -> Option<Value> {
    if let Some(u) = user_json(state, id) {
        return Some(u);
    }
    if let Some(g) = state.directory.group(id) {
        return Some(with_type(group_json(g), "#microsoft.graph.group"));
    }
    state
        .directory
        .device(id)
        .map(|d| with_type(device_json(d), "#microsoft.graph.device"))
}

fn insufficient_privileges() -> Response {
    odata::error(
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

fn unsupported_query() -> Response {
    odata::bad_request("Request_UnsupportedQuery", "Unsupported Query.")
}

fn is_eventual(headers: &HeaderMap) -> bool {
    headers
        .get("ConsistencyLevel")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("eventual"))
}

fn filter_has_contains(f: &odata::Filter) -> bool {
    match f {
        odata::Filter::Contains(..) => true,
        odata::Filter::And(fs) | odata::Filter::Or(fs) => fs.iter().any(filter_has_contains),
        _ => false,
    }
}

/// `$filter`, `$search`, `$count`, `$orderby` for directory collections, with Graph's rules:
/// `contains` is unsupported on directory objects, `$search` and `$count` need
/// `ConsistencyLevel: eventual`.
fn directory_query(
    headers: &HeaderMap,
    uri: &Uri,
    mut items: Vec<Value>,
) -> Result<Vec<Value>, Response> {
    let q = odata::query(uri);
    let eventual = is_eventual(headers);
    if q.contains_key("$search") && !eventual {
        return Err(odata::bad_request(
            "Request_UnsupportedQuery",
            "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
        ));
    }
    if q.get("$count").is_some_and(|c| c == "true") && !eventual {
        return Err(odata::bad_request(
            "Request_BadRequest",
            "$count is not currently supported.",
        ));
    }
    if let Some(f) = q.get("$filter")
        && odata::Filter::parse(f).is_some_and(|f| filter_has_contains(&f))
    {
        return Err(unsupported_query());
    }
    items = odata::apply_filter(uri, items)?;
    if let Some(search) = q.get("$search") {
        let Some(terms) = parse_search(search) else {
            return Err(odata::bad_request(
                "Request_UnsupportedQuery",
                &format!(
                    "Unsupported $search expression: {search}. Use \"property:value\", for example $search=\"displayName:it\"."
                ),
            ));
        };
        items.retain(|i| {
            terms.iter().any(|(prop, term)| {
                i.get(prop)
                    .and_then(|v| v.as_str())
                    .is_some_and(|v| search_hit(v, term))
            })
        });
    }
    if let Some(order) = q.get("$orderby") {
        let mut parts = order.split_whitespace();
        let prop = parts.next().unwrap_or("").to_string();
        if prop != "displayName" {
            return Err(odata::bad_request(
                "Request_UnsupportedQuery",
                &format!("Sorting not supported for '{prop}'."),
            ));
        }
        items.sort_by_key(|v| {
            v.get("displayName")
                .and_then(|x| x.as_str())
                .unwrap_or("")
                .to_lowercase()
        });
        if parts.next().is_some_and(|d| d.eq_ignore_ascii_case("desc")) {
            items.reverse();
        }
    }
    Ok(items)
}

/// `"displayName:it" OR "mailNickname:it"` → `[(displayName, it), (mailNickname, it)]`.
fn parse_search(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for part in text.split(" OR ") {
        let p = part.trim().strip_prefix('"')?.strip_suffix('"')?;
        let (prop, term) = p.split_once(':')?;
        if prop.is_empty() || term.is_empty() {
            return None;
        }
        out.push((prop.to_string(), term.to_lowercase()));
    }
    Some(out)
}

/// Directory search matches the start of any word (tokenized), case-insensitively.
fn search_hit(value: &str, term: &str) -> bool {
    let v = value.to_lowercase();
    v.starts_with(term)
        || v.split(|c: char| !c.is_alphanumeric())
            .any(|w| !w.is_empty() && w.starts_with(term))
}

fn visible(g: &SimGroup) -> bool {
    g.visible_after <= Instant::now()
}

// ---------------------------------------------------------------------------------------------
// Routes

pub(crate) fn routes() -> Router<Shared> {
    let mut r = Router::new();
    for v in ["/v1.0", "/beta"] {
        r = r
            .route(
                &format!("{v}/policies/deviceRegistrationPolicy"),
                get(get_registration_policy).put(put_registration_policy),
            )
            .route(&format!("{v}/groups"), get(list_groups).post(create_group))
            .route(
                &format!("{v}/groups/{{id}}"),
                get(get_group).delete(delete_group).patch(patch_group),
            )
            .route(&format!("{v}/groups/{{id}}/members"), get(list_members))
            .route(&format!("{v}/groups/{{id}}/members/$ref"), post(add_member))
            .route(
                &format!("{v}/groups/{{id}}/members/{{member}}"),
                get(list_members),
            )
            .route(
                &format!("{v}/groups/{{id}}/members/{{member}}/$ref"),
                delete(remove_member),
            )
            .route(
                &format!("{v}/groups/{{id}}/transitiveMembers"),
                get(list_transitive_members),
            )
            .route(
                &format!("{v}/groups/{{id}}/transitiveMembers/{{member}}"),
                get(list_transitive_members),
            )
            .route(
                &format!("{v}/groups/{{id}}/transitiveMemberOf"),
                get(group_transitive_member_of),
            )
            .route(
                &format!("{v}/users/{{id}}/transitiveMemberOf"),
                get(user_transitive_member_of),
            )
            .route(
                &format!("{v}/users/{{id}}/transitiveMemberOf/{{member}}"),
                get(user_transitive_member_of_cast),
            )
            .route(
                &format!("{v}/users/{{id}}/checkMemberGroups"),
                post(user_check_member_groups),
            )
            .route(&format!("{v}/devices"), get(list_devices))
            .route(
                &format!("{v}/devices/{{id}}"),
                get(get_device).delete(delete_device),
            );
    }
    r.route(
        "/beta/policies/mobileDeviceManagementPolicies",
        get(list_mdm_policies),
    )
    .route(
        "/beta/policies/mobileDeviceManagementPolicies/{id}",
        get(get_mdm_policy),
    )
    .route(
        "/beta/policies/mobileDeviceManagementPolicies/{id}/includedGroups",
        get(list_mdm_included_groups),
    )
}

// --- policies -------------------------------------------------------------------------------

fn membership_json(scope: &JoinScope) -> Value {
    match scope {
        JoinScope::All => {
            json!({"@odata.type": "#microsoft.graph.allDeviceRegistrationMembership"})
        }
        JoinScope::None => {
            json!({"@odata.type": "#microsoft.graph.noDeviceRegistrationMembership"})
        }
        JoinScope::Selected { users, groups } => json!({
            "@odata.type": "#microsoft.graph.enumeratedDeviceRegistrationMembership",
            "users": users,
            "groups": groups,
        }),
    }
}

/// Legacy shape: `appliesTo` is the `policyScope` member value as a string (0 none, 1 all,
/// 2 selected).
fn legacy_membership_json(scope: &JoinScope, is_admin_configurable: bool) -> Value {
    let (applies, users, groups) = match scope {
        JoinScope::All => ("1", vec![], vec![]),
        JoinScope::None => ("0", vec![], vec![]),
        JoinScope::Selected { users, groups } => ("2", users.clone(), groups.clone()),
    };
    json!({
        "appliesTo": applies,
        "isAdminConfigurable": is_admin_configurable,
        "allowedUsers": users,
        "allowedGroups": groups,
    })
}

fn registration_policy_json(base: &str, uri: &Uri, p: &RegistrationPolicy) -> Value {
    let version = if is_beta(uri) { "beta" } else { "v1.0" };
    let mut v = json!({
        "@odata.context": format!("{base}/{version}/$metadata#policies/deviceRegistrationPolicy/$entity"),
        "id": "deviceRegistrationPolicy",
        "displayName": "Device Registration Policy",
        "description": "Tenant-wide policy that manages initial provisioning controls using quota restrictions, additional authentication and authorization checks",
        "userDeviceQuota": p.user_device_quota,
    });
    let m = v.as_object_mut().expect("object literal");
    match p.shape {
        PolicyShape::Current => {
            m.insert(
                "multiFactorAuthConfiguration".into(),
                json!(if p.mfa_required {
                    "required"
                } else {
                    "notRequired"
                }),
            );
            m.insert(
                "azureADRegistration".into(),
                json!({"isAdminConfigurable": false, "allowedToRegister": membership_json(&p.register)}),
            );
            m.insert(
                "azureADJoin".into(),
                json!({
                    "isAdminConfigurable": true,
                    "allowedToJoin": membership_json(&p.join),
                    "localAdmins": {
                        "enableGlobalAdmins": p.global_admins_local,
                        "registeringUsers": membership_json(&p.registering_users_admins),
                    },
                }),
            );
            m.insert(
                "localAdminPassword".into(),
                json!({"isEnabled": p.local_admin_password_enabled}),
            );
        }
        PolicyShape::Legacy => {
            m.insert(
                "multiFactorAuthConfiguration".into(),
                json!(if p.mfa_required { "1" } else { "0" }),
            );
            m.insert(
                "azureADRegistration".into(),
                legacy_membership_json(&p.register, false),
            );
            m.insert("azureADJoin".into(), legacy_membership_json(&p.join, true));
        }
    }
    v
}

/// Whether the token carries one of `scopes` (requests outside the core middleware, such as
/// router-level unit tests, carry no user and pass).
fn has_any_scope(user: &Option<Extension<CurrentUser>>, scopes: &[&str]) -> bool {
    match user {
        Some(Extension(u)) => scopes.iter().any(|s| u.has_scope(s)),
        None => true,
    }
}

const POLICY_READ_SCOPES: &[&str] = &[
    "Policy.Read.All",
    "Policy.Read.DeviceConfiguration",
    "Policy.ReadWrite.DeviceConfiguration",
];

async fn get_registration_policy(
    State(shared): State<Shared>,
    user: Option<Extension<CurrentUser>>,
    uri: Uri,
) -> Response {
    let state = shared.lock();
    if state.directory.access.deny_registration_policy || !has_any_scope(&user, POLICY_READ_SCOPES)
    {
        return insufficient_privileges();
    }
    Json(registration_policy_json(
        &shared.base_url,
        &uri,
        &state.directory.registration_policy,
    ))
    .into_response()
}

const POLICY_WRITE_SCOPES: &[&str] = &["Policy.ReadWrite.DeviceConfiguration"];

/// A membership as Graph writes it (`@odata.type` discriminated), or `None` when not understood.
fn membership_from_json(v: &Value) -> Option<JoinScope> {
    let t = v.get("@odata.type")?.as_str()?.trim_start_matches('#');
    let ids = |k: &str| -> Vec<String> {
        v.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    match t {
        "microsoft.graph.allDeviceRegistrationMembership" => Some(JoinScope::All),
        "microsoft.graph.noDeviceRegistrationMembership" => Some(JoinScope::None),
        "microsoft.graph.enumeratedDeviceRegistrationMembership" => Some(JoinScope::Selected {
            users: ids("users"),
            groups: ids("groups"),
        }),
        _ => None,
    }
}

/// `PUT /policies/deviceRegistrationPolicy` replaces the policy with the body, as the service
/// does: a `userDeviceQuota` left out becomes 0 and nobody can join a device any more
/// (reference §2.1, §10). Parts of the policy the body leaves out are otherwise kept.
async fn put_registration_policy(
    State(shared): State<Shared>,
    user: Option<Extension<CurrentUser>>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut state = shared.lock();
    if state.directory.access.deny_registration_policy || !has_any_scope(&user, POLICY_WRITE_SCOPES)
    {
        return insufficient_privileges();
    }
    let body = match odata::json_body(&body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return odata::bad_request("BadRequest", "The request body must be a JSON object.");
        }
        Err(r) => return r,
    };
    let p = &mut state.directory.registration_policy;
    let mut next = p.clone();
    next.user_device_quota = match body.get("userDeviceQuota") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_i64().and_then(|n| i32::try_from(n).ok()) {
            Some(n) if n >= 0 => n,
            _ => {
                return odata::bad_request(
                    "BadRequest",
                    "Invalid value for property 'userDeviceQuota': an Edm.Int32 of at least 0 is expected.",
                );
            }
        },
    };
    if let Some(m) = body.get("multiFactorAuthConfiguration") {
        next.mfa_required = match m.as_str() {
            Some("required") => true,
            Some("notRequired") => false,
            _ => {
                return odata::bad_request(
                    "BadRequest",
                    "Invalid value for property 'multiFactorAuthConfiguration': use required or notRequired.",
                );
            }
        };
    }
    if let Some(join) = body.get("azureADJoin") {
        if let Some(m) = join.get("allowedToJoin") {
            match membership_from_json(m) {
                Some(s) => next.join = s,
                None => {
                    return odata::bad_request("BadRequest", "Invalid allowedToJoin membership.");
                }
            }
        }
        if let Some(la) = join.get("localAdmins") {
            if let Some(b) = la.get("enableGlobalAdmins").and_then(Value::as_bool) {
                next.global_admins_local = b;
            }
            if let Some(m) = la.get("registeringUsers") {
                match membership_from_json(m) {
                    Some(s) => next.registering_users_admins = s,
                    None => {
                        return odata::bad_request(
                            "BadRequest",
                            "Invalid registeringUsers membership.",
                        );
                    }
                }
            }
        }
    }
    if let Some(reg) = body.get("azureADRegistration")
        && let Some(m) = reg.get("allowedToRegister")
    {
        match membership_from_json(m) {
            Some(s) => next.register = s,
            None => {
                return odata::bad_request("BadRequest", "Invalid allowedToRegister membership.");
            }
        }
    }
    if let Some(b) = body
        .get("localAdminPassword")
        .and_then(|l| l.get("isEnabled"))
        .and_then(Value::as_bool)
    {
        next.local_admin_password_enabled = b;
    }
    next.updates += 1;
    *p = next;
    Json(registration_policy_json(&shared.base_url, &uri, p)).into_response()
}

fn mdm_json(p: &MdmPolicy) -> Value {
    let applies = match p.scope {
        MdmScope::All => "all",
        MdmScope::Selected(_) => "selected",
        MdmScope::None => "none",
    };
    json!({
        "id": p.id,
        "appliesTo": applies,
        "complianceUrl": "https://portal.manage.microsoft.com/?portalAction=Compliance",
        "description": null,
        "discoveryUrl": "https://enrollment.manage.microsoft.com/enrollmentserver/discovery.svc",
        "displayName": p.display_name,
        "isValid": true,
        "termsOfUseUrl": "https://portal.manage.microsoft.com/TermsofUse.aspx",
    })
}

async fn list_mdm_policies(
    State(shared): State<Shared>,
    user: Option<Extension<CurrentUser>>,
    uri: Uri,
) -> Response {
    let state = shared.lock();
    if state.directory.access.deny_mdm_policies || !has_any_scope(&user, &["Policy.Read.All"]) {
        return insufficient_privileges();
    }
    let items = state.directory.mdm_policies.iter().map(mdm_json).collect();
    shared.page(&uri, items, "policies/mobileDeviceManagementPolicies")
}

async fn get_mdm_policy(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    let state = shared.lock();
    if state.directory.access.deny_mdm_policies {
        return insufficient_privileges();
    }
    match state
        .directory
        .mdm_policies
        .iter()
        .find(|p| p.id.eq_ignore_ascii_case(&id))
    {
        Some(p) => odata::entity(&uri, mdm_json(p)),
        None => odata::not_found("mobilityManagementPolicy", &id),
    }
}

async fn list_mdm_included_groups(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    let state = shared.lock();
    if state.directory.access.deny_mdm_policies {
        return insufficient_privileges();
    }
    let Some(p) = state
        .directory
        .mdm_policies
        .iter()
        .find(|p| p.id.eq_ignore_ascii_case(&id))
    else {
        return odata::not_found("mobilityManagementPolicy", &id);
    };
    let items = match &p.scope {
        MdmScope::Selected(groups) => groups
            .iter()
            .filter_map(|g| state.directory.group(g))
            .map(|g| with_type(group_json(g), "#microsoft.graph.group"))
            .collect(),
        _ => Vec::new(),
    };
    shared.page(&uri, items, "groups")
}

// --- groups ---------------------------------------------------------------------------------

/// Checks `$select` against what this API version knows; Graph answers 400 for an unknown one.
fn check_group_select(uri: &Uri) -> Result<bool, Response> {
    let q = odata::query(uri);
    let wants_status = q.get("$select").is_some_and(|s| {
        s.split(',').any(|p| {
            p.trim()
                .eq_ignore_ascii_case("membershipRuleProcessingStatus")
        })
    });
    if wants_status && !is_beta(uri) {
        return Err(odata::bad_request(
            "BadRequest",
            "Could not find a property named 'membershipRuleProcessingStatus' on type 'microsoft.graph.group'.",
        ));
    }
    Ok(wants_status)
}

fn group_json_for(g: &SimGroup, with_status: bool) -> Value {
    let mut v = group_json(g);
    if with_status && let Value::Object(m) = &mut v {
        m.insert(
            "membershipRuleProcessingStatus".into(),
            processing_status_json(g),
        );
    }
    v
}

async fn list_groups(State(shared): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let with_status = match check_group_select(&uri) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let items: Vec<Value> = {
        let state = shared.lock();
        state
            .directory
            .groups
            .iter()
            .filter(|g| visible(g))
            .map(|g| group_json_for(g, with_status))
            .collect()
    };
    let items = match directory_query(&headers, &uri, items) {
        Ok(i) => i,
        Err(r) => return r,
    };
    shared.page(&uri, items, "groups")
}

async fn get_group(State(shared): State<Shared>, Path(id): Path<String>, uri: Uri) -> Response {
    let with_status = match check_group_select(&uri) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let state = shared.lock();
    match state.directory.group(&id).filter(|g| visible(g)) {
        Some(g) => odata::entity(&uri, group_json_for(g, with_status)),
        None => odata::not_found("group", &id),
    }
}

async fn delete_group(State(shared): State<Shared>, Path(id): Path<String>) -> Response {
    let mut state = shared.lock();
    let before = state.directory.groups.len();
    state
        .directory
        .groups
        .retain(|g| !(g.id.eq_ignore_ascii_case(&id) && visible(g)));
    if state.directory.groups.len() == before {
        return odata::not_found("group", &id);
    }
    for g in &mut state.directory.groups {
        g.members.retain(|m| !m.eq_ignore_ascii_case(&id));
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Group properties a create request may carry (v1.0 `group` structural properties).
const WRITABLE_GROUP_PROPERTIES: &[&str] = &[
    "accessType",
    "allowExternalSenders",
    "assignedLabels",
    "assignedLicenses",
    "autoSubscribeNewMembers",
    "classification",
    "description",
    "displayName",
    "groupTypes",
    "hideFromAddressLists",
    "hideFromOutlookClients",
    "isAssignableToRole",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "preferredDataLocation",
    "preferredLanguage",
    "securityEnabled",
    "theme",
    "uniqueName",
    "visibility",
];

fn invalid_value(prop: &str) -> Response {
    odata::bad_request(
        "Request_BadRequest",
        &format!("Invalid value specified for property '{prop}' of resource 'Group'."),
    )
}

fn valid_mail_nickname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_graphic() && !"@()\\[]\";:.<>,".contains(c))
}

/// Whether `odata_id` has the shape reference §4.2 gives: the absolute URL of a directory object,
/// `https://{graph host}/{v1.0|beta}/directoryObjects/{id}` (typed sets such as `/devices/{id}`
/// name the same object). A bare id or a relative path is not a reference.
fn is_object_url(odata_id: &str) -> bool {
    let Ok(url) = url::Url::parse(odata_id) else {
        return false;
    };
    let segs: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|x| !x.is_empty()).collect())
        .unwrap_or_default();
    matches!(url.scheme(), "https" | "http")
        && segs.len() == 3
        && matches!(segs[0], "v1.0" | "beta")
        && matches!(segs[1], "directoryObjects" | "devices" | "users" | "groups")
}

fn resolve_ref(state: &SimState, odata_id: &str) -> Option<String> {
    let id = odata_id.trim_end_matches('/').rsplit('/').next()?;
    let exists = user_json(state, id).is_some()
        || state.directory.group(id).is_some()
        || state.directory.device(id).is_some();
    exists.then(|| id.to_string())
}

async fn create_group(State(shared): State<Shared>, uri: Uri, body: Bytes) -> Response {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return odata::bad_request(
            "BadRequest",
            "Invalid request body: the request body is not a JSON object.",
        );
    };
    for key in body.keys() {
        let known = WRITABLE_GROUP_PROPERTIES.contains(&key.as_str())
            || key == "@odata.type"
            || key == "members@odata.bind"
            || key == "owners@odata.bind";
        if !known {
            return odata::bad_request(
                "BadRequest",
                &format!(
                    "The property '{key}' does not exist on type 'microsoft.graph.group'. Make sure to only use property names that are defined by the type or mark the type as open type."
                ),
            );
        }
    }
    let string = |k: &str| body.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let boolean = |k: &str| body.get(k).and_then(|v| v.as_bool());
    for k in ["mailEnabled", "securityEnabled", "isAssignableToRole"] {
        if let Some(v) = body.get(k)
            && !v.is_boolean()
            && !v.is_null()
        {
            return odata::bad_request(
                "BadRequest",
                &format!("Cannot convert the literal '{v}' to the expected type 'Edm.Boolean'."),
            );
        }
    }
    for k in [
        "displayName",
        "mailNickname",
        "description",
        "membershipRule",
        "membershipRuleProcessingState",
    ] {
        if let Some(v) = body.get(k)
            && !v.is_string()
            && !v.is_null()
        {
            return odata::bad_request(
                "BadRequest",
                &format!("Cannot convert the literal '{v}' to the expected type 'Edm.String'."),
            );
        }
    }
    let Some(display_name) =
        string("displayName").filter(|d| !d.trim().is_empty() && d.len() <= 256)
    else {
        return invalid_value("displayName");
    };
    let Some(mail_enabled) = boolean("mailEnabled") else {
        return invalid_value("mailEnabled");
    };
    let Some(security_enabled) = boolean("securityEnabled") else {
        return invalid_value("securityEnabled");
    };
    let Some(mail_nickname) = string("mailNickname").filter(|n| valid_mail_nickname(n)) else {
        return invalid_value("mailNickname");
    };
    let group_types: Vec<String> = match body.get("groupTypes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            for t in a {
                match t.as_str() {
                    Some(s)
                        if s.eq_ignore_ascii_case("Unified")
                            || s.eq_ignore_ascii_case("DynamicMembership") =>
                    {
                        out.push(s.to_string())
                    }
                    _ => return invalid_value("groupTypes"),
                }
            }
            out
        }
        Some(_) => return invalid_value("groupTypes"),
    };
    let unified = group_types
        .iter()
        .any(|t| t.eq_ignore_ascii_case("Unified"));
    let dynamic = group_types
        .iter()
        .any(|t| t.eq_ignore_ascii_case("DynamicMembership"));
    if !unified && (mail_enabled || !security_enabled) {
        return odata::bad_request(
            "Request_BadRequest",
            "Only security groups (mailEnabled false, securityEnabled true) or Microsoft 365 groups (groupTypes 'Unified') can be created through Microsoft Graph.",
        );
    }
    let rule = string("membershipRule");
    let processing = string("membershipRuleProcessingState");
    if dynamic {
        let Some(r) = rule.as_deref() else {
            return invalid_value("membershipRule");
        };
        if let Err(reason) = check_rule_syntax(r) {
            return odata::bad_request(
                "Request_BadRequest",
                &format!("Dynamic membership rule validation error: {reason}"),
            );
        }
        if let Some(p) = processing.as_deref()
            && p != "On"
            && p != "Paused"
        {
            return invalid_value("membershipRuleProcessingState");
        }
    } else if rule.is_some() || processing.is_some() {
        return odata::bad_request(
            "Request_BadRequest",
            "The membershipRule and membershipRuleProcessingState properties can only be set on a group whose groupTypes contains 'DynamicMembership'.",
        );
    }
    let binds: Vec<String> = match body.get("members@odata.bind") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(_) => return invalid_value("members"),
    };
    if binds.len() > 20 {
        return odata::bad_request(
            "Request_BadRequest",
            "A maximum of 20 members can be added in a single request.",
        );
    }
    if dynamic && !binds.is_empty() {
        return dynamic_members_error();
    }
    let delay = shared.scaled(shared.lock().directory.replication_delay);
    let mut state = shared.lock();
    if state
        .directory
        .groups
        .iter()
        .any(|g| g.mail_nickname.eq_ignore_ascii_case(&mail_nickname))
    {
        return odata::bad_request(
            "Request_BadRequest",
            "Another object with the same value for property mailNickname already exists.",
        );
    }
    let mut members = Vec::new();
    for b in &binds {
        match resolve_ref(&state, b) {
            Some(id) => members.push(id),
            None => {
                let id = b.rsplit('/').next().unwrap_or(b);
                return odata::not_found("directoryObject", id);
            }
        }
    }
    let now = Utc::now();
    let group = SimGroup {
        id: new_guid(),
        display_name,
        description: string("description"),
        mail_nickname,
        mail_enabled,
        security_enabled,
        group_types,
        membership_rule: if dynamic { rule } else { None },
        membership_rule_processing_state: dynamic
            .then(|| processing.unwrap_or_else(|| "On".into())),
        created_date_time: now,
        members,
        processing_status: RuleProcessingStatus::default(),
        visible_after: Instant::now() + delay,
    };
    let version = if is_beta(&uri) { "beta" } else { "v1.0" };
    let mut v = group_json(&group);
    if let Value::Object(m) = &mut v {
        m.insert(
            "@odata.context".into(),
            json!(format!(
                "{}/{version}/$metadata#groups/$entity",
                shared.base_url
            )),
        );
    }
    state.directory.groups.push(group);
    (StatusCode::CREATED, Json(v)).into_response()
}

fn dynamic_members_error() -> Response {
    odata::bad_request(
        "Request_BadRequest",
        "Members of a group with dynamic membership cannot be added or removed manually; the membership rule decides them.",
    )
}

/// `params` holds the route's `id` and, on the cast routes, the `member` type segment.
fn members_page(
    shared: &Shared,
    headers: &HeaderMap,
    uri: &Uri,
    params: &HashMap<String, String>,
    transitive: bool,
) -> Response {
    let id = params.get("id").map(String::as_str).unwrap_or_default();
    let cast = params.get("member").map(String::as_str);
    if let Some(c) = cast.filter(|c| !known_cast(c)) {
        return bad_segment(c);
    }
    let items: Vec<Value> = {
        let state = shared.lock();
        let Some(g) = state.directory.group(id).filter(|g| visible(g)) else {
            return odata::not_found("group", id);
        };
        let ids = if transitive {
            transitive_members(&state.directory, &g.id)
        } else {
            g.members.clone()
        };
        ids.iter()
            .filter_map(|m| object_json(&state, m))
            .filter(|v| cast_matches(v, cast))
            .collect()
    };
    let items = match directory_query(headers, uri, items) {
        Ok(i) => i,
        Err(r) => return r,
    };
    shared.page(uri, items, "directoryObjects")
}

fn cast_matches(v: &Value, cast: Option<&str>) -> bool {
    match cast {
        None => true,
        Some(c) => v
            .get("@odata.type")
            .and_then(|t| t.as_str())
            .is_some_and(|t| t.trim_start_matches('#').eq_ignore_ascii_case(c)),
    }
}

fn known_cast(cast: &str) -> bool {
    [
        "microsoft.graph.user",
        "microsoft.graph.group",
        "microsoft.graph.device",
    ]
    .iter()
    .any(|c| c.eq_ignore_ascii_case(cast))
}

fn bad_segment(segment: &str) -> Response {
    odata::bad_request(
        "BadRequest",
        &format!("Resource not found for the segment '{segment}'."),
    )
}

/// `members` and `members/{cast}`: one handler, since the cast segment only narrows the list.
async fn list_members(
    State(shared): State<Shared>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    members_page(&shared, &headers, &uri, &params, false)
}

/// `transitiveMembers` and `transitiveMembers/{cast}`.
async fn list_transitive_members(
    State(shared): State<Shared>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    members_page(&shared, &headers, &uri, &params, true)
}

async fn add_member(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let odata_id = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.get("@odata.id")
            .and_then(|x| x.as_str())
            .map(str::to_string)
    });
    let Some(odata_id) = odata_id else {
        return odata::bad_request(
            "BadRequest",
            "The request body must be a JSON object with an '@odata.id' reference to a directory object.",
        );
    };
    if !is_object_url(&odata_id) {
        return odata::bad_request(
            "Request_BadRequest",
            &format!(
                "Invalid URL format specified in @odata.id: '{odata_id}'. Use the absolute URL of the directory object, for example https://graph.microsoft.com/v1.0/directoryObjects/{{id}}."
            ),
        );
    }
    let mut state = shared.lock();
    match state.directory.group(&id).filter(|g| visible(g)) {
        None => return odata::not_found("group", &id),
        Some(g) if g.is_dynamic() => return dynamic_members_error(),
        Some(_) => {}
    }
    let Some(member) = resolve_ref(&state, &odata_id) else {
        let mid = odata_id
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("");
        return odata::not_found("directoryObject", mid);
    };
    let Some(g) = state.directory.group_mut(&id) else {
        return odata::not_found("group", &id);
    };
    if g.members.iter().any(|m| m.eq_ignore_ascii_case(&member)) {
        return odata::bad_request(
            "Request_BadRequest",
            "One or more added object references already exist for the following modified properties: 'members'.",
        );
    }
    g.members.push(member);
    StatusCode::NO_CONTENT.into_response()
}

/// Most directory links one request may add (`members@odata.bind`), as Graph enforces it.
pub const MAX_LINK_CHANGES: usize = 20;

/// `PATCH /groups/{id}`: `members@odata.bind` (up to 20 references, all or nothing, as Graph:
/// one reference already a member, unknown or malformed refuses the whole request),
/// `displayName` and `description`.
async fn patch_group(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match odata::json_body(&body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return odata::bad_request("BadRequest", "The request body must be a JSON object.");
        }
        Err(r) => return r,
    };
    let mut binds: Vec<String> = Vec::new();
    let (mut display_name, mut description) = (None, None);
    for (key, value) in &body {
        match key.as_str() {
            "members@odata.bind" => {
                let Some(items) = value.as_array() else {
                    return odata::bad_request(
                        "BadRequest",
                        "The value of 'members@odata.bind' must be an array of directory object URLs.",
                    );
                };
                for item in items {
                    let Some(url) = item.as_str() else {
                        return odata::bad_request(
                            "BadRequest",
                            "The value of 'members@odata.bind' must be an array of directory object URLs.",
                        );
                    };
                    binds.push(url.to_string());
                }
            }
            "displayName" => match value.as_str() {
                Some(v) if !v.trim().is_empty() => display_name = Some(v.to_string()),
                _ => {
                    return odata::bad_request(
                        "Request_BadRequest",
                        "Invalid value specified for property 'displayName' of resource 'Group'.",
                    );
                }
            },
            "description" => description = Some(value.as_str().map(str::to_string)),
            other => {
                return odata::bad_request(
                    "Request_BadRequest",
                    &format!(
                        "Property '{other}' does not exist as a declared property or extension property."
                    ),
                );
            }
        }
    }
    if binds.len() > MAX_LINK_CHANGES {
        return odata::bad_request(
            "Request_BadRequest",
            "A resource cannot contain more than 20 link changes.",
        );
    }
    if let Some(bad) = binds.iter().find(|u| !is_object_url(u)) {
        return odata::bad_request(
            "Request_BadRequest",
            &format!(
                "Invalid URL format specified in @odata.bind for members: '{bad}'. Use the absolute URL of the directory object, for example https://graph.microsoft.com/v1.0/directoryObjects/{{id}}."
            ),
        );
    }
    let mut state = shared.lock();
    match state.directory.group(&id).filter(|g| visible(g)) {
        None => return odata::not_found("group", &id),
        Some(g) if g.is_dynamic() && !binds.is_empty() => return dynamic_members_error(),
        Some(_) => {}
    }
    let mut members: Vec<String> = Vec::with_capacity(binds.len());
    for url in &binds {
        let Some(member) = resolve_ref(&state, url) else {
            let mid = url.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            return odata::not_found("directoryObject", mid);
        };
        members.push(member);
    }
    let Some(g) = state.directory.group_mut(&id) else {
        return odata::not_found("group", &id);
    };
    let already = |m: &String| g.members.iter().any(|x| x.eq_ignore_ascii_case(m));
    let twice = members
        .iter()
        .enumerate()
        .any(|(i, m)| members[..i].iter().any(|x| x.eq_ignore_ascii_case(m)));
    if twice || members.iter().any(already) {
        return odata::bad_request(
            "Request_BadRequest",
            "One or more added object references already exist for the following modified properties: 'members'.",
        );
    }
    g.members.extend(members);
    if let Some(n) = display_name {
        g.display_name = n;
    }
    if let Some(d) = description {
        g.description = d;
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn remove_member(
    State(shared): State<Shared>,
    Path((id, member)): Path<(String, String)>,
) -> Response {
    let mut state = shared.lock();
    let Some(g) = state.directory.group_mut(&id).filter(|g| visible(g)) else {
        return odata::not_found("group", &id);
    };
    if g.is_dynamic() {
        return dynamic_members_error();
    }
    let before = g.members.len();
    g.members.retain(|m| !m.eq_ignore_ascii_case(&member));
    if g.members.len() == before {
        return odata::not_found("directoryObject", &member);
    }
    StatusCode::NO_CONTENT.into_response()
}

fn member_of_page(
    shared: &Shared,
    headers: &HeaderMap,
    uri: &Uri,
    object_id: &str,
    cast: Option<&str>,
) -> Response {
    if let Some(c) = cast
        && !c.eq_ignore_ascii_case("microsoft.graph.group")
    {
        return bad_segment(c);
    }
    let items: Vec<Value> = {
        let state = shared.lock();
        transitive_member_of(&state.directory, object_id)
            .iter()
            .filter_map(|g| state.directory.group(g))
            .filter(|g| visible(g))
            .map(|g| with_type(group_json(g), "#microsoft.graph.group"))
            .collect()
    };
    let items = match directory_query(headers, uri, items) {
        Ok(i) => i,
        Err(r) => return r,
    };
    shared.page(uri, items, "directoryObjects")
}

fn user_id(state: &SimState, key: &str) -> Option<String> {
    super::core::user_by_id_or_upn(&state.core, key).map(|u| u.id.clone())
}

async fn user_transitive_member_of(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(uid) = user_id(&shared.lock(), &id) else {
        return odata::not_found("user", &id);
    };
    member_of_page(&shared, &headers, &uri, &uid, None)
}

async fn user_transitive_member_of_cast(
    State(shared): State<Shared>,
    Path((id, cast)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(uid) = user_id(&shared.lock(), &id) else {
        return odata::not_found("user", &id);
    };
    member_of_page(&shared, &headers, &uri, &uid, Some(&cast))
}

async fn group_transitive_member_of(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if shared
        .lock()
        .directory
        .group(&id)
        .filter(|g| visible(g))
        .is_none()
    {
        return odata::not_found("group", &id);
    }
    member_of_page(&shared, &headers, &uri, &id, None)
}

async fn user_check_member_groups(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let wanted: Option<Vec<String>> = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.get("groupIds")?.as_array().map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
    });
    let Some(wanted) = wanted else {
        return odata::bad_request(
            "BadRequest",
            "The request body must be a JSON object with a 'groupIds' array.",
        );
    };
    if wanted.len() > 20 {
        return odata::bad_request(
            "Request_BadRequest",
            "The number of group ids in checkMemberGroups may not exceed 20.",
        );
    }
    let state = shared.lock();
    let Some(uid) = user_id(&state, &id) else {
        return odata::not_found("user", &id);
    };
    let member_of = transitive_member_of(&state.directory, &uid);
    let hits: Vec<String> = wanted
        .into_iter()
        .filter(|g| member_of.contains(&g.to_ascii_lowercase()))
        .collect();
    Json(json!({
        "@odata.context": format!("{}/v1.0/$metadata#Collection(Edm.String)", shared.base_url),
        "value": hits,
    }))
    .into_response()
}

// --- devices --------------------------------------------------------------------------------

async fn list_devices(State(shared): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let items: Vec<Value> = shared
        .lock()
        .directory
        .devices
        .iter()
        .map(device_json)
        .collect();
    let items = match directory_query(&headers, &uri, items) {
        Ok(i) => i,
        Err(r) => return r,
    };
    shared.page(&uri, items, "devices")
}

/// `DELETE /devices/{id}` (object id): 204, needs Device.ReadWrite.All (reference §12 step 6).
async fn delete_device(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut state = shared.lock();
    if let Some(granted) = super::core::granted_scopes(&state, &headers)
        && !granted
            .iter()
            .any(|g| g.eq_ignore_ascii_case("Device.ReadWrite.All"))
    {
        return odata::error(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
    }
    let Some(device_id) = state.directory.device(&id).map(|d| d.device_id.clone()) else {
        return odata::not_found("device", &id);
    };
    remove_device_object(&mut state, &device_id);
    StatusCode::NO_CONTENT.into_response()
}

async fn get_device(State(shared): State<Shared>, Path(id): Path<String>, uri: Uri) -> Response {
    let state = shared.lock();
    match state.directory.device(&id) {
        Some(d) => odata::entity(&uri, device_json(d)),
        None => odata::not_found("device", &id),
    }
}

// ---------------------------------------------------------------------------------------------
// Rule syntax (what POST /groups accepts)

const DEVICE_RULE_PROPERTIES: &[&str] = &[
    "accountEnabled",
    "deviceCategory",
    "deviceId",
    "deviceManagementAppId",
    "deviceManufacturer",
    "deviceModel",
    "deviceOSType",
    "deviceOSVersion",
    "deviceOwnership",
    "devicePhysicalIds",
    "displayName",
    "enrollmentProfileName",
    "isRooted",
    "managementType",
    "memberOf",
    "objectId",
    "profileType",
    "systemLabels",
];

const RULE_OPERATORS: &[&str] = &[
    "-eq",
    "-ne",
    "-startsWith",
    "-notStartsWith",
    "-contains",
    "-notContains",
    "-match",
    "-notMatch",
    "-in",
    "-notIn",
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    Word(String),
    Str(String),
}

fn tokenize_rule(rule: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let chars: Vec<char> = rule.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            toks.push(Tok::Open);
            i += 1;
        } else if c == ')' {
            toks.push(Tok::Close);
            i += 1;
        } else if c == '"' {
            let start = i + 1;
            let mut j = start;
            while j < chars.len() && chars[j] != '"' {
                j += 1;
            }
            if j >= chars.len() {
                return Err(format!(
                    "a string starting at position {i} is not closed with '\"'."
                ));
            }
            toks.push(Tok::Str(chars[start..j].iter().collect()));
            i = j + 1;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !"()\"".contains(chars[i]) {
                i += 1;
            }
            toks.push(Tok::Word(chars[start..i].iter().collect()));
        }
    }
    Ok(toks)
}

struct RuleParser {
    toks: Vec<Tok>,
    pos: usize,
    subject: Option<String>,
}

impl RuleParser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expr(&mut self) -> Result<(), String> {
        self.term()?;
        while let Some(Tok::Word(w)) = self.peek() {
            if w.eq_ignore_ascii_case("-and") || w.eq_ignore_ascii_case("-or") {
                self.pos += 1;
                self.term()?;
            } else {
                return Err(format!("expected -and, -or or ')' but found '{w}'."));
            }
        }
        Ok(())
    }

    fn term(&mut self) -> Result<(), String> {
        match self.next() {
            Some(Tok::Open) => {
                self.expr()?;
                match self.next() {
                    Some(Tok::Close) => Ok(()),
                    _ => Err("a '(' is not closed with ')'.".into()),
                }
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("-not") => self.term(),
            Some(Tok::Word(w)) => self.comparison(&w),
            Some(Tok::Str(s)) => Err(format!(
                "expected a property such as device.displayName but found \"{s}\"."
            )),
            Some(Tok::Close) => Err("unexpected ')'.".into()),
            None => Err("the rule ends where a condition was expected.".into()),
        }
    }

    fn comparison(&mut self, prop: &str) -> Result<(), String> {
        let Some((subject, name)) = prop.split_once('.') else {
            return Err(format!(
                "'{prop}' is not a property; write device.<property> or user.<property>."
            ));
        };
        let subject = subject.to_ascii_lowercase();
        if subject != "device" && subject != "user" {
            return Err(format!(
                "'{prop}' is not a property; write device.<property> or user.<property>."
            ));
        }
        if let Some(prev) = &self.subject
            && *prev != subject
        {
            return Err("a rule cannot mix user and device properties.".into());
        }
        self.subject = Some(subject.clone());
        let multi = name.eq_ignore_ascii_case("devicePhysicalIds")
            || name.eq_ignore_ascii_case("systemLabels")
            || name.eq_ignore_ascii_case("proxyAddresses")
            || name.eq_ignore_ascii_case("otherMails");
        if subject == "device"
            && !DEVICE_RULE_PROPERTIES
                .iter()
                .any(|p| p.eq_ignore_ascii_case(name))
            && !name.to_ascii_lowercase().starts_with("extensionattribute")
        {
            return Err(format!(
                "property '{prop}' is not supported in device rules."
            ));
        }
        let Some(Tok::Word(op)) = self.next() else {
            return Err(format!("expected an operator such as -eq after '{prop}'."));
        };
        if op.eq_ignore_ascii_case("-any") || op.eq_ignore_ascii_case("-all") {
            if !multi {
                return Err(format!(
                    "'{op}' can only be used with a multi-valued property such as device.devicePhysicalIds."
                ));
            }
            if self.next() != Some(Tok::Open) {
                return Err(format!("expected '(' after '{op}'."));
            }
            match self.next() {
                Some(Tok::Word(w)) if w == "_" => {}
                _ => return Err(format!("expected '_' inside '{op} (...)'.")),
            }
            let Some(Tok::Word(inner)) = self.next() else {
                return Err("expected an operator such as -eq after '_'.".into());
            };
            self.operator(&inner)?;
            self.value(&inner)?;
            if self.next() != Some(Tok::Close) {
                return Err(format!("a '(' after '{op}' is not closed with ')'."));
            }
            return Ok(());
        }
        if multi {
            return Err(format!(
                "'{prop}' holds several values; use -any or -all, for example {prop} -any (_ -eq \"value\")."
            ));
        }
        self.operator(&op)?;
        self.value(&op)
    }

    fn operator(&self, op: &str) -> Result<(), String> {
        if RULE_OPERATORS.iter().any(|o| o.eq_ignore_ascii_case(op)) {
            Ok(())
        } else {
            Err(format!("'{op}' is not a supported operator."))
        }
    }

    fn value(&mut self, op: &str) -> Result<(), String> {
        match self.next() {
            Some(Tok::Str(_)) => Ok(()),
            Some(Tok::Word(w))
                if ["true", "false", "null"]
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(&w)) =>
            {
                Ok(())
            }
            _ => Err(format!("expected a value in double quotes after '{op}'.")),
        }
    }
}

/// Whether Entra would accept `rule` as a membership rule; `Err` explains the first problem.
pub fn check_rule_syntax(rule: &str) -> Result<(), String> {
    if rule.trim().is_empty() {
        return Err("the rule is empty.".into());
    }
    if rule.len() > 3072 {
        return Err("the rule is longer than 3072 characters.".into());
    }
    let toks = tokenize_rule(rule)?;
    let mut p = RuleParser {
        toks,
        pos: 0,
        subject: None,
    };
    p.expr()?;
    if let Some(t) = p.peek() {
        return Err(format!("unexpected {t:?} after the end of the rule."));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Seed

fn seed_group(
    display_name: &str,
    nickname: &str,
    description: &str,
    members: Vec<String>,
    rule: Option<&str>,
) -> SimGroup {
    let now = Utc::now();
    SimGroup {
        id: super::core::fixed_guid(&format!("group:{nickname}")),
        display_name: display_name.into(),
        description: Some(description.into()),
        mail_nickname: nickname.into(),
        mail_enabled: false,
        security_enabled: true,
        group_types: if rule.is_some() {
            vec!["DynamicMembership".into()]
        } else {
            Vec::new()
        },
        membership_rule: rule.map(str::to_string),
        membership_rule_processing_state: rule.map(|_| "On".to_string()),
        created_date_time: now - chrono::Duration::days(120),
        members,
        processing_status: if rule.is_some() {
            RuleProcessingStatus {
                status: "Succeeded".into(),
                last_membership_updated: Some(now - chrono::Duration::hours(2)),
                error_message: None,
            }
        } else {
            RuleProcessingStatus::default()
        },
        visible_after: Instant::now(),
    }
}

/// Demo: technicians may join (join = selected "IT Technicians"), MDM covers "All staff"
/// which holds the technicians through nesting; the office manager is in MDM scope but may not
/// join, so the page shows a real ✘.
pub(crate) fn seed(state: &mut SimState, seed: Seed) {
    if !seed.has_demo_data() {
        return;
    }
    let by_alias = |alias: &str| -> Option<String> {
        state
            .core
            .users
            .iter()
            .find(|u| {
                u.user_principal_name
                    .to_ascii_lowercase()
                    .starts_with(&format!("{alias}@"))
            })
            .map(|u| u.id.clone())
    };
    let technicians: Vec<String> = ["rowan.achterberg", "imani.okafor"]
        .iter()
        .filter_map(|a| by_alias(a))
        .collect();
    let admin_id = state.core.interactive_user_id.clone();
    let it = seed_group(
        "IT Technicians",
        "it-technicians",
        "People who prepare and deploy company PCs",
        technicians.clone(),
        None,
    );
    let mut staff_members: Vec<String> = state
        .core
        .users
        .iter()
        .filter(|u| u.user_type == "Member" && u.id != admin_id && !technicians.contains(&u.id))
        .map(|u| u.id.clone())
        .collect();
    staff_members.push(it.id.clone());
    let staff = seed_group(
        "All staff",
        "all-staff",
        "Everyone employed by the company",
        staff_members,
        None,
    );
    let dynamic = seed_group(
        "Autopilot - All devices",
        "autopilot-all-devices",
        "Every device registered with Windows Autopilot",
        Vec::new(),
        Some(r#"(device.devicePhysicalIDs -any (_ -contains "[ZTDID]"))"#),
    );
    state.directory.registration_policy = RegistrationPolicy {
        join: JoinScope::Selected {
            users: Vec::new(),
            groups: vec![it.id.clone()],
        },
        user_device_quota: 20,
        // Asked twice: here and by the Conditional Access policy for "Register or join devices"
        // (sim/readiness.rs), the conflict Microsoft tells to avoid (reference §10).
        mfa_required: true,
        ..RegistrationPolicy::default()
    };
    state.directory.mdm_policies = vec![MdmPolicy {
        id: INTUNE_MDM_APP_ID.into(),
        display_name: "Microsoft Intune".into(),
        // The device group beside "All staff" covers nobody: the MDM user scope applies to
        // users (reference §10), a mistake the readiness checks name.
        scope: MdmScope::Selected(vec![staff.id.clone(), dynamic.id.clone()]),
    }];
    // The group the seeded kiosk profile targets, so picking it in step 4 shows the
    // oldest-profile-wins warning.
    let mut kiosk = seed_group(
        "Kiosk devices",
        "kiosk-devices",
        "Reception and meeting room PCs (group tag KIOSK)",
        Vec::new(),
        Some(r#"(device.devicePhysicalIds -any (_ -eq "[OrderID]:KIOSK"))"#),
    );
    kiosk.id = super::profiles::DEMO_KIOSK_GROUP_ID.to_string();
    // The office manager's group, which an enrollment restriction keeps from enrolling Windows
    // devices (sim/readiness.rs).
    let front_desk = seed_group(
        "Front desk",
        "front-desk",
        "Reception and office management",
        by_alias("lucia.ferrandez").into_iter().collect(),
        None,
    );
    state.directory.groups = vec![it, staff, dynamic, kiosk, front_desk];
    let now = Utc::now();
    state.directory.devices.push(SimDevice {
        id: super::core::fixed_guid("device:reception-pc"),
        device_id: super::core::fixed_guid("deviceid:reception-pc"),
        display_name: "RECEPTION-PC".into(),
        operating_system: "Windows".into(),
        operating_system_version: Some("10.0.22631.4460".into()),
        account_enabled: true,
        physical_ids: vec![
            "[USER-GID]:6f1c2a9e-1d4b-4a8e-9c65-3b2f0d7e8a11:6755399441055744".into(),
            "[GID]:g:6966588493347521".into(),
        ],
        trust_type: Some("AzureAd".into()),
        profile_type: Some("RegisteredDevice".into()),
        device_ownership: Some("Company".into()),
        enrollment_profile_name: None,
        is_managed: Some(true),
        is_compliant: Some(true),
        registration_date_time: now - chrono::Duration::days(300),
        approximate_last_sign_in_date_time: Some(now - chrono::Duration::days(1)),
    });
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
