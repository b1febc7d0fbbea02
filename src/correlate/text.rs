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
/// and its length), then the other fields not found before them, behind a header that says
/// where each is: 16 bytes beside its text.
///
/// The header comes first: its length in one byte, then the labels' end, the dedup key's
/// length and the four fields' spans ([`Span`]), each number in [`put`]'s 6-bit digits. Every
/// header byte is below `0x80`, so the whole stays one `str`; most numbers take one or two
/// bytes, so the header is about a dozen bytes in the allocation where the spans took 40 in
/// the struct (beside every open alert, in its incident's list).
pub struct AlertText {
    text: Box<str>,
}

/// A span in the header: 0 for a field the event did not have, 1 and an id for an interned
/// label value, else its place plus 2 and its length.
const SPAN_NONE: u32 = 0;
const SPAN_INTERNED: u32 = 1;
const SPAN_AT: u32 = 2;
/// The longest header: its length byte, two numbers, and four spans of two numbers, each number
/// at most six digits (under 64 bytes, so its length is one digit).
const MAX_HEADER: usize = 1 + 6 * 2 + 4 * 2 * 6;

/// Appends `v` in digits of 6 bits, lowest first, each but the last with `0x40` set: every
/// digit an ASCII character.
fn put(out: &mut String, mut v: u32) {
    while v >= 0x40 {
        out.push(char::from((v & 0x3f) as u8 | 0x40));
        v >>= 6;
    }
    out.push(char::from(v as u8));
}

/// Reads a number [`put`] wrote at `*at`, moving `*at` past it.
fn take(bytes: &[u8], at: &mut usize) -> u32 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = bytes[*at];
        *at += 1;
        v |= u64::from(b & 0x3f) << shift;
        if b & 0x40 == 0 {
            return v as u32;
        }
        shift += 6;
    }
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
            // The header's numbers are written after the text in the scratch space (no
            // allocation of their own), then put first in the alert's.
            let body_len = buf.len();
            put(buf, labels_end);
            put(buf, dedup.len);
            for span in spans {
                match span.at {
                    NONE => put(buf, SPAN_NONE),
                    INTERNED => {
                        put(buf, SPAN_INTERNED);
                        put(buf, span.len);
                    }
                    at => {
                        put(buf, at + SPAN_AT);
                        put(buf, span.len);
                    }
                }
            }
            let (body, numbers) = buf.split_at(body_len);
            let header_len = 1 + numbers.len();
            debug_assert!(header_len <= MAX_HEADER);
            let mut whole = String::with_capacity(header_len + body.len());
            whole.push(char::from(header_len as u8));
            whole.push_str(numbers);
            whole.push_str(body);
            let text = AlertText {
                text: whole.into_boxed_str(),
            };
            if buf.capacity() > 64 << 10 {
                // An alert of unusual size does not keep its scratch space for good.
                *buf = String::new();
            }
            text
        })
    }

    /// The text after the header, and the header's numbers from the labels' end on.
    fn parts(&self) -> (&str, Header<'_>) {
        let bytes = self.text.as_bytes();
        let len = bytes[0] as usize;
        (
            &self.text[len..],
            Header {
                bytes: &bytes[..len],
                at: 1,
            },
        )
    }

    pub fn labels(&self) -> Labels<'_> {
        let (body, mut header) = self.parts();
        Labels::read(&body[..header.next() as usize])
    }

    /// A field's value; none when the event did not have it.
    #[inline]
    pub fn get(&self, field: TextField) -> Option<&str> {
        let (body, mut header) = self.parts();
        let Span { at, len } = header.span(field);
        match at {
            NONE => None,
            INTERNED => Some(values::value(len)),
            at => body.get(at as usize..(at + len) as usize),
        }
    }

    /// The text after the header (its labels, dedup key and fields).
    #[cfg(test)]
    fn body(&self) -> &str {
        self.parts().0
    }
}

/// Reading the header's numbers in order.
struct Header<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Header<'_> {
    fn next(&mut self) -> u32 {
        take(self.bytes, &mut self.at)
    }

    /// `field`'s span (the header read from its start: the labels' end first).
    fn span(&mut self, field: TextField) -> Span {
        let labels_end = self.next();
        let dedup_len = self.next();
        if field == TextField::DedupKey {
            return Span {
                at: labels_end,
                len: dedup_len,
            };
        }
        let mut span = Span { at: NONE, len: 0 };
        for _ in 0..field as usize {
            span = match self.next() {
                SPAN_NONE => Span { at: NONE, len: 0 },
                SPAN_INTERNED => Span {
                    at: INTERNED,
                    len: self.next(),
                },
                at => Span {
                    at: at - SPAN_AT,
                    len: self.next(),
                },
            };
        }
        span
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
        assert_eq!(text.body().len(), labels.labels().as_str().len() + 16);
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
            let source = second.parts().1.span(TextField::Source);
            assert!(matches!(source.at, INTERNED), "{source:?}");
            assert!(
                second.body().len() < first.body().len() - 30,
                "{} vs {}",
                second.body().len(),
                first.body().len()
            );
        })
        .join()
        .expect("joins");
    }

    #[test]
    fn the_dedup_key_follows_the_labels_even_when_it_is_a_label_value() {
        assert_eq!(std::mem::size_of::<AlertText>(), 16);
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
            text.body().len(),
            labels.labels().as_str().len() + "evt-42".len()
        );
    }

    #[test]
    fn numbers_of_every_length_read_back_from_the_header() {
        let mut bytes = String::new();
        let values = [
            0,
            1,
            63,
            64,
            4095,
            4096,
            262_143,
            262_144,
            u32::MAX - 1,
            u32::MAX,
        ];
        for v in values {
            put(&mut bytes, v);
        }
        assert!(bytes.is_ascii());
        let mut at = 0;
        for v in values {
            assert_eq!(take(bytes.as_bytes(), &mut at), v);
        }
        assert_eq!(at, bytes.len());
        // Long fields and labels: spans and ends of several digits.
        let long = "v".repeat(70_000);
        let labels: LabelBuf = [("big", long.as_str()), ("host", "db-1")]
            .into_iter()
            .collect();
        let group = "g".repeat(300);
        let text = AlertText::new(Text {
            dedup_key: &long[..5000],
            source: "db-1",
            component: Some(&long[..100]),
            group: Some(&group),
            class: None,
            labels: labels.labels(),
        });
        assert_eq!(text.get(TextField::DedupKey), Some(&long[..5000]));
        assert_eq!(text.get(TextField::Source), Some("db-1"));
        assert_eq!(text.get(TextField::Component), Some(&long[..100]));
        assert_eq!(text.get(TextField::Group), Some(group.as_str()));
        assert_eq!(text.get(TextField::Class), None);
        assert_eq!(text.labels().get("big"), Some(long.as_str()));
        assert!(text.text.len() - text.body().len() < MAX_HEADER);
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
        assert_eq!(text.body().len(), "k".len() + "db-1".len() + "é ✓".len());
    }
}
