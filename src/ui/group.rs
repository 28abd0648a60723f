//! The "Device group" page: pick an existing Entra device group or create one (dynamic by rule,
//! or assigned), read it back, then assign the deployment profile from step 3 to it.

use egui::RichText;

use crate::graph::models::directory::Group;
use crate::steps::group::{
    self as step, CreateOutcome, Field, FieldError, GroupKind, GroupRef, GroupSpec, ReadBack,
    ReadBackPolicy, RuleSpec,
};
use crate::steps::profile::{self, AssignmentOutcome, Conflict};
use crate::ui::{Page, PageCx, Phase, StepId, StepStatus};

/// Messages from this page's background jobs.
#[derive(Debug)]
pub enum Msg {
    Searched(Result<Vec<step::FoundGroup>, String>),
    Created(Result<CreateOutcome, String>),
    ReadBack(Result<ReadBack, String>),
    Assigned(Result<(AssignmentOutcome, Vec<Conflict>), String>),
    /// The assignment this wizard made was removed again (and read back gone).
    Unassigned(Result<(), String>),
}

fn send(out: &crate::ui::Outbox, msg: Msg) {
    out.send(crate::ui::Msg::Group(msg));
}

/// How the page builds the group's membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum MembershipChoice {
    #[default]
    AllAutopilot,
    GroupTags,
    PurchaseOrder,
    Assigned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    #[default]
    Create,
    Existing,
}

/// The form, kept across restarts.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
struct Form {
    mode: Mode,
    name: String,
    description: String,
    membership: MembershipChoice,
    tags: String,
    purchase_order: String,
}

impl Form {
    fn spec(&self) -> GroupSpec {
        let rule = match self.membership {
            MembershipChoice::AllAutopilot => Some(RuleSpec::AllAutopilot),
            MembershipChoice::GroupTags => Some(RuleSpec::GroupTags(
                self.tags
                    .split(',')
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect(),
            )),
            MembershipChoice::PurchaseOrder => Some(RuleSpec::PurchaseOrder(
                self.purchase_order.trim().to_string(),
            )),
            MembershipChoice::Assigned => None,
        };
        GroupSpec {
            display_name: self.name.clone(),
            description: self.description.clone(),
            rule,
        }
    }
}

#[derive(Default)]
pub struct GroupPage {
    form: Form,
    field_errors: Vec<FieldError>,
    search_text: String,
    search: Phase<Vec<step::FoundGroup>>,
    create: Phase<CreateOutcome>,
    /// What the read-back must show.
    expected: Option<GroupKind>,
    read: Phase<ReadBack>,
    read_problem: Option<String>,
    /// Advice about an existing group chosen from search.
    existing_note: Option<String>,
    assign: Phase<(AssignmentOutcome, Vec<Conflict>)>,
    /// "I will remove that assignment in Intune, continue": Next opens although an older
    /// profile wins (step 7 still reports it, it reads the assignments itself).
    acknowledged: bool,
    undo: Phase<()>,
    /// Checking the step again (after a restart or sign-in): once the group reads back, look
    /// up its assignment instead of making one.
    recheck_assignment: bool,
    /// The group is being created with the profile of step 3 at hand: once it reads back as
    /// expected, the profile is assigned to it (one action; both are read back).
    assign_after_read: bool,
}

/// Whether `profile` is still assigned to `group`, and what competes with it. Reads only: a
/// step checked again must not assign what someone removed meanwhile.
async fn read_assignment(
    graph: &crate::graph::GraphClient,
    profile: &crate::steps::profile::ProfileRef,
    group: &GroupRef,
) -> Result<(AssignmentOutcome, Vec<Conflict>), String> {
    let found = profile::assignment_to_group(graph, &profile.id, &group.id)
        .await
        .map_err(|e| e.to_string())?;
    let Some(assignment_id) = found else {
        return Err(format!(
            "The profile \"{}\" is no longer assigned to this group (it may have been removed \
             in Intune). Assign it again below.",
            profile.display_name
        ));
    };
    let conflicts = profile::conflicts_for_group(graph, &group.id, &profile.id)
        .await
        .map_err(|e| e.to_string())?;
    Ok((
        AssignmentOutcome::AlreadyAssigned { assignment_id },
        conflicts,
    ))
}

fn field_error(ui: &mut egui::Ui, errors: &[FieldError], field: Field) {
    for e in errors.iter().filter(|e| e.field == field) {
        ui.colored_label(ui.visuals().error_fg_color, &e.message);
    }
}

fn running(ui: &mut egui::Ui, what: &str) {
    super::widgets::busy(ui, what);
}

impl GroupPage {
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
            what: "Searching groups…".into(),
        };
        cx.spawn("Search groups", move |out, cancel| async move {
            let graph = graph.with_cancel(cancel);
            let r = step::search_device_groups(&graph, &text)
                .await
                .map_err(|e| e.to_string());
            send(&out, Msg::Searched(r));
        });
    }

    fn start_create(&mut self, cx: &mut PageCx<'_>) {
        let spec = self.form.spec();
        self.field_errors = step::check_spec(&spec);
        if !self.field_errors.is_empty() {
            return;
        }
        let Some(graph) = cx.graph() else {
            self.create = Phase::Failed(format!("Sign in first ({}).", StepId::SignIn.step_n()));
            return;
        };
        // check_spec passed, so the rule builds.
        self.expected = spec.expected_kind().ok();
        self.create = Phase::Running {
            what: "Creating the group…".into(),
        };
        // The assignment and its messages were about the group shown before.
        self.read = Phase::Idle;
        self.assign = Phase::Idle;
        self.undo = Phase::Idle;
        self.acknowledged = false;
        cx.spawn("Create device group", move |out, cancel| async move {
            let graph = graph.with_cancel(cancel);
            let r = step::create_group(&graph, &spec)
                .await
                .map_err(|e| e.to_string());
            send(&out, Msg::Created(r));
        });
    }

    fn start_read_back(&mut self, cx: &mut PageCx<'_>, id: String) {
        let Some(graph) = cx.graph() else {
            self.read = Phase::Failed(format!("Sign in first ({}).", StepId::SignIn.step_n()));
            return;
        };
        self.read = Phase::Running {
            what: "Reading the group back from Microsoft Entra (a new group can take up to half a minute to appear)…".into(),
        };
        self.read_problem = None;
        self.assign = Phase::Idle;
        cx.spawn("Read the group back", move |out, cancel| async move {
            let graph = graph.with_cancel(cancel);
            let r = step::read_back(&graph, &id, ReadBackPolicy::default())
                .await
                .map_err(|e| e.to_string());
            send(&out, Msg::ReadBack(r));
        });
    }

    fn use_existing(&mut self, cx: &mut PageCx<'_>, g: &Group) {
        match step::assess_existing(g) {
            Err(why) => {
                self.existing_note = Some(why);
            }
            Ok(note) => {
                self.existing_note = note;
                // Another group: the assignment made (or removed) for the one before, and what
                // was said about it, do not carry over.
                if self.read.done().is_none_or(|r| r.group.id != g.id) {
                    self.assign = Phase::Idle;
                    self.undo = Phase::Idle;
                    self.acknowledged = false;
                    self.create = Phase::Idle;
                }
                self.expected = Some(GroupRef::from_group(g).kind);
                self.start_read_back(cx, g.id.clone());
            }
        }
    }

    fn start_assign(&mut self, cx: &mut PageCx<'_>) {
        let (Some(graph), Some(profile), Some(group)) = (
            cx.graph(),
            cx.outcomes.profile.clone(),
            self.read.done().map(|r| r.group.clone()),
        ) else {
            return;
        };
        self.acknowledged = false;
        self.undo = Phase::Idle;
        self.assign = Phase::Running {
            what: format!(
                "Assigning \"{}\" to \"{}\"…",
                profile.display_name, group.display_name
            ),
        };
        cx.spawn("Assign the profile", move |out, cancel| async move {
            let graph = graph.with_cancel(cancel);
            let r = profile::assign_and_check(&graph, &profile.id, &group.id)
                .await
                .map_err(|e| e.to_string());
            send(&out, Msg::Assigned(r));
        });
    }

    /// Deletes the assignment this wizard created (never one it found), then reads back.
    fn start_undo(&mut self, cx: &mut PageCx<'_>) {
        let (Some(graph), Some(profile)) = (cx.graph(), cx.outcomes.profile.clone()) else {
            return;
        };
        let Some((AssignmentOutcome::Created { assignment_id }, _)) = self.assign.done() else {
            return;
        };
        let assignment_id = assignment_id.clone();
        self.undo = Phase::Running {
            what: "Removing the assignment this wizard made…".into(),
        };
        cx.spawn("Undo the assignment", move |out, cancel| async move {
            let graph = graph.with_cancel(cancel);
            let r = profile::remove_assignment(&graph, &profile.id, &assignment_id)
                .await
                .map_err(|e| e.to_string());
            send(&out, Msg::Unassigned(r));
        });
    }

    /// An older profile reaches the group's devices and wins over ours.
    fn older_profile_wins(&self) -> bool {
        self.assign
            .done()
            .is_some_and(|(_, conflicts)| conflicts.iter().any(|c| c.other_wins))
    }

    /// Whether the profile of step 3 is still assigned to the group, and what competes with it.
    fn start_assignment_check(&mut self, cx: &mut PageCx<'_>) {
        let (Some(graph), Some(profile), Some(group)) = (
            cx.graph(),
            cx.outcomes.profile.clone(),
            self.read.done().map(|r| r.group.clone()),
        ) else {
            return;
        };
        self.assign = Phase::Running {
            what: format!(
                "Checking that \"{}\" is still assigned to \"{}\"…",
                profile.display_name, group.display_name
            ),
        };
        cx.spawn(
            "Check the profile assignment",
            move |out, cancel| async move {
                let graph = graph.with_cancel(cancel);
                let r = read_assignment(&graph, &profile, &group).await;
                send(&out, Msg::Assigned(r));
            },
        );
    }

    /// A field's message goes as soon as the field is right: the form is checked again as the
    /// user types, and only the messages already shown may stay.
    fn recheck_field_errors(&mut self) {
        if self.field_errors.is_empty() {
            return;
        }
        let shown: Vec<Field> = self.field_errors.iter().map(|e| e.field).collect();
        self.field_errors = step::check_spec(&self.form.spec())
            .into_iter()
            .filter(|e| shown.contains(&e.field))
            .collect();
    }

    fn create_form_ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        self.recheck_field_errors();
        egui::Grid::new("group-form").num_columns(2).show(ui, |ui| {
            let l = ui.label("Group name");
            ui.vertical(|ui| {
                ui.add(
                    egui::TextEdit::singleline(&mut self.form.name)
                        .hint_text("Autopilot - Contoso laptops"),
                )
                .labelled_by(l.id);
                field_error(ui, &self.field_errors, Field::DisplayName);
            });
            ui.end_row();
            let l = ui.label("Description");
            ui.text_edit_singleline(&mut self.form.description)
                .labelled_by(l.id);
            ui.end_row();
        });
        ui.label("Which devices belong to the group?");
        let m = &mut self.form.membership;
        ui.radio_value(
            m,
            MembershipChoice::AllAutopilot,
            "Every Autopilot device (dynamic)",
        );
        ui.radio_value(
            m,
            MembershipChoice::GroupTags,
            "Devices with these group tags (dynamic)",
        );
        ui.radio_value(
            m,
            MembershipChoice::PurchaseOrder,
            "Devices from one purchase order (dynamic)",
        );
        ui.radio_value(
            m,
            MembershipChoice::Assigned,
            "Devices I add by hand (assigned)",
        );
        match self.form.membership {
            MembershipChoice::GroupTags => {
                ui.horizontal(|ui| {
                    let l = ui.label("Group tags (comma-separated)");
                    ui.text_edit_singleline(&mut self.form.tags)
                        .labelled_by(l.id);
                });
                field_error(ui, &self.field_errors, Field::GroupTags);
            }
            MembershipChoice::PurchaseOrder => {
                ui.horizontal(|ui| {
                    let l = ui.label("Purchase order");
                    ui.text_edit_singleline(&mut self.form.purchase_order)
                        .labelled_by(l.id);
                });
                field_error(ui, &self.field_errors, Field::PurchaseOrder);
            }
            MembershipChoice::Assigned => {
                ui.label(
                    "Each device must be added after its import has finished (the Entra device \
                     object appears only then). Dynamic groups do this by themselves.",
                );
            }
            MembershipChoice::AllAutopilot => {}
        }
        if let Some(rule) = &self.form.spec().rule {
            match step::build_rule(rule) {
                Ok(text) => {
                    ui.label(format!("Rule: {text}"));
                }
                Err(e) if !self.field_errors.contains(&e) => {
                    ui.label(RichText::new(format!("Rule: {}", e.message)).weak());
                }
                Err(_) => {}
            }
        }
        // The group exists to receive the profile: with one at hand, both happen on one click.
        let label = if cx.outcomes.profile.is_some() {
            "Create group and assign the profile"
        } else {
            "Create group"
        };
        if ui
            .add_enabled(!self.create.is_running(), egui::Button::new(label))
            .clicked()
        {
            self.assign_after_read = cx.outcomes.profile.is_some();
            self.start_create(cx);
        }
        match &self.create {
            Phase::Idle | Phase::Done(CreateOutcome::Created(_)) => {}
            Phase::Running { what } => running(ui, what),
            Phase::Failed(e) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            Phase::Done(CreateOutcome::Exists(g)) => {
                let g = g.clone();
                ui.label(format!(
                    "A group named \"{}\" already exists, so no second one was created.",
                    g.name()
                ));
                if ui.button("Use the existing group").clicked() {
                    self.use_existing(cx, &g);
                }
            }
        }
    }

    fn existing_ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        let mut search_now = false;
        ui.horizontal(|ui| {
            let l = ui.label("Search groups");
            let r = ui
                .text_edit_singleline(&mut self.search_text)
                .labelled_by(l.id);
            if r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                search_now = true;
            }
            if ui
                .add_enabled(!self.search.is_running(), egui::Button::new("Find groups"))
                .clicked()
            {
                search_now = true;
            }
        });
        if search_now {
            self.start_search(cx);
        }
        let mut pick = None;
        match &self.search {
            Phase::Idle => {}
            Phase::Running { what } => running(ui, what),
            Phase::Failed(e) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            Phase::Done(groups) if groups.is_empty() => {
                ui.label("No group found. Try the start of a word of its name, or create one.");
            }
            Phase::Done(groups) => {
                let (fit, unfit): (Vec<&step::FoundGroup>, Vec<&step::FoundGroup>) =
                    groups.iter().partition(|g| g.problem.is_none());
                if fit.is_empty() {
                    ui.label("None of the groups found can hold devices. Create one instead.");
                }
                for g in fit {
                    let g = &g.group;
                    ui.horizontal(|ui| {
                        if ui.button(format!("Use {}", g.name())).clicked() {
                            pick = Some(g.clone());
                        }
                        let kind = if g.is_dynamic() {
                            "dynamic"
                        } else {
                            "assigned"
                        };
                        ui.label(RichText::new(kind).weak());
                    });
                }
                if !unfit.is_empty() {
                    ui.label(RichText::new("Not device groups (cannot be used):").weak());
                    for g in unfit {
                        let why = g.problem.clone().unwrap_or_default();
                        ui.label(RichText::new(format!("Not usable: {why}")).weak());
                    }
                }
            }
        }
        if let Some(g) = pick {
            self.use_existing(cx, &g);
        }
    }

    fn read_ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        if let Some(note) = &self.existing_note {
            ui.colored_label(ui.visuals().warn_fg_color, note);
        }
        let mut retry = None;
        match &self.read {
            Phase::Idle => return,
            Phase::Running { what } => {
                running(ui, what);
                return;
            }
            Phase::Failed(e) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
                if let Some(CreateOutcome::Created(g)) = self.create.done() {
                    retry = Some(g.id.clone());
                }
            }
            Phase::Done(r) => {
                ui.heading("The group, as Microsoft Entra has it");
                ui.label(format!("Group: {}", r.group.display_name));
                match &r.group.kind {
                    GroupKind::Dynamic { rule } => {
                        ui.label("Membership: dynamic");
                        ui.label(format!("Rule: {rule}"));
                        ui.label(format!(
                            "Processing: {}{}",
                            r.processing_state.as_deref().unwrap_or("not reported"),
                            r.processing_status
                                .as_deref()
                                .map(|s| format!(" (last evaluation: {s})"))
                                .unwrap_or_default()
                        ));
                    }
                    GroupKind::Static => {
                        ui.label("Membership: assigned (devices are added by hand)");
                    }
                }
                match &self.read_problem {
                    Some(p) => {
                        ui.colored_label(ui.visuals().error_fg_color, p);
                    }
                    None => {
                        ui.label("Read back from Microsoft Entra and as expected.");
                    }
                }
            }
        }
        if let Some(id) = retry
            && ui.button("Read the group again").clicked()
        {
            self.start_read_back(cx, id);
        }
    }

    fn assign_ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        if self.read.done().is_none() || self.read_problem.is_some() {
            return;
        }
        ui.add_space(8.0);
        ui.heading("Assign the deployment profile");
        let Some(p) = cx.outcomes.profile.clone() else {
            ui.label(format!(
                "Choose or create a deployment profile in {} first; then come back here.",
                StepId::Profile.step_n()
            ));
            return;
        };
        match &self.assign {
            Phase::Running { what } => running(ui, what),
            Phase::Failed(e) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            Phase::Done((outcome, conflicts)) => {
                let what = match outcome {
                    AssignmentOutcome::Created { .. } => "assigned",
                    AssignmentOutcome::AlreadyAssigned { .. } => "was already assigned",
                };
                ui.label(format!(
                    "Profile \"{}\" {what} to this group; confirmed by reading the assignments back.",
                    p.display_name
                ));
                for c in conflicts {
                    let color = if c.other_wins {
                        ui.visuals().error_fg_color
                    } else {
                        ui.visuals().warn_fg_color
                    };
                    ui.colored_label(color, &c.explanation);
                }
            }
            Phase::Idle => {}
        }
        let mut undo = false;
        if self.older_profile_wins() {
            ui.label(
                "Next stays closed while an older profile wins. Remove that assignment in Intune and \
                 assign again to re-check, or continue and fix it there (the Validate step keeps \
                 reporting it until it is fixed).",
            );
            ui.checkbox(
                &mut self.acknowledged,
                "I will remove that assignment in Intune, continue",
            );
        }
        // A wrong group is undone where it was made, whatever else the assignment found.
        if matches!(
            self.assign.done(),
            Some((AssignmentOutcome::Created { .. }, _))
        ) && !matches!(self.undo, Phase::Done(()))
        {
            undo = ui
                .add_enabled(
                    !self.undo.is_running(),
                    egui::Button::new("Undo: remove the assignment this wizard made"),
                )
                .clicked();
        }
        match &self.undo {
            Phase::Running { what } => running(ui, what),
            Phase::Failed(e) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            Phase::Done(()) => {
                ui.label(format!(
                    "Removed the assignment of \"{}\" that this wizard made; read back, it is gone.",
                    p.display_name
                ));
            }
            Phase::Idle => {}
        }
        if undo {
            self.start_undo(cx);
        }
        if !self.assign.is_running()
            && ui
                .button(format!("Assign profile \"{}\"", p.display_name))
                .clicked()
        {
            self.start_assign(cx);
        }
    }
}

impl Page for GroupPage {
    type Msg = Msg;

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        ui.heading("Device group");
        ui.label(
            "Autopilot profiles are assigned to a Microsoft Entra group of devices. A dynamic \
             group collects registered devices by itself; an assigned group needs each device \
             added by hand.",
        );
        ui.horizontal(|ui| {
            ui.radio_value(&mut self.form.mode, Mode::Create, "Create a new group");
            ui.radio_value(&mut self.form.mode, Mode::Existing, "Use an existing group");
        });
        ui.add_space(6.0);
        match self.form.mode {
            Mode::Create => self.create_form_ui(ui, cx),
            Mode::Existing => self.existing_ui(ui, cx),
        }
        ui.add_space(6.0);
        self.read_ui(ui, cx);
        self.assign_ui(ui, cx);
    }

    fn on_msg(&mut self, msg: Msg, cx: &mut PageCx<'_>) {
        match msg {
            Msg::Searched(r) => {
                self.search = match r {
                    Ok(g) => Phase::Done(g),
                    Err(e) => Phase::Failed(e),
                }
            }
            Msg::Created(Err(e)) => {
                self.assign_after_read = false;
                self.create = Phase::Failed(e)
            }
            Msg::Created(Ok(outcome)) => {
                if let CreateOutcome::Created(g) = &outcome {
                    self.existing_note = None;
                    let id = g.id.clone();
                    self.create = Phase::Done(outcome);
                    self.start_read_back(cx, id);
                } else {
                    // Another group of that name exists: whether to use it is asked first.
                    self.assign_after_read = false;
                    self.create = Phase::Done(outcome);
                }
            }
            Msg::ReadBack(Err(e)) => {
                self.recheck_assignment = false;
                self.assign_after_read = false;
                self.read = Phase::Failed(e)
            }
            Msg::ReadBack(Ok(r)) => {
                let expected = self
                    .expected
                    .clone()
                    .unwrap_or_else(|| r.group.kind.clone());
                self.read_problem = step::validate(&r, &expected).err();
                if self.read_problem.is_none() {
                    cx.outcomes.group = Some(r.group.clone());
                }
                self.read = Phase::Done(r);
                let assign = std::mem::take(&mut self.assign_after_read);
                if std::mem::take(&mut self.recheck_assignment) && self.read_problem.is_none() {
                    self.start_assignment_check(cx);
                } else if assign && self.read_problem.is_none() {
                    self.start_assign(cx);
                }
            }
            Msg::Assigned(r) => {
                self.assign = match r {
                    Ok(v) => Phase::Done(v),
                    Err(e) => Phase::Failed(e),
                }
            }
            Msg::Unassigned(Ok(())) => {
                self.undo = Phase::Done(());
                self.assign = Phase::Idle;
                self.acknowledged = false;
            }
            Msg::Unassigned(Err(e)) => self.undo = Phase::Failed(e),
        }
    }

    fn status(&self) -> StepStatus {
        // An older profile wins: Next opens only after the acknowledgement, and the stepper
        // flags the step either way (the fix is in Intune).
        if self.older_profile_wins() {
            return StepStatus::NeedsAttention;
        }
        if self.validated() {
            return StepStatus::Done;
        }
        let failed = matches!(self.create, Phase::Failed(_))
            || matches!(self.read, Phase::Failed(_))
            || matches!(self.assign, Phase::Failed(_))
            || self.read_problem.is_some();
        if failed {
            StepStatus::NeedsAttention
        } else if matches!(self.create, Phase::Idle) && matches!(self.read, Phase::Idle) {
            StepStatus::NotStarted
        } else {
            StepStatus::InProgress
        }
    }

    fn validated(&self) -> bool {
        self.read.done().is_some()
            && self.read_problem.is_none()
            && self.assign.done().is_some()
            && (!self.older_profile_wins() || self.acknowledged)
    }

    fn save_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(SavedGroupPage {
            form: self.form.clone(),
            acknowledged: self.acknowledged,
        })
        .ok()
    }

    fn load_state(&mut self, state: serde_json::Value) {
        // Older saves hold the bare form.
        if let Ok(s) = serde_json::from_value::<SavedGroupPage>(state.clone()) {
            self.form = s.form;
            self.acknowledged = s.acknowledged;
        } else if let Ok(f) = serde_json::from_value::<Form>(state) {
            self.form = f;
        }
    }

    /// The group chosen last time is read back, then its assignment looked up (reads only).
    fn revalidate(&mut self, cx: &mut PageCx<'_>) {
        let Some(group) = cx.outcomes.group.clone() else {
            return;
        };
        if self.read.is_running() || self.create.is_running() || self.assign.is_running() {
            return;
        }
        self.expected = Some(group.kind.clone());
        self.recheck_assignment = true;
        self.start_read_back(cx, group.id);
    }
}

/// What the page keeps across restarts: the form, and the person's explicit "I will remove that
/// assignment in Intune" (a decision, not a read-back: the conflict itself is read again).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SavedGroupPage {
    form: Form,
    acknowledged: bool,
}
