//! Harvesting this PC's hardware hash (issue 11): the logic fed with recorded WMI answers, the
//! CSV it writes compared byte for byte with Get-WindowsAutopilotInfo's, the `harvest` command
//! as a process, the OOBE upload end to end against the simulated tenant, and "Add this PC" on
//! the import page.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autopilot_wizard::graph::auth::{AuthConfig, SignInFlows, Sleeper};
use autopilot_wizard::graph::cloud::{ClientApp, Endpoints};
use autopilot_wizard::graph::token_store::{MemoryStore, TokenStore};
use autopilot_wizard::harvest_cli;
use autopilot_wizard::hwid::harvest::{
    self, ComputerSystem, CsvRow, HarvestError, HarvestOptions, RecordedWmi, WmiError,
};
use autopilot_wizard::hwid::{self, CheckOptions, RowStatus, Severity};
use autopilot_wizard::sim::autopilot::build_hardware_hash;
use autopilot_wizard::sim::{self, SimConfig, Speed};
use autopilot_wizard::steps::import::{ImportOptions, PollPolicy};
use autopilot_wizard::steps::this_pc::UploadOptions;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use support::tenant::{SALES_RULE, add_group, add_profile, empty_config};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/csv")
        .join(name)
}

/// Serial and hash of a real Get-WindowsAutopilotInfo file (UTF-16 LE, 3 columns).
fn sample(name: &str) -> (String, String, Vec<u8>) {
    let bytes = std::fs::read(fixture(name)).unwrap();
    let units: Vec<u16> = bytes[2..]
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let text = String::from_utf16(&units).unwrap();
    let line = text.lines().nth(1).unwrap().to_owned();
    let mut parts = line.split(',');
    let serial = parts.next().unwrap().to_owned();
    let _pk = parts.next();
    let hash = parts.next().unwrap().to_owned();
    (serial, hash, bytes)
}

fn hp() -> RecordedWmi {
    let (serial, hash, _) = sample("01-utf16-plain-hp.csv");
    RecordedWmi::answering(&hash, &serial, "HP", "HP EliteBook 840 G8 Notebook PC")
}

fn synthetic(serial: &str, manufacturer: &str, model: &str) -> String {
    STANDARD.encode(build_hardware_hash(serial, manufacturer, model, 7))
}

fn codes(r: &hwid::RowReport) -> Vec<&str> {
    r.findings.iter().map(|f| f.code.as_str()).collect()
}

#[test]
fn a_real_hash_gives_the_row_get_windowsautopilotinfo_writes_byte_for_byte() {
    let (serial, _, original) = sample("01-utf16-plain-hp.csv");
    let h = harvest::harvest(&hp(), &HarvestOptions::default()).expect("harvested");
    assert_eq!(h.row.serial, serial);
    assert_eq!(h.row.status, RowStatus::Ok, "{:?}", h.row.findings);
    assert_eq!(h.row.manufacturer.as_deref(), Some("HP"));
    assert_eq!(h.csv_row.product_key, "");
    // Same encoding (UTF-16 LE + BOM), header, column order and CRLF line ends as the script.
    assert_eq!(h.csv_bytes(), original);
}

#[test]
fn the_header_grows_with_group_tag_and_user_like_the_script() {
    let opts = HarvestOptions {
        group_tag: "SALES".into(),
        assigned_user: "anna@contoso.com".into(),
        ..HarvestOptions::default()
    };
    let h = harvest::harvest(&hp(), &opts).unwrap();
    let bytes = h.csv_bytes();
    assert_eq!(&bytes[..2], &[0xFF, 0xFE]);
    let text = String::from_utf16(
        &bytes[2..]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(text.starts_with(
        "Device Serial Number,Windows Product ID,Hardware Hash,Group Tag,Assigned User\r\n"
    ));
    assert!(text.ends_with(",SALES,anna@contoso.com\r\n"));
    let only_tag = harvest::harvest(
        &hp(),
        &HarvestOptions {
            group_tag: "SALES".into(),
            ..HarvestOptions::default()
        },
    )
    .unwrap();
    let report = hwid::check_bytes("t.csv", &only_tag.csv_bytes(), &CheckOptions::default());
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.files[0].rows[0].group_tag, "SALES");
}

#[test]
fn a_missing_mdm_class_says_the_bridge_is_missing() {
    let rec = RecordedWmi {
        device_hardware_data: Err(WmiError::Missing {
            namespace: "root\\cimv2\\mdm\\dmmap".into(),
            class: "MDM_DevDetail_Ext01".into(),
        }),
        ..hp()
    };
    let e = harvest::harvest(&rec, &HarvestOptions::default()).unwrap_err();
    assert!(matches!(e, HarvestError::NoMdmBridge { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("MDM bridge"), "{msg}");
    // The phrase CI looks for under Wine, the same as on Linux.
    assert!(msg.contains("needs Windows 10 or 11"), "{msg}");
    assert!(msg.contains("Wine"), "{msg}");
    assert!(!e.needs_elevation());
}

#[test]
fn access_denied_asks_for_administrator_rights() {
    let rec = RecordedWmi {
        device_hardware_data: Err(WmiError::AccessDenied),
        elevated: Some(false),
        ..hp()
    };
    let e = harvest::harvest(&rec, &HarvestOptions::default()).unwrap_err();
    assert!(
        matches!(e, HarvestError::NeedsAdministrator { .. }),
        "{e:?}"
    );
    assert!(e.needs_elevation());
    assert!(e.to_string().contains("administrator rights"), "{e}");
    // The BIOS read refused the same way says the same.
    let rec = RecordedWmi {
        bios_serial_number: Err(WmiError::AccessDenied),
        ..hp()
    };
    let e = harvest::harvest(&rec, &HarvestOptions::default()).unwrap_err();
    assert!(e.to_string().contains("BIOS serial number"), "{e}");
}

#[test]
fn an_empty_serial_is_refused_with_the_check_csv_finding() {
    let rec = RecordedWmi {
        bios_serial_number: Ok(Some("   ".into())),
        ..hp()
    };
    match harvest::harvest(&rec, &HarvestOptions::default()).unwrap_err() {
        HarvestError::Rejected { findings } => {
            assert_eq!(findings[0].code, "empty-serial");
            assert_eq!(findings[0].severity, Severity::Error);
        }
        other => panic!("{other:?}"),
    }
    let none = RecordedWmi {
        bios_serial_number: Ok(None),
        ..hp()
    };
    assert!(matches!(
        harvest::harvest(&none, &HarvestOptions::default()),
        Err(HarvestError::Rejected { .. })
    ));
}

#[test]
fn a_generic_serial_is_refused() {
    let hash = synthetic("To be filled by O.E.M.", "Contoso", "Desk 5");
    let rec = RecordedWmi::answering(&hash, "To be filled by O.E.M.", "Contoso", "Desk 5");
    let e = harvest::harvest(&rec, &HarvestOptions::default()).unwrap_err();
    let HarvestError::Rejected { findings } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(findings[0].code, "generic-serial");
    assert!(e.to_string().contains("stand-in value"), "{e}");
}

#[test]
fn a_virtual_machine_is_harvested_with_a_warning() {
    let serial = "0123-4567-8901-2345-6789-0123-45";
    let hash = synthetic(serial, "Microsoft Corporation", "Virtual Machine");
    let rec = RecordedWmi::answering(&hash, serial, "Microsoft Corporation", "Virtual Machine");
    let h = harvest::harvest(&rec, &HarvestOptions::default()).unwrap();
    assert_eq!(h.row.status, RowStatus::Warning);
    assert_eq!(codes(&h.row), ["virtual-machine"]);
    assert!(h.row.findings[0].message.contains("Hyper-V"));

    // A hypervisor only Windows names (the hash says nothing) is caught from Win32_ComputerSystem.
    let (serial, hash, _) = sample("04-utf16-plain-lenovo2.csv");
    let rec = RecordedWmi::answering(&hash, &serial, "QEMU", "Standard PC (Q35 + ICH9, 2009)");
    let h = harvest::harvest(&rec, &HarvestOptions::default()).unwrap();
    assert!(codes(&h.row).contains(&"virtual-machine"), "{:?}", h.row);
}

#[test]
fn a_missing_hash_and_a_bad_group_tag_are_explained() {
    let rec = RecordedWmi {
        device_hardware_data: Ok(None),
        ..hp()
    };
    let e = harvest::harvest(&rec, &HarvestOptions::default()).unwrap_err();
    assert_eq!(e, HarvestError::NoHash);
    let e = harvest::harvest(
        &hp(),
        &HarvestOptions {
            group_tag: "Sales,HQ".into(),
            ..HarvestOptions::default()
        },
    )
    .unwrap_err();
    let HarvestError::Rejected { findings } = e else {
        panic!()
    };
    assert_eq!(findings[0].code, "too-many-fields");
}

#[test]
fn append_adds_one_row_under_one_header_and_refuses_a_known_serial() {
    let (_, _, hp_file) = sample("01-utf16-plain-hp.csv");
    let (serial, hash, _) = sample("03-utf16-plain-lenovo.csv");
    let lenovo = CsvRow {
        serial: serial.clone(),
        hash,
        ..CsvRow::default()
    };
    let both = harvest::append_row("devices.csv", &hp_file, &lenovo).unwrap();
    // The original bytes stay as they were; only the new line follows.
    assert_eq!(&both[..hp_file.len()], &hp_file[..]);
    let report = hwid::check_bytes("devices.csv", &both, &CheckOptions::default());
    assert_eq!(report.exit_code(), 0, "{:?}", report);
    assert_eq!(report.files[0].rows.len(), 2);
    assert_eq!(report.files[0].rows[1].serial, serial);

    let again = harvest::append_row("devices.csv", &both, &lenovo).unwrap_err();
    assert!(again.to_string().contains("already has this PC"), "{again}");
    let lower = CsvRow {
        serial: serial.to_lowercase(),
        hash: "QUFB".into(),
        ..CsvRow::default()
    };
    assert!(matches!(
        harvest::append_row("devices.csv", &both, &lower),
        Err(harvest::AppendError::DuplicateSerial { line: 3, .. })
    ));
    let not_csv = harvest::append_row("notes.txt", b"hello\r\n", &lenovo).unwrap_err();
    assert!(matches!(
        not_csv,
        harvest::AppendError::NotHardwareHash { .. }
    ));
}

// ---- the `harvest` command, as a process ----

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_autopilot-wizard"))
}

fn write_recording(dir: &Path, name: &str, rec: &RecordedWmi) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string(rec).unwrap()).unwrap();
    p
}

#[test]
fn harvest_elsewhere_exits_non_zero_with_the_reason() {
    let out = bin().arg("harvest").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if cfg!(windows) {
        return;
    }
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("needs Windows 10 or 11"), "{stderr}");
    assert!(stderr.contains("administrator"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The same for the upload path: nothing is signed in to when there is nothing to send.
    let out = bin()
        .args(["harvest", "--upload", "--tenant", "contoso.onmicrosoft.com"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("needs Windows 10 or 11"));
}

#[test]
fn harvest_out_writes_a_file_check_csv_accepts_and_append_refuses_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let rec = write_recording(dir.path(), "hp.json", &hp());
    let csv = dir.path().join("devices.csv");
    let out = bin()
        .args(["harvest", "--out"])
        .arg(&csv)
        .arg("--wmi-recording")
        .arg(&rec)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Written to"), "{stdout}");
    let (_, hp_hash, original) = sample("01-utf16-plain-hp.csv");
    assert_eq!(std::fs::read(&csv).unwrap(), original);
    let check = bin().arg("check-csv").arg(&csv).output().unwrap();
    assert_eq!(check.status.code(), Some(0));

    // A second PC appended: one header, two rows, still valid.
    let (serial, hash, _) = sample("03-utf16-plain-lenovo.csv");
    let lenovo = write_recording(
        dir.path(),
        "lenovo.json",
        &RecordedWmi::answering(&hash, &serial, "LENOVO", "20XW"),
    );
    let out = bin()
        .args(["harvest", "--append", "--out"])
        .arg(&csv)
        .arg("--wmi-recording")
        .arg(&lenovo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let check = bin()
        .args(["check-csv", "--json"])
        .arg(&csv)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(json["files"][0]["encoding"], "utf-16le-bom");
    assert_eq!(json["files"][0]["rows"].as_array().unwrap().len(), 2);
    let before = std::fs::read(&csv).unwrap();

    // The same PC again: refused, file untouched.
    let out = bin()
        .args(["harvest", "--append", "--out"])
        .arg(&csv)
        .arg("--wmi-recording")
        .arg(&rec)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already has this PC"));
    assert_eq!(std::fs::read(&csv).unwrap(), before);

    // Without --out: a summary, never the hash; --json: the checked row.
    let out = bin()
        .args(["harvest", "--group-tag", "SALES", "--wmi-recording"])
        .arg(&rec)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("5CG1457YL8"), "{stdout}");
    assert!(stdout.contains("Group tag: SALES"), "{stdout}");
    assert!(!stdout.contains(&hp_hash[..60]), "{stdout}");
    let out = bin()
        .args(["harvest", "--json", "--wmi-recording"])
        .arg(&rec)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["serial"], "5CG1457YL8");
    assert_eq!(json["status"], "ok");
    assert_eq!(json["manufacturer"], "HP");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&hp_hash[..60]));
}

#[test]
fn harvest_of_a_refused_pc_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hash = synthetic("Default string", "Contoso", "Desk 5");
    let rec = write_recording(
        dir.path(),
        "generic.json",
        &RecordedWmi::answering(&hash, "Default string", "Contoso", "Desk 5"),
    );
    let csv = dir.path().join("out.csv");
    let out = bin()
        .args(["harvest", "--out"])
        .arg(&csv)
        .arg("--wmi-recording")
        .arg(&rec)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be registered"));
    assert!(!csv.exists());
}

// ---- the OOBE path, end to end against the simulated tenant ----

fn fast_poll() -> PollPolicy {
    PollPolicy {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(40),
        factor: 1.5,
        timeout: Duration::from_secs(30),
    }
}

fn fast_upload() -> UploadOptions {
    UploadOptions {
        import: ImportOptions {
            processing: fast_poll(),
            waiting: fast_poll(),
            sync_min_interval: Speed::TEST.scaled(Duration::from_secs(600)),
            ..ImportOptions::default()
        },
        first_poll: Duration::from_millis(10),
        max_poll: Duration::from_millis(50),
        profile_timeout: Duration::from_secs(30),
    }
}

fn flows_for(sim: &sim::SimHandle) -> SignInFlows {
    let sleeper: Sleeper = Arc::new(|_| Box::pin(tokio::task::yield_now()));
    SignInFlows::new(
        AuthConfig {
            endpoints: Endpoints::simulated(&sim.url()),
            tenant: "contoso.onmicrosoft.com".into(),
            client: ClientApp::Own {
                client_id: "11111111-2222-3333-4444-555555555555".into(),
            },
        },
        Arc::new(MemoryStore::new()) as Arc<dyn TokenStore>,
        &autopilot_wizard::steps::required_scopes(),
    )
    .with_sleeper(sleeper)
}

/// Collects what the command prints.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_from_oobe_signs_in_with_a_code_registers_and_waits_for_the_profile() {
    let sim = sim::spawn(SimConfig {
        approve_device_code_after_polls: 2,
        ..empty_config()
    })
    .await
    .unwrap();
    let profile = sim.with_state(|s| {
        let group = add_group(s, "Sales devices", Some(SALES_RULE), vec![]);
        add_profile(s, "Sales user-driven", 2025, &[&group]);
        "Sales user-driven".to_string()
    });
    let serial = "OOBE-0001";
    let hash = synthetic(serial, "Contoso", "Laptop 7");
    let source: Box<dyn harvest::WmiSource> =
        Box::new(RecordedWmi::answering(&hash, serial, "Contoso", "Laptop 7"));
    let out = Captured::default();
    // No --group-tag: the command lists the tenant's tags and the user types one.
    let mut typed = std::io::Cursor::new(b"SALES\n".to_vec());
    let code = harvest_cli::run_upload(
        HarvestOptions::default(),
        Ok(source),
        &flows_for(&sim),
        &fast_upload(),
        Arc::new(Mutex::new(out.clone())),
        &mut typed,
        true,
    )
    .await;
    let text = out.text();
    assert_eq!(code, 0, "{text}");
    for expected in [
        "serial number OOBE-0001",
        "enter the code",
        "Signed in as",
        "group tags: SALES",
        "Registered: this PC is now a Windows Autopilot device.",
        "Profile assignment: Assigned",
        &format!("\"{profile}\""),
        "You can restart it into setup now",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains(&hash[..60]));
    let device = sim.with_state(|s| {
        s.autopilot
            .devices
            .iter()
            .find(|d| d.serial_number == serial)
            .cloned()
    });
    let device = device.expect("the device was registered");
    assert_eq!(device.group_tag, "SALES");

    // Run again (e.g. after a timeout): already registered, nothing uploaded twice.
    let out2 = Captured::default();
    let source: Box<dyn harvest::WmiSource> =
        Box::new(RecordedWmi::answering(&hash, serial, "Contoso", "Laptop 7"));
    let code = harvest_cli::run_upload(
        HarvestOptions {
            group_tag: "SALES".into(),
            ..HarvestOptions::default()
        },
        Ok(source),
        &flows_for(&sim),
        &fast_upload(),
        Arc::new(Mutex::new(out2.clone())),
        &mut std::io::Cursor::new(Vec::new()),
        false,
    )
    .await;
    assert_eq!(code, 0, "{}", out2.text());
    assert!(
        out2.text().contains("already registered"),
        "{}",
        out2.text()
    );
    let count = sim.with_state(|s| {
        s.autopilot
            .devices
            .iter()
            .filter(|d| d.serial_number == serial)
            .count()
    });
    assert_eq!(count, 1);
}

#[test]
fn computer_system_defaults_when_windows_does_not_say() {
    let rec = RecordedWmi {
        computer_system: Err(WmiError::Failed("RPC unavailable".into())),
        ..hp()
    };
    let h = harvest::harvest(&rec, &HarvestOptions::default()).unwrap();
    assert_eq!(h.system, ComputerSystem::default());
    assert!(h.device_name().starts_with("HP"), "{}", h.device_name());
    // The model repeats the maker: said once.
    let h = harvest::harvest(&hp(), &HarvestOptions::default()).unwrap();
    assert!(!h.device_name().starts_with("HP HP"), "{}", h.device_name());
}

// ---- "Add this PC" on the import page ----

mod page {
    use super::*;
    use autopilot_wizard::graph::GraphClient;
    use autopilot_wizard::hwid::harvest::WmiSource;
    use autopilot_wizard::steps::Outcomes;
    use autopilot_wizard::steps::group::{GroupKind, GroupRef};
    use autopilot_wizard::ui::import::ImportPage;
    use autopilot_wizard::ui::{self, FixedFilePicker, Job, Outbox, Page, PageCx, Session};
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable;
    use support::ui::{click, visible_labels, wait_for_text};

    /// The import page with the app's job plumbing and an injected harvester.
    struct Host {
        page: ImportPage,
        session: Session,
        outcomes: Outcomes,
        jobs: Vec<Job>,
        picker: Arc<FixedFilePicker>,
        harvester: Option<Arc<dyn WmiSource>>,
        tx: std::sync::mpsc::Sender<ui::Msg>,
        rx: std::sync::mpsc::Receiver<ui::Msg>,
        rt: tokio::runtime::Handle,
    }

    impl Host {
        fn cx(&mut self) -> PageCx<'_> {
            PageCx::new(&mut self.session, &mut self.outcomes, &mut self.jobs)
                .with_file_picker(self.picker.clone())
                .with_harvester(self.harvester.clone())
        }

        fn show(&mut self, ui: &mut egui::Ui) {
            while let Ok(msg) = self.rx.try_recv() {
                if let ui::Msg::Import(m) = msg {
                    let mut page = std::mem::take(&mut self.page);
                    page.on_msg(m, &mut self.cx());
                    self.page = page;
                }
            }
            let mut page = std::mem::take(&mut self.page);
            page.ui(ui, &mut self.cx());
            self.page = page;
            for job in self.jobs.drain(..) {
                let out = Outbox::new(self.tx.clone(), ui.ctx().clone());
                self.rt.spawn((job.run)(out));
            }
        }
    }

    fn harness(
        rt: &tokio::runtime::Runtime,
        graph: GraphClient,
        outcomes: Outcomes,
        picked: Vec<PathBuf>,
        harvester: Option<Arc<dyn WmiSource>>,
    ) -> Harness<'static, Host> {
        let (tx, rx) = std::sync::mpsc::channel();
        let host = Host {
            page: ImportPage::new(fast_upload().import),
            session: Session {
                graph: Some(graph),
                simulated: true,
            },
            outcomes,
            jobs: Vec::new(),
            picker: Arc::new(FixedFilePicker { paths: picked }),
            harvester,
            tx,
            rx,
            rt: rt.handle().clone(),
        };
        let mut h = Harness::builder()
            .with_size([1100.0, 720.0])
            .build_ui_state(|ui, host: &mut Host| host.show(ui), host);
        h.run_ok();
        h
    }

    fn sales_group() -> Outcomes {
        Outcomes {
            group: Some(GroupRef {
                id: "g-1".into(),
                display_name: "Sales devices".into(),
                kind: GroupKind::Dynamic {
                    rule: SALES_RULE.into(),
                },
            }),
            ..Outcomes::default()
        }
    }

    #[test]
    fn add_this_pc_adds_a_row_next_to_the_files_and_imports_it() {
        let rt = support::ui::runtime();
        let (sim, graph) = rt.block_on(support::signed_in_sim(empty_config()));
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("devices.csv");
        let (serial, hash, _) = sample("03-utf16-plain-lenovo.csv");
        std::fs::write(
            &csv,
            harvest::write_csv(&[CsvRow {
                serial: serial.clone(),
                hash,
                group_tag: "SALES".into(),
                ..CsvRow::default()
            }]),
        )
        .unwrap();
        let this_hash = synthetic("PC-HERE-01", "Contoso", "Laptop 7");
        let harvester: Arc<dyn WmiSource> = Arc::new(RecordedWmi::answering(
            &this_hash,
            "PC-HERE-01",
            "Contoso",
            "Laptop 7",
        ));
        let mut h = harness(&rt, graph, sales_group(), vec![csv], Some(harvester));

        click(&mut h, "Choose CSV files…");
        wait_for_text(&mut h, "1 row:");
        click(&mut h, "Add this PC");
        wait_for_text(&mut h, "2 rows: 2 ready");
        // Shown like a CSV row: serial, group tag from step 4's rule, file "this PC".
        assert!(
            h.query_by_label("PC-HERE-01").is_some(),
            "{}",
            visible_labels(&h)
        );
        assert!(
            h.query_by_label("this PC").is_some(),
            "{}",
            visible_labels(&h)
        );
        assert!(
            h.query_by_label_contains("This PC (Contoso Laptop 7, serial number PC-HERE-01)")
                .is_some()
        );
        assert!(h.query_by_label("Read this PC again").is_some());
        click(&mut h, "Import");
        wait_for_text(&mut h, "PC-HERE-01: Registered");
        let tag = sim.with_state(|s| {
            s.autopilot
                .devices
                .iter()
                .find(|d| d.serial_number == "PC-HERE-01")
                .map(|d| d.group_tag.clone())
        });
        assert_eq!(tag.as_deref(), Some("SALES"));
    }

    #[test]
    fn add_this_pc_explains_a_refusal_and_is_absent_without_a_harvester() {
        let rt = support::ui::runtime();
        let (_sim, graph) = rt.block_on(support::signed_in_sim(empty_config()));
        let denied: Arc<dyn WmiSource> = Arc::new(RecordedWmi {
            device_hardware_data: Err(WmiError::AccessDenied),
            elevated: Some(false),
            ..hp()
        });
        let mut h = harness(
            &rt,
            graph.clone(),
            Outcomes::default(),
            vec![],
            Some(denied),
        );
        click(&mut h, "Add this PC");
        wait_for_text(&mut h, "needs administrator rights");
        assert!(h.query_by_label_contains("rows:").is_none());

        let mut h = harness(&rt, graph, Outcomes::default(), vec![], None);
        h.run_ok();
        assert!(h.query_by_label("Choose CSV files…").is_some());
        assert!(
            h.query_by_label("Add this PC").is_none(),
            "{}",
            visible_labels(&h)
        );
    }
}
