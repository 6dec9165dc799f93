//! Failures of the shared HTTP layer: the request never got an HTTP answer.
//! An answer with an error status is a [`super::Reply`], not an error here,
//! because only the upstream client knows how to read its error body.

use std::error::Error as _;

use super::Upstream;

/// How a request failed to get an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// No connection could be made (DNS, refused, TLS): the request was
    /// never sent.
    Connect,
    /// The connect or request timeout passed.
    Timeout,
    /// The connection broke while sending or reading.
    Other,
}

impl TransportKind {
    pub(crate) fn of(error: &reqwest::Error) -> Self {
        if error.is_connect() {
            Self::Connect
        } else if error.is_timeout() {
            Self::Timeout
        } else {
            Self::Other
        }
    }
}

/// Why the HTTP layer could not deliver a request.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("could not set up the HTTP client for {upstream}: {reason}")]
    Build { upstream: Upstream, reason: String },

    #[error(
        "{method} {path} to {upstream} got no answer after {attempts} attempt(s): {reason}; check that this host can reach the {upstream} server (DNS, firewall, proxy) and that its URL in the configuration is right"
    )]
    Transport {
        upstream: Upstream,
        method: String,
        /// Scrubbed of secret query values.
        path: String,
        attempts: u32,
        kind: TransportKind,
        reason: String,
    },
}

/// A transport error's text without its URL (which can carry secrets in the
/// query) but with the underlying causes, which say what actually went wrong.
pub(crate) fn describe_transport(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
