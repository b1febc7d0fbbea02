//! Silences (maintenance windows): matchers plus a time range. Matching alerts are tracked as
//! usual but their incidents are not published while every open alert is silenced; anything
//! already published still gets its `resolved`.

use serde::Serialize;

use crate::matchers::{Matcher, RawMatcher, Subject};
use crate::time::UnixMillis;

#[derive(Clone, Debug, PartialEq)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: UnixMillis,
    pub ends_at: UnixMillis,
    pub created_by: String,
    pub comment: String,
    pub created_at: UnixMillis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl Silence {
    pub fn state(&self, now: UnixMillis) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    pub fn silences(&self, subject: &impl Subject, now: UnixMillis) -> bool {
        self.state(now) == SilenceState::Active
            && crate::matchers::all_match(&self.matchers, subject)
    }

    /// The silence as the API shows it.
    pub fn view(&self, now: UnixMillis) -> SilenceView<'_> {
        SilenceView {
            id: &self.id,
            matchers: self.matchers.iter().map(Matcher::to_raw).collect(),
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            created_by: &self.created_by,
            comment: &self.comment,
            created_at: self.created_at,
            status: self.state(now),
        }
    }
}

#[derive(Serialize)]
pub struct SilenceView<'a> {
    pub id: &'a str,
    pub matchers: Vec<RawMatcher>,
    pub starts_at: UnixMillis,
    pub ends_at: UnixMillis,
    pub created_by: &'a str,
    pub comment: &'a str,
    pub created_at: UnixMillis,
    pub status: SilenceState,
}
