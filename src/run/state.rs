//! The state of one plan between runs: the same [`Outcomes`] the GUI persists (ids, names, the
//! import job; never a token), in `<data dir>/plans/<name>-<hash>.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::plan::Plan;
use crate::steps::Outcomes;
use crate::steps::import::ImportRow;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlanState {
    /// The plan file this state belongs to (for people looking at the folder).
    pub plan_file: String,
    /// Which devices the saved import job is about (see [`rows_fingerprint`]).
    pub csv_fingerprint: Option<String>,
    pub outcomes: Outcomes,
}

/// The default folder of the state files.
pub fn default_dir() -> Option<PathBuf> {
    crate::paths::local_data_dir().map(|d| d.join("plans"))
}

/// Where earlier versions kept the state files by default (eframe's data directory, which
/// roams on Windows).
pub fn legacy_dir() -> Option<PathBuf> {
    eframe::storage_dir(crate::paths::APP_ID).map(|d| d.join("plans"))
}

/// Moves the state files an earlier version left in `legacy` into `dir`, so an interrupted run
/// resumes after the update instead of starting again (and uploading nothing twice because of
/// a lost state). A file `dir` already has wins; what cannot be moved stays where it is and is
/// logged. Returns the files moved.
pub fn adopt_legacy(legacy: &Path, dir: &Path) -> Vec<PathBuf> {
    if legacy == dir {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(legacy) else {
        return Vec::new();
    };
    let mut moved = Vec::new();
    for e in entries.flatten() {
        let from = e.path();
        if !from.is_file() {
            continue;
        }
        let to = dir.join(e.file_name());
        if to.exists() {
            continue;
        }
        let r = std::fs::create_dir_all(dir).and_then(|()| {
            std::fs::rename(&from, &to).or_else(|_| {
                // Another volume: copy, then remove the old one.
                std::fs::copy(&from, &to)?;
                std::fs::remove_file(&from)
            })
        });
        match r {
            Ok(()) => moved.push(to),
            Err(e) => {
                tracing::warn!(from = %from.display(), error = %e, "an earlier plan state file was not moved")
            }
        }
    }
    if !moved.is_empty() {
        tracing::info!(count = moved.len(), from = %legacy.display(), to = %dir.display(), "plan state of an earlier version moved");
    }
    moved
}

/// One file per plan file and Graph root: the same plan against another tenant keeps its own.
pub fn path_for(dir: &Path, plan: &Plan, graph_url: &str) -> PathBuf {
    let canonical = std::fs::canonicalize(&plan.path).unwrap_or_else(|_| plan.path.clone());
    let mut h = Sha256::new();
    h.update(canonical.to_string_lossy().as_bytes());
    h.update(b"\n");
    h.update(plan.tenant.id.to_ascii_lowercase().as_bytes());
    h.update(b"\n");
    h.update(graph_url.as_bytes());
    let hash: String = h
        .finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    let name: String = plan
        .name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    dir.join(format!("{name}-{hash}.json"))
}

/// The serials and hashes of the rows, order-independent.
pub fn rows_fingerprint(rows: &[ImportRow]) -> String {
    let mut keys: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}\u{1f}{}\u{1f}{}",
                r.serial.trim().to_ascii_uppercase(),
                r.group_tag,
                r.assigned_user
            )
        })
        .collect();
    keys.sort();
    let mut h = Sha256::new();
    for k in keys {
        h.update(k.as_bytes());
        h.update(b"\n");
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads the state; `None` when there is none yet.
pub fn load(path: &Path) -> Result<Option<PlanState>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes the state through a temporary file and a rename, so a run killed mid-write leaves
/// the previous state intact instead of half a file.
pub fn save(path: &Path, state: &PlanState) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let body = serde_json::to_vec(state).map_err(std::io::Error::other)?;
    // One temporary file per save: two saves of the same state that overlap (progress saved
    // from the import while the run saves too) must not rename each other's file away.
    static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("json.{}.{n}.tmp", std::process::id()));
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, path)
}

/// The OS lock on one plan's state, held for the whole run: a second run of the same plan
/// (an overlapping scheduled task) stops before it reads the state or sends anything, and says
/// who holds it. The lock goes with the process, however it ends (also `kill -9`).
pub struct PlanLock {
    _file: std::fs::File,
}

impl PlanLock {
    /// The lock file next to the state file.
    pub fn path_for(state_path: &Path) -> PathBuf {
        state_path.with_extension("lock")
    }

    pub fn acquire(state_path: &Path) -> Result<PlanLock, super::StepError> {
        use std::io::Write as _;
        let path = Self::path_for(state_path);
        let cannot = |e: std::io::Error| {
            super::StepError::input(format!(
                "The lock file {} of this plan cannot be created: {e}. Give a folder you can write with --state-dir.",
                path.display()
            ))
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(cannot)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(cannot)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                // On Windows the holder's lock also keeps others from reading the file.
                let holder = std::fs::read_to_string(&path)
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| "another process".into());
                return Err(super::StepError::new(
                    super::Exit::Busy,
                    format!(
                        "This plan is already running ({holder}; lock {}). Wait for that run to end, or stop it, then run the plan again.",
                        path.display()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(cannot(e)),
        }
        // Who holds it, for the run that is refused.
        let _ = file.set_len(0);
        let _ = write!(
            file,
            "process {} started {}",
            std::process::id(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let _ = file.flush();
        Ok(PlanLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn state_files_of_an_earlier_version_move_to_the_new_folder() {
        let old = tempfile::tempdir().unwrap();
        let new = tempfile::tempdir().unwrap();
        let new_dir = new.path().join("plans");
        std::fs::write(old.path().join("a.json"), "old a").unwrap();
        std::fs::write(old.path().join("b.json"), "old b").unwrap();
        std::fs::create_dir_all(&new_dir).unwrap();
        std::fs::write(new_dir.join("b.json"), "new b").unwrap();
        let moved = super::adopt_legacy(old.path(), &new_dir);
        assert_eq!(moved, vec![new_dir.join("a.json")]);
        assert_eq!(
            std::fs::read_to_string(new_dir.join("a.json")).unwrap(),
            "old a"
        );
        assert_eq!(
            std::fs::read_to_string(new_dir.join("b.json")).unwrap(),
            "new b",
            "the newer file wins"
        );
        assert!(!old.path().join("a.json").exists());
        assert!(super::adopt_legacy(&new_dir, &new_dir).is_empty());
    }
}
