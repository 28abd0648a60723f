//! Console output for the command-line modes of the Windows exe.
//!
//! The release exe is a GUI-subsystem program, so Explorer and the Start menu open no console
//! window for it. The price: Windows gives it no console either, and `check-csv`, `sim`,
//! `--help` and the other command-line modes would print nothing in `cmd.exe` or PowerShell.
//! [`attach_parent`] borrows the console of the shell that started the program. Output that
//! the caller redirected (`> out.json`, a pipe) keeps going where it was sent.

/// Attaches stdout and stderr to the parent process's console where they go nowhere. No-op on
/// other platforms, when started without a console (Explorer), and in console-subsystem builds.
pub fn attach_parent() {
    #[cfg(windows)]
    windows::attach_parent();
}

#[cfg(windows)]
mod windows {
    use windows_sys::Win32::Foundation::{
        GENERIC_READ, GENERIC_WRITE, HANDLE, INVALID_HANDLE_VALUE,
    };
    use windows_sys::Win32::Storage::FileSystem::{
        CreateFileW, FILE_SHARE_READ, FILE_SHARE_WRITE, OPEN_EXISTING,
    };
    use windows_sys::Win32::System::Console::{
        ATTACH_PARENT_PROCESS, AttachConsole, GetStdHandle, STD_ERROR_HANDLE, STD_HANDLE,
        STD_OUTPUT_HANDLE, SetStdHandle,
    };

    fn missing(h: HANDLE) -> bool {
        h.is_null() || h == INVALID_HANDLE_VALUE
    }

    pub(super) fn attach_parent() {
        // SAFETY: plain Win32 calls on this process's own standard handles; every handle passed
        // in was returned by GetStdHandle or CreateFileW just before.
        unsafe {
            let before: [(STD_HANDLE, HANDLE); 2] = [
                (STD_OUTPUT_HANDLE, GetStdHandle(STD_OUTPUT_HANDLE)),
                (STD_ERROR_HANDLE, GetStdHandle(STD_ERROR_HANDLE)),
            ];
            if before.iter().all(|&(_, h)| !missing(h)) {
                // Both already go somewhere (console build, or both redirected).
                return;
            }
            if AttachConsole(ATTACH_PARENT_PROCESS) == 0 {
                // Started from Explorer or the Start menu: there is no console to borrow.
                return;
            }
            let name: Vec<u16> = "CONOUT$\0".encode_utf16().collect();
            let console = CreateFileW(
                name.as_ptr(),
                GENERIC_READ | GENERIC_WRITE,
                FILE_SHARE_READ | FILE_SHARE_WRITE,
                std::ptr::null(),
                OPEN_EXISTING,
                0,
                std::ptr::null_mut(),
            );
            for (which, handle) in before {
                // Windows versions differ in whether AttachConsole rewrites the standard
                // handles; set all of them explicitly so redirections survive either way.
                if !missing(handle) {
                    SetStdHandle(which, handle);
                } else if !missing(console) {
                    SetStdHandle(which, console);
                }
            }
        }
    }
}
