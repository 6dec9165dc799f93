//! The Microsoft Graph client.
//!
//! - [`auth`]: access tokens for the three connection types and every cloud.
//! - [`error`]: Graph's errors, typed by what to do about them.

pub mod auth;
pub mod error;
