//! Frame time of the assignment board with 10,000 devices in a headless egui context (CPU only:
//! layout and painting into shapes, no tessellation or GPU). Target: under 1 ms per frame, with
//! or without an import in step 5: nothing proportional to the import may run every frame
//! (tests/assignment.rs `a_tick_does_not_walk_an_unchanged_import` holds that without timing a
//! shared machine's frames).

use std::time::{Duration, Instant};

use autopilot_wizard::board::{
    Board, BoardRow, Chip, Deployment, DeploymentPhase, FailingItem, GroupMembership,
    GroupSnapshot, MemberState, Target,
};
use autopilot_wizard::steps::import::{ImportJob, ImportRow, RowOutcome};
use autopilot_wizard::ui::assignment::AssignmentPage;
use autopilot_wizard::ui::{Page, PageCx, Session};
use criterion::{Criterion, criterion_group, criterion_main};

const DEVICES: usize = 10_000;

fn board() -> Board {
    let statuses = [
        "assignedInSync",
        "assignedUnkownSyncState",
        "pending",
        "notAssigned",
        "failed",
        "assignedOutOfSync",
    ];
    let rows = (0..DEVICES)
        .map(|i| {
            let status = statuses[i % statuses.len()];
            let assigned = status.starts_with("assigned");
            BoardRow {
                id: format!("ztd-{i:05}"),
                serial: format!("SN{:08}", (i * 7919) % 100_000_000),
                manufacturer: ["Contoso", "Fabrikam", "Northwind"][i % 3].into(),
                model: format!("Laptop {}", i % 17),
                group_tag: ["HQ", "SALES", "LAB"][i % 3].into(),
                display_name: String::new(),
                user_principal_name: String::new(),
                entra_device_id: Some(format!("dev-{i}")),
                membership: if i % 11 == 0 {
                    MemberState::NotMember
                } else {
                    MemberState::Member
                },
                profile_id: assigned.then(|| "p".to_string()),
                profile_name: assigned.then(|| "User-driven".to_string()),
                intended_profile_id: Some("p".into()),
                intended_profile_name: None,
                status_raw: status.into(),
                chip: Chip::from_raw(status),
                detailed_status: "none".into(),
                assigned_at: assigned.then(chrono::Utc::now),
                enrollment_state: "notContacted".into(),
                last_contact: None,
                remediation_state: "noRemediationRequired".into(),
                deployment: None,
            }
        })
        .collect();
    Board {
        target: Target {
            group_id: "g".into(),
            group_name: "Autopilot devices".into(),
            membership: GroupMembership::Static,
            profile_id: "p".into(),
            profile_name: "User-driven".into(),
        },
        rows,
        group: GroupSnapshot::default(),
        loaded_at: chrono::Utc::now(),
    }
}

struct Fixture {
    ctx: egui::Context,
    page: AssignmentPage,
    session: Session,
    outcomes: autopilot_wizard::steps::Outcomes,
    jobs: Vec<autopilot_wizard::ui::Job>,
}

/// Step 5 as users leave it: 9,000 of the devices imported (a few rows excluded), so the board
/// counts those for "ready". Hashes are left empty: the board only looks at serials.
fn imported() -> ImportJob {
    let b = board();
    let rows = b
        .rows
        .iter()
        .take(9_000)
        .enumerate()
        .map(|(i, r)| ImportRow {
            serial: r.serial.clone(),
            file: "devices.csv".into(),
            line: i + 2,
            ..ImportRow::default()
        })
        .collect();
    let mut job = ImportJob::new(rows);
    for r in job.rows.iter_mut().step_by(97) {
        r.outcome = RowOutcome::Excluded {
            reason: "left out".into(),
        };
    }
    job
}

impl Fixture {
    fn new(scoped: bool) -> Self {
        let mut page = AssignmentPage::new(None).with_board(board());
        // No timers in a benchmark: measure drawing only.
        page.auto_refresh = false;
        let mut outcomes = autopilot_wizard::steps::Outcomes::default();
        if scoped {
            outcomes.import = Some(imported());
        }
        Fixture {
            ctx: egui::Context::default(),
            page,
            session: Session::default(),
            outcomes,
            jobs: Vec::new(),
        }
    }

    /// One frame laid out as the app does (a central panel holding a vertical scroll area
    /// around the page). Returns how many serial-number cells were painted.
    fn frame(&mut self) -> usize {
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                egui::vec2(1600.0, 1000.0),
            )),
            ..Default::default()
        };
        let Fixture {
            ctx,
            page,
            session,
            outcomes,
            jobs,
        } = self;
        let mut out = ctx.run_ui(input, |ui| {
            egui::CentralPanel::default_margins().show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .auto_shrink([false, false])
                    .show(ui, |ui| {
                        let mut cx = PageCx::new(session, outcomes, jobs);
                        page.ui(ui, &mut cx);
                    });
            });
        });
        // Nothing uploads the font atlas here; say so, as a renderer would by applying it.
        out.textures_delta.clear();
        std::hint::black_box(serial_cells(out.shapes.iter().map(|c| &c.shape)))
    }
}

/// Text shapes that are serial numbers (`SN…`): the table rows actually painted.
fn serial_cells<'a>(shapes: impl Iterator<Item = &'a egui::Shape>) -> usize {
    shapes
        .map(|s| match s {
            egui::Shape::Vec(v) => serial_cells(v.iter()),
            egui::Shape::Text(t) => usize::from(t.galley.job.text.starts_with("SN")),
            _ => 0,
        })
        .sum()
}

fn mean_frame(f: &mut Fixture, what: &str) {
    // Warm up: fonts, the cached view, the table's column widths.
    let mut painted = 0;
    for _ in 0..5 {
        painted = f.frame();
    }
    // The table must really be on screen, and virtualised: a screenful of rows, not 10,000.
    assert!(
        (10..200).contains(&painted),
        "{what}: {painted} serial cells painted; the table is not showing a screenful of rows"
    );
    let n = 200u32;
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let started = Instant::now();
            f.frame();
            started.elapsed()
        })
        .collect();
    let mean: Duration = times.iter().sum::<Duration>() / n;
    times.sort();
    // The median: what a frame costs, without the frames another process on the machine took.
    let median = times[times.len() / 2];
    println!(
        "board with {DEVICES} devices, {what}: mean frame time {:.3} ms, median {:.3} ms over \
         {n} frames, {painted} rows painted (target < 1 ms)",
        mean.as_secs_f64() * 1000.0,
        median.as_secs_f64() * 1000.0
    );
}

/// A finished or running deployment, by turns.
fn deployment(serial: &str, i: usize) -> Deployment {
    let phase = [
        DeploymentPhase::Succeeded,
        DeploymentPhase::Failed,
        DeploymentPhase::AccountSetup,
    ][i % 3];
    Deployment {
        serial: serial.into(),
        phase,
        state_raw: "success".into(),
        device_setup_raw: "success".into(),
        account_setup_raw: "success".into(),
        device_setup_secs: Some(420),
        account_setup_secs: Some(660),
        total_secs: Some(1170),
        started: None,
        ended: None,
        user: "user@contoso.example".into(),
        device_name: format!("DESKTOP-{i}"),
        profile_name: "User-driven".into(),
        esp_name: "Staff apps".into(),
        failing: (phase == DeploymentPhase::Failed).then(|| FailingItem {
            name: "Contoso Timesheets".into(),
            kind_raw: "application".into(),
            status_raw: "error".into(),
            error_code: -2016345060,
        }),
        failure_details: String::new(),
    }
}

fn bench_board(c: &mut Criterion) {
    let mut f = Fixture::new(false);
    mean_frame(&mut f, "nothing imported in step 5");
    c.bench_function("board_frame_10k", |b| b.iter(|| f.frame()));

    let mut f = Fixture::new(true);
    mean_frame(&mut f, "9,000 imported in step 5");
    c.bench_function("board_frame_10k_imported", |b| b.iter(|| f.frame()));

    // Every device has been through OOBE: the Deployment column and its summary are shown.
    let mut f = Fixture::new(true);
    let deployments = f
        .page
        .board()
        .expect("board")
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.serial.clone(), deployment(&r.serial, i)))
        .collect();
    f.page = std::mem::take(&mut f.page).with_deployments(deployments);
    f.page.auto_refresh = false;
    mean_frame(&mut f, "9,000 imported, all deployed");
    c.bench_function("board_frame_10k_deployed", |b| b.iter(|| f.frame()));

    // The details panel open on a device near the end of the list (looked up every frame).
    let mut f = Fixture::new(true);
    f.page.select_serial(
        &f.page.board().expect("board").rows[DEVICES - 3]
            .serial
            .clone(),
    );
    mean_frame(&mut f, "9,000 imported, details open");
    c.bench_function("board_frame_10k_details", |b| b.iter(|| f.frame()));
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench_board
}
criterion_main!(benches);
