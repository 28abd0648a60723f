//! The hardware-hash CSV reader against the real samples and a hostile corpus.
//!
//! Real samples (tests/fixtures/csv/0*.csv) are byte-for-byte copies of public files written by
//! Get-WindowsAutopilotInfo under Windows PowerShell 5.1: Pmedley26/PowerShell
//! AutopilotHWID.csv @dd069fa2, tklawun/PowerShell MyComputer.csv @14b2cf06,
//! ChinwikeOnyia26/ModernEndpoints-Deployment-Scripts AutopilotHWID.csv @b5d7a241.
//! The rest of the corpus is generated from them by tests/fixtures/csv/make_corpus.py.

use std::path::{Path, PathBuf};

use autopilot_wizard::hwid::{
    self, COL_GROUP_TAG, COL_HASH, COL_PRODUCT_ID, COL_SERIAL, COL_USER, CheckOptions, CheckReport,
    FileFormat, FileReport, RowReport, RowStatus, Severity, TextEncoding, check_bytes, check_files,
    check_sources, run_check_csv,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/csv")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture exists")
}

fn check(name: &str) -> CheckReport {
    check_files(&[fixture(name)], &CheckOptions::default())
}

fn only_file(r: &CheckReport) -> &FileReport {
    assert_eq!(r.files.len(), 1);
    &r.files[0]
}

fn row(r: &CheckReport, line: u64) -> &RowReport {
    only_file(r)
        .rows
        .iter()
        .find(|x| x.line == line)
        .unwrap_or_else(|| panic!("no row at line {line}: {:#?}", only_file(r).rows))
}

/// Asserts the row has a finding with this code, severity and column, on its line.
fn assert_row_finding(r: &RowReport, code: &str, sev: Severity, column: Option<&str>) {
    let f = r
        .findings
        .iter()
        .find(|f| f.code == code)
        .unwrap_or_else(|| panic!("line {}: no {code} in {:#?}", r.line, r.findings));
    assert_eq!(f.severity, sev, "{code}");
    assert_eq!(f.column.as_deref(), column, "{code}");
    assert_eq!(f.line, Some(r.line), "{code}");
    assert!(!f.message.is_empty());
}

fn assert_file_finding(
    f: &FileReport,
    code: &str,
    sev: Severity,
    line: Option<u64>,
    column: Option<&str>,
) {
    let x = f
        .findings
        .iter()
        .find(|x| x.code == code)
        .unwrap_or_else(|| panic!("{}: no {code} in {:#?}", f.path, f.findings));
    assert_eq!(x.severity, sev, "{code}");
    assert_eq!(x.line, line, "{code}");
    assert_eq!(x.column.as_deref(), column, "{code}");
}

fn codes(r: &RowReport) -> Vec<&str> {
    r.findings.iter().map(|f| f.code.as_str()).collect()
}

const HP_HASH_PREFIX: &str = "T0GHBAEAHAAAAAoAGR70ZQAACgCgHlhmnlkzMewC";

/// Same layout as the real hashes (see `hash_layout_of_samples`), zero-padded to 3000 bytes.
fn synthetic_hash(serial: &str, manufacturer: &str, model: &str) -> String {
    fn field(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = kind.to_le_bytes().to_vec();
        v.extend_from_slice(&((value.len() + 4) as u16).to_le_bytes());
        v.extend_from_slice(value);
        v
    }
    let z = |s: &str| [s.as_bytes(), b"\0"].concat();
    let mut body = field(0x01, &[7u8; 24]);
    body.extend(field(0x0E, &z(serial)));
    body.extend(field(0x0F, &z(manufacturer)));
    body.extend(field(0x11, &z(model)));
    let mut rec = b"OA".to_vec();
    rec.extend_from_slice(&((body.len() + 4) as u16).to_le_bytes());
    rec.extend(body);
    rec.resize(3000, 0);
    STANDARD.encode(rec)
}

fn utf16le_bom(text: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out
}

// ---------------------------------------------------------------- real samples

#[test]
fn real_samples_are_ok_with_device_from_hash() {
    let cases = [
        (
            "01-utf16-plain-hp.csv",
            "5CG1457YL8",
            "HP",
            "HP EliteBook 840 G8 Notebook PC",
        ),
        (
            "03-utf16-plain-lenovo.csv",
            "PC0NVWSH",
            "LENOVO",
            "20K5S0B700",
        ),
        (
            "04-utf16-plain-lenovo2.csv",
            "PF5MT6SC",
            "LENOVO",
            "21R3001BUK",
        ),
    ];
    for (name, serial, manufacturer, model) in cases {
        let r = check(name);
        let f = only_file(&r);
        assert_eq!(f.encoding, TextEncoding::Utf16LeBom, "{name}");
        assert_eq!(f.format, FileFormat::HardwareHash, "{name}");
        assert!(f.findings.is_empty(), "{name}: {:#?}", f.findings);
        assert_eq!(f.rows.len(), 1);
        let x = &f.rows[0];
        assert_eq!(x.line, 2);
        assert_eq!(x.serial, serial);
        assert_eq!(x.hash_serial.as_deref(), Some(serial));
        assert_eq!(x.manufacturer.as_deref(), Some(manufacturer));
        assert_eq!(x.model.as_deref(), Some(model));
        assert_eq!(x.product_key, "");
        assert_eq!(x.hash.len(), 4000);
        assert_eq!(x.status, RowStatus::Ok, "{name}: {:#?}", x.findings);
        assert!(!x.hash_fixed());
        assert_eq!(r.exit_code(), 0);
        assert_eq!(r.ready_rows().count(), 1);
    }
}

/// The exploration that fixed the layout `hwid::hash` relies on: `OA`, u16 LE record length,
/// then type/length/value fields (length includes the 4-byte header) that end exactly at the
/// record length, with 0x0E/0x0F/0x11 = serial/manufacturer/product name.
#[test]
fn hash_layout_of_samples() {
    for (name, serial) in [
        ("01-utf16-plain-hp.csv", "5CG1457YL8"),
        ("03-utf16-plain-lenovo.csv", "PC0NVWSH"),
        ("04-utf16-plain-lenovo2.csv", "PF5MT6SC"),
    ] {
        let r = check(name);
        let bytes = STANDARD.decode(&r.files[0].rows[0].hash).unwrap();
        assert_eq!(&bytes[..2], b"OA");
        let declared = u16::from_le_bytes([bytes[2], bytes[3]]) as usize;
        let mut off = 4;
        let mut kinds = Vec::new();
        while off < declared {
            let kind = u16::from_le_bytes([bytes[off], bytes[off + 1]]);
            let len = u16::from_le_bytes([bytes[off + 2], bytes[off + 3]]) as usize;
            assert!(len >= 4, "{name}: field at {off}");
            if kind == 0x0E {
                assert_eq!(
                    &bytes[off + 4..off + len],
                    [serial.as_bytes(), b"\0"].concat()
                );
            }
            kinds.push(kind);
            off += len;
        }
        assert_eq!(
            off, declared,
            "{name}: fields end exactly at the record length"
        );
        for k in [0x0E, 0x0F, 0x11] {
            assert!(kinds.contains(&k), "{name}: field {k:#x}");
        }
        let info = hwid::hash::inspect(&bytes).unwrap();
        assert!(!info.truncated && !info.malformed);
    }
}

// ---------------------------------------------------------------- encodings

#[test]
fn encodings_are_detected_and_decoded() {
    let cases = [
        (
            "utf16be-bom.csv",
            TextEncoding::Utf16BeBom,
            "5CG1457YL8",
            "",
        ),
        ("utf16le-nobom.csv", TextEncoding::Utf16Le, "PC0NVWSH", ""),
        ("utf8-bom.csv", TextEncoding::Utf8Bom, "5CG1457YL8", "Sales"),
        (
            "utf8-nobom.csv",
            TextEncoding::Utf8,
            "PC0NVWSH",
            "Café-Paris",
        ),
        (
            "ansi-1252.csv",
            TextEncoding::Windows1252,
            "PF5MT6SC",
            "Équipe-Nord",
        ),
    ];
    for (name, enc, serial, tag) in cases {
        let r = check(name);
        let f = only_file(&r);
        assert_eq!(f.encoding, enc, "{name}");
        assert_eq!(f.format, FileFormat::HardwareHash);
        assert!(f.findings.is_empty(), "{name}: {:#?}", f.findings);
        assert_eq!(f.rows.len(), 1, "{name}: trailing blank lines are not rows");
        assert_eq!(f.rows[0].serial, serial);
        assert_eq!(f.rows[0].group_tag, tag);
        assert_eq!(f.rows[0].status, RowStatus::Ok, "{name}");
    }
    let r = check("utf8-bom.csv");
    assert_eq!(r.files[0].rows[0].assigned_user, "anna@contoso.com");
}

#[test]
fn excel_quoted_and_semicolon_files_are_read_with_warnings() {
    let r = check("excel-quoted.csv");
    let f = only_file(&r);
    assert_eq!(f.encoding, TextEncoding::Utf8Bom);
    assert_file_finding(f, "excel-quotes", Severity::Warning, Some(1), None);
    assert_eq!(f.rows[0].serial, "5CG1457YL8");
    assert_eq!(f.rows[0].status, RowStatus::Ok);
    assert_eq!(r.exit_code(), 0);

    let r = check("excel-semicolon.csv");
    let f = only_file(&r);
    assert_eq!(f.encoding, TextEncoding::Ascii);
    assert_file_finding(f, "excel-semicolon", Severity::Warning, Some(1), None);
    assert_eq!(f.rows[0].serial, "PC0NVWSH");
    assert_eq!(f.rows[0].group_tag, "Lager");
    assert_eq!(f.rows[0].manufacturer.as_deref(), Some("LENOVO"));
    assert_eq!(r.exit_code(), 0);
}

// ---------------------------------------------------------------- header rules

#[test]
fn header_close_but_wrong_is_explained() {
    let r = check("header-case.csv");
    let f = only_file(&r);
    assert_file_finding(
        f,
        "header-case",
        Severity::Warning,
        Some(1),
        Some(COL_SERIAL),
    );
    assert!(f.findings[0].message.contains("Device serial number"));
    assert_eq!(f.rows[0].status, RowStatus::Ok);

    let r = check("header-spaces.csv");
    let f = only_file(&r);
    let spaces: Vec<_> = f
        .findings
        .iter()
        .filter(|x| x.code == "header-spaces")
        .map(|x| x.column.as_deref())
        .collect();
    assert_eq!(spaces, [Some(COL_PRODUCT_ID), Some(COL_HASH)]);
    assert!(!f.has_code("header-case"), "{:#?}", f.findings);
    assert_eq!(f.rows[0].serial, "5CG1457YL8");

    let r = check("header-order.csv");
    let f = only_file(&r);
    assert_file_finding(f, "header-order", Severity::Warning, Some(1), None);
    assert_eq!(
        f.rows[0].serial, "5CG1457YL8",
        "columns are matched by name"
    );
    assert_eq!(f.rows[0].manufacturer.as_deref(), Some("HP"));
    assert_eq!(r.exit_code(), 0);

    let r = check("header-extra-column.csv");
    let f = only_file(&r);
    assert_file_finding(f, "extra-column", Severity::Warning, Some(1), Some("Notes"));
    assert_eq!(f.rows[0].status, RowStatus::Ok);

    let r = check("header-missing-hash.csv");
    let f = only_file(&r);
    assert_file_finding(
        f,
        "missing-column",
        Severity::Error,
        Some(1),
        Some(COL_HASH),
    );
    assert!(f.rows.is_empty());
    assert_eq!(r.exit_code(), 2);

    let r = check("header-only.csv");
    assert_file_finding(only_file(&r), "no-rows", Severity::Error, Some(1), None);
    assert_eq!(r.exit_code(), 2);

    let r = check("headerless.csv");
    let f = only_file(&r);
    assert_file_finding(f, "missing-header", Severity::Warning, Some(1), None);
    assert_eq!(f.rows[0].line, 1);
    assert_eq!(f.rows[0].serial, "5CG1457YL8");
    assert_eq!(r.exit_code(), 0);
}

#[test]
fn missing_product_id_column_and_tab_separator() {
    let hash = synthetic_hash("TAB00001", "Contoso", "Desk");
    let text = format!("Device Serial Number\tHardware Hash\nTAB00001\t{hash}\n");
    let r = check_bytes("tab.csv", text.as_bytes(), &CheckOptions::default());
    let f = only_file(&r);
    assert_file_finding(f, "tab-separator", Severity::Warning, Some(1), None);
    assert_file_finding(
        f,
        "missing-optional-column",
        Severity::Warning,
        Some(1),
        Some(COL_PRODUCT_ID),
    );
    assert_eq!(f.rows[0].manufacturer.as_deref(), Some("Contoso"));
    assert_eq!(f.rows[0].status, RowStatus::Ok);
}

// ---------------------------------------------------------------- hashes

#[test]
fn unpadded_hash_is_fixed_and_decodes() {
    let r = check("unpadded-hash.csv");
    let x = row(&r, 2);
    assert_eq!(x.status, RowStatus::Fixed);
    assert_row_finding(x, "unpadded-hash", Severity::Fixed, Some(COL_HASH));
    assert_eq!(x.hash.len(), 4000);
    assert!(x.hash.ends_with("=="));
    let bytes = STANDARD
        .decode(&x.hash)
        .expect("the fixed value is strict padded Base64");
    assert_eq!(&bytes[..2], b"OA");
    assert_eq!(x.manufacturer.as_deref(), Some("HP"));
    assert!(x.hash_fixed());
    let (file, ready) = r.ready_rows_by_file().next().unwrap();
    assert_eq!(ready.hash, x.hash);
    assert!(file.path.ends_with("unpadded-hash.csv"));
    assert_eq!(r.exit_code(), 0);

    let n = hwid::normalize_hash(&format!("{}===", &x.hash[..3998])).unwrap();
    assert_eq!(n.value, x.hash);
    assert_eq!(n.fix.unwrap().0, "wrong-hash-padding");
}

#[test]
fn truncated_and_garbage_hashes() {
    let r = check("garbage-hash.csv");
    assert_row_finding(row(&r, 2), "invalid-hash", Severity::Error, Some(COL_HASH));
    assert_row_finding(
        row(&r, 3),
        "hash-too-short",
        Severity::Error,
        Some(COL_HASH),
    );
    assert_row_finding(row(&r, 4), "invalid-hash", Severity::Error, Some(COL_HASH));
    let cut = row(&r, 5);
    assert_eq!(codes(cut), ["hash-truncated"]);
    assert_eq!(cut.status, RowStatus::Warning);
    assert_eq!(cut.manufacturer.as_deref(), Some("HP"));
    assert_eq!(r.summary.error, 3);
    assert_eq!(r.exit_code(), 1);
    assert_eq!(r.ready_rows().map(|x| x.line).collect::<Vec<_>>(), [5]);
}

#[test]
fn inside_the_hash() {
    let r = check("hash-inside.csv");
    let vm = row(&r, 2);
    assert_eq!(codes(vm), ["virtual-machine"]);
    assert_row_finding(vm, "virtual-machine", Severity::Warning, Some(COL_HASH));
    assert_eq!(vm.model.as_deref(), Some("Virtual Machine"));

    assert_eq!(codes(row(&r, 3)), ["hash-no-serial"]);
    assert_eq!(codes(row(&r, 4)), ["hash-no-manufacturer"]);
    let edited = row(&r, 5);
    assert_row_finding(
        edited,
        "hash-serial-mismatch",
        Severity::Warning,
        Some(COL_SERIAL),
    );
    assert_eq!(edited.hash_serial.as_deref(), Some("5CG1457YL8"));
    let vmware = row(&r, 6);
    assert_eq!(
        vmware.serial,
        "VMware-56 4d 8d 12 34 56 78 9a-bc de f0 12 34 56 78 9a"
    );
    assert_eq!(codes(vmware), ["virtual-machine"]);
    assert_row_finding(row(&r, 7), "hash-not-oa", Severity::Warning, Some(COL_HASH));
    // The look inside never refuses a row on its own.
    assert_eq!(r.summary.error, 0);
    assert_eq!(r.exit_code(), 0);
}

#[test]
fn generic_serials_are_errors() {
    let r = check("generic-serials.csv");
    let f = only_file(&r);
    assert_eq!(f.rows.len(), 6);
    for x in &f.rows {
        assert_row_finding(x, "generic-serial", Severity::Error, Some(COL_SERIAL));
        assert_row_finding(x, "hash-generic-serial", Severity::Warning, Some(COL_HASH));
    }
    assert_eq!(f.rows[0].serial, "To be filled by O.E.M.");
    assert_eq!(f.rows[5].serial, "123456789");
    assert_eq!(r.exit_code(), 1);
}

// ---------------------------------------------------------------- values

#[test]
fn product_key_group_tag_and_user() {
    let opts = CheckOptions::default().with_verified_domains(&["contoso.com".to_owned()]);
    let r = check_files(&[fixture("bad-values.csv")], &opts);
    assert_row_finding(
        row(&r, 2),
        "invalid-product-key",
        Severity::Error,
        Some(COL_PRODUCT_ID),
    );
    assert_row_finding(
        row(&r, 3),
        "group-tag-characters",
        Severity::Warning,
        Some(COL_GROUP_TAG),
    );
    assert_eq!(row(&r, 3).group_tag, "Sales\"EU");
    assert_row_finding(row(&r, 4), "invalid-upn", Severity::Error, Some(COL_USER));
    assert_row_finding(
        row(&r, 5),
        "unverified-domain",
        Severity::Error,
        Some(COL_USER),
    );
    assert_row_finding(
        row(&r, 6),
        "excel-mangled-serial",
        Severity::Error,
        Some(COL_SERIAL),
    );
    assert_row_finding(row(&r, 7), "too-many-fields", Severity::Error, None);
    let good = row(&r, 8);
    assert_eq!(good.status, RowStatus::Ok, "{:#?}", good.findings);
    assert_eq!(good.product_key, "NBQ8V-9PTCJ-MXFQ8-BQR8K-TBWKB");
    let trimmed = row(&r, 9);
    assert_eq!(codes(trimmed), ["group-tag-whitespace"]);
    assert_eq!(trimmed.group_tag, "Sales");
    assert_eq!(trimmed.status, RowStatus::Fixed);
    assert_row_finding(
        row(&r, 10),
        "empty-serial",
        Severity::Error,
        Some(COL_SERIAL),
    );
    assert_file_finding(
        only_file(&r),
        "excel-quotes",
        Severity::Warning,
        Some(3),
        None,
    );

    // Without verified domains only the shape of the UPN is checked.
    let r = check("bad-values.csv");
    assert_eq!(row(&r, 5).status, RowStatus::Ok);
}

// ---------------------------------------------------------------- duplicates

#[test]
fn duplicates_within_and_across_files() {
    let a = fixture("duplicates-a.csv");
    let b = fixture("duplicates-b.csv");
    let r = check_files(&[a.clone(), b], &CheckOptions::default());
    let fa = &r.files[0];
    let fb = &r.files[1];
    assert_eq!(fa.rows[0].status, RowStatus::Ok);
    assert_eq!(codes(&fa.rows[1]), ["duplicate-hash"]);
    assert!(fa.rows[1].findings[0].message.contains("line 2"));
    assert_eq!(fa.rows[1].findings[0].line, Some(3));
    assert_eq!(fa.rows[2].status, RowStatus::Ok);
    // duplicates-b.csv line 2: same device as duplicates-a.csv line 4.
    assert_eq!(codes(&fb.rows[0]), ["duplicate-hash"]);
    assert!(
        fb.rows[0].findings[0]
            .message
            .contains(&format!("{} line 4", a.display()))
    );
    // Line 3: same serial, different (re-padded) hash.
    assert_row_finding(
        &fb.rows[1],
        "duplicate-serial",
        Severity::Error,
        Some(COL_SERIAL),
    );
    assert!(fb.rows[1].has_code("unpadded-hash"));
    assert_eq!(r.ready_rows().count(), 2);
    assert_eq!(r.exit_code(), 1);

    // Each file alone has no cross-file duplicate.
    let alone = check("duplicates-b.csv");
    assert_eq!(alone.summary.error, 0);
    // In-memory sources behave the same.
    let r2 = check_sources(
        &[
            ("a.csv", &read("duplicates-a.csv")),
            ("b.csv", &read("duplicates-b.csv")),
        ],
        &CheckOptions::default(),
    );
    assert_eq!(r2.summary, r.summary);
}

// ---------------------------------------------------------------- other files

#[test]
fn other_files_users_pick_are_recognised() {
    let r = check("partner.csv");
    let f = only_file(&r);
    assert_eq!(f.format, FileFormat::Partner);
    assert_file_finding(f, "partner-format", Severity::Warning, Some(1), None);
    assert!(!f.has_code("extra-column"));
    assert_eq!(f.rows[0].status, RowStatus::Ok);
    assert_eq!(r.exit_code(), 0);

    let cases = [
        (
            "v2-identifier.csv",
            FileFormat::V2Identifier,
            "wrong-format-v2-identifier",
            Some(1),
        ),
        (
            "intune-export.csv",
            FileFormat::IntuneExport,
            "wrong-format-export",
            Some(1),
        ),
        (
            "not-csv.txt",
            FileFormat::Unknown,
            "not-hardware-hash-csv",
            Some(1),
        ),
        ("empty.csv", FileFormat::Empty, "empty-file", None),
        ("bom-only.csv", FileFormat::Empty, "empty-file", None),
        ("binary.bin", FileFormat::Binary, "not-csv", None),
        (
            "workbook.xlsx",
            FileFormat::ExcelWorkbook,
            "excel-workbook",
            None,
        ),
        ("nul-bytes.csv", FileFormat::Unknown, "nul-bytes", Some(2)),
    ];
    for (name, format, code, line) in cases {
        let r = check(name);
        let f = only_file(&r);
        assert_eq!(f.format, format, "{name}");
        assert_file_finding(f, code, Severity::Error, line, None);
        assert!(f.rows.is_empty(), "{name}");
        assert_eq!(r.exit_code(), 2, "{name}");
        assert_eq!(r.ready_rows().count(), 0);
    }

    let r = check("trailing-nul.csv");
    let f = only_file(&r);
    assert_file_finding(f, "trailing-nul-bytes", Severity::Fixed, None, None);
    assert_eq!(f.rows[0].status, RowStatus::Ok);
    assert_eq!(r.exit_code(), 0);
}

#[test]
fn huge_lines_do_not_break_anything() {
    // A 3 MB first line: not a header.
    let line = "x".repeat(3 << 20);
    let r = check_bytes("long.csv", line.as_bytes(), &CheckOptions::default());
    assert_file_finding(
        only_file(&r),
        "not-hardware-hash-csv",
        Severity::Error,
        Some(1),
        None,
    );
    assert!(r.files[0].findings[0].message.chars().count() < 600);

    // A 2 MB "hash" in a well-formed file.
    let text = format!(
        "Device Serial Number,Windows Product ID,Hardware Hash\r\nBIG00001,,{}\r\n",
        "QUFB".repeat(1 << 19)
    );
    let r = check_bytes(
        "big-hash.csv",
        &utf16le_bom(&text),
        &CheckOptions::default(),
    );
    assert_row_finding(row(&r, 2), "hash-too-long", Severity::Error, Some(COL_HASH));
}

#[test]
fn more_than_500_rows_is_a_warning() {
    let mut text = String::from("Device Serial Number,Windows Product ID,Hardware Hash\r\n");
    for i in 0..501 {
        let serial = format!("SER{i:05}");
        text += &format!(
            "{serial},,{}\r\n",
            synthetic_hash(&serial, "Contoso", "Desk 1")
        );
    }
    let r = check_bytes("many.csv", &utf16le_bom(&text), &CheckOptions::default());
    let f = only_file(&r);
    assert_file_finding(f, "too-many-rows", Severity::Warning, None, None);
    assert_eq!(r.summary.rows, 501);
    assert_eq!(r.summary.ok, 501);
    assert_eq!(f.rows[500].line, 502);
    assert_eq!(r.exit_code(), 0);
}

#[test]
fn oversized_and_missing_files_are_refused_without_reading() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.csv");
    let file = std::fs::File::create(&big).unwrap();
    // Sparse: costs no disk and would cost 21 MB of RAM if it were read.
    file.set_len(21 * 1024 * 1024).unwrap();
    let missing = dir.path().join("missing.csv");
    let r = check_files(&[big, missing], &CheckOptions::default());
    assert_file_finding(&r.files[0], "file-too-large", Severity::Error, None, None);
    assert_file_finding(&r.files[1], "unreadable", Severity::Error, None, None);
    assert_eq!(r.summary.file_errors, 2);
    assert_eq!(r.exit_code(), 2);

    let opts = CheckOptions {
        max_file_bytes: 100,
        ..CheckOptions::default()
    };
    let r = check_bytes("x.csv", &read("01-utf16-plain-hp.csv"), &opts);
    assert_file_finding(only_file(&r), "file-too-large", Severity::Error, None, None);
}

// ---------------------------------------------------------------- check-csv

fn run(paths: &[PathBuf], json: bool) -> (i32, String) {
    let mut out = Vec::new();
    let code = run_check_csv(paths, json, &mut out);
    (code, String::from_utf8(out).unwrap())
}

#[test]
fn check_csv_exit_codes_and_human_output() {
    let (code, text) = run(
        &[fixture("01-utf16-plain-hp.csv"), fixture("utf8-nobom.csv")],
        false,
    );
    assert_eq!(code, 0, "{text}");
    // The maker once (issue 18: not "HP HP EliteBook").
    assert!(text.contains("line 2: 5CG1457YL8 (HP EliteBook 840 G8 Notebook PC): ok"));
    assert!(text.contains("Ready to import."));

    let (code, text) = run(
        &[
            fixture("03-utf16-plain-lenovo.csv"),
            fixture("hash-inside.csv"),
        ],
        false,
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("read the warnings"));
    let place = format!(
        "{}:2 [Hardware Hash]: warning virtual-machine",
        fixture("hash-inside.csv").display()
    );
    assert!(text.contains(&place), "{text}");

    let (code, text) = run(&[fixture("garbage-hash.csv")], false);
    assert_eq!(code, 1);
    let place = format!(
        "{}:2 [Hardware Hash]: error invalid-hash",
        fixture("garbage-hash.csv").display()
    );
    assert!(text.contains(&place), "{text}");

    let (code, _) = run(
        &[
            fixture("01-utf16-plain-hp.csv"),
            fixture("v2-identifier.csv"),
        ],
        false,
    );
    assert_eq!(code, 2);
    let (code, text) = run(&[], false);
    assert_eq!(code, 2);
    assert!(text.contains("No file given"));
}

#[test]
fn check_csv_json_is_the_stable_interface() {
    let paths = [
        fixture("04-utf16-plain-lenovo2.csv"),
        fixture("garbage-hash.csv"),
        fixture("intune-export.csv"),
    ];
    let (code, text) = run(&paths, true);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&v), ["files", "summary"]);
    assert_eq!(
        keys(&v["summary"]),
        ["error", "fixed", "ok", "rows", "warning"]
    );
    assert_eq!(v["summary"]["rows"], 5);
    assert_eq!(v["summary"]["ok"], 1);
    assert_eq!(v["summary"]["warning"], 1);
    assert_eq!(v["summary"]["error"], 3);
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    for f in files {
        for k in ["path", "encoding", "format", "rows"] {
            assert!(f.get(k).is_some(), "{k}");
        }
    }
    assert_eq!(files[0]["encoding"], "utf-16le-bom");
    assert_eq!(files[0]["format"], "hardware-hash");
    assert_eq!(files[2]["format"], "intune-export");
    assert_eq!(files[2]["findings"][0]["code"], "wrong-format-export");
    let r = &files[0]["rows"][0];
    assert_eq!(
        keys(r),
        [
            "findings",
            "group_tag",
            "line",
            "manufacturer",
            "model",
            "serial",
            "status"
        ]
    );
    assert_eq!(r["line"], 2);
    assert_eq!(r["serial"], "PF5MT6SC");
    assert_eq!(r["manufacturer"], "LENOVO");
    assert_eq!(r["model"], "21R3001BUK");
    assert_eq!(r["status"], "ok");
    let bad = &files[1]["rows"][0];
    assert_eq!(bad["status"], "error");
    let finding = &bad["findings"][0];
    assert_eq!(keys(finding), ["code", "column", "message", "severity"]);
    assert_eq!(finding["severity"], "error");
    assert_eq!(finding["code"], "invalid-hash");
    assert_eq!(finding["column"], "Hardware Hash");
    // The hash itself is never printed.
    assert!(!text.contains(HP_HASH_PREFIX));
    assert!(!text.contains("T0GXBAEAHAAAAAoAGR70ZQ"));
}

// ---------------------------------------------------------------- never panic

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn check_bytes_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let r = check_bytes("fuzz.csv", &bytes, &CheckOptions::default());
        prop_assert_eq!(r.files.len(), 1);
        prop_assert!((0..=2).contains(&r.exit_code()));
    }

    #[test]
    fn check_bytes_never_panics_on_mutated_samples(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..24),
    ) {
        let name = ["01-utf16-plain-hp.csv", "03-utf16-plain-lenovo.csv", "04-utf16-plain-lenovo2.csv"][which];
        let mut bytes = read(name);
        for (at, byte, op) in edits {
            if bytes.is_empty() {
                bytes.push(byte);
                continue;
            }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
        }
        let r = check_bytes(name, &bytes, &CheckOptions::default());
        for f in &r.files {
            for x in &f.rows {
                prop_assert_eq!(x.status == RowStatus::Error, x.findings.iter().any(|f| f.severity == Severity::Error));
            }
        }
    }

    #[test]
    fn hash_inspection_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..1024), oa in any::<bool>()) {
        if oa && bytes.len() >= 2 {
            bytes[0] = b'O';
            bytes[1] = b'A';
        }
        let _ = hwid::hash::inspect(&bytes);
        let _ = hwid::normalize_hash(&String::from_utf8_lossy(&bytes));
    }
}

// ---------------------------------------------------------------- hostile input, whole corpus

/// Every file of the corpus (encodings, Excel and Intune exports, broken headers, binaries)
/// plus a `sim csv` file with a group tag, as mutation seeds.
fn corpus() -> &'static Vec<(String, Vec<u8>)> {
    static CORPUS: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(|| {
        let dir = fixture("");
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .expect("fixtures")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x != "py"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                (name, std::fs::read(&p).unwrap())
            })
            .collect();
        out.sort();
        out.push((
            "sim.csv".into(),
            autopilot_wizard::sim::standalone::sample_csv(6, Some("Branch, \"7\""), 3),
        ));
        out
    })
}

/// Edits that keep a file CSV-shaped enough to get past the header: whole lines duplicated,
/// dropped or cut, delimiters, quotes, NULs and CR/LF inserted, code units swapped. Applied to
/// the text in its own encoding (UTF-16 files stay UTF-16).
fn mutate_structured(bytes: &[u8], edits: &[(prop::sample::Index, u8)]) -> Vec<u8> {
    let utf16 = bytes.starts_with(&[0xFF, 0xFE]);
    let unit = if utf16 { 2 } else { 1 };
    let enc = |s: &str| -> Vec<u8> {
        if utf16 {
            s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
        } else {
            s.as_bytes().to_vec()
        }
    };
    let mut out = bytes.to_vec();
    for (at, op) in edits {
        let n = out.len() / unit;
        if n == 0 {
            out.extend(enc("a,b\r\n"));
            continue;
        }
        // Edit on code-unit boundaries, never inside the BOM.
        let start = if utf16 { 1 } else { 0 };
        let i = (start + at.index(n.saturating_sub(start).max(1))) * unit;
        let i = i.min(out.len());
        match op % 8 {
            0 => {
                let ins = enc(",");
                out.splice(i..i, ins);
            }
            1 => {
                let ins = enc("\"");
                out.splice(i..i, ins);
            }
            2 => {
                let ins = enc("\r\n");
                out.splice(i..i, ins);
            }
            3 => {
                let ins = vec![0u8; unit];
                out.splice(i..i, ins);
            }
            4 => out.truncate(i),
            5 => {
                // Duplicate the rest of the file from here (rows seen twice).
                let tail = out[i..].to_vec();
                out.extend(tail);
            }
            6 => {
                let ins = enc(";");
                out.splice(i..i, ins);
            }
            _ => {
                if i + 2 * unit <= out.len() {
                    let (a, b) = out[i..i + 2 * unit].split_at_mut(unit);
                    a.swap_with_slice(b);
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    /// No panic on any corpus file after structured edits, rows stay consistent, and the
    /// report stays proportional to the input (no blow-up from quoting or repeated findings).
    #[test]
    fn check_bytes_survives_structured_mutations_of_the_whole_corpus(
        which in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
    ) {
        let files = corpus();
        let (name, bytes) = &files[which.index(files.len())];
        let mutated = mutate_structured(bytes, &edits);
        let r = check_bytes(name, &mutated, &CheckOptions::default());
        prop_assert_eq!(r.files.len(), 1);
        prop_assert!((0..=2).contains(&r.exit_code()));
        for f in &r.files {
            for x in &f.rows {
                prop_assert_eq!(
                    x.status == RowStatus::Error,
                    x.findings.iter().any(|f| f.severity == Severity::Error)
                );
            }
        }
        let report_size = serde_json::to_vec(&r).unwrap().len();
        prop_assert!(
            report_size <= 64 * mutated.len() + 64 * 1024,
            "{} bytes of report for {} bytes of input", report_size, mutated.len()
        );
    }
}

/// One row with a field of several MiB (a hash pasted a thousand times): read and refused
/// with a finding; the report keeps the row's values once (no copy per finding).
#[test]
fn a_huge_field_is_refused_and_the_report_stays_proportional() {
    let mut text = String::from("Device Serial Number,Windows Product ID,Hardware Hash\r\n");
    text.push_str("HUGE-1,,");
    text.push_str(&"QUJD".repeat(1_000_000));
    text.push_str("\r\n");
    let r = check_bytes("huge.csv", text.as_bytes(), &CheckOptions::default());
    assert_ne!(r.exit_code(), 0, "refused");
    let size = serde_json::to_vec(&r).unwrap().len();
    assert!(
        size < text.len() + 64 * 1024,
        "{size} bytes of report for {} bytes of input",
        text.len()
    );
}
