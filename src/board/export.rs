//! The board as a CSV file: what is shown, in the order shown, with the reason per device.

use super::{Board, BoardRow};

/// Why the CSV could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("Could not write the CSV file: {0}")]
    Csv(#[from] csv::Error),
    #[error("Could not write the CSV file: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes the rows (in the given order) as CSV with a header line.
pub fn export_csv<'a, W: std::io::Write>(
    board: &'a Board,
    rows: impl IntoIterator<Item = &'a BoardRow>,
    out: W,
) -> Result<(), ExportError> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "Serial number",
        "Manufacturer",
        "Model",
        "Group tag",
        "Computer name",
        "Assigned user",
        "Group membership",
        "Assigned profile",
        "Status",
        "Raw status",
        "Detailed status",
        "Raw detailed status",
        "Date assigned",
        "Enrollment state",
        "Raw enrollment state",
        "Last contact",
        "Deployment",
        "Raw deployment state",
        "Why / what to do",
    ])?;
    for r in rows {
        let diag = board.diagnose(r);
        w.write_record([
            r.serial.as_str(),
            &r.manufacturer,
            &r.model,
            &r.group_tag,
            &r.display_name,
            &r.user_principal_name,
            r.membership.label(),
            r.profile_name.as_deref().unwrap_or(""),
            r.chip.label(),
            &r.status_raw,
            super::words::detailed_status(&r.detailed_status),
            &r.detailed_status,
            &r.assigned_at.map(|d| d.to_rfc3339()).unwrap_or_default(),
            super::words::enrollment_state(&r.enrollment_state),
            &r.enrollment_state,
            &r.last_contact.map(|d| d.to_rfc3339()).unwrap_or_default(),
            &r.deployment_words(),
            r.deployment.as_ref().map_or("", |d| d.state_raw.as_str()),
            &format!("{} {}", diag.reason, diag.what_to_do),
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::fixtures::{row, target};
    use crate::board::{GroupMembership, GroupSnapshot};
    use chrono::Utc;

    #[test]
    fn csv_has_header_and_quotes() {
        let mut r = row("S,1", "pending");
        r.model = "Model \"X\"".into();
        let board = Board {
            target: target(GroupMembership::Static),
            rows: vec![r],
            group: GroupSnapshot::default(),
            loaded_at: Utc::now(),
        };
        let mut out = Vec::new();
        export_csv(&board, board.rows.iter(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("Serial number,"));
        assert!(text.contains("\"S,1\""));
        assert!(text.contains("\"Model \"\"X\"\"\""));
    }
}
