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
