//! Graph's enum values on the board in words. The page shows the words and keeps the raw value
//! for a tooltip or the log; values not listed here (a future enum member) are shown as they
//! came, never hidden. Members from the beta `windowsAutopilotDeviceIdentity` schema (reference
//! §6, "windowsAutopilotDeviceIdentities" property table).

/// `deploymentProfileAssignmentStatus`.
pub fn assignment_status(raw: &str) -> &str {
    match raw {
        "unknown" => "Unknown",
        "assignedInSync" => "Assigned, in sync",
        "assignedOutOfSync" => "Assigned, out of sync",
        // Graph's own spelling; the corrected one is accepted in case the service fixes it.
        "assignedUnkownSyncState" | "assignedUnknownSyncState" => "Assigned, sync not known yet",
        "notAssigned" => "Not assigned",
        "pending" => "Assigning (pending)",
        "failed" => "Failed",
        other => other,
    }
}

/// `deploymentProfileAssignmentDetailedStatus`.
pub fn detailed_status(raw: &str) -> &str {
    match raw {
        "none" | "" => "No details",
        "hardwareRequirementsNotMet" => "Hardware requirements not met",
        "surfaceHubProfileNotSupported" => "Surface Hub profile not supported",
        "holoLensProfileNotSupported" => "HoloLens profile not supported",
        "windowsPcProfileNotSupported" => "Windows PC profile not supported",
        "surfaceHub2SProfileNotSupported" => "Surface Hub 2S profile not supported",
        "unknownFutureValue" => "Unknown",
        other => other,
    }
}

/// `enrollmentState`.
pub fn enrollment_state(raw: &str) -> &str {
    match raw {
        "unknown" | "" => "Unknown",
        "enrolled" => "Enrolled",
        "pendingReset" => "Waiting for reset",
        "failed" => "Enrollment failed",
        "notContacted" => "Not contacted yet",
        "blocked" => "Blocked",
        other => other,
    }
}

/// `remediationState`.
pub fn remediation_state(raw: &str) -> &str {
    match raw {
        "unknown" | "" => "Unknown",
        "noRemediationRequired" => "Nothing to repair",
        "automaticRemediationRequired" => "Repairs itself",
        "manualRemediationRequired" => "Needs a new hardware hash",
        "unknownFutureValue" => "Unknown",
        other => other,
    }
}

/// Beta `membershipRuleProcessingStatus.status` of a dynamic group (reference §4.1).
pub fn rule_processing(raw: &str) -> &str {
    match raw {
        "NotStarted" => "not started yet",
        "Running" => "running",
        "Failed" => "failed",
        "Succeeded" => "finished",
        "UnsupportedFutureValue" | "unknown" | "" => "not known",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every member the reference lists has words of its own (no raw camelCase reaches the page).
    #[test]
    fn every_listed_member_has_words() {
        let camel = |s: &str| s.chars().skip(1).any(|c| c.is_ascii_uppercase()) && !s.contains(' ');
        for raw in [
            "unknown",
            "assignedInSync",
            "assignedOutOfSync",
            "assignedUnkownSyncState",
            "notAssigned",
            "pending",
            "failed",
        ] {
            assert!(!camel(assignment_status(raw)), "{raw}");
        }
        for raw in [
            "none",
            "hardwareRequirementsNotMet",
            "surfaceHubProfileNotSupported",
            "holoLensProfileNotSupported",
            "windowsPcProfileNotSupported",
            "surfaceHub2SProfileNotSupported",
            "unknownFutureValue",
        ] {
            assert!(!camel(detailed_status(raw)), "{raw}");
        }
        for raw in [
            "unknown",
            "enrolled",
            "pendingReset",
            "failed",
            "notContacted",
            "blocked",
        ] {
            assert!(!camel(enrollment_state(raw)), "{raw}");
        }
        for raw in [
            "unknown",
            "noRemediationRequired",
            "automaticRemediationRequired",
            "manualRemediationRequired",
            "unknownFutureValue",
        ] {
            assert!(!camel(remediation_state(raw)), "{raw}");
        }
        assert_eq!(assignment_status("assignedInSync"), "Assigned, in sync");
        assert_eq!(enrollment_state("notContacted"), "Not contacted yet");
        assert_eq!(assignment_status("somethingNew"), "somethingNew");
    }
}
