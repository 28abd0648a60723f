//! Changing one device's group tag, computer name or assigned user: the form and its rules.

use serde::{Deserialize, Serialize};

use super::BoardRow;

/// Changes the user can make to one device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEdit {
    pub group_tag: Option<String>,
    /// Computer name applied at deployment (Entra join only).
    pub display_name: Option<String>,
    /// Assigned user; an empty string removes the assignment.
    pub user_principal_name: Option<String>,
}

impl DeviceEdit {
    pub fn is_empty(&self) -> bool {
        self.group_tag.is_none()
            && self.display_name.is_none()
            && self.user_principal_name.is_none()
    }

    /// Checks the values the service would reject (or would accept and fail at deployment).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(name) = &self.display_name {
            validate_computer_name(name)?;
        }
        if let Some(tag) = &self.group_tag
            && (tag.contains('"') || tag.chars().any(|c| c.is_control()))
        {
            return Err(
                "The group tag cannot contain quotes or control characters (dynamic group rules \
                 quote it)."
                    .into(),
            );
        }
        if let Some(upn) = &self.user_principal_name {
            let upn = upn.trim();
            if !upn.is_empty()
                && (upn.matches('@').count() != 1
                    || upn.starts_with('@')
                    || upn.ends_with('@')
                    || upn.contains(' '))
            {
                return Err(format!(
                    "\"{upn}\" is not a user principal name (name@domain); leave it empty to \
                     remove the assigned user."
                ));
            }
        }
        Ok(())
    }
}

/// A Windows computer name as Autopilot applies it: 1–15 characters, letters, digits and
/// hyphens, not only digits (NetBIOS rules). An empty name clears it.
pub fn validate_computer_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Ok(());
    }
    let len = name.chars().count();
    if len > 15 {
        return Err(format!(
            "The computer name \"{name}\" has {len} characters; Windows allows at most 15."
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "The computer name cannot contain \"{bad}\"; use letters, digits and hyphens."
        ));
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err("The computer name cannot be only digits.".into());
    }
    Ok(())
}

/// The edit form of one device: what the person typed, and what the device had, so only changed
/// fields are sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditForm {
    pub device_id: String,
    pub serial: String,
    pub group_tag: String,
    pub display_name: String,
    pub user: String,
    original: (String, String, String),
    /// The service's answer to the last Save, in words.
    pub error: Option<String>,
}

impl EditForm {
    pub fn from_row(r: &BoardRow) -> Self {
        EditForm {
            device_id: r.id.clone(),
            serial: r.serial.clone(),
            group_tag: r.group_tag.clone(),
            display_name: r.display_name.clone(),
            user: r.user_principal_name.clone(),
            original: (
                r.group_tag.clone(),
                r.display_name.clone(),
                r.user_principal_name.clone(),
            ),
            error: None,
        }
    }

    /// Only the fields that differ from the device, trimmed.
    pub fn edit(&self) -> DeviceEdit {
        let changed = |now: &str, was: &str| (now.trim() != was).then(|| now.trim().to_string());
        DeviceEdit {
            group_tag: changed(&self.group_tag, &self.original.0),
            display_name: changed(&self.display_name, &self.original.1),
            user_principal_name: changed(&self.user, &self.original.2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computer_names_follow_windows_rules() {
        assert!(validate_computer_name("HQ-LAPTOP-01").is_ok());
        assert!(validate_computer_name("").is_ok());
        assert!(validate_computer_name("THIS-NAME-IS-TOO-LONG").is_err());
        assert!(validate_computer_name("PC 1").is_err());
        assert!(validate_computer_name("12345").is_err());
        let e = DeviceEdit {
            user_principal_name: Some("anna".into()),
            ..DeviceEdit::default()
        };
        assert!(e.validate().is_err());
    }
}
