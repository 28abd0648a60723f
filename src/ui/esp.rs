//! The Enrollment Status Page step: which ESP the devices of the step-4 group get, what OOBE
//! will do in words, the documented problems with what to do, and "Create the recommended ESP for
//! this group". Next is allowed once the group's ESP was read back, after an explicit "Continue
//! with this ESP" where problems remain (they are warnings: the tenant may have reasons).

use egui::RichText;

use crate::steps::esp::{self as step, CreateReport, EspOutcome, Resolution};
use crate::ui::widgets::{self, palette};
use crate::ui::{Msg as UiMsg, Page, PageCx, Phase, StepStatus};

/// Results of the page's jobs.
#[derive(Debug)]
pub enum Msg {
    Read {
        group_id: String,
        result: Result<Resolution, String>,
    },
    Progress(String),
    Created {
        group_id: String,
        result: Result<CreateReport, String>,
    },
}

pub struct EspPage {
    /// The step-4 group as last seen in the outcomes (id, name).
    group: Option<(String, String)>,
    read: Phase<Resolution>,
    create: Phase<CreateReport>,
    /// The latest progress line of the running create.
    create_progress: String,
    /// "Continue with this ESP" for the resolution shown; cleared whenever it is read again.
    acknowledged: bool,
    /// The group changed (or the page opened) and its ESP has not been read yet.
    needs_read: bool,
}

impl Default for EspPage {
    fn default() -> Self {
        EspPage::new()
    }
}

impl EspPage {
    pub fn new() -> Self {
        EspPage {
            group: None,
            read: Phase::Idle,
            create: Phase::Idle,
            create_progress: String::new(),
            acknowledged: false,
            needs_read: false,
        }
    }

    /// The step's result for [`crate::steps::Outcomes`], once the group's ESP was read back.
    pub fn outcome(&self) -> Option<EspOutcome> {
        let r = self.current()?;
        let created = self
            .create
            .done()
            .is_some_and(|c| c.created && Some(c.esp.id.as_str()) == r.chosen_id());
        Some(EspOutcome::from_resolution(r, created))
    }

    /// The resolution shown, if it belongs to the current group.
    pub fn current(&self) -> Option<&Resolution> {
        let r = self.read.done()?;
        (Some(&r.group_id) == self.group.as_ref().map(|(id, _)| id)).then_some(r)
    }

    /// Keeps the step's outcome in `cx.outcomes` in line with what the page shows as Done, so
    /// the steps after it (the validation report) follow it.
    fn publish(&self, cx: &mut PageCx<'_>) {
        let now = if self.validated() {
            self.outcome()
        } else {
            None
        };
        if cx.outcomes.esp != now {
            cx.outcomes.esp = now;
        }
    }

    /// Follows the step-4 group: a new group makes what is shown stale at once (so `validated`
    /// never speaks for another group) and asks for a read the next time the page is drawn.
    fn follow_group(&mut self, cx: &mut PageCx<'_>) {
        let now = cx
            .outcomes
            .group
            .as_ref()
            .map(|g| (g.id.clone(), g.display_name.clone()));
        if now != self.group {
            self.group = now;
            self.read = Phase::Idle;
            self.create = Phase::Idle;
            self.acknowledged = false;
            self.needs_read = self.group.is_some();
        }
    }

    fn start_read(&mut self, cx: &mut PageCx<'_>) {
        self.needs_read = false;
        let Some((group_id, _)) = self.group.clone() else {
            return;
        };
        let Some(graph) = cx.graph() else {
            self.read = Phase::Failed("Sign in first (step 1).".into());
            return;
        };
        self.read = Phase::Running {
            what:
                "Reading the Enrollment Status Pages, their assignments and the apps they wait for…"
                    .into(),
        };
        self.acknowledged = false;
        cx.spawn(
            "Read the Enrollment Status Pages",
            move |out, cancel| async move {
                let graph = graph.with_cancel(cancel);
                let result = step::resolve(&graph, &group_id)
                    .await
                    .map_err(|e| e.to_string());
                out.send(UiMsg::Esp(Msg::Read { group_id, result }));
            },
        );
    }

    fn start_create(&mut self, cx: &mut PageCx<'_>) {
        let Some((group_id, _)) = self.group.clone() else {
            return;
        };
        let Some(graph) = cx.graph() else {
            self.create = Phase::Failed("Sign in first (step 1).".into());
            return;
        };
        self.create = Phase::Running {
            what: "Creating the recommended Enrollment Status Page…".into(),
        };
        self.create_progress.clear();
        cx.spawn(
            "Create the recommended ESP",
            move |out, cancel| async move {
                let graph = graph.with_cancel(cancel);
                let progress_out = out.clone();
                let progress = move |text: &str| {
                    progress_out.send(UiMsg::Esp(Msg::Progress(text.to_string())));
                };
                let result = step::create_recommended(&graph, &group_id, &progress)
                    .await
                    .map_err(|e| e.to_string());
                out.send(UiMsg::Esp(Msg::Created { group_id, result }));
            },
        );
    }

    fn show_resolution(&mut self, ui: &mut egui::Ui, r: &Resolution) {
        match &r.chosen {
            Some((c, _)) => {
                ui.horizontal_wrapped(|ui| {
                    ui.label("These devices get:");
                    let raw = serde_json::to_string_pretty(&c.raw).unwrap_or_default();
                    ui.label(RichText::new(&c.display_name).strong())
                        .on_hover_text(raw);
                    if c.is_default {
                        widgets::chip(
                            ui,
                            "Default",
                            palette::NEUTRAL,
                            "the tenant's default ESP (priority 0)",
                        );
                    } else {
                        widgets::chip(
                            ui,
                            &format!("Priority {}", c.priority),
                            palette::NEUTRAL,
                            &format!("priority: {}", c.priority),
                        );
                    }
                });
            }
            None => {
                widgets::error_message(ui, "The tenant has no Enrollment Status Page.");
            }
        }
        ui.add_space(4.0);
        ui.label(RichText::new("What OOBE will do").strong());
        for (words, raw) in r.behaviour() {
            ui.horizontal_wrapped(|ui| {
                ui.label("•");
                ui.add(egui::Label::new(words).wrap()).on_hover_text(raw);
            });
        }
        ui.add_space(6.0);
        if r.problems.is_empty() {
            widgets::success_message(
                ui,
                "No documented Enrollment Status Page problem applies to these devices.",
            );
        } else {
            ui.label(
                RichText::new(format!(
                    "{} problem{} to look at",
                    r.problems.len(),
                    if r.problems.len() == 1 { "" } else { "s" }
                ))
                .strong(),
            );
            for p in &r.problems {
                ui.group(|ui| {
                    widgets::warning_message(ui, p.what()).on_hover_text(format!("{p:?}"));
                    ui.add(egui::Label::new(format!("What to do: {}", p.fix())).wrap());
                });
            }
        }
    }
}

impl Page for EspPage {
    type Msg = Msg;

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        self.follow_group(cx);
        if self.needs_read && !self.read.is_running() {
            self.start_read(cx);
        }
        ui.heading("Enrollment Status Page");
        ui.add(
            egui::Label::new(
                "During OOBE the Enrollment Status Page shows setup progress and can hold the person back until the apps and policies they need are installed. This step shows which page the Autopilot devices of your group get and what it will do.",
            )
            .wrap(),
        );
        ui.add_space(6.0);
        let Some((_, group_name)) = self.group.clone() else {
            widgets::warning_message(
                ui,
                "Choose or create the device group first (the device group step): the Enrollment Status Page depends on it.",
            );
            return;
        };
        ui.label(format!("Device group: {group_name}"));
        ui.add_space(4.0);

        let mut check_again = false;
        match self.read.clone() {
            Phase::Idle => {}
            Phase::Running { what } => {
                widgets::busy(ui, what);
            }
            Phase::Failed(e) => {
                widgets::error_message(ui, e);
            }
            Phase::Done(r) => self.show_resolution(ui, &r),
        }

        ui.add_space(8.0);
        let busy = self.read.is_running() || self.create.is_running();
        let recommended_in_place = self.current().is_some_and(|r| r.is_recommended());
        ui.horizontal(|ui| {
            let create = ui
                .add_enabled(
                    !busy && !recommended_in_place,
                    egui::Button::new("Create the recommended ESP for this group"),
                )
                .on_hover_text(
                    "showInstallationProgress: true, blockDeviceSetupRetryByUser: false (block device use: Yes), allowDeviceResetOnInstallFailure: true, allowLogCollectionOnInstallFailure: true, trackInstallProgressForAutopilotOnly: true, disableUserStatusTrackingAfterFirstUser: true, installProgressTimeoutInMinutes: 60; assigned to the group, priority 1",
                );
            if create.clicked() {
                self.start_create(cx);
            }
            if ui
                .add_enabled(!busy, egui::Button::new("Check again"))
                .clicked()
            {
                check_again = true;
            }
        });
        ui.add(
            egui::Label::new(
                "The recommended page shows progress, blocks device use until the required apps are installed, allows reset and log collection on failure, is shown only at OOBE and times out after 60 minutes.",
            )
            .wrap(),
        );
        match &self.create {
            Phase::Idle => {}
            Phase::Running { what } => {
                widgets::busy(
                    ui,
                    if self.create_progress.is_empty() {
                        what.as_str()
                    } else {
                        self.create_progress.as_str()
                    },
                );
            }
            Phase::Failed(e) => {
                widgets::error_message(ui, e);
            }
            Phase::Done(rep) => {
                widgets::success_message(
                    ui,
                    format!(
                        "{} \"{}\", assigned to \"{group_name}\" with priority 1, and read every setting back: it is now this group's Enrollment Status Page.",
                        if rep.created { "Created" } else { "Found" },
                        rep.esp.display_name
                    ),
                )
                .on_hover_text(format!("id {}", rep.esp.id));
            }
        }
        if check_again {
            self.create = Phase::Idle;
            self.start_read(cx);
        }

        if let Some(r) = self.current()
            && !r.problems.is_empty()
        {
            ui.add_space(6.0);
            let mut ack = self.acknowledged;
            ui.checkbox(&mut ack, "Continue with this ESP")
                .on_hover_text("The problems above are warnings: continue with the page as it is.");
            self.acknowledged = ack;
        }
        ui.add_space(4.0);
        if self.validated() {
            widgets::success_message(
                ui,
                "Ready: the Enrollment Status Page of this group was read back.",
            );
        }
    }

    fn on_msg(&mut self, msg: Msg, cx: &mut PageCx<'_>) {
        self.take(msg);
        self.publish(cx);
    }

    fn status(&self) -> StepStatus {
        if self.read.is_running() || self.create.is_running() {
            return StepStatus::InProgress;
        }
        if self.validated() {
            return StepStatus::Done;
        }
        match (&self.read, &self.create) {
            (Phase::Failed(_), _) | (_, Phase::Failed(_)) => StepStatus::NeedsAttention,
            (Phase::Done(_), _) if self.current().is_some() => StepStatus::NeedsAttention,
            _ => StepStatus::NotStarted,
        }
    }

    fn validated(&self) -> bool {
        self.current()
            .is_some_and(|r| r.chosen.is_some() && (r.problems.is_empty() || self.acknowledged))
    }

    fn tick(&mut self, _ctx: &egui::Context, cx: &mut PageCx<'_>) {
        // Only once the page has followed a group: before that there is nothing to make stale,
        // and reading is left to the first visit or `revalidate`.
        if self.group.is_some() {
            self.follow_group(cx);
        }
        self.publish(cx);
    }

    fn revalidate(&mut self, cx: &mut PageCx<'_>) {
        self.group = cx
            .outcomes
            .group
            .as_ref()
            .map(|g| (g.id.clone(), g.display_name.clone()));
        self.create = Phase::Idle;
        self.start_read(cx);
    }
}

impl EspPage {
    /// Takes a job's result.
    fn take(&mut self, msg: Msg) {
        let current = self.group.as_ref().map(|(id, _)| id.clone());
        match msg {
            Msg::Read { group_id, result } => {
                // A read for an earlier group says nothing about this one.
                if Some(&group_id) != current.as_ref() {
                    return;
                }
                self.acknowledged = false;
                self.read = match result {
                    Ok(r) => Phase::Done(r),
                    Err(e) => Phase::Failed(e),
                };
            }
            Msg::Progress(text) => {
                if self.create.is_running() {
                    self.create_progress = text;
                }
            }
            Msg::Created { group_id, result } => {
                if Some(&group_id) != current.as_ref() {
                    return;
                }
                match result {
                    Ok(rep) => {
                        self.acknowledged = false;
                        self.read = Phase::Done(rep.resolution.clone());
                        self.create = Phase::Done(rep);
                    }
                    Err(e) => self.create = Phase::Failed(e),
                }
            }
        }
    }
}
