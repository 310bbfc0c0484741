//! Doorman's one integration-test binary: real HTTP servers on 127.0.0.1:0, a real
//! redis-server per test run, the app that `main` builds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod account;
mod admin;
mod architecture;
mod authorize;
mod cimd;
mod cluster;
mod config;
mod docs;
mod docserver;
mod faults;
pub mod flow;
mod gate;
mod gate_support;
mod hostile;
mod jwt;
mod metadata;
mod ops;
mod props;
mod real_clients;
mod register;
mod security;
mod storage;
mod upstream;
mod upstream_support;
