//! Issue 15: the checks that predict an OOBE failure (steps/readiness.rs) over HTTP against the
//! simulated tenant, the tenant's wire format for them, and each check on its page: broken
//! tenant, then fixed.

use serde_json::{Value, json};

use crate::support;

use autopilot_wizard::graph::GraphClient;
use autopilot_wizard::sim::directory::JoinScope;
use autopilot_wizard::sim::readiness as simr;
use autopilot_wizard::sim::{SimConfig, SimHandle};
use autopilot_wizard::steps::join_permission::Deployer;
use autopilot_wizard::steps::readiness::{self as rd, Finding, Level};

async fn start() -> (SimHandle, GraphClient) {
    support::signed_in_sim(SimConfig::test()).await
}

fn user_id(sim: &SimHandle, alias: &str) -> String {
    sim.with_state(|s| {
        s.core
            .users
            .iter()
            .find(|u| u.user_principal_name.starts_with(&format!("{alias}@")))
            .unwrap_or_else(|| panic!("seeded user {alias}"))
            .id
            .clone()
    })
}

fn user(sim: &SimHandle, alias: &str) -> Deployer {
    sim.with_state(|s| {
        let u = s
            .core
            .users
            .iter()
            .find(|u| u.user_principal_name.starts_with(&format!("{alias}@")))
            .unwrap();
        Deployer::User {
            id: u.id.clone(),
            name: u.display_name.clone(),
            upn: Some(u.user_principal_name.clone()),
        }
    })
}

fn group(sim: &SimHandle, name: &str) -> Deployer {
    let id = sim.with_state(|s| {
        s.directory
            .groups
            .iter()
            .find(|g| g.display_name == name)
            .unwrap()
            .id
            .clone()
    });
    Deployer::Group {
        id,
        name: name.into(),
    }
}

fn technicians(sim: &SimHandle) -> Vec<Deployer> {
    vec![group(sim, "IT Technicians")]
}

fn find(findings: &[Finding], c: autopilot_wizard::steps::validate::CheckId) -> &Finding {
    findings
        .iter()
        .find(|f| f.check == c)
        .unwrap_or_else(|| panic!("{c:?} in {findings:#?}"))
}

fn text(f: &Finding) -> String {
    format!(
        "{} | {} | {} | {}",
        f.summary,
        f.details.join(" | "),
        f.at_oobe.clone().unwrap_or_default(),
        f.fix.clone().unwrap_or_default()
    )
}

/// The demo tenant as the README story meets it: the technicians pass everything that fails a
/// deployment; what remains are warnings.
#[tokio::test]
async fn the_demo_technicians_meet_warnings_only() {
    let (sim, graph) = start().await;
    let f = rd::check_deployers(&graph, &technicians(&sim), Some(3)).await;
    assert_eq!(f.len(), 6);
    assert!(
        f.iter()
            .all(|x| matches!(x.level, Level::Pass | Level::Warning)),
        "{f:#?}"
    );
    assert_eq!(find(&f, rd::CHECK_LICENCES).level, Level::Pass);
    let reg = find(&f, rd::CHECK_REGISTRATION);
    assert_eq!(reg.level, Level::Warning);
    assert!(
        text(reg).contains("Require MFA to register or join devices"),
        "{}",
        text(reg)
    );
    assert!(text(reg).contains("Rowan Achterberg has joined 18 devices (2 more allowed)"));
    assert_eq!(reg.action, Some(rd::Action::TurnOffMfaToJoin));
    let ca = find(&f, rd::CHECK_CONDITIONAL_ACCESS);
    assert_eq!(ca.level, Level::Warning);
    assert!(ca.summary.contains("Report-only"), "{}", ca.summary);
    assert!(ca.summary.contains("Microsoft Intune Enrollment"));
    assert!(!text(ca).contains("Block legacy authentication\": report-only"));
    assert_eq!(find(&f, rd::CHECK_RESTRICTIONS).level, Level::Pass);
    let mdm = find(&f, rd::CHECK_MDM_GROUPS);
    assert_eq!(mdm.level, Level::Warning);
    assert!(
        mdm.summary.contains("\"Autopilot - All devices\""),
        "{}",
        mdm.summary
    );
    let b = find(&f, rd::CHECK_BRANDING);
    assert_eq!(b.level, Level::Warning);
    assert!(b.at_oobe.as_deref().unwrap().contains("sign-in page"));
}

#[tokio::test]
async fn a_deployer_without_intune_is_named_with_the_free_seats() {
    let (sim, graph) = start().await;
    let f = rd::check_deployers(&graph, &[user(&sim, "lucia.ferrandez")], None).await;
    let l = find(&f, rd::CHECK_LICENCES);
    assert_eq!(l.level, Level::Fail);
    assert!(
        l.summary.starts_with("Lucía Ferrández has no Intune"),
        "{}",
        l.summary
    );
    assert!(
        text(l).contains("Microsoft 365 Business Premium (SPB): 3 free of 10"),
        "{}",
        text(l)
    );
    assert!(text(l).contains("Identifying"));
    assert!(l.fix.as_deref().unwrap().contains("3 free seats"));
    // Her group's restriction blocks Windows.
    let r = find(&f, rd::CHECK_RESTRICTIONS);
    assert_eq!(r.level, Level::Fail);
    assert!(
        r.summary.contains("Front desk: no Windows enrollment"),
        "{}",
        r.summary
    );
    assert!(text(r).contains("does not apply to devices enrolled with Windows Autopilot"));

    // Licensed, and provisioned: passes. Assigned but still pending: fails, with the status.
    let id = user_id(&sim, "lucia.ferrandez");
    sim.with_state(|s| {
        s.readiness.licences.remove(&id);
        s.readiness.assign(&id, simr::SKU_BUSINESS_PREMIUM);
    });
    let users = rd::deploying_users(&graph, &[user(&sim, "lucia.ferrandez")])
        .await
        .unwrap();
    assert_eq!(rd::check_licences(&graph, &users).await.level, Level::Pass);
    sim.with_state(|s| {
        s.readiness.licences.get_mut(&id).unwrap()[0]
            .plan_status
            .insert(simr::INTUNE_A.into(), "PendingProvisioning".into());
    });
    let l = rd::check_licences(&graph, &users).await;
    assert_eq!(l.level, Level::Fail);
    assert!(text(&l).contains("assigned, not provisioned: PendingProvisioning"));
}

#[tokio::test]
async fn no_free_seats_says_how_many_to_buy() {
    let (sim, graph) = start().await;
    sim.with_state(|s| s.readiness.skus[0].enabled = 7);
    let users = rd::deploying_users(&graph, &[user(&sim, "lucia.ferrandez")])
        .await
        .unwrap();
    let l = rd::check_licences(&graph, &users).await;
    assert!(
        l.fix.as_deref().unwrap().starts_with("Buy 1 more seat"),
        "{:?}",
        l.fix
    );
}

/// Turning off MFA to join replaces the policy; the quota goes back as it was read (the tenant
/// sets a replacement without it to 0, so an unchanged quota proves it was sent).
#[tokio::test]
async fn turning_off_mfa_to_join_keeps_the_quota() {
    let (sim, graph) = start().await;
    sim.with_state(|s| s.directory.registration_policy.user_device_quota = 37);
    let done = rd::turn_off_mfa_to_join(&graph).await.expect("fixed");
    assert!(done.contains("read back"));
    sim.with_state(|s| {
        let p = &s.directory.registration_policy;
        assert!(!p.mfa_required);
        assert_eq!(p.user_device_quota, 37);
        assert_eq!(p.updates, 1);
        assert!(
            matches!(p.join, JoinScope::Selected { .. }),
            "join scope kept"
        );
    });
    let puts: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].path, "/v1.0/policies/deviceRegistrationPolicy");
    let f = rd::check_deployers(&graph, &technicians(&sim), Some(3)).await;
    let reg = find(&f, rd::CHECK_REGISTRATION);
    assert_eq!(reg.action, None);
    assert!(!reg.summary.contains("Require MFA"), "{}", reg.summary);
}

#[test]
fn the_replacement_body_always_carries_the_quota() {
    let read = json!({"@odata.context": "x", "id": "deviceRegistrationPolicy", "userDeviceQuota": 12, "multiFactorAuthConfiguration": "required"});
    let body = rd::mfa_off_body(&read).unwrap();
    assert_eq!(body["userDeviceQuota"], 12);
    assert_eq!(body["multiFactorAuthConfiguration"], "notRequired");
    assert!(body.get("@odata.context").is_none());
    // Without a quota to send back, nothing is sent: the service would make it 0.
    let no_quota =
        json!({"id": "deviceRegistrationPolicy", "multiFactorAuthConfiguration": "required"});
    assert!(rd::mfa_off_body(&no_quota).unwrap_err().contains("quota"));
    // The older shape is left to the admin center.
    let legacy = json!({"id": "deviceRegistrationPolicy", "userDeviceQuota": 12, "multiFactorAuthConfiguration": "1"});
    assert!(
        rd::mfa_off_body(&legacy)
            .unwrap_err()
            .contains("older format")
    );
}

/// The tenant side of the trap: a replacement without `userDeviceQuota` leaves nobody able to
/// join, as Microsoft365DSC documents for the service.
#[tokio::test]
async fn sim_resets_a_quota_left_out_of_a_replacement() {
    let (sim, _graph) = start().await;
    let token = sim.issue_token(&sim.admin().user_principal_name);
    let r = support::raw_http()
        .put(format!(
            "{}/v1.0/policies/deviceRegistrationPolicy",
            sim.url()
        ))
        .bearer_auth(&token)
        .json(&json!({"multiFactorAuthConfiguration": "notRequired"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["userDeviceQuota"], 0);
    support::schema::assert_valid("v1.0", "microsoft.graph.deviceRegistrationPolicy", &body);
    assert_eq!(
        sim.with_state(|s| s.directory.registration_policy.user_device_quota),
        0
    );
    // Without the write permission: refused.
    let read_only = sim.issue_token_with(
        &sim.admin().user_principal_name,
        &["Policy.Read.All"],
        std::time::Duration::from_secs(600),
    );
    let r = support::raw_http()
        .put(format!(
            "{}/v1.0/policies/deviceRegistrationPolicy",
            sim.url()
        ))
        .bearer_auth(&read_only)
        .json(&json!({"userDeviceQuota": 50}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn a_deployer_at_the_quota_fails() {
    let (sim, graph) = start().await;
    sim.with_state(|s| s.directory.registration_policy.user_device_quota = 18);
    let users = rd::deploying_users(&graph, &technicians(&sim))
        .await
        .unwrap();
    let f = rd::check_registration(&graph, &users, None).await;
    assert_eq!(f.level, Level::Fail);
    assert!(
        f.summary
            .contains("Rowan Achterberg already joined the 18 devices a user may have"),
        "{}",
        f.summary
    );
}

#[tokio::test]
async fn conditional_access_blocks_unless_intune_is_left_out() {
    let (sim, graph) = start().await;
    let users = rd::deploying_users(&graph, &technicians(&sim))
        .await
        .unwrap();
    // The pilot switched on: enrollment is refused.
    sim.with_state(|s| s.readiness.ca_policies[1].state = "enabled".into());
    let f = rd::check_conditional_access(&graph, &users).await;
    assert_eq!(f.level, Level::Fail, "{f:#?}");
    assert!(f.summary.contains("requires a compliant device"));
    assert!(
        f.summary
            .contains("Microsoft Intune Enrollment and Microsoft Intune")
    );
    // Both apps left out: passes.
    sim.with_state(|s| {
        s.readiness.ca_policies[1].conditions["applications"]["excludeApplications"] =
            json!([simr::INTUNE_ENROLLMENT_APP, simr::INTUNE_APP]);
    });
    assert_eq!(
        rd::check_conditional_access(&graph, &users).await.level,
        Level::Pass
    );
    // An OR with MFA lets a new device through; Terms of use on Intune Enrollment does not.
    sim.with_state(|s| {
        s.readiness.ca_policies.push(simr::CaPolicy {
            id: "tou".into(),
            display_name: "Accept the terms".into(),
            state: "enabled".into(),
            conditions: simr::conditions(&[simr::INTUNE_ENROLLMENT_APP], &[], &[], &["all"]),
            grant_controls: simr::grant(&["compliantDevice", "mfa"], &["terms-1"]),
        });
    });
    let f = rd::check_conditional_access(&graph, &users).await;
    assert_eq!(f.level, Level::Fail);
    assert!(
        f.summary
            .contains("Terms of use on Microsoft Intune Enrollment"),
        "{}",
        f.summary
    );
    assert!(
        !f.summary.contains("\"Accept the terms\" requires"),
        "{}",
        f.summary
    );
    // A policy excluding the technicians' group does not concern them.
    let it = match &technicians(&sim)[0] {
        Deployer::Group { id, .. } => id.clone(),
        _ => unreachable!(),
    };
    sim.with_state(|s| {
        s.readiness.ca_policies.last_mut().unwrap().conditions["users"]["excludeGroups"] =
            json!([it]);
    });
    assert_eq!(
        rd::check_conditional_access(&graph, &users).await.level,
        Level::Pass
    );
    // A policy for directory roles is named, not judged: roles are not resolved to people.
    sim.with_state(|s| {
        let mut c = simr::conditions(&["All"], &[], &[], &["all"]);
        c["users"]["includeUsers"] = json!([]);
        c["users"]["includeRoles"] = json!(["62e90394-69f5-4237-9190-012177145e10"]);
        s.readiness.ca_policies.push(simr::CaPolicy {
            id: "admins".into(),
            display_name: "Admins: compliant device".into(),
            state: "enabled".into(),
            conditions: c,
            grant_controls: simr::grant(&["compliantDevice"], &[]),
        });
    });
    let f = rd::check_conditional_access(&graph, &users).await;
    assert_eq!(f.level, Level::Pass);
    assert!(
        f.details
            .iter()
            .any(|d| d.starts_with("\"Admins: compliant device\": on, targets directory roles")),
        "{:?}",
        f.details
    );
}

#[tokio::test]
async fn local_administrator_in_plain_words() {
    let (sim, graph) = start().await;
    let f = rd::check_local_admin(&graph, "standard").await;
    assert_eq!(f.level, Level::Warning);
    assert!(
        f.summary.contains("they will be a standard user"),
        "{}",
        f.summary
    );
    assert!(
        f.summary
            .contains("Administrators on the PC: Global Administrators")
    );
    let f = rd::check_local_admin(&graph, "administrator").await;
    assert_eq!(f.level, Level::Pass);
    assert!(f.summary.contains(
        "Administrators on the PC: the person who signs in at OOBE, Global Administrators"
    ));
    sim.with_state(|s| {
        let p = &mut s.directory.registration_policy;
        p.registering_users_admins = JoinScope::None;
        p.global_admins_local = false;
        p.local_admin_password_enabled = true;
    });
    let f = rd::check_local_admin(&graph, "administrator").await;
    assert_eq!(f.level, Level::Warning);
    assert!(f.summary.contains("the two disagree"));
    let f = rd::check_local_admin(&graph, "standard").await;
    assert_eq!(f.level, Level::Pass, "{f:#?}");
    assert!(f.summary.contains("Windows LAPS"), "{}", f.summary);
    sim.with_state(|s| s.directory.registration_policy.local_admin_password_enabled = false);
    let f = rd::check_local_admin(&graph, "standard").await;
    assert_eq!(f.level, Level::Warning);
    assert!(
        f.summary
            .contains("Nobody signing in on the PC is an administrator")
    );
}

#[tokio::test]
async fn branding_present_passes() {
    let (sim, graph) = start().await;
    sim.with_state(|s| {
        s.readiness.branding = Some(simr::Branding {
            sign_in_page_text: Some("Fabrikam staff only".into()),
            background_color: Some("#004488".into()),
            locales: vec!["nl-NL".into()],
        })
    });
    let f = rd::check_branding(&graph).await;
    assert_eq!(f.level, Level::Pass);
    assert!(f.details.iter().any(|d| d.contains("Fabrikam staff only")));
    assert!(f.details.iter().any(|d| d.contains("2 language versions")));
}

#[tokio::test]
async fn without_the_licence_permission_the_check_says_which() {
    let (sim, _graph) = start().await;
    let token = sim.issue_token_with(
        &sim.admin().user_principal_name,
        &[
            "Policy.Read.All",
            "User.ReadBasic.All",
            "Group.ReadWrite.All",
        ],
        std::time::Duration::from_secs(600),
    );
    let graph = autopilot_wizard::graph::GraphClient::new(
        &sim.url(),
        std::sync::Arc::new(autopilot_wizard::graph::client::StaticToken(token)),
    );
    let users = rd::deploying_users(&graph, &technicians(&sim))
        .await
        .unwrap();
    let f = rd::check_licences(&graph, &users).await;
    assert_eq!(f.level, Level::Unknown);
    assert!(
        f.summary.contains("LicenseAssignment.Read.All"),
        "{}",
        f.summary
    );
}

// ---------------------------------------------------------------------------------------------
// Wire format. The schema extract in tests/fixtures/schema has none of these types: the
// property tables are transcribed from the Graph resource pages on learn.microsoft.com
// (licenseDetails, servicePlanInfo, subscribedSku, licenseUnitsDetail, conditionalAccessPolicy,
// conditionalAccessConditionSet, conditionalAccessGrantControls, organizationalBranding,
// deviceEnrollmentPlatformRestrictionConfiguration, deviceEnrollmentPlatformRestriction).

const LICENSE_DETAILS: &[&str] = &["id", "servicePlans", "skuId", "skuPartNumber"];
const SERVICE_PLAN_INFO: &[&str] = &[
    "appliesTo",
    "provisioningStatus",
    "servicePlanId",
    "servicePlanName",
];
const SUBSCRIBED_SKU: &[&str] = &[
    "accountId",
    "accountName",
    "appliesTo",
    "capabilityStatus",
    "consumedUnits",
    "id",
    "prepaidUnits",
    "servicePlans",
    "skuId",
    "skuPartNumber",
    "subscriptionIds",
];
const LICENSE_UNITS: &[&str] = &["enabled", "lockedOut", "suspended", "warning"];
const CA_POLICY: &[&str] = &[
    "conditions",
    "createdDateTime",
    "description",
    "displayName",
    "grantControls",
    "id",
    "modifiedDateTime",
    "sessionControls",
    "state",
    "templateId",
];
const CA_STATES: &[&str] = &["enabled", "disabled", "enabledForReportingButNotEnforced"];
const CA_CONDITIONS: &[&str] = &[
    "applications",
    "authenticationFlows",
    "clientApplications",
    "clientAppTypes",
    "devices",
    "insiderRiskLevels",
    "locations",
    "platforms",
    "servicePrincipalRiskLevels",
    "signInRiskLevels",
    "userRiskLevels",
    "users",
];
const CA_APPLICATIONS: &[&str] = &[
    "applicationFilter",
    "excludeApplications",
    "includeApplications",
    "includeAuthenticationContextClassReferences",
    "includeUserActions",
];
const CA_USERS: &[&str] = &[
    "excludeGroups",
    "excludeGuestsOrExternalUsers",
    "excludeRoles",
    "excludeUsers",
    "includeGroups",
    "includeGuestsOrExternalUsers",
    "includeRoles",
    "includeUsers",
];
const CA_GRANT: &[&str] = &[
    "authenticationStrength",
    "builtInControls",
    "customAuthenticationFactors",
    "operator",
    "termsOfUse",
];
const CA_CONTROLS: &[&str] = &[
    "block",
    "mfa",
    "compliantDevice",
    "domainJoinedDevice",
    "approvedApplication",
    "compliantApplication",
    "passwordChange",
    "unknownFutureValue",
];
const CLIENT_APP_TYPES: &[&str] = &[
    "all",
    "browser",
    "mobileAppsAndDesktopClients",
    "exchangeActiveSync",
    "easSupported",
    "other",
    "unknownFutureValue",
];
const BRANDING: &[&str] = &[
    "id",
    "backgroundColor",
    "backgroundImageRelativeUrl",
    "bannerLogoRelativeUrl",
    "cdnList",
    "customAccountResetCredentialsUrl",
    "customCannotAccessYourAccountText",
    "customCannotAccessYourAccountUrl",
    "customCSSRelativeUrl",
    "customForgotMyPasswordText",
    "customPrivacyAndCookiesText",
    "customPrivacyAndCookiesUrl",
    "customResetItNowText",
    "customTermsOfUseText",
    "customTermsOfUseUrl",
    "faviconRelativeUrl",
    "headerBackgroundColor",
    "headerLogoRelativeUrl",
    "loginPageLayoutConfiguration",
    "loginPageTextVisibilitySettings",
    "signInPageText",
    "squareLogoDarkRelativeUrl",
    "squareLogoRelativeUrl",
    "usernameHintText",
];
const ENROLLMENT_CONFIG_BASE: &[&str] = &[
    "@odata.type",
    "id",
    "displayName",
    "description",
    "priority",
    "createdDateTime",
    "lastModifiedDateTime",
    "version",
    "roleScopeTagIds",
    "deviceEnrollmentConfigurationType",
    "assignments",
];
const PLATFORM_RESTRICTION: &[&str] = &[
    "blockedManufacturers",
    "blockedSkus",
    "osMaximumVersion",
    "osMinimumVersion",
    "personalDeviceEnrollmentBlocked",
    "platformBlocked",
];
const PLATFORM_TYPES: &[&str] = &[
    "allPlatforms",
    "ios",
    "windows",
    "windowsPhone",
    "android",
    "androidForWork",
    "mac",
    "linux",
    "unknownFutureValue",
];

fn only(v: &Value, allowed: &[&str], what: &str) {
    let m = v
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an object: {v}"));
    for k in m.keys() {
        assert!(
            k.starts_with("@odata.context") || allowed.contains(&k.as_str()),
            "{what}: {k} is not a documented property"
        );
    }
}

async fn get(sim: &SimHandle, path: &str) -> (u16, Value) {
    let token = sim.issue_token(&sim.admin().user_principal_name);
    let r = support::raw_http()
        .get(format!("{}{path}", sim.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn sim_licences_as_graph_serves_them() {
    let (sim, _graph) = start().await;
    let id = user_id(&sim, "rowan.achterberg");
    let (s, page) = get(&sim, &format!("/v1.0/users/{id}/licenseDetails")).await;
    assert_eq!(s, 200);
    let items = page["value"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    for l in items {
        only(l, LICENSE_DETAILS, "licenseDetails");
        for p in l["servicePlans"].as_array().unwrap() {
            only(p, SERVICE_PLAN_INFO, "servicePlanInfo");
            assert!(p["provisioningStatus"].is_string());
        }
    }
    let (s, page) = get(&sim, "/v1.0/subscribedSkus").await;
    assert_eq!(s, 200);
    for sku in page["value"].as_array().unwrap() {
        only(sku, SUBSCRIBED_SKU, "subscribedSku");
        only(&sku["prepaidUnits"], LICENSE_UNITS, "licenseUnitsDetail");
        assert!(sku["consumedUnits"].is_i64());
        for p in sku["servicePlans"].as_array().unwrap() {
            only(p, SERVICE_PLAN_INFO, "servicePlanInfo");
        }
    }
    let (s, err) = get(&sim, "/v1.0/users/nobody/licenseDetails").await;
    assert_eq!(s, 404);
    assert!(support::schema::validate_error(&err).is_empty());
}

#[tokio::test]
async fn sim_conditional_access_as_graph_serves_it() {
    let (sim, _graph) = start().await;
    let (s, page) = get(&sim, "/v1.0/identity/conditionalAccess/policies").await;
    assert_eq!(s, 200);
    let items = page["value"].as_array().unwrap();
    assert!(items.len() >= 4);
    let mut states = Vec::new();
    for p in items {
        only(p, CA_POLICY, "conditionalAccessPolicy");
        let st = p["state"].as_str().unwrap();
        assert!(CA_STATES.contains(&st), "{st}");
        states.push(st.to_string());
        only(
            &p["conditions"],
            CA_CONDITIONS,
            "conditionalAccessConditionSet",
        );
        only(
            &p["conditions"]["applications"],
            CA_APPLICATIONS,
            "conditionalAccessApplications",
        );
        only(
            &p["conditions"]["users"],
            CA_USERS,
            "conditionalAccessUsers",
        );
        for t in p["conditions"]["clientAppTypes"].as_array().unwrap() {
            assert!(CLIENT_APP_TYPES.contains(&t.as_str().unwrap()), "{t}");
        }
        only(
            &p["grantControls"],
            CA_GRANT,
            "conditionalAccessGrantControls",
        );
        for c in p["grantControls"]["builtInControls"].as_array().unwrap() {
            assert!(CA_CONTROLS.contains(&c.as_str().unwrap()), "{c}");
        }
    }
    for st in CA_STATES {
        assert!(states.iter().any(|s| s == st), "the demo has a policy {st}");
    }
}

#[tokio::test]
async fn sim_branding_and_restrictions_as_graph_serves_them() {
    let (sim, _graph) = start().await;
    let org = sim.tenant_id();
    let (s, err) = get(&sim, &format!("/v1.0/organization/{org}/branding")).await;
    assert_eq!(s, 404, "no default branding: 404, as documented");
    assert!(support::schema::validate_error(&err).is_empty());
    let (s, page) = get(
        &sim,
        &format!("/v1.0/organization/{org}/branding/localizations"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(page["value"], json!([]));
    sim.with_state(|s| {
        s.readiness.branding = Some(simr::Branding {
            sign_in_page_text: Some("Hi".into()),
            background_color: None,
            locales: vec![],
        })
    });
    let (s, b) = get(&sim, &format!("/v1.0/organization/{org}/branding")).await;
    assert_eq!(s, 200);
    only(&b, BRANDING, "organizationalBranding");
    let (_, page) = get(
        &sim,
        &format!("/v1.0/organization/{org}/branding/localizations"),
    )
    .await;
    for l in page["value"].as_array().unwrap() {
        only(l, BRANDING, "organizationalBrandingLocalization");
    }

    let (s, page) = get(
        &sim,
        "/beta/deviceManagement/deviceEnrollmentConfigurations?$expand=assignments",
    )
    .await;
    assert_eq!(s, 200);
    let items = page["value"].as_array().unwrap();
    let single = items
        .iter()
        .find(|v| {
            v["@odata.type"] == "#microsoft.graph.deviceEnrollmentPlatformRestrictionConfiguration"
        })
        .expect("the Front desk restriction");
    let mut allowed: Vec<&str> = ENROLLMENT_CONFIG_BASE.to_vec();
    allowed.extend(["platformRestriction", "platformType"]);
    only(
        single,
        &allowed,
        "deviceEnrollmentPlatformRestrictionConfiguration",
    );
    assert!(PLATFORM_TYPES.contains(&single["platformType"].as_str().unwrap()));
    assert_eq!(
        single["deviceEnrollmentConfigurationType"],
        "singlePlatformRestriction"
    );
    only(
        &single["platformRestriction"],
        PLATFORM_RESTRICTION,
        "deviceEnrollmentPlatformRestriction",
    );
    let target = &single["assignments"][0]["target"];
    assert_eq!(
        target["@odata.type"],
        "#microsoft.graph.groupAssignmentTarget"
    );
    support::schema::assert_valid("beta", "microsoft.graph.groupAssignmentTarget", target);
    let default = items
        .iter()
        .find(|v| {
            v["@odata.type"] == "#microsoft.graph.deviceEnrollmentPlatformRestrictionsConfiguration"
        })
        .expect("the default platform restrictions");
    only(
        &default["windowsRestriction"],
        PLATFORM_RESTRICTION,
        "windowsRestriction",
    );
    assert_eq!(
        default["deviceEnrollmentConfigurationType"],
        "defaultPlatformRestrictions"
    );
    // Without $expand the assignments stay out, as for every navigation property.
    let (_, page) = get(
        &sim,
        "/beta/deviceManagement/deviceEnrollmentConfigurations",
    )
    .await;
    assert!(
        page["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v.get("assignments").is_none())
    );
}

// ---------------------------------------------------------------------------------------------
// The validation report

#[tokio::test]
async fn the_report_carries_the_checks_and_fails_on_a_failing_one() {
    use autopilot_wizard::steps::validate::{CheckId, ValidateInputs, Verdict};
    let (sim, graph) = start().await;
    let mut inputs = ValidateInputs {
        tenant: "t".into(),
        deployers: vec![user(&sim, "lucia.ferrandez")],
        target: support::tenant::target(
            "no-group",
            autopilot_wizard::board::GroupMembership::Static,
            "no-profile",
            "p",
        ),
        expected_serials: Vec::new(),
        outcomes: Default::default(),
    };
    let items = rd::validate_join_items(&graph, &inputs).await;
    let keys: Vec<&str> = items.iter().map(|i| i.id.key()).collect();
    assert_eq!(
        keys,
        [
            "Licences",
            "RegistrationPolicy",
            "ConditionalAccess",
            "EnrollmentRestrictions",
            "MdmScopeGroups",
            "CompanyBranding"
        ]
    );
    for k in &keys {
        assert!(CheckId::from_key(k).is_some(), "{k} is registered");
    }
    let lic = &items[0];
    assert_eq!(lic.verdict, Verdict::Fail);
    assert!(lic.fix.as_deref().unwrap().contains("Identifying"));
    // Warnings pass, told in the evidence.
    let branding = &items[5];
    assert_eq!(branding.verdict, Verdict::Pass);
    assert!(branding.evidence[0].starts_with("Warning: "));
    inputs.deployers = technicians(&sim);
    let items = rd::validate_join_items(&graph, &inputs).await;
    assert!(
        items.iter().all(|i| i.verdict == Verdict::Pass),
        "{items:#?}"
    );
    // The profile's item: a missing profile cannot be checked.
    let items = rd::validate_profile_items(&graph, &inputs).await;
    assert_eq!(items[0].id.key(), "LocalAdministrator");
    assert_eq!(items[0].verdict, Verdict::Unknown);
}

// ---------------------------------------------------------------------------------------------
// The page: each check fails with the broken tenant and passes once it is fixed.

mod page_ui {
    use super::*;
    use autopilot_wizard::steps::Outcomes;
    use autopilot_wizard::ui::join_permission::JoinPermissionPage;
    use autopilot_wizard::ui::{Msg, Page, StepStatus};
    use egui_kittest::kittest::Queryable;
    use support::ui::{click, click_link, runtime, type_into};

    type H = egui_kittest::Harness<'static, support::page::PageState<JoinPermissionPage>>;

    fn extract(m: Msg) -> Option<autopilot_wizard::ui::join_permission::Msg> {
        match m {
            Msg::JoinPermission(m) => Some(m),
            _ => None,
        }
    }

    fn page(graph: GraphClient, rt: &tokio::runtime::Runtime) -> H {
        let mut h = support::page::page_harness(
            JoinPermissionPage::new(),
            graph,
            Outcomes::default(),
            rt.handle().clone(),
            extract,
        );
        // Every finding with its details at once: nothing scrolled out of the tree.
        h.set_size(egui::Vec2::new(1000.0, 4000.0));
        h.run_ok();
        h
    }

    /// Waits until some widget's label contains `text` (several may).
    fn wait_for(h: &mut H, text: &str) {
        support::ui::step_until(
            h,
            text,
            |h| h.query_all_by_label_contains(text).next().is_some(),
            std::time::Duration::from_secs(20),
        );
    }

    fn add(h: &mut H, search: &str, label: &str) {
        type_into(h, "Search users or groups", search);
        click(h, "Search");
        click(h, label);
    }

    fn has(h: &H, text: &str) -> bool {
        h.query_all_by_label_contains(text).next().is_some()
    }

    /// Checks again and waits for the answer (a text only the new answer shows).
    fn recheck(h: &mut H, text: &str) {
        click(h, "Check again");
        wait_for(h, text);
    }

    #[test]
    fn licence_missing_then_assigned() {
        let rt = runtime();
        let (sim, graph) = rt.block_on(start());
        let mut h = page(graph, &rt);
        sim.with_state(|s| {
            s.directory.registration_policy.join = JoinScope::All;
        });
        let lucia = format!("Add {}", user(&sim, "lucia.ferrandez").label());
        add(&mut h, "lucia", &lucia);
        wait_for(&mut h, "Lucía Ferrández has no Intune");
        assert!(has(&h, "3 free of 10"));
        assert!(has(&h, "Identifying"));
        assert_eq!(
            click_link(&mut h, "Microsoft 365 admin center, Active users"),
            vec![rd::LICENCES_URL.to_string()]
        );
        assert!(!h.state().page.validated());
        assert_eq!(h.state().page.status(), StepStatus::NeedsAttention);
        // Licensed and out of the Front desk group: the step is done.
        let id = user_id(&sim, "lucia.ferrandez");
        sim.with_state(|s| {
            s.readiness.licences.remove(&id);
            s.readiness.assign(&id, simr::SKU_BUSINESS_PREMIUM);
            s.directory
                .groups
                .iter_mut()
                .find(|g| g.display_name == "Front desk")
                .unwrap()
                .members
                .clear();
        });
        recheck(
            &mut h,
            "Every deploying user has Intune and Microsoft Entra ID P1",
        );
        assert!(
            h.state().page.validated(),
            "{}",
            support::ui::visible_labels(&h)
        );
        assert_eq!(h.state().page.status(), StepStatus::Done);
    }

    #[test]
    fn windows_blocked_then_allowed() {
        let rt = runtime();
        let (sim, graph) = rt.block_on(start());
        let mut h = page(graph, &rt);
        let id = user_id(&sim, "lucia.ferrandez");
        sim.with_state(|s| {
            s.directory.registration_policy.join = JoinScope::All;
            s.readiness.assign(&id, simr::SKU_BUSINESS_PREMIUM);
        });
        let lucia = format!("Add {}", user(&sim, "lucia.ferrandez").label());
        add(&mut h, "lucia", &lucia);
        wait_for(&mut h, "Windows enrollment is blocked for");
        assert!(has(&h, "Front desk: no Windows enrollment"));
        assert!(!h.state().page.validated());
        sim.with_state(|s| {
            for o in s.esp.others.iter_mut() {
                if o["platformType"] == "windows" {
                    o["platformRestriction"]["platformBlocked"] = json!(false);
                }
            }
        });
        recheck(&mut h, "Windows enrollment is allowed for the deployers");
        assert!(h.state().page.validated());
    }

    #[test]
    fn mfa_conflict_fixed_with_the_button_and_the_quota_kept() {
        let rt = runtime();
        let (sim, graph) = rt.block_on(start());
        let mut h = page(graph, &rt);
        add(&mut h, "technicians", "Add IT Technicians (group)");
        wait_for(&mut h, "also asks for it on \"Register or join devices\"");
        // A warning: the step is done all the same.
        assert!(h.state().page.validated());
        click(&mut h, rd::Action::TurnOffMfaToJoin.label());
        wait_for(&mut h, "is now No (read back)");
        wait_for(
            &mut h,
            "Require Multifactor Authentication to register or join devices: No",
        );
        assert!(!has(&h, "also asks for it"));
        sim.with_state(|s| {
            assert!(!s.directory.registration_policy.mfa_required);
            assert_eq!(s.directory.registration_policy.user_device_quota, 20);
        });
    }

    #[test]
    fn quota_reached_then_raised() {
        let rt = runtime();
        let (sim, graph) = rt.block_on(start());
        sim.with_state(|s| s.directory.registration_policy.user_device_quota = 18);
        let mut h = page(graph, &rt);
        add(&mut h, "technicians", "Add IT Technicians (group)");
        wait_for(&mut h, "Rowan Achterberg already joined the 18 devices");
        assert!(!h.state().page.validated());
        assert_eq!(
            click_link(&mut h, "Entra device settings"),
            vec![autopilot_wizard::steps::join_permission::JOIN_SETTING_URL.to_string()]
        );
        sim.with_state(|s| s.directory.registration_policy.user_device_quota = 50);
        recheck(
            &mut h,
            "Rowan Achterberg has joined 18 devices (32 more allowed)",
        );
        assert!(h.state().page.validated());
    }

    #[test]
    fn compliant_device_policy_on_then_intune_left_out() {
        let rt = runtime();
        let (sim, graph) = rt.block_on(start());
        sim.with_state(|s| s.readiness.ca_policies[1].state = "enabled".into());
        let mut h = page(graph, &rt);
        add(&mut h, "technicians", "Add IT Technicians (group)");
        wait_for(&mut h, "requires a compliant device for Rowan Achterberg");
        assert!(has(&h, "Target resources > Exclude"));
        assert!(!h.state().page.validated());
        assert_eq!(
            click_link(
                &mut h,
                "Conditional Access policies in the Entra admin center"
            ),
            vec![rd::CA_URL.to_string()]
        );
        sim.with_state(|s| {
            s.readiness.ca_policies[1].conditions["applications"]["excludeApplications"] =
                json!([simr::INTUNE_ENROLLMENT_APP, simr::INTUNE_APP]);
        });
        recheck(&mut h, "No Conditional Access policy stops enrollment");
        assert!(h.state().page.validated());
    }

    #[test]
    fn report_only_policy_is_named_as_such() {
        let rt = runtime();
        let (_sim, graph) = rt.block_on(start());
        let mut h = page(graph, &rt);
        add(&mut h, "technicians", "Add IT Technicians (group)");
        wait_for(&mut h, "Report-only today, so nothing is blocked yet");
        assert!(h.state().page.validated(), "report-only is not a failure");
    }

    #[test]
    fn mdm_scope_device_group_then_removed() {
        let rt = runtime();
        let (sim, graph) = rt.block_on(start());
        let mut h = page(graph, &rt);
        add(&mut h, "technicians", "Add IT Technicians (group)");
        wait_for(
            &mut h,
            "\"Autopilot - All devices\" in the MDM user scope holds no users",
        );
        let staff = group(&sim, "All staff");
        sim.with_state(|s| {
            s.directory.mdm_policies[0].scope =
                autopilot_wizard::sim::directory::MdmScope::Selected(vec![staff.id().to_string()]);
        });
        recheck(&mut h, "Every group in the MDM user scope holds users");
    }

    #[test]
    fn no_branding_then_branded() {
        let rt = runtime();
        let (sim, graph) = rt.block_on(start());
        let mut h = page(graph, &rt);
        add(&mut h, "technicians", "Add IT Technicians (group)");
        wait_for(&mut h, "The tenant has no company branding");
        assert_eq!(
            click_link(&mut h, "Microsoft guide: company branding"),
            vec![rd::BRANDING_URL.to_string()]
        );
        sim.with_state(|s| {
            s.readiness.branding = Some(simr::Branding {
                sign_in_page_text: Some("Fabrikam staff only".into()),
                background_color: None,
                locales: vec![],
            })
        });
        recheck(&mut h, "The tenant has company branding");
    }
}

/// Step 3: who will be administrator on the PC, said where the profile is chosen.
mod profile_page {
    use super::*;
    use autopilot_wizard::steps::Outcomes;
    use autopilot_wizard::ui::profile::ProfilePage;
    use autopilot_wizard::ui::{Msg, Page};
    use egui_kittest::kittest::Queryable;
    use support::ui::{click, runtime};

    type H = egui_kittest::Harness<'static, support::page::PageState<ProfilePage>>;

    fn extract(m: Msg) -> Option<autopilot_wizard::ui::profile::Msg> {
        match m {
            Msg::Profile(m) => Some(m),
            _ => None,
        }
    }

    fn wait_for(h: &mut H, text: &str) {
        support::ui::step_until(
            h,
            text,
            |h| h.query_all_by_label_contains(text).next().is_some(),
            std::time::Duration::from_secs(20),
        );
    }

    #[test]
    fn standard_profile_against_entra_admins_then_made_to_agree() {
        let rt = runtime();
        let (sim, graph) = rt.block_on(start());
        sim.with_state(|s| {
            let id = support::tenant::add_profile(s, "Office PCs", 2025, &[]);
            let p = s.profiles.profiles.iter_mut().find(|p| p.id == id).unwrap();
            p.oobe.user_type = "standard".into();
        });
        let mut h = support::page::page_harness(
            ProfilePage::new(),
            graph,
            Outcomes::default(),
            rt.handle().clone(),
            extract,
        );
        h.set_size(egui::Vec2::new(1000.0, 4000.0));
        h.run_ok();
        click(&mut h, "Use \"Office PCs\"");
        wait_for(
            &mut h,
            "On an Autopilot device the profile decides: they will be a standard user",
        );
        assert!(
            h.query_all_by_label_contains("Administrators on the PC: Global Administrators")
                .next()
                .is_some()
        );
        assert!(
            h.state().page.validated(),
            "a warning does not hold the step"
        );
        // Entra made to agree: nobody registering becomes administrator.
        sim.with_state(|s| {
            s.directory.registration_policy.registering_users_admins = JoinScope::None
        });
        click(&mut h, "Use \"Office PCs\"");
        wait_for(&mut h, "Passed:");
        assert!(
            h.query_all_by_label_contains("The person who signs in will be a standard user")
                .next()
                .is_some()
        );
        assert!(
            h.query_all_by_label_contains("they will be a standard user")
                .next()
                .is_none()
        );
    }
}
