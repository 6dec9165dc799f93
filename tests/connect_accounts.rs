#![allow(clippy::expect_used, clippy::unwrap_used)]
//! Connecting accounts end to end: the real binary, the simulator, and a
//! real HTTP client following redirects like a browser (no JavaScript).

mod common;
#[path = "common/sign_in.rs"]
mod sign_in;
#[path = "common/sync_sim.rs"]
mod sync_sim;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::{TOKEN_KEY, halosync, stderr, stdout};
use serde_json::{Value, json};
use sync_sim::{SyncSim, event};

/// Turns the simulator's config into one with connections of `kind`, the
/// public listener on a free port and a token key.
fn configure(sim: &SyncSim, kind: &str) -> u16 {
    let port = common::free_port();
    let admin = common::free_port();
    sim.workspace.write_private("token_key", TOKEN_KEY);
    let text = std::fs::read_to_string(&sim.config).expect("config");
    let text = text.replace("type = \"application\"", &format!("type = \"{kind}\""));
    let text = text.replace(
        "\n[store]\npath = \"halosync-sim.db\"\n",
        &format!(
            "\n[store]\npath = \"halosync-sim.db\"\ntoken_key_file = \"token_key\"\n\n\
             [webhook]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n"
        ),
    );
    sim.workspace.write_private("halosync.toml", &text);
    port
}

/// A browser: follows redirects, keeps nothing between requests.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .expect("client")
}

struct Service {
    child: Child,
    port: u16,
}

impl Service {
    async fn start(sim: &SyncSim, port: u16) -> Self {
        let child = halosync()
            .args(["run", "--config"])
            .arg(&sim.config)
            .env("HALOSYNC_SIM_SECRET", "anything")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn run");
        let service = Self { child, port };
        for _ in 0..200 {
            if browser()
                .get(service.url("/connect"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return service;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the service's /connect never answered");
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Submits the start (or disconnect) form for `email`; returns the
    /// final page's status and text.
    async fn submit(&self, form: &str, email: &str) -> (u16, String) {
        let response = browser()
            .post(self.url(form))
            .form(&[("email", email)])
            .send()
            .await
            .expect("form");
        let status = response.status().as_u16();
        (status, response.text().await.expect("page"))
    }

    async fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let child = &mut self.child;
        for _ in 0..200 {
            if child.try_wait().expect("wait").is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        child.kill().expect("kill");
    }
}

fn three_agents(delegate: Option<&str>) -> Value {
    let delegates: Vec<&str> = delegate.into_iter().collect();
    let mut mailboxes = vec![
        json!({"upn": "leah@contoso.com", "delegates": delegates}),
        json!({"upn": "bob@contoso.com", "delegates": delegates}),
        json!({"upn": "carol@contoso.com", "delegates": delegates}),
    ];
    if let Some(admin) = delegate {
        mailboxes.push(json!({"upn": admin}));
    }
    json!({
        "agents": [{"id": 2, "name": "Leah", "email": "leah@contoso.com"},
                   {"id": 3, "name": "Bob", "email": "bob@contoso.com"},
                   {"id": 4, "name": "Carol", "email": "carol@contoso.com"}],
        "mailboxes": mailboxes,
        "events": {"leah@contoso.com": [event("Leah audit", 1, 9, 10)],
                   "bob@contoso.com": [event("Bob install", 1, 11, 12)],
                   "carol@contoso.com": [event("Carol review", 1, 13, 14)]}
    })
}

fn agent_subjects(appointments: &[Value], agent_id: i64) -> Vec<String> {
    let mut subjects: Vec<String> = appointments
        .iter()
        .filter(|a| a["agent_id"] == json!(agent_id))
        .map(|a| a["subject"].as_str().unwrap_or_default().to_string())
        .collect();
    subjects.sort();
    subjects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_agent_sign_ins_connect_refuse_the_wrong_account_disconnect_and_need_reauthorization() {
    let sim = SyncSim::start(three_agents(None), "").await;
    let port = configure(&sim, "per_agent");
    let out = sim.expect(&["check-config"], 0).await;
    assert!(
        out.contains(&format!("http://127.0.0.1:{port}/auth/callback")),
        "check-config prints the redirect URI: {out}"
    );
    let link = sim
        .expect(&["connect", "link", "--agent", "Leah@Contoso.com"], 0)
        .await;
    assert_eq!(
        link.trim(),
        format!("http://127.0.0.1:{port}/connect?agent=leah%40contoso.com")
    );

    let service = Service::start(&sim, port).await;
    // The page: plain HTML, escaped, never cached, no script allowed.
    let hostile = "<script>alert(1)</script>\"@x";
    let page = browser()
        .get(service.url("/connect"))
        .query(&[("agent", hostile)])
        .send()
        .await
        .expect("page");
    let headers = page.headers().clone();
    let html = page.text().await.expect("html");
    assert_eq!(headers["cache-control"], "no-store");
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        !csp.contains("script-src"),
        "no script is ever allowed: {csp}"
    );
    assert!(!html.contains("<script"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;@x"),
        "{html}"
    );
    assert!(
        html.contains("<form method=\"post\" action=\"/connect/start\">"),
        "{html}"
    );

    // Two agents connect (and a third, who then disconnects).
    for email in ["leah@contoso.com", "bob@contoso.com", "carol@contoso.com"] {
        let (status, text) = service.submit("/connect/start", email).await;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains(&format!("Connected as {email}")), "{text}");
    }
    // Signing in as someone else is refused, and changes nothing.
    sim.post(
        "faults",
        &json!({"identity": {"sign_in_as": "bob@contoso.com"}}),
    )
    .await;
    let (status, text) = service.submit("/connect/start", "leah@contoso.com").await;
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains(
            "You signed in as bob@contoso.com, but this connection is for leah@contoso.com"
        ),
        "{text}"
    );
    sim.post("faults", &json!({"identity": {}})).await;
    let (status, text) = service
        .submit("/connect/disconnect", "carol@contoso.com")
        .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("carol@contoso.com is disconnected"), "{text}");
    // A state is single-use: replaying a callback is refused.
    let replay = browser()
        .get(service.url("/auth/callback?code=x&state=forged"))
        .send()
        .await
        .expect("callback");
    assert_eq!(replay.status(), 400);
    assert!(
        replay
            .text()
            .await
            .expect("page")
            .contains("expired or was already used")
    );
    service.stop().await;

    // Leah and Bob sync with their own sign-ins; Carol is not connected
    // (skipped, so the run is not a success).
    let out = sim.expect(&["sync", "--once"], 1).await;
    assert!(out.contains("agent:4: no sign-in is stored yet"), "{out}");
    let appointments = sim.appointments().await;
    assert_eq!(agent_subjects(&appointments, 2), ["Leah audit"], "{out}");
    assert_eq!(agent_subjects(&appointments, 3), ["Bob install"], "{out}");
    assert!(agent_subjects(&appointments, 4).is_empty(), "{out}");

    // Bob's refresh token is revoked: he needs to sign in again, Leah syncs on.
    sim.post(
        "faults",
        &json!({"identity": {"revoke_refresh_tokens": {"some": ["bob@contoso.com"]}}}),
    )
    .await;
    sim.act(json!({"op": "create_event", "mailbox": "leah@contoso.com", "event": event("Leah later", 2, 9, 10)}))
        .await;
    sim.act(json!({"op": "create_event", "mailbox": "bob@contoso.com", "event": event("Bob later", 2, 9, 10)}))
        .await;
    let output = sim.halosync(&["sync", "--once"]).await;
    assert!(!output.status.success());
    assert!(
        stdout(&output).contains("the account must sign in again"),
        "{}",
        stdout(&output)
    );
    let appointments = sim.appointments().await;
    assert_eq!(
        agent_subjects(&appointments, 2),
        ["Leah audit", "Leah later"]
    );
    assert_eq!(agent_subjects(&appointments, 3), ["Bob install"]);

    let status = sim.expect(&["status"], 3).await;
    assert!(status.contains("sign in again"), "{status}");
    let agents: Value =
        serde_json::from_str(&sim.expect(&["agents", "--json"], 0).await).expect("json");
    let by_mailbox = |mailbox: &str| {
        agents
            .as_array()
            .expect("agents")
            .iter()
            .find(|a| a["mailbox"] == mailbox)
            .cloned()
            .expect("agent listed")
    };
    assert_eq!(by_mailbox("leah@contoso.com")["token_state"], "ok");
    assert_eq!(
        by_mailbox("leah@contoso.com")["connected_as"],
        "leah@contoso.com"
    );
    assert_eq!(
        by_mailbox("leah@contoso.com")["connection_type"],
        "per_agent"
    );
    assert_eq!(
        by_mailbox("bob@contoso.com")["token_state"],
        "reauth_required"
    );
    assert_eq!(by_mailbox("carol@contoso.com")["token_state"], "revoked");
    let table = sim.expect(&["agents"], 0).await;
    assert!(table.contains("connected as"), "{table}");

    // The page tells Bob too.
    let service = Service::start(&sim, port).await;
    let html = browser()
        .get(service.url("/connect?agent=bob@contoso.com"))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(html.contains("Re-authorization required"), "{html}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegated_admin_connects_by_browser_or_device_code_and_syncs_three_agents() {
    let sim = SyncSim::start(three_agents(Some("admin@contoso.com")), "").await;
    configure(&sim, "delegated");

    // Browser: the command serves the callback itself; the admin picks
    // their own account in Microsoft's account picker.
    sim.post(
        "faults",
        &json!({"identity": {"sign_in_as": "admin@contoso.com"}}),
    )
    .await;
    let mut child = halosync()
        .args(["connect", "admin", "--config"])
        .arg(&sim.config)
        .env("HALOSYNC_SIM_SECRET", "anything")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout_pipe = child.stdout.take().expect("stdout");
    // Read every line (a closed pipe would break the command's output).
    let (found, url) = std::sync::mpsc::channel::<String>();
    let reader = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stdout_pipe)
            .lines()
            .map_while(Result::ok)
        {
            if line.trim().starts_with("http") {
                let _ = found.send(line.trim().to_string());
            }
            lines.push(line);
        }
        lines
    });
    let url = tokio::task::spawn_blocking(move || url.recv().expect("a sign-in URL"))
        .await
        .expect("join");
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    let page = browser().get(&url).send().await.expect("sign in");
    assert_eq!(page.headers()["cache-control"], "no-store");
    let text = page.text().await.expect("page");
    assert!(text.contains("Connected as admin@contoso.com"), "{text}");
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    let printed = reader.await.expect("join");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        printed
            .iter()
            .any(|l| l.contains("connection sim: connected as admin@contoso.com")),
        "{printed:?}"
    );

    let out = sim.expect(&["sync", "--once"], 0).await;
    let appointments = sim.appointments().await;
    for (agent, subject) in [(2, "Leah audit"), (3, "Bob install"), (4, "Carol review")] {
        assert_eq!(agent_subjects(&appointments, agent), [subject], "{out}");
    }

    // Device code: approved as the admin through the simulator.
    let mut child = halosync()
        .args(["connect", "admin", "--device-code", "--config"])
        .arg(&sim.config)
        .env("HALOSYNC_SIM_SECRET", "anything")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout_pipe = child.stdout.take().expect("stdout");
    let (code, rest) = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stdout_pipe)
            .lines()
            .map_while(Result::ok);
        let line = lines
            .find(|line| line.contains("enter the code"))
            .expect("a device code");
        let code = line
            .split("enter the code ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("code")
            .to_string();
        (code, lines)
    })
    .await
    .expect("join");
    sim.act(json!({"op": "approve_device_code", "user_code": code, "upn": "admin@contoso.com"}))
        .await;
    let remaining: Vec<String> = tokio::task::spawn_blocking(move || rest.collect())
        .await
        .expect("join");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "{remaining:?}");
    assert!(
        remaining
            .iter()
            .any(|l| l.contains("connected as admin@contoso.com")),
        "{remaining:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_sign_ins_never_hold_the_token_and_a_wrong_key_fails_closed() {
    let sim = SyncSim::start(three_agents(None), "").await;
    configure(&sim, "per_agent");
    let login = sim.sim.simulator.login_url();
    let app = sign_in::App {
        login: &login,
        tenant: "contoso",
        client_id: "demo",
        client_secret: "anything",
    };
    let scope = "offline_access https://graph.microsoft.com/Calendars.ReadWrite";
    let refresh = sign_in::sign_in(&app, "leah@contoso.com", scope).await;
    let store = std::sync::Mutex::new(halosync::store::Store::open(sim.database()).expect("db"));
    let cipher = halosync::token_cipher::TokenCipher::new(&secrecy::SecretString::from(TOKEN_KEY));
    halosync::connect::save_sign_in(
        &store,
        &cipher,
        "agent:2",
        "sim",
        "leah@contoso.com",
        &refresh,
        halosync::clock::Clock::now(&halosync::clock::SystemClock),
    )
    .expect("save");
    let raw: Vec<u8> = store
        .lock()
        .unwrap()
        .connection()
        .query_row(
            "SELECT ciphertext FROM oauth_tokens WHERE subject = 'agent:2'",
            [],
            |row| row.get(0),
        )
        .expect("row");
    use secrecy::ExposeSecret;
    let plain = refresh.expose_secret().as_bytes();
    assert!(!raw.windows(plain.len()).any(|w| w == plain), "sealed");
    assert!(
        !raw.windows(16).any(|w| w == &plain[..16]),
        "no fragment either"
    );
    drop(store);

    sim.expect(&["sync", "--once", "--agent", "leah@contoso.com"], 0)
        .await;
    sim.workspace
        .write_private("token_key", "a-different-key-of-enough-length-0123456789");
    let output = sim
        .halosync(&["sync", "--once", "--agent", "leah@contoso.com"])
        .await;
    assert!(!output.status.success(), "{}", stdout(&output));
    let said = format!("{}{}", stdout(&output), stderr(&output));
    assert!(said.contains("could not be decrypted"), "{said}");
    assert!(!said.contains(refresh.expose_secret()), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_sync_side_by_side_without_cross_talk() {
    let seed = json!({
        "apps": [{"tenant": "contoso", "client_id": "east-app", "client_secret": "anything"},
                 {"tenant": "fabrikam", "client_id": "west-app", "client_secret": "anything"}],
        "agents": [{"id": 2, "name": "Leah", "email": "leah@contoso.com"},
                   {"id": 5, "name": "Ada", "email": "ada@fabrikam.com"}],
        "mailboxes": [{"upn": "leah@contoso.com", "tenant": "contoso"},
                      {"upn": "ada@fabrikam.com", "tenant": "fabrikam"}],
        "events": {"leah@contoso.com": [event("Contoso audit", 1, 9, 10)],
                   "ada@fabrikam.com": [event("Fabrikam audit", 1, 9, 10)]}
    });
    let sim = SyncSim::start(seed, "").await;
    let text = std::fs::read_to_string(&sim.config).expect("config");
    let start = text.find("[[exchange.connection]]").expect("connection");
    let end = text.find("\n[store]").expect("store");
    let east = text[start..end]
        .replace("name = \"sim\"", "name = \"east\"")
        .replace("client_id = \"demo\"", "client_id = \"east-app\"")
        .trim_end()
        .to_string()
        + "\nagents = \"@contoso.com\"\n";
    let west = east
        .replace("name = \"east\"", "name = \"west\"")
        .replace("tenant_id = \"contoso\"", "tenant_id = \"fabrikam\"")
        .replace("east-app", "west-app")
        .replace("@contoso.com", "@fabrikam.com");
    let text = format!("{}{east}\n{west}{}", &text[..start], &text[end..]);
    sim.workspace.write_private("halosync.toml", &text);

    sim.expect(&["sync", "--once"], 0).await;
    let appointments = sim.appointments().await;
    assert_eq!(agent_subjects(&appointments, 2), ["Contoso audit"]);
    assert_eq!(agent_subjects(&appointments, 5), ["Fabrikam audit"]);
    // Each tenant's app reached only its own mailbox: a wrong pairing would
    // have failed (the simulator hides other tenants' users).
    let out = sim.expect(&["check", "--connectivity"], 0).await;
    assert!(out.contains("east"), "{out}");
    assert!(out.contains("west"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_agent_mailbox_gets_webhooks_through_the_agents_own_sign_in() {
    let sim = SyncSim::start(three_agents(None), "").await;
    let port = configure(&sim, "per_agent");
    let text = std::fs::read_to_string(&sim.config).expect("config");
    sim.workspace.write_private(
        "halosync.toml",
        &text.replace("[webhook]\n", "[webhook]\nenabled = true\n"),
    );

    let service = Service::start(&sim, port).await;
    let (status, text) = service.submit("/connect/start", "leah@contoso.com").await;
    assert_eq!(status, 200, "{text}");
    // The webhook paths live on the same listener, unchanged.
    let validation = browser()
        .post(service.url("/graph/notify?validationToken=hello"))
        .send()
        .await
        .expect("validation");
    assert_eq!(validation.text().await.expect("token"), "hello");
    service.stop().await;

    let out = sim
        .expect(
            &["subscriptions", "create", "--agent", "leah@contoso.com"],
            0,
        )
        .await;
    assert!(out.contains("leah@contoso.com"), "{out}");
    let subscriptions = sim.state().await["subscriptions"].clone();
    assert_eq!(
        subscriptions.as_array().map(Vec::len),
        Some(1),
        "{subscriptions}"
    );

    let service = Service::start(&sim, port).await;
    sim.act(json!({"op": "create_event", "mailbox": "leah@contoso.com", "event": event("Notified", 3, 9, 10)}))
        .await;
    let mut synced = false;
    for _ in 0..200 {
        if agent_subjects(&sim.appointments().await, 2).contains(&"Notified".to_string()) {
            synced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deliveries = sim.state().await["deliveries"].clone();
    service.stop().await;
    assert!(synced, "the notification led to a sync: {deliveries}");
    assert!(
        deliveries
            .as_array()
            .expect("deliveries")
            .iter()
            .any(|d| d["status"] == 202),
        "{deliveries}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_device_code_grant_is_pending_slows_down_and_expires() {
    let sim = SyncSim::start(three_agents(None), "").await;
    let base = format!("{}contoso/oauth2/v2.0", sim.sim.simulator.login_url());
    let http = browser();
    let device: Value = http
        .post(format!("{base}/devicecode"))
        .form(&[
            ("client_id", "demo"),
            ("scope", "offline_access Calendars.ReadWrite"),
        ])
        .send()
        .await
        .expect("devicecode")
        .json()
        .await
        .expect("json");
    let poll = || async {
        let answer: Value = http
            .post(format!("{base}/token"))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", "demo"),
                ("device_code", device["device_code"].as_str().expect("code")),
            ])
            .send()
            .await
            .expect("poll")
            .json()
            .await
            .expect("json");
        answer
    };
    assert_eq!(poll().await["error"], "authorization_pending");
    assert_eq!(poll().await["error"], "slow_down", "polled at once again");
    sim.post("faults", &json!({"advance_clock_seconds": 901}))
        .await;
    assert_eq!(poll().await["error"], "expired_token");
}
