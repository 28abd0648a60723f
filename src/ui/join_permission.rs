//! The "Join permission" page: who may join devices to Microsoft Entra, who is in the Intune
//! automatic-enrollment scope, and whether the people chosen to deploy are covered by both.

use egui::RichText;

use crate::steps::join_permission::{
    self as step, CoverageReport, Deployer, JoinPermissionOutcome, Policies, Scope,
};
use crate::steps::readiness::{self, Action, Finding, Level};
use crate::ui::{Page, PageCx, Phase, StepId, StepStatus};

/// Messages from this page's background jobs.
#[derive(Debug)]
pub enum Msg {
    Searched(Result<Vec<Deployer>, String>),
    /// The join check with the readiness checks of the same deployers.
    Checked(Result<(step::JoinCheck, Vec<Finding>), String>),
    /// A readiness fix the wizard made, read back.
    Fixed(Result<String, String>),
}

fn send(out: &crate::ui::Outbox, msg: Msg) {
    out.send(crate::ui::Msg::JoinPermission(msg));
}

/// The outcome of the last check.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub policies: Policies,
    pub report: CoverageReport,
    /// `Ok` when every deployer is covered; otherwise what to change.
    pub verdict: Result<(), Vec<String>>,
    /// What else decides whether the deployers get through OOBE (licences, Conditional
    /// Access…): a failing one keeps the step from Done.
    pub findings: Vec<Finding>,
}

impl Checked {
    fn ready(&self) -> bool {
        self.verdict.is_ok() && !self.findings.iter().any(|f| f.level == Level::Fail)
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
struct Saved {
    deployers: Vec<Deployer>,
}

#[derive(Default)]
pub struct JoinPermissionPage {
    search_text: String,
    search: Phase<Vec<Deployer>>,
    deployers: Vec<Deployer>,
    check: Phase<Checked>,
    /// The deployers changed while a check ran: its answer is about the old list, so the check
    /// runs again when it comes.
    recheck: bool,
    /// A fix the wizard is making (or made) from a finding's button.
    fix: Phase<String>,
}

impl JoinPermissionPage {
    pub fn new() -> Self {
        Self::default()
    }

    fn start_search(&mut self, cx: &mut PageCx<'_>) {
        let Some(graph) = cx.graph() else {
            self.search = Phase::Failed(format!("Sign in first ({}).", StepId::SignIn.step_n()));
            return;
        };
        let text = self.search_text.clone();
        self.search = Phase::Running {
            what: format!("Searching for \"{text}\"…"),
        };
        cx.spawn("Search users and groups", move |out, cancel| async move {
            let graph = graph.with_cancel(cancel);
            let r = step::search_deployers(&graph, &text)
                .await
                .map_err(|e| e.to_string());
            send(&out, Msg::Searched(r));
        });
    }

    /// Choosing the deployers is asking whether they may join: the check runs at once.
    fn deployers_changed(&mut self, cx: &mut PageCx<'_>) {
        if self.deployers.is_empty() {
            self.check = Phase::Idle;
        } else if self.check.is_running() {
            self.recheck = true;
        } else {
            self.start_check(cx);
        }
    }

    fn start_check(&mut self, cx: &mut PageCx<'_>) {
        let Some(graph) = cx.graph() else {
            self.check = Phase::Failed(format!("Sign in first ({}).", StepId::SignIn.step_n()));
            return;
        };
        let deployers = self.deployers.clone();
        self.check = Phase::Running {
            what: "Reading the join and enrollment settings…".into(),
        };
        let devices = cx
            .outcomes
            .import
            .as_ref()
            .map(|j| j.expected_serials().count())
            .filter(|n| *n > 0);
        cx.spawn("Check join permission", move |out, cancel| async move {
            let graph = graph.with_cancel(cancel);
            let r = match step::check_join(&graph, &deployers).await {
                Ok(c) => {
                    let findings = readiness::check_deployers(&graph, &deployers, devices).await;
                    Ok((c, findings))
                }
                Err(e) => Err(e.to_string()),
            };
            send(&out, Msg::Checked(r));
        });
    }

    fn start_fix(&mut self, action: Action, cx: &mut PageCx<'_>) {
        let Some(graph) = cx.graph() else {
            self.fix = Phase::Failed(format!("Sign in first ({}).", StepId::SignIn.step_n()));
            return;
        };
        self.fix = Phase::Running {
            what: format!("{}…", action.label()),
        };
        cx.spawn(action.label(), move |out, cancel| async move {
            let graph = graph.with_cancel(cancel);
            let r = match action {
                Action::TurnOffMfaToJoin => readiness::turn_off_mfa_to_join(&graph).await,
            };
            send(&out, Msg::Fixed(r));
        });
    }

    fn scope_ui(ui: &mut egui::Ui, scope: Option<&Scope>) {
        match scope {
            None => {
                ui.label("No Microsoft Intune entry was found.");
            }
            Some(Scope::Everyone) => {
                ui.label("Everyone (All)");
            }
            Some(Scope::Nobody) => {
                ui.label("Nobody (None)");
            }
            Some(Scope::Unknown(s)) => {
                ui.label(format!("A setting this wizard does not understand: {s}"));
            }
            Some(Scope::Selected { users, groups }) => {
                ui.vertical(|ui| {
                    ui.label("Selected users and groups:");
                    for u in users {
                        ui.label(format!("• {} (user)", u.name));
                    }
                    for g in groups {
                        ui.label(format!("• {} (group)", g.name));
                    }
                    if users.is_empty() && groups.is_empty() {
                        ui.label("• nobody is selected");
                    }
                });
            }
        }
    }

    fn checked_ui(ui: &mut egui::Ui, c: &Checked, fix: &Phase<String>) -> Option<Action> {
        ui.add_space(6.0);
        ui.heading("Tenant settings");
        egui::Grid::new("join-policies")
            .num_columns(2)
            .show(ui, |ui| {
                ui.strong("May join devices to Microsoft Entra");
                Self::scope_ui(ui, Some(&c.policies.join));
                ui.end_row();
                ui.strong("Automatic enrollment (MDM user scope)");
                Self::scope_ui(ui, c.policies.mdm.as_ref());
                ui.end_row();
                ui.strong("Devices per user");
                ui.label(match c.policies.user_device_quota {
                    Some(q) => format!("at most {q} devices per user"),
                    None => "not reported".into(),
                });
                ui.end_row();
            });
        if c.policies.legacy_shape {
            ui.label(
                RichText::new("(The tenant answered in the older policy format; read as such.)")
                    .small(),
            );
        }
        ui.add_space(6.0);
        ui.heading("Coverage");
        let licences = c
            .findings
            .iter()
            .find(|f| f.check == readiness::CHECK_LICENCES);
        egui::Grid::new("join-coverage")
            .num_columns(4)
            .striped(true)
            .show(ui, |ui| {
                ui.strong("Deploying user");
                ui.strong("Join");
                ui.strong("MDM enrollment");
                ui.strong("Licences");
                ui.end_row();
                for r in &c.report.rows {
                    match &r.via {
                        Some(g) => ui.label(format!("{} (from {g})", r.name)),
                        None => ui.label(&r.name),
                    };
                    for cov in [&r.join, &r.mdm] {
                        let (mark, color) = if cov.ok {
                            ("Yes:", ui.visuals().text_color())
                        } else {
                            ("No:", ui.visuals().error_fg_color)
                        };
                        ui.colored_label(color, format!("{mark} {}", cov.why));
                    }
                    match licences.and_then(|f| f.per_user.iter().find(|m| m.user_id == r.user_id))
                    {
                        Some(m) if m.ok => {
                            ui.label(format!("Yes: {}", m.why));
                        }
                        Some(m) => {
                            ui.colored_label(ui.visuals().error_fg_color, format!("No: {}", m.why));
                        }
                        None => {
                            ui.label("not checked");
                        }
                    }
                    ui.end_row();
                }
            });
        ui.add_space(6.0);
        match &c.verdict {
            Ok(()) => {
                ui.label(
                    RichText::new("Every deploying user may join devices and is enrolled in Intune automatically.")
                        .strong()
                        .color(crate::ui::widgets::palette::SUCCESS),
                );
            }
            Err(fixes) => {
                ui.colored_label(ui.visuals().warn_fg_color, "Not ready yet. To fix:");
                for t in fixes {
                    ui.label(format!("• {t}"));
                }
                ui.horizontal(|ui| {
                    ui.hyperlink_to("Open Entra device settings", step::JOIN_SETTING_URL);
                    ui.hyperlink_to("Open Intune automatic enrollment", step::MDM_SETTING_URL);
                });
                ui.label("This wizard never changes who may join or enroll itself.");
            }
        }
        ui.add_space(6.0);
        ui.heading("Before anyone switches a PC on");
        ui.label(
            "What else decides whether these people get through the first setup (OOBE): \
             licences, the registration policy, Conditional Access, enrollment restrictions, \
             the MDM user scope and the sign-in page.",
        );
        let mut action = None;
        for f in &c.findings {
            if let Some(a) = crate::ui::readiness::finding_ui(ui, f, fix.is_running()) {
                action = Some(a);
            }
        }
        match fix {
            Phase::Idle => {}
            Phase::Running { what } => super::widgets::busy(ui, what),
            Phase::Failed(e) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            Phase::Done(t) => {
                ui.colored_label(crate::ui::widgets::palette::SUCCESS, t);
            }
        }
        if c.verdict.is_ok() && !c.ready() {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                "Not ready yet: fix what is marked Failed above, then check again.",
            );
        }
        action
    }
}

impl Page for JoinPermissionPage {
    type Msg = Msg;

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        ui.heading("Who will deploy the devices?");
        ui.label(
            "The people who sign in on a new PC during setup must be allowed to join devices to \
             Microsoft Entra and be in the Intune automatic-enrollment scope. Choose them here \
             (users, or a group of users): both settings are checked as soon as you do.",
        );
        ui.horizontal(|ui| {
            ui.hyperlink_to("Microsoft guide: allow users to join", step::JOIN_DOC_URL);
            ui.hyperlink_to("Microsoft guide: automatic enrollment", step::MDM_DOC_URL);
        });
        ui.add_space(6.0);
        let mut search_now = false;
        ui.horizontal(|ui| {
            let label = ui.label("Search users or groups");
            let r = ui
                .add(egui::TextEdit::singleline(&mut self.search_text).hint_text("name or UPN"))
                .labelled_by(label.id);
            if r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                search_now = true;
            }
            if ui
                .add_enabled(!self.search.is_running(), egui::Button::new("Search"))
                .clicked()
            {
                search_now = true;
            }
        });
        if search_now && !self.search_text.trim().is_empty() {
            self.start_search(cx);
        }
        let mut add = None;
        match &self.search {
            Phase::Idle => {}
            Phase::Running { what } => {
                super::widgets::busy(ui, what);
            }
            Phase::Failed(e) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            Phase::Done(hits) if hits.is_empty() => {
                ui.label("Nothing found. Try the start of a first name, last name or group name.");
            }
            Phase::Done(hits) => {
                for h in hits {
                    if self.deployers.iter().any(|d| d.id() == h.id()) {
                        continue;
                    }
                    if ui.button(format!("Add {}", h.label())).clicked() {
                        add = Some(h.clone());
                    }
                }
            }
        }
        if let Some(d) = add {
            self.deployers.push(d);
            // Ready for the next name.
            self.search_text.clear();
            self.search = Phase::Idle;
            self.deployers_changed(cx);
        }
        ui.add_space(6.0);
        ui.strong("Deploying users and groups");
        if self.deployers.is_empty() {
            ui.label("None chosen yet.");
        }
        let mut remove = None;
        for (i, d) in self.deployers.iter().enumerate() {
            ui.horizontal(|ui| {
                ui.label(d.label());
                if ui.small_button(format!("Remove {}", d.label())).clicked() {
                    remove = Some(i);
                }
            });
        }
        if let Some(i) = remove {
            self.deployers.remove(i);
            self.deployers_changed(cx);
        }
        ui.add_space(6.0);
        let can_check = !self.deployers.is_empty() && !self.check.is_running();
        let label = if matches!(self.check, Phase::Idle) {
            "Check join permission"
        } else {
            "Check again"
        };
        if ui
            .add_enabled(can_check, egui::Button::new(label))
            .clicked()
        {
            self.start_check(cx);
        }
        match &self.check {
            Phase::Idle => {}
            Phase::Running { what } => {
                super::widgets::busy(ui, what);
            }
            Phase::Failed(e) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            Phase::Done(c) => {
                if let Some(a) = Self::checked_ui(ui, c, &self.fix) {
                    self.start_fix(a, cx);
                }
            }
        }
    }

    fn on_msg(&mut self, msg: Msg, cx: &mut PageCx<'_>) {
        match msg {
            Msg::Searched(r) => {
                self.search = match r {
                    Ok(h) => Phase::Done(h),
                    Err(e) => Phase::Failed(e),
                }
            }
            Msg::Checked(_) if std::mem::take(&mut self.recheck) => self.start_check(cx),
            Msg::Checked(Err(e)) => self.check = Phase::Failed(e),
            Msg::Checked(Ok((
                step::JoinCheck {
                    policies,
                    report,
                    verdict,
                },
                findings,
            ))) => {
                let checked = Checked {
                    policies,
                    report,
                    verdict,
                    findings,
                };
                cx.outcomes.join_permission = Some(JoinPermissionOutcome {
                    deployers: self.deployers.clone(),
                    validated: checked.ready(),
                });
                self.check = Phase::Done(checked);
            }
            Msg::Fixed(r) => {
                let ok = r.is_ok();
                self.fix = match r {
                    Ok(t) => Phase::Done(t),
                    Err(e) => Phase::Failed(e),
                };
                // What the fix changed is read again with everything else.
                if ok && !self.check.is_running() {
                    self.start_check(cx);
                }
            }
        }
    }

    fn status(&self) -> StepStatus {
        match &self.check {
            Phase::Idle if self.deployers.is_empty() => StepStatus::NotStarted,
            Phase::Idle | Phase::Running { .. } => StepStatus::InProgress,
            Phase::Done(c) if c.ready() => StepStatus::Done,
            Phase::Done(_) | Phase::Failed(_) => StepStatus::NeedsAttention,
        }
    }

    fn validated(&self) -> bool {
        self.check.done().is_some_and(|c| c.ready())
    }

    fn save_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(Saved {
            deployers: self.deployers.clone(),
        })
        .ok()
    }

    fn load_state(&mut self, state: serde_json::Value) {
        if let Ok(s) = serde_json::from_value::<Saved>(state) {
            self.deployers = s.deployers;
        }
    }

    /// The deployers chosen earlier are checked again as they are.
    fn revalidate(&mut self, cx: &mut PageCx<'_>) {
        if !self.deployers.is_empty() && !self.check.is_running() {
            self.start_check(cx);
        }
    }
}
