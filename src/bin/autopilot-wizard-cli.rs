//! `autopilot-wizard.com` on Windows: the console companion of the windowed exe. A console-
//! subsystem program, so `cmd` and PowerShell wait for it, its output arrives in order before the
//! next prompt and `%ERRORLEVEL%`/`$LASTEXITCODE` is its exit code. `cmd` prefers `.com` over
//! `.exe` when the extension is left out, so `autopilot-wizard check-csv a.csv` lands here.

fn main() -> std::process::ExitCode {
    autopilot_wizard::cli::main(autopilot_wizard::cli::Launcher::Console)
}
