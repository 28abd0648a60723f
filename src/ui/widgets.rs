//! Widgets shared by pages: each is a function returning `egui::Response`.
//!
//! The status palette comes first: one green, one red, one amber for every page, so "failed"
//! looks the same on the board, in the checklist and in a message. Then the message widgets:
//! a sentence for a person, coloured by how it went, with the raw value (an API enum, an error
//! code) in the tooltip where support can find it.

use egui::{Color32, Response, RichText, Ui, WidgetText};

/// The status colours. Picked to read on both the light and the dark egui theme and to stay
/// apart for the common colour-vision deficiencies (the words carry the meaning anyway).
pub mod palette {
    use egui::Color32;

    /// Done, passed, assigned.
    pub const SUCCESS: Color32 = Color32::from_rgb(0x2e, 0x7d, 0x32);
    /// Failed, blocked: the one red.
    pub const ERROR: Color32 = Color32::from_rgb(0xc6, 0x28, 0x28);
    /// Needs attention, not ready yet, could not be checked.
    pub const WARNING: Color32 = Color32::from_rgb(0xb2, 0x6a, 0x00);
    /// Waiting on the service (pending).
    pub const PENDING: Color32 = Color32::from_rgb(0xf9, 0xa8, 0x25);
    /// Assigned but not picked up yet (out of sync).
    pub const SYNC: Color32 = Color32::from_rgb(0x00, 0x83, 0x8f);
    /// Nothing happened yet.
    pub const NEUTRAL: Color32 = Color32::from_rgb(0x75, 0x75, 0x75);
    /// Working on it.
    pub const ACTIVE: Color32 = Color32::from_rgb(0x3b, 0x82, 0xf6);

    /// Text drawn on a fill of `fill`: dark on the light amber, white on the rest.
    pub fn on(fill: Color32) -> Color32 {
        if fill == PENDING {
            Color32::BLACK
        } else {
            Color32::WHITE
        }
    }
}

/// How a message reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Error,
    Warning,
    Success,
}

impl Tone {
    pub fn color(self) -> Color32 {
        match self {
            Tone::Error => palette::ERROR,
            Tone::Warning => palette::WARNING,
            Tone::Success => palette::SUCCESS,
        }
    }
}

/// A sentence in the tone's colour, wrapped to the page width.
pub fn message(ui: &mut Ui, tone: Tone, text: impl Into<String>) -> Response {
    ui.add(egui::Label::new(RichText::new(text.into()).color(tone.color())).wrap())
}

/// Something failed; say what and what to do.
/// A wait in progress: a spinner and what is being waited for.
pub fn busy(ui: &mut Ui, what: impl Into<WidgetText>) {
    ui.horizontal(|ui| {
        ui.spinner();
        ui.label(what);
    });
}

pub fn error_message(ui: &mut Ui, text: impl Into<String>) -> Response {
    message(ui, Tone::Error, text)
}

/// Not a failure, but not done either.
pub fn warning_message(ui: &mut Ui, text: impl Into<String>) -> Response {
    message(ui, Tone::Warning, text)
}

/// It worked (and was read back).
pub fn success_message(ui: &mut Ui, text: impl Into<String>) -> Response {
    message(ui, Tone::Success, text)
}

/// Words for a value the service sent, with the value itself in the tooltip (`field: raw`).
pub fn worded(ui: &mut Ui, words: impl Into<WidgetText>, field: &str, raw: &str) -> Response {
    ui.label(words).on_hover_text(format!("{field}: {raw}"))
}

/// A filled chip (`label` on `fill`), the raw value in the tooltip.
pub fn chip(ui: &mut Ui, label: &str, fill: Color32, tooltip: &str) -> Response {
    ui.label(
        RichText::new(format!(" {label} "))
            .color(palette::on(fill))
            .background_color(fill),
    )
    .on_hover_text(tooltip)
}

// =============================================================================================
// File pickers (open and save). Kept in one block at the end of the file.
//
// The system dialog (rfd) cannot always open: on Linux it needs xdg-desktop-portal with a
// FileChooser backend on a session bus, or zenity. rfd 0.17 then only logs and returns `None`,
// which for a save dialog is indistinguishable from the person pressing Cancel. So the pickers
// check beforehand whether a dialog can open at all ([`system_dialog_support`]), tell "no
// dialog" apart from "cancelled" ([`Picked`], [`SaveChoice`]), and pages always offer a path
// field that works without any dialog ([`OpenFilesField`], [`SaveFallback`]).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

/// Why no file dialog can open on this computer, in words with what to install.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "No file dialog can open here: {why}. Install a file dialog (for example the packages \
     xdg-desktop-portal-gtk or zenity) or type the path below."
)]
pub struct NoDialog {
    pub why: String,
}

/// What an open dialog gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Picked {
    Files(Vec<PathBuf>),
    /// The person closed the dialog without choosing.
    Cancelled,
    Unavailable(NoDialog),
}

/// What a save dialog gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveChoice {
    Path(PathBuf),
    Cancelled,
    Unavailable(NoDialog),
}

/// Files the user picked, see [`Picked`].
pub type PickedFiles = Pin<Box<dyn Future<Output = Picked> + Send>>;
/// Where to save, see [`SaveChoice`].
pub type SaveTarget = Pin<Box<dyn Future<Output = SaveChoice> + Send>>;

/// Asks the user for files. Injectable so tests never open a dialog.
pub trait FilePicker: Send + Sync {
    /// Whether a dialog can open at all; checked on the UI thread before a job is started, so
    /// the page can say so at once.
    fn available(&self) -> Result<(), NoDialog> {
        Ok(())
    }
    /// `filter` is a name and extensions without dots, e.g. `("CSV files", &["csv"])`.
    fn pick_files(&self, title: &str, filter: (&str, &[&str])) -> PickedFiles;
}

/// Asks where to save a file. Injectable so tests never open a dialog.
pub trait SavePicker: Send + Sync {
    fn available(&self) -> Result<(), NoDialog> {
        Ok(())
    }
    fn save_file(&self, title: &str, default_name: &str, filter: (&str, &[&str])) -> SaveTarget;
}

/// Whether the system file dialog can open. Windows and macOS always have one. On Linux,
/// decided from what rfd 0.17 (xdg-portal backend) needs: zenity on the PATH, or a session bus
/// plus xdg-desktop-portal with a backend that implements FileChooser (rfd's
/// `portal::Connection::new` fails without the bus; `OpenFile` fails without a backend; either
/// way it falls back to zenity).
pub fn system_dialog_support() -> Result<(), NoDialog> {
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        linux_dialog_support(
            |name| std::env::var_os(name),
            |p| p.exists(),
            |dir| {
                std::fs::read_dir(dir)
                    .map(|rd| {
                        rd.filter_map(|e| e.ok())
                            .map(|e| e.path())
                            .filter(|p| p.extension().is_some_and(|x| x == "portal"))
                            .filter_map(|p| std::fs::read_to_string(p).ok())
                            .collect()
                    })
                    .unwrap_or_default()
            },
        )
    }
    #[cfg(not(all(unix, not(target_os = "macos"))))]
    {
        Ok(())
    }
}

/// [`system_dialog_support`] with the environment and file system passed in (testable).
pub fn linux_dialog_support(
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
    exists: impl Fn(&Path) -> bool,
    portal_files: impl Fn(&Path) -> Vec<String>,
) -> Result<(), NoDialog> {
    let path = env("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|d| exists(&d.join("zenity"))) {
        return Ok(());
    }
    let bus = env("DBUS_SESSION_BUS_ADDRESS").is_some_and(|a| !a.is_empty())
        || env("XDG_RUNTIME_DIR").is_some_and(|d| exists(&Path::new(&d).join("bus")));
    if !bus {
        return Err(NoDialog {
            why: "there is no desktop session bus (D-Bus) and zenity is not installed".into(),
        });
    }
    let data_dirs = env("XDG_DATA_DIRS")
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/usr/local/share:/usr/share".into());
    let dirs: Vec<PathBuf> = std::env::split_paths(&data_dirs).collect();
    let portal = dirs.iter().any(|d| {
        exists(
            &d.join("dbus-1")
                .join("services")
                .join("org.freedesktop.portal.Desktop.service"),
        )
    });
    if !portal {
        return Err(NoDialog {
            why: "xdg-desktop-portal is not installed and neither is zenity".into(),
        });
    }
    let chooser = dirs.iter().any(|d| {
        portal_files(&d.join("xdg-desktop-portal").join("portals"))
            .iter()
            .any(|text| text.contains("org.freedesktop.impl.portal.FileChooser"))
    });
    if !chooser {
        return Err(NoDialog {
            why: "xdg-desktop-portal has no file chooser backend and zenity is not installed"
                .into(),
        });
    }
    Ok(())
}

/// The wizard window, as the parent of every file dialog: without one the dialog can open
/// behind the wizard and gets its own taskbar button.
#[derive(Debug, Clone, Copy)]
struct DialogParent {
    window: raw_window_handle::RawWindowHandle,
    display: raw_window_handle::RawDisplayHandle,
}

// SAFETY: the handles are identifiers of the one wizard window (an HWND, an X11 window id, a
// Wayland surface), which lives until the process ends; rfd only hands them to the platform's
// dialog call, on whichever thread opens it.
unsafe impl Send for DialogParent {}
unsafe impl Sync for DialogParent {}

impl raw_window_handle::HasWindowHandle for DialogParent {
    fn window_handle(
        &self,
    ) -> Result<raw_window_handle::WindowHandle<'_>, raw_window_handle::HandleError> {
        // SAFETY: see the Send/Sync note: the window outlives every dialog.
        Ok(unsafe { raw_window_handle::WindowHandle::borrow_raw(self.window) })
    }
}

impl raw_window_handle::HasDisplayHandle for DialogParent {
    fn display_handle(
        &self,
    ) -> Result<raw_window_handle::DisplayHandle<'_>, raw_window_handle::HandleError> {
        // SAFETY: as above.
        Ok(unsafe { raw_window_handle::DisplayHandle::borrow_raw(self.display) })
    }
}

static DIALOG_PARENT: std::sync::OnceLock<DialogParent> = std::sync::OnceLock::new();

/// Makes `window` (the eframe `Frame`) the parent of the file dialogs opened from now on.
/// Returns false when the window has no handle to give (then dialogs open unparented).
pub fn set_dialog_parent(
    window: &(impl raw_window_handle::HasWindowHandle + raw_window_handle::HasDisplayHandle + ?Sized),
) -> bool {
    if DIALOG_PARENT.get().is_some() {
        return true;
    }
    match (window.window_handle(), window.display_handle()) {
        (Ok(w), Ok(d)) => {
            let _ = DIALOG_PARENT.set(DialogParent {
                window: w.as_raw(),
                display: d.as_raw(),
            });
            true
        }
        (w, d) => {
            tracing::warn!(window = ?w.err(), display = ?d.err(), "file dialogs open without a parent window");
            false
        }
    }
}

/// `dialog` with the wizard window as its parent, once that is known.
fn parented(dialog: rfd::AsyncFileDialog) -> rfd::AsyncFileDialog {
    match DIALOG_PARENT.get() {
        Some(p) => dialog.set_parent(p),
        None => dialog,
    }
}

/// The system file dialog through `rfd`, owned by the wizard window. Await it inside a job,
/// never in `ui()`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RfdFilePicker;

impl FilePicker for RfdFilePicker {
    fn available(&self) -> Result<(), NoDialog> {
        system_dialog_support()
    }

    fn pick_files(&self, title: &str, filter: (&str, &[&str])) -> PickedFiles {
        let dialog = parented(rfd::AsyncFileDialog::new())
            .set_title(title)
            .add_filter(filter.0, filter.1);
        Box::pin(async move {
            // rfd 0.17: a cancelled portal or zenity dialog gives `Some(empty)`; `None` only
            // when neither could open.
            match dialog.pick_files().await {
                None => Picked::Unavailable(NoDialog {
                    why: "the file dialog could not be started (see the Log for details)".into(),
                }),
                Some(files) if files.is_empty() => Picked::Cancelled,
                Some(files) => {
                    Picked::Files(files.iter().map(|f| f.path().to_path_buf()).collect())
                }
            }
        })
    }
}

impl SavePicker for RfdFilePicker {
    fn available(&self) -> Result<(), NoDialog> {
        system_dialog_support()
    }

    fn save_file(&self, title: &str, default_name: &str, filter: (&str, &[&str])) -> SaveTarget {
        let dialog = parented(rfd::AsyncFileDialog::new())
            .set_title(title)
            .set_file_name(default_name)
            .add_filter(filter.0, filter.1);
        Box::pin(async move {
            // rfd gives `None` for Cancel and for "could not open" alike; `available` ruled
            // out the second before this ran.
            match dialog.save_file().await {
                Some(f) => SaveChoice::Path(f.path().to_path_buf()),
                None => SaveChoice::Cancelled,
            }
        })
    }
}

/// The save dialog through `rfd` (same as [`RfdFilePicker`]; kept as a name for the pages).
pub use self::RfdFilePicker as RfdSavePicker;

/// Returns the same paths every time: for tests and scripted runs.
#[derive(Debug, Default, Clone)]
pub struct FixedFilePicker {
    pub paths: Vec<PathBuf>,
}

impl FilePicker for FixedFilePicker {
    fn pick_files(&self, _title: &str, _filter: (&str, &[&str])) -> PickedFiles {
        let paths = self.paths.clone();
        Box::pin(async move {
            if paths.is_empty() {
                Picked::Cancelled
            } else {
                Picked::Files(paths)
            }
        })
    }
}

/// Always the same path: tests and scripted runs.
#[derive(Debug, Clone)]
pub struct FixedSavePath(pub PathBuf);

impl SavePicker for FixedSavePath {
    fn save_file(&self, _title: &str, _name: &str, _filter: (&str, &[&str])) -> SaveTarget {
        let p = self.0.clone();
        Box::pin(async move { SaveChoice::Path(p) })
    }
}

/// A computer where no dialog can open (tests, and what a bare Linux desktop looks like).
#[derive(Debug, Clone)]
pub struct NoDialogPicker(pub NoDialog);

impl FilePicker for NoDialogPicker {
    fn available(&self) -> Result<(), NoDialog> {
        Err(self.0.clone())
    }
    fn pick_files(&self, _title: &str, _filter: (&str, &[&str])) -> PickedFiles {
        let e = self.0.clone();
        Box::pin(async move { Picked::Unavailable(e) })
    }
}

impl SavePicker for NoDialogPicker {
    fn available(&self) -> Result<(), NoDialog> {
        Err(self.0.clone())
    }
    fn save_file(&self, _title: &str, _name: &str, _filter: (&str, &[&str])) -> SaveTarget {
        let e = self.0.clone();
        Box::pin(async move { SaveChoice::Unavailable(e) })
    }
}

/// The person's Documents folder (where a typed save path starts), or the home folder.
pub fn documents_dir() -> PathBuf {
    let home = std::env::var_os("USERPROFILE")
        .filter(|_| cfg!(windows))
        .or_else(|| std::env::var_os("HOME"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    // Linux desktops name the folder in ~/.config/user-dirs.dirs (localised names).
    let xdg = std::fs::read_to_string(home.join(".config").join("user-dirs.dirs"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix("XDG_DOCUMENTS_DIR="))
                .map(|v| {
                    v.trim_matches('"')
                        .replace("$HOME", &home.to_string_lossy())
                })
        })
        .map(PathBuf::from);
    match xdg {
        Some(d) if d.is_dir() => d,
        _ if home.join("Documents").is_dir() => home.join("Documents"),
        _ => home,
    }
}

/// Turns typed or pasted text into paths: one per line or separated by `;`, quotes (Windows
/// "Copy as path") and `file://` prefixes removed.
pub fn parse_paths(text: &str) -> Vec<PathBuf> {
    text.split(['\n', '\r', ';'])
        .map(|p| p.trim().trim_matches('"').trim())
        .map(|p| p.strip_prefix("file://").unwrap_or(p))
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// The path field's example, in this system's own form.
pub const EXAMPLE_PATHS: &str = if cfg!(windows) {
    "C:\\Users\\me\\Documents\\devices.csv; second.csv"
} else if cfg!(target_os = "macos") {
    "/Users/me/Documents/devices.csv; second.csv"
} else {
    "/home/me/Documents/devices.csv; second.csv"
};

/// What the open-files row asks the page to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenAction {
    None,
    /// Open the system dialog (it can open).
    Dialog,
    /// Read these files (typed, pasted, or dropped).
    Paths(Vec<PathBuf>),
}

/// State of the open-files row: the button, the path field and what went wrong.
#[derive(Debug, Clone, Default)]
pub struct OpenFilesField {
    pub text: String,
    /// Why the dialog did not open (shown until a file is chosen another way).
    pub no_dialog: Option<NoDialog>,
    /// Typed paths that do not exist.
    pub missing: Vec<String>,
}

impl OpenFilesField {
    /// The dialog came back: say why it could not open; nothing to say for a cancel.
    pub fn dialog_result(&mut self, picked: &Picked) {
        match picked {
            Picked::Unavailable(e) => self.no_dialog = Some(e.clone()),
            Picked::Files(_) => self.no_dialog = None,
            Picked::Cancelled => {}
        }
    }

    /// A button labelled `button`, the path field labelled `field_label`, and what went wrong.
    /// The picker's availability is checked on click so "no dialog" shows at once.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        picker: &dyn FilePicker,
        button: &str,
        field_label: &str,
        enabled: bool,
    ) -> OpenAction {
        let mut action = OpenAction::None;
        ui.horizontal(|ui| {
            if ui.add_enabled(enabled, egui::Button::new(button)).clicked() {
                match picker.available() {
                    Ok(()) => action = OpenAction::Dialog,
                    Err(e) => self.no_dialog = Some(e),
                }
            }
            ui.label("or drop files on this window, or type or paste their paths:");
        });
        ui.horizontal(|ui| {
            let l = ui.label(field_label);
            let r = ui
                .add_enabled(
                    enabled,
                    egui::TextEdit::singleline(&mut self.text)
                        .hint_text(EXAMPLE_PATHS)
                        .desired_width(ui.available_width() - 80.0),
                )
                .labelled_by(l.id);
            let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let add = ui
                .add_enabled(
                    enabled && !self.text.trim().is_empty(),
                    egui::Button::new("Add"),
                )
                .clicked();
            if enter || add {
                let paths = parse_paths(&self.text);
                self.missing = paths
                    .iter()
                    .filter(|p| !p.is_file())
                    .map(|p| p.display().to_string())
                    .collect();
                let found: Vec<PathBuf> = paths.into_iter().filter(|p| p.is_file()).collect();
                if self.missing.is_empty() {
                    self.text.clear();
                }
                if !found.is_empty() {
                    self.no_dialog = None;
                    action = OpenAction::Paths(found);
                }
            }
        });
        if let Some(e) = &self.no_dialog {
            ui.colored_label(ui.visuals().warn_fg_color, e.to_string());
        }
        for m in &self.missing {
            ui.colored_label(
                ui.visuals().error_fg_color,
                format!("There is no file at {m}. Check the path and press Enter again."),
            );
        }
        action
    }
}

/// Why a save did not happen, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaveFailure {
    #[error("Saving cancelled.")]
    Cancelled,
    #[error("{0}")]
    NoDialog(NoDialog),
    #[error("Could not write {path}: {error}")]
    Write { path: String, error: String },
}

/// Asks `picker` for a path unless `typed` already is one, and writes `body` there.
pub async fn save_to(
    picker: &dyn SavePicker,
    typed: Option<PathBuf>,
    title: &str,
    default_name: &str,
    filter: (&str, &[&str]),
    body: Vec<u8>,
) -> Result<PathBuf, SaveFailure> {
    let path = match typed {
        Some(p) => p,
        None => match picker.save_file(title, default_name, filter).await {
            SaveChoice::Path(p) => p,
            SaveChoice::Cancelled => return Err(SaveFailure::Cancelled),
            SaveChoice::Unavailable(e) => return Err(SaveFailure::NoDialog(e)),
        },
    };
    tokio::fs::write(&path, body)
        .await
        .map(|_| path.clone())
        .map_err(|e| SaveFailure::Write {
            path: path.display().to_string(),
            error: e.to_string(),
        })
}

/// The "save without a dialog" row: shown when no dialog can open, with a path in the
/// Documents folder filled in.
#[derive(Debug, Clone, Default)]
pub struct SaveFallback {
    open: Option<(NoDialog, String)>,
}

impl SaveFallback {
    /// Checks on click whether a dialog can open; if not, opens the path row at once and
    /// returns false (the page then waits for [`SaveFallback::ui`]).
    pub fn check(&mut self, picker: &dyn SavePicker, default_name: &str) -> bool {
        match picker.available() {
            Ok(()) => true,
            Err(e) => {
                self.show(e, default_name);
                false
            }
        }
    }

    /// Opens the row with `default_name` in the Documents folder (keeps a path already typed).
    pub fn show(&mut self, why: NoDialog, default_name: &str) {
        let path = match self.open.take() {
            Some((_, p)) if !p.trim().is_empty() => p,
            _ => documents_dir().join(default_name).display().to_string(),
        };
        self.open = Some((why, path));
    }

    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Draws the row while open; returns the path to write when "Save here" (or Enter) is
    /// pressed.
    pub fn ui(&mut self, ui: &mut egui::Ui, field_label: &str) -> Option<PathBuf> {
        let (why, path) = self.open.as_mut()?;
        let mut go = false;
        ui.colored_label(ui.visuals().warn_fg_color, why.to_string());
        ui.horizontal(|ui| {
            let l = ui.label(field_label);
            let r = ui
                .add(egui::TextEdit::singleline(path).desired_width(ui.available_width() - 100.0))
                .labelled_by(l.id);
            go = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            go |= ui
                .add_enabled(!path.trim().is_empty(), egui::Button::new("Save here"))
                .clicked();
        });
        let target = parse_paths(path).into_iter().next();
        if go { target } else { None }
    }

    /// The write went through: the row closes.
    pub fn close(&mut self) {
        self.open = None;
    }
}

#[cfg(test)]
mod file_picker_tests {
    use super::*;

    /// The window handle eframe gives (here a made-up HWND) reaches every rfd dialog built after.
    #[test]
    fn dialogs_get_the_wizard_window_as_parent() {
        struct Window;
        impl raw_window_handle::HasWindowHandle for Window {
            fn window_handle(
                &self,
            ) -> Result<raw_window_handle::WindowHandle<'_>, raw_window_handle::HandleError>
            {
                let h = raw_window_handle::Win32WindowHandle::new(
                    std::num::NonZeroIsize::new(0x4242).unwrap(),
                );
                Ok(unsafe { raw_window_handle::WindowHandle::borrow_raw(h.into()) })
            }
        }
        impl raw_window_handle::HasDisplayHandle for Window {
            fn display_handle(
                &self,
            ) -> Result<raw_window_handle::DisplayHandle<'_>, raw_window_handle::HandleError>
            {
                Ok(raw_window_handle::DisplayHandle::windows())
            }
        }
        let before = format!("{:?}", parented(rfd::AsyncFileDialog::new()));
        assert!(before.contains("parent: None"), "{before}");
        assert!(set_dialog_parent(&Window));
        let after = format!("{:?}", parented(rfd::AsyncFileDialog::new()));
        assert!(
            after.contains("16962"),
            "the HWND 0x4242 is the parent: {after}"
        );
    }
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn check(env: &[(&str, &str)], files: &[&str], portals: &[&str]) -> Result<(), NoDialog> {
        let env: HashMap<String, OsString> =
            env.iter().map(|(k, v)| (k.to_string(), v.into())).collect();
        linux_dialog_support(
            |k| env.get(k).cloned(),
            |p| files.iter().any(|f| Path::new(f) == p),
            |dir| {
                if dir == Path::new("/usr/share/xdg-desktop-portal/portals") {
                    portals.iter().map(|s| s.to_string()).collect()
                } else {
                    Vec::new()
                }
            },
        )
    }

    #[test]
    fn decides_like_rfd_whether_a_dialog_can_open() {
        let service = "/usr/share/dbus-1/services/org.freedesktop.portal.Desktop.service";
        let gtk = "[portal]\nInterfaces=org.freedesktop.impl.portal.FileChooser;";
        // Bare Xvfb: no bus, no zenity.
        let e = check(&[("PATH", "/usr/bin")], &[], &[]).unwrap_err();
        assert!(e.why.contains("session bus"), "{e}");
        assert!(e.to_string().contains("zenity"));
        // zenity alone is enough (rfd's fallback).
        assert!(check(&[("PATH", "/bin:/usr/bin")], &["/usr/bin/zenity"], &[]).is_ok());
        // A bus but no portal.
        let bus = [
            ("PATH", "/usr/bin"),
            ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/x"),
        ];
        assert!(
            check(&bus, &[], &[])
                .unwrap_err()
                .why
                .contains("not installed")
        );
        // Portal without a FileChooser backend.
        let e = check(
            &bus,
            &[service],
            &["[portal]\nInterfaces=org.freedesktop.impl.portal.Screenshot;"],
        )
        .unwrap_err();
        assert!(e.why.contains("no file chooser backend"), "{e}");
        assert!(check(&bus, &[service], &[gtk]).is_ok());
        // The bus socket under XDG_RUNTIME_DIR counts as a bus.
        let rt = [("PATH", "/usr/bin"), ("XDG_RUNTIME_DIR", "/run/user/1000")];
        assert!(check(&rt, &["/run/user/1000/bus", service], &[gtk]).is_ok());
    }

    #[test]
    fn typed_paths_are_split_and_unquoted() {
        assert_eq!(
            parse_paths("\"C:\\a b\\x.csv\"; /tmp/y.csv\nfile:///tmp/z.csv"),
            vec![
                PathBuf::from("C:\\a b\\x.csv"),
                PathBuf::from("/tmp/y.csv"),
                PathBuf::from("/tmp/z.csv")
            ]
        );
    }
}
