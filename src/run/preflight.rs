//! The checks of a plan run that need no tenant: the state folder can be written, and every
//! report path is a file the run may write (not an input, not another plan's, not a folder, in
//! a folder that takes files). They run before the first request, so a run they refuse has
//! sent nothing.

use std::path::{Path, PathBuf};

use crate::plan::Plan;

/// Creates the state folder and writes (and removes) a probe file in it.
pub fn state_dir(dir: &Path) -> Result<(), String> {
    probe(dir).map_err(|e| {
        format!(
            "The state folder {} cannot be written: {e}. A run keeps its progress there to continue after an interruption; give a folder you can write with --state-dir.",
            dir.display()
        )
    })
}

fn probe(dir: &Path) -> std::io::Result<()> {
    // Plans of one call probe the same folder at the same time: one name each, or one plan
    // removes the other's probe and reports a writable folder as unwritable.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::fs::create_dir_all(dir)?;
    let p = dir.join(format!(".write-probe-{}-{n}", std::process::id()));
    std::fs::write(&p, b"probe")?;
    std::fs::remove_file(&p)
}

/// The same file however it is written (`./a/../b.html`, a symlinked folder…), for
/// comparison; a path that does not exist yet is resolved through its folder.
fn same_file_key(p: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or(abs.clone()),
        _ => abs,
    }
}

/// Every `[report]` path of `plan`: not the plan itself, not one of its CSV files, not one of
/// `others` (the files of the other plans of the same call), not twice, not a folder, and its
/// folder writable (created if missing, as the report would be).
pub fn outputs(plan: &Plan, others: &[PathBuf]) -> Result<(), String> {
    let r = &plan.report;
    let mut seen: Vec<(PathBuf, &str)> = Vec::new();
    for (key, path) in [("html", &r.html), ("json", &r.json), ("text", &r.text)] {
        let Some(path) = path else { continue };
        let k = same_file_key(path);
        let refuse = |what: String| {
            Err(format!(
                "[report] {key} = {} {what}. Give the report a file name of its own, e.g. {key} = \"{}-report.{key}\".",
                path.display(),
                plan.name()
            ))
        };
        if path.is_dir() {
            return refuse("is a folder".into());
        }
        if k == same_file_key(&plan.path) {
            return refuse("is the plan file itself: the report would overwrite it".into());
        }
        if plan.csv_files.iter().any(|c| same_file_key(c) == k) {
            return refuse("is one of the plan's CSV files: the report would overwrite it".into());
        }
        if others.iter().any(|o| same_file_key(o) == k) {
            return refuse(
                "is also a file of another plan of this run (its plan, a CSV or a report): one would overwrite the other".into(),
            );
        }
        if let Some((_, other)) = seen.iter().find(|(p, _)| *p == k) {
            return refuse(format!(
                "is also the {other} report: one would overwrite the other"
            ));
        }
        seen.push((k, key));
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if let Err(e) = probe(&dir) {
            return refuse(format!(
                "cannot be written: its folder {} does not take files ({e})",
                dir.display()
            ));
        }
    }
    Ok(())
}

/// The files a plan reads or writes, for the other plans of a call to stay off.
pub fn files_of(plan: &Plan) -> Vec<PathBuf> {
    let r = &plan.report;
    std::iter::once(plan.path.clone())
        .chain(plan.csv_files.iter().cloned())
        .chain([&r.html, &r.json, &r.text].into_iter().flatten().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    /// The plans of one call check the same state folder at the same time (a shared probe name
    /// made a writable folder fail as "No such file or directory", 1 run in 5 under load).
    #[test]
    fn plans_probing_one_folder_at_once_all_find_it_writable() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..200 {
                        super::state_dir(&state).unwrap();
                    }
                });
            }
        });
        assert_eq!(
            std::fs::read_dir(&state).unwrap().count(),
            0,
            "probes left behind"
        );
    }
}
