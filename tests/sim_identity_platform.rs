//! The simulated identity platform, driven over HTTP as halosync drives the
//! real one.

// Integration tests: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use halosync::clock::{Clock, ShiftedClock};
use halosync::sim::identity::{
    IdentityFaults, IdentitySeed, IdentitySim, IdentitySimConfig, Users,
};
use halosync::sim::token::{Claims, TokenAuthority, TokenError};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "a-long-enough-code-verifier-for-pkce-0123456789abcdefghijkl";

struct Harness {
    base: String,
    clock: Arc<ShiftedClock>,
    tokens: Arc<TokenAuthority>,
    sim: IdentitySim,
    http: reqwest::Client,
}

async fn start() -> Harness {
    let clock = Arc::new(ShiftedClock::new());
    let tokens = Arc::new(TokenAuthority::new());
    let sim = IdentitySim::new(IdentitySimConfig {
        clock: clock.clone(),
        tokens: tokens.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/login", listener.local_addr().unwrap());
    let app = Router::new().nest("/login", sim.router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    Harness {
        base,
        clock,
        tokens,
        sim,
        http,
    }
}

fn seed(harness: &Harness, value: Value) {
    let seed: IdentitySeed = serde_json::from_value(value).unwrap();
    harness.sim.seed(seed).unwrap();
}

fn seed_contoso(harness: &Harness) {
    seed(
        harness,
        json!({
            "apps": [{"tenant": "contoso", "client_id": "app-1", "client_secret": "s3cret",
                      "redirect_uris": [REDIRECT]}],
            "users": [{"upn": "ada@contoso.com"}, {"upn": "bob@contoso.com"}],
        }),
    );
}

impl Harness {
    async fn token(&self, tenant: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/{tenant}/oauth2/v2.0/token", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    fn claims(&self, token: &Value) -> Claims {
        let access_token = token["access_token"].as_str().unwrap();
        self.tokens.verify(access_token, self.clock.now()).unwrap()
    }

    /// Runs authorize and returns the redirect's query.
    async fn authorize(&self, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
        let mut query = vec![
            ("client_id", "app-1"),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            (
                "scope",
                "offline_access https://graph.microsoft.com/Calendars.ReadWrite",
            ),
            ("state", "xyz"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        query.extend_from_slice(extra);
        let response = self
            .http
            .get(format!("{}/contoso/oauth2/v2.0/authorize", self.base))
            .query(&query)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 302);
        let location = response.headers()["location"].to_str().unwrap();
        assert!(location.starts_with(REDIRECT), "{location}");
        let target = url::Url::parse(location).unwrap();
        target.query_pairs().into_owned().collect()
    }

    async fn redeem(&self, code: &str, verifier: &str) -> (u16, Value) {
        self.token(
            "contoso",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "app-1"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    async fn refresh(&self, refresh_token: &str) -> (u16, Value) {
        self.token(
            "contoso",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "app-1"),
                ("client_secret", "s3cret"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    /// A fresh delegated grant for ada.
    async fn signed_in(&self) -> Value {
        let query = self.authorize(&[("login_hint", "ada@contoso.com")]).await;
        let (status, body) = self.redeem(&query["code"], VERIFIER).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// The exact Entra ID error shape, with the given error and AADSTS code.
fn assert_oauth_error(body: &Value, error: &str, code: u64) {
    let keys = body.as_object().unwrap().len();
    assert_eq!(
        keys, 6,
        "error, error_description, error_codes, timestamp, trace_id, correlation_id: {body}"
    );
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    let trace = body["trace_id"].as_str().unwrap();
    let correlation = body["correlation_id"].as_str().unwrap();
    let timestamp = body["timestamp"].as_str().unwrap();
    assert!(
        description.ends_with(&format!(
            "\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}"
        )),
        "{description}"
    );
}

fn client_credentials<'a>(
    client: &'a str,
    secret: &'a str,
    scope: &'a str,
) -> [(&'a str, &'a str); 4] {
    [
        ("grant_type", "client_credentials"),
        ("client_id", client),
        ("client_secret", secret),
        ("scope", scope),
    ]
}

const GLOBAL_DEFAULT: &str = "https://graph.microsoft.com/.default";

#[tokio::test]
async fn client_credentials_tokens_carry_each_clouds_graph_root_as_audience() {
    let harness = start().await;
    let clouds = [
        ("global", "https://graph.microsoft.com"),
        ("usgov", "https://graph.microsoft.us"),
        ("usgov-dod", "https://dod-graph.microsoft.us"),
        ("china", "https://microsoftgraph.chinacloudapi.cn"),
    ];
    let apps: Vec<Value> = clouds
        .iter()
        .map(|(cloud, _)| {
            json!({"tenant": format!("t-{cloud}"), "client_id": format!("app-{cloud}"),
                   "client_secret": "pw", "cloud": cloud})
        })
        .collect();
    seed(&harness, json!({ "apps": apps }));
    for (cloud, root) in clouds {
        let scope = format!("{root}/.default");
        let client = format!("app-{cloud}");
        let (status, body) = harness
            .token(
                &format!("t-{cloud}"),
                &client_credentials(&client, "pw", &scope),
            )
            .await;
        assert_eq!(status, 200, "{cloud}: {body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3599);
        let claims = harness.claims(&body);
        assert_eq!(claims.aud, root);
        assert_eq!(claims.tid, format!("t-{cloud}"));
        assert_eq!(claims.appid, client);
        assert_eq!(claims.roles, ["Calendars.ReadWrite", "User.Read.All"]);
        assert_eq!(claims.upn, None);
        assert_eq!(claims.exp - claims.iat, 3599);
    }
}

#[tokio::test]
async fn a_scope_of_another_cloud_is_invalid_scope() {
    let harness = start().await;
    seed(
        &harness,
        json!({"apps": [{"tenant": "gov", "client_id": "app-1", "client_secret": "pw", "cloud": "usgov"}]}),
    );
    let (status, body) = harness
        .token("gov", &client_credentials("app-1", "pw", GLOBAL_DEFAULT))
        .await;
    assert_eq!(status, 400);
    assert_oauth_error(&body, "invalid_scope", 1002012);
    let (status, _) = harness
        .token(
            "gov",
            &client_credentials("app-1", "pw", "https://graph.microsoft.us/.default"),
        )
        .await;
    assert_eq!(status, 200, "its own cloud's scope works");
}

#[tokio::test]
async fn wrong_secrets_and_unknown_clients_are_refused_once_apps_are_seeded() {
    let harness = start().await;
    // Nothing seeded: any credentials will do (the demo convenience).
    let (status, _) = harness
        .token(
            "anything",
            &client_credentials("whoever", "whatever", GLOBAL_DEFAULT),
        )
        .await;
    assert_eq!(status, 200);

    seed_contoso(&harness);
    let (status, body) = harness
        .token(
            "contoso",
            &client_credentials("app-1", "not-it", GLOBAL_DEFAULT),
        )
        .await;
    assert_eq!(status, 401);
    assert_oauth_error(&body, "invalid_client", 7000215);
    assert!(
        !body.to_string().contains("s3cret"),
        "the real secret never leaks"
    );
    let (status, body) = harness
        .token(
            "contoso",
            &client_credentials("app-2", "s3cret", GLOBAL_DEFAULT),
        )
        .await;
    assert_eq!(status, 400);
    assert_oauth_error(&body, "unauthorized_client", 700016);
    let (status, body) = harness
        .token(
            "fabrikam",
            &client_credentials("app-1", "s3cret", GLOBAL_DEFAULT),
        )
        .await;
    assert_eq!(status, 400, "an app is only known in its own tenant");
    assert_oauth_error(&body, "unauthorized_client", 700016);
    let (status, body) = harness
        .token(
            "contoso",
            &[("client_id", "app-1"), ("client_secret", "s3cret")],
        )
        .await;
    assert_eq!(status, 400);
    assert_oauth_error(&body, "invalid_request", 900144);
}

#[tokio::test]
async fn authorization_code_with_pkce_yields_delegated_tokens_once() {
    let harness = start().await;
    seed_contoso(&harness);
    let query = harness
        .authorize(&[("login_hint", "bob@contoso.com")])
        .await;
    assert_eq!(query["state"], "xyz");
    let (status, body) = harness.redeem(&query["code"], VERIFIER).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "Calendars.ReadWrite");
    assert_eq!(body["expires_in"], 3599);
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let claims = harness.claims(&body);
    assert_eq!(claims.upn.as_deref(), Some("bob@contoso.com"));
    assert_eq!(claims.scp.as_deref(), Some("Calendars.ReadWrite"));
    assert_eq!(claims.aud, "https://graph.microsoft.com");
    assert_eq!(claims.tid, "contoso");
    assert!(claims.roles.is_empty());

    let (status, body) = harness.redeem(&query["code"], VERIFIER).await;
    assert_eq!(status, 400, "a code is single use");
    assert_oauth_error(&body, "invalid_grant", 54005);

    // Without a login hint the first seeded user consents.
    let query = harness.authorize(&[]).await;
    let (_, body) = harness.redeem(&query["code"], VERIFIER).await;
    assert_eq!(
        harness.claims(&body).upn.as_deref(),
        Some("ada@contoso.com")
    );
}

#[tokio::test]
async fn a_wrong_code_verifier_or_an_old_code_is_refused() {
    let harness = start().await;
    seed_contoso(&harness);
    let query = harness.authorize(&[]).await;
    let (status, body) = harness.redeem(&query["code"], "some-other-verifier").await;
    assert_eq!(status, 400);
    assert_oauth_error(&body, "invalid_grant", 501481);
    let (status, _) = harness.redeem(&query["code"], VERIFIER).await;
    assert_eq!(status, 200, "a failed attempt does not burn the code");

    let query = harness.authorize(&[]).await;
    harness.clock.advance(Duration::minutes(11));
    let (status, body) = harness.redeem(&query["code"], VERIFIER).await;
    assert_eq!(status, 400);
    assert_oauth_error(&body, "invalid_grant", 70008);
}

#[tokio::test]
async fn authorize_reports_errors_through_the_redirect_unless_the_redirect_is_untrusted() {
    let harness = start().await;
    seed_contoso(&harness);
    let query = harness
        .authorize(&[("login_hint", "mallory@contoso.com")])
        .await;
    assert_eq!(query["error"], "invalid_request");
    assert!(query["error_description"].starts_with("AADSTS50034: "));
    assert_eq!(query["state"], "xyz");
    assert!(!query.contains_key("code"));

    let response = harness
        .http
        .get(format!("{}/contoso/oauth2/v2.0/authorize", harness.base))
        .query(&[
            ("client_id", "app-1"),
            ("response_type", "code"),
            ("redirect_uri", "https://evil.example/steal"),
            ("scope", "User.Read"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_oauth_error(&response.json().await.unwrap(), "invalid_request", 50011);
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_works_until_revoked() {
    let harness = start().await;
    seed_contoso(&harness);
    let first = harness.signed_in().await;
    let old = first["refresh_token"].as_str().unwrap();
    let (status, second) = harness.refresh(old).await;
    assert_eq!(status, 200, "{second}");
    let new = second["refresh_token"].as_str().unwrap();
    assert_ne!(new, old, "every use returns a fresh refresh token");
    let debug = format!("{:?}", harness.sim);
    assert!(
        !debug.contains(old) && !debug.contains(new),
        "refresh tokens stay out of Debug output"
    );
    assert_eq!(
        harness.claims(&second).upn.as_deref(),
        Some("ada@contoso.com")
    );
    let (status, _) = harness.refresh(old).await;
    assert_eq!(status, 200, "rotation does not revoke the old token");

    harness
        .sim
        .set_faults(IdentityFaults {
            revoke_refresh_tokens: Some(Users::Some(vec!["ada@contoso.com".into()])),
            ..IdentityFaults::default()
        })
        .unwrap();
    for token in [old, new] {
        let (status, body) = harness.refresh(token).await;
        assert_eq!(status, 400);
        assert_oauth_error(&body, "invalid_grant", 70008);
    }
    let (status, body) = harness.refresh("never-issued").await;
    assert_eq!(status, 400);
    assert_oauth_error(&body, "invalid_grant", 70008);
    let after = harness.signed_in().await;
    let (status, _) = harness
        .refresh(after["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 200, "revocation hits only tokens that existed");
}

#[tokio::test]
async fn a_refresh_token_unused_for_90_days_is_dead() {
    let harness = start().await;
    seed_contoso(&harness);
    let grant = harness.signed_in().await;
    let token = grant["refresh_token"].as_str().unwrap();
    harness.clock.advance(Duration::days(89));
    let (status, _) = harness.refresh(token).await;
    assert_eq!(
        status, 200,
        "89 idle days are fine, and the use counts as activity"
    );
    harness.clock.advance(Duration::days(89));
    let (status, _) = harness.refresh(token).await;
    assert_eq!(status, 200);
    harness.clock.advance(Duration::days(90));
    let (status, body) = harness.refresh(token).await;
    assert_eq!(status, 400);
    assert_oauth_error(&body, "invalid_grant", 700082);
}

#[tokio::test]
async fn interaction_can_be_demanded_for_a_user() {
    let harness = start().await;
    seed_contoso(&harness);
    let grant = harness.signed_in().await;
    harness
        .sim
        .set_faults(IdentityFaults {
            interaction_required: Some(Users::All),
            ..IdentityFaults::default()
        })
        .unwrap();
    let (status, body) = harness
        .refresh(grant["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 400);
    assert_oauth_error(&body, "interaction_required", 50076);
}

#[tokio::test]
async fn access_tokens_expire_on_the_shared_clock() {
    let harness = start().await;
    harness
        .sim
        .set_faults(IdentityFaults {
            access_token_lifetime_seconds: Some(60),
            ..IdentityFaults::default()
        })
        .unwrap();
    let (_, body) = harness
        .token(
            "contoso",
            &client_credentials("app-1", "pw", GLOBAL_DEFAULT),
        )
        .await;
    assert_eq!(body["expires_in"], 60);
    let token = body["access_token"].as_str().unwrap();
    assert!(harness.tokens.verify(token, harness.clock.now()).is_ok());
    harness.clock.advance(Duration::seconds(61));
    assert_eq!(
        harness.tokens.verify(token, harness.clock.now()),
        Err(TokenError::Expired)
    );
}

#[tokio::test]
async fn faults_answer_in_the_oauth_shape_and_requests_are_counted_by_route() {
    let harness = start().await;
    let faults: IdentityFaults = serde_json::from_value(json!({
        "faults": {"rules": [{"count": 1, "action": {"kind": "status", "status": 503}}]}
    }))
    .unwrap();
    harness.sim.set_faults(faults).unwrap();
    let form = client_credentials("a", "b", GLOBAL_DEFAULT);
    let (status, body) = harness.token("t", &form).await;
    assert_eq!(status, 503);
    assert_oauth_error(&body, "temporarily_unavailable", 90033);
    let (status, _) = harness.token("t", &form).await;
    assert_eq!(status, 200);
    let state = harness.sim.state();
    assert_eq!(state.requests, 2);
    assert_eq!(
        state.by_route.get("POST /login/{tenant}/oauth2/v2.0/token"),
        Some(&2),
        "{:?}",
        state.by_route
    );
    harness.sim.reset();
    assert_eq!(harness.sim.state().requests, 0);
}

#[test]
fn control_json_is_strict_and_secrets_stay_out_of_debug_output() {
    let seed: IdentitySeed = serde_json::from_value(json!({
        "apps": [{"tenant": "t", "client_id": "c", "client_secret": "hunter2"}]
    }))
    .unwrap();
    assert!(!format!("{seed:?}").contains("hunter2"));
    assert!(
        serde_json::from_value::<IdentitySeed>(json!({"apps": [], "mailboxes": []})).is_err(),
        "unknown keys are refused"
    );
    assert!(
        serde_json::from_value::<IdentitySeed>(json!({"apps": [{"tenant": "t", "client_id": "c",
            "client_secret": "s", "cloud": "mars"}]}))
        .is_err()
    );
}
