//! What a plan run reports while it works: one [`Event`] per happening, printed as one JSON
//! line each with `--json`, or drawn as step lines and progress bars on a terminal.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::steps::StepId;

/// The steps of a plan run, in order: reading the plan, then the procedure's steps. Serialised
/// as the step's key (`plan`, `sign-in`, `group`…).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Plan,
    Of(StepId),
    /// `[deployment] wait`: following the devices through OOBE after the validation.
    Deployment,
}

impl Step {
    pub fn title(self) -> &'static str {
        match self {
            Step::Plan => "Read the plan",
            Step::Of(step) => step.def().run_title,
            Step::Deployment => "Follow the devices through OOBE",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Step::Plan => "plan",
            Step::Of(step) => step.key(),
            Step::Deployment => "deployment",
        }
    }
}

impl From<StepId> for Step {
    fn from(step: StepId) -> Self {
        Step::Of(step)
    }
}

impl Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.key())
    }
}

/// One happening of a run. Serialised with an `event` tag; `plan` names the plan it belongs to
/// (several plans can run at once).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        plan: String,
        tenant: String,
        resumed: bool,
    },
    StepStarted {
        plan: String,
        step: Step,
        title: String,
    },
    StepFinished {
        plan: String,
        step: Step,
        ok: bool,
        summary: String,
    },
    /// Sign in on another device: open `url`, type `code`.
    DeviceCode {
        plan: String,
        url: String,
        code: String,
        message: String,
    },
    /// A step's progress, `done` of `total`.
    Progress {
        plan: String,
        step: Step,
        done: u64,
        total: u64,
        message: String,
    },
    /// A wait for the service, with when it looks again.
    Waiting {
        plan: String,
        step: Step,
        message: String,
        next_check: DateTime<Utc>,
    },
    /// One device's outcome changed (import) or settled (assignment).
    Device {
        plan: String,
        step: Step,
        serial: String,
        outcome: String,
        detail: String,
    },
    Warning {
        plan: String,
        step: Step,
        message: String,
    },
    /// The run ends: the verdict, the exit code and the same report the GUI's validate page
    /// makes (absent when the run stopped before validating).
    Finished {
        plan: String,
        verdict: String,
        exit_code: u8,
        error: Option<String>,
        report: Option<serde_json::Value>,
        report_files: Vec<String>,
    },
}

impl Event {
    pub fn plan(&self) -> &str {
        match self {
            Event::RunStarted { plan, .. }
            | Event::StepStarted { plan, .. }
            | Event::StepFinished { plan, .. }
            | Event::DeviceCode { plan, .. }
            | Event::Progress { plan, .. }
            | Event::Waiting { plan, .. }
            | Event::Device { plan, .. }
            | Event::Warning { plan, .. }
            | Event::Finished { plan, .. } => plan,
        }
    }

    /// The JSON line of `--json`, stamped with `time`, when it was printed (RFC 3339, UTC).
    pub fn to_json_line(&self) -> String {
        self.to_json_line_at(Utc::now())
    }

    pub fn to_json_line_at(&self, time: DateTime<Utc>) -> String {
        let time = time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut m)) => {
                m.insert("time".into(), serde_json::Value::String(time));
                serde_json::Value::Object(m).to_string()
            }
            Ok(other) => other.to_string(),
            Err(e) => serde_json::json!({
                "event": "error",
                "time": time,
                "message": format!("event not serialisable: {e}"),
            })
            .to_string(),
        }
    }
}

/// Receives the events of one or more runs. Implementations must not block for long: they are
/// called from the run's task.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: Event);
}

/// Collects events in memory (tests).
#[derive(Default)]
pub struct Collect(pub std::sync::Mutex<Vec<Event>>);

impl EventSink for Collect {
    fn emit(&self, event: Event) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(event);
    }
}

impl Collect {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The message and next check of the last `waiting` passed on.
type LastWait = (String, DateTime<Utc>);

/// Passes every event on, except a `waiting` that says nothing new: the same message, and a
/// next check within a few seconds of the last one told. A countdown ticks every second for a
/// terminal; a script wants one event when the wait starts or changes, not one per tick.
pub struct OnChange<S> {
    inner: S,
    last: std::sync::Mutex<std::collections::HashMap<(String, Step), LastWait>>,
}

impl<S: EventSink> OnChange<S> {
    pub fn new(inner: S) -> Self {
        OnChange {
            inner,
            last: Default::default(),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: EventSink> EventSink for OnChange<S> {
    fn emit(&self, event: Event) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match &event {
            Event::Waiting {
                plan,
                step,
                message,
                next_check,
            } => {
                let key = (plan.clone(), *step);
                if let Some((m, at)) = last.get(&key)
                    && m == message
                    && (*next_check - *at).num_seconds().abs() <= 5
                {
                    return;
                }
                last.insert(key, (message.clone(), *next_check));
            }
            // A step that ends ends its wait: a later wait of it is told again.
            Event::StepFinished { plan, step, .. } => {
                last.remove(&(plan.clone(), *step));
            }
            _ => {}
        }
        drop(last);
        self.inner.emit(event);
    }
}

/// Writes each event as one JSON line to stdout (through [`OnChange`] in `run --json`).
pub struct JsonLines;

impl EventSink for JsonLines {
    fn emit(&self, event: Event) {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", event.to_json_line());
        let _ = out.flush();
        if let Event::DeviceCode { plan, message, .. } = &event {
            // A person still has to read the code, and stdout belongs to the script; with
            // several plans, the person must know which tenant the code signs in to.
            eprintln!("[{plan}] {message}");
        }
    }
}
