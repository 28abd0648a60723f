//! Step 4 (device group) over HTTP against the simulated tenant, plus the directory endpoints
//! other steps rely on (members, devices).

use crate::support;

use std::time::{Duration, Instant};

use autopilot_wizard::graph::models::directory::{Device, NewGroup, ObjectRef};
use autopilot_wizard::graph::{ApiVersion, GraphClient};
use autopilot_wizard::sim::{self, SimConfig, SimHandle};
use autopilot_wizard::steps::group::{
    self, CreateOutcome, Field, GroupError, GroupKind, GroupSpec, ReadBackPolicy, RuleSpec,
};
use serde_json::Value;

async fn start() -> (SimHandle, GraphClient) {
    support::signed_in_sim(SimConfig::test()).await
}

const QUICK: ReadBackPolicy = ReadBackPolicy {
    attempts: 40,
    delay: Duration::from_millis(25),
};

fn spec(name: &str, rule: Option<RuleSpec>) -> GroupSpec {
    GroupSpec {
        display_name: name.into(),
        description: "Created by the directory tests".into(),
        rule,
    }
}

/// The body the step sends must be a valid `microsoft.graph.group` (v1.0).
fn assert_body_valid(body: &NewGroup) {
    let v = serde_json::to_value(body).unwrap();
    support::schema::assert_valid("v1.0", "microsoft.graph.group", &v);
}

fn count_named(sim: &SimHandle, name: &str) -> usize {
    sim.with_state(|s| {
        s.directory
            .groups
            .iter()
            .filter(|g| g.display_name == name)
            .count()
    })
}

async fn create(
    graph: &GraphClient,
    spec: &GroupSpec,
) -> autopilot_wizard::graph::models::directory::Group {
    match group::create_group(graph, spec).await.expect("create") {
        CreateOutcome::Created(g) => g,
        CreateOutcome::Exists(g) => panic!("unexpectedly existed: {g:?}"),
    }
}

#[tokio::test]
async fn dynamic_group_for_group_tags_is_created_and_read_back() {
    let (sim, graph) = start().await;
    let s = spec(
        "Autopilot - Sales and HR",
        Some(RuleSpec::GroupTags(vec!["Sales".into(), "HR".into()])),
    );
    let body = group::new_group_body(&s, "autopilot-sales-and-hr").unwrap();
    assert_body_valid(&body);
    let created = create(&graph, &s).await;
    assert_eq!(
        created.mail_nickname.as_deref(),
        Some("autopilot-sales-and-hr")
    );
    let read = group::read_back(&graph, &created.id, QUICK).await.unwrap();
    let expected = GroupKind::Dynamic {
        rule: group::build_rule(s.rule.as_ref().unwrap()).unwrap(),
    };
    assert_eq!(read.group.kind, expected);
    assert_eq!(read.processing_state.as_deref(), Some("On"));
    assert!(
        read.processing_status.is_some(),
        "beta status read: {read:?}"
    );
    assert_eq!(group::validate(&read, &expected), Ok(()));
    assert!(group::validate(&read, &GroupKind::Static).is_err());
    let stored = sim.with_state(|st| st.directory.group(&created.id).unwrap().clone());
    assert!(stored.membership_rule.unwrap().contains("[OrderID]:HR"));
}

#[tokio::test]
async fn all_autopilot_and_purchase_order_rules_are_accepted_by_the_tenant() {
    let (_sim, graph) = start().await;
    for (name, rule) in [
        ("Autopilot - every device", RuleSpec::AllAutopilot),
        (
            "Autopilot - PO 4711",
            RuleSpec::PurchaseOrder("PO-4711".into()),
        ),
    ] {
        let s = spec(name, Some(rule.clone()));
        assert_body_valid(&group::new_group_body(&s, "x").unwrap());
        let g = create(&graph, &s).await;
        let read = group::read_back(&graph, &g.id, QUICK).await.unwrap();
        match &read.group.kind {
            GroupKind::Dynamic { rule: text } => assert_eq!(group::parse_rule(text), Ok(rule)),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn static_group_is_created_without_rule_properties() {
    let (_sim, graph) = start().await;
    let s = spec("Autopilot - hand picked", None);
    let body = group::new_group_body(&s, "autopilot-hand-picked").unwrap();
    assert_body_valid(&body);
    let v = serde_json::to_value(&body).unwrap();
    assert!(v.get("membershipRule").is_none(), "{v}");
    assert_eq!(v["groupTypes"], serde_json::json!([]));
    let g = create(&graph, &s).await;
    let read = group::read_back(&graph, &g.id, QUICK).await.unwrap();
    assert_eq!(read.group.kind, GroupKind::Static);
    assert_eq!(group::validate(&read, &GroupKind::Static), Ok(()));
}

#[tokio::test]
async fn an_existing_group_with_the_same_name_is_offered_not_duplicated() {
    let (sim, graph) = start().await;
    // Seeded in the demo tenant.
    let s = spec("autopilot - all devices", Some(RuleSpec::AllAutopilot));
    let before = sim.with_state(|st| st.directory.groups.len());
    match group::create_group(&graph, &s).await.unwrap() {
        CreateOutcome::Exists(g) => {
            assert_eq!(g.display_name.as_deref(), Some("Autopilot - All devices"));
            assert_eq!(group::assess_existing(&g), Ok(None));
        }
        other => panic!("expected the existing group, got {other:?}"),
    }
    assert_eq!(sim.with_state(|st| st.directory.groups.len()), before);
    // Re-running a create of our own after replication finds it too.
    let mine = spec("Autopilot - Lab", None);
    let g = create(&graph, &mine).await;
    group::read_back(&graph, &g.id, QUICK).await.unwrap();
    assert!(matches!(
        group::create_group(&graph, &mine).await.unwrap(),
        CreateOutcome::Exists(_)
    ));
    assert_eq!(count_named(&sim, "Autopilot - Lab"), 1);
}

#[tokio::test]
async fn bad_rules_are_stopped_on_the_form_and_tenant_rejections_are_surfaced() {
    let (_sim, graph) = start().await;
    let s = spec(
        "Autopilot - quotes",
        Some(RuleSpec::GroupTags(vec!["bad\"tag".into()])),
    );
    match group::create_group(&graph, &s).await {
        Err(GroupError::Invalid(errors)) => assert_eq!(errors[0].field, Field::GroupTags),
        other => panic!("{other:?}"),
    }
    let empty = spec("  ", None);
    assert_eq!(group::check_spec(&empty)[0].field, Field::DisplayName);
    // A rule the tenant refuses: the 400's message reaches the user.
    let mut body = group::new_group_body(
        &spec("Autopilot - broken", Some(RuleSpec::AllAutopilot)),
        "autopilot-broken",
    )
    .unwrap();
    body.membership_rule = Some("(device.devicePhysicalIds -any _ -eq \"[ZTDId]\")".into());
    match group::post_group(&graph, &body).await {
        Err(e @ GroupError::Rejected { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("Dynamic membership rule validation error"),
                "{text}"
            );
            assert!(text.contains("Request_BadRequest"), "{text}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn mail_nickname_is_derived_and_made_unique() {
    let (sim, graph) = start().await;
    // Another group already uses the derived nickname under a different name.
    let taken = spec("Sales devices (old)", None);
    let body = group::new_group_body(&taken, "autopilot-sales").unwrap();
    group::post_group(&graph, &body).await.unwrap();
    // The tenant refuses a second group with the same nickname.
    let dup = group::post_group(
        &graph,
        &group::new_group_body(&spec("X", None), "autopilot-sales").unwrap(),
    )
    .await;
    assert!(matches!(dup, Err(GroupError::Rejected { .. })), "{dup:?}");
    sim.with_state(|s| {
        for g in &mut s.directory.groups {
            g.visible_after = Instant::now();
        }
    });
    let g = create(
        &graph,
        &spec(
            "Autopilot: Sales",
            Some(RuleSpec::GroupTags(vec!["Sales".into()])),
        ),
    )
    .await;
    assert_eq!(g.mail_nickname.as_deref(), Some("autopilot-sales-2"));
    // Invalid characters never reach Graph; the tenant would refuse them.
    let bad = group::post_group(
        &graph,
        &group::new_group_body(&spec("Y", None), "a b@c").unwrap(),
    )
    .await;
    match bad {
        Err(e @ GroupError::Rejected { .. }) => assert!(e.to_string().contains("mailNickname")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn read_back_retries_while_the_new_group_replicates() {
    let (sim, graph) = start().await;
    // 4000 service seconds at test speed: 200 ms of real time invisible after the create.
    sim.with_state(|s| s.directory.replication_delay = Duration::from_secs(4000));
    let g = create(&graph, &spec("Autopilot - slow", None)).await;
    let read = group::read_back(&graph, &g.id, QUICK).await.unwrap();
    assert!(
        read.attempts > 1,
        "the first read should have met a 404: {read:?}"
    );
    let g2 = create(&graph, &spec("Autopilot - slower", None)).await;
    let once = ReadBackPolicy {
        attempts: 1,
        delay: Duration::from_millis(1),
    };
    assert!(matches!(
        group::read_back(&graph, &g2.id, once).await,
        Err(GroupError::NotReplicated { attempts: 1 })
    ));
}

#[tokio::test]
async fn search_finds_groups_by_word_prefix() {
    let (_sim, graph) = start().await;
    let hits = group::search_groups(&graph, "autop").await.unwrap();
    assert_eq!(hits.len(), 1);
    assert!(hits[0].is_dynamic());
    let hits = group::search_groups(&graph, "technic").await.unwrap();
    assert_eq!(hits[0].display_name.as_deref(), Some("IT Technicians"));
    assert!(
        group::assess_existing(&hits[0])
            .unwrap()
            .unwrap()
            .contains("assigned (static)")
    );
    assert!(
        group::search_groups(&graph, "nothing-like-this")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn sim_group_and_device_bodies_match_the_schema() {
    let (sim, graph) = start().await;
    let page: Value = graph.get_json(ApiVersion::V1, "/groups").await.unwrap();
    let errors = support::schema::validate_collection("v1.0", "microsoft.graph.group", &page);
    assert!(errors.is_empty(), "{errors:?}");
    let did = sim.with_state(|s| {
        sim::directory::register_autopilot_device_object(s, "SER-1", "ztd-1", Some("Sales"), None)
    });
    let page: Value = graph
        .get_json(
            ApiVersion::V1,
            &format!("/devices?$filter=deviceId%20eq%20'{did}'"),
        )
        .await
        .unwrap();
    let errors = support::schema::validate_collection("v1.0", "microsoft.graph.device", &page);
    assert!(errors.is_empty(), "{errors:?}");
    let devices: Vec<Device> = serde_json::from_value(page["value"].clone()).unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].display_name.as_deref(), Some("SER-1"));
    assert!(
        devices[0]
            .physical_ids
            .contains(&"[OrderID]:Sales".to_string())
    );
    // v1.0 does not know the beta processing status.
    let err = graph
        .get_json::<Value>(
            ApiVersion::V1,
            "/groups?$select=id,membershipRuleProcessingStatus",
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
}

#[tokio::test]
async fn static_membership_add_duplicate_remove_and_dynamic_refusal() {
    let (sim, graph) = start().await;
    let did = sim.with_state(|s| {
        sim::directory::register_autopilot_device_object(s, "SER-2", "ztd-2", None, None)
    });
    let object_id = sim.with_state(|s| s.directory.device_by_device_id(&did).unwrap().id.clone());
    let g = create(&graph, &spec("Autopilot - manual", None)).await;
    group::read_back(&graph, &g.id, QUICK).await.unwrap();
    let r = ObjectRef {
        odata_id: format!("https://graph.microsoft.com/v1.0/directoryObjects/{object_id}"),
    };
    let path = format!("/groups/{}/members/$ref", g.id);
    let ok = graph
        .post_no_content(ApiVersion::V1, &path, Some(&r))
        .await
        .unwrap();
    assert_eq!(ok.status, 204);
    let dup = graph
        .post_no_content(ApiVersion::V1, &path, Some(&r))
        .await
        .unwrap_err();
    assert!(
        dup.to_string()
            .contains("One or more added object references already exist"),
        "{dup}"
    );
    let members: Vec<Device> = graph
        .get_all(
            ApiVersion::V1,
            &format!("/groups/{}/members/microsoft.graph.device", g.id),
        )
        .await
        .unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].device_id.as_deref(), Some(did.as_str()));
    graph
        .delete(
            ApiVersion::V1,
            &format!("/groups/{}/members/{object_id}/$ref", g.id),
        )
        .await
        .unwrap();
    let dynamic = sim.with_state(|s| {
        s.directory
            .groups
            .iter()
            .find(|g| g.is_dynamic())
            .unwrap()
            .id
            .clone()
    });
    let refused = graph
        .post_no_content(
            ApiVersion::V1,
            &format!("/groups/{dynamic}/members/$ref"),
            Some(&r),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(400));
}

// ---------------------------------------------------------------------------------------------
// The page, driven through egui_kittest

mod page_ui {
    use super::*;
    use autopilot_wizard::steps::Outcomes;
    use autopilot_wizard::steps::profile::{self, ProfileForm, ProfileRef};
    use autopilot_wizard::ui::group::GroupPage;
    use autopilot_wizard::ui::{Msg, Page, StepStatus};
    use egui_kittest::kittest::Queryable;
    use support::ui::{click, runtime, type_into, wait_for_text};

    fn extract(m: Msg) -> Option<autopilot_wizard::ui::group::Msg> {
        match m {
            Msg::Group(m) => Some(m),
            _ => None,
        }
    }

    async fn user_driven_profile(graph: &GraphClient) -> ProfileRef {
        let existing: Vec<String> = profile::list_profiles(graph)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.display_name)
            .collect();
        let valid = profile::validate(&ProfileForm::default(), &existing).unwrap();
        let created = profile::create_profile(graph, &valid).await.unwrap();
        ProfileRef::from(&created.profile)
    }

    #[test]
    fn create_a_tag_group_read_it_back_and_assign_the_profile() {
        let rt = runtime();
        let (sim, graph) = rt.block_on(start());
        let profile = rt.block_on(user_driven_profile(&graph));
        let outcomes = Outcomes {
            profile: Some(profile.clone()),
            ..Outcomes::default()
        };
        let mut h = support::page::page_harness(
            GroupPage::new(),
            graph,
            outcomes,
            rt.handle().clone(),
            extract,
        );
        h.run_ok();
        assert_eq!(h.state().page.status(), StepStatus::NotStarted);
        // An empty name is caught on the form, next to the field.
        click(&mut h, "Create group and assign the profile");
        assert!(h.query_by_label("Enter a group name.").is_some());
        type_into(&mut h, "Group name", "Autopilot - Sales laptops");
        h.run_ok();
        assert!(
            h.query_by_label("Enter a group name.").is_none(),
            "the message outlived the empty name"
        );
        click(&mut h, "Devices with these group tags (dynamic)");
        type_into(&mut h, "Group tags (comma-separated)", "Sales, Sales-NL");
        wait_for_text(
            &mut h,
            r#"Rule: (device.devicePhysicalIds -any (_ -eq "[OrderID]:Sales")) -or (device.devicePhysicalIds -any (_ -eq "[OrderID]:Sales-NL"))"#,
        );
        // Issue 18: one action creates the group and assigns the profile, both read back.
        click(&mut h, "Create group and assign the profile");
        wait_for_text(&mut h, "Read back from Microsoft Entra and as expected.");
        assert!(h.query_by_label("Membership: dynamic").is_some());
        wait_for_text(&mut h, "confirmed by reading the assignments back");
        assert_eq!(
            sim.with_state(|s| s
                .profiles
                .assignments
                .iter()
                .filter(|a| a.profile_id == profile.id)
                .count()),
            1
        );
        // The demo's old "all devices" profile is older and wins: Next stays closed until the
        // person says they will fix it in Intune.
        assert!(!h.state().page.validated());
        assert_eq!(h.state().page.status(), StepStatus::NeedsAttention);
        click(&mut h, "I will remove that assignment in Intune, continue");
        assert!(h.state().page.validated());
        assert_eq!(h.state().page.status(), StepStatus::NeedsAttention);
        let stored = h.state().outcomes.group.clone().expect("group saved");
        assert_eq!(stored.display_name, "Autopilot - Sales laptops");
        assert_eq!(count_named(&sim, "Autopilot - Sales laptops"), 1);
        // The demo's old "all devices" profile targets this group's devices too, and is older.
        assert!(
            h.query_by_label_contains("the oldest profile wins")
                .is_some(),
            "conflict warning shown"
        );
    }

    #[test]
    fn an_existing_name_offers_the_existing_group() {
        let rt = runtime();
        let (sim, graph) = rt.block_on(start());
        let mut h = support::page::page_harness(
            GroupPage::new(),
            graph,
            Outcomes::default(),
            rt.handle().clone(),
            extract,
        );
        h.run_ok();
        type_into(&mut h, "Group name", "Autopilot - All devices");
        let before = sim.with_state(|s| s.directory.groups.len());
        click(&mut h, "Create group");
        wait_for_text(&mut h, "already exists, so no second one was created");
        click(&mut h, "Use the existing group");
        wait_for_text(&mut h, "Read back from Microsoft Entra and as expected.");
        assert_eq!(sim.with_state(|s| s.directory.groups.len()), before);
        // No profile chosen in step 3: the page says so instead of offering the assignment.
        assert!(
            h.query_by_label_contains("Choose or create a deployment profile in step 3")
                .is_some()
        );
        assert!(!h.state().page.validated());
    }

    /// The wizard's own assignment can be undone, also where nothing competes with it (issue
    /// 18: a wrong group is undone from here in every case): the assignment it created is
    /// deleted and read back gone.
    #[test]
    fn the_assignment_the_wizard_made_can_be_undone() {
        let rt = runtime();
        let (sim, graph) = rt.block_on(start());
        // No older profile on any group: the plain case.
        sim.with_state(|s| s.profiles.assignments.clear());
        let profile = rt.block_on(user_driven_profile(&graph));
        let outcomes = Outcomes {
            profile: Some(profile.clone()),
            ..Outcomes::default()
        };
        let mut h = support::page::page_harness(
            GroupPage::new(),
            graph,
            outcomes,
            rt.handle().clone(),
            extract,
        );
        h.run_ok();
        type_into(&mut h, "Group name", "Autopilot - Wrong group");
        click(&mut h, "Create group and assign the profile");
        wait_for_text(&mut h, "Read back from Microsoft Entra and as expected.");
        wait_for_text(&mut h, "confirmed by reading the assignments back");
        let assigned = |sim: &autopilot_wizard::sim::SimHandle| {
            sim.with_state(|s| {
                s.profiles
                    .assignments
                    .iter()
                    .filter(|a| a.profile_id == profile.id)
                    .count()
            })
        };
        assert_eq!(assigned(&sim), 1);
        assert!(
            h.query_by_label("I will remove that assignment in Intune, continue")
                .is_none(),
            "nothing competes"
        );
        click(&mut h, "Undo: remove the assignment this wizard made");
        wait_for_text(&mut h, "that this wizard made; read back, it is gone");
        assert_eq!(assigned(&sim), 0, "the assignment was deleted");
        assert!(!h.state().page.validated());
        assert!(
            h.query_by_label("I will remove that assignment in Intune, continue")
                .is_none()
        );
    }

    /// Search offers only groups that can hold devices; Microsoft 365, mail-only and
    /// user-rule groups are listed as such, without a "Use" button.
    #[test]
    fn only_groups_that_can_hold_devices_are_offered() {
        let rt = runtime();
        let (sim, graph) = rt.block_on(start());
        sim.with_state(|s| {
            let base = s.directory.groups[0].clone();
            let mk = |id: &str, name: &str| {
                let mut g = base.clone();
                g.id = id.into();
                g.display_name = name.into();
                g.mail_nickname = id.into();
                g.members.clear();
                g.group_types.clear();
                g.membership_rule = None;
                g.membership_rule_processing_state = None;
                g
            };
            let mut m365 = mk("11111111-0000-0000-0000-000000000001", "Sales team");
            m365.group_types = vec!["Unified".into()];
            m365.mail_enabled = true;
            let mut list = mk("11111111-0000-0000-0000-000000000002", "Sales mailing list");
            list.security_enabled = false;
            list.mail_enabled = true;
            let mut users = mk("11111111-0000-0000-0000-000000000003", "Sales staff");
            users.group_types = vec!["DynamicMembership".into()];
            users.membership_rule = Some("(user.department -eq \"Sales\")".into());
            users.membership_rule_processing_state = Some("On".into());
            let devices = mk("11111111-0000-0000-0000-000000000004", "Sales laptops");
            s.directory.groups.extend([m365, list, users, devices]);
        });
        let mut h = support::page::page_harness(
            GroupPage::new(),
            graph,
            Outcomes::default(),
            rt.handle().clone(),
            extract,
        );
        h.run_ok();
        click(&mut h, "Use an existing group");
        type_into(&mut h, "Search groups", "sales");
        click(&mut h, "Find groups");
        wait_for_text(&mut h, "Not device groups (cannot be used)");
        assert!(h.query_by_label("Use Sales laptops").is_some());
        for name in ["Sales team", "Sales mailing list", "Sales staff"] {
            assert!(
                h.query_by_label(&format!("Use {name}")).is_none(),
                "{name} is offered"
            );
        }
        assert!(
            h.query_by_label_contains("Sales team is a Microsoft 365 group")
                .is_some()
        );
        assert!(
            h.query_by_label_contains("Sales mailing list is not a security group")
                .is_some()
        );
        assert!(
            h.query_by_label_contains("Sales staff collects users by its rule")
                .is_some()
        );
        // Issue 18: assigned groups of people are not device groups either.
        type_into(&mut h, "Search groups", "");
        h.get_by_role_and_label(egui::accesskit::Role::TextInput, "Search groups")
            .focus();
        for _ in 0..10 {
            h.key_press(egui::Key::Backspace);
        }
        h.get_by_role_and_label(egui::accesskit::Role::TextInput, "Search groups")
            .type_text("all");
        h.run_ok();
        click(&mut h, "Find groups");
        wait_for_text(&mut h, "All staff holds users, not devices.");
        assert!(h.query_by_label("Use All staff").is_none());
        assert!(h.query_by_label("Use Autopilot - All devices").is_some());
        type_into(&mut h, "Search groups", "");
        for _ in 0..10 {
            h.key_press(egui::Key::Backspace);
        }
        h.get_by_role_and_label(egui::accesskit::Role::TextInput, "Search groups")
            .type_text("technic");
        h.run_ok();
        click(&mut h, "Find groups");
        wait_for_text(&mut h, "IT Technicians holds users, not devices.");
        assert!(h.query_by_label("Use IT Technicians").is_none());
    }
}

/// `PATCH /groups/{id}` with `members@odata.bind`: Graph's limits and errors, all or nothing.
#[tokio::test]
async fn patch_members_bind_limits_and_errors() {
    use autopilot_wizard::sim::directory::MAX_LINK_CHANGES;
    let (sim, _graph) = support::signed_in_sim(support::tenant::empty_config()).await;
    let token = sim.issue_token(&sim.admin().user_principal_name);
    let (group, objects) = sim.with_state(|s| {
        let dids: Vec<String> = (0..22)
            .map(|i| support::tenant::add_device(s, &format!("PB-{i:03}"), "", true).1)
            .collect();
        let group = support::tenant::add_group(s, "Patch bind", None, vec![]);
        (group, dids)
    });
    let objects: Vec<String> = objects
        .iter()
        .map(|d| support::tenant::object_id_of(&sim, d))
        .collect();
    let url = |id: &str| format!("{}/v1.0/directoryObjects/{id}", sim.url());
    let http = support::raw_http();
    let patch = |refs: Vec<String>| {
        http.patch(format!("{}/v1.0/groups/{group}", sim.url()))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "members@odata.bind": refs }))
            .send()
    };
    let members = || sim.with_state(|s| s.directory.group(&group).unwrap().members.len());

    // More than 20 link changes: refused, nothing added.
    let too_many: Vec<String> = objects[..MAX_LINK_CHANGES + 1]
        .iter()
        .map(|o| url(o))
        .collect();
    let resp = patch(too_many).await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more than 20 link changes"),
        "{body}"
    );
    assert_eq!(members(), 0);

    // Twenty: accepted.
    let twenty: Vec<String> = objects[..20].iter().map(|o| url(o)).collect();
    assert_eq!(patch(twenty).await.unwrap().status(), 204);
    assert_eq!(members(), 20);

    // One already a member among new ones: 400, and the new one is not added either.
    let mixed = vec![url(&objects[20]), url(&objects[0])];
    let resp = patch(mixed).await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already exist"),
        "{body}"
    );
    assert_eq!(members(), 20, "all or nothing");

    // An object that does not exist: 404, nothing added.
    let unknown = vec![
        url(&objects[21]),
        url("00000000-0000-4000-8000-000000000000"),
    ];
    assert_eq!(patch(unknown).await.unwrap().status(), 404);
    // A relative reference is not a directory object URL.
    let relative = vec![format!("directoryObjects/{}", objects[21])];
    assert_eq!(patch(relative).await.unwrap().status(), 400);
    assert_eq!(members(), 20);
}
