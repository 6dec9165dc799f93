//! Graph change notifications: the embedded listener, the subscriptions
//! that feed it and the queue that hands changed mailboxes to the engine.
//!
//! - [`listener`]: `POST` on the notify and lifecycle paths: validation
//!   handshake, verification, persistence before `202`, inbound log.
//! - [`notification`]: parsing and clientState verification (pure).
//! - [`intake`]: one request's items recorded in one transaction.
//! - [`queue`]: [`WebhookQueue`], coalesced per mailbox, consumed by the
//!   sync engine.
//! - [`lifecycle`]: what lifecycle events record, and the task that acts on
//!   them.
//! - [`subscriptions`]: [`SubscriptionManager`]: create, renew, repair,
//!   delete.
//! - [`upkeep`]: the subscriptions kept in step with the agents served.

mod intake;
mod lifecycle;
mod listener;
pub mod notification;
mod queue;
mod subscriptions;
mod upkeep;

pub use lifecycle::tend;
pub use listener::{
    BODY_TIMEOUT, MAX_BODY_BYTES, MAX_TOKEN_CHARS, PERSIST_TIMEOUT, WebhookError, WebhookState,
    serve, serve_public,
};
pub use queue::{ChangeReason, DEFAULT_DEBOUNCE, MailboxChanged, WebhookQueue};
pub use subscriptions::{
    DeliveryUrls, Ensured, GraphClients, SubscriptionError, SubscriptionManager,
    SubscriptionSettings, SubscriptionTarget, Tended, TendedSubscription, renewal_due_at,
};
pub use upkeep::{ServedMailbox, Upkeep, served_mailboxes};
