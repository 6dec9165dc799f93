//! Change-notification subscriptions: create, renew, reauthorize, delete,
//! list. Graph's maximum lifetime for Outlook events has changed over the
//! years (4,230 and 10,080 minutes); when Graph refuses an expiry and names
//! its limit, the request is repeated once with that limit.

use chrono::{DateTime, Duration, Utc};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::client::{Call, GraphClient};
use super::error::GraphError;
use super::events::Page;

/// A subscription as Graph returns it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub change_type: String,
    #[serde(default)]
    pub notification_url: String,
    #[serde(default)]
    pub lifecycle_notification_url: Option<String>,
    pub expiration_date_time: DateTime<Utc>,
    /// The shared secret every notification must echo.
    #[serde(default)]
    pub client_state: Option<SecretString>,
}

/// What to subscribe to.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    /// e.g. `/users/{id}/events`.
    pub resource: String,
    /// e.g. `created,updated,deleted`.
    pub change_type: String,
    pub notification_url: String,
    pub lifecycle_notification_url: Option<String>,
    pub expiration: DateTime<Utc>,
    pub client_state: SecretString,
}

/// Ask for this much less than the limit Graph named, so the clock moving
/// between our request and its check cannot push the expiry over again.
const LIMIT_MARGIN_MINUTES: i64 = 1;

/// The maximum lifetime an `ExtensionError` names ("Subscription expiration
/// can only be 4230 minutes in the future.").
pub fn named_limit_minutes(message: &str) -> Option<i64> {
    let words: Vec<&str> = message.split_whitespace().collect();
    words
        .windows(2)
        .find(|pair| pair[1].to_ascii_lowercase().starts_with("minute"))
        .and_then(|pair| pair[0].parse().ok())
        .filter(|minutes: &i64| *minutes > 0)
}

impl GraphClient {
    /// Creates a subscription; Graph validates the notification URLs before
    /// answering. Not retried on an ambiguous failure: a replay could leave
    /// two subscriptions.
    pub async fn create_subscription(
        &self,
        new: &NewSubscription,
    ) -> Result<Subscription, GraphError> {
        let body = |expiration: DateTime<Utc>| {
            let mut body = json!({
                "changeType": new.change_type,
                "notificationUrl": new.notification_url,
                "resource": new.resource,
                "expirationDateTime": expiration.to_rfc3339(),
                "clientState": new.client_state.expose_secret(),
                "latestSupportedTlsVersion": "v1_2",
            });
            if let Some(url) = &new.lifecycle_notification_url {
                body["lifecycleNotificationUrl"] = json!(url);
            }
            body
        };
        let url = self.url(&["subscriptions"]);
        self.with_lifetime_fallback(new.expiration, |expiration| {
            Call::new(Method::POST, url.clone(), None).json(body(expiration))
        })
        .await
    }

    /// Extends a subscription (which also reauthorizes it).
    pub async fn renew_subscription(
        &self,
        id: &str,
        expiration: DateTime<Utc>,
    ) -> Result<Subscription, GraphError> {
        let url = self.url(&["subscriptions", id]);
        self.with_lifetime_fallback(expiration, |expiration| {
            let mut call = Call::new(Method::PATCH, url.clone(), None)
                .json(json!({"expirationDateTime": expiration.to_rfc3339()}));
            // Setting an absolute expiry twice is the same as once.
            call.replay_safe = true;
            call
        })
        .await
    }

    /// Answers a `reauthorizationRequired` lifecycle notification without
    /// changing the expiry.
    pub async fn reauthorize_subscription(&self, id: &str) -> Result<(), GraphError> {
        let url = self.url(&["subscriptions", id, "reauthorize"]);
        let mut call = Call::new(Method::POST, url, None);
        call.replay_safe = true;
        self.send(call).await.map(drop)
    }

    pub async fn delete_subscription(&self, id: &str) -> Result<(), GraphError> {
        let url = self.url(&["subscriptions", id]);
        let mut call = Call::new(Method::DELETE, url, None);
        // Deleting twice ends the same way (the second is a 404).
        call.replay_safe = true;
        self.send(call).await.map(drop)
    }

    /// The subscriptions this app (or signed-in user) created.
    pub async fn subscriptions(&self) -> Result<Vec<Subscription>, GraphError> {
        let mut all = Vec::new();
        let mut next = Some(self.url(&["subscriptions"]));
        while let Some(url) = next.take() {
            let page: Page<Subscription> =
                self.send_json(Call::new(Method::GET, url, None)).await?;
            all.extend(page.value);
            next = page.next_link.map(|l| self.link(&l, "")).transpose()?;
        }
        Ok(all)
    }

    /// Sends `make(expiration)`; if Graph refuses the expiry and names its
    /// maximum lifetime, sends it once more with that lifetime.
    async fn with_lifetime_fallback<'a>(
        &self,
        expiration: DateTime<Utc>,
        make: impl Fn(DateTime<Utc>) -> Call<'a>,
    ) -> Result<Subscription, GraphError> {
        match self.send_json(make(expiration)).await {
            Err(GraphError::Subscription { code, message }) => {
                let Some(limit) = named_limit_minutes(&message) else {
                    return Err(GraphError::Subscription { code, message });
                };
                let lowered =
                    self.clock().now() + Duration::minutes((limit - LIMIT_MARGIN_MINUTES).max(1));
                if lowered >= expiration {
                    return Err(GraphError::Subscription { code, message });
                }
                tracing::info!(
                    limit_minutes = limit,
                    "Graph named a shorter subscription lifetime; using it"
                );
                self.send_json(make(lowered)).await
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_limit_is_read_from_graphs_message() {
        assert_eq!(
            named_limit_minutes("Subscription expiration can only be 4230 minutes in the future."),
            Some(4230)
        );
        assert_eq!(named_limit_minutes("can only be 1 minute ahead"), Some(1));
        assert_eq!(
            named_limit_minutes("Subscription validation request failed."),
            None
        );
        assert_eq!(named_limit_minutes("-5 minutes"), None);
    }
}
