//! Harvesting the hardware hash of the PC the wizard runs on, the way Microsoft's
//! Get-WindowsAutopilotInfo does, and writing it as that script writes its CSV.
//!
//! The WMI reads sit behind [`WmiSource`] so the logic runs (and is tested) anywhere: the real
//! source exists only on Windows ([`system_source`]); tests and scripted runs feed
//! [`RecordedWmi`]. Every harvested row goes through the same checks as `check-csv` (the row is
//! written as CSV bytes and read back by [`check_bytes`]) before anything is written or sent.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::check::check_bytes;
use super::cli::{JsonFinding, JsonRow};
use super::hash;
use super::model::{
    COL_HASH, CheckOptions, CheckReport, DOCUMENTED_COLUMNS, FileFormat, FileReport, Finding,
    RowReport, RowStatus, Severity, TextEncoding,
};

/// What the file column of the import page shows for a harvested row.
pub const THIS_PC: &str = "this PC";

/// The WMI namespace and class Get-WindowsAutopilotInfo reads the hash from (the MDM bridge).
pub const MDM_NAMESPACE: &str = "root\\cimv2\\mdm\\dmmap";
pub const MDM_CLASS: &str = "MDM_DevDetail_Ext01";

/// One failed WMI read, reduced to what decides the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "kebab-case")]
pub enum WmiError {
    /// The namespace or class does not exist (WBEM_E_INVALID_NAMESPACE / _INVALID_CLASS).
    #[error("{class} in {namespace} does not exist on this system")]
    Missing { namespace: String, class: String },
    /// WBEM_E_ACCESS_DENIED or E_ACCESSDENIED: not running as administrator.
    #[error("access denied")]
    AccessDenied,
    /// Anything else, with the raw error for the log.
    #[error("{0}")]
    Failed(String),
}

/// Win32_ComputerSystem's Manufacturer and Model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputerSystem {
    pub manufacturer: String,
    pub model: String,
}

/// The WMI reads of Get-WindowsAutopilotInfo. `Ok(None)`: the instance or property is absent.
pub trait WmiSource: Send + Sync {
    /// `MDM_DevDetail_Ext01` (InstanceID='Ext', ParentID='./DevDetail') `.DeviceHardwareData`
    /// in `root\cimv2\mdm\dmmap`.
    fn device_hardware_data(&self) -> Result<Option<String>, WmiError>;
    /// `Win32_BIOS.SerialNumber`.
    fn bios_serial_number(&self) -> Result<Option<String>, WmiError>;
    /// `SoftwareLicensingService.OA3xOriginalProductKey` (the key in the firmware, OEM PCs).
    fn oa3_product_key(&self) -> Result<Option<String>, WmiError>;
    /// `Win32_ComputerSystem` Manufacturer and Model.
    fn computer_system(&self) -> Result<ComputerSystem, WmiError>;
    /// Whether this process runs elevated, when the source can tell.
    fn elevated(&self) -> Option<bool> {
        None
    }
}

/// Recorded WMI answers (JSON), for tests and for trying the command where there is no WMI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedWmi {
    pub device_hardware_data: Result<Option<String>, WmiError>,
    pub bios_serial_number: Result<Option<String>, WmiError>,
    #[serde(default = "no_key")]
    pub oa3_product_key: Result<Option<String>, WmiError>,
    #[serde(default = "no_system")]
    pub computer_system: Result<ComputerSystem, WmiError>,
    #[serde(default)]
    pub elevated: Option<bool>,
}

fn no_key() -> Result<Option<String>, WmiError> {
    Ok(None)
}

fn no_system() -> Result<ComputerSystem, WmiError> {
    Ok(ComputerSystem::default())
}

impl RecordedWmi {
    /// A PC whose reads all succeed.
    pub fn answering(hash: &str, serial: &str, manufacturer: &str, model: &str) -> Self {
        RecordedWmi {
            device_hardware_data: Ok(Some(hash.to_owned())),
            bios_serial_number: Ok(Some(serial.to_owned())),
            oa3_product_key: Ok(None),
            computer_system: Ok(ComputerSystem {
                manufacturer: manufacturer.to_owned(),
                model: model.to_owned(),
            }),
            elevated: Some(true),
        }
    }
}

impl WmiSource for RecordedWmi {
    fn device_hardware_data(&self) -> Result<Option<String>, WmiError> {
        self.device_hardware_data.clone()
    }
    fn bios_serial_number(&self) -> Result<Option<String>, WmiError> {
        self.bios_serial_number.clone()
    }
    fn oa3_product_key(&self) -> Result<Option<String>, WmiError> {
        self.oa3_product_key.clone()
    }
    fn computer_system(&self) -> Result<ComputerSystem, WmiError> {
        self.computer_system.clone()
    }
    fn elevated(&self) -> Option<bool> {
        self.elevated
    }
}

/// Why this PC's hash could not be harvested or may not be used, in words for the IT person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HarvestError {
    #[error(
        "Reading this PC's hardware hash needs Windows 10 or 11, run as administrator, on the PC \
         itself. This is {os}: capture the hash on the device (at its first setup screen press \
         Shift+F10 and run autopilot-wizard.exe harvest from a USB stick), or import the CSV \
         Get-WindowsAutopilotInfo wrote."
    )]
    NotWindows { os: &'static str },
    #[error(
        "This Windows does not offer the hardware hash: the MDM bridge ({MDM_CLASS} in \
         {MDM_NAMESPACE}) is missing. Harvesting needs Windows 10 or 11 (1703 or later; \
         Autopilot itself needs Pro, Enterprise or Education), run as administrator; Windows \
         Server, Windows PE and Wine do not have the bridge."
    )]
    NoMdmBridge { detail: String },
    #[error(
        "Reading the hardware hash needs administrator rights: Windows refused the read of \
         {what}. Start the wizard as administrator (right-click > Run as administrator). At the \
         first setup screen the Shift+F10 prompt already is one."
    )]
    NeedsAdministrator { what: &'static str },
    #[error(
        "Windows answered without a hardware hash ({MDM_CLASS} has no DeviceHardwareData). Run \
         the wizard as administrator; if it still fails, the device's firmware or TPM may not \
         support Autopilot."
    )]
    NoHash,
    #[error("Windows could not read {what}: {detail}")]
    Wmi { what: &'static str, detail: String },
    #[error("This PC's hardware hash cannot be registered: {}", first_message(.findings))]
    Rejected { findings: Vec<Finding> },
}

fn first_message(findings: &[Finding]) -> &str {
    findings.first().map(|f| f.message.as_str()).unwrap_or("")
}

impl HarvestError {
    /// Running elevated would help (offer "Restart as administrator").
    pub fn needs_elevation(&self) -> bool {
        matches!(
            self,
            HarvestError::NeedsAdministrator { .. } | HarvestError::NoHash
        )
    }
}

/// What the user adds to the harvested row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HarvestOptions {
    pub group_tag: String,
    pub assigned_user: String,
    pub check: CheckOptions,
}

/// One row as Get-WindowsAutopilotInfo writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvRow {
    pub serial: String,
    pub product_key: String,
    pub hash: String,
    pub group_tag: String,
    pub assigned_user: String,
}

/// A harvested and checked row of this PC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Harvested {
    /// What goes into the CSV (and the import).
    pub csv_row: CsvRow,
    /// The `check-csv` verdict on it (warnings allowed, never an error).
    pub row: RowReport,
    /// Win32_ComputerSystem, as Windows names the PC.
    pub system: ComputerSystem,
}

impl Harvested {
    /// The row as a one-row CSV file, byte for byte as Get-WindowsAutopilotInfo writes it.
    pub fn csv_bytes(&self) -> Vec<u8> {
        write_csv(std::slice::from_ref(&self.csv_row))
    }

    /// "HP EliteBook 840 G8": from the hash, else from Windows.
    pub fn device_name(&self) -> String {
        let make = self
            .row
            .manufacturer
            .clone()
            .unwrap_or_else(|| self.system.manufacturer.clone());
        let model = self
            .row
            .model
            .clone()
            .unwrap_or_else(|| self.system.model.clone());
        // "HP" + "HP EliteBook 840 G8": the model often repeats the maker.
        if model
            .to_ascii_lowercase()
            .starts_with(&make.to_ascii_lowercase())
        {
            model.trim().to_owned()
        } else {
            format!("{make} {model}").trim().to_owned()
        }
    }
}

/// Reads this PC through `wmi` and checks the row. Blocking (WMI calls): run it on a worker.
pub fn harvest(wmi: &dyn WmiSource, opts: &HarvestOptions) -> Result<Harvested, HarvestError> {
    let hash = match wmi.device_hardware_data() {
        Ok(Some(h)) if !h.trim().is_empty() => h.trim().to_owned(),
        Ok(_) => return Err(HarvestError::NoHash),
        Err(WmiError::Missing { namespace, class }) => {
            return Err(HarvestError::NoMdmBridge {
                detail: format!("{class} in {namespace}"),
            });
        }
        Err(WmiError::AccessDenied) => {
            return Err(HarvestError::NeedsAdministrator {
                what: "the hardware hash",
            });
        }
        Err(WmiError::Failed(detail)) => {
            return Err(HarvestError::Wmi {
                what: "the hardware hash",
                detail,
            });
        }
    };
    let serial = match wmi.bios_serial_number() {
        Ok(s) => s.unwrap_or_default().trim().to_owned(),
        Err(WmiError::AccessDenied) => {
            return Err(HarvestError::NeedsAdministrator {
                what: "the BIOS serial number",
            });
        }
        Err(e) => {
            return Err(HarvestError::Wmi {
                what: "the BIOS serial number (Win32_BIOS)",
                detail: e.to_string(),
            });
        }
    };
    // Optional, as in the script: a PC without a firmware key is normal.
    let product_key = match wmi.oa3_product_key() {
        Ok(k) => k.unwrap_or_default().trim().to_owned(),
        Err(e) => {
            tracing::info!(error = %e, "no OA3 product key read; the column stays empty");
            String::new()
        }
    };
    let system = wmi.computer_system().unwrap_or_else(|e| {
        tracing::info!(error = %e, "Win32_ComputerSystem not read");
        ComputerSystem::default()
    });
    let csv_row = CsvRow {
        serial,
        product_key,
        hash,
        group_tag: opts.group_tag.trim().to_owned(),
        assigned_user: opts.assigned_user.trim().to_owned(),
    };
    let mut row = check_csv_row(&csv_row, &opts.check);
    // The hash's SMBIOS strings are what check-csv looks at; Windows' own names catch a
    // hypervisor whose hash could not be read inside.
    if !row.has_code("virtual-machine")
        && let Some(vm) = hash::virtual_machine(
            Some(&system.manufacturer),
            Some(&system.model),
            &csv_row.serial,
        )
    {
        row.push(Finding::new(
            Severity::Warning,
            "virtual-machine",
            Some(row.line),
            Some(COL_HASH),
            format!(
                "This is a virtual machine ({vm}: {} / {}). Fine for a test lab; for production, \
                 make sure you mean to register it. Re-creating the VM changes its hash.",
                system.manufacturer, system.model
            ),
        ));
    }
    if row.manufacturer.is_none() && !system.manufacturer.trim().is_empty() {
        row.manufacturer = Some(system.manufacturer.trim().to_owned());
    }
    if row.model.is_none() && !system.model.trim().is_empty() {
        row.model = Some(system.model.trim().to_owned());
    }
    if row.status == RowStatus::Error {
        let findings = row
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .cloned()
            .collect();
        return Err(HarvestError::Rejected { findings });
    }
    // The upload sends what the check produced (trimmed, padded).
    let csv_row = CsvRow {
        hash: row.hash.clone(),
        ..csv_row
    };
    Ok(Harvested {
        csv_row,
        row,
        system,
    })
}

/// The same PC with other options (a group tag chosen later): the values read before, checked
/// again.
pub fn harvest_again(h: &Harvested, opts: &HarvestOptions) -> Result<Harvested, HarvestError> {
    let again = RecordedWmi {
        device_hardware_data: Ok(Some(h.csv_row.hash.clone())),
        bios_serial_number: Ok(Some(h.csv_row.serial.clone())),
        oa3_product_key: Ok(Some(h.csv_row.product_key.clone()).filter(|k| !k.is_empty())),
        computer_system: Ok(h.system.clone()),
        elevated: None,
    };
    harvest(&again, opts)
}

/// `report` (files the user chose) with this PC added as one more file named [`THIS_PC`], so
/// the import page shows and sends it like a CSV row; duplicates across both are marked again.
pub fn include_in_report(report: &CheckReport, h: &Harvested) -> CheckReport {
    let mut files: Vec<FileReport> = report
        .files
        .iter()
        .filter(|f| f.path != THIS_PC)
        .cloned()
        .map(|mut f| {
            // Duplicate findings are recomputed with this PC among the files.
            for r in &mut f.rows {
                r.findings
                    .retain(|x| x.code != "duplicate-serial" && x.code != "duplicate-hash");
                r.status = r
                    .findings
                    .iter()
                    .map(|x| RowStatus::from_severity(x.severity))
                    .max()
                    .unwrap_or(RowStatus::Ok);
            }
            f
        })
        .collect();
    let mut this = FileReport::new(THIS_PC);
    this.encoding = TextEncoding::Utf16LeBom;
    this.format = FileFormat::HardwareHash;
    this.rows.push(h.row.clone());
    files.push(this);
    super::check::finish(files)
}

/// The same rules as `check-csv`, by reading the row back as the file it would be.
fn check_csv_row(row: &CsvRow, opts: &CheckOptions) -> RowReport {
    let report = check_bytes(THIS_PC, &write_csv(std::slice::from_ref(row)), opts);
    let file = report.files.into_iter().next();
    match file.and_then(|f| {
        let file_error = f
            .findings
            .iter()
            .find(|x| x.severity == Severity::Error)
            .cloned();
        f.rows.into_iter().next().map(|r| (r, file_error))
    }) {
        Some((mut r, None)) => {
            r.line = 2;
            r
        }
        Some((mut r, Some(e))) => {
            r.push(e);
            r
        }
        None => {
            let mut r = RowReport {
                line: 2,
                serial: row.serial.clone(),
                product_key: row.product_key.clone(),
                hash: row.hash.clone(),
                group_tag: row.group_tag.clone(),
                assigned_user: row.assigned_user.clone(),
                manufacturer: None,
                model: None,
                hash_serial: None,
                status: RowStatus::Ok,
                findings: Vec::new(),
            };
            r.push(Finding::new(
                Severity::Error,
                "unreadable-row",
                Some(2),
                None,
                "The harvested values do not form a readable CSV row (a comma or quote in the \
                 group tag?).",
            ));
            r
        }
    }
}

/// CSV as Get-WindowsAutopilotInfo writes it under Windows PowerShell 5.1: `ConvertTo-CSV
/// -NoTypeInformation` with every quote removed, then `Out-File` (UTF-16 LE with BOM, CRLF after
/// every line). The header has 3 columns, 4 with a group tag, 5 with an assigned user.
pub fn write_csv(rows: &[CsvRow]) -> Vec<u8> {
    let width = if rows.iter().any(|r| !r.assigned_user.is_empty()) {
        5
    } else if rows.iter().any(|r| !r.group_tag.is_empty()) {
        4
    } else {
        3
    };
    let mut text = DOCUMENTED_COLUMNS[..width].join(",");
    text.push_str("\r\n");
    for r in rows {
        let values = [
            &r.serial,
            &r.product_key,
            &r.hash,
            &r.group_tag,
            &r.assigned_user,
        ];
        let line: Vec<String> = values[..width].iter().map(|v| v.replace('"', "")).collect();
        text.push_str(&line.join(","));
        text.push_str("\r\n");
    }
    let mut out = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out
}

/// Why `--append` refused the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error(
        "{path} is not a hardware-hash CSV ({reason}); nothing was written. Choose another file \
         or leave out --append."
    )]
    NotHardwareHash { path: String, reason: String },
    #[error(
        "{path} already has this PC (serial number {serial}, line {line}); nothing was written. \
         Remove that row first if you captured the PC again."
    )]
    DuplicateSerial {
        path: String,
        serial: String,
        line: u64,
    },
    #[error("{path} already has this PC's hardware hash (line {line}); nothing was written.")]
    DuplicateHash { path: String, line: u64 },
}

/// `existing` (a hardware-hash CSV) with `new` added at the end, under one header, written as the
/// script writes files. The header widens when the new row needs a group tag or user column.
pub fn append_row(path: &str, existing: &[u8], new: &CsvRow) -> Result<Vec<u8>, AppendError> {
    let report = check_bytes(path, existing, &CheckOptions::default());
    let file = report
        .files
        .into_iter()
        .next()
        .ok_or_else(|| AppendError::NotHardwareHash {
            path: path.to_owned(),
            reason: "not read".into(),
        })?;
    if let Some(e) = file.findings.iter().find(|f| f.severity == Severity::Error) {
        return Err(AppendError::NotHardwareHash {
            path: path.to_owned(),
            reason: e.message.clone(),
        });
    }
    if file.format != FileFormat::HardwareHash {
        return Err(AppendError::NotHardwareHash {
            path: path.to_owned(),
            reason: file.format.label().to_owned(),
        });
    }
    for r in &file.rows {
        if !r.serial.is_empty() && r.serial.eq_ignore_ascii_case(new.serial.trim()) {
            return Err(AppendError::DuplicateSerial {
                path: path.to_owned(),
                serial: r.serial.clone(),
                line: r.line,
            });
        }
        if r.hash == new.hash {
            return Err(AppendError::DuplicateHash {
                path: path.to_owned(),
                line: r.line,
            });
        }
    }
    let mut rows: Vec<CsvRow> = file
        .rows
        .iter()
        .map(|r| CsvRow {
            serial: r.serial.clone(),
            product_key: r.product_key.clone(),
            hash: r.hash.clone(),
            group_tag: r.group_tag.clone(),
            assigned_user: r.assigned_user.clone(),
        })
        .collect();
    rows.push(new.clone());
    Ok(write_csv(&rows))
}

/// The real WMI source of this system, or why there is none.
pub fn system_source() -> Result<Box<dyn WmiSource>, HarvestError> {
    #[cfg(windows)]
    {
        super::harvest_windows::probe().map(|s| Box::new(s) as Box<dyn WmiSource>)
    }
    #[cfg(not(windows))]
    {
        Err(HarvestError::NotWindows {
            os: std::env::consts::OS,
        })
    }
}

/// Starts this program again with the same arguments, elevated (the UAC prompt). The caller
/// exits when this returns `Ok`.
pub fn restart_elevated() -> Result<(), String> {
    #[cfg(windows)]
    {
        super::harvest_windows::restart_elevated()
    }
    #[cfg(not(windows))]
    {
        Err("Restarting as administrator exists only on Windows.".into())
    }
}

/// The `harvest` command without `--upload`.
#[derive(Debug, Clone, Default)]
pub struct HarvestCommand {
    pub out: Option<std::path::PathBuf>,
    pub append: bool,
    pub json: bool,
    pub options: HarvestOptions,
}

/// Exit codes of `harvest`: 0 done, 1 the row or the file was refused (check or `--append`),
/// 2 the hash could not be read here (not Windows, no MDM bridge, no administrator rights).
pub fn run_harvest(
    cmd: &HarvestCommand,
    source: Result<Box<dyn WmiSource>, HarvestError>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let result = source.and_then(|s| harvest(s.as_ref(), &cmd.options));
    let harvested = match result {
        Ok(h) => h,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            if e.needs_elevation() && cfg!(windows) {
                let _ = writeln!(
                    err,
                    "Or run it again with --elevate to restart it as administrator."
                );
            }
            return match e {
                HarvestError::Rejected { findings } => {
                    for f in findings.iter().skip(1) {
                        let _ = writeln!(err, "{}", f.message);
                    }
                    1
                }
                _ => 2,
            };
        }
    };
    if let Some(path) = &cmd.out
        && let Err(e) = write_file(path, cmd.append, &harvested)
    {
        let _ = writeln!(err, "{e}");
        return 1;
    }
    let written = if cmd.json {
        let row = &harvested.row;
        let json = JsonRow {
            line: row.line,
            serial: &row.serial,
            group_tag: &row.group_tag,
            manufacturer: row.manufacturer.as_deref(),
            model: row.model.as_deref(),
            status: row.status.as_str(),
            findings: row.findings.iter().map(JsonFinding::from).collect(),
        };
        serde_json::to_writer_pretty(&mut *out, &json)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out))
    } else {
        write_summary(&harvested, cmd, out)
    };
    // A closed pipe must not turn a harvest into a crash; the file and the exit code tell.
    drop(written);
    0
}

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error("{path} could not be {verb} ({source}).")]
    Io {
        path: String,
        verb: &'static str,
        source: std::io::Error,
    },
}

fn write_file(path: &Path, append: bool, h: &Harvested) -> Result<(), WriteError> {
    let name = path.display().to_string();
    let io = |verb: &'static str| {
        let name = name.clone();
        move |source| WriteError::Io {
            path: name,
            verb,
            source,
        }
    };
    let bytes = if append && path.exists() {
        let existing =
            super::text::read_capped(path, super::DEFAULT_MAX_FILE_BYTES).map_err(|e| {
                WriteError::Io {
                    path: name.clone(),
                    verb: "read",
                    source: std::io::Error::other(e.to_string()),
                }
            })?;
        append_row(&name, &existing, &h.csv_row)?
    } else {
        h.csv_bytes()
    };
    std::fs::write(path, bytes).map_err(io("written"))
}

fn write_summary(h: &Harvested, cmd: &HarvestCommand, out: &mut dyn Write) -> std::io::Result<()> {
    let r = &h.row;
    writeln!(
        out,
        "This PC: {} (serial number {})",
        h.device_name(),
        r.serial
    )?;
    writeln!(
        out,
        "Hardware hash: {} characters, checked: {}",
        r.hash.len(),
        r.status.as_str()
    )?;
    if !r.product_key.is_empty() {
        // A licence key is not something to leave in a console scrollback.
        writeln!(
            out,
            "Product key: from the firmware (in the CSV, not shown here)"
        )?;
    }
    if !r.group_tag.is_empty() {
        writeln!(out, "Group tag: {}", r.group_tag)?;
    }
    if !r.assigned_user.is_empty() {
        writeln!(out, "Assigned user: {}", r.assigned_user)?;
    }
    for f in &r.findings {
        let column = f
            .column
            .as_deref()
            .map(|c| format!(" [{c}]"))
            .unwrap_or_default();
        writeln!(out, "  {}{column}: {}", f.severity.as_str(), f.message)?;
    }
    match &cmd.out {
        Some(p) if cmd.append => writeln!(out, "Added to {}.", p.display()),
        Some(p) => writeln!(
            out,
            "Written to {} (as Get-WindowsAutopilotInfo writes it).",
            p.display()
        ),
        None => writeln!(
            out,
            "Nothing was written. Save it with --out FILE.csv (add --append to add it to an \
             existing file), or upload it with --upload."
        ),
    }
}
