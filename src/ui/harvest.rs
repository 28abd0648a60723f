//! "Add this PC" on the import page: reads the hardware hash of the PC the wizard runs on
//! (Windows, through the injected [`WmiSource`]) and adds it to the selection as one more
//! CSV row, file "this PC". Shown only where harvesting can work (the app gets no harvester
//! elsewhere).

use egui::RichText;

use super::{Outbox, PageCx, Phase};
use crate::hwid::CheckOptions;
use crate::hwid::CheckReport;
use crate::hwid::harvest::{self, HarvestError, HarvestOptions, Harvested};

/// Results of the harvest job.
#[derive(Debug)]
pub enum Msg {
    Harvested(Result<Box<Harvested>, HarvestError>),
}

/// This PC's part of the import page's selection.
#[derive(Default)]
pub struct ThisPc {
    phase: Phase<Box<Harvested>>,
    /// Whether the last failure would go away with administrator rights.
    needs_elevation: bool,
    restart_error: Option<String>,
}

impl ThisPc {
    /// The harvested row, once read and checked.
    pub fn harvested(&self) -> Option<&Harvested> {
        self.phase.done().map(|b| b.as_ref())
    }

    /// `report` with this PC added, or `report` unchanged before "Add this PC".
    pub fn include(&self, report: CheckReport) -> CheckReport {
        match self.harvested() {
            Some(h) => harvest::include_in_report(&report, h),
            None => report,
        }
    }

    /// The button (only with a harvester), the wait and the outcome. `busy`: the page is
    /// reading or importing.
    pub fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>, busy: bool) {
        let Some(source) = cx.harvester() else {
            return;
        };
        let running = self.phase.is_running();
        let label = if self.harvested().is_some() {
            "Read this PC again"
        } else {
            "Add this PC"
        };
        if ui
            .add_enabled(!busy && !running, egui::Button::new(label))
            .on_hover_text(
                "Reads this PC's hardware hash (as Get-WindowsAutopilotInfo does) and adds it to \
                 the devices below. Needs administrator rights.",
            )
            .clicked()
        {
            let opts = HarvestOptions {
                group_tag: wanted_group_tag(cx.outcomes).unwrap_or_default(),
                assigned_user: String::new(),
                check: match &cx.outcomes.signed_in {
                    Some(s) => CheckOptions::default().with_verified_domains(&s.verified_domains),
                    None => CheckOptions::default(),
                },
            };
            self.phase = Phase::Running {
                what: "Reading this PC's hardware hash…".into(),
            };
            self.restart_error = None;
            cx.spawn(
                "Reading this PC's hardware hash",
                move |out: Outbox, _cancel| async move {
                    let result = tokio::task::spawn_blocking(move || {
                        harvest::harvest(source.as_ref(), &opts)
                    })
                    .await
                    .unwrap_or_else(|e| {
                        Err(HarvestError::Wmi {
                            what: "the hardware hash",
                            detail: e.to_string(),
                        })
                    });
                    out.send(super::Msg::Import(super::import::Msg::ThisPc(
                        Msg::Harvested(result.map(Box::new)),
                    )));
                },
            );
        }
    }

    /// Status line under the toolbar: the wait, the error (with "Restart as administrator"
    /// where that helps), or what was added.
    pub fn status_ui(&mut self, ui: &mut egui::Ui) {
        match &self.phase {
            Phase::Idle => {}
            Phase::Running { what } => {
                super::widgets::busy(ui, what);
            }
            Phase::Failed(msg) => {
                super::widgets::error_message(ui, msg.as_str());
                if self.needs_elevation && cfg!(windows) {
                    if ui.button("Restart as administrator").clicked() {
                        match harvest::restart_elevated() {
                            Ok(()) => ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close),
                            Err(e) => self.restart_error = Some(e),
                        }
                    }
                    if let Some(e) = &self.restart_error {
                        super::widgets::error_message(ui, e.as_str());
                    }
                }
            }
            Phase::Done(h) => {
                ui.label(RichText::new(format!(
                    "This PC ({}, serial number {}) is in the list below.",
                    h.device_name(),
                    h.row.serial
                )));
            }
        }
    }

    /// Takes the job's result; true when the selection changed (the page checks it again).
    pub fn on_msg(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Harvested(Ok(h)) => {
                tracing::info!(serial = %h.row.serial, status = h.row.status.as_str(), "this PC harvested");
                self.phase = Phase::Done(h);
                self.needs_elevation = false;
                true
            }
            Msg::Harvested(Err(e)) => {
                tracing::warn!(error = ?e, "harvesting this PC failed");
                self.needs_elevation = e.needs_elevation();
                self.phase = Phase::Failed(e.to_string());
                false
            }
        }
    }
}

/// The group tag the device group of step 4 collects (`[OrderID]:<tag>`), given to this PC so
/// it joins the group like the rows of the files.
fn wanted_group_tag(outcomes: &crate::steps::Outcomes) -> Option<String> {
    let group = outcomes.group.as_ref()?;
    let crate::steps::group::GroupKind::Dynamic { rule } = &group.kind else {
        return None;
    };
    crate::board::group_tags_in_rule(rule).into_iter().next()
}
