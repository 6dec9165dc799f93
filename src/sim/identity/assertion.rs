//! Verifying a client assertion (certificate credential) as Entra ID does:
//! the header's `x5t#S256` names one of the app's certificates, the RS256
//! signature must verify with its key, and the claims must name the app and
//! this token endpoint and be in their time range.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::OAuthError;

/// The only `client_assertion_type` the platform accepts.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(rename = "x5t#S256", default)]
    x5t_s256: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    aud: String,
    iss: String,
    sub: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
}

fn refused(code: u32, message: &str) -> OAuthError {
    OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", code, message)
}

fn malformed() -> OAuthError {
    OAuthError::bad_request(
        "invalid_request",
        50027,
        "JWT token is invalid or malformed.",
    )
}

/// Checks `assertion` for app `client_id` of `tenant`, whose registered
/// certificate is `certificate_pem` (`None`: the app has no certificate).
pub fn verify(
    assertion: &str,
    certificate_pem: Option<&str>,
    client_id: &str,
    tenant: &str,
    now: DateTime<Utc>,
) -> Result<(), OAuthError> {
    let mut parts = assertion.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| malformed());
    let parsed_header: Header =
        serde_json::from_slice(&decode(header)?).map_err(|_| malformed())?;
    let parsed_claims: Claims =
        serde_json::from_slice(&decode(claims)?).map_err(|_| malformed())?;
    let signature = decode(signature)?;

    let key_not_found = || {
        refused(
            700027,
            "Client assertion failed signature validation. [Reason - The key was not found.]",
        )
    };
    let certificate = certificate_pem
        .and_then(|pem| CertificateDer::from_pem_slice(pem.as_bytes()).ok())
        .ok_or_else(key_not_found)?;
    let thumbprint = URL_SAFE_NO_PAD.encode(Sha256::digest(certificate.as_ref()));
    if parsed_header.alg != "RS256" || parsed_header.x5t_s256.as_deref() != Some(&thumbprint) {
        return Err(key_not_found());
    }
    let end_entity = webpki::EndEntityCert::try_from(&certificate).map_err(|_| key_not_found())?;
    let signed = format!("{header}.{claims}");
    end_entity
        .verify_signature(
            webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &signature,
        )
        .map_err(|_| {
            refused(
                700027,
                "Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value.]",
            )
        })?;

    if parsed_claims.iss != client_id || parsed_claims.sub != client_id {
        return Err(refused(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        ));
    }
    if !parsed_claims
        .aud
        .ends_with(&format!("/{tenant}/oauth2/v2.0/token"))
    {
        return Err(refused(
            700212,
            "No matching federated identity record found for presented assertion audience.",
        ));
    }
    let now = now.timestamp();
    if parsed_claims.exp <= now || parsed_claims.nbf.is_some_and(|nbf| nbf > now + 300) {
        return Err(refused(
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::assertion::ClientCertificate;
    use chrono::TimeZone;
    use secrecy::{ExposeSecret, SecretString};

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
        )
        .expect("fixture")
    }

    #[test]
    fn claims_are_checked_after_the_signature() {
        let certificate = ClientCertificate::from_pem(&SecretString::from(
            fixture("client-cert-test-key.pem") + &fixture("client-cert-test.pem"),
        ))
        .expect("loads");
        let registered = fixture("client-cert-test.pem");
        let now = Utc
            .with_ymd_and_hms(2026, 11, 29, 6, 0, 0)
            .single()
            .expect("date");
        let url = "http://127.0.0.1:1/login/contoso/oauth2/v2.0/token";
        let jwt = certificate.assertion("app", url, now).expect("signs");
        let check = |client: &str, tenant: &str, at| {
            verify(jwt.expose_secret(), Some(&registered), client, tenant, at).map_err(|e| e.code)
        };
        assert_eq!(check("app", "contoso", now), Ok(()));
        assert_eq!(check("other-app", "contoso", now), Err(700021));
        assert_eq!(check("app", "fabrikam", now), Err(700212));
        assert_eq!(
            check("app", "contoso", now + chrono::Duration::minutes(11)),
            Err(700024)
        );
        assert_eq!(
            verify(
                jwt.expose_secret(),
                Some(&fixture("other-cert-test.pem")),
                "app",
                "contoso",
                now
            )
            .map_err(|e| e.code),
            Err(700027)
        );
        let tampered = format!("{}x", jwt.expose_secret());
        assert!(verify(&tampered, Some(&registered), "app", "contoso", now).is_err());
    }
}
