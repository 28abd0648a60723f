//! The real binary's `run --plan`, killed with SIGKILL during the upload, during processing and
//! during the assignment wait: each rerun of the same plan completes READY and no serial is
//! ever uploaded twice. The simulated tenant runs in this test process; only the wizard is a
//! child process (talking to it over HTTP, signing in with a device code).

use crate::support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use autopilot_wizard::sim::core::{Fault, ScriptedFault};
use autopilot_wizard::sim::{self, Seed, SimConfig, SimHandle, Speed};
use serde_json::Value;
use support::plan::*;

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

/// Starts the wizard on `plan` and reads its events until one matches `until`; returns the
/// running child (the caller waits for it), the events so far and the channel the rest arrive
/// on.
#[allow(clippy::zombie_processes)]
fn start_until(
    plan: &Path,
    data: &Path,
    until: impl Fn(&Value) -> bool,
) -> (std::process::Child, Vec<Value>, mpsc::Receiver<Value>) {
    let mut child = wizard(plan, data).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let v = serde_json::from_str::<Value>(&line)
                .unwrap_or_else(|_| serde_json::json!({ "not-json": line }));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(v) => {
                let hit = until(&v);
                seen.push(v);
                if hit {
                    return (child, seen, rx);
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("never came: {seen:#?}");
            }
        }
    }
}

/// A tenant whose assignment takes long (the run waits in it) and a plan of 20 devices.
fn slow_tenant(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    name: &str,
) -> (SimHandle, std::path::PathBuf, Vec<String>) {
    let sim = rt
        .block_on(sim::spawn(SimConfig {
            speed: Speed::TEST,
            page_size: 100,
            seed: Seed::Walkthrough,
            ..SimConfig::default()
        }))
        .unwrap();
    sim.with_state(|s| s.assignment.config.slowness = 2000.0);
    let csv = dir.join(format!("{name}.csv"));
    let serials = write_csv(&csv, &name[..3].to_uppercase(), 20, "Slow");
    let plan = write_plan(dir, name, &sim.url(), &csv, "Slow");
    (sim, plan, serials)
}

fn assert_stamped(events: &[Value]) {
    for e in events {
        let t = e["time"].as_str().unwrap_or_else(|| panic!("no time: {e}"));
        let parsed = chrono::DateTime::parse_from_rfc3339(t).unwrap_or_else(|_| panic!("{t}"));
        assert_eq!(parsed.offset().local_minus_utc(), 0, "UTC: {t}");
        assert!(t.ends_with('Z'), "{t}");
    }
}

/// Issue 19, point 5: a second process running the same plan stops at once with its own exit
/// code (5), names the process that holds the plan, and sends nothing; the first goes on.
#[test]
fn a_second_run_of_the_same_plan_is_refused_and_names_the_first() {
    let rt = runtime();
    let _guard = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let (sim, plan, _) = slow_tenant(&rt, dir.path(), "locked");
    let (mut first, _, _rx) = start_until(&plan, dir.path(), |v| is(v, "waiting", "assignment"));
    let requests = sim.requests().len();
    let (code, events) = run_to_end(&plan, dir.path());
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(code, 5, "{events:#?}");
    let last = events.last().cloned().unwrap_or_default();
    assert_eq!(last["event"], "finished");
    assert_eq!(last["exit_code"], 5);
    assert_eq!(last["verdict"], "ALREADY RUNNING");
    let error = last["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("process {}", first.id())),
        "names who holds it: {error}"
    );
    assert_stamped(&events);
    // The second process sent nothing (the first may still be polling).
    assert!(
        sim.requests()[requests..]
            .iter()
            .all(|r| r.method == http::Method::GET || r.path.ends_with("/$batch")),
        "the refused run wrote nothing"
    );
}

/// Issue 19, points 8 and 9: SIGTERM ends the run like Ctrl-C, with exit code 143, a
/// `finished` event (every event stamped with its time), and a rerun that continues READY.
#[test]
fn sigterm_stops_cleanly_with_its_own_code_and_the_rerun_continues() {
    let rt = runtime();
    let _guard = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let (sim, plan, serials) = slow_tenant(&rt, dir.path(), "sigterm");
    let (mut child, mut seen, rx) =
        start_until(&plan, dir.path(), |v| is(v, "waiting", "assignment"));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code();
    while let Ok(v) = rx.recv_timeout(Duration::from_secs(10)) {
        seen.push(v);
    }
    assert_eq!(code, Some(143), "{seen:#?}");
    let last = seen.last().cloned().unwrap_or_default();
    assert_eq!(last["event"], "finished", "{seen:#?}");
    assert_eq!(last["exit_code"], 143);
    assert_eq!(last["verdict"], "TERMINATED");
    assert_stamped(&seen);

    sim.with_state(|s| s.assignment.config.slowness = 1.0);
    let (code, events) = run_to_end(&plan, dir.path());
    let last = events.last().cloned().unwrap_or_default();
    assert_eq!(code, 0, "{last:#}");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "run_started" && e["resumed"] == true)
    );
    assert_each_uploaded_once(&sim, &serials);
    assert_eq!(creates(&sim), (1, 1));
}

/// Issue 19, points 1, 7 and 8: in one call, a plan that is not TOML, a plan missing a key and a
/// plan whose report would overwrite the plan itself each end with their own `finished` event
/// (exit 2) and touch nothing; the good plan of the same call runs READY.
#[test]
fn bad_plans_stop_only_themselves_and_every_plan_ends_with_finished() {
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
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("good.csv");
    write_csv(&csv, "GOO", 10, "Good");
    let good = write_plan(dir.path(), "good", &sim.url(), &csv, "Good");
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[tenant\nid = ").unwrap();
    let missing = dir.path().join("missing.toml");
    std::fs::write(&missing, "[tenant]\nid = \"contoso.onmicrosoft.com\"\n").unwrap();
    let other_csv = dir.path().join("self.csv");
    write_csv(&other_csv, "SEL", 3, "Good");
    let selfish = write_plan(dir.path(), "self", "http://127.0.0.1:9", &other_csv, "Good");
    let text = std::fs::read_to_string(&selfish)
        .unwrap()
        .replace("html = \"self-report.html\"", "html = \"self.toml\"");
    std::fs::write(&selfish, &text).unwrap();

    let out = wizard(&good, dir.path())
        .arg("--plan")
        .arg(&broken)
        .arg("--plan")
        .arg(&missing)
        .arg("--plan")
        .arg(&selfish)
        .output()
        .unwrap();
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    assert_stamped(&events);
    let finished = |plan: &str| {
        events
            .iter()
            .find(|e| e["event"] == "finished" && e["plan"] == plan)
            .cloned()
            .unwrap_or_else(|| panic!("no finished event for {plan}: {events:#?}"))
    };
    assert_eq!(
        finished("good")["verdict"],
        "READY",
        "{:#}",
        finished("good")
    );
    for bad in ["broken", "missing", "self"] {
        let f = finished(bad);
        assert_eq!(f["exit_code"], 2, "{f:#}");
        let error = f["error"].as_str().unwrap_or_default();
        let expected = if bad == "self" {
            "the plan file itself"
        } else {
            ".toml:"
        };
        assert!(error.contains(expected), "{bad}: {f:#}");
    }
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(&selfish).unwrap(),
        text,
        "the plan is intact"
    );

    // A --graph-url with a path refuses every plan of the call, each with its `finished`.
    sim.clear_requests();
    let out = wizard(&good, dir.path())
        .args(["--graph-url", "https://graph.microsoft.com/v1.0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["event"], "finished");
    assert!(events[0]["error"].as_str().unwrap().contains("--graph-url"));
    assert!(sim.requests().is_empty());
}

/// `remove`, the real binary, killed while it waits for the device to pick the wipe up: the
/// rerun continues from its state file, finishes the removal and never sends a second wipe.
#[test]
fn remove_killed_after_the_wipe_continues_without_a_second_wipe() {
    let rt = runtime();
    let _guard = rt.enter();
    let sim = rt
        .block_on(sim::spawn(SimConfig {
            speed: Speed::TEST,
            seed: Seed::Walkthrough,
            ..SimConfig::default()
        }))
        .unwrap();
    sim.with_state(|s| {
        s.removal.policies.clear();
        // The device is off: the wipe waits until the test switches it on.
        s.removal.settings.wipe_time = Duration::from_secs(100_000_000);
    });
    let dir = tempfile::tempdir().unwrap();
    let remove = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_autopilot-wizard"));
        c.args([
            "remove",
            "--serial",
            "DEMO-HQ-0001",
            "--mode",
            "leave",
            "--wipe",
            "--json",
            "--yes",
            "--wait-scale",
            "0.002",
            "--graph-url",
            &sim.url(),
            "--login-url",
            &sim.url(),
            "--state-file",
        ])
        .arg(dir.path().join("removal.json"))
        .env("XDG_DATA_HOME", dir.path())
        .env("HOME", dir.path())
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        c
    };
    let mut child = remove().spawn().unwrap();
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
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(v) => {
                let waiting = v["event"] == "progress"
                    && v["text"].as_str().is_some_and(|t| {
                        t.starts_with("Waiting until the device reports the wipe done")
                    });
                seen.push(v);
                if waiting {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!("the wait for the wipe never came: {seen:#?}");
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(sim.with_state(|s| s.removal.count("wipe")), 1);
    assert!(sim.with_state(|s| s.removal.managed_by_serial("DEMO-HQ-0001").is_some()));
    // The device comes online and reports the wipe.
    sim.with_state(|s| {
        s.removal.settings.wipe_time = Duration::from_secs(60);
        for m in &mut s.removal.managed {
            for a in &mut m.actions {
                a.done_at = Instant::now();
            }
        }
    });
    let out = remove().output().unwrap();
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(out.status.code(), Some(0), "{events:#?}");
    let result = events.iter().find(|e| e["event"] == "result").unwrap();
    assert_eq!(result["done"], true, "{result}");
    assert!(
        result["text"].as_str().unwrap().contains("wiped"),
        "{result}"
    );
    assert!(
        events.iter().any(|e| e["event"] == "plan"
            && e["steps"][0]
                .as_str()
                .unwrap_or("")
                .contains("will not be sent again")),
        "the plan of the rerun knows the wipe: {events:#?}"
    );
    assert_eq!(
        sim.with_state(|s| s.removal.count("wipe")),
        1,
        "one wipe in all"
    );
    sim.with_state(|s| {
        assert!(s.autopilot.device_by_serial("DEMO-HQ-0001").is_none());
        assert!(s.removal.managed_by_serial("DEMO-HQ-0001").is_none());
    });
}

/// `remove --plan`: the plan's [tenant] signs in and its [remove] table names the devices and
/// the mode; `run --plan` reads the same file and leaves the table alone.
#[test]
fn remove_reads_the_remove_table_of_a_plan() {
    let rt = runtime();
    let _guard = rt.enter();
    let sim = rt
        .block_on(sim::spawn(SimConfig {
            speed: Speed::TEST,
            seed: Seed::Walkthrough,
            ..SimConfig::default()
        }))
        .unwrap();
    sim.with_state(|s| s.removal.policies.clear());
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("devices.csv");
    write_csv(&csv, "KREM", 2, "Kill");
    let plan = write_plan(dir.path(), "rem", &sim.url(), &csv, "Kill");
    let mut text = std::fs::read_to_string(&plan).unwrap();
    text.push_str(
        "\n[remove]\nserials = [\"DEMO-HQ-0002\", \"DEMO-LAB-0001\"]\nmode = \"leave\"\n",
    );
    std::fs::write(&plan, &text).unwrap();
    let parsed = autopilot_wizard::plan::load(&plan).expect("run --plan reads the plan");
    assert!(parsed.section("remove").is_some());
    let out = Command::new(env!("CARGO_BIN_EXE_autopilot-wizard"))
        .args([
            "remove",
            "--json",
            "--yes",
            "--wait-scale",
            "0.002",
            "--plan",
        ])
        .arg(&plan)
        .arg("--state-file")
        .arg(dir.path().join("removal.json"))
        .env("XDG_DATA_HOME", dir.path())
        .env("HOME", dir.path())
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{events:#?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "result" && e["done"] == true)
            .count(),
        2
    );
    sim.with_state(|s| {
        assert!(s.autopilot.device_by_serial("DEMO-HQ-0002").is_none());
        assert!(s.autopilot.device_by_serial("DEMO-LAB-0001").is_none());
    });
    // A mode that is none: refused before anything is sent (exit 2).
    std::fs::write(&plan, text.replace("mode = \"leave\"", "mode = \"sell\"")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_autopilot-wizard"))
        .args(["remove", "--yes", "--plan"])
        .arg(&plan)
        .env("XDG_DATA_HOME", dir.path())
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a mode"));
}
