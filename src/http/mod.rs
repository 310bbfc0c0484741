//! HTTP handlers, one file per endpoint family, thin: read the request, call one flow, hand
//! its outcome to the renderer the route guard chose.

pub mod account;
pub mod authorize;
pub mod forwarding;
pub mod gate;
pub mod health;
pub mod login;
pub mod metadata;
pub mod negotiate;
pub mod proxy;
pub mod ratelimit;
pub mod register;
pub mod request;
pub mod token;
pub mod upstream;
