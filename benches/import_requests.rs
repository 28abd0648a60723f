//! Graph requests needed to import 500 devices against the simulated tenant (page size 100,
//! fixed service times, test speed), from the picked file to every device registered, cleanup
//! included. Prints requests per device for each phase and in total (target: ≤ 0.1).
//!
//! Then the same 500 devices go into an assigned (static) group with
//! `steps::assignment::ensure_static_members`: requests per device for adding the members
//! (`PATCH members@odata.bind`, 20 per request; target ≤ 0.1) and for the whole phase.
//!
//! `cargo bench --bench import_requests`

use std::sync::Arc;
use std::time::{Duration, Instant};

use autopilot_wizard::graph::client::{GraphClient, StaticToken};
use autopilot_wizard::hwid::{CheckOptions, check_files};
use autopilot_wizard::sim::autopilot::build_hardware_hash;
use autopilot_wizard::sim::{self, Seed, SimConfig, Speed};
use autopilot_wizard::steps::import::{
    self, ImportOptions, ImportPhase, NoObserver, PollPolicy, RequestStats,
};
use autopilot_wizard::ui::import::rows_from_report;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio_util::sync::CancellationToken;

const DEVICES: usize = 500;
const PAGE_SIZE: usize = 100;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let speed = Speed::TEST;
    let config = SimConfig {
        seed: Seed::Empty,
        page_size: PAGE_SIZE,
        speed,
        ..SimConfig::test()
    };
    let sim = sim::spawn(config).await.expect("simulated tenant");
    let admin = sim.admin();
    let graph = GraphClient::new(
        &sim.url(),
        Arc::new(StaticToken(sim.issue_token(&admin.user_principal_name))),
    );
    let (import_time, sync_time) = sim.with_state(|s| {
        (
            s.autopilot.settings.import_service_time,
            s.autopilot.settings.sync_service_time,
        )
    });

    // The "picked" file: 500 rows as Get-WindowsAutopilotInfo writes them (3 columns + tag).
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("devices.csv");
    let mut text =
        String::from("Device Serial Number,Windows Product ID,Hardware Hash,Group Tag\r\n");
    for i in 0..DEVICES {
        let serial = format!("BENCH{i:05}");
        let hash = STANDARD.encode(build_hardware_hash(&serial, "Contoso", "Desk 5", i as u64));
        text.push_str(&format!("{serial},,{hash},HQ\r\n"));
    }
    std::fs::write(&path, text).expect("write CSV");

    let started = Instant::now();
    let report = check_files(&[path], &CheckOptions::default());
    let rows: Vec<_> = rows_from_report(&report)
        .into_iter()
        .map(|(r, _, _)| r)
        .collect();
    assert_eq!(rows.len(), DEVICES, "the reader kept every row");

    // Poll once the service time has passed (as a client that knows the service takes minutes
    // would), then back off.
    let poll = |first: Duration| PollPolicy {
        initial: first,
        max: first * 8,
        factor: 1.5,
        timeout: Duration::from_secs(120),
    };
    let opts = ImportOptions {
        processing: poll(speed.scaled(import_time) * 2),
        waiting: poll(speed.scaled(sync_time) * 2),
        sync_min_interval: speed.scaled(Duration::from_secs(600)),
        ..ImportOptions::default()
    };
    sim.clear_requests();
    let mut job = import::precheck(&graph, rows, &opts)
        .await
        .expect("precheck");
    import::run(
        &graph,
        &mut job,
        &opts,
        &NoObserver,
        &CancellationToken::new(),
    )
    .await
    .expect("import");
    assert_eq!(job.phase, ImportPhase::Done);
    assert_eq!(job.counts().registered, DEVICES, "every device registered");
    let elapsed = started.elapsed();

    let served = sim.requests();
    // Requests the sim served on behalf of $batch are not extra client requests.
    let inner = served
        .iter()
        .filter(|r| r.method == http::Method::DELETE)
        .count();
    let per = |n: u32| n as f64 / DEVICES as f64;
    let RequestStats {
        precheck,
        import,
        poll,
        cleanup,
        sync,
        wait,
    } = job.stats.clone();
    println!(
        "import_requests: {DEVICES} devices, page size {PAGE_SIZE}, chunk {}",
        opts.chunk_size
    );
    println!("{:<10} {:>9} {:>12}", "phase", "requests", "per device");
    for (name, n) in [
        ("precheck", precheck),
        ("import", import),
        ("poll", poll),
        ("cleanup", cleanup),
        ("sync", sync),
        ("wait", wait),
        ("total", job.stats.total()),
    ] {
        println!("{name:<10} {n:>9} {:>12.3}", per(n));
    }
    println!(
        "server side: {} requests served, of which {inner} DELETEs inside $batch; {} client requests",
        served.len(),
        served.len() - inner
    );
    println!("wall time {elapsed:?} (test speed)");
    let total = per(job.stats.total());
    println!(
        "target ≤ 0.100 requests per device: {}",
        if total <= 0.1 { "met" } else { "NOT met" }
    );

    static_group(&sim, &graph).await;
}

/// The imported devices into a new assigned group: requests per device of
/// `ensure_static_members`, split into reads and member adds.
async fn static_group(sim: &sim::SimHandle, graph: &GraphClient) {
    use autopilot_wizard::graph::ApiVersion;
    use autopilot_wizard::steps::assignment::{self, GroupMembership, Target, WaitOptions};
    let group: serde_json::Value = graph
        .post_json(
            ApiVersion::V1,
            "/groups",
            &serde_json::json!({
                "displayName": "Bench static",
                "mailEnabled": false,
                "mailNickname": "benchstatic",
                "securityEnabled": true,
            }),
        )
        .await
        .expect("group created");
    let target = Target {
        group_id: group["id"].as_str().expect("group id").to_string(),
        group_name: "Bench static".into(),
        membership: GroupMembership::Static,
        profile_id: String::new(),
        profile_name: String::new(),
    };
    let devices = assignment::list_devices(graph).await.expect("devices");
    assert_eq!(devices.len(), DEVICES);
    let wait = WaitOptions {
        first_poll: Duration::from_millis(5),
        max_poll: Duration::from_millis(50),
        phase_timeout: Duration::from_secs(60),
    };
    // The new group becomes readable after Entra's replication delay (scaled).
    tokio::time::sleep(Duration::from_millis(20)).await;
    sim.clear_requests();
    let started = Instant::now();
    let report = assignment::ensure_static_members(graph, &target, &devices, &wait, |_| {})
        .await
        .expect("members added");
    assert_eq!(report.confirmed.len(), DEVICES);
    let served = sim.requests();
    let count =
        |f: &dyn Fn(&sim::core::RequestRecord) -> bool| served.iter().filter(|r| f(r)).count();
    let patch = count(&|r| r.method == http::Method::PATCH);
    let post_ref = count(&|r| r.method == http::Method::POST && r.path.ends_with("/$ref"));
    let resolve = count(&|r| r.method == http::Method::GET && r.path.ends_with("/devices"));
    let reads = count(&|r| r.method == http::Method::GET && r.path.contains("/groups/"));
    let per = |n: usize| n as f64 / DEVICES as f64;
    println!();
    println!("static group: {DEVICES} devices into an assigned group");
    println!("{:<22} {:>9} {:>12}", "part", "requests", "per device");
    for (name, n) in [
        ("add (PATCH)", patch),
        ("add (POST $ref)", post_ref),
        ("resolve Entra objects", resolve),
        ("group reads", reads),
        ("whole phase", served.len()),
    ] {
        println!("{name:<22} {n:>9} {:>12.3}", per(n));
    }
    println!("wall time {:?} (test speed)", started.elapsed());
    let adds = per(patch + post_ref);
    println!(
        "target ≤ 0.100 requests per device for adding members: {}",
        if adds <= 0.1 { "met" } else { "NOT met" }
    );
}
