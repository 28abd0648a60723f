//! Steps 6: every registered device gets the deployment profile.
//!
//! The procedure (reference procedure §1.2–§1.4): a dynamic group picks devices up on its own;
//! a static group needs each device's Entra object added by hand, and that object exists only
//! after the import finished and Intune synced. Then the Autopilot service assigns the profile,
//! minutes to hours later, with no SLA. A device is ready when its
//! `deploymentProfileAssignmentStatus` starts with `assigned`, a date assigned is set, and the
//! assigned profile is the expected one. When several profiles target a device, the oldest wins.
//!
//! Everything here is Graph work: reading devices and groups, adding static members, the waits,
//! sync and device updates. The board they fill ([`Board`]) is plain data in [`crate::board`].

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::graph::client::{encode, odata_string};
use crate::graph::models::autopilot::{AutopilotDevice, UpdateDeviceProperties};
use crate::graph::models::directory::{MAX_MEMBERS_PER_PATCH, MembersBind, ObjectRef};
use crate::graph::{ApiVersion, GraphClient, GraphError};

use crate::board::{Board, BoardRow, Chip, DeviceEdit, GroupSnapshot, Summary};
// The step's input: what the devices should end up with. Defined with the board (which measures
// devices against it) and named here too, where callers of the step look for it.
pub use crate::board::{GroupMembership, Target};

const DEVICES_PATH: &str = "/deviceManagement/windowsAutopilotDeviceIdentities";

/// A wait in words: seconds under a minute, minutes under an hour (a 20-second wait is not
/// "0 min").
pub fn waited_words(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// What went wrong, in words for the IT person running the wizard.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AssignmentError {
    #[error(transparent)]
    Graph(Box<GraphError>),
    #[error(
        "Gave up waiting after {waited} while {phase}. Still waiting for: {pending}. \
         Microsoft gives no time limit for this; it usually takes minutes but can take hours. \
         {hint}"
    )]
    Timeout {
        phase: String,
        /// How long, in words ("20 s", "4 h 0 min").
        waited: String,
        pending: String,
        hint: String,
    },
    #[error("The edit was not sent: {0}")]
    InvalidEdit(String),
    #[error("Autopilot device {0} no longer exists. It may have been deleted; refresh the list.")]
    DeviceGone(String),
    #[error(transparent)]
    Group(Box<crate::steps::group::GroupError>),
    #[error("Cancelled.")]
    Cancelled,
}

impl AssignmentError {
    fn from_group(e: crate::steps::group::GroupError) -> Self {
        use crate::steps::group::GroupError;
        match e {
            GroupError::Graph { source, .. } | GroupError::Forbidden { source, .. }
                if matches!(*source, GraphError::Cancelled) =>
            {
                AssignmentError::Cancelled
            }
            other => AssignmentError::Group(Box::new(other)),
        }
    }

    fn from_graph(e: GraphError) -> Self {
        match e {
            GraphError::Cancelled => AssignmentError::Cancelled,
            other => AssignmentError::Graph(Box::new(other)),
        }
    }
}

impl From<GraphError> for AssignmentError {
    fn from(e: GraphError) -> Self {
        AssignmentError::from_graph(e)
    }
}

/// Polling and timeouts of the waits. No SLA exists, so the defaults are generous; tests shrink
/// them.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitOptions {
    pub first_poll: Duration,
    /// Polls back off up to this interval.
    pub max_poll: Duration,
    /// Each phase (Entra objects, membership, assignment) gives up after this long.
    pub phase_timeout: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            first_poll: Duration::from_secs(5),
            max_poll: Duration::from_secs(60),
            phase_timeout: Duration::from_secs(4 * 3600),
        }
    }
}

impl WaitOptions {
    /// Each phase's polling: from `first_poll`, growing by half up to `max_poll`.
    fn policy(&self) -> crate::steps::poll::PollPolicy {
        crate::steps::poll::PollPolicy {
            initial: self.first_poll,
            max: self.max_poll,
            factor: 1.5,
            timeout: self.phase_timeout,
        }
    }
}

/// What the waits report while they run.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Looking up the Entra device objects of the Autopilot devices (static groups).
    ResolvingEntraObjects { found: usize, total: usize },
    /// Adding devices to the static group.
    AddingMembers {
        added: usize,
        already: usize,
        total: usize,
    },
    /// Waiting for the dynamic group to take the devices in.
    Membership {
        members: usize,
        total: usize,
        processing: Option<String>,
    },
    /// Waiting for the Autopilot service to assign the profile.
    Assignment { summary: Summary },
}

impl Progress {
    /// An honest sentence for the status line.
    pub fn message(&self) -> String {
        match self {
            Progress::ResolvingEntraObjects { found, total } => format!(
                "Found the Entra device object of {found} of {total} devices. Entra creates it after the \
                 import finished and Intune synced; the wizard keeps looking."
            ),
            Progress::AddingMembers {
                added,
                already,
                total,
            } => format!(
                "Group membership: added {added}, already members {already}, of {total} devices."
            ),
            Progress::Membership {
                members,
                total,
                processing,
            } => {
                let state = processing
                    .as_deref()
                    .map(|p| {
                        format!(
                            " (rule processing: {})",
                            crate::board::words::rule_processing(p)
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "{members} of {total} devices are members of the dynamic group{state}. Entra evaluates \
                     dynamic rules on its own schedule, usually within minutes."
                )
            }
            Progress::Assignment { summary } => format!(
                "{} of {} devices have the profile ({} pending, {} not assigned, {} failed). The Autopilot \
                 service assigns profiles on its own schedule: usually minutes, sometimes hours, and \
                 Microsoft promises no time. You can leave the wizard open or come back later.",
                summary.assigned,
                summary.total,
                summary.pending,
                summary.not_assigned,
                summary.failed
            ),
        }
    }
}

/// What step 6 leaves for later steps and restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssignmentOutcome {
    pub summary: Summary,
    /// Every device assigned the expected profile with a date.
    pub all_ready: bool,
    pub checked_at: Option<DateTime<Utc>>,
}

impl AssignmentOutcome {
    pub fn from_board(board: &Board) -> Self {
        Self::from_board_in(board, None)
    }

    /// The outcome over the devices in `serials` (see [`Board::summary_in`]).
    pub fn from_board_in(board: &Board, serials: Option<&HashSet<String>>) -> Self {
        let summary = board.summary_in(serials);
        AssignmentOutcome {
            all_ready: summary.total > 0 && summary.ready == summary.total,
            summary,
            checked_at: Some(board.loaded_at),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Graph

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntraDevice {
    id: String,
    #[serde(default)]
    device_id: Option<String>,
}

/// Reads every Autopilot device (beta, for the assignment fields): one paged list read.
pub async fn list_devices(graph: &GraphClient) -> Result<Vec<AutopilotDevice>, AssignmentError> {
    graph
        .get_all(ApiVersion::Beta, DEVICES_PATH)
        .await
        .map_err(AssignmentError::from_graph)
}

/// One device with its `deploymentProfile` and `intendedDeploymentProfile` expanded.
pub async fn get_device_expanded(
    graph: &GraphClient,
    id: &str,
) -> Result<AutopilotDevice, AssignmentError> {
    graph
        .get_json(
            ApiVersion::Beta,
            &format!(
                "{DEVICES_PATH}/{}?$expand=deploymentProfile,intendedDeploymentProfile",
                encode(id)
            ),
        )
        .await
        .map_err(|e| match e {
            e if e.is_not_found() => AssignmentError::DeviceGone(id.to_string()),
            e => AssignmentError::from_graph(e),
        })
}

/// The Entra `deviceId`s of the group's device members, and the rule processing status.
pub async fn read_group(
    graph: &GraphClient,
    target: &Target,
) -> Result<GroupSnapshot, AssignmentError> {
    let members: Vec<EntraDevice> = graph
        .get_all(
            ApiVersion::V1,
            &format!(
                "/groups/{}/members/microsoft.graph.device?$select=id,deviceId,displayName",
                encode(&target.group_id)
            ),
        )
        .await
        .map_err(AssignmentError::from_graph)?;
    let processing = if matches!(target.membership, GroupMembership::Dynamic { .. }) {
        // Step 4's read-back already knows beta's processing status and the v1.0 fallback;
        // one attempt, since the group exists by now.
        let once = crate::steps::group::ReadBackPolicy {
            attempts: 1,
            delay: Duration::ZERO,
        };
        crate::steps::group::read_back(graph, &target.group_id, once)
            .await
            .map_err(AssignmentError::from_group)?
            .processing_status
    } else {
        None
    };
    Ok(GroupSnapshot {
        member_device_ids: members.into_iter().filter_map(|m| m.device_id).collect(),
        processing,
    })
}

/// Fills in profile names for devices the list returned without expansion: devices that
/// report a profile status but no profile are read once (per status) with `$expand`, 20 to a
/// `$batch` request.
async fn expand_where_needed(
    graph: &GraphClient,
    devices: &mut [AutopilotDevice],
    known: &mut HashMap<String, (Option<String>, AutopilotDevice)>,
) -> Result<(), AssignmentError> {
    let mut wanted = Vec::new();
    for d in devices.iter_mut() {
        let status = d.deployment_profile_assignment_status.clone();
        let needs = d.deployment_profile.is_none()
            && d.intended_deployment_profile.is_none()
            && status.as_deref().is_some_and(|s| s != "notAssigned");
        if !needs {
            continue;
        }
        if let Some((s, cached)) = known.get(&d.id)
            && *s == status
        {
            d.deployment_profile = cached.deployment_profile.clone();
            d.intended_deployment_profile = cached.intended_deployment_profile.clone();
            continue;
        }
        wanted.push(d.id.clone());
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let read = get_devices_expanded(graph, &wanted).await?;
    for d in devices.iter_mut() {
        if let Some(full) = read.get(&d.id) {
            d.deployment_profile = full.deployment_profile.clone();
            d.intended_deployment_profile = full.intended_deployment_profile.clone();
            known.insert(
                d.id.clone(),
                (d.deployment_profile_assignment_status.clone(), full.clone()),
            );
        }
    }
    Ok(())
}

/// How many times a device read that failed inside a `$batch` (throttled, unavailable) is sent
/// again, on its own terms, before the whole read gives up.
const BATCH_READ_ATTEMPTS: u32 = 6;

/// The devices `ids` with their profiles expanded, read in `$batch` requests of 20 (Graph's
/// limit). Only a read that failed is sent again (after its `Retry-After`); a device that is
/// gone is left out. When the tenant refuses `$batch` itself, one by one.
pub async fn get_devices_expanded(
    graph: &GraphClient,
    ids: &[String],
) -> Result<HashMap<String, AutopilotDevice>, AssignmentError> {
    let mut out = HashMap::new();
    let mut left: Vec<String> = ids.to_vec();
    let mut attempt = 0;
    while !left.is_empty() {
        attempt += 1;
        let mut again = Vec::new();
        let mut wait: Option<Duration> = None;
        for chunk in left.chunks(20) {
            let requests: Vec<serde_json::Value> = chunk
                .iter()
                .enumerate()
                .map(|(n, id)| {
                    serde_json::json!({
                        "id": n.to_string(),
                        "method": "GET",
                        "url": format!(
                            "{DEVICES_PATH}/{}?$expand=deploymentProfile,intendedDeploymentProfile",
                            encode(id)
                        ),
                    })
                })
                .collect();
            let answer = graph
                .post_json::<_, serde_json::Value>(
                    ApiVersion::Beta,
                    "/$batch",
                    &serde_json::json!({ "requests": requests }),
                )
                .await;
            let answer = match answer {
                Ok(v) => v,
                Err(GraphError::Cancelled) => return Err(AssignmentError::Cancelled),
                // No $batch here: the same reads one by one.
                Err(e) if matches!(e.status(), Some(400 | 404 | 405 | 501)) => {
                    for id in chunk {
                        match get_device_expanded(graph, id).await {
                            Ok(d) => {
                                out.insert(id.clone(), d);
                            }
                            Err(AssignmentError::DeviceGone(_)) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    continue;
                }
                Err(e) => return Err(AssignmentError::from_graph(e)),
            };
            let mut answered = HashSet::new();
            for resp in answer
                .get("responses")
                .and_then(|r| r.as_array())
                .into_iter()
                .flatten()
            {
                let Some(id) = resp
                    .get("id")
                    .and_then(|x| x.as_str())
                    .and_then(|s| s.parse::<usize>().ok())
                    .and_then(|n| chunk.get(n))
                else {
                    continue;
                };
                answered.insert(id.clone());
                let status = resp.get("status").and_then(|s| s.as_u64()).unwrap_or(0);
                match status {
                    200..=299 => {
                        let body = resp.get("body").cloned().unwrap_or_default();
                        match serde_json::from_value::<AutopilotDevice>(body) {
                            Ok(d) => {
                                out.insert(id.clone(), d);
                            }
                            Err(e) => {
                                return Err(AssignmentError::Graph(Box::new(GraphError::Decode {
                                    context: format!("Autopilot device {id} in a $batch answer"),
                                    message: e.to_string(),
                                })));
                            }
                        }
                    }
                    404 => {}
                    _ => {
                        let ra = resp
                            .pointer("/headers/retry-after")
                            .or_else(|| resp.pointer("/headers/Retry-After"))
                            .and_then(|v| v.as_str())
                            .and_then(crate::graph::client::parse_retry_after)
                            .unwrap_or(Duration::from_secs(1));
                        wait = Some(wait.map_or(ra, |w: Duration| w.max(ra)));
                        again.push(id.clone());
                    }
                }
            }
            // A read the answer left out is sent again too.
            again.extend(chunk.iter().filter(|id| !answered.contains(*id)).cloned());
        }
        if !again.is_empty() && attempt >= BATCH_READ_ATTEMPTS {
            // The last try of the failed reads, one by one, so their own error is told.
            for id in &again {
                match get_device_expanded(graph, id).await {
                    Ok(d) => {
                        out.insert(id.clone(), d);
                    }
                    Err(AssignmentError::DeviceGone(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            break;
        }
        if let Some(w) = wait
            && !again.is_empty()
        {
            sleep_or_cancel(graph, w.min(Duration::from_secs(60))).await?;
        }
        left = again;
    }
    Ok(out)
}

/// Reads the board once: the device list, the group, and the profile of every device that
/// has one.
pub async fn load_board(graph: &GraphClient, target: &Target) -> Result<Board, AssignmentError> {
    BoardReader::new(target.clone()).read(graph).await
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileName {
    id: String,
    #[serde(default)]
    display_name: Option<String>,
}

/// Reads the board repeatedly with as few requests as possible: one paged list read and one
/// group read per refresh, an expanded read only for devices whose status changed, and the
/// profile names once.
#[derive(Debug, Clone)]
pub struct BoardReader {
    target: Target,
    expanded: HashMap<String, (Option<String>, AutopilotDevice)>,
    names: HashMap<String, String>,
}

impl BoardReader {
    pub fn new(target: Target) -> Self {
        let names = HashMap::from([(target.profile_id.clone(), target.profile_name.clone())]);
        BoardReader {
            target,
            expanded: HashMap::new(),
            names,
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub async fn read(&mut self, graph: &GraphClient) -> Result<Board, AssignmentError> {
        let mut devices = list_devices(graph).await?;
        expand_where_needed(graph, &mut devices, &mut self.expanded).await?;
        let unnamed = devices.iter().any(|d| {
            [&d.deployment_profile, &d.intended_deployment_profile]
                .into_iter()
                .flatten()
                .any(|p| {
                    !p.id.is_empty() && p.display_name.is_empty() && !self.names.contains_key(&p.id)
                })
        });
        if unnamed {
            let list: Vec<ProfileName> = graph
                .get_all(
                    ApiVersion::Beta,
                    "/deviceManagement/windowsAutopilotDeploymentProfiles?$select=id,displayName",
                )
                .await
                .map_err(AssignmentError::from_graph)?;
            for p in list {
                self.names.insert(p.id, p.display_name.unwrap_or_default());
            }
        }
        let group = read_group(graph, &self.target).await?;
        Ok(Board::build(
            self.target.clone(),
            &devices,
            group,
            &self.names,
        ))
    }
}

async fn sleep_or_cancel(graph: &GraphClient, d: Duration) -> Result<(), AssignmentError> {
    tokio::select! {
        _ = graph.cancel_token().cancelled() => Err(AssignmentError::Cancelled),
        _ = tokio::time::sleep(d) => Ok(()),
    }
}

/// One waiting phase ([`crate::steps::poll`]): the growing poll interval and the phase's
/// deadline.
struct Poll(crate::steps::poll::Poller);

impl Poll {
    fn new(opts: &WaitOptions) -> Self {
        Poll(crate::steps::poll::Poller::new(opts.policy()))
    }

    /// Polls fast again (a new sub-phase) without restarting the phase's deadline.
    fn reset_interval(&mut self) {
        self.0.reset_interval();
    }

    fn expired(&self) -> bool {
        self.0.expired()
    }

    fn waited(&self) -> String {
        waited_words(self.0.waited())
    }

    async fn sleep(&mut self, graph: &GraphClient) -> Result<(), AssignmentError> {
        self.0
            .sleep(graph.cancel_token())
            .await
            .map_err(|_| AssignmentError::Cancelled)?;
        self.0.back_off();
        Ok(())
    }
}

fn list_serials<'a>(serials: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = serials.collect();
    if v.len() > 10 {
        format!("{} and {} more", v[..10].join(", "), v.len() - 10)
    } else {
        v.join(", ")
    }
}

/// Looks up the Entra objects of `device_ids` (Entra `deviceId`s), 15 per request with an
/// `or`-joined filter. Returns `deviceId` (lower case) → object id.
async fn resolve_entra(
    graph: &GraphClient,
    device_ids: &[String],
) -> Result<HashMap<String, String>, AssignmentError> {
    let mut out = HashMap::new();
    for chunk in device_ids.chunks(15) {
        let filter = chunk
            .iter()
            .map(|id| format!("deviceId eq {}", odata_string(id)))
            .collect::<Vec<_>>()
            .join("%20or%20");
        let found: Vec<EntraDevice> = graph
            .get_all(
                ApiVersion::V1,
                &format!("/devices?$filter={filter}&$select=id,deviceId,displayName"),
            )
            .await
            .map_err(AssignmentError::from_graph)?;
        for d in found {
            if let Some(did) = d.device_id {
                out.insert(did.to_ascii_lowercase(), d.id);
            }
        }
    }
    Ok(out)
}

/// The result of putting devices into a static group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipReport {
    pub added: Vec<String>,
    pub already_members: Vec<String>,
    /// Serials now confirmed members by reading the group back.
    pub confirmed: Vec<String>,
}

/// Static group: finds each device's Entra object (waiting while Entra has not created it
/// yet), adds the missing ones to the group and reads the membership back. Safe to re-run:
/// existing members are skipped.
pub async fn ensure_static_members(
    graph: &GraphClient,
    target: &Target,
    devices: &[AutopilotDevice],
    opts: &WaitOptions,
    mut progress: impl FnMut(Progress) + Send,
) -> Result<MembershipReport, AssignmentError> {
    let mut poll = Poll::new(opts);
    let total = devices.len();
    let mut devices: Vec<AutopilotDevice> = devices.to_vec();
    // deviceId (lower) → object id
    let mut resolved: HashMap<String, String> = HashMap::new();
    loop {
        // An Autopilot record gets its azureActiveDirectoryDeviceId when the Entra object is
        // created, so records without one are read again.
        if devices.iter().any(|d| d.entra_device_id().is_none()) {
            let all = list_devices(graph).await?;
            let by_id: HashMap<&str, &AutopilotDevice> =
                all.iter().map(|d| (d.id.as_str(), d)).collect();
            for d in devices.iter_mut() {
                if d.entra_device_id().is_none()
                    && let Some(f) = by_id.get(d.id.as_str())
                {
                    *d = (*f).clone();
                }
            }
        }
        let wanted: Vec<String> = devices
            .iter()
            .filter_map(|d| d.entra_device_id())
            .map(|s| s.to_ascii_lowercase())
            .filter(|id| !resolved.contains_key(id))
            .collect();
        resolved.extend(resolve_entra(graph, &wanted).await?);
        let missing: Vec<&AutopilotDevice> = devices
            .iter()
            .filter(|d| {
                d.entra_device_id()
                    .is_none_or(|id| !resolved.contains_key(&id.to_ascii_lowercase()))
            })
            .collect();
        progress(Progress::ResolvingEntraObjects {
            found: total - missing.len(),
            total,
        });
        if missing.is_empty() {
            break;
        }
        if poll.expired() {
            return Err(AssignmentError::Timeout {
                phase: "waiting for Entra to create the device objects".into(),
                waited: poll.waited(),
                pending: list_serials(missing.iter().map(|d| d.serial_number.as_str())),
                hint: "Run a sync on the Import step and check that the import finished without \
                       errors, then run this step again."
                    .into(),
            });
        }
        poll.sleep(graph).await?;
    }

    let before = read_group(graph, target).await?;
    let members_lower: HashSet<String> = before
        .member_device_ids
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let mut report = MembershipReport::default();
    let mut to_add: Vec<(&AutopilotDevice, &str)> = Vec::new();
    for d in &devices {
        let did = d
            .entra_device_id()
            .map(|s| s.to_ascii_lowercase())
            .unwrap_or_default();
        if members_lower.contains(&did) {
            report.already_members.push(d.serial_number.clone());
        } else if let Some(object_id) = resolved.get(&did) {
            to_add.push((d, object_id));
        }
    }
    // Twenty per request instead of one: 500 devices cost 25 requests, not 500.
    for batch in to_add.chunks(MAX_MEMBERS_PER_PATCH) {
        let body = MembersBind {
            members: batch
                .iter()
                .map(|(_, oid)| directory_object_url(graph, oid))
                .collect(),
        };
        match graph
            .patch_json(
                ApiVersion::V1,
                &format!("/groups/{}", encode(&target.group_id)),
                &body,
            )
            .await
        {
            Ok(_) => report
                .added
                .extend(batch.iter().map(|(d, _)| d.serial_number.clone())),
            // All or nothing: one device added meanwhile (another run, a replica catching up)
            // or one object Graph does not find refuses the whole batch. One by one, each
            // device gets its own answer.
            Err(e) if matches!(e.status(), Some(400 | 404)) => {
                tracing::debug!(error = %e, size = batch.len(), "batch add refused; adding one by one");
                for (d, object_id) in batch {
                    add_one_member(graph, target, d, object_id, &mut report).await?;
                }
            }
            Err(e) => return Err(AssignmentError::from_graph(e)),
        }
        progress(Progress::AddingMembers {
            added: report.added.len(),
            already: report.already_members.len(),
            total,
        });
    }
    progress(Progress::AddingMembers {
        added: report.added.len(),
        already: report.already_members.len(),
        total,
    });

    // Read back: directory writes are eventually consistent, so allow a short wait.
    poll.reset_interval();
    loop {
        let after = read_group(graph, target).await?;
        let lower: HashSet<String> = after
            .member_device_ids
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        let (ok, not): (Vec<&AutopilotDevice>, Vec<&AutopilotDevice>) =
            devices.iter().partition(|d| {
                d.entra_device_id()
                    .is_some_and(|id| lower.contains(&id.to_ascii_lowercase()))
            });
        if not.is_empty() {
            report.confirmed = ok.iter().map(|d| d.serial_number.clone()).collect();
            return Ok(report);
        }
        if poll.expired() {
            return Err(AssignmentError::Timeout {
                phase: "reading the group membership back".into(),
                waited: poll.waited(),
                pending: list_serials(not.iter().map(|d| d.serial_number.as_str())),
                hint: "The devices were added but the group does not list them yet; refresh \
                       later."
                    .into(),
            });
        }
        poll.sleep(graph).await?;
    }
}

/// The reference to a directory object on the same Graph host the request goes to
/// (graph.microsoft.us, microsoftgraph.chinacloudapi.cn, … in national clouds).
fn directory_object_url(graph: &GraphClient, object_id: &str) -> String {
    format!(
        "{}/v1.0/directoryObjects/{}",
        graph.base(),
        encode(object_id)
    )
}

/// Adds one device with `POST members/$ref`; "already a member" counts as done.
async fn add_one_member(
    graph: &GraphClient,
    target: &Target,
    d: &AutopilotDevice,
    object_id: &str,
    report: &mut MembershipReport,
) -> Result<(), AssignmentError> {
    let body = ObjectRef {
        odata_id: directory_object_url(graph, object_id),
    };
    match graph
        .post_no_content(
            ApiVersion::V1,
            &format!("/groups/{}/members/$ref", encode(&target.group_id)),
            Some(&body),
        )
        .await
    {
        Ok(_) => report.added.push(d.serial_number.clone()),
        // Added meanwhile (another run, or a replica that had not caught up): fine.
        Err(e)
            if e.status() == Some(400)
                && e.to_string().to_lowercase().contains("already exist") =>
        {
            report.already_members.push(d.serial_number.clone())
        }
        Err(e) => return Err(AssignmentError::from_graph(e)),
    }
    Ok(())
}

/// Dynamic group: waits until every device (that has an Entra object) is a member.
pub async fn wait_dynamic_membership(
    graph: &GraphClient,
    target: &Target,
    devices: &[AutopilotDevice],
    opts: &WaitOptions,
    mut progress: impl FnMut(Progress) + Send,
) -> Result<GroupSnapshot, AssignmentError> {
    let mut poll = Poll::new(opts);
    loop {
        let snap = read_group(graph, target).await?;
        let lower: HashSet<String> = snap
            .member_device_ids
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        let missing: Vec<&AutopilotDevice> = devices
            .iter()
            .filter(|d| {
                d.entra_device_id()
                    .is_none_or(|id| !lower.contains(&id.to_ascii_lowercase()))
            })
            .collect();
        progress(Progress::Membership {
            members: devices.len() - missing.len(),
            total: devices.len(),
            processing: snap.processing.clone(),
        });
        if missing.is_empty() {
            return Ok(snap);
        }
        if poll.expired() {
            let hint = match target.rule_group_tag() {
                Some(tag) => format!(
                    "The rule selects devices with group tag \"{tag}\"; check the group tag of \
                     the devices still missing."
                ),
                None => "Check that the group's rule matches these devices.".into(),
            };
            return Err(AssignmentError::Timeout {
                phase: format!("waiting for the dynamic group \"{}\"", target.group_name),
                waited: poll.waited(),
                pending: list_serials(missing.iter().map(|d| d.serial_number.as_str())),
                hint,
            });
        }
        poll.sleep(graph).await?;
    }
}

/// Follows `deploymentProfileAssignmentStatus` until every device in `device_ids` (Autopilot
/// ids; empty = every device) is settled: assigned, failed, or assigned another profile. One
/// paged list read per poll, plus one expanded read when a device's status changes.
pub async fn wait_for_assignment(
    graph: &GraphClient,
    target: &Target,
    device_ids: &[String],
    opts: &WaitOptions,
    progress: impl FnMut(Progress) + Send,
) -> Result<Board, AssignmentError> {
    let mut reader = BoardReader::new(target.clone());
    wait_for_assignment_with(graph, &mut reader, device_ids, opts, progress).await
}

/// As [`wait_for_assignment`], reading through `reader` (its target is the wait's).
pub async fn wait_for_assignment_with(
    graph: &GraphClient,
    reader: &mut BoardReader,
    device_ids: &[String],
    opts: &WaitOptions,
    mut progress: impl FnMut(Progress) + Send,
) -> Result<Board, AssignmentError> {
    let target = reader.target().clone();
    let mut poll = Poll::new(opts);
    let wanted: HashSet<&str> = device_ids.iter().map(|s| s.as_str()).collect();
    loop {
        let mut board = reader.read(graph).await?;
        if !wanted.is_empty() {
            board.rows.retain(|r| wanted.contains(r.id.as_str()));
        }
        let summary = board.summary();
        progress(Progress::Assignment { summary });
        let open: Vec<&BoardRow> = board
            .rows
            .iter()
            .filter(|r| match r.chip {
                Chip::Failed => false,
                Chip::Assigned => r.assigned_at.is_none() || r.profile_id.is_none(),
                _ => true,
            })
            .collect();
        if open.is_empty() {
            return Ok(board);
        }
        if poll.expired() {
            return Err(AssignmentError::Timeout {
                phase: format!("waiting for \"{}\" to be assigned", target.profile_name),
                waited: poll.waited(),
                pending: list_serials(open.iter().map(|r| r.serial.as_str())),
                hint: "Nothing is wrong yet if the devices show Pending; open the board to see \
                       each device's reason, and come back later."
                    .into(),
            });
        }
        poll.sleep(graph).await?;
    }
}

/// Puts every Autopilot device (or those in `device_ids`) into the group and waits until each
/// is assigned: static groups get the missing members added, dynamic groups are waited for,
/// then the assignment status is followed. Safe to re-run.
pub async fn run(
    graph: &GraphClient,
    target: &Target,
    device_ids: &[String],
    opts: &WaitOptions,
    progress: impl FnMut(Progress) + Send,
) -> Result<Board, AssignmentError> {
    let mut reader = BoardReader::new(target.clone());
    run_with(graph, &mut reader, device_ids, opts, progress).await
}

/// As [`run`], reading the board through `reader`, whose target is the step's: the expanded
/// device reads it keeps serve a later read of the same devices (the validation's), which then
/// reads only the devices whose status changed since.
pub async fn run_with(
    graph: &GraphClient,
    reader: &mut BoardReader,
    device_ids: &[String],
    opts: &WaitOptions,
    mut progress: impl FnMut(Progress) + Send,
) -> Result<Board, AssignmentError> {
    let target = &reader.target().clone();
    let mut devices = list_devices(graph).await?;
    if !device_ids.is_empty() {
        devices.retain(|d| device_ids.contains(&d.id));
    }
    if devices.is_empty() {
        return reader.read(graph).await;
    }
    match &target.membership {
        GroupMembership::Static => {
            ensure_static_members(graph, target, &devices, opts, &mut progress).await?;
        }
        GroupMembership::Dynamic { .. } => {
            wait_dynamic_membership(graph, target, &devices, opts, &mut progress).await?;
        }
    }
    let ids: Vec<String> = devices.iter().map(|d| d.id.clone()).collect();
    wait_for_assignment_with(graph, reader, &ids, opts, &mut progress).await
}

/// Autopilot allows one manual sync about every 10 minutes (reference §6.5).
pub const SYNC_INTERVAL: Duration = Duration::from_secs(600);

/// What "Sync now" did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncNow {
    Triggered,
    /// A sync is running or was requested recently; the service will pick changes up anyway.
    AlreadySyncing,
    /// The last manual sync was too recent: try again after this long.
    TooSoon(Duration),
}

/// Asks Autopilot to sync, respecting the rate limit the service reports through
/// `lastManualSyncTriggerDateTime` instead of running into it.
pub async fn sync_now(graph: &GraphClient) -> Result<SyncNow, AssignmentError> {
    sync_now_within(graph, SYNC_INTERVAL).await
}

/// [`sync_now`] with another manual-sync window (a simulated tenant's clock runs faster).
pub async fn sync_now_within(
    graph: &GraphClient,
    min_interval: Duration,
) -> Result<SyncNow, AssignmentError> {
    let settings: crate::graph::models::autopilot::AutopilotSettings = graph
        .get_json(
            ApiVersion::Beta,
            "/deviceManagement/windowsAutopilotSettings",
        )
        .await
        .map_err(AssignmentError::from_graph)?;
    if settings.is_syncing() {
        return Ok(SyncNow::AlreadySyncing);
    }
    let wait = crate::steps::import::sync_wait_remaining(&settings, min_interval, Utc::now());
    if !wait.is_zero() {
        return Ok(SyncNow::TooSoon(wait));
    }
    // One attempt: a 429 here means "already syncing", not "retry for minutes".
    let once = graph.clone().with_retry(crate::graph::client::RetryPolicy {
        max_attempts: 1,
        ..Default::default()
    });
    match once
        .post_no_content::<()>(
            ApiVersion::Beta,
            "/deviceManagement/windowsAutopilotSettings/sync",
            None,
        )
        .await
    {
        Ok(_) => Ok(SyncNow::Triggered),
        Err(e) if matches!(e.status(), Some(429) | Some(400)) => Ok(SyncNow::AlreadySyncing),
        Err(e) => Err(AssignmentError::from_graph(e)),
    }
}

/// Result of an edit: the device as read back, and whether every change shows.
#[derive(Debug, Clone, PartialEq)]
pub struct EditOutcome {
    pub device: AutopilotDevice,
    /// Fields that did not read back as sent (the service applies some after a sync).
    pub not_yet_visible: Vec<String>,
}

/// Sends `updateDeviceProperties` with only the changed fields, then reads the device back.
pub async fn update_device(
    graph: &GraphClient,
    id: &str,
    edit: &DeviceEdit,
) -> Result<EditOutcome, AssignmentError> {
    edit.validate().map_err(AssignmentError::InvalidEdit)?;
    if edit.is_empty() {
        return Err(AssignmentError::InvalidEdit("nothing was changed.".into()));
    }
    let upn = edit
        .user_principal_name
        .as_ref()
        .map(|u| u.trim().to_string());
    // Clearing the user has its own action (reference §7); an empty UPN in
    // updateDeviceProperties is not documented to clear it.
    let unassign = upn.as_deref() == Some("");
    let set_upn = upn.clone().filter(|u| !u.is_empty());
    let body = UpdateDeviceProperties {
        user_principal_name: set_upn.clone(),
        // The service shows this name in OOBE; the UPN is the natural value.
        addressable_user_name: set_upn,
        group_tag: edit.group_tag.as_ref().map(|t| t.trim().to_string()),
        display_name: edit.display_name.clone(),
    };
    let gone = |e: crate::graph::GraphError| match e {
        e if e.is_not_found() => AssignmentError::DeviceGone(id.to_string()),
        e => AssignmentError::from_graph(e),
    };
    if unassign {
        graph
            .post_no_content::<()>(
                ApiVersion::Beta,
                &format!("{DEVICES_PATH}/{}/unassignUserFromDevice", encode(id)),
                None,
            )
            .await
            .map_err(gone)?;
    }
    if body != UpdateDeviceProperties::default() {
        graph
            .post_no_content(
                ApiVersion::Beta,
                &format!("{DEVICES_PATH}/{}/updateDeviceProperties", encode(id)),
                Some(&body),
            )
            .await
            .map_err(gone)?;
    }
    let device = get_device_expanded(graph, id).await?;
    let mut not_yet_visible = Vec::new();
    let same = |a: &Option<String>, b: &Option<String>| {
        a.as_deref().unwrap_or("") == b.as_deref().unwrap_or("")
    };
    if body.group_tag.is_some() && !same(&body.group_tag, &device.group_tag) {
        not_yet_visible.push("group tag".into());
    }
    if body.display_name.is_some() && !same(&body.display_name, &device.display_name) {
        not_yet_visible.push("computer name".into());
    }
    if upn.is_some() && !same(&upn, &device.user_principal_name) {
        not_yet_visible.push("assigned user".into());
    }
    Ok(EditOutcome {
        device,
        not_yet_visible,
    })
}

/// The board's target for the profile of step 3 and the group of step 4 (the board knows no
/// steps: it is plain data).
pub fn target_of(
    profile: &crate::steps::profile::ProfileRef,
    group: &crate::steps::group::GroupRef,
) -> Target {
    use crate::board::GroupMembership;
    use crate::steps::group::GroupKind;
    Target {
        group_id: group.id.clone(),
        group_name: group.display_name.clone(),
        membership: match &group.kind {
            GroupKind::Dynamic { rule } => GroupMembership::Dynamic { rule: rule.clone() },
            GroupKind::Static => GroupMembership::Static,
        },
        profile_id: profile.id.clone(),
        profile_name: profile.display_name.clone(),
    }
}
