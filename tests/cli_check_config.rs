//! `halosync check-config`, run as the real binary.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;

use common::{Workspace, halosync, run, stderr, stdout};

#[test]
fn the_example_config_passes_once_its_secret_files_exist() {
    let workspace = Workspace::new();
    let config = workspace.example_config();
    let output = run(workspace
        .halosync()
        .arg("check-config")
        .arg("--config")
        .arg(&config));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.contains(": OK: Halo https://acme.haloitsm.com/; 1 Exchange connection: main (application, global)"), "{out}");
    assert_eq!(out.lines().count(), 1, "a one-line summary: {out}");
}

#[test]
fn every_problem_is_reported_at_once_with_its_line_and_exit_code_2() {
    let workspace = Workspace::new();
    let example = std::fs::read_to_string(workspace.example_config()).expect("config");
    let broken = example
        .replace(
            "base_url = \"https://acme.haloitsm.com\"",
            "base_url = \"https//acme\"",
        )
        .replace("pull = \"0 */5 * * * *\"", "pull = \"every five minutes\"")
        .replace("scope = \"all\"", "scope = \"all\"\nscopes = \"all\"");
    let config = workspace.write_private("broken.toml", &broken);
    let output = run(workspace
        .halosync()
        .arg("check-config")
        .arg("-c")
        .arg(&config));
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    let line = |needle: &str| {
        broken
            .lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .expect("needle in config")
    };
    let file = config.display().to_string();
    assert!(err.contains("is not valid: 3 errors"), "{err}");
    assert!(
        err.contains(&format!(
            "{file}:{}:12: error: halo.base_url:",
            line("https//acme")
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:{}:1: error: halo.scopes: unknown key",
            line("scopes =")
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:{}:8: error: sync.schedule.pull:",
            line("every five")
        )),
        "{err}"
    );
    assert!(stdout(&output).is_empty());
}

#[test]
fn the_config_path_comes_from_halosync_config_unless_given() {
    let workspace = Workspace::new();
    let config = workspace.example_config();
    let output = run(workspace
        .halosync()
        .arg("check-config")
        .env("HALOSYNC_CONFIG", &config));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).starts_with(&config.display().to_string()));

    let missing = workspace.path("nowhere.toml");
    let output = run(workspace
        .halosync()
        .arg("check-config")
        .arg("--config")
        .arg(&missing)
        .env("HALOSYNC_CONFIG", &config));
    assert_eq!(
        output.status.code(),
        Some(2),
        "a missing config is for the operator to fix"
    );
    assert!(stderr(&output).contains(&format!("cannot read config file {}", missing.display())));
}

#[test]
fn bad_command_lines_exit_2_with_usage_help() {
    let output = run(halosync()
        .arg("check-config")
        .arg("--log-format")
        .arg("xml"));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("possible values: text, json"),
        "{}",
        stderr(&output)
    );
    let output = run(halosync().arg("--help"));
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("check-config"));
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let workspace = Workspace::new();
    let config = workspace.example_config();
    let output = run(workspace
        .halosync()
        .args(["check-config", "--log-level", "debug", "--config"])
        .arg(&config));
    let err = stderr(&output);
    assert!(
        err.contains("loaded secret"),
        "debug logs were written: {err}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "ANSI escapes in piped logs: {err:?}"
    );
}
