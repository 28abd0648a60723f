//! "Remove devices": leave the organisation, re-deploy here, or move to another tenant
//! (`steps::removal`). Not a step of the procedure: the app shows it beside the steps, reachable
//! at any time from the step list (see ARCHITECTURE.md).
//!
//! The page has no message type of its own: its jobs write into shared state the page reads
//! every frame (the messages of `ui::Msg` belong to the procedure's steps).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::steps::removal::{
    self, DeviceOutcome, KnownDevices, Mode, Options, Pace, Plan, RemovalObserver, RunRecord,
};
use crate::ui::widgets::{RfdSavePicker, SavePicker, save_to};
use crate::ui::{Page, PageCx, StepStatus};

/// Microsoft's page on taking a device out of Autopilot (the order this flow follows).
pub const DOC_URL: &str =
    "https://learn.microsoft.com/autopilot/registration-overview#deregister-a-device";

#[derive(Debug, Clone, Default, PartialEq)]
enum Phase {
    #[default]
    Idle,
    Planning,
    Planned,
    Running,
    Finished,
}

#[derive(Default)]
struct Shared {
    phase: Phase,
    plan: Option<Plan>,
    record: RunRecord,
    /// The latest line per device while the run goes on (visible waits).
    progress: Vec<(String, String)>,
    error: Option<String>,
    export_note: Option<String>,
}

/// What the page keeps across restarts: the form, and the record of a run that did not finish.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SavedRemoval {
    pub mode: Mode,
    pub wipe: bool,
    pub serials: String,
    pub hash_dir: String,
    pub record: Option<RunRecord>,
}

pub struct RemovalPage {
    pub mode: Mode,
    pub wipe: bool,
    /// One serial number per line (commas and spaces also separate).
    pub serials: String,
    /// Move: where the hash CSVs are written.
    pub hash_dir: String,
    pub pace: Pace,
    typed_count: String,
    shared: Arc<Mutex<Shared>>,
    save_picker: Arc<dyn SavePicker>,
}

impl Default for RemovalPage {
    fn default() -> Self {
        Self::new()
    }
}

impl RemovalPage {
    pub fn new() -> Self {
        let hash_dir = crate::paths::local_data_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("hardware-hashes");
        RemovalPage {
            mode: Mode::Leave,
            wipe: false,
            serials: String::new(),
            hash_dir: hash_dir.display().to_string(),
            pace: Pace::default(),
            typed_count: String::new(),
            shared: Arc::new(Mutex::new(Shared::default())),
            save_picker: Arc::new(RfdSavePicker),
        }
    }

    /// Where "Export the results as CSV" asks for a path (tests: a fixed path).
    pub fn with_save_picker(mut self, picker: Arc<dyn SavePicker>) -> Self {
        self.save_picker = picker;
        self
    }

    /// The devices picked elsewhere (the assignment board's selection).
    pub fn select(&mut self, serials: &[String]) {
        self.serials = serials.join("\n");
        let mut s = self.lock();
        if !matches!(s.phase, Phase::Running | Phase::Planning) {
            s.phase = Phase::Idle;
            s.plan = None;
        }
    }

    /// What is typed in the confirmation field (tests; the field itself is typed into).
    pub fn set_typed_count(&mut self, text: &str) {
        self.typed_count = text.to_string();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn serial_list(&self) -> Vec<String> {
        self.serials
            .split(['\n', ',', ';', '\r'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn known(cx: &PageCx<'_>) -> KnownDevices {
        cx.outcomes
            .import
            .as_ref()
            .map(KnownDevices::from_import)
            .unwrap_or_default()
    }

    fn start_plan(&mut self, cx: &mut PageCx<'_>) {
        let Some(graph) = cx.graph() else { return };
        let serials = self.serial_list();
        let (mode, wipe) = (self.mode, self.wipe);
        let known = Self::known(cx);
        let shared = self.shared.clone();
        {
            let mut s = self.lock();
            s.phase = Phase::Planning;
            s.error = None;
            s.plan = None;
            s.export_note = None;
        }
        self.typed_count.clear();
        cx.spawn("Reading the devices", move |out, cancel| async move {
            let graph = graph.with_cancel(cancel);
            let result = removal::plan(&graph, &serials, mode, wipe, &known).await;
            let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(plan) => {
                    s.plan = Some(plan);
                    s.phase = Phase::Planned;
                }
                Err(e) => {
                    s.error = Some(format!("The devices could not be read: {e}"));
                    s.phase = Phase::Idle;
                }
            }
            drop(s);
            out.repaint();
        });
    }

    fn start_run(&mut self, cx: &mut PageCx<'_>) {
        let Some(graph) = cx.graph() else { return };
        let Some(plan) = self.lock().plan.clone() else {
            return;
        };
        let known = Self::known(cx);
        let opts = Options {
            mode: plan.mode,
            wipe: plan.wipe,
            hash_dir: PathBuf::from(self.hash_dir.trim()),
            pace: self.pace,
        };
        let shared = self.shared.clone();
        let mut record = {
            let mut s = self.lock();
            s.phase = Phase::Running;
            s.progress.clear();
            // A record of the same mode continues (an interrupted run); another starts afresh.
            if s.record.mode != plan.mode || !s.record.unfinished() {
                s.record = RunRecord::new(plan.mode, plan.wipe);
            }
            s.record.clone()
        };
        cx.spawn("Removing devices", move |out, cancel| async move {
            let graph = graph.with_cancel(cancel);
            let obs = PageObserver {
                shared: shared.clone(),
                out: out.clone(),
            };
            removal::execute(&graph, &plan, &opts, &known, &mut record, &obs).await;
            let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
            s.record = record;
            s.phase = Phase::Finished;
            drop(s);
            out.repaint();
        });
    }

    fn export(&mut self, cx: &mut PageCx<'_>) {
        let csv = self.lock().record.to_csv();
        let picker = self.save_picker.clone();
        let shared = self.shared.clone();
        cx.spawn("Saving the results", move |out, _| async move {
            let note = match save_to(
                &*picker,
                None,
                "Save the removal results",
                "removal-results.csv",
                ("CSV", &["csv"]),
                csv.into_bytes(),
            )
            .await
            {
                Ok(p) => format!("Saved to {}", p.display()),
                Err(e) => e.to_string(),
            };
            shared.lock().unwrap_or_else(|p| p.into_inner()).export_note = Some(note);
            out.repaint();
        });
    }

    fn plan_ui(ui: &mut egui::Ui, plan: &Plan) {
        for n in &plan.notes {
            ui.colored_label(ui.visuals().warn_fg_color, n);
        }
        for d in &plan.devices {
            ui.add_space(6.0);
            let model = [d.facts.manufacturer.as_str(), d.facts.model.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            ui.strong(if model.is_empty() {
                d.facts.serial.clone()
            } else {
                format!("{} — {model}", d.facts.serial)
            });
            ui.indent(("plan", &d.facts.serial), |ui| {
                for line in d.steps_in_words() {
                    if d.refusal.is_some() {
                        ui.colored_label(ui.visuals().warn_fg_color, line);
                    } else {
                        ui.label(line);
                    }
                }
                for s in d.stays(plan.mode) {
                    ui.weak(format!("Stays: {s}"));
                }
                for w in d.irreversible() {
                    ui.colored_label(
                        ui.visuals().error_fg_color,
                        format!("Cannot be undone: {w}"),
                    );
                }
            });
        }
    }
}

struct PageObserver {
    shared: Arc<Mutex<Shared>>,
    out: crate::ui::Outbox,
}

impl RemovalObserver for PageObserver {
    fn progress(&self, serial: &str, text: &str) {
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        match s.progress.iter_mut().find(|(k, _)| k == serial) {
            Some(entry) => entry.1 = text.to_string(),
            None => s.progress.push((serial.to_string(), text.to_string())),
        }
        drop(s);
        self.out.repaint();
    }

    fn save(&self, record: &RunRecord) {
        self.shared.lock().unwrap_or_else(|p| p.into_inner()).record = record.clone();
        self.out.repaint();
    }
}

impl RemovalPage {
    fn draw(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        ui.heading("Remove devices");
        ui.label(
            "Take devices out of this tenant, or get them ready for someone else, in Microsoft's order: \
             the Intune record, then the Autopilot registration; the Entra ID device only if it did not go by itself.",
        );
        let phase = self.lock().phase.clone();
        let busy = matches!(phase, Phase::Planning | Phase::Running);
        ui.add_space(6.0);
        ui.add_enabled_ui(!busy, |ui| {
            ui.horizontal(|ui| {
                for m in Mode::ALL {
                    if ui.radio_value(&mut self.mode, m, m.title()).changed() {
                        self.lock().plan = None;
                        self.lock().phase = Phase::Idle;
                    }
                }
            });
            ui.weak(self.mode.explanation());
            if matches!(self.mode, Mode::Leave | Mode::Move)
                && ui
                    .checkbox(&mut self.wipe, "Wipe the devices first")
                    .changed()
            {
                self.lock().plan = None;
                self.lock().phase = Phase::Idle;
            }
            let label = ui.label("Serial numbers (one per line)");
            let edit = ui
                .add(
                    egui::TextEdit::multiline(&mut self.serials)
                        .desired_rows(3)
                        .hint_text("e.g. 5CG1234XYZ"),
                )
                .labelled_by(label.id);
            if edit.changed() {
                self.lock().plan = None;
                self.lock().phase = Phase::Idle;
            }
            if let Some(job) = &cx.outcomes.import {
                let serials: Vec<String> = job.rows.iter().map(|r| r.row.serial.clone()).collect();
                if !serials.is_empty()
                    && ui
                        .button(format!("Use the {} imported devices", serials.len()))
                        .clicked()
                {
                    self.select(&serials);
                }
            }
            if self.mode == Mode::Move {
                ui.horizontal(|ui| {
                    let label = ui.label("Folder for the hash files");
                    ui.text_edit_singleline(&mut self.hash_dir)
                        .labelled_by(label.id);
                });
            }
            let can_plan = cx.graph().is_some() && !self.serial_list().is_empty();
            if ui
                .add_enabled(can_plan, egui::Button::new("Show the plan"))
                .on_disabled_hover_text("Sign in on the first page and enter serial numbers first.")
                .clicked()
            {
                self.start_plan(cx);
            }
        });
        let (plan, error, record, progress, export_note) = {
            let s = self.lock();
            (
                s.plan.clone(),
                s.error.clone(),
                s.record.clone(),
                s.progress.clone(),
                s.export_note.clone(),
            )
        };
        if let Some(e) = error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        if phase == Phase::Planning {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Reading the devices from Intune, Autopilot and Entra ID…");
            });
        }
        if record.unfinished() && phase == Phase::Idle {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                "An earlier removal did not finish. Show the plan again and carry it out: it continues where it stopped and does not send a wipe twice.",
            );
        }
        let Some(plan) = plan else { return };
        ui.separator();
        ui.strong(format!("The plan: {}", plan.mode.title()));
        // What to do (or what happened) first, the plan per device below it.
        self.action_ui(ui, cx, &plan, phase, &record, progress, export_note);
        Self::plan_ui(ui, &plan);
    }

    #[allow(clippy::too_many_arguments)]
    fn action_ui(
        &mut self,
        ui: &mut egui::Ui,
        cx: &mut PageCx<'_>,
        plan: &Plan,
        phase: Phase,
        record: &RunRecord,
        progress: Vec<(String, String)>,
        export_note: Option<String>,
    ) {
        match phase {
            Phase::Planned => {
                let n = plan.actionable();
                if n == 0 {
                    ui.label("No device has anything to send.");
                    return;
                }
                let confirmed = if plan.needs_typed_count() {
                    ui.horizontal(|ui| {
                        let label =
                            ui.label(format!("Type the number of devices ({n}) to confirm"));
                        ui.text_edit_singleline(&mut self.typed_count)
                            .labelled_by(label.id);
                    });
                    self.typed_count.trim() == n.to_string()
                } else {
                    true
                };
                let noun = if n == 1 { "device" } else { "devices" };
                if ui
                    .add_enabled(
                        confirmed,
                        egui::Button::new(format!("Carry out the plan for {n} {noun}")),
                    )
                    .clicked()
                {
                    self.start_run(cx);
                }
            }
            Phase::Running => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Working through the devices, reading each step back until it holds…");
                });
                for (serial, line) in progress {
                    ui.label(format!("{serial}: {line}"));
                }
            }
            Phase::Finished => {
                ui.strong("Result");
                for d in &plan.devices {
                    let words = record.result_words(&d.facts.serial);
                    let done = matches!(
                        record
                            .device(&d.facts.serial)
                            .and_then(|r| r.outcome.as_ref()),
                        Some(DeviceOutcome::Done { .. })
                    );
                    let color = if done {
                        ui.visuals().text_color()
                    } else {
                        ui.visuals().warn_fg_color
                    };
                    ui.colored_label(color, format!("{}: {words}", d.facts.serial));
                }
                if ui.button("Export the results as CSV").clicked() {
                    self.export(cx);
                }
                if let Some(n) = export_note {
                    ui.label(n);
                }
            }
            _ => {}
        }
        ui.add_space(8.0);
    }
}

impl Page for RemovalPage {
    type Msg = ();

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        self.draw(ui, cx)
    }

    fn on_msg(&mut self, _msg: (), _cx: &mut PageCx<'_>) {}

    fn status(&self) -> StepStatus {
        match self.lock().phase {
            Phase::Idle => StepStatus::NotStarted,
            Phase::Finished => StepStatus::Done,
            _ => StepStatus::InProgress,
        }
    }

    fn validated(&self) -> bool {
        self.lock().phase == Phase::Finished
    }

    fn save_state(&self) -> Option<serde_json::Value> {
        let s = self.lock();
        let record = s.record.unfinished().then(|| s.record.clone());
        serde_json::to_value(SavedRemoval {
            mode: self.mode,
            wipe: self.wipe,
            serials: self.serials.clone(),
            hash_dir: self.hash_dir.clone(),
            record,
        })
        .ok()
    }

    fn load_state(&mut self, state: serde_json::Value) {
        let Ok(saved) = serde_json::from_value::<SavedRemoval>(state) else {
            return;
        };
        self.mode = saved.mode;
        self.wipe = saved.wipe;
        self.serials = saved.serials;
        if !saved.hash_dir.is_empty() {
            self.hash_dir = saved.hash_dir;
        }
        if let Some(r) = saved.record {
            self.lock().record = r;
        }
    }
}
