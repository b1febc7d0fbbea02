//! The ingest stage: HTTP in, normalized events handed to the correlator, each sender answered
//! the way it expects.

pub mod admin;
pub mod auth;
pub mod body;
pub mod commands_topic;
pub mod confirm;
pub mod incidents_api;
pub mod integrations;
pub mod record;
pub mod response;
pub mod router;
pub mod server;
pub mod silence_log;
pub mod silences;
pub mod silences_v2;
pub mod sns_verify;
pub mod status;
pub mod tls;
