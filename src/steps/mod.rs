//! One Graph action module per wizard step, no UI: each performs its step, then validates the
//! result by reading it back from Graph. Re-running a step is safe: it finds what exists
//! instead of creating duplicates.
//!
//! The procedure itself is declared once, in the [`procedure!`] list below: the step ids, their
//! order and numbers, titles, documentation links, plan sections, dependencies, validation
//! checks and the persisted [`Outcomes`] all derive from it.

pub mod assignment;
pub mod deployment;
pub mod esp;
pub mod group;
pub mod import;
pub mod join_permission;
pub mod poll;
pub mod profile;
pub mod readiness;
pub mod registry;
pub mod removal;
pub mod sign_in;
pub mod this_pc;
pub mod validate;

use std::collections::BTreeMap;

pub use registry::{Outcome, Permission, StepDef};
use validate::CheckId;

/// Declares the procedure: one entry per step, in order. See [`registry::StepDef`] for what
/// each field means; `outcome: field: Type` names the step's persisted result (its field in
/// [`Outcomes`], kept under that name in saved files, and a type implementing [`Outcome`]).
macro_rules! procedure {
    ($(
        $id:ident {
            outcome: $field:ident : $ty:ty,
            key: $key:literal,
            title: $title:literal,
            run_title: $run_title:literal,
            doc_url: $doc:literal,
            plan_section: $section:literal,
            depends_on: [$($dep:ident),* $(,)?],
            permissions: [$($perm:expr),* $(,)?],
            checks: [$($check:expr),* $(,)?],
            runner: $runner:expr,
            validate: $validate:expr $(,)?
        }
    ),* $(,)?) => {
        /// The steps of the procedure, in order. The names are those of saved files (app state,
        /// plan state): keep them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum StepId {
            $($id,)*
        }

        /// Every step's definition, in procedure order.
        pub static STEPS: &[StepDef] = &[$(
            StepDef {
                id: StepId::$id,
                key: $key,
                title: $title,
                run_title: $run_title,
                doc_url: $doc,
                plan_section: $section,
                depends_on: &[$(StepId::$dep),*],
                permissions: &[$($perm),*],
                checks: &[$($check),*],
                runner: $runner,
                validate: $validate,
            },
        )*];

        /// Every validation check, in report order (the steps' checks, step by step).
        pub const ALL_CHECKS: &[CheckId] = &[$($($check,)*)*];

        impl StepId {
            /// The steps, in order.
            pub const ALL: &'static [StepId] = &[$(StepId::$id),*];
        }

        /// The results of the steps, kept across restarts through eframe persistence and in the
        /// plan state files. Plain data, never secrets: ids and names the next steps need.
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default)]
        pub struct Outcomes {
            $(pub $field: Option<$ty>,)*
            /// For each step with a result: the identities of the outcomes it depends on, as they
            /// were when the result was read back. The step is Done only while they still hold.
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            pub inputs: BTreeMap<StepId, Vec<Option<String>>>,
        }

        impl Outcomes {
            /// The identity of `step`'s outcome (see [`Outcome::identity`]).
            pub fn identity(&self, step: StepId) -> Option<String> {
                match step {
                    $(StepId::$id => self.$field.as_ref().and_then(Outcome::identity),)*
                }
            }

            /// `step` has a result.
            pub fn has(&self, step: StepId) -> bool {
                match step {
                    $(StepId::$id => self.$field.is_some(),)*
                }
            }

            /// Forgets `step`'s result (and what it was computed from).
            pub fn clear(&mut self, step: StepId) {
                match step {
                    $(StepId::$id => self.$field = None,)*
                }
                self.inputs.remove(&step);
            }
        }
    };
}

procedure! {
    SignIn {
        outcome: signed_in: sign_in::SignedIn,
        key: "sign-in",
        title: "Sign in",
        run_title: "Sign in",
        doc_url: "https://learn.microsoft.com/graph/auth-v2-user",
        plan_section: "tenant",
        depends_on: [],
        permissions: [],
        checks: [],
        runner: None,
        validate: None,
    },
    JoinPermission {
        outcome: join_permission: join_permission::JoinPermissionOutcome,
        key: "join-permission",
        title: "Join permission",
        run_title: "Who may join devices",
        doc_url: "https://learn.microsoft.com/autopilot/tutorial/user-driven/azure-ad-join-allow-users-to-join",
        plan_section: "deployers",
        depends_on: [SignIn],
        permissions: [
            join_permission::POLICY_READ,
            join_permission::USERS_READ,
            group::GROUPS_WRITE,
            readiness::LICENCES_READ,
            readiness::POLICY_WRITE,
        ],
        checks: [
            CheckId::JoinPermission,
            CheckId::MdmScope,
            readiness::CHECK_LICENCES,
            readiness::CHECK_REGISTRATION,
            readiness::CHECK_CONDITIONAL_ACCESS,
            readiness::CHECK_RESTRICTIONS,
            readiness::CHECK_MDM_GROUPS,
            readiness::CHECK_BRANDING,
        ],
        runner: None,
        validate: Some(readiness::validate_join_items),
    },
    Profile {
        outcome: profile: profile::ProfileRef,
        key: "profile",
        title: "Deployment profile",
        run_title: "Deployment profile",
        doc_url: "https://learn.microsoft.com/autopilot/profiles",
        plan_section: "profile",
        depends_on: [SignIn],
        permissions: [profile::SERVICE_CONFIG, join_permission::POLICY_READ],
        checks: [CheckId::Profile, readiness::CHECK_LOCAL_ADMIN],
        runner: None,
        validate: Some(readiness::validate_profile_items),
    },
    Group {
        outcome: group: group::GroupRef,
        key: "group",
        title: "Device group",
        run_title: "Device group and profile assignment",
        doc_url: "https://learn.microsoft.com/autopilot/enrollment-autopilot",
        plan_section: "group",
        depends_on: [SignIn, Profile],
        permissions: [group::GROUPS_WRITE, profile::SERVICE_CONFIG],
        checks: [CheckId::Group, CheckId::ProfileAssignment],
        runner: None,
        validate: None,
    },
    Esp {
        outcome: esp: esp::EspOutcome,
        key: "esp",
        title: "Enrollment Status Page",
        run_title: "Enrollment Status Page",
        doc_url: "https://learn.microsoft.com/autopilot/enrollment-status",
        plan_section: "esp",
        depends_on: [SignIn, Group],
        permissions: [profile::SERVICE_CONFIG, esp::APPS_READ],
        checks: [esp::CHECK_ESP_REACHES, esp::CHECK_ESP_APPS, esp::CHECK_ESP_TIMEOUT],
        runner: Some(esp::run_plan),
        validate: Some(esp::validate_items),
    },
    Import {
        outcome: import: import::ImportJob,
        key: "import",
        title: "Import devices",
        run_title: "Import hardware hashes",
        doc_url: "https://learn.microsoft.com/autopilot/add-devices",
        plan_section: "devices",
        depends_on: [SignIn, Group],
        permissions: [profile::SERVICE_CONFIG, import::DEVICES_READ],
        checks: [],
        runner: None,
        validate: None,
    },
    Assignment {
        outcome: assignment: assignment::AssignmentOutcome,
        key: "assignment",
        title: "Profile assignment",
        run_title: "Group membership and profile assignment",
        doc_url: "https://learn.microsoft.com/autopilot/tutorial/user-driven/azure-ad-join-assign-autopilot-profile",
        plan_section: "devices",
        depends_on: [Profile, Group, Import],
        permissions: [profile::SERVICE_CONFIG, import::DEVICES_READ, group::GROUPS_WRITE, deployment::EVENTS_READ],
        // The board also follows each device through OOBE: its deployments are the report's
        // "Deployments" section.
        checks: [CheckId::Devices, deployment::CHECK_DEPLOYMENT],
        runner: None,
        validate: Some(deployment::validate_items),
    },
    Validate {
        outcome: validation: validate::ValidationOutcome,
        key: "validate",
        title: "Validate",
        run_title: "Validate",
        doc_url: "https://learn.microsoft.com/autopilot/tutorial/user-driven/azure-ad-join-verify-autopilot-profile-assignment",
        plan_section: "report",
        depends_on: [JoinPermission, Profile, Group, Esp, Import, Assignment],
        permissions: [
            join_permission::POLICY_READ,
            import::DEVICES_READ,
            readiness::LICENCES_READ,
            removal::APPROVAL_POLICIES_READ
        ],
        checks: [removal::CHECK_APPROVAL],
        runner: None,
        validate: Some(removal::validate_items),
    },
}

impl StepId {
    /// The step's definition in the registry.
    pub fn def(self) -> &'static StepDef {
        &STEPS[self as usize]
    }

    /// 1-based, as every "step N" text says it.
    pub fn number(self) -> usize {
        self as usize + 1
    }

    /// "step N", for texts that point at another step.
    pub fn step_n(self) -> String {
        format!("step {}", self.number())
    }

    pub fn title(self) -> &'static str {
        self.def().title
    }

    /// Microsoft's documentation for the step, shown next to Back / Next.
    pub fn doc_url(self) -> &'static str {
        self.def().doc_url
    }

    /// The step's name in run events and files (`sign-in`…).
    pub fn key(self) -> &'static str {
        self.def().key
    }

    /// The step whose name in run events and files is `key`.
    pub fn from_key(key: &str) -> Option<StepId> {
        StepId::ALL.iter().copied().find(|s| s.key() == key)
    }
}

/// The Graph permissions the whole procedure needs (short form), in step order, each once: what
/// the sign-in asks for.
pub fn required_permissions() -> Vec<&'static Permission> {
    let mut out: Vec<&'static Permission> = Vec::new();
    // Removing devices is no step of the procedure, but the same sign-in performs it.
    for p in STEPS
        .iter()
        .flat_map(|s| s.permissions)
        .chain(removal::PERMISSIONS)
    {
        if !out.iter().any(|o| o.name == p.name) {
            out.push(p);
        }
    }
    out
}

/// [`required_permissions`] by name, as the sign-in sends them.
pub fn required_scopes() -> Vec<&'static str> {
    required_permissions().iter().map(|p| p.name).collect()
}

impl Outcomes {
    /// The identities of the outcomes `step` depends on, as they are now.
    pub fn current_inputs(&self, step: StepId) -> Vec<Option<String>> {
        step.def()
            .depends_on
            .iter()
            .map(|d| self.identity(*d))
            .collect()
    }

    /// Notes that `step`'s result was computed from the current upstream outcomes.
    pub fn record_inputs(&mut self, step: StepId) {
        let now = self.current_inputs(step);
        self.inputs.insert(step, now);
    }

    /// `step`'s result was computed from outcomes that have changed since: an upstream outcome
    /// it recorded now has another identity. An upstream result that is merely absent (signed
    /// out, not read back yet) is not a change: the steps before wait for it anyway.
    pub fn inputs_changed(&self, step: StepId) -> bool {
        let Some(recorded) = self.inputs.get(&step) else {
            return false;
        };
        let now = self.current_inputs(step);
        recorded.len() != now.len()
            || recorded
                .iter()
                .zip(&now)
                .any(|(was, is)| matches!((was, is), (Some(a), Some(b)) if a != b))
    }

    /// The steps (in order) that depend on `step`, directly or through another step.
    pub fn dependents(step: StepId) -> Vec<StepId> {
        let mut out: Vec<StepId> = Vec::new();
        for s in StepId::ALL {
            let deps = s.def().depends_on;
            if deps.contains(&step) || deps.iter().any(|d| out.contains(d)) {
                out.push(*s);
            }
        }
        out
    }
}

impl Outcome for sign_in::SignedIn {
    fn identity(&self) -> Option<String> {
        Some(self.tenant_id.to_ascii_lowercase())
    }
}

impl Outcome for join_permission::JoinPermissionOutcome {
    fn identity(&self) -> Option<String> {
        let mut ids: Vec<String> = self
            .deployers
            .iter()
            .map(|d| serde_json::to_string(d).unwrap_or_default())
            .collect();
        ids.sort();
        Some(ids.join("|"))
    }
}

impl Outcome for profile::ProfileRef {
    fn identity(&self) -> Option<String> {
        Some(self.id.clone())
    }
}

impl Outcome for group::GroupRef {
    fn identity(&self) -> Option<String> {
        Some(self.id.clone())
    }
}

impl Outcome for import::ImportJob {
    /// Asked for every frame, for each step after the import: sorting 9,000 serial numbers
    /// each time cost milliseconds a frame, so it is computed once per stored job.
    fn identity(&self) -> Option<String> {
        let id = self.revision.identity(|| {
            let mut serials: Vec<String> = self.expected_serials().collect();
            serials.sort();
            serials.dedup();
            serials.join(",")
        });
        Some(id.to_string())
    }
}

impl Outcome for assignment::AssignmentOutcome {
    fn identity(&self) -> Option<String> {
        let s = &self.summary;
        Some(format!("{}/{}/{}", s.ready, s.total, self.all_ready))
    }
}

impl Outcome for validate::ValidationOutcome {
    fn identity(&self) -> Option<String> {
        Some(self.ready.to_string())
    }
}
