//! The "Import devices" page: pick or drop hardware-hash CSVs, preview what the reader found
//! and what the tenant already has, import, follow the progress, explain every outcome.

use super::widgets::palette;
use std::path::PathBuf;
use std::time::Duration;

use egui::RichText;
use egui_extras::{Column, TableBuilder};
use tokio_util::sync::CancellationToken;

use super::widgets::{OpenAction, OpenFilesField};
use super::{Outbox, Page, PageCx, StepId, StepStatus};
use crate::hwid::{self, CheckOptions, CheckReport, RowStatus};
use crate::steps::import::{
    self, FnObserver, ImportCounts, ImportEvent, ImportJob, ImportOptions, ImportPhase, ImportRow,
    RowOutcome,
};

/// Messages from this page's background jobs.
#[derive(Debug)]
pub enum Msg {
    Picked(super::Picked),
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
    /// The first error, else the first finding (the reason a row is left out).
    first_finding: String,
    /// Every finding of the checker on this row, in its order (the page says what
    /// `check-csv` says).
    findings: Vec<String>,
}

impl Preview {
    /// What the checker found, all of it; empty when nothing.
    fn findings_text(&self) -> String {
        self.findings.join(" · ")
    }
}

pub struct ImportPage {
    stage: Stage,
    files: Vec<PathBuf>,
    preview: Vec<Preview>,
    /// The checker's findings about whole files (errors, warnings and repairs).
    file_problems: Vec<(hwid::Severity, String)>,
    /// Rows with CSV errors are left out of the import (instead of blocking it).
    exclude_errors: bool,
    job: Option<ImportJob>,
    counts: ImportCounts,
    phase_label: String,
    sync_remaining: Option<Duration>,
    notes: Vec<String>,
    cancel: Option<CancellationToken>,
    options: ImportOptions,
    /// The choose button and the path field (the way that works without a dialog).
    open_field: OpenFilesField,
    /// The job before the files were chosen again (its 808 results are kept).
    earlier: Option<ImportJob>,
    /// The finished import a new batch was checked after: the step stays Done on it (and the
    /// steps after it keep theirs) until the new batch is imported.
    done_before: Option<ImportJob>,
    /// How many rows kept an earlier 808 result instead of being uploaded again.
    kept_808: usize,
    /// The group tags step 4's group collects (`None`: the group does not go by tag).
    group_tags: Option<Vec<String>>,
    /// "Give these N devices the group tag X" for rows without a tag (on by default).
    retag_empty: bool,
    /// For rows that carry a different tag: use the group's tag (true) or keep theirs.
    tag_choice: std::collections::HashMap<usize, bool>,
    /// Registered devices of this batch the wizard gave the group's tag (read back): said in
    /// the place of the offer, so nothing under the pointer moves when it is done.
    retagged: Vec<String>,
    this_pc: super::harvest::ThisPc,
}

/// What step 4's group needs from a device to collect it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GroupNeed {
    Tags { group: String, tags: Vec<String> },
    PurchaseOrder { group: String, po: String },
}

fn group_need(outcomes: &crate::steps::Outcomes) -> Option<GroupNeed> {
    use crate::steps::group::{GroupKind, RuleSpec, parse_rule};
    let group = outcomes.group.as_ref()?;
    let GroupKind::Dynamic { rule } = &group.kind else {
        return None;
    };
    match parse_rule(rule).ok()? {
        RuleSpec::GroupTags(tags) => Some(GroupNeed::Tags {
            group: group.display_name.clone(),
            tags,
        }),
        RuleSpec::PurchaseOrder(po) => Some(GroupNeed::PurchaseOrder {
            group: group.display_name.clone(),
            po,
        }),
        RuleSpec::AllAutopilot => None,
    }
}

impl Default for ImportPage {
    fn default() -> Self {
        Self::new(ImportOptions::default())
    }
}

// Where the page and `run --plan` have always found it.
pub use crate::steps::import::rows_from_report;

use crate::steps::import::file_name;

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
            open_field: OpenFilesField::default(),
            earlier: None,
            done_before: None,
            kept_808: 0,
            group_tags: None,
            retag_empty: true,
            tag_choice: Default::default(),
            retagged: Vec::new(),
            this_pc: Default::default(),
        }
    }

    /// Takes up a job persisted by an earlier run (finished or not).
    fn restore_saved_job(&mut self, cx: &PageCx<'_>) {
        // Only into an empty page: while a new batch is read, the saved job is the earlier one.
        if self.job.is_none()
            && self.stage == Stage::Empty
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
    }

    pub fn job(&self) -> Option<&ImportJob> {
        self.job.as_ref()
    }

    /// "6 rows: 2 ready, 3 already registered (skipped), 1 with errors": every row counted
    /// once, a row with a CSV error as that whatever the tenant knows of it, so the parts add
    /// up to the whole.
    fn ready_summary(&self) -> String {
        let rows = self.job.as_ref().map(|j| j.rows.as_slice()).unwrap_or(&[]);
        let (mut ready, mut registered, mut errors, mut failed, mut left_out, mut waiting) =
            (0, 0, 0, 0, 0, 0);
        for (i, r) in rows.iter().enumerate() {
            let csv_error = self
                .preview
                .get(i)
                .is_some_and(|p| p.status == RowStatus::Error);
            match &r.outcome {
                RowOutcome::Excluded { .. } => left_out += 1,
                _ if csv_error => errors += 1,
                RowOutcome::Duplicate { .. } => left_out += 1,
                RowOutcome::Ready => ready += 1,
                RowOutcome::AlreadyRegistered { .. } | RowOutcome::Registered { .. } => {
                    registered += 1
                }
                RowOutcome::Failed { .. } => failed += 1,
                RowOutcome::Submitted { .. } | RowOutcome::Imported { .. } => waiting += 1,
            }
        }
        let mut parts = vec![
            format!("{ready} ready"),
            format!("{registered} already registered (skipped)"),
            format!("{errors} with errors"),
        ];
        for (n, what) in [
            (failed, "cannot be imported"),
            (left_out, "left out"),
            (waiting, "uploaded earlier, still being processed"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        let fixed = self
            .preview
            .iter()
            .filter(|p| p.status == RowStatus::Fixed)
            .count();
        let n = rows.len();
        format!(
            "{n} {}: {}; {fixed} fixed automatically",
            if n == 1 { "row" } else { "rows" },
            parts.join(", ")
        )
    }

    /// Registered is not enough: every device must also be able to join step 4's group (or
    /// have been left out of it on purpose).
    fn job_validated(&self, j: &ImportJob) -> bool {
        j.is_validated()
            && self
                .group_tags
                .as_ref()
                .is_none_or(|tags| j.kept_out_of_group(tags).is_empty())
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
                let picked = picker
                    .pick_files("Hardware-hash CSV files", ("CSV files", &["csv"]))
                    .await;
                out.send(super::Msg::Import(Msg::Picked(picked)));
            },
        );
    }

    /// Files the person chose anew (the dialog): they replace the list, and the choice about
    /// rows with errors is made again for them.
    fn choose(&mut self, paths: Vec<PathBuf>, cx: &mut PageCx<'_>) {
        self.exclude_errors = false;
        self.read(paths, cx);
    }

    /// Files typed or dropped: "Add" adds them to the ones already chosen.
    fn add_files(&mut self, paths: Vec<PathBuf>, cx: &mut PageCx<'_>) {
        let mut all = self.files.clone();
        for p in paths {
            if !all.contains(&p) {
                all.push(p);
            }
        }
        self.choose(all, cx);
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
                    findings: r.findings.iter().map(|x| x.message.clone()).collect(),
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
                    .map(move |x| (x.severity, format!("{}: {}", file_name(&f.path), x.message)))
            })
            .collect();
        let Some(graph) = cx.graph() else {
            self.stage = Stage::Failed(format!("Sign in first ({}).", StepId::SignIn.step_n()));
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
            self.stage = Stage::Failed(format!("Sign in first ({}).", StepId::SignIn.step_n()));
            return;
        };
        if job.phase == ImportPhase::Prechecked && self.exclude_errors {
            for (i, p) in self.preview.iter().enumerate() {
                if p.status == RowStatus::Error {
                    job.exclude(i, &format!("problem in the CSV: {}", p.first_finding));
                }
            }
        }
        if job.phase == ImportPhase::Prechecked
            && let Some(tags) = &self.group_tags
            && let Some(wanted) = tags.first()
        {
            // The tag goes in the import row itself (`groupTag`), so the device is registered
            // with it and joins the group without a second step.
            for i in job.kept_out_of_group(tags) {
                let r = &mut job.rows[i];
                if r.outcome != RowOutcome::Ready {
                    continue;
                }
                let use_group_tag = if r.row.group_tag.trim().is_empty() {
                    self.retag_empty
                } else {
                    self.tag_choice.get(&i).copied().unwrap_or(false)
                };
                if use_group_tag {
                    r.row.group_tag = wanted.clone();
                } else {
                    r.outside_group = true;
                }
            }
        }
        self.job = Some(job.clone());
        self.stage = Stage::Importing;
        self.notes.clear();
        // From here on this batch is the step's result.
        self.done_before = None;
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
            "{}: {} registered, {} already registered, {} waiting, {} failed, {} left out",
            n_devices(c.total),
            c.registered,
            c.already_registered,
            c.ready + c.submitted + c.imported,
            c.failed,
            c.excluded
        )
    }

    fn toolbar(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        let busy = matches!(self.stage, Stage::Importing | Stage::Checking(_));
        let picker = cx.file_picker();
        match self
            .open_field
            .ui(ui, &*picker, "Choose CSV files…", "CSV file paths", !busy)
        {
            OpenAction::None => {}
            OpenAction::Dialog => self.pick(cx),
            OpenAction::Paths(paths) => self.add_files(paths, cx),
        }
        self.this_pc.ui(ui, cx, busy);
        self.this_pc.status_ui(ui);
    }

    /// Before the upload: which rows the group's tag keeps out, and the choices for them.
    /// Returns true while a choice is still open (the import waits for it).
    fn group_tag_ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) -> bool {
        let Some(need) = group_need(cx.outcomes) else {
            return false;
        };
        let (group, tags) = match need {
            GroupNeed::PurchaseOrder { group, po } => {
                ui.label(format!(
                    "The group \"{group}\" collects devices from purchase order {po}. An import cannot \
                     set a purchase order (Microsoft Graph's import row has no such field; only the \
                     OEM's or reseller's registration carries it), so devices you import here join \
                     that group only if their registration already has that purchase order. Use a \
                     group-tag group in {} if they do not.",
                    StepId::Group.step_n()
                ));
                return false;
            }
            GroupNeed::Tags { group, tags } => (group, tags),
        };
        let Some(job) = &self.job else { return false };
        let wanted = tags.first().cloned().unwrap_or_default();
        // Rows with a CSV error are not imported as they stand: nothing to tag there.
        let preview = &self.preview;
        let kept_out: Vec<usize> = job
            .kept_out_of_group(&tags)
            .into_iter()
            .filter(|&i| preview.get(i).is_none_or(|p| p.status != RowStatus::Error))
            .collect();
        let empty: Vec<usize> = kept_out
            .iter()
            .copied()
            .filter(|&i| {
                job.rows[i].outcome == RowOutcome::Ready
                    && job.rows[i].row.group_tag.trim().is_empty()
            })
            .collect();
        let differ: Vec<(usize, String, String)> = kept_out
            .iter()
            .copied()
            .filter(|&i| {
                job.rows[i].outcome == RowOutcome::Ready
                    && !job.rows[i].row.group_tag.trim().is_empty()
            })
            .map(|i| {
                (
                    i,
                    job.rows[i].row.serial.clone(),
                    job.rows[i].row.group_tag.clone(),
                )
            })
            .collect();
        let registered: Vec<usize> = kept_out
            .iter()
            .copied()
            .filter(|&i| matches!(job.rows[i].outcome, RowOutcome::AlreadyRegistered { .. }))
            .collect();
        if empty.is_empty() && differ.is_empty() && registered.is_empty() {
            if !self.retagged.is_empty() {
                ui.separator();
                ui.label(
                    RichText::new(format!(
                        "The group \"{group}\" collects devices with the group tag {wanted}:"
                    ))
                    .strong(),
                );
                ui.label(format!(
                    "Gave {} the group tag {wanted}; read back from Intune.",
                    self.retagged.join(", ")
                ));
            }
            return false;
        }
        ui.separator();
        ui.label(
            RichText::new(format!(
                "The group \"{group}\" collects devices with the group tag {wanted}; these devices would \
                 not join it:"
            ))
            .strong(),
        );
        if !empty.is_empty() {
            ui.checkbox(
                &mut self.retag_empty,
                format!("Give {} the group tag {wanted}", these(empty.len())),
            );
            let serials: Vec<&str> = empty
                .iter()
                .map(|&i| job.rows[i].row.serial.as_str())
                .collect();
            ui.label(RichText::new(format!("Without a tag: {}", serials.join(", "))).weak());
        }
        let mut open = 0;
        for (i, serial, tag) in &differ {
            ui.horizontal_wrapped(|ui| {
                ui.label(format!("{serial} has the group tag \"{tag}\":"));
                let mut choice = self.tag_choice.get(i).copied();
                ui.radio_value(
                    &mut choice,
                    Some(true),
                    format!("Use {wanted} for {serial}"),
                );
                ui.radio_value(
                    &mut choice,
                    Some(false),
                    format!("Keep \"{tag}\" for {serial} (not in the group)"),
                );
                match choice {
                    Some(c) => {
                        self.tag_choice.insert(*i, c);
                    }
                    None => open += 1,
                }
            });
        }
        if open > 0 {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!(
                    "Choose a group tag for the {} above before importing.",
                    n_devices(open)
                ),
            );
        }
        if !registered.is_empty() {
            ui.label(if registered.len() == 1 {
                format!(
                    "1 device your tenant already has carries another group tag; give it {wanted} \
                     with the button on its row below, or after the import."
                )
            } else {
                format!(
                    "{} devices your tenant already has carry another group tag; give them {wanted} \
                     with the button on their row below, or after the import.",
                    registered.len()
                )
            });
        }
        open > 0
    }

    /// After the import: devices that cannot reach the group, with the way to fix each.
    fn kept_out_ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        let (Some(tags), Some(job)) = (self.group_tags.clone(), &self.job) else {
            return;
        };
        let kept_out = job.kept_out_of_group(&tags);
        if kept_out.is_empty() {
            return;
        }
        let wanted = tags.first().cloned().unwrap_or_default();
        let group = cx
            .outcomes
            .group
            .as_ref()
            .map(|g| g.display_name.clone())
            .unwrap_or_default();
        let serials: Vec<String> = kept_out
            .iter()
            .map(|&i| job.rows[i].row.serial.clone())
            .collect();
        ui.colored_label(
            ui.visuals().error_fg_color,
            format!(
                "{} reach the group \"{group}\": {} group tag is not {wanted} ({}).",
                if kept_out.len() == 1 {
                    "1 device cannot".to_string()
                } else {
                    format!("{} devices cannot", kept_out.len())
                },
                if kept_out.len() == 1 { "its" } else { "their" },
                serials.join(", ")
            ),
        );
        let retag: Vec<(usize, String)> = kept_out
            .iter()
            .filter_map(|&i| match &job.rows[i].outcome {
                RowOutcome::AlreadyRegistered { device_id, .. }
                | RowOutcome::Registered { device_id } => Some((i, device_id.clone())),
                _ => None,
            })
            .collect();
        ui.horizontal(|ui| {
            if !retag.is_empty()
                && ui
                    .button(format!(
                        "Give {} the group tag {wanted}",
                        these(retag.len())
                    ))
                    .clicked()
            {
                for (i, id) in &retag {
                    self.update_tag(*i, id.clone(), wanted.clone(), cx);
                }
            }
            if ui.button("Leave them out of the group").clicked()
                && let Some(j) = &mut self.job
            {
                for i in kept_out {
                    j.rows[i].outside_group = true;
                }
                cx.outcomes.import = Some(j.clone());
            }
        });
    }

    fn preview_table(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        let job_rows = self
            .job
            .as_ref()
            .map(|j| j.rows.clone())
            .unwrap_or_default();
        let mut tag_update: Option<(usize, String, String)> = None;
        let group_tags = self.group_tags.clone();
        let n = self.preview.len().max(job_rows.len());
        TableBuilder::new(ui)
            .id_salt("import-rows")
            .striped(true)
            .max_scroll_height(320.0)
            // One column for maker and model (said once), so that the device, its file and a
            // 15-character serial fit a laptop window whole; the status wraps onto a second line.
            .column(Column::auto().at_least(110.0))
            .column(Column::auto().at_least(90.0).at_most(260.0))
            .column(Column::auto().at_least(70.0))
            .column(Column::auto().at_least(70.0).at_most(230.0))
            .column(Column::remainder().at_least(200.0))
            .header(20.0, |mut h| {
                for t in ["Serial", "Device", "Group tag", "File", "Status"] {
                    h.col(|ui| {
                        ui.strong(t);
                    });
                }
            })
            .body(|body| {
                body.rows(36.0, n, |mut row| {
                    let i = row.index();
                    let p = self.preview.get(i);
                    let j = job_rows.get(i);
                    let serial = p
                        .map(|p| p.serial.clone())
                        .or(j.map(|j| j.row.serial.clone()))
                        .unwrap_or_default();
                    row.col(|ui| {
                        ui.add(egui::Label::new(&serial).extend());
                    });
                    row.col(|ui| {
                        let device = p
                            .map(|p| hwid::device_name(&p.manufacturer, &p.model))
                            .unwrap_or_default();
                        ui.add(egui::Label::new(device).extend());
                    });
                    row.col(|ui| {
                        // The tag the device has or gets (the tenant's, or the one this wizard
                        // sets), not only the file's.
                        let tag = match j.map(|j| (&j.outcome, &j.row.group_tag)) {
                            Some((RowOutcome::AlreadyRegistered { group_tag, .. }, _)) => {
                                group_tag.clone()
                            }
                            Some((_, tag)) => tag.clone(),
                            None => p.map(|p| p.group_tag.clone()).unwrap_or_default(),
                        };
                        ui.label(tag);
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
                        ui.add(egui::Label::new(place).extend());
                    });
                    row.col(|ui| {
                        // Two lines at most (the full text on hover): rows keep their height.
                        let line = |ui: &mut egui::Ui, text: String, color: egui::Color32| {
                            let mut job = egui::text::LayoutJob::simple(
                                text,
                                egui::TextStyle::Body.resolve(ui.style()),
                                color,
                                ui.available_width(),
                            );
                            job.wrap.max_rows = 2;
                            ui.add(egui::Label::new(job));
                        };
                        let found = p.map(Preview::findings_text).unwrap_or_default();
                        let csv_error = p.filter(|p| p.status == RowStatus::Error);
                        match (j.map(|j| &j.outcome), csv_error) {
                            // Left out on purpose: that is what happens to the row now.
                            (Some(o @ RowOutcome::Excluded { .. }), _) => {
                                line(
                                    ui,
                                    format!("{serial}: {}", o.label()),
                                    ui.visuals().text_color(),
                                );
                            }
                            // The checker's error wins over what the tenant knows: such a row
                            // is not imported as it stands (`check-csv` says the same).
                            (_, Some(_)) => {
                                line(ui, format!("{serial}: {found}"), palette::ERROR);
                            }
                            (Some(o), None) => {
                                let color = match o {
                                    RowOutcome::Failed { .. } => palette::ERROR,
                                    RowOutcome::Registered { .. } => palette::SUCCESS,
                                    // Registered but without a profile is not the end yet.
                                    RowOutcome::AlreadyRegistered { profile_status, .. }
                                        if profile_status.starts_with("Profile assigned") =>
                                    {
                                        palette::SUCCESS
                                    }
                                    RowOutcome::AlreadyRegistered { .. } => {
                                        ui.visuals().warn_fg_color
                                    }
                                    _ => ui.visuals().text_color(),
                                };
                                let mut text = format!("{serial}: {}", o.label());
                                if !found.is_empty() {
                                    text = format!("{text} ({found})");
                                }
                                line(ui, text, color);
                                if let RowOutcome::AlreadyRegistered {
                                    device_id,
                                    group_tag,
                                    ..
                                } = o
                                {
                                    let csv_tag = j.map(|j| j.row.group_tag.trim()).unwrap_or("");
                                    // The group's tag when the device's own keeps it out of
                                    // step 4's group; otherwise the one the file asks for.
                                    let wanted = match &group_tags {
                                        Some(tags) if !import::tag_matches(group_tag, tags) => {
                                            tags.first().map(String::as_str).unwrap_or(csv_tag)
                                        }
                                        _ => csv_tag,
                                    };
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
                                line(ui, format!("{serial}: {found}"), ui.visuals().text_color());
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
        self.restore_saved_job(cx);
        let dropped: Vec<PathBuf> = ui.ctx().input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")))
                .collect()
        });
        if !dropped.is_empty() && !matches!(self.stage, Stage::Importing) {
            self.add_files(dropped, cx);
        }

        self.group_tags = match group_need(cx.outcomes) {
            Some(GroupNeed::Tags { tags, .. }) => Some(tags),
            _ => None,
        };
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
        for (severity, p) in &self.file_problems {
            let color = match severity {
                hwid::Severity::Error => palette::ERROR,
                hwid::Severity::Warning => ui.visuals().warn_fg_color,
                hwid::Severity::Fixed => ui.visuals().text_color(),
            };
            ui.colored_label(color, p);
        }

        match self.stage.clone() {
            Stage::Empty => {}
            Stage::Checking(what) => {
                super::widgets::busy(ui, what);
            }
            Stage::Failed(msg) => {
                ui.colored_label(palette::ERROR, msg);
                if self.job.is_some() && ui.button("Try again").clicked() {
                    self.start(cx);
                }
            }
            Stage::Ready => {
                let c = self.job.as_ref().map(|j| j.counts()).unwrap_or_default();
                let errors = self.error_rows();
                ui.label(self.ready_summary());
                if self.done_before.is_some() {
                    ui.label(
                        "A new batch: the import you finished stays done, and so do the steps \
                         after it, until you import this one.",
                    );
                }
                let resuming = self
                    .job
                    .as_ref()
                    .is_some_and(|j| j.phase != ImportPhase::Prechecked);
                if errors > 0 && !resuming {
                    ui.checkbox(&mut self.exclude_errors, "Exclude rows with errors");
                }
                let tag_choice_open = !resuming && self.group_tag_ui(ui, cx);
                if self.kept_808 > 0 {
                    ui.colored_label(
                        palette::ERROR,
                        format!(
                            "{} already failed with 808 earlier in this job (registered to another \
                             organisation) and {} not uploaded again. {}",
                            n_devices(self.kept_808),
                            if self.kept_808 == 1 { "is" } else { "are" },
                            import::explain(808, "").action
                        ),
                    );
                }
                let blocked = (errors > 0 && !self.exclude_errors && !resuming) || tag_choice_open;
                if blocked {
                    ui.colored_label(
                        palette::ERROR,
                        "Some rows have errors: fix the file, or choose to exclude them.",
                    );
                }
                let label = if resuming {
                    "Continue the import"
                } else {
                    "Import"
                };
                let anything = c.ready > 0 || c.submitted > 0 || c.imported > 0 || resuming;
                if anything {
                    if ui.add_enabled(!blocked, egui::Button::new(label)).clicked() {
                        self.start(cx);
                    }
                } else if c.failed > 0 {
                    // Nothing can go out: the failed rows are the only thing left to decide.
                    ui.label(format!(
                        "Nothing to upload: the other devices are registered already or left out, and {} cannot be imported (see the list).",
                        n_devices(c.failed)
                    ));
                    if ui.button("Leave failed devices out").clicked()
                        && let Some(j) = &mut self.job
                    {
                        j.exclude_failed("left out: it cannot be imported");
                        if j.finish_if_nothing_to_send() {
                            self.stage = Stage::Finished;
                            self.done_before = None;
                        }
                        self.counts = j.counts();
                        cx.outcomes.import = Some(j.clone());
                    }
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
                let uploaded = c.registered + c.submitted + c.imported;
                if uploaded == 0 && c.already_registered > 0 {
                    ui.label(format!(
                        "Nothing to upload: {} already registered in your tenant. {}",
                        is_are(c.already_registered),
                        Self::summary_line(&c)
                    ));
                } else {
                    ui.label(format!("Import finished. {}", Self::summary_line(&c)));
                }
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
                self.kept_out_ui(ui, cx);
                if self.validated() {
                    ui.colored_label(
                        palette::SUCCESS,
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
            Msg::Picked(picked) => {
                self.open_field.dialog_result(&picked);
                if let super::Picked::Files(paths) = picked {
                    self.choose(paths, cx);
                }
            }
            Msg::Read(report) => {
                // A finished import stays the step's result until the new batch is imported.
                if self.validated() && self.done_before.is_none() {
                    self.done_before = self.job.clone().or_else(|| cx.outcomes.import.clone());
                }
                // The earlier job of this session (or the saved one) keeps its 808 results.
                if let Some(j) = self.job.take().or_else(|| cx.outcomes.import.clone()) {
                    self.earlier = Some(j);
                }
                self.kept_808 = 0;
                self.tag_choice.clear();
                self.retagged.clear();
                self.retag_empty = true;
                if self.done_before.is_none() {
                    cx.outcomes.import = None;
                }
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
            Msg::Prechecked(Ok(mut job)) => {
                if let Some(earlier) = &self.earlier {
                    self.kept_808 = job.keep_earlier_808(earlier);
                }
                self.counts = job.counts();
                // Nothing to upload is not a dead end: the devices are there already.
                let finished = job.finish_if_nothing_to_send();
                self.job = Some(*job);
                self.stage = if finished {
                    self.done_before = None;
                    self.save(cx);
                    Stage::Finished
                } else {
                    Stage::Ready
                };
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
                        && let Some(r) = j.rows.get_mut(row)
                    {
                        match &mut r.outcome {
                            RowOutcome::AlreadyRegistered { group_tag, .. } => {
                                *group_tag = tag;
                                self.retagged.push(r.row.serial.clone());
                            }
                            _ => r.row.group_tag = tag,
                        }
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
        } else if self.counts.failed > 0 || matches!(self.stage, Stage::Failed(_) | Stage::Finished)
        {
            StepStatus::NeedsAttention
        } else {
            StepStatus::NotStarted
        }
    }

    fn validated(&self) -> bool {
        let current = self.job.as_ref().is_some_and(|j| self.job_validated(j));
        // A new batch checked but not imported yet leaves the finished import standing.
        current
            || self
                .done_before
                .as_ref()
                .is_some_and(|j| self.job_validated(j))
    }

    fn save_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(Saved {
            files: self.files.clone(),
            exclude_errors: self.exclude_errors,
        })
        .ok()
    }

    fn load_state(&mut self, state: serde_json::Value) {
        if let Ok(s) = serde_json::from_value::<Saved>(state) {
            self.files = s.files;
            self.exclude_errors = s.exclude_errors;
        }
    }

    /// The import job of an earlier run comes back as it was; files chosen but not imported yet
    /// are read and checked against the tenant again (reads only; nothing is uploaded).
    fn revalidate(&mut self, cx: &mut PageCx<'_>) {
        self.restore_saved_job(cx);
        // An import that was under way when the app closed goes on by itself: the person
        // started it, and its records are found before anything is uploaded again.
        let interrupted = self
            .job
            .as_ref()
            .is_some_and(|j| !matches!(j.phase, ImportPhase::Prechecked | ImportPhase::Done));
        if interrupted && self.stage == Stage::Ready && cx.graph().is_some() {
            self.start(cx);
            return;
        }
        let busy = matches!(self.stage, Stage::Importing | Stage::Checking(_));
        if self.job.is_none() && !busy && !self.files.is_empty() {
            let files: Vec<PathBuf> = self.files.iter().filter(|f| f.exists()).cloned().collect();
            if !files.is_empty() {
                self.read(files, cx);
            }
        }
    }
}

/// What the page keeps across restarts: the files chosen (paths only) and the choice about rows
/// with problems.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
struct Saved {
    files: Vec<PathBuf>,
    exclude_errors: bool,
}

/// The group tags the device group of step 4 collects (from its `[OrderID]:` rule), said where
/// the files are chosen: a device without the tag never joins the group.
fn group_tag_hint(outcomes: &crate::steps::Outcomes) -> Option<String> {
    let group = outcomes.group.as_ref()?;
    let crate::steps::group::GroupKind::Dynamic { rule } = &group.kind else {
        return None;
    };
    let tags = crate::board::group_tags_in_rule(rule);
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

/// "1 device" / "3 devices".
fn n_devices(n: usize) -> String {
    if n == 1 {
        "1 device".to_string()
    } else {
        format!("{n} devices")
    }
}

/// "this device" / "these 3 devices".
fn these(n: usize) -> String {
    if n == 1 {
        "this device".to_string()
    } else {
        format!("these {n} devices")
    }
}

/// "1 device is" / "3 devices are".
fn is_are(n: usize) -> String {
    format!("{} {}", n_devices(n), if n == 1 { "is" } else { "are" })
}
