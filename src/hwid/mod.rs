//! Hardware-hash CSV reader. No UI, no network.
//!
//! Reads the files Get-WindowsAutopilotInfo writes (UTF-16 LE with BOM under Windows PowerShell
//! 5.1, UTF-8 under PowerShell 7, ANSI when edited in Notepad), checks them against Microsoft's
//! documented rules, repairs what is safe to repair (Base64 padding), recognises the files users
//! pick by mistake, and looks inside each hash for the device's manufacturer, model and serial.
//!
//! Entry points: [`check_files`], [`check_bytes`], [`check_sources`]; the import step sends
//! [`CheckReport::ready_rows`]. The `check-csv` command is [`run_check_csv`].

mod check;
mod cli;
pub mod harvest;
#[cfg(windows)]
mod harvest_windows;
pub mod hash;
mod layout;
mod model;
mod rows;
mod text;

pub use check::{check_bytes, check_files, check_sources};
pub use cli::run_check_csv;
pub use model::{
    COL_GROUP_TAG, COL_HASH, COL_PRODUCT_ID, COL_SERIAL, COL_USER, CheckOptions, CheckReport,
    DEFAULT_MAX_FILE_BYTES, DOCUMENTED_COLUMNS, FileFormat, FileReport, Finding, PORTAL_ROW_LIMIT,
    RowReport, RowStatus, Severity, Summary, TextEncoding,
};
pub use rows::{NormalizedHash, normalize_hash};
pub use text::ReadError;

/// "HP EliteBook 840 G8" from manufacturer "HP" and model "HP EliteBook 840 G8": the model
/// names its maker on many PCs, and saying it twice reads as a slip.
pub fn device_name(manufacturer: &str, model: &str) -> String {
    let (m, p) = (manufacturer.trim(), model.trim());
    let repeats = p
        .get(..m.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(m))
        && p[m.len()..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric());
    match (m.is_empty(), p.is_empty()) {
        (true, _) => p.to_string(),
        (false, true) => m.to_string(),
        _ if repeats => p.to_string(),
        _ => format!("{m} {p}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_maker_is_said_once() {
        use super::device_name;
        assert_eq!(
            device_name("HP", "HP EliteBook 840 G8"),
            "HP EliteBook 840 G8"
        );
        assert_eq!(device_name("LENOVO", "20K5S0B700"), "LENOVO 20K5S0B700");
        assert_eq!(device_name("HP", "HPX 1"), "HP HPX 1");
        assert_eq!(device_name("", "Laptop 7"), "Laptop 7");
        assert_eq!(device_name("Contoso", ""), "Contoso");
    }
}
