//! Autopilot device identities, hardware-hash import records and `windowsAutopilotSettings`
//! (reference §6, §7). Read models accept every v1.0 and beta property; enums stay strings
//! because the service adds members (and keeps misspelled ones, `assignedUnkownSyncState`), and
//! a new value must never make a whole page of devices unreadable.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// Dates Graph sends that do not parse (or the `0001-01-01` "never" value) read as `None`
/// instead of failing the whole response.
fn lenient_datetime<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(raw
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| t.timestamp() > 0))
}

/// Strings Graph may send as `null`.
fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `id` + `displayName` of an expanded `deploymentProfile` / `intendedDeploymentProfile`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProfileRef {
    #[serde(deserialize_with = "null_as_default")]
    pub id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub display_name: String,
}

/// `windowsAutopilotDeviceIdentity`: a registered Autopilot device (v1.0 and beta properties;
/// the beta-only ones are `None` when read through v1.0).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AutopilotDevice {
    /// The ZTD device id (not the Entra device id).
    #[serde(deserialize_with = "null_as_default")]
    pub id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub serial_number: String,
    pub product_key: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub sku_number: Option<String>,
    pub system_family: Option<String>,
    pub group_tag: Option<String>,
    pub purchase_order_identifier: Option<String>,
    /// `unknown, enrolled, pendingReset, failed, notContacted, blocked`.
    pub enrollment_state: Option<String>,
    #[serde(deserialize_with = "lenient_datetime")]
    pub last_contacted_date_time: Option<DateTime<Utc>>,
    pub addressable_user_name: Option<String>,
    pub user_principal_name: Option<String>,
    pub resource_name: Option<String>,
    pub display_name: Option<String>,
    /// Entra `device.deviceId`; "to be deprecated" in beta in favour of `azureAdDeviceId`.
    pub azure_active_directory_device_id: Option<String>,
    /// Beta only.
    pub azure_ad_device_id: Option<String>,
    pub managed_device_id: Option<String>,
    /// Beta only: `unknown, assignedInSync, assignedOutOfSync, assignedUnkownSyncState,
    /// notAssigned, pending, failed`.
    pub deployment_profile_assignment_status: Option<String>,
    /// Beta only: `none, hardwareRequirementsNotMet, surfaceHubProfileNotSupported, …`.
    pub deployment_profile_assignment_detailed_status: Option<String>,
    #[serde(deserialize_with = "lenient_datetime")]
    pub deployment_profile_assigned_date_time: Option<DateTime<Utc>>,
    /// Beta only, Surface Hub only.
    pub device_account_upn: Option<String>,
    /// Beta only, Surface Hub only. Never logged: Debug of this struct is only used in tests.
    #[serde(skip_serializing)]
    pub device_account_password: Option<String>,
    pub device_friendly_name: Option<String>,
    /// Beta only: `unknown, noRemediationRequired, automaticRemediationRequired,
    /// manualRemediationRequired, unknownFutureValue`.
    pub remediation_state: Option<String>,
    #[serde(deserialize_with = "lenient_datetime")]
    pub remediation_state_last_modified_date_time: Option<DateTime<Utc>>,
    /// Beta only: `unknown, allowed, blocked, unknownFutureValue`.
    pub userless_enrollment_status: Option<String>,
    /// Beta, only with `$expand=deploymentProfile`.
    pub deployment_profile: Option<ProfileRef>,
    /// Beta, only with `$expand=intendedDeploymentProfile`.
    pub intended_deployment_profile: Option<ProfileRef>,
}

impl AutopilotDevice {
    /// The Entra device id under whichever name the service used.
    pub fn entra_device_id(&self) -> Option<&str> {
        self.azure_ad_device_id
            .as_deref()
            .or(self.azure_active_directory_device_id.as_deref())
            .filter(|s| !s.is_empty() && *s != "00000000-0000-0000-0000-000000000000")
    }

    fn status(&self) -> &str {
        self.deployment_profile_assignment_status
            .as_deref()
            .unwrap_or("unknown")
    }

    /// `assignedInSync`, `assignedOutOfSync` or `assignedUnkownSyncState`: a profile is assigned.
    pub fn is_assigned(&self) -> bool {
        self.status().starts_with("assigned")
    }

    /// The service is still working on the assignment.
    pub fn is_assignment_pending(&self) -> bool {
        self.status() == "pending"
    }

    pub fn is_assignment_failed(&self) -> bool {
        self.status() == "failed"
    }

    pub fn is_not_assigned(&self) -> bool {
        self.status() == "notAssigned"
    }

    /// Assigned, but the device has not picked the profile up yet.
    pub fn is_out_of_sync(&self) -> bool {
        self.status() == "assignedOutOfSync"
    }

    /// The detailed status names a reason (hardware requirements, wrong device type).
    pub fn assignment_problem(&self) -> Option<&str> {
        self.deployment_profile_assignment_detailed_status
            .as_deref()
            .filter(|s| !s.is_empty() && *s != "none")
    }

    pub fn is_enrolled(&self) -> bool {
        self.enrollment_state.as_deref() == Some("enrolled")
    }

    pub fn needs_manual_remediation(&self) -> bool {
        self.remediation_state.as_deref() == Some("manualRemediationRequired")
    }

    /// The profile the device got (expanded), else the one it is meant to get.
    pub fn profile_id(&self) -> Option<&str> {
        self.deployment_profile
            .as_ref()
            .or(self.intended_deployment_profile.as_ref())
            .map(|p| p.id.as_str())
            .filter(|s| !s.is_empty())
    }

    /// A plain sentence for the profile status column.
    pub fn assignment_label(&self) -> &'static str {
        match self.status() {
            "assignedInSync" => "Profile assigned",
            "assignedOutOfSync" => "Profile assigned, device not updated yet",
            "assignedUnkownSyncState" | "assignedUnknownSyncState" => "Profile assigned",
            "notAssigned" => "No profile assigned",
            "pending" => "Assigning profile",
            "failed" => "Profile assignment failed",
            _ => "Profile status unknown",
        }
    }

    /// Exact serial match (the list filter is a `contains`, reference §7).
    pub fn serial_is(&self, serial: &str) -> bool {
        self.serial_number
            .trim()
            .eq_ignore_ascii_case(serial.trim())
    }
}

/// `importedWindowsAutopilotDeviceIdentityState`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ImportState {
    /// `unknown, pending, partial, complete, error`.
    #[serde(deserialize_with = "null_as_default")]
    pub device_import_status: String,
    /// On success, the id of the new `windowsAutopilotDeviceIdentity`.
    pub device_registration_id: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub device_error_code: i32,
    pub device_error_name: Option<String>,
}

impl ImportState {
    /// `unknown` and `pending` both mean "still processing" (reference §6.3), as does an empty
    /// status.
    pub fn is_in_progress(&self) -> bool {
        matches!(
            self.device_import_status.as_str(),
            "" | "unknown" | "pending" | "partial"
        )
    }

    pub fn is_complete(&self) -> bool {
        self.device_import_status == "complete" && self.device_error_code == 0
    }

    pub fn is_error(&self) -> bool {
        self.device_import_status == "error"
            || (self.device_import_status == "complete" && self.device_error_code != 0)
    }

    pub fn registration_id(&self) -> Option<&str> {
        self.device_registration_id
            .as_deref()
            .filter(|s| !s.is_empty())
    }
}

/// `importedWindowsAutopilotDeviceIdentity`: one row of a hardware-hash upload as read back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ImportedDevice {
    #[serde(deserialize_with = "null_as_default")]
    pub id: String,
    pub import_id: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub serial_number: String,
    pub product_key: Option<String>,
    pub group_tag: Option<String>,
    pub assigned_user_principal_name: Option<String>,
    /// Base64; large (4 KB), so list reads should `$select` it away.
    pub hardware_identifier: Option<String>,
    pub state: ImportState,
}

/// The body of one row for a create or the `import` action.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewImportedDevice {
    #[serde(rename = "@odata.type")]
    pub odata_type: &'static str,
    pub serial_number: String,
    pub product_key: String,
    /// Padded Base64, sent as it is (the CSV column is already Base64).
    pub hardware_identifier: String,
    pub group_tag: String,
    pub assigned_user_principal_name: String,
}

impl NewImportedDevice {
    pub const ODATA_TYPE: &'static str = "#microsoft.graph.importedWindowsAutopilotDeviceIdentity";

    pub fn new(
        serial_number: impl Into<String>,
        product_key: impl Into<String>,
        hardware_identifier: impl Into<String>,
        group_tag: impl Into<String>,
        assigned_user_principal_name: impl Into<String>,
    ) -> Self {
        NewImportedDevice {
            odata_type: Self::ODATA_TYPE,
            serial_number: serial_number.into(),
            product_key: product_key.into(),
            hardware_identifier: hardware_identifier.into(),
            group_tag: group_tag.into(),
            assigned_user_principal_name: assigned_user_principal_name.into(),
        }
    }
}

/// Body of `POST …/importedWindowsAutopilotDeviceIdentities/import`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportRequest {
    pub imported_windows_autopilot_device_identities: Vec<NewImportedDevice>,
}

/// Body of `POST …/windowsAutopilotDeviceIdentities/{id}/updateDeviceProperties`: only the
/// fields that change are sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateDeviceProperties {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_principal_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addressable_user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// `windowsAutopilotSettings` (beta).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AutopilotSettings {
    pub id: String,
    pub last_sync_date_time: Option<DateTime<Utc>>,
    pub last_manual_sync_trigger_date_time: Option<DateTime<Utc>>,
    /// `unknown, inProgress, completed, failed`.
    pub sync_status: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct SettingsWire {
    #[serde(deserialize_with = "null_as_default")]
    id: String,
    #[serde(deserialize_with = "lenient_datetime")]
    last_sync_date_time: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient_datetime")]
    last_manual_sync_trigger_date_time: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "null_as_default")]
    sync_status: String,
}

impl<'de> Deserialize<'de> for AutopilotSettings {
    /// The documented example wraps the object in `"value": {…}` (reference §6.5); both read.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut v = serde_json::Value::deserialize(d)?;
        if let Some(inner) = v.get_mut("value").filter(|x| x.is_object()) {
            v = inner.take();
        }
        let w: SettingsWire = serde_json::from_value(v).map_err(serde::de::Error::custom)?;
        Ok(AutopilotSettings {
            id: w.id,
            last_sync_date_time: w.last_sync_date_time,
            last_manual_sync_trigger_date_time: w.last_manual_sync_trigger_date_time,
            sync_status: w.sync_status,
        })
    }
}

impl AutopilotSettings {
    pub fn is_syncing(&self) -> bool {
        self.sync_status == "inProgress"
    }

    pub fn last_sync_failed(&self) -> bool {
        self.sync_status == "failed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn beta_device_reads_every_field() {
        let d: AutopilotDevice = serde_json::from_value(json!({
            "id": "ztd-1", "serialNumber": "PF1", "groupTag": "HQ",
            "deploymentProfileAssignmentStatus": "assignedUnkownSyncState",
            "deploymentProfileAssignmentDetailedStatus": "none",
            "deploymentProfileAssignedDateTime": "2024-05-01T10:00:00.1234567Z",
            "lastContactedDateTime": "0001-01-01T00:00:00Z",
            "azureActiveDirectoryDeviceId": "aad-1", "azureAdDeviceId": null,
            "remediationState": "noRemediationRequired", "enrollmentState": "notContacted",
            "deploymentProfile": {"id": "p1", "displayName": "User-driven"},
            "somethingNew": 5
        }))
        .unwrap();
        assert!(d.is_assigned());
        assert_eq!(d.assignment_problem(), None);
        assert!(d.deployment_profile_assigned_date_time.is_some());
        assert_eq!(d.last_contacted_date_time, None);
        assert_eq!(d.entra_device_id(), Some("aad-1"));
        assert_eq!(d.profile_id(), Some("p1"));
        assert!(d.serial_is(" pf1 "));
    }

    #[test]
    fn settings_accept_value_wrapper() {
        let a: AutopilotSettings =
            serde_json::from_value(json!({"value": {"id": "s", "syncStatus": "inProgress"}}))
                .unwrap();
        let b: AutopilotSettings =
            serde_json::from_value(json!({"id": "s", "syncStatus": "inProgress"})).unwrap();
        assert_eq!(a, b);
        assert!(a.is_syncing());
    }

    #[test]
    fn import_state_phases() {
        let s: ImportState = serde_json::from_value(
            json!({"deviceImportStatus": "unknown", "deviceErrorCode": null}),
        )
        .unwrap();
        assert!(s.is_in_progress());
        let s: ImportState = serde_json::from_value(
            json!({"deviceImportStatus": "error", "deviceErrorCode": 806, "deviceErrorName": "ZtdDeviceAlreadyAssigned"}),
        )
        .unwrap();
        assert!(s.is_error() && !s.is_complete());
    }
}
