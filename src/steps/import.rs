//! Step 5: import hardware hashes (reference §6, §7; procedure §2, §2.1).
//!
//! Flow: [`precheck`] finds what the tenant already has (registered devices, leftover import
//! records, assigned users) → [`run`] uploads the remaining rows in chunks with the collection
//! `import` action, follows every record with one paged list read per poll, explains each
//! outcome, deletes the import records, triggers an Autopilot sync (respecting the manual sync
//! window) and waits until every imported device shows in `windowsAutopilotDeviceIdentities`.
//!
//! Everything lives in an [`ImportJob`] (plain serde data) that the caller saves after every
//! change; calling [`run`] again with a saved job continues where it stopped and never uploads a
//! row twice.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::graph::client::{RetryPolicy, encode, odata_string};
use crate::graph::models::autopilot::{
    AutopilotDevice, AutopilotSettings, ImportRequest, ImportedDevice, NewImportedDevice,
    UpdateDeviceProperties,
};
use crate::graph::{ApiVersion, GraphClient, GraphError};

use crate::steps::registry::Permission;

/// Reads the Entra device objects the imported devices get.
pub const DEVICES_READ: Permission = Permission::new(
    "Device.Read.All",
    &[
        "Device.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ],
);

const IMPORTED: &str = "/deviceManagement/importedWindowsAutopilotDeviceIdentities";
const DEVICES: &str = "/deviceManagement/windowsAutopilotDeviceIdentities";
const SETTINGS: &str = "/deviceManagement/windowsAutopilotSettings";
/// What the poll and precheck reads need; the 4 KB hash stays on the server.
const RECORD_SELECT: &str = "id,importId,serialNumber,state";
const DEVICE_SELECT: &str =
    "id,serialNumber,groupTag,deploymentProfileAssignmentStatus,manufacturer,model";

/// One device row to import, as the CSV reader produced it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRow {
    pub serial: String,
    pub product_key: String,
    /// Base64 hardware hash (padded by the reader; padded here again if it is not).
    pub hash: String,
    pub group_tag: String,
    pub assigned_user: String,
    /// File the row came from (for messages: "file, line").
    pub file: String,
    pub line: usize,
}

/// Where a row stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RowOutcome {
    /// Will be uploaded.
    Ready,
    /// Deliberately left out (by the user, or because of a problem they chose to skip).
    Excluded { reason: String },
    /// Already an Autopilot device in this tenant; not uploaded again.
    AlreadyRegistered {
        device_id: String,
        group_tag: String,
        profile_status: String,
        note: String,
    },
    /// Same hardware as another row of this selection; only that one is uploaded.
    Duplicate { of_file: String, of_line: usize },
    /// Sent; the service is processing its import record.
    Submitted { record_id: String },
    /// Import record complete; waiting for the device to show after a sync.
    Imported {
        record_id: String,
        device_id: String,
    },
    /// Visible in the tenant's Autopilot devices.
    Registered { device_id: String },
    /// The service (or the precheck) refused the row.
    Failed {
        code: i32,
        name: String,
        summary: String,
        action: String,
    },
}

impl RowOutcome {
    /// Registered, or deliberately not part of this import.
    pub fn is_resolved(&self) -> bool {
        matches!(
            self,
            RowOutcome::Registered { .. }
                | RowOutcome::AlreadyRegistered { .. }
                | RowOutcome::Excluded { .. }
                | RowOutcome::Duplicate { .. }
        )
    }

    pub fn label(&self) -> String {
        match self {
            RowOutcome::Ready => "Ready to import".into(),
            RowOutcome::Excluded { reason } => format!("Left out: {reason}"),
            RowOutcome::AlreadyRegistered {
                group_tag,
                profile_status,
                note,
                ..
            } => {
                let tag = if group_tag.is_empty() {
                    "no group tag".to_string()
                } else {
                    format!("group tag \"{group_tag}\"")
                };
                // The status is a label of its own ("No profile assigned"); mid-sentence it
                // starts in lower case.
                let mut chars = profile_status.chars();
                let status = chars
                    .next()
                    .map(|c| c.to_lowercase().chain(chars).collect::<String>())
                    .unwrap_or_default();
                format!("Already registered ({tag}, {status}). {note}")
                    .trim()
                    .to_string()
            }
            RowOutcome::Duplicate { of_file, of_line } => {
                format!("Same device as {of_file} line {of_line}; imported once")
            }
            RowOutcome::Submitted { .. } => "Uploaded, being processed".into(),
            RowOutcome::Imported { .. } => "Imported, waiting for Autopilot sync".into(),
            RowOutcome::Registered { .. } => "Registered".into(),
            RowOutcome::Failed {
                summary, action, ..
            } => format!("{summary} {action}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowState {
    pub row: ImportRow,
    pub outcome: RowOutcome,
    /// Set when the precheck repaired the Base64 padding.
    pub hash_fixed: bool,
    /// The person chose to leave this device out of step 4's group (its group tag keeps it
    /// out, knowingly).
    #[serde(default)]
    pub outside_group: bool,
}

/// Progress of one upload (at most `chunk_size` rows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkState {
    NotSent,
    /// The POST went out and no answer was saved: on resume, look for the records before
    /// uploading again.
    Sending,
    Sent {
        import_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Indexes into [`ImportJob::rows`].
    pub rows: Vec<usize>,
    pub state: ChunkState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImportPhase {
    /// Checked against the tenant; nothing sent yet.
    Prechecked,
    Uploading,
    Processing,
    Cleanup,
    Sync,
    WaitingForDevices,
    Done,
}

impl ImportPhase {
    pub fn label(self) -> &'static str {
        match self {
            ImportPhase::Prechecked => "Checked",
            ImportPhase::Uploading => "Uploading",
            ImportPhase::Processing => "Intune is processing the upload",
            ImportPhase::Cleanup => "Removing the import records",
            ImportPhase::Sync => "Starting an Autopilot sync",
            ImportPhase::WaitingForDevices => "Waiting for the devices to appear",
            ImportPhase::Done => "Done",
        }
    }
}

/// Graph requests per phase (the benchmark reads these; retries inside the client are not
/// counted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestStats {
    pub precheck: u32,
    pub import: u32,
    pub poll: u32,
    pub cleanup: u32,
    pub sync: u32,
    pub wait: u32,
}

impl RequestStats {
    pub fn total(&self) -> u32 {
        self.precheck + self.import + self.poll + self.cleanup + self.sync + self.wait
    }
}

/// What happened with the manual sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncOutcome {
    Triggered {
        at: DateTime<Utc>,
    },
    /// The service refused (429/400) because a sync is running or was requested recently; it
    /// will pick the devices up anyway.
    AlreadySyncing {
        message: String,
    },
}

/// The whole import, resumable. Persist it after every change (see [`ImportObserver::save`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportJob {
    pub rows: Vec<RowState>,
    pub chunks: Vec<Chunk>,
    pub phase: ImportPhase,
    /// Import records to delete in cleanup (this job's and leftovers of earlier runs).
    pub records_to_delete: Vec<String>,
    pub sync: Option<SyncOutcome>,
    pub stats: RequestStats,
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    /// Which copy of the job this is (never saved): what a page keys its caches on instead of
    /// walking 10,000 rows every frame.
    #[serde(skip)]
    pub revision: Revision,
}

/// A number no other job value shares: every job made, read back or copied draws a new one, so
/// "same revision" means "this very value, not changed since". A copy does not keep the number:
/// it may be changed on its own. That holds for the job in
/// [`Outcomes`](crate::steps::Outcomes) because it is only ever replaced (the import page and the
/// runner change their own copy and store a clone), never changed in place. Not part of the
/// job's value: two jobs with the same rows are equal whatever their revisions.
#[derive(Debug)]
pub struct Revision {
    n: u64,
    /// The job's [`Outcome::identity`](crate::steps::registry::Outcome::identity), asked for
    /// every frame (Done follows its inputs) and costly on a large import: kept with the
    /// revision it was computed for.
    identity: std::sync::OnceLock<String>,
}

impl Revision {
    fn next() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Revision {
            n: NEXT.fetch_add(1, Ordering::Relaxed),
            identity: std::sync::OnceLock::new(),
        }
    }

    pub fn get(&self) -> u64 {
        self.n
    }

    /// `compute`'s answer for this revision: computed on the first call only.
    pub fn identity(&self, compute: impl FnOnce() -> String) -> &str {
        self.identity.get_or_init(compute)
    }
}

impl Default for Revision {
    fn default() -> Self {
        Revision::next()
    }
}

impl Clone for Revision {
    fn clone(&self) -> Self {
        Revision::next()
    }
}

impl PartialEq for Revision {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Counts for the progress bar and summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub total: usize,
    pub ready: usize,
    pub hash_fixed: usize,
    pub already_registered: usize,
    pub excluded: usize,
    pub submitted: usize,
    pub imported: usize,
    pub registered: usize,
    pub failed: usize,
}

impl ImportCounts {
    /// Rows whose fate is known (0.0–1.0), for the progress bar.
    pub fn fraction_done(&self) -> f32 {
        if self.total == 0 {
            return 1.0;
        }
        let open = self.ready + self.submitted + self.imported;
        1.0 - open as f32 / self.total as f32
    }
}

impl ImportJob {
    /// Serial numbers (trimmed, upper-case) of the devices this job imported or found
    /// registered: every row but those left out and duplicates. The devices later steps (the
    /// board, the assignment wait, the report) answer for.
    pub fn expected_serials(&self) -> impl Iterator<Item = String> + '_ {
        self.rows
            .iter()
            .filter(|r| {
                !matches!(
                    r.outcome,
                    RowOutcome::Excluded { .. } | RowOutcome::Duplicate { .. }
                )
            })
            .map(|r| r.row.serial.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
    }

    /// A job over `rows` with nothing checked yet (every row `Ready`). [`precheck`] is the
    /// normal way to make one.
    pub fn new(rows: Vec<ImportRow>) -> Self {
        ImportJob {
            rows: rows
                .into_iter()
                .map(|row| RowState {
                    row,
                    outcome: RowOutcome::Ready,
                    hash_fixed: false,
                    outside_group: false,
                })
                .collect(),
            chunks: Vec::new(),
            phase: ImportPhase::Prechecked,
            records_to_delete: Vec::new(),
            sync: None,
            stats: RequestStats::default(),
            started: None,
            finished: None,
            revision: Revision::default(),
        }
    }

    pub fn counts(&self) -> ImportCounts {
        let mut c = ImportCounts {
            total: self.rows.len(),
            ..Default::default()
        };
        for r in &self.rows {
            if r.hash_fixed {
                c.hash_fixed += 1;
            }
            match &r.outcome {
                RowOutcome::Ready => c.ready += 1,
                RowOutcome::Excluded { .. } | RowOutcome::Duplicate { .. } => c.excluded += 1,
                RowOutcome::AlreadyRegistered { .. } => c.already_registered += 1,
                RowOutcome::Submitted { .. } => c.submitted += 1,
                RowOutcome::Imported { .. } => c.imported += 1,
                RowOutcome::Registered { .. } => c.registered += 1,
                RowOutcome::Failed { .. } => c.failed += 1,
            }
        }
        c
    }

    /// Rows neither registered nor deliberately left out: Next stays disabled while any exist.
    pub fn unresolved(&self) -> Vec<usize> {
        self.rows
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.outcome.is_resolved())
            .map(|(i, _)| i)
            .collect()
    }

    /// A checked job whose every row is registered already or deliberately left out, with no
    /// import record to clean up, is finished as it stands: the devices are there, whoever
    /// uploaded them. Returns whether it was.
    pub fn finish_if_nothing_to_send(&mut self) -> bool {
        if self.phase != ImportPhase::Prechecked
            || self.rows.is_empty()
            || !self.unresolved().is_empty()
            || !self.records_to_delete.is_empty()
        {
            return false;
        }
        self.phase = ImportPhase::Done;
        self.finished = Some(Utc::now());
        true
    }

    /// Every chosen device is registered or explained and deliberately left out.
    pub fn is_validated(&self) -> bool {
        self.phase == ImportPhase::Done && self.unresolved().is_empty()
    }

    /// Leaves out one row before the upload (or a failed one after it), keeping why.
    pub fn exclude(&mut self, index: usize, reason: &str) {
        if let Some(r) = self.rows.get_mut(index)
            && matches!(r.outcome, RowOutcome::Ready | RowOutcome::Failed { .. })
        {
            let reason = match &r.outcome {
                RowOutcome::Failed { summary, .. } => format!("{reason} ({summary})"),
                _ => reason.to_string(),
            };
            r.outcome = RowOutcome::Excluded { reason };
        }
    }

    /// Leaves out every failed row after the import, so the step can be completed.
    pub fn exclude_failed(&mut self, reason: &str) {
        for i in 0..self.rows.len() {
            if matches!(self.rows[i].outcome, RowOutcome::Failed { .. }) {
                self.exclude(i, reason);
            }
        }
    }

    /// Puts failed rows whose problem may go away (storage error, unknown) back to `Ready` and
    /// reopens the job for another upload of only those rows.
    pub fn retry_failed(&mut self) -> usize {
        let mut n = 0;
        for r in &mut self.rows {
            if let RowOutcome::Failed { code, name, .. } = &r.outcome
                && explain(*code, name).retry_helps
                && !r.row.hash.is_empty()
            {
                r.outcome = RowOutcome::Ready;
                n += 1;
            }
        }
        if n > 0 {
            self.phase = ImportPhase::Prechecked;
            self.finished = None;
        }
        n
    }

    fn set(&mut self, index: usize, outcome: RowOutcome, events: &dyn ImportObserver) {
        let r = &mut self.rows[index];
        if r.outcome != outcome {
            if !matches!(outcome, RowOutcome::Ready) {
                // The hash is only needed until the row is on the server; keeping 4 KB per row
                // out of the persisted job keeps saves small.
                if matches!(
                    outcome,
                    RowOutcome::Imported { .. } | RowOutcome::Registered { .. }
                ) {
                    r.row.hash.clear();
                }
            }
            r.outcome = outcome.clone();
            events.event(ImportEvent::Row { index, outcome });
        }
    }
}

/// Whether a group tag lets a device into a group that collects `tags` (Entra compares the
/// rule's `-eq` without regard to case).
pub fn tag_matches(tag: &str, tags: &[String]) -> bool {
    tags.iter().any(|t| t.eq_ignore_ascii_case(tag.trim()))
}

impl ImportJob {
    /// The group tag a row's device has (registered) or will have (uploaded).
    pub fn effective_tag(&self, index: usize) -> Option<&str> {
        let r = self.rows.get(index)?;
        Some(match &r.outcome {
            RowOutcome::AlreadyRegistered { group_tag, .. } => group_tag.as_str(),
            _ => r.row.group_tag.as_str(),
        })
    }

    /// Rows whose device is (or will be) in this tenant but whose group tag keeps it out of a
    /// group that collects `tags`, and that the person did not knowingly leave out. Empty when
    /// every device can reach the group.
    pub fn kept_out_of_group(&self, tags: &[String]) -> Vec<usize> {
        self.rows
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                matches!(
                    r.outcome,
                    RowOutcome::Ready
                        | RowOutcome::Submitted { .. }
                        | RowOutcome::Imported { .. }
                        | RowOutcome::Registered { .. }
                        | RowOutcome::AlreadyRegistered { .. }
                ) && !r.outside_group
            })
            .filter(|(i, _)| !tag_matches(self.effective_tag(*i).unwrap_or(""), tags))
            .map(|(i, _)| i)
            .collect()
    }

    /// Carries over rows that failed with 808 (registered to another organisation) in
    /// `earlier`, matched by serial: uploading them again cannot succeed, so they keep the
    /// earlier result (and its way out) instead of going out again. Returns how many.
    pub fn keep_earlier_808(&mut self, earlier: &ImportJob) -> usize {
        let mut n = 0;
        for r in &mut self.rows {
            if r.outcome != RowOutcome::Ready {
                continue;
            }
            let prior = earlier.rows.iter().find(|e| {
                e.row
                    .serial
                    .trim()
                    .eq_ignore_ascii_case(r.row.serial.trim())
                    && is_808(&e.outcome)
            });
            if let Some(e) = prior {
                r.outcome = e.outcome.clone();
                n += 1;
            }
        }
        n
    }
}

/// Failed (or left out after failing) because another organisation has the device.
pub fn is_808(o: &RowOutcome) -> bool {
    match o {
        RowOutcome::Failed { code, name, .. } => {
            *code == 808
                || name.eq_ignore_ascii_case("ZtdDeviceAssignedToOtherTenant")
                || name.eq_ignore_ascii_case("ZtdDeviceAssignedToAnotherTenant")
        }
        RowOutcome::Excluded { reason } => reason.contains("(808)"),
        _ => false,
    }
}

/// Progress reported while [`run`] works.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportEvent {
    Phase(ImportPhase),
    Counts(ImportCounts),
    Row {
        index: usize,
        outcome: RowOutcome,
    },
    /// The manual sync window is still closed: this long to wait.
    SyncCountdown {
        remaining: Duration,
    },
    Note(String),
}

/// Receives progress and the job to persist.
pub trait ImportObserver: Send + Sync {
    fn event(&self, event: ImportEvent);
    /// Called after every change of the job; persist it to be able to resume.
    fn save(&self, job: &ImportJob);
}

/// An observer made of two closures.
pub struct FnObserver<E, S>(pub E, pub S);

impl<E, S> ImportObserver for FnObserver<E, S>
where
    E: Fn(ImportEvent) + Send + Sync,
    S: Fn(&ImportJob) + Send + Sync,
{
    fn event(&self, event: ImportEvent) {
        (self.0)(event)
    }
    fn save(&self, job: &ImportJob) {
        (self.1)(job)
    }
}

/// An observer that ignores everything.
pub struct NoObserver;

impl ImportObserver for NoObserver {
    fn event(&self, _event: ImportEvent) {}
    fn save(&self, _job: &ImportJob) {}
}

pub use crate::steps::poll::PollPolicy;

#[derive(Debug, Clone, PartialEq)]
pub struct ImportOptions {
    /// Rows per `import` POST (reference §6.2: ≤ 100 stays inside Intune write throttles).
    pub chunk_size: usize,
    /// Following the import records.
    pub processing: PollPolicy,
    /// Waiting for the devices after the sync.
    pub waiting: PollPolicy,
    /// Manual sync window (10 minutes against Microsoft; the demo scales it).
    pub sync_min_interval: Duration,
    /// Up to this many rows, the precheck asks per serial; above, it reads the device list once.
    pub per_serial_lookup_max: usize,
    /// Delete import records with `$batch` (20 per request), falling back to one by one.
    pub batch_delete: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            chunk_size: 100,
            processing: PollPolicy {
                initial: Duration::from_secs(10),
                max: Duration::from_secs(60),
                factor: 1.5,
                timeout: Duration::from_secs(60 * 60),
            },
            waiting: PollPolicy {
                initial: Duration::from_secs(15),
                max: Duration::from_secs(120),
                factor: 1.5,
                timeout: Duration::from_secs(60 * 60),
            },
            sync_min_interval: Duration::from_secs(600),
            per_serial_lookup_max: 10,
            batch_delete: true,
        }
    }
}

impl ImportOptions {
    /// The defaults with every wait multiplied by `scale` (real seconds per service second), for
    /// a simulated tenant whose clock runs faster (`--demo`). Timeouts keep a floor of a minute.
    pub fn scaled(scale: f64) -> Self {
        let d = ImportOptions::default();
        let s = |x: Duration| x.mul_f64(scale.max(0.0));
        let p = |p: PollPolicy| PollPolicy {
            initial: s(p.initial),
            max: s(p.max),
            factor: p.factor,
            timeout: s(p.timeout).max(Duration::from_secs(60)),
        };
        ImportOptions {
            processing: p(d.processing),
            waiting: p(d.waiting),
            sync_min_interval: s(d.sync_min_interval),
            ..d
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ImportError {
    #[error("{context}: {source}")]
    Graph {
        context: String,
        #[source]
        source: GraphError,
    },
    #[error(
        "The import was cancelled. Nothing is lost: start it again to continue where it stopped."
    )]
    Cancelled,
    #[error(
        "{what} did not finish within {minutes} minutes. Intune can be slow; start the import again later to keep following the same devices (nothing is uploaded twice)."
    )]
    Timeout { what: String, minutes: u64 },
}

fn graph_err(context: &str) -> impl FnOnce(GraphError) -> ImportError + '_ {
    move |source| match source {
        GraphError::Cancelled => ImportError::Cancelled,
        source => ImportError::Graph {
            context: context.to_string(),
            source,
        },
    }
}

/// A plain explanation of an import error code and what to do about it (procedure §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub summary: String,
    pub action: String,
    /// Uploading the same row again later may succeed.
    pub retry_helps: bool,
}

/// Maps `deviceErrorCode` / `deviceErrorName` to a sentence. Names win over numbers, because
/// only some numbers are confirmed (reference §6.4); unknown ones are shown verbatim.
pub fn explain(code: i32, name: &str) -> Explanation {
    let e = |s: &str, a: &str, retry: bool| Explanation {
        summary: s.to_string(),
        action: a.to_string(),
        retry_helps: retry,
    };
    let n = name.to_ascii_lowercase();
    if n == "ztddevicealreadyassigned" || (n.is_empty() && code == 806) {
        e(
            "Already registered to your organisation (806).",
            "Nothing to do: find the serial in Autopilot devices.",
            false,
        )
    } else if n == "ztddeviceassignedtoothertenant"
        || n == "ztddeviceassignedtoanothertenant"
        || (n.is_empty() && code == 808)
    {
        e(
            "Registered to another organisation (808).",
            "Ask the previous owner or the reseller to deregister it, or open a Microsoft support case with proof of ownership and an `MdmDiagnosticsTool.exe -area Autopilot -cab` file.",
            false,
        )
    } else if n == "ztddeviceduplicated" {
        e(
            "The same hardware hash was uploaded twice at once; only one copy was processed.",
            "Nothing to do if the other row was imported; otherwise import this row again.",
            false,
        )
    } else if n == "invalidztdhardwarehash" || (n.is_empty() && code == 802) {
        e(
            "The hardware hash is invalid: it lacks the manufacturer or the serial number (802).",
            "Capture the hash again on the device (Get-WindowsAutopilotInfo); check `wmic baseboard get manufacturer, serialnumber` shows values.",
            false,
        )
    } else if n == "invalidztdrequestbody" || (n.is_empty() && code == 801) {
        e(
            "Intune rejected the request for this device (801).",
            "Check the row's serial number and hash, then import it again.",
            true,
        )
    } else if n == "missingztdserialnumberandproductkey" || (n.is_empty() && code == 803) {
        e(
            "The row has neither a serial number nor a product key (803).",
            "Fill in the Device Serial Number column from the device and import again.",
            false,
        )
    } else if n == "storageerror" || (n.is_empty() && code == 640) {
        e(
            "Intune had a temporary storage problem (640).",
            "Retry the import of this device in a few minutes.",
            true,
        )
    } else {
        let shown = if name.is_empty() {
            format!("error code {code}")
        } else {
            format!("{name} (code {code})")
        };
        e(
            &format!("Intune refused this device: {shown}."),
            "Look the code up in the Autopilot troubleshooting docs, then retry.",
            true,
        )
    }
}

// ---- precheck ------------------------------------------------------------------------------

/// Pages through a collection counting requests.
async fn list_all<T: DeserializeOwned>(
    graph: &GraphClient,
    path: &str,
    counter: &mut u32,
) -> Result<Vec<T>, GraphError> {
    let mut out = Vec::new();
    let mut url = graph.url(ApiVersion::Beta, path);
    loop {
        *counter += 1;
        let page = graph.get_page_url::<T>(&url).await?;
        out.extend(page.value);
        match page.next_link {
            Some(n) => url = n,
            None => return Ok(out),
        }
    }
}

/// Finds what the tenant already has for `rows`: registered devices (by exact serial), leftover
/// import records (followed instead of uploading again), duplicates within the selection, bad
/// Base64 (repaired when possible) and assigned users that do not exist.
pub async fn precheck(
    graph: &GraphClient,
    rows: Vec<ImportRow>,
    opts: &ImportOptions,
) -> Result<ImportJob, ImportError> {
    let mut job = ImportJob::new(rows);
    let mut calls = 0u32;

    // Hash format first: rows that cannot be sent need no lookups.
    let mut seen_hash: HashMap<String, usize> = HashMap::new();
    for i in 0..job.rows.len() {
        let r = &mut job.rows[i];
        // The same rule as the CSV checker (`hwid`), so the page, `check-csv` and the upload
        // agree on what a hash is; rows from the checker arrive already normalised.
        match crate::hwid::normalize_hash(&r.row.hash) {
            Ok(h) => {
                r.hash_fixed = h.value != r.row.hash;
                r.row.hash = h.value;
            }
            Err((code, message)) => {
                r.outcome = RowOutcome::Failed {
                    code: 0,
                    name: code.into(),
                    summary: message,
                    action: "Capture the hash again with Get-WindowsAutopilotInfo -OutputFile."
                        .into(),
                };
                continue;
            }
        }
        if let Some(&first) = seen_hash.get(&r.row.hash) {
            let (of_file, of_line) = (job.rows[first].row.file.clone(), job.rows[first].row.line);
            job.rows[i].outcome = RowOutcome::Duplicate { of_file, of_line };
        } else {
            seen_hash.insert(job.rows[i].row.hash.clone(), i);
        }
    }

    // Registered devices.
    let wanted: Vec<usize> = (0..job.rows.len())
        .filter(|&i| job.rows[i].outcome == RowOutcome::Ready)
        .collect();
    let devices: Vec<AutopilotDevice> = if wanted.len() <= opts.per_serial_lookup_max {
        let mut found = Vec::new();
        for &i in &wanted {
            let serial = job.rows[i].row.serial.trim();
            // Spaces break `contains`; filter on the first token and compare exactly below.
            let token = serial.split_whitespace().next().unwrap_or("");
            if token.is_empty() {
                continue;
            }
            let path = format!(
                "{DEVICES}?$filter=contains(serialNumber,{})&$select={DEVICE_SELECT}",
                odata_string(token)
            );
            found.extend(
                list_all::<AutopilotDevice>(graph, &path, &mut calls)
                    .await
                    .map_err(graph_err("Looking up registered Autopilot devices"))?,
            );
        }
        found
    } else {
        list_all(
            graph,
            &format!("{DEVICES}?$select={DEVICE_SELECT}"),
            &mut calls,
        )
        .await
        .map_err(graph_err("Reading the registered Autopilot devices"))?
    };
    for &i in &wanted {
        if let Some(d) = devices
            .iter()
            .find(|d| d.serial_is(&job.rows[i].row.serial))
        {
            job.rows[i].outcome = RowOutcome::AlreadyRegistered {
                device_id: d.id.clone(),
                group_tag: d.group_tag.clone().unwrap_or_default(),
                profile_status: d.assignment_label().to_string(),
                note: String::new(),
            };
        }
    }

    // Leftover import records of an earlier run: follow them rather than upload again.
    let records: Vec<ImportedDevice> = list_all(
        graph,
        &format!("{IMPORTED}?$select={RECORD_SELECT}"),
        &mut calls,
    )
    .await
    .map_err(graph_err("Reading earlier import records"))?;
    for rec in &records {
        let row = job.rows.iter().position(|r| {
            r.outcome == RowOutcome::Ready
                && r.row
                    .serial
                    .trim()
                    .eq_ignore_ascii_case(rec.serial_number.trim())
        });
        match row {
            Some(i) if rec.state.is_in_progress() => {
                job.rows[i].outcome = RowOutcome::Submitted {
                    record_id: rec.id.clone(),
                };
            }
            Some(i) if rec.state.is_complete() => {
                job.rows[i].outcome = RowOutcome::Imported {
                    record_id: rec.id.clone(),
                    device_id: rec.state.registration_id().unwrap_or_default().to_string(),
                };
                job.records_to_delete.push(rec.id.clone());
            }
            // An old failure: upload again, and clear the stale record.
            Some(_) => job.records_to_delete.push(rec.id.clone()),
            None => {}
        }
    }

    // Assigned users: one lookup per distinct UPN.
    let mut users: HashMap<String, bool> = HashMap::new();
    for r in &job.rows {
        let upn = r.row.assigned_user.trim().to_ascii_lowercase();
        if upn.is_empty() || r.outcome != RowOutcome::Ready || users.contains_key(&upn) {
            continue;
        }
        calls += 1;
        let exists = match graph
            .get_json::<Value>(
                ApiVersion::V1,
                &format!("/users/{}?$select=id,userPrincipalName", encode(&upn)),
            )
            .await
        {
            Ok(_) => true,
            Err(e) if e.is_not_found() => false,
            Err(e) => return Err(graph_err("Checking the assigned users")(e)),
        };
        users.insert(upn, exists);
    }
    for r in &mut job.rows {
        let upn = r.row.assigned_user.trim().to_ascii_lowercase();
        if r.outcome == RowOutcome::Ready && users.get(&upn) == Some(&false) {
            r.outcome = RowOutcome::Failed {
                code: 0,
                name: "UnknownUser".into(),
                summary: format!("The assigned user {} does not exist in this tenant.", r.row.assigned_user),
                action: "Correct the Assigned User column (a wrong user can make the device unusable until it is removed), or clear it.".into(),
            };
        }
    }
    job.stats.precheck += calls;
    Ok(job)
}

/// Changes the group tag of an already registered device (instead of importing it again) and
/// reads it back.
pub async fn update_group_tag(
    graph: &GraphClient,
    device_id: &str,
    group_tag: &str,
) -> Result<AutopilotDevice, ImportError> {
    let body = UpdateDeviceProperties {
        group_tag: Some(group_tag.to_string()),
        ..Default::default()
    };
    graph
        .post_no_content(
            ApiVersion::Beta,
            &format!("{DEVICES}/{}/updateDeviceProperties", encode(device_id)),
            Some(&body),
        )
        .await
        .map_err(graph_err("Changing the group tag"))?;
    let mut last = None;
    // Intune applies the tag within seconds; read back until it shows, for about ten seconds.
    let mut poll = crate::steps::poll::Poller::new(PollPolicy {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(2),
        factor: 1.5,
        timeout: Duration::from_secs(10),
    });
    while !poll.expired() {
        let d: AutopilotDevice = graph
            .get_json(
                ApiVersion::Beta,
                &format!("{DEVICES}/{}", encode(device_id)),
            )
            .await
            .map_err(graph_err("Reading the device back"))?;
        if d.group_tag.as_deref().unwrap_or("") == group_tag {
            return Ok(d);
        }
        last = Some(d);
        poll.sleep(graph.cancel_token())
            .await
            .map_err(|_| ImportError::Cancelled)?;
        poll.back_off();
    }
    let shown = last.and_then(|d| d.group_tag).unwrap_or_default();
    Err(ImportError::Graph {
        context: "Changing the group tag".into(),
        source: GraphError::Decode {
            context: "read-back".into(),
            message: format!(
                "the device still shows group tag \"{shown}\" instead of \"{group_tag}\"; Intune may apply it later, check again in a few minutes"
            ),
        },
    })
}

// ---- run -----------------------------------------------------------------------------------

async fn sleep(d: Duration, cancel: &CancellationToken) -> Result<(), ImportError> {
    tokio::select! {
        _ = cancel.cancelled() => Err(ImportError::Cancelled),
        _ = tokio::time::sleep(d) => Ok(()),
    }
}

/// A wait on Intune's service-side processing ([`crate::steps::poll`]), named for its timeout
/// error.
struct Poller {
    poll: crate::steps::poll::Poller,
    what: &'static str,
}

impl Poller {
    fn new(policy: PollPolicy, what: &'static str) -> Self {
        Poller {
            poll: crate::steps::poll::Poller::new(policy),
            what,
        }
    }

    /// Sleeps until the next poll, or fails once the policy's timeout has passed.
    async fn wait(&self, cancel: &CancellationToken) -> Result<(), ImportError> {
        if self.poll.expired() {
            return Err(ImportError::Timeout {
                what: self.what.into(),
                minutes: self.poll.policy().timeout.as_secs() / 60,
            });
        }
        self.poll
            .sleep(cancel)
            .await
            .map_err(|_| ImportError::Cancelled)
    }

    /// After a poll: a poll that changed nothing makes the next wait longer.
    fn polled(&mut self, changed: bool) {
        if !changed {
            self.poll.back_off();
        }
    }
}

fn progress(job: &ImportJob, obs: &dyn ImportObserver) {
    obs.event(ImportEvent::Counts(job.counts()));
    obs.save(job);
}

fn enter_phase(job: &mut ImportJob, phase: ImportPhase, obs: &dyn ImportObserver) {
    job.phase = phase;
    obs.event(ImportEvent::Phase(phase));
    progress(job, obs);
}

/// Performs (or continues) the import: upload, follow, clean up, sync, wait. Safe to call again
/// with the saved job after a crash, a cancel or a timeout.
pub async fn run(
    graph: &GraphClient,
    job: &mut ImportJob,
    opts: &ImportOptions,
    obs: &dyn ImportObserver,
    cancel: &CancellationToken,
) -> Result<(), ImportError> {
    let graph = graph.clone().with_cancel(cancel.clone());
    if job.started.is_none() {
        job.started = Some(Utc::now());
    }
    loop {
        match job.phase {
            ImportPhase::Prechecked | ImportPhase::Uploading => {
                enter_phase(job, ImportPhase::Uploading, obs);
                upload(&graph, job, opts, obs).await?;
                enter_phase(job, ImportPhase::Processing, obs);
            }
            ImportPhase::Processing => {
                follow_records(&graph, job, opts, obs, cancel).await?;
                enter_phase(job, ImportPhase::Cleanup, obs);
            }
            ImportPhase::Cleanup => {
                cleanup(&graph, job, opts, obs, cancel).await?;
                let waiting = job
                    .rows
                    .iter()
                    .any(|r| matches!(r.outcome, RowOutcome::Imported { .. }))
                    || job.rows.iter().any(|r| is_806(&r.outcome));
                enter_phase(
                    job,
                    if waiting {
                        ImportPhase::Sync
                    } else {
                        ImportPhase::Done
                    },
                    obs,
                );
            }
            ImportPhase::Sync => {
                sync(&graph, job, opts, obs, cancel).await?;
                enter_phase(job, ImportPhase::WaitingForDevices, obs);
            }
            ImportPhase::WaitingForDevices => {
                wait_for_devices(&graph, job, opts, obs, cancel).await?;
                job.finished = Some(Utc::now());
                enter_phase(job, ImportPhase::Done, obs);
            }
            ImportPhase::Done => return Ok(()),
        }
    }
}

fn is_806(o: &RowOutcome) -> bool {
    matches!(o, RowOutcome::Failed { code, name, .. } if *code == 806 || name == "ZtdDeviceAlreadyAssigned")
}

fn failed(code: i32, name: &str) -> RowOutcome {
    let e = explain(code, name);
    RowOutcome::Failed {
        code,
        name: name.to_string(),
        summary: e.summary,
        action: e.action,
    }
}

fn new_device(r: &ImportRow) -> NewImportedDevice {
    NewImportedDevice::new(
        r.serial.trim(),
        r.product_key.trim(),
        r.hash.clone(),
        r.group_tag.trim(),
        r.assigned_user.trim(),
    )
}

async fn upload(
    graph: &GraphClient,
    job: &mut ImportJob,
    opts: &ImportOptions,
    obs: &dyn ImportObserver,
) -> Result<(), ImportError> {
    // Rows not yet in any chunk form new chunks (a retry of failed rows lands here too).
    // Rows of an interrupted (`Sending`) chunk stay there: that chunk looks for its records
    // before uploading anything.
    let in_flight: HashSet<usize> = job
        .chunks
        .iter()
        .filter(|c| c.state == ChunkState::Sending)
        .flat_map(|c| c.rows.iter().copied())
        .collect();
    job.chunks.retain(|c| c.state != ChunkState::NotSent);
    // A retried row may sit in an old, sent chunk; it is uploaded in a new one.
    let pending: Vec<usize> = (0..job.rows.len())
        .filter(|i| job.rows[*i].outcome == RowOutcome::Ready && !in_flight.contains(i))
        .collect();
    for c in &mut job.chunks {
        if matches!(c.state, ChunkState::Sent { .. }) {
            c.rows.retain(|i| !pending.contains(i));
        }
    }
    for part in pending.chunks(opts.chunk_size.max(1)) {
        job.chunks.push(Chunk {
            rows: part.to_vec(),
            state: ChunkState::NotSent,
        });
    }
    obs.save(job);

    for ci in 0..job.chunks.len() {
        match job.chunks[ci].state {
            ChunkState::Sent { .. } => continue,
            ChunkState::Sending => adopt_records(graph, job, ci, obs).await?,
            ChunkState::NotSent => {}
        }
        let to_send: Vec<usize> = job.chunks[ci]
            .rows
            .iter()
            .copied()
            .filter(|&i| job.rows[i].outcome == RowOutcome::Ready)
            .collect();
        if to_send.is_empty() {
            job.chunks[ci].state = ChunkState::Sent {
                import_id: String::new(),
            };
            progress(job, obs);
            continue;
        }
        job.chunks[ci].state = ChunkState::Sending;
        obs.save(job);
        let import_id = post_chunk(graph, job, &to_send, obs).await?;
        job.chunks[ci].state = ChunkState::Sent { import_id };
        progress(job, obs);
    }
    Ok(())
}

/// POSTs one chunk. A 400 for bad Base64 fails the whole request: the offending rows are
/// marked and the rest sent again.
async fn post_chunk(
    graph: &GraphClient,
    job: &mut ImportJob,
    rows: &[usize],
    obs: &dyn ImportObserver,
) -> Result<String, ImportError> {
    let mut rows = rows.to_vec();
    loop {
        let body = ImportRequest {
            imported_windows_autopilot_device_identities: rows
                .iter()
                .map(|&i| new_device(&job.rows[i].row))
                .collect(),
        };
        job.stats.import += 1;
        let result: Result<crate::graph::client::Page<ImportedDevice>, GraphError> = graph
            .post_json(ApiVersion::Beta, &format!("{IMPORTED}/import"), &body)
            .await;
        match result {
            Ok(page) => {
                let mut import_id = String::new();
                for (k, rec) in page.value.iter().enumerate() {
                    // Answers come in request order; the serial check guards against a
                    // service that reorders.
                    let i = rows
                        .iter()
                        .copied()
                        .find(|&i| {
                            job.rows[i].outcome == RowOutcome::Ready
                                && job.rows[i]
                                    .row
                                    .serial
                                    .trim()
                                    .eq_ignore_ascii_case(rec.serial_number.trim())
                        })
                        .or_else(|| rows.get(k).copied());
                    if let Some(i) = i {
                        job.set(
                            i,
                            RowOutcome::Submitted {
                                record_id: rec.id.clone(),
                            },
                            obs,
                        );
                    }
                    import_id = rec.import_id.clone().unwrap_or_default();
                }
                return Ok(import_id);
            }
            Err(e) if e.status() == Some(400) && e.to_string().contains("Edm.Binary") => {
                let (bad, good): (Vec<usize>, Vec<usize>) = rows
                    .iter()
                    .partition(|&&i| STANDARD.decode(job.rows[i].row.hash.as_bytes()).is_err());
                let bad = if bad.is_empty() { rows.clone() } else { bad };
                for &i in &bad {
                    job.set(
                        i,
                        RowOutcome::Failed {
                            code: 400,
                            name: "Edm.Binary".into(),
                            summary: "Intune could not read the hardware hash (not valid padded Base64).".into(),
                            action: "Capture the hash again, or open the CSV in Notepad and check the Hardware Hash column was not cut or changed.".into(),
                        },
                        obs,
                    );
                }
                rows = good.into_iter().filter(|i| !bad.contains(i)).collect();
                if rows.is_empty() {
                    return Ok(String::new());
                }
            }
            Err(e) => return Err(graph_err("Uploading the hardware hashes")(e)),
        }
    }
}

/// After a restart between POST and its answer: finds this chunk's rows among the import records
/// (by serial) so they are followed instead of uploaded again.
async fn adopt_records(
    graph: &GraphClient,
    job: &mut ImportJob,
    ci: usize,
    obs: &dyn ImportObserver,
) -> Result<(), ImportError> {
    let records: Vec<ImportedDevice> = list_all(
        graph,
        &format!("{IMPORTED}?$select={RECORD_SELECT}"),
        &mut job.stats.import,
    )
    .await
    .map_err(graph_err("Looking for uploads of the interrupted run"))?;
    let claimed: HashSet<String> = job
        .rows
        .iter()
        .filter_map(|r| record_id(&r.outcome).map(String::from))
        .collect();
    for i in job.chunks[ci].rows.clone() {
        if job.rows[i].outcome != RowOutcome::Ready {
            continue;
        }
        if let Some(rec) = records.iter().find(|rec| {
            !claimed.contains(&rec.id)
                && rec
                    .serial_number
                    .trim()
                    .eq_ignore_ascii_case(job.rows[i].row.serial.trim())
        }) {
            job.set(
                i,
                RowOutcome::Submitted {
                    record_id: rec.id.clone(),
                },
                obs,
            );
        }
    }
    Ok(())
}

fn record_id(o: &RowOutcome) -> Option<&str> {
    match o {
        RowOutcome::Submitted { record_id } | RowOutcome::Imported { record_id, .. } => {
            Some(record_id)
        }
        _ => None,
    }
}

async fn follow_records(
    graph: &GraphClient,
    job: &mut ImportJob,
    opts: &ImportOptions,
    obs: &dyn ImportObserver,
    cancel: &CancellationToken,
) -> Result<(), ImportError> {
    let mut poll = Poller::new(opts.processing, "Processing of the upload");
    loop {
        let open: Vec<usize> = (0..job.rows.len())
            .filter(|&i| matches!(job.rows[i].outcome, RowOutcome::Submitted { .. }))
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        poll.wait(cancel).await?;
        // One paged read of all import records per poll, never one GET per record.
        let records: Vec<ImportedDevice> = list_all(
            graph,
            &format!("{IMPORTED}?$select={RECORD_SELECT}"),
            &mut job.stats.poll,
        )
        .await
        .map_err(graph_err("Checking the progress of the upload"))?;
        let by_id: HashMap<&str, &ImportedDevice> =
            records.iter().map(|r| (r.id.as_str(), r)).collect();
        let mut changed = false;
        for i in open {
            let RowOutcome::Submitted { record_id } = job.rows[i].outcome.clone() else {
                continue;
            };
            let new = match by_id.get(record_id.as_str()) {
                None => Some(RowOutcome::Failed {
                    code: 0,
                    name: "RecordMissing".into(),
                    summary: "The import record disappeared before it finished (someone may have deleted it in Intune).".into(),
                    action: "Import this device again.".into(),
                }),
                Some(rec) if rec.state.is_complete() => Some(RowOutcome::Imported {
                    record_id: record_id.clone(),
                    device_id: rec.state.registration_id().unwrap_or_default().to_string(),
                }),
                Some(rec) if rec.state.is_error() => Some(failed(
                    rec.state.device_error_code,
                    rec.state.device_error_name.as_deref().unwrap_or(""),
                )),
                Some(_) => None,
            };
            if let Some(o) = new {
                if by_id.contains_key(record_id.as_str()) {
                    job.records_to_delete.push(record_id);
                }
                job.set(i, o, obs);
                changed = true;
            }
        }
        progress(job, obs);
        poll.polled(changed);
    }
}

async fn cleanup(
    graph: &GraphClient,
    job: &mut ImportJob,
    opts: &ImportOptions,
    obs: &dyn ImportObserver,
    cancel: &CancellationToken,
) -> Result<(), ImportError> {
    job.records_to_delete.sort();
    job.records_to_delete.dedup();
    let mut use_batch = opts.batch_delete;
    while !job.records_to_delete.is_empty() {
        let take = if use_batch { 20 } else { 1 };
        let ids: Vec<String> = job.records_to_delete.iter().take(take).cloned().collect();
        let mut done: Vec<String> = Vec::new();
        let mut wait: Option<Duration> = None;
        if use_batch {
            let requests: Vec<Value> = ids
                .iter()
                .enumerate()
                .map(|(n, id)| {
                    json!({"id": (n + 1).to_string(), "method": "DELETE", "url": format!("{IMPORTED}/{}", encode(id))})
                })
                .collect();
            job.stats.cleanup += 1;
            match graph
                .post_json::<_, Value>(ApiVersion::Beta, "/$batch", &json!({"requests": requests}))
                .await
            {
                Ok(v) => {
                    for resp in v
                        .get("responses")
                        .and_then(|r| r.as_array())
                        .cloned()
                        .unwrap_or_default()
                    {
                        let n: usize = resp
                            .get("id")
                            .and_then(|x| x.as_str())
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                        let status = resp.get("status").and_then(|s| s.as_u64()).unwrap_or(0);
                        let Some(id) = n.checked_sub(1).and_then(|k| ids.get(k)) else {
                            continue;
                        };
                        match status {
                            200..=299 | 404 => done.push(id.clone()),
                            429 | 503 | 504 => {
                                let ra = resp
                                    .pointer("/headers/retry-after")
                                    .or_else(|| resp.pointer("/headers/Retry-After"))
                                    .and_then(|v| v.as_str())
                                    .and_then(crate::graph::client::parse_retry_after)
                                    .unwrap_or(Duration::from_secs(2));
                                wait = Some(wait.map_or(ra, |w: Duration| w.max(ra)));
                            }
                            // Anything else inside a batch: try that record on its own.
                            _ => use_batch = false,
                        }
                    }
                }
                Err(GraphError::Cancelled) => return Err(ImportError::Cancelled),
                // No $batch for this endpoint: one by one.
                Err(e) if matches!(e.status(), Some(400 | 404 | 405 | 501)) => use_batch = false,
                Err(e) => return Err(graph_err("Removing the import records")(e)),
            }
        } else {
            let id = &ids[0];
            job.stats.cleanup += 1;
            match graph
                .delete(ApiVersion::Beta, &format!("{IMPORTED}/{}", encode(id)))
                .await
            {
                Ok(_) => done.push(id.clone()),
                Err(e) if e.is_not_found() => done.push(id.clone()),
                Err(e) => return Err(graph_err("Removing the import records")(e)),
            }
        }
        job.records_to_delete.retain(|id| !done.contains(id));
        obs.save(job);
        if let Some(w) = wait {
            sleep(w, cancel).await?;
        }
    }
    Ok(())
}

/// How long until a manual sync is allowed, from the last trigger time Graph reports.
pub fn sync_wait_remaining(
    settings: &AutopilotSettings,
    min_interval: Duration,
    now: DateTime<Utc>,
) -> Duration {
    let Some(last) = settings.last_manual_sync_trigger_date_time else {
        return Duration::ZERO;
    };
    let since = (now - last).to_std().unwrap_or(Duration::ZERO);
    min_interval.saturating_sub(since)
}

/// Reads `windowsAutopilotSettings`.
pub async fn read_sync_settings(graph: &GraphClient) -> Result<AutopilotSettings, ImportError> {
    graph
        .get_json(ApiVersion::Beta, SETTINGS)
        .await
        .map_err(graph_err("Reading the Autopilot sync status"))
}

async fn sync(
    graph: &GraphClient,
    job: &mut ImportJob,
    opts: &ImportOptions,
    obs: &dyn ImportObserver,
    cancel: &CancellationToken,
) -> Result<(), ImportError> {
    job.stats.sync += 1;
    let settings = read_sync_settings(graph).await?;
    loop {
        let remaining = sync_wait_remaining(&settings, opts.sync_min_interval, Utc::now());
        if remaining.is_zero() {
            break;
        }
        obs.event(ImportEvent::SyncCountdown { remaining });
        sleep(remaining.min(Duration::from_secs(1)), cancel).await?;
    }
    obs.event(ImportEvent::SyncCountdown {
        remaining: Duration::ZERO,
    });
    // One attempt only: a 429 here means "a sync is already on its way", not "retry".
    let once = graph.clone().with_retry(RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    });
    job.stats.sync += 1;
    match once
        .post_no_content::<Value>(ApiVersion::Beta, &format!("{SETTINGS}/sync"), None)
        .await
    {
        Ok(_) => job.sync = Some(SyncOutcome::Triggered { at: Utc::now() }),
        Err(e) if matches!(e.status(), Some(429 | 400 | 409)) => {
            let message = "Autopilot is already syncing (or synced moments ago); the new devices will be picked up by that sync.".to_string();
            obs.event(ImportEvent::Note(message.clone()));
            job.sync = Some(SyncOutcome::AlreadySyncing { message });
        }
        Err(e) => return Err(graph_err("Starting the Autopilot sync")(e)),
    }
    obs.save(job);
    Ok(())
}

async fn wait_for_devices(
    graph: &GraphClient,
    job: &mut ImportJob,
    opts: &ImportOptions,
    obs: &dyn ImportObserver,
    cancel: &CancellationToken,
) -> Result<(), ImportError> {
    let mut poll = Poller::new(opts.waiting, "Waiting for the imported devices to appear");
    loop {
        let open: Vec<usize> = (0..job.rows.len())
            .filter(|&i| {
                matches!(job.rows[i].outcome, RowOutcome::Imported { .. })
                    || is_806(&job.rows[i].outcome)
            })
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        poll.wait(cancel).await?;
        let devices: Vec<AutopilotDevice> = list_all(
            graph,
            &format!("{DEVICES}?$select={DEVICE_SELECT}"),
            &mut job.stats.wait,
        )
        .await
        .map_err(graph_err("Reading the registered Autopilot devices"))?;
        let mut changed = false;
        for i in open {
            let serial = job.rows[i].row.serial.clone();
            let new = match job.rows[i].outcome.clone() {
                RowOutcome::Imported { device_id, .. } => devices
                    .iter()
                    .find(|d| (!device_id.is_empty() && d.id == device_id) || d.serial_is(&serial))
                    .map(|d| RowOutcome::Registered {
                        device_id: d.id.clone(),
                    }),
                _ => devices.iter().find(|d| d.serial_is(&serial)).map(|d| {
                    RowOutcome::AlreadyRegistered {
                        device_id: d.id.clone(),
                        group_tag: d.group_tag.clone().unwrap_or_default(),
                        profile_status: d.assignment_label().to_string(),
                        note:
                            "Intune reported it as already registered to your organisation (806)."
                                .into(),
                    }
                }),
            };
            if let Some(o) = new {
                job.set(i, o, obs);
                changed = true;
            }
        }
        progress(job, obs);
        // 806 rows that never show are not something waiting fixes; stop once the imported
        // ones are all here.
        let imported_open = job
            .rows
            .iter()
            .any(|r| matches!(r.outcome, RowOutcome::Imported { .. }));
        if !imported_open {
            return Ok(());
        }
        poll.polled(changed);
    }
}

/// The rows the import step gets from the reader's report, in report order, each with where it
/// came from. Rows of unusable files are not included.
pub fn rows_from_report(
    report: &crate::hwid::CheckReport,
) -> Vec<(ImportRow, crate::hwid::RowStatus, String)> {
    report
        .files
        .iter()
        .filter(|f| !f.has_file_error())
        .flat_map(|f| {
            f.rows.iter().map(move |r| {
                (
                    ImportRow {
                        serial: r.serial.clone(),
                        product_key: r.product_key.clone(),
                        hash: r.hash.clone(),
                        group_tag: r.group_tag.clone(),
                        assigned_user: r.assigned_user.clone(),
                        file: file_name(&f.path),
                        line: r.line as usize,
                    },
                    r.status,
                    r.findings
                        .iter()
                        .find(|x| x.severity == crate::hwid::Severity::Error)
                        .or(r.findings.first())
                        .map(|x| x.message.clone())
                        .unwrap_or_default(),
                )
            })
        })
        .collect()
}

/// The file name of `path` (the whole of it when it has none), as rows name their file.
pub fn file_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_code_is_explained() {
        assert!(
            explain(806, "ZtdDeviceAlreadyAssigned")
                .summary
                .contains("806")
        );
        assert!(
            explain(808, "ZtdDeviceAssignedToOtherTenant")
                .action
                .contains("deregister")
        );
        assert!(explain(0, "ZtdDeviceDuplicated").summary.contains("twice"));
        assert!(explain(802, "").summary.contains("802"));
        assert!(explain(640, "StorageError").retry_helps);
        let unknown = explain(4711, "ZtdSomethingNew");
        assert!(unknown.summary.contains("ZtdSomethingNew (code 4711)"));
    }

    #[test]
    fn sync_window() {
        let s = AutopilotSettings {
            last_manual_sync_trigger_date_time: Some(Utc::now() - chrono::Duration::minutes(4)),
            ..Default::default()
        };
        let r = sync_wait_remaining(&s, Duration::from_secs(600), Utc::now());
        assert!(
            r > Duration::from_secs(355) && r <= Duration::from_secs(360),
            "{r:?}"
        );
        assert_eq!(
            sync_wait_remaining(
                &AutopilotSettings::default(),
                Duration::from_secs(600),
                Utc::now()
            ),
            Duration::ZERO
        );
    }
}
