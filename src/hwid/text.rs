//! Bytes to text: encoding detection and the checks that must happen before any CSV parsing
//! (size cap, containers, binary data, NUL bytes).

use std::io::Read;
use std::path::Path;

use encoding_rs::{UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252};

use super::model::{FileFormat, Finding, Severity, TextEncoding};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(
        "The file is {size} bytes, more than the {limit}-byte limit. A hardware-hash CSV is about \
         8 KB per device; this is not one, or it holds far more devices than one import should. \
         Split it into files of at most 500 devices."
    )]
    TooLarge { size: u64, limit: u64 },
    #[error("The file could not be read ({0}). Check the path and that you may read it.")]
    Io(#[from] std::io::Error),
}

impl ReadError {
    pub fn code(&self) -> &'static str {
        match self {
            ReadError::TooLarge { .. } => "file-too-large",
            ReadError::Io(_) => "unreadable",
        }
    }
}

/// Reads at most `limit` bytes, checking the size before reading so a 100 MB file never lands
/// in memory. The `take` also guards a file that grows between the check and the read.
pub fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if size > limit {
        return Err(ReadError::TooLarge { size, limit });
    }
    let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            size: buf.len() as u64,
            limit,
        });
    }
    Ok(buf)
}

/// The outcome of decoding: either text to parse, or a verdict that there is nothing to parse.
pub enum Decoded {
    Text {
        text: String,
        encoding: TextEncoding,
        findings: Vec<Finding>,
    },
    Refused {
        encoding: TextEncoding,
        format: FileFormat,
        finding: Finding,
    },
}

pub fn decode(bytes: &[u8]) -> Decoded {
    if let Some(refused) = container(bytes) {
        return refused;
    }
    let (encoding, mut text, had_errors) = to_text(bytes);
    let mut findings = Vec::new();

    if looks_binary(&text) {
        return Decoded::Refused {
            encoding,
            format: FileFormat::Binary,
            finding: Finding::new(
                Severity::Error,
                "not-csv",
                None,
                None,
                "This is not a text file (it is mostly binary data). Pick the .csv file written \
                 by Get-WindowsAutopilotInfo -OutputFile.",
            ),
        };
    }

    // A PowerShell session killed while writing, or a pre-allocated file, leaves NULs at the
    // end: dropping them loses nothing.
    let trimmed_len = text.trim_end_matches('\0').len();
    if trimmed_len < text.len() {
        text.truncate(trimmed_len);
        findings.push(Finding::new(
            Severity::Fixed,
            "trailing-nul-bytes",
            None,
            None,
            "The file ends with NUL bytes (it was probably not completely written). They were \
             ignored; check that the last device is complete.",
        ));
    }
    if let Some(pos) = text.find('\0') {
        let line = line_of(&text, pos);
        return Decoded::Refused {
            encoding,
            format: FileFormat::Unknown,
            finding: Finding::new(
                Severity::Error,
                "nul-bytes",
                Some(line),
                None,
                format!(
                    "Line {line} contains NUL bytes: the file is damaged or was converted with \
                     the wrong encoding. Capture the hardware hash again, or open the file in \
                     Notepad and save it as UTF-8 or Unicode."
                ),
            ),
        };
    }
    if had_errors {
        findings.push(Finding::new(
            Severity::Warning,
            "encoding-errors",
            None,
            None,
            format!(
                "Some bytes are not valid {} and were replaced by \u{FFFD}. Values containing \
                 them will fail their checks; save the file again from Notepad.",
                encoding.label()
            ),
        ));
    }
    Decoded::Text {
        text,
        encoding,
        findings,
    }
}

fn container(bytes: &[u8]) -> Option<Decoded> {
    let what = if bytes.starts_with(b"PK\x03\x04") {
        "an Excel workbook (.xlsx) or another ZIP archive"
    } else if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        "an old-style Excel workbook (.xls)"
    } else {
        return None;
    };
    Some(Decoded::Refused {
        encoding: TextEncoding::Unknown,
        format: FileFormat::ExcelWorkbook,
        finding: Finding::new(
            Severity::Error,
            "excel-workbook",
            None,
            None,
            format!(
                "This is {what}, not a CSV. Use the original .csv written by \
                 Get-WindowsAutopilotInfo; if it went through Excel, capture it again \
                 (Excel changes quotes, separators and long values)."
            ),
        ),
    })
}

fn to_text(bytes: &[u8]) -> (TextEncoding, String, bool) {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        let (t, e) = UTF_16LE.decode_without_bom_handling(rest);
        return (TextEncoding::Utf16LeBom, t.into_owned(), e);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        let (t, e) = UTF_16BE.decode_without_bom_handling(rest);
        return (TextEncoding::Utf16BeBom, t.into_owned(), e);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        let (t, e) = UTF_8.decode_without_bom_handling(rest);
        return (TextEncoding::Utf8Bom, t.into_owned(), e);
    }
    match utf16_without_bom(bytes) {
        Some(true) => {
            let (t, e) = UTF_16LE.decode_without_bom_handling(bytes);
            return (TextEncoding::Utf16Le, t.into_owned(), e);
        }
        Some(false) => {
            let (t, e) = UTF_16BE.decode_without_bom_handling(bytes);
            return (TextEncoding::Utf16Be, t.into_owned(), e);
        }
        None => {}
    }
    if bytes.is_ascii() {
        // ASCII is valid UTF-8; the copy is the price of one code path.
        return (
            TextEncoding::Ascii,
            String::from_utf8_lossy(bytes).into_owned(),
            false,
        );
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => (TextEncoding::Utf8, s.to_owned(), false),
        Err(_) => {
            let (t, e) = WINDOWS_1252.decode_without_bom_handling(bytes);
            (TextEncoding::Windows1252, t.into_owned(), e)
        }
    }
}

/// `Some(true)` for UTF-16 LE, `Some(false)` for BE: ASCII text in UTF-16 has a zero in every
/// other byte, which no 8-bit CSV has.
fn utf16_without_bom(bytes: &[u8]) -> Option<bool> {
    let sample = &bytes[..bytes.len().min(4096) & !1];
    let pairs = sample.len() / 2;
    if pairs < 2 {
        return None;
    }
    let even_zero = sample.iter().step_by(2).filter(|&&b| b == 0).count();
    let odd_zero = sample
        .iter()
        .skip(1)
        .step_by(2)
        .filter(|&&b| b == 0)
        .count();
    if odd_zero * 10 >= pairs * 4 && even_zero * 20 < pairs {
        Some(true)
    } else if even_zero * 10 >= pairs * 4 && odd_zero * 20 < pairs {
        Some(false)
    } else {
        None
    }
}

/// More than 10% control characters (or replacement characters) in the first 4,096 characters.
/// NUL is left out: a few NULs in text get their own, more precise finding.
fn looks_binary(text: &str) -> bool {
    let mut total = 0usize;
    let mut bad = 0usize;
    for c in text.chars().take(4096) {
        total += 1;
        if c == '\u{FFFD}' || (c.is_control() && !matches!(c, '\t' | '\r' | '\n' | '\0')) {
            bad += 1;
        }
    }
    total > 0 && bad * 10 > total
}

pub fn line_of(text: &str, byte_pos: usize) -> u64 {
    let end = byte_pos.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64
        + 1
}
