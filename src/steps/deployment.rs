//! Following each device through the out-of-box experience: Intune's Autopilot deployment
//! report (`GET /beta/deviceManagement/autopilotEvents`, reference §11) reduced to one latest
//! deployment per serial number, in words for the board, the validation report and `run --plan`.
//!
//! Field names and enum members are those of Microsoft's beta documentation of
//! `deviceManagementAutopilotEvent` and `deviceManagementAutopilotPolicyStatusDetail`
//! (learn.microsoft.com/graph/api/resources/intune-troubleshooting-devicemanagementautopilotevent).
//! `policyStatusDetails` is a relationship: it is read per failed deployment
//! (`…/autopilotEvents/{id}/policyStatusDetails`), the documented list, rather than relying on
//! `$expand`. The report has known limits ([`REPORT_LIMITS`]).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::board::{Deployment, DeploymentPhase, FailingItem};
use crate::graph::{ApiVersion, GraphClient, GraphError};
use crate::steps::registry::{BoxFuture, Permission};
use crate::steps::validate::{CheckId, CheckItem, ValidateInputs, Verdict};

pub use crate::board::deployment::REPORT_LIMITS;

/// Reading the deployment report (the list page names the Configuration permissions too).
pub const EVENTS_READ: Permission = Permission::new(
    "DeviceManagementManagedDevices.Read.All",
    &[
        "DeviceManagementManagedDevices.ReadWrite.All",
        "DeviceManagementConfiguration.Read.All",
        "DeviceManagementConfiguration.ReadWrite.All",
    ],
);

/// The validation report's "Deployments" items, one per device that went through OOBE.
pub const CHECK_DEPLOYMENT: CheckId =
    CheckId::new("Deployment", "Deployments: the device got through OOBE");

const EVENTS: &str = "/deviceManagement/autopilotEvents";

#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error(
        "Your account may not read Intune's deployment report. The app needs DeviceManagementManagedDevices.Read.All consented, and your account an Intune role that reads devices. ({0})"
    )]
    Forbidden(Box<GraphError>),
    #[error("Could not read Intune's deployment report: {0}")]
    Graph(Box<GraphError>),
    #[error("The simulated tenant did not switch devices on: {0}")]
    Simulator(String),
}

impl DeploymentError {
    /// Worth trying again later (network, throttling).
    pub fn transient(&self) -> bool {
        matches!(
            self,
            DeploymentError::Graph(e) if matches!(**e, GraphError::GaveUp { .. } | GraphError::Network { .. })
        )
    }

    pub fn is_auth(&self) -> bool {
        matches!(self, DeploymentError::Forbidden(_))
            || matches!(self, DeploymentError::Graph(e) if matches!(**e, GraphError::Auth(_)))
    }
}

fn graph_err(e: GraphError) -> DeploymentError {
    match &e {
        GraphError::Service { status: 403, .. } => DeploymentError::Forbidden(Box::new(e)),
        _ => DeploymentError::Graph(Box::new(e)),
    }
}

/// `deviceManagementAutopilotEvent`, the properties this step reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AutopilotEvent {
    pub id: String,
    pub device_serial_number: Option<String>,
    pub event_date_time: Option<DateTime<Utc>>,
    pub enrollment_start_date_time: Option<DateTime<Utc>>,
    pub deployment_start_date_time: Option<DateTime<Utc>>,
    pub deployment_end_date_time: Option<DateTime<Utc>>,
    pub deployment_state: Option<String>,
    pub device_setup_status: Option<String>,
    pub account_setup_status: Option<String>,
    pub deployment_duration: Option<String>,
    pub device_setup_duration: Option<String>,
    pub account_setup_duration: Option<String>,
    pub user_principal_name: Option<String>,
    pub managed_device_name: Option<String>,
    pub windows_autopilot_deployment_profile_display_name: Option<String>,
    pub windows10_enrollment_completion_page_configuration_display_name: Option<String>,
    pub enrollment_failure_details: Option<String>,
    pub policy_status_details: Option<Vec<PolicyStatusDetail>>,
}

/// `deviceManagementAutopilotPolicyStatusDetail`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PolicyStatusDetail {
    pub display_name: Option<String>,
    pub policy_type: Option<String>,
    pub compliance_status: Option<String>,
    pub tracked_on_enrollment_status: Option<bool>,
    pub error_code: Option<i64>,
}

/// An `Edm.Duration` (`P1DT2H3M4.5S`); `None` for a negative or unreadable one (the
/// documentation's own example has negative durations).
pub fn parse_iso_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let rest = s.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut secs = 0.0f64;
    let mut num = String::new();
    for c in days.chars() {
        match c {
            '0'..='9' | '.' => num.push(c),
            'D' => {
                secs += num.parse::<f64>().ok()? * 86400.0;
                num.clear();
            }
            'W' => {
                secs += num.parse::<f64>().ok()? * 7.0 * 86400.0;
                num.clear();
            }
            _ => return None,
        }
    }
    if !num.is_empty() {
        return None;
    }
    for c in time.chars() {
        match c {
            '0'..='9' | '.' => num.push(c),
            'H' | 'M' | 'S' => {
                let v = num.parse::<f64>().ok()?;
                secs += v * match c {
                    'H' => 3600.0,
                    'M' => 60.0,
                    _ => 1.0,
                };
                num.clear();
            }
            _ => return None,
        }
    }
    if !num.is_empty() || (days.is_empty() && time.is_empty()) {
        return None;
    }
    Some(Duration::from_secs_f64(secs))
}

fn phase_of(e: &AutopilotEvent) -> DeploymentPhase {
    let state = e.deployment_state.as_deref().unwrap_or("");
    let device = e.device_setup_status.as_deref().unwrap_or("");
    let account = e.account_setup_status.as_deref().unwrap_or("");
    match state {
        "success" | "successWithTimeout" | "successOnRetry" => DeploymentPhase::Succeeded,
        "failure" => DeploymentPhase::Failed,
        "inProgress" if account == "inProgress" => DeploymentPhase::AccountSetup,
        "inProgress" if device == "inProgress" => DeploymentPhase::DeviceSetup,
        "inProgress" if device == "success" => DeploymentPhase::AccountSetup,
        "inProgress" => DeploymentPhase::Enrolling,
        // `unknown`, `notAttempted`, `disabled`: nothing the board can follow.
        _ if account == "failure" || device == "failure" => DeploymentPhase::Failed,
        _ => DeploymentPhase::NotStarted,
    }
}

fn secs(d: &Option<String>) -> Option<u64> {
    d.as_deref()
        .and_then(parse_iso_duration)
        .map(|d| d.as_secs())
}

/// A Graph `deploymentEndDateTime` of `0001-01-01` means "not yet".
fn real_time(t: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    t.filter(|t| chrono::Datelike::year(t) > 1)
}

/// One event in plain data (the failing item from its `policyStatusDetails`, if read).
pub fn deployment_of(e: &AutopilotEvent) -> Deployment {
    let failing = e.policy_status_details.as_ref().and_then(|d| {
        d.iter()
            .find(|p| {
                matches!(
                    p.compliance_status.as_deref(),
                    Some("error") | Some("notCompliant")
                ) || p.error_code.unwrap_or(0) != 0
            })
            .map(|p| FailingItem {
                name: p.display_name.clone().unwrap_or_default(),
                kind_raw: p.policy_type.clone().unwrap_or_else(|| "unknown".into()),
                status_raw: p.compliance_status.clone().unwrap_or_default(),
                error_code: p.error_code.unwrap_or(0),
            })
    });
    Deployment {
        serial: e.device_serial_number.clone().unwrap_or_default(),
        phase: phase_of(e),
        state_raw: e.deployment_state.clone().unwrap_or_default(),
        device_setup_raw: e.device_setup_status.clone().unwrap_or_default(),
        account_setup_raw: e.account_setup_status.clone().unwrap_or_default(),
        device_setup_secs: secs(&e.device_setup_duration),
        account_setup_secs: secs(&e.account_setup_duration),
        total_secs: secs(&e.deployment_duration),
        started: real_time(
            e.deployment_start_date_time
                .or(e.enrollment_start_date_time),
        ),
        ended: real_time(e.deployment_end_date_time),
        user: e.user_principal_name.clone().unwrap_or_default(),
        device_name: e.managed_device_name.clone().unwrap_or_default(),
        profile_name: e
            .windows_autopilot_deployment_profile_display_name
            .clone()
            .unwrap_or_default(),
        esp_name: e
            .windows10_enrollment_completion_page_configuration_display_name
            .clone()
            .unwrap_or_default(),
        failing,
        failure_details: e.enrollment_failure_details.clone().unwrap_or_default(),
    }
}

fn started_key(e: &AutopilotEvent) -> Option<DateTime<Utc>> {
    real_time(e.deployment_start_date_time)
        .or(real_time(e.enrollment_start_date_time))
        .or(e.event_date_time)
}

/// The latest event per serial number (upper-case), in plain data: a device reset and deployed
/// again shows its last deployment.
pub fn reduce(events: &[AutopilotEvent]) -> BTreeMap<String, Deployment> {
    let mut latest: BTreeMap<String, &AutopilotEvent> = BTreeMap::new();
    for e in events {
        let Some(serial) = e
            .device_serial_number
            .as_deref()
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        match latest.get(&serial) {
            Some(old) if started_key(old) >= started_key(e) => {}
            _ => {
                latest.insert(serial, e);
            }
        }
    }
    latest
        .into_iter()
        .map(|(s, e)| (s, deployment_of(e)))
        .collect()
}

/// Reads every page of the report and reduces it; the failed deployments' app and policy
/// statuses are read too, so a failure names what failed.
pub async fn read(graph: &GraphClient) -> Result<BTreeMap<String, Deployment>, DeploymentError> {
    let mut events: Vec<AutopilotEvent> = graph
        .get_all(ApiVersion::Beta, EVENTS)
        .await
        .map_err(graph_err)?;
    // Only the events that will be shown need their details.
    let latest_failed: HashSet<String> = {
        let mut by_serial: BTreeMap<String, &AutopilotEvent> = BTreeMap::new();
        for e in &events {
            let Some(s) = e.device_serial_number.as_deref() else {
                continue;
            };
            let s = s.trim().to_ascii_uppercase();
            if by_serial
                .get(&s)
                .is_none_or(|o| started_key(o) < started_key(e))
            {
                by_serial.insert(s, e);
            }
        }
        by_serial
            .values()
            .filter(|e| phase_of(e) == DeploymentPhase::Failed)
            .map(|e| e.id.clone())
            .collect()
    };
    for e in events.iter_mut().filter(|e| latest_failed.contains(&e.id)) {
        let path = format!(
            "{EVENTS}/{}/policyStatusDetails",
            crate::graph::client::encode(&e.id)
        );
        e.policy_status_details = Some(
            graph
                .get_all(ApiVersion::Beta, &path)
                .await
                .map_err(graph_err)?,
        );
    }
    Ok(reduce(&events))
}

/// Counts of deployments, for summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub succeeded: usize,
    pub failed: usize,
    pub in_progress: usize,
    pub not_started: usize,
}

/// The counts over `serials` (every deployment reported, when empty).
pub fn counts(by_serial: &BTreeMap<String, Deployment>, serials: &[String]) -> Counts {
    let mut c = Counts::default();
    let phases: Vec<DeploymentPhase> = if serials.is_empty() {
        by_serial.values().map(|d| d.phase).collect()
    } else {
        serials
            .iter()
            .map(|s| {
                by_serial
                    .get(&s.trim().to_ascii_uppercase())
                    .map_or(DeploymentPhase::NotStarted, |d| d.phase)
            })
            .collect()
    };
    for p in phases {
        match p {
            DeploymentPhase::Succeeded => c.succeeded += 1,
            DeploymentPhase::Failed => c.failed += 1,
            DeploymentPhase::NotStarted => c.not_started += 1,
            _ => c.in_progress += 1,
        }
    }
    c
}

/// The simulated tenant switches `serials` on, or (none given) the next `count` devices that
/// have a profile (the demo button). Not a Graph call: the simulator's own control route beside
/// its Graph root.
pub async fn switch_on_simulated(
    graph: &GraphClient,
    serials: &[String],
    count: usize,
) -> Result<Vec<String>, DeploymentError> {
    let url = format!("{}/_sim/oobe/switch-on", graph.base());
    let resp = graph
        .http()
        .post(&url)
        .json(&serde_json::json!({ "count": count, "serials": serials }))
        .send()
        .await
        .map_err(|e| DeploymentError::Simulator(e.to_string()))?;
    let ok = resp.status().is_success();
    let body: serde_json::Value = resp
        .json()
        .await
        .map_err(|e| DeploymentError::Simulator(e.to_string()))?;
    if !ok {
        return Err(DeploymentError::Simulator(
            body["error"].as_str().unwrap_or("refused").to_string(),
        ));
    }
    Ok(body["switchedOn"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// The validation report's "Deployments" section: one item per device of the plan (or any
/// device, with no import) that went through OOBE; none before any did. A failed deployment
/// fails its item; one still running passes with what it is doing (nothing has gone wrong).
pub fn items_of(by_serial: &BTreeMap<String, Deployment>, serials: &[String]) -> Vec<CheckItem> {
    let wanted: HashSet<String> = serials
        .iter()
        .map(|s| s.trim().to_ascii_uppercase())
        .collect();
    by_serial
        .iter()
        .filter(|(s, _)| wanted.is_empty() || wanted.contains(*s))
        .filter(|(_, d)| d.phase != DeploymentPhase::NotStarted)
        .map(|(_, d)| {
            let verdict = if d.phase == DeploymentPhase::Failed {
                Verdict::Fail
            } else {
                Verdict::Pass
            };
            let mut evidence = vec![d.explanation()];
            evidence.extend(d.timeline());
            evidence.push(format!(
                "deploymentState: {}, deviceSetupStatus: {}, accountSetupStatus: {}",
                d.state_raw, d.device_setup_raw, d.account_setup_raw
            ));
            if !d.esp_name.is_empty() {
                evidence.push(format!("Enrollment Status Page: {}", d.esp_name));
            }
            evidence.push(REPORT_LIMITS.to_string());
            let fix = (verdict == Verdict::Fail).then(|| match &d.failing {
                Some(f) => format!(
                    "Fix {} in Intune (Apps > Windows: its detection rule and install command), \
                     then reset {} and deploy it again.",
                    f.words(),
                    d.serial
                ),
                None => format!(
                    "Open the device {} in Intune (Devices > Monitor > Autopilot deployments) for \
                     the failure, fix it, then reset the PC and deploy it again.",
                    d.serial
                ),
            });
            let mut item = CheckItem::new(CHECK_DEPLOYMENT, verdict, evidence, fix);
            item.title = format!("Deployment of {}: {}", d.serial, d.words());
            item
        })
        .collect()
}

/// The validation step's items (registered with the assignment step, whose board shows them).
/// A report that cannot be read is one "could not check" item only once devices were
/// deployed; without any the section is left out, so a tenant without Intune reports still
/// validates.
pub fn validate_items<'a>(
    graph: &'a GraphClient,
    inputs: &'a ValidateInputs,
) -> BoxFuture<'a, Vec<CheckItem>> {
    Box::pin(async move {
        match read(graph).await {
            Ok(by_serial) => items_of(&by_serial, &inputs.expected_serials),
            Err(e) => {
                tracing::warn!(error = %e, "deployment report not read for the validation");
                Vec::new()
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_durations() {
        assert_eq!(
            parse_iso_duration("PT3M21.5549443S").map(|d| d.as_secs()),
            Some(201)
        );
        assert_eq!(
            parse_iso_duration("P1DT1H").map(|d| d.as_secs()),
            Some(90000)
        );
        assert_eq!(parse_iso_duration("PT0S"), Some(Duration::ZERO));
        assert_eq!(parse_iso_duration("-PT2M57.2190107S"), None);
        assert_eq!(parse_iso_duration("PT"), None);
        assert_eq!(parse_iso_duration("P"), None);
        assert_eq!(parse_iso_duration("PT5X"), None);
        assert_eq!(parse_iso_duration("3M"), None);
    }

    fn ev(serial: &str, start: &str, state: &str) -> AutopilotEvent {
        AutopilotEvent {
            id: format!("{serial}-{start}"),
            device_serial_number: Some(serial.into()),
            deployment_start_date_time: Some(start.parse().unwrap()),
            deployment_state: Some(state.into()),
            device_setup_status: Some("success".into()),
            account_setup_status: Some(if state == "failure" { "failure" } else { state }.into()),
            ..AutopilotEvent::default()
        }
    }

    #[test]
    fn the_latest_deployment_of_each_serial_counts() {
        let events = vec![
            ev("a1", "2026-12-01T10:00:00Z", "failure"),
            ev("A1", "2026-12-02T10:00:00Z", "success"),
            ev("B2", "2026-12-02T10:00:00Z", "inProgress"),
            ev("B2", "2026-12-01T10:00:00Z", "success"),
        ];
        let r = reduce(&events);
        assert_eq!(r["A1"].phase, DeploymentPhase::Succeeded);
        assert_eq!(r["B2"].phase, DeploymentPhase::AccountSetup);
        let c = counts(&r, &["a1".into(), "b2".into(), "c3".into()]);
        assert_eq!(
            (c.succeeded, c.in_progress, c.not_started, c.failed),
            (1, 1, 1, 0)
        );
    }
}
