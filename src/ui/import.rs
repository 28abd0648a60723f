//! The "Import devices" page: pick or drop hardware-hash CSVs, preview what the reader found
//! and what the tenant already has, import, follow the progress, explain every outcome.

use std::path::PathBuf;
use std::time::Duration;

use egui::{Color32, RichText};
use egui_extras::{Column, TableBuilder};
use tokio_util::sync::CancellationToken;

use super::{Outbox, Page, PageCx, StepStatus};
use crate::hwid::{self, CheckOptions, CheckReport, RowStatus};
use crate::steps::import::{
    self, FnObserver, ImportCounts, ImportEvent, ImportJob, ImportOptions, ImportPhase, ImportRow,
    RowOutcome,
};

/// Messages from this page's background jobs.
#[derive(Debug)]
pub enum Msg {
    Picked(Vec<PathBuf>),
    Read(Box<CheckReport>),
    Prechecked(Result<Box<ImportJob>, String>),
    Event(ImportEvent),
    Saved(Box<ImportJob>),
    Finished(Result<(), String>),
    GroupTag {
        row: usize,
        result: Result<String, String>,
    },
    ThisPc(super::harvest::Msg),
}

/// Where the page stands.
#[derive(Debug, Clone, PartialEq)]
enum Stage {
    /// No files yet.
    Empty,
    /// Reading the files, or checking them against the tenant.
    Checking(String),
    /// Preview shown; the user decides.
    Ready,
    Importing,
    Finished,
    Failed(String),
}

/// One line of the preview: what the CSV reader found, in file order.
#[derive(Debug, Clone)]
struct Preview {
    file: String,
    line: u64,
    serial: String,
    manufacturer: String,
    model: String,
    group_tag: String,
    status: RowStatus,
    first_finding: String,
}

pub struct ImportPage {
    stage: Stage,
    files: Vec<PathBuf>,
    preview: Vec<Preview>,
    file_problems: Vec<String>,
    /// Rows with CSV errors are left out of the import (instead of blocking it).
    exclude_errors: bool,
    job: Option<ImportJob>,
    counts: ImportCounts,
    phase_label: String,
    sync_remaining: Option<Duration>,
    notes: Vec<String>,
    cancel: Option<CancellationToken>,
    options: ImportOptions,
    this_pc: super::harvest::ThisPc,
}

impl Default for ImportPage {
    fn default() -> Self {
        Self::new(ImportOptions::default())
    }
}

/// The rows the import step gets from the reader's report, in report order, each with where it
/// came from. Rows of unusable files are not included.
pub fn rows_from_report(report: &CheckReport) -> Vec<(ImportRow, RowStatus, String)> {
    report
        .files
        .iter()
        .filter(|f| !f.has_file_error())
        .flat_map(|f| {
            f.rows.iter().map(move |r| {
                (
                    ImportRow {
                        serial: r.serial.clone(),
                        product_key: r.product_key.clone(),
                        hash: r.hash.clone(),
                        group_tag: r.group_tag.clone(),
                        assigned_user: r.assigned_user.clone(),
                        file: file_name(&f.path),
                        line: r.line as usize,
                    },
                    r.status,
                    r.findings
                        .iter()
                        .find(|x| x.severity == hwid::Severity::Error)
                        .or(r.findings.first())
                        .map(|x| x.message.clone())
                        .unwrap_or_default(),
                )
            })
        })
        .collect()
}

fn file_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string())
}

impl ImportPage {
    /// `options` sets chunk size, poll intervals and the manual sync window (the demo scales it).
    pub fn new(options: ImportOptions) -> Self {
        ImportPage {
            stage: Stage::Empty,
            files: Vec::new(),
            preview: Vec::new(),
            file_problems: Vec::new(),
            exclude_errors: false,
            job: None,
            counts: ImportCounts::default(),
            phase_label: String::new(),
            sync_remaining: None,
            notes: Vec::new(),
            cancel: None,
            options,
            this_pc: Default::default(),
        }
    }

    pub fn job(&self) -> Option<&ImportJob> {
        self.job.as_ref()
    }

    fn error_rows(&self) -> usize {
        self.preview
            .iter()
            .filter(|p| p.status == RowStatus::Error)
            .count()
    }

    fn pick(&mut self, cx: &mut PageCx<'_>) {
        let picker = cx.file_picker();
        cx.spawn(
            "Choosing CSV files",
            move |out: Outbox, _cancel| async move {
                let paths = picker
                    .pick_files("Hardware-hash CSV files", ("CSV files", &["csv"]))
                    .await;
                if !paths.is_empty() {
                    out.send(super::Msg::Import(Msg::Picked(paths)));
                }
            },
        );
    }

    fn read(&mut self, paths: Vec<PathBuf>, cx: &mut PageCx<'_>) {
        self.files = paths.clone();
        self.stage = Stage::Checking("Reading the files…".into());
        // Intune's only check of an Assigned User is that its domain is verified in the tenant:
        // catch that before anything is sent.
        let options = match &cx.outcomes.signed_in {
            Some(signed_in) => {
                CheckOptions::default().with_verified_domains(&signed_in.verified_domains)
            }
            None => CheckOptions::default(),
        };
        cx.spawn(
            "Reading CSV files",
            move |out: Outbox, _cancel| async move {
                let report =
                    tokio::task::spawn_blocking(move || hwid::check_files(&paths, &options)).await;
                match report {
                    Ok(r) => out.send(super::Msg::Import(Msg::Read(Box::new(r)))),
                    Err(e) => out.send(super::Msg::Import(Msg::Prechecked(Err(format!(
                        "Reading the files failed: {e}"
                    ))))),
                }
            },
        );
    }

    fn precheck(&mut self, report: &CheckReport, cx: &mut PageCx<'_>) {
        let rows = rows_from_report(report);
        self.preview = report
            .files
            .iter()
            .filter(|f| !f.has_file_error())
            .flat_map(|f| {
                f.rows.iter().map(move |r| Preview {
                    file: file_name(&f.path),
                    line: r.line,
                    serial: r.serial.clone(),
                    manufacturer: r.manufacturer.clone().unwrap_or_default(),
                    model: r.model.clone().unwrap_or_default(),
                    group_tag: r.group_tag.clone(),
                    status: r.status,
                    first_finding: String::new(),
                })
            })
            .collect();
        for (p, (_, _, finding)) in self.preview.iter_mut().zip(&rows) {
            p.first_finding = finding.clone();
        }
        self.file_problems = report
            .files
            .iter()
            .flat_map(|f| {
                f.findings
                    .iter()
                    .filter(|x| x.severity == hwid::Severity::Error)
                    .map(move |x| format!("{}: {}", file_name(&f.path), x.message))
            })
            .collect();
        let Some(graph) = cx.graph() else {
            self.stage = Stage::Failed("Sign in first (step 1).".into());
            return;
        };
        self.stage = Stage::Checking("Checking which devices your tenant already has…".into());
        let opts = self.options.clone();
        let rows: Vec<ImportRow> = rows.into_iter().map(|(r, _, _)| r).collect();
        cx.spawn(
            "Checking devices against the tenant",
            move |out: Outbox, cancel| async move {
                let graph = graph.with_cancel(cancel);
                let result = import::precheck(&graph, rows, &opts)
                    .await
                    .map(Box::new)
                    .map_err(|e| e.to_string());
                out.send(super::Msg::Import(Msg::Prechecked(result)));
            },
        );
    }

    fn start(&mut self, cx: &mut PageCx<'_>) {
        let Some(mut job) = self.job.clone() else {
            return;
        };
        let Some(graph) = cx.graph() else {
            self.stage = Stage::Failed("Sign in first (step 1).".into());
            return;
        };
        if job.phase == ImportPhase::Prechecked && self.exclude_errors {
            for (i, p) in self.preview.iter().enumerate() {
                if p.status == RowStatus::Error {
                    job.exclude(i, &format!("problem in the CSV: {}", p.first_finding));
                }
            }
        }
        self.job = Some(job.clone());
        self.stage = Stage::Importing;
        self.notes.clear();
        let opts = self.options.clone();
        let token = cx.spawn("Importing devices", move |out: Outbox, cancel| async move {
            let events = out.clone();
            let saves = out.clone();
            let obs = FnObserver(
                move |e: ImportEvent| events.send(super::Msg::Import(Msg::Event(e))),
                move |j: &ImportJob| {
                    saves.send(super::Msg::Import(Msg::Saved(Box::new(j.clone()))))
                },
            );
            let result = import::run(&graph, &mut job, &opts, &obs, &cancel).await;
            out.send(super::Msg::Import(Msg::Saved(Box::new(job))));
            out.send(super::Msg::Import(Msg::Finished(
                result.map_err(|e| e.to_string()),
            )));
        });
        self.cancel = Some(token);
    }

    fn update_tag(&mut self, row: usize, device_id: String, tag: String, cx: &mut PageCx<'_>) {
        let Some(graph) = cx.graph() else { return };
        cx.spawn(
            "Changing a group tag",
            move |out: Outbox, cancel| async move {
                let graph = graph.with_cancel(cancel);
                let result = import::update_group_tag(&graph, &device_id, &tag)
                    .await
                    .map(|d| d.group_tag.unwrap_or_default())
                    .map_err(|e| e.to_string());
                out.send(super::Msg::Import(Msg::GroupTag { row, result }));
            },
        );
    }

    fn save(&self, cx: &mut PageCx<'_>) {
        cx.outcomes.import = self.job.clone();
    }

    fn summary_line(c: &ImportCounts) -> String {
        format!(
            "{} devices: {} registered, {} already registered, {} waiting, {} failed, {} left out",
            c.total,
            c.registered,
            c.already_registered,
            c.ready + c.submitted + c.imported,
            c.failed,
            c.excluded
        )
    }

    fn toolbar(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        let busy = matches!(self.stage, Stage::Importing | Stage::Checking(_));
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!busy, egui::Button::new("Choose CSV files…"))
                .clicked()
            {
                self.pick(cx);
            }
            ui.label("or drop .csv files on this window.");
            self.this_pc.ui(ui, cx, busy);
        });
        self.this_pc.status_ui(ui);
    }

    fn preview_table(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        let job_rows = self
            .job
            .as_ref()
            .map(|j| j.rows.clone())
            .unwrap_or_default();
        let mut tag_update: Option<(usize, String, String)> = None;
        let n = self.preview.len().max(job_rows.len());
        TableBuilder::new(ui)
            .id_salt("import-rows")
            .striped(true)
            .max_scroll_height(320.0)
            .column(Column::auto().at_least(110.0))
            .column(Column::auto().at_least(90.0))
            .column(Column::auto().at_least(90.0).at_most(170.0))
            .column(Column::auto().at_least(70.0))
            .column(Column::auto().at_least(70.0).at_most(170.0))
            .column(Column::remainder().at_least(260.0))
            .header(20.0, |mut h| {
                for t in [
                    "Serial",
                    "Manufacturer",
                    "Model",
                    "Group tag",
                    "File",
                    "Status",
                ] {
                    h.col(|ui| {
                        ui.strong(t);
                    });
                }
            })
            .body(|body| {
                body.rows(22.0, n, |mut row| {
                    let i = row.index();
                    let p = self.preview.get(i);
                    let j = job_rows.get(i);
                    let serial = p
                        .map(|p| p.serial.clone())
                        .or(j.map(|j| j.row.serial.clone()))
                        .unwrap_or_default();
                    row.col(|ui| {
                        ui.label(&serial);
                    });
                    row.col(|ui| {
                        ui.label(p.map(|p| p.manufacturer.as_str()).unwrap_or(""));
                    });
                    row.col(|ui| {
                        // One line (full text on hover): the status needs the width.
                        let model = p.map(|p| p.model.as_str()).unwrap_or("");
                        ui.add(egui::Label::new(model).truncate());
                    });
                    row.col(|ui| {
                        ui.label(
                            p.map(|p| p.group_tag.clone())
                                .or(j.map(|j| j.row.group_tag.clone()))
                                .unwrap_or_default(),
                        );
                    });
                    row.col(|ui| {
                        let (f, l) = p
                            .map(|p| (p.file.clone(), p.line as usize))
                            .or(j.map(|j| (j.row.file.clone(), j.row.line)))
                            .unwrap_or_default();
                        let place = if f == hwid::harvest::THIS_PC {
                            f
                        } else {
                            format!("{f}:{l}")
                        };
                        ui.add(egui::Label::new(place).truncate());
                    });
                    row.col(|ui| {
                        let csv_error = p.filter(|p| p.status == RowStatus::Error);
                        match (j.map(|j| &j.outcome), csv_error) {
                            (
                                Some(RowOutcome::Ready | RowOutcome::Failed { .. }) | None,
                                Some(p),
                            ) => {
                                ui.label(
                                    RichText::new(format!("{serial}: {}", p.first_finding))
                                        .color(Color32::from_rgb(200, 40, 40)),
                                );
                            }
                            (Some(o), _) => {
                                let color = match o {
                                    RowOutcome::Failed { .. } => Color32::from_rgb(200, 40, 40),
                                    RowOutcome::Registered { .. }
                                    | RowOutcome::AlreadyRegistered { .. } => {
                                        Color32::from_rgb(30, 130, 60)
                                    }
                                    _ => ui.visuals().text_color(),
                                };
                                let mut text = format!("{serial}: {}", o.label());
                                if let (RowOutcome::Ready, Some(p)) = (o, p)
                                    && !p.first_finding.is_empty()
                                {
                                    text = format!("{text} ({})", p.first_finding);
                                }
                                ui.label(RichText::new(text).color(color));
                                if let RowOutcome::AlreadyRegistered {
                                    device_id,
                                    group_tag,
                                    ..
                                } = o
                                {
                                    let wanted = j.map(|j| j.row.group_tag.trim()).unwrap_or("");
                                    if !wanted.is_empty()
                                        && wanted != group_tag
                                        && ui
                                            .button(format!(
                                                "Set group tag of {serial} to {wanted}"
                                            ))
                                            .clicked()
                                    {
                                        tag_update =
                                            Some((i, device_id.clone(), wanted.to_string()));
                                    }
                                }
                            }
                            (None, None) => {
                                let f = p.map(|p| p.first_finding.as_str()).unwrap_or("");
                                ui.label(format!("{serial}: {f}"));
                            }
                        }
                    });
                });
            });
        if let Some((i, id, tag)) = tag_update {
            self.update_tag(i, id, tag, cx);
        }
    }
}

impl Page for ImportPage {
    type Msg = Msg;

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        // A job persisted by an earlier run that did not finish.
        if self.job.is_none()
            && let Some(saved) = cx.outcomes.import.clone()
        {
            self.counts = saved.counts();
            self.stage = if saved.phase == ImportPhase::Done {
                Stage::Finished
            } else {
                Stage::Ready
            };
            self.job = Some(saved);
        }
        let dropped: Vec<PathBuf> = ui.ctx().input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")))
                .collect()
        });
        if !dropped.is_empty() && !matches!(self.stage, Stage::Importing) {
            self.read(dropped, cx);
        }

        ui.heading("Import devices");
        ui.label(
            "Choose the hardware-hash CSV files (from Get-WindowsAutopilotInfo). The wizard checks \
             them, skips devices your tenant already has, uploads the rest, and waits until \
             every device is registered.",
        );
        if let Some(hint) = group_tag_hint(cx.outcomes) {
            ui.label(RichText::new(hint).strong());
        }
        self.toolbar(ui, cx);
        for p in &self.file_problems {
            ui.colored_label(Color32::from_rgb(200, 40, 40), p);
        }

        match self.stage.clone() {
            Stage::Empty => {}
            Stage::Checking(what) => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(what);
                });
            }
            Stage::Failed(msg) => {
                ui.colored_label(Color32::from_rgb(200, 40, 40), msg);
                if self.job.is_some() && ui.button("Try again").clicked() {
                    self.start(cx);
                }
            }
            Stage::Ready => {
                let c = self.job.as_ref().map(|j| j.counts()).unwrap_or_default();
                let errors = self.error_rows();
                let ready = self.job.as_ref().map_or(0, |j| {
                    j.rows
                        .iter()
                        .enumerate()
                        .filter(|(i, r)| {
                            r.outcome == RowOutcome::Ready
                                && self
                                    .preview
                                    .get(*i)
                                    .is_none_or(|p| p.status != RowStatus::Error)
                        })
                        .count()
                });
                let fixed = self
                    .preview
                    .iter()
                    .filter(|p| p.status == RowStatus::Fixed)
                    .count();
                ui.label(format!(
                    "{} rows: {} ready, {} fixed automatically, {} already registered (skipped), {} with errors",
                    c.total,
                    ready,
                    fixed,
                    c.already_registered,
                    errors
                ));
                let resuming = self
                    .job
                    .as_ref()
                    .is_some_and(|j| j.phase != ImportPhase::Prechecked);
                if errors > 0 && !resuming {
                    ui.checkbox(&mut self.exclude_errors, "Exclude rows with errors");
                }
                let blocked = errors > 0 && !self.exclude_errors && !resuming;
                if blocked {
                    ui.colored_label(
                        Color32::from_rgb(200, 40, 40),
                        "Some rows have errors: fix the file, or choose to exclude them.",
                    );
                }
                let label = if resuming {
                    "Continue the import"
                } else {
                    "Import"
                };
                let anything = c.ready > 0 || c.submitted > 0 || c.imported > 0 || resuming;
                if ui
                    .add_enabled(!blocked && anything, egui::Button::new(label))
                    .clicked()
                {
                    self.start(cx);
                }
            }
            Stage::Importing => {
                ui.label(format!("{}…", self.phase_label));
                ui.add(
                    egui::ProgressBar::new(self.counts.fraction_done())
                        .text(Self::summary_line(&self.counts)),
                );
                if let Some(r) = self.sync_remaining.filter(|r| !r.is_zero()) {
                    ui.label(format!(
                        "Autopilot allows one manual sync every 10 minutes: syncing in {}:{:02}.",
                        r.as_secs() / 60,
                        r.as_secs() % 60
                    ));
                }
                if ui.button("Cancel").clicked()
                    && let Some(c) = &self.cancel
                {
                    c.cancel();
                }
            }
            Stage::Finished => {
                let c = self.job.as_ref().map(|j| j.counts()).unwrap_or_default();
                ui.label(format!("Import finished. {}", Self::summary_line(&c)));
                // Retrying helps only with the service's transient errors (not an 808).
                let retryable = self.job.as_ref().is_some_and(|j| {
                    j.rows.iter().any(|r| {
                        matches!(&r.outcome, RowOutcome::Failed { code, name, .. }
                            if import::explain(*code, name).retry_helps)
                    })
                });
                if c.failed > 0 {
                    ui.horizontal(|ui| {
                        if retryable
                            && ui.button("Retry failed devices").clicked()
                            && let Some(j) = &mut self.job
                            && j.retry_failed() > 0
                        {
                            self.start(cx);
                        }
                        if ui.button("Leave failed devices out").clicked()
                            && let Some(j) = &mut self.job
                        {
                            j.exclude_failed("left out after the import failed");
                            cx.outcomes.import = Some(j.clone());
                        }
                    });
                }
                if self.validated() {
                    ui.colored_label(
                        Color32::from_rgb(30, 130, 60),
                        "Every chosen device is registered or deliberately left out.",
                    );
                }
            }
        }
        for n in &self.notes {
            ui.label(n);
        }
        if !self.preview.is_empty() || self.job.is_some() {
            ui.separator();
            self.preview_table(ui, cx);
        }
    }

    fn on_msg(&mut self, msg: Msg, cx: &mut PageCx<'_>) {
        match msg {
            Msg::Picked(paths) => self.read(paths, cx),
            Msg::Read(report) => {
                self.job = None;
                cx.outcomes.import = None;
                let report = self.this_pc.include(*report);
                self.precheck(&report, cx);
            }
            Msg::ThisPc(m) => {
                if self.this_pc.on_msg(m) {
                    if self.files.is_empty() {
                        let empty = hwid::check_sources(&[], &CheckOptions::default());
                        self.on_msg(Msg::Read(Box::new(empty)), cx);
                    } else {
                        self.read(self.files.clone(), cx);
                    }
                }
            }
            Msg::Prechecked(Ok(job)) => {
                self.counts = job.counts();
                self.job = Some(*job);
                self.stage = Stage::Ready;
            }
            Msg::Prechecked(Err(e)) => self.stage = Stage::Failed(e),
            Msg::Event(e) => match e {
                ImportEvent::Phase(p) => self.phase_label = p.label().to_string(),
                ImportEvent::Counts(c) => self.counts = c,
                ImportEvent::SyncCountdown { remaining } => self.sync_remaining = Some(remaining),
                ImportEvent::Note(n) => self.notes.push(n),
                ImportEvent::Row { index, outcome } => {
                    if let Some(j) = &mut self.job
                        && let Some(r) = j.rows.get_mut(index)
                    {
                        r.outcome = outcome;
                    }
                }
            },
            Msg::Saved(job) => {
                self.counts = job.counts();
                self.job = Some(*job);
                self.save(cx);
            }
            Msg::Finished(result) => {
                self.cancel = None;
                self.sync_remaining = None;
                self.stage = match result {
                    Ok(()) => Stage::Finished,
                    Err(e) => Stage::Failed(e),
                };
            }
            Msg::GroupTag { row, result } => match result {
                Ok(tag) => {
                    if let Some(j) = &mut self.job
                        && let Some(RowOutcome::AlreadyRegistered { group_tag, .. }) =
                            j.rows.get_mut(row).map(|r| &mut r.outcome)
                    {
                        *group_tag = tag;
                    }
                    self.save(cx);
                }
                Err(e) => self.notes.push(e),
            },
        }
    }

    fn status(&self) -> StepStatus {
        if self.validated() {
            StepStatus::Done
        } else if matches!(self.stage, Stage::Importing | Stage::Checking(_)) {
            StepStatus::InProgress
        } else if self.counts.failed > 0 || matches!(self.stage, Stage::Failed(_)) {
            StepStatus::NeedsAttention
        } else {
            StepStatus::NotStarted
        }
    }

    fn validated(&self) -> bool {
        self.job.as_ref().is_some_and(|j| j.is_validated())
    }
}

/// The group tags the device group of step 4 collects (from its `[OrderID]:` rule), said where
/// the files are chosen: a device without the tag never joins the group.
fn group_tag_hint(outcomes: &crate::steps::Outcomes) -> Option<String> {
    let group = outcomes.group.as_ref()?;
    let crate::steps::group::GroupKind::Dynamic { rule } = &group.kind else {
        return None;
    };
    let tags: Vec<&str> = rule
        .split("[OrderID]:")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|t| !t.is_empty())
        .collect();
    let first = tags.first()?;
    Some(format!(
        "The group \"{}\" collects devices with the group tag {}: the files need it in their \
         Group Tag column (Get-WindowsAutopilotInfo -GroupTag {first}). Devices your tenant \
         already has can be retagged below after the check.",
        group.display_name,
        tags.iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(" or ")
    ))
}
