//! End-to-end tests: one test binary (one link of rdkafka) for everything that crosses a
//! process or socket boundary.

mod harness;
mod helper_a;
mod helper_b;
mod helper_c;
mod http_api;
mod integrations;
mod kafka_faults;
mod real_broker;
mod replay;
