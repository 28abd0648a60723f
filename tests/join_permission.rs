//! Step 2 (join permission and MDM scope) over HTTP against the simulated tenant.

use crate::support;

use autopilot_wizard::graph::GraphClient;
use autopilot_wizard::sim::directory::{JoinScope, MdmScope, PolicyShape};
use autopilot_wizard::sim::{SimConfig, SimHandle};
use autopilot_wizard::steps::join_permission::{
    self as jp, Deployer, JoinPermissionError, Policies, Scope,
};

async fn start() -> (SimHandle, GraphClient) {
    support::signed_in_sim(SimConfig::test()).await
}

fn user(sim: &SimHandle, alias: &str) -> Deployer {
    sim.with_state(|s| {
        let u = s
            .core
            .users
            .iter()
            .find(|u| u.user_principal_name.starts_with(&format!("{alias}@")))
            .unwrap_or_else(|| panic!("seeded user {alias}"));
        Deployer::User {
            id: u.id.clone(),
            name: u.display_name.clone(),
            upn: Some(u.user_principal_name.clone()),
        }
    })
}

fn group_id(sim: &SimHandle, name: &str) -> String {
    sim.with_state(|s| {
        s.directory
            .groups
            .iter()
            .find(|g| g.display_name == name)
            .unwrap_or_else(|| panic!("seeded group {name}"))
            .id
            .clone()
    })
}

/// A seeded group as the deployer the page would add.
fn seeded_group(sim: &SimHandle, name: &str) -> Deployer {
    Deployer::Group {
        id: group_id(sim, name),
        name: name.into(),
    }
}

fn set_policies(sim: &SimHandle, join: JoinScope, mdm: MdmScope) {
    sim.with_state(|s| {
        s.directory.registration_policy.join = join;
        s.directory.mdm_policies[0].scope = mdm;
    });
}

async fn check(graph: &GraphClient, deployers: &[Deployer]) -> (Policies, jp::CoverageReport) {
    let policies = jp::read_policies(graph).await.expect("policies readable");
    let report = jp::check_coverage(graph, &policies, deployers)
        .await
        .expect("coverage");
    (policies, report)
}

#[tokio::test]
async fn everyone_allowed_covers_any_user_and_validates() {
    let (sim, graph) = start().await;
    set_policies(&sim, JoinScope::All, MdmScope::All);
    let tomasz = user(&sim, "tomasz.wierzbicki");
    let (policies, report) = check(&graph, &[tomasz]).await;
    assert_eq!(policies.join, Scope::Everyone);
    assert_eq!(policies.mdm, Some(Scope::Everyone));
    assert_eq!(policies.user_device_quota, Some(20));
    assert!(
        report.rows[0].join.ok && report.rows[0].mdm.ok,
        "{report:?}"
    );
    assert_eq!(jp::validate(&policies, &report), Ok(()));
}

#[tokio::test]
async fn selected_covers_named_users_and_nested_group_members_only() {
    let (sim, graph) = start().await;
    let it = group_id(&sim, "IT Technicians");
    let lucia = user(&sim, "lucia.ferrandez");
    let rowan = user(&sim, "rowan.achterberg");
    let tomasz = user(&sim, "tomasz.wierzbicki");
    // "Device deployers" holds the IT Technicians group: Rowan is covered only through nesting.
    let deployers_group = sim.with_state(|s| {
        let mut g = s.directory.groups[0].clone();
        g.id = "11111111-2222-4333-8444-555555555555".into();
        g.display_name = "Device deployers".into();
        g.mail_nickname = "device-deployers".into();
        g.members = vec![it.clone()];
        s.directory.groups.push(g.clone());
        g.id
    });
    set_policies(
        &sim,
        JoinScope::Selected {
            users: vec![lucia.id().to_string()],
            groups: vec![deployers_group],
        },
        MdmScope::All,
    );
    let (policies, report) = check(&graph, &[lucia.clone(), rowan.clone(), tomasz.clone()]).await;
    match &policies.join {
        Scope::Selected { users, groups } => {
            assert_eq!(users[0].name, "Lucía Ferrández");
            assert_eq!(groups[0].name, "Device deployers");
        }
        other => panic!("expected selected, got {other:?}"),
    }
    let row = |d: &Deployer| report.rows.iter().find(|r| r.user_id == d.id()).unwrap();
    assert!(row(&lucia).join.ok);
    assert_eq!(row(&lucia).join.why, "named in the setting");
    assert!(row(&rowan).join.ok);
    assert_eq!(row(&rowan).join.why, "member of Device deployers");
    assert!(!row(&tomasz).join.ok);
    let todo = jp::validate(&policies, &report).unwrap_err();
    assert_eq!(todo.len(), 1, "{todo:?}");
    assert!(todo[0].contains("Tomasz Wierzbicki"), "{todo:?}");
    assert!(!todo[0].contains("Rowan"), "{todo:?}");
    assert!(todo[0].contains("Users may join devices to Microsoft Entra"));
    assert!(todo[0].contains("https://entra.microsoft.com"));
}

#[tokio::test]
async fn a_chosen_group_expands_to_its_users() {
    let (sim, graph) = start().await;
    // Demo seed: join = IT Technicians, MDM = All staff (holding IT Technicians nested).
    let (policies, report) = check(&graph, &[seeded_group(&sim, "IT Technicians")]).await;
    assert_eq!(report.rows.len(), 2, "{report:?}");
    for r in &report.rows {
        assert_eq!(r.via.as_deref(), Some("IT Technicians"));
        assert_eq!(r.join.why, "member of IT Technicians");
        assert_eq!(r.mdm.why, "member of All staff");
    }
    assert_eq!(jp::validate(&policies, &report), Ok(()));
}

#[tokio::test]
async fn nobody_allowed_and_mdm_none_give_both_instructions() {
    let (sim, graph) = start().await;
    set_policies(&sim, JoinScope::None, MdmScope::None);
    let rowan = user(&sim, "rowan.achterberg");
    let (policies, report) = check(&graph, &[rowan]).await;
    assert_eq!(policies.join, Scope::Nobody);
    assert_eq!(policies.mdm, Some(Scope::Nobody));
    assert_eq!(report.rows[0].join.why, "nobody is allowed");
    let todo = jp::validate(&policies, &report).unwrap_err().join("\n");
    assert!(todo.contains(jp::JOIN_SETTING_PATH), "{todo}");
    assert!(todo.contains(jp::MDM_SETTING_PATH), "{todo}");
}

#[tokio::test]
async fn mdm_selected_scope_uses_included_groups() {
    let (sim, graph) = start().await;
    let it = group_id(&sim, "IT Technicians");
    set_policies(&sim, JoinScope::All, MdmScope::Selected(vec![it]));
    let rowan = user(&sim, "rowan.achterberg");
    let aiko_or_tomasz = user(&sim, "tomasz.wierzbicki");
    let (policies, report) = check(&graph, &[rowan, aiko_or_tomasz]).await;
    match &policies.mdm {
        Some(Scope::Selected { groups, .. }) => assert_eq!(groups[0].name, "IT Technicians"),
        other => panic!("{other:?}"),
    }
    assert!(report.rows[0].mdm.ok);
    assert!(!report.rows[1].mdm.ok);
    let todo = jp::validate(&policies, &report).unwrap_err();
    assert_eq!(todo.len(), 1);
    assert!(todo[0].contains("Automatic Enrollment"), "{todo:?}");
}

#[tokio::test]
async fn missing_intune_entry_and_zero_quota_are_reported() {
    let (sim, graph) = start().await;
    sim.with_state(|s| {
        s.directory.registration_policy.join = JoinScope::All;
        s.directory.registration_policy.user_device_quota = 0;
        s.directory.mdm_policies.clear();
    });
    let rowan = user(&sim, "rowan.achterberg");
    let (policies, report) = check(&graph, &[rowan]).await;
    assert_eq!(policies.mdm, None);
    let todo = jp::validate(&policies, &report).unwrap_err().join("\n");
    assert!(todo.contains("No Microsoft Intune entry"), "{todo}");
    assert!(
        todo.contains("Maximum number of devices per user"),
        "{todo}"
    );
}

#[tokio::test]
async fn legacy_policy_shape_is_understood() {
    let (sim, graph) = start().await;
    let it = group_id(&sim, "IT Technicians");
    sim.with_state(|s| s.directory.registration_policy.shape = PolicyShape::Legacy);
    let (policies, report) = check(&graph, &[user(&sim, "imani.okafor")]).await;
    assert!(policies.legacy_shape);
    match &policies.join {
        Scope::Selected { groups, .. } => assert_eq!(groups[0].id, it),
        other => panic!("{other:?}"),
    }
    assert!(report.rows[0].join.ok);
    // The demo tenant asks for MFA to join (and Conditional Access asks too: sim/readiness.rs).
    assert_eq!(policies.mfa_required, Some(true));
}

#[tokio::test]
async fn forbidden_policy_read_names_the_permission_and_role() {
    let (sim, graph) = start().await;
    sim.with_state(|s| s.directory.access.deny_registration_policy = true);
    let err = jp::read_policies(&graph).await.unwrap_err();
    assert!(
        matches!(err, JoinPermissionError::Forbidden { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("Policy.Read.All"), "{text}");
    assert!(text.contains("Global Reader"), "{text}");
    sim.with_state(|s| {
        s.directory.access.deny_registration_policy = false;
        s.directory.access.deny_mdm_policies = true;
    });
    let err = jp::read_policies(&graph).await.unwrap_err();
    assert!(
        err.to_string().contains("MDM automatic-enrollment"),
        "{err}"
    );
}

#[tokio::test]
async fn a_group_without_users_does_not_validate() {
    let (sim, graph) = start().await;
    let (policies, report) = check(&graph, &[seeded_group(&sim, "Autopilot - All devices")]).await;
    assert!(report.rows.is_empty());
    let todo = jp::validate(&policies, &report).unwrap_err().join("\n");
    assert!(todo.contains("contains no users"), "{todo}");
}

#[tokio::test]
async fn sim_policy_bodies_match_the_schema() {
    let (sim, graph) = start().await;
    let current: serde_json::Value = graph
        .get_json(
            autopilot_wizard::graph::ApiVersion::V1,
            "/policies/deviceRegistrationPolicy",
        )
        .await
        .unwrap();
    let mut body = current.clone();
    body.as_object_mut().unwrap().remove("@odata.context");
    support::schema::assert_valid("v1.0", "microsoft.graph.deviceRegistrationPolicy", &body);
    let mdm: serde_json::Value = graph
        .get_json(
            autopilot_wizard::graph::ApiVersion::Beta,
            "/policies/mobileDeviceManagementPolicies",
        )
        .await
        .unwrap();
    let errors = support::schema::validate_collection(
        "beta",
        "microsoft.graph.mobilityManagementPolicy",
        &mdm,
    );
    assert!(errors.is_empty(), "{errors:?}");
    drop(sim);
}

#[tokio::test]
async fn a_token_without_policy_read_is_refused_with_the_permission_named() {
    let (sim, _graph) = start().await;
    let admin = sim.admin().user_principal_name;
    let token = sim.issue_token_with(
        &admin,
        &["Group.ReadWrite.All", "User.Read"],
        std::time::Duration::from_secs(600),
    );
    let graph = autopilot_wizard::graph::GraphClient::new(
        &sim.url(),
        std::sync::Arc::new(autopilot_wizard::graph::client::StaticToken(token)),
    );
    let err = jp::read_policies(&graph).await.unwrap_err();
    assert!(err.to_string().contains("Policy.Read.All"), "{err}");
}

#[tokio::test]
async fn search_offers_users_and_groups() {
    let (_sim, graph) = start().await;
    let hits = jp::search_deployers(&graph, "rowan").await.unwrap();
    assert!(
        hits.iter()
            .any(|d| matches!(d, Deployer::User { name, .. } if name == "Rowan Achterberg")),
        "{hits:?}"
    );
    let hits = jp::search_deployers(&graph, "technicians").await.unwrap();
    assert!(
        hits.iter()
            .any(|d| matches!(d, Deployer::Group { name, .. } if name == "IT Technicians")),
        "{hits:?}"
    );
    assert!(jp::search_deployers(&graph, "  ").await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// The page, driven through egui_kittest

mod page_ui {
    use super::*;
    use autopilot_wizard::steps::Outcomes;
    use autopilot_wizard::ui::join_permission::JoinPermissionPage;
    use autopilot_wizard::ui::{Msg, Page, StepStatus};
    use egui_kittest::kittest::Queryable;
    use support::ui::{click, click_link, runtime, type_into, wait_for_text};

    fn extract(m: Msg) -> Option<autopilot_wizard::ui::join_permission::Msg> {
        match m {
            Msg::JoinPermission(m) => Some(m),
            _ => None,
        }
    }

    fn search_and_add(
        h: &mut egui_kittest::Harness<'_, support::page::PageState<JoinPermissionPage>>,
        text: &str,
        add: &str,
    ) {
        type_into(h, "Search users or groups", text);
        click(h, "Search");
        click(h, add);
    }

    #[test]
    fn technicians_pass_and_the_office_manager_gets_instructions() {
        let rt = runtime();
        let (sim, graph) = rt.block_on(start());
        let mut h = support::page::page_harness(
            JoinPermissionPage::new(),
            graph,
            Outcomes::default(),
            rt.handle().clone(),
            extract,
        );
        h.run_ok();
        assert_eq!(h.state().page.status(), StepStatus::NotStarted);
        search_and_add(&mut h, "technicians", "Add IT Technicians (group)");
        wait_for_text(&mut h, "Every deploying user may join devices");
        assert!(
            h.query_by_label_contains("Rowan Achterberg (from IT Technicians)")
                .is_some()
        );
        assert_eq!(
            h.query_all_by_label_contains("Yes: member of IT Technicians")
                .count(),
            2,
            "both technicians may join"
        );
        assert!(h.query_by_label("• IT Technicians (group)").is_some());
        assert!(
            h.query_by_label_contains("at most 20 devices per user")
                .is_some()
        );
        assert!(h.state().page.validated());
        assert_eq!(
            h.state()
                .outcomes
                .join_permission
                .as_ref()
                .map(|o| o.validated),
            Some(true)
        );
        // Adding someone who may not join turns the verdict round, with the portal path.
        let lucia = format!("Add {}", user(&sim, "lucia.ferrandez").label());
        search_and_add(&mut h, "lucia", &lucia);
        assert!(!h.state().page.validated(), "a change needs a new check");
        wait_for_text(&mut h, "Not ready yet");
        assert!(
            h.query_by_label_contains("No: not named and not in IT Technicians")
                .is_some()
        );
        assert!(
            h.query_by_label_contains("Users may join devices to Microsoft Entra")
                .is_some()
        );
        assert!(!h.state().page.validated());
        assert_eq!(h.state().page.status(), StepStatus::NeedsAttention);
        // Every link on the page reaches the system's opener with its own address.
        for (label, url) in [
            ("Open Entra device settings", jp::JOIN_SETTING_URL),
            ("Open Intune automatic enrollment", jp::MDM_SETTING_URL),
            ("Microsoft guide: allow users to join", jp::JOIN_DOC_URL),
            ("Microsoft guide: automatic enrollment", jp::MDM_DOC_URL),
        ] {
            assert_eq!(click_link(&mut h, label), vec![url.to_string()], "{label}");
        }
        drop(h);
        drop(sim);
    }

    /// Issue 18: deployers are people; a group whose rule collects devices is not offered.
    #[test]
    fn device_groups_are_not_offered_as_deployers() {
        let rt = runtime();
        let (_sim, graph) = rt.block_on(start());
        let mut h = support::page::page_harness(
            JoinPermissionPage::new(),
            graph,
            Outcomes::default(),
            rt.handle().clone(),
            extract,
        );
        h.run_ok();
        type_into(&mut h, "Search users or groups", "a");
        click(&mut h, "Search");
        wait_for_text(&mut h, "Add All staff (group)");
        assert!(
            h.query_by_label_contains("Autopilot - All devices")
                .is_none(),
            "{}",
            support::ui::visible_labels(&h)
        );
    }

    #[test]
    fn a_refused_policy_read_is_shown_with_the_permission() {
        let rt = runtime();
        let (sim, graph) = rt.block_on(start());
        sim.with_state(|s| s.directory.access.deny_registration_policy = true);
        let mut h = support::page::page_harness(
            JoinPermissionPage::new(),
            graph,
            Outcomes::default(),
            rt.handle().clone(),
            extract,
        );
        h.run_ok();
        search_and_add(
            &mut h,
            "rowan",
            &format!("Add {}", user(&sim, "rowan.achterberg").label()),
        );
        wait_for_text(&mut h, "Policy.Read.All");
        assert!(!h.state().page.validated());
    }
}
