//! Which rows the board shows, in which order.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{Board, Chip};

/// Columns the board sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SortKey {
    #[default]
    Serial,
    Manufacturer,
    Model,
    GroupTag,
    Membership,
    Profile,
    Status,
    AssignedAt,
    Enrollment,
    LastContact,
    Deployment,
}

/// What the board shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BoardQuery {
    /// Case-insensitive substring of the serial number.
    pub search: String,
    /// Only rows with this chip.
    pub chip: Option<Chip>,
    pub sort: SortKey,
    pub descending: bool,
    /// Show every device in the tenant, not only the devices imported in step 5.
    #[serde(default)]
    pub all_devices: bool,
}

impl Board {
    /// Indices of the rows to show, filtered and sorted.
    pub fn view(&self, q: &BoardQuery) -> Vec<usize> {
        self.view_in(q, None)
    }

    /// [`Board::view`] over the devices whose serial (upper-case) is in `scope`, or over every
    /// device when `None`.
    pub fn view_in(&self, q: &BoardQuery, scope: Option<&HashSet<String>>) -> Vec<usize> {
        let needle = q.search.trim().to_lowercase();
        let mut idx: Vec<usize> = self
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                scope.is_none_or(|s| s.contains(&r.serial.trim().to_ascii_uppercase()))
            })
            .filter(|(_, r)| q.chip.is_none_or(|c| r.chip == c))
            .filter(|(_, r)| needle.is_empty() || r.serial.to_lowercase().contains(&needle))
            .map(|(i, _)| i)
            .collect();
        let rows = &self.rows;
        idx.sort_by(|&a, &b| {
            let (x, y) = (&rows[a], &rows[b]);
            let ord = match q.sort {
                SortKey::Serial => x.serial.cmp(&y.serial),
                SortKey::Manufacturer => x.manufacturer.cmp(&y.manufacturer),
                SortKey::Model => x.model.cmp(&y.model),
                SortKey::GroupTag => x.group_tag.cmp(&y.group_tag),
                SortKey::Membership => x.membership.cmp(&y.membership),
                SortKey::Profile => x.profile_name.cmp(&y.profile_name),
                SortKey::Status => x.chip.cmp(&y.chip).then(x.status_raw.cmp(&y.status_raw)),
                SortKey::AssignedAt => x.assigned_at.cmp(&y.assigned_at),
                SortKey::Enrollment => x.enrollment_state.cmp(&y.enrollment_state),
                SortKey::LastContact => x.last_contact.cmp(&y.last_contact),
                SortKey::Deployment => x
                    .deployment_phase()
                    .cmp(&y.deployment_phase())
                    .then_with(|| x.deployment_words().cmp(&y.deployment_words())),
            }
            .then_with(|| x.serial.cmp(&y.serial));
            if q.descending { ord.reverse() } else { ord }
        });
        idx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::fixtures::{row, target};
    use crate::board::{Chip, GroupMembership, GroupSnapshot};
    use chrono::Utc;

    #[test]
    fn view_filters_searches_and_sorts() {
        let board = Board {
            target: target(GroupMembership::Static),
            rows: vec![
                row("ZZ9", "pending"),
                row("AB1", "failed"),
                row("AB2", "pending"),
            ],
            group: GroupSnapshot::default(),
            loaded_at: Utc::now(),
        };
        let q = BoardQuery::default();
        let serials = |v: Vec<usize>| {
            v.iter()
                .map(|&i| board.rows[i].serial.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(serials(board.view(&q)), ["AB1", "AB2", "ZZ9"]);
        let q = BoardQuery {
            chip: Some(Chip::Pending),
            descending: true,
            ..BoardQuery::default()
        };
        assert_eq!(serials(board.view(&q)), ["ZZ9", "AB2"]);
        let q = BoardQuery {
            search: "ab".into(),
            ..BoardQuery::default()
        };
        assert_eq!(serials(board.view(&q)), ["AB1", "AB2"]);
        let s = board.summary();
        assert_eq!((s.total, s.pending, s.failed), (3, 2, 1));
    }
}
