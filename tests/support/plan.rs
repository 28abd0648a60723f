//! Shared by the `run --plan` tests (`support::plan`): CSVs of N generated devices the simulated tenant accepts,
//! plan files pointing at a simulated tenant, and the request-log checks.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use autopilot_wizard::sim::SimHandle;
use autopilot_wizard::sim::autopilot::build_hardware_hash;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The deploying group every seeded demo tenant has, covered by its join and MDM policies.
pub const DEPLOYERS: &str = "IT Technicians";

/// A hardware-hash CSV of `count` devices (serials `{prefix}00000`…), UTF-16 LE with BOM as
/// Get-WindowsAutopilotInfo writes it, with a Group Tag column. Returns the serials.
pub fn write_csv(path: &Path, prefix: &str, count: usize, tag: &str) -> Vec<String> {
    let mut text =
        String::from("Device Serial Number,Windows Product ID,Hardware Hash,Group Tag\r\n");
    let mut serials = Vec::new();
    for i in 0..count {
        let serial = format!("{prefix}{i:05}");
        let hash = STANDARD.encode(build_hardware_hash(&serial, "Contoso", "Desk 5", i as u64));
        text.push_str(&format!("{serial},,{hash},{tag}\r\n"));
        serials.push(serial);
    }
    let mut bytes = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        bytes.extend_from_slice(&u.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
    serials
}

/// A plan for the simulated tenant at `url`: a dynamic group by group tag `tag`, a new profile,
/// the CSV `csv`, reports next to the plan. Written to `dir/{name}.toml`.
pub fn write_plan(dir: &Path, name: &str, url: &str, csv: &Path, tag: &str) -> PathBuf {
    let text = format!(
        r#"[tenant]
id = "fabrikamdemo.onmicrosoft.com"
graph_url = "{url}"
login_url = "{url}"

[deployers]
groups = ["{DEPLOYERS}"]

[profile]
name = "Plan {name} - user-driven"
create = true

[group]
name = "Autopilot - {name}"
membership = "group-tag"
group_tags = ["{tag}"]

[devices]
csv = ["{csv}"]
assignment_wait = "10m"

[report]
html = "{name}-report.html"
json = "{name}-report.json"
text = "{name}-report.txt"
"#,
        csv = csv.display()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// How many times the tenant accepted each serial in an import POST.
pub fn uploads_per_serial(sim: &SimHandle) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    sim.with_state(|s| {
        for serial in &s.autopilot.serials_received {
            *m.entry(serial.clone()).or_insert(0) += 1;
        }
    });
    m
}

/// Every serial uploaded exactly once.
pub fn assert_each_uploaded_once(sim: &SimHandle, serials: &[String]) {
    let uploads = uploads_per_serial(sim);
    let twice: Vec<_> = uploads.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "uploaded more than once: {twice:?}");
    let missing: Vec<_> = serials
        .iter()
        .filter(|s| !uploads.contains_key(*s))
        .collect();
    assert!(missing.is_empty(), "never uploaded: {missing:?}");
}

/// Successful creates of profiles and groups (POSTs answered 201), by path.
pub fn creates(sim: &SimHandle) -> (usize, usize) {
    let reqs = sim.requests();
    let created = |suffix: &str| {
        reqs.iter()
            .filter(|r| {
                r.method == http::Method::POST && r.status == 201 && r.path.ends_with(suffix)
            })
            .count()
    };
    (
        created("/deviceManagement/windowsAutopilotDeploymentProfiles"),
        created("/groups"),
    )
}
