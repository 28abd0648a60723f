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
pub mod readiness;
pub mod removal;
pub mod sign_in;
pub mod validate;
pub mod widgets;

// The steps are declared once, in `steps` (the procedure); pages have always found them here.
pub use crate::steps::StepId;

/// Where a step stands, as the stepper shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum StepStatus {
    #[default]
    NotStarted,
    InProgress,
    Done,
    NeedsAttention,
}

/// What the app hands a page when it builds it: where it signs in, how fast the simulated
/// tenant runs (its service-side waits shrink with it).
#[derive(Clone)]
pub struct PageEnv {
    pub sign_in: sign_in::SignInConfig,
    /// The simulated tenant's speed, when the app talks to one running in this process.
    pub sim_speed: Option<crate::sim::Speed>,
}

/// Declares the pages: one entry per step that has one, `Step => module::Page { new: |env|
/// …, start: |page, cx| … }` (`start`, optional, runs once before the page's first frame).
/// Generates [`Msg`] (one variant per page, holding `module::Msg`), [`Msg::step`] and
/// [`make_page`].
macro_rules! pages {
    ($(
        $id:ident => $module:ident :: $page:ident {
            new: $new:expr
            $(, start: $start:expr)? $(,)?
        }
    ),* $(,)?) => {
        /// Messages from background jobs back to the page that started them. One variant per
        /// page; each page defines its own message enum.
        #[derive(Debug)]
        // A handful of messages per user action: their size does not matter, boxing would cost
        // every page an allocation and a less direct `match`.
        #[allow(clippy::large_enum_variant)]
        pub enum Msg {
            $($id($module::Msg),)*
        }

        impl Msg {
            /// The page this message belongs to (the app routes by it).
            pub fn step(&self) -> StepId {
                match self {
                    $(Msg::$id(_) => StepId::$id,)*
                }
            }
        }

        /// The page of `step`, built for `env`; `None` while the step has no page.
        pub fn make_page(step: StepId, env: &PageEnv) -> Option<Box<dyn Slot>> {
            #[allow(unreachable_patterns)]
            match step {
                $(StepId::$id => {
                    let new: fn(&PageEnv) -> $module::$page = $new;
                    #[allow(unused_mut)]
                    let mut slot = PageSlot::new(step, new(env), |m| match m {
                        Msg::$id(m) => Some(m),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    });
                    $(slot.start = $start;)?
                    Some(Box::new(slot))
                })*
                _ => None,
            }
        }
    };
}

pages! {
    SignIn => sign_in::SignInPage {
        new: |env| sign_in::SignInPage::new(env.sign_in.clone()),
        // Signs in again from the saved refresh token, if there is one.
        start: |page, cx| page.try_silent(cx),
    },
    JoinPermission => join_permission::JoinPermissionPage {
        new: |_| join_permission::JoinPermissionPage::new(),
    },
    Profile => profile::ProfilePage {
        new: |_| profile::ProfilePage::new(),
    },
    Group => group::GroupPage {
        new: |_| group::GroupPage::new(),
    },
    Esp => esp::EspPage {
        new: |_| esp::EspPage::new(),
    },
    Import => import::ImportPage {
        new: |env| import::ImportPage::new(match env.sim_speed {
            Some(speed) => crate::steps::import::ImportOptions::scaled(speed.scale),
            None => crate::steps::import::ImportOptions::default(),
        }),
    },
    Assignment => assignment::AssignmentPage {
        new: |env| {
            let mut page = assignment::AssignmentPage::new(None);
            if let Some(speed) = env.sim_speed {
                page.sync_interval = speed.scaled(page.sync_interval);
            }
            page
        },
    },
    Validate => validate::ValidatePage {
        new: |_| validate::ValidatePage::new(None),
    },
}

/// A page as the app sees it, whatever its message type.
pub trait Slot {
    fn id(&self) -> StepId;
    /// Called once before the page's first frame (e.g. the silent sign-in).
    fn start(&mut self, cx: &mut PageCx<'_>);
    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>);
    fn on_msg(&mut self, msg: Msg, cx: &mut PageCx<'_>);
    fn status(&self) -> StepStatus;
    fn validated(&self) -> bool;
    fn tick(&mut self, ctx: &egui::Context, cx: &mut PageCx<'_>);
    fn save_state(&self) -> Option<serde_json::Value>;
    fn load_state(&mut self, state: serde_json::Value);
    fn revalidate(&mut self, cx: &mut PageCx<'_>);
    fn inputs_changed(&mut self, cx: &mut PageCx<'_>);
    fn left(&mut self);
}

/// A [`Page`] in a [`Slot`].
pub struct PageSlot<P: Page> {
    pub id: StepId,
    pub page: P,
    pub extract: fn(Msg) -> Option<P::Msg>,
    pub start: fn(&mut P, &mut PageCx<'_>),
}

impl<P: Page + 'static> PageSlot<P> {
    pub fn new(id: StepId, page: P, extract: fn(Msg) -> Option<P::Msg>) -> Self {
        PageSlot {
            id,
            page,
            extract,
            start: |_, _| {},
        }
    }

    pub fn boxed(id: StepId, page: P, extract: fn(Msg) -> Option<P::Msg>) -> Box<dyn Slot> {
        Box::new(Self::new(id, page, extract))
    }
}

impl<P: Page> Slot for PageSlot<P> {
    fn id(&self) -> StepId {
        self.id
    }
    fn start(&mut self, cx: &mut PageCx<'_>) {
        (self.start)(&mut self.page, cx)
    }
    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        self.page.ui(ui, cx)
    }
    fn on_msg(&mut self, msg: Msg, cx: &mut PageCx<'_>) {
        if let Some(msg) = (self.extract)(msg) {
            self.page.on_msg(msg, cx)
        }
    }
    fn status(&self) -> StepStatus {
        self.page.status()
    }
    fn validated(&self) -> bool {
        self.page.validated()
    }
    fn tick(&mut self, ctx: &egui::Context, cx: &mut PageCx<'_>) {
        self.page.tick(ctx, cx)
    }
    fn save_state(&self) -> Option<serde_json::Value> {
        self.page.save_state()
    }
    fn load_state(&mut self, state: serde_json::Value) {
        self.page.load_state(state)
    }
    fn revalidate(&mut self, cx: &mut PageCx<'_>) {
        self.page.revalidate(cx)
    }
    fn inputs_changed(&mut self, cx: &mut PageCx<'_>) {
        self.page.inputs_changed(cx)
    }
    fn left(&mut self) {
        self.page.left()
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

    /// Wakes the UI thread (work that shares its results through state, not messages).
    pub fn repaint(&self) {
        self.ctx.request_repaint();
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
    /// The step whose page asked for it (the app cancels it when that page is rebuilt).
    pub step: Option<StepId>,
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
    /// The page being called, so the work it spawns is known to be its own.
    owner: Option<StepId>,
    /// Serial numbers a page hands to "Remove devices" (the board's selection).
    removal_request: Option<Vec<String>>,
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
            owner: None,
            removal_request: None,
        }
    }

    /// Opens "Remove devices" with `serials` picked (the app does it after this frame).
    pub fn request_removal(&mut self, serials: Vec<String>) {
        self.removal_request = Some(serials);
    }

    /// The hand-off a page asked for this frame, if any.
    pub fn take_removal_request(&mut self) -> Option<Vec<String>> {
        self.removal_request.take()
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

    /// Marks the jobs spawned from now on as `step`'s page's own.
    pub fn set_owner(&mut self, step: StepId) {
        self.owner = Some(step);
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
            step: self.owner,
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

    /// The page was built afresh because an outcome its step depends on changed (its earlier
    /// result, messages and read-backs belonged to the old inputs); called when it is next
    /// shown. Re-checks the step with reads only: by default what [`Page::revalidate`] does.
    fn inputs_changed(&mut self, cx: &mut PageCx<'_>) {
        self.revalidate(cx)
    }

    /// The person opened another step. A message that reported an action done ("Sync
    /// requested", "Saved to …") belongs to that visit: forget it here.
    fn left(&mut self) {}
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
