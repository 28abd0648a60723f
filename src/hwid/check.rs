//! Putting it together: one file (bytes or path) at a time, then duplicates across everything
//! checked together.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::PathBuf;

use super::layout::{self, Layout};
use super::model::{
    COL_HASH, COL_SERIAL, CheckOptions, CheckReport, FileReport, Finding, PORTAL_ROW_LIMIT,
    Severity,
};
use super::rows::check_row;
use super::text::{self, Decoded};

/// Checks files on disk together (duplicates are looked for across all of them). Never fails:
/// unreadable or oversized files get a file-level finding.
pub fn check_files(paths: &[PathBuf], opts: &CheckOptions) -> CheckReport {
    let files = paths
        .iter()
        .map(|p| {
            let name = p.display().to_string();
            match text::read_capped(p, opts.max_file_bytes) {
                Ok(bytes) => check_one(&name, &bytes, opts),
                Err(e) => {
                    let mut f = FileReport::new(&name);
                    f.findings.push(Finding::new(
                        Severity::Error,
                        e.code(),
                        None,
                        None,
                        e.to_string(),
                    ));
                    f
                }
            }
        })
        .collect();
    finish(files)
}

/// Checks one in-memory file (e.g. what the import page got from the file picker).
pub fn check_bytes(name: &str, bytes: &[u8], opts: &CheckOptions) -> CheckReport {
    finish(vec![check_one(name, bytes, opts)])
}

/// Checks several in-memory files together, duplicates across them included.
pub fn check_sources(sources: &[(&str, &[u8])], opts: &CheckOptions) -> CheckReport {
    finish(
        sources
            .iter()
            .map(|(name, bytes)| check_one(name, bytes, opts))
            .collect(),
    )
}

pub(super) fn finish(mut files: Vec<FileReport>) -> CheckReport {
    mark_duplicates(&mut files);
    CheckReport::from_files(files)
}

fn check_one(name: &str, bytes: &[u8], opts: &CheckOptions) -> FileReport {
    let mut file = FileReport::new(name);
    if bytes.len() as u64 > opts.max_file_bytes {
        let e = text::ReadError::TooLarge {
            size: bytes.len() as u64,
            limit: opts.max_file_bytes,
        };
        file.findings.push(Finding::new(
            Severity::Error,
            e.code(),
            None,
            None,
            e.to_string(),
        ));
        return file;
    }
    let (text, encoding, findings) = match text::decode(bytes) {
        Decoded::Refused {
            encoding,
            format,
            finding,
        } => {
            file.encoding = encoding;
            file.format = format;
            file.findings.push(finding);
            return file;
        }
        Decoded::Text {
            text,
            encoding,
            findings,
        } => (text, encoding, findings),
    };
    file.encoding = encoding;
    file.findings = findings;

    let classified = layout::classify(&text);
    file.findings.extend(classified.findings);
    let (format, map, header_line) = match classified.layout {
        Layout::Refused { format, finding } => {
            file.format = format;
            file.findings.push(finding);
            return file;
        }
        Layout::Rows {
            format,
            map,
            header_line,
        } => (format, map, header_line),
    };
    file.format = format;

    let mut lines = layout::LineCounter::new(&text);
    for rec in layout::reader(&text, classified.delimiter).records() {
        let rec = match rec {
            Ok(rec) => rec,
            Err(e) => {
                // The text is valid UTF-8 and the reader is flexible, so this is not expected;
                // stop rather than guess.
                let line = e.position().map(|p| p.line() + 1);
                file.findings.push(Finding::new(
                    Severity::Error,
                    "csv-error",
                    line,
                    None,
                    format!("The file could not be read as CSV past this point ({e})."),
                ));
                break;
            }
        };
        let line = lines.line_of(&rec);
        if Some(line) == header_line || layout::is_blank(&rec) {
            continue;
        }
        file.rows.push(check_row(line, &rec, &map, opts));
    }

    if file.rows.is_empty() && !file.has_file_error() {
        file.findings.push(Finding::new(
            Severity::Error,
            "no-rows",
            header_line,
            None,
            "The file has a header but no devices. Capture the hardware hashes again and pick \
             the file that holds them.",
        ));
    } else if file.rows.len() > PORTAL_ROW_LIMIT {
        file.findings.push(Finding::new(
            Severity::Warning,
            "too-many-rows",
            None,
            None,
            format!(
                "The file has {} devices; the Intune portal accepts at most {PORTAL_ROW_LIMIT} per \
                 CSV. The wizard uploads in batches itself, so this is only a problem if you \
                 upload the file in the portal: split it there.",
                file.rows.len()
            ),
        ));
    }
    file
}

/// Later occurrences of a serial or hash already seen (in this file or an earlier one) are
/// errors: the service processes one and fails the others (ZtdDeviceDuplicated), so only the
/// first occurrence is imported.
fn mark_duplicates(files: &mut [FileReport]) {
    let mut additions: Vec<(usize, usize, Finding)> = Vec::new();
    {
        let mut serials: HashMap<String, (usize, u64)> = HashMap::new();
        let mut hashes: HashMap<&str, (usize, u64), BuildHasherDefault<WideHasher>> =
            HashMap::default();
        for (fi, file) in files.iter().enumerate() {
            if file.has_file_error() {
                continue;
            }
            for (ri, row) in file.rows.iter().enumerate() {
                let place = |(f, l): (usize, u64)| {
                    if f == fi {
                        format!("line {l}")
                    } else {
                        format!("{} line {l}", files[f].path)
                    }
                };
                if !row.hash.is_empty() {
                    if let Some(&first) = hashes.get(row.hash.as_str()) {
                        additions.push((
                            fi,
                            ri,
                            Finding::new(
                                Severity::Error,
                                "duplicate-hash",
                                Some(row.line),
                                Some(COL_HASH),
                                format!(
                                    "The same hardware hash is already at {}: the same device \
                                     twice. Only that first row is imported; remove this one.",
                                    place(first)
                                ),
                            ),
                        ));
                        continue;
                    }
                    hashes.insert(row.hash.as_str(), (fi, row.line));
                }
                if !row.serial.is_empty() {
                    let key = row.serial.to_uppercase();
                    if let Some(&first) = serials.get(&key) {
                        additions.push((
                            fi,
                            ri,
                            Finding::new(
                                Severity::Error,
                                "duplicate-serial",
                                Some(row.line),
                                Some(COL_SERIAL),
                                format!(
                                    "The serial number \"{}\" is already at {} with a different \
                                     hardware hash: two captures of one device (keep the newest \
                                     and delete the other row) or two devices sharing a \
                                     generic BIOS serial. Only the first row is imported.",
                                    row.serial,
                                    place(first)
                                ),
                            ),
                        ));
                    } else {
                        serials.insert(key, (fi, row.line));
                    }
                }
            }
        }
    }
    for (fi, ri, finding) in additions {
        files[fi].rows[ri].push(finding);
    }
}

/// A hasher for the 4,000-character hardware hashes the duplicate check keys on: the default
/// SipHash costs more than parsing the row. Four independent lanes of multiply-rotate over
/// 8-byte words keep the CPU busy. Not collision-resistant, and it need not be: a collision
/// costs one string comparison, and the input is the user's own file.
#[derive(Default)]
struct WideHasher {
    lanes: [u64; 4],
    len: u64,
}

const MUL: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(lane: u64, word: u64) -> u64 {
    (lane ^ word).wrapping_mul(MUL).rotate_left(29)
}

fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(w)
}

impl Hasher for WideHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.len = self.len.wrapping_add(bytes.len() as u64);
        let mut blocks = bytes.chunks_exact(32);
        for b in &mut blocks {
            for (i, lane) in self.lanes.iter_mut().enumerate() {
                *lane = mix(*lane, word(&b[i * 8..i * 8 + 8]));
            }
        }
        for (i, w) in blocks.remainder().chunks(8).enumerate() {
            self.lanes[i] = mix(self.lanes[i], word(w));
        }
    }

    fn finish(&self) -> u64 {
        let [a, b, c, d] = self.lanes;
        mix(mix(mix(mix(self.len, a), b), c), d)
    }
}
