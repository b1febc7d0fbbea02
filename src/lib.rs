//! sluice: a high-throughput alert ingestion and correlation gateway.
//!
//! ```text
//! HTTP (ingest) ──▶ normalize (ingest::integrations) ──▶ correlate (sharded) ──▶ publish (Kafka)
//!   PagerDuty v2/v1,        one Event model              event rules, dedup       incident messages,
//!   change events                                        -> alerts, group ->      key = incident_id
//!                                                        incidents
//! ```
//!
//! Between ingest and correlation sits the [`pipeline`]: in-process channels, or Kafka mode's
//! events topic read by a consumer group of correlators.
//!
//! Each stage has one module and data moves forward only: [`ingest`] knows nothing of Kafka,
//! [`correlate`] nothing of HTTP, [`publish`] nothing of integrations. [`app`] wires them and
//! owns shutdown; all time comes from one [`clock::Clock`].

pub mod app;
pub mod base64;
pub mod clock;
pub mod config;
pub mod correlate;
pub mod deliver;
pub mod event;
pub mod fuzzing;
pub mod ingest;
pub mod integration;
pub mod live;
pub mod manual;
pub mod matchers;
pub mod metrics;
pub mod pipeline;
pub mod publish;
pub mod recording;
pub mod replay;
pub mod runtime;
pub mod send;
pub mod tail;
pub mod time;
pub mod view;
