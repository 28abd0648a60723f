//! No token leaves memory: the real binary runs a plan with trace logging (a token renewal in
//! the middle), then its log files, saved state, reports, stdout and stderr (where a panic would
//! print) are searched for the bytes of every access and refresh token the tenant issued.

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autopilot_wizard::sim::{self, Seed, SimConfig, Speed};
use support::plan::*;

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().map_while(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn a_traced_plan_run_writes_no_token_anywhere() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = rt
        .block_on(sim::spawn(SimConfig {
            speed: Speed::TEST,
            seed: Seed::Walkthrough,
            ..SimConfig::default()
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("devices.csv");
    write_csv(&csv, "SEC", 20, "Secrets");
    let plan = write_plan(dir.path(), "secrets", &sim.url(), &csv, "Secrets");

    // Every token the tenant hands out, including refresh tokens that rotate away.
    let seen: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let shared = sim.shared.clone();
    let collector = {
        let seen = seen.clone();
        rt.spawn(async move {
            let mut forced = false;
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let mut st = shared.lock();
                let mut s = seen.lock().unwrap();
                s.extend(st.core.access_tokens.keys().cloned());
                s.extend(st.core.refresh_tokens.keys().cloned());
                // As soon as the run has its first access token, end it, so the run renews it
                // with the refresh token (a rotation) in the middle. Not after a delay: on an
                // idle machine the whole run takes under a second.
                if !forced && !st.core.access_tokens.is_empty() {
                    let now = std::time::Instant::now();
                    for g in st.core.access_tokens.values_mut() {
                        g.expires_at = now;
                    }
                    forced = true;
                }
            }
        })
    };

    let out = Command::new(env!("CARGO_BIN_EXE_autopilot-wizard"))
        .args(["run", "--device-code", "--wait-scale", "0.0005", "--plan"])
        .arg(&plan)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("XDG_DATA_HOME", dir.path())
        .env("HOME", dir.path())
        .env("RUST_LOG", "trace")
        .env("RUST_BACKTRACE", "1")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    collector.abort();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        &stderr[stderr.len().saturating_sub(3000)..]
    );
    assert!(stderr.contains("TRACE"), "trace logging was on");

    let tokens = seen.lock().unwrap().clone();
    let refreshes = sim.with_state(|s| {
        s.identity
            .token_requests
            .get("refresh_token")
            .copied()
            .unwrap_or(0)
    });
    assert!(
        tokens.len() >= 3 && refreshes >= 1,
        "{} tokens, {refreshes} refreshes",
        tokens.len()
    );

    let mut files = Vec::new();
    files_under(dir.path(), &mut files);
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "log")),
        "a log file: {files:?}"
    );
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("/state/")),
        "a state file: {files:?}"
    );
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().ends_with("-report.html")),
        "a report: {files:?}"
    );
    let mut haystacks: Vec<(String, Vec<u8>)> = vec![
        ("stdout".into(), out.stdout.clone()),
        ("stderr".into(), out.stderr.clone()),
    ];
    for f in &files {
        haystacks.push((f.display().to_string(), std::fs::read(f).unwrap()));
    }
    for (name, bytes) in &haystacks {
        for t in &tokens {
            // Any 24-byte stretch of a token is as good as the token for a search engine.
            let needle = &t.as_bytes()[..24.min(t.len())];
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "token bytes found in {name}"
            );
        }
    }
    println!(
        "secrets scan: {} tokens, {} places ({} bytes) searched, none found",
        tokens.len(),
        haystacks.len(),
        haystacks.iter().map(|(_, b)| b.len()).sum::<usize>()
    );
}
