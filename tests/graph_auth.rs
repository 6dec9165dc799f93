//! Graph access tokens against the simulated identity platform: every
//! connection type and cloud, caching, expiry, single-flight refresh,
//! rotation, and refusals sorted into what a person must do.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

#[path = "common/sign_in.rs"]
mod sign_in;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use halosync::clock::SharedClock;
use halosync::config::{self, ConnectionConfig, Environment};
use halosync::graph::auth::{
    AuthError, Flow, MemoryRefreshTokens, RefreshTokens, StoredRefreshTokens, TokenProvider,
};
use halosync::http::{MemoryRequestLog, Upstream, UpstreamClient, UpstreamSettings};
use halosync::sim::server::RunningSimulator;
use halosync::store::{Store, TokenState};
use halosync::token_cipher::TokenCipher;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

const SECRET: &str = "app-secret-5d1c";

struct Env {
    sim: RunningSimulator,
    http: reqwest::Client,
    /// What token providers send through: the `identity` upstream client.
    identity: UpstreamClient,
    log: Arc<MemoryRequestLog>,
}

impl Env {
    async fn start(seed: Value) -> Self {
        let sim = RunningSimulator::start_local().await.expect("sim");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let log = Arc::new(MemoryRequestLog::new());
        let identity = UpstreamClient::new(
            UpstreamSettings::new(Upstream::Identity),
            log.clone(),
            sim.simulator.clock(),
        )
        .expect("identity client");
        let env = Self {
            sim,
            http,
            identity,
            log,
        };
        let status = env
            .http
            .post(format!("{}_sim/seed", env.sim.simulator.base_url()))
            .json(&seed)
            .send()
            .await
            .expect("seed")
            .status();
        assert!(status.is_success());
        env
    }

    fn clock(&self) -> SharedClock {
        self.sim.simulator.clock()
    }

    fn connection(&self, kind: &str, cloud: &str, secret: &str) -> ConnectionConfig {
        self.connection_with(
            kind,
            cloud,
            &format!("client_secret = \"{secret}\""),
            Path::new("/nonexistent"),
        )
    }

    /// A connection whose credential is written as `credential` (TOML), with
    /// relative paths starting at `dir`.
    fn connection_with(
        &self,
        kind: &str,
        cloud: &str,
        credential: &str,
        dir: &Path,
    ) -> ConnectionConfig {
        let text = format!(
            "[halo]\nbase_url = \"http://127.0.0.1:1/halo\"\nclient_id = \"h\"\nclient_secret = \"h\"\n\n\
             [[exchange.connection]]\nname = \"main\"\ntype = \"{kind}\"\ncloud = \"{cloud}\"\n\
             login_url = \"{}\"\ngraph_url = \"{}\"\ntenant_id = \"contoso\"\nclient_id = \"app\"\n\
             {credential}\n\n[store]\npath = \"x.db\"\ntoken_key = \"{}\"\n",
            self.sim.simulator.login_url(),
            self.sim.simulator.graph_url(),
            "k".repeat(40),
        );
        let loaded = config::load_str(
            &dir.join("halosync.toml"),
            &text,
            None,
            &Environment::fixed(Vec::<(String, String)>::new()),
        )
        .expect("valid config");
        loaded
            .config
            .connections
            .into_iter()
            .next()
            .expect("one connection")
    }

    fn provider(&self, connection: &ConnectionConfig, flow: Flow) -> TokenProvider {
        TokenProvider::new(self.identity.clone(), connection, flow, self.clock()).expect("provider")
    }

    async fn state(&self) -> Value {
        self.http
            .get(format!("{}_sim/state", self.sim.simulator.base_url()))
            .send()
            .await
            .expect("state")
            .json()
            .await
            .expect("json")
    }

    async fn token_requests(&self) -> u64 {
        let state = self.state().await;
        state["requests"]["by_route"]
            .as_object()
            .expect("by_route")
            .iter()
            .filter(|(route, _)| route.contains("oauth2/v2.0/token"))
            .map(|(_, n)| n.as_u64().unwrap_or(0))
            .sum()
    }

    async fn control(&self, path: &str, body: Value) {
        let status = self
            .http
            .post(format!("{}_sim/{path}", self.sim.simulator.base_url()))
            .json(&body)
            .send()
            .await
            .expect("control")
            .status();
        assert!(status.is_success(), "{path}: {status}");
    }

    /// Signs `upn` in as `halosync connect` will: returns the refresh token.
    async fn sign_in(&self, upn: &str, scope: &str) -> SecretString {
        let login = self.sim.simulator.login_url();
        let app = sign_in::App {
            login: &login,
            tenant: "contoso",
            client_id: "app",
            client_secret: SECRET,
        };
        sign_in::sign_in(&app, upn, scope).await
    }
}

fn claims(token: &SecretString) -> Value {
    let payload = token.expose_secret().split('.').nth(1).expect("jwt");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("claims")
}

fn seed(cloud: &str) -> Value {
    json!({
        "apps": [{"tenant": "contoso", "client_id": "app", "client_secret": SECRET, "cloud": cloud}],
        "mailboxes": [{"upn": "leah@contoso.com"}, {"upn": "admin@contoso.com"}]
    })
}

#[tokio::test]
async fn each_cloud_gets_an_app_token_for_its_own_graph_root() {
    for (cloud, audience) in [
        ("global", "https://graph.microsoft.com"),
        ("usgov", "https://graph.microsoft.us"),
        ("usgov-dod", "https://dod-graph.microsoft.us"),
        ("china", "https://microsoftgraph.chinacloudapi.cn"),
    ] {
        let env = Env::start(seed(cloud)).await;
        let provider = env.provider(
            &env.connection("application", cloud, SECRET),
            Flow::Application,
        );
        let token = provider.token().await.expect("token");
        let claims = claims(&token);
        assert_eq!(claims["aud"], audience, "{cloud}");
        assert!(
            claims["roles"].as_array().is_some_and(|r| !r.is_empty()),
            "{claims}"
        );
    }
}

#[tokio::test]
async fn tokens_are_cached_refreshed_on_expiry_and_refreshed_once_for_many_callers() {
    let env = Env::start(seed("global")).await;
    let provider = Arc::new(env.provider(
        &env.connection("application", "global", SECRET),
        Flow::Application,
    ));
    let first = provider.token().await.expect("token");
    let again = provider.token().await.expect("cached");
    assert_eq!(first.expose_secret(), again.expose_secret());
    assert_eq!(
        env.token_requests().await,
        1,
        "the second call is served from the cache"
    );

    // Past the refresh point (the token lives 3599 s; refresh 5 min early).
    env.control("faults", json!({"advance_clock_seconds": 3400}))
        .await;
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let provider = provider.clone();
            tokio::spawn(async move { provider.token().await })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for caller in callers {
        let token = caller.await.expect("join").expect("token");
        seen.insert(token.expose_secret().to_string());
    }
    assert_eq!(seen.len(), 1, "every caller gets the one refreshed token");
    assert!(
        !seen.contains(first.expose_secret()),
        "a refreshed token is new"
    );
    assert_eq!(
        env.token_requests().await,
        2,
        "20 concurrent callers, one refresh"
    );

    let current = SecretString::from(seen.into_iter().next().expect("token"));
    provider.invalidate(&current);
    let after_401 = provider.token().await.expect("token");
    assert!(
        after_401.expose_secret() != current.expose_secret(),
        "a new token after a 401"
    );
    assert_eq!(env.token_requests().await, 3);
}

#[tokio::test]
async fn configuration_mistakes_say_what_to_fix_and_never_echo_the_secret() {
    let env = Env::start(seed("global")).await;
    let wrong = "not-the-secret-9f";
    let error = env
        .provider(
            &env.connection("application", "global", wrong),
            Flow::Application,
        )
        .token()
        .await
        .expect_err("refused");
    let message = error.to_string();
    assert!(
        matches!(error, AuthError::Configuration { .. }),
        "{message}"
    );
    assert!(message.contains("copy the secret's Value"), "{message}");
    assert!(
        !message.contains(wrong) && !message.contains(SECRET),
        "{message}"
    );

    let error = env
        .provider(
            &env.connection("application", "usgov", SECRET),
            Flow::Application,
        )
        .token()
        .await
        .expect_err("wrong cloud");
    assert!(matches!(error, AuthError::Configuration { .. }), "{error}");
    assert!(
        error.to_string().contains("another Microsoft cloud"),
        "{error}"
    );

    let records = env.log.records();
    assert!(
        records.len() >= 2
            && records
                .iter()
                .all(|r| r.upstream == Upstream::Identity && r.path.ends_with("/oauth2/v2.0/token")),
        "token calls are in the request log: {records:?}"
    );
    let logged = format!("{records:?}");
    assert!(
        !logged.contains(wrong) && !logged.contains(SECRET),
        "{logged}"
    );
}

#[tokio::test]
async fn a_delegated_sign_in_is_refreshed_rotated_and_marked_when_revoked() {
    let env = Env::start(seed("global")).await;
    let connection = env.connection("per_agent", "global", SECRET);
    let scope = halosync::graph::auth::scopes(connection.kind, connection.cloud);
    let initial = env.sign_in("leah@contoso.com", &scope).await;
    let tokens = Arc::new(MemoryRefreshTokens::new());
    tokens.insert("agent:2", initial.clone());
    let provider = env.provider(
        &connection,
        Flow::RefreshToken {
            subject: "agent:2".into(),
            tokens: tokens.clone(),
        },
    );
    let access = provider.token().await.expect("token");
    assert_eq!(claims(&access)["upn"], "leah@contoso.com");
    let rotated = tokens.current("agent:2").expect("saved");
    assert!(
        rotated.expose_secret() != initial.expose_secret(),
        "the rotated token replaces the first"
    );

    env.control(
        "faults",
        json!({"identity": {"revoke_refresh_tokens": "all"}}),
    )
    .await;
    env.control("faults", json!({"advance_clock_seconds": 3600}))
        .await;
    let error = provider.token().await.expect_err("revoked");
    assert!(
        matches!(error, AuthError::ReauthorizationRequired { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("AADSTS70008"), "{error}");
    assert_eq!(tokens.refused(), vec!["agent:2".to_string()]);
    let error = provider.token().await.expect_err("nothing stored now");
    assert!(matches!(error, AuthError::NotConnected { .. }), "{error}");
}

#[tokio::test]
async fn stored_sign_ins_are_sealed_rotated_in_place_and_flagged_on_refusal() {
    let env = Env::start(seed("global")).await;
    let connection = env.connection("delegated", "global", SECRET);
    let scope = halosync::graph::auth::scopes(connection.kind, connection.cloud);
    let initial = env.sign_in("admin@contoso.com", &scope).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("halosync.db");
    let store = Arc::new(Mutex::new(Store::open(&db).expect("store")));
    let key = SecretString::from("k".repeat(40));
    let stored = Arc::new(StoredRefreshTokens::new(
        store.clone(),
        TokenCipher::new(&key),
        "main",
        env.clock(),
    ));
    stored.save("connection:main", &initial).expect("save");
    let provider = env.provider(
        &connection,
        Flow::RefreshToken {
            subject: "connection:main".into(),
            tokens: stored.clone(),
        },
    );
    let access = provider.token().await.expect("token");
    assert_eq!(claims(&access)["upn"], "admin@contoso.com");
    let rotated = stored
        .load("connection:main")
        .expect("load")
        .expect("token");
    assert!(
        rotated.expose_secret() != initial.expose_secret(),
        "rotated"
    );
    drop(store);
    let raw = std::fs::read(&db).expect("read db");
    let wal = std::fs::read(dir.path().join("halosync.db-wal")).unwrap_or_default();
    for bytes in [raw, wal] {
        assert!(
            !bytes
                .windows(rotated.expose_secret().len())
                .any(|w| w == rotated.expose_secret().as_bytes()),
            "the refresh token is on disk in clear"
        );
    }

    env.control(
        "faults",
        json!({"identity": {"revoke_refresh_tokens": "all"}}),
    )
    .await;
    env.control("faults", json!({"advance_clock_seconds": 3600}))
        .await;
    assert!(matches!(
        provider.token().await,
        Err(AuthError::ReauthorizationRequired { .. })
    ));
    assert!(
        stored_state(&stored, "connection:main").is_none(),
        "a refused sign-in is no longer offered"
    );
    let reopened = Store::open_read_only(&db).expect("read");
    let row = reopened
        .refresh_token("connection:main")
        .expect("row")
        .expect("kept");
    assert_eq!(row.state, TokenState::ReauthRequired);
}

fn stored_state(tokens: &StoredRefreshTokens, subject: &str) -> Option<String> {
    tokens
        .load(subject)
        .expect("load")
        .map(|t| t.expose_secret().to_string())
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .expect("fixture")
}

#[tokio::test]
async fn a_certificate_credential_signs_an_assertion_the_platform_accepts() {
    let env = Env::start(json!({
        "apps": [{"tenant": "contoso", "client_id": "app", "client_secret": SECRET,
                  "certificate": fixture("client-cert-test.pem")}],
    }))
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, key, cert) in [
        (
            "registered.pem",
            "client-cert-test-key.pem",
            "client-cert-test.pem",
        ),
        (
            "unknown.pem",
            "other-cert-test-key.pem",
            "other-cert-test.pem",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, fixture(key) + &fixture(cert)).expect("write");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
    }
    let registered = env.connection_with(
        "application",
        "global",
        "client_certificate_file = \"registered.pem\"",
        dir.path(),
    );
    let token = env
        .provider(&registered, Flow::Application)
        .token()
        .await
        .expect("the registered certificate gets a token");
    assert!(
        claims(&token)["roles"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );
    let sent = env.log.records();
    assert!(
        sent.iter().all(|r| !r.path.contains("client_assertion")),
        "the assertion travels in the body, never the logged path"
    );

    let unknown = env.connection_with(
        "application",
        "global",
        "client_certificate_file = \"unknown.pem\"",
        dir.path(),
    );
    let error = env
        .provider(&unknown, Flow::Application)
        .token()
        .await
        .expect_err("a certificate the app does not know is refused");
    assert!(matches!(error, AuthError::Configuration { .. }), "{error}");
    assert!(error.to_string().contains("upload"), "{error}");
}
