//! What an alert keeps of its first event's text that never changes while it is open: the
//! labels, the dedup key, source, component, group and class, in one allocation. A field whose
//! value is one of the labels' values (Prometheus' class is its `alertname`, its source
//! `instance`, its component `service` or `job`) points at that value instead of being
//! stored twice, or at its id when the value is interned (`event::values`); the dedup key is
//! always written right after the labels, so that its place needs no span. (The summary and
//! details change with the alert's events: they are kept apart.)

use crate::event::{values, Labels, Placed};

/// A field's place in the text; `at == NONE` for a field the event did not have, `at ==
/// INTERNED` for a field equal to a label value that is interned (`len` is its id).
#[derive(Clone, Copy, Debug)]
struct Span {
    at: u32,
    len: u32,
}

const NONE: u32 = u32::MAX;
const INTERNED: u32 = u32::MAX - 1;

/// The fields kept, in [`AlertText::fields`] order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextField {
    DedupKey,
    Source,
    Component,
    Group,
    Class,
}

/// What [`AlertText::new`] takes.
pub struct Text<'a> {
    pub dedup_key: &'a str,
    pub source: &'a str,
    pub component: Option<&'a str>,
    pub group: Option<&'a str>,
    pub class: Option<&'a str>,
    pub labels: Labels<'a>,
}

/// The labels, then the dedup key (always written there, so that its place is the labels' end
/// and its length), then the other fields not found before them: 56 bytes beside its text.
pub struct AlertText {
    text: Box<str>,
    labels_end: u32,
    dedup_len: u32,
    /// Source, component, group, class.
    spans: [Span; 4],
}

thread_local! {
    /// Where the text is written before it is copied into an allocation of its size.
    static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

impl AlertText {
    /// The text of `text`: its labels first (their recurring values interned,
    /// [`Labels::write_interning`]), then each field not found among the labels' values (or
    /// the fields before it).
    pub fn new(text: Text<'_>) -> Self {
        let fields = [Some(text.source), text.component, text.group, text.class];
        let mut spans = [Span { at: NONE, len: 0 }; 4];
        SCRATCH.with_borrow_mut(|buf| {
            buf.clear();
            // One pass over the label values: each field points at the first value equal to
            // it, where it was written.
            text.labels.write_interning(buf, |value, placed| {
                for (span, field) in spans.iter_mut().zip(fields) {
                    if span.at == NONE && field == Some(value) {
                        *span = match placed {
                            Placed::At(at) => Span {
                                at: at as u32,
                                len: value.len() as u32,
                            },
                            Placed::Interned(id) => Span {
                                at: INTERNED,
                                len: id,
                            },
                        };
                    }
                }
            });
            let labels_end = buf.len() as u32;
            buf.push_str(text.dedup_key);
            let dedup = Span {
                at: labels_end,
                len: text.dedup_key.len() as u32,
            };
            // The rest are stored after the dedup key, once each (a field equal to it or to an
            // earlier one points at it).
            for i in 0..fields.len() {
                let Some(field) = fields[i].filter(|_| spans[i].at == NONE) else {
                    continue;
                };
                spans[i] = match fields[..i].iter().position(|f| *f == Some(field)) {
                    // Equal to an earlier field, placed by now.
                    Some(j) => spans[j],
                    None if field == text.dedup_key => dedup,
                    None => {
                        buf.push_str(field);
                        Span {
                            at: (buf.len() - field.len()) as u32,
                            len: field.len() as u32,
                        }
                    }
                };
            }
            let text = AlertText {
                text: buf.as_str().into(),
                labels_end,
                dedup_len: dedup.len,
                spans,
            };
            if buf.capacity() > 64 << 10 {
                // An alert of unusual size does not keep its scratch space for good.
                *buf = String::new();
            }
            text
        })
    }

    pub fn labels(&self) -> Labels<'_> {
        Labels::read(&self.text[..self.labels_end as usize])
    }

    /// A field's value; none when the event did not have it.
    #[inline]
    pub fn get(&self, field: TextField) -> Option<&str> {
        let Span { at, len } = match field {
            TextField::DedupKey => Span {
                at: self.labels_end,
                len: self.dedup_len,
            },
            _ => self.spans[field as usize - 1],
        };
        match at {
            NONE => None,
            INTERNED => Some(values::value(len)),
            at => self.text.get(at as usize..(at + len) as usize),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::LabelBuf;

    #[test]
    fn fields_read_back_and_values_of_labels_are_stored_once() {
        let labels: LabelBuf = [
            ("alertname", "DiskFull"),
            ("instance", "node-7:9100"),
            ("job", "node"),
        ]
        .into_iter()
        .collect();
        let text = AlertText::new(Text {
            dedup_key: "507a62d79ee76c9a",
            source: "node-7:9100",
            component: Some("node"),
            group: None,
            class: Some("DiskFull"),
            labels: labels.labels(),
        });
        assert_eq!(text.get(TextField::DedupKey), Some("507a62d79ee76c9a"));
        assert_eq!(text.get(TextField::Source), Some("node-7:9100"));
        assert_eq!(text.get(TextField::Component), Some("node"));
        assert_eq!(text.get(TextField::Group), None);
        assert_eq!(text.get(TextField::Class), Some("DiskFull"));
        assert_eq!(text.labels().get("job"), Some("node"));
        assert_eq!(text.labels().iter().count(), 3);
        // Only the dedup key is stored besides the labels.
        assert_eq!(text.text.len(), labels.labels().as_str().len() + 16);
    }

    #[test]
    fn fields_equal_to_interned_label_values_read_them_from_the_table() {
        std::thread::spawn(|| {
            let labels: LabelBuf = [
                ("alertname", "text-test-DiskFull"),
                ("instance", "text-test-node-7:9100"),
                ("alert_id", "text-test-a1"),
            ]
            .into_iter()
            .collect();
            let new = |labels: &LabelBuf, dedup_key: &'static str| {
                AlertText::new(Text {
                    dedup_key,
                    source: "text-test-node-7:9100",
                    component: Some("text-test-a1"),
                    group: Some("text-test-DiskFull"),
                    class: Some("text-test-DiskFull"),
                    labels: labels.labels(),
                })
            };
            let first = new(&labels, "k1");
            let second = new(&labels, "k2");
            for text in [&first, &second] {
                assert_eq!(text.get(TextField::Source), Some("text-test-node-7:9100"));
                assert_eq!(text.get(TextField::Component), Some("text-test-a1"));
                assert_eq!(text.get(TextField::Group), Some("text-test-DiskFull"));
                assert_eq!(text.get(TextField::Class), Some("text-test-DiskFull"));
                assert_eq!(
                    text.labels().iter().collect::<Vec<_>>(),
                    labels.iter().collect::<Vec<_>>()
                );
            }
            assert_eq!(first.get(TextField::DedupKey), Some("k1"));
            assert_eq!(second.get(TextField::DedupKey), Some("k2"));
            // The second sighting keeps two values as ids: the text holds the third value and
            // the dedup key, and the framing.
            assert!(matches!(second.spans[0].at, INTERNED), "{:?}", second.spans);
            assert!(
                second.text.len() < first.text.len() - 30,
                "{} vs {}",
                second.text.len(),
                first.text.len()
            );
        })
        .join()
        .expect("joins");
    }

    #[test]
    fn the_dedup_key_follows_the_labels_even_when_it_is_a_label_value() {
        assert_eq!(std::mem::size_of::<AlertText>(), 56);
        let labels: LabelBuf = [("event_id", "evt-42"), ("host", "db-1")]
            .into_iter()
            .collect();
        let text = AlertText::new(Text {
            dedup_key: "evt-42",
            source: "evt-42",
            component: Some("db-1"),
            group: None,
            class: Some("evt-42"),
            labels: labels.labels(),
        });
        assert_eq!(text.get(TextField::DedupKey), Some("evt-42"));
        assert_eq!(text.get(TextField::Source), Some("evt-42"));
        assert_eq!(text.get(TextField::Component), Some("db-1"));
        assert_eq!(text.get(TextField::Class), Some("evt-42"));
        assert_eq!(text.labels().get("event_id"), Some("evt-42"));
        assert_eq!(text.labels().iter().count(), 2);
        // The dedup key written once more after the labels; the source and class point into
        // the labels.
        assert_eq!(
            text.text.len(),
            labels.labels().as_str().len() + "evt-42".len()
        );
    }

    #[test]
    fn fields_without_labels_and_empty_ones() {
        let text = AlertText::new(Text {
            dedup_key: "k",
            source: "db-1",
            component: Some(""),
            group: Some("db-1"),
            class: Some("é ✓"),
            labels: Labels::default(),
        });
        assert!(text.labels().is_empty());
        assert_eq!(text.get(TextField::Source), Some("db-1"));
        assert_eq!(
            text.get(TextField::Component),
            Some(""),
            "empty, not absent"
        );
        assert_eq!(text.get(TextField::Group), Some("db-1"));
        assert_eq!(text.get(TextField::Class), Some("é ✓"));
        assert_eq!(text.text.len(), "k".len() + "db-1".len() + "é ✓".len());
    }
}
