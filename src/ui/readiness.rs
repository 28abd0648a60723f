//! One readiness finding (`steps::readiness`) on a page: what was found, what happens at OOBE,
//! the fix with its admin-center link, and the button where the wizard can fix it itself.

use egui::RichText;

use crate::steps::readiness::{Action, Finding, Level};
use crate::ui::widgets::palette;

pub fn level_mark(level: Level) -> (&'static str, egui::Color32) {
    match level {
        Level::Pass => ("Passed:", palette::SUCCESS),
        Level::Warning => ("Warning:", palette::WARNING),
        Level::Fail => ("Failed:", palette::ERROR),
        Level::Unknown => ("Could not be checked:", palette::WARNING),
    }
}

/// Shows `f`; returns the action whose button was clicked (`busy`: a fix is running, the
/// button is off).
pub fn finding_ui(ui: &mut egui::Ui, f: &Finding, busy: bool) -> Option<Action> {
    let mut clicked = None;
    ui.group(|ui| {
        ui.set_width(ui.available_width());
        let (mark, color) = level_mark(f.level);
        ui.horizontal_wrapped(|ui| {
            ui.colored_label(color, RichText::new(mark).strong());
            ui.strong(f.title());
        });
        ui.label(&f.summary);
        if f.level != Level::Pass || f.details.len() <= 4 {
            for d in &f.details {
                ui.label(RichText::new(format!("• {d}")).small());
            }
        } else {
            ui.collapsing(format!("Details of \"{}\"", f.title()), |ui| {
                for d in &f.details {
                    ui.label(RichText::new(format!("• {d}")).small());
                }
            });
        }
        if let Some(a) = &f.at_oobe {
            ui.label(format!("At OOBE: {a}"));
        }
        if let Some(x) = &f.fix {
            ui.label(format!("To fix: {x}"));
        }
        ui.horizontal_wrapped(|ui| {
            if let Some(a) = f.action
                && ui
                    .add_enabled(!busy, egui::Button::new(a.label()))
                    .clicked()
            {
                clicked = Some(a);
            }
            if let Some((label, url)) = &f.link {
                ui.hyperlink_to(label, url);
            }
        });
    });
    clicked
}
