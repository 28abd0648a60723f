//! Embeds the icon and the version information (product name, version, company, description)
//! into the Windows exe, so Explorer, the taskbar and "Apps & features" show them. Nothing to do
//! for other targets: Linux gets its icon from the .deb and the window icon is set at start.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=assets/icon.ico");
    // The build script runs on the build machine; ask about the target, not `cfg!(windows)`.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
        return;
    }
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let mut res = winresource::WindowsResource::new();
    res.set_icon("assets/icon.ico")
        .set("ProductName", "Autopilot Wizard")
        .set("FileDescription", "Autopilot Wizard")
        .set("CompanyName", "autopilot-wizard developers")
        .set("LegalCopyright", "autopilot-wizard developers, MIT licence")
        .set("OriginalFilename", "autopilot-wizard.exe")
        .set("InternalName", "autopilot-wizard")
        .set("Comments", env!("CARGO_PKG_DESCRIPTION"))
        .set("ProductVersion", &version)
        .set("FileVersion", &version);
    // Only the wizard's own exe: test and bench binaries need no icon.
    if let Err(e) = res.compile_for("autopilot-wizard") {
        // A missing resource compiler would otherwise silently ship an exe without an icon.
        panic!(
            "could not embed the Windows icon and version information ({e}); \
             install the mingw-w64 binutils (x86_64-w64-mingw32-windres)"
        );
    }
}
