//! Guardrails' common crate: the policy, the plan and the pure deployment core that every
//! Lambda function and the command-line tool share. Business logic lives here, never in a
//! function's `main.rs`.

pub mod access;
#[cfg(feature = "aws")]
pub mod aws;
pub mod backtest;
pub mod core;
pub mod driver;
pub mod events;
#[cfg(feature = "aws")]
pub mod handlers;
#[cfg(feature = "aws")]
pub mod inbound;
pub mod judge;
pub mod memory;
pub mod metrics;
pub mod page;
pub mod plan;
pub mod policy;
pub mod ports;
pub mod preflight;
pub mod status;
pub mod units;
pub mod wake;
