//! The "Profile assignment" page: the board the users came for. A summary with a bar that fills
//! as devices get the profile, a virtualised table (10,000 rows stay smooth), a details panel
//! with the reason and the one thing to do, edits, Sync now, and CSV export.
//!
//! Refreshing is automatic while the service is still working (backing off up to a minute) and
//! stops when nothing is pending: the page then asks for no repaints at all.

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{Color32, RichText, Sense};
use egui_extras::{Column, TableBuilder};
use tokio_util::sync::CancellationToken;

use super::{Page, PageCx, Phase, StepStatus};
use crate::steps::assignment::{
    self as steps, Board, BoardQuery, BoardReader, BoardRow, Chip, DeviceEdit, FixAction, SortKey,
    Summary, SyncNow, Target, WaitOptions,
};

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
    Exported(Result<PathBuf, String>),
}

/// Asks where to save a file. Injectable so tests never open a dialog.
pub trait SavePicker: Send + Sync {
    fn save_file(
        &self,
        title: &str,
        default_name: &str,
        filter: (&str, &[&str]),
    ) -> Pin<Box<dyn Future<Output = Option<PathBuf>> + Send>>;
}

/// The system save dialog through `rfd`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RfdSavePicker;

impl SavePicker for RfdSavePicker {
    fn save_file(
        &self,
        title: &str,
        default_name: &str,
        filter: (&str, &[&str]),
    ) -> Pin<Box<dyn Future<Output = Option<PathBuf>> + Send>> {
        let dialog = rfd::AsyncFileDialog::new()
            .set_title(title)
            .set_file_name(default_name)
            .add_filter(filter.0, filter.1);
        Box::pin(async move { dialog.save_file().await.map(|f| f.path().to_path_buf()) })
    }
}

/// Always the same path: tests and scripted runs.
#[derive(Debug, Clone)]
pub struct FixedSavePath(pub PathBuf);

impl SavePicker for FixedSavePath {
    fn save_file(
        &self,
        _title: &str,
        _default_name: &str,
        _filter: (&str, &[&str]),
    ) -> Pin<Box<dyn Future<Output = Option<PathBuf>> + Send>> {
        let p = self.0.clone();
        Box::pin(async move { Some(p) })
    }
}

/// Colours of a chip: (fill, text).
pub fn chip_colors(chip: Chip) -> (Color32, Color32) {
    match chip {
        Chip::Assigned => (Color32::from_rgb(0x2e, 0x7d, 0x32), Color32::WHITE),
        Chip::OutOfSync => (Color32::from_rgb(0x00, 0x83, 0x8f), Color32::WHITE),
        Chip::Pending => (Color32::from_rgb(0xf9, 0xa8, 0x25), Color32::BLACK),
        Chip::NotAssigned => (Color32::from_rgb(0x75, 0x75, 0x75), Color32::WHITE),
        Chip::Failed => (Color32::from_rgb(0xc6, 0x28, 0x28), Color32::WHITE),
    }
}

/// A status chip; hovering shows the raw `deploymentProfileAssignmentStatus`.
pub fn chip(ui: &mut egui::Ui, chip: Chip, raw: &str) -> egui::Response {
    let (fill, text) = chip_colors(chip);
    ui.label(
        RichText::new(format!(" {} ", chip.label()))
            .color(text)
            .background_color(fill),
    )
    .on_hover_text(format!("deploymentProfileAssignmentStatus: {raw}"))
}

/// The edit form of one device.
#[derive(Debug, Clone, PartialEq)]
struct EditForm {
    device_id: String,
    serial: String,
    group_tag: String,
    display_name: String,
    user: String,
    original: (String, String, String),
    error: Option<String>,
}

impl EditForm {
    fn from_row(r: &BoardRow) -> Self {
        EditForm {
            device_id: r.id.clone(),
            serial: r.serial.clone(),
            group_tag: r.group_tag.clone(),
            display_name: r.display_name.clone(),
            user: r.user_principal_name.clone(),
            original: (
                r.group_tag.clone(),
                r.display_name.clone(),
                r.user_principal_name.clone(),
            ),
            error: None,
        }
    }

    fn edit(&self) -> DeviceEdit {
        let changed = |now: &str, was: &str| (now.trim() != was).then(|| now.trim().to_string());
        DeviceEdit {
            group_tag: changed(&self.group_tag, &self.original.0),
            display_name: changed(&self.display_name, &self.original.1),
            user_principal_name: changed(&self.user, &self.original.2),
        }
    }
}

/// When the next automatic refresh happens.
#[derive(Debug, Clone, Copy, PartialEq)]
struct AutoRefresh {
    at: Instant,
    interval: Duration,
}

const FIRST_REFRESH: Duration = Duration::from_secs(5);
const MAX_REFRESH: Duration = Duration::from_secs(60);

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
    /// What `scope` was built from (see [`import_fingerprint`]): rebuilt only when it changes,
    /// not every frame.
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
    sync: Phase<String>,
    sync_allowed_at: Option<Instant>,
    export: Phase<PathBuf>,
    save_picker: Arc<dyn SavePicker>,
    pub wait: WaitOptions,
    /// The manual-sync window (Microsoft's 10 minutes; the demo scales it with its clock).
    pub sync_interval: Duration,
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
            sync: Phase::Idle,
            sync_allowed_at: None,
            export: Phase::Idle,
            save_picker: Arc::new(RfdSavePicker),
            wait: WaitOptions::default(),
            sync_interval: steps::SYNC_INTERVAL,
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

    pub fn board(&self) -> Option<&Board> {
        self.board.as_ref()
    }

    pub fn query_mut(&mut self) -> &mut BoardQuery {
        &mut self.query
    }

    /// Rows currently shown (after filter and search), as serial numbers.
    pub fn visible_serials(&mut self) -> Vec<String> {
        self.refresh_view();
        let Some(b) = &self.board else { return vec![] };
        self.view
            .iter()
            .map(|&i| b.rows[i].serial.clone())
            .collect()
    }

    fn set_board(&mut self, board: Board) {
        // `scoped` always follows the current board and scope.
        let before = self.board.as_ref().map(|_| self.scoped);
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

    /// Keeps polling while the service still works on something; backs off while nothing
    /// changes; stops when everything is settled.
    fn schedule_refresh(&mut self, before: Option<Summary>) {
        if self.scoped.settled() || !self.auto_refresh {
            self.auto = None;
            return;
        }
        let interval = match (self.auto, before) {
            (Some(a), Some(b)) if b == self.scoped => a.interval.mul_f64(1.5).min(MAX_REFRESH),
            _ => FIRST_REFRESH,
        };
        self.auto = Some(AutoRefresh {
            at: Instant::now() + interval,
            interval,
        });
    }

    fn refresh_view(&mut self) {
        let key = (self.query.clone(), self.generation);
        if self.view_key.as_ref() == Some(&key) {
            return;
        }
        self.view = self
            .board
            .as_ref()
            .map(|b| b.view(&self.query))
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

    fn start_run(&mut self, cx: &mut PageCx<'_>) {
        let (Some(graph), Some(target)) = (cx.graph(), self.target.clone()) else {
            return;
        };
        let opts = self.wait.clone();
        let ids: Vec<String> = match (&self.scope, &self.board) {
            (Some(scope), Some(board)) => board
                .rows
                .iter()
                .filter(|r| scope.contains(&r.serial.trim().to_ascii_uppercase()))
                .map(|r| r.id.clone())
                .collect(),
            _ => Vec::new(),
        };
        self.run = Phase::Running {
            what: "Putting the devices into the group and waiting for the profile".into(),
        };
        self.progress = None;
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
            what: "Saving".into(),
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

    fn start_export(&mut self, cx: &mut PageCx<'_>) {
        let Some(board) = self.board.clone() else {
            return;
        };
        self.refresh_view();
        let order = self.view.clone();
        let picker = self.save_picker.clone();
        self.export = Phase::Running {
            what: "Exporting".into(),
        };
        cx.spawn("Export CSV", move |out, _cancel| async move {
            let name = format!(
                "autopilot-devices-{}.csv",
                board.loaded_at.format("%Y%m%d-%H%M")
            );
            let path = picker
                .save_file("Export the device board", &name, ("CSV files", &["csv"]))
                .await;
            let r = match path {
                None => Err("Export cancelled.".to_string()),
                Some(path) => {
                    let mut buf = Vec::new();
                    match steps::export_csv(&board, order.iter().map(|&i| &board.rows[i]), &mut buf)
                    {
                        Ok(()) => tokio::fs::write(&path, buf)
                            .await
                            .map(|_| path.clone())
                            .map_err(|e| format!("Could not write {}: {e}", path.display())),
                        Err(e) => Err(e.to_string()),
                    }
                }
            };
            out.send(super::Msg::Assignment(Msg::Exported(r)));
        });
    }

    fn summary_ui(&self, ui: &mut egui::Ui) {
        let s = self.summary;
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new(format!("{} devices", s.total)).strong());
            for c in Chip::ALL {
                chip(ui, c, c.label());
                ui.label(format!("{}: {}", c.label(), s.count(c)));
                ui.add_space(6.0);
            }
        });
        // The bar: one segment per status, assigned first, so it fills from the left.
        let (rect, _) = ui.allocate_exact_size(
            egui::vec2(ui.available_width().max(50.0), 14.0),
            Sense::hover(),
        );
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 3.0, ui.visuals().extreme_bg_color);
        if s.total > 0 {
            let mut x = rect.left();
            for c in [
                Chip::Assigned,
                Chip::OutOfSync,
                Chip::Pending,
                Chip::NotAssigned,
                Chip::Failed,
            ] {
                let w = rect.width() * s.count(c) as f32 / s.total as f32;
                if w > 0.0 {
                    let seg = egui::Rect::from_min_max(
                        egui::pos2(x, rect.top()),
                        egui::pos2(x + w, rect.bottom()),
                    );
                    painter.rect_filled(seg, 0.0, chip_colors(c).0);
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
            self.scoped.ready,
            self.scoped.total,
            if self.scope.is_some() {
                " devices imported in step 5"
            } else {
                ""
            }
        ));
        self.first_problem_ui(ui);
    }

    /// Why Next is still closed, without having to pick a row: the first device that counts
    /// and is not ready, with what to do.
    fn first_problem_ui(&self, ui: &mut egui::Ui) {
        let Some(board) = &self.board else { return };
        let Some((first, waiting)) = self.problem else {
            return;
        };
        let Some(first) = board.rows.get(first) else {
            return;
        };
        let d = board.diagnose(first);
        let more = match waiting {
            1 => String::new(),
            2 => " (1 more device is not ready either.)".to_string(),
            n => format!(" ({} more devices are not ready either.)", n - 1),
        };
        ui.colored_label(
            Color32::from_rgb(0xb2, 0x6a, 0x00),
            format!(
                "Not ready: {}: {} {}{more}",
                first.serial, d.reason, d.what_to_do
            ),
        );
    }

    fn toolbar_ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        ui.horizontal(|ui| {
            let loading = self.load.is_running();
            if ui
                .add_enabled(!loading, egui::Button::new("Refresh"))
                .clicked()
            {
                self.start_load(cx);
            }
            let remaining = self
                .sync_allowed_at
                .map(|t| t.saturating_duration_since(Instant::now()))
                .filter(|d| !d.is_zero());
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
                self.start_sync(cx);
            }
            if let Some(d) = remaining {
                // Tick the countdown once a second, not every frame.
                ui.ctx()
                    .request_repaint_after(d.min(Duration::from_secs(1)));
            }
            if ui
                .add_enabled(
                    self.board.is_some() && !self.export.is_running(),
                    egui::Button::new("Export CSV"),
                )
                .clicked()
            {
                self.start_export(cx);
            }
            if self.run.is_running() {
                if ui.button("Stop waiting").clicked()
                    && let Some(t) = self.run_cancel.take()
                {
                    t.cancel();
                }
            } else if ui
                .button("Assign all devices")
                .on_hover_text(
                    "Puts every Autopilot device into the group (static groups) or waits for the \
                     dynamic group, then follows the profile assignment until every device has it.",
                )
                .clicked()
            {
                self.start_run(cx);
            }
            let mut auto = self.auto_refresh;
            if ui.checkbox(&mut auto, "Auto-refresh").changed() {
                self.auto_refresh = auto;
                let before = Some(self.summary);
                self.schedule_refresh(before);
            }
            if loading {
                ui.spinner();
            }
        });
    }

    fn filter_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            if ui
                .selectable_label(
                    self.query.chip.is_none(),
                    format!("All ({})", self.summary.total),
                )
                .clicked()
            {
                self.query.chip = None;
            }
            for c in Chip::ALL {
                let label = format!("{} ({})", c.label(), self.summary.count(c));
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
                    .desired_width(160.0)
                    .hint_text("serial number"),
            )
            .labelled_by(l.id);
        });
    }

    fn details_ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        let Some(board) = &self.board else { return };
        let Some(id) = self.selected.clone() else {
            return;
        };
        let Some(row) = board.row_by_id(&id).cloned() else {
            self.selected = None;
            return;
        };
        let diag = board.diagnose(&row);
        let mut action = None;
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.label(RichText::new(format!("Device {}", row.serial)).strong());
                chip(ui, row.chip, &row.status_raw);
                if ui.small_button("Close").clicked() {
                    action = Some(DetailAction::Close);
                }
            });
            ui.label(format!(
                "{} {} · group tag \"{}\" · {} · profile: {}",
                row.manufacturer,
                row.model,
                row.group_tag,
                row.membership.label(),
                row.profile_name.as_deref().unwrap_or("-")
            ));
            ui.label(RichText::new(format!("Why: {}", diag.reason)));
            ui.label(RichText::new(format!("What to do: {}", diag.what_to_do)).strong());
            ui.horizontal(|ui| {
                match &diag.action {
                    FixAction::SyncNow => {
                        if ui.button("Sync now").clicked() {
                            action = Some(DetailAction::Sync);
                        }
                    }
                    FixAction::AddToGroup => {
                        if ui.button("Add to group").clicked() {
                            action = Some(DetailAction::Run);
                        }
                    }
                    FixAction::SetGroupTag(tag) => {
                        if ui.button(format!("Set group tag to {tag}")).clicked() {
                            action = Some(DetailAction::SetTag(tag.clone()));
                        }
                    }
                    FixAction::Wait => {
                        if ui.button("Refresh now").clicked() {
                            action = Some(DetailAction::Refresh);
                        }
                    }
                    FixAction::None | FixAction::Manual => {}
                }
                if self.edit.is_none() && ui.button("Edit…").clicked() {
                    action = Some(DetailAction::Edit);
                }
            });
            self.edit_ui(ui, &mut action);
        });
        match action {
            Some(DetailAction::Close) => {
                self.selected = None;
                self.edit = None;
            }
            Some(DetailAction::Sync) => self.start_sync(cx),
            Some(DetailAction::Run) => self.start_run(cx),
            Some(DetailAction::Refresh) => self.start_load(cx),
            Some(DetailAction::SetTag(tag)) => self.start_edit(
                cx,
                row.id.clone(),
                DeviceEdit {
                    group_tag: Some(tag),
                    ..DeviceEdit::default()
                },
            ),
            Some(DetailAction::Edit) => {
                self.edit = Some(EditForm::from_row(&row));
                self.edit_phase = Phase::Idle;
            }
            Some(DetailAction::Save(id, edit)) => self.start_edit(cx, id, edit),
            None => {}
        }
    }

    fn edit_ui(&mut self, ui: &mut egui::Ui, action: &mut Option<DetailAction>) {
        let Some(form) = &mut self.edit else {
            match &self.edit_phase {
                Phase::Done(m) => {
                    ui.label(RichText::new(m).color(Color32::from_rgb(0x2e, 0x7d, 0x32)));
                }
                Phase::Failed(e) => {
                    ui.colored_label(Color32::from_rgb(0xc6, 0x28, 0x28), e);
                }
                _ => {}
            }
            return;
        };
        ui.separator();
        ui.label(RichText::new(format!("Edit {}", form.serial)).strong());
        egui::Grid::new("assignment-edit")
            .num_columns(2)
            .show(ui, |ui| {
                let l = ui.label("Group tag");
                ui.text_edit_singleline(&mut form.group_tag)
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Computer name");
                ui.text_edit_singleline(&mut form.display_name)
                    .labelled_by(l.id)
                    .on_hover_text("At most 15 characters: letters, digits and hyphens.");
                ui.end_row();
                let l = ui.label("Assigned user");
                ui.text_edit_singleline(&mut form.user).labelled_by(l.id);
                ui.end_row();
            });
        let edit = form.edit();
        let problem = edit.validate().err();
        if let Some(p) = &problem {
            ui.colored_label(Color32::from_rgb(0xc6, 0x28, 0x28), p);
        }
        if let Some(e) = &form.error {
            ui.colored_label(Color32::from_rgb(0xc6, 0x28, 0x28), e);
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
                *action = Some(DetailAction::Close);
            }
            if saving {
                ui.spinner();
            }
        });
    }

    fn table_ui(&mut self, ui: &mut egui::Ui) {
        self.refresh_view();
        let Some(board) = &self.board else { return };
        let view = &self.view;
        let mut clicked: Option<String> = None;
        let mut sort_clicked: Option<SortKey> = None;
        let selected = self.selected.clone();
        let text_height = egui::TextStyle::Body
            .resolve(ui.style())
            .size
            .max(ui.spacing().interact_size.y);
        let columns: [(&str, SortKey); 10] = [
            ("Serial number", SortKey::Serial),
            ("Manufacturer", SortKey::Manufacturer),
            ("Model", SortKey::Model),
            ("Group tag", SortKey::GroupTag),
            ("Group", SortKey::Membership),
            ("Assigned profile", SortKey::Profile),
            ("Status", SortKey::Status),
            ("Date assigned", SortKey::AssignedAt),
            ("Enrollment", SortKey::Enrollment),
            ("Last contact", SortKey::LastContact),
        ];
        let q = &self.query;
        TableBuilder::new(ui)
            .id_salt("assignment-board")
            .striped(true)
            .sense(Sense::click())
            .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
            .column(Column::initial(130.0).at_least(80.0).clip(true))
            .columns(Column::initial(100.0).at_least(50.0).clip(true), 4)
            .column(Column::initial(140.0).at_least(60.0).clip(true))
            .column(Column::initial(100.0).at_least(60.0))
            .column(Column::initial(120.0).at_least(60.0).clip(true))
            .column(Column::initial(90.0).at_least(50.0).clip(true))
            .column(Column::remainder().at_least(60.0).clip(true))
            .min_scrolled_height(0.0)
            .header(text_height + 4.0, |mut header| {
                for (title, key) in columns {
                    header.col(|ui| {
                        let arrow = if q.sort == key {
                            // ASCII: the default fonts have no arrow glyphs.
                            if q.descending { " v" } else { " ^" }
                        } else {
                            ""
                        };
                        if ui
                            .add(
                                egui::Label::new(RichText::new(format!("{title}{arrow}")).strong())
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
                    row.col(|ui| {
                        ui.label(&r.serial);
                    });
                    row.col(|ui| {
                        ui.label(&r.manufacturer);
                    });
                    row.col(|ui| {
                        ui.label(&r.model);
                    });
                    row.col(|ui| {
                        ui.label(&r.group_tag);
                    });
                    row.col(|ui| {
                        ui.label(r.membership.label());
                    });
                    row.col(|ui| {
                        ui.label(r.profile_name.as_deref().unwrap_or("-"));
                    });
                    row.col(|ui| {
                        chip(ui, r.chip, &r.status_raw);
                    });
                    row.col(|ui| {
                        ui.label(short_date(r.assigned_at));
                    });
                    row.col(|ui| {
                        ui.label(&r.enrollment_state);
                    });
                    row.col(|ui| {
                        ui.label(short_date(r.last_contact));
                    });
                    if row.response().clicked() {
                        clicked = Some(r.id.clone());
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
        if let Some(id) = clicked {
            if self.selected.as_deref() != Some(id.as_str()) {
                self.edit = None;
                self.edit_phase = Phase::Idle;
            }
            self.selected = Some(id);
        }
    }

    /// Takes the group and profile from steps 3 and 4; when either changed, the board is read
    /// again for the new target.
    fn follow_outcomes(&mut self, cx: &PageCx<'_>) {
        let key = import_fingerprint(cx.outcomes);
        if key != self.scope_key {
            self.scope_key = key;
            let scope = imported_serials(cx.outcomes);
            if scope != self.scope {
                self.scope = scope;
                self.rescope();
            }
        }
        let (Some(profile), Some(group)) = (&cx.outcomes.profile, &cx.outcomes.group) else {
            return;
        };
        let wanted = Target::from_steps(profile, group);
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
        self.generation += 1;
        self.view_key = None;
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
}

enum DetailAction {
    Close,
    Sync,
    Run,
    Refresh,
    SetTag(String),
    Edit,
    Save(String, DeviceEdit),
}

fn short_date(d: Option<chrono::DateTime<chrono::Utc>>) -> String {
    d.map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}

impl Page for AssignmentPage {
    type Msg = Msg;

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        ui.heading("Profile assignment");
        self.follow_outcomes(cx);
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
                steps::GroupMembership::Dynamic { rule } => format!("dynamic: {rule}"),
                steps::GroupMembership::Static => "assigned membership".into(),
            }
        ));
        if self.board.is_none() && matches!(self.load, Phase::Idle) && cx.graph().is_some() {
            self.start_load(cx);
        }
        if let Some(a) = self.auto
            && self.auto_refresh
        {
            let now = Instant::now();
            if now >= a.at {
                if !self.load.is_running() && !self.run.is_running() {
                    self.start_load(cx);
                }
            } else {
                ui.ctx().request_repaint_after(a.at - now);
            }
        }
        self.summary_ui(ui);
        self.toolbar_ui(ui, cx);
        for (phase, ok_color) in [(&self.run, true), (&self.sync, true)] {
            match phase {
                Phase::Running { what } => {
                    ui.label(what.as_str());
                }
                Phase::Done(m) if ok_color => {
                    ui.label(m.as_str());
                }
                Phase::Failed(e) => {
                    ui.colored_label(Color32::from_rgb(0xc6, 0x28, 0x28), e.as_str());
                }
                _ => {}
            }
        }
        if self.run.is_running()
            && let Some(p) = &self.progress
        {
            ui.label(p.as_str());
        }
        match &self.export {
            Phase::Done(p) => {
                ui.label(format!("Exported to {}", p.display()));
            }
            Phase::Failed(e) => {
                ui.colored_label(Color32::from_rgb(0xc6, 0x28, 0x28), e.as_str());
            }
            _ => {}
        }
        if let Phase::Failed(e) = &self.load {
            ui.colored_label(Color32::from_rgb(0xc6, 0x28, 0x28), e.as_str());
        }
        if self.board.is_none() {
            if cx.graph().is_none() {
                ui.label("Sign in first.");
            }
            return;
        }
        self.filter_ui(ui);
        self.details_ui(ui, cx);
        ui.separator();
        // Ten columns do not fit a small window: scroll sideways rather than cut the last ones.
        egui::ScrollArea::horizontal()
            .id_salt("assignment-board-scroll")
            .show(ui, |ui| self.table_ui(ui));
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
            }
            Msg::Loaded(Err(e)) => {
                self.load = Phase::Failed(e);
                // Try again later rather than never; a transient error should not stop the board.
                let before = Some(self.summary);
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
            Msg::Exported(r) => {
                self.export = match r {
                    Ok(p) => Phase::Done(p),
                    Err(e) => Phase::Failed(e),
                }
            }
        }
    }

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

/// Identifies what [`imported_serials`] reads (each row's serial and whether it counts) without
/// allocating: a pass over the rows every frame is cheap, building the set is not.
fn import_fingerprint(outcomes: &crate::steps::Outcomes) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let job = outcomes.import.as_ref()?;
    let mut h = std::hash::DefaultHasher::new();
    job.rows.len().hash(&mut h);
    for r in &job.rows {
        r.row.serial.hash(&mut h);
        counts_for_scope(&r.outcome).hash(&mut h);
    }
    Some(h.finish())
}

fn counts_for_scope(outcome: &crate::steps::import::RowOutcome) -> bool {
    use crate::steps::import::RowOutcome;
    !matches!(
        outcome,
        RowOutcome::Excluded { .. } | RowOutcome::Duplicate { .. }
    )
}

/// Serial numbers (upper-case) of the devices step 5 imported or found registered, without the
/// rows left out; `None` when nothing was imported.
fn imported_serials(outcomes: &crate::steps::Outcomes) -> Option<HashSet<String>> {
    let job = outcomes.import.as_ref()?;
    let serials: HashSet<String> = job
        .rows
        .iter()
        .filter(|r| counts_for_scope(&r.outcome))
        .map(|r| r.row.serial.trim().to_ascii_uppercase())
        .filter(|s| !s.is_empty())
        .collect();
    (!serials.is_empty()).then_some(serials)
}
