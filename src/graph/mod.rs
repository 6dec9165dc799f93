//! The Microsoft Graph client.
//!
//! - [`auth`]: access tokens for the three connection types and every cloud.
//! - [`assertion`]: certificate credentials (signed client assertions).
//! - [`error`]: Graph's errors, typed by what to do about them.
//! - [`GraphClient`] (built on [`crate::http`]): users, events, calendarView,
//!   delta, `$batch`, subscriptions and id translation, speaking the wire
//!   model in [`model`].

pub mod assertion;
pub mod auth;
mod batch;
mod client;
mod delta;
pub mod error;
mod events;
pub mod model;
mod subscriptions;

pub use batch::{BatchRequest, BatchResponse, MAX_BATCH_REQUESTS};
pub use client::{GraphClient, GraphClientOptions, GraphUpstreams, MAILBOX_BUDGET_WINDOW};
pub use delta::{DeltaPage, DeltaPages, DeltaRound, FirstDeltaPage};
pub use error::{Access, GraphError};
pub use events::{MAX_TRANSLATE_IDS, PAGE_SIZE, TranslatedId, Window};
pub use subscriptions::{NewSubscription, Subscription, named_limit_minutes};
