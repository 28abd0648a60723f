//! Embeds the icon, the version information (product name, version, company, description) and
//! the application manifest into the Windows exes, so Explorer, the taskbar and "Apps & features"
//! show them and Windows treats the wizard as a current, DPI-aware, long-path-aware program.
//! Nothing to do for other targets: Linux gets its icon from the .deb and the window icon is set
//! at start.

const MANIFEST: &str = "packaging/windows/autopilot-wizard.manifest";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=assets/icon.ico");
    println!("cargo:rerun-if-changed={MANIFEST}");
    // The build script runs on the build machine; ask about the target, not `cfg!(windows)`.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
        return;
    }
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let manifest = format!("{}/{MANIFEST}", env!("CARGO_MANIFEST_DIR"));
    // The windowed exe and its console companion (installed as autopilot-wizard.com, which
    // cmd.exe prefers when the extension is left out). Test and bench binaries get nothing.
    for (binary, file_name, description) in [
        (
            "autopilot-wizard",
            "autopilot-wizard.exe",
            "Autopilot Wizard",
        ),
        (
            "autopilot-wizard-cli",
            "autopilot-wizard.com",
            "Autopilot Wizard (command line)",
        ),
    ] {
        let mut res = winresource::WindowsResource::new();
        res.set_icon("assets/icon.ico")
            .set("ProductName", "Autopilot Wizard")
            .set("FileDescription", description)
            .set("CompanyName", "autopilot-wizard developers")
            .set("LegalCopyright", "autopilot-wizard developers, MIT licence")
            .set("OriginalFilename", file_name)
            .set("InternalName", binary)
            .set("Comments", env!("CARGO_PKG_DESCRIPTION"))
            .set("ProductVersion", &version)
            .set("FileVersion", &version)
            // Supported OS (Windows 10/11), asInvoker, long paths, per-monitor-v2 DPI awareness.
            // Without it Windows bitmap-stretches the window at 125 %/150 % and caps paths at
            // 260 characters.
            .set_manifest_file(&manifest);
        if let Err(e) = res.compile_for(binary) {
            // A missing resource compiler would otherwise silently ship an exe without an icon.
            panic!(
                "could not embed the Windows icon, version information and manifest into \
                 {binary} ({e}); install the mingw-w64 binutils (x86_64-w64-mingw32-windres)"
            );
        }
    }
}
