//! HTTP handlers, one file per endpoint. Handlers parse raw input themselves and call the
//! protocol layer; renderers turn the outcome into a response.

pub mod authorize;
pub mod common;
pub mod health;
pub mod login;
pub mod metadata;
pub mod ratelimit;
pub mod register;
pub mod token;
