//! Hearth's integration tests: one binary, one harness, real daemons over HTTPS on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod anonymous;
mod api;
mod arvados;
mod batch;
mod bounds;
mod browser;
mod crash;
mod examples;
mod federation;
mod hardening;
#[allow(dead_code)] // Helpers serve many test modules; not every build uses each one.
mod harness;
mod legacy;
mod listing;
mod merge;
mod migration;
mod oidc;
mod pages;
mod persons;
mod profiles;
mod redirects;
mod replicas;
mod sdk;
mod server;
mod store_copy;
mod throttle;
mod tidy;
