//! Step 5 (hardware-hash import) against the simulated tenant over real HTTP.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use autopilot_wizard::graph::client::{GraphClient, RetryPolicy};
use autopilot_wizard::graph::models::autopilot::{ImportRequest, NewImportedDevice};
use autopilot_wizard::graph::{ApiVersion, GraphError};
use autopilot_wizard::sim::autopilot::build_hardware_hash;
use autopilot_wizard::sim::core::{Fault, ScriptedFault};
use autopilot_wizard::sim::{self, Seed, SimConfig, SimHandle, Speed};
use autopilot_wizard::steps::import::{
    self, FnObserver, ImportEvent, ImportJob, ImportOptions, ImportPhase, ImportRow, NoObserver,
    PollPolicy, RowOutcome, SyncOutcome,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

fn config(page_size: usize) -> SimConfig {
    SimConfig {
        seed: Seed::Empty,
        page_size,
        ..SimConfig::test()
    }
}

async fn start(config: SimConfig) -> (SimHandle, GraphClient) {
    support::signed_in_sim(config).await
}

fn client(sim: &SimHandle) -> GraphClient {
    support::client_for(sim, &sim.admin().user_principal_name)
}

fn fast_poll() -> PollPolicy {
    PollPolicy {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(40),
        factor: 1.5,
        timeout: Duration::from_secs(30),
    }
}

fn opts() -> ImportOptions {
    ImportOptions {
        processing: fast_poll(),
        waiting: fast_poll(),
        sync_min_interval: Speed::TEST.scaled(Duration::from_secs(600)),
        ..ImportOptions::default()
    }
}

/// Runs the whole import with the fast test options, no observer, and expects it to finish.
async fn run_to_end(graph: &GraphClient, job: &mut ImportJob) {
    import::run(graph, job, &opts(), &NoObserver, &CancellationToken::new())
        .await
        .unwrap();
}

fn hash(serial: &str, manufacturer: &str, model: &str, salt: u64) -> String {
    STANDARD.encode(build_hardware_hash(serial, manufacturer, model, salt))
}

fn row(serial: &str, salt: u64) -> ImportRow {
    ImportRow {
        serial: serial.into(),
        hash: hash(serial, "Contoso", "Laptop 7", salt),
        group_tag: "HQ".into(),
        file: "devices.csv".into(),
        line: salt as usize + 2,
        ..Default::default()
    }
}

fn outcome_of<'a>(job: &'a ImportJob, serial: &str) -> &'a RowOutcome {
    &job.rows
        .iter()
        .find(|r| r.row.serial == serial)
        .expect("row present")
        .outcome
}

#[tokio::test]
async fn import_registers_every_device_end_to_end() {
    let (sim, graph) = start(config(5)).await;
    let rows: Vec<ImportRow> = (0..3).map(|i| row(&format!("SN-E2E-{i}"), i)).collect();
    let mut job = import::precheck(&graph, rows, &opts()).await.unwrap();
    assert_eq!(job.counts().ready, 3);
    run_to_end(&graph, &mut job).await;

    assert_eq!(job.phase, ImportPhase::Done);
    assert!(job.is_validated(), "{:#?}", job.rows);
    assert!(matches!(job.sync, Some(SyncOutcome::Triggered { .. })));
    sim.with_state(|s| {
        let ap = &s.autopilot;
        assert!(ap.imports.is_empty(), "import records were deleted");
        assert!(
            ap.sync.last_manual_trigger.is_some(),
            "a sync was requested"
        );
        for i in 0..3 {
            let d = ap
                .device_by_serial(&format!("SN-E2E-{i}"))
                .expect("registered");
            assert_eq!(d.manufacturer, "Contoso");
            assert_eq!(d.model, "Laptop 7");
            assert_eq!(d.group_tag, "HQ");
            assert!(!d.azure_ad_device_id.is_empty());
        }
    });
    // Read back through Graph as the step's validation does.
    for r in &job.rows {
        let RowOutcome::Registered { device_id } = &r.outcome else {
            panic!("{:?}", r.outcome)
        };
        let d: Value = graph
            .get_json(
                ApiVersion::Beta,
                &format!("/deviceManagement/windowsAutopilotDeviceIdentities/{device_id}"),
            )
            .await
            .unwrap();
        assert_eq!(d["serialNumber"], r.row.serial.as_str());
        assert_eq!(d["deploymentProfileAssignmentStatus"], "notAssigned");
    }

    // Re-importing the same file is safe: everything is found as registered.
    let again: Vec<ImportRow> = (0..3).map(|i| row(&format!("SN-E2E-{i}"), i)).collect();
    let job2 = import::precheck(&graph, again, &opts()).await.unwrap();
    assert_eq!(job2.counts().already_registered, 3);
    assert_eq!(job2.counts().ready, 0);
}

#[tokio::test]
async fn mixed_failures_are_each_explained() {
    let (sim, graph) = start(config(5)).await;
    sim.with_state(|s| {
        s.autopilot
            .settings
            .other_tenant_serials
            .push("SN-OTHER".into());
        let mut d = sim::autopilot::AutopilotDevice::new("ztd-existing".into(), "SN-HERE".into());
        d.group_tag = "Old".into();
        s.autopilot.devices.push(d);
    });
    let dup = row("SN-DUP", 50);
    let mut no_manufacturer = row("SN-BADHASH", 60);
    no_manufacturer.hash = hash("SN-BADHASH", "", "Laptop 7", 60);
    let rows = vec![
        row("SN-GOOD", 1),
        row("SN-HERE", 2),
        row("SN-OTHER", 3),
        dup.clone(),
        ImportRow {
            line: 99,
            ..dup.clone()
        },
        no_manufacturer,
    ];

    // The precheck already recognises the registered device and the duplicate.
    let checked = import::precheck(&graph, rows.clone(), &opts())
        .await
        .unwrap();
    assert!(matches!(
        outcome_of(&checked, "SN-HERE"),
        RowOutcome::AlreadyRegistered { group_tag, .. } if group_tag == "Old"
    ));
    assert!(matches!(
        checked.rows[4].outcome,
        RowOutcome::Duplicate { of_line: 52, .. }
    ));

    // Sent without the precheck, the service itself reports each problem.
    let mut job = ImportJob::new(rows);
    run_to_end(&graph, &mut job).await;
    assert!(matches!(
        outcome_of(&job, "SN-GOOD"),
        RowOutcome::Registered { .. }
    ));
    match outcome_of(&job, "SN-HERE") {
        RowOutcome::AlreadyRegistered {
            device_id, note, ..
        } => {
            assert_eq!(device_id, "ztd-existing");
            assert!(note.contains("806"), "{note}");
        }
        other => panic!("806 row: {other:?}"),
    }
    let failure = |o: &RowOutcome| match o {
        RowOutcome::Failed {
            name,
            summary,
            action,
            ..
        } => (name.clone(), format!("{summary} {action}")),
        other => panic!("expected a failure, got {other:?}"),
    };
    let (name, text) = failure(outcome_of(&job, "SN-OTHER"));
    assert_eq!(name, "ZtdDeviceAssignedToOtherTenant");
    assert!(text.contains("another organisation") && text.contains("deregister"));
    let (name, text) = failure(&job.rows[4].outcome);
    assert_eq!(name, "ZtdDeviceDuplicated");
    assert!(text.contains("twice"));
    assert!(matches!(job.rows[3].outcome, RowOutcome::Registered { .. }));
    let (name, text) = failure(outcome_of(&job, "SN-BADHASH"));
    assert_eq!(name, "InvalidZtdHardwareHash");
    assert!(text.contains("manufacturer"));

    // Failures block Next until deliberately left out.
    assert!(!job.is_validated());
    job.exclude_failed("left out by the admin");
    assert!(job.is_validated());
    sim.with_state(|s| assert!(s.autopilot.imports.is_empty(), "failed records deleted too"));
}

#[tokio::test]
async fn storage_errors_can_be_retried() {
    let (sim, graph) = start(config(5)).await;
    sim.with_state(|s| s.autopilot.settings.storage_error_rate = 1.0);
    let mut job = import::precheck(&graph, vec![row("SN-640", 1)], &opts())
        .await
        .unwrap();
    run_to_end(&graph, &mut job).await;
    assert!(matches!(
        outcome_of(&job, "SN-640"),
        RowOutcome::Failed { code: 640, summary, .. } if summary.contains("temporary")
    ));
    sim.with_state(|s| s.autopilot.settings.storage_error_rate = 0.0);
    assert_eq!(job.retry_failed(), 1);
    run_to_end(&graph, &mut job).await;
    assert!(job.is_validated(), "{:?}", job.rows[0].outcome);
}

#[tokio::test]
async fn unpadded_hash_is_rejected_by_graph_and_padded_by_the_step() {
    let (sim, graph) = start(config(5)).await;
    // 5 bytes of payload after the header make a Base64 length that needs padding.
    let bytes = build_hardware_hash("SN-PAD", "Contoso", "Laptop 7", 7);
    let bytes = if bytes.len().is_multiple_of(3) {
        [bytes, vec![0]].concat()
    } else {
        bytes
    };
    let padded = STANDARD.encode(&bytes);
    assert!(padded.ends_with('='));
    let unpadded = padded.trim_end_matches('=').to_string();

    let body = ImportRequest {
        imported_windows_autopilot_device_identities: vec![NewImportedDevice::new(
            "SN-PAD",
            "",
            unpadded.clone(),
            "",
            "",
        )],
    };
    let err = graph
        .post_json::<_, Value>(
            ApiVersion::Beta,
            "/deviceManagement/importedWindowsAutopilotDeviceIdentities/import",
            &body,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains("Edm.Binary"), "{err}");
    sim.with_state(|s| assert!(s.autopilot.imports.is_empty(), "whole POST rejected"));

    let mut r = row("SN-PAD", 7);
    r.hash = unpadded;
    let mut job = import::precheck(&graph, vec![r], &opts()).await.unwrap();
    assert!(job.rows[0].hash_fixed);
    run_to_end(&graph, &mut job).await;
    assert!(job.is_validated());
}

#[tokio::test]
async fn five_hundred_rows_are_chunked_and_polled_by_pages() {
    let (sim, graph) = start(config(100)).await;
    let rows: Vec<ImportRow> = (0..500)
        .map(|i| row(&format!("SN-BULK-{i:04}"), i))
        .collect();
    let mut job = import::precheck(&graph, rows, &opts()).await.unwrap();
    run_to_end(&graph, &mut job).await;
    assert!(job.is_validated());
    assert_eq!(job.counts().registered, 500);
    sim.with_state(|s| {
        let ap = &s.autopilot;
        assert_eq!(ap.count("import"), 5, "100 rows per POST");
        assert_eq!(ap.count("createImported"), 0);
        assert_eq!(ap.count("getImported"), 0, "no per-record GETs");
        assert_eq!(ap.count("getDevice"), 0, "no per-device GETs");
        // Each poll reads all 500 records in pages of 100.
        assert_eq!(
            ap.count("listImported") % 5,
            1,
            "precheck page + whole polls"
        );
        assert!(ap.count("batch") >= 25, "deletes in batches of 20");
        assert_eq!(ap.count("deleteImported"), 500);
        assert!(ap.imports.is_empty());
        assert_eq!(ap.devices.len(), 500);
    });
    assert_eq!(job.stats.import, 5);
}

#[tokio::test]
async fn polling_survives_throttling_and_outages() {
    let (sim, graph) = start(config(5)).await;
    let ms = Duration::from_millis(10);
    sim.script_faults(vec![
        ScriptedFault::new(
            Some(http::Method::GET),
            "importedWindowsAutopilotDeviceIdentities",
            Fault::Throttle { retry_after: ms },
            2,
        ),
        ScriptedFault::new(
            Some(http::Method::GET),
            "importedWindowsAutopilotDeviceIdentities",
            Fault::Unavailable { retry_after: None },
            2,
        ),
        ScriptedFault::new(
            Some(http::Method::POST),
            "importedWindowsAutopilotDeviceIdentities/import",
            Fault::Throttle { retry_after: ms },
            1,
        ),
        ScriptedFault::new(
            Some(http::Method::GET),
            "windowsAutopilotDeviceIdentities",
            Fault::GatewayTimeout,
            1,
        ),
    ]);
    let rows: Vec<ImportRow> = (0..7).map(|i| row(&format!("SN-FLAKY-{i}"), i)).collect();
    let mut job = import::precheck(&graph, rows, &opts()).await.unwrap();
    run_to_end(&graph, &mut job).await;
    assert!(job.is_validated());
    sim.with_state(|s| assert!(s.core.faults.script.is_empty(), "every fault was hit"));
    let throttled = sim.requests().iter().filter(|r| r.status == 429).count();
    assert_eq!(throttled, 3);
}

#[tokio::test]
async fn resume_after_restart_never_uploads_a_row_twice() {
    let (sim, graph) = start(config(5)).await;
    let saved = Arc::new(Mutex::new(String::new()));
    let cancel = CancellationToken::new();
    let rows: Vec<ImportRow> = (0..12).map(|i| row(&format!("SN-RESUME-{i}"), i)).collect();
    let mut job = import::precheck(&graph, rows, &opts()).await.unwrap();
    let small = ImportOptions {
        chunk_size: 5,
        ..opts()
    };
    {
        let saved = saved.clone();
        let stop = cancel.clone();
        let obs = FnObserver(
            move |e: ImportEvent| {
                if e == ImportEvent::Phase(ImportPhase::Processing) {
                    stop.cancel();
                }
            },
            move |j: &ImportJob| *saved.lock().unwrap() = serde_json::to_string(j).unwrap(),
        );
        let err = import::run(&graph, &mut job, &small, &obs, &cancel)
            .await
            .unwrap_err();
        assert!(matches!(err, import::ImportError::Cancelled), "{err}");
    }
    drop(job);
    drop(graph);
    sim.with_state(|s| assert_eq!(s.autopilot.rows_received, 12));

    // "Restart": only the saved JSON survives. Make the last chunk look interrupted between
    // its POST and the answer, the worst case.
    let mut job: ImportJob = serde_json::from_str(&saved.lock().unwrap()).unwrap();
    assert_eq!(job.phase, ImportPhase::Processing);
    let last = job.chunks.len() - 1;
    job.chunks[last].state = import::ChunkState::Sending;
    for &i in &job.chunks[last].rows.clone() {
        job.rows[i].outcome = RowOutcome::Ready;
    }
    job.phase = ImportPhase::Uploading;

    let graph = client(&sim);
    import::run(
        &graph,
        &mut job,
        &small,
        &NoObserver,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(job.is_validated(), "{:#?}", job.rows);
    sim.with_state(|s| {
        assert_eq!(s.autopilot.rows_received, 12, "no row uploaded twice");
        assert_eq!(s.autopilot.count("import"), 3);
        assert_eq!(s.autopilot.devices.len(), 12);
    });
}

#[tokio::test]
async fn sync_inside_the_window_waits_or_reports_already_syncing() {
    let (sim, graph) = start(config(5)).await;
    sim.with_state(|s| {
        // Keep the window open for the first part of the test, however slow the machine.
        s.autopilot.settings.manual_sync_min_interval = Duration::from_secs(3600 * 24);
    });
    // A sync someone else started just now.
    graph
        .post_no_content::<Value>(
            ApiVersion::Beta,
            "/deviceManagement/windowsAutopilotSettings/sync",
            None,
        )
        .await
        .unwrap();
    let second: Result<_, GraphError> = client(&sim)
        .with_retry(RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        })
        .post_no_content::<Value>(
            ApiVersion::Beta,
            "/deviceManagement/windowsAutopilotSettings/sync",
            None,
        )
        .await;
    let err = second.unwrap_err();
    assert_eq!(err.status(), Some(429));

    // Told the window is shorter than it is, the step gets the 429 and carries on.
    let mut job = import::precheck(&graph, vec![row("SN-SYNC-1", 1)], &opts())
        .await
        .unwrap();
    let hasty = ImportOptions {
        sync_min_interval: Duration::ZERO,
        ..opts()
    };
    import::run(
        &graph,
        &mut job,
        &hasty,
        &NoObserver,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(matches!(job.sync, Some(SyncOutcome::AlreadySyncing { .. })));
    assert!(job.is_validated(), "the periodic service sync publishes it");

    // Honouring the window: the step counts down, then syncs.
    sim.with_state(|s| {
        // 300 ms at test speed.
        s.autopilot.settings.manual_sync_min_interval = Duration::from_secs(6000);
        s.autopilot.sync.last_manual_trigger_at = None;
    });
    let countdowns = Arc::new(Mutex::new(Vec::new()));
    let seen = countdowns.clone();
    let obs = FnObserver(
        move |e: ImportEvent| {
            if let ImportEvent::SyncCountdown { remaining } = e {
                seen.lock().unwrap().push(remaining);
            }
        },
        |_: &ImportJob| {},
    );
    graph
        .post_no_content::<Value>(
            ApiVersion::Beta,
            "/deviceManagement/windowsAutopilotSettings/sync",
            None,
        )
        .await
        .ok();
    let mut job = import::precheck(&graph, vec![row("SN-SYNC-2", 2)], &opts())
        .await
        .unwrap();
    let patient = ImportOptions {
        sync_min_interval: Duration::from_millis(300),
        ..opts()
    };
    import::run(&graph, &mut job, &patient, &obs, &CancellationToken::new())
        .await
        .unwrap();
    assert!(matches!(job.sync, Some(SyncOutcome::Triggered { .. })));
    let c = countdowns.lock().unwrap();
    assert!(
        c.iter().any(|d| !d.is_zero()),
        "a countdown was shown: {c:?}"
    );
    assert_eq!(c.last(), Some(&Duration::ZERO));
}

#[tokio::test]
async fn group_tag_of_a_registered_device_can_be_updated_instead() {
    let (sim, graph) = start(config(5)).await;
    sim.with_state(|s| {
        s.autopilot
            .devices
            .push(sim::autopilot::AutopilotDevice::new(
                "ztd-9".into(),
                "SN-TAG".into(),
            ))
    });
    let mut r = row("SN-TAG", 1);
    r.group_tag = "Sales".into();
    let job = import::precheck(&graph, vec![r], &opts()).await.unwrap();
    let RowOutcome::AlreadyRegistered {
        device_id,
        group_tag,
        ..
    } = &job.rows[0].outcome
    else {
        panic!("{:?}", job.rows[0].outcome)
    };
    assert_eq!(group_tag, "");
    let d = import::update_group_tag(&graph, device_id, "Sales")
        .await
        .unwrap();
    assert_eq!(d.group_tag.as_deref(), Some("Sales"));
    sim.with_state(|s| {
        assert_eq!(
            s.autopilot.device_by_serial("SN-TAG").unwrap().group_tag,
            "Sales"
        )
    });
}

// ---- the reader's rows and the page ----------------------------------------------------------

/// A CSV as Get-WindowsAutopilotInfo writes it with a group tag column (UTF-8 here).
fn csv(rows: &[(&str, &str, &str)]) -> String {
    let mut s = String::from("Device Serial Number,Windows Product ID,Hardware Hash,Group Tag\r\n");
    for (serial, hash, tag) in rows {
        s.push_str(&format!("{serial},,{hash},{tag}\r\n"));
    }
    s
}

/// A hash whose Base64 needs padding, with the padding stripped (as devices emit it).
fn unpadded_hash(serial: &str, salt: u64) -> String {
    let mut bytes = build_hardware_hash(serial, "Contoso", "Laptop 7", salt);
    if bytes.len().is_multiple_of(3) {
        bytes.push(0);
    }
    STANDARD.encode(bytes).trim_end_matches('=').to_string()
}

#[tokio::test]
async fn rows_from_the_csv_reader_import_with_the_padding_fixed() {
    let (sim, graph) = start(config(5)).await;
    let text = csv(&[
        (
            "SN-CSV-1",
            &hash("SN-CSV-1", "Contoso", "Laptop 7", 1),
            "HQ",
        ),
        ("SN-CSV-2", &unpadded_hash("SN-CSV-2", 2), "HQ"),
    ]);
    let report = autopilot_wizard::hwid::check_bytes(
        "devices.csv",
        text.as_bytes(),
        &autopilot_wizard::hwid::CheckOptions::default(),
    );
    let rows: Vec<ImportRow> = autopilot_wizard::ui::import::rows_from_report(&report)
        .into_iter()
        .map(|(r, _, _)| r)
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(rows[1].hash.ends_with('='), "the reader padded it");
    assert_eq!(rows[1].line, 3);
    let mut job = import::precheck(&graph, rows, &opts()).await.unwrap();
    run_to_end(&graph, &mut job).await;
    assert!(job.is_validated(), "{:#?}", job.rows);
    sim.with_state(|s| {
        let d = s.autopilot.device_by_serial("SN-CSV-2").unwrap();
        assert_eq!(d.group_tag, "HQ");
        // The Entra object Autopilot creates carries the ZTD id and the group tag.
        let entra = s
            .directory
            .device_by_device_id(&d.azure_ad_device_id)
            .expect("Entra device object created");
        assert!(entra.physical_ids.contains(&format!("[ZTDId]:{}", d.id)));
        assert!(entra.physical_ids.contains(&"[OrderID]:HQ".to_string()));
    });
}

mod page {
    use super::*;
    use autopilot_wizard::steps::Outcomes;
    use autopilot_wizard::ui::import::ImportPage;
    use autopilot_wizard::ui::widgets::palette;
    use autopilot_wizard::ui::{
        self, FilePicker, FixedFilePicker, Job, NoDialog, NoDialogPicker, Outbox, Page, PageCx,
        Session,
    };
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable;
    use support::ui::{click, step_until, visible_labels, wait_for_text};

    /// The page alone, with the app's job plumbing: jobs run on tokio, messages come back.
    struct Host {
        page: ImportPage,
        session: Session,
        outcomes: Outcomes,
        jobs: Vec<Job>,
        picker: Arc<dyn FilePicker>,
        tx: std::sync::mpsc::Sender<ui::Msg>,
        rx: std::sync::mpsc::Receiver<ui::Msg>,
        rt: tokio::runtime::Handle,
    }

    impl Host {
        fn show(&mut self, ui: &mut egui::Ui) {
            while let Ok(msg) = self.rx.try_recv() {
                if let ui::Msg::Import(m) = msg {
                    let mut cx = PageCx::new(&mut self.session, &mut self.outcomes, &mut self.jobs)
                        .with_file_picker(self.picker.clone());
                    self.page.on_msg(m, &mut cx);
                }
            }
            let mut cx = PageCx::new(&mut self.session, &mut self.outcomes, &mut self.jobs)
                .with_file_picker(self.picker.clone());
            self.page.ui(ui, &mut cx);
            for job in self.jobs.drain(..) {
                let out = Outbox::new(self.tx.clone(), ui.ctx().clone());
                self.rt.spawn((job.run)(out));
            }
        }
    }

    /// The import page alone in a kittest harness, picking `path`, with `outcomes` from earlier
    /// steps.
    fn harness(
        rt: &tokio::runtime::Runtime,
        graph: GraphClient,
        outcomes: Outcomes,
        path: std::path::PathBuf,
    ) -> Harness<'static, Host> {
        harness_with(
            rt,
            graph,
            outcomes,
            Arc::new(FixedFilePicker { paths: vec![path] }),
        )
    }

    fn harness_with(
        rt: &tokio::runtime::Runtime,
        graph: GraphClient,
        outcomes: Outcomes,
        picker: Arc<dyn FilePicker>,
    ) -> Harness<'static, Host> {
        let (tx, rx) = std::sync::mpsc::channel();
        let host = Host {
            page: ImportPage::new(opts()),
            session: Session {
                graph: Some(graph),
                simulated: true,
            },
            outcomes,
            jobs: Vec::new(),
            picker,
            tx,
            rx,
            rt: rt.handle().clone(),
        };
        let mut h = Harness::builder()
            .with_size([1200.0, 800.0])
            .build_ui_state(|ui, host: &mut Host| host.show(ui), host);
        h.run_ok();
        h
    }

    /// Issue 14: an import under way when the app closed goes on by itself once the page is
    /// checked again after the restart, instead of waiting for "Continue the import".
    #[test]
    fn an_interrupted_import_continues_by_itself_after_a_restart() {
        let rt = support::ui::runtime();
        let (sim, graph) = rt.block_on(start(config(5)));
        let mut job = ImportJob::new(vec![row("SN-RESUME-1", 1), row("SN-RESUME-2", 2)]);
        job.phase = ImportPhase::Uploading;
        let outcomes = Outcomes {
            import: Some(job),
            ..Outcomes::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let mut h = harness(&rt, graph, outcomes, dir.path().join("unused.csv"));
        {
            // What the app does after the restart's sign-in.
            let host = h.state_mut();
            let mut cx = PageCx::new(&mut host.session, &mut host.outcomes, &mut host.jobs);
            host.page.revalidate(&mut cx);
        }
        h.run_ok();
        assert!(
            h.query_by_label("Continue the import").is_none(),
            "nobody needs to click: {}",
            visible_labels(&h)
        );
        step_until(
            &mut h,
            "the import to finish by itself",
            |h| h.query_by_label_contains("Import finished").is_some(),
            support::ui::ASYNC_TIMEOUT,
        );
        let registered = sim.with_state(|s| {
            s.autopilot
                .devices
                .iter()
                .filter(|d| d.serial_number.starts_with("SN-RESUME-"))
                .count()
        });
        assert_eq!(registered, 2);
    }

    #[test]
    fn page_previews_imports_and_explains_every_outcome() {
        let rt = support::ui::runtime();
        let (sim, graph) = rt.block_on(start(config(5)));
        sim.with_state(|s| {
            s.autopilot
                .settings
                .other_tenant_serials
                .push("SN-UI-OTHER".into());
            let mut d = sim::autopilot::AutopilotDevice::new("ztd-ui".into(), "SN-UI-HERE".into());
            d.group_tag = "Old".into();
            s.autopilot.devices.push(d);
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.csv");
        let text = csv(&[
            ("SN-UI-1", &hash("SN-UI-1", "Contoso", "Laptop 7", 1), "HQ"),
            ("SN-UI-2", &unpadded_hash("SN-UI-2", 2), "HQ"),
            (
                "SN-UI-HERE",
                &hash("SN-UI-HERE", "Contoso", "Laptop 7", 3),
                "HQ",
            ),
            (
                "SN-UI-OTHER",
                &hash("SN-UI-OTHER", "Contoso", "Laptop 7", 4),
                "HQ",
            ),
            ("SN-UI-BROKEN", "not*base64", "HQ"),
        ]);
        std::fs::write(&path, text).unwrap();

        let mut h = harness(&rt, graph, Outcomes::default(), path);

        click(&mut h, "Choose CSV files…");
        wait_for_text(&mut h, "5 rows:");
        // Rows, the CSV error, the tenant's knowledge and the repaired padding are visible.
        wait_for_text(
            &mut h,
            "SN-UI-BROKEN: The hardware hash is not valid Base64",
        );
        wait_for_text(&mut h, "SN-UI-HERE: Already registered (group tag \"Old\"");
        assert!(
            h.query_by_label_contains("SN-UI-1: Ready to import")
                .is_some()
        );
        assert!(h.query_by_label_contains("1 fixed automatically").is_some());
        assert!(
            !support::ui::is_enabled(&h, "Import"),
            "errors block the import until excluded"
        );
        click(&mut h, "Exclude rows with errors");
        assert!(support::ui::is_enabled(&h, "Import"));
        click(&mut h, "Import");

        step_until(
            &mut h,
            "the import to finish",
            |h| h.query_by_label_contains("Import finished").is_some(),
            support::ui::ASYNC_TIMEOUT,
        );
        for text in [
            "SN-UI-1: Registered",
            "SN-UI-2: Registered",
            "SN-UI-HERE: Already registered",
            "SN-UI-OTHER: Registered to another organisation (808)",
            "SN-UI-BROKEN: Left out: problem in the CSV",
        ] {
            assert!(
                h.query_by_label_contains(text).is_some(),
                "{text:?} missing; visible:\n{}",
                visible_labels(&h)
            );
        }
        assert!(
            !h.state().page.validated(),
            "the 808 device is not explained away yet"
        );
        click(&mut h, "Leave failed devices out");
        assert!(h.state().page.validated());
        assert!(h.state().outcomes.import.as_ref().unwrap().is_validated());
        // The existing device's tag can be changed instead of re-importing.
        click(&mut h, "Set group tag of SN-UI-HERE to HQ");
        step_until(
            &mut h,
            "the new group tag",
            |_| {
                sim.with_state(|s| {
                    s.autopilot
                        .device_by_serial("SN-UI-HERE")
                        .unwrap()
                        .group_tag
                        == "HQ"
                })
            },
            support::ui::ASYNC_TIMEOUT,
        );
        drop(h);
        drop(sim);
    }

    /// Where no file dialog can open, "Choose CSV files…" says so at once with what to install,
    /// and typed paths (Enter adds them) read the files.
    #[test]
    fn without_a_file_dialog_the_page_says_so_and_typed_paths_work() {
        let rt = support::ui::runtime();
        let (sim, graph) = rt.block_on(start(config(5)));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("typed.csv");
        std::fs::write(
            &path,
            csv(&[(
                "SN-TYPED-1",
                &hash("SN-TYPED-1", "Contoso", "Laptop 7", 1),
                "HQ",
            )]),
        )
        .unwrap();
        let picker = Arc::new(NoDialogPicker(NoDialog {
            why: "there is no desktop session bus (D-Bus) and zenity is not installed".into(),
        }));
        let mut h = harness_with(&rt, graph, Outcomes::default(), picker);
        click(&mut h, "Choose CSV files…");
        // At once: no job was needed to find out.
        assert!(h.state().jobs.is_empty());
        assert!(
            h.query_by_label_contains("No file dialog can open here")
                .is_some(),
            "visible:\n{}",
            visible_labels(&h)
        );
        assert!(
            h.query_by_label_contains("xdg-desktop-portal-gtk or zenity")
                .is_some()
        );
        assert!(h.query_by_label_contains("cancelled").is_none());

        // A path that does not exist is named; a real one is read.
        let field = || (egui::accesskit::Role::TextInput, "CSV file paths");
        h.get_by_role_and_label(field().0, field().1).focus();
        h.run_ok();
        h.get_by_role_and_label(field().0, field().1)
            .type_text("/nowhere/missing.csv");
        h.key_press(egui::Key::Enter);
        h.run_ok();
        assert!(
            h.query_by_label_contains("There is no file at /nowhere/missing.csv")
                .is_some()
        );
        h.get_by_role_and_label(field().0, field().1).focus();
        h.run_ok();
        for _ in 0..40 {
            h.key_press(egui::Key::Backspace);
        }
        h.get_by_role_and_label(field().0, field().1)
            .type_text(&format!("\"{}\"", path.display()));
        h.key_press(egui::Key::Enter);
        h.run_ok();
        wait_for_text(&mut h, "1 row:");
        wait_for_text(&mut h, "SN-TYPED-1: Ready to import");
        assert!(
            h.query_by_label_contains("No file dialog can open here")
                .is_none()
        );
        // Issue 18: "Add" adds a second file to the first instead of replacing it.
        let second = dir.path().join("second.csv");
        std::fs::write(
            &second,
            csv(&[(
                "SN-TYPED-2",
                &hash("SN-TYPED-2", "Contoso", "Laptop 7", 2),
                "HQ",
            )]),
        )
        .unwrap();
        h.get_by_role_and_label(field().0, field().1).focus();
        h.run_ok();
        h.get_by_role_and_label(field().0, field().1)
            .type_text(&second.display().to_string());
        h.run_ok();
        click(&mut h, "Add");
        wait_for_text(&mut h, "2 rows:");
        assert!(
            h.query_by_label_contains("SN-TYPED-1: Ready to import")
                .is_some()
        );
        assert!(
            h.query_by_label_contains("SN-TYPED-2: Ready to import")
                .is_some()
        );
        drop(h);
        drop(sim);
    }

    /// Every text the harness shows (labels and values), for comparisons with other reports.
    fn shown_texts<S>(h: &Harness<'_, S>) -> Vec<String> {
        use egui_kittest::kittest::NodeT;
        h.root()
            .children_recursive()
            .flat_map(|n| {
                let n = n.accesskit_node();
                [n.label(), n.value()]
                    .into_iter()
                    .flatten()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The colour the text containing `text` is painted in (the first such text shape).
    fn text_color<S>(h: &Harness<'_, S>, text: &str) -> egui::Color32 {
        fn find(shape: &egui::Shape, text: &str) -> Option<egui::Color32> {
            match shape {
                egui::Shape::Vec(v) => v.iter().find_map(|s| find(s, text)),
                egui::Shape::Text(t) if t.galley.text().contains(text) => Some(
                    t.galley
                        .job
                        .sections
                        .first()
                        .map(|s| s.format.color)
                        .filter(|c| *c != egui::Color32::PLACEHOLDER)
                        .unwrap_or(t.fallback_color),
                ),
                _ => None,
            }
        }
        h.output()
            .shapes
            .iter()
            .find_map(|c| find(&c.shape, text))
            .unwrap_or_else(|| panic!("no text {text:?} painted; visible:\n{}", visible_labels(h)))
    }

    /// The painted text that is exactly `text`: whether it was cut ("…") and on how many rows.
    fn painted<S>(h: &Harness<'_, S>, text: &str) -> (bool, usize) {
        fn find(shape: &egui::Shape, text: &str) -> Option<(bool, usize)> {
            match shape {
                egui::Shape::Vec(v) => v.iter().find_map(|s| find(s, text)),
                egui::Shape::Text(t) if t.galley.text() == text => {
                    Some((t.galley.elided, t.galley.rows.len()))
                }
                _ => None,
            }
        }
        h.output()
            .shapes
            .iter()
            .find_map(|c| find(&c.shape, text))
            .unwrap_or_else(|| panic!("no text {text:?} painted; visible:\n{}", visible_labels(h)))
    }

    /// Issue 18: in a laptop window (1100 wide, less the step list) the import table shows the
    /// device, its file and a 15-character serial whole, each on one line.
    #[test]
    fn the_import_table_fits_a_laptop_window_uncut() {
        let rt = support::ui::runtime();
        let (sim, graph) = rt.block_on(start(config(5)));
        let dir = tempfile::tempdir().unwrap();
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/csv");
        let hp = dir.path().join("01-utf16-plain-hp.csv");
        std::fs::copy(fixtures.join("01-utf16-plain-hp.csv"), &hp).unwrap();
        let long = dir.path().join("long-serials.csv");
        std::fs::write(
            &long,
            csv(&[(
                "SN-ABCDEFGHIJK1",
                &hash("SN-ABCDEFGHIJK1", "Contoso", "Laptop 7", 1),
                "HQ",
            )]),
        )
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let host = Host {
            page: ImportPage::new(opts()),
            session: Session {
                graph: Some(graph),
                simulated: true,
            },
            outcomes: Outcomes::default(),
            jobs: Vec::new(),
            picker: Arc::new(FixedFilePicker {
                paths: vec![hp, long],
            }),
            tx,
            rx,
            rt: rt.handle().clone(),
        };
        let mut h = Harness::builder()
            .with_size([880.0, 720.0])
            .build_ui_state(|ui, host: &mut Host| host.show(ui), host);
        h.run_ok();
        click(&mut h, "Choose CSV files…");
        wait_for_text(&mut h, "2 rows:");
        for text in [
            "HP EliteBook 840 G8 Notebook PC",
            "01-utf16-plain-hp.csv:2",
            "long-serials.csv:2",
            "SN-ABCDEFGHIJK1",
        ] {
            assert_eq!(painted(&h, text), (false, 1), "{text} is cut or wrapped");
        }
        drop(h);
        drop(sim);
    }

    /// Issue 18: the page says what `check-csv` says about the same files, for every fixture
    /// (and the duplicate pair read together): every finding about a file or a row is on the
    /// page, rows with errors are counted as the checker counts them, and the parts of the
    /// page's count add up to its rows.
    #[test]
    fn the_page_shows_what_check_csv_reports_for_every_fixture() {
        let rt = support::ui::runtime();
        let (sim, graph) = rt.block_on(start(config(50)));
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/csv");
        let mut sets: Vec<Vec<std::path::PathBuf>> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_none_or(|x| x != "py"))
            .map(|p| vec![p])
            .collect();
        sets.sort();
        sets.push(vec![
            dir.join("duplicates-a.csv"),
            dir.join("duplicates-b.csv"),
        ]);
        assert!(sets.len() > 30, "the fixtures are there");
        for paths in sets {
            let mut out = Vec::new();
            autopilot_wizard::hwid::run_check_csv(&paths, true, &mut out);
            let cli: serde_json::Value = serde_json::from_slice(&out).unwrap();
            let mut h = harness_with(
                &rt,
                graph.clone(),
                Outcomes::default(),
                Arc::new(FixedFilePicker {
                    paths: paths.clone(),
                }),
            );
            click(&mut h, "Choose CSV files…");
            let files = cli["files"].as_array().unwrap();
            // Rows of a file the checker refuses as a whole are not offered for import.
            let usable: Vec<&serde_json::Value> = files
                .iter()
                .filter(|f| {
                    !f["findings"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|x| x["severity"] == "error")
                })
                .collect();
            let rows: Vec<&serde_json::Value> = usable
                .iter()
                .flat_map(|f| f["rows"].as_array().unwrap())
                .collect();
            let count = format!(
                "{} {}:",
                rows.len(),
                if rows.len() == 1 { "row" } else { "rows" }
            );
            wait_for_text(&mut h, &count);
            let shown = shown_texts(&h);
            let on_page = |needle: &str, also: &str| {
                shown.iter().any(|t| t.contains(needle) && t.contains(also))
            };
            let name = format!("{paths:?}");
            for f in files {
                let file = autopilot_wizard::steps::import::file_name(f["path"].as_str().unwrap());
                for x in f["findings"].as_array().unwrap() {
                    let message = x["message"].as_str().unwrap();
                    assert!(
                        on_page(message, &file),
                        "{name}: the file finding {message:?} is not on the page:\n{}",
                        visible_labels(&h)
                    );
                }
            }
            for r in &rows {
                let serial = r["serial"].as_str().unwrap();
                for x in r["findings"].as_array().unwrap() {
                    let message = x["message"].as_str().unwrap();
                    assert!(
                        on_page(&format!("{serial}: "), message),
                        "{name}: the finding {message:?} of {serial:?} is not on the page:\n{}",
                        visible_labels(&h)
                    );
                }
            }
            let errors = rows.iter().filter(|r| r["status"] == "error").count();
            let fixed = rows.iter().filter(|r| r["status"] == "fixed").count();
            let summary = shown
                .iter()
                .find(|t| t.starts_with(&count))
                .cloned()
                .unwrap();
            assert!(
                summary.contains(&format!(" {errors} with errors"))
                    && summary.contains(&format!("; {fixed} fixed automatically")),
                "{name}: {summary:?} against {errors} errors, {fixed} fixed"
            );
            // The parts of the count add up to the rows.
            let parts: usize = summary[count.len()..]
                .split(';')
                .next()
                .unwrap()
                .split(',')
                .map(|p| {
                    p.split_whitespace()
                        .next()
                        .unwrap()
                        .parse::<usize>()
                        .unwrap()
                })
                .sum();
            assert_eq!(parts, rows.len(), "{name}: {summary:?}");
            drop(h);
        }
        drop(sim);
    }

    /// Issue 18: a duplicate serial with a different hash is an error in `check-csv`; the page
    /// says the same even when the tenant has that serial (not a green "Already registered"),
    /// and the retag offer counts only rows that will be imported.
    #[test]
    fn a_csv_error_wins_over_already_registered_and_is_not_offered_a_tag() {
        let rt = support::ui::runtime();
        let (sim, graph) = rt.block_on(start(config(5)));
        sim.with_state(|s| {
            let mut d = sim::autopilot::AutopilotDevice::new("ztd-dup".into(), "SN-DUP".into());
            d.group_tag = "HQ".into();
            d.assignment_status = "notAssigned".into();
            s.autopilot.devices.push(d);
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dup.csv");
        std::fs::write(
            &path,
            csv(&[
                ("SN-DUP", &hash("SN-DUP", "Contoso", "Laptop 7", 1), "HQ"),
                ("SN-DUP", &hash("SN-DUP", "Contoso", "Laptop 7", 2), ""),
                ("SN-NEW", &hash("SN-NEW", "Contoso", "Laptop 7", 3), ""),
            ]),
        )
        .unwrap();
        let mut out = Vec::new();
        autopilot_wizard::hwid::run_check_csv(std::slice::from_ref(&path), true, &mut out);
        let cli: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let second = &cli["files"][0]["rows"][1];
        assert_eq!(second["status"], "error", "{second}");
        let message = second["findings"][0]["message"]
            .as_str()
            .unwrap()
            .to_string();

        let mut h = harness(&rt, graph, tag_group("HQ"), path);
        click(&mut h, "Choose CSV files…");
        wait_for_text(
            &mut h,
            "3 rows: 1 ready, 1 already registered (skipped), 1 with errors;",
        );
        let error_row = format!("SN-DUP: {message}");
        assert!(
            h.query_by_label_contains(&error_row).is_some(),
            "{}",
            visible_labels(&h)
        );
        assert_eq!(text_color(&h, &error_row), palette::ERROR);
        // Registered, but no profile yet: not the green of a finished row.
        let registered = "SN-DUP: Already registered (group tag \"HQ\", no profile assigned)";
        assert!(h.query_by_label_contains(registered).is_some());
        assert_ne!(text_color(&h, registered), palette::SUCCESS);
        // Only SN-NEW is offered the tag, and the list has no blank serial.
        assert!(
            h.query_by_label("Give this device the group tag HQ")
                .is_some(),
            "{}",
            visible_labels(&h)
        );
        assert!(h.query_by_label("Without a tag: SN-NEW").is_some());
        // The tick about rows with errors is made anew for newly chosen files.
        click(&mut h, "Exclude rows with errors");
        assert!(support::ui::is_enabled(&h, "Import"));
        click(&mut h, "Choose CSV files…");
        // The old check's "3 rows:" stays until the new one is in: wait for the new check, whose
        // error row is not excluded, so Import stays closed.
        support::ui::step_until(
            &mut h,
            "the files checked anew, without the tick",
            |h| h.query_by_label("Import").is_some() && !support::ui::is_enabled(h, "Import"),
            support::ui::ASYNC_TIMEOUT,
        );
        drop(h);
        drop(sim);
    }

    /// Issue 18: checking more files after a finished import is a new batch; the finished
    /// import (and with it the steps after it) stays Done until the batch is imported, and the
    /// Group tag column shows the tag the wizard gave.
    #[test]
    fn a_new_batch_leaves_the_finished_import_done_until_it_is_imported() {
        let rt = support::ui::runtime();
        let (sim, graph) = rt.block_on(start(config(5)));
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first.csv");
        std::fs::write(
            &first,
            csv(&[("SN-B1", &hash("SN-B1", "Contoso", "Laptop 7", 1), "")]),
        )
        .unwrap();
        let second = dir.path().join("second.csv");
        std::fs::write(
            &second,
            csv(&[("SN-B2", &hash("SN-B2", "Contoso", "Laptop 7", 2), "HQ")]),
        )
        .unwrap();
        let mut h = harness(&rt, graph, tag_group("HQ"), first);
        click(&mut h, "Choose CSV files…");
        wait_for_text(&mut h, "1 row:");
        assert_eq!(h.query_all_by_label("HQ").count(), 0, "the file has no tag");
        click(&mut h, "Import");
        step_until(
            &mut h,
            "the first import",
            |h| h.state().page.validated(),
            support::ui::ASYNC_TIMEOUT,
        );
        // The tag the wizard sent in the import row is in the Group tag column.
        assert_eq!(
            h.query_all_by_label("HQ").count(),
            1,
            "{}",
            visible_labels(&h)
        );
        let done = h.state().outcomes.import.clone().unwrap();

        let field = || (egui::accesskit::Role::TextInput, "CSV file paths");
        h.get_by_role_and_label(field().0, field().1).focus();
        h.run_ok();
        h.get_by_role_and_label(field().0, field().1)
            .type_text(&second.display().to_string());
        h.run_ok();
        click(&mut h, "Add");
        wait_for_text(&mut h, "2 rows: 1 ready, 1 already registered (skipped)");
        assert!(h.query_by_label_contains("A new batch").is_some());
        assert!(h.state().page.validated(), "still Done");
        assert_eq!(h.state().page.status(), ui::StepStatus::Done);
        assert_eq!(
            h.state().outcomes.import.as_ref(),
            Some(&done),
            "the steps after it keep their input"
        );
        click(&mut h, "Import");
        step_until(
            &mut h,
            "the batch imported",
            |h| {
                h.state()
                    .outcomes
                    .import
                    .as_ref()
                    .is_some_and(|j| j.rows.len() == 2 && j.is_validated())
            },
            support::ui::ASYNC_TIMEOUT,
        );
        assert!(h.state().page.validated());
        drop(h);
        drop(sim);
    }

    fn tag_group(tag: &str) -> Outcomes {
        use autopilot_wizard::steps::group::{GroupKind, GroupRef, RuleSpec, build_rule};
        Outcomes {
            group: Some(GroupRef {
                id: "g-hq".into(),
                display_name: "Autopilot - HQ".into(),
                kind: GroupKind::Dynamic {
                    rule: build_rule(&RuleSpec::GroupTags(vec![tag.into()])).unwrap(),
                },
            }),
            ..Outcomes::default()
        }
    }

    /// Step 4's group goes by group tag: rows that would stay out are flagged before upload,
    /// empty tags get the group's tag by default (sent in the import row), a different tag is
    /// the person's choice, and the step is Done only once every device can reach the group —
    /// including a registered device whose file had no tag at all.
    #[test]
    fn rows_the_group_tag_keeps_out_are_tagged_or_left_out_knowingly() {
        let rt = support::ui::runtime();
        let (sim, graph) = rt.block_on(start(config(5)));
        sim.with_state(|s| {
            let mut d = sim::autopilot::AutopilotDevice::new("ztd-reg".into(), "SN-T-REG".into());
            d.group_tag = "Old".into();
            s.autopilot.devices.push(d);
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tags.csv");
        std::fs::write(
            &path,
            csv(&[
                (
                    "SN-T-EMPTY",
                    &hash("SN-T-EMPTY", "Contoso", "Laptop 7", 1),
                    "",
                ),
                (
                    "SN-T-USE",
                    &hash("SN-T-USE", "Contoso", "Laptop 7", 2),
                    "Other",
                ),
                (
                    "SN-T-KEEP",
                    &hash("SN-T-KEEP", "Contoso", "Laptop 7", 3),
                    "Lab",
                ),
                ("SN-T-HQ", &hash("SN-T-HQ", "Contoso", "Laptop 7", 4), "HQ"),
                ("SN-T-REG", &hash("SN-T-REG", "Contoso", "Laptop 7", 5), ""),
            ]),
        )
        .unwrap();
        let mut h = harness(&rt, graph, tag_group("HQ"), path);
        click(&mut h, "Choose CSV files…");
        wait_for_text(&mut h, "5 rows:");
        assert!(
            h.query_by_label("Give this device the group tag HQ")
                .is_some(),
            "visible:\n{}",
            visible_labels(&h)
        );
        assert!(
            h.query_by_label_contains("SN-T-USE has the group tag \"Other\"")
                .is_some()
        );
        assert!(
            !support::ui::is_enabled(&h, "Import"),
            "a different tag needs a choice first"
        );
        click(&mut h, "Use HQ for SN-T-USE");
        assert!(!support::ui::is_enabled(&h, "Import"));
        click(&mut h, "Keep \"Lab\" for SN-T-KEEP (not in the group)");
        assert!(support::ui::is_enabled(&h, "Import"));
        click(&mut h, "Import");
        step_until(
            &mut h,
            "the import to finish",
            |h| h.query_by_label_contains("Import finished").is_some(),
            support::ui::ASYNC_TIMEOUT,
        );
        sim.with_state(|s| {
            let tag = |serial: &str| {
                s.autopilot
                    .device_by_serial(serial)
                    .unwrap()
                    .group_tag
                    .clone()
            };
            assert_eq!(tag("SN-T-EMPTY"), "HQ", "sent in the import row");
            assert_eq!(tag("SN-T-USE"), "HQ");
            assert_eq!(tag("SN-T-KEEP"), "Lab", "kept, as chosen");
            assert_eq!(tag("SN-T-HQ"), "HQ");
        });
        // The registered device (its file had no tag) still keeps it out: not Done.
        wait_for_text(&mut h, "1 device cannot reach the group \"Autopilot - HQ\"");
        assert!(!h.state().page.validated());
        assert!(
            h.query_by_label("Set group tag of SN-T-REG to HQ")
                .is_some()
        );
        click(&mut h, "Give this device the group tag HQ");
        step_until(
            &mut h,
            "the registered device retagged and the step validated",
            |h| h.state().page.validated(),
            support::ui::ASYNC_TIMEOUT,
        );
        assert_eq!(
            sim.with_state(|s| s
                .autopilot
                .device_by_serial("SN-T-REG")
                .unwrap()
                .group_tag
                .clone()),
            "HQ"
        );
        drop(h);
        drop(sim);
    }

    /// Issue 18: every device of the files is registered already (with the group's tag and a
    /// profile): nothing to upload, and the step is Done at once and says why, instead of a
    /// greyed "Import" and a closed Next.
    #[test]
    fn files_whose_devices_are_all_registered_finish_the_step_without_an_upload() {
        let rt = support::ui::runtime();
        let (sim, graph) = rt.block_on(start(config(5)));
        sim.with_state(|s| {
            for (id, serial) in [("ztd-a", "SN-ALL-1"), ("ztd-b", "SN-ALL-2")] {
                let mut d = sim::autopilot::AutopilotDevice::new(id.into(), serial.into());
                d.group_tag = "HQ".into();
                d.assignment_status = "assignedInSync".into();
                s.autopilot.devices.push(d);
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registered.csv");
        std::fs::write(
            &path,
            csv(&[
                (
                    "SN-ALL-1",
                    &hash("SN-ALL-1", "Contoso", "Laptop 7", 1),
                    "HQ",
                ),
                (
                    "SN-ALL-2",
                    &hash("SN-ALL-2", "Contoso", "Laptop 7", 2),
                    "HQ",
                ),
            ]),
        )
        .unwrap();
        let mut h = harness(&rt, graph, tag_group("HQ"), path);
        click(&mut h, "Choose CSV files…");
        wait_for_text(
            &mut h,
            "Nothing to upload: 2 devices are already registered in your tenant.",
        );
        assert!(h.state().page.validated(), "{}", visible_labels(&h));
        assert_eq!(h.state().page.status(), ui::StepStatus::Done);
        let saved = h
            .state()
            .outcomes
            .import
            .clone()
            .expect("the outcome is saved");
        assert!(saved.is_validated());
        assert!(
            h.query_by_label("Import").is_none(),
            "no greyed Import to wonder about"
        );
        let imports = sim.with_state(|s| s.autopilot.rows_received);
        assert_eq!(imports, 0, "nothing was uploaded");
    }

    /// Choosing the files again after an 808 does not upload that device again: it keeps the
    /// earlier result and its way out.
    #[test]
    fn choosing_the_files_again_keeps_the_earlier_808() {
        let rt = support::ui::runtime();
        let (sim, graph) = rt.block_on(start(config(5)));
        sim.with_state(|s| {
            s.autopilot
                .settings
                .other_tenant_serials
                .push("SN-808".into());
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("808.csv");
        std::fs::write(
            &path,
            csv(&[
                ("SN-808", &hash("SN-808", "Contoso", "Laptop 7", 1), "HQ"),
                (
                    "SN-808-OK",
                    &hash("SN-808-OK", "Contoso", "Laptop 7", 2),
                    "HQ",
                ),
            ]),
        )
        .unwrap();
        let mut h = harness(&rt, graph, Outcomes::default(), path);
        click(&mut h, "Choose CSV files…");
        wait_for_text(&mut h, "2 rows:");
        click(&mut h, "Import");
        step_until(
            &mut h,
            "the import to finish",
            |h| h.query_by_label_contains("Import finished").is_some(),
            support::ui::ASYNC_TIMEOUT,
        );
        wait_for_text(&mut h, "SN-808: Registered to another organisation (808)");
        click(&mut h, "Choose CSV files…");
        wait_for_text(&mut h, "already failed with 808 earlier in this job");
        assert!(
            h.query_by_label_contains("SN-808: Registered to another organisation (808)")
                .is_some(),
            "visible:\n{}",
            visible_labels(&h)
        );
        assert!(
            h.query_by_label_contains("SN-808: Ready to import")
                .is_none()
        );
        assert!(
            h.query_by_label_contains("not uploaded again. Ask the previous owner or the reseller")
                .is_some()
        );
        let job = h.state().page.job().unwrap();
        assert_eq!(job.counts().ready, 0, "nothing goes out again");
        assert!(h.query_by_label("Import").is_none());
        // Issue 18: no dead end; the one decision left is offered where the import was.
        assert!(!h.state().page.validated());
        click(&mut h, "Leave failed devices out");
        assert!(h.state().page.validated(), "{}", visible_labels(&h));
        assert!(h.state().outcomes.import.as_ref().unwrap().is_validated());
        drop(h);
        drop(sim);
    }

    /// Once signed in, an Assigned User outside the tenant's verified domains is an error on
    /// its row before anything is sent (Intune's only check of that column).
    #[test]
    fn assigned_users_outside_the_verified_domains_are_caught_before_import() {
        let rt = support::ui::runtime();
        let (sim, graph) = rt.block_on(start(config(5)));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.csv");
        let mut text = String::from(
            "Device Serial Number,Windows Product ID,Hardware Hash,Group Tag,Assigned User\r\n",
        );
        for (serial, upn, salt) in [
            ("SN-UPN-OK", "anna@contoso.example", 1),
            ("SN-UPN-BAD", "bob@gmail.example", 2),
        ] {
            let h = hash(serial, "Contoso", "Laptop 7", salt);
            text.push_str(&format!("{serial},,{h},HQ,{upn}\r\n"));
        }
        std::fs::write(&path, text).unwrap();
        let mut h = harness(
            &rt,
            graph,
            Outcomes {
                signed_in: Some(autopilot_wizard::steps::sign_in::SignedIn {
                    verified_domains: vec!["contoso.example".into()],
                    ..Default::default()
                }),
                ..Outcomes::default()
            },
            path,
        );
        click(&mut h, "Choose CSV files…");
        wait_for_text(&mut h, "2 rows:");
        wait_for_text(
            &mut h,
            "SN-UPN-BAD: The domain of \"bob@gmail.example\" is not a verified domain",
        );
        assert!(
            h.query_by_label_contains("SN-UPN-OK: The domain").is_none(),
            "visible:\n{}",
            visible_labels(&h)
        );
        drop(h);
        drop(sim);
    }
}

#[tokio::test]
async fn sim_speaks_the_import_and_device_wire_format() {
    let (sim, graph) = start(config(2)).await;
    let base = "/deviceManagement/importedWindowsAutopilotDeviceIdentities";
    // Single create answers 201 with the record, pending.
    let resp = graph
        .send_url(
            http::Method::POST,
            &graph.url(ApiVersion::Beta, base),
            Some(
                serde_json::to_vec(&NewImportedDevice::new(
                    "SN-WIRE-1",
                    "",
                    hash("SN-WIRE-1", "Contoso", "Laptop 7", 1),
                    "HQ",
                    "",
                ))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 201);
    let rec: Value = resp.json("create").unwrap();
    assert_eq!(rec["state"]["deviceImportStatus"], "pending");
    let id = rec["id"].as_str().unwrap().to_string();
    for serial in ["SN-WIRE-2", "SN-WIRE-3"] {
        graph
            .post_json::<_, Value>(
                ApiVersion::V1,
                base,
                &NewImportedDevice::new(serial, "", hash(serial, "C", "M", 9), "", ""),
            )
            .await
            .unwrap();
    }
    // Paging (page size 2) and $filter on the list, in both versions.
    let all: Vec<Value> = graph.get_all(ApiVersion::V1, base).await.unwrap();
    assert_eq!(all.len(), 3);
    let one: Vec<Value> = graph
        .get_all(
            ApiVersion::Beta,
            &format!("{base}?$filter=serialNumber%20eq%20%27SN-WIRE-2%27"),
        )
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    let got: Value = graph
        .get_json(ApiVersion::Beta, &format!("{base}/{id}"))
        .await
        .unwrap();
    assert_eq!(got["serialNumber"], "SN-WIRE-1");
    graph
        .delete(ApiVersion::Beta, &format!("{base}/{id}"))
        .await
        .unwrap();
    let gone = graph
        .get_json::<Value>(ApiVersion::Beta, &format!("{base}/{id}"))
        .await
        .unwrap_err();
    assert!(gone.is_not_found());

    // Device identities: beta carries the assignment fields, v1.0 does not.
    sim.with_state(|s| {
        s.autopilot
            .devices
            .push(sim::autopilot::AutopilotDevice::new(
                "ztd-w".into(),
                "PF 12 AB".into(),
            ))
    });
    let dev = "/deviceManagement/windowsAutopilotDeviceIdentities";
    let beta: Vec<Value> = graph
        .get_all(
            ApiVersion::Beta,
            &format!("{dev}?$filter=contains(serialNumber,%27PF%27)&$select=id,serialNumber,deploymentProfileAssignmentStatus"),
        )
        .await
        .unwrap();
    assert_eq!(beta.len(), 1);
    assert_eq!(beta[0]["deploymentProfileAssignmentStatus"], "notAssigned");
    assert!(beta[0].get("model").is_none(), "$select applied");
    let v1: Value = graph
        .get_json(ApiVersion::V1, &format!("{dev}/ztd-w"))
        .await
        .unwrap();
    assert!(v1.get("deploymentProfileAssignmentStatus").is_none());
    assert_eq!(v1["serialNumber"], "PF 12 AB");
    let settings: Value = graph
        .get_json(
            ApiVersion::Beta,
            "/deviceManagement/windowsAutopilotSettings",
        )
        .await
        .unwrap();
    assert_eq!(settings["syncStatus"], "unknown");
    graph
        .delete(ApiVersion::Beta, &format!("{dev}/ztd-w"))
        .await
        .unwrap();
    // A deleted registration goes with the next sync (reference §12, sim::removal).
    assert!(
        sim.with_state(|s| !s.autopilot.devices.is_empty()),
        "listed until a sync"
    );
    graph
        .post_no_content::<Value>(
            ApiVersion::Beta,
            "/deviceManagement/windowsAutopilotSettings/sync",
            None,
        )
        .await
        .unwrap();
    let start = std::time::Instant::now();
    while !sim.with_state(|s| s.autopilot.devices.is_empty()) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "gone after the sync"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
