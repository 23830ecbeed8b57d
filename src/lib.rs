//! A Prometheus exporter for the health of AWS IAM credentials: how long ago
//! each account's root password was rotated, root MFA and access keys, the
//! password policy, and every IAM user's passwords and access keys.
//!
//! The binary wires these modules together; each holds one idea.

pub mod aws;
pub mod cli;
pub mod cloudtrail_event;
pub mod config;
pub mod credential_report;
pub mod logging;
pub mod metrics;
pub mod refresher;
pub mod root_password;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod store;

#[cfg(test)]
mod test_support;
