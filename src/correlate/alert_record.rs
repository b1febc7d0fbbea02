//! How an [`Alert`] is written into a shard snapshot and read back: field by field, as the
//! alert was before its text shared one allocation, so snapshots of either read the same.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::incident::Alert;
use super::said::Said;
use super::text::{AlertText, Text};
use crate::event::{Details, DetailsRef, LabelBuf, Labels, Severity};
use crate::integration::{Integration, KeySpace};
use crate::publish::encode::Status;
use crate::time::{MaybeMillis, UnixMillis};

/// An alert as a snapshot holds it: written from borrowed text ([`Written`]), read into owned
/// text ([`Read`]).
#[derive(Serialize, Deserialize)]
struct Record<S, L, D> {
    hash: u64,
    dedup_key: S,
    summary: S,
    source: S,
    component: Option<S>,
    group: Option<S>,
    class: Option<S>,
    labels: L,
    details: D,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    joined_as: Option<u8>,
}

type Written<'a> = Record<&'a str, Labels<'a>, Option<DetailsRef<'a>>>;
type Read = Record<String, LabelBuf, Option<Details>>;

impl Serialize for Alert {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Written {
            hash: self.hash,
            dedup_key: self.dedup_key(),
            summary: self.summary(),
            source: self.source(),
            component: self.component(),
            group: self.group(),
            class: self.class(),
            labels: self.labels(),
            details: self.details(),
            severity: self.severity,
            status: self.status,
            integration: self.integration,
            key_space: self.key_space,
            event_count: self.event_count,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            ends_at: self.ends_at.get(),
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
                labels: r.labels.labels(),
            }),
            said: Said::new(r.summary, r.details),
            severity: r.severity,
            status: r.status,
            integration: r.integration,
            key_space: r.key_space,
            event_count: r.event_count,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
            ends_at: MaybeMillis::new(r.ends_at),
            silenced: r.silenced,
            inhibited: r.inhibited,
            grouped_by: r.grouped_by,
            joined_as: r.joined_as,
        })
    }
}
