//! What fails OOBE although every device has its profile (reference §10): the deploying users'
//! licences, the registration policy (MFA to join against Conditional Access, the per-user
//! device quota), Conditional Access policies that block enrollment, enrollment restrictions,
//! an MDM user scope naming groups without users, company branding (checked with the join
//! permission, step 2) and who will be a local administrator (checked with the profile, step 3).
//!
//! Every check is read live and gives a [`Finding`]: what was found, what happens at OOBE if it
//! stays so, and the fix. The one change the wizard makes itself, turning off "Require MFA to
//! register or join devices", replaces the registration policy with what was read, changed in
//! that one setting: the service resets a `userDeviceQuota` left out to 0 (reference §2.1).
//!
//! Sources besides the reference: learn.microsoft.com `intune/enrollment/device-limit-intune-azure`
//! (Intune's device limit does not apply to Autopilot, Entra's quota does), Graph
//! `organizationalbranding-get` (no branding: 404), and for who ends up administrator the field
//! reports of securingm365.com ("entraid-vs-oobe") and call4cloud.nl ("Entra local administrator
//! settings and Autopilot"): on an Autopilot device the profile's account type decides.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;

use crate::graph::client::{Page, encode};
use crate::graph::{ApiVersion, GraphClient, GraphError};
use crate::steps::join_permission::{self, Deployer, Scope};
use crate::steps::registry::{BoxFuture, Permission};
use crate::steps::validate::{CheckId, CheckItem, ValidateInputs, Verdict};

/// Reads the users' licences and the tenant's subscriptions.
pub const LICENCES_READ: Permission = Permission::new(
    "LicenseAssignment.Read.All",
    &[
        "LicenseAssignment.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
        "User.Read.All",
        "Organization.Read.All",
    ],
);
/// Turns off "Require MFA to register or join devices" (the one fix the wizard makes).
pub const POLICY_WRITE: Permission = Permission::new("Policy.ReadWrite.DeviceConfiguration", &[]);

pub const CHECK_LICENCES: CheckId = CheckId::new(
    "Licences",
    "Every deploying user has Intune and Microsoft Entra ID P1",
);
pub const CHECK_REGISTRATION: CheckId = CheckId::new(
    "RegistrationPolicy",
    "The device registration policy lets the deployers join every device",
);
pub const CHECK_CONDITIONAL_ACCESS: CheckId = CheckId::new(
    "ConditionalAccess",
    "No Conditional Access policy blocks Intune enrollment",
);
pub const CHECK_RESTRICTIONS: CheckId = CheckId::new(
    "EnrollmentRestrictions",
    "Intune's enrollment restrictions let the deployers enroll Windows devices",
);
pub const CHECK_MDM_GROUPS: CheckId = CheckId::new(
    "MdmScopeGroups",
    "The groups in the MDM user scope hold users",
);
pub const CHECK_BRANDING: CheckId = CheckId::new(
    "CompanyBranding",
    "The sign-in page at OOBE shows the company's branding",
);
pub const CHECK_LOCAL_ADMIN: CheckId = CheckId::new(
    "LocalAdministrator",
    "Who will be an administrator on the PC is what the profile and Entra both say",
);

/// Service plans every person signing in at OOBE needs (reference §10).
pub const INTUNE_PLAN: &str = "c1ec4a95-1f05-45b3-a911-aa3fa01094f5";
pub const ENTRA_P1_PLAN: &str = "41781fb2-bc02-4b7c-bd55-b576c07bb09d";
/// The apps a compliant-device or block policy must leave out during enrollment.
pub const INTUNE_ENROLLMENT_APP: &str = "d4ebce55-015a-49b5-a083-c84d1797ae8c";
pub const INTUNE_APP: &str = "0000000a-0000-0000-c000-000000000000";
const REGISTER_OR_JOIN: &str = "urn:user:registerdevice";

pub const LICENCES_URL: &str = "https://admin.microsoft.com/#/users";
pub const CA_URL: &str = "https://entra.microsoft.com/#view/Microsoft_AAD_ConditionalAccess/ConditionalAccessBlade/~/Policies";
pub const RESTRICTIONS_URL: &str = "https://intune.microsoft.com/#view/Microsoft_Intune_DeviceSettings/DevicesEnrollmentMenu/~/enrollmentRestrictions";
pub const BRANDING_URL: &str =
    "https://learn.microsoft.com/entra/fundamentals/how-to-customize-branding";
pub const MFA_DOC_URL: &str = "https://learn.microsoft.com/entra/identity/conditional-access/policy-all-users-device-registration";

/// How a check came out. Warnings are told, and do not stop READY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Level {
    Pass,
    Warning,
    Fail,
    Unknown,
}

/// A change the wizard can make itself and read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Action {
    /// Sets "Require Multifactor Authentication to register or join devices" to No.
    TurnOffMfaToJoin,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Action::TurnOffMfaToJoin => "Turn off \"Require MFA to register or join devices\"",
        }
    }
}

/// One check's result, in words.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    pub check: CheckId,
    pub level: Level,
    /// What was found, in one sentence.
    pub summary: String,
    /// The facts it was decided on.
    pub details: Vec<String>,
    /// What happens at OOBE if it stays so.
    pub at_oobe: Option<String>,
    /// What to change, and where.
    pub fix: Option<String>,
    /// The admin-center page of the setting (label, address).
    pub link: Option<(String, String)>,
    /// The change the wizard can make itself.
    pub action: Option<Action>,
    /// Per deploying user, for checks about each person (licences): shown in the page's
    /// coverage table beside join and MDM.
    #[serde(default)]
    pub per_user: Vec<UserMark>,
}

/// One person's result of a per-user check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserMark {
    pub user_id: String,
    pub ok: bool,
    pub why: String,
}

impl Finding {
    fn new(check: CheckId, level: Level, summary: impl Into<String>) -> Self {
        Finding {
            check,
            level,
            summary: summary.into(),
            details: Vec::new(),
            at_oobe: None,
            fix: None,
            link: None,
            action: None,
            per_user: Vec::new(),
        }
    }

    fn unknown(check: CheckId, e: impl std::fmt::Display) -> Self {
        let mut f = Finding::new(check, Level::Unknown, format!("Could not be checked: {e}"));
        f.fix = Some("Fix the problem above and check again.".into());
        f
    }

    fn worse(&mut self, level: Level) {
        let rank = |l: Level| match l {
            Level::Pass => 0,
            Level::Warning => 1,
            Level::Unknown => 2,
            Level::Fail => 3,
        };
        if rank(level) > rank(self.level) {
            self.level = level;
        }
    }

    pub fn title(&self) -> &'static str {
        self.check.title()
    }

    /// The fix in one text: the setting, the page.
    pub fn fix_text(&self) -> Option<String> {
        let mut parts: Vec<String> = Vec::new();
        if let Some(a) = &self.at_oobe {
            parts.push(format!("At OOBE: {a}"));
        }
        if let Some(f) = &self.fix {
            parts.push(format!("Fix: {f}"));
        }
        if let Some(a) = self.action {
            parts.push(format!(
                "The wizard can do it: \"{}\" in step {}.",
                a.label(),
                crate::steps::StepId::JoinPermission.number()
            ));
        }
        if let Some((label, url)) = &self.link {
            parts.push(format!("{label}: {url}"));
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    /// The item of the validation report. A warning passes, told in the evidence.
    pub fn into_item(self) -> CheckItem {
        let verdict = match self.level {
            Level::Pass | Level::Warning => Verdict::Pass,
            Level::Fail => Verdict::Fail,
            Level::Unknown => Verdict::Unknown,
        };
        let mut evidence = vec![match self.level {
            Level::Warning => format!("Warning: {}", self.summary),
            _ => self.summary.clone(),
        }];
        evidence.extend(self.details.iter().cloned());
        let fix = self.fix_text();
        if self.level == Level::Warning
            && let Some(f) = &fix
        {
            evidence.push(f.clone());
        }
        CheckItem::new(self.check, verdict, evidence, fix)
    }
}

fn names(v: &[String]) -> String {
    match v.len() {
        0 => String::new(),
        1 => v[0].clone(),
        n => format!("{} and {}", v[..n - 1].join(", "), v[n - 1]),
    }
}

// ---------------------------------------------------------------------------------------------
// The deploying users

/// A person who will sign in at OOBE, with the groups they are in (transitively).
#[derive(Debug, Clone)]
pub struct DeployingUser {
    pub id: String,
    pub name: String,
    groups: HashSet<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawObject {
    id: String,
    display_name: Option<String>,
    user_principal_name: Option<String>,
}

/// The users of the deployers: the users themselves and the members of the groups.
pub async fn deploying_users(
    graph: &GraphClient,
    deployers: &[Deployer],
) -> Result<Vec<DeployingUser>, GraphError> {
    let mut users: Vec<(String, String)> = Vec::new();
    for d in deployers {
        match d {
            Deployer::User { id, name, .. } => {
                if !users.iter().any(|(u, _)| u == id) {
                    users.push((id.clone(), name.clone()));
                }
            }
            Deployer::Group { id, .. } => {
                let members: Vec<RawObject> = graph
                    .get_all(
                        ApiVersion::V1,
                        &format!(
                            "/groups/{}/transitiveMembers/microsoft.graph.user?$select=id,displayName,userPrincipalName",
                            encode(id)
                        ),
                    )
                    .await?;
                for m in members {
                    if !users.iter().any(|(u, _)| *u == m.id) {
                        let n = m
                            .display_name
                            .or(m.user_principal_name)
                            .unwrap_or_else(|| m.id.clone());
                        users.push((m.id, n));
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for (id, name) in users {
        let groups: Vec<RawObject> = graph
            .get_all(
                ApiVersion::V1,
                &format!(
                    "/users/{}/transitiveMemberOf/microsoft.graph.group?$select=id,displayName",
                    encode(&id)
                ),
            )
            .await?;
        out.push(DeployingUser {
            id,
            name,
            groups: groups
                .into_iter()
                .map(|g| g.id.to_ascii_lowercase())
                .collect(),
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// 1. Licences

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawPlan {
    service_plan_id: String,
    provisioning_status: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawLicence {
    sku_part_number: Option<String>,
    service_plans: Vec<RawPlan>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawUnits {
    enabled: i64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawSku {
    sku_part_number: Option<String>,
    consumed_units: i64,
    prepaid_units: RawUnits,
    service_plans: Vec<RawPlan>,
}

/// The product names people know, for the SKUs a small office has.
fn product_name(part: &str) -> String {
    let known = match part {
        "SPB" => "Microsoft 365 Business Premium",
        "O365_BUSINESS_PREMIUM" => "Microsoft 365 Business Standard",
        "O365_BUSINESS_ESSENTIALS" => "Microsoft 365 Business Basic",
        "SPE_E3" => "Microsoft 365 E3",
        "SPE_E5" => "Microsoft 365 E5",
        "EMS" => "Enterprise Mobility + Security E3",
        "EMSPREMIUM" => "Enterprise Mobility + Security E5",
        "INTUNE_A" => "Microsoft Intune Plan 1",
        "AAD_PREMIUM" => "Microsoft Entra ID P1",
        _ => return part.to_string(),
    };
    format!("{known} ({part})")
}

fn plan_state(licences: &[RawLicence], plan: &str) -> Option<String> {
    let mut seen = None;
    for l in licences {
        for p in l.service_plans.iter().filter(|p| p.service_plan_id == plan) {
            let s = p.provisioning_status.clone().unwrap_or_default();
            if s.eq_ignore_ascii_case("Success") {
                return Some(s);
            }
            seen = Some(s);
        }
    }
    seen
}

/// Intune and Entra ID P1 for every deploying user; where missing, who and how many seats are
/// free in the subscriptions that carry both.
pub async fn check_licences(graph: &GraphClient, users: &[DeployingUser]) -> Finding {
    let c = CHECK_LICENCES;
    let mut missing: Vec<String> = Vec::new();
    let mut details = Vec::new();
    let mut per_user = Vec::new();
    for u in users {
        let licences: Vec<RawLicence> = match graph
            .get_all(
                ApiVersion::V1,
                &format!("/users/{}/licenseDetails", encode(&u.id)),
            )
            .await
        {
            Ok(l) => l,
            Err(e) => return Finding::unknown(c, licence_error(e)),
        };
        let products: Vec<String> = licences
            .iter()
            .filter_map(|l| l.sku_part_number.as_deref().map(product_name))
            .collect();
        let mut lacks = Vec::new();
        let mut short = Vec::new();
        for (plan, what) in [(INTUNE_PLAN, "Intune"), (ENTRA_P1_PLAN, "Entra ID P1")] {
            match plan_state(&licences, plan) {
                Some(s) if s.eq_ignore_ascii_case("Success") => {}
                Some(s) => {
                    lacks.push(format!("{what} (assigned, not provisioned: {s})"));
                    short.push(format!("{what} ({s})"));
                }
                None => {
                    lacks.push(what.to_string());
                    short.push(what.to_string());
                }
            }
        }
        let has = if products.is_empty() {
            "no licence".to_string()
        } else {
            products.join(", ")
        };
        let ok = lacks.is_empty();
        let why = if ok {
            "Intune, Entra ID P1".to_string()
        } else {
            format!("lacks {}", short.join(", "))
        };
        details.push(format!(
            "{}: {has}: {}",
            u.name,
            if ok {
                "Intune and Entra ID P1".to_string()
            } else {
                format!("lacks {}", lacks.join(" and "))
            }
        ));
        per_user.push(UserMark {
            user_id: u.id.clone(),
            ok,
            why,
        });
        if !ok {
            missing.push(u.name.clone());
        }
    }
    let skus: Vec<RawSku> = match graph.get_all(ApiVersion::V1, "/subscribedSkus").await {
        Ok(s) => s,
        Err(e) => return Finding::unknown(c, licence_error(e)),
    };
    let carrying: Vec<&RawSku> = skus
        .iter()
        .filter(|s| {
            [INTUNE_PLAN, ENTRA_P1_PLAN]
                .iter()
                .all(|p| s.service_plans.iter().any(|x| x.service_plan_id == *p))
        })
        .collect();
    let seats: Vec<String> = carrying
        .iter()
        .map(|s| {
            let free = (s.prepaid_units.enabled - s.consumed_units).max(0);
            format!(
                "{}: {free} free of {}",
                product_name(s.sku_part_number.as_deref().unwrap_or("?")),
                s.prepaid_units.enabled
            )
        })
        .collect();
    let free_total: i64 = carrying
        .iter()
        .map(|s| (s.prepaid_units.enabled - s.consumed_units).max(0))
        .sum();
    if users.is_empty() {
        let mut f = if carrying.is_empty() {
            let mut f = Finding::new(
                c,
                Level::Fail,
                "The tenant has no subscription that includes both Intune and Microsoft Entra ID P1.",
            );
            f.at_oobe = Some("Devices do not enroll in Intune: the Enrollment Status Page stays on \"Identifying\".".into());
            f.fix = Some("Buy a subscription with both (for example Microsoft 365 Business Premium) and assign it to the people who will deploy.".into());
            f
        } else {
            Finding::new(
                c,
                Level::Pass,
                "No deploying users chosen: only the tenant's subscriptions were checked.",
            )
        };
        f.details = seats;
        f.link = Some((
            "Microsoft 365 admin center, Active users".into(),
            LICENCES_URL.into(),
        ));
        return f;
    }
    if missing.is_empty() {
        let mut f = Finding::new(
            c,
            Level::Pass,
            "Every deploying user has Intune and Microsoft Entra ID P1, provisioned.",
        );
        f.details = details;
        f.per_user = per_user;
        return f;
    }
    let mut f = Finding::new(
        c,
        Level::Fail,
        format!(
            "{} {} no Intune or no Microsoft Entra ID P1 licence.",
            names(&missing),
            if missing.len() == 1 { "has" } else { "have" }
        ),
    );
    details.push(if seats.is_empty() {
        "No subscription of the tenant includes both Intune and Entra ID P1.".into()
    } else {
        format!("Free seats: {}", seats.join("; "))
    });
    f.details = details;
    f.per_user = per_user;
    f.at_oobe = Some(format!(
        "When {} signs in, the device does not enroll in Intune: the Enrollment Status Page stays on \"Identifying\" and setup fails.",
        names(&missing)
    ));
    f.fix = Some(if free_total >= missing.len() as i64 {
        format!(
            "Assign a licence with Intune and Entra ID P1 ({free_total} free seat{}) to {}: Microsoft 365 admin center > Users > Active users > the user > Licenses and apps. Or choose other people to deploy.",
            if free_total == 1 { "" } else { "s" },
            names(&missing)
        )
    } else {
        format!(
            "Buy {} more seat{} of a subscription with Intune and Entra ID P1 (only {free_total} free) and assign them to {} in Microsoft 365 admin center > Users > Active users > Licenses and apps, or choose other people to deploy.",
            missing.len() as i64 - free_total,
            if missing.len() as i64 - free_total == 1 {
                ""
            } else {
                "s"
            },
            names(&missing)
        )
    });
    f.link = Some((
        "Microsoft 365 admin center, Active users".into(),
        LICENCES_URL.into(),
    ));
    f
}

fn licence_error(e: GraphError) -> String {
    if e.is_forbidden() {
        format!(
            "reading licences needs the permission {} (or Directory.Read.All) consented for this app; sign in again after it is granted. ({e})",
            LICENCES_READ.name
        )
    } else {
        e.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Conditional Access

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", default)]
struct RawApps {
    include_applications: Vec<String>,
    exclude_applications: Vec<String>,
    include_user_actions: Vec<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", default)]
struct RawUsers {
    include_users: Vec<String>,
    exclude_users: Vec<String>,
    include_groups: Vec<String>,
    exclude_groups: Vec<String>,
    include_roles: Vec<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", default)]
struct RawConditions {
    applications: Option<RawApps>,
    users: Option<RawUsers>,
    client_app_types: Vec<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", default)]
struct RawGrant {
    operator: Option<String>,
    built_in_controls: Vec<String>,
    terms_of_use: Vec<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", default)]
struct RawCaPolicy {
    display_name: Option<String>,
    state: Option<String>,
    conditions: Option<RawConditions>,
    grant_controls: Option<RawGrant>,
}

impl RawCaPolicy {
    fn name(&self) -> String {
        format!(
            "\"{}\"",
            self.display_name.as_deref().unwrap_or("(no name)")
        )
    }

    fn state(&self) -> &str {
        self.state.as_deref().unwrap_or("")
    }

    fn apps(&self) -> RawApps {
        self.conditions
            .as_ref()
            .and_then(|c| c.applications.clone())
            .unwrap_or_default()
    }

    /// The policy covers this user (roles are not resolved: a role-only policy covers nobody
    /// here, and is named as such).
    fn covers(&self, u: Option<&DeployingUser>) -> bool {
        let users = self
            .conditions
            .as_ref()
            .and_then(|c| c.users.clone())
            .unwrap_or_default();
        let Some(u) = u else {
            return users.include_users.iter().any(|x| x == "All");
        };
        let has = |list: &[String]| list.iter().any(|x| x.eq_ignore_ascii_case(&u.id));
        let in_group = |list: &[String]| {
            list.iter()
                .any(|g| u.groups.contains(&g.to_ascii_lowercase()))
        };
        let included = users.include_users.iter().any(|x| x == "All")
            || has(&users.include_users)
            || in_group(&users.include_groups);
        included && !has(&users.exclude_users) && !in_group(&users.exclude_groups)
    }

    /// Directory roles the policy targets: not resolved to people here, so named instead.
    fn targets_roles(&self) -> bool {
        self.conditions
            .as_ref()
            .and_then(|c| c.users.as_ref())
            .is_some_and(|u| !u.include_roles.is_empty())
    }

    /// Modern sign-ins (the OOBE's) are among the client apps it applies to.
    fn applies_to_oobe_clients(&self) -> bool {
        let types = self
            .conditions
            .as_ref()
            .map(|c| c.client_app_types.clone())
            .unwrap_or_default();
        types.is_empty()
            || types.iter().any(|t| {
                matches!(
                    t.as_str(),
                    "all" | "browser" | "mobileAppsAndDesktopClients"
                )
            })
    }

    /// The apps enrollment needs that the policy covers and does not leave out.
    fn enrollment_apps_covered(&self) -> Vec<&'static str> {
        let a = self.apps();
        let all = a.include_applications.iter().any(|x| x == "All");
        [
            (INTUNE_ENROLLMENT_APP, "Microsoft Intune Enrollment"),
            (INTUNE_APP, "Microsoft Intune"),
        ]
        .into_iter()
        .filter(|(id, _)| {
            (all || a
                .include_applications
                .iter()
                .any(|x| x.eq_ignore_ascii_case(id)))
                && !a
                    .exclude_applications
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(id))
        })
        .map(|(_, n)| n)
        .collect()
    }

    /// A device that is not enrolled yet cannot satisfy the grant: block, or a compliant (or
    /// domain-joined) device with no other way through.
    fn blocks_new_devices(&self) -> Option<&'static str> {
        let g = self.grant_controls.clone().unwrap_or_default();
        let c = &g.built_in_controls;
        if c.iter().any(|x| x == "block") {
            return Some("blocks access");
        }
        let device = |x: &String| matches!(x.as_str(), "compliantDevice" | "domainJoinedDevice");
        let and = g
            .operator
            .as_deref()
            .is_some_and(|o| o.eq_ignore_ascii_case("AND"));
        if c.iter().any(device) && (and || c.iter().all(device)) {
            return Some("requires a compliant device");
        }
        None
    }
}

async fn read_ca(graph: &GraphClient) -> Result<Vec<RawCaPolicy>, String> {
    graph
        .get_all(ApiVersion::V1, "/identity/conditionalAccess/policies")
        .await
        .map_err(|e| {
            if e.is_forbidden() {
                format!(
                    "reading Conditional Access policies needs Policy.Read.All and a role such as Security Reader or Global Reader ({e})"
                )
            } else {
                e.to_string()
            }
        })
}

/// Compliant-device and block policies over all cloud apps that do not leave out Intune
/// enrollment, and Terms of use on Intune Enrollment. Report-only policies are warnings.
pub async fn check_conditional_access(graph: &GraphClient, users: &[DeployingUser]) -> Finding {
    let c = CHECK_CONDITIONAL_ACCESS;
    let policies = match read_ca(graph).await {
        Ok(p) => p,
        Err(e) => return Finding::unknown(c, e),
    };
    let mut problems: Vec<String> = Vec::new();
    let mut report_only: Vec<String> = Vec::new();
    let mut details = Vec::new();
    let who: Vec<Option<&DeployingUser>> = if users.is_empty() {
        vec![None]
    } else {
        users.iter().map(Some).collect()
    };
    for p in &policies {
        let state = p.state();
        if state == "disabled" {
            details.push(format!("{}: off", p.name()));
            continue;
        }
        let covered: Vec<String> = who
            .iter()
            .filter(|u| p.covers(**u))
            .map(|u| {
                u.map(|u| u.name.clone())
                    .unwrap_or_else(|| "all users".into())
            })
            .collect();
        let mut what = Vec::new();
        if !covered.is_empty() && p.applies_to_oobe_clients() {
            let apps = p.enrollment_apps_covered();
            if let Some(how) = p.blocks_new_devices()
                && !apps.is_empty()
            {
                what.push(format!(
                    "{} {how} for {} without leaving out {}",
                    p.name(),
                    names(&covered),
                    apps.join(" and ")
                ));
            }
            let tou = !p
                .grant_controls
                .as_ref()
                .map(|g| g.terms_of_use.is_empty())
                .unwrap_or(true);
            if tou && apps.contains(&"Microsoft Intune Enrollment") {
                what.push(format!(
                    "{} asks {} to accept Terms of use on Microsoft Intune Enrollment",
                    p.name(),
                    names(&covered)
                ));
            }
        }
        let label = match state {
            "enabledForReportingButNotEnforced" => "report-only",
            "enabled" => "on",
            other => other,
        };
        if what.is_empty() && covered.is_empty() && p.targets_roles() {
            details.push(format!(
                "{}: {label}, targets directory roles, not checked against the deployers: make sure none of them holds those roles, or that it leaves out Microsoft Intune Enrollment",
                p.name()
            ));
        } else if what.is_empty() {
            details.push(format!("{}: {label}, does not stop enrollment", p.name()));
        } else if state == "enabledForReportingButNotEnforced" {
            details.push(format!("{}: report-only: {}", p.name(), what.join("; ")));
            report_only.extend(what);
        } else {
            details.push(format!("{}: {label}: {}", p.name(), what.join("; ")));
            problems.extend(what);
        }
    }
    if policies.is_empty() {
        details.push("The tenant has no Conditional Access policy.".into());
    }
    let fix = "In the policy, under Target resources > Exclude, select Microsoft Intune Enrollment and Microsoft Intune (and take Terms of use off Microsoft Intune Enrollment).".to_string();
    let mut f = if !problems.is_empty() {
        let mut f = Finding::new(c, Level::Fail, format!("{}.", problems.join("; ")));
        f.at_oobe = Some("The sign-in at OOBE is refused when the device tries to enroll in Intune: it is not compliant yet (it cannot be before enrollment), and setup stops.".into());
        f.fix = Some(fix);
        f
    } else if !report_only.is_empty() {
        let mut f = Finding::new(
            c,
            Level::Warning,
            format!(
                "Report-only today, so nothing is blocked yet: {}.",
                report_only.join("; ")
            ),
        );
        f.at_oobe = Some("Nothing while the policy stays report-only; the day it is switched on, enrollment at OOBE is refused.".into());
        f.fix = Some(format!("Before switching it on: {fix}"));
        f
    } else {
        Finding::new(
            c,
            Level::Pass,
            "No Conditional Access policy stops enrollment.",
        )
    };
    if f.level != Level::Pass {
        f.link = Some((
            "Conditional Access policies in the Entra admin center".into(),
            CA_URL.into(),
        ));
    }
    f.details = details;
    f
}

// ---------------------------------------------------------------------------------------------
// 2. Registration policy: MFA to join against Conditional Access, the device quota

/// The registration policy as read, whole: the wizard writes it back only changed in one
/// setting (a field left out of the replacement is reset by the service).
async fn read_registration(graph: &GraphClient) -> Result<Value, GraphError> {
    graph
        .get_json(ApiVersion::V1, "/policies/deviceRegistrationPolicy")
        .await
}

fn mfa_required(p: &Value) -> bool {
    matches!(
        p.get("multiFactorAuthConfiguration")
            .and_then(Value::as_str),
        Some("required") | Some("1")
    )
}

fn quota(p: &Value) -> Option<i64> {
    p.get("userDeviceQuota").and_then(Value::as_i64)
}

/// MFA to join against a Conditional Access policy on "Register or join devices", and each
/// deployer's joined devices against the quota (`devices`: how many are to be deployed, when
/// known).
pub async fn check_registration(
    graph: &GraphClient,
    users: &[DeployingUser],
    devices: Option<usize>,
) -> Finding {
    let c = CHECK_REGISTRATION;
    let policy = match read_registration(graph).await {
        Ok(p) => p,
        Err(e) => return Finding::unknown(c, e),
    };
    let ca = match read_ca(graph).await {
        Ok(p) => p,
        Err(e) => return Finding::unknown(c, e),
    };
    let mut f = Finding::new(c, Level::Pass, "");
    let mut summary = Vec::new();
    let mfa = mfa_required(&policy);
    let on_action: Vec<String> = ca
        .iter()
        .filter(|p| p.state() != "disabled")
        .filter(|p| {
            p.apps()
                .include_user_actions
                .iter()
                .any(|a| a == REGISTER_OR_JOIN)
        })
        .map(|p| p.name())
        .collect();
    f.details.push(format!(
        "Require Multifactor Authentication to register or join devices: {}",
        if mfa { "Yes" } else { "No" }
    ));
    if !on_action.is_empty() {
        f.details.push(format!(
            "Conditional Access on \"Register or join devices\": {}",
            names(&on_action)
        ));
    }
    if mfa && !on_action.is_empty() {
        f.worse(Level::Warning);
        summary.push(format!(
            "\"Require MFA to register or join devices\" (Entra device settings) is on while the Conditional Access {} {} also {} for it on \"Register or join devices\"",
            if on_action.len() == 1 { "policy" } else { "policies" },
            names(&on_action),
            if on_action.len() == 1 { "asks" } else { "ask" }
        ));
        f.at_oobe = Some("The older setting asks for MFA at the join instead of your Conditional Access policy: its conditions (locations, authentication strength, exclusions) are not applied as you set them. Microsoft asks to set the older setting to No when Conditional Access handles it.".into());
        f.fix = Some(format!(
            "Set \"Require Multifactor Authentication to register or join devices with Microsoft Entra\" to No (Microsoft Entra admin center > Devices > Device settings; Microsoft's guide: {MFA_DOC_URL})."
        ));
        f.action = Some(Action::TurnOffMfaToJoin);
        f.link = Some((
            "Entra device settings".into(),
            join_permission::JOIN_SETTING_URL.into(),
        ));
    }
    let q = quota(&policy);
    f.details.push(match q {
        Some(q) => format!("Maximum number of devices per user: {q}"),
        None => "Maximum number of devices per user: not reported".into(),
    });
    if let Some(q) = q {
        let mut full = Vec::new();
        let mut tight = Vec::new();
        for u in users {
            let owned: Vec<Value> = match graph
                .get_all(
                    ApiVersion::V1,
                    &format!("/users/{}/ownedDevices?$select=id", encode(&u.id)),
                )
                .await
            {
                Ok(o) => o,
                Err(e) => return Finding::unknown(c, e),
            };
            let n = owned.len() as i64;
            let room = (q - n).max(0);
            f.details.push(format!(
                "{} has joined {n} device{} ({room} more allowed)",
                u.name,
                if n == 1 { "" } else { "s" }
            ));
            if room == 0 {
                full.push(u.name.clone());
            } else if devices.map(|d| (d as i64) > room).unwrap_or(room <= 5) {
                tight.push(format!("{} ({room} more)", u.name));
            }
        }
        let join_url = (
            "Entra device settings".to_string(),
            join_permission::JOIN_SETTING_URL.to_string(),
        );
        if q == 0 {
            f.worse(Level::Fail);
            summary.push(
                "The maximum number of devices per user is 0: nobody can join a device".into(),
            );
        } else if !full.is_empty() {
            f.worse(Level::Fail);
            summary.push(format!(
                "{} already joined the {q} devices a user may have",
                names(&full)
            ));
        } else if !tight.is_empty() {
            f.worse(Level::Warning);
            summary.push(format!(
                "Few devices left to join for {}{}",
                names(&tight),
                devices
                    .map(|d| format!(", with {d} devices to deploy"))
                    .unwrap_or_default()
            ));
        }
        if q == 0 || !full.is_empty() || !tight.is_empty() {
            let text = "The join fails at OOBE for a person who has reached the maximum number of devices per user: one technician signing in on every PC reaches it quickly.";
            f.at_oobe = Some(match f.at_oobe.take() {
                Some(a) => format!("{a} {text}"),
                None => text.into(),
            });
            let fix = "Raise \"Maximum number of devices per user\" (Microsoft Entra admin center > Devices > Device settings), delete the stale devices of these people, or let the future users sign in at OOBE themselves.";
            f.fix = Some(match f.fix.take() {
                Some(x) => format!("{x} {fix}"),
                None => fix.into(),
            });
            if f.link.is_none() {
                f.link = Some(join_url);
            }
        }
    }
    f.summary = if summary.is_empty() {
        "MFA to join and the device quota leave the deployers room to join every device.".into()
    } else {
        format!("{}.", summary.join("; "))
    };
    f
}

/// Turns off "Require MFA to register or join devices": the policy read, changed in that one
/// setting, replaces the policy (PUT, as Graph documents the update); every other setting,
/// `userDeviceQuota` first, goes back as it was read. Reads the policy back.
pub async fn turn_off_mfa_to_join(graph: &GraphClient) -> Result<String, String> {
    let read = read_registration(graph).await.map_err(|e| e.to_string())?;
    let body = mfa_off_body(&read)?;
    let url = graph.url(ApiVersion::V1, "/policies/deviceRegistrationPolicy");
    let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    graph
        .send_url(reqwest::Method::PUT, &url, Some(bytes))
        .await
        .map_err(|e| {
            if e.is_forbidden() {
                format!(
                    "Changing the device registration policy needs the permission {} and the Cloud Device Administrator role. Change it by hand: Microsoft Entra admin center > Devices > Device settings. ({e})",
                    POLICY_WRITE.name
                )
            } else {
                e.to_string()
            }
        })?;
    let back = read_registration(graph).await.map_err(|e| e.to_string())?;
    if mfa_required(&back) {
        return Err("The policy was sent, but reading it back still says MFA is required to join. Change it by hand: Microsoft Entra admin center > Devices > Device settings.".into());
    }
    if quota(&back) != quota(&read) {
        return Err(format!(
            "The maximum number of devices per user changed from {:?} to {:?}: set it back in Microsoft Entra admin center > Devices > Device settings.",
            quota(&read),
            quota(&back)
        ));
    }
    Ok("\"Require MFA to register or join devices\" is now No (read back).".into())
}

/// The replacement body: the policy as read without its read-only parts, MFA not required.
/// Refuses a policy without `userDeviceQuota`: sending one without it would set it to 0.
pub fn mfa_off_body(read: &Value) -> Result<Value, String> {
    let Some(mut m) = read.as_object().cloned() else {
        return Err("The device registration policy came back in an unexpected form.".into());
    };
    // The older shape ("0"/"1", appliesTo…) is not what the documented replacement takes.
    if matches!(
        read.get("multiFactorAuthConfiguration")
            .and_then(Value::as_str),
        Some("0") | Some("1")
    ) {
        return Err("The device registration policy came back in the older format; the wizard does not replace it in that form. Change the setting by hand: Microsoft Entra admin center > Devices > Device settings.".into());
    }
    if quota(read).is_none() {
        return Err("The device registration policy came back without its device quota; the wizard will not replace it (that would set the quota to 0). Change the setting by hand: Microsoft Entra admin center > Devices > Device settings.".into());
    }
    m.retain(|k, _| !k.starts_with("@odata.context"));
    m.insert(
        "multiFactorAuthConfiguration".into(),
        Value::String("notRequired".into()),
    );
    Ok(Value::Object(m))
}

// ---------------------------------------------------------------------------------------------
// Enrollment restrictions

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", default)]
struct RawRestriction {
    platform_blocked: Option<bool>,
    personal_device_enrollment_blocked: Option<bool>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", default)]
struct RawTarget {
    #[serde(rename = "@odata.type")]
    odata_type: Option<String>,
    group_id: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", default)]
struct RawAssignment {
    target: Option<RawTarget>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", default)]
struct RawConfig {
    #[serde(rename = "@odata.type")]
    odata_type: Option<String>,
    display_name: Option<String>,
    priority: i64,
    device_enrollment_configuration_type: Option<String>,
    platform_type: Option<String>,
    platform_restriction: Option<RawRestriction>,
    windows_restriction: Option<RawRestriction>,
    limit: Option<i64>,
    assignments: Vec<RawAssignment>,
}

impl RawConfig {
    fn kind(&self) -> &str {
        self.odata_type
            .as_deref()
            .unwrap_or("")
            .trim_start_matches('#')
            .trim_start_matches("microsoft.graph.")
    }

    fn is_default(&self) -> bool {
        self.device_enrollment_configuration_type
            .as_deref()
            .is_some_and(|t| t.starts_with("default"))
            || self.priority == 0
    }

    fn windows(&self) -> Option<RawRestriction> {
        match self.kind() {
            "deviceEnrollmentPlatformRestrictionConfiguration"
                if self.platform_type.as_deref() == Some("windows") =>
            {
                self.platform_restriction.clone()
            }
            "deviceEnrollmentPlatformRestrictionsConfiguration" => self.windows_restriction.clone(),
            _ => None,
        }
    }

    fn name(&self) -> String {
        format!(
            "\"{}\"",
            self.display_name.as_deref().unwrap_or("(no name)")
        )
    }

    fn reaches(&self, u: Option<&DeployingUser>) -> bool {
        self.assignments.iter().any(|a| {
            let Some(t) = &a.target else { return false };
            let ty = t.odata_type.as_deref().unwrap_or("");
            if ty.ends_with("allLicensedUsersAssignmentTarget") {
                return true;
            }
            ty.ends_with("groupAssignmentTarget")
                && !ty.ends_with("exclusionGroupAssignmentTarget")
                && match (u, &t.group_id) {
                    (Some(u), Some(g)) => u.groups.contains(&g.to_ascii_lowercase()),
                    _ => false,
                }
        })
    }
}

/// Which Windows platform restriction each deployer gets (the highest-priority one assigned to
/// a group of theirs, else the default) and whether it blocks Windows; the device limits, which
/// do not apply to Autopilot.
pub async fn check_restrictions(graph: &GraphClient, users: &[DeployingUser]) -> Finding {
    let c = CHECK_RESTRICTIONS;
    let configs: Vec<RawConfig> = match graph
        .get_all(
            ApiVersion::Beta,
            "/deviceManagement/deviceEnrollmentConfigurations?$expand=assignments",
        )
        .await
    {
        Ok(v) => v,
        Err(e) => return Finding::unknown(c, e),
    };
    let mut windows: Vec<&RawConfig> = configs.iter().filter(|c| c.windows().is_some()).collect();
    windows.sort_by_key(|c| (c.is_default(), c.priority));
    let default = windows.iter().find(|c| c.is_default()).copied();
    let who: Vec<Option<&DeployingUser>> = if users.is_empty() {
        vec![None]
    } else {
        users.iter().map(Some).collect()
    };
    let mut blocked = Vec::new();
    let mut details = Vec::new();
    let mut personal = false;
    for u in who {
        let applies = windows
            .iter()
            .find(|c| !c.is_default() && c.reaches(u))
            .copied()
            .or(default);
        let name = u
            .map(|u| u.name.clone())
            .unwrap_or_else(|| "Everyone".into());
        match applies {
            None => details.push(format!(
                "{name}: no Windows platform restriction (Windows allowed)"
            )),
            Some(r) => {
                let w = r.windows().unwrap_or_default();
                let is_blocked = w.platform_blocked.unwrap_or(false);
                personal |= w.personal_device_enrollment_blocked.unwrap_or(false);
                details.push(format!(
                    "{name}: {} (priority {}): Windows {}",
                    r.name(),
                    r.priority,
                    if is_blocked { "BLOCKED" } else { "allowed" }
                ));
                if is_blocked {
                    blocked.push(format!("{name} by {}", r.name()));
                }
            }
        }
    }
    if personal {
        details.push("Personally owned Windows devices are blocked: Autopilot devices count as corporate, so this does not stop them (it stops other ways of enrolling, with error 0x80180014).".into());
    }
    let limits: Vec<String> = configs
        .iter()
        .filter(|c| c.kind() == "deviceEnrollmentLimitConfiguration")
        .map(|c| format!("{} {}", c.name(), c.limit.unwrap_or_default()))
        .collect();
    if !limits.is_empty() {
        details.push(format!(
            "Intune device limit: {}. It does not apply to devices enrolled with Windows Autopilot; Entra's devices-per-user limit does.",
            limits.join(", ")
        ));
    }
    let mut f = if blocked.is_empty() {
        Finding::new(
            c,
            Level::Pass,
            "Windows enrollment is allowed for the deployers.",
        )
    } else {
        let mut f = Finding::new(
            c,
            Level::Fail,
            format!("Windows enrollment is blocked for {}.", names(&blocked)),
        );
        f.at_oobe = Some("The device does not enroll in Intune when this person signs in: setup stops with an enrollment error.".into());
        f.fix = Some("In Microsoft Intune admin center > Devices > Enrollment > Device platform restriction > Windows restrictions, allow Windows (MDM) in that restriction, or take the person's group out of its assignments.".into());
        f.link = Some((
            "Intune enrollment restrictions".into(),
            RESTRICTIONS_URL.into(),
        ));
        f
    };
    f.details = details;
    f
}

// ---------------------------------------------------------------------------------------------
// MDM user scope groups

/// Groups of the MDM user scope that hold no users: the scope is about the person who signs in,
/// so a device group there covers nobody.
pub async fn check_mdm_groups(graph: &GraphClient) -> Finding {
    let c = CHECK_MDM_GROUPS;
    let policies = match join_permission::read_policies(graph).await {
        Ok(p) => p,
        Err(e) => return Finding::unknown(c, e),
    };
    let groups = match &policies.mdm {
        Some(Scope::Selected { groups, .. }) => groups.clone(),
        _ => {
            return Finding::new(
                c,
                Level::Pass,
                "The MDM user scope is not a list of groups (All or None): nothing to check.",
            );
        }
    };
    let mut empty = Vec::new();
    let mut details = Vec::new();
    for g in &groups {
        let page: Result<Page<Value>, GraphError> = graph
            .get_json(
                ApiVersion::V1,
                &format!(
                    "/groups/{}/transitiveMembers/microsoft.graph.user?$select=id&$top=1",
                    encode(&g.id)
                ),
            )
            .await;
        match page {
            Ok(p) if p.value.is_empty() => {
                details.push(format!("{}: no users", g.name));
                empty.push(format!("\"{}\"", g.name));
            }
            Ok(_) => details.push(format!("{}: holds users", g.name)),
            Err(e) => return Finding::unknown(c, e),
        }
    }
    let mut f = if empty.is_empty() {
        Finding::new(
            c,
            Level::Pass,
            "Every group in the MDM user scope holds users.",
        )
    } else {
        let mut f = Finding::new(
            c,
            Level::Warning,
            format!(
                "{} in the MDM user scope {} no users: {} nobody.",
                names(&empty),
                if empty.len() == 1 { "holds" } else { "hold" },
                if empty.len() == 1 {
                    "it covers"
                } else {
                    "they cover"
                }
            ),
        );
        f.at_oobe = Some("Automatic enrollment looks at the person who signs in, not at the device: someone covered only through such a group is not enrolled in Intune.".into());
        f.fix = Some(format!(
            "Replace it by a group of the deploying users: {}.",
            join_permission::MDM_SETTING_PATH
        ));
        f.link = Some((
            "Intune automatic enrollment".into(),
            join_permission::MDM_SETTING_URL.into(),
        ));
        f
    };
    f.details = details;
    f
}

// ---------------------------------------------------------------------------------------------
// Company branding

#[derive(Deserialize)]
struct RawOrg {
    id: String,
}

/// Whether the tenant has company branding, and in how many languages.
pub async fn check_branding(graph: &GraphClient) -> Finding {
    let c = CHECK_BRANDING;
    let orgs: Vec<RawOrg> = match graph
        .get_all(ApiVersion::V1, "/organization?$select=id")
        .await
    {
        Ok(o) => o,
        Err(e) => return Finding::unknown(c, e),
    };
    let Some(org) = orgs.first() else {
        return Finding::unknown(c, "the tenant's organization was not found");
    };
    let path = format!("/organization/{}/branding", encode(&org.id));
    match graph.get_json::<Value>(ApiVersion::V1, &path).await {
        Ok(b) => {
            let locales: Vec<Value> = graph
                .get_all(ApiVersion::V1, &format!("{path}/localizations"))
                .await
                .unwrap_or_default();
            let mut f = Finding::new(
                c,
                Level::Pass,
                "The tenant has company branding: the sign-in page at OOBE shows it.",
            );
            if let Some(t) = b.get("signInPageText").and_then(Value::as_str) {
                f.details.push(format!("Sign-in page text: {t}"));
            }
            f.details.push(format!(
                "{} language version{} (the default included)",
                locales.len().max(1),
                if locales.len() > 1 { "s" } else { "" }
            ));
            f
        }
        Err(e) if e.is_not_found() => {
            let mut f = Finding::new(c, Level::Warning, "The tenant has no company branding.");
            f.at_oobe = Some("The sign-in page at OOBE is Microsoft's plain one: no company name, logo or hint for the sign-in name, so people cannot tell it is their company asking, and with \"Hide change account options\" they have no other way to see whose device it is.".into());
            f.fix = Some("Add at least a banner logo and a sign-in page text: Microsoft Entra admin center > User experiences > Company branding.".into());
            f.link = Some((
                "Microsoft guide: company branding".into(),
                BRANDING_URL.into(),
            ));
            f
        }
        Err(e) => Finding::unknown(c, e),
    }
}

// ---------------------------------------------------------------------------------------------
// Local administrator (the profile step)

fn membership_words(v: Option<&Value>) -> (&'static str, String) {
    let t = v
        .and_then(|m| m.get("@odata.type"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim_start_matches('#');
    match t {
        "microsoft.graph.allDeviceRegistrationMembership" => ("all", "All".into()),
        "microsoft.graph.noDeviceRegistrationMembership" => ("none", "None".into()),
        "microsoft.graph.enumeratedDeviceRegistrationMembership" => {
            ("selected", "Selected users and groups".into())
        }
        "" => ("unknown", "not reported".into()),
        other => ("unknown", format!("not understood ({other})")),
    }
}

/// Who will be an administrator on the PC, from the profile's account type (`standard` or
/// `administrator`) and Entra's local-administrator and LAPS settings, in plain words.
pub async fn check_local_admin(graph: &GraphClient, user_type: &str) -> Finding {
    let c = CHECK_LOCAL_ADMIN;
    let policy = match read_registration(graph).await {
        Ok(p) => p,
        Err(e) => return Finding::unknown(c, e),
    };
    let local = policy.get("azureADJoin").and_then(|j| j.get("localAdmins"));
    let (registering, registering_words) =
        membership_words(local.and_then(|l| l.get("registeringUsers")));
    let global_admins = local
        .and_then(|l| l.get("enableGlobalAdmins"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let laps = policy
        .get("localAdminPassword")
        .and_then(|l| l.get("isEnabled"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let admin_profile = user_type.eq_ignore_ascii_case("administrator");
    let mut admins = Vec::new();
    if admin_profile {
        admins.push("the person who signs in at OOBE".to_string());
    }
    if global_admins {
        admins.push("Global Administrators".into());
    }
    admins.push("holders of the Microsoft Entra Joined Device Local Administrator role".into());
    if laps {
        admins.push(
            "whoever reads the local administrator password from Entra (Windows LAPS)".into(),
        );
    }
    let mut f = Finding::new(
        c,
        Level::Pass,
        format!(
            "Administrators on the PC: {}. The person who signs in will be {}.",
            names(&admins),
            if admin_profile {
                "a local administrator"
            } else {
                "a standard user"
            }
        ),
    );
    f.details = vec![
        format!(
            "Profile: user account type {}",
            if admin_profile {
                "Administrator"
            } else {
                "Standard"
            }
        ),
        format!("Entra: registering user is added as local administrator: {registering_words}"),
        format!(
            "Entra: Global Administrators are local administrators: {}",
            if global_admins { "Yes" } else { "No" }
        ),
        format!(
            "Entra: Windows LAPS (local administrator password): {}",
            if laps { "on" } else { "off" }
        ),
    ];
    let entra_setting = "Microsoft Entra admin center > Devices > Device settings > \"Registering user is added as local administrator on the device during Microsoft Entra join\"";
    if !admin_profile && registering == "all" {
        f.level = Level::Warning;
        f.summary = format!(
            "The profile makes the person who signs in a standard user, while Entra says every registering user becomes a local administrator. On an Autopilot device the profile decides: they will be a standard user. {}",
            f.summary
        );
        f.at_oobe = Some("The person who sets up the PC cannot install software or change settings that need an administrator; anyone expecting Entra's setting to apply is surprised.".into());
        f.fix = Some(format!(
            "Make the two agree: choose Administrator as the user account type in the profile if they should be administrators, or set {entra_setting} to None or Selected."
        ));
        f.link = Some((
            "Entra device settings".into(),
            join_permission::JOIN_SETTING_URL.into(),
        ));
    } else if admin_profile && registering != "all" {
        f.level = Level::Warning;
        f.summary = format!(
            "The profile makes the person who signs in an administrator, while Entra's setting for registering users is {registering_words}: the two disagree, and field reports say Entra's then keeps them standard. {}",
            f.summary
        );
        f.at_oobe = Some("The person who sets up the PC may end up a standard user although the profile says Administrator.".into());
        f.fix = Some(format!(
            "Make the two agree: set {entra_setting} to All (or Selected with these people), or choose Standard in the profile."
        ));
        f.link = Some((
            "Entra device settings".into(),
            join_permission::JOIN_SETTING_URL.into(),
        ));
    } else if !admin_profile && !global_admins && !laps {
        f.level = Level::Warning;
        f.summary = format!(
            "Nobody signing in on the PC is an administrator, Global Administrators are not either, and Windows LAPS is off. {}",
            f.summary
        );
        f.at_oobe = Some("After setup nobody on site can do anything that needs an administrator on the PC, except holders of the Device Local Administrator role.".into());
        f.fix = Some("Turn on Windows LAPS (Entra device settings) with a LAPS policy in Intune, or let Global Administrators be local administrators.".into());
        f.link = Some((
            "Entra device settings".into(),
            join_permission::JOIN_SETTING_URL.into(),
        ));
    }
    f
}

// ---------------------------------------------------------------------------------------------
// Together

/// Every check of step 2 for these deployers (reads only). `devices`: how many devices will
/// be deployed, when known.
pub async fn check_deployers(
    graph: &GraphClient,
    deployers: &[Deployer],
    devices: Option<usize>,
) -> Vec<Finding> {
    let users = match deploying_users(graph, deployers).await {
        Ok(u) => u,
        Err(e) => {
            let e = e.to_string();
            return [
                CHECK_LICENCES,
                CHECK_REGISTRATION,
                CHECK_CONDITIONAL_ACCESS,
                CHECK_RESTRICTIONS,
            ]
            .into_iter()
            .map(|c| Finding::unknown(c, &e))
            .chain([check_mdm_groups(graph).await, check_branding(graph).await])
            .collect();
        }
    };
    vec![
        check_licences(graph, &users).await,
        check_registration(graph, &users, devices).await,
        check_conditional_access(graph, &users).await,
        check_restrictions(graph, &users).await,
        check_mdm_groups(graph).await,
        check_branding(graph).await,
    ]
}

/// Step 2's items of the validation report, for the report's deployers and devices.
pub fn validate_join_items<'a>(
    graph: &'a GraphClient,
    inputs: &'a ValidateInputs,
) -> BoxFuture<'a, Vec<CheckItem>> {
    Box::pin(async move {
        let devices =
            (!inputs.expected_serials.is_empty()).then_some(inputs.expected_serials.len());
        check_deployers(graph, &inputs.deployers, devices)
            .await
            .into_iter()
            .map(Finding::into_item)
            .collect()
    })
}

/// Step 3's item of the validation report: who will be administrator, for the report's profile.
pub fn validate_profile_items<'a>(
    graph: &'a GraphClient,
    inputs: &'a ValidateInputs,
) -> BoxFuture<'a, Vec<CheckItem>> {
    Box::pin(async move {
        let finding =
            match crate::steps::profile::pick_profile(graph, &inputs.target.profile_id).await {
                Ok(p) => {
                    let t = p
                        .profile
                        .oobe
                        .user_type
                        .clone()
                        .unwrap_or_else(|| "standard".into());
                    check_local_admin(graph, &t).await
                }
                Err(e) => Finding::unknown(CHECK_LOCAL_ADMIN, e),
            };
        vec![finding.into_item()]
    })
}
