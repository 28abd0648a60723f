//! The "Validate" page: the checklist with ✔/✘ and the evidence behind each item, a verdict per
//! device, and the report as HTML, JSON or text.

use std::path::PathBuf;
use std::sync::Arc;

use egui::{Color32, RichText};

use super::widgets::{
    self, RfdSavePicker, SaveFailure, SaveFallback, SavePicker, palette, save_to,
};
use super::{Page, PageCx, Phase, StepStatus};
use crate::board::words;
use crate::steps::validate::{self as steps, Report, ValidateInputs, ValidationOutcome, Verdict};

/// Messages from this page's background jobs.
#[derive(Debug)]
pub enum Msg {
    Checked(Result<Box<Report>, String>),
    Saved(Result<PathBuf, SaveFailure>),
}

/// A painted check mark, cross or question mark (the default fonts have no ✔/✘ glyphs),
/// followed by a word so the verdict is readable without colour.
pub fn verdict_mark(ui: &mut egui::Ui, verdict: Verdict) -> egui::Response {
    let size = ui.text_style_height(&egui::TextStyle::Body);
    let (rect, response) = ui.allocate_exact_size(egui::vec2(size, size), egui::Sense::hover());
    let c = rect.center();
    let r = size * 0.35;
    let (color, word) = match verdict {
        Verdict::Pass => (GREEN, "passed"),
        Verdict::Fail => (RED, "failed"),
        Verdict::Unknown => (AMBER, "not checked"),
    };
    let stroke = egui::Stroke::new(2.0, color);
    let p = ui.painter();
    match verdict {
        Verdict::Pass => {
            p.line_segment(
                [c + egui::vec2(-r, 0.0), c + egui::vec2(-r * 0.3, r * 0.7)],
                stroke,
            );
            p.line_segment(
                [
                    c + egui::vec2(-r * 0.3, r * 0.7),
                    c + egui::vec2(r, -r * 0.8),
                ],
                stroke,
            );
        }
        Verdict::Fail => {
            p.line_segment([c + egui::vec2(-r, -r), c + egui::vec2(r, r)], stroke);
            p.line_segment([c + egui::vec2(-r, r), c + egui::vec2(r, -r)], stroke);
        }
        Verdict::Unknown => {
            p.circle_stroke(c, r, stroke);
        }
    }
    ui.label(RichText::new(word).color(color));
    response
}

const GREEN: Color32 = palette::SUCCESS;
const RED: Color32 = palette::ERROR;
const AMBER: Color32 = palette::WARNING;

pub struct ValidatePage {
    /// What to check; when `None`, taken from the earlier steps' outcomes.
    pub inputs: Option<ValidateInputs>,
    report: Phase<Report>,
    save: Phase<PathBuf>,
    /// The path row shown when no save dialog can open, and the format it saves.
    save_fallback: SaveFallback,
    save_html: bool,
    copied: bool,
    save_picker: Arc<dyn SavePicker>,
    /// Why the report no longer describes the tenant (a later read-back of step 6 disagrees
    /// with it); `None` while it still holds.
    outdated: Option<String>,
    /// The step-6 read-back that already triggered an automatic re-check, so a disagreement
    /// re-checks once, not every frame.
    rechecked_for: Option<chrono::DateTime<chrono::Utc>>,
    /// The checklist already ran by itself on a first opening (it only reads, so opening the
    /// step is the request for it).
    ran_on_open: bool,
}

impl Default for ValidatePage {
    fn default() -> Self {
        ValidatePage::new(None)
    }
}

impl ValidatePage {
    pub fn new(inputs: Option<ValidateInputs>) -> Self {
        ValidatePage {
            inputs,
            report: Phase::Idle,
            save: Phase::Idle,
            save_fallback: SaveFallback::default(),
            save_html: true,
            copied: false,
            save_picker: Arc::new(RfdSavePicker),
            outdated: None,
            rechecked_for: None,
            ran_on_open: false,
        }
    }

    pub fn with_save_picker(mut self, picker: Arc<dyn SavePicker>) -> Self {
        self.save_picker = picker;
        self
    }

    /// Shows `report` as if it had just been checked (tests, restored state).
    pub fn with_report(mut self, report: Report) -> Self {
        self.report = Phase::Done(report);
        self
    }

    pub fn report(&self) -> Option<&Report> {
        self.report.done()
    }

    fn inputs(&self, cx: &PageCx<'_>) -> Option<ValidateInputs> {
        self.inputs
            .clone()
            .or_else(|| steps::inputs_from_outcomes(cx.outcomes))
    }

    fn start_check(&mut self, cx: &mut PageCx<'_>) {
        let (Some(graph), Some(inputs)) = (cx.graph(), self.inputs(cx)) else {
            return;
        };
        self.report = Phase::Running {
            what: "Checking every item against the tenant".into(),
        };
        self.outdated = None;
        self.copied = false;
        // "Saved to …" was about the report being replaced.
        self.save = Phase::Idle;
        cx.spawn("Validate", move |out, cancel| async move {
            let graph = graph.with_cancel(cancel);
            let r = steps::run(&graph, &inputs).await;
            out.send(super::Msg::Validate(Msg::Checked(Ok(Box::new(r)))));
        });
    }

    /// File name, filter and body of the report in the chosen format.
    fn save_parts(
        report: &Report,
        html: bool,
    ) -> (String, (&'static str, &'static [&'static str]), String) {
        let stamp = report.generated_at.format("%Y%m%d-%H%M");
        if html {
            (
                format!("autopilot-validation-{stamp}.html"),
                ("HTML", &["html"][..]),
                report.to_html(),
            )
        } else {
            (
                format!("autopilot-validation-{stamp}.json"),
                ("JSON", &["json"][..]),
                report.to_json(),
            )
        }
    }

    /// `typed`: a path from the no-dialog row; `None` asks the save dialog.
    fn start_save(&mut self, cx: &mut PageCx<'_>, html: bool, typed: Option<PathBuf>) {
        let Some(report) = self.report.done().cloned() else {
            return;
        };
        let (name, filter, body) = Self::save_parts(&report, html);
        self.save_html = html;
        if typed.is_none() && !self.save_fallback.check(&*self.save_picker, &name) {
            return;
        }
        let picker = self.save_picker.clone();
        self.save = Phase::Running {
            what: "Saving".into(),
        };
        cx.spawn("Save report", move |out, _cancel| async move {
            let r = save_to(
                &*picker,
                typed,
                "Save the validation report",
                &name,
                filter,
                body.into_bytes(),
            )
            .await;
            out.send(super::Msg::Validate(Msg::Saved(r)));
        });
    }

    /// Marks the report outdated when step 6 read the devices again after it and the two
    /// disagree: the verdict must not stay "ready" (or "not ready") on old evidence.
    fn check_outdated(&mut self, cx: &mut PageCx<'_>) {
        let (Phase::Done(report), Some(latest)) = (&self.report, &cx.outcomes.assignment) else {
            return;
        };
        if self.outdated.is_some()
            || latest.checked_at.is_none_or(|t| t <= report.generated_at)
            || latest.all_ready == report.ready
        {
            return;
        }
        let s = latest.summary;
        self.outdated = Some(if report.ready {
            format!(
                "The devices changed after this check: {} of {} are ready now (Profile \
                 assignment step). This report no longer holds; run the validation again.",
                s.ready, s.total
            )
        } else {
            "The Profile assignment step now shows every device ready. Run the validation \
             again for a current verdict."
                .into()
        });
        // The persisted verdict follows: no "ready" kept for a tenant that is not.
        cx.outcomes.validation = None;
    }

    /// The verdict, its one-line reason and the actions: kept at the top, above the details.
    fn verdict_ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        let Some(report) = self.report.done() else {
            return;
        };
        let (text, color) = if report.ready && self.outdated.is_none() {
            ("READY: devices can be deployed", GREEN)
        } else if report.ready {
            ("WAS READY: check again", AMBER)
        } else {
            ("NOT READY", RED)
        };
        ui.label(RichText::new(text).color(color).strong().size(20.0));
        if let Some(why) = &self.outdated {
            widgets::warning_message(ui, why.as_str());
        }
        if let Some(p) = report.first_problem() {
            ui.add(egui::Label::new(format!("Reason: {p}")).wrap());
        }
        let mut save = None;
        let mut copy = false;
        ui.horizontal_wrapped(|ui| {
            if ui.button("Save report (HTML)").clicked() {
                save = Some(true);
            }
            if ui.button("Save report (JSON)").clicked() {
                save = Some(false);
            }
            if ui.button("Copy as text").clicked() {
                copy = true;
            }
            if self.copied {
                ui.label("Copied to the clipboard.");
            }
            match &self.save {
                Phase::Done(p) => {
                    ui.label(format!("Saved to {}", p.display()));
                }
                Phase::Failed(e) => {
                    widgets::error_message(ui, e.as_str());
                }
                _ => {}
            }
        });
        if copy {
            ui.ctx().copy_text(report.to_text());
            self.copied = true;
        }
        if let Some(html) = save {
            self.start_save(cx, html, None);
        }
        if let Some(path) = self.save_fallback.ui(ui, "Save report to") {
            self.start_save(cx, self.save_html, Some(path));
        }
    }

    /// Every device (and those left out on purpose), then the checklist with its evidence.
    fn details_ui(&self, ui: &mut egui::Ui) {
        let Some(report) = self.report.done() else {
            return;
        };
        // The devices first: they are what the person deploys, and a laptop window shows them
        // without scrolling past the checklist.
        if !report.devices.is_empty() || !report.left_out.is_empty() {
            self.devices_ui(ui, report);
            ui.separator();
        }
        for item in &report.items {
            let color = match item.verdict {
                Verdict::Pass => GREEN,
                Verdict::Fail => RED,
                Verdict::Unknown => AMBER,
            };
            ui.horizontal(|ui| {
                verdict_mark(ui, item.verdict);
                ui.label(RichText::new(&item.title).strong().color(color));
            });
            ui.indent(("evidence", item.id.key()), |ui| {
                for e in &item.evidence {
                    ui.add(egui::Label::new(e.as_str()).wrap());
                }
                if item.verdict != Verdict::Pass
                    && let Some(f) = &item.fix
                {
                    ui.add(egui::Label::new(RichText::new(format!("To do: {f}")).italics()).wrap());
                }
            });
        }
    }

    fn devices_ui(&self, ui: &mut egui::Ui, report: &crate::steps::validate::Report) {
        if !report.left_out.is_empty() {
            ui.label(
                RichText::new(format!("Left out on purpose: {}", report.left_out.len())).strong(),
            );
            for l in &report.left_out {
                ui.add(egui::Label::new(format!("{}: {}", l.serial, l.reason)).wrap());
            }
        }
        if report.devices.is_empty() {
            return;
        }
        if !report.left_out.is_empty() {
            ui.separator();
        }
        let ready = report.devices.iter().filter(|d| d.ready).count();
        ui.label(
            RichText::new(format!(
                "Devices: {ready} of {} ready",
                report.devices.len()
            ))
            .strong(),
        );
        for d in &report.devices {
            ui.horizontal_wrapped(|ui| {
                verdict_mark(
                    ui,
                    if d.ready {
                        Verdict::Pass
                    } else {
                        Verdict::Fail
                    },
                );
                ui.label(RichText::new(&d.serial).strong());
                widgets::worded(
                    ui,
                    words::assignment_status(&d.status_raw),
                    "deploymentProfileAssignmentStatus",
                    &d.status_raw,
                );
                if d.ready {
                    ui.label(d.profile_name.as_deref().unwrap_or("-"));
                } else {
                    ui.add(egui::Label::new(d.reason.as_str()).wrap());
                }
            });
        }
    }
}

impl Page for ValidatePage {
    type Msg = Msg;

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        ui.heading("Validate");
        ui.label(
            "Checks every part of the setup live against the tenant. Deploy only when the verdict \
             is READY: every device has the expected profile, assigned with a date.",
        );
        let have_inputs = self.inputs(cx).is_some();
        if !have_inputs {
            ui.label(
                "Finish the Deployment profile and Device group steps first: the checklist \
                 checks what they set up.",
            );
        }
        self.check_outdated(cx);
        if !self.ran_on_open
            && matches!(self.report, Phase::Idle)
            && have_inputs
            && cx.graph().is_some()
        {
            self.ran_on_open = true;
            self.start_check(cx);
        }
        // Shown again after step 6 changed: check again by itself, once per change.
        let latest = cx.outcomes.assignment.as_ref().and_then(|a| a.checked_at);
        if self.outdated.is_some()
            && have_inputs
            && cx.graph().is_some()
            && !self.report.is_running()
            && self.rechecked_for != latest
        {
            self.rechecked_for = latest;
            self.start_check(cx);
        }
        let running = self.report.is_running();
        ui.horizontal(|ui| {
            let label = if self.report.done().is_some() {
                "Check again"
            } else {
                "Run validation"
            };
            if ui
                .add_enabled(
                    have_inputs && cx.graph().is_some() && !running,
                    egui::Button::new(label),
                )
                .clicked()
            {
                self.start_check(cx);
            }
            if running {
                ui.spinner();
            }
        });
        match &self.report {
            Phase::Running { what } => {
                ui.label(what.as_str());
            }
            Phase::Failed(e) => {
                widgets::error_message(ui, e.as_str());
            }
            _ => {}
        }
        self.verdict_ui(ui, cx);
        ui.separator();
        egui::ScrollArea::vertical()
            .id_salt("validate-page")
            .auto_shrink([false, true])
            .show(ui, |ui| self.details_ui(ui));
    }

    fn tick(&mut self, _ctx: &egui::Context, cx: &mut PageCx<'_>) {
        self.check_outdated(cx);
    }

    fn on_msg(&mut self, msg: Msg, cx: &mut PageCx<'_>) {
        match msg {
            Msg::Checked(Ok(r)) => {
                cx.outcomes.validation = Some(ValidationOutcome::from_report(&r));
                self.report = Phase::Done(*r);
            }
            Msg::Checked(Err(e)) => self.report = Phase::Failed(e),
            Msg::Saved(r) => {
                self.save = match r {
                    Ok(p) => {
                        self.save_fallback.close();
                        Phase::Done(p)
                    }
                    Err(SaveFailure::NoDialog(e)) => {
                        if let Some(report) = self.report.done() {
                            let (name, _, _) = Self::save_parts(report, self.save_html);
                            self.save_fallback.show(e, &name);
                        }
                        Phase::Idle
                    }
                    Err(e) => Phase::Failed(e.to_string()),
                }
            }
        }
    }

    /// From the latest read-backs: a report that step 6's newer read-back contradicts is not
    /// Done any more (see [`ValidatePage::check_outdated`]).
    fn status(&self) -> StepStatus {
        match &self.report {
            Phase::Idle => StepStatus::NotStarted,
            Phase::Running { .. } => StepStatus::InProgress,
            Phase::Done(r) if r.ready && self.outdated.is_none() => StepStatus::Done,
            Phase::Done(_) | Phase::Failed(_) => StepStatus::NeedsAttention,
        }
    }

    fn validated(&self) -> bool {
        self.outdated.is_none() && self.report.done().is_some_and(|r| r.ready)
    }

    fn left(&mut self) {
        if !self.save.is_running() {
            self.save = Phase::Idle;
        }
    }

    /// Opened after an earlier step changed: the old verdict went with the old page, and the
    /// checklist runs again by itself (it only reads).
    fn inputs_changed(&mut self, cx: &mut PageCx<'_>) {
        if !self.report.is_running() {
            self.start_check(cx);
        }
    }
}
