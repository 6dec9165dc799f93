//! No command prints a secret, whatever it is asked to log: each command is
//! run at `trace` level, in both log formats, and its whole output searched
//! for every secret it was given.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;

use common::{GRAPH_SECRET, HALO_SECRET, TOKEN_KEY, Workspace, run, stderr, stdout};

/// A config that uses every kind of secret source, so each loading path runs.
fn config_with_every_secret_source(workspace: &Workspace) -> std::path::PathBuf {
    workspace.write_private("token.key", TOKEN_KEY);
    let text = std::fs::read_to_string(workspace.example_config())
        .expect("config")
        .replace(
            "client_secret_credential = \"graph_client_secret\"",
            "client_secret_env = \"GRAPH_SECRET\"",
        )
        .replace("type = \"application\"", "type = \"delegated\"")
        .replace(
            "# token_key_credential = \"token_key\"",
            "token_key_file = \"token.key\"",
        )
        .replace(
            "client_secret_credential = \"halo_client_secret\"",
            &format!("client_secret = \"{HALO_SECRET}\""),
        );
    workspace.write_private("every-source.toml", &text)
}

fn assert_no_secret(what: &str, output: &std::process::Output) {
    let all = format!("{}{}", stdout(output), stderr(output));
    for secret in [HALO_SECRET, GRAPH_SECRET, TOKEN_KEY] {
        assert!(!all.contains(secret), "{what} printed a secret:\n{all}");
    }
}

#[test]
fn check_config_at_trace_level_shows_sources_but_never_values() {
    let workspace = Workspace::new();
    let config = config_with_every_secret_source(&workspace);
    for format in ["text", "json"] {
        let output = run(workspace
            .halosync()
            .args(["check-config", "--log-format", format, "--config"])
            .arg(&config)
            .env("RUST_LOG", "trace")
            .env("GRAPH_SECRET", GRAPH_SECRET));
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let logs = stderr(&output);
        // The trace output is real: it names each secret's source...
        for source in ["inline", "env", "file"] {
            assert!(
                logs.contains(source),
                "no `{source}` in the {format} logs:\n{logs}"
            );
        }
        if format == "json" {
            for line in logs.lines().filter(|l| !l.trim().is_empty()) {
                serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            }
        }
        // ...and never a value.
        assert_no_secret(&format!("check-config ({format})"), &output);
    }
}

#[test]
fn an_invalid_config_reports_its_problems_without_quoting_secrets() {
    let workspace = Workspace::new();
    let config = config_with_every_secret_source(&workspace);
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace("[halo]\n", "[halo]\nbogus = 1\n");
    let broken = workspace.path("broken.toml");
    std::fs::write(&broken, text).expect("write");
    // World-readable, so its inline secret is refused: the error must say so
    // without repeating it.
    let output = run(workspace
        .halosync()
        .arg("check-config")
        .arg("--config")
        .arg(&broken)
        .env("RUST_LOG", "trace")
        .env("GRAPH_SECRET", GRAPH_SECRET));
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("holds a secret inline"), "{err}");
    assert!(err.contains("halo.bogus: unknown key"), "{err}");
    assert_no_secret("check-config on an invalid config", &output);
}

#[test]
fn database_commands_at_trace_level_never_print_a_secret() {
    let workspace = Workspace::new();
    let config = config_with_every_secret_source(&workspace);
    let backup = workspace.path("backup.db");
    let commands: [Vec<&str>; 4] = [
        vec!["db", "migrate"],
        vec!["db", "check"],
        vec!["db", "backup", backup.to_str().expect("utf-8")],
        vec!["db", "backup", backup.to_str().expect("utf-8")], // fails: exists
    ];
    for (format, args) in ["text", "json", "text", "json"].iter().zip(commands) {
        let output = run(workspace
            .halosync()
            .arg("--config")
            .arg(&config)
            .args(["--log-format", format])
            .args(&args)
            .env("RUST_LOG", "trace")
            .env("GRAPH_SECRET", GRAPH_SECRET));
        assert!(
            !stderr(&output).is_empty() || !stdout(&output).is_empty(),
            "{args:?} printed nothing"
        );
        assert_no_secret(&format!("{args:?}"), &output);
    }
}
