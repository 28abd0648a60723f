//! Checks of one data row: serial, product key, hash (with automatic padding), group tag,
//! assigned user, and what the hash itself says about the device.

use base64::Engine;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::hash::{self, HashInfo};
use super::layout::ColumnMap;
use super::model::{
    COL_GROUP_TAG, COL_HASH, COL_PRODUCT_ID, COL_SERIAL, COL_USER, CheckOptions, Finding,
    RowReport, RowStatus, Severity,
};

/// Real hashes are 4,000 characters. Far shorter means cut off; far longer is not a hash.
pub const MIN_HASH_CHARS: usize = 1000;
pub const MAX_HASH_CHARS: usize = 16_384;

/// Like .NET's Convert.FromBase64String (what the service uses for Edm.Binary): unused bits in
/// the last character are tolerated.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// A hash that decodes, possibly after a repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedHash {
    /// Padded Base64, ready to upload.
    pub value: String,
    pub bytes: Vec<u8>,
    /// `(code, message)` of the repair made, if any.
    pub fix: Option<(&'static str, String)>,
}

/// Trims the hash and adds the `=` padding devices leave out. Errors are `(code, message)`.
pub fn normalize_hash(raw: &str) -> Result<NormalizedHash, (&'static str, String)> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err((
            "empty-hash",
            "The hardware hash is empty. Capture it again on the device with \
             Get-WindowsAutopilotInfo -OutputFile (run as administrator)."
                .into(),
        ));
    }
    // A well-formed hash is the common case, and the decoder checks every character itself:
    // the character-by-character checks only run to explain a failure.
    let body = trimmed.trim_end_matches('=');
    let fast = padding_for(body.len()).and_then(|pad| {
        let value = padded(body, pad);
        LENIENT.decode(&value).ok().map(|bytes| (value, bytes, pad))
    });
    let (value, bytes, expected_pad) = match fast {
        Some(ok) => ok,
        None => decode_checked(trimmed)?,
    };
    let had_pad = trimmed.len() - body.len();
    if value.len() < MIN_HASH_CHARS {
        return Err((
            "hash-too-short",
            format!(
                "The hardware hash has only {} characters; real hashes have about 4,000. It was \
                 cut off (by Excel, a copy-paste or an interrupted capture). Capture it again with \
                 Get-WindowsAutopilotInfo -OutputFile.",
                value.len()
            ),
        ));
    }
    if value.len() > MAX_HASH_CHARS {
        return Err((
            "hash-too-long",
            format!(
                "The hardware hash has {} characters; real hashes have about 4,000. This value is \
                 not a hardware hash (several values run together?). Capture it again with \
                 Get-WindowsAutopilotInfo -OutputFile.",
                value.len()
            ),
        ));
    }
    let fix = if had_pad == expected_pad {
        (trimmed.len() != raw.len()).then(|| {
            (
                "hash-whitespace",
                "Spaces around the hardware hash were removed.".to_owned(),
            )
        })
    } else if had_pad == 0 {
        Some((
            "unpadded-hash",
            format!(
                "The hardware hash was missing its Base64 padding, which the service rejects \
                 (\"Cannot convert the literal … to the expected type 'Edm.Binary'\", or \"import \
                 does nothing\" in the portal). The wizard added {expected_pad} '=' at the end, as \
                 Microsoft's troubleshooting guide says; nothing to do."
            ),
        ))
    } else {
        Some((
            "wrong-hash-padding",
            format!(
                "The hardware hash ended with {had_pad} '=' instead of {expected_pad}. The wizard \
                 corrected the padding; nothing to do."
            ),
        ))
    };
    Ok(NormalizedHash { value, bytes, fix })
}

/// The `=` a Base64 body of `len` characters needs; `None` when no padding can make it valid.
fn padding_for(len: usize) -> Option<usize> {
    match len % 4 {
        0 => Some(0),
        2 => Some(2),
        3 => Some(1),
        _ => None,
    }
}

fn padded(body: &str, pad: usize) -> String {
    let mut value = String::with_capacity(body.len() + pad);
    value.push_str(body);
    value.extend(std::iter::repeat_n('=', pad));
    value
}

/// The checks in the order users should hear about them: the first problem found is the error.
/// Returns the padded value, its bytes and the padding added.
fn decode_checked(trimmed: &str) -> Result<(String, Vec<u8>, usize), (&'static str, String)> {
    // Every allowed character is ASCII, so the first byte refused starts a character.
    if let Some(pos) = trimmed
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='))
    {
        let c = trimmed[pos..].chars().next().unwrap_or('\u{FFFD}');
        let what = if c.is_whitespace() {
            "a space or line break".to_owned()
        } else {
            format!("'{}'", c.escape_debug())
        };
        return Err((
            "invalid-hash",
            format!(
                "The hardware hash is not valid Base64: it contains {what} at character {}. It \
                 was damaged (edited, wrapped or converted). Capture it again with \
                 Get-WindowsAutopilotInfo -OutputFile.",
                trimmed[..pos].chars().count() + 1
            ),
        ));
    }
    let body = trimmed.trim_end_matches('=');
    if body.contains('=') {
        return Err((
            "invalid-hash",
            "The hardware hash has '=' in the middle (two values glued together?). Capture it \
             again with Get-WindowsAutopilotInfo -OutputFile."
                .into(),
        ));
    }
    let Some(expected_pad) = padding_for(body.len()) else {
        return Err((
            "invalid-hash",
            format!(
                "The hardware hash cannot be valid Base64: its {} characters are one too many \
                 or too few (it was cut off or edited). Capture it again with \
                 Get-WindowsAutopilotInfo -OutputFile.",
                body.len()
            ),
        ));
    };
    let value = padded(body, expected_pad);
    let bytes = LENIENT.decode(&value).map_err(|e| {
        (
            "invalid-hash",
            format!(
                "The hardware hash is not valid Base64 ({e}). Capture it again with \
                 Get-WindowsAutopilotInfo -OutputFile."
            ),
        )
    })?;
    Ok((value, bytes, expected_pad))
}

fn is_excel_scientific(s: &str) -> bool {
    // "1.23457E+11": what Excel shows (and saves) for a long all-digit serial.
    let Some((mantissa, exp)) = s.split_once(['E', 'e']) else {
        return false;
    };
    let exp = exp.strip_prefix('+').unwrap_or(exp);
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, "0"));
    !int.is_empty()
        && !exp.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && exp.bytes().all(|b| b.is_ascii_digit())
}

fn is_product_key(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The 13-digit Product Key ID (PKID) OEMs put in "Windows Product ID"; the same number is
/// recorded inside the hash.
fn is_pkid(s: &str) -> bool {
    s.len() == 13 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Shape of a user principal name: `name@domain.tld`. Returns the domain.
fn upn_domain(s: &str) -> Option<&str> {
    let (local, domain) = s.split_once('@')?;
    let bad_local = |c: char| c.is_whitespace() || c.is_control() || "@,;:<>()[]\\\"".contains(c);
    if local.is_empty() || local.len() > 64 || local.chars().any(bad_local) {
        return None;
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return None;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|t| t.chars().count() >= 2);
    ok.then_some(domain)
}

pub fn check_row(
    line: u64,
    rec: &csv::StringRecord,
    map: &ColumnMap,
    opts: &CheckOptions,
) -> RowReport {
    let field = |i: Option<usize>| i.and_then(|i| rec.get(i)).unwrap_or_default();
    let raw_serial = field(Some(map.serial));
    let raw_hash = field(Some(map.hash));
    let mut row = RowReport {
        line,
        serial: raw_serial.trim().to_owned(),
        product_key: field(map.product_id).trim().to_owned(),
        // Filled below: the padded value when the hash decodes, else what the file holds.
        hash: String::new(),
        group_tag: field(map.group_tag).trim().to_owned(),
        assigned_user: field(map.user).trim().to_owned(),
        manufacturer: None,
        model: None,
        hash_serial: None,
        status: RowStatus::Ok,
        findings: Vec::new(),
    };
    let at = |sev: Severity, code: &str, col: Option<&str>, msg: String| {
        Finding::new(sev, code, Some(line), col, msg)
    };

    if rec.len() > map.width {
        row.push(at(
            Severity::Error,
            "too-many-fields",
            None,
            format!(
                "This row has {} values but the header has {} columns: a value contains the \
                 separator (a comma in a group tag?) or the row was edited. Fix the row in \
                 Notepad so it has one value per column.",
                rec.len(),
                map.width
            ),
        ));
    }

    check_serial(&mut row, raw_serial, &at);
    check_product_key(&mut row, &at);
    check_group_tag(&mut row, field(map.group_tag), &at);
    check_user(&mut row, opts, &at);

    match normalize_hash(raw_hash) {
        Err((code, msg)) => {
            row.hash = raw_hash.trim().to_owned();
            row.push(at(Severity::Error, code, Some(COL_HASH), msg));
        }
        Ok(h) => {
            if let Some((code, msg)) = h.fix {
                row.push(at(Severity::Fixed, code, Some(COL_HASH), msg));
            }
            row.hash = h.value;
            inspect_hash(&mut row, &h.bytes, &at);
        }
    }
    row
}

type At<'a> = dyn Fn(Severity, &str, Option<&str>, String) -> Finding + 'a;

fn check_serial(row: &mut RowReport, raw: &str, at: &At<'_>) {
    let serial = row.serial.clone();
    if serial.is_empty() {
        row.push(at(
            Severity::Error,
            "empty-serial",
            Some(COL_SERIAL),
            "The serial number is empty. Fill it in from the device (Settings > System > About, \
             or `wmic bios get serialnumber`), or capture the file again."
                .into(),
        ));
        return;
    }
    if serial.len() != raw.len() {
        row.push(at(
            Severity::Fixed,
            "serial-whitespace",
            Some(COL_SERIAL),
            format!("Spaces around the serial number \"{serial}\" were removed."),
        ));
    }
    if serial.chars().any(|c| c.is_control() || c == '\u{FFFD}') {
        row.push(at(
            Severity::Error,
            "invalid-serial",
            Some(COL_SERIAL),
            format!(
                "The serial number \"{}\" contains unreadable characters (wrong encoding or a \
                 damaged file). Capture the file again.",
                serial.escape_debug()
            ),
        ));
    } else if is_excel_scientific(&serial) {
        row.push(at(
            Severity::Error,
            "excel-mangled-serial",
            Some(COL_SERIAL),
            format!(
                "The serial number \"{serial}\" is in scientific notation: Excel turned a long \
                 numeric serial into a number and lost digits. Capture the file again and do not \
                 open it in Excel."
            ),
        ));
    } else if hash::is_generic_serial(&serial) {
        row.push(at(
            Severity::Error,
            "generic-serial",
            Some(COL_SERIAL),
            format!(
                "\"{serial}\" is a stand-in value the BIOS vendor left instead of a real serial \
                 number; every such device would collide. Set a real serial in the firmware \
                 (the manufacturer's DMI/BIOS tool), then capture the hash again."
            ),
        ));
    }
}

fn check_product_key(row: &mut RowReport, at: &At<'_>) {
    let pk = row.product_key.clone();
    if pk.is_empty() || is_product_key(&pk) || is_pkid(&pk) {
        return;
    }
    row.push(at(
        Severity::Error,
        "invalid-product-key",
        Some(COL_PRODUCT_ID),
        format!(
            "\"{pk}\" is not a product key (five groups of five letters or digits, \
             XXXXX-XXXXX-XXXXX-XXXXX-XXXXX) nor a 13-digit product ID. The column is optional \
             when you import into Intune yourself: leave it empty."
        ),
    ));
}

fn check_group_tag(row: &mut RowReport, raw: &str, at: &At<'_>) {
    let tag = row.group_tag.clone();
    if tag.is_empty() {
        return;
    }
    if tag.len() != raw.len() {
        row.push(at(
            Severity::Fixed,
            "group-tag-whitespace",
            Some(COL_GROUP_TAG),
            format!(
                "Spaces around the group tag \"{tag}\" were removed: a dynamic group rule \
                 compares the tag exactly."
            ),
        ));
    }
    let bad: Vec<String> = tag
        .chars()
        .filter(|&c| matches!(c, '"' | '`' | ',' | ';') || c.is_control())
        .map(|c| {
            if c.is_control() {
                format!("'{}'", c.escape_debug())
            } else {
                format!("'{c}'")
            }
        })
        .collect();
    if !bad.is_empty() {
        row.push(at(
            Severity::Warning,
            "group-tag-characters",
            Some(COL_GROUP_TAG),
            format!(
                "The group tag \"{tag}\" contains {}. The tag ends up in dynamic group rules as \
                 (device.devicePhysicalIds -any (_ -eq \"[OrderID]:{tag}\")), where quotes and \
                 backticks must be escaped, and commas, semicolons and quotes are not allowed in \
                 the CSV. Prefer letters, digits, '-' and '_'.",
                bad.join(", ")
            ),
        ));
    }
}

fn check_user(row: &mut RowReport, opts: &CheckOptions, at: &At<'_>) {
    let upn = row.assigned_user.clone();
    if upn.is_empty() {
        return;
    }
    let Some(domain) = upn_domain(&upn) else {
        row.push(at(
            Severity::Error,
            "invalid-upn",
            Some(COL_USER),
            format!(
                "\"{upn}\" is not a user principal name (name@yourdomain.com). A wrong Assigned \
                 User can leave the device unusable until the assignment is removed: correct it \
                 or leave the column empty."
            ),
        ));
        return;
    };
    if !opts.verified_domains.is_empty()
        && !opts
            .verified_domains
            .iter()
            .any(|d| d.trim().eq_ignore_ascii_case(domain))
    {
        row.push(at(
            Severity::Error,
            "unverified-domain",
            Some(COL_USER),
            format!(
                "The domain of \"{upn}\" is not a verified domain of this tenant ({}). Intune \
                 rejects the assignment; use the user's sign-in name in one of those domains.",
                opts.verified_domains.join(", ")
            ),
        ));
    }
}

fn inspect_hash(row: &mut RowReport, bytes: &[u8], at: &At<'_>) {
    let Some(info) = hash::inspect(bytes) else {
        row.push(at(
            Severity::Warning,
            "hash-not-oa",
            Some(COL_HASH),
            "The hash decodes, but not to the layout Windows hardware hashes have (it should \
             start with \"OA\"). The import will probably fail with InvalidZtdHardwareHash; \
             capture it again with Get-WindowsAutopilotInfo -OutputFile."
                .into(),
        ));
        return;
    };
    let HashInfo {
        truncated,
        malformed,
        serial,
        manufacturer,
        model,
    } = info;
    let recapture = "capture the hash again with Get-WindowsAutopilotInfo -OutputFile";
    if truncated {
        row.push(at(
            Severity::Warning,
            "hash-truncated",
            Some(COL_HASH),
            format!(
                "The hash is shorter than its own header says: it was cut off. The import will \
                 probably fail with InvalidZtdHardwareHash; {recapture}."
            ),
        ));
    } else if malformed {
        row.push(at(
            Severity::Warning,
            "hash-malformed",
            Some(COL_HASH),
            format!(
                "The inside of the hash is inconsistent (damaged or edited). The import may fail \
                 with InvalidZtdHardwareHash; {recapture}."
            ),
        ));
    }
    match &serial {
        None if !truncated => row.push(at(
            Severity::Warning,
            "hash-no-serial",
            Some(COL_HASH),
            format!(
                "The hash records no serial number; the service rejects such hashes \
                 (InvalidZtdHardwareHash). Set the serial in the firmware (check with \
                 `wmic bios get serialnumber`), then {recapture}."
            ),
        )),
        Some(s) if hash::is_generic_serial(s) => row.push(at(
            Severity::Warning,
            "hash-generic-serial",
            Some(COL_HASH),
            format!(
                "The hash records the generic serial \"{s}\": the firmware has no real \
                 serial number, and such devices collide. Set one with the manufacturer's tool, \
                 then {recapture}."
            ),
        )),
        Some(s) if !row.serial.is_empty() && !s.eq_ignore_ascii_case(&row.serial) => {
            let msg = format!(
                "The serial number in the file (\"{}\") differs from the one recorded in the \
                 hash (\"{s}\"): the file was edited by hand, or rows were mixed up. Use the \
                 serial from the hash, or {recapture}.",
                row.serial
            );
            row.push(at(
                Severity::Warning,
                "hash-serial-mismatch",
                Some(COL_SERIAL),
                msg,
            ));
        }
        _ => {}
    }
    if manufacturer.is_none() && !truncated {
        row.push(at(
            Severity::Warning,
            "hash-no-manufacturer",
            Some(COL_HASH),
            format!(
                "The hash records no manufacturer; the service rejects such hashes \
                 (InvalidZtdHardwareHash). Check `wmic baseboard get manufacturer`, fix the \
                 firmware data, then {recapture}."
            ),
        ));
    }
    if let Some(vm) = hash::virtual_machine(manufacturer.as_deref(), model.as_deref(), &row.serial)
    {
        row.push(at(
            Severity::Warning,
            "virtual-machine",
            Some(COL_HASH),
            format!(
                "This is a virtual machine ({vm}: {} / {}). Fine for a test lab; for production, \
                 make sure you mean to register it. Re-creating the VM changes its hash.",
                manufacturer.as_deref().unwrap_or("unknown manufacturer"),
                model.as_deref().unwrap_or("unknown model")
            ),
        ));
    }
    row.manufacturer = manufacturer;
    row.model = model;
    row.hash_serial = serial;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid hash body of `n` Base64 characters (no padding needed when `n % 4 == 0`).
    fn body(n: usize) -> String {
        "QUJD".repeat(n / 4) + &"A".repeat(n % 4)
    }

    fn error(raw: &str) -> (&'static str, String) {
        normalize_hash(raw).expect_err("must be refused")
    }

    // A valid hash is decoded without the character checks; every broken one must still get
    // the explanation of its first problem.
    #[test]
    fn broken_hashes_get_the_first_problem_explained() {
        let b = body(4000);
        let (code, msg) = error(&format!("{} {}", &b[..100], &b[100..]));
        assert_eq!(code, "invalid-hash");
        assert!(msg.contains("a space or line break at character 101"), "{msg}");

        let (_, msg) = error(&format!("{}é{}", &b[..7], &b[8..]));
        assert!(msg.contains("'é' at character 8"), "{msg}");

        let (_, msg) = error(&format!("{}=={}", &b[..2000], &b[2000..]));
        assert!(msg.contains("'=' in the middle"), "{msg}");

        let (_, msg) = error(&body(4001));
        assert!(msg.contains("its 4001 characters"), "{msg}");

        // A bad character wins over a bad length, as before.
        let (_, msg) = error(&format!("{}-{}", &b[..10], &b[10..]));
        assert!(msg.contains("'-' at character 11"), "{msg}");

        let (code, _) = error(&body(400));
        assert_eq!(code, "hash-too-short");
    }

    #[test]
    fn valid_hashes_are_padded_and_decoded() {
        let ok = normalize_hash(&body(4000)).expect("valid");
        assert_eq!(ok.value.len(), 4000);
        assert_eq!(ok.bytes.len(), 3000);
        assert_eq!(ok.fix, None);

        let ok = normalize_hash(&format!("  {}  ", body(3998))).expect("valid");
        assert!(ok.value.ends_with("AA=="));
        assert_eq!(ok.fix.map(|f| f.0), Some("unpadded-hash"));

        let ok = normalize_hash(&format!("{}====", body(4000))).expect("valid");
        assert_eq!(ok.value.len(), 4000);
        assert_eq!(ok.fix.map(|f| f.0), Some("wrong-hash-padding"));
    }
}
