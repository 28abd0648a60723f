//! The "Profile assignment" page: the board the users came for. A summary with a bar that fills
//! as devices get the profile, a virtualised table (10,000 rows stay smooth), a details panel
//! with the reason and the one thing to do, edits, Sync now, and CSV export.
//!
//! The board checks the tenant by itself, whichever page is open ([`Page::tick`]): every few
//! seconds after the person changed something, backing off to at most [`CheckPlan::max`] while
//! devices still move, and once a minute when everything holds, so a device that falls back
//! takes the step out of Done without anyone pressing a button. The toolbar says when the next
//! check is.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{Color32, RichText, Sense};
use egui_extras::{Column, TableBuilder};
use tokio_util::sync::CancellationToken;

use super::widgets::{self, palette};
use super::{Page, PageCx, Phase, StepId, StepStatus};
use crate::board::{
    Board, BoardQuery, BoardRow, Chip, Deployment, DeploymentPhase, DeviceEdit, EditForm,
    FixAction, SortKey, Summary, Target, words,
};
use crate::steps::assignment::{self as steps, BoardReader, SyncNow, WaitOptions};
use crate::steps::deployment as deployments;

/// Messages from this page's background jobs.
#[derive(Debug)]
pub enum Msg {
    /// A refresh finished.
    Loaded(Result<Box<(Board, BoardReader)>, String>),
    /// The assign-and-wait run reports progress.
    Progress(String),
    /// The assign-and-wait run finished.
    Finished(Result<Box<Board>, String>),
    Edited(Result<String, String>),
    Synced(Result<SyncNow, String>),
    Exported(Result<PathBuf, SaveFailure>),
    /// Intune's deployment report, one latest deployment per serial number.
    Deployments(Result<BTreeMap<String, Deployment>, String>),
    /// The simulated tenant switched these devices on.
    SwitchedOn(Result<Vec<String>, String>),
}

pub use super::widgets::{FixedSavePath, RfdSavePicker, SavePicker};
use super::widgets::{SaveFailure, SaveFallback, save_to};

/// The fill colour of a chip.
pub fn chip_color(chip: Chip) -> Color32 {
    match chip {
        Chip::Assigned => palette::SUCCESS,
        Chip::OutOfSync => palette::SYNC,
        Chip::Pending => palette::PENDING,
        Chip::NotAssigned => palette::NEUTRAL,
        Chip::Failed => palette::ERROR,
    }
}

/// A status chip in words; hovering shows the raw `deploymentProfileAssignmentStatus`.
pub fn chip(ui: &mut egui::Ui, chip: Chip, raw: &str) -> egui::Response {
    widgets::chip(
        ui,
        chip.label(),
        chip_color(chip),
        &format!(
            "{} (deploymentProfileAssignmentStatus: {raw})",
            crate::board::words::assignment_status(raw)
        ),
    )
}

/// How often the board checks the tenant by itself. The service gives no time for any of its
/// steps, so the board keeps looking, but never from further apart than `max` while devices
/// still move, and fast right after the person changed something.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckPlan {
    /// The first interval, and the interval right after an edit, retag, assignment or sync.
    pub first: Duration,
    /// While devices still move, the interval grows (x1.5 while nothing changes) up to this.
    pub max: Duration,
    /// When nothing is pending: still checked, so a device that falls back (a changed tag, a
    /// removed assignment) shows up on its own.
    pub settled: Duration,
    /// How long after a change the interval stays at `first`.
    pub after_change: Duration,
}

impl Default for CheckPlan {
    fn default() -> Self {
        CheckPlan {
            first: Duration::from_secs(5),
            max: Duration::from_secs(20),
            settled: Duration::from_secs(60),
            after_change: Duration::from_secs(120),
        }
    }
}

/// When the next automatic check happens.
#[derive(Debug, Clone, Copy, PartialEq)]
struct AutoRefresh {
    at: Instant,
    interval: Duration,
}

/// The board's columns. The serial number always comes first; the others are shown by
/// priority as far as the width allows, so nothing is cut and nothing scrolls sideways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Serial,
    Manufacturer,
    Model,
    GroupTag,
    Membership,
    Profile,
    Status,
    AssignedAt,
    Enrollment,
    LastContact,
    Deployment,
}

impl Col {
    /// Left to right.
    const ORDER: [Col; 11] = [
        Col::Serial,
        Col::Status,
        Col::Deployment,
        Col::GroupTag,
        Col::Membership,
        Col::Profile,
        Col::AssignedAt,
        Col::Manufacturer,
        Col::Model,
        Col::Enrollment,
        Col::LastContact,
    ];
    /// Which columns stay when the width runs out (first = last to go).
    const PRIORITY: [Col; 11] = [
        Col::Serial,
        Col::Status,
        Col::GroupTag,
        Col::Membership,
        Col::AssignedAt,
        Col::Deployment,
        Col::Profile,
        Col::Model,
        Col::Enrollment,
        Col::LastContact,
        Col::Manufacturer,
    ];

    fn title(self) -> &'static str {
        match self {
            Col::Serial => "Serial number",
            Col::Manufacturer => "Manufacturer",
            Col::Model => "Model",
            Col::GroupTag => "Group tag",
            Col::Membership => "Group",
            Col::Profile => "Assigned profile",
            Col::Status => "Status",
            Col::AssignedAt => "Date assigned",
            Col::Enrollment => "Enrollment",
            Col::LastContact => "Last contact",
            Col::Deployment => "Deployment",
        }
    }

    fn sort_key(self) -> SortKey {
        match self {
            Col::Serial => SortKey::Serial,
            Col::Manufacturer => SortKey::Manufacturer,
            Col::Model => SortKey::Model,
            Col::GroupTag => SortKey::GroupTag,
            Col::Membership => SortKey::Membership,
            Col::Profile => SortKey::Profile,
            Col::Status => SortKey::Status,
            Col::AssignedAt => SortKey::AssignedAt,
            Col::Enrollment => SortKey::Enrollment,
            Col::LastContact => SortKey::LastContact,
            Col::Deployment => SortKey::Deployment,
        }
    }

    /// Wide enough for the usual content at the default font ("2026-12-01 21:37",
    /// "No Entra object yet", a 14-character serial).
    fn width(self) -> f32 {
        match self {
            Col::Serial => 135.0,
            Col::Manufacturer => 105.0,
            Col::Model => 120.0,
            Col::GroupTag => 105.0,
            Col::Membership => 130.0,
            Col::Profile => 150.0,
            Col::Status => 105.0,
            Col::AssignedAt => 125.0,
            Col::Enrollment => 130.0,
            Col::LastContact => 125.0,
            Col::Deployment => 150.0,
        }
    }
}

/// The columns that fit `width` (with `gap` between them), in display order. Until a device
/// has been switched on the Deployment column says "Not started" on every row: it goes last
/// then, so the board before OOBE keeps the columns it always had.
fn fit_columns(width: f32, gap: f32, deploying: bool) -> Vec<Col> {
    let mut used = 0.0;
    let mut keep = Vec::new();
    let order = Col::PRIORITY
        .into_iter()
        .filter(|c| deploying || *c != Col::Deployment)
        .chain((!deploying).then_some(Col::Deployment));
    for c in order {
        let w = c.width() + gap;
        if keep.is_empty() || used + w <= width {
            used += w;
            keep.push(c);
        }
    }
    Col::ORDER
        .into_iter()
        .filter(|c| keep.contains(c))
        .collect()
}

/// Width of the details panel beside the table.
const DETAILS_WIDTH: f32 = 330.0;

pub struct AssignmentPage {
    /// The group and profile from steps 3 and 4; `None` until they are done.
    pub target: Option<Target>,
    board: Option<Board>,
    reader: Option<BoardReader>,
    load: Phase<()>,
    run: Phase<String>,
    run_cancel: Option<CancellationToken>,
    progress: Option<String>,
    query: BoardQuery,
    /// Rows shown, cached for `(query, generation)`.
    view: Vec<usize>,
    view_key: Option<(BoardQuery, u64)>,
    summary: Summary,
    /// Serial numbers (upper-case) of the devices imported in step 5: the step is done when
    /// these have the profile. `None`: nothing was imported, every device counts.
    scope: Option<HashSet<String>>,
    /// [`Self::summary`] over `scope`.
    scoped: Summary,
    /// The revision of the import `scope` was built from: rebuilt when step 5 stores another
    /// job, not every frame (a pass over 9,000 rows a frame tripled the frame time).
    scope_key: Option<u64>,
    /// The first device that counts and is not ready (index into the board's rows) and how
    /// many such devices there are. Kept with `scoped`: both change only with the board, the
    /// scope or the target.
    problem: Option<(usize, usize)>,
    generation: u64,
    selected: Option<String>,
    edit: Option<EditForm>,
    edit_phase: Phase<String>,
    auto: Option<AutoRefresh>,
    pub auto_refresh: bool,
    /// When the person last changed something the board waits to see (edit, retag, assign,
    /// sync): checks stay fast for a while after.
    changed_at: Option<Instant>,
    pub checks: CheckPlan,
    sync: Phase<String>,
    sync_allowed_at: Option<Instant>,
    export: Phase<PathBuf>,
    /// The path row shown when no save dialog can open.
    export_fallback: SaveFallback,
    save_picker: Arc<dyn SavePicker>,
    pub wait: WaitOptions,
    /// The manual-sync window (Microsoft's 10 minutes; the demo scales it with its clock).
    pub sync_interval: Duration,
    /// Intune's deployment report by upper-case serial, as last read (put on every board read).
    deployments: BTreeMap<String, Deployment>,
    deploy_load: Phase<()>,
    /// When to read the report again: only while a device is going through OOBE (and after a
    /// board read, which happens anyway); `None` when nothing is deploying, so an idle page
    /// does not repaint for it.
    deploy_at: Option<Instant>,
    switch_on: Phase<String>,
    /// "Deployments: …" over the scope, kept with the report and the scope (a walk of every
    /// device of the import is too much for each frame).
    deploy_summary: Option<String>,
}

impl Default for AssignmentPage {
    fn default() -> Self {
        AssignmentPage::new(None)
    }
}

impl AssignmentPage {
    pub fn new(target: Option<Target>) -> Self {
        AssignmentPage {
            target,
            board: None,
            reader: None,
            load: Phase::Idle,
            run: Phase::Idle,
            run_cancel: None,
            progress: None,
            query: BoardQuery::default(),
            view: Vec::new(),
            view_key: None,
            summary: Summary::default(),
            scope: None,
            scoped: Summary::default(),
            scope_key: None,
            problem: None,
            generation: 0,
            selected: None,
            edit: None,
            edit_phase: Phase::Idle,
            auto: None,
            auto_refresh: true,
            changed_at: None,
            checks: CheckPlan::default(),
            sync: Phase::Idle,
            sync_allowed_at: None,
            export: Phase::Idle,
            export_fallback: SaveFallback::default(),
            save_picker: Arc::new(RfdSavePicker),
            // The assign-and-wait run polls no further apart than the board does.
            wait: WaitOptions {
                max_poll: CheckPlan::default().max,
                ..WaitOptions::default()
            },
            sync_interval: steps::SYNC_INTERVAL,
            deployments: BTreeMap::new(),
            deploy_load: Phase::Idle,
            deploy_at: None,
            switch_on: Phase::Idle,
            deploy_summary: None,
        }
    }

    pub fn with_save_picker(mut self, picker: Arc<dyn SavePicker>) -> Self {
        self.save_picker = picker;
        self
    }

    /// Shows `board` as if it had just been read (tests, benches, restored state).
    pub fn with_board(mut self, board: Board) -> Self {
        if self.target.is_none() {
            self.target = Some(board.target.clone());
        }
        self.set_board(board);
        self
    }

    /// Shows `by_serial` as if the deployment report had just been read (tests, benches).
    pub fn with_deployments(mut self, by_serial: BTreeMap<String, Deployment>) -> Self {
        self.set_deployments(by_serial);
        self
    }

    pub fn board(&self) -> Option<&Board> {
        self.board.as_ref()
    }

    pub fn query_mut(&mut self) -> &mut BoardQuery {
        &mut self.query
    }

    /// Time until the next automatic check, if one is planned.
    pub fn next_check_in(&self) -> Option<Duration> {
        self.auto
            .filter(|_| self.auto_refresh)
            .map(|a| a.at.saturating_duration_since(Instant::now()))
    }

    /// Time until the deployment report is read again on its own (only while a device is
    /// going through OOBE).
    pub fn next_deployments_check_in(&self) -> Option<Duration> {
        self.deploy_at
            .map(|t| t.saturating_duration_since(Instant::now()))
    }

    /// Rows currently shown (after scope, filter and search), as serial numbers.
    pub fn visible_serials(&mut self) -> Vec<String> {
        self.refresh_view();
        let Some(b) = &self.board else { return vec![] };
        self.view
            .iter()
            .map(|&i| b.rows[i].serial.clone())
            .collect()
    }

    fn set_board(&mut self, mut board: Board) {
        // `scoped` always follows the current board and scope.
        let before = self.board.as_ref().map(|_| self.scoped);
        board.set_deployments(&self.deployments);
        self.summary = board.summary();
        self.board = Some(board);
        self.rescope();
        self.generation += 1;
        self.view_key = None;
        self.schedule_refresh(before);
    }

    /// Recomputes what depends on the board, the scope and the target: once per change, since
    /// it walks every row.
    fn rescope(&mut self) {
        self.generation += 1;
        self.view_key = None;
        self.deploy_summary = self.deployments_summary();
        let (Some(board), Some(target)) = (&self.board, &self.target) else {
            self.scoped = Summary::default();
            self.problem = None;
            return;
        };
        self.scoped = board.summary_in(self.scope.as_ref());
        let mut waiting = board.rows.iter().enumerate().filter(|(_, r)| {
            !r.is_ready(&target.profile_id)
                && self
                    .scope
                    .as_ref()
                    .is_none_or(|s| s.contains(&r.serial.trim().to_ascii_uppercase()))
        });
        self.problem = waiting.next().map(|(i, _)| (i, 1 + waiting.count()));
    }

    fn in_scope(&self, row: &BoardRow) -> bool {
        self.scope
            .as_ref()
            .is_none_or(|s| s.contains(&row.serial.trim().to_ascii_uppercase()))
    }

    /// The scope the table shows: the import's devices unless the person asked for all.
    fn table_scope(&self) -> Option<&HashSet<String>> {
        self.scope.as_ref().filter(|_| !self.query.all_devices)
    }

    /// Counts of the rows the table can show (the filter buttons count these).
    fn table_summary(&self) -> Summary {
        if self.table_scope().is_some() {
            self.scoped
        } else {
            self.summary
        }
    }

    /// Plans the next automatic check. Checks never stop while automatic checks are on: a
    /// settled board is still looked at, less often, so a device that falls back shows.
    fn schedule_refresh(&mut self, before: Option<Summary>) {
        if !self.auto_refresh || self.target.is_none() {
            self.auto = None;
            return;
        }
        let plan = &self.checks;
        let just_changed = self
            .changed_at
            .is_some_and(|t| t.elapsed() < plan.after_change);
        let interval = if just_changed {
            plan.first
        } else if self.validated() {
            // Everything holds: look again now and then, so a fall-back shows.
            plan.settled
        } else {
            match (self.auto, before) {
                (Some(a), Some(b)) if b == self.scoped => {
                    a.interval.mul_f64(1.5).clamp(plan.first, plan.max)
                }
                _ => plan.first,
            }
        };
        self.auto = Some(AutoRefresh {
            at: Instant::now() + interval,
            interval,
        });
    }

    /// The person changed something the board should see soon.
    fn note_change(&mut self) {
        self.changed_at = Some(Instant::now());
        let before = Some(self.scoped);
        self.schedule_refresh(before);
    }

    fn refresh_view(&mut self) {
        let key = (self.query.clone(), self.generation);
        if self.view_key.as_ref() == Some(&key) {
            return;
        }
        let scope = self.table_scope().cloned();
        self.view = self
            .board
            .as_ref()
            .map(|b| b.view_in(&self.query, scope.as_ref()))
            .unwrap_or_default();
        self.view_key = Some(key);
    }

    fn start_load(&mut self, cx: &mut PageCx<'_>) {
        let (Some(graph), Some(target)) = (cx.graph(), self.target.clone()) else {
            return;
        };
        if self.load.is_running() {
            return;
        }
        self.load = Phase::Running {
            what: "Reading the devices".into(),
        };
        let mut reader = self
            .reader
            .take()
            .unwrap_or_else(|| BoardReader::new(target));
        cx.spawn("Read the assignment board", move |out, cancel| async move {
            let graph = graph.with_cancel(cancel);
            let r = reader.read(&graph).await.map_err(|e| e.to_string());
            out.send(super::Msg::Assignment(Msg::Loaded(
                r.map(|b| Box::new((b, reader))),
            )));
        });
    }

    /// Reads Intune's deployment report (the Deployment column and the device timelines).
    fn start_deployments(&mut self, cx: &mut PageCx<'_>) {
        let Some(graph) = cx.graph() else { return };
        if self.deploy_load.is_running() {
            return;
        }
        self.deploy_at = None;
        self.deploy_load = Phase::Running {
            what: "Reading the deployment report".into(),
        };
        cx.spawn(
            "Read the deployment report",
            move |out, cancel| async move {
                let graph = graph.with_cancel(cancel);
                let r = deployments::read(&graph).await.map_err(|e| e.to_string());
                out.send(super::Msg::Assignment(Msg::Deployments(r)));
            },
        );
    }

    /// Puts a new report on the board; reads again soon while a device is deploying.
    fn set_deployments(&mut self, by_serial: BTreeMap<String, Deployment>) {
        self.deployments = by_serial;
        if let Some(b) = &mut self.board
            && b.set_deployments(&self.deployments)
        {
            self.generation += 1;
            self.view_key = None;
        }
        let deploying = self.deployments.values().any(|d| d.phase.in_progress());
        self.deploy_at = deploying.then(|| Instant::now() + self.checks.first);
        let summary = self.deployments_summary();
        if summary != self.deploy_summary
            && let Some(s) = &summary
        {
            tracing::info!("board: {s}");
        }
        self.deploy_summary = summary;
    }

    /// What the demo's switch-on button will switch on: up to three of the board's devices (in
    /// scope) that have the profile and were never deployed, by serial number. Simulated tenant
    /// only, so walking the rows each frame costs nothing in a real tenant.
    fn switch_on_candidates(&self) -> Vec<String> {
        let mut serials: Vec<String> = match (&self.board, &self.target) {
            (Some(b), Some(t)) => b
                .rows
                .iter()
                .filter(|r| {
                    self.in_scope(r) && r.is_ready(&t.profile_id) && r.awaits_first_deployment()
                })
                .map(|r| r.serial.clone())
                .collect(),
            _ => Vec::new(),
        };
        serials.sort();
        serials.truncate(3);
        serials
    }

    /// The demo's "Switch on N devices" (simulated tenant only).
    fn start_switch_on(&mut self, cx: &mut PageCx<'_>) {
        let Some(graph) = cx.graph() else { return };
        let serials = self.switch_on_candidates();
        if serials.is_empty() {
            return;
        }
        self.switch_on = Phase::Running {
            what: "Switching devices on".into(),
        };
        cx.spawn("Switch on devices", move |out, cancel| async move {
            let graph = graph.with_cancel(cancel);
            let r = deployments::switch_on_simulated(&graph, &serials, 3)
                .await
                .map_err(|e| e.to_string());
            out.send(super::Msg::Assignment(Msg::SwitchedOn(r)));
        });
    }

    /// "Deployments: 2 succeeded, 1 failed, 1 in progress" over the board's scope, once any
    /// device has been switched on.
    fn deployments_summary(&self) -> Option<String> {
        if self.deployments.is_empty() {
            return None;
        }
        let serials: Vec<String> = self.scope.iter().flatten().cloned().collect();
        let c = deployments::counts(&self.deployments, &serials);
        if c.succeeded + c.failed + c.in_progress == 0 {
            return None;
        }
        let mut parts = Vec::new();
        for (n, what) in [
            (c.succeeded, "succeeded"),
            (c.failed, "failed"),
            (c.in_progress, "in progress"),
            (c.not_started, "not started"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        Some(format!("Deployments: {}", parts.join(", ")))
    }

    /// The devices "Assign" works on: those of the import, or every device when nothing was
    /// imported.
    fn run_devices(&self) -> Vec<&BoardRow> {
        match &self.board {
            Some(board) => board.rows.iter().filter(|r| self.in_scope(r)).collect(),
            None => Vec::new(),
        }
    }

    fn start_run(&mut self, cx: &mut PageCx<'_>) {
        let (Some(graph), Some(target)) = (cx.graph(), self.target.clone()) else {
            return;
        };
        let opts = self.wait.clone();
        let ids: Vec<String> = if self.scope.is_some() {
            self.run_devices().iter().map(|r| r.id.clone()).collect()
        } else {
            Vec::new()
        };
        self.run = Phase::Running {
            what: "Putting the devices into the group and waiting for the profile".into(),
        };
        self.progress = None;
        self.note_change();
        let token = cx.spawn("Assign the profile", move |out, cancel| async move {
            let graph = graph.with_cancel(cancel);
            let o = out.clone();
            let r = steps::run(&graph, &target, &ids, &opts, move |p| {
                o.send(super::Msg::Assignment(Msg::Progress(p.message())))
            })
            .await
            .map(Box::new)
            .map_err(|e| e.to_string());
            out.send(super::Msg::Assignment(Msg::Finished(r)));
        });
        self.run_cancel = Some(token);
    }

    fn start_edit(&mut self, cx: &mut PageCx<'_>, id: String, edit: DeviceEdit) {
        let Some(graph) = cx.graph() else { return };
        self.edit_phase = Phase::Running {
            what: "Saving the change to the device".into(),
        };
        cx.spawn("Update device properties", move |out, cancel| async move {
            let graph = graph.with_cancel(cancel);
            let r = steps::update_device(&graph, &id, &edit)
                .await
                .map(|o| {
                    if o.not_yet_visible.is_empty() {
                        format!("Saved and read back for {}.", o.device.serial_number)
                    } else {
                        format!(
                            "Saved for {}; the {} will show after the next Autopilot sync.",
                            o.device.serial_number,
                            o.not_yet_visible.join(", ")
                        )
                    }
                })
                .map_err(|e| e.to_string());
            out.send(super::Msg::Assignment(Msg::Edited(r)));
        });
    }

    fn start_sync(&mut self, cx: &mut PageCx<'_>) {
        let Some(graph) = cx.graph() else { return };
        self.sync = Phase::Running {
            what: "Asking Autopilot to sync".into(),
        };
        let interval = self.sync_interval;
        cx.spawn("Autopilot sync", move |out, cancel| async move {
            let graph = graph.with_cancel(cancel);
            let r = steps::sync_now_within(&graph, interval)
                .await
                .map_err(|e| e.to_string());
            out.send(super::Msg::Assignment(Msg::Synced(r)));
        });
    }

    fn export_name(board: &Board) -> String {
        format!(
            "autopilot-devices-{}.csv",
            board.loaded_at.format("%Y%m%d-%H%M")
        )
    }

    /// `typed`: a path from the no-dialog row; `None` asks the save dialog.
    fn start_export(&mut self, cx: &mut PageCx<'_>, typed: Option<PathBuf>) {
        let Some(board) = self.board.clone() else {
            return;
        };
        let name = Self::export_name(&board);
        if typed.is_none() && !self.export_fallback.check(&*self.save_picker, &name) {
            return;
        }
        self.refresh_view();
        let order = self.view.clone();
        let picker = self.save_picker.clone();
        self.export = Phase::Running {
            what: "Exporting".into(),
        };
        cx.spawn("Export CSV", move |out, _cancel| async move {
            let mut buf = Vec::new();
            let r = match crate::board::export_csv(
                &board,
                order.iter().map(|&i| &board.rows[i]),
                &mut buf,
            ) {
                Err(e) => Err(SaveFailure::Write {
                    path: name.clone(),
                    error: e.to_string(),
                }),
                Ok(()) => {
                    save_to(
                        &*picker,
                        typed,
                        "Export the device board",
                        &name,
                        ("CSV files", &["csv"]),
                        buf,
                    )
                    .await
                }
            };
            out.send(super::Msg::Assignment(Msg::Exported(r)));
        });
    }

    fn summary_ui(&self, ui: &mut egui::Ui) {
        // The legend, the bar and the "Ready" line count the same devices: the import's (or
        // every device when nothing was imported).
        let s = self.scoped;
        let whose = if self.scope.is_some() {
            format!("devices imported in {}", StepId::Import.step_n())
        } else {
            "devices".to_string()
        };
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new(format!("{} {whose}", s.total)).strong());
            // A swatch of the chip's colour, not the chip again: the legend fits one line of a
            // laptop window.
            for c in Chip::ALL {
                let (swatch, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), Sense::hover());
                ui.painter().rect_filled(swatch, 2.0, chip_color(c));
                ui.label(format!("{}: {}", c.label(), s.count(c)));
                ui.add_space(4.0);
            }
        });
        // The bar: one segment per status, assigned first, so it fills from the left.
        let (rect, response) = ui.allocate_exact_size(
            egui::vec2(ui.available_width().max(50.0), 14.0),
            Sense::hover(),
        );
        let bar_text = format!("{} of {} {whose} ready", s.ready, s.total);
        response.widget_info(|| {
            egui::WidgetInfo::labeled(egui::Role::ProgressIndicator, true, &bar_text)
        });
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 3.0, ui.visuals().extreme_bg_color);
        if s.total > 0 {
            let mut x = rect.left();
            for c in Chip::ALL {
                let w = rect.width() * s.count(c) as f32 / s.total as f32;
                if w > 0.0 {
                    let seg = egui::Rect::from_min_max(
                        egui::pos2(x, rect.top()),
                        egui::pos2(x + w, rect.bottom()),
                    );
                    painter.rect_filled(seg, 0.0, chip_color(c));
                    x += w;
                }
            }
        }
        ui.label(format!(
            "Ready (assigned \"{}\" with a date): {} of {}{}",
            self.target
                .as_ref()
                .map(|t| t.profile_name.as_str())
                .unwrap_or("-"),
            s.ready,
            s.total,
            if self.scope.is_some() {
                format!(" devices imported in {}", StepId::Import.step_n())
            } else {
                String::new()
            }
        ));
    }

    /// Why Next is still closed, without having to pick a row: the first device that counts
    /// and is not ready, what to do, and the fix itself as a button on the same line.
    fn first_problem_ui(&self, ui: &mut egui::Ui, action: &mut Option<DetailAction>) {
        let Some(board) = &self.board else { return };
        let Some((first, waiting)) = self.problem else {
            return;
        };
        let Some(first) = board.rows.get(first) else {
            return;
        };
        let d = board.diagnose_in(first, self.in_scope(first));
        let more = match waiting {
            1 => String::new(),
            2 => " (1 more device is not ready either.)".to_string(),
            n => format!(" ({} more devices are not ready either.)", n - 1),
        };
        ui.horizontal_wrapped(|ui| {
            widgets::warning_message(
                ui,
                format!(
                    "Not ready: {}: {} {}{more}",
                    first.serial, d.reason, d.what_to_do
                ),
            );
            self.fix_button(ui, &first.id, &d.action, action);
            if ui
                .small_button(format!("Show {}", first.serial))
                .on_hover_text("Opens the device's details beside the table.")
                .clicked()
            {
                *action = Some(DetailAction::Select(first.id.clone()));
            }
        });
    }

    /// The button that carries out `fix` for the device `id`, where there is one.
    fn fix_button(
        &self,
        ui: &mut egui::Ui,
        id: &str,
        fix: &FixAction,
        action: &mut Option<DetailAction>,
    ) {
        let busy = self.edit_phase.is_running() || self.run.is_running();
        let (label, act) = match fix {
            FixAction::SyncNow => ("Sync now".to_string(), DetailAction::Sync),
            FixAction::AddToGroup => ("Add to group".to_string(), DetailAction::Run),
            FixAction::SetGroupTag(tag) => (
                fix.label(),
                DetailAction::SetTag(id.to_string(), tag.clone()),
            ),
            // Waiting needs no button of its own: "Check now" is in the toolbar above.
            FixAction::Wait | FixAction::None | FixAction::Manual => return,
        };
        let sync_blocked = matches!(fix, FixAction::SyncNow)
            && (self.sync.is_running() || self.sync_wait().is_some());
        if ui
            .add_enabled(!busy && !sync_blocked, egui::Button::new(label))
            .clicked()
        {
            *action = Some(act);
        }
    }

    /// Time until Autopilot accepts another manual sync, if it does not yet.
    fn sync_wait(&self) -> Option<Duration> {
        self.sync_allowed_at
            .map(|t| t.saturating_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    fn toolbar_ui(
        &mut self,
        ui: &mut egui::Ui,
        simulated: bool,
        action: &mut Option<DetailAction>,
    ) {
        ui.horizontal_wrapped(|ui| {
            let loading = self.load.is_running();
            if ui
                .add_enabled(!loading, egui::Button::new("Check now"))
                .on_hover_text("Reads every device and the group again.")
                .clicked()
            {
                *action = Some(DetailAction::Refresh);
            }
            if loading {
                ui.spinner();
                ui.label("Checking…");
            } else {
                match self.next_check_in() {
                    Some(d) if d.is_zero() => {
                        ui.label("Checking in a moment");
                    }
                    Some(d) => {
                        ui.label(format!("Next check in {} s", d.as_secs_f32().ceil() as u64));
                        // The countdown ticks once a second, not every frame.
                        ui.ctx()
                            .request_repaint_after(Duration::from_secs(1).min(d));
                    }
                    None => {
                        ui.weak("Automatic checks are off");
                    }
                }
                if let Some(b) = &self.board {
                    ui.weak(format!(
                        "last checked {}",
                        b.loaded_at.with_timezone(&chrono::Local).format("%H:%M:%S")
                    ));
                }
            }
            let mut auto = self.auto_refresh;
            if ui
                .checkbox(&mut auto, "Auto-refresh")
                .on_hover_text(
                    "Checks the devices again by itself: every few seconds while something is \
                     pending or after you changed something, every minute when all is settled.",
                )
                .changed()
            {
                self.auto_refresh = auto;
                let before = Some(self.scoped);
                self.schedule_refresh(before);
            }
            ui.separator();
            let remaining = self.sync_wait();
            let sync_label = match remaining {
                Some(d) => format!("Sync now (in {}:{:02})", d.as_secs() / 60, d.as_secs() % 60),
                None => "Sync now".into(),
            };
            if ui
                .add_enabled(
                    remaining.is_none() && !self.sync.is_running(),
                    egui::Button::new(sync_label),
                )
                .on_hover_text("Asks Autopilot to sync now. Allowed about once every 10 minutes.")
                .clicked()
            {
                *action = Some(DetailAction::Sync);
            }
            if let Some(d) = remaining {
                ui.ctx()
                    .request_repaint_after(d.min(Duration::from_secs(1)));
            }
            if ui
                .add_enabled(
                    self.board.is_some() && !self.export.is_running(),
                    egui::Button::new("Export CSV"),
                )
                .on_hover_text("Saves the rows shown, in the order shown, with each reason.")
                .clicked()
            {
                *action = Some(DetailAction::Export);
            }
            // Many devices at once: filter or search the board down to them.
            let shown = self.view.len();
            let noun = if shown == 1 { "device" } else { "devices" };
            if ui
                .add_enabled(
                    shown > 0,
                    egui::Button::new(format!("Remove the {shown} {noun} shown…")),
                )
                .on_hover_text(
                    "Opens Remove devices with the rows shown (filter or search the board to \
                     choose them). Nothing is sent before you see the plan and confirm it.",
                )
                .clicked()
            {
                *action = Some(DetailAction::Remove(self.visible_serials()));
            }
            if self.run.is_running() {
                if ui.button("Stop waiting").clicked() {
                    *action = Some(DetailAction::StopRun);
                }
            } else if !(self.scoped.total > 0 && self.scoped.ready == self.scoped.total) {
                // Nothing left to wait for once every device has the profile. The count comes
                // from the scope's summary (computed once per change), not a walk of every row.
                let n = self.scoped.total;
                let (label, hover) = self.run_words(n);
                if ui
                    .add_enabled(n > 0, egui::Button::new(label))
                    .on_hover_text(hover)
                    .clicked()
                {
                    *action = Some(DetailAction::Run);
                }
            }
            if simulated {
                ui.separator();
                let n = self.switch_on_candidates().len();
                let label = match n {
                    0 => "Switch devices on".to_string(),
                    1 => "Switch on 1 device".to_string(),
                    n => format!("Switch on {n} devices"),
                };
                if ui
                    .add_enabled(
                        n > 0 && !self.switch_on.is_running(),
                        egui::Button::new(label),
                    )
                    .on_hover_text(
                        "Simulated tenant only: up to three devices here that have the profile \
                         go through setup, as if someone switched them on; one of the first \
                         batch fails, so the board has a failure to show.",
                    )
                    .on_disabled_hover_text(
                        "Simulated tenant only: every device here with the profile has been \
                         switched on already, or none has the profile yet.",
                    )
                    .clicked()
                {
                    *action = Some(DetailAction::SwitchOn);
                }
            }
        });
    }

    /// What the assign button says it will do, for `n` devices.
    fn run_words(&self, n: usize) -> (String, String) {
        let devices = if n == 1 { "device" } else { "devices" };
        let Some(target) = &self.target else {
            return (format!("Assign {n} {devices}"), String::new());
        };
        let which = if self.scope.is_some() {
            format!("the devices imported in {}", StepId::Import.step_n())
        } else {
            "every Autopilot device in the tenant".to_string()
        };
        match &target.membership {
            crate::board::GroupMembership::Static => (
                format!("Add {n} {devices} to the group and wait"),
                format!(
                    "Adds {which} ({n}) to \"{}\" where they are missing, then follows the \
                     profile assignment until each has \"{}\".",
                    target.group_name, target.profile_name
                ),
            ),
            crate::board::GroupMembership::Dynamic { .. } => (
                format!("Wait for {n} {devices} to get the profile"),
                format!(
                    "\"{}\" picks devices up by its rule; this follows {which} ({n}) until each \
                     is a member and has \"{}\". Nothing is changed.",
                    target.group_name, target.profile_name
                ),
            ),
        }
    }

    fn filter_ui(&mut self, ui: &mut egui::Ui) {
        let counts = self.table_summary();
        ui.horizontal_wrapped(|ui| {
            if self.scope.is_some() {
                let mut all = self.query.all_devices;
                if ui
                    .checkbox(&mut all, "Show all devices in the tenant")
                    .on_hover_text(format!(
                        "The board shows the devices imported in {}. Tick this to see the \
                         tenant's other Autopilot devices too; the wizard does not change them.",
                        StepId::Import.step_n()
                    ))
                    .changed()
                {
                    self.query.all_devices = all;
                }
                ui.separator();
            }
            if ui
                .selectable_label(self.query.chip.is_none(), format!("All ({})", counts.total))
                .clicked()
            {
                self.query.chip = None;
            }
            for c in Chip::ALL {
                let label = format!("{} ({})", c.label(), counts.count(c));
                if ui
                    .selectable_label(self.query.chip == Some(c), label)
                    .clicked()
                {
                    self.query.chip = if self.query.chip == Some(c) {
                        None
                    } else {
                        Some(c)
                    };
                }
            }
            ui.separator();
            let l = ui.label("Search serial");
            ui.add(
                egui::TextEdit::singleline(&mut self.query.search)
                    .desired_width(140.0)
                    .hint_text("serial number"),
            )
            .labelled_by(l.id);
        });
    }

    fn details_ui(&mut self, ui: &mut egui::Ui, action: &mut Option<DetailAction>) {
        let Some(board) = &self.board else { return };
        let Some(id) = self.selected.clone() else {
            return;
        };
        let Some(row) = board.row_by_id(&id).cloned() else {
            self.selected = None;
            return;
        };
        let diag = board.diagnose_in(&row, self.in_scope(&row));
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal(|ui| {
                ui.label(RichText::new(format!("Device {}", row.serial)).strong());
                chip(ui, row.chip, &row.status_raw);
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui.small_button("Close").clicked() {
                        *action = Some(DetailAction::Close);
                    }
                    if ui.small_button("Remove this device…").clicked() {
                        *action = Some(DetailAction::Remove(vec![row.serial.clone()]));
                    }
                });
            });
            egui::Grid::new("assignment-details")
                .num_columns(2)
                .spacing([8.0, 2.0])
                .show(ui, |ui| {
                    let field = |ui: &mut egui::Ui, name: &str, value: String| {
                        ui.weak(name);
                        ui.add(egui::Label::new(value).wrap());
                        ui.end_row();
                    };
                    field(
                        ui,
                        "Device",
                        crate::hwid::device_name(&row.manufacturer, &row.model),
                    );
                    field(ui, "Group tag", or_none(&row.group_tag));
                    field(ui, "Group", row.membership.label().to_string());
                    field(
                        ui,
                        "Profile",
                        row.profile_name.clone().unwrap_or_else(|| "none".into()),
                    );
                    ui.weak("Status");
                    widgets::worded(
                        ui,
                        words::assignment_status(&row.status_raw),
                        "deploymentProfileAssignmentStatus",
                        &row.status_raw,
                    );
                    ui.end_row();
                    field(ui, "Date assigned", short_date(row.assigned_at));
                    ui.weak("Enrollment");
                    widgets::worded(
                        ui,
                        words::enrollment_state(&row.enrollment_state),
                        "enrollmentState",
                        &row.enrollment_state,
                    );
                    ui.end_row();
                    field(ui, "Last contact", short_date(row.last_contact));
                    field(ui, "Computer name", or_none(&row.display_name));
                    field(ui, "Assigned user", or_none(&row.user_principal_name));
                    ui.weak("Deployment");
                    widgets::worded(
                        ui,
                        row.deployment_words(),
                        "deploymentState",
                        row.deployment
                            .as_ref()
                            .map_or("none", |d| d.state_raw.as_str()),
                    );
                    ui.end_row();
                });
            if let Some(d) = &row.deployment {
                ui.label(RichText::new("Deployment timeline").strong());
                for line in d.timeline() {
                    ui.add(egui::Label::new(line).wrap());
                }
                ui.add(egui::Label::new(d.explanation()).wrap());
                ui.add(egui::Label::new(RichText::new(deployments::REPORT_LIMITS).weak()).wrap());
            }
            ui.add(egui::Label::new(format!("Why: {}", diag.reason)).wrap());
            ui.add(
                egui::Label::new(
                    RichText::new(format!("What to do: {}", diag.what_to_do)).strong(),
                )
                .wrap(),
            );
            ui.horizontal_wrapped(|ui| {
                self.fix_button(ui, &row.id, &diag.action, action);
                if self.edit.is_none() && ui.button("Edit…").clicked() {
                    *action = Some(DetailAction::Edit);
                }
            });
            self.edit_ui(ui, action);
        });
    }

    fn edit_ui(&mut self, ui: &mut egui::Ui, action: &mut Option<DetailAction>) {
        let Some(form) = &mut self.edit else {
            return;
        };
        ui.separator();
        ui.label(RichText::new(format!("Edit {}", form.serial)).strong());
        egui::Grid::new("assignment-edit")
            .num_columns(2)
            .show(ui, |ui| {
                let l = ui.label("Group tag");
                ui.add(egui::TextEdit::singleline(&mut form.group_tag).desired_width(170.0))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Computer name");
                ui.add(egui::TextEdit::singleline(&mut form.display_name).desired_width(170.0))
                    .labelled_by(l.id)
                    .on_hover_text("At most 15 characters: letters, digits and hyphens.");
                ui.end_row();
                let l = ui.label("Assigned user");
                ui.add(egui::TextEdit::singleline(&mut form.user).desired_width(170.0))
                    .labelled_by(l.id);
                ui.end_row();
            });
        let edit = form.edit();
        let problem = edit.validate().err();
        if let Some(p) = &problem {
            widgets::error_message(ui, p.as_str());
        }
        if let Some(e) = &form.error {
            widgets::error_message(ui, e.as_str());
        }
        let saving = self.edit_phase.is_running();
        ui.horizontal(|ui| {
            if ui
                .add_enabled(
                    problem.is_none() && !edit.is_empty() && !saving,
                    egui::Button::new("Save"),
                )
                .clicked()
            {
                *action = Some(DetailAction::Save(form.device_id.clone(), edit.clone()));
            }
            if ui.button("Cancel").clicked() {
                *action = Some(DetailAction::CancelEdit);
            }
            if saving {
                ui.spinner();
            }
        });
    }

    fn table_ui(&mut self, ui: &mut egui::Ui, action: &mut Option<DetailAction>) {
        self.refresh_view();
        let Some(board) = &self.board else { return };
        if self.view.is_empty() {
            ui.horizontal_wrapped(|ui| {
                ui.label(RichText::new("No devices match").strong());
                if ui.button("Show all").clicked() {
                    *action = Some(DetailAction::ClearFilter);
                }
            });
            return;
        }
        let view = &self.view;
        let mut sort_clicked: Option<SortKey> = None;
        let selected = self.selected.clone();
        let text_height = egui::TextStyle::Body
            .resolve(ui.style())
            .size
            .max(ui.spacing().interact_size.y);
        // Solid scroll bars take their own space instead of floating over the last row.
        ui.spacing_mut().scroll = egui::style::ScrollStyle::solid();
        let gap = ui.spacing().item_spacing.x;
        let bar = ui.spacing().scroll.allocated_width();
        let deploying = !self.deployments.is_empty();
        let cols = fit_columns(ui.available_width() - bar, gap, deploying);
        let q = &self.query;
        let mut builder = TableBuilder::new(ui)
            .id_salt("assignment-board")
            .striped(true)
            .sense(Sense::click())
            .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
            .min_scrolled_height(0.0);
        for (i, c) in cols.iter().enumerate() {
            builder = builder.column(if i + 1 == cols.len() {
                Column::remainder().clip(true)
            } else {
                Column::exact(c.width()).clip(true)
            });
        }
        builder
            .header(text_height + 4.0, |mut header| {
                for c in &cols {
                    header.col(|ui| {
                        let key = c.sort_key();
                        let arrow = if q.sort == key {
                            // ASCII: the default fonts have no arrow glyphs.
                            if q.descending { " v" } else { " ^" }
                        } else {
                            ""
                        };
                        if ui
                            .add(
                                egui::Label::new(
                                    RichText::new(format!("{}{arrow}", c.title())).strong(),
                                )
                                .sense(Sense::click()),
                            )
                            .on_hover_text("Click to sort")
                            .clicked()
                        {
                            sort_clicked = Some(key);
                        }
                    });
                }
            })
            .body(|body| {
                body.rows(text_height, view.len(), |mut row| {
                    let r = &board.rows[view[row.index()]];
                    row.set_selected(selected.as_deref() == Some(r.id.as_str()));
                    for c in &cols {
                        row.col(|ui| {
                            // Plain text lets the click through to the row: the whole row
                            // opens the details, text included.
                            ui.style_mut().interaction.selectable_labels = false;
                            cell(ui, *c, r);
                        });
                    }
                    let response = row
                        .response()
                        .on_hover_cursor(egui::CursorIcon::PointingHand)
                        .on_hover_text("Click for the details and the fix");
                    if response.clicked() || response.secondary_clicked() {
                        *action = Some(DetailAction::Select(r.id.clone()));
                    }
                });
            });
        if let Some(key) = sort_clicked {
            if self.query.sort == key {
                self.query.descending = !self.query.descending;
            } else {
                self.query.sort = key;
                self.query.descending = false;
            }
        }
    }

    /// Takes the group and profile from steps 3 and 4; when either changed, the board is read
    /// again for the new target.
    fn follow_outcomes(&mut self, cx: &PageCx<'_>) {
        let key = cx.outcomes.import.as_ref().map(|j| j.revision.get());
        if key != self.scope_key {
            self.scope_key = key;
            let scope = imported_serials(cx.outcomes);
            if scope != self.scope {
                self.scope = scope;
                self.rescope();
                // Devices were imported (or left out) since the board was read: read it soon.
                if self.board.is_some() {
                    self.note_change();
                }
            }
        }
        let (Some(profile), Some(group)) = (&cx.outcomes.profile, &cx.outcomes.group) else {
            return;
        };
        let wanted = steps::target_of(profile, group);
        if self.target.as_ref() == Some(&wanted) {
            return;
        }
        self.target = Some(wanted);
        self.board = None;
        self.reader = None;
        self.load = Phase::Idle;
        self.selected = None;
        self.edit = None;
        self.auto = None;
        self.summary = Summary::default();
        self.rescope();
    }

    /// Selects the device with `serial` (tests, and "show me" links from other pages).
    pub fn select_serial(&mut self, serial: &str) {
        self.selected = self
            .board
            .as_ref()
            .and_then(|b| {
                b.rows
                    .iter()
                    .find(|r| r.serial.eq_ignore_ascii_case(serial))
            })
            .map(|r| r.id.clone());
    }

    fn apply(&mut self, action: DetailAction, cx: &mut PageCx<'_>) {
        match action {
            DetailAction::Close => {
                self.selected = None;
                self.edit = None;
            }
            DetailAction::Remove(serials) => cx.request_removal(serials),
            DetailAction::CancelEdit => self.edit = None,
            DetailAction::Select(id) => {
                if self.selected.as_deref() != Some(id.as_str()) {
                    self.edit = None;
                    self.edit_phase = Phase::Idle;
                }
                self.selected = Some(id);
            }
            DetailAction::Sync => self.start_sync(cx),
            DetailAction::Run => self.start_run(cx),
            DetailAction::StopRun => {
                if let Some(t) = self.run_cancel.take() {
                    t.cancel();
                }
            }
            DetailAction::Refresh => self.start_load(cx),
            DetailAction::Export => self.start_export(cx, None),
            DetailAction::ClearFilter => {
                self.query.chip = None;
                self.query.search.clear();
            }
            DetailAction::SetTag(id, tag) => self.start_edit(
                cx,
                id,
                DeviceEdit {
                    group_tag: Some(tag),
                    ..DeviceEdit::default()
                },
            ),
            DetailAction::Edit => {
                let row = self
                    .selected
                    .as_deref()
                    .and_then(|id| self.board.as_ref()?.row_by_id(id));
                if let Some(row) = row {
                    self.edit = Some(EditForm::from_row(row));
                    self.edit_phase = Phase::Idle;
                }
            }
            DetailAction::Save(id, edit) => self.start_edit(cx, id, edit),
            DetailAction::SwitchOn => self.start_switch_on(cx),
        }
    }
}

/// What a click on the page asks for; carried out after drawing.
enum DetailAction {
    Close,
    /// Hand the devices to "Remove devices".
    Remove(Vec<String>),
    CancelEdit,
    Select(String),
    Sync,
    Run,
    StopRun,
    Refresh,
    Export,
    ClearFilter,
    SetTag(String, String),
    Edit,
    Save(String, DeviceEdit),
    SwitchOn,
}

/// One cell of the table: words for Graph's values, the raw value on hover.
fn cell(ui: &mut egui::Ui, c: Col, r: &BoardRow) {
    let text = |ui: &mut egui::Ui, s: &str| {
        ui.add(egui::Label::new(s).truncate());
    };
    match c {
        Col::Serial => text(ui, &r.serial),
        Col::Manufacturer => text(ui, &r.manufacturer),
        Col::Model => text(ui, &r.model),
        Col::GroupTag => text(ui, &r.group_tag),
        Col::Membership => text(ui, r.membership.label()),
        Col::Profile => text(ui, r.profile_name.as_deref().unwrap_or("-")),
        Col::Status => {
            chip(ui, r.chip, &r.status_raw);
        }
        Col::AssignedAt => text(ui, &short_date(r.assigned_at)),
        Col::Enrollment => {
            ui.add(egui::Label::new(words::enrollment_state(&r.enrollment_state)).truncate())
                .on_hover_text(format!("enrollmentState: {}", r.enrollment_state));
        }
        Col::LastContact => text(ui, &short_date(r.last_contact)),
        Col::Deployment => {
            let words = r.deployment_words();
            let colour = match r.deployment_phase() {
                DeploymentPhase::Succeeded => Some(palette::SUCCESS),
                DeploymentPhase::Failed => Some(palette::ERROR),
                p if p.in_progress() => Some(palette::PENDING),
                _ => None,
            };
            let label = match colour {
                Some(c) => egui::Label::new(RichText::new(words).color(c)),
                None => egui::Label::new(words),
            };
            ui.add(label.truncate()).on_hover_text(match &r.deployment {
                Some(d) => format!(
                    "{}\ndeploymentState: {}, deviceSetupStatus: {}, accountSetupStatus: {}",
                    d.explanation(),
                    d.state_raw,
                    d.device_setup_raw,
                    d.account_setup_raw
                ),
                None => "No deployment reported for this device yet.".into(),
            });
        }
    }
}

fn or_none(s: &str) -> String {
    if s.trim().is_empty() {
        "none".into()
    } else {
        s.to_string()
    }
}

fn short_date(d: Option<chrono::DateTime<chrono::Utc>>) -> String {
    d.map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}

impl Page for AssignmentPage {
    type Msg = Msg;

    fn tick(&mut self, ctx: &egui::Context, cx: &mut PageCx<'_>) {
        self.follow_outcomes(cx);
        // The first read happens when the page is first shown (in `ui`); from then on the
        // automatic checks run whichever page is open.
        if self.target.is_none() || cx.graph().is_none() {
            return;
        }
        if let Some(at) = self.deploy_at.filter(|_| self.auto_refresh) {
            let now = Instant::now();
            if now >= at {
                self.start_deployments(cx);
            } else {
                ctx.request_repaint_after(at - now);
            }
        }
        let Some(a) = self.auto.filter(|_| self.auto_refresh) else {
            return;
        };
        let now = Instant::now();
        if now >= a.at {
            if !self.load.is_running() {
                self.start_load(cx);
            }
        } else {
            ctx.request_repaint_after(a.at - now);
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        ui.heading("Profile assignment");
        // The app ticks every page each frame; a page drawn on its own (tests) ticks here.
        self.tick(&ui.ctx().clone(), cx);
        let Some(target) = self.target.clone() else {
            ui.label(
                "Finish the Deployment profile and Device group steps first: this page follows \
                 the profile they set up.",
            );
            return;
        };
        ui.label(format!(
            "Profile \"{}\" through group \"{}\" ({}).",
            target.profile_name,
            target.group_name,
            match &target.membership {
                crate::board::GroupMembership::Dynamic { rule } => format!("dynamic: {rule}"),
                crate::board::GroupMembership::Static => "assigned membership".into(),
            }
        ));
        if self.board.is_none() && matches!(self.load, Phase::Idle) && cx.graph().is_some() {
            self.start_load(cx);
        }
        let mut action = None;
        self.summary_ui(ui);
        self.first_problem_ui(ui, &mut action);
        self.toolbar_ui(ui, cx.session.simulated, &mut action);
        if let Some(text) = &self.deploy_summary {
            ui.label(text.as_str());
        }
        if let Phase::Failed(e) = &self.deploy_load {
            ui.weak(format!("Deployment report not read: {e}"));
        }
        for phase in [&self.run, &self.sync, &self.switch_on] {
            match phase {
                Phase::Running { what } => {
                    ui.label(what.as_str());
                }
                Phase::Done(m) => {
                    ui.label(m.as_str());
                }
                Phase::Failed(e) => {
                    widgets::error_message(ui, e.as_str());
                }
                Phase::Idle => {}
            }
        }
        // Edits and fixes report here, where they were started from (the problem line or the
        // details), not only inside the details panel.
        match &self.edit_phase {
            Phase::Done(m) => {
                widgets::success_message(ui, m.as_str());
            }
            // An open form shows its own error next to the fields.
            Phase::Failed(e) if self.edit.is_none() => {
                widgets::error_message(ui, e.as_str());
            }
            Phase::Running { what } => {
                widgets::busy(ui, what.as_str());
            }
            Phase::Failed(_) | Phase::Idle => {}
        }
        if self.run.is_running()
            && let Some(p) = &self.progress
        {
            ui.label(p.as_str());
        }
        if let Some(path) = self.export_fallback.ui(ui, "Export to") {
            self.start_export(cx, Some(path));
        }
        match &self.export {
            Phase::Done(p) => {
                ui.label(format!("Exported to {}", p.display()));
            }
            Phase::Failed(e) => {
                widgets::error_message(ui, e.as_str());
            }
            _ => {}
        }
        if let Phase::Failed(e) = &self.load {
            widgets::error_message(ui, e.as_str());
        }
        if self.board.is_none() {
            if cx.graph().is_none() {
                ui.label("Sign in first.");
            }
            if let Some(a) = action {
                self.apply(a, cx);
            }
            return;
        }
        self.filter_ui(ui);
        ui.weak("Click a device for its details and the fix.");
        ui.separator();
        // The details open beside the table, so the row that was clicked stays where it was.
        let open = self.selected.is_some();
        let gap = ui.spacing().item_spacing.x;
        let table_width = if open {
            (ui.available_width() - DETAILS_WIDTH - gap).max(160.0)
        } else {
            ui.available_width()
        };
        let height = ui.available_height().max(200.0);
        ui.horizontal_top(|ui| {
            ui.allocate_ui_with_layout(
                egui::vec2(table_width, height),
                egui::Layout::top_down(egui::Align::Min),
                |ui| {
                    ui.set_width(table_width);
                    self.table_ui(ui, &mut action);
                },
            );
            if open {
                ui.allocate_ui_with_layout(
                    egui::vec2(DETAILS_WIDTH, height),
                    egui::Layout::top_down(egui::Align::Min),
                    |ui| {
                        egui::ScrollArea::vertical()
                            .id_salt("assignment-details-scroll")
                            .show(ui, |ui| self.details_ui(ui, &mut action));
                    },
                );
            }
        });
        if let Some(a) = action {
            self.apply(a, cx);
        }
    }

    fn on_msg(&mut self, msg: Msg, cx: &mut PageCx<'_>) {
        match msg {
            Msg::Loaded(Ok(b)) => {
                let (board, reader) = *b;
                self.reader = Some(reader);
                self.load = Phase::Done(());
                cx.outcomes.assignment = Some(steps::AssignmentOutcome::from_board_in(
                    &board,
                    self.scope.as_ref(),
                ));
                self.set_board(board);
                // Every board read also looks at the deployment report: a device switched on
                // since shows without anyone asking.
                self.start_deployments(cx);
            }
            Msg::Loaded(Err(e)) => {
                self.load = Phase::Failed(e);
                // Try again later rather than never; a transient error should not stop the board.
                let before = Some(self.scoped);
                self.schedule_refresh(before);
            }
            Msg::Progress(p) => self.progress = Some(p),
            Msg::Finished(Ok(board)) => {
                let s = board.summary_in(self.scope.as_ref());
                self.run = Phase::Done(format!(
                    "{} of {} devices have the profile.",
                    s.ready, s.total
                ));
                self.run_cancel = None;
                // The run looked at the devices it put in the group; the board shows all.
                self.start_load(cx);
            }
            Msg::Finished(Err(e)) => {
                self.run = Phase::Failed(e);
                self.run_cancel = None;
                self.start_load(cx);
            }
            Msg::Edited(Ok(m)) => {
                self.edit = None;
                self.edit_phase = Phase::Done(m);
                self.note_change();
                self.start_load(cx);
            }
            Msg::Edited(Err(e)) => {
                if let Some(f) = &mut self.edit {
                    f.error = Some(e.clone());
                }
                self.edit_phase = Phase::Failed(e);
            }
            Msg::Synced(r) => {
                self.sync = match r {
                    Ok(SyncNow::Triggered) => {
                        self.sync_allowed_at = Some(Instant::now() + self.sync_interval);
                        self.note_change();
                        Phase::Done("Sync requested. Devices update within a few minutes.".into())
                    }
                    Ok(SyncNow::AlreadySyncing) => Phase::Done(
                        "Autopilot is already syncing; the devices will update on their own."
                            .into(),
                    ),
                    Ok(SyncNow::TooSoon(d)) => {
                        self.sync_allowed_at = Some(Instant::now() + d);
                        Phase::Done(format!(
                            "A sync ran less than 10 minutes ago; the next one is possible in {} min.",
                            d.as_secs().div_ceil(60)
                        ))
                    }
                    Err(e) => Phase::Failed(e),
                };
            }
            Msg::Deployments(Ok(by_serial)) => {
                self.deploy_load = Phase::Done(());
                self.set_deployments(by_serial);
            }
            Msg::Deployments(Err(e)) => {
                // The board works without the report (no permission, no Intune licence): say
                // so once, and look again with the next board read.
                tracing::warn!(error = %e, "deployment report not read");
                self.deploy_load = Phase::Failed(e);
            }
            Msg::SwitchedOn(r) => {
                self.switch_on = match r {
                    Ok(serials) => {
                        self.deploy_at = Some(Instant::now());
                        Phase::Done(format!(
                            "Switched on {}: they go through setup now; the Deployment column \
                             follows them.",
                            serials.join(", ")
                        ))
                    }
                    Err(e) => Phase::Failed(e),
                };
            }
            Msg::Exported(r) => {
                self.export = match r {
                    Ok(p) => {
                        self.export_fallback.close();
                        Phase::Done(p)
                    }
                    Err(SaveFailure::NoDialog(e)) => {
                        if let Some(b) = &self.board {
                            self.export_fallback.show(e, &Self::export_name(b));
                        }
                        Phase::Idle
                    }
                    Err(e) => Phase::Failed(e.to_string()),
                }
            }
        }
    }

    /// From the latest read-back of the board: a device that fell back takes the step out of
    /// Done on the next check.
    fn status(&self) -> StepStatus {
        if self.run.is_running() || self.load.is_running() && self.board.is_none() {
            return StepStatus::InProgress;
        }
        match &self.board {
            None => StepStatus::NotStarted,
            Some(_) if self.validated() => StepStatus::Done,
            Some(_) if self.scoped.failed > 0 || matches!(self.run, Phase::Failed(_)) => {
                StepStatus::NeedsAttention
            }
            Some(_) => StepStatus::InProgress,
        }
    }

    fn validated(&self) -> bool {
        self.scoped.total > 0 && self.scoped.ready == self.scoped.total
    }

    fn left(&mut self) {
        if !self.sync.is_running() {
            self.sync = Phase::Idle;
        }
        if !self.export.is_running() {
            self.export = Phase::Idle;
        }
        if !self.edit_phase.is_running() {
            self.edit_phase = Phase::Idle;
        }
    }

    fn save_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(SavedState {
            query: self.query.clone(),
            auto_refresh: self.auto_refresh,
        })
        .ok()
    }

    fn load_state(&mut self, state: serde_json::Value) {
        if let Ok(s) = serde_json::from_value::<SavedState>(state) {
            self.query = s.query;
            self.auto_refresh = s.auto_refresh;
        }
    }

    /// The board is read again for the profile and group of steps 3 and 4.
    fn revalidate(&mut self, cx: &mut PageCx<'_>) {
        self.follow_outcomes(cx);
        if self.board.is_none() && !self.load.is_running() {
            self.start_load(cx);
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(default)]
struct SavedState {
    query: BoardQuery,
    auto_refresh: bool,
}

impl Default for SavedState {
    fn default() -> Self {
        SavedState {
            query: BoardQuery::default(),
            auto_refresh: true,
        }
    }
}

/// Serial numbers (upper-case) of the devices step 5 imported or found registered, without the
/// rows left out; `None` when nothing was imported.
fn imported_serials(outcomes: &crate::steps::Outcomes) -> Option<HashSet<String>> {
    let job = outcomes.import.as_ref()?;
    let serials: HashSet<String> = job.expected_serials().collect();
    (!serials.is_empty()).then_some(serials)
}
