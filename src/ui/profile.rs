//! The "Deployment profile" page: pick an existing Autopilot profile or create a user-driven,
//! Microsoft Entra join one; either way the result is read back from Graph before Next.

use egui::{Color32, RichText};

use crate::graph::models::profile::{
    DeploymentMode, DeploymentProfile, JoinType, LANGUAGE_OS_DEFAULT,
};
use crate::steps::profile::{
    self as step, CreateOutcome, FieldError, PickedProfile, ProfileError, ProfileField,
    ProfileForm, ProfileRef, UserAccountType,
};
use crate::ui::{Page, PageCx, Phase, StepStatus};

/// Messages from this page's background jobs. Boxed: they travel inside [`crate::ui::Msg`]
/// beside the other pages' small messages.
#[derive(Debug)]
pub enum Msg {
    Listed(Box<Result<Vec<DeploymentProfile>, ProfileError>>),
    Picked(Box<Result<PickedProfile, ProfileError>>),
    Created(Box<Result<CreateOutcome, ProfileError>>),
    /// Who will be administrator on the PC with the chosen profile (for that profile id).
    LocalAdmin(String, Box<crate::steps::readiness::Finding>),
}

enum Unboxed {
    Listed(Result<Vec<DeploymentProfile>, ProfileError>),
    Picked(Result<PickedProfile, ProfileError>),
    Created(Result<CreateOutcome, ProfileError>),
}

/// What the page settled on, read back from Graph.
#[derive(Debug, Clone, PartialEq)]
pub enum Chosen {
    Picked(PickedProfile),
    Created(CreateOutcome),
}

impl Chosen {
    fn profile(&self) -> &DeploymentProfile {
        match self {
            Chosen::Picked(p) => &p.profile,
            Chosen::Created(c) => &c.profile,
        }
    }

    fn warnings(&self) -> &[String] {
        match self {
            Chosen::Picked(p) => &p.warnings,
            Chosen::Created(c) => &c.warnings,
        }
    }

    /// This wizard sets up user-driven deployment with Microsoft Entra join; any other kind
    /// (self-deploying/kiosk, pre-provisioning-only, hybrid join) cannot carry the next steps.
    pub fn fits(&self) -> bool {
        let p = self.profile();
        p.mode() == DeploymentMode::UserDriven && p.join_type() == JoinType::EntraJoin
    }
}

/// Where the last pick or create was started, so its result shows right there (below the
/// clicked button) and nothing above it moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Origin {
    #[default]
    List,
    Form,
}

/// Value of the language setting that lets the person choose during setup (reference §3.1).
pub const LANGUAGE_USER_SELECT: &str = "user-select";

/// The language list: "Operating system default", "User select", then every language Windows
/// setup offers as a full language pack — the 38 languages of Microsoft's "Available language
/// packs for Windows" (learn.microsoft.com/windows-hardware/manufacture/desktop/
/// available-language-packs-for-windows), with their language/region tags.
pub const LANGUAGES: &[(&str, &str)] = &[
    (LANGUAGE_OS_DEFAULT, "Operating system default"),
    (LANGUAGE_USER_SELECT, "User select"),
    ("ar-SA", "Arabic (Saudi Arabia)"),
    ("bg-BG", "Bulgarian (Bulgaria)"),
    ("zh-CN", "Chinese (Simplified, China)"),
    ("zh-TW", "Chinese (Traditional, Taiwan)"),
    ("hr-HR", "Croatian (Croatia)"),
    ("cs-CZ", "Czech (Czech Republic)"),
    ("da-DK", "Danish (Denmark)"),
    ("nl-NL", "Dutch (Netherlands)"),
    ("en-US", "English (United States)"),
    ("en-GB", "English (United Kingdom)"),
    ("et-EE", "Estonian (Estonia)"),
    ("fi-FI", "Finnish (Finland)"),
    ("fr-CA", "French (Canada)"),
    ("fr-FR", "French (France)"),
    ("de-DE", "German (Germany)"),
    ("el-GR", "Greek (Greece)"),
    ("he-IL", "Hebrew (Israel)"),
    ("hu-HU", "Hungarian (Hungary)"),
    ("it-IT", "Italian (Italy)"),
    ("ja-JP", "Japanese (Japan)"),
    ("ko-KR", "Korean (Korea)"),
    ("lv-LV", "Latvian (Latvia)"),
    ("lt-LT", "Lithuanian (Lithuania)"),
    ("nb-NO", "Norwegian Bokmål (Norway)"),
    ("pl-PL", "Polish (Poland)"),
    ("pt-BR", "Portuguese (Brazil)"),
    ("pt-PT", "Portuguese (Portugal)"),
    ("ro-RO", "Romanian (Romania)"),
    ("ru-RU", "Russian (Russia)"),
    ("sr-Latn-RS", "Serbian (Latin, Serbia)"),
    ("sk-SK", "Slovak (Slovakia)"),
    ("sl-SI", "Slovenian (Slovenia)"),
    ("es-MX", "Spanish (Mexico)"),
    ("es-ES", "Spanish (Spain)"),
    ("sv-SE", "Swedish (Sweden)"),
    ("th-TH", "Thai (Thailand)"),
    ("tr-TR", "Turkish (Türkiye)"),
    ("uk-UA", "Ukrainian (Ukraine)"),
];

fn language_label(value: &str) -> String {
    LANGUAGES
        .iter()
        .find(|(v, _)| *v == value)
        .map(|(_, l)| l.to_string())
        .unwrap_or_else(|| value.to_string())
}

#[derive(Default)]
pub struct ProfilePage {
    list: Phase<Vec<DeploymentProfile>>,
    form: ProfileForm,
    field_errors: Vec<FieldError>,
    /// The pick or create running, or how it failed.
    action: Phase<()>,
    origin: Origin,
    chosen: Option<Chosen>,
    /// Errors Graph gave for a field, with the form they were about: they go when the form
    /// changes.
    rejected: Option<(FieldError, ProfileForm)>,
    /// The profile chosen in an earlier run, until it is read back again.
    saved_choice: Option<String>,
    /// A result just arrived: the page scrolls it into view once (it appears under the button
    /// that caused it, which may be at the bottom of a laptop window).
    reveal: bool,
    /// Who will be administrator on the PC with the chosen profile (Entra's settings read
    /// against the profile's account type).
    local_admin: Phase<crate::steps::readiness::Finding>,
}

const ERROR: Color32 = crate::ui::widgets::palette::ERROR;
const WARN: Color32 = crate::ui::widgets::palette::WARNING;
const GOOD: Color32 = crate::ui::widgets::palette::SUCCESS;

impl ProfilePage {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn form_mut(&mut self) -> &mut ProfileForm {
        &mut self.form
    }

    pub fn chosen(&self) -> Option<&Chosen> {
        self.chosen.as_ref()
    }

    fn load_list(&mut self, cx: &mut PageCx<'_>) {
        let Some(graph) = cx.graph() else { return };
        self.list = Phase::Running {
            what: "Reading the deployment profiles…".into(),
        };
        cx.spawn("Read Autopilot profiles", move |out, cancel| async move {
            let g = graph.with_cancel(cancel);
            let r = step::list_profiles(&g).await;
            out.send(crate::ui::Msg::Profile(Msg::Listed(Box::new(r))));
        });
    }

    fn pick(&mut self, id: String, origin: Origin, cx: &mut PageCx<'_>) {
        let Some(graph) = cx.graph() else { return };
        self.origin = origin;
        self.start_action("Reading the profile back from Graph…", cx);
        cx.spawn("Read Autopilot profile", move |out, cancel| async move {
            let g = graph.with_cancel(cancel);
            let r = step::pick_profile(&g, &id).await;
            out.send(crate::ui::Msg::Profile(Msg::Picked(Box::new(r))));
        });
    }

    fn create(&mut self, cx: &mut PageCx<'_>) {
        let names: Vec<String> = self
            .list
            .done()
            .map(|l| l.iter().map(|p| p.display_name.clone()).collect())
            .unwrap_or_default();
        match step::validate(&self.form, &names) {
            Err(errors) => self.field_errors = errors,
            Ok(valid) => {
                self.field_errors.clear();
                let Some(graph) = cx.graph() else { return };
                self.origin = Origin::Form;
                self.start_action("Creating the profile and reading it back…", cx);
                cx.spawn("Create Autopilot profile", move |out, cancel| async move {
                    let g = graph.with_cancel(cancel);
                    let r = step::create_profile(&g, &valid).await;
                    out.send(crate::ui::Msg::Profile(Msg::Created(Box::new(r))));
                });
            }
        }
    }

    /// A new pick or create replaces the previous choice only once it is read back; until then
    /// nothing is chosen, so Next cannot carry a stale profile forward.
    fn start_action(&mut self, what: &str, cx: &mut PageCx<'_>) {
        self.chosen = None;
        self.local_admin = Phase::Idle;
        cx.outcomes.profile = None;
        self.action = Phase::Running { what: what.into() };
    }

    /// Reads who will be administrator on the PC with the profile just chosen.
    fn check_local_admin(&mut self, cx: &mut PageCx<'_>) {
        let Some(chosen) = &self.chosen else { return };
        let Some(graph) = cx.graph() else { return };
        let profile = chosen.profile();
        let id = profile.id.clone();
        let user_type = profile
            .oobe
            .user_type
            .clone()
            .unwrap_or_else(|| "standard".into());
        self.local_admin = Phase::Running {
            what: "Reading who will be administrator on the PC…".into(),
        };
        cx.spawn("Check local administrator", move |out, cancel| async move {
            let g = graph.with_cancel(cancel);
            let f = crate::steps::readiness::check_local_admin(&g, &user_type).await;
            out.send(crate::ui::Msg::Profile(Msg::LocalAdmin(id, Box::new(f))));
        });
    }

    fn local_admin_ui(&self, ui: &mut egui::Ui) {
        match &self.local_admin {
            Phase::Idle | Phase::Failed(_) => {}
            Phase::Running { what } => crate::ui::widgets::busy(ui, what),
            Phase::Done(f) => {
                ui.add_space(4.0);
                crate::ui::readiness::finding_ui(ui, f, false);
            }
        }
    }

    fn errors_for(&self, field: ProfileField) -> Vec<&str> {
        self.field_errors
            .iter()
            .chain(self.rejected.as_ref().map(|(e, _)| e))
            .filter(|e| e.field == field)
            .map(|e| e.message.as_str())
            .collect()
    }

    /// Live validation once errors show: an error goes as soon as its field is fixed (and no
    /// new ones appear until the next "Create profile").
    fn revalidate(&mut self) {
        if self
            .rejected
            .as_ref()
            .is_some_and(|(_, form)| *form != self.form)
        {
            self.rejected = None;
        }
        if self.field_errors.is_empty() {
            return;
        }
        let names: Vec<String> = self
            .list
            .done()
            .map(|l| l.iter().map(|p| p.display_name.clone()).collect())
            .unwrap_or_default();
        let now = step::validate(&self.form, &names).err().unwrap_or_default();
        let shown: Vec<ProfileField> = self.field_errors.iter().map(|e| e.field).collect();
        self.field_errors = now
            .into_iter()
            .filter(|e| shown.contains(&e.field))
            .collect();
    }

    /// One line that is always there (so the page never jumps): what is chosen, or what is
    /// running.
    fn status_line(&self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let (text, colour) = match (&self.action, &self.chosen) {
                (Phase::Running { what }, _) => {
                    ui.spinner();
                    (what.clone(), ui.visuals().text_color())
                }
                (Phase::Failed(_), _) => (
                    "The last attempt failed; see the message below.".to_string(),
                    ERROR,
                ),
                (_, Some(c)) if c.fits() => (
                    format!(
                        "Chosen: \"{}\" (user-driven, Microsoft Entra join), read back from Graph.",
                        c.profile().display_name
                    ),
                    GOOD,
                ),
                (_, Some(c)) => (
                    format!(
                        "\"{}\" does not fit this wizard; Next stays closed.",
                        c.profile().display_name
                    ),
                    ERROR,
                ),
                (_, None) => (
                    "No profile chosen yet: use one from the list or create one below.".to_string(),
                    ui.visuals().weak_text_color(),
                ),
            };
            ui.add(egui::Label::new(RichText::new(text).color(colour)).truncate());
        });
    }

    /// A field's label, in the error colour while the field has an error: the mark stays at
    /// the field without taking room, the message itself shows beside "Create profile".
    fn field_label(&self, ui: &mut egui::Ui, field: ProfileField, text: &str) -> egui::Response {
        if self.errors_for(field).is_empty() {
            ui.label(text)
        } else {
            ui.label(RichText::new(text).color(ERROR))
        }
    }

    /// Every error of the form, beside the button that found them. Under their fields they
    /// pushed "Create profile" down under the pointer as they appeared (issue 18); here they
    /// only grow the row downwards.
    fn form_errors_ui(&self, ui: &mut egui::Ui) {
        const ORDER: [ProfileField; 5] = [
            ProfileField::Name,
            ProfileField::Description,
            ProfileField::Language,
            ProfileField::DeviceNameTemplate,
            ProfileField::Tenant,
        ];
        let errors: Vec<(ProfileField, &str)> = ORDER
            .iter()
            .flat_map(|f| self.errors_for(*f).into_iter().map(move |m| (*f, m)))
            .collect();
        if errors.is_empty() {
            return;
        }
        ui.vertical(|ui| {
            for (field, m) in errors {
                let text = match field {
                    ProfileField::Tenant => m.to_string(),
                    f => format!("{}: {m}", f.label()),
                };
                ui.add(egui::Label::new(RichText::new(text).color(ERROR)).wrap());
            }
        });
    }

    fn existing_with_form_name(&self) -> Option<&DeploymentProfile> {
        let name = self.form.name.trim();
        self.list.done().and_then(|l| {
            l.iter()
                .find(|p| !name.is_empty() && p.display_name.trim().eq_ignore_ascii_case(name))
        })
    }

    fn existing_ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        ui.heading("Existing profiles");
        let mut pick: Option<String> = None;
        let mut reload = false;
        let busy = self.action.is_running();
        match &self.list {
            Phase::Idle => {
                ui.label("Sign in first to see the profiles of your tenant.");
            }
            Phase::Running { what } => {
                super::widgets::busy(ui, what.as_str());
            }
            Phase::Failed(m) => {
                ui.label(RichText::new(m.as_str()).color(ERROR));
                reload = ui.button("Try again").clicked();
            }
            Phase::Done(list) if list.is_empty() => {
                ui.label("This tenant has no Autopilot deployment profiles yet. Create one below.");
                reload = ui.button("Reload list").clicked();
            }
            Phase::Done(list) => {
                // A fixed-height box: a profile created below joins the list without pushing
                // the form (and the button just clicked) down.
                egui::ScrollArea::vertical()
                    .id_salt("existing_profiles_scroll")
                    .max_height(150.0)
                    .auto_shrink([false, false])
                    .show(ui, |ui| {
                        egui::Grid::new("existing_profiles")
                            .striped(true)
                            .num_columns(5)
                            .show(ui, |ui| {
                                ui.strong("Name");
                                ui.strong("Mode");
                                ui.strong("Join type");
                                ui.strong("Created");
                                ui.label("");
                                ui.end_row();
                                for p in list {
                                    ui.label(p.display_name.as_str());
                                    ui.label(p.mode().label());
                                    ui.label(p.join_type().label());
                                    ui.label(
                                        p.created
                                            .map(|d| d.format("%Y-%m-%d").to_string())
                                            .unwrap_or_default(),
                                    );
                                    if ui
                                        .add_enabled(
                                            !busy,
                                            egui::Button::new(format!(
                                                "Use \"{}\"",
                                                p.display_name
                                            )),
                                        )
                                        .clicked()
                                    {
                                        pick = Some(p.id.clone());
                                    }
                                    ui.end_row();
                                }
                            });
                    });
                reload = ui.button("Reload list").clicked();
            }
        }
        if reload {
            self.load_list(cx);
        }
        if let Some(id) = pick {
            self.pick(id, Origin::List, cx);
        }
    }

    fn form_ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        ui.heading("Create a new profile");
        ui.label(
            "Deployment mode: User-driven. Join to: Microsoft Entra ID. These are fixed by this wizard.",
        );
        ui.add_space(4.0);

        let label = self.field_label(ui, ProfileField::Name, "Name");
        ui.text_edit_singleline(&mut self.form.name)
            .labelled_by(label.id);
        let chosen_id = self.chosen.as_ref().map(|c| c.profile().id.clone());
        if let Some(p) = self
            .existing_with_form_name()
            .filter(|p| Some(&p.id) != chosen_id.as_ref())
        {
            let id = p.id.clone();
            let text = format!("Use the existing profile \"{}\"", p.display_name);
            if ui
                .add_enabled(!self.action.is_running(), egui::Button::new(text))
                .clicked()
            {
                self.field_errors.clear();
                self.pick(id, Origin::Form, cx);
            }
        }

        let label = self.field_label(ui, ProfileField::Description, "Description");
        ui.text_edit_singleline(&mut self.form.description)
            .labelled_by(label.id);

        ui.checkbox(
            &mut self.form.convert_all_targeted,
            ProfileField::ConvertAllTargeted.label(),
        );
        ui.label(
            RichText::new(
                "Registers existing corporate devices in the assigned groups with Autopilot (allow 48 hours). \
                 Turning it off later does not deregister them.",
            )
            .weak(),
        );

        ui.horizontal(|ui| {
            let label =
                self.field_label(ui, ProfileField::Language, ProfileField::Language.label());
            egui::ComboBox::from_id_salt("profile_language")
                .selected_text(language_label(&self.form.language))
                .show_ui(ui, |ui| {
                    for (value, label) in LANGUAGES {
                        ui.selectable_value(&mut self.form.language, value.to_string(), *label);
                    }
                })
                .response
                .labelled_by(label.id);
        });
        ui.checkbox(
            &mut self.form.configure_keyboard_automatically,
            ProfileField::ConfigureKeyboard.label(),
        );
        ui.checkbox(
            &mut self.form.hide_privacy_settings,
            "Hide privacy settings",
        );
        ui.checkbox(
            &mut self.form.hide_eula,
            "Hide Microsoft Software License Terms",
        );
        ui.checkbox(
            &mut self.form.hide_change_account_options,
            ProfileField::ChangeAccountOptions.label(),
        );
        ui.label(
            RichText::new(
                "Hiding change account options needs company branding in Microsoft Entra ID.",
            )
            .weak(),
        );
        ui.horizontal(|ui| {
            ui.label(ProfileField::UserAccountType.label());
            ui.radio_value(
                &mut self.form.user_account_type,
                UserAccountType::Standard,
                "Standard",
            );
            ui.radio_value(
                &mut self.form.user_account_type,
                UserAccountType::Administrator,
                "Administrator",
            );
        });
        ui.checkbox(
            &mut self.form.allow_preprovisioning,
            ProfileField::Preprovisioning.label(),
        );

        let label = self.field_label(
            ui,
            ProfileField::DeviceNameTemplate,
            ProfileField::DeviceNameTemplate.label(),
        );
        ui.text_edit_singleline(&mut self.form.device_name_template)
            .labelled_by(label.id);
        ui.label(
            RichText::new(format!(
                "Optional. Up to 15 characters: letters, digits, hyphens, %SERIAL% (counted as {} characters) and %RAND:x% (x random digits). Example: PC-%RAND:6%.",
                step::SERIAL_WORST_CASE_LEN
            ))
            .weak(),
        );

        ui.add_space(6.0);
        let can_create = !self.action.is_running() && cx.graph().is_some();
        let clicked = ui
            .horizontal_top(|ui| {
                let clicked = ui
                    .add_enabled(can_create, egui::Button::new("Create profile"))
                    .clicked();
                self.form_errors_ui(ui);
                clicked
            })
            .inner;
        if clicked {
            self.create(cx);
        }
    }

    /// What the last pick or create gave, scrolled into view when it is new.
    fn result_ui(&mut self, ui: &mut egui::Ui) {
        // Measured, not wrapped: an empty result must not take any room.
        let top = ui.cursor().min.y;
        self.result_body(ui);
        let bottom = ui.min_rect().max.y;
        if bottom > top && std::mem::take(&mut self.reveal) {
            let shown = egui::Rect::from_x_y_ranges(ui.max_rect().x_range(), top..=bottom);
            ui.scroll_to_rect(shown, None);
        }
    }

    fn result_body(&self, ui: &mut egui::Ui) {
        match &self.action {
            Phase::Running { what } => {
                super::widgets::busy(ui, what.as_str());
            }
            Phase::Failed(m) => {
                ui.label(RichText::new(m.as_str()).color(ERROR));
                // The newer action failed: what the earlier one reported is not the news.
                return;
            }
            _ => {}
        }
        let Some(chosen) = &self.chosen else { return };
        ui.separator();
        let p = chosen.profile();
        match chosen {
            Chosen::Picked(_) => {
                ui.label(
                    RichText::new(format!(
                        "Using the existing profile \"{}\" ({}, {}), read back from Graph.",
                        p.display_name,
                        p.mode().label(),
                        p.join_type().label()
                    ))
                    .color(GOOD),
                );
            }
            Chosen::Created(c) => {
                let head = if c.created {
                    format!("Created the profile \"{}\".", p.display_name)
                } else {
                    format!(
                        "A profile named \"{}\" already exists; it is used instead of creating a second one.",
                        p.display_name
                    )
                };
                ui.label(RichText::new(head).color(GOOD));
                let summary = if c.created {
                    c.comparison.summary()
                } else if c.comparison.all_match() {
                    format!(
                        "Read back from Graph: all {} settings match your form",
                        c.comparison.checks.len()
                    )
                } else {
                    format!(
                        "Read back from Graph: the existing profile differs from your form in {} settings",
                        c.comparison.differences().len()
                    )
                };
                let colour = if c.comparison.all_match() { GOOD } else { WARN };
                ui.label(RichText::new(summary).color(colour));
                let diffs = c.comparison.differences();
                if !diffs.is_empty() {
                    egui::Grid::new("readback_differences")
                        .striped(true)
                        .show(ui, |ui| {
                            ui.strong("Setting");
                            ui.strong("Sent");
                            ui.strong("Read back");
                            ui.end_row();
                            for d in diffs {
                                ui.label(d.setting.as_str());
                                ui.label(d.sent.as_str());
                                ui.label(d.read_back.as_str());
                                ui.end_row();
                            }
                        });
                }
            }
        }
        let colour = if chosen.fits() { WARN } else { ERROR };
        for w in chosen.warnings() {
            ui.label(RichText::new(format!("Warning: {w}")).color(colour));
        }
        if !chosen.fits() {
            ui.label(
                RichText::new(
                    "This profile does not fit: Next stays closed until you use or create a \
                     user-driven, Microsoft Entra join profile.",
                )
                .color(ERROR),
            );
        }
    }
}

impl Page for ProfilePage {
    type Msg = Msg;

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        if matches!(self.list, Phase::Idle) && cx.graph().is_some() {
            self.load_list(cx);
        }
        // The outcome shows below the button that started it; the one status line at the top
        // keeps its height, so nothing under the cursor moves when a result arrives.
        ui.heading("Deployment profile");
        ui.label(
            "Windows Autopilot applies a deployment profile to each registered device. Pick an existing \
             user-driven, Microsoft Entra join profile, or create one.",
        );
        self.revalidate();
        self.status_line(ui);
        ui.add_space(6.0);
        self.existing_ui(ui, cx);
        if self.origin == Origin::List {
            self.result_ui(ui);
            self.local_admin_ui(ui);
        }
        ui.separator();
        self.form_ui(ui, cx);
        if self.origin == Origin::Form {
            self.result_ui(ui);
            self.local_admin_ui(ui);
        }
    }

    fn on_msg(&mut self, msg: Msg, cx: &mut PageCx<'_>) {
        let msg = match msg {
            Msg::Listed(r) => Unboxed::Listed(*r),
            Msg::Picked(r) => Unboxed::Picked(*r),
            Msg::Created(r) => Unboxed::Created(*r),
            Msg::LocalAdmin(id, f) => {
                // Only about the profile still chosen.
                if self.chosen.as_ref().is_some_and(|c| c.profile().id == id) {
                    self.local_admin = Phase::Done(*f);
                }
                return;
            }
        };
        self.reveal |= !matches!(msg, Unboxed::Listed(_));
        match msg {
            Unboxed::Listed(Ok(list)) => self.list = Phase::Done(list),
            Unboxed::Listed(Err(e)) => self.list = Phase::Failed(e.to_string()),
            Unboxed::Picked(Ok(picked)) => {
                let chosen = Chosen::Picked(picked);
                // A profile of the wrong kind is never handed to step 4.
                cx.outcomes.profile = chosen.fits().then(|| ProfileRef::from(chosen.profile()));
                self.action = Phase::Done(());
                self.chosen = Some(chosen);
                self.check_local_admin(cx);
            }
            Unboxed::Created(Ok(outcome)) => {
                cx.outcomes.profile = Chosen::Created(outcome.clone())
                    .fits()
                    .then(|| ProfileRef::from(&outcome.profile));
                // The list is stale now: the new profile belongs in it.
                if let Phase::Done(list) = &mut self.list
                    && !list.iter().any(|p| p.id == outcome.profile.id)
                {
                    list.push(outcome.profile.clone());
                }
                self.action = Phase::Done(());
                self.chosen = Some(Chosen::Created(outcome));
                self.check_local_admin(cx);
            }
            Unboxed::Picked(Err(e)) | Unboxed::Created(Err(e)) => {
                if let ProfileError::Rejected {
                    field: Some(field), ..
                } = &e
                {
                    self.rejected = Some((
                        FieldError {
                            field: *field,
                            message: e.to_string(),
                        },
                        self.form.clone(),
                    ));
                }
                self.action = Phase::Failed(e.to_string());
            }
        }
    }

    fn status(&self) -> StepStatus {
        match (&self.chosen, &self.action) {
            (_, Phase::Running { .. }) => StepStatus::InProgress,
            (_, Phase::Failed(_)) => StepStatus::NeedsAttention,
            (Some(c), _) if !c.fits() || !c.warnings().is_empty() => StepStatus::NeedsAttention,
            (Some(_), _) => StepStatus::Done,
            (None, _) if matches!(self.list, Phase::Failed(_)) => StepStatus::NeedsAttention,
            (None, _) => StepStatus::NotStarted,
        }
    }

    fn validated(&self) -> bool {
        self.chosen.as_ref().is_some_and(Chosen::fits) && !self.action.is_running()
    }

    fn save_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(Saved {
            form: self.form.clone(),
            // A choice that could not be read back yet (offline at start) is kept for next time.
            chosen_id: self
                .chosen
                .as_ref()
                .map(|c| c.profile().id.clone())
                .or_else(|| self.saved_choice.clone()),
        })
        .ok()
    }

    fn load_state(&mut self, state: serde_json::Value) {
        if let Ok(s) = serde_json::from_value::<Saved>(state) {
            self.form = s.form;
            self.saved_choice = s.chosen_id;
        }
    }

    /// The profile chosen last time is read back again (a read: nothing is created).
    fn revalidate(&mut self, cx: &mut PageCx<'_>) {
        if self.chosen.is_some() || self.action.is_running() {
            return;
        }
        let id = self
            .saved_choice
            .clone()
            .or_else(|| cx.outcomes.profile.as_ref().map(|p| p.id.clone()));
        if let Some(id) = id {
            self.pick(id, Origin::List, cx);
        }
    }
}

/// What the page keeps across restarts: the form as typed and which profile was chosen.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
struct Saved {
    form: ProfileForm,
    chosen_id: Option<String>,
}
