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
