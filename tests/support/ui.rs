//! egui_kittest helpers for driving the real app (or a page) while its jobs run on tokio.
//!
//! `Harness::run` returns as soon as the UI is idle, not when a background task is done, so
//! tests that wait for Graph (the simulated tenant) step the harness in a loop with a deadline.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

/// How long async steps may take against the simulated tenant at test speed, with room for a
/// loaded CI machine.
pub const ASYNC_TIMEOUT: Duration = Duration::from_secs(20);

/// Every label and value the harness shows right now, one per line (for failure messages).
pub fn visible_labels<S>(harness: &Harness<'_, S>) -> String {
    let mut out = Vec::new();
    for node in harness.root().children_recursive() {
        let n = node.accesskit_node();
        let label = n.label().unwrap_or_default();
        let value = n.value().unwrap_or_default();
        if label.is_empty() && value.is_empty() {
            continue;
        }
        let disabled = if n.is_disabled() { " [disabled]" } else { "" };
        out.push(match (label.is_empty(), value.is_empty()) {
            (false, true) => format!("  {:?} {label:?}{disabled}", n.role()),
            (true, false) => format!("  {:?} = {value:?}{disabled}", n.role()),
            _ => format!("  {:?} {label:?} = {value:?}{disabled}", n.role()),
        });
    }
    out.join("\n")
}

/// Steps `harness` (sleeping a few ms between frames so tokio tasks progress) until
/// `predicate` holds. Panics after `max` with `description` and the visible labels.
pub fn step_until<S>(
    harness: &mut Harness<'_, S>,
    description: &str,
    mut predicate: impl FnMut(&Harness<'_, S>) -> bool,
    max: Duration,
) {
    let started = Instant::now();
    loop {
        harness.step();
        if predicate(harness) {
            // One more frame so what the predicate saw is also laid out and clickable.
            harness.run_ok();
            return;
        }
        if started.elapsed() > max {
            panic!(
                "timed out after {:?} waiting for: {description}\nvisible now:\n{}",
                max,
                visible_labels(harness)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until a widget labelled exactly `label` is shown.
pub fn wait_for_label<S>(harness: &mut Harness<'_, S>, label: &str) {
    let description = format!("a widget labelled {label:?}");
    step_until(
        harness,
        &description,
        |h| h.query_by_label(label).is_some(),
        ASYNC_TIMEOUT,
    );
}

/// Waits until some widget's label contains `text`.
pub fn wait_for_text<S>(harness: &mut Harness<'_, S>, text: &str) {
    let description = format!("a widget whose label contains {text:?}");
    step_until(
        harness,
        &description,
        |h| h.query_by_label_contains(text).is_some(),
        ASYNC_TIMEOUT,
    );
}

/// Whether the widget labelled exactly `label` is enabled (panics if there is none).
pub fn is_enabled<S>(harness: &Harness<'_, S>, label: &str) -> bool {
    match harness.query_by_label(label) {
        Some(node) => !node.accesskit_node().is_disabled(),
        None => panic!(
            "no widget labelled {label:?}; visible:\n{}",
            visible_labels(harness)
        ),
    }
}

/// Clicks the widget labelled exactly `label`, waiting for it to appear first.
pub fn click<S>(harness: &mut Harness<'_, S>, label: &str) {
    wait_for_label(harness, label);
    harness.get_by_label(label).click();
    harness.run_ok();
}

/// Clicks the text field labelled `label` and types `text` into it.
pub fn type_into<S>(harness: &mut Harness<'_, S>, label: &str, text: &str) {
    harness.get_by_label(label).click();
    harness.run_ok();
    harness.get_by_label(label).type_text(text);
    harness.run_ok();
}

/// A widget labelled exactly `label` shows and is enabled.
pub fn offered<S>(harness: &Harness<'_, S>, label: &str) -> bool {
    harness
        .query_by_label(label)
        .is_some_and(|n| !n.accesskit_node().is_disabled())
}

/// Clicks the widget labelled exactly `label` once it shows and is enabled, scrolling to it
/// first (as a person would: a button below the fold is not clicked blind).
pub fn press<S>(harness: &mut Harness<'_, S>, label: &str) {
    step_until(
        harness,
        &format!("an enabled widget labelled {label:?}"),
        |h| offered(h, label),
        ASYNC_TIMEOUT,
    );
    harness.get_by_label(label).scroll_to_me();
    harness.run_ok();
    harness.get_by_label(label).click();
    harness.run_ok();
}

/// Waits until some widget's label contains `text` (several may).
pub fn wait_shown<S>(harness: &mut Harness<'_, S>, text: &str) {
    step_until(
        harness,
        &format!("a widget whose label contains {text:?}"),
        |h| h.query_all_by_label_contains(text).next().is_some(),
        ASYNC_TIMEOUT,
    );
}

/// Replaces the text of the text field labelled `label` (select all, delete, type), once it
/// shows, and checks the field holds exactly `text`.
pub fn replace_text<S>(harness: &mut Harness<'_, S>, label: &str, text: &str) {
    use egui::accesskit::Role;
    step_until(
        harness,
        &format!("a text field labelled {label:?}"),
        |h| h.query_by_role_and_label(Role::TextInput, label).is_some(),
        ASYNC_TIMEOUT,
    );
    harness
        .get_by_role_and_label(Role::TextInput, label)
        .focus();
    harness.run_ok();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.key_press(egui::Key::Backspace);
    harness.run_ok();
    harness
        .get_by_role_and_label(Role::TextInput, label)
        .type_text(text);
    harness.run_ok();
    assert_eq!(
        harness
            .get_by_role_and_label(Role::TextInput, label)
            .value()
            .as_deref(),
        Some(text),
        "typed into {label:?}"
    );
}

/// A multi-threaded runtime for page tests: the harness runs on the test thread while the
/// page's jobs run on the workers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Clicks the hyperlink labelled exactly `label` and returns the addresses the frames after the
/// click handed to the system's opener (egui's `OutputCommand::OpenUrl`, which eframe passes
/// to the browser when built with its `links` feature).
pub fn click_link<S>(harness: &mut Harness<'_, S>, label: &str) -> Vec<String> {
    wait_for_label(harness, label);
    harness.get_by_label(label).click();
    let mut opened = Vec::new();
    // The click lands in the next frame or the one after; each frame's output is read before
    // the following frame replaces it.
    for _ in 0..4 {
        harness.step();
        opened.extend(
            harness
                .output()
                .platform_output
                .commands
                .iter()
                .filter_map(|c| match c {
                    egui::OutputCommand::OpenUrl(o) => Some(o.url.clone()),
                    _ => None,
                }),
        );
    }
    harness.run_ok();
    opened
}
