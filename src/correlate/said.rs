//! What an alert's latest event said: its summary and its details (`custom_details`, kept as
//! `event::KeptDetails`). A Prometheus alert's summary is one of its annotations, and its
//! annotations are its details, so the summary is usually in the details' kept text already:
//! it is then kept as its place there instead of a second copy (one allocation fewer kept,
//! and 779 -> 732 live heap bytes per open alert of the load tests' shape: `cargo bench
//! --bench alloc`, `hold`).

use crate::event::{Details, DetailsRef, KeptDetails};

pub struct Said {
    /// As pairs when they are annotations (`event::KeptDetails`).
    details: Option<KeptDetails>,
    summary: Summary,
}

enum Summary {
    Own(Box<str>),
    /// The bytes `at..at + len` of the details' kept text.
    InDetails {
        at: u32,
        len: u32,
    },
}

impl Said {
    pub fn new(summary: String, details: Option<Details>) -> Said {
        Said::kept(summary, details.map(KeptDetails::new))
    }

    fn kept(summary: String, details: Option<KeptDetails>) -> Said {
        let summary = place(&summary, details.as_ref())
            .unwrap_or_else(|| Summary::Own(summary.into_boxed_str()));
        Said { details, summary }
    }

    pub fn summary(&self) -> &str {
        match &self.summary {
            Summary::Own(s) => s,
            Summary::InDetails { at, len } => self
                .details
                .as_ref()
                .and_then(|d| d.text().get(*at as usize..(at + len) as usize))
                .unwrap_or_default(),
        }
    }

    pub fn details(&self) -> Option<DetailsRef<'_>> {
        self.details.as_ref().map(KeptDetails::get)
    }

    /// What a later event of the alert said: its summary, and its details when it had some
    /// (an event without details keeps the ones the alert has). A re-send usually says what the
    /// alert holds already, which is kept as it is.
    pub fn update(&mut self, summary: String, details: Option<Details>) {
        let details = match (details, &self.details) {
            (Some(d), Some(kept)) if kept.same_as(&d) => None,
            (Some(d), _) => Some(KeptDetails::new(d)),
            (None, _) => None,
        };
        let details = match details {
            Some(d) => Some(d),
            None if self.summary() == summary => return,
            None => self.details.take(),
        };
        *self = Said::kept(summary, details);
    }
}

/// `summary`'s place in the details' text, if it is there (any occurrence: its bytes are the
/// summary's). An empty summary needs no place.
fn place(summary: &str, details: Option<&KeptDetails>) -> Option<Summary> {
    if summary.is_empty() {
        return None;
    }
    let at = details?.text().find(summary)?;
    let end = u32::try_from(at + summary.len()).ok()?;
    let len = summary.len() as u32;
    Some(Summary::InDetails { at: end - len, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(json: &str) -> Option<Details> {
        Some(Details(
            serde_json::value::RawValue::from_string(json.into()).expect("JSON"),
        ))
    }

    fn in_details(said: &Said) -> bool {
        matches!(said.summary, Summary::InDetails { .. })
    }

    #[test]
    fn a_summary_among_the_details_is_kept_as_its_place_there() {
        let said = Said::new(
            "DiskFull on host-1".into(),
            details(r#"{"description":"disk at 97%","summary":"DiskFull on host-1"}"#),
        );
        assert!(in_details(&said));
        assert_eq!(said.summary(), "DiskFull on host-1");
        // Not among them (an escaped quote differs from the text), or no details: its own.
        let said = Said::new(r#"say "hi""#.into(), details(r#"{"summary":"say \"hi\""}"#));
        assert!(!in_details(&said));
        assert_eq!(said.summary(), r#"say "hi""#);
        let said = Said::new("lone".into(), None);
        assert_eq!((said.summary(), said.details().is_none()), ("lone", true));
        assert_eq!(Said::new(String::new(), details("{}")).summary(), "");
    }

    #[test]
    fn an_update_keeps_what_did_not_change_and_places_the_summary_again() {
        let mut said = Said::new("CPU high".into(), details(r#"{"summary":"CPU high"}"#));
        // New details, same summary: placed in the new details.
        said.update(
            "CPU high".into(),
            details(r#"{"value":"97","summary":"CPU high"}"#),
        );
        assert!(in_details(&said));
        assert_eq!(said.summary(), "CPU high");
        assert_eq!(
            said.details().map(|d| d.to_details().0.get().to_string()),
            Some(r#"{"value":"97","summary":"CPU high"}"#.to_string())
        );
        // No details in the event: the alert's stay, the new summary is not among them.
        said.update("CPU very high".into(), None);
        assert!(!in_details(&said));
        assert_eq!(said.summary(), "CPU very high");
        assert!(said.details().is_some());
        // A summary found in the kept details again.
        said.update("97".into(), None);
        assert!(in_details(&said));
        assert_eq!(said.summary(), "97");
    }
}
