//! The real binary's `run --plan`, killed with SIGKILL during the upload, during processing and
//! during the assignment wait: each rerun of the same plan completes READY and no serial is
//! ever uploaded twice. The simulated tenant runs in this test process; only the wizard is a
//! child process (talking to it over HTTP, signing in with a device code).

mod plan_common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use autopilot_wizard::sim::core::{Fault, ScriptedFault};
use autopilot_wizard::sim::{self, Seed, SimConfig, SimHandle, Speed};
use plan_common::*;
use serde_json::Value;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn wizard(plan: &Path, data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_autopilot-wizard"));
    c.args([
        "run",
        "--json",
        "--device-code",
        "--wait-scale",
        "0.0005",
        "--plan",
    ])
    .arg(plan)
    .arg("--state-dir")
    .arg(data.join("state"))
    .env("XDG_DATA_HOME", data)
    .env("HOME", data)
    .env_remove("DISPLAY")
    .env_remove("WAYLAND_DISPLAY")
    .env_remove("RUST_LOG")
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    c
}

/// Runs the wizard until an event matches `kill_when`, then SIGKILLs it. Returns the events seen.
fn run_and_kill(plan: &Path, data: &Path, kill_when: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut child = wizard(plan, data).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && tx.send(v).is_err()
            {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(v) => {
                let hit = kill_when(&v);
                seen.push(v);
                if hit {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!("the moment to kill never came: {seen:#?}");
            }
        }
    }
    // Child::kill is SIGKILL on Unix: no handler runs, nothing is flushed or saved.
    child.kill().unwrap();
    child.wait().unwrap();
    seen
}

fn run_to_end(plan: &Path, data: &Path) -> (i32, Vec<Value>) {
    let out = wizard(plan, data).output().unwrap();
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (out.status.code().unwrap_or(-1), events)
}

fn is(v: &Value, event: &str, step: &str) -> bool {
    v["event"] == event && v["step"] == step
}

fn scenario(name: &str, prepare: impl FnOnce(&SimHandle), kill_when: impl Fn(&Value) -> bool) {
    let rt = runtime();
    let _guard = rt.enter();
    let sim = rt
        .block_on(sim::spawn(SimConfig {
            speed: Speed::TEST,
            page_size: 100,
            seed: Seed::Walkthrough,
            ..SimConfig::default()
        }))
        .unwrap();
    prepare(&sim);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("devices.csv");
    let serials = write_csv(
        &csv,
        &format!("K{}", &name[..3].to_uppercase()),
        150,
        "Kill",
    );
    let plan = write_plan(dir.path(), name, &sim.url(), &csv, "Kill");

    let seen = run_and_kill(&plan, dir.path(), kill_when);
    let killed_at = seen.last().cloned().unwrap_or_default();
    let (code, events) = run_to_end(&plan, dir.path());
    let last = events.last().cloned().unwrap_or_default();
    assert_eq!(
        code, 0,
        "{name}: killed at {killed_at}; rerun ended {last:#}"
    );
    assert_eq!(last["event"], "finished");
    assert_eq!(last["verdict"], "READY");
    assert_eq!(last["report"]["ready"], true);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "run_started" && e["resumed"] == true),
        "{name}: the rerun continued the saved state"
    );
    assert_each_uploaded_once(&sim, &serials);
    assert_eq!(
        creates(&sim),
        (1, 1),
        "{name}: one profile and one group created"
    );
}

#[test]
fn killed_during_the_upload() {
    scenario(
        "upload",
        |sim| {
            // The first upload hangs in flight: the kill lands while the POST is out.
            sim.script_faults(vec![ScriptedFault::new(
                Some(http::Method::POST),
                "importedWindowsAutopilotDeviceIdentities/import",
                Fault::Latency(Duration::from_millis(1500)),
                1,
            )]);
        },
        |v| is(v, "progress", "import") && v["message"] == "Uploading",
    );
}

#[test]
fn killed_during_processing() {
    scenario(
        "processing",
        |sim| {
            // Intune takes about two seconds (real time) per upload.
            sim.with_state(|s| {
                s.autopilot.settings.import_service_time = Duration::from_secs(40_000)
            });
        },
        |v| is(v, "progress", "import") && v["message"] == "Intune is processing the upload",
    );
}

#[test]
fn killed_during_the_assignment_wait() {
    scenario(
        "assignment",
        |sim| {
            sim.with_state(|s| s.assignment.config.slowness = 2000.0);
        },
        |v| is(v, "waiting", "assignment"),
    );
}
