//! How an [`Alert`] is written into a shard snapshot and read back: field by field, as the
//! alert was before its text shared one allocation, so snapshots of either read the same.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::incident::Alert;
use super::text::{AlertText, Text};
use crate::event::{Details, Labels, Severity};
use crate::integration::{Integration, KeySpace};
use crate::publish::encode::Status;
use crate::time::UnixMillis;

#[derive(Serialize)]
struct Written<'a> {
    hash: u64,
    dedup_key: &'a str,
    summary: &'a str,
    source: &'a str,
    component: Option<&'a str>,
    group: Option<&'a str>,
    class: Option<&'a str>,
    labels: Labels<'a>,
    details: &'a Option<Details>,
    severity: Severity,
    status: Status,
    integration: Integration,
    key_space: KeySpace,
    event_count: u32,
    first_seen: UnixMillis,
    last_seen: UnixMillis,
    ends_at: Option<UnixMillis>,
    silenced: bool,
    inhibited: bool,
    grouped_by: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    joined_as: Option<u8>,
}

#[derive(Deserialize)]
struct Read {
    hash: u64,
    dedup_key: String,
    summary: Box<str>,
    source: String,
    component: Option<String>,
    group: Option<String>,
    class: Option<String>,
    labels: Vec<(String, String)>,
    details: Option<Details>,
    severity: Severity,
    status: Status,
    integration: Integration,
    key_space: KeySpace,
    event_count: u32,
    first_seen: UnixMillis,
    last_seen: UnixMillis,
    ends_at: Option<UnixMillis>,
    silenced: bool,
    inhibited: bool,
    #[serde(default)]
    grouped_by: Option<u8>,
    #[serde(default)]
    joined_as: Option<u8>,
}

impl Serialize for Alert {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Written {
            hash: self.hash,
            dedup_key: self.dedup_key(),
            summary: &self.summary,
            source: self.source(),
            component: self.component(),
            group: self.group(),
            class: self.class(),
            labels: self.labels(),
            details: &self.details,
            severity: self.severity,
            status: self.status,
            integration: self.integration,
            key_space: self.key_space,
            event_count: self.event_count,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            ends_at: self.ends_at,
            silenced: self.silenced,
            inhibited: self.inhibited,
            grouped_by: self.grouped_by,
            joined_as: self.joined_as,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Alert {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = Read::deserialize(d)?;
        Ok(Alert {
            hash: r.hash,
            text: AlertText::new(Text {
                dedup_key: &r.dedup_key,
                source: &r.source,
                component: r.component.as_deref(),
                group: r.group.as_deref(),
                class: r.class.as_deref(),
                labels: &r.labels,
            }),
            summary: r.summary,
            details: r.details,
            severity: r.severity,
            status: r.status,
            integration: r.integration,
            key_space: r.key_space,
            event_count: r.event_count,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
            ends_at: r.ends_at,
            silenced: r.silenced,
            inhibited: r.inhibited,
            grouped_by: r.grouped_by,
            joined_as: r.joined_as,
        })
    }
}
