//! Signing a user in to the simulated identity platform the way a browser
//! would: the authorization code flow with PKCE, then redeeming the code.
//! Shared by the tests that need a stored (refresh-token) sign-in.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The app registration a user signs in to.
pub struct App<'a> {
    /// The simulator's `login_url` (ends with `/`).
    pub login: &'a url::Url,
    pub tenant: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
}

/// Signs `upn` in for `scope` and returns the refresh token.
pub async fn sign_in(app: &App<'_>, upn: &str, scope: &str) -> SecretString {
    // The authorize endpoint answers with a redirect carrying the code.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let verifier = "a-very-long-pkce-code-verifier-0123456789abcdef";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let redirect = "http://localhost:8780/auth/callback";
    let base = format!("{}{}/oauth2/v2.0", app.login, app.tenant);
    let authorize = http
        .get(format!("{base}/authorize"))
        .query(&[
            ("client_id", app.client_id),
            ("response_type", "code"),
            ("redirect_uri", redirect),
            ("scope", scope),
            ("state", "s1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("login_hint", upn),
        ])
        .send()
        .await
        .expect("authorize");
    let location = authorize.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let code = url::Url::parse(&location)
        .expect("redirect url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| panic!("no code in {location}"));
    let token: Value = http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", app.client_id),
            ("client_secret", app.client_secret),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
            ("scope", scope),
        ])
        .send()
        .await
        .expect("redeem")
        .json()
        .await
        .expect("json");
    SecretString::from(
        token["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_string(),
    )
}
