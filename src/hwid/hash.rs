//! A look inside the decoded hardware hash. Best effort: the layout is not documented by
//! Microsoft; it was verified on the real samples (see `tests/hwid.rs`, `hash_layout_of_samples`).
//!
//! Layout: the bytes start with `OA`, then a u16 LE giving the length of this `OA` record
//! (counted from byte 0). From byte 4 up to that length come fields: u16 LE type, u16 LE length
//! counting the 4-byte field header, then the value. SMBIOS strings are NUL-terminated ASCII:
//! 0x0E system serial number, 0x0F system manufacturer, 0x11 product name (the model). Other
//! records (zero padding, a signature block) follow the `OA` record.

use serde::{Deserialize, Serialize};

pub const FIELD_SERIAL: u16 = 0x0E;
pub const FIELD_MANUFACTURER: u16 = 0x0F;
pub const FIELD_PRODUCT_NAME: u16 = 0x11;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashInfo {
    /// The `OA` record's declared length is larger than the data: the hash was cut off.
    pub truncated: bool,
    /// A field header pointed outside the record; fields after it are unknown.
    pub malformed: bool,
    pub serial: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
}

/// `None` when the bytes do not start with `OA` (not a hardware hash as we know it).
pub fn inspect(bytes: &[u8]) -> Option<HashInfo> {
    if bytes.len() < 4 || &bytes[..2] != b"OA" {
        return None;
    }
    let declared = usize::from(u16::from_le_bytes([bytes[2], bytes[3]]));
    let mut info = HashInfo {
        truncated: declared > bytes.len(),
        ..HashInfo::default()
    };
    let end = declared.min(bytes.len());
    let mut off = 4usize;
    while off + 4 <= end {
        let kind = u16::from_le_bytes([bytes[off], bytes[off + 1]]);
        let len = usize::from(u16::from_le_bytes([bytes[off + 2], bytes[off + 3]]));
        if len < 4 || off + len > end {
            // A field running past the record is what truncation looks like from inside; only
            // call it malformed when the record itself claims to be complete.
            info.malformed = !info.truncated;
            break;
        }
        let value = &bytes[off + 4..off + len];
        match kind {
            FIELD_SERIAL => info.serial = smbios_string(value),
            FIELD_MANUFACTURER => info.manufacturer = smbios_string(value),
            FIELD_PRODUCT_NAME => info.model = smbios_string(value),
            _ => {}
        }
        off += len;
    }
    Some(info)
}

/// NUL-terminated ASCII; blank (or non-printable) values count as absent.
fn smbios_string(value: &[u8]) -> Option<String> {
    let raw = value.split(|&b| b == 0).next().unwrap_or_default();
    let s: String = raw
        .iter()
        .map(|&b| {
            if (0x20..0x7F).contains(&b) {
                b as char
            } else {
                '\u{FFFD}'
            }
        })
        .collect();
    let s = s.trim();
    if s.is_empty() || s.chars().all(|c| c == '\u{FFFD}') {
        None
    } else {
        Some(s.to_owned())
    }
}

/// Serial numbers BIOS vendors leave in place of a real one. They collide between devices.
pub fn is_generic_serial(serial: &str) -> bool {
    const GENERIC: &[&str] = &[
        "to be filled by o.e.m.",
        "to be filled by oem",
        "system serial number",
        "chassis serial number",
        "base board serial number",
        "default string",
        "default",
        "none",
        "null",
        "n/a",
        "na",
        "not applicable",
        "not specified",
        "not available",
        "invalid",
        "unknown",
        "o.e.m.",
        "oem",
        "serial",
        "sernum",
        "serialnumber",
        "123456789",
        "1234567890",
        "0123456789",
        "12345678",
        "0",
    ];
    let s = serial.trim().to_ascii_lowercase();
    if GENERIC.contains(&s.as_str()) {
        return true;
    }
    // "00000000", "FFFFFFFF", "XXXXXXXXXX", "          ": one repeated character.
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => s.len() >= 2 && chars.all(|c| c == first),
        None => false,
    }
}

/// Best-effort recognition of hypervisors from SMBIOS manufacturer/model (and the VMware serial
/// prefix). Returns the product name to show.
pub fn virtual_machine(
    manufacturer: Option<&str>,
    model: Option<&str>,
    serial: &str,
) -> Option<&'static str> {
    let m = manufacturer.unwrap_or_default().to_ascii_lowercase();
    let p = model.unwrap_or_default().to_ascii_lowercase();
    let s = serial.to_ascii_lowercase();
    if m.contains("microsoft") && p.contains("virtual machine") {
        Some("Hyper-V")
    } else if m.contains("vmware") || p.contains("vmware") || s.starts_with("vmware-") {
        Some("VMware")
    } else if m.contains("innotek") || p.contains("virtualbox") {
        Some("VirtualBox")
    } else if m.contains("qemu") || p.contains("qemu") || p.contains("kvm") {
        Some("QEMU/KVM")
    } else if m.contains("parallels") || p.contains("parallels") {
        Some("Parallels")
    } else if m.contains("xen") || p.contains("hvm domu") {
        Some("Xen")
    } else if m.contains("bochs") {
        Some("Bochs")
    } else if p.contains("virtual machine") {
        Some("a hypervisor")
    } else {
        None
    }
}
