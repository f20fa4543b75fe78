//! Hearth's integration tests: one binary, one harness, real daemons over HTTPS on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api;
mod batch;
mod bounds;
mod browser;
mod crash;
mod federation;
#[allow(dead_code)] // Helpers serve many test modules; not every build uses each one.
mod harness;
mod merge;
mod migration;
mod pages;
mod sdk;
mod tidy;
