//! The report model: plain serde data, so the import page can keep it in its state and the
//! `check-csv` command can print it.

use serde::{Deserialize, Serialize};

/// Column names exactly as Microsoft documents them (case-sensitive, in this order).
pub const COL_SERIAL: &str = "Device Serial Number";
pub const COL_PRODUCT_ID: &str = "Windows Product ID";
pub const COL_HASH: &str = "Hardware Hash";
pub const COL_GROUP_TAG: &str = "Group Tag";
pub const COL_USER: &str = "Assigned User";

/// The documented header, in order. Files may stop after the 3rd, 4th or 5th column.
pub const DOCUMENTED_COLUMNS: [&str; 5] = [
    COL_SERIAL,
    COL_PRODUCT_ID,
    COL_HASH,
    COL_GROUP_TAG,
    COL_USER,
];

/// Rows per CSV accepted by the Intune portal. The wizard uploads in chunks itself, so more
/// rows only earn a warning.
pub const PORTAL_ROW_LIMIT: usize = 500;

/// Files larger than this are refused before being read (20 MiB holds about 2,500 UTF-16 rows,
/// five times the portal limit).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 20 * 1024 * 1024;

/// What the caller knows beyond the files themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOptions {
    /// Refuse files larger than this many bytes.
    pub max_file_bytes: u64,
    /// Verified domains of the tenant (e.g. `contoso.com`). When not empty, an Assigned User
    /// whose domain is not in the list is an error. Empty: only the UPN shape is checked.
    pub verified_domains: Vec<String>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            verified_domains: Vec::new(),
        }
    }
}

impl CheckOptions {
    pub fn with_verified_domains(mut self, domains: &[String]) -> Self {
        self.verified_domains = domains.to_vec();
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Something the wizard repaired by itself (e.g. missing Base64 padding).
    Fixed,
    /// Importable, but the user should look at it.
    Warning,
    /// The row (or the file, for file-level findings) will not be imported.
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fixed => "fixed",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// Row status: the worst severity among its findings, `Ok` when there are none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowStatus {
    Ok,
    Fixed,
    Warning,
    Error,
}

impl RowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::Ok => "ok",
            RowStatus::Fixed => "fixed",
            RowStatus::Warning => "warning",
            RowStatus::Error => "error",
        }
    }

    pub(crate) fn from_severity(s: Severity) -> Self {
        match s {
            Severity::Fixed => RowStatus::Fixed,
            Severity::Warning => RowStatus::Warning,
            Severity::Error => RowStatus::Error,
        }
    }
}

/// How the bytes were turned into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextEncoding {
    /// What Get-WindowsAutopilotInfo writes under Windows PowerShell 5.1.
    Utf16LeBom,
    Utf16BeBom,
    /// UTF-16 recognised by its zero bytes, without a byte-order mark.
    Utf16Le,
    Utf16Be,
    Utf8Bom,
    Utf8,
    Ascii,
    /// "ANSI": bytes that are not valid UTF-8, read as Windows-1252.
    Windows1252,
    /// The file was not decoded (too large, unreadable, binary).
    Unknown,
}

impl TextEncoding {
    pub fn as_str(self) -> &'static str {
        match self {
            TextEncoding::Utf16LeBom => "utf-16le-bom",
            TextEncoding::Utf16BeBom => "utf-16be-bom",
            TextEncoding::Utf16Le => "utf-16le",
            TextEncoding::Utf16Be => "utf-16be",
            TextEncoding::Utf8Bom => "utf-8-bom",
            TextEncoding::Utf8 => "utf-8",
            TextEncoding::Ascii => "ascii",
            TextEncoding::Windows1252 => "windows-1252",
            TextEncoding::Unknown => "unknown",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            TextEncoding::Utf16LeBom => "UTF-16 LE with BOM",
            TextEncoding::Utf16BeBom => "UTF-16 BE with BOM",
            TextEncoding::Utf16Le => "UTF-16 LE without BOM",
            TextEncoding::Utf16Be => "UTF-16 BE without BOM",
            TextEncoding::Utf8Bom => "UTF-8 with BOM",
            TextEncoding::Utf8 => "UTF-8",
            TextEncoding::Ascii => "ASCII",
            TextEncoding::Windows1252 => "ANSI (Windows-1252)",
            TextEncoding::Unknown => "not decoded",
        }
    }
}

/// What kind of file this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileFormat {
    /// The Intune hardware-hash CSV (Get-WindowsAutopilotInfo -OutputFile).
    HardwareHash,
    /// The Partner Center / OEM layout (`…,Manufacturer name,Device model`).
    Partner,
    /// Autopilot device preparation corporate identifiers: `Manufacturer,Model,Serial`, no header.
    V2Identifier,
    /// A list of devices exported from Intune (no hardware hashes).
    IntuneExport,
    /// An Excel workbook or other ZIP/OLE container, not a CSV.
    ExcelWorkbook,
    /// Binary data.
    Binary,
    /// Nothing but whitespace.
    Empty,
    /// Text we could not identify, or a file that could not be read.
    Unknown,
}

impl FileFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::HardwareHash => "hardware-hash",
            FileFormat::Partner => "partner",
            FileFormat::V2Identifier => "v2-identifier",
            FileFormat::IntuneExport => "intune-export",
            FileFormat::ExcelWorkbook => "excel-workbook",
            FileFormat::Binary => "binary",
            FileFormat::Empty => "empty",
            FileFormat::Unknown => "unknown",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            FileFormat::HardwareHash => "hardware-hash CSV",
            FileFormat::Partner => "Partner Center (OEM) CSV",
            FileFormat::V2Identifier => "corporate identifier list (Autopilot device preparation)",
            FileFormat::IntuneExport => "Intune device export",
            FileFormat::ExcelWorkbook => "Excel workbook / ZIP",
            FileFormat::Binary => "binary file",
            FileFormat::Empty => "empty file",
            FileFormat::Unknown => "unrecognised file",
        }
    }
}

/// One problem (or repair). `line` is the 1-based physical line in the file (the header is
/// line 1); `None` only for findings about the whole file (size, encoding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    /// Short stable identifier, e.g. `generic-serial`, `unpadded-hash`.
    pub code: String,
    pub line: Option<u64>,
    /// Documented column name the finding is about, if any.
    pub column: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

impl Finding {
    pub fn new(
        severity: Severity,
        code: &str,
        line: Option<u64>,
        column: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            code: code.to_owned(),
            line,
            column: column.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// One data row, with the values the import step sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowReport {
    /// 1-based line in the file where the row starts.
    pub line: u64,
    pub serial: String,
    /// Empty when the column is absent or blank.
    pub product_key: String,
    /// The value to upload: trimmed and padded (see `unpadded-hash`).
    pub hash: String,
    pub group_tag: String,
    pub assigned_user: String,
    /// From inside the hash (SMBIOS), when readable.
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    /// Serial number recorded inside the hash, when readable.
    pub hash_serial: Option<String>,
    pub status: RowStatus,
    pub findings: Vec<Finding>,
}

impl RowReport {
    pub(crate) fn push(&mut self, f: Finding) {
        self.status = self.status.max(RowStatus::from_severity(f.severity));
        self.findings.push(f);
    }

    pub fn has_code(&self, code: &str) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }

    /// The wizard repaired the hash (padding or surrounding spaces).
    pub fn hash_fixed(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Fixed && f.column.as_deref() == Some(COL_HASH))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    /// The path (or name, for in-memory input) as given.
    pub path: String,
    pub encoding: TextEncoding,
    pub format: FileFormat,
    /// Findings about the file as a whole (header, layout, size, row count).
    pub findings: Vec<Finding>,
    pub rows: Vec<RowReport>,
}

impl FileReport {
    pub(crate) fn new(path: &str) -> Self {
        Self {
            path: path.to_owned(),
            encoding: TextEncoding::Unknown,
            format: FileFormat::Unknown,
            findings: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// A file-level error means none of its rows can be imported.
    pub fn has_file_error(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    pub fn has_code(&self, code: &str) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub files: usize,
    /// Files with a file-level error (unreadable, wrong format, unusable header).
    pub file_errors: usize,
    pub rows: usize,
    pub ok: usize,
    pub fixed: usize,
    pub warning: usize,
    pub error: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    pub files: Vec<FileReport>,
    pub summary: Summary,
}

impl CheckReport {
    pub(crate) fn from_files(files: Vec<FileReport>) -> Self {
        let mut summary = Summary {
            files: files.len(),
            ..Summary::default()
        };
        for f in &files {
            if f.has_file_error() {
                summary.file_errors += 1;
            }
            for r in &f.rows {
                summary.rows += 1;
                match r.status {
                    RowStatus::Ok => summary.ok += 1,
                    RowStatus::Fixed => summary.fixed += 1,
                    RowStatus::Warning => summary.warning += 1,
                    RowStatus::Error => summary.error += 1,
                }
            }
        }
        Self { files, summary }
    }

    /// Rows the import step can send: from files without a file-level error, and without an
    /// error themselves (warnings and fixes allowed). Their `hash` is already padded.
    pub fn ready_rows(&self) -> impl Iterator<Item = &RowReport> + '_ {
        self.files
            .iter()
            .filter(|f| !f.has_file_error())
            .flat_map(|f| f.rows.iter())
            .filter(|r| r.status != RowStatus::Error)
    }

    /// [`Self::ready_rows`] with the file each row comes from (for "file, line" messages).
    pub fn ready_rows_by_file(&self) -> impl Iterator<Item = (&FileReport, &RowReport)> + '_ {
        self.files
            .iter()
            .filter(|f| !f.has_file_error())
            .flat_map(|f| f.rows.iter().map(move |r| (f, r)))
            .filter(|(_, r)| r.status != RowStatus::Error)
    }

    /// Every row error or file-level error blocks "ready": 0 ready, 1 a row has an error,
    /// 2 a file is unreadable or not a hardware-hash file.
    pub fn exit_code(&self) -> i32 {
        if self.files.is_empty() || self.files.iter().any(FileReport::has_file_error) {
            2
        } else if self.summary.error > 0 {
            1
        } else {
            0
        }
    }

    /// All findings with the file they belong to, row findings after the file's own.
    pub fn all_findings(&self) -> impl Iterator<Item = (&str, &Finding)> + '_ {
        self.files.iter().flat_map(|f| {
            f.findings
                .iter()
                .chain(f.rows.iter().flat_map(|r| r.findings.iter()))
                .map(move |x| (f.path.as_str(), x))
        })
    }
}
