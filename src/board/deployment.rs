//! One device's way through the out-of-box experience, as the board shows it: plain data that
//! [`crate::steps::deployment`] fills from Intune's Autopilot deployment report (reference §11).

use serde::{Deserialize, Serialize};

/// Where a device is in OOBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DeploymentPhase {
    /// No deployment reported for the device.
    NotStarted,
    /// Switched on, enrolling (before the Enrollment Status Page's device setup).
    Enrolling,
    DeviceSetup,
    AccountSetup,
    Succeeded,
    Failed,
}

impl DeploymentPhase {
    pub fn label(self) -> &'static str {
        match self {
            DeploymentPhase::NotStarted => "Not started",
            DeploymentPhase::Enrolling => "In progress: enrolling",
            DeploymentPhase::DeviceSetup => "In progress: device setup",
            DeploymentPhase::AccountSetup => "In progress: account setup",
            DeploymentPhase::Succeeded => "Succeeded",
            DeploymentPhase::Failed => "Failed",
        }
    }

    pub fn in_progress(self) -> bool {
        matches!(
            self,
            DeploymentPhase::Enrolling
                | DeploymentPhase::DeviceSetup
                | DeploymentPhase::AccountSetup
        )
    }

    /// Succeeded or failed: nothing more will happen until the device is reset.
    pub fn finished(self) -> bool {
        matches!(self, DeploymentPhase::Succeeded | DeploymentPhase::Failed)
    }
}

/// What held the deployment up: an app or a policy the Enrollment Status Page waited for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailingItem {
    pub name: String,
    /// `application`, `appModel`, `configurationPolicy` or `unknown` (`policyType`).
    pub kind_raw: String,
    /// `complianceStatus` as reported.
    pub status_raw: String,
    pub error_code: i64,
}

impl FailingItem {
    /// "the app Contoso Timesheets (error 0x87D1041C)".
    pub fn words(&self) -> String {
        let kind = match self.kind_raw.as_str() {
            "application" | "appModel" => "the app",
            "configurationPolicy" => "the policy",
            _ => "the item",
        };
        if self.error_code == 0 {
            format!("{kind} \"{}\"", self.name)
        } else {
            format!(
                "{kind} \"{}\" (error 0x{:08X})",
                self.name, self.error_code as i32 as u32
            )
        }
    }
}

/// One device's latest deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub serial: String,
    pub phase: DeploymentPhase,
    /// `deploymentState`, `deviceSetupStatus`, `accountSetupStatus` as Graph sent them.
    pub state_raw: String,
    pub device_setup_raw: String,
    pub account_setup_raw: String,
    /// Seconds, from the ISO 8601 durations (`None`: not reported or not readable).
    pub device_setup_secs: Option<u64>,
    pub account_setup_secs: Option<u64>,
    pub total_secs: Option<u64>,
    pub started: Option<chrono::DateTime<chrono::Utc>>,
    pub ended: Option<chrono::DateTime<chrono::Utc>>,
    pub user: String,
    pub device_name: String,
    pub profile_name: String,
    pub esp_name: String,
    /// The app or policy that failed, when the report names one.
    pub failing: Option<FailingItem>,
    /// `enrollmentFailureDetails`.
    pub failure_details: String,
}

/// "1 h 5 min", "7 min", "40 s".
pub fn duration_words(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

impl Deployment {
    /// The board's cell: "Succeeded in 20 min", "Failed: Contoso Timesheets", "In progress:
    /// device setup".
    pub fn words(&self) -> String {
        match self.phase {
            DeploymentPhase::Succeeded => match self.total_secs {
                Some(t) => format!("Succeeded in {}", duration_words(t)),
                None => "Succeeded".into(),
            },
            // The cell is narrow: the app's name; the details say which kind and the error.
            DeploymentPhase::Failed => match &self.failing {
                Some(f) => format!("Failed: {}", f.name),
                None => "Failed".into(),
            },
            p => p.label().into(),
        }
    }

    /// What happened, in words, with what to do: the failure line of the details and the report.
    pub fn explanation(&self) -> String {
        let esp = if self.esp_name.is_empty() {
            "the Enrollment Status Page".to_string()
        } else {
            format!("the Enrollment Status Page \"{}\"", self.esp_name)
        };
        match self.phase {
            DeploymentPhase::Failed => {
                let phase = match self.account_setup_raw.as_str() {
                    "failure" => "account setup",
                    _ if self.device_setup_raw == "failure" => "device setup",
                    _ => "setup",
                };
                let what = match &self.failing {
                    Some(f) => format!("{} did not install", f.words()),
                    None if !self.failure_details.is_empty() => self.failure_details.clone(),
                    None => "the report names no app or policy".into(),
                };
                format!(
                    "{} stopped at {phase}: {what}. Fix it in Intune (the app's detection rule or \
                     its install for this device), then reset the PC and start again; {esp} \
                     waits for it.",
                    self.serial_or_name(),
                    phase = phase,
                )
            }
            DeploymentPhase::Succeeded => format!(
                "{} reached the desktop{}.",
                self.serial_or_name(),
                self.total_secs
                    .map(|t| format!(" after {}", duration_words(t)))
                    .unwrap_or_default()
            ),
            p if p.in_progress() => format!(
                "{} is in {} ({esp}).",
                self.serial_or_name(),
                match p {
                    DeploymentPhase::DeviceSetup => "device setup",
                    DeploymentPhase::AccountSetup => "account setup",
                    _ => "enrollment",
                }
            ),
            _ => format!("{} has not been switched on.", self.serial_or_name()),
        }
    }

    fn serial_or_name(&self) -> String {
        if self.device_name.is_empty() {
            self.serial.clone()
        } else {
            format!("{} ({})", self.serial, self.device_name)
        }
    }

    /// The details panel's timeline: one line per phase reached.
    pub fn timeline(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(s) = self.started {
            out.push(format!(
                "{}  Switched on{}",
                s.format("%Y-%m-%d %H:%M"),
                if self.user.is_empty() {
                    String::new()
                } else {
                    format!(", {} signs in", self.user)
                }
            ));
        }
        let step = |name: &str, raw: &str, secs: Option<u64>| -> Option<String> {
            let state = match raw {
                "success" | "successWithTimeout" | "successOnRetry" => "done",
                "inProgress" => "running",
                "failure" => "failed",
                _ => return None,
            };
            Some(format!(
                "{name}: {state}{}",
                secs.filter(|s| *s > 0)
                    .map(|s| format!(" ({})", duration_words(s)))
                    .unwrap_or_default()
            ))
        };
        out.extend(step(
            "Device setup",
            &self.device_setup_raw,
            self.device_setup_secs,
        ));
        out.extend(step(
            "Account setup",
            &self.account_setup_raw,
            self.account_setup_secs,
        ));
        match self.phase {
            DeploymentPhase::Succeeded | DeploymentPhase::Failed => {
                let end = self
                    .ended
                    .map(|e| format!("{}  ", e.format("%Y-%m-%d %H:%M")))
                    .unwrap_or_default();
                out.push(format!("{end}{}", self.words()));
            }
            _ => {}
        }
        out
    }
}

/// What the deployment report cannot tell (Microsoft's own limits, reference §11).
pub const REPORT_LIMITS: &str = "Intune's deployment report does not update after a retry on the \
     device and may miss deployments that take more than an hour: check such a device on the PC.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_app_in_words() {
        let f = FailingItem {
            name: "Contoso Timesheets".into(),
            kind_raw: "application".into(),
            status_raw: "error".into(),
            error_code: -2016345060,
        };
        assert_eq!(
            f.words(),
            "the app \"Contoso Timesheets\" (error 0x87D1041C)"
        );
        assert_eq!(duration_words(3900), "1 h 5 min");
        assert_eq!(duration_words(40), "40 s");
    }
}
