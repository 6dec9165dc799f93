//! Graph's errors, typed by what halosync must do about them.
//!
//! Graph answers `{"error":{"code","message","innerError":{"request-id",...}}}`;
//! the code (not the status alone) decides the action, and the request id
//! is kept so an administrator can quote it to Microsoft.

use std::time::Duration;

use serde::Deserialize;

use super::auth::AuthError;
use crate::http::HttpError;

/// Why a Graph request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GraphError {
    /// No access token: the sign-in or the app registration needs attention.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// No answer from Graph at all (after the retries the policy allows).
    #[error("{0}")]
    Transport(String),
    /// Graph answered, but not with what halosync expected.
    #[error("{mailbox}: unexpected answer from Graph to {request}: {detail}")]
    Decode {
        mailbox: String,
        request: String,
        detail: String,
    },
    /// The item is gone (deleted, or moved without immutable ids) — or, for
    /// a delegate, the mailbox is not shared with it.
    #[error(
        "{mailbox}: the item was not found ({message}){}",
        request_id_suffix(request_id)
    )]
    ItemNotFound {
        mailbox: String,
        message: String,
        request_id: Option<String>,
    },
    /// No rights to this mailbox (including an application access policy).
    #[error(
        "{mailbox}: access denied ({message}); check the app's Calendars.ReadWrite permission and any application access policy{}",
        request_id_suffix(request_id)
    )]
    AccessDenied {
        mailbox: String,
        message: String,
        request_id: Option<String>,
    },
    /// The mailbox has no Exchange Online licence, is a guest, or is on-premises.
    #[error(
        "{mailbox}: the mailbox is not available to Graph (MailboxNotEnabledForRESTAPI: unlicensed, inactive, soft-deleted or on-premises){}",
        request_id_suffix(request_id)
    )]
    MailboxNotEnabled {
        mailbox: String,
        request_id: Option<String>,
    },
    /// The user does not exist (or no longer does).
    #[error("{mailbox}: no such user ({code}){}", request_id_suffix(request_id))]
    UnknownUser {
        mailbox: String,
        code: String,
        request_id: Option<String>,
    },
    /// The item changed since we read it (`If-Match` failed): re-read, merge, retry.
    #[error(
        "{mailbox}: the item changed since it was read (ErrorIrresolvableConflict){}",
        request_id_suffix(request_id)
    )]
    Conflict {
        mailbox: String,
        request_id: Option<String>,
    },
    /// The delta token is no longer valid: resync the window.
    #[error("{mailbox}: the delta link expired ({code}); the window will be resynced")]
    ResyncRequired { mailbox: String, code: String },
    /// An occurrence cannot move past its neighbour.
    #[error("{mailbox}: an occurrence cannot be moved over another occurrence of its series")]
    OccurrenceCrossingBoundary { mailbox: String },
    /// A subscription was refused (lifetime, validation, permissions).
    #[error("subscription refused ({code}): {message}")]
    Subscription { code: String, message: String },
    /// Throttled (429) or unavailable (503/504); retry after the wait.
    #[error("{mailbox}: throttled or unavailable (HTTP {status}, {code}); retry after {}s", retry_after.map_or(0, |d| d.as_secs()))]
    Throttled {
        mailbox: String,
        status: u16,
        code: String,
        retry_after: Option<Duration>,
    },
    /// The access token was refused (expired or revoked).
    #[error("the access token was refused ({code})")]
    Unauthorized { code: String },
    /// Anything else, with Graph's own words.
    #[error(
        "{mailbox}: Graph answered HTTP {status} {code}: {message}{}",
        request_id_suffix(request_id)
    )]
    Other {
        mailbox: String,
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },
}

impl From<HttpError> for GraphError {
    fn from(error: HttpError) -> Self {
        Self::Transport(error.to_string())
    }
}

fn request_id_suffix(request_id: &Option<String>) -> String {
    request_id
        .as_ref()
        .map(|id| format!(" [request-id {id}]"))
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct Envelope {
    error: Body,
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default, rename = "innerError")]
    inner_error: Option<Inner>,
}

#[derive(Deserialize)]
struct Inner {
    #[serde(default, rename = "request-id")]
    request_id: Option<String>,
}

/// How the caller reached the mailbox: it changes what a 404 means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The app's own permission, or the signed-in owner of the mailbox.
    Direct,
    /// A delegate acting on someone else's mailbox (connection option 2).
    Delegate,
}

impl GraphError {
    /// Types a failed response. `request_id` is the `request-id` response
    /// header, used when the body does not carry one.
    pub fn from_response(
        mailbox: &str,
        status: u16,
        retry_after: Option<Duration>,
        header_request_id: Option<String>,
        body: &[u8],
    ) -> Self {
        let parsed = serde_json::from_slice::<Envelope>(body)
            .ok()
            .map(|e| e.error);
        let (code, message, body_request_id) = match parsed {
            Some(body) => (
                body.code,
                body.message,
                body.inner_error.and_then(|i| i.request_id),
            ),
            None => (
                String::new(),
                String::from_utf8_lossy(body).chars().take(200).collect(),
                None,
            ),
        };
        let request_id = body_request_id.or(header_request_id);
        let mailbox = mailbox.to_string();
        match (status, code.as_str()) {
            (401, _) => Self::Unauthorized {
                code: if code.is_empty() {
                    "InvalidAuthenticationToken".into()
                } else {
                    code
                },
            },
            (410, _) | (_, "syncStateNotFound" | "resyncRequired" | "SyncStateNotFound") => {
                Self::ResyncRequired {
                    mailbox,
                    code: if code.is_empty() {
                        "410 Gone".into()
                    } else {
                        code
                    },
                }
            }
            (429 | 503 | 504, _) => Self::Throttled {
                mailbox,
                status,
                code,
                retry_after,
            },
            (_, "MailboxNotEnabledForRESTAPI") => Self::MailboxNotEnabled {
                mailbox,
                request_id,
            },
            (_, "ErrorItemNotFound") => Self::ItemNotFound {
                mailbox,
                message,
                request_id,
            },
            (_, "ErrorAccessDenied") | (403, "") => Self::AccessDenied {
                mailbox,
                message,
                request_id,
            },
            (_, "ErrorInvalidUser" | "Request_ResourceNotFound" | "ResourceNotFound") => {
                Self::UnknownUser {
                    mailbox,
                    code,
                    request_id,
                }
            }
            (412 | 409, _) | (_, "ErrorIrresolvableConflict") => Self::Conflict {
                mailbox,
                request_id,
            },
            (_, "ErrorOccurrenceCrossingBoundary") => Self::OccurrenceCrossingBoundary { mailbox },
            (_, "ExtensionError" | "ValidationError" | "InvalidRequest")
                if message.to_ascii_lowercase().contains("subscription")
                    || message.to_ascii_lowercase().contains("expiration")
                    || message.to_ascii_lowercase().contains("notification") =>
            {
                Self::Subscription { code, message }
            }
            _ => Self::Other {
                mailbox,
                status,
                code,
                message,
                request_id,
            },
        }
    }

    /// Worth retrying later without any change (throttling, outages).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Transport(_))
            || matches!(self, Self::Other { status, .. } if *status >= 500)
            || matches!(self, Self::Auth(AuthError::Transient { .. }))
    }

    /// What an administrator should do, for `status` and `check
    /// --connectivity`: the guide's "common errors" in halosync's words.
    pub fn diagnosis(&self, access: Access) -> Option<String> {
        match (self, access) {
            (Self::ItemNotFound { mailbox, .. }, Access::Delegate) => Some(format!(
                "\"The specified object was not found in the store\": the connected account has no delegate \
                 (Full Access / Mailbox Folder) permission on {mailbox}'s calendar, or it was granted very \
                 recently — grants can take up to an hour to take effect"
            )),
            (Self::AccessDenied { mailbox, .. }, _) => Some(format!(
                "grant the app Calendars.ReadWrite (application) with admin consent, and check that no \
                 Exchange application access policy excludes {mailbox} (policy changes take up to 30 minutes)"
            )),
            (Self::MailboxNotEnabled { mailbox, .. }, _) => Some(format!(
                "{mailbox} has no Exchange Online mailbox Graph can reach: assign an Exchange Online licence, \
                 or exclude this agent (it may be a guest, shared-without-licence, or on-premises mailbox)"
            )),
            (Self::UnknownUser { mailbox, .. }, _) => Some(format!(
                "{mailbox} does not exist in the tenant: fix the agent's e-mail in Halo or exclude the agent"
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: &str, message: &str) -> Vec<u8> {
        serde_json::json!({"error": {"code": code, "message": message,
            "innerError": {"request-id": "req-1", "date": "2026-11-29T05:00:00"}}})
        .to_string()
        .into_bytes()
    }

    type Expectation = fn(&GraphError) -> bool;

    #[test]
    fn each_documented_code_gets_its_type() {
        let cases: Vec<(u16, &str, Expectation)> = vec![
            (404, "ErrorItemNotFound", |e| {
                matches!(e, GraphError::ItemNotFound { .. })
            }),
            (403, "ErrorAccessDenied", |e| {
                matches!(e, GraphError::AccessDenied { .. })
            }),
            (404, "MailboxNotEnabledForRESTAPI", |e| {
                matches!(e, GraphError::MailboxNotEnabled { .. })
            }),
            (404, "ErrorInvalidUser", |e| {
                matches!(e, GraphError::UnknownUser { .. })
            }),
            (404, "Request_ResourceNotFound", |e| {
                matches!(e, GraphError::UnknownUser { .. })
            }),
            (412, "ErrorIrresolvableConflict", |e| {
                matches!(e, GraphError::Conflict { .. })
            }),
            (410, "syncStateNotFound", |e| {
                matches!(e, GraphError::ResyncRequired { .. })
            }),
            (400, "resyncRequired", |e| {
                matches!(e, GraphError::ResyncRequired { .. })
            }),
            (400, "ErrorOccurrenceCrossingBoundary", |e| {
                matches!(e, GraphError::OccurrenceCrossingBoundary { .. })
            }),
            (429, "ApplicationThrottled", |e| {
                matches!(e, GraphError::Throttled { status: 429, .. })
            }),
            (503, "serviceNotAvailable", |e| {
                matches!(e, GraphError::Throttled { status: 503, .. })
            }),
            (401, "InvalidAuthenticationToken", |e| {
                matches!(e, GraphError::Unauthorized { .. })
            }),
            (500, "ErrorInternalServerTransientError", |e| {
                matches!(e, GraphError::Other { status: 500, .. })
            }),
        ];
        for (status, code, expected) in cases {
            let error =
                GraphError::from_response("leah@contoso.com", status, None, None, &body(code, "m"));
            assert!(expected(&error), "{status} {code} became {error:?}");
        }
        let subscription = GraphError::from_response(
            "",
            400,
            None,
            None,
            &body(
                "ExtensionError",
                "Subscription expiration can only be 4230 minutes in the future.",
            ),
        );
        assert!(
            matches!(subscription, GraphError::Subscription { .. }),
            "{subscription:?}"
        );
    }

    #[test]
    fn the_request_id_comes_from_the_body_or_the_header() {
        let error = GraphError::from_response(
            "m@x.com",
            404,
            None,
            None,
            &body("ErrorItemNotFound", "gone"),
        );
        assert!(error.to_string().ends_with("[request-id req-1]"), "{error}");
        let error = GraphError::from_response(
            "m@x.com",
            500,
            None,
            Some("hdr-2".into()),
            b"<html>oops</html>",
        );
        assert!(error.to_string().contains("[request-id hdr-2]"), "{error}");
        assert!(error.is_transient());
    }

    #[test]
    fn the_delegate_not_found_case_is_diagnosed_as_the_guide_describes() {
        let error = GraphError::from_response(
            "amir@contoso.com",
            404,
            None,
            None,
            &body(
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            ),
        );
        let diagnosis = error.diagnosis(Access::Delegate).expect("diagnosed");
        assert!(diagnosis.contains("amir@contoso.com"), "{diagnosis}");
        assert!(diagnosis.contains("Full Access"), "{diagnosis}");
        assert!(diagnosis.contains("up to an hour"), "{diagnosis}");
        assert_eq!(
            error.diagnosis(Access::Direct),
            None,
            "for the app itself it just means gone"
        );
    }
}
