//! `run --plan` through the engine, in process, against the simulated tenant over real HTTP:
//! the example plan end to end and again as a no-op, 500 devices through throttling, outages
//! and dropped connections, access tokens expiring mid-run, two tenants at once, and the
//! requests per device of the plan path.

use crate::support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autopilot_wizard::graph::token_store::MemoryStore;
use autopilot_wizard::plan;
use autopilot_wizard::run::events::{Collect, Event, EventSink, OnChange, Step};
use autopilot_wizard::run::{Exit, RunConfig, RunResult, run_plan};
use autopilot_wizard::sim::core::FaultConfig;
use autopilot_wizard::sim::{self, Seed, SimConfig, SimHandle, Speed};
use autopilot_wizard::steps::StepId;
use http::Method;
use support::plan::*;
use tokio_util::sync::CancellationToken;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn sim_config(page_size: usize) -> SimConfig {
    SimConfig {
        speed: Speed::TEST,
        page_size,
        seed: Seed::Walkthrough,
        ..SimConfig::default()
    }
}

fn config(state: &Path) -> RunConfig {
    let mut c =
        RunConfig::new(state.to_path_buf(), Arc::new(MemoryStore::new())).scaled(Speed::TEST.scale);
    c.step_attempts = 10;
    c
}

async fn run(plan_path: &Path, config: &RunConfig) -> (RunResult, Vec<Event>) {
    let plan = plan::load(plan_path).unwrap_or_else(|e| panic!("{e}"));
    let sink = Collect::default();
    let r = run_plan(&plan, config, &sink, &CancellationToken::new()).await;
    (r, sink.events())
}

fn writes(sim: &SimHandle) -> Vec<String> {
    sim.requests()
        .iter()
        // A `$batch` POST carries reads too; the tenant logs each request inside it with its
        // own method, so a write in a batch is still counted.
        .filter(|r| {
            r.method != Method::GET && !r.path.contains("/oauth2/") && !r.path.ends_with("/$batch")
        })
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect()
}

#[test]
fn example_plan_runs_ready_and_a_rerun_only_reads() {
    let rt = runtime();
    rt.block_on(async {
        let sim = sim::spawn(sim_config(20)).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        // The shipped example, pointed at this tenant, its reports in the temp folder.
        let example = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/example-plan.toml"),
        )
        .unwrap();
        let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/csv");
        let text = example
            .replace("../tests/fixtures/csv", &csv.display().to_string())
            .replace(
                "example-report",
                &dir.path().join("report").display().to_string(),
            );
        let path = dir.path().join("example.toml");
        std::fs::write(&path, text).unwrap();
        let config = config(&dir.path().join("state")).with_urls(Some(sim.url()), Some(sim.url()));

        let (r, events) = run(&path, &config).await;
        assert_eq!(
            r.exit,
            Exit::Ready,
            "{:?} {:?}",
            r.error,
            r.report.map(|r| r.to_text())
        );
        // Every step of the procedure, from the registry.
        for step in StepId::ALL.iter().map(|&s| Step::Of(s)) {
            assert!(
                events.iter().any(
                    |e| matches!(e, Event::StepFinished { step: s, ok: true, .. } if *s == step)
                ),
                "{step:?} finished ok: {events:#?}"
            );
        }
        assert!(matches!(
            events.last(),
            Some(Event::Finished {
                exit_code: 0,
                report: Some(_),
                ..
            })
        ));
        let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        assert!(html.contains("READY"), "{html}");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
                .unwrap();
        assert_eq!(json["ready"], true);

        // The same plan again: everything holds, so nothing is written to the tenant.
        sim.clear_requests();
        let (r, events) = run(&path, &config).await;
        assert_eq!(r.exit, Exit::Ready, "{:?}", r.error);
        assert!(
            !events.iter().any(|e| matches!(e, Event::DeviceCode { .. })),
            "the second run signs in silently with the refresh token kept in the store"
        );
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::RunStarted { resumed: true, .. }))
        );
        assert_eq!(
            writes(&sim),
            Vec::<String>::new(),
            "a rerun that holds only reads"
        );
    });
}

#[test]
fn five_hundred_devices_through_throttling_outages_and_dropped_connections() {
    let rt = runtime();
    rt.block_on(async {
        let retry_after = Duration::from_millis(40);
        let sim = sim::spawn(SimConfig {
            faults: FaultConfig {
                throttle_rate: 0.20,
                unavailable_rate: 0.05,
                drop_rate: 0.02,
                retry_after,
                ..FaultConfig::default()
            },
            ..sim_config(100)
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("devices.csv");
        let serials = write_csv(&csv, "FLT", 500, "Faults");
        let path = write_plan(dir.path(), "faults", &sim.url(), &csv, "Faults");
        let config = config(&dir.path().join("state"));

        let started = Instant::now();
        let (r, events) = run(&path, &config).await;
        let elapsed = started.elapsed();
        assert_eq!(
            r.exit,
            Exit::Ready,
            "{:?}\n{}",
            r.error,
            r.report.map(|r| r.to_text()).unwrap_or_default()
        );

        assert_each_uploaded_once(&sim, &serials);
        assert_eq!(creates(&sim), (1, 1), "one profile and one group created");
        let reqs = sim.requests();
        let with_retry_after = reqs.iter().filter(|r| matches!(r.status, 429 | 503)).count();
        let dropped = reqs.iter().filter(|r| r.status == 0).count();
        let step_retries = events
            .iter()
            .filter(|e| matches!(e, Event::Warning { message, .. } if message.contains("again") || message.contains("Continuing")))
            .count();
        // The client waits out every Retry-After, one request at a time: the whole seconds the
        // sim sent (0 for this test-speed 40 ms).
        let waited = Duration::from_secs_f64(reqs.iter().filter_map(|r| r.retry_after).sum());
        println!(
            "500-device fault run: {} requests, {with_retry_after} answered 429/503 (Retry-After {retry_after:?}), \
             {dropped} dropped connections, {step_retries} steps repeated, wall time {elapsed:.1?} \
             (Retry-After total {waited:.1?})",
            reqs.len()
        );
        assert!(with_retry_after > 50 && dropped > 0, "the faults happened");
        assert!(
            elapsed >= waited.mul_f64(0.9),
            "{elapsed:?} is shorter than the Retry-After waits ({waited:?})"
        );
        // Above the waits: the client's own backoff after each dropped connection (≤ 0.5 s
        // the first time) and 3000 requests of a debug build on a shared machine.
        let bound = waited + Duration::from_millis(1000) * dropped as u32 + Duration::from_secs(480);
        assert!(
            elapsed <= bound,
            "{elapsed:?} is far longer than the Retry-After waits ({waited:?}) and backoffs"
        );
    });
}

#[test]
fn access_tokens_expiring_mid_run_are_renewed_silently() {
    let rt = runtime();
    rt.block_on(async {
        // Over HTTPS, its CA trusted through the plan's `ca_file` (relative to the plan).
        let sim = sim::spawn(SimConfig {
            tls: true,
            ..sim_config(20)
        })
        .await
        .unwrap();
        assert!(sim.url().starts_with("https://"), "{}", sim.url());
        sim.with_state(|s| s.identity.access_token_lifetime = Duration::from_secs(30));
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("devices.csv");
        let serials = write_csv(&csv, "EXP", 60, "Expiry");
        let path = write_plan(dir.path(), "expiry", &sim.url(), &csv, "Expiry");
        std::fs::write(dir.path().join("sim-ca.pem"), sim.ca_pem().unwrap()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("[tenant]\n"));
        std::fs::write(
            &path,
            text.replacen("[tenant]\n", "[tenant]\nca_file = \"sim-ca.pem\"\n", 1),
        )
        .unwrap();
        let config = config(&dir.path().join("state"));

        // A run at test speed is shorter than 30 s, so the tenant also ends every access token's
        // life early, over and over, as if the run lasted hours.
        let shared = sim.shared.clone();
        let stop = CancellationToken::new();
        let expirer = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut expired = 0u32;
                while !stop.is_cancelled() {
                    tokio::time::sleep(Duration::from_millis(40)).await;
                    let mut st = shared.lock();
                    let now = std::time::Instant::now();
                    for g in st.core.access_tokens.values_mut() {
                        // Older than a tenth of a second (of its 30): as good as expired.
                        let left = g.expires_at.saturating_duration_since(now);
                        if left > Duration::ZERO && left < Duration::from_millis(29_900) {
                            g.expires_at = now;
                            expired += 1;
                        }
                    }
                }
                expired
            })
        };
        let (r, events) = run(&path, &config).await;
        stop.cancel();
        let expired = expirer.await.unwrap();
        assert_eq!(r.exit, Exit::Ready, "{:?}", r.error);
        assert_each_uploaded_once(&sim, &serials);
        let refreshes = sim.with_state(|s| {
            s.identity
                .token_requests
                .get("refresh_token")
                .copied()
                .unwrap_or(0)
        });
        let unauthorized = sim.requests().iter().filter(|r| r.status == 401).count();
        println!("token expiry: {expired} tokens ended early, {unauthorized} answers 401, {refreshes} refreshes");
        assert!(expired >= 2 && refreshes >= 2, "tokens expired and were renewed");
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, Event::DeviceCode { .. }))
                .count(),
            1,
            "signed in once; every later token came from the refresh token"
        );
    });
}

#[test]
fn two_tenants_at_once_and_one_failure_does_not_stop_the_other() {
    let rt = runtime();
    rt.block_on(async {
        let a = sim::spawn(sim_config(20)).await.unwrap();
        let b = sim::spawn(sim_config(20)).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let csv_a = dir.path().join("a.csv");
        let csv_b = dir.path().join("b.csv");
        let serials_a = write_csv(&csv_a, "TNA", 30, "A");
        write_csv(&csv_b, "TNB", 30, "B");
        let plan_a = write_plan(dir.path(), "tenant-a", &a.url(), &csv_a, "A");
        let plan_b = write_plan(dir.path(), "tenant-b", &b.url(), &csv_b, "B");
        // Tenant B's plan names a deploying group B does not have: exit 2, before any write.
        let text = std::fs::read_to_string(&plan_b)
            .unwrap()
            .replace(DEPLOYERS, "Nobody Here");
        std::fs::write(&plan_b, text).unwrap();
        let config = config(&dir.path().join("state"));

        let ((ra, _), (rb, _)) = tokio::join!(run(&plan_a, &config), run(&plan_b, &config));
        assert_eq!(ra.exit, Exit::Ready, "{:?}", ra.error);
        assert_eq!(rb.exit, Exit::BadInput, "{:?}", rb.error);
        assert!(rb.error.unwrap().contains("Nobody Here"));
        assert_each_uploaded_once(&a, &serials_a);
        assert!(uploads_per_serial(&b).is_empty());
        assert_eq!(writes(&b), Vec::<String>::new());
    });
}

#[test]
fn requests_per_device_through_the_plan_path() {
    let rt = runtime();
    rt.block_on(async {
        const DEVICES: usize = 500;
        let sim = sim::spawn(SimConfig {
            page_size: 100,
            ..sim_config(100)
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("devices.csv");
        write_csv(&csv, "REQ", DEVICES, "Bench");
        let path = write_plan(dir.path(), "bench", &sim.url(), &csv, "Bench");
        let (r, _) = run(&path, &config(&dir.path().join("state"))).await;
        assert_eq!(r.exit, Exit::Ready, "{:?}", r.error);
        let stats = r.import_stats.expect("import stats");
        let all: Vec<_> = sim
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/v1.0/") || r.path.starts_with("/beta/"))
            .collect();
        // The client's own requests (a `$batch` is one, as Graph bills it one call); the
        // simulated tenant also logs each request inside a `$batch`, which carries no
        // client-request-id of its own.
        let (graph, inner): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|r| r.client_request_id.is_some());
        let per = |n: usize| n as f64 / DEVICES as f64;
        println!("requests per device through run --plan ({DEVICES} devices, page size 100):");
        for (name, n) in [
            ("precheck", stats.precheck),
            ("import", stats.import),
            ("poll", stats.poll),
            ("cleanup", stats.cleanup),
            ("sync", stats.sync),
            ("wait", stats.wait),
            ("import total", stats.total()),
        ] {
            println!("  {name:<13} {n:>5} {:>7.3}", per(n as usize));
        }
        println!(
            "  whole plan    {:>5} {:>7.3}  (sign-in reads, steps 2–4, import, assignment wait, validation)",
            graph.len(),
            per(graph.len())
        );
        println!(
            "  inside $batch {:>5} {:>7.3}  (the requests the batches carried)",
            inner.len(),
            per(inner.len())
        );
        // Where the requests go, by method and path with ids blanked.
        let mut by_path = std::collections::BTreeMap::<String, usize>::new();
        for r in &graph {
            let shape: Vec<String> = r
                .path
                .split('/')
                .map(|seg| {
                    if seg.len() >= 20 && seg.chars().filter(|c| *c == '-').count() >= 3 {
                        "{id}".to_string()
                    } else {
                        seg.to_string()
                    }
                })
                .collect();
            *by_path
                .entry(format!("{} {}", r.method, shape.join("/")))
                .or_default() += 1;
        }
        let mut by_path: Vec<_> = by_path.into_iter().collect();
        by_path.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        for (path, n) in by_path.iter().take(12) {
            println!("    {n:>5}  {path}");
        }
        assert!(
            per(stats.total() as usize) <= 0.2,
            "the import through the plan path stays cheap: {stats:?}"
        );
        assert!(
            per(graph.len()) <= 0.5,
            "the whole plan (issue 19: 2.77 requests per device before device reads were batched): {}",
            per(graph.len())
        );
    });
}

fn plan_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = plan_text(path);
    assert!(text.contains(from), "{from} in {text}");
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Issue 19, points 1–3: a plan whose outputs or state cannot work, or whose `existing` group
/// is missing, stops before anything is written to the tenant (and, for the local checks,
/// before the first request), and no file it reads is overwritten.
#[test]
fn bad_outputs_state_folders_and_groups_are_refused_before_the_first_write() {
    let rt = runtime();
    rt.block_on(async {
        let sim = sim::spawn(sim_config(20)).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("devices.csv");
        write_csv(&csv, "PRE", 5, "Pre");
        let csv_bytes = std::fs::read(&csv).unwrap();
        let folder = dir.path().join("a-folder");
        std::fs::create_dir(&folder).unwrap();
        let not_a_dir = dir.path().join("plain-file");
        std::fs::write(&not_a_dir, "x").unwrap();
        let other_plans_report = dir.path().join("shared.html");

        let cases: Vec<(&str, String, String)> = vec![
            (
                "plan",
                "html = \"plan-report.html\"".into(),
                "html = \"plan.toml\"".into(),
            ),
            (
                "csv",
                "html = \"csv-report.html\"".into(),
                format!("html = \"{}\"", csv.display()),
            ),
            (
                "folder",
                "json = \"folder-report.json\"".into(),
                format!("json = \"{}\"", folder.display()),
            ),
            (
                "twice",
                "text = \"twice-report.txt\"".into(),
                "text = \"twice-report.html\"".into(),
            ),
            (
                "unwritable",
                "text = \"unwritable-report.txt\"".into(),
                format!("text = \"{}/sub/r.txt\"", not_a_dir.display()),
            ),
            (
                "shared",
                "html = \"shared-report.html\"".into(),
                format!("html = \"{}\"", other_plans_report.display()),
            ),
        ];
        for (name, from, to) in cases {
            let path = write_plan(dir.path(), name, &sim.url(), &csv, "Pre");
            edit(&path, &from, &to);
            let before = plan_text(&path);
            let mut c =
                config(&dir.path().join("state")).with_urls(Some(sim.url()), Some(sim.url()));
            c.other_plans_files = vec![other_plans_report.clone()];
            sim.clear_requests();
            let (r, events) = run(&path, &c).await;
            assert_eq!(r.exit, Exit::BadInput, "{name}: {:?}", r.error);
            let error = r.error.unwrap();
            assert!(error.contains("[report]"), "{name}: {error}");
            assert!(sim.requests().is_empty(), "{name}: nothing sent");
            assert_eq!(plan_text(&path), before, "{name}: the plan is intact");
            assert_eq!(
                std::fs::read(&csv).unwrap(),
                csv_bytes,
                "{name}: the CSV is intact"
            );
            assert!(folder.is_dir());
            assert!(
                matches!(events.last(), Some(Event::Finished { exit_code: 2, .. })),
                "{name}: {events:?}"
            );
        }

        // A state folder that cannot be written: refused before the first request.
        let path = write_plan(dir.path(), "state", &sim.url(), &csv, "Pre");
        sim.clear_requests();
        let c = config(&not_a_dir.join("state")).with_urls(Some(sim.url()), Some(sim.url()));
        let (r, _) = run(&path, &c).await;
        assert_eq!(r.exit, Exit::BadInput, "{:?}", r.error);
        assert!(r.error.unwrap().contains("--state-dir"));
        assert!(sim.requests().is_empty(), "nothing sent");

        // An `existing` group that is not there: found by a read before the profile is created.
        let path = write_plan(dir.path(), "existing", &sim.url(), &csv, "Pre");
        edit(
            &path,
            "membership = \"group-tag\"\ngroup_tags = [\"Pre\"]",
            "membership = \"existing\"",
        );
        edit(
            &path,
            "name = \"Autopilot - existing\"",
            "name = \"No Such Group\"",
        );
        sim.clear_requests();
        let c = config(&dir.path().join("state")).with_urls(Some(sim.url()), Some(sim.url()));
        let (r, _) = run(&path, &c).await;
        assert_eq!(r.exit, Exit::BadInput, "{:?}", r.error);
        assert!(r.error.unwrap().contains("No Such Group"));
        assert_eq!(writes(&sim), Vec::<String>::new(), "nothing written");
        assert_eq!(creates(&sim), (0, 0));
    });
}

/// Removes the state folder (and puts a file in its place) when the upload starts: the saves
/// from then on fail.
struct BreakStateOnUpload {
    inner: Collect,
    state: std::path::PathBuf,
}

impl EventSink for BreakStateOnUpload {
    fn emit(&self, event: Event) {
        if let Event::Progress { message, .. } = &event
            && message == "Uploading"
            && self.state.is_dir()
        {
            std::fs::remove_dir_all(&self.state).unwrap();
            std::fs::write(&self.state, "not a folder").unwrap();
        }
        self.inner.emit(event);
    }
}

/// Issue 19, point 2: a state save that fails mid-run stops the run before the upload it was
/// to protect (instead of warning and uploading anyway, and ending READY without a way to
/// resume).
#[test]
fn a_failed_state_save_stops_the_run_before_the_upload() {
    let rt = runtime();
    rt.block_on(async {
        let sim = sim::spawn(sim_config(20)).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("devices.csv");
        write_csv(&csv, "SAV", 10, "Save");
        let path = write_plan(dir.path(), "save", &sim.url(), &csv, "Save");
        let state = dir.path().join("state");
        let config = config(&state).with_urls(Some(sim.url()), Some(sim.url()));
        let sink = BreakStateOnUpload {
            inner: Collect::default(),
            state: state.clone(),
        };
        let plan = plan::load(&path).unwrap();
        let r = run_plan(&plan, &config, &sink, &CancellationToken::new()).await;
        assert!(state.is_file(), "the sink broke the state folder");
        assert_eq!(r.exit, Exit::BadInput, "{:?}", r.error);
        assert!(r.error.unwrap().contains("could not be saved"));
        assert!(
            uploads_per_serial(&sim).is_empty(),
            "no device uploaded without its saved state"
        );
    });
}

/// Issue 19, point 6: one plan naming the tenant by its domain and another by its id are the
/// same tenant; the second to sign in stops before it writes.
#[test]
fn one_plan_per_tenant_by_the_tenant_id_the_sign_in_returns() {
    let rt = runtime();
    rt.block_on(async {
        let sim = sim::spawn(sim_config(20)).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let csv_a = dir.path().join("a.csv");
        let csv_b = dir.path().join("b.csv");
        let serials = write_csv(&csv_a, "TDA", 10, "Twin");
        write_csv(&csv_b, "TDB", 10, "Twin");
        let by_domain = write_plan(dir.path(), "by-domain", &sim.url(), &csv_a, "Twin");
        let by_id = write_plan(dir.path(), "by-id", &sim.url(), &csv_b, "Twin");
        edit(
            &by_id,
            "fabrikamdemo.onmicrosoft.com",
            &sim.tenant_id().to_string(),
        );
        let config = config(&dir.path().join("state"));
        let ((ra, _), (rb, _)) = tokio::join!(run(&by_domain, &config), run(&by_id, &config));
        let (won, lost) = if ra.exit == Exit::Ready {
            (ra, rb)
        } else {
            (rb, ra)
        };
        assert_eq!(won.exit, Exit::Ready, "{:?}", won.error);
        assert_eq!(lost.exit, Exit::BadInput, "{:?}", lost.error);
        assert!(lost.error.unwrap().contains("same tenant"));
        assert_eq!(creates(&sim), (1, 1), "only one plan wrote");
        if won.plan == "by-domain" {
            assert_each_uploaded_once(&sim, &serials);
        }
        assert!(
            uploads_per_serial(&sim)
                .keys()
                .all(|s| s.starts_with(if won.plan == "by-domain" {
                    "TDA"
                } else {
                    "TDB"
                })),
            "the losing plan uploaded nothing"
        );
    });
}

/// Issue 19, point 4: the CSV's group tags against the plan's group, as the import page checks
/// them: untagged rows stop the run (named) before anything is sent, unless the plan says
/// `tag_untagged = true`, which tags them and reaches READY.
#[test]
fn group_tags_are_checked_against_the_csv_before_the_upload() {
    let rt = runtime();
    rt.block_on(async {
        let sim = sim::spawn(sim_config(20)).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("untagged.csv");
        let serials = write_csv(&csv, "UNT", 8, "");
        let path = write_plan(dir.path(), "untagged", &sim.url(), &csv, "Site");
        let config = config(&dir.path().join("state")).with_urls(Some(sim.url()), Some(sim.url()));
        let (r, _) = run(&path, &config).await;
        assert_eq!(r.exit, Exit::BadInput, "{:?}", r.error);
        let error = r.error.unwrap();
        assert!(error.contains("tag_untagged = true"), "{error}");
        assert!(error.contains(&serials[0]), "names the rows: {error}");
        assert!(sim.requests().is_empty(), "nothing sent");

        let other = dir.path().join("other.csv");
        write_csv(&other, "OTH", 3, "Elsewhere");
        let path2 = write_plan(dir.path(), "other-tag", &sim.url(), &other, "Site");
        edit(
            &path2,
            "membership = \"group-tag\"",
            "membership = \"group-tag\"\ntag_untagged = true",
        );
        let (r, _) = run(&path2, &config).await;
        assert_eq!(r.exit, Exit::BadInput, "{:?}", r.error);
        assert!(r.error.unwrap().contains("OTH00000 (\"Elsewhere\")"));

        edit(
            &path,
            "membership = \"group-tag\"",
            "membership = \"group-tag\"\ntag_untagged = true",
        );
        let (r, _) = run(&path, &config).await;
        assert_eq!(r.exit, Exit::Ready, "{:?}", r.error);
        assert_each_uploaded_once(&sim, &serials);
    });
}

/// Issue 19, point 10: the closed sync window is counted down every second for a terminal,
/// but a script reading `--json` (through `OnChange`) gets one `waiting` event, not one per
/// second.
#[test]
fn the_sync_window_is_one_json_event_not_one_per_second() {
    let rt = runtime();
    rt.block_on(async {
        let sim = sim::spawn(sim_config(20)).await.unwrap();
        // A manual sync was triggered just now: the client waits out its window.
        sim.with_state(|s| {
            s.autopilot.sync.last_manual_trigger = Some(chrono::Utc::now());
        });
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("devices.csv");
        write_csv(&csv, "WIN", 5, "Win");
        let path = write_plan(dir.path(), "window", &sim.url(), &csv, "Win");
        let mut c = config(&dir.path().join("state")).with_urls(Some(sim.url()), Some(sim.url()));
        c.import.sync_min_interval = Duration::from_secs(4);
        let plan = plan::load(&path).unwrap();
        let sink = OnChange::new(Collect::default());
        let r = run_plan(&plan, &c, &sink, &CancellationToken::new()).await;
        assert_eq!(r.exit, Exit::Ready, "{:?}", r.error);
        let events = sink.inner().events();
        let waits: Vec<_> = events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::Waiting {
                        step: Step::Of(StepId::Import),
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(waits.len(), 1, "{waits:#?}");
    });
}

/// Issue 15: a deploying user without Intune fails the run's report (exit 1) with the item and
/// its fix; warnings (no branding…) are in the report and do not; licensed, the rerun is READY.
#[test]
fn a_deployer_without_intune_makes_the_run_not_ready_until_licensed() {
    let rt = runtime();
    rt.block_on(async {
        let sim = sim::spawn(sim_config(20)).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("lic.csv");
        write_csv(&csv, "LIC", 3, "LIC");
        let path = write_plan(dir.path(), "licences", &sim.url(), &csv, "LIC");
        let config = config(&dir.path().join("state")).with_urls(Some(sim.url()), Some(sim.url()));
        let imani = sim.with_state(|s| {
            let id = s
                .core
                .users
                .iter()
                .find(|u| u.user_principal_name.starts_with("imani.okafor@"))
                .unwrap()
                .id
                .clone();
            s.readiness.licences.remove(&id);
            id
        });
        let (r, _events) = run(&path, &config).await;
        assert_eq!(r.exit, Exit::NotReady, "{:?}", r.error);
        let report = r.report.expect("a report");
        let item = report
            .items
            .iter()
            .find(|i| i.id.key() == "Licences")
            .expect("the licence item");
        assert_eq!(
            item.verdict,
            autopilot_wizard::steps::validate::Verdict::Fail
        );
        assert!(
            item.evidence[0].contains("Imani Okafor"),
            "{:?}",
            item.evidence
        );
        assert!(report.first_problem().unwrap().contains("Intune"));
        let html = std::fs::read_to_string(dir.path().join("licences-report.html")).unwrap();
        assert!(html.contains("Every deploying user has Intune and Microsoft Entra ID P1"));
        assert!(
            html.contains("Warning: The tenant has no company branding"),
            "{html}"
        );

        sim.with_state(|s| {
            s.readiness.assign(
                &imani,
                autopilot_wizard::sim::readiness::SKU_BUSINESS_PREMIUM,
            )
        });
        let (r, _) = run(&path, &config).await;
        assert_eq!(
            r.exit,
            Exit::Ready,
            "{:?} {:?}",
            r.error,
            r.report.map(|r| r.to_text())
        );
    });
}

/// Switches the plan's devices on when the run starts following them (after the validation),
/// as people do once the wizard says READY; one of them fails on an app.
struct SwitchOnWhenFollowed {
    inner: Collect,
    shared: sim::Shared,
    serials: Vec<String>,
    fail: String,
}

impl EventSink for SwitchOnWhenFollowed {
    fn emit(&self, event: Event) {
        if matches!(
            event,
            Event::StepStarted {
                step: Step::Deployment,
                ..
            }
        ) {
            let mut state = self.shared.lock();
            sim::oobe::switch_on(
                &mut state,
                &sim::oobe::SwitchOn {
                    serials: self.serials.clone(),
                    count: 0,
                    fail: Some(self.fail.clone()),
                },
            );
        }
        self.inner.emit(event);
    }
}

/// Issue 15: `[deployment] wait` follows the devices through OOBE after the validation, tells
/// each change, and ends with exit 1 naming the device that failed and its app.
#[test]
fn a_plan_that_waits_for_the_deployments_exits_1_naming_the_failed_device() {
    let rt = runtime();
    rt.block_on(async {
        let sim = sim::spawn(sim_config(20)).await.unwrap();
        // The ESP the devices get waits for a Win32 app: the one that fails.
        sim.with_state(|s| {
            s.esp.apps.push(sim::esp::StoredApp {
                id: "app-timesheets".into(),
                odata_type: "microsoft.graph.win32LobApp".into(),
                display_name: "Contoso Timesheets".into(),
                publisher: "Contoso".into(),
                required_for: vec![None],
            });
            s.esp.configs[0].settings.insert(
                "selectedMobileAppIds".into(),
                serde_json::json!(["app-timesheets"]),
            );
        });
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("devices.csv");
        let serials = write_csv(&csv, "OOB", 3, "Oobe");
        let path = write_plan(dir.path(), "oobe", &sim.url(), &csv, "Oobe");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("\n[deployment]\nwait = \"10m\"\n");
        std::fs::write(&path, text).unwrap();
        let config = config(&dir.path().join("state"));
        let plan = plan::load(&path).unwrap();
        assert_eq!(plan.deployment_wait, Some(Duration::from_secs(600)));
        let sink = SwitchOnWhenFollowed {
            inner: Collect::default(),
            shared: sim.shared.clone(),
            serials: serials.clone(),
            fail: serials[1].clone(),
        };
        let started = Instant::now();
        let r = run_plan(&plan, &config, &sink, &CancellationToken::new()).await;
        let events = sink.inner.events();
        assert_eq!(r.exit, Exit::NotReady, "{:?} {events:#?}", r.error);
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the wait ended when every device had finished, not after 10 minutes"
        );
        // One `device` event per change, ending in each device's outcome.
        let last_outcome = |serial: &str| {
            events
                .iter()
                .filter_map(|e| match e {
                    Event::Device {
                        step: Step::Deployment,
                        serial: s,
                        outcome,
                        detail,
                        ..
                    } if s == serial => Some((outcome.clone(), detail.clone())),
                    _ => None,
                })
                .next_back()
        };
        for (i, serial) in serials.iter().enumerate() {
            let (outcome, detail) = last_outcome(serial).expect("told");
            if i == 1 {
                assert_eq!(outcome, "failed");
                assert!(detail.contains("Contoso Timesheets"), "{detail}");
            } else {
                assert_eq!(outcome, "succeeded", "{serial}: {detail}");
            }
        }
        let device_events = events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::Device {
                        step: Step::Deployment,
                        ..
                    }
                )
            })
            .count();
        assert!(
            device_events <= 3 * 5,
            "one event per change: {device_events}"
        );
        let finished = events
            .iter()
            .find_map(|e| match e {
                Event::StepFinished {
                    step: Step::Deployment,
                    ok,
                    summary,
                    ..
                } => Some((*ok, summary.clone())),
                _ => None,
            })
            .expect("the deployment step finished");
        assert!(!finished.0);
        assert!(
            finished.1.contains("2 of 3 devices succeeded, 1 failed")
                && finished.1.contains(&serials[1]),
            "{}",
            finished.1
        );
        // The JSON events' report carries the per-device outcomes; the files were rewritten.
        let Some(Event::Finished {
            exit_code: 1,
            report: Some(report),
            ..
        }) = events.last()
        else {
            panic!("{:?}", events.last());
        };
        let items = report["items"].as_array().unwrap();
        let deployments: Vec<&serde_json::Value> = items
            .iter()
            .filter(|i| {
                i["title"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("Deployment of ")
            })
            .collect();
        assert_eq!(deployments.len(), 3, "{report}");
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("oobe-report.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(json["ready"], false);
        assert!(
            json.to_string()
                .contains(&format!("Deployment of {}: Failed", serials[1]))
        );
    });
}
