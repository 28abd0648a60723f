//! Picking up where you left off, through the real app by clicking labelled widgets: steps 1–4
//! against a simulated tenant the app treats as a real one (so it remembers), a restart, and
//! the wizard signs in again by itself, checks steps 2–4 again, reopens step 4 and every form is
//! as it was. Then the statuses follow the read-backs: a step that stops validating takes the
//! later ones out of "Done".

use crate::support;

use std::sync::Arc;
use support::MemoryStorage;

use autopilot_wizard::app::{AppConfig, WizardApp};
use autopilot_wizard::graph::token_store::{MemoryStore, TokenStore};
use autopilot_wizard::sim::directory::JoinScope;
use autopilot_wizard::sim::{self, SimConfig, SimHandle, Speed};
use autopilot_wizard::ui::{FixedFilePicker, StepId, StepStatus};
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use support::ui::{
    ASYNC_TIMEOUT, is_enabled, press, replace_text, runtime, step_until, visible_labels, wait_shown,
};

type H = Harness<'static, WizardApp>;

const TAG: &str = "Contoso-Office";
const GROUP: &str = "Autopilot - Contoso office";
const PROFILE: &str = "Contoso - user-driven";
const TEMPLATE: &str = "CON-%RAND:5%";

/// A "real" tenant that lives at the simulated tenant's address: persistence is on, and the
/// refresh token goes to `store` (standing in for the credential store across the restart).
fn real_config(sim: &SimHandle, store: &Arc<dyn TokenStore>) -> AppConfig {
    let mut cfg = AppConfig {
        file_picker: Arc::new(FixedFilePicker::default()),
        sim_speed: Speed::TEST,
        token_store: store.clone(),
        ..AppConfig::default()
    };
    cfg.settings.graph_url = Some(sim.url());
    cfg.settings.login_url = Some(sim.url());
    cfg
}

fn harness(app: WizardApp) -> H {
    // Tall, so every page fits without scrolling (kittest clicks at a widget's centre).
    Harness::builder()
        .with_size([1280.0, 2400.0])
        .with_accessibility_check(false)
        .build_ui_state(|ui, app: &mut WizardApp| app.show(ui), app)
}

fn field_value(h: &H, label: &str) -> String {
    h.get_by_role_and_label(Role::TextInput, label)
        .value()
        .unwrap_or_default()
}

fn status_of(h: &Harness<'_, WizardApp>, step: StepId) -> StepStatus {
    h.state()
        .step_statuses()
        .into_iter()
        .find(|(s, _)| *s == step)
        .map(|(_, st)| st)
        .unwrap()
}

fn word_of(h: &Harness<'_, WizardApp>, step: StepId) -> String {
    h.state()
        .step_views()
        .into_iter()
        .find(|v| v.step == step)
        .map(|v| v.word)
        .unwrap()
}

/// Steps 1–4 by clicking, ending on step 4 with the profile assigned to the group.
fn walk_to_the_group_step(h: &mut H) {
    h.run_ok();
    press(h, "Sign in with a code");
    wait_shown(h, "Signed in as");
    press(h, "Next");

    replace_text(h, "Search users or groups", "technicians");
    press(h, "Search");
    press(h, "Add IT Technicians (group)");
    wait_shown(h, "Every deploying user may join devices");
    press(h, "Next");

    wait_shown(h, "Kiosk - self-deploying");
    replace_text(h, "Name", PROFILE);
    replace_text(h, "Device name template", TEMPLATE);
    press(h, "Create profile");
    wait_shown(h, &format!("Created the profile \"{PROFILE}\"."));
    press(h, "Next");

    replace_text(h, "Group name", GROUP);
    press(h, "Devices with these group tags (dynamic)");
    replace_text(h, "Group tags (comma-separated)", TAG);
    press(h, "Create group and assign the profile");
    wait_shown(h, "Read back from Microsoft Entra and as expected.");
    wait_shown(h, "confirmed by reading the assignments back");
    // The test tenant's older All-devices profile wins: the person takes it on knowingly, and
    // that decision is part of what a restart must keep.
    press(h, "I will remove that assignment in Intune, continue");
    assert_eq!(h.state().current_step(), Some(StepId::Group));
}

#[test]
fn a_restart_at_step_4_signs_in_rechecks_and_reopens_it_with_every_form_filled() {
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let mut storage = MemoryStorage::default();
    {
        let mut h = harness(WizardApp::new(
            real_config(&sim, &store),
            rt.handle().clone(),
        ));
        walk_to_the_group_step(&mut h);
        h.state().save_to(&mut storage);
    }
    let saved = storage.0.values().cloned().collect::<Vec<_>>().join("\n");
    assert!(
        saved.contains(TEMPLATE),
        "the profile form is saved: {saved}"
    );

    let app = WizardApp::with_storage(
        real_config(&sim, &store),
        rt.handle().clone(),
        Some(&storage),
    );
    let mut h = harness(app);
    h.run_ok();
    // Before the sign-in is back, nothing after step 1 claims progress it has not checked.
    if h.state().session().graph.is_none() {
        assert_eq!(
            status_of(&h, StepId::JoinPermission),
            StepStatus::NotStarted
        );
        assert_eq!(word_of(&h, StepId::Profile), "Waiting for step 1");
    }
    step_until(
        &mut h,
        "the silent sign-in, steps 2–4 checked again and step 4 open",
        |h| h.state().current_step() == Some(StepId::Group),
        ASYNC_TIMEOUT,
    );
    // Step 4 read its group and the assignment back by itself (nothing was clicked).
    wait_shown(&mut h, "confirmed by reading the assignments back");
    assert_eq!(field_value(&h, "Group name"), GROUP);
    assert_eq!(field_value(&h, "Group tags (comma-separated)"), TAG);
    assert!(is_enabled(&h, "Next"), "step 4 validated again");
    assert_eq!(status_of(&h, StepId::JoinPermission), StepStatus::Done);
    assert_eq!(status_of(&h, StepId::Profile), StepStatus::Done);
    assert_ne!(status_of(&h, StepId::Group), StepStatus::NotStarted);

    // Step 3: the chosen profile was read back, and the form is as it was typed.
    h.get_by_label_contains("3. Deployment profile").click();
    h.run_ok();
    assert_eq!(h.state().current_step(), Some(StepId::Profile));
    assert_eq!(field_value(&h, "Device name template"), TEMPLATE);
    assert_eq!(field_value(&h, "Name"), PROFILE);
    assert_eq!(
        h.state()
            .outcomes()
            .profile
            .as_ref()
            .map(|p| p.display_name.as_str()),
        Some(PROFILE)
    );

    // Step 2: the deployers came back and were checked again.
    h.get_by_label_contains("2. Join permission").click();
    h.run_ok();
    wait_shown(&mut h, "IT Technicians");
    wait_shown(&mut h, "Every deploying user may join devices");

    // Nobody may join any more: step 2 leaves Done, and so do the steps after it.
    sim.with_state(|s| s.directory.registration_policy.join = JoinScope::None);
    press(&mut h, "Check again");
    step_until(
        &mut h,
        "step 2 needs attention",
        |h| status_of(h, StepId::JoinPermission) == StepStatus::NeedsAttention,
        ASYNC_TIMEOUT,
    );
    for later in [StepId::Profile, StepId::Group] {
        assert_ne!(status_of(&h, later), StepStatus::Done, "{later:?}");
        assert_eq!(word_of(&h, later), "Waiting for step 2", "{later:?}");
    }
    assert!(
        h.query_all_by_label("Waiting for step 2").next().is_some(),
        "the stepper says why; visible:\n{}",
        visible_labels(&h)
    );
    assert!(!is_enabled(&h, "Next"));
    let entry = h.get_by_label_contains("4. Device group");
    assert!(
        entry.accesskit_node().is_disabled(),
        "step 4 cannot be opened"
    );
}

/// Without the saved sign-in, the restored steps wait for step 1 (not "In progress"), the page
/// says what signing in will do, and a manual sign-in walks on to step 4 just the same.
#[test]
fn without_a_sign_in_the_restored_steps_wait_instead_of_showing_progress() {
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let mut storage = MemoryStorage::default();
    {
        let mut h = harness(WizardApp::new(
            real_config(&sim, &store),
            rt.handle().clone(),
        ));
        walk_to_the_group_step(&mut h);
        h.state().save_to(&mut storage);
    }
    // The saved sign-in is gone (another computer, a cleared keyring): the person must sign in.
    let empty: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let mut h = harness(WizardApp::with_storage(
        real_config(&sim, &empty),
        rt.handle().clone(),
        Some(&storage),
    ));
    step_until(
        &mut h,
        "the silent sign-in finds nothing",
        |h| {
            h.query_by_label("Sign in with a code")
                .is_some_and(|n| !n.accesskit_node().is_disabled())
        },
        ASYNC_TIMEOUT,
    );
    for later in [StepId::JoinPermission, StepId::Profile, StepId::Group] {
        assert_eq!(status_of(&h, later), StepStatus::NotStarted, "{later:?}");
        assert_eq!(word_of(&h, later), "Waiting for step 1", "{later:?}");
    }
    assert!(h.query_all_by_label("In progress").next().is_none());
    wait_shown(&mut h, "Sign in to pick up where you left off");
    press(&mut h, "Sign in with a code");
    step_until(
        &mut h,
        "step 4 open again after signing in",
        |h| h.state().current_step() == Some(StepId::Group),
        ASYNC_TIMEOUT,
    );
    assert_eq!(field_value(&h, "Group name"), GROUP);
}

#[test]
fn ctrl_q_closes_the_window_so_eframe_saves_first() {
    let rt = runtime();
    let mut h = Harness::builder()
        .with_size([1100.0, 720.0])
        .build_ui_state(
            |ui, app: &mut WizardApp| app.show(ui),
            WizardApp::new(AppConfig::default(), rt.handle().clone()),
        );
    h.run_ok();
    // One event, one frame: the frame that sees the key is the one whose output is read.
    h.event(egui::Event::Key {
        key: egui::Key::Q,
        pressed: true,
        modifiers: egui::Modifiers::COMMAND,
        repeat: false,
        physical_key: None,
    });
    h.step();
    let closes = h
        .output()
        .viewport_output
        .values()
        .any(|v| v.commands.contains(&egui::ViewportCommand::Close));
    assert!(closes, "Ctrl+Q asks the window to close");
}

/// The real binary on a state directory, in a virtual X server: started on the state a run at
/// step 4 left (here written by the same app in-process), it reopens step 4 after signing in;
/// Ctrl+Q quits and saves, and a second start reopens step 4 again. Needs Xvfb and xdotool
/// (`.ci/run` installs them).
mod process {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    const TITLE: &str = "Autopilot Wizard";

    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A virtual X server on a free display; returns it and the display name.
    fn xvfb() -> (Killed, String) {
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x1024x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb runs (apt-get install xvfb xdotool; .ci/run installs them)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let display = format!(":{}", line.trim());
        // Xvfb names its display before every client can connect; wait until one can, so the
        // app's first connection does not race it on a busy machine.
        let started = Instant::now();
        while !Command::new("xdotool")
            .arg("getdisplaygeometry")
            .env("DISPLAY", &display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "Xvfb {display} accepts no client"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        (Killed(child), display)
    }

    fn xdotool(display: &str, args: &[&str]) -> String {
        let out = Command::new("xdotool")
            .args(args)
            .env("DISPLAY", display)
            .output()
            .expect("xdotool runs (apt-get install xdotool)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes `storage` where eframe reads it for `app_id` under `data_home` (RON: a map of
    /// string keys to string values).
    fn write_app_ron(data_home: &Path, storage: &MemoryStorage) -> PathBuf {
        let dir = data_home.join("autopilot-wizard");
        std::fs::create_dir_all(&dir).unwrap();
        let quote = |s: &str| {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        };
        let body: Vec<String> = storage
            .0
            .iter()
            .map(|(k, v)| format!("    {}: {},", quote(k), quote(v)))
            .collect();
        let path = dir.join("app.ron");
        std::fs::write(&path, format!("{{\n{}\n}}\n", body.join("\n"))).unwrap();
        path
    }

    fn wait_for(what: &str, max: Duration, mut check: impl FnMut() -> bool) {
        let started = Instant::now();
        while !check() {
            assert!(started.elapsed() < max, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// One run of the binary: waits for its window, clicks the link at `link` first (if any,
    /// window coordinates) until the system's browser ($BROWSER, a script that writes down the
    /// address) was started with it, clicks "Sign in with a code" at `click` until step 4
    /// opens, screenshots, quits with Ctrl+Q.
    fn run_once(
        display: &str,
        state: &Path,
        sim_url: &str,
        click: egui::Pos2,
        link: Option<(egui::Pos2, &str)>,
        shot: &Path,
    ) -> String {
        let log = state.join(format!(
            "run-{}.log",
            shot.file_stem().unwrap().to_string_lossy()
        ));
        let runtime_dir = state.join("runtime");
        std::fs::create_dir_all(&runtime_dir).unwrap();
        let opened = state.join("browser-opened.txt");
        let browser = state.join("browser.sh");
        std::fs::write(
            &browser,
            format!("#!/bin/sh\necho \"$1\" >> '{}'\n", opened.display()),
        )
        .unwrap();
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let spawn = || {
            Killed(
            Command::new(env!("CARGO_BIN_EXE_autopilot-wizard"))
                .args(["--graph-url", sim_url, "--login-url", sim_url])
                .args(["--sim-speed", "test"])
                .env("DISPLAY", display)
                .env("XDG_DATA_HOME", state.join("data"))
                .env("XDG_CONFIG_HOME", state.join("config"))
                .env("XDG_RUNTIME_DIR", &runtime_dir)
                .env("BROWSER", &browser)
                // Our code and the HTTP and OAuth libraries at trace: the secrets scan below
                // must see everything they could log (winit and the renderer stay at info).
                .env(
                    "RUST_LOG",
                    "info,autopilot_wizard=trace,reqwest=trace,hyper=trace,hyper_util=trace,oauth2=trace",
                )
                .env_remove("WAYLAND_DISPLAY")
                .env_remove("DBUS_SESSION_BUS_ADDRESS")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        )
        };
        let mut app = spawn();
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        let mut window = String::new();
        let mut x_refusals = 0;
        wait_for("the window", Duration::from_secs(120), || {
            if app.0.try_wait().unwrap().is_some() {
                // Seen twice in full test runs on a loaded 2-core machine: Xvfb answered
                // xdotool, then refused the app's first connection. That is the test's X
                // server, not the app: start it again, a few times at most.
                if x_refusals < 3 && read_log().contains("Failed to open connection to X server") {
                    x_refusals += 1;
                    eprintln!(
                        "Xvfb refused the app's connection; starting it again ({x_refusals})"
                    );
                    std::thread::sleep(Duration::from_millis(500));
                    app = spawn();
                    return false;
                }
                panic!("the app exited:\n{}", read_log());
            }
            window = xdotool(
                display,
                &["search", "--onlyvisible", "--name", &format!("^{TITLE}")],
            )
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
            !window.is_empty()
        });
        let geometry = xdotool(display, &["getwindowgeometry", "--shell", &window]);
        let coord = |key: &str| -> f32 {
            geometry
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0)
        };
        let (x, y) = (coord("X") + click.x, coord("Y") + click.y);
        if let Some((at, url)) = link {
            let (lx, ly) = (coord("X") + at.x, coord("Y") + at.y);
            let was_opened = || {
                std::fs::read_to_string(&opened)
                    .unwrap_or_default()
                    .lines()
                    .any(|l| l == url)
            };
            wait_for(
                "the link to reach the browser",
                Duration::from_secs(60),
                || {
                    xdotool(
                        display,
                        &[
                            "mousemove",
                            "--sync",
                            &lx.to_string(),
                            &ly.to_string(),
                            "click",
                            "1",
                        ],
                    );
                    std::thread::sleep(Duration::from_secs(1));
                    was_opened()
                },
            );
            let log = read_log();
            assert!(!log.contains("Cannot open url"), "{log}");
        }
        let opened = |log: &str| {
            log.lines()
                .any(|l| l.contains("step opened") && l.contains("Device group"))
        };
        // Generous: a loaded CI machine builds and runs several test binaries at once.
        wait_for(
            "step 4 to open after signing in",
            Duration::from_secs(240),
            || {
                assert!(
                    app.0.try_wait().unwrap().is_none(),
                    "the app exited:\n{}",
                    read_log()
                );
                if opened(&read_log()) {
                    return true;
                }
                // The button is disabled while the silent sign-in runs: click until it took.
                xdotool(
                    display,
                    &[
                        "mousemove",
                        "--sync",
                        &x.to_string(),
                        &y.to_string(),
                        "click",
                        "1",
                    ],
                );
                std::thread::sleep(Duration::from_secs(2));
                opened(&read_log())
            },
        );
        std::thread::sleep(Duration::from_secs(1));
        let _ = Command::new("import")
            .args(["-window", "root"])
            .arg(shot)
            .env("DISPLAY", display)
            .status();
        // CI (`.ci/run`) keeps what the window showed next to the smoke test's screenshots.
        let artifacts = Path::new("artifacts");
        if artifacts.is_dir() && shot.exists() {
            let dir = artifacts.join("resume");
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::copy(shot, dir.join(shot.file_name().unwrap()));
        }
        // No window manager: give the window the keyboard focus first.
        xdotool(display, &["windowfocus", "--sync", &window]);
        xdotool(display, &["key", "ctrl+q"]);
        let mut exited = None;
        wait_for("the app to quit on Ctrl+Q", Duration::from_secs(30), || {
            exited = app.0.try_wait().unwrap();
            exited.is_some()
        });
        assert!(exited.unwrap().success(), "{}", read_log());
        read_log()
    }

    #[test]
    fn the_real_binary_reopens_step_4_after_a_restart() {
        let rt = runtime();
        let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
        let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
        let mut storage = MemoryStorage::default();
        {
            let mut h = harness(WizardApp::new(
                real_config(&sim, &store),
                rt.handle().clone(),
            ));
            walk_to_the_group_step(&mut h);
            h.state().save_to(&mut storage);
        }
        // Where "Sign in with a code" is in the 1100×720 window: the same app with the same
        // state at the same size lays out the same (kittest adds an 8-point margin).
        const MARGIN: f32 = 8.0;
        let empty: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
        let mut twin = Harness::builder()
            .with_size([1100.0 + 2.0 * MARGIN, 720.0 + 2.0 * MARGIN])
            .with_accessibility_check(false)
            .build_ui_state(
                |ui, app: &mut WizardApp| app.show(ui),
                WizardApp::with_storage(
                    real_config(&sim, &empty),
                    rt.handle().clone(),
                    Some(&storage),
                ),
            );
        step_until(
            &mut twin,
            "the twin's sign-in page",
            |h| {
                h.query_by_label("Sign in with a code")
                    .is_some_and(|n| !n.accesskit_node().is_disabled())
            },
            ASYNC_TIMEOUT,
        );
        let click =
            twin.get_by_label("Sign in with a code").rect().center() - egui::vec2(MARGIN, MARGIN);
        let docs = twin
            .get_by_label(&format!("Microsoft docs: {}", StepId::SignIn.title()))
            .rect()
            .center()
            - egui::vec2(MARGIN, MARGIN);
        drop(twin);

        // Every token the tenant hands out from here on, refresh tokens that rotate away too.
        let seen: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>> = Arc::default();
        let collector = {
            let seen = seen.clone();
            let shared = sim.shared.clone();
            rt.spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let st = shared.lock();
                    let mut s = seen.lock().unwrap();
                    s.extend(st.core.access_tokens.keys().cloned());
                    s.extend(st.core.refresh_tokens.keys().cloned());
                }
            })
        };
        let state = tempfile::tempdir().unwrap();
        let ron = write_app_ron(&state.path().join("data"), &storage);
        let (_x, display) = xvfb();
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let first = run_once(
            &display,
            state.path(),
            &sim.url(),
            click,
            Some((docs, StepId::SignIn.doc_url())),
            &shots.join("resume-first.png"),
        );
        assert!(first.contains("checking the step again"), "{first}");

        // What the binary saved on Ctrl+Q still names step 4 and its form.
        let saved = std::fs::read_to_string(&ron).unwrap();
        assert!(saved.contains("Group"), "{saved}");
        assert!(saved.contains(GROUP), "{saved}");
        assert!(saved.contains(TEMPLATE), "{saved}");

        let second = run_once(
            &display,
            state.path(),
            &sim.url(),
            click,
            None,
            &shots.join("resume-second.png"),
        );
        assert!(second.contains("wizard started"), "{second}");

        // Two traced GUI runs with sign-ins: no token in the logs, the saved state or stderr
        // (where a panic would print).
        collector.abort();
        let tokens = seen.lock().unwrap().clone();
        assert!(
            tokens.len() >= 2,
            "the runs signed in: {} tokens",
            tokens.len()
        );
        assert!(second.contains("TRACE"), "trace logging was on");
        let mut files = Vec::new();
        let mut dirs = vec![state.path().to_path_buf()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap().map_while(Result::ok) {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_none_or(|x| x != "png") {
                    files.push(p);
                }
            }
        }
        assert!(
            files.iter().any(|f| f.to_string_lossy().contains("logs")),
            "the app's log files: {files:?}"
        );
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            for t in &tokens {
                let needle = &t.as_bytes()[..24.min(t.len())];
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "token bytes found in {}",
                    f.display()
                );
            }
        }
    }
}

/// `--choose-csv` is documented in `--help`; the old `--pick` still works for existing scripts.
#[test]
fn choose_csv_is_in_the_help_and_pick_still_works() {
    let bin = env!("CARGO_BIN_EXE_autopilot-wizard");
    let help = std::process::Command::new(bin)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--choose-csv <FILE>"), "{help}");
    assert!(help.contains("instead of opening a"), "{help}");
    assert!(
        !help.contains("--pick"),
        "the old name stays hidden: {help}"
    );

    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/csv/01-utf16-plain-hp.csv");
    for flag in ["--pick", "--choose-csv"] {
        let out = std::process::Command::new(bin)
            .arg(flag)
            .arg(&sample)
            .arg("check-csv")
            .arg(&sample)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `--demo` says on every page that the tenant's data is not kept, and keeps nothing but the
/// settings (and says so, with the log: issue 18).
#[test]
fn the_demo_says_nothing_is_kept_and_keeps_nothing() {
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let mut h = harness(WizardApp::new(
        AppConfig::default().with_sim(sim),
        rt.handle().clone(),
    ));
    h.run_ok();
    press(&mut h, "Sign in with a code");
    wait_shown(&mut h, "Signed in as");
    wait_shown(&mut h, "its data is gone when you close");
    wait_shown(&mut h, "still writes its log and keeps your own settings");
    let mut storage = MemoryStorage::default();
    h.state().save_to(&mut storage);
    let keys: Vec<&String> = storage.0.keys().collect();
    assert_eq!(keys, ["settings"], "only the settings are written");
}

/// Checking step 4 again only reads: an assignment removed in Intune meanwhile is reported, not
/// silently made again, and the wizard stays on the step before it.
#[test]
fn a_removed_assignment_is_reported_after_a_restart_not_recreated() {
    use autopilot_wizard::sim::profiles::StoredTarget;
    let rt = runtime();
    let sim = rt.block_on(sim::spawn(SimConfig::test())).unwrap();
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let mut storage = MemoryStorage::default();
    let group_id = {
        let mut h = harness(WizardApp::new(
            real_config(&sim, &store),
            rt.handle().clone(),
        ));
        walk_to_the_group_step(&mut h);
        h.state().save_to(&mut storage);
        h.state().outcomes().group.clone().unwrap().id
    };
    let ours = |s: &autopilot_wizard::sim::SimState| {
        s.profiles
            .assignments
            .iter()
            .filter(|a| a.target == StoredTarget::Group(group_id.clone()))
            .count()
    };
    sim.with_state(|s| {
        s.profiles
            .assignments
            .retain(|a| a.target != StoredTarget::Group(group_id.clone()))
    });
    let mut h = harness(WizardApp::with_storage(
        real_config(&sim, &store),
        rt.handle().clone(),
        Some(&storage),
    ));
    wait_shown(&mut h, "is no longer assigned to this group");
    assert_eq!(
        sim.with_state(|s| ours(s)),
        0,
        "nothing was assigned by itself"
    );
    assert_eq!(status_of(&h, StepId::Group), StepStatus::NeedsAttention);
    assert!(!is_enabled(&h, "Next"));
}
