//! The Microsoft Graph client.
//!
//! - [`auth`]: access tokens for the three connection types and every cloud.

pub mod auth;
