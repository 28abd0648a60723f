//! The `check-csv` command: a human-readable report, or `--json` with a stable shape.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::check::check_files;
use super::model::{CheckOptions, CheckReport, Finding};

/// Checks `paths` together and writes the report to `out`. Returns the exit code: 0 ready
/// (warnings and fixes allowed), 1 some row has an error, 2 a file is unreadable or not a
/// hardware-hash file (or no file was given).
pub fn run_check_csv(paths: &[PathBuf], json: bool, out: &mut dyn Write) -> i32 {
    let report = check_files(paths, &CheckOptions::default());
    let code = report.exit_code();
    let written = if json {
        serde_json::to_writer_pretty(&mut *out, &JsonReport::from(&report))
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out))
    } else {
        write_human(&report, paths.is_empty(), out)
    };
    // A closed pipe must not turn a verdict into a crash; the exit code still tells.
    drop(written);
    code
}

/// The stable `--json` interface. Kept apart from the model on purpose: the model may grow,
/// this shape may not change. The hash is left out.
#[derive(Serialize)]
pub struct JsonReport<'a> {
    pub files: Vec<JsonFile<'a>>,
    pub summary: JsonSummary,
}

#[derive(Serialize)]
pub struct JsonFile<'a> {
    pub path: &'a str,
    pub encoding: &'static str,
    pub format: &'static str,
    /// File-level findings (extra key; the row findings are under each row).
    pub findings: Vec<JsonFileFinding<'a>>,
    pub rows: Vec<JsonRow<'a>>,
}

#[derive(Serialize)]
pub struct JsonRow<'a> {
    pub line: u64,
    pub serial: &'a str,
    pub group_tag: &'a str,
    pub manufacturer: Option<&'a str>,
    pub model: Option<&'a str>,
    pub status: &'static str,
    pub findings: Vec<JsonFinding<'a>>,
}

#[derive(Serialize)]
pub struct JsonFinding<'a> {
    pub severity: &'static str,
    pub code: &'a str,
    pub column: Option<&'a str>,
    pub message: &'a str,
}

#[derive(Serialize)]
pub struct JsonFileFinding<'a> {
    pub severity: &'static str,
    pub code: &'a str,
    pub line: Option<u64>,
    pub column: Option<&'a str>,
    pub message: &'a str,
}

#[derive(Serialize)]
pub struct JsonSummary {
    pub rows: usize,
    pub ok: usize,
    pub fixed: usize,
    pub warning: usize,
    pub error: usize,
}

impl<'a> From<&'a Finding> for JsonFinding<'a> {
    fn from(f: &'a Finding) -> Self {
        Self {
            severity: f.severity.as_str(),
            code: &f.code,
            column: f.column.as_deref(),
            message: &f.message,
        }
    }
}

impl<'a> From<&'a CheckReport> for JsonReport<'a> {
    fn from(r: &'a CheckReport) -> Self {
        Self {
            files: r
                .files
                .iter()
                .map(|f| JsonFile {
                    path: &f.path,
                    encoding: f.encoding.as_str(),
                    format: f.format.as_str(),
                    findings: f
                        .findings
                        .iter()
                        .map(|x| JsonFileFinding {
                            severity: x.severity.as_str(),
                            code: &x.code,
                            line: x.line,
                            column: x.column.as_deref(),
                            message: &x.message,
                        })
                        .collect(),
                    rows: f
                        .rows
                        .iter()
                        .map(|row| JsonRow {
                            line: row.line,
                            serial: &row.serial,
                            group_tag: &row.group_tag,
                            manufacturer: row.manufacturer.as_deref(),
                            model: row.model.as_deref(),
                            status: row.status.as_str(),
                            findings: row.findings.iter().map(JsonFinding::from).collect(),
                        })
                        .collect(),
                })
                .collect(),
            summary: JsonSummary {
                rows: r.summary.rows,
                ok: r.summary.ok,
                fixed: r.summary.fixed,
                warning: r.summary.warning,
                error: r.summary.error,
            },
        }
    }
}

fn write_finding(out: &mut dyn Write, path: &str, f: &Finding) -> std::io::Result<()> {
    let place = match f.line {
        Some(l) => format!("{path}:{l}"),
        None => path.to_owned(),
    };
    let column = f
        .column
        .as_deref()
        .map(|c| format!(" [{c}]"))
        .unwrap_or_default();
    writeln!(
        out,
        "  {place}{column}: {} {}: {}",
        f.severity.as_str(),
        f.code,
        f.message
    )
}

fn write_human(report: &CheckReport, no_input: bool, out: &mut dyn Write) -> std::io::Result<()> {
    if no_input {
        writeln!(
            out,
            "No file given. Usage: check-csv [--json] FILE.csv [FILE.csv …]"
        )?;
        return Ok(());
    }
    for f in &report.files {
        writeln!(
            out,
            "{}: {}, {}, {} device row(s)",
            f.path,
            f.format.label(),
            f.encoding.label(),
            f.rows.len()
        )?;
        for x in &f.findings {
            write_finding(out, &f.path, x)?;
        }
        for r in &f.rows {
            let device = match (&r.manufacturer, &r.model) {
                (Some(m), Some(p)) => format!(" ({})", super::device_name(m, p)),
                (Some(m), None) => format!(" ({m})"),
                _ => String::new(),
            };
            let serial = if r.serial.is_empty() {
                "(no serial)"
            } else {
                &r.serial
            };
            writeln!(
                out,
                "  line {}: {serial}{device}: {}",
                r.line,
                r.status.as_str()
            )?;
            for x in &r.findings {
                write_finding(out, &f.path, x)?;
            }
        }
    }
    let s = &report.summary;
    writeln!(
        out,
        "\n{} row(s): {} ok, {} fixed automatically, {} with warnings, {} with errors.",
        s.rows, s.ok, s.fixed, s.warning, s.error
    )?;
    let verdict = match report.exit_code() {
        0 if s.warning > 0 => "Ready to import; read the warnings above first.",
        0 => "Ready to import.",
        1 => "Not ready: rows marked error will not be imported. Fix them, or import the others.",
        _ => "Not ready: a file could not be read or is not a hardware-hash CSV (see above).",
    };
    writeln!(out, "{verdict}")?;
    let ready = report.ready_rows().count();
    if ready > 0 && report.exit_code() != 0 {
        writeln!(out, "{ready} row(s) could be imported as they are.")?;
    }
    Ok(())
}
