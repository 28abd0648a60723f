//! The plan file: the shipped example parses, mistakes are refused with file, line and what to
//! write instead, and no input makes the parser panic (proptest).

use std::path::Path;
use std::time::Duration;

use autopilot_wizard::plan::{self, GroupPlan};
use autopilot_wizard::steps::group::RuleSpec;
use proptest::prelude::*;

fn example() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/example-plan.toml"),
    )
    .unwrap()
}

fn parse(text: &str) -> Result<plan::Plan, plan::PlanError> {
    plan::parse(text, "p.toml", Path::new("/plans"), false)
}

#[test]
fn the_shipped_example_plan_loads_with_its_files() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/example-plan.toml");
    let p = plan::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.tenant.id, "fabrikamdemo.onmicrosoft.com");
    assert_eq!(p.deployers.groups, vec!["IT Technicians".to_string()]);
    assert!(p.profile.create);
    assert_eq!(p.profile.form.device_name_template, "CON-%RAND:5%");
    assert!(matches!(&p.group, GroupPlan::Create { rule: None, .. }));
    assert_eq!(p.csv_files.len(), 2);
    assert!(p.csv_files.iter().all(|f| f.is_file()));
    assert_eq!(p.assignment_wait, Duration::from_secs(4 * 3600));
    assert!(
        p.report
            .html
            .as_ref()
            .unwrap()
            .ends_with("packaging/example-report.html")
    );
}

#[test]
fn group_kinds() {
    let tag = example().replace(
        "membership = \"assigned\"",
        "membership = \"group-tag\"\ngroup_tags = [\"HQ\", \"Branch\"]",
    );
    let p = parse(&tag).unwrap();
    assert_eq!(
        p.group,
        GroupPlan::Create {
            name: "Autopilot - Contoso office".into(),
            description: "Autopilot devices of the Contoso office".into(),
            rule: Some(RuleSpec::GroupTags(vec!["HQ".into(), "Branch".into()])),
        }
    );
    let existing = example()
        .replace("membership = \"assigned\"", "membership = \"existing\"")
        .replace(
            "description = \"Autopilot devices of the Contoso office\"\n",
            "",
        );
    assert!(matches!(
        parse(&existing).unwrap().group,
        GroupPlan::Existing { .. }
    ));
}

fn error(text: &str) -> plan::PlanError {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn unknown_keys_are_refused_with_the_line_and_the_keys_it_takes() {
    let text = example().replace("hide_eula = true", "hide_eul = true");
    let e = error(&text);
    assert_eq!(e.file, "p.toml");
    assert_eq!(e.line, line_of(&text, "hide_eul ="));
    assert!(e.message.contains("unknown field `hide_eul`"), "{e}");
    assert!(
        e.message.contains("hide_eula"),
        "names what to write instead: {e}"
    );
    let shown = e.to_string();
    assert!(shown.starts_with(&format!("p.toml:{}:", e.line)), "{shown}");
}

#[test]
fn bad_values_are_refused_with_the_line_and_what_to_write() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "cloud = \"global\"",
            "cloud = \"mars\"",
            "cloud =",
            "usgov-high",
        ),
        (
            "membership = \"assigned\"",
            "membership = \"dynamic\"",
            "membership =",
            "group-tag",
        ),
        (
            "assignment_wait = \"4h\"",
            "assignment_wait = \"soon\"",
            "assignment_wait",
            "30m",
        ),
        (
            "membership = \"assigned\"",
            "membership = \"group-tag\"",
            "membership =",
            "group_tags",
        ),
        (
            "device_name_template = \"CON-%RAND:5%\"",
            "device_name_template = \"THIS-NAME-IS-FAR-TOO-LONG\"",
            "device_name_template",
            "15",
        ),
        (
            "hide_eula = true",
            "hide_eula = \"yes\"",
            "hide_eula",
            "bool",
        ),
        (
            "# client_id = \"00000000-0000-0000-0000-000000000000\"",
            "client_id = \"my-app\"",
            "client_id =",
            "GUID",
        ),
        (
            "groups = [\"IT Technicians\"]",
            "groups = []",
            "[deployers]",
            "users =",
        ),
    ];
    for (from, to, line_with, says) in cases {
        let text = example().replace(from, to);
        assert_ne!(text, example(), "{from} is in the example");
        let e = error(&text);
        assert_eq!(e.line, line_of(&text, line_with), "{to}: {e}");
        assert!(e.to_string().contains(says), "{to}: {e}");
    }
}

#[test]
fn missing_csv_files_are_refused_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.toml");
    std::fs::write(&path, example()).unwrap();
    let e = plan::load(&path).unwrap_err();
    assert!(e.message.contains("does not exist"), "{e}");
    assert_eq!(e.line, line_of(&example(), "01-utf16-plain-hp.csv"));
}

/// Values the service would refuse only after the run had written to the tenant (issue 19,
/// point 3): each is refused on reading the plan, at its line, with what to write instead.
#[test]
fn values_the_service_would_refuse_are_refused_before_the_run() {
    let long_name = "x".repeat(201);
    let long_group = "g".repeat(257);
    let long_desc = "d".repeat(1025);
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "id = \"fabrikamdemo.onmicrosoft.com\"",
            "id = \"not a tenant/../x\"".into(),
            "id =",
            "neither a domain name nor a GUID",
        ),
        (
            "id = \"fabrikamdemo.onmicrosoft.com\"",
            "id = \"contoso\"".into(),
            "id =",
            "contoso.onmicrosoft.com",
        ),
        (
            "cloud = \"global\"",
            "cloud = \"global\"\ngraph_url = \"https://graph.microsoft.com/v1.0\"".into(),
            "graph_url",
            "only the scheme and the host",
        ),
        (
            "cloud = \"global\"",
            "cloud = \"global\"\nlogin_url = \"https://login.microsoftonline.com/?x=1\"".into(),
            "login_url",
            "login_url = \"https://login.microsoftonline.com\"",
        ),
        (
            "name = \"Contoso - user-driven\"",
            format!("name = \"{long_name}\""),
            "name = \"xxx",
            "at most 200",
        ),
        (
            "name = \"Autopilot - Contoso office\"",
            format!("name = \"{long_group}\""),
            "name = \"ggg",
            "at most 256",
        ),
        (
            "description = \"Autopilot devices of the Contoso office\"",
            format!("description = \"{long_desc}\""),
            "[group]",
            "at most 1024",
        ),
        (
            "membership = \"assigned\"",
            "membership = \"assigned\"\ntag_untagged = true".into(),
            "tag_untagged",
            "Remove tag_untagged",
        ),
    ];
    for (from, to, line_with, says) in &cases {
        let text = example().replace(from, to);
        assert_ne!(text, example(), "{from} is in the example");
        let e = error(&text);
        assert_eq!(e.line, line_of(&text, line_with), "{to}: {e}");
        assert!(
            e.to_string().contains(says),
            "{}: {e}",
            &to[..to.len().min(80)]
        );
        assert!(
            e.to_string().len() < 600,
            "a long value is not repeated whole: {e}"
        );
    }
    // A GUID is a tenant id as good as a domain; a root with a trailing slash is a root.
    let ok = example()
        .replace(
            "fabrikamdemo.onmicrosoft.com",
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
        )
        .replace(
            "cloud = \"global\"",
            "cloud = \"global\"\ngraph_url = \"https://graph.microsoft.com/\"",
        );
    let p = parse(&ok).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        p.tenant.graph_url.as_deref(),
        Some("https://graph.microsoft.com")
    );
}

/// Issue 19, point 11: every message says what to write.
#[test]
fn messages_say_what_to_write() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "assignment_wait = \"4h\"",
            "assignment_wait = \"0s\"",
            "assignment_wait",
            &["is zero", "e.g. assignment_wait = \"30m\""],
        ),
        (
            "assignment_wait = \"4h\"",
            "assignment_wait = \"-5m\"",
            "assignment_wait",
            &["negative", "positive number"],
        ),
        (
            "assignment_wait = \"4h\"",
            "assignment_wait = \"0\"",
            "assignment_wait",
            &["is zero"],
        ),
        (
            "groups = [\"IT Technicians\"]",
            "groups = \"IT Technicians\"",
            "groups =",
            &["expected a sequence", "groups = [\""],
        ),
        (
            "hide_eula = true",
            "hide_eula = \"yes\"",
            "hide_eula",
            &["hide_eula = true"],
        ),
    ];
    for (from, to, line_with, says) in cases {
        let text = example().replace(from, to);
        let e = error(&text);
        assert_eq!(e.line, line_of(&text, line_with), "{to}: {e}");
        for s in *says {
            assert!(e.to_string().contains(s), "{to}: {e} lacks {s}");
        }
    }
}

#[test]
fn a_plan_that_is_not_utf8_or_a_csv_that_is_a_folder_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.toml");
    let mut bytes = example().into_bytes();
    // "Contoso - user-driven" becomes "Contosó - …" in Latin-1 on its line.
    let at = String::from_utf8_lossy(&bytes)
        .find("Contoso - user")
        .unwrap()
        + 7;
    bytes.insert(at, 0xF3);
    std::fs::write(&path, &bytes).unwrap();
    let e = plan::load(&path).unwrap_err();
    assert!(
        e.to_string().contains("save it as UTF-8") || e.to_string().contains("Save it as UTF-8"),
        "{e}"
    );
    assert_eq!(e.line, line_of(&example(), "Contoso - user"), "{e}");

    let csv_dir = dir.path().join("devices");
    std::fs::create_dir(&csv_dir).unwrap();
    let text = example().replace(
        "\"../tests/fixtures/csv/01-utf16-plain-hp.csv\"",
        "\"devices\"",
    );
    let path = dir.path().join("folder.toml");
    std::fs::write(&path, text).unwrap();
    let e = plan::load(&path).unwrap_err();
    assert!(e.message.contains("is a folder, not a CSV file"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = parse(&text);
    }

    #[test]
    fn mutated_example_plans_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0usize..4, "\\PC{0,8}"), 1..6)
    ) {
        let mut text = example();
        for (at, kind, insert) in edits {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) { i -= 1; }
            match kind {
                0 => text.insert_str(i, &insert),
                1 => { let end = (i + insert.len().max(1)).min(text.len()); let mut end = end; while !text.is_char_boundary(end) { end -= 1; } text.replace_range(i..end, ""); }
                2 => { let line_start = text[..i].rfind('\n').map(|x| x + 1).unwrap_or(0); text.insert(line_start, '#'); }
                _ => { let mut end = (i + 3).min(text.len()); while !text.is_char_boundary(end) { end -= 1; } text.replace_range(i..end, &insert); }
            }
        }
        if let Err(e) = parse(&text) {
            // Every error points into the text.
            prop_assert!(e.line >= 1 && e.line <= text.lines().count().max(1) + 1, "{e}");
        }
    }
}

/// Issue 19, point 11: a 20-second wait is not "0 min", and the summary table keeps every line
/// of a problem (the rows to correct), not only the first.
#[test]
fn waits_and_multi_line_problems_are_told_whole() {
    use autopilot_wizard::run::{Exit, RunResult, cli::summary_table};
    use autopilot_wizard::steps::assignment::waited_words;
    assert_eq!(waited_words(Duration::from_secs(20)), "20 s");
    assert_eq!(waited_words(Duration::from_secs(600)), "10 min");
    assert_eq!(
        waited_words(Duration::from_secs(4 * 3600 + 60)),
        "4 h 1 min"
    );
    let table = summary_table(&[RunResult {
        plan: "p".into(),
        tenant: "contoso.onmicrosoft.com".into(),
        exit: Exit::BadInput,
        error: Some("The CSV files have problems:\n  a.csv, line 3: no hash".into()),
        report: None,
        report_files: Vec::new(),
        import_stats: None,
        devices: 0,
    }]);
    assert!(table.contains("a.csv, line 3: no hash"), "{table}");
}

/// Issue 15: `[deployment] wait` is optional, a positive duration, and its table takes no other key.
#[test]
fn the_deployment_wait_is_optional_and_checked_like_the_other_waits() {
    assert_eq!(parse(&example()).unwrap().deployment_wait, None);
    let with = |table: &str| format!("{}\n[deployment]\n{table}\n", example());
    assert_eq!(
        parse(&with("wait = \"2h\"")).unwrap().deployment_wait,
        Some(Duration::from_secs(7200))
    );
    for (table, says) in [
        (
            "wait = \"soon\"",
            &["wait \"soon\" is not a duration", "e.g. wait = \"2h\""][..],
        ),
        ("wait = \"0m\"", &["is zero"][..]),
        ("wait = \"-1h\"", &["negative"][..]),
        ("wiat = \"2h\"", &["unknown field `wiat`", "wait"][..]),
        ("", &["missing field `wait`"][..]),
    ] {
        let text = with(table);
        let e = error(&text);
        if !table.is_empty() {
            assert_eq!(e.line, line_of(&text, table), "{table}: {e}");
        }
        for s in says {
            assert!(e.to_string().contains(s), "{table}: {e} lacks {s}");
        }
    }
}
