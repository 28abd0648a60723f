//! Why a device is not ready yet, and the one thing to do about it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{BoardRow, Chip, GroupMembership, GroupSnapshot, MemberState, Target, words};

/// The one thing to do about a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FixAction {
    /// Nothing: the device is ready.
    None,
    /// Wait for the service; refreshing shows progress.
    Wait,
    /// Ask Autopilot to sync.
    SyncNow,
    /// Add the device to the static group.
    AddToGroup,
    /// Set the device's group tag so the dynamic rule picks it up.
    SetGroupTag(String),
    /// Something outside this wizard (hardware, the other profile's assignment).
    Manual,
}

impl FixAction {
    pub fn label(&self) -> String {
        match self {
            FixAction::None => "Nothing to do".into(),
            FixAction::Wait => "Wait and refresh".into(),
            FixAction::SyncNow => "Sync now".into(),
            FixAction::AddToGroup => "Add to group".into(),
            FixAction::SetGroupTag(t) => format!("Set group tag to {t}"),
            FixAction::Manual => "See the explanation".into(),
        }
    }
}

/// Why a device is (not yet) assigned, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub reason: String,
    pub what_to_do: String,
    pub action: FixAction,
}

/// [`diagnose`] for a device that may lie outside what the wizard works on: fixes that would pull
/// a device into the group (a new group tag, adding it) are offered only for devices of the
/// import (`in_scope`); the tenant's other devices keep their reason but get no such button.
pub fn diagnose_in(
    target: &Target,
    group: &GroupSnapshot,
    row: &BoardRow,
    in_scope: bool,
) -> Diagnosis {
    let d = diagnose(target, group, row);
    match d.action {
        FixAction::SetGroupTag(_) | FixAction::AddToGroup if !in_scope => Diagnosis {
            what_to_do: "Nothing here: this device is not part of the wizard's import, so \
                         the wizard leaves its group tag and memberships alone."
                .into(),
            action: FixAction::None,
            ..d
        },
        _ => d,
    }
}

/// The per-device explanation. Order matters: the first blocking cause is the one to fix.
pub fn diagnose(target: &Target, group: &GroupSnapshot, row: &BoardRow) -> Diagnosis {
    let d = |reason: String, what: String, action: FixAction| Diagnosis {
        reason,
        what_to_do: what,
        action,
    };
    let other_profile = row
        .profile_id
        .as_deref()
        .or(row.intended_profile_id.as_deref())
        .filter(|p| !p.eq_ignore_ascii_case(&target.profile_id));
    if row.is_ready(&target.profile_id) {
        return d(
            format!(
                "Assigned \"{}\" on {}.",
                target.profile_name,
                fmt_date(row.assigned_at)
            ),
            "Nothing: this device is ready to deploy.".into(),
            FixAction::None,
        );
    }
    if row.chip == Chip::Failed {
        let detail = row.detailed_status.as_str();
        let why = match detail {
            "hardwareRequirementsNotMet" => {
                "The hardware does not meet the requirements of this profile (for example TPM 2.0 \
                 attestation or the device type)."
            }
            "holoLensProfileNotSupported"
            | "surfaceHubProfileNotSupported"
            | "surfaceHub2SProfileNotSupported" => {
                "This device type cannot use a Windows PC user-driven profile."
            }
            _ => "The Autopilot service could not assign the profile.",
        };
        return d(
            format!("{why} ({}.)", words::detailed_status(detail)),
            "Use a different device for this profile, or remove this one from the group. \
             Re-importing will not help."
                .into(),
            FixAction::Manual,
        );
    }
    if row.remediation_state == "manualRemediationRequired" {
        return d(
            "Autopilot reports that this device needs manual remediation (its hardware hash \
             changed, for example after a motherboard replacement)."
                .into(),
            "Capture the hardware hash again and re-import the device.".into(),
            FixAction::Manual,
        );
    }
    if let Some(other) = other_profile {
        let name = row
            .profile_name
            .clone()
            .filter(|_| row.profile_id.as_deref() == Some(other))
            .or_else(|| row.intended_profile_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| other.to_string());
        return d(
            format!(
                "Another profile wins: \"{name}\" also targets this device and is older than \"{}\" \
                 (when several profiles apply, the oldest one wins).",
                target.profile_name
            ),
            format!(
                "Remove the device from the group that \"{name}\" is assigned to, or remove that \
                 assignment, then wait for the service."
            ),
            FixAction::Manual,
        );
    }
    match row.membership {
        MemberState::NoEntraObject => {
            return d(
                "Entra has not created this device's object yet; it appears after the import \
                 finished and Intune synced."
                    .into(),
                "Run a sync, then wait a few minutes.".into(),
                FixAction::SyncNow,
            );
        }
        MemberState::NotMember => {
            return match &target.membership {
                GroupMembership::Static => d(
                    format!("The device is not a member of \"{}\".", target.group_name),
                    "Add it to the group.".into(),
                    FixAction::AddToGroup,
                ),
                GroupMembership::Dynamic { .. } => {
                    let processing = group.processing.as_deref().unwrap_or("unknown");
                    match target.rule_group_tag() {
                        Some(tag) if !row.group_tag.eq_ignore_ascii_case(&tag) => d(
                            if row.group_tag.trim().is_empty() {
                                format!(
                                    "Not a member: the group's rule selects group tag \"{tag}\", \
                                     the device has no group tag."
                                )
                            } else {
                                format!(
                                    "Not a member: the group's rule selects group tag \"{tag}\", \
                                     the device has \"{}\".",
                                    row.group_tag
                                )
                            },
                            format!("Set the device's group tag to \"{tag}\"."),
                            FixAction::SetGroupTag(tag),
                        ),
                        _ if processing == "Failed" => d(
                            "Entra could not process the group's membership rule.".into(),
                            "Check the rule on the Device group step.".into(),
                            FixAction::Manual,
                        ),
                        _ => d(
                            format!(
                                "Membership pending: Entra has not added the device to the \
                                 dynamic group yet (rule processing: {}).",
                                words::rule_processing(processing)
                            ),
                            "Wait: Entra evaluates dynamic groups on its own schedule, usually \
                             within minutes."
                                .into(),
                            FixAction::Wait,
                        ),
                    }
                }
            };
        }
        MemberState::Member => {}
    }
    match row.chip {
        Chip::OutOfSync => d(
            "The profile is assigned but the device has not picked it up yet (out of sync).".into(),
            "Run a sync.".into(),
            FixAction::SyncNow,
        ),
        Chip::Assigned => d(
            format!(
                "Status is \"{}\" but {}.",
                words::assignment_status(&row.status_raw),
                if row.assigned_at.is_none() {
                    "no date assigned is set yet"
                } else {
                    "the assigned profile is not known yet"
                }
            ),
            "Wait and refresh.".into(),
            FixAction::Wait,
        ),
        Chip::Pending => d(
            "The Autopilot service is assigning the profile (pending).".into(),
            "Wait: assignment takes minutes to hours and has no guaranteed time.".into(),
            FixAction::Wait,
        ),
        _ => d(
            "The device is in the group but the service has not started the assignment yet.".into(),
            "Wait; if nothing moves for an hour, run a sync.".into(),
            FixAction::Wait,
        ),
    }
}

fn fmt_date(d: Option<DateTime<Utc>>) -> String {
    d.map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::GroupMembership;
    use crate::board::fixtures::{row, target};

    #[test]
    fn reasons_name_the_blocking_cause() {
        let dynamic = target(GroupMembership::Dynamic {
            rule: r#"(device.devicePhysicalIds -any (_ -eq "[OrderID]:SALES"))"#.into(),
        });
        let group = GroupSnapshot::default();
        let mut r = row("A1", "notAssigned");
        r.membership = MemberState::NotMember;
        let d = diagnose(&dynamic, &group, &r);
        assert_eq!(d.action, FixAction::SetGroupTag("SALES".into()));
        r.group_tag = "sales".into();
        assert_eq!(diagnose(&dynamic, &group, &r).action, FixAction::Wait);
        assert!(
            diagnose(&dynamic, &group, &r)
                .reason
                .contains("Membership pending")
        );
        let stat = target(GroupMembership::Static);
        assert_eq!(diagnose(&stat, &group, &r).action, FixAction::AddToGroup);

        let mut other = row("B1", "assignedInSync");
        other.profile_id = Some("old".into());
        other.profile_name = Some("Old profile".into());
        other.assigned_at = Some(Utc::now());
        let d = diagnose(&stat, &group, &other);
        assert!(d.reason.contains("Another profile wins"), "{}", d.reason);
        assert!(d.reason.contains("Old profile"));

        let mut ok = other.clone();
        ok.profile_id = Some("p".into());
        assert_eq!(diagnose(&stat, &group, &ok).action, FixAction::None);

        let mut hw = row("C1", "failed");
        hw.detailed_status = "hardwareRequirementsNotMet".into();
        assert!(diagnose(&stat, &group, &hw).reason.contains("hardware"));
    }
}
