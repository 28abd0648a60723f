//! The procedure declared once: files written before the step registry still load, and every
//! derived name (step ids, numbers, run event names, plan sections, check ids) comes from it.

use crate::support;

use std::collections::HashMap;

use std::path::Path;
use support::MemoryStorage;

use autopilot_wizard::app::{AppConfig, WizardApp};
use autopilot_wizard::run::events::Step;
use autopilot_wizard::steps::validate::CheckId;
use autopilot_wizard::steps::{Outcomes, STEPS, StepId};
use support::ui::runtime;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/state")
            .join(name),
    )
    .unwrap()
}

/// eframe's app.ron as the fixture holds it: one `"key": "value",` per line.
fn read_app_ron(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim().strip_suffix(',')?;
            let cut = l.find("\": \"")?;
            let key: String = serde_json::from_str(&l[..=cut]).ok()?;
            let value: String = serde_json::from_str(&l[cut + 3..]).ok()?;
            Some((key, value))
        })
        .collect()
}

/// `now` without the empty fields of steps the old file did not know (the ESP step).
fn without_new_steps(mut now: serde_json::Value, old: &serde_json::Value) -> serde_json::Value {
    if let (Some(now), Some(old)) = (now.as_object_mut(), old.as_object()) {
        now.retain(|k, v| old.contains_key(k) || !v.is_null());
    }
    now
}

#[test]
fn an_app_ron_of_the_version_before_the_registry_loads_whole() {
    let stored = read_app_ron(&fixture("app.ron"));
    assert_eq!(stored.len(), 4, "{stored:?}");
    let before: serde_json::Value = serde_json::from_str(&stored["outcomes"]).unwrap();

    // Every field reads into the new outcomes and writes back the same (steps added since
    // write their own empty field beside them).
    let outcomes: Outcomes = serde_json::from_str(&stored["outcomes"]).unwrap();
    assert_eq!(
        without_new_steps(serde_json::to_value(&outcomes).unwrap(), &before),
        before
    );
    assert_eq!(
        outcomes.group.as_ref().unwrap().display_name,
        "Autopilot - Contoso office"
    );
    assert_eq!(
        outcomes.profile.as_ref().unwrap().display_name,
        "Contoso - user-driven"
    );

    // Through the app as eframe starts it: outcomes, page forms and the step it was on.
    let rt = runtime();
    let storage = MemoryStorage(stored.clone());
    let app = WizardApp::with_storage(AppConfig::default(), rt.handle().clone(), Some(&storage));
    assert_eq!(app.outcomes(), &outcomes);
    assert_eq!(app.steps(), StepId::ALL.to_vec());
    let mut again = MemoryStorage::default();
    app.save_to(&mut again);
    assert_eq!(
        serde_json::from_str::<StepId>(&stored["current_step"]).unwrap(),
        StepId::Group
    );
    let pages: serde_json::Value = serde_json::from_str(&again.0["pages"]).unwrap();
    let old_pages: serde_json::Value = serde_json::from_str(&stored["pages"]).unwrap();
    assert_eq!(pages, old_pages, "every page form is kept as it was");
}

#[test]
fn a_plan_state_file_of_the_version_before_the_registry_loads_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.json");
    std::fs::write(&path, fixture("plan-state.json")).unwrap();
    let state = autopilot_wizard::run::state::load(&path)
        .unwrap()
        .expect("a state");
    let before: serde_json::Value = serde_json::from_str(&fixture("plan-state.json")).unwrap();
    assert_eq!(
        without_new_steps(
            serde_json::to_value(&state.outcomes).unwrap(),
            &before["outcomes"]
        ),
        before["outcomes"]
    );
    // Every step the file's version had (steps added since have no outcome yet).
    for step in [
        StepId::SignIn,
        StepId::JoinPermission,
        StepId::Profile,
        StepId::Group,
        StepId::Import,
        StepId::Assignment,
        StepId::Validate,
    ] {
        assert!(state.outcomes.has(step), "{step:?} has its outcome");
    }
    assert!(state.outcomes.import.unwrap().expected_serials().count() > 0);
}

#[test]
fn every_name_derives_from_the_procedure() {
    assert_eq!(STEPS.len(), StepId::ALL.len());
    for (i, step) in StepId::ALL.iter().enumerate() {
        let def = step.def();
        assert_eq!(def.id, *step);
        assert_eq!(step.number(), i + 1);
        assert_eq!(step.step_n(), format!("step {}", i + 1));
        assert!(!def.title.is_empty() && !def.run_title.is_empty());
        assert!(def.doc_url.starts_with("https://learn.microsoft.com/"));
        assert!(!def.plan_section.is_empty());
        assert_eq!(StepId::from_key(def.key), Some(*step));
        // A step depends only on steps before it.
        for d in def.depends_on {
            assert!(d.number() < step.number(), "{step:?} depends on {d:?}");
        }
        assert_eq!(
            serde_json::to_value(Step::Of(*step)).unwrap(),
            serde_json::Value::String(def.key.into())
        );
    }
    // Names saved files and event consumers already know (new steps may come in between).
    for (step, key) in [
        (StepId::SignIn, "sign-in"),
        (StepId::JoinPermission, "join-permission"),
        (StepId::Profile, "profile"),
        (StepId::Group, "group"),
        (StepId::Import, "import"),
        (StepId::Assignment, "assignment"),
        (StepId::Validate, "validate"),
    ] {
        assert_eq!(step.key(), key);
    }
    assert_eq!(serde_json::to_value(Step::Plan).unwrap(), "plan");
    assert_eq!(
        serde_json::to_string(&StepId::JoinPermission).unwrap(),
        "\"JoinPermission\""
    );
    let checks: Vec<&str> = CheckId::ALL.iter().map(|c| c.key()).collect();
    for built_in in [
        "JoinPermission",
        "MdmScope",
        "Profile",
        "Group",
        "ProfileAssignment",
        "Devices",
    ] {
        assert!(checks.contains(&built_in), "{built_in} in {checks:?}");
    }
    assert_eq!(
        serde_json::to_string(&CheckId::MdmScope).unwrap(),
        "\"MdmScope\""
    );
    assert_eq!(
        serde_json::from_str::<CheckId>("\"Devices\"").unwrap(),
        CheckId::Devices
    );
}

#[test]
fn a_change_upstream_reaches_every_dependent_step() {
    let deps = Outcomes::dependents(StepId::Group);
    for s in [StepId::Import, StepId::Assignment, StepId::Validate] {
        assert!(deps.contains(&s), "{s:?} in {deps:?}");
    }
    assert!(!deps.contains(&StepId::Profile));
}

#[test]
fn the_group_tag_of_a_rule_is_read_in_one_place_whatever_the_case() {
    use autopilot_wizard::board::group_tags_in_rule;
    assert_eq!(
        group_tags_in_rule(r#"(device.devicePhysicalIds -any (_ -eq "[orderId]:Contoso-Office"))"#),
        ["Contoso-Office"]
    );
    assert_eq!(
        group_tags_in_rule(
            r#"(device.devicePhysicalIds -any (_ -eq "[OrderID]:HR")) -or (device.devicePhysicalIds -any (_ -eq "[ORDERID]:Sales"))"#
        ),
        ["HR", "Sales"]
    );
    assert!(
        group_tags_in_rule(r#"(device.devicePhysicalIds -any (_ -eq "[ZTDId]:x"))"#).is_empty()
    );
}

/// The permissions a step needs are declared with the step: the sign-in asks for their union
/// (nothing else from Graph), the simulated tenant consents each of them, and a sign-in that was
/// not granted one of a step's permissions names exactly that one.
#[test]
fn the_sign_in_asks_for_what_the_steps_declare() {
    use autopilot_wizard::graph::cloud::{Cloud, request_scopes, short_scope};
    use autopilot_wizard::steps::{required_permissions, required_scopes, sign_in};
    let wanted = required_scopes();
    for step in STEPS {
        for p in step.permissions {
            assert!(wanted.contains(&p.name), "{:?}: {}", step.id, p.name);
        }
    }
    let asked: Vec<String> = request_scopes(Cloud::Global, &wanted)
        .iter()
        .map(|s| short_scope(s).to_string())
        .filter(|s| !["openid", "profile", "offline_access"].contains(&s.as_str()))
        .collect();
    assert_eq!(asked, wanted);
    let consented = autopilot_wizard::sim::consented_permissions();
    for p in required_permissions() {
        assert!(
            consented.contains(&p.name),
            "the simulated tenant does not consent {}",
            p.name
        );
    }
    let esp = StepId::Esp.def().permissions;
    let granted: Vec<String> = wanted
        .iter()
        .filter(|w| {
            !esp.iter()
                .any(|p| p.name == **w && !p.name.starts_with("DeviceManagementServiceConfig"))
        })
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        sign_in::missing_scopes(&granted),
        ["DeviceManagementApps.Read.All"]
    );
    // A broader permission consented instead of the declared one is enough.
    let mut broader = granted.clone();
    broader.push("DeviceManagementApps.ReadWrite.All".into());
    assert!(sign_in::missing_scopes(&broader).is_empty());
}

/// Done follows its inputs every frame, for every step after the import: the import's identity
/// (its serial numbers, sorted) is computed once per stored job, not on every ask (issue 18,
/// point 14), and a changed job that is stored again is another identity.
#[test]
fn the_import_identity_is_computed_once_per_stored_job() {
    use autopilot_wizard::steps::import::{ImportJob, ImportRow, RowOutcome};
    use std::time::Instant;
    let rows = (0..9_000)
        .map(|i| ImportRow {
            serial: format!("SN{:08}", (i * 7919) % 100_000_000),
            file: "devices.csv".into(),
            line: i + 2,
            ..ImportRow::default()
        })
        .collect();
    let job = ImportJob::new(rows);
    let mut outcomes = Outcomes {
        import: Some(job.clone()),
        ..Outcomes::default()
    };
    let started = Instant::now();
    let first = outcomes.identity(StepId::Import).unwrap();
    let once = started.elapsed();
    let started = Instant::now();
    for _ in 0..100 {
        assert_eq!(outcomes.identity(StepId::Import).as_ref(), Some(&first));
    }
    let hundred = started.elapsed();
    assert!(
        hundred < once * 10,
        "100 asks took {hundred:?}, one computation {once:?}: recomputed on every ask"
    );
    // A row left out and the job stored again: another identity, computed afresh.
    let mut changed = job.clone();
    changed.rows[5].outcome = RowOutcome::Excluded {
        reason: "left out".into(),
    };
    outcomes.import = Some(changed);
    let now = outcomes.identity(StepId::Import).unwrap();
    assert_ne!(now, first);
    assert!(!now.contains(&job.rows[5].row.serial));
}
