//! The script `.ci/screenshots.sh` follows to walk the real `--demo` window through every page.
//!
//! A kittest twin of the window (same app, same simulated tenant seed and speed, same size)
//! walks the whole procedure by clicking and typing at screen positions, exactly as xdotool will
//! in the real window, and writes each action to `target/tmp/screenshot-walk.sh`. So the
//! screenshot script needs no pixel positions of its own and stays right when pages change:
//! a label that moved is measured again, a label that is gone fails here, by name.
//!
//! Clicks happen in a tall window (every page fits without scrolling, so no scroll positions
//! have to be replayed); the real window is shrunk to 1100×720 (or `SCREENSHOT_SIZE`) only for the screenshots.

use crate::support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use autopilot_wizard::app::{AppConfig, WizardApp, status_word};
use autopilot_wizard::sim::{self, SimConfig, Speed};
use autopilot_wizard::ui::{FixedFilePicker, StepId, StepStatus};
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use support::ui::{ASYNC_TIMEOUT, step_until};

/// The taller size the clicks happen at.
const TALL_HEIGHT: f32 = 2200.0;

/// The screenshot size: 1100×720 (a common laptop window), or `SCREENSHOT_SIZE=1440x900`
/// (`.ci/screenshots.sh --size 1440x900`). The width is the window's for the clicks too: the
/// layout, and so every position, depends on it.
fn shot_size() -> (f32, f32) {
    let Ok(size) = std::env::var("SCREENSHOT_SIZE") else {
        return (1100.0, 720.0);
    };
    let parsed = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
    parsed.unwrap_or_else(|| panic!("SCREENSHOT_SIZE={size:?}: write it as 1440x900"))
}
/// kittest draws inside this outer margin; the harness grows by it so the app gets the
/// window's exact size, and positions shift back by it to window coordinates.
const MARGIN: f32 = 8.0;

const TAG: &str = "Contoso-Office";
const GROUP: &str = "Autopilot - Contoso office";
const PROFILE: &str = "Contoso - user-driven";
const SAMPLES: &[&str] = &[
    "01-utf16-plain-hp.csv",
    "03-utf16-plain-lenovo.csv",
    "04-utf16-plain-lenovo2.csv",
];

type H = Harness<'static, WizardApp>;

/// The sample CSVs from three real PCs with a Group Tag column added, as
/// `Get-WindowsAutopilotInfo -GroupTag` writes them (UTF-16 LE with BOM, CRLF).
fn tagged_samples(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    SAMPLES
        .iter()
        .map(|name| {
            let bytes = std::fs::read(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/csv")
                    .join(name),
            )
            .unwrap();
            let units: Vec<u16> = bytes[2..]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            let text = String::from_utf16(&units).unwrap();
            let mut out = String::new();
            for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
                let extra = if i == 0 { "Group Tag" } else { TAG };
                write!(out, "{line},{extra}\r\n").unwrap();
            }
            let mut encoded = vec![0xFF, 0xFE];
            for u in out.encode_utf16() {
                encoded.extend_from_slice(&u.to_le_bytes());
            }
            let path = dir.join(name);
            std::fs::write(&path, encoded).unwrap();
            path
        })
        .collect()
}

/// Quotes for the POSIX shell that sources the script.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

struct Walk {
    h: H,
    script: String,
    statuses: Vec<(StepId, StepStatus)>,
    step: Option<StepId>,
}

impl Walk {
    /// The window position of the centre of the widget labelled `label`, once it is shown
    /// and enabled.
    fn centre(&mut self, label: &str, role: Option<Role>) -> egui::Pos2 {
        step_until(
            &mut self.h,
            &format!("an enabled widget labelled {label:?}"),
            |h| {
                let node = match role {
                    Some(role) => h.query_by_role_and_label(role, label),
                    None => h.query_by_label(label),
                };
                node.is_some_and(|n| !n.accesskit_node().is_disabled())
            },
            ASYNC_TIMEOUT,
        );
        let node = match role {
            Some(role) => self.h.get_by_role_and_label(role, label),
            None => self.h.get_by_label(label),
        };
        let centre = node.rect().center();
        assert!(
            centre.y < TALL_HEIGHT + MARGIN,
            "{label:?} is below the tall window ({centre:?}): raise TALL_HEIGHT"
        );
        centre
    }

    /// Clicks with the pointer, as xdotool does, and records the click.
    fn click_at(&mut self, pos: egui::Pos2, label: &str) {
        let window = pos - egui::vec2(MARGIN, MARGIN);
        writeln!(
            self.script,
            "click {} {} {}",
            window.x.round(),
            window.y.round(),
            sh_quote(label)
        )
        .unwrap();
        self.h.event(egui::Event::PointerMoved(pos));
        self.h.run_ok();
        for pressed in [true, false] {
            self.h.event(egui::Event::PointerButton {
                pos,
                button: egui::PointerButton::Primary,
                pressed,
                modifiers: egui::Modifiers::NONE,
            });
        }
        self.h.run_ok();
    }

    fn press(&mut self, label: &str) {
        let pos = self.centre(label, None);
        self.click_at(pos, label);
    }

    /// Focuses the text field by clicking it, empties it and types `text`.
    fn type_into(&mut self, label: &str, text: &str) {
        self.type_into_role(label, Role::TextInput, text);
    }

    fn type_into_role(&mut self, label: &str, role: Role, text: &str) {
        let pos = self.centre(label, Some(role));
        self.click_at(pos, label);
        writeln!(self.script, "retype {}", sh_quote(text)).unwrap();
        self.h
            .key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
        self.h.key_press(egui::Key::Backspace);
        self.h.event(egui::Event::Text(text.to_string()));
        self.h.run_ok();
        assert_eq!(
            self.h.get_by_role_and_label(role, label).value().as_deref(),
            Some(text),
            "typed into {label:?}"
        );
    }

    fn wait_text(&mut self, text: &str) {
        step_until(
            &mut self.h,
            &format!("a widget whose label contains {text:?}"),
            |h| h.query_all_by_label_contains(text).next().is_some(),
            ASYNC_TIMEOUT,
        );
    }

    /// Waits for `text` on screen; the real run waits for the log line `log` (written after the
    /// last click), for waits that change no step's status.
    fn wait_logged(&mut self, text: &str, log: &str) {
        self.wait_text(text);
        writeln!(self.script, "expect {}", sh_quote(log)).unwrap();
    }

    fn wait_status(&mut self, step: StepId, want: &[StepStatus]) {
        step_until(
            &mut self.h,
            &format!("{step:?} in {want:?}"),
            |h| {
                h.state()
                    .step_statuses()
                    .iter()
                    .any(|(s, st)| *s == step && want.contains(st))
            },
            ASYNC_TIMEOUT,
        );
    }

    /// Records what the app logged since the last action (steps opened, statuses changed), so
    /// the real run waits for the same before it goes on.
    fn settle(&mut self) {
        self.h.run_ok();
        let step = self.h.state().current_step();
        if step != self.step
            && let Some(step) = step
        {
            let line = format!("step opened step={}", step.title());
            writeln!(self.script, "expect {}", sh_quote(&line)).unwrap();
        }
        self.step = step;
        let now = self.h.state().step_statuses();
        for (step, status) in &now {
            let before = self.statuses.iter().find(|(s, _)| s == step);
            // Only settled statuses: a passing "In progress" may be too brief for a frame.
            let settled = matches!(status, StepStatus::Done | StepStatus::NeedsAttention);
            if settled && before.is_some_and(|(_, b)| b != status) {
                let line = format!("step={} status={}", step.title(), status_word(*status));
                writeln!(self.script, "expect {}", sh_quote(&line)).unwrap();
            }
        }
        self.statuses = now;
    }

    fn shot(&mut self, name: &str) {
        self.settle();
        writeln!(self.script, "shot {}", sh_quote(name)).unwrap();
    }

    /// Next, once the step validated.
    fn next(&mut self) {
        self.settle();
        self.press("Next");
        self.h.run_ok();
        self.settle();
    }
}

#[test]
fn screenshot_walk() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // What `--demo --sim-speed test` runs (main.rs): the walkthrough seed at test speed.
    let sim = rt
        .block_on(sim::spawn(SimConfig {
            speed: Speed::TEST,
            ..SimConfig::default()
        }))
        .unwrap();
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let picked = tagged_samples(&tmp.join("screenshot-csv"));
    let config = AppConfig {
        file_picker: Arc::new(FixedFilePicker {
            paths: picked.clone(),
        }),
        sim_speed: Speed::TEST,
        ..AppConfig::default()
    }
    .with_sim(sim);
    let (width, shot_height) = shot_size();
    let h = Harness::builder()
        .with_size([width + 2.0 * MARGIN, TALL_HEIGHT + 2.0 * MARGIN])
        .build_ui_state(
            |ui, app: &mut WizardApp| app.show(ui),
            WizardApp::new(config, rt.handle().clone()),
        );
    let mut script = String::from(
        "# Written by `cargo test --test app screenshot_walk::`; sourced by .ci/screenshots.sh.\n",
    );
    writeln!(
        script,
        "WALK_WIDTH={width}\nWALK_SHOT_HEIGHT={shot_height}\nWALK_TALL_HEIGHT={TALL_HEIGHT}"
    )
    .unwrap();
    let pick: Vec<String> = picked
        .iter()
        .map(|p| sh_quote(&p.display().to_string()))
        .collect();
    writeln!(script, "WALK_PICK=({})", pick.join(" ")).unwrap();
    script.push_str("walk() {\n");
    let mut w = Walk {
        h,
        script,
        statuses: Vec::new(),
        step: None,
    };
    w.h.run_ok();
    w.settle();
    w.wait_text("Sign in with a code");
    w.shot("01-sign-in");

    // 1. Sign in with the device code flow.
    w.press("Sign in with a code");
    w.wait_text("Signed in as");
    w.wait_status(StepId::SignIn, &[StepStatus::Done]);
    w.shot("02-signed-in");
    w.next();

    // 2. Join permission: the technicians who deploy.
    w.type_into("Search users or groups", "technicians");
    w.press("Search");
    w.press("Add IT Technicians (group)");
    w.wait_status(StepId::JoinPermission, &[StepStatus::Done]);
    w.shot("03-join-permission");
    // Issue 15: the office manager as a deployer shows a licence problem caught before OOBE;
    // she goes again before Next.
    w.type_into("Search users or groups", "lucia");
    w.press("Search");
    let lucia =
        w.h.query_all_by_label_contains("Add Lucía Ferrández")
            .filter_map(|n| n.accesskit_node().label())
            .next();
    let lucia = lucia.unwrap_or_else(|| {
        w.wait_text("Add Lucía Ferrández");
        w.h.get_by_label_contains("Add Lucía Ferrández")
            .accesskit_node()
            .label()
            .unwrap()
    });
    w.press(&lucia);
    w.wait_text("Lucía Ferrández has no Intune");
    w.wait_status(StepId::JoinPermission, &[StepStatus::NeedsAttention]);
    w.shot("03b-join-permission-licence");
    w.press(&lucia.replacen("Add ", "Remove ", 1));
    w.wait_status(StepId::JoinPermission, &[StepStatus::Done]);
    w.next();

    // 3. A user-driven, Entra join deployment profile.
    w.wait_text("Create profile");
    w.type_into("Name", PROFILE);
    w.press("Create profile");
    w.wait_status(StepId::Profile, &[StepStatus::Done]);
    w.shot("04-profile");
    w.next();

    // 4. A dynamic group for the office's group tag, with the profile assigned.
    w.type_into("Group name", GROUP);
    w.press("Devices with these group tags (dynamic)");
    w.type_into("Group tags (comma-separated)", TAG);
    w.press("Create group and assign the profile");
    w.wait_text("Read back from Microsoft Entra and as expected.");
    w.wait_text("confirmed by reading the assignments back");
    w.wait_status(
        StepId::Group,
        &[StepStatus::Done, StepStatus::NeedsAttention],
    );
    w.shot("05-group");
    w.next();

    // 5. The Enrollment Status Page: what the demo tenant's ESP would do at OOBE and its
    // problems, then the recommended one created for the group.
    w.wait_status(StepId::Esp, &[StepStatus::NeedsAttention, StepStatus::Done]);
    w.shot("06-esp");
    w.press("Create the recommended ESP for this group");
    w.wait_text("Ready: the Enrollment Status Page of this group was read back.");
    w.wait_status(StepId::Esp, &[StepStatus::Done]);
    w.shot("07-esp-recommended");
    w.next();

    // 5. Import the sample CSVs.
    w.press("Choose CSV files…");
    w.wait_text("3 rows:");
    w.settle();
    w.shot("08-import-checked");
    // A sample PC the demo tenant already has under another office's tag: retag it so the
    // group picks it up too.
    let retag: Vec<String> =
        w.h.query_all_by_label_contains("Set group tag of ")
            .filter_map(|n| n.accesskit_node().label())
            .collect();
    for label in retag {
        w.press(&label);
        step_until(
            &mut w.h,
            "the retag read back",
            |h| h.query_by_label(&label).is_none(),
            ASYNC_TIMEOUT,
        );
    }
    w.press("Import");
    w.wait_text("Import finished.");
    w.wait_status(
        StepId::Import,
        &[StepStatus::Done, StepStatus::NeedsAttention],
    );
    if w.h.query_by_label("Leave failed devices out").is_some() {
        w.settle();
        w.press("Leave failed devices out");
    }
    w.wait_status(StepId::Import, &[StepStatus::Done]);
    w.shot("09-import-done");
    w.next();

    // 6. The assignment board, until the profile reached every device.
    w.wait_status(StepId::Assignment, &[StepStatus::Done]);
    w.shot("10-assignment");
    w.next();

    // 7. Validation: it runs by itself when opened.
    w.wait_text("READY: devices can be deployed");
    w.wait_status(StepId::Validate, &[StepStatus::Done]);
    w.shot("11-validate");

    // 8. Back on the board, the PCs switched on: each goes through OOBE.
    w.press(&format!(
        "{}. {}",
        StepId::Assignment.number(),
        StepId::Assignment.title()
    ));
    w.settle();
    // The two PCs of the import: one succeeds, the other fails on a policy of its ESP.
    w.press("Switch on 2 devices");
    w.wait_logged(
        "Deployments: 1 succeeded, 1 failed",
        "board: Deployments: 1 succeeded, 1 failed",
    );
    w.shot("12-deployments");

    // 9. Remove devices (issue 16): the PC that just deployed and a lab PC whose Entra device
    // stays behind leave the organisation; the plan in words, then the result per device.
    w.press("Remove devices");
    w.settle();
    w.press("Leave the organisation");
    w.type_into_role(
        "Serial numbers (one per line)",
        Role::MultilineTextInput,
        "5CG1457YL8, DEMO-LAB-0001",
    );
    w.press("Show the plan");
    w.wait_text("Carry out the plan for 2 devices");
    w.shot("13-removal-plan");
    w.press("Carry out the plan for 2 devices");
    w.wait_logged(
        "DEMO-LAB-0001: Left the organisation",
        "removal: DEMO-LAB-0001: Left the organisation",
    );
    w.shot("14-removal-done");

    w.script.push_str("}\n");
    let path = tmp.join("screenshot-walk.sh");
    std::fs::write(&path, &w.script).unwrap();
    // Every page of the procedure was shown.
    assert_eq!(
        w.script.matches("\nshot ").count() + usize::from(w.script.starts_with("shot ")),
        15
    );
}
