//! CLI surface: help lists every command, and unbuilt commands refuse clearly.

use crate::support::samestack;

#[test]
fn help_lists_every_command() {
    let out = samestack().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for cmd in ["up", "dev", "ci", "render", "parity", "doctor", "status", "down", "init", "schema"] {
        assert!(help.lines().any(|l| l.trim_start().starts_with(cmd)), "{cmd} missing from --help:\n{help}");
    }
}
