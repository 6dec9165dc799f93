//! The packaged files agree with the program: the /etc template is safe
//! (no secret, and refused until its identifiers are filled in), the unit
//! loads every credential the configs name, and it stops restarting on the
//! program's own "fix the config" and "a person must act" exit codes.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;

use std::collections::BTreeSet;

use common::{Workspace, repo_file, run};
use halosync::cli::exit;

fn read(name: &str) -> String {
    std::fs::read_to_string(repo_file(name)).unwrap()
}

/// The names of every `<secret>_credential = "name"` key in a config,
/// commented out or not (the header's `x_credential` explanation is not one).
fn credential_names(config: &str) -> BTreeSet<String> {
    config
        .lines()
        .map(|line| line.trim_start_matches(['#', ' ']))
        .filter_map(|line| line.split_once("_credential = \""))
        .filter(|(key, _)| *key != "x")
        .map(|(_, rest)| rest.trim_end().trim_end_matches('"').to_owned())
        .collect()
}

#[test]
fn the_packaged_config_is_refused_until_its_four_identifiers_are_filled_in() {
    let workspace = Workspace::new();
    let template = read("packaging/halosync.toml");
    assert!(!template.contains("secret ="), "no inline secret");
    let path = workspace.write_private("halosync.toml", &template);
    let output = run(workspace
        .halosync()
        .args(["check-config", "--config"])
        .arg(&path));
    assert_eq!(output.status.code(), Some(exit::CONFIG.into()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains(": error: ")).collect();
    assert_eq!(errors.len(), 4, "{stderr}");
    for key in [
        "halo.base_url",
        "halo.client_id",
        "exchange.connection[0].tenant_id",
        "exchange.connection[0].client_id",
    ] {
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&format!("error: {key}: must not be empty"))),
            "{key}: {stderr}"
        );
    }

    let filled = template
        .replace("base_url = \"\"", "base_url = \"https://acme.haloitsm.com\"")
        .replace(
            "client_id = \"\"\nclient_secret_credential = \"halo_client_secret\"",
            "client_id = \"halosync\"\nclient_secret_credential = \"halo_client_secret\"",
        )
        .replace(
            "tenant_id = \"\"",
            "tenant_id = \"11111111-1111-1111-1111-111111111111\"",
        )
        .replace(
            "client_id = \"\"\nclient_secret_credential = \"graph_client_secret\"",
            "client_id = \"22222222-2222-2222-2222-222222222222\"\nclient_secret_credential = \"graph_client_secret\"",
        )
        .replace(
            "/var/lib/halosync/halosync.db",
            workspace.path("halosync.db").to_str().unwrap(),
        );
    let path = workspace.write_private("filled.toml", &filled);
    let output = run(workspace
        .halosync()
        .args(["check-config", "--config"])
        .arg(&path));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

#[test]
fn the_unit_loads_every_credential_the_configs_name_from_files_beside_the_config() {
    let unit = read("systemd/halosync.service");
    let loaded: BTreeSet<String> = unit
        .lines()
        .map(|line| line.trim_start_matches(['#', ' ']))
        .filter_map(|line| line.strip_prefix("LoadCredential="))
        .map(|spec| {
            let (name, file) = spec.split_once(':').unwrap();
            assert_eq!(file, format!("/etc/halosync/{name}"));
            name.to_owned()
        })
        .collect();
    let named = credential_names(&read("config.example.toml"));
    assert_eq!(
        loaded, named,
        "the unit (active or documented lines) and config.example.toml name the same secrets"
    );
    // The ones the shipped template needs are loaded by default.
    for name in credential_names(&read("packaging/halosync.toml")) {
        assert!(
            unit.lines()
                .any(|l| l.starts_with(&format!("LoadCredential={name}:"))),
            "{name} is not loaded by default"
        );
    }
}

#[test]
fn the_unit_stops_restarting_on_the_config_and_operator_exit_codes() {
    let unit = read("systemd/halosync.service");
    let prevented: BTreeSet<u8> = unit
        .lines()
        .find_map(|l| l.strip_prefix("RestartPreventExitStatus="))
        .unwrap()
        .split_whitespace()
        .map(|code| code.parse().unwrap())
        .collect();
    assert_eq!(prevented, BTreeSet::from([exit::CONFIG, exit::OPERATOR]));
    for line in [
        "Type=notify",
        "ExecStartPre=/usr/bin/halosync check-config",
        "ExecStart=/usr/bin/halosync run",
        "StateDirectory=halosync",
        "ConfigurationDirectory=halosync",
        "User=halosync",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}");
    }
    let sysusers = read("systemd/halosync.sysusers");
    assert!(
        sysusers.lines().any(|l| l.starts_with("u halosync ")),
        "{sysusers}"
    );
}

#[test]
fn the_debian_changelog_names_the_version_being_packaged() {
    let changelog = read("packaging/changelog");
    let first = changelog.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "halosync ({}-1) unstable; urgency=medium",
            env!("CARGO_PKG_VERSION")
        ),
        "add a packaging/changelog entry for the new version"
    );
}
