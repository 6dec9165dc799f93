//! Helpers shared by the tests that run the real `halosync` binary.
#![allow(dead_code)] // each test binary uses its own subset

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const HALO_SECRET: &str = "halo-secret-4b9e2f71";
pub const GRAPH_SECRET: &str = "graph-secret-c03d58a6";
pub const TOKEN_KEY: &str = "token-key-5f0c8a2e9d7b4c1a6e3f0b8d2c9a7e5f";

/// A temporary directory holding a config file and its secrets.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let workspace = Self {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        std::fs::create_dir(workspace.path("credentials")).expect("mkdir credentials");
        workspace.write_private("credentials/halo_client_secret", HALO_SECRET);
        workspace.write_private("credentials/graph_client_secret", GRAPH_SECRET);
        workspace
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write_private(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    }

    /// The repository's example config, with its database moved into this
    /// workspace.
    pub fn example_config(&self) -> PathBuf {
        let example = std::fs::read_to_string(repo_file("config.example.toml")).expect("example");
        let db = self.path("halosync.db");
        let text = example.replace(
            "path = \"/var/lib/halosync/halosync.db\"",
            &format!("path = \"{}\"", db.display()),
        );
        self.write_private("halosync.toml", &text)
    }
}

pub fn repo_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

impl Workspace {
    /// `halosync` as systemd would start it: the workspace's credentials
    /// directory in `$CREDENTIALS_DIRECTORY`.
    pub fn halosync(&self) -> Command {
        let mut command = halosync();
        command.env("CREDENTIALS_DIRECTORY", self.path("credentials"));
        command
    }
}

/// `halosync` with a clean environment: no inherited RUST_LOG, config path or
/// credentials.
pub fn halosync() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_halosync"));
    command
        .env_remove("RUST_LOG")
        .env_remove("HALOSYNC_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY");
    command
}

pub fn run(command: &mut Command) -> Output {
    command.output().expect("run halosync")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A loopback port free right now, for a listener the binary binds itself
/// (tests run in parallel).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}
