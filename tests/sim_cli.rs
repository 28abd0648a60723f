//! `autopilot-wizard sim` as a separate process: its printed URLs, fault flags, token lifetime,
//! request log, clean stop on SIGTERM, and `sim csv` (accepted by `check-csv` and imported by
//! the simulated tenant).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autopilot_wizard::hwid::{CheckOptions, check_files};
use autopilot_wizard::ui::import::rows_from_report;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_autopilot-wizard");

/// A `sim` process, killed when dropped (a failing test must not leave it running).
struct SimProcess {
    child: Child,
    url: String,
    token: String,
    /// `CA_FILE=` with `--tls`.
    ca_file: Option<String>,
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim(args: &[&str]) -> SimProcess {
    let mut child = Command::new(BIN)
        .arg("sim")
        .args(["--port", "0", "--speed", "test"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the sim");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut url, mut token, mut ca_file) = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while url.is_none() || token.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the sim prints its URL and a token");
        if let Some(u) = line.strip_prefix("GRAPH_URL=") {
            url = Some(u.to_string());
        }
        if let Some(f) = line.strip_prefix("CA_FILE=") {
            ca_file = Some(f.to_string());
        }
        if let Some(t) = line.trim().strip_prefix("export TOKEN=") {
            token = Some(t.to_string());
        }
    }
    SimProcess {
        child,
        url: url.unwrap(),
        token: token.unwrap(),
        ca_file,
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn read_log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each log line is JSON"))
        .collect()
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the sim did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn faults_retry_after_and_request_log_from_flags() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let mut sim = start_sim(&[
        "--throttle-rate",
        "0.3",
        "--unavailable-rate",
        "0.2",
        "--drop-rate",
        "0.1",
        "--retry-after",
        "7",
        "--request-log",
        log.to_str().unwrap(),
    ]);
    let http = http();
    let mut seen = std::collections::HashMap::<String, u32>::new();
    for _ in 0..60 {
        let outcome = match http
            .get(format!("{}/v1.0/me", sim.url))
            .bearer_auth(&sim.token)
            .send()
            .await
        {
            Ok(resp) => {
                let status = resp.status().as_u16();
                if matches!(status, 429 | 503) {
                    assert_eq!(
                        resp.headers()["retry-after"],
                        "7",
                        "whole seconds, as Graph sends them"
                    );
                }
                status.to_string()
            }
            Err(_) => "dropped".to_string(),
        };
        *seen.entry(outcome).or_default() += 1;
    }
    for outcome in ["200", "429", "503", "dropped"] {
        assert!(seen.contains_key(outcome), "{outcome} never seen: {seen:?}");
    }
    // The token endpoint sheds load too, with an OAuth error body.
    let mut login_statuses = HashSet::new();
    for _ in 0..30 {
        if let Ok(resp) = http
            .post(format!("{}/organizations/oauth2/v2.0/token", sim.url))
            .form(&[("grant_type", "refresh_token"), ("client_id", "x")])
            .send()
            .await
        {
            let status = resp.status().as_u16();
            if status == 429 {
                let body: Value = resp.json().await.unwrap();
                assert_eq!(body["error"], "temporarily_unavailable");
            }
            login_statuses.insert(status);
        }
    }
    assert!(login_statuses.contains(&429), "{login_statuses:?}");

    sigterm(&sim.child);
    let status = wait_exit(&mut sim.child, Duration::from_secs(10));
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");

    let lines = read_log(&log);
    let me: Vec<&Value> = lines.iter().filter(|l| l["path"] == "/v1.0/me").collect();
    assert_eq!(me.len(), 60, "every request logged, dropped ones included");
    for l in &me {
        assert_eq!(l["method"], "GET");
        assert!(
            chrono::DateTime::parse_from_rfc3339(l["time"].as_str().unwrap()).is_ok(),
            "{l}"
        );
    }
    let count = |s: u64| me.iter().filter(|l| l["status"] == s).count() as u32;
    assert_eq!(count(429), seen["429"]);
    assert_eq!(count(503), seen["503"]);
    assert_eq!(
        count(0),
        seen["dropped"],
        "a dropped connection is status 0"
    );
    assert!(
        me.iter()
            .filter(|l| l["status"] == 429)
            .all(|l| l["retry_after"] == 7.0)
    );
}

#[tokio::test]
async fn tls_flag_serves_https_names_its_ca_file_and_discovery_says_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca_out = dir.path().join("sim-ca.pem");
    let sim = start_sim(&["--tls", "--ca-out", ca_out.to_str().unwrap()]);
    assert!(sim.url.starts_with("https://127.0.0.1:"), "{}", sim.url);
    assert_eq!(
        sim.ca_file.as_deref(),
        ca_out.to_str(),
        "CA_FILE= names the file"
    );
    let pem = std::fs::read(&ca_out).unwrap();
    assert!(pem.starts_with(b"-----BEGIN CERTIFICATE-----"));

    // The system store alone does not trust it.
    assert!(
        http()
            .get(format!("{}/v1.0/me", sim.url))
            .send()
            .await
            .is_err()
    );
    let trusting = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .build()
        .unwrap();
    let me = trusting
        .get(format!("{}/v1.0/me", sim.url))
        .bearer_auth(&sim.token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let disco: Value = trusting
        .get(format!(
            "{}/organizations/v2.0/.well-known/openid-configuration",
            sim.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for key in [
        "authorization_endpoint",
        "token_endpoint",
        "device_authorization_endpoint",
        "jwks_uri",
    ] {
        let v = disco[key].as_str().unwrap_or_default();
        assert!(v.starts_with(&format!("{}/", sim.url)), "{key}: {v}");
    }

    // Without --tls there is no CA line, and --ca-out alone is refused.
    let out = Command::new(BIN)
        .args(["sim", "--port", "0", "--ca-out", "x.pem"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn ca_file_that_cannot_be_used_stops_the_wizard_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("a.csv");
    std::fs::write(
        &csv,
        "Device Serial Number,Windows Product ID,Hardware Hash\r\n",
    )
    .unwrap();
    let missing = dir.path().join("nope.pem");
    let out = Command::new(BIN)
        .arg("--ca-file")
        .arg(&missing)
        .arg("check-csv")
        .arg(&csv)
        .env_remove("AUTOPILOT_WIZARD_CA_FILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nope.pem") && err.contains("could not be read"),
        "{err}"
    );

    let junk = dir.path().join("junk.txt");
    std::fs::write(&junk, "not a certificate").unwrap();
    let out = Command::new(BIN)
        .arg("check-csv")
        .arg(&csv)
        .env("AUTOPILOT_WIZARD_CA_FILE", &junk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("junk.txt") && err.contains("PEM"), "{err}");
}

#[tokio::test]
async fn token_lifetime_flag_sets_expires_in() {
    let sim = start_sim(&["--token-lifetime", "30s"]);
    let http = http();
    let client_id = "14d82eec-204b-4c2f-b7e8-296a70dab67e";
    let code: Value = http
        .post(format!("{}/organizations/oauth2/v2.0/devicecode", sim.url))
        .form(&[
            ("client_id", client_id),
            (
                "scope",
                "https://graph.microsoft.com/.default offline_access",
            ),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token: Value = http
        .post(format!("{}/organizations/oauth2/v2.0/token", sim.url))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", client_id),
            ("device_code", code["device_code"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["expires_in"], 30, "{token}");
}

#[tokio::test]
async fn sim_csv_passes_check_csv_and_imports() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("devices.csv");
    let out = Command::new(BIN)
        .args(["sim", "csv", "--count", "25", "--group-tag", "Branch 7"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(&out.stdout[..2], &[0xFF, 0xFE], "UTF-16 LE with BOM");
    std::fs::write(&csv, &out.stdout).unwrap();
    let again = Command::new(BIN)
        .args(["sim", "csv", "--count", "25", "--group-tag", "Branch 7"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, again.stdout, "deterministic");

    let check = Command::new(BIN)
        .args(["check-csv", csv.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "check-csv accepts it: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    let report = check_files(std::slice::from_ref(&csv), &CheckOptions::default());
    let rows: Vec<_> = rows_from_report(&report)
        .into_iter()
        .map(|(r, _, _)| r)
        .collect();
    assert_eq!(rows.len(), 25);
    let serials: HashSet<String> = rows.iter().map(|r| r.serial.clone()).collect();
    assert_eq!(serials.len(), 25, "unique serials");
    assert!(rows.iter().all(|r| r.group_tag == "Branch 7"));

    let log = dir.path().join("requests.jsonl");
    let sim = start_sim(&["--request-log", log.to_str().unwrap()]);
    let body = json!({
        "importedWindowsAutopilotDeviceIdentities": rows.iter().map(|r| json!({
            "serialNumber": r.serial,
            "productKey": r.product_key,
            "hardwareIdentifier": r.hash,
            "groupTag": r.group_tag,
            "assignedUserPrincipalName": "",
        })).collect::<Vec<_>>()
    });
    let resp = http()
        .post(format!(
            "{}/beta/deviceManagement/importedWindowsAutopilotDeviceIdentities/import",
            sim.url
        ))
        .bearer_auth(&sim.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Processing finishes in milliseconds at test speed: every device ends up registered.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list: Value = http()
            .get(format!(
                "{}/beta/deviceManagement/importedWindowsAutopilotDeviceIdentities?$top=100",
                sim.url
            ))
            .bearer_auth(&sim.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let done = list["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| {
                serials.contains(v["serialNumber"].as_str().unwrap_or(""))
                    && v["state"]["deviceImportStatus"] == "complete"
            })
            .count();
        if done == 25 {
            break;
        }
        assert!(Instant::now() < deadline, "imported: {done}/25");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let import: Vec<Value> = read_log(&log)
        .into_iter()
        .filter(|l| l["method"] == "POST" && l["path"].as_str().unwrap().ends_with("/import"))
        .collect();
    assert_eq!(import.len(), 1);
    let logged: HashSet<String> = import[0]["serials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(logged, serials, "the log names the serials of the upload");
}

/// Issue 18: the standalone tenant tells its user how to point the wizard at it (`--demo`
/// would start a different tenant).
#[tokio::test]
async fn the_standalone_banner_names_the_flags_that_reach_this_tenant() {
    let sim = autopilot_wizard::sim::spawn(autopilot_wizard::sim::SimConfig::test())
        .await
        .unwrap();
    let text = autopilot_wizard::sim::standalone_banner(&sim);
    let url = sim.url();
    assert!(
        text.contains(&format!("--graph-url {url} --login-url {url}")),
        "{text}"
    );
    assert!(!text.contains("with --demo"), "{text}");
}

/// `sign-out` is a command of the real binary; a tenant nobody signed in to leaves the store
/// untouched (the mock-store test in tests/auth.rs removes real entries).
#[test]
fn sign_out_command_reports_when_nothing_is_saved() {
    let tenant = uuid::Uuid::new_v4().to_string();
    let out = Command::new(BIN)
        .args(["sign-out", "--tenant", &tenant])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with(&format!("No saved sign-in for {tenant} in ")),
        "{text}"
    );
}

/// A portable copy (a `portable` file beside the exe) keeps its logs beside the exe, and log
/// files older than 14 days are deleted at start. The exe is hard-linked into a fresh folder
/// (the running exe's own folder is what counts).
#[test]
fn portable_copy_keeps_logs_beside_the_exe_and_old_logs_are_deleted() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let exe = dir.path().join("autopilot-wizard");
    if std::fs::hard_link(BIN, &exe).is_err() {
        std::fs::copy(BIN, &exe).unwrap();
    }
    std::fs::write(dir.path().join("portable"), "").unwrap();
    let logs = dir.path().join("data").join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let old = logs.join("autopilot-wizard-2020-01-01.log");
    std::fs::write(&old, "old").unwrap();
    let recent_day = chrono::Local::now().date_naive() - chrono::Duration::days(3);
    let recent = logs.join(format!(
        "autopilot-wizard-{}.log",
        recent_day.format("%Y-%m-%d")
    ));
    std::fs::write(&recent, "recent").unwrap();

    // `sim csv` starts the logging like every mode with a runtime.
    let out = Command::new(&exe)
        .args(["sim", "csv", "--count", "1"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!old.exists(), "a log from 2020 is past the 14 days");
    assert!(recent.exists(), "a log from 3 days ago is kept");
    let today = logs.join(format!(
        "autopilot-wizard-{}.log",
        chrono::Local::now().date_naive().format("%Y-%m-%d")
    ));
    let text = std::fs::read_to_string(&today).unwrap_or_default();
    assert!(text.contains("old log files deleted"), "{text}");
}

/// Issue 19, point 12: the page size of the standalone tenant is a flag (request counts depend
/// on it); a collection without `$top` comes in pages of that size, linked by nextLink.
#[tokio::test]
async fn the_standalone_page_size_is_a_flag() {
    let sim = start_sim(&["--page-size", "2"]);
    let url = format!("{}/v1.0/groups", sim.url);
    let page: Value = http()
        .get(&url)
        .bearer_auth(&sim.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["value"].as_array().map(Vec::len), Some(2), "{page:#}");
    assert!(page["@odata.nextLink"].is_string(), "{page:#}");
    let refused = Command::new(BIN)
        .args(["sim", "--page-size", "0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}
