//! End-to-end tests: one test binary (one link of rdkafka) for everything that crosses a
//! process or socket boundary.

mod alertmanager_read;
mod auth;
mod certs;
mod chaos;
mod cli;
mod deliver;
mod deploy;
mod enrich;
mod harness;
mod heartbeats;
mod http_api;
mod incidents_api;
mod integrations;
mod integrations_batched;
mod integrations_cloud;
mod integrations_webhooks;
mod kafka_faults;
mod kafka_migrate;
mod kafka_mode;
mod kafka_mode_faults;
mod kafka_proxy;
mod kafka_security;
mod limits;
mod malformed;
mod real_broker;
mod replay;
mod scenarios;
mod schema;
mod signatures;
mod sns_signatures;
mod state_dir;
mod status_page;
mod tls;
mod transport;
