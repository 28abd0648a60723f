//! `autopilot-wizard.exe`: the windowed wizard (and its command-line modes, which borrow the
//! shell's console). Everything lives in the library, shared with the console companion
//! `src/bin/autopilot-wizard-cli.rs`.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    autopilot_wizard::cli::main(autopilot_wizard::cli::Launcher::Windowed)
}
