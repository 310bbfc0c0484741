//! Protocol rules without I/O: pure functions over parsed requests, stored records and `now`.
//! Imports neither the store, the flows, nor anything of HTTP.

pub mod authorize;
pub mod cimd;
pub mod errors;
pub mod github;
pub mod grants;
pub mod identity;
pub mod jwt;
pub mod oidc;
pub mod params;
pub mod pkce;
pub mod redirect_uri;
pub mod register;
pub mod resource;
pub mod scope;
pub mod target;
