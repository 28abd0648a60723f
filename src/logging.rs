//! Logging: one `tracing` layer formats each event once, with secrets redacted, and hands the
//! line to the in-memory buffer behind the "Log" panel, to a daily file in the data directory
//! and (in debug builds or with `RUST_LOG` set) to stderr.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// One formatted log line.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub time: chrono::DateTime<chrono::Local>,
    pub level: tracing::Level,
    pub target: String,
    /// Message and fields, secrets already redacted.
    pub text: String,
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:5} {}",
            self.time.format("%H:%M:%S%.3f"),
            self.level,
            self.text
        )
    }
}

/// The last `capacity` log lines, shared between the logging layer and the UI.
#[derive(Clone)]
pub struct LogBuffer {
    inner: Arc<Mutex<BufferInner>>,
}

struct BufferInner {
    lines: VecDeque<LogLine>,
    capacity: usize,
    file: Option<PathBuf>,
}

impl LogBuffer {
    pub fn new(capacity: usize) -> Self {
        LogBuffer {
            inner: Arc::new(Mutex::new(BufferInner {
                lines: VecDeque::with_capacity(capacity.min(1024)),
                capacity: capacity.max(1),
                file: None,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BufferInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, line: LogLine) {
        let mut inner = self.lock();
        if inner.lines.len() == inner.capacity {
            inner.lines.pop_front();
        }
        inner.lines.push_back(line);
    }

    /// A copy of the lines, oldest first.
    pub fn lines(&self) -> Vec<LogLine> {
        self.lock().lines.iter().cloned().collect()
    }

    /// Today's log file, when one could be opened.
    pub fn file_path(&self) -> Option<PathBuf> {
        self.lock().file.clone()
    }
}

/// Field names whose values are never written anywhere.
fn is_secret_field(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "authorization",
        "verifier",
        "assertion",
        "cookie",
    ]
    .iter()
    .any(|s| name.contains(s))
        && !name.ends_with("_type")
}

/// Replaces what follows `Bearer ` and `access_token=`/`refresh_token=` in free text: a
/// message built from a request or a body must not leak a token through the log.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for marker in [
        "Bearer ",
        "bearer ",
        "access_token=",
        "refresh_token=",
        "\"access_token\":\"",
        "\"refresh_token\":\"",
        "code_verifier=",
    ] {
        let mut from = 0;
        while let Some(pos) = out[from..].find(marker) {
            let start = from + pos + marker.len();
            let end = out[start..]
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '&' | ',' | '}' | '\''))
                .map_or(out.len(), |e| start + e);
            if end > start {
                out.replace_range(start..end, "[redacted]");
                from = start + "[redacted]".len();
            } else {
                from = start;
            }
        }
    }
    out
}

#[derive(Default)]
struct LineVisitor {
    message: String,
    fields: String,
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }
}

impl LineVisitor {
    fn record(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = redact(&value);
        } else if is_secret_field(field.name()) {
            let _ = write!(self.fields, " {}=[redacted]", field.name());
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), redact(&value));
        }
    }
}

/// Appends to `<dir>/autopilot-wizard-YYYY-MM-DD.log`, switching file when the date changes.
struct DailyFile {
    dir: PathBuf,
    open: Option<(chrono::NaiveDate, std::fs::File)>,
}

impl DailyFile {
    fn path_for(dir: &Path, date: chrono::NaiveDate) -> PathBuf {
        dir.join(format!("autopilot-wizard-{}.log", date.format("%Y-%m-%d")))
    }

    fn write_line(&mut self, date: chrono::NaiveDate, line: &str) -> std::io::Result<()> {
        if self.open.as_ref().is_none_or(|(d, _)| *d != date) {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(Self::path_for(&self.dir, date))?;
            self.open = Some((date, file));
        }
        if let Some((_, file)) = &mut self.open {
            writeln!(file, "{line}")?;
        }
        Ok(())
    }
}

/// The layer: formats, redacts, fans out.
pub struct LogSink {
    buffer: LogBuffer,
    file: Option<Mutex<DailyFile>>,
    stderr: bool,
}

impl LogSink {
    pub fn new(buffer: LogBuffer) -> Self {
        LogSink {
            buffer,
            file: None,
            stderr: false,
        }
    }

    /// Also writes to a daily file in `dir` (created if missing).
    pub fn with_daily_file(mut self, dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let today = chrono::Local::now().date_naive();
        let mut daily = DailyFile {
            dir: dir.to_path_buf(),
            open: None,
        };
        daily.write_line(today, "")?;
        self.buffer.lock().file = Some(DailyFile::path_for(dir, today));
        self.file = Some(Mutex::new(daily));
        Ok(self)
    }

    pub fn with_stderr(mut self, on: bool) -> Self {
        self.stderr = on;
        self
    }
}

impl<S: tracing::Subscriber> Layer<S> for LogSink {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut visitor = LineVisitor::default();
        event.record(&mut visitor);
        let meta = event.metadata();
        let line = LogLine {
            time: chrono::Local::now(),
            level: *meta.level(),
            target: meta.target().to_string(),
            text: format!("{}{}", visitor.message, visitor.fields),
        };
        if let Some(file) = &self.file {
            let full = format!(
                "{} {:5} {}: {}",
                line.time.format("%Y-%m-%dT%H:%M:%S%.3f%:z"),
                line.level,
                line.target,
                line.text
            );
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            // A full disk must not take the wizard down; the panel still has the line.
            let _ = file.write_line(line.time.date_naive(), &full);
        }
        if self.stderr {
            eprintln!("{line}");
        }
        self.buffer.push(line);
    }
}

/// The directory of the log files: `logs` in the machine-local data folder
/// ([`crate::paths::local_data_dir`]: `%LOCALAPPDATA%` on Windows, beside a portable exe).
pub fn log_dir(_app_id: &str) -> Option<PathBuf> {
    crate::paths::local_data_dir().map(|d| d.join("logs"))
}

/// Installs the global subscriber. `RUST_LOG` overrides the default filter (`info`, and
/// `debug` for the wizard itself so Graph request ids show). Returns the buffer for the panel.
pub fn init(app_id: &str) -> LogBuffer {
    let buffer = LogBuffer::new(1000);
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,autopilot_wizard=debug"));
    let stderr = cfg!(debug_assertions) || std::env::var_os("RUST_LOG").is_some();
    let sink = LogSink::new(buffer.clone()).with_stderr(stderr);
    let (sink, file_error) = match log_dir(app_id) {
        Some(dir) => match LogSink::new(buffer.clone())
            .with_stderr(stderr)
            .with_daily_file(&dir)
        {
            Ok(with_file) => (with_file, None),
            Err(e) => (sink, Some(format!("{}: {e}", dir.display()))),
        },
        None => (sink, Some("no data directory on this system".to_string())),
    };
    // Ignored when a subscriber is already set (e.g. twice in one test process).
    let _ = tracing_subscriber::registry()
        .with(sink.with_filter(filter))
        .try_init();
    if let Some(why) = file_error {
        tracing::warn!("log file not written ({why}); the Log panel still shows recent lines");
    } else if let Some(dir) = log_dir(app_id) {
        let deleted = crate::paths::prune_logs(
            &dir,
            chrono::Local::now().date_naive(),
            crate::paths::LOG_KEEP_DAYS,
        );
        if !deleted.is_empty() {
            tracing::info!(
                count = deleted.len(),
                days = crate::paths::LOG_KEEP_DAYS,
                "old log files deleted"
            );
        }
    }
    buffer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_bearer_and_token_parameters() {
        let s = redact("Authorization: Bearer eyJabc.def and refresh_token=xyz&scope=a");
        assert!(!s.contains("eyJabc"), "{s}");
        assert!(!s.contains("xyz"), "{s}");
        assert!(s.contains("scope=a"), "{s}");
        assert_eq!(redact("nothing secret here"), "nothing secret here");
        assert_eq!(
            redact(r#"{"access_token":"abc","x":1}"#),
            r#"{"access_token":"[redacted]","x":1}"#
        );
    }

    #[test]
    fn secret_fields_are_redacted_and_request_ids_kept() {
        let buffer = LogBuffer::new(3);
        let subscriber = tracing_subscriber::registry().with(LogSink::new(buffer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(access_token = "sekrit", request_id = "r-123", "graph");
            tracing::info!(token_type = "Bearer", "kind is not a secret");
        });
        let lines = buffer.lines();
        assert_eq!(lines.len(), 2);
        assert!(!lines[0].text.contains("sekrit"), "{}", lines[0].text);
        assert!(
            lines[0].text.contains("request_id=r-123"),
            "{}",
            lines[0].text
        );
        assert!(
            lines[1].text.contains("token_type=Bearer"),
            "{}",
            lines[1].text
        );
    }

    #[test]
    fn buffer_keeps_only_the_last_lines() {
        let buffer = LogBuffer::new(2);
        let subscriber = tracing_subscriber::registry().with(LogSink::new(buffer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..5 {
                tracing::info!("line {i}");
            }
        });
        let texts: Vec<_> = buffer.lines().into_iter().map(|l| l.text).collect();
        assert_eq!(texts, vec!["line 3", "line 4"]);
    }

    #[test]
    fn daily_file_gets_the_redacted_line() {
        let dir = tempfile::tempdir().unwrap();
        let buffer = LogBuffer::new(10);
        let sink = LogSink::new(buffer.clone())
            .with_daily_file(dir.path())
            .unwrap();
        let path = buffer.file_path().unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(sink), || {
            tracing::warn!(password = "hunter2", "sign-in failed");
        });
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("sign-in failed"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
