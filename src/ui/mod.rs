//! One page per wizard step plus shared widgets. Pages call [`crate::steps`]; they never talk to
//! Graph themselves and never block: work runs as a [`Job`] on tokio and comes back as a [`Msg`].
//!
//! The contract every page follows:
//! - `ui(&mut self, ui, cx)` draws the page; to start work it calls [`PageCx::spawn`] with a
//!   future built from a `steps` function, which sends the result back as a [`Msg`].
//! - `on_msg(&mut self, msg, cx)` takes the page's own messages (the app routes them).
//! - `status()` feeds the stepper; `validated()` enables Next. Validation means the step's
//!   result was read back from Graph and matched.

use std::future::Future;

use tokio_util::sync::CancellationToken;

use crate::graph::GraphClient;
use crate::steps::Outcomes;

pub mod assignment;
pub mod esp;
pub mod group;
pub mod harvest;
pub mod import;
pub mod join_permission;
pub mod profile;
pub mod sign_in;
pub mod validate;
pub mod widgets;

/// The steps of the procedure, in order. Only steps that exist as pages are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum StepId {
    SignIn,
    JoinPermission,
    Profile,
    Group,
    Import,
    Assignment,
    Validate,
}

impl StepId {
    /// The steps that exist as pages today, in order (a step joins this list when its page
    /// does its job against Graph; no step is shown before its page works).
    pub const ALL: &'static [StepId] = &[
        StepId::SignIn,
        StepId::JoinPermission,
        StepId::Profile,
        StepId::Group,
        StepId::Import,
        StepId::Assignment,
        StepId::Validate,
    ];

    pub fn title(self) -> &'static str {
        match self {
            StepId::SignIn => "Sign in",
            StepId::JoinPermission => "Join permission",
            StepId::Profile => "Deployment profile",
            StepId::Group => "Device group",
            StepId::Import => "Import devices",
            StepId::Assignment => "Profile assignment",
            StepId::Validate => "Validate",
        }
    }

    /// Microsoft's documentation for the step, shown next to Back / Next.
    pub fn doc_url(self) -> &'static str {
        match self {
            StepId::SignIn => "https://learn.microsoft.com/graph/auth-v2-user",
            StepId::JoinPermission => {
                "https://learn.microsoft.com/autopilot/tutorial/user-driven/azure-ad-join-allow-users-to-join"
            }
            StepId::Profile => "https://learn.microsoft.com/autopilot/profiles",
            StepId::Group => "https://learn.microsoft.com/autopilot/enrollment-autopilot",
            StepId::Import => "https://learn.microsoft.com/autopilot/add-devices",
            StepId::Assignment => {
                "https://learn.microsoft.com/autopilot/tutorial/user-driven/azure-ad-join-assign-autopilot-profile"
            }
            StepId::Validate => {
                "https://learn.microsoft.com/autopilot/tutorial/user-driven/azure-ad-join-verify-autopilot-profile-assignment"
            }
        }
    }
}

/// Where a step stands, as the stepper shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum StepStatus {
    #[default]
    NotStarted,
    InProgress,
    Done,
    NeedsAttention,
}

/// Messages from background jobs back to the page that started them. One variant per page;
/// each page defines its own message enum.
#[derive(Debug)]
// A handful of messages per user action: their size does not matter, boxing would cost
// every page an allocation and a less direct `match`.
#[allow(clippy::large_enum_variant)]
pub enum Msg {
    SignIn(sign_in::Msg),
    JoinPermission(join_permission::Msg),
    Profile(profile::Msg),
    Group(group::Msg),
    Import(import::Msg),
    Assignment(assignment::Msg),
    Validate(validate::Msg),
}

impl Msg {
    /// The page this message belongs to (the app routes by it).
    pub fn step(&self) -> StepId {
        match self {
            Msg::SignIn(_) => StepId::SignIn,
            Msg::JoinPermission(_) => StepId::JoinPermission,
            Msg::Profile(_) => StepId::Profile,
            Msg::Group(_) => StepId::Group,
            Msg::Import(_) => StepId::Import,
            Msg::Assignment(_) => StepId::Assignment,
            Msg::Validate(_) => StepId::Validate,
        }
    }
}

/// Sends messages to the UI thread and wakes it up, so results show without mouse movement.
#[derive(Clone)]
pub struct Outbox {
    tx: std::sync::mpsc::Sender<Msg>,
    ctx: egui::Context,
}

impl Outbox {
    pub fn new(tx: std::sync::mpsc::Sender<Msg>, ctx: egui::Context) -> Self {
        Outbox { tx, ctx }
    }

    pub fn send(&self, msg: Msg) {
        // The receiver is gone only when the app is closing; nothing to do then.
        let _ = self.tx.send(msg);
        self.ctx.request_repaint();
    }
}

/// Work a page asked for; the app spawns it on the tokio runtime.
pub struct Job {
    pub label: String,
    pub cancel: CancellationToken,
    #[allow(clippy::type_complexity)]
    pub run: Box<dyn FnOnce(Outbox) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send>,
}

/// Runtime context that is not persisted: the signed-in Graph client and who is signed in.
#[derive(Default)]
pub struct Session {
    pub graph: Option<GraphClient>,
    /// True when talking to the built-in simulated tenant (shown as a banner).
    pub simulated: bool,
}

/// What a page gets while drawing or handling a message.
pub struct PageCx<'a> {
    pub session: &'a mut Session,
    /// Results of the steps, persisted across restarts (never secrets).
    pub outcomes: &'a mut Outcomes,
    jobs: &'a mut Vec<Job>,
    file_picker: Option<std::sync::Arc<dyn FilePicker>>,
    harvester: Option<std::sync::Arc<dyn crate::hwid::harvest::WmiSource>>,
}

impl<'a> PageCx<'a> {
    pub fn new(
        session: &'a mut Session,
        outcomes: &'a mut Outcomes,
        jobs: &'a mut Vec<Job>,
    ) -> Self {
        PageCx {
            session,
            outcomes,
            jobs,
            file_picker: None,
            harvester: None,
        }
    }

    /// Where "Add this PC" reads this PC's hardware hash; `None` (the default) hides the button:
    /// harvesting cannot work here (not Windows, or no MDM bridge).
    pub fn with_harvester(
        mut self,
        harvester: Option<std::sync::Arc<dyn crate::hwid::harvest::WmiSource>>,
    ) -> Self {
        self.harvester = harvester;
        self
    }

    pub fn harvester(&self) -> Option<std::sync::Arc<dyn crate::hwid::harvest::WmiSource>> {
        self.harvester.clone()
    }

    /// Uses `picker` for [`PageCx::file_picker`] (the app passes its configured one; tests a
    /// [`FixedFilePicker`]).
    pub fn with_file_picker(mut self, picker: std::sync::Arc<dyn FilePicker>) -> Self {
        self.file_picker = Some(picker);
        self
    }

    /// The file picker to call from inside a job (`picker.pick_files(..).await`). Without one
    /// set, the system dialog ([`RfdFilePicker`]).
    pub fn file_picker(&self) -> std::sync::Arc<dyn FilePicker> {
        self.file_picker
            .clone()
            .unwrap_or_else(|| std::sync::Arc::new(RfdFilePicker))
    }

    /// The signed-in client, if any.
    pub fn graph(&self) -> Option<GraphClient> {
        self.session.graph.clone()
    }

    /// Queues `work` to run on tokio. The returned token cancels it (pass it to
    /// `GraphClient::with_cancel` inside the job so requests stop too).
    pub fn spawn<F, Fut>(&mut self, label: impl Into<String>, work: F) -> CancellationToken
    where
        F: FnOnce(Outbox, CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        self.jobs.push(Job {
            label: label.into(),
            cancel: cancel.clone(),
            run: Box::new(move |out| Box::pin(work(out, token))),
        });
        cancel
    }
}

/// A page of the wizard.
pub trait Page {
    type Msg;
    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>);
    fn on_msg(&mut self, msg: Self::Msg, cx: &mut PageCx<'_>);
    fn status(&self) -> StepStatus;
    /// The step's result was read back from Graph and matched: Next may be enabled.
    fn validated(&self) -> bool;

    /// Called every frame for every page, shown or not, before the current page draws: work
    /// that keeps the page's read-back fresh (automatic re-checks) so `status()` and
    /// `validated()` never describe an old state while the person is on another page.
    fn tick(&mut self, _ctx: &egui::Context, _cx: &mut PageCx<'_>) {}

    /// The form state worth keeping across restarts (what the user typed or chose; never
    /// secrets, never Graph results that must be read again). `None`: nothing to keep.
    fn save_state(&self) -> Option<serde_json::Value> {
        None
    }

    /// Restores what [`Page::save_state`] returned in an earlier run. Must accept older shapes
    /// (use `#[serde(default)]`) and ignore what it cannot read.
    fn load_state(&mut self, _state: serde_json::Value) {}

    /// Reads the step's result back from Graph again without anyone clicking (what was restored
    /// from an earlier run, or what a new sign-in may see differently), showing its progress as
    /// usual. The app calls it once per sign-in, in step order, as soon as every step before this
    /// one validated; a page with nothing to check again does nothing.
    fn revalidate(&mut self, _cx: &mut PageCx<'_>) {}
}

// The file pickers live in `widgets` (open and save, with "no dialog" told apart from
// "cancelled"); re-exported here where pages and the app have always found them.
pub use widgets::{
    FilePicker, FixedFilePicker, NoDialog, NoDialogPicker, Picked, PickedFiles, RfdFilePicker,
};

/// The phase of a page's running work. `T` is what a finished run produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Phase<T> {
    #[default]
    Idle,
    Running {
        what: String,
    },
    Done(T),
    Failed(String),
}

impl<T> Phase<T> {
    pub fn is_running(&self) -> bool {
        matches!(self, Phase::Running { .. })
    }

    pub fn done(&self) -> Option<&T> {
        match self {
            Phase::Done(t) => Some(t),
            _ => None,
        }
    }
}
