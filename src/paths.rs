//! Names the whole program shares: the GUI, `run --plan` and the logs find their files by them,
//! and where those files live.
//!
//! Windows keeps machine-bound files (logs, plan state) in `%LOCALAPPDATA%`, which does not roam
//! with the profile; the settings may roam (eframe's `%APPDATA%\autopilot-wizard\data\app.ron`).
//! A portable copy (a file named `portable` beside the exe) keeps all of it beside the exe, so a
//! USB stick does not mix its state with an installed copy's.

use std::path::{Path, PathBuf};

/// The eframe app id: names the persistence file and the data directory of the log files and
/// the plan state files.
pub const APP_ID: &str = "autopilot-wizard";

/// A file of this name beside the exe makes the copy portable.
pub const PORTABLE_MARKER: &str = "portable";

/// How long daily log files are kept.
pub const LOG_KEEP_DAYS: i64 = 14;

/// What the choice of folders depends on, read from the process (or given by a test).
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// The folder of the running exe.
    pub exe_dir: Option<PathBuf>,
    /// `%LOCALAPPDATA%` (Windows only).
    pub local_app_data: Option<PathBuf>,
    /// The platform data directory eframe uses (`~/.local/share/autopilot-wizard` …).
    pub platform_data: Option<PathBuf>,
}

impl Environment {
    pub fn current() -> Self {
        Environment {
            exe_dir: std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf)),
            local_app_data: if cfg!(windows) {
                std::env::var_os("LOCALAPPDATA")
                    .map(PathBuf::from)
                    .filter(|p| p.is_absolute())
            } else {
                None
            },
            platform_data: eframe::storage_dir(APP_ID),
        }
    }

    /// The portable folder (`<exe dir>\data`) when the marker file is beside the exe.
    pub fn portable_dir(&self) -> Option<PathBuf> {
        let exe = self.exe_dir.as_ref()?;
        exe.join(PORTABLE_MARKER)
            .is_file()
            .then(|| exe.join("data"))
    }

    /// Logs and plan state: portable folder, else `%LOCALAPPDATA%\autopilot-wizard`, else the
    /// platform data directory.
    pub fn local_data_dir(&self) -> Option<PathBuf> {
        self.portable_dir()
            .or_else(|| self.local_app_data.as_ref().map(|d| d.join(APP_ID)))
            .or_else(|| self.platform_data.clone())
    }

    /// The settings file eframe keeps, when it is not eframe's own choice (portable only).
    pub fn settings_file(&self) -> Option<PathBuf> {
        self.portable_dir().map(|d| d.join("app.ron"))
    }
}

/// Logs and plan state of this process (see [`Environment::local_data_dir`]).
pub fn local_data_dir() -> Option<PathBuf> {
    Environment::current().local_data_dir()
}

/// Deletes the wizard's daily log files (`autopilot-wizard-YYYY-MM-DD.log`) older than
/// `keep_days` before `today`, by the date in their name. Other files are left alone. Returns
/// what was deleted.
pub fn prune_logs(dir: &Path, today: chrono::NaiveDate, keep_days: i64) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let oldest_kept = today - chrono::Duration::days(keep_days - 1);
    let mut deleted = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(date) = name
            .to_str()
            .and_then(|n| n.strip_prefix("autopilot-wizard-"))
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        else {
            continue;
        };
        if date < oldest_kept && std::fs::remove_file(entry.path()).is_ok() {
            deleted.push(entry.path());
        }
    }
    deleted.sort();
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_marker_wins_then_local_app_data_then_platform() {
        let exe = tempfile::tempdir().unwrap();
        let env = Environment {
            exe_dir: Some(exe.path().to_path_buf()),
            local_app_data: Some(PathBuf::from(r"C:\Users\rowan\AppData\Local")),
            platform_data: Some(PathBuf::from("/home/rowan/.local/share/autopilot-wizard")),
        };
        assert_eq!(
            env.local_data_dir(),
            Some(PathBuf::from(r"C:\Users\rowan\AppData\Local").join(APP_ID))
        );
        assert_eq!(
            env.settings_file(),
            None,
            "installed: settings stay eframe's (roaming)"
        );
        std::fs::write(exe.path().join(PORTABLE_MARKER), "").unwrap();
        assert_eq!(env.local_data_dir(), Some(exe.path().join("data")));
        assert_eq!(
            env.settings_file(),
            Some(exe.path().join("data").join("app.ron"))
        );
        let linux = Environment {
            exe_dir: Some(PathBuf::from("/usr/bin")),
            local_app_data: None,
            ..env
        };
        assert_eq!(
            linux.local_data_dir(),
            Some(PathBuf::from("/home/rowan/.local/share/autopilot-wizard"))
        );
    }

    #[test]
    fn logs_older_than_fourteen_days_are_deleted_by_their_date() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "autopilot-wizard-2026-11-18.log",
            "autopilot-wizard-2026-11-19.log",
            "autopilot-wizard-2026-12-02.log",
            "autopilot-wizard-2025-01-01.log",
            "notes.txt",
            "autopilot-wizard-latest.log",
        ] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let deleted = prune_logs(dir.path(), today, LOG_KEEP_DAYS);
        let names: Vec<String> = deleted
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "autopilot-wizard-2025-01-01.log",
                "autopilot-wizard-2026-11-18.log"
            ]
        );
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "autopilot-wizard-2026-11-19.log",
                "autopilot-wizard-2026-12-02.log",
                "autopilot-wizard-latest.log",
                "notes.txt"
            ]
        );
    }
}
