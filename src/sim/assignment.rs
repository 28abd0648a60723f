//! Dynamic membership evaluation and Autopilot profile assignment progress.
//!
//! Both are service-side processes with no SLA in the real service: a dynamic group picks a new
//! device up minutes after its Entra object appears, and the Autopilot service assigns the
//! profile minutes to hours after that. Here both run lazily in [`advance`] from timestamps,
//! scaled by [`super::Speed`] and by [`AssignmentConfig::slowness`].
//!
//! The decisions are pure functions over small views of the other areas' data
//! ([`GroupView`], [`EntraDeviceView`], [`ProfileView`], [`AutopilotView`]), so the rules
//! (who is a member, which profile wins, when the status moves) are tested on their own.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Seed, Shared, SimConfig, SimState, odata};

/// Service times of the assignment processes, before [`super::Speed`] scaling.
#[derive(Debug, Clone)]
pub struct AssignmentConfig {
    /// From "the device matches the rule" to "the device is a member".
    pub membership_delay: Duration,
    /// From "member of a targeted group" to `pending`.
    pub pending_delay: Duration,
    /// From `pending` to `assignedUnkownSyncState` (or `failed`).
    pub assign_delay: Duration,
    /// From `assignedUnkownSyncState` to `assignedInSync`.
    pub in_sync_delay: Duration,
    /// Multiplies every delay above: 1.0 is normal, 1000.0 is a service having a bad day.
    pub slowness: f64,
    /// Serial numbers whose hardware does not qualify (their assignment ends `failed`).
    pub unqualified_serials: Vec<String>,
    /// Model substrings (case-insensitive) whose hardware does not qualify for a Windows PC
    /// user-driven profile.
    pub unqualified_models: Vec<String>,
}

impl Default for AssignmentConfig {
    fn default() -> Self {
        AssignmentConfig {
            membership_delay: Duration::from_secs(180),
            pending_delay: Duration::from_secs(60),
            assign_delay: Duration::from_secs(300),
            in_sync_delay: Duration::from_secs(180),
            slowness: 1.0,
            unqualified_serials: Vec::new(),
            unqualified_models: vec!["HoloLens".into()],
        }
    }
}

impl AssignmentConfig {
    fn real(&self, config: &SimConfig, service: Duration) -> Duration {
        config.speed.scaled(service).mul_f64(self.slowness.max(0.0))
    }

    /// Whether a device with this serial and model can take a Windows PC profile.
    pub fn qualifies(&self, serial: &str, model: &str) -> bool {
        let model = model.to_lowercase();
        !self
            .unqualified_serials
            .iter()
            .any(|s| s.eq_ignore_ascii_case(serial))
            && !self
                .unqualified_models
                .iter()
                .any(|m| !m.is_empty() && model.contains(&m.to_lowercase()))
    }
}

/// `membershipRuleProcessingStatus.status` of a dynamic group (beta; PascalCase values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingStatus {
    NotStarted,
    Running,
    Failed,
    Succeeded,
}

impl ProcessingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessingStatus::NotStarted => "NotStarted",
            ProcessingStatus::Running => "Running",
            ProcessingStatus::Failed => "Failed",
            ProcessingStatus::Succeeded => "Succeeded",
        }
    }
}

/// Processing data of one dynamic group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupProcessing {
    pub status: ProcessingStatus,
    pub last_membership_updated: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
}

/// Where one Autopilot device stands in the assignment process.
#[derive(Debug, Clone)]
struct Track {
    /// The profile the device should get (the oldest profile targeting it).
    target: Option<String>,
    /// When `target` last changed.
    since: Instant,
    /// `deploymentProfileAssignedDateTime`, fixed once reached so reads agree.
    assigned_wall: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
pub struct AssignmentState {
    pub config: AssignmentConfig,
    /// (group id, Entra device object id) → since when the device matches the group's rule.
    matching_since: HashMap<(String, String), Instant>,
    /// Group id → since when its rule is what it is (a changed rule restarts processing).
    rule_since: HashMap<String, (String, Instant)>,
    /// Dynamic group id → processing data, as `membershipRuleProcessingStatus` shows it.
    pub processing: HashMap<String, GroupProcessing>,
    /// Autopilot device id → assignment progress.
    tracks: HashMap<String, Track>,
}

/// A group as membership evaluation sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupView {
    pub id: String,
    /// `Some(rule)` for a dynamic group.
    pub rule: Option<String>,
    /// `membershipRuleProcessingState` is `On` (a `Paused` group keeps its members).
    pub processing_on: bool,
    pub members: Vec<String>,
}

/// An Entra device object.
#[derive(Debug, Clone, PartialEq)]
pub struct EntraDeviceView {
    /// Object id (`id`), what group membership holds.
    pub object_id: String,
    /// `deviceId`, what `azureActiveDirectoryDeviceId` points at.
    pub device_id: String,
    pub physical_ids: Vec<String>,
}

/// Whom a profile assignment targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetView {
    Group(String),
    ExcludeGroup(String),
    AllDevices,
}

/// A deployment profile with its assignments.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileView {
    pub id: String,
    pub created: DateTime<Utc>,
    pub targets: Vec<TargetView>,
}

/// An Autopilot device identity.
#[derive(Debug, Clone, PartialEq)]
pub struct AutopilotView {
    pub id: String,
    pub serial: String,
    pub model: String,
    /// `azureActiveDirectoryDeviceId`: the Entra `deviceId`, once the object exists.
    pub entra_device_id: Option<String>,
}

/// The assignment fields of one Autopilot device identity, as the service shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentFields {
    /// `deploymentProfileAssignmentStatus`.
    pub status: &'static str,
    /// `deploymentProfileAssignmentDetailedStatus`.
    pub detailed_status: &'static str,
    /// `deploymentProfileAssignedDateTime`.
    pub assigned_at: Option<DateTime<Utc>>,
    /// The `deploymentProfile` navigation: set once assigned.
    pub profile_id: Option<String>,
    /// The `intendedDeploymentProfile` navigation: set as soon as a profile targets the device.
    pub intended_profile_id: Option<String>,
}

impl Default for AssignmentFields {
    fn default() -> Self {
        AssignmentFields {
            status: "notAssigned",
            detailed_status: "none",
            assigned_at: None,
            profile_id: None,
            intended_profile_id: None,
        }
    }
}

fn wall_clock(now: Instant, at: Instant) -> DateTime<Utc> {
    let ago = now.saturating_duration_since(at);
    Utc::now() - chrono::Duration::from_std(ago).unwrap_or_default()
}

impl AssignmentState {
    /// Recomputes dynamic membership. `rule_matches` is the directory's rule evaluator (`None`
    /// when the rule is not understood). Returns the new member list of every dynamic group
    /// whose membership changed.
    pub fn evaluate_membership(
        &mut self,
        now: Instant,
        delay: Duration,
        groups: &[GroupView],
        devices: &[EntraDeviceView],
        rule_matches: impl Fn(&str, &[String]) -> Option<bool>,
    ) -> BTreeMap<String, Vec<String>> {
        let mut changes = BTreeMap::new();
        let mut seen_pairs = HashSet::new();
        for group in groups {
            let Some(rule) = &group.rule else { continue };
            let rule_start = match self.rule_since.get(&group.id) {
                Some((r, t)) if r == rule => *t,
                _ => {
                    self.rule_since
                        .insert(group.id.clone(), (rule.clone(), now));
                    now
                }
            };
            if !group.processing_on {
                continue;
            }
            let mut members: Vec<String> = Vec::new();
            let mut running = false;
            let mut failed = None;
            let mut last_change: Option<Instant> = None;
            for dev in devices {
                match rule_matches(rule, &dev.physical_ids) {
                    Some(true) => {
                        let key = (group.id.clone(), dev.object_id.clone());
                        seen_pairs.insert(key.clone());
                        let since = *self.matching_since.entry(key).or_insert(now);
                        let since = since.max(rule_start);
                        let due = since + delay;
                        if now >= due {
                            members.push(dev.object_id.clone());
                            last_change = Some(last_change.map_or(due, |l: Instant| l.max(due)));
                        } else {
                            running = true;
                            if group.members.contains(&dev.object_id) {
                                // A rule edit does not drop members that still match.
                                members.push(dev.object_id.clone());
                            }
                        }
                    }
                    Some(false) => {}
                    None => {
                        failed = Some(format!(
                            "The membership rule could not be evaluated: {rule}"
                        ));
                    }
                }
            }
            let processing = if let Some(msg) = failed {
                GroupProcessing {
                    status: ProcessingStatus::Failed,
                    last_membership_updated: None,
                    error_message: Some(msg),
                }
            } else if running || now < rule_start + delay {
                GroupProcessing {
                    status: ProcessingStatus::Running,
                    last_membership_updated: self
                        .processing
                        .get(&group.id)
                        .and_then(|p| p.last_membership_updated),
                    error_message: None,
                }
            } else {
                let prev = self
                    .processing
                    .get(&group.id)
                    .and_then(|p| p.last_membership_updated);
                GroupProcessing {
                    status: ProcessingStatus::Succeeded,
                    last_membership_updated: prev
                        .or_else(|| last_change.map(|t| wall_clock(now, t)))
                        .or_else(|| Some(wall_clock(now, rule_start + delay))),
                    error_message: None,
                }
            };
            let mut sorted_new = members.clone();
            sorted_new.sort();
            let mut sorted_old = group.members.clone();
            sorted_old.sort();
            let processing = if sorted_new != sorted_old && processing.error_message.is_none() {
                changes.insert(group.id.clone(), members);
                GroupProcessing {
                    last_membership_updated: Some(Utc::now()),
                    ..processing
                }
            } else {
                processing
            };
            self.processing.insert(group.id.clone(), processing);
        }
        // A device that stopped matching must wait the full delay again when it matches anew.
        self.matching_since.retain(|k, _| seen_pairs.contains(k));
        changes
    }

    /// Moves the assignment of every Autopilot device and returns its fields.
    /// `member_of(entra_device_id)` lists the group ids the device's Entra object belongs to.
    pub fn evaluate_assignment(
        &mut self,
        now: Instant,
        delays: [Duration; 3],
        devices: &[AutopilotView],
        profiles: &[ProfileView],
        member_of: impl Fn(&str) -> Vec<String>,
    ) -> Vec<(String, AssignmentFields)> {
        let [pending_delay, assign_delay, in_sync_delay] = delays;
        let mut out = Vec::with_capacity(devices.len());
        let mut live = HashSet::new();
        for dev in devices {
            live.insert(dev.id.clone());
            let groups = dev
                .entra_device_id
                .as_deref()
                .map(&member_of)
                .unwrap_or_default();
            let target = winning_profile(profiles, &groups).map(|p| p.id.clone());
            let track = self.tracks.entry(dev.id.clone()).or_insert(Track {
                target: None,
                since: now,
                assigned_wall: None,
            });
            if track.target != target {
                track.target = target.clone();
                track.since = now;
                track.assigned_wall = None;
            }
            let fields = match &track.target {
                None => AssignmentFields::default(),
                Some(pid) => {
                    let elapsed = now.saturating_duration_since(track.since);
                    let assigned_at = track.since + pending_delay + assign_delay;
                    if elapsed < pending_delay {
                        AssignmentFields {
                            intended_profile_id: Some(pid.clone()),
                            ..AssignmentFields::default()
                        }
                    } else if elapsed < pending_delay + assign_delay {
                        AssignmentFields {
                            status: "pending",
                            intended_profile_id: Some(pid.clone()),
                            ..AssignmentFields::default()
                        }
                    } else if !self.config.qualifies(&dev.serial, &dev.model) {
                        AssignmentFields {
                            status: "failed",
                            detailed_status: "hardwareRequirementsNotMet",
                            intended_profile_id: Some(pid.clone()),
                            ..AssignmentFields::default()
                        }
                    } else {
                        let in_sync = elapsed >= pending_delay + assign_delay + in_sync_delay;
                        let at = *track
                            .assigned_wall
                            .get_or_insert_with(|| wall_clock(now, assigned_at));
                        AssignmentFields {
                            status: if in_sync {
                                "assignedInSync"
                            } else {
                                "assignedUnkownSyncState"
                            },
                            detailed_status: "none",
                            assigned_at: Some(at),
                            profile_id: Some(pid.clone()),
                            intended_profile_id: Some(pid.clone()),
                        }
                    }
                }
            };
            out.push((dev.id.clone(), fields));
        }
        self.tracks.retain(|k, _| live.contains(k));
        out
    }
}

/// The profile a device in `groups` gets: among profiles targeting one of its groups or all
/// devices (and not excluding one of its groups), the oldest by creation time wins, as the
/// Autopilot service documents ("Autopilot profile priority").
pub fn winning_profile<'a>(
    profiles: &'a [ProfileView],
    groups: &[String],
) -> Option<&'a ProfileView> {
    profiles
        .iter()
        .filter(|p| {
            let excluded = p.targets.iter().any(|t| match t {
                TargetView::ExcludeGroup(g) => groups.contains(g),
                _ => false,
            });
            let included = p.targets.iter().any(|t| match t {
                TargetView::Group(g) => groups.contains(g),
                TargetView::AllDevices => true,
                TargetView::ExcludeGroup(_) => false,
            });
            included && !excluded
        })
        .min_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)))
}

/// The body of `updateDeviceProperties`, checked against the version's parameter list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceUpdate {
    pub user_principal_name: Option<String>,
    pub addressable_user_name: Option<String>,
    pub group_tag: Option<String>,
    pub display_name: Option<String>,
    pub device_account_upn: Option<String>,
    pub device_account_password: Option<String>,
    pub device_friendly_name: Option<String>,
}

/// Parses an `updateDeviceProperties` body; `Err` carries the message of Graph's 400.
/// `beta` adds the Surface Hub parameters to the four v1.0 has.
pub fn parse_update(beta: bool, body: &serde_json::Value) -> Result<DeviceUpdate, String> {
    let Some(obj) = body.as_object() else {
        return Err("The request body must be a JSON object.".into());
    };
    let mut u = DeviceUpdate::default();
    for (k, v) in obj {
        if k.starts_with("@odata.") {
            continue;
        }
        let text = match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            _ => {
                return Err(format!(
                    "Cannot convert the literal '{v}' to the expected type 'Edm.String' (parameter '{k}')."
                ));
            }
        };
        let slot = match k.as_str() {
            "userPrincipalName" => &mut u.user_principal_name,
            "addressableUserName" => &mut u.addressable_user_name,
            "groupTag" => &mut u.group_tag,
            "displayName" => &mut u.display_name,
            "deviceAccountUpn" if beta => &mut u.device_account_upn,
            "deviceAccountPassword" if beta => &mut u.device_account_password,
            "deviceFriendlyName" if beta => &mut u.device_friendly_name,
            other => {
                return Err(format!(
                    "The parameter '{other}' in the request payload is not a valid parameter for the operation 'updateDeviceProperties'."
                ));
            }
        };
        *slot = Some(text.unwrap_or_default());
    }
    Ok(u)
}

pub(crate) fn seed(_state: &mut SimState, _seed: Seed) {}

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route(
        "/beta/deviceManagement/windowsAutopilotDeviceIdentities/{id}/deploymentProfile",
        get(get_deployment_profile),
    )
}

/// `GET …/windowsAutopilotDeviceIdentities/{id}/deploymentProfile`: the assigned profile, or
/// 404 while none is assigned (a null single-valued navigation).
async fn get_deployment_profile(
    State(sh): State<Shared>,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    let st = sh.lock();
    let Some(dev) = st.autopilot.devices.iter().find(|d| d.id == id) else {
        return odata::not_found("windowsAutopilotDeviceIdentity", &id);
    };
    match dev.assigned_profile_id.as_deref() {
        Some(pid) => match expanded_profile(&st, pid) {
            Some(p) => odata::entity(&uri, p),
            None => odata::not_found("deploymentProfile", &id),
        },
        None => odata::not_found("deploymentProfile", &id),
    }
}

/// The JSON of the `deploymentProfile` / `intendedDeploymentProfile` navigation: the whole
/// profile entity with its concrete `@odata.type`, as the profile area renders it (Graph returns
/// the target entity, and the schema's navigation type is the abstract profile base). `None`
/// once the profile was deleted.
pub fn expanded_profile(state: &SimState, profile_id: &str) -> Option<Value> {
    super::profiles::render_profile_by_id(&state.profiles, profile_id)
}

/// Applies `updateDeviceProperties` to a device identity: version-checked body (unknown
/// parameter → 400), computer name ≤ 15 characters, and a changed group tag rewrites the Entra
/// object's `[OrderID]`, which moves dynamic membership on the next evaluation.
pub fn apply_device_update(
    state: &mut SimState,
    beta: bool,
    id: &str,
    body: &Value,
) -> Result<(), Response> {
    let update = parse_update(beta, body).map_err(|m| odata::bad_request("BadRequest", &m))?;
    if let Some(name) = &update.display_name
        && name.chars().count() > 15
    {
        return Err(odata::bad_request(
            "BadRequest",
            "displayName must be 15 characters or fewer (it becomes the computer name).",
        ));
    }
    let Some(dev) = state.autopilot.devices.iter_mut().find(|d| d.id == id) else {
        return Err(odata::not_found("windowsAutopilotDeviceIdentity", id));
    };
    let mut tag_changed = None;
    if let Some(tag) = update.group_tag
        && tag != dev.group_tag
    {
        dev.group_tag = tag.clone();
        tag_changed = Some((dev.azure_ad_device_id.clone(), tag));
    }
    if let Some(upn) = update.user_principal_name {
        dev.user_principal_name = upn;
    }
    if let Some(name) = update.display_name {
        dev.display_name = name;
    }
    if let Some((entra_id, tag)) = tag_changed
        && !entra_id.is_empty()
    {
        super::directory::set_device_order_id(state, &entra_id, Some(&tag));
    }
    Ok(())
}

/// Profiles with their assignment targets, and their display names.
fn profile_views_named(state: &SimState) -> Vec<(ProfileView, String)> {
    use super::profiles::StoredTarget;
    state
        .profiles
        .profiles
        .iter()
        .map(|p| {
            let targets = state
                .profiles
                .assignments
                .iter()
                .filter(|a| a.profile_id == p.id)
                .map(|a| match &a.target {
                    StoredTarget::Group(g) => TargetView::Group(g.clone()),
                    StoredTarget::ExclusionGroup(g) => TargetView::ExcludeGroup(g.clone()),
                    StoredTarget::AllDevices => TargetView::AllDevices,
                })
                .collect();
            (
                ProfileView {
                    id: p.id.clone(),
                    created: p.created,
                    targets,
                },
                p.display_name.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// Moves membership and assignment. Cheap when nothing changed: one pass over groups × devices
/// and one over Autopilot devices.
pub(crate) fn advance(state: &mut SimState, config: &SimConfig) {
    let now = Instant::now();
    let cfg = state.assignment.config.clone();

    let groups: Vec<GroupView> = state
        .directory
        .groups
        .iter()
        .filter(|g| g.is_dynamic())
        .map(|g| GroupView {
            id: g.id.clone(),
            rule: g.membership_rule.clone(),
            processing_on: g
                .membership_rule_processing_state
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case("On")),
            members: g.members.clone(),
        })
        .collect();
    if !groups.is_empty() {
        let devices: Vec<EntraDeviceView> = state
            .directory
            .devices
            .iter()
            .map(|d| EntraDeviceView {
                object_id: d.id.clone(),
                device_id: d.device_id.clone(),
                physical_ids: d.physical_ids.clone(),
            })
            .collect();
        let delay = cfg.real(config, cfg.membership_delay);
        let changes = state.assignment.evaluate_membership(
            now,
            delay,
            &groups,
            &devices,
            super::directory::rule_matches,
        );
        for g in state.directory.groups.iter_mut() {
            if let Some(members) = changes.get(&g.id) {
                g.members = members.clone();
            }
            if let Some(p) = state.assignment.processing.get(&g.id) {
                g.processing_status.status = p.status.as_str().into();
                g.processing_status.last_membership_updated = p.last_membership_updated;
                g.processing_status.error_message = p.error_message.clone();
            }
        }
    }

    if state.autopilot.devices.is_empty() {
        return;
    }
    let profiles: Vec<ProfileView> = profile_views_named(state)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    // Entra deviceId (lower case) → group ids holding its object.
    let mut groups_of: HashMap<String, Vec<String>> = HashMap::new();
    let object_to_device: HashMap<&str, String> = state
        .directory
        .devices
        .iter()
        .map(|d| (d.id.as_str(), d.device_id.to_ascii_lowercase()))
        .collect();
    for g in &state.directory.groups {
        for m in &g.members {
            if let Some(did) = object_to_device.get(m.as_str()) {
                groups_of.entry(did.clone()).or_default().push(g.id.clone());
            }
        }
    }
    let aps: Vec<AutopilotView> = state
        .autopilot
        .devices
        .iter()
        .map(|d| AutopilotView {
            id: d.id.clone(),
            serial: d.serial_number.clone(),
            model: d.model.clone(),
            entra_device_id: Some(d.azure_ad_device_id.clone()).filter(|s| !s.is_empty()),
        })
        .collect();
    let delays = [
        cfg.real(config, cfg.pending_delay),
        cfg.real(config, cfg.assign_delay),
        cfg.real(config, cfg.in_sync_delay),
    ];
    let results = state
        .assignment
        .evaluate_assignment(now, delays, &aps, &profiles, |did| {
            groups_of
                .get(&did.to_ascii_lowercase())
                .cloned()
                .unwrap_or_default()
        });
    for (dev, (_, f)) in state.autopilot.devices.iter_mut().zip(results) {
        dev.assignment_status = f.status.into();
        dev.assignment_detailed_status = f.detailed_status.into();
        dev.assigned_at = f.assigned_at;
        dev.assigned_profile_id = f.profile_id;
        dev.intended_profile_id = f.intended_profile_id;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(id: &str, created: &str, targets: Vec<TargetView>) -> ProfileView {
        ProfileView {
            id: id.into(),
            created: created.parse().unwrap(),
            targets,
        }
    }

    #[test]
    fn update_body_follows_the_version() {
        let body = serde_json::json!({"groupTag": "SALES", "displayName": "PC-1"});
        let u = parse_update(false, &body).unwrap();
        assert_eq!(u.group_tag.as_deref(), Some("SALES"));
        assert_eq!(u.display_name.as_deref(), Some("PC-1"));
        let hub = serde_json::json!({"deviceFriendlyName": "Hub"});
        assert!(
            parse_update(false, &hub)
                .unwrap_err()
                .contains("deviceFriendlyName")
        );
        assert!(parse_update(true, &hub).is_ok());
        assert!(parse_update(true, &serde_json::json!({"serialNumber": "X"})).is_err());
        assert!(parse_update(true, &serde_json::json!({"groupTag": 3})).is_err());
    }

    #[test]
    fn oldest_profile_wins_and_exclusions_apply() {
        let profiles = vec![
            profile(
                "new",
                "2025-02-01T00:00:00Z",
                vec![TargetView::Group("g1".into())],
            ),
            profile(
                "old",
                "2024-01-01T00:00:00Z",
                vec![TargetView::Group("g2".into())],
            ),
            profile(
                "all",
                "2023-01-01T00:00:00Z",
                vec![
                    TargetView::AllDevices,
                    TargetView::ExcludeGroup("g3".into()),
                ],
            ),
        ];
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            winning_profile(&profiles, &g(&["g1", "g2", "g3"]))
                .unwrap()
                .id,
            "old"
        );
        assert_eq!(
            winning_profile(&profiles, &g(&["g1", "g3"])).unwrap().id,
            "new"
        );
        assert_eq!(winning_profile(&profiles, &g(&["g1"])).unwrap().id, "all");
        assert!(winning_profile(&profiles[..2], &g(&[])).is_none());
    }

    #[test]
    fn membership_waits_for_the_service_delay() {
        let mut st = AssignmentState::default();
        let t0 = Instant::now();
        let delay = Duration::from_secs(10);
        let groups = vec![GroupView {
            id: "g".into(),
            rule: Some("tag".into()),
            processing_on: true,
            members: vec![],
        }];
        let devices = vec![
            EntraDeviceView {
                object_id: "o1".into(),
                device_id: "d1".into(),
                physical_ids: vec!["tag".into()],
            },
            EntraDeviceView {
                object_id: "o2".into(),
                device_id: "d2".into(),
                physical_ids: vec!["other".into()],
            },
        ];
        let m = |r: &str, ids: &[String]| Some(ids.iter().any(|i| i == r));
        assert!(
            st.evaluate_membership(t0, delay, &groups, &devices, m)
                .is_empty()
        );
        assert_eq!(st.processing["g"].status, ProcessingStatus::Running);
        let later = t0 + Duration::from_secs(11);
        let changes = st.evaluate_membership(later, delay, &groups, &devices, m);
        assert_eq!(changes["g"], vec!["o1".to_string()]);
        assert_eq!(st.processing["g"].status, ProcessingStatus::Succeeded);
        assert!(st.processing["g"].last_membership_updated.is_some());
    }

    #[test]
    fn unknown_rule_fails_processing() {
        let mut st = AssignmentState::default();
        let groups = vec![GroupView {
            id: "g".into(),
            rule: Some("garbage".into()),
            processing_on: true,
            members: vec![],
        }];
        let devices = vec![EntraDeviceView {
            object_id: "o1".into(),
            device_id: "d1".into(),
            physical_ids: vec![],
        }];
        st.evaluate_membership(Instant::now(), Duration::ZERO, &groups, &devices, |_, _| {
            None
        });
        assert_eq!(st.processing["g"].status, ProcessingStatus::Failed);
    }

    #[test]
    fn assignment_progresses_and_unqualified_hardware_fails() {
        let mut st = AssignmentState::default();
        st.config.unqualified_serials = vec!["BAD1".into()];
        let t0 = Instant::now();
        let d = [
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(3),
        ];
        let profiles = vec![profile(
            "p",
            "2024-01-01T00:00:00Z",
            vec![TargetView::Group("g".into())],
        )];
        let devs = vec![
            AutopilotView {
                id: "a1".into(),
                serial: "OK1".into(),
                model: "Surface Laptop 5".into(),
                entra_device_id: Some("d1".into()),
            },
            AutopilotView {
                id: "a2".into(),
                serial: "BAD1".into(),
                model: "Latitude".into(),
                entra_device_id: Some("d2".into()),
            },
            AutopilotView {
                id: "a3".into(),
                serial: "X".into(),
                model: "HoloLens 2".into(),
                entra_device_id: Some("d3".into()),
            },
            AutopilotView {
                id: "a4".into(),
                serial: "Y".into(),
                model: "Latitude".into(),
                entra_device_id: None,
            },
        ];
        let member_of = |_: &str| vec!["g".to_string()];
        let at = |st: &mut AssignmentState, secs: u64| {
            st.evaluate_assignment(
                t0 + Duration::from_secs(secs),
                d,
                &devs,
                &profiles,
                member_of,
            )
        };
        let r = at(&mut st, 0);
        assert_eq!(r[0].1.status, "notAssigned");
        assert_eq!(r[0].1.intended_profile_id.as_deref(), Some("p"));
        assert_eq!(r[3].1.intended_profile_id, None);
        let r = at(&mut st, 2);
        assert_eq!(r[0].1.status, "pending");
        let r = at(&mut st, 4);
        assert_eq!(r[0].1.status, "assignedUnkownSyncState");
        assert!(r[0].1.assigned_at.is_some());
        assert_eq!(r[0].1.profile_id.as_deref(), Some("p"));
        assert_eq!(r[1].1.status, "failed");
        assert_eq!(r[1].1.detailed_status, "hardwareRequirementsNotMet");
        assert_eq!(r[2].1.status, "failed");
        assert_eq!(r[3].1.status, "notAssigned");
        let r = at(&mut st, 7);
        assert_eq!(r[0].1.status, "assignedInSync");
    }
}
