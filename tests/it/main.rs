//! Integration tests: one binary (so the suite links once), one module per area. Every test
//! runs the real `siphon` binary against real local HTTP servers and real files.

mod harness;

mod api;
mod auth;
mod boundary;
mod check;
mod commands;
mod completeness;
mod console;
mod crash;
mod credentials;
mod egress;
mod feldera;
mod fluvio;
mod ingress;
mod json_server;
mod nested;
mod observe;
mod options;
mod pipelines;
mod polling;
mod push_consume;
mod push_crash;
mod query;
mod resilience;
mod restart;
mod seeds;
mod sink;
mod state;
mod tidy;
mod views;
mod wait;
