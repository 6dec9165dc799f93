//! `halosync check --connectivity`, the real binary against the simulator:
//! one mailbox that works, one without an Exchange licence, one the
//! delegated account has no delegate rights on, and a per-agent connection
//! nobody signed in to.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

#[path = "common/sign_in.rs"]
mod sign_in;

use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use halosync::config::{Cloud, ConnectionKind};
use halosync::graph::auth::{RefreshTokens, StoredRefreshTokens, scopes};
use halosync::sim::server::RunningSimulator;
use halosync::store::Store;
use halosync::token_cipher::TokenCipher;
use secrecy::SecretString;
use serde_json::{Value, json};

const GRAPH_SECRET: &str = "graph-secret-41b9";
const HALO_SECRET: &str = "halo-secret-77e0";
const ADMIN: &str = "admin@fabrikam.com";

async fn post(http: &reqwest::Client, url: String, body: Value) {
    let response = http.post(url).json(&body).send().await.expect("control");
    assert!(response.status().is_success(), "{}", response.status());
}

/// The refresh token `upn` gets by signing in with the authorization code
/// flow and PKCE.
async fn sign_in(sim: &RunningSimulator, upn: &str) -> SecretString {
    let login = sim.simulator.login_url();
    let app = sign_in::App {
        login: &login,
        tenant: "fabrikam",
        client_id: "app",
        client_secret: GRAPH_SECRET,
    };
    let scope = scopes(ConnectionKind::Delegated, Cloud::Global);
    sign_in::sign_in(&app, upn, &scope).await
}

fn config(sim: &RunningSimulator, db: &Path, key: &str, exclude: &[&str]) -> String {
    let connection = |name: &str, kind: &str, tenant: &str, agents: &str| {
        format!(
            "[[exchange.connection]]\nname = \"{name}\"\ntype = \"{kind}\"\n\
             login_url = \"{}\"\ngraph_url = \"{}\"\ntenant_id = \"{tenant}\"\nclient_id = \"app\"\n\
             client_secret = \"{GRAPH_SECRET}\"\nagents = \"{agents}\"\n\n",
            sim.simulator.login_url(),
            sim.simulator.graph_url(),
        )
    };
    format!(
        "[halo]\nbase_url = \"{}\"\nclient_id = \"halosync\"\nclient_secret = \"{HALO_SECRET}\"\n\n{}{}{}\
         [sync]\nexclude_agents = {exclude:?}\n\n[store]\npath = \"{}\"\ntoken_key = \"{key}\"\n",
        sim.simulator.halo_url(),
        connection("app", "application", "contoso", "@contoso.com"),
        connection("deleg", "delegated", "fabrikam", "@fabrikam.com"),
        connection("mine", "per_agent", "northwind", "@northwind.com"),
        db.display(),
    )
}

async fn run_check(config_path: &Path) -> Output {
    use std::os::unix::fs::PermissionsExt;
    // Inline secrets are only accepted from a file no one else can read.
    std::fs::set_permissions(config_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = config_path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_halosync"))
            .arg("--config")
            .arg(path)
            .args(["--log-level", "warn", "check", "--connectivity"])
            .output()
            .expect("run halosync")
    })
    .await
    .expect("join")
}

/// The table row for `mailbox`, split into its four columns.
fn row(stdout: &str, mailbox: &str) -> Vec<String> {
    stdout
        .lines()
        .find(|line| line.contains(&format!("| {mailbox} ")))
        .unwrap_or_else(|| panic!("no row for {mailbox} in:\n{stdout}"))
        .split(" | ")
        .map(|cell| cell.trim().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_connectivity_prints_each_agents_mailbox_result_and_exits_by_outcome() {
    let sim = RunningSimulator::start_local().await.expect("sim");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    post(
        &http,
        format!("{}_sim/seed", sim.simulator.base_url()),
        json!({
            "halo_clients": [{"client_id": "halosync", "client_secret": HALO_SECRET, "agent_id": 2}],
            "agents": [
                {"id": 2, "name": "Leah", "email": "leah@contoso.com"},
                {"id": 3, "name": "Ghost", "email": "ghost@contoso.com"},
                {"id": 4, "name": "Priya", "email": "priya@fabrikam.com"},
                {"id": 5, "name": "Pat", "email": "pat@northwind.com"},
            ],
            "mailboxes": [
                {"upn": "leah@contoso.com"},
                {"upn": "ghost@contoso.com", "state": "unlicensed"},
                {"upn": "priya@fabrikam.com", "state": "no_delegate", "delegates": [ADMIN]},
                {"upn": ADMIN},
                {"upn": "pat@northwind.com"},
            ],
        }),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("halosync.db");
    let key = "k".repeat(40);
    {
        let refresh = sign_in(&sim, ADMIN).await;
        let store = Arc::new(Mutex::new(Store::open(&db).unwrap()));
        StoredRefreshTokens::new(
            store,
            TokenCipher::new(&SecretString::from(key.clone())),
            "deleg",
            sim.simulator.clock(),
        )
        .save("connection:deleg", &refresh)
        .unwrap();
    }
    let config_path = dir.path().join("halosync.toml");
    std::fs::write(&config_path, config(&sim, &db, &key, &[])).unwrap();

    let output = run_check(&config_path).await;
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("Halo: OK (4 agents)"), "{stdout}");
    assert!(
        stdout.contains("Exchange connection `app`: token OK")
            && stdout.contains("Exchange connection `deleg`: token OK"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("agent ") && l.contains("| result"))
    );

    assert_eq!(
        row(&stdout, "leah@contoso.com"),
        ["Leah (#2)", "leah@contoso.com", "app", "OK"]
    );
    let ghost = row(&stdout, "ghost@contoso.com");
    assert_eq!(ghost[2], "app");
    assert!(
        ghost[3].contains("MailboxNotEnabledForRESTAPI")
            && ghost[3].contains("Exchange Online licence"),
        "{ghost:?}"
    );
    let priya = row(&stdout, "priya@fabrikam.com");
    assert_eq!(priya[2], "deleg");
    assert!(
        priya[3].contains("The specified object was not found in the store")
            && priya[3].contains("Full Access")
            && priya[3].contains("up to an hour"),
        "{priya:?}"
    );
    let pat = row(&stdout, "pat@northwind.com");
    assert_eq!(pat[2], "mine");
    assert!(pat[3].starts_with("not connected"), "{pat:?}");
    for secret in [GRAPH_SECRET, HALO_SECRET, key.as_str()] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "a secret was printed"
        );
    }

    // Only the working mailbox: exit 0.
    std::fs::write(
        &config_path,
        config(
            &sim,
            &db,
            &key,
            &[
                "ghost@contoso.com",
                "priya@fabrikam.com",
                "pat@northwind.com",
            ],
        ),
    )
    .unwrap();
    let output = run_check(&config_path).await;
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert_eq!(row(&stdout, "leah@contoso.com")[3], "OK");
    assert!(!stdout.contains("ghost@contoso.com"), "{stdout}");

    // A broken config: exit 2.
    std::fs::write(&config_path, "[halo]\nbase_url = 3\n").unwrap();
    let output = run_check(&config_path).await;
    assert_eq!(output.status.code(), Some(2));
}
