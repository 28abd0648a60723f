//! What kind of file this is, and where its columns are: the documented header, headers that
//! are close but wrong (explained precisely), and other files users pick by mistake.

use super::model::{
    COL_GROUP_TAG, COL_PRODUCT_ID, COL_USER, DOCUMENTED_COLUMNS, FileFormat, Finding, Severity,
};
use super::text::line_of;

const EXPECTED_HEADER: &str = "Device Serial Number,Windows Product ID,Hardware Hash";

/// Where each documented column sits in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnMap {
    pub serial: usize,
    pub product_id: Option<usize>,
    pub hash: usize,
    pub group_tag: Option<usize>,
    pub user: Option<usize>,
    /// Number of columns in the header; rows with more fields are malformed.
    pub width: usize,
}

impl ColumnMap {
    pub fn positional(width: usize) -> Self {
        Self {
            serial: 0,
            product_id: Some(1),
            hash: 2,
            group_tag: (width > 3).then_some(3),
            user: (width > 4).then_some(4),
            width,
        }
    }
}

pub enum Layout {
    /// Rows can be read. `header_line` is the line to skip (`None`: no header, every record is
    /// data).
    Rows {
        format: FileFormat,
        map: ColumnMap,
        header_line: Option<u64>,
    },
    /// Nothing in this file can be imported.
    Refused {
        format: FileFormat,
        finding: Finding,
    },
}

pub struct Classified {
    pub delimiter: u8,
    pub layout: Layout,
    /// Header and layout findings that do not stop the rows from being read.
    pub findings: Vec<Finding>,
}

/// Normalised column key: case, spaces, `_` and `-` ignored.
fn key(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-' && *c != '"')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Index into [`DOCUMENTED_COLUMNS`] for a normalised key, and whether it is an exact
/// documented name (up to case/spacing) or a recognisable alias.
fn documented_index(k: &str) -> Option<(usize, bool)> {
    Some(match k {
        "deviceserialnumber" => (0, true),
        "windowsproductid" => (1, true),
        "hardwarehash" => (2, true),
        "grouptag" => (3, true),
        "assigneduser" => (4, true),
        "serialnumber" | "serial" | "serialno" => (0, false),
        "productid" | "productkey" | "windowsproductkey" => (1, false),
        "hash" | "hardwareidentifier" | "hardwareid" | "devicehardwaredata" => (2, false),
        "orderid" | "grouptags" => (3, false),
        "assignedusers" | "user" | "assigneduserprincipalname" => (4, false),
        _ => return None,
    })
}

const EXPORT_KEYS: &[&str] = &[
    "displayname",
    "devicename",
    "id",
    "deviceid",
    "serialnumber",
    "grouptag",
    "manufacturer",
    "model",
    "azureaddeviceid",
    "azureactivedirectorydeviceid",
    "entradeviceid",
    "enrollmentstate",
    "lastcontacteddatetime",
    "lastcheckin",
    "enrollmentdate",
    "osversion",
    "os",
    "ownership",
    "compliance",
    "managedby",
    "primaryuserupn",
    "userprincipalname",
    "profilestatus",
    "deploymentprofileassignmentstatus",
    "purchaseorderidentifier",
    "systemfamily",
    "skunumber",
    "manageddeviceid",
    "addressableusername",
    "imei",
];

fn first_nonblank_line(text: &str) -> Option<&str> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .find(|l| !l.trim().is_empty())
}

/// The separator is what the first line uses most outside quotes: Excel in locales with a
/// decimal comma saves with `;`.
fn detect_delimiter(line: &str) -> u8 {
    let (mut comma, mut semi, mut tab, mut quoted) = (0, 0, 0, false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => comma += 1,
            ';' if !quoted => semi += 1,
            '\t' if !quoted => tab += 1,
            _ => {}
        }
    }
    if semi > comma && semi >= tab {
        b';'
    } else if tab > comma && tab > semi {
        b'\t'
    } else {
        b','
    }
}

pub fn reader(text: &str, delimiter: u8) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes())
}

/// Physical line numbers of records. The csv crate's own `Position::line` lags by one after a
/// CRLF line end (it stops at the `\r`), and every real file uses CRLF.
pub struct LineCounter<'a> {
    text: &'a [u8],
    pos: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    pub fn new(text: &'a str) -> Self {
        Self {
            text: text.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    /// Line of the record whose position (as reported by the reader) is `byte`.
    pub fn line_of(&mut self, rec: &csv::StringRecord) -> u64 {
        let byte = rec.position().map_or(0, |p| p.byte());
        let mut start = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        while start < self.text.len() && matches!(self.text[start], b'\r' | b'\n') {
            start += 1;
        }
        if start < self.pos {
            self.pos = 0;
            self.line = 1;
        }
        self.line += self.text[self.pos..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        self.pos = start;
        self.line
    }
}

pub fn is_blank(rec: &csv::StringRecord) -> bool {
    rec.iter().all(|f| f.trim().is_empty())
}

fn looks_like_hash(s: &str) -> bool {
    let s = s.trim();
    s.len() >= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

fn snippet(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

fn refused(format: FileFormat, code: &str, line: Option<u64>, message: String) -> Layout {
    Layout::Refused {
        format,
        finding: Finding::new(Severity::Error, code, line, None, message),
    }
}

pub fn classify(text: &str) -> Classified {
    let Some(first_line) = first_nonblank_line(text) else {
        return Classified {
            delimiter: b',',
            layout: refused(
                FileFormat::Empty,
                "empty-file",
                None,
                "The file is empty. Capture the hardware hash again with \
                 Get-WindowsAutopilotInfo -OutputFile and pick the file it writes."
                    .into(),
            ),
            findings: Vec::new(),
        };
    };
    let delimiter = detect_delimiter(first_line);

    // A few records are enough to recognise the layout.
    let mut sample: Vec<(u64, csv::StringRecord)> = Vec::new();
    let mut lines = LineCounter::new(text);
    for rec in reader(text, delimiter).records().take(64) {
        let Ok(rec) = rec else { break };
        if is_blank(&rec) {
            continue;
        }
        let line = lines.line_of(&rec);
        sample.push((line, rec));
        if sample.len() >= 20 {
            break;
        }
    }
    let Some((header_line, header)) = sample.first().cloned() else {
        return Classified {
            delimiter,
            layout: refused(
                FileFormat::Empty,
                "empty-file",
                None,
                "The file has no values, only separators or blank lines. Capture the hardware \
                 hash again with Get-WindowsAutopilotInfo -OutputFile."
                    .into(),
            ),
            findings: Vec::new(),
        };
    };
    let fields: Vec<&str> = header.iter().collect();
    let keys: Vec<String> = fields.iter().map(|f| key(f)).collect();

    let has_hash_col = keys
        .iter()
        .any(|k| matches!(documented_index(k), Some((2, _))));
    let is_partner = keys
        .iter()
        .any(|k| k == "manufacturername" || k == "devicemodel");

    let mut findings = Vec::new();
    let note_excel = |format: FileFormat, findings: &mut Vec<Finding>| {
        if delimiter == b';' {
            findings.push(Finding::new(
                Severity::Warning,
                "excel-semicolon",
                Some(header_line),
                None,
                "The file uses ';' between columns: it was saved by Excel with a regional \
                 separator. The wizard reads it, but Microsoft documents that Excel-saved files \
                 are not usable in the portal, and Excel may have changed long values. Check the \
                 serial numbers below, or capture the hashes again and do not open them in Excel.",
            ));
        } else if delimiter == b'\t' {
            findings.push(Finding::new(
                Severity::Warning,
                "tab-separator",
                Some(header_line),
                None,
                "The columns are separated by tabs (copied from a spreadsheet?). The wizard reads \
                 it; for the portal the separator must be a comma.",
            ));
        }
        if let Some(pos) = text.find('"') {
            findings.push(Finding::new(
                Severity::Warning,
                "excel-quotes",
                Some(line_of(text, pos)),
                None,
                format!(
                    "Values are in quotation marks, which Excel adds and the documented format \
                     forbids. The wizard removes them; to upload this {} in the portal, remove \
                     every '\"' in Notepad.",
                    format.label()
                ),
            ));
        }
    };

    if has_hash_col || keys.iter().any(|k| k == "deviceserialnumber") || is_partner {
        let format = if is_partner {
            FileFormat::Partner
        } else {
            FileFormat::HardwareHash
        };
        let layout = header_layout(format, &fields, header_line, &mut findings);
        if matches!(layout, Layout::Rows { .. }) {
            note_excel(format, &mut findings);
        }
        return Classified {
            delimiter,
            layout,
            findings,
        };
    }

    let export_hits = keys
        .iter()
        .filter(|k| EXPORT_KEYS.contains(&k.as_str()))
        .count();
    let v2_header = keys.len() == 3
        && keys[0] == "manufacturer"
        && keys[1] == "model"
        && matches!(keys[2].as_str(), "serial" | "serialnumber");
    if !v2_header
        && (export_hits >= 3 || (keys.iter().any(|k| k == "serialnumber") && export_hits >= 2))
    {
        return Classified {
            delimiter,
            layout: refused(
                FileFormat::IntuneExport,
                "wrong-format-export",
                Some(header_line),
                format!(
                    "This is a list of devices exported from Intune (columns such as {}), not a \
                     hardware-hash file: it has no hardware hashes, so nothing in it can be \
                     registered. Devices in such a list are usually already known to Intune. To \
                     register a new device, run Get-WindowsAutopilotInfo -OutputFile on it and \
                     pick that file.",
                    fields
                        .iter()
                        .take(4)
                        .map(|f| format!("\"{}\"", f.trim()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            findings,
        };
    }

    let v2_rows = sample
        .iter()
        .all(|(_, r)| r.len() == 3 && r.iter().all(|f| !f.trim().is_empty() && f.len() <= 256))
        && !looks_like_hash(header.get(2).unwrap_or_default());
    if v2_header || v2_rows {
        return Classified {
            delimiter,
            layout: refused(
                FileFormat::V2Identifier,
                "wrong-format-v2-identifier",
                Some(header_line),
                "This looks like a corporate identifier list (Manufacturer,Model,Serial) for \
                 Windows Autopilot device preparation (\"Autopilot v2\"). It is uploaded under \
                 Devices > Enrollment > Corporate device identifiers, not imported as Autopilot \
                 devices. This wizard registers devices by hardware hash: run \
                 Get-WindowsAutopilotInfo -OutputFile on each device and pick those files."
                    .into(),
            ),
            findings,
        };
    }

    if header.len() >= 3 && looks_like_hash(header.get(2).unwrap_or_default()) {
        findings.push(Finding::new(
            Severity::Warning,
            "missing-header",
            Some(header_line),
            None,
            format!(
                "The header line is missing: line {header_line} is already a device. The wizard \
                 reads the columns in the documented order; for the portal, add the line \
                 \"{EXPECTED_HEADER}\" at the top."
            ),
        ));
        note_excel(FileFormat::HardwareHash, &mut findings);
        return Classified {
            delimiter,
            layout: Layout::Rows {
                format: FileFormat::HardwareHash,
                map: ColumnMap::positional(header.len().min(5)),
                header_line: None,
            },
            findings,
        };
    }

    Classified {
        delimiter,
        layout: refused(
            FileFormat::Unknown,
            "not-hardware-hash-csv",
            Some(header_line),
            format!(
                "This is not a hardware-hash CSV: its first line is \"{}\". A hardware-hash file \
                 starts with \"{EXPECTED_HEADER}\". Pick the file written by \
                 Get-WindowsAutopilotInfo -OutputFile.",
                snippet(first_line)
            ),
        ),
        findings,
    }
}

/// Maps a (near-)documented header and explains every difference from the documented one.
fn header_layout(
    format: FileFormat,
    fields: &[&str],
    line: u64,
    findings: &mut Vec<Finding>,
) -> Layout {
    let mut slots: [Option<usize>; 5] = [None; 5];
    let mut order: Vec<usize> = Vec::new();
    let warn = |code: &str, col: &str, msg: String| {
        Finding::new(Severity::Warning, code, Some(line), Some(col), msg)
    };
    const ANYWAY: &str = "The wizard reads this column anyway; to upload the file in the \
                          Intune portal instead, correct the header first.";

    for (i, raw) in fields.iter().enumerate() {
        let k = key(raw);
        let pos = i + 1;
        if format == FileFormat::Partner && (k == "manufacturername" || k == "devicemodel") {
            continue;
        }
        let Some((idx, exact)) = documented_index(&k) else {
            findings.push(warn(
                "extra-column",
                raw.trim(),
                format!(
                    "Column {pos} \"{}\" is not one of the documented columns ({}). Extra \
                     columns are not allowed in the portal; the wizard ignores this one.",
                    raw.trim(),
                    DOCUMENTED_COLUMNS.join(", ")
                ),
            ));
            continue;
        };
        let canonical = DOCUMENTED_COLUMNS[idx];
        if slots[idx].is_some() {
            return Layout::Refused {
                format,
                finding: Finding::new(
                    Severity::Error,
                    "duplicate-column",
                    Some(line),
                    Some(canonical),
                    format!(
                        "The column \"{canonical}\" appears twice in the header (column {pos} \
                         again), so the wizard cannot tell which values to use. Remove one of \
                         them."
                    ),
                ),
            };
        }
        slots[idx] = Some(i);
        order.push(idx);

        if !exact {
            findings.push(warn(
                "header-name",
                canonical,
                format!(
                    "Column {pos} is called \"{}\"; the documented name is \"{canonical}\". \
                     {ANYWAY}",
                    raw.trim()
                ),
            ));
            continue;
        }
        let stripped = |s: &str| -> String { s.chars().filter(|c| c.is_alphanumeric()).collect() };
        if stripped(raw) != stripped(canonical) {
            findings.push(warn(
                "header-case",
                canonical,
                format!(
                    "Column {pos} is \"{}\" but headers are case-sensitive: it must be \
                     \"{canonical}\". {ANYWAY}",
                    raw.trim()
                ),
            ));
        }
        let unquoted = raw.trim_matches('"');
        if unquoted.to_lowercase() != canonical.to_lowercase() {
            findings.push(warn(
                "header-spaces",
                canonical,
                format!(
                    "Column {pos} is \"{unquoted}\" (spaces differ): it must be \"{canonical}\", \
                     with single spaces and none before or after. {ANYWAY}"
                ),
            ));
        }
    }

    for (idx, required) in [(0usize, true), (2, true)] {
        if required && slots[idx].is_none() {
            let col = DOCUMENTED_COLUMNS[idx];
            return Layout::Refused {
                format,
                finding: Finding::new(
                    Severity::Error,
                    "missing-column",
                    Some(line),
                    Some(col),
                    format!(
                        "The required column \"{col}\" is missing from the header, so no device in \
                         this file can be registered. The header must start with \
                         \"{EXPECTED_HEADER}\". Capture the file again with \
                         Get-WindowsAutopilotInfo -OutputFile."
                    ),
                ),
            };
        }
    }
    if slots[1].is_none() {
        findings.push(warn(
            "missing-optional-column",
            COL_PRODUCT_ID,
            format!(
                "The column \"{COL_PRODUCT_ID}\" is missing. Its values are optional, but the \
                 portal expects the column (empty) as the second one. The wizard does not need it."
            ),
        ));
    }
    if slots[4].is_some() && slots[3].is_none() {
        findings.push(warn(
            "missing-optional-column",
            COL_GROUP_TAG,
            format!(
                "\"{COL_USER}\" is present without \"{COL_GROUP_TAG}\". The portal expects \
                 \"{COL_GROUP_TAG}\" (possibly empty) before it. The wizard does not need it."
            ),
        ));
    }
    if order.windows(2).any(|w| w[0] > w[1]) {
        let found: Vec<&str> = order.iter().map(|&i| DOCUMENTED_COLUMNS[i]).collect();
        let mut expected = order.clone();
        expected.sort_unstable();
        let expected: Vec<&str> = expected.iter().map(|&i| DOCUMENTED_COLUMNS[i]).collect();
        findings.push(Finding::new(
            Severity::Warning,
            "header-order",
            Some(line),
            None,
            format!(
                "The columns are in the order {}; the documented order is {}. The wizard matches \
                 columns by name; for the portal, reorder them.",
                found.join(", "),
                expected.join(", ")
            ),
        ));
    }
    if format == FileFormat::Partner {
        findings.push(Finding::new(
            Severity::Warning,
            "partner-format",
            Some(line),
            None,
            "This is the Partner Center (OEM/reseller) layout, with \"Manufacturer name\" and \
             \"Device model\" columns (Get-WindowsAutopilotInfo -Partner). The wizard imports its \
             serial numbers and hardware hashes and ignores those two columns; rows without a \
             hash cannot be imported into Intune (register them in Partner Center instead).",
        ));
    }

    Layout::Rows {
        format,
        map: ColumnMap {
            serial: slots[0].unwrap_or(0),
            product_id: slots[1],
            hash: slots[2].unwrap_or(2),
            group_tag: slots[3],
            user: slots[4],
            width: fields.len(),
        },
        header_line: Some(line),
    }
}
