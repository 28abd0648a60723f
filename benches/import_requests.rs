//! Graph requests needed to import 500 devices against the simulated tenant (page size 100,
//! fixed service times, test speed), from the picked file to every device registered, cleanup
//! included. Prints requests per device for each phase and in total (target: ≤ 0.1).
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
}
