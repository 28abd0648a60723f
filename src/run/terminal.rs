//! Progress on a terminal: one line per step, a progress bar for uploads and waits (indicatif),
//! on stderr so stdout keeps only the summary.

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::events::{Event, EventSink, Step};

/// Done, total and message of a progress line.
type Shown = (u64, u64, String);

pub struct Terminal {
    multi: MultiProgress,
    bars: Mutex<HashMap<(String, Step), ProgressBar>>,
    /// Without a terminal, the last progress printed per plan and step: only changes print.
    last: Mutex<HashMap<(String, Step), Shown>>,
    /// Without a terminal, the last wait printed per plan and step.
    waits: Mutex<HashMap<(String, Step), String>>,
    /// Prefix lines with the plan name (several plans at once).
    prefix: bool,
}

impl Terminal {
    pub fn new(prefix: bool) -> Self {
        Terminal {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
            last: Mutex::new(HashMap::new()),
            waits: Mutex::new(HashMap::new()),
            prefix,
        }
    }

    fn line(&self, plan: &str, text: &str) {
        let text = if self.prefix {
            format!("[{plan}] {text}")
        } else {
            text.to_string()
        };
        // A hidden draw target (stderr not a terminal) swallows println: print directly then.
        if self.multi.is_hidden() {
            eprintln!("{text}");
        } else {
            let _ = self.multi.println(text);
        }
    }

    fn bar(&self, plan: &str, step: Step, total: u64) -> ProgressBar {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        bars.entry((plan.to_string(), step))
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(total));
                let prefix = if self.prefix {
                    format!("[{plan}] ")
                } else {
                    String::new()
                };
                bar.set_style(
                    ProgressStyle::with_template(&format!(
                        "{prefix}{{bar:30}} {{pos}}/{{len}} {{wide_msg}}"
                    ))
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar
            })
            .clone()
    }

    fn finish_bar(&self, plan: &str, step: Step) {
        let bar = self
            .bars
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(plan.to_string(), step));
        if let Some(bar) = bar {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
}

impl EventSink for Terminal {
    fn emit(&self, event: Event) {
        match &event {
            Event::RunStarted {
                plan,
                tenant,
                resumed,
            } => self.line(
                plan,
                &format!(
                    "Plan {plan} for tenant {tenant}{}",
                    if *resumed {
                        " (continuing the previous run)"
                    } else {
                        ""
                    }
                ),
            ),
            Event::StepStarted { plan, title, .. } => self.line(plan, &format!("… {title}")),
            Event::StepFinished {
                plan,
                step,
                ok,
                summary,
            } => {
                self.finish_bar(plan, *step);
                let mark = if *ok { "✔" } else { "✘" };
                self.line(plan, &format!("{mark} {}: {summary}", step.title()));
            }
            Event::DeviceCode { plan, message, .. } => self.line(plan, message),
            Event::Progress {
                plan,
                step,
                done,
                total,
                message,
            } => {
                let bar = self.bar(plan, *step, *total);
                bar.set_length(*total);
                bar.set_position(*done);
                bar.set_message(message.clone());
                if self.multi.is_hidden() {
                    // No bar without a terminal: a line for each change of the progress.
                    let now = (*done, *total, message.clone());
                    let changed = self
                        .last
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert((plan.clone(), *step), now.clone())
                        .is_none_or(|before| before != now);
                    if changed {
                        let text = if *total == 0 {
                            format!("  {message}")
                        } else {
                            format!("  {done}/{total} {message}")
                        };
                        self.line(plan, &text);
                    }
                }
            }
            Event::Waiting {
                plan,
                step,
                message,
                next_check,
            } => {
                let when = next_check.with_timezone(&chrono::Local).format("%H:%M:%S");
                let left = (*next_check - chrono::Utc::now()).num_seconds().max(0);
                let text = format!("{message}: {}:{:02} (at {when})", left / 60, left % 60);
                if self.multi.is_hidden() {
                    // No bar to count down: one line when a wait starts or says something new,
                    // so a log shows why nothing happens for minutes.
                    let changed = self
                        .waits
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert((plan.clone(), *step), message.clone())
                        .is_none_or(|before| before != *message);
                    if changed {
                        self.line(plan, &format!("  {message} (next check {when})"));
                    }
                } else {
                    // The bar counts down with each event (every second for the sync window).
                    let bar = self.bar(plan, *step, 0);
                    bar.set_message(text);
                }
            }
            Event::Device {
                plan,
                serial,
                outcome,
                detail,
                ..
            } => {
                // Only problems get a line of their own; the bar counts the rest.
                if outcome == "failed" {
                    self.line(plan, &format!("  {serial}: {detail}"));
                }
            }
            Event::Warning { plan, message, .. } => self.line(plan, &format!("  ! {message}")),
            Event::Finished {
                plan,
                verdict,
                error,
                report_files,
                ..
            } => {
                if let Some(e) = error {
                    self.line(plan, &format!("Stopped: {e}"));
                }
                for f in report_files {
                    self.line(plan, &format!("Report written to {f}"));
                }
                self.line(plan, &format!("Result: {verdict}"));
            }
        }
    }
}
