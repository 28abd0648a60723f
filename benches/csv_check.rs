//! Throughput of the CSV check on real-format files (UTF-16 LE with BOM, CRLF, a real 4,000-char
//! hash per row, distinct serials), against a bare `csv` crate read of the same decoded text and
//! of the same UTF-16 bytes (decoding included). The check also decodes every hash's Base64 and
//! looks inside it, which a bare read does not.
//!
//! `cargo bench --bench csv_check -- --quick` runs in well under a minute.

use std::hint::black_box;
use std::time::Duration;

use autopilot_wizard::hwid::{CheckOptions, check_bytes};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SAMPLE: &[u8] = include_bytes!("../tests/fixtures/csv/01-utf16-plain-hp.csv");

/// Header + `rows` rows made from the sample: the real hash with the serial recorded inside it
/// replaced (same length) so serials and hashes are distinct and consistent, as on real devices.
fn text_with_rows(rows: usize) -> String {
    let sample = encoding_rs::UTF_16LE
        .decode_with_bom_removal(SAMPLE)
        .0
        .into_owned();
    let mut lines = sample.lines();
    let header = lines.next().expect("header");
    let row = lines.next().expect("row");
    let mut fields = row.split(',');
    let (serial, _, hash) = (
        fields.next().expect("serial"),
        fields.next().expect("product id"),
        fields.next().expect("hash"),
    );
    let bytes = STANDARD.decode(hash).expect("sample hash");
    let at = bytes
        .windows(serial.len())
        .position(|w| w == serial.as_bytes())
        .expect("serial inside the hash");
    let mut text = String::with_capacity((rows + 1) * (row.len() + 2));
    text.push_str(header);
    text.push_str("\r\n");
    let mut patched = bytes.clone();
    for i in 0..rows {
        let new_serial = format!("BN{i:08}");
        patched[at..at + serial.len()].copy_from_slice(new_serial.as_bytes());
        text.push_str(&format!("{new_serial},,{}\r\n", STANDARD.encode(&patched)));
    }
    text
}

fn utf16le_bom(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + text.len() * 2);
    out.extend_from_slice(&[0xFF, 0xFE]);
    for u in text.encode_utf16() {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out
}

fn plain_csv_read(text: &str) -> usize {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let mut fields = 0;
    for rec in reader.records() {
        fields += rec.map(|r| r.len()).unwrap_or(0);
    }
    fields
}

/// The floor for `check_bytes`: the same UTF-16 bytes decoded to text, then read by `csv`.
fn plain_csv_read_utf16(bytes: &[u8]) -> usize {
    let (text, _) = encoding_rs::UTF_16LE.decode_with_bom_removal(bytes);
    plain_csv_read(&text)
}

fn bench(c: &mut Criterion) {
    // 50,000 rows is ~400 MB of UTF-16, far above the 20 MB cap meant for user files.
    let opts = CheckOptions {
        max_file_bytes: u64::MAX,
        ..CheckOptions::default()
    };
    for (rows, samples) in [(500usize, 20usize), (50_000, 10)] {
        let text = text_with_rows(rows);
        let bytes = utf16le_bom(&text);
        if rows <= 1000 {
            // The generator is the same for both sizes; checking the small one is enough.
            let check = check_bytes("bench.csv", &bytes, &opts);
            assert_eq!(check.summary.ok, rows, "every generated row must be clean");
        }

        let mut group = c.benchmark_group(format!("csv_check/{rows}_rows"));
        group.throughput(Throughput::Elements(rows as u64));
        group.sample_size(samples);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(if rows > 1000 { 10 } else { 3 }));
        group.bench_function("check_bytes_utf16", |b| {
            b.iter(|| {
                check_bytes("bench.csv", black_box(&bytes), &opts)
                    .summary
                    .rows
            })
        });
        group.bench_function("plain_csv_read_decoded", |b| {
            b.iter(|| plain_csv_read(black_box(&text)))
        });
        group.bench_function("plain_csv_read_utf16", |b| {
            b.iter(|| plain_csv_read_utf16(black_box(&bytes)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
