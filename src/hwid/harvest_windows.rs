//! The real [`WmiSource`] (Windows only), through the `wmi` crate, plus the elevation check and
//! the "Restart as administrator" relaunch.

use serde::Deserialize;
use windows::Win32::Foundation::{CloseHandle, HANDLE};
use windows::Win32::Security::{GetTokenInformation, TOKEN_ELEVATION, TOKEN_QUERY, TokenElevation};
use windows::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};
use windows::Win32::UI::Shell::ShellExecuteW;
use windows::Win32::UI::WindowsAndMessaging::SW_SHOWNORMAL;
use windows::core::{HSTRING, PCWSTR};
use wmi::{WMIConnection, WMIError};

use super::harvest::{ComputerSystem, HarvestError, MDM_CLASS, MDM_NAMESPACE, WmiError, WmiSource};

// WMI and COM results that decide the message (wmi-error-constants on learn.microsoft.com).
const WBEM_E_ACCESS_DENIED: u32 = 0x8004_1003;
const E_ACCESSDENIED: u32 = 0x8007_0005;
const WBEM_E_NOT_FOUND: u32 = 0x8004_1002;
const WBEM_E_NOT_SUPPORTED: u32 = 0x8004_100C;
const WBEM_E_INVALID_NAMESPACE: u32 = 0x8004_100E;
const WBEM_E_INVALID_CLASS: u32 = 0x8004_1010;
const REGDB_E_CLASSNOTREG: u32 = 0x8004_0154;
const E_NOTIMPL: u32 = 0x8000_4001;

/// Reads WMI on the calling thread; a new connection per read, because a connection may not
/// move between threads and harvesting is rare.
#[derive(Debug, Default, Clone, Copy)]
pub struct WindowsWmi;

fn map(namespace: &str, class: &str, e: WMIError) -> WmiError {
    match e {
        WMIError::HResultError { hres } => match hres as u32 {
            WBEM_E_ACCESS_DENIED | E_ACCESSDENIED => WmiError::AccessDenied,
            WBEM_E_INVALID_NAMESPACE
            | WBEM_E_INVALID_CLASS
            | WBEM_E_NOT_FOUND
            | WBEM_E_NOT_SUPPORTED
            | REGDB_E_CLASSNOTREG
            | E_NOTIMPL => WmiError::Missing {
                namespace: namespace.to_owned(),
                class: class.to_owned(),
            },
            other => WmiError::Failed(format!("{class}: HRESULT {other:#010X}")),
        },
        other => WmiError::Failed(format!("{class}: {other}")),
    }
}

fn query<T: serde::de::DeserializeOwned>(
    namespace: &str,
    class: &str,
    wql: &str,
) -> Result<Vec<T>, WmiError> {
    let con =
        WMIConnection::with_namespace_path(namespace).map_err(|e| map(namespace, class, e))?;
    con.raw_query(wql).map_err(|e| map(namespace, class, e))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DevDetail {
    device_hardware_data: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Bios {
    serial_number: Option<String>,
}

#[derive(Deserialize)]
struct Licensing {
    #[serde(rename = "OA3xOriginalProductKey")]
    oa3x_original_product_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct System {
    manufacturer: Option<String>,
    model: Option<String>,
}

const CIMV2: &str = "ROOT\\CIMV2";

impl WmiSource for WindowsWmi {
    fn device_hardware_data(&self) -> Result<Option<String>, WmiError> {
        let rows: Vec<DevDetail> = query(
            MDM_NAMESPACE,
            MDM_CLASS,
            "SELECT DeviceHardwareData FROM MDM_DevDetail_Ext01 \
             WHERE InstanceID='Ext' AND ParentID='./DevDetail'",
        )?;
        Ok(rows.into_iter().find_map(|r| r.device_hardware_data))
    }

    fn bios_serial_number(&self) -> Result<Option<String>, WmiError> {
        let rows: Vec<Bios> = query(CIMV2, "Win32_BIOS", "SELECT SerialNumber FROM Win32_BIOS")?;
        Ok(rows.into_iter().find_map(|r| r.serial_number))
    }

    fn oa3_product_key(&self) -> Result<Option<String>, WmiError> {
        let rows: Vec<Licensing> = query(
            CIMV2,
            "SoftwareLicensingService",
            "SELECT OA3xOriginalProductKey FROM SoftwareLicensingService",
        )?;
        Ok(rows
            .into_iter()
            .find_map(|r| r.oa3x_original_product_key)
            .filter(|k| !k.trim().is_empty()))
    }

    fn computer_system(&self) -> Result<ComputerSystem, WmiError> {
        let rows: Vec<System> = query(
            CIMV2,
            "Win32_ComputerSystem",
            "SELECT Manufacturer, Model FROM Win32_ComputerSystem",
        )?;
        let s = rows.into_iter().next();
        Ok(ComputerSystem {
            manufacturer: s
                .as_ref()
                .and_then(|s| s.manufacturer.clone())
                .unwrap_or_default()
                .trim()
                .to_owned(),
            model: s
                .and_then(|s| s.model)
                .unwrap_or_default()
                .trim()
                .to_owned(),
        })
    }

    fn elevated(&self) -> Option<bool> {
        is_elevated()
    }
}

/// Whether harvesting can work here at all: the MDM bridge namespace exists (reading it may
/// still need elevation). Wine and Windows Server/PE end here.
pub fn probe() -> Result<WindowsWmi, HarvestError> {
    match WMIConnection::with_namespace_path(MDM_NAMESPACE)
        .map_err(|e| map(MDM_NAMESPACE, MDM_CLASS, e))
    {
        Ok(_) | Err(WmiError::AccessDenied) => Ok(WindowsWmi),
        Err(e) => Err(HarvestError::NoMdmBridge {
            detail: e.to_string(),
        }),
    }
}

/// The process token's elevation (TokenElevation), `None` when it cannot be read.
pub fn is_elevated() -> Option<bool> {
    let mut token = HANDLE::default();
    // SAFETY: plain Win32 calls with valid out-pointers; the token handle is closed below.
    unsafe {
        OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token).ok()?;
        let mut elevation = TOKEN_ELEVATION::default();
        let mut len = 0u32;
        let read = GetTokenInformation(
            token,
            TokenElevation,
            Some(std::ptr::from_mut(&mut elevation).cast()),
            std::mem::size_of::<TOKEN_ELEVATION>() as u32,
            &mut len,
        );
        let _ = CloseHandle(token);
        read.ok()?;
        Some(elevation.TokenIsElevated != 0)
    }
}

/// Starts this exe again with the same arguments through ShellExecute "runas" (the UAC prompt).
pub fn restart_elevated() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let args: Vec<String> = std::env::args().skip(1).map(|a| quote(&a)).collect();
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    let verb = HSTRING::from("runas");
    let file = HSTRING::from(exe.as_os_str());
    let params = HSTRING::from(args.join(" "));
    let dir = HSTRING::from(cwd.as_os_str());
    // SAFETY: all strings live until the call returns.
    let result = unsafe {
        ShellExecuteW(
            None,
            PCWSTR(verb.as_ptr()),
            PCWSTR(file.as_ptr()),
            PCWSTR(params.as_ptr()),
            PCWSTR(dir.as_ptr()),
            SW_SHOWNORMAL,
        )
    };
    // ShellExecute reports success as a value above 32; the user declining UAC gives 5.
    if result.0 as usize > 32 {
        Ok(())
    } else {
        Err(format!(
            "Windows did not start the program as administrator (ShellExecute returned {}); \
             the prompt may have been declined.",
            result.0 as usize
        ))
    }
}

/// Quotes one argument for the Windows command line (CommandLineToArgvW rules).
fn quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '"']) {
        return arg.to_owned();
    }
    let mut out = String::from("\"");
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.push_str(&"\\".repeat(backslashes * 2 + 1));
                out.push('"');
                backslashes = 0;
            }
            _ => {
                out.push_str(&"\\".repeat(backslashes));
                out.push(c);
                backslashes = 0;
            }
        }
    }
    out.push_str(&"\\".repeat(backslashes * 2));
    out.push('"');
    out
}
