//! Parsers from each sender's own payload into [`crate::event::Event`]s. One file per
//! integration, each opening with a header that says where its dedup key comes from and how
//! resolve is signalled.

pub mod fields;
pub mod pagerduty;
