//! Step 4: the Entra device group the Autopilot profile is assigned to (reference §4,
//! procedure §1.4). Finds an existing group or creates a dynamic one (all Autopilot devices,
//! group tags, or a purchase order) or an assigned (static) one, then reads it back.
//!
//! Re-running is safe: a group with the same display name is offered instead of creating a
//! second one, and the mail nickname is checked for uniqueness before the create.

use std::time::Duration;

use crate::graph::models::directory::{Group, NewGroup};
use crate::graph::{ApiVersion, GraphClient, GraphError, client::encode, client::odata_string};

use crate::steps::registry::Permission;

/// Finds and creates groups, and adds devices to assigned groups.
pub const GROUPS_WRITE: Permission =
    Permission::new("Group.ReadWrite.All", &["Directory.ReadWrite.All"]);

#[derive(Debug, Clone, thiserror::Error)]
pub enum GroupError {
    #[error("The group settings need fixing: {}", .0.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join(" "))]
    Invalid(Vec<FieldError>),
    #[error(
        "Your account may not {action}. The app needs Group.ReadWrite.All consented, and your account a role such as Groups Administrator or Intune Administrator. ({source})"
    )]
    Forbidden {
        action: &'static str,
        source: Box<GraphError>,
    },
    #[error(
        "Microsoft Entra refused the group: {message} Fix the setting named and try again. ({source})"
    )]
    Rejected {
        message: String,
        source: Box<GraphError>,
    },
    #[error(
        "The group was created but could not be read back after {attempts} tries; Entra may still be replicating it. Wait a minute and press Check again."
    )]
    NotReplicated { attempts: u32 },
    #[error("Could not {action}: {source}")]
    Graph {
        action: &'static str,
        source: Box<GraphError>,
    },
}

fn graph_err(action: &'static str) -> impl Fn(GraphError) -> GroupError {
    move |source| {
        if source.is_forbidden() {
            GroupError::Forbidden {
                action,
                source: Box::new(source),
            }
        } else {
            GroupError::Graph {
                action,
                source: Box::new(source),
            }
        }
    }
}

/// A problem with one form field, for showing next to it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    pub field: Field,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Field {
    DisplayName,
    GroupTags,
    PurchaseOrder,
    Rule,
}

/// Which devices a dynamic group collects.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RuleSpec {
    /// Every device registered with Autopilot (`[ZTDId]`).
    AllAutopilot,
    /// Devices whose Autopilot group tag (Entra `[OrderID]`) is one of these.
    GroupTags(Vec<String>),
    /// Devices from one purchase order (`[PurchaseOrderId]`).
    PurchaseOrder(String),
}

const PHYSICAL_IDS: &str = "device.devicePhysicalIds";

fn clause(op: &str, value: &str) -> String {
    format!("({PHYSICAL_IDS} -any (_ {op} \"{value}\"))")
}

/// A tag or purchase order must fit inside the rule's double quotes.
fn check_value(field: Field, what: &str, v: &str) -> Result<(), FieldError> {
    let err = |message: String| Err(FieldError { field, message });
    if v.trim().is_empty() {
        return err(format!("Enter a {what}."));
    }
    if v.trim() != v {
        return err(format!(
            "The {what} \"{v}\" starts or ends with a space; remove it."
        ));
    }
    if v.contains('"') || v.chars().any(|c| c.is_control()) {
        return err(format!(
            "The {what} \"{v}\" contains a double quote or a control character, which a membership rule cannot hold."
        ));
    }
    if v.len() > 200 {
        return err(format!("The {what} is longer than 200 characters."));
    }
    Ok(())
}

/// The rule text for `spec`, in the forms Microsoft documents (procedure §1.4).
pub fn build_rule(spec: &RuleSpec) -> Result<String, FieldError> {
    match spec {
        RuleSpec::AllAutopilot => Ok(clause("-contains", "[ZTDId]")),
        RuleSpec::GroupTags(tags) => {
            if tags.is_empty() {
                return Err(FieldError {
                    field: Field::GroupTags,
                    message: "Enter at least one group tag.".into(),
                });
            }
            let mut seen: Vec<String> = Vec::new();
            let mut parts = Vec::new();
            for t in tags {
                check_value(Field::GroupTags, "group tag", t)?;
                if seen.iter().any(|s| s.eq_ignore_ascii_case(t)) {
                    continue;
                }
                seen.push(t.clone());
                parts.push(clause("-eq", &format!("[OrderID]:{t}")));
            }
            Ok(parts.join(" -or "))
        }
        RuleSpec::PurchaseOrder(po) => {
            check_value(Field::PurchaseOrder, "purchase order", po)?;
            Ok(clause("-eq", &format!("[PurchaseOrderId]:{po}")))
        }
    }
}

/// Reads a rule back into the spec it expresses; accepts only the Autopilot forms (with either
/// documented spelling, any letter case, `-or` between group-tag clauses).
pub fn parse_rule(rule: &str) -> Result<RuleSpec, String> {
    let clauses = split_or(rule.trim()).ok_or("the rule's quotes or parentheses do not balance")?;
    let mut tags = Vec::new();
    let mut po = None;
    let mut all = false;
    for c in &clauses {
        let (op, value) = parse_clause(c).ok_or_else(|| {
            format!(
                "\"{}\" is not one of the Autopilot device rule forms",
                c.trim()
            )
        })?;
        let lower = value.to_ascii_lowercase();
        match op.as_str() {
            "-contains" | "-startswith" if lower == "[ztdid]" => all = true,
            "-eq" if lower.starts_with("[orderid]:") => {
                tags.push(value["[OrderID]:".len()..].to_string())
            }
            "-eq" if lower.starts_with("[purchaseorderid]:") => {
                po = Some(value["[PurchaseOrderId]:".len()..].to_string())
            }
            _ => {
                return Err(format!(
                    "\"{}\" is not one of the Autopilot device rule forms",
                    c.trim()
                ));
            }
        }
    }
    match (all, tags.is_empty(), po) {
        (true, true, None) if clauses.len() == 1 => Ok(RuleSpec::AllAutopilot),
        (false, false, None) => Ok(RuleSpec::GroupTags(tags)),
        (false, true, Some(p)) if clauses.len() == 1 => Ok(RuleSpec::PurchaseOrder(p)),
        _ => Err("the rule mixes kinds of clauses; use one kind (all devices, group tags, or one purchase order)".into()),
    }
}

fn split_or(s: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quote = false;
    let mut cur = String::new();
    let lower = s.to_ascii_lowercase();
    let mut i = 0;
    let bytes = s.as_bytes();
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c == '"' {
            quote = !quote;
        } else if !quote && c == '(' {
            depth += 1;
        } else if !quote && c == ')' {
            depth -= 1;
            if depth < 0 {
                return None;
            }
        } else if !quote && depth == 0 && lower[i..].starts_with("-or") {
            parts.push(std::mem::take(&mut cur));
            i += 3;
            continue;
        }
        // Rules are ASCII apart from tag values; push whole chars.
        let ch = s[i..].chars().next()?;
        cur.push(ch);
        i += ch.len_utf8();
    }
    (!quote && depth == 0).then_some(parts.into_iter().chain([cur]).collect())
}

fn parse_clause(c: &str) -> Option<(String, String)> {
    let mut s = c.trim();
    while s.starts_with('(') && s.ends_with(')') {
        s = s[1..s.len() - 1].trim();
    }
    let rest = s
        .get(..PHYSICAL_IDS.len())
        .filter(|p| p.eq_ignore_ascii_case(PHYSICAL_IDS))
        .map(|_| s[PHYSICAL_IDS.len()..].trim_start())?;
    let rest = rest
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("-any"))
        .map(|_| rest[4..].trim_start())?;
    let rest = rest.strip_prefix('(')?.strip_suffix(')')?.trim();
    let rest = rest.strip_prefix('_')?.trim_start();
    let (op, value) = rest.split_once(char::is_whitespace)?;
    let value = value.trim().strip_prefix('"')?.strip_suffix('"')?;
    if value.contains('"') {
        return None;
    }
    Some((op.to_ascii_lowercase(), value.to_string()))
}

/// What kind of group, as later steps need to know.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GroupKind {
    Dynamic { rule: String },
    Static,
}

/// The device group chosen or created in step 4 (persisted in `Outcomes`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupRef {
    pub id: String,
    pub display_name: String,
    pub kind: GroupKind,
}

impl GroupRef {
    pub fn from_group(g: &Group) -> GroupRef {
        GroupRef {
            id: g.id.clone(),
            display_name: g.name().to_string(),
            kind: match (&g.membership_rule, g.is_dynamic()) {
                (Some(rule), true) => GroupKind::Dynamic { rule: rule.clone() },
                _ => GroupKind::Static,
            },
        }
    }
}

/// The form of a group to create.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupSpec {
    pub display_name: String,
    pub description: String,
    /// `Some` for a dynamic group, `None` for an assigned (static) one.
    pub rule: Option<RuleSpec>,
}

impl GroupSpec {
    /// What the group must read back as: dynamic with exactly this rule, or assigned.
    pub fn expected_kind(&self) -> Result<GroupKind, FieldError> {
        Ok(match &self.rule {
            Some(r) => GroupKind::Dynamic {
                rule: build_rule(r)?,
            },
            None => GroupKind::Static,
        })
    }
}

/// Every problem with the form, field by field.
pub fn check_spec(spec: &GroupSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name = spec.display_name.trim();
    if name.is_empty() {
        errors.push(FieldError {
            field: Field::DisplayName,
            message: "Enter a group name.".into(),
        });
    } else if name.chars().count() > 256 {
        errors.push(FieldError {
            field: Field::DisplayName,
            message: "The group name is longer than 256 characters.".into(),
        });
    }
    if let Some(r) = &spec.rule
        && let Err(e) = build_rule(r)
    {
        errors.push(e);
    }
    errors
}

/// A mail nickname Graph accepts, derived from the display name: ASCII letters, digits, `-` and
/// `_` only (accents dropped, spaces and punctuation become `-`), at most 64 characters, never
/// empty.
pub fn derive_mail_nickname(display_name: &str) -> String {
    let mut out = String::new();
    for c in display_name.chars() {
        let c = fold_accent(c);
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out = out.trim_matches('-').to_string();
    out.truncate(MAX_NICKNAME);
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "autopilot-devices".into()
    } else {
        out
    }
}

const MAX_NICKNAME: usize = 64;

fn fold_accent(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => 'a',
        'ç' | 'Ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => 'i',
        'ñ' | 'Ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => 'u',
        'ý' | 'ÿ' | 'Ý' => 'y',
        'ß' => 's',
        other => other,
    }
}

/// `base` with a numeric suffix, still within 64 characters.
fn with_suffix(base: &str, n: u32) -> String {
    let suffix = format!("-{n}");
    let mut b = base.to_string();
    b.truncate(MAX_NICKNAME - suffix.len());
    format!("{}{suffix}", b.trim_end_matches('-'))
}

/// The body `POST /groups` gets for `spec` (reference §4.1).
pub fn new_group_body(spec: &GroupSpec, mail_nickname: &str) -> Result<NewGroup, GroupError> {
    let errors = check_spec(spec);
    if !errors.is_empty() {
        return Err(GroupError::Invalid(errors));
    }
    let rule = match &spec.rule {
        Some(r) => Some(build_rule(r).map_err(|e| GroupError::Invalid(vec![e]))?),
        None => None,
    };
    let description = spec.description.trim();
    Ok(NewGroup {
        display_name: spec.display_name.trim().to_string(),
        description: (!description.is_empty()).then(|| description.to_string()),
        mail_enabled: false,
        mail_nickname: mail_nickname.to_string(),
        security_enabled: true,
        group_types: if rule.is_some() {
            vec!["DynamicMembership".into()]
        } else {
            Vec::new()
        },
        membership_rule_processing_state: rule.as_ref().map(|_| "On".to_string()),
        membership_rule: rule,
    })
}

const GROUP_SELECT: &str = "id,displayName,description,groupTypes,membershipRule,membershipRuleProcessingState,mailNickname,securityEnabled,mailEnabled,createdDateTime";

/// Security groups whose name starts with `text` (directory search; word prefixes).
pub async fn search_groups(graph: &GraphClient, text: &str) -> Result<Vec<Group>, GroupError> {
    let t = text.trim().replace('"', "");
    let path = if t.is_empty() {
        format!("/groups?$select={GROUP_SELECT}&$orderby=displayName&$top=25")
    } else {
        format!(
            "/groups?$search={}&$count=true&$select={GROUP_SELECT}&$orderby=displayName&$top=25",
            encode(&format!("\"displayName:{t}\""))
        )
    };
    let page: crate::graph::client::Page<Group> = graph
        .clone()
        .eventual()
        .get_json(ApiVersion::V1, &path)
        .await
        .map_err(graph_err("search groups"))?;
    Ok(page.value)
}

/// A group the search found, with why it cannot hold the Autopilot devices (`None`: it can).
#[derive(Debug, Clone, PartialEq)]
pub struct FoundGroup {
    pub group: Group,
    pub problem: Option<String>,
}

/// Whether an assigned (static) group holds people: its properties do not say what its members
/// are, so a few members are read (`@odata.type` names each one's kind).
pub async fn holds_users(graph: &GraphClient, id: &str) -> Result<bool, GroupError> {
    let page: crate::graph::client::Page<serde_json::Value> = graph
        .get_json(
            ApiVersion::V1,
            &format!("/groups/{}/members?$select=id&$top=20", encode(id)),
        )
        .await
        .map_err(graph_err("read the group's members"))?;
    Ok(page
        .value
        .iter()
        .any(|m| m.get("@odata.type").and_then(|t| t.as_str()) == Some("#microsoft.graph.user")))
}

/// The groups of [`search_groups`], each with why it cannot hold devices: besides what its
/// properties say ([`device_group_problem`]), an assigned group that holds users is a group of
/// people ("All staff"), not of devices.
pub async fn search_device_groups(
    graph: &GraphClient,
    text: &str,
) -> Result<Vec<FoundGroup>, GroupError> {
    let mut out = Vec::new();
    for group in search_groups(graph, text).await? {
        let mut problem = device_group_problem(&group);
        if problem.is_none() && !group.is_dynamic() && holds_users(graph, &group.id).await? {
            problem = Some(format!("{} holds users, not devices.", group.name()));
        }
        out.push(FoundGroup { group, problem });
    }
    Ok(out)
}

/// Groups whose display name is exactly `name` (Graph compares case-insensitively).
pub async fn find_by_display_name(
    graph: &GraphClient,
    name: &str,
) -> Result<Vec<Group>, GroupError> {
    graph
        .get_all(
            ApiVersion::V1,
            &format!(
                "/groups?$filter=displayName%20eq%20{}&$select={GROUP_SELECT}",
                odata_string(name.trim())
            ),
        )
        .await
        .map_err(graph_err("look for groups with that name"))
}

/// `base`, or `base-2`, `base-3`… : the first mail nickname no group uses yet.
pub async fn unique_mail_nickname(graph: &GraphClient, base: &str) -> Result<String, GroupError> {
    for n in 1..=50u32 {
        let candidate = if n == 1 {
            base.to_string()
        } else {
            with_suffix(base, n)
        };
        let hits: crate::graph::client::Page<Group> = graph
            .get_json(
                ApiVersion::V1,
                &format!(
                    "/groups?$filter=mailNickname%20eq%20{}&$select=id&$top=1",
                    odata_string(&candidate)
                ),
            )
            .await
            .map_err(graph_err("check the group's mail nickname"))?;
        if hits.value.is_empty() {
            return Ok(candidate);
        }
    }
    Ok(with_suffix(base, rand::random::<u32>() % 100_000 + 51))
}

/// What a create attempt found.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    Created(Group),
    /// A group with this display name exists already; it is offered instead of a second one.
    Exists(Group),
}

/// Creates the group unless one with the same display name exists.
pub async fn create_group(
    graph: &GraphClient,
    spec: &GroupSpec,
) -> Result<CreateOutcome, GroupError> {
    let errors = check_spec(spec);
    if !errors.is_empty() {
        return Err(GroupError::Invalid(errors));
    }
    if let Some(existing) = find_by_display_name(graph, &spec.display_name)
        .await?
        .into_iter()
        .next()
    {
        return Ok(CreateOutcome::Exists(existing));
    }
    let nickname = unique_mail_nickname(graph, &derive_mail_nickname(&spec.display_name)).await?;
    let body = new_group_body(spec, &nickname)?;
    let created = post_group(graph, &body).await?;
    Ok(CreateOutcome::Created(created))
}

/// Sends one `POST /groups`; a 400 comes back as [`GroupError::Rejected`] with Graph's own
/// message (which names the property at fault).
pub async fn post_group(graph: &GraphClient, body: &NewGroup) -> Result<Group, GroupError> {
    graph
        .post_json(ApiVersion::V1, "/groups", body)
        .await
        .map_err(|source| {
            if source.status() == Some(400) {
                let message = match &source {
                    GraphError::Service { message, .. } => message.clone(),
                    _ => source.to_string(),
                };
                GroupError::Rejected {
                    message,
                    source: Box::new(source),
                }
            } else {
                graph_err("create the group")(source)
            }
        })
}

/// How long to keep retrying a read-back that answers 404 (a new group replicates for up to
/// ~30 s, reference §8).
#[derive(Debug, Clone, Copy)]
pub struct ReadBackPolicy {
    pub attempts: u32,
    pub delay: Duration,
}

impl Default for ReadBackPolicy {
    fn default() -> Self {
        ReadBackPolicy {
            attempts: 12,
            delay: Duration::from_secs(3),
        }
    }
}

/// The group as Graph returns it after the create.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadBack {
    pub group: GroupRef,
    /// `On` / `Paused` for dynamic groups.
    pub processing_state: Option<String>,
    /// Beta `membershipRuleProcessingStatus.status` when the service returned it.
    pub processing_status: Option<String>,
    pub last_membership_updated: Option<String>,
    pub attempts: u32,
}

/// Reads the group back, with the beta processing status when available (falling back to
/// v1.0), retrying 404s while the new group replicates.
pub async fn read_back(
    graph: &GraphClient,
    id: &str,
    policy: ReadBackPolicy,
) -> Result<ReadBack, GroupError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let beta = graph
            .get_json::<Group>(
                ApiVersion::Beta,
                &format!(
                    "/groups/{}?$select={GROUP_SELECT},membershipRuleProcessingStatus",
                    encode(id)
                ),
            )
            .await;
        let result = match beta {
            Err(e) if e.status() == Some(400) => {
                graph
                    .get_json::<Group>(
                        ApiVersion::V1,
                        &format!("/groups/{}?$select={GROUP_SELECT}", encode(id)),
                    )
                    .await
            }
            other => other,
        };
        match result {
            Ok(g) => {
                let status = g.membership_rule_processing_status.clone();
                return Ok(ReadBack {
                    group: GroupRef::from_group(&g),
                    processing_state: g.membership_rule_processing_state.clone(),
                    processing_status: status.as_ref().and_then(|s| s.status.clone()),
                    last_membership_updated: status.and_then(|s| s.last_membership_updated),
                    attempts: attempt,
                });
            }
            Err(e) if e.is_not_found() => {
                if attempt >= policy.attempts {
                    return Err(GroupError::NotReplicated { attempts: attempt });
                }
                tokio::select! {
                    _ = graph.cancel_token().cancelled() => {
                        return Err(GroupError::Graph { action: "read the group back", source: Box::new(GraphError::Cancelled) });
                    }
                    _ = tokio::time::sleep(policy.delay) => {}
                }
            }
            Err(e) => return Err(graph_err("read the group back")(e)),
        }
    }
}

/// Whether the read-back matches what was asked for: same kind, same rule text (spacing and
/// case of the attribute aside), and dynamic processing switched on.
pub fn validate(read: &ReadBack, expected: &GroupKind) -> Result<(), String> {
    match (expected, &read.group.kind) {
        (GroupKind::Static, GroupKind::Static) => Ok(()),
        (GroupKind::Dynamic { rule: want }, GroupKind::Dynamic { rule: got }) => {
            let norm = |r: &str| parse_rule(r).ok();
            if norm(want) != norm(got) || norm(got).is_none() {
                return Err(format!(
                    "The group's rule is {got}, not the expected {want}. Edit the rule in Entra or create a new group."
                ));
            }
            if read.processing_state.as_deref() != Some("On") {
                return Err(format!(
                    "Dynamic membership processing is {}, so devices will not be added. Set it to On in Entra: Groups > {} > Dynamic membership rules.",
                    read.processing_state.as_deref().unwrap_or("not set"),
                    read.group.display_name
                ));
            }
            Ok(())
        }
        (GroupKind::Static, GroupKind::Dynamic { .. }) => {
            Err("The group has dynamic membership, but an assigned group was expected.".into())
        }
        (GroupKind::Dynamic { .. }, GroupKind::Static) => Err(
            "The group has assigned (static) membership, but a dynamic group was expected.".into(),
        ),
    }
}

/// Why a group cannot hold the Autopilot devices, or `None` when it can: a profile is assigned
/// to a security group of devices, so mail-only (`securityEnabled` false) and Microsoft 365
/// (`groupTypes` "Unified") groups are out, and so is a dynamic group whose `membershipRule`
/// selects users (a user rule never matches a device).
pub fn device_group_problem(g: &Group) -> Option<String> {
    if g.group_types
        .iter()
        .any(|t| t.eq_ignore_ascii_case("Unified"))
    {
        return Some(format!(
            "{} is a Microsoft 365 group; Autopilot needs a security group of devices.",
            g.name()
        ));
    }
    if g.security_enabled == Some(false) {
        return Some(format!(
            "{} is not a security group (mail only), so a profile cannot be assigned to it.",
            g.name()
        ));
    }
    if g.is_dynamic() {
        let rule = g
            .membership_rule
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if rule.contains("user.") && !rule.contains("device.") {
            return Some(format!(
                "{} collects users by its rule, not devices.",
                g.name()
            ));
        }
    }
    None
}

/// Whether an existing group can serve as the Autopilot device group, and what to watch for.
pub fn assess_existing(g: &Group) -> Result<Option<String>, String> {
    if let Some(why) = device_group_problem(g) {
        return Err(format!(
            "{why} Choose or create a security group of devices."
        ));
    }
    if g.is_dynamic() {
        let rule = g.membership_rule.clone().unwrap_or_default();
        if let Err(why) = parse_rule(&rule) {
            return Ok(Some(format!(
                "Its rule is not one of the usual Autopilot rules ({why}); make sure it selects your Autopilot devices."
            )));
        }
        if g.membership_rule_processing_state.as_deref() == Some("Paused") {
            return Ok(Some(
                "Its dynamic membership processing is Paused, so new devices will not join it until it is switched On.".into(),
            ));
        }
        Ok(None)
    } else {
        Ok(Some(
            "It is an assigned (static) group: each device must be added to it by hand after its import finishes.".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_round_trip_and_foreign_rules_are_refused() {
        for spec in [
            RuleSpec::AllAutopilot,
            RuleSpec::GroupTags(vec!["Sales".into(), "HR-2".into()]),
            RuleSpec::PurchaseOrder("PO 4711".into()),
        ] {
            let rule = build_rule(&spec).unwrap();
            assert_eq!(parse_rule(&rule), Ok(spec), "{rule}");
        }
        assert_eq!(
            parse_rule(r#"(device.devicePhysicalIDs -any (_ -startsWith "[ZTDid]"))"#),
            Ok(RuleSpec::AllAutopilot)
        );
        assert!(parse_rule(r#"(device.displayName -eq "PC")"#).is_err());
        assert!(parse_rule(r#"(device.devicePhysicalIds -any (_ -eq "[OrderID]:x))"#).is_err());
        assert!(build_rule(&RuleSpec::GroupTags(vec!["a\"b".into()])).is_err());
        assert!(build_rule(&RuleSpec::GroupTags(vec![])).is_err());
    }

    #[test]
    fn mail_nickname_is_safe_ascii_and_short() {
        assert_eq!(
            derive_mail_nickname("Autopilot - Sales (NL)"),
            "autopilot-sales-nl"
        );
        assert_eq!(
            derive_mail_nickname("Ferrández' Laptops"),
            "ferrandez-laptops"
        );
        assert_eq!(derive_mail_nickname("@@@"), "autopilot-devices");
        let long = derive_mail_nickname(&"x".repeat(100));
        assert_eq!(long.len(), 64);
        assert_eq!(with_suffix(&long, 12).len(), 64);
        assert!(with_suffix(&long, 12).ends_with("-12"));
        for n in [
            derive_mail_nickname("A b.c;d:e<f>g,h[i]j\"k\\l"),
            with_suffix("abc", 2),
        ] {
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{n}"
            );
        }
    }
}
