//! Step 2: may the people who will deploy devices join them to Microsoft Entra, and are they in
//! the Intune automatic-enrollment (MDM) user scope? Reads the device registration policy
//! (v1.0) and the MDM policies (beta), expands the chosen deployers into users, and decides
//! coverage per user through transitive group membership (reference §2, procedure §1.1).
//!
//! Read only: who may join and enroll is never written (a PUT of the registration policy that
//! omits a field resets it, reference §2.1). The one change the wizard makes to that policy,
//! turning off "Require MFA to register or join devices", is in `steps/readiness.rs`.

use std::collections::HashMap;

use crate::graph::models::directory::{DirectoryObject, Group, User};
use crate::graph::models::policy::{Membership, MobilityManagementPolicy, RegistrationPolicy};
use crate::graph::{ApiVersion, GraphClient, GraphError, client::encode};

use crate::steps::registry::Permission;

/// Reads the device registration and MDM policies.
pub const POLICY_READ: Permission = Permission::new("Policy.Read.All", &["Policy.ReadWrite.All"]);
/// Finds the deploying users.
pub const USERS_READ: Permission = Permission::new(
    "User.ReadBasic.All",
    &[
        "User.Read.All",
        "User.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ],
);

/// Where to change who may join, for the instructions.
pub const JOIN_SETTING_PATH: &str = "Microsoft Entra admin center > Devices > Device settings > \"Users may join devices to Microsoft Entra\"";
pub const JOIN_SETTING_URL: &str = "https://entra.microsoft.com/#view/Microsoft_AAD_Devices/DevicesMenuBlade/~/DeviceSettings/menuId~/null";
pub const JOIN_DOC_URL: &str =
    "https://learn.microsoft.com/autopilot/tutorial/user-driven/azure-ad-join-allow-users-to-join";
pub const MDM_SETTING_PATH: &str = "Microsoft Intune admin center > Devices > Enrollment > Windows > Automatic Enrollment > MDM user scope";
pub const MDM_SETTING_URL: &str = "https://intune.microsoft.com/#view/Microsoft_Intune_DeviceSettings/DevicesEnrollmentMenu/~/windowsEnrollment";
pub const MDM_DOC_URL: &str =
    "https://learn.microsoft.com/autopilot/tutorial/user-driven/azure-ad-join-automatic-enrollment";

#[derive(Debug, thiserror::Error)]
pub enum JoinPermissionError {
    #[error(
        "Your account may not read {what}. Graph needs the permission {permission} consented for this app, \
         and your account needs an Entra role that can read it, such as {roles}. \
         Ask a Global Administrator to grant it, sign in again, then check again. ({source})"
    )]
    Forbidden {
        what: &'static str,
        permission: &'static str,
        roles: &'static str,
        source: Box<GraphError>,
    },
    #[error("Could not read {what}: {source}")]
    Graph {
        what: &'static str,
        source: Box<GraphError>,
    },
    #[error(
        "The device registration policy came back in a form this wizard does not understand ({0}). \
         Check it by hand: {JOIN_SETTING_PATH}."
    )]
    Shape(String),
}

fn graph_err(
    what: &'static str,
    permission: &'static str,
) -> impl Fn(GraphError) -> JoinPermissionError {
    move |source| {
        if source.is_forbidden() {
            JoinPermissionError::Forbidden {
                what,
                permission,
                roles: "Global Reader, Cloud Device Administrator or Intune Administrator",
                source: Box::new(source),
            }
        } else {
            JoinPermissionError::Graph {
                what,
                source: Box::new(source),
            }
        }
    }
}

/// A user or group object with its display name, for showing who a policy names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Named {
    pub id: String,
    pub name: String,
}

/// Who a policy covers, with display names resolved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Scope {
    Everyone,
    Nobody,
    Selected {
        users: Vec<Named>,
        groups: Vec<Named>,
    },
    /// A value this wizard does not know; treated as not covering anyone.
    Unknown(String),
}

/// What the tenant's two policies say.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Policies {
    pub join: Scope,
    pub user_device_quota: Option<i32>,
    pub mfa_required: Option<bool>,
    pub legacy_shape: bool,
    /// The Intune MDM scope; `None` when the tenant has no Intune MDM application entry.
    pub mdm: Option<Scope>,
    pub mdm_app_name: Option<String>,
}

async fn resolve_names(
    graph: &GraphClient,
    users: &[String],
    groups: &[String],
) -> (Vec<Named>, Vec<Named>) {
    let mut u = Vec::new();
    for id in users {
        let name = graph
            .get_json::<User>(
                ApiVersion::V1,
                &format!(
                    "/users/{}?$select=id,displayName,userPrincipalName",
                    encode(id)
                ),
            )
            .await
            .ok()
            .and_then(|x| x.display_name.or(x.user_principal_name))
            .unwrap_or_else(|| format!("{id} (not found)"));
        u.push(Named {
            id: id.clone(),
            name,
        });
    }
    let mut g = Vec::new();
    for id in groups {
        let name = graph
            .get_json::<Group>(
                ApiVersion::V1,
                &format!("/groups/{}?$select=id,displayName", encode(id)),
            )
            .await
            .ok()
            .and_then(|x| x.display_name)
            .unwrap_or_else(|| format!("{id} (not found)"));
        g.push(Named {
            id: id.clone(),
            name,
        });
    }
    (u, g)
}

/// Reads both policies and resolves the names of the users and groups they list.
pub async fn read_policies(graph: &GraphClient) -> Result<Policies, JoinPermissionError> {
    let raw: serde_json::Value = graph
        .get_json(ApiVersion::V1, "/policies/deviceRegistrationPolicy")
        .await
        .map_err(graph_err(
            "the device registration policy",
            "Policy.Read.All (or Policy.Read.DeviceConfiguration)",
        ))?;
    let reg = RegistrationPolicy::from_json(&raw).map_err(JoinPermissionError::Shape)?;
    let join = match reg.join {
        Membership::All => Scope::Everyone,
        Membership::None => Scope::Nobody,
        Membership::Unknown(s) => Scope::Unknown(s),
        Membership::Selected { users, groups } => {
            let (users, groups) = resolve_names(graph, &users, &groups).await;
            Scope::Selected { users, groups }
        }
    };
    let mdm_list: Vec<MobilityManagementPolicy> = graph
        .get_all(ApiVersion::Beta, "/policies/mobileDeviceManagementPolicies")
        .await
        .map_err(graph_err(
            "the MDM automatic-enrollment settings",
            "Policy.Read.All",
        ))?;
    let intune = mdm_list.into_iter().find(|p| p.is_intune());
    let (mdm, mdm_app_name) = match intune {
        None => (None, None),
        Some(p) => {
            let scope = match p.applies_to.as_deref() {
                Some("all") => Scope::Everyone,
                Some("none") => Scope::Nobody,
                Some("selected") => {
                    let groups: Vec<Group> = graph
                        .get_all(
                            ApiVersion::Beta,
                            &format!(
                                "/policies/mobileDeviceManagementPolicies/{}/includedGroups?$select=id,displayName",
                                encode(&p.id)
                            ),
                        )
                        .await
                        .map_err(graph_err(
                            "the groups in the MDM user scope",
                            "Policy.Read.All",
                        ))?;
                    Scope::Selected {
                        users: Vec::new(),
                        groups: groups
                            .into_iter()
                            .map(|g| Named {
                                name: g.name().to_string(),
                                id: g.id,
                            })
                            .collect(),
                    }
                }
                other => Scope::Unknown(other.unwrap_or("(missing)").to_string()),
            };
            (Some(scope), p.display_name)
        }
    };
    Ok(Policies {
        join,
        user_device_quota: reg.user_device_quota,
        mfa_required: reg.mfa_required,
        legacy_shape: reg.legacy_shape,
        mdm,
        mdm_app_name,
    })
}

/// Someone chosen to deploy devices: a user, or a group whose users all deploy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Deployer {
    User {
        id: String,
        name: String,
        upn: Option<String>,
    },
    Group {
        id: String,
        name: String,
    },
}

impl Deployer {
    pub fn id(&self) -> &str {
        match self {
            Deployer::User { id, .. } | Deployer::Group { id, .. } => id,
        }
    }

    pub fn label(&self) -> String {
        match self {
            Deployer::User {
                name, upn: Some(u), ..
            } => format!("{name} ({u})"),
            Deployer::User { name, .. } => name.clone(),
            Deployer::Group { name, .. } => format!("{name} (group)"),
        }
    }
}

/// A dynamic group whose rule selects devices (`device.` properties) rather than users.
fn collects_devices(g: &Group) -> bool {
    let rule = g
        .membership_rule
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    g.is_dynamic() && rule.contains("device.") && !rule.contains("user.")
}

/// Users and groups (of users) whose name starts with `text` (directory search, word prefixes).
pub async fn search_deployers(
    graph: &GraphClient,
    text: &str,
) -> Result<Vec<Deployer>, JoinPermissionError> {
    let t = text.trim().replace('"', "");
    if t.is_empty() {
        return Ok(Vec::new());
    }
    let g = graph.clone().eventual();
    let search = encode(&format!("\"displayName:{t}\" OR \"userPrincipalName:{t}\""));
    let users: crate::graph::client::Page<User> = g
        .get_json(
            ApiVersion::V1,
            &format!(
                "/users?$search={search}&$count=true&$select=id,displayName,userPrincipalName&$top=15"
            ),
        )
        .await
        .map_err(graph_err("users", "User.ReadBasic.All"))?;
    let search = encode(&format!("\"displayName:{t}\""));
    let groups: crate::graph::client::Page<Group> = g
        .get_json(
            ApiVersion::V1,
            &format!(
                "/groups?$search={search}&$count=true&$select=id,displayName,groupTypes,membershipRule&$top=15"
            ),
        )
        .await
        .map_err(graph_err("groups", "Group.Read.All"))?;
    let mut out: Vec<Deployer> = users
        .value
        .into_iter()
        .map(|u| Deployer::User {
            name: u
                .display_name
                .clone()
                .or(u.user_principal_name.clone())
                .unwrap_or_else(|| u.id.clone()),
            upn: u.user_principal_name,
            id: u.id,
        })
        .collect();
    // People deploy: a group whose rule collects devices has nobody to sign in.
    out.extend(
        groups
            .value
            .into_iter()
            .filter(|g| !collects_devices(g))
            .map(|g| Deployer::Group {
                name: g.name().to_string(),
                id: g.id,
            }),
    );
    Ok(out)
}

/// Whether a policy covers one user, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Covered {
    pub ok: bool,
    pub why: String,
}

/// One row of the coverage table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserCoverage {
    pub user_id: String,
    pub name: String,
    /// The chosen group this user came from, if any.
    pub via: Option<String>,
    pub join: Covered,
    pub mdm: Covered,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CoverageReport {
    pub rows: Vec<UserCoverage>,
    /// Chosen groups that hold no users (the policies apply to users, so these cover nobody).
    pub empty_groups: Vec<String>,
}

fn decide(
    scope: Option<&Scope>,
    user_id: &str,
    member_of: &HashMap<String, String>,
    what: &str,
) -> Covered {
    let Some(scope) = scope else {
        return Covered {
            ok: false,
            why: format!("no Intune entry exists in {what}"),
        };
    };
    match scope {
        Scope::Everyone => Covered {
            ok: true,
            why: "everyone is allowed".into(),
        },
        Scope::Nobody => Covered {
            ok: false,
            why: "nobody is allowed".into(),
        },
        Scope::Unknown(s) => Covered {
            ok: false,
            why: format!("setting not understood ({s})"),
        },
        Scope::Selected { users, groups } => {
            if users.iter().any(|u| u.id.eq_ignore_ascii_case(user_id)) {
                return Covered {
                    ok: true,
                    why: "named in the setting".into(),
                };
            }
            if let Some(g) = groups
                .iter()
                .find(|g| member_of.contains_key(&g.id.to_ascii_lowercase()))
            {
                return Covered {
                    ok: true,
                    why: format!("member of {}", g.name),
                };
            }
            let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
            Covered {
                ok: false,
                why: if names.is_empty() {
                    "not named, and no group is selected".into()
                } else {
                    format!("not named and not in {}", names.join(", "))
                },
            }
        }
    }
}

/// Expands the deployers into users and decides join and MDM coverage for each, through
/// transitive group membership (nested groups count).
pub async fn check_coverage(
    graph: &GraphClient,
    policies: &Policies,
    deployers: &[Deployer],
) -> Result<CoverageReport, JoinPermissionError> {
    let mut users: Vec<(String, String, Option<String>)> = Vec::new();
    let mut empty_groups = Vec::new();
    for d in deployers {
        match d {
            Deployer::User { id, name, .. } => {
                if !users.iter().any(|(u, _, _)| u == id) {
                    users.push((id.clone(), name.clone(), None));
                }
            }
            Deployer::Group { id, name } => {
                let members: Vec<DirectoryObject> = graph
                    .get_all(
                        ApiVersion::V1,
                        &format!(
                            "/groups/{}/transitiveMembers/microsoft.graph.user?$select=id,displayName,userPrincipalName",
                            encode(id)
                        ),
                    )
                    .await
                    .map_err(graph_err("the members of a chosen group", "GroupMember.Read.All"))?;
                if members.is_empty() {
                    empty_groups.push(name.clone());
                }
                for m in members {
                    if !users.iter().any(|(u, _, _)| *u == m.id) {
                        let n = m
                            .display_name
                            .or(m.user_principal_name)
                            .unwrap_or_else(|| m.id.clone());
                        users.push((m.id, n, Some(name.clone())));
                    }
                }
            }
        }
    }
    let mut rows = Vec::new();
    for (id, name, via) in users {
        let groups: Vec<Group> = graph
            .get_all(
                ApiVersion::V1,
                &format!(
                    "/users/{}/transitiveMemberOf/microsoft.graph.group?$select=id,displayName",
                    encode(&id)
                ),
            )
            .await
            .map_err(graph_err("group memberships", "GroupMember.Read.All"))?;
        let member_of: HashMap<String, String> = groups
            .into_iter()
            .map(|g| (g.id.to_ascii_lowercase(), g.name().to_string()))
            .collect();
        let join = decide(Some(&policies.join), &id, &member_of, "the join setting");
        let mdm = decide(
            policies.mdm.as_ref(),
            &id,
            &member_of,
            "the MDM applications",
        );
        rows.push(UserCoverage {
            user_id: id,
            name,
            via,
            join,
            mdm,
        });
    }
    Ok(CoverageReport { rows, empty_groups })
}

/// The whole join check, as the page and `run --plan` do it: the policies, each deployer's
/// coverage, and the verdict ([`validate`]).
#[derive(Debug, Clone)]
pub struct JoinCheck {
    pub policies: Policies,
    pub report: CoverageReport,
    /// `Err`: what to fix, step by step.
    pub verdict: Result<(), Vec<String>>,
}

/// Reads the policies, decides every deployer's coverage and gives the verdict (reads only).
pub async fn check_join(
    graph: &GraphClient,
    deployers: &[Deployer],
) -> Result<JoinCheck, JoinPermissionError> {
    let policies = read_policies(graph).await?;
    let report = check_coverage(graph, &policies, deployers).await?;
    let verdict = validate(&policies, &report);
    Ok(JoinCheck {
        policies,
        report,
        verdict,
    })
}

/// Passes when there is at least one deploying user, every one may join and is in the MDM
/// scope, and the device quota is not zero. Otherwise the exact steps to fix it.
pub fn validate(policies: &Policies, report: &CoverageReport) -> Result<(), Vec<String>> {
    let mut todo = Vec::new();
    if report.rows.is_empty() {
        todo.push(
            "Choose at least one user (or a group holding users) who will deploy the devices."
                .to_string(),
        );
    }
    for g in &report.empty_groups {
        todo.push(format!(
            "The group {g} contains no users. The join and enrollment settings apply to users, so add the deploying users to it or choose the users themselves."
        ));
    }
    let no_join: Vec<&str> = report
        .rows
        .iter()
        .filter(|r| !r.join.ok)
        .map(|r| r.name.as_str())
        .collect();
    if !no_join.is_empty() {
        todo.push(format!(
            "Allow {} to join devices: in {JOIN_SETTING_PATH} ({JOIN_SETTING_URL}) choose All, or Selected and add them (or a group that contains them). Guide: {JOIN_DOC_URL}",
            no_join.join(", ")
        ));
    }
    if policies.mdm.is_none() {
        todo.push(format!(
            "No Microsoft Intune entry was found among the MDM applications. Make sure the tenant has an Intune licence, then set {MDM_SETTING_PATH} ({MDM_SETTING_URL}). Guide: {MDM_DOC_URL}"
        ));
    } else {
        let no_mdm: Vec<&str> = report
            .rows
            .iter()
            .filter(|r| !r.mdm.ok)
            .map(|r| r.name.as_str())
            .collect();
        if !no_mdm.is_empty() {
            todo.push(format!(
                "Put {} in the automatic-enrollment scope: in {MDM_SETTING_PATH} ({MDM_SETTING_URL}) choose All, or Some and add a group that contains them. Guide: {MDM_DOC_URL}",
                no_mdm.join(", ")
            ));
        }
    }
    if policies.user_device_quota == Some(0) {
        todo.push(format!(
            "The maximum number of devices per user is 0, so nobody can join a device. Raise it in Microsoft Entra admin center > Devices > Device settings > \"Maximum number of devices per user\" ({JOIN_SETTING_URL})."
        ));
    }
    if todo.is_empty() { Ok(()) } else { Err(todo) }
}

/// What step 2 leaves for later steps (persisted in `Outcomes`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct JoinPermissionOutcome {
    pub deployers: Vec<Deployer>,
    /// True when every deployer was covered by both settings when last checked.
    pub validated: bool,
}
