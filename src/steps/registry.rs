//! The shape of a step as the procedure declares it (see [`crate::procedure!`] in
//! `steps/mod.rs`): everything the app, `run --plan`, the plan file and the validation report
//! need to know about a step, so that adding one is one entry in one list.

use std::future::Future;
use std::pin::Pin;

use crate::graph::GraphClient;
use crate::steps::validate::{CheckId, CheckItem, ValidateInputs};
use crate::steps::{Outcomes, StepId};

/// A boxed future, for the function pointers of the registry.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A step's result as later steps see it.
pub trait Outcome {
    /// What later steps compare to decide whether their inputs changed: the ids the result is
    /// about (a profile id, a group id, the set of imported serials…). `None`: nothing a later
    /// step can rely on yet.
    fn identity(&self) -> Option<String>;
}

/// How a step failure ends an unattended run (`run --plan` maps it to its exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The plan or the tenant's data asks for something impossible (exit 2).
    Input,
    /// Sign-in or permission problem (exit 3).
    Auth,
    /// The service failed and a later try may work (exit 4 once the attempts are used up).
    Transient,
    /// The service answered and the step cannot go on (exit 4).
    Service,
}

/// Why a registered step's runner stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StepFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl StepFailure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        StepFailure {
            kind,
            message: message.into(),
        }
    }
}

/// What a registered step's runner gets from `run --plan`.
pub struct PlanCx<'a> {
    pub graph: &'a GraphClient,
    /// The step's own table of the plan file (`[esp]`…), when the plan has one.
    pub section: Option<&'a toml::Value>,
    /// The outcomes so far; the runner sets its own.
    pub outcomes: &'a mut Outcomes,
    /// Tells the person running the plan something worth knowing (a warning line).
    pub note: &'a (dyn Fn(String) + Send + Sync),
}

/// Runs a step unattended; the summary line on success.
pub type PlanRunner = for<'a> fn(PlanCx<'a>) -> BoxFuture<'a, Result<String, StepFailure>>;

/// Adds a step's items to the validation report (reads only).
pub type ValidateFn =
    for<'a> fn(&'a GraphClient, &'a ValidateInputs) -> BoxFuture<'a, Vec<CheckItem>>;

/// A delegated Microsoft Graph permission a step needs, short form (reference §1.1), with the
/// broader permissions that include it (a tenant that consented one of those is fine too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    pub name: &'static str,
    pub covered_by: &'static [&'static str],
}

impl Permission {
    pub const fn new(name: &'static str, covered_by: &'static [&'static str]) -> Self {
        Permission { name, covered_by }
    }
}

/// One step of the procedure.
pub struct StepDef {
    pub id: StepId,
    /// The step's name in run events and files (`sign-in`, `group`…).
    pub key: &'static str,
    /// As the stepper shows it.
    pub title: &'static str,
    /// As `run --plan` announces it.
    pub run_title: &'static str,
    /// Microsoft's documentation for the step.
    pub doc_url: &'static str,
    /// The table of the plan file that configures the step.
    pub plan_section: &'static str,
    /// The steps whose outcomes this one is computed from: when one of them changes, this step
    /// is no longer Done.
    pub depends_on: &'static [StepId],
    /// The Graph permissions the step's reads and writes need; the sign-in asks for the
    /// procedure's union of them.
    pub permissions: &'static [Permission],
    /// The items this step adds to the validation report.
    pub checks: &'static [CheckId],
    /// How `run --plan` performs the step; `None`: the run engine's own code (the steps that
    /// came before the registry).
    pub runner: Option<PlanRunner>,
    /// How the validation report checks the step; `None`: the report's built-in checks.
    pub validate: Option<ValidateFn>,
}

impl std::fmt::Debug for StepDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepDef")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("plan_section", &self.plan_section)
            .field("depends_on", &self.depends_on)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape a new step's functions take, as its entry in `procedure!` names them.
    const DUMMY_CHECK: CheckId = CheckId::new("Dummy", "A step added after the registry");

    fn dummy_runner<'a>(cx: PlanCx<'a>) -> BoxFuture<'a, Result<String, StepFailure>> {
        Box::pin(async move {
            match cx.section {
                Some(_) => Ok("configured".into()),
                None => Err(StepFailure::new(FailureKind::Input, "no table")),
            }
        })
    }

    fn dummy_validate<'a>(
        _graph: &'a GraphClient,
        inputs: &'a ValidateInputs,
    ) -> BoxFuture<'a, Vec<CheckItem>> {
        Box::pin(async move {
            vec![CheckItem::new(
                DUMMY_CHECK,
                crate::steps::validate::Verdict::Pass,
                vec![inputs.tenant.clone()],
                None,
            )]
        })
    }

    static DUMMY: StepDef = StepDef {
        id: StepId::Validate,
        key: "dummy",
        title: "Dummy",
        run_title: "Dummy",
        doc_url: "https://learn.microsoft.com/",
        plan_section: "dummy",
        depends_on: &[StepId::Group],
        permissions: &[Permission::new("Dummy.Read.All", &[])],
        checks: &[DUMMY_CHECK],
        runner: Some(dummy_runner),
        validate: Some(dummy_validate),
    };

    #[test]
    fn a_step_with_its_own_runner_and_checks_fits_the_registry() {
        assert!(DUMMY.runner.is_some() && DUMMY.validate.is_some());
        assert_eq!(DUMMY.checks[0].key(), "Dummy");
    }
}
