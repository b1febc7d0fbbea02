//! The labels an alert keeps, compactly.

use serde::{Deserialize, Serialize};

/// An alert's labels in one allocation rather than two per label (an Alertmanager alert has
/// 8-16): for each label, the lengths of its name and value (`u32`, little endian), then their
/// bytes. Kept for matching (`labels.<name>` in silences, inhibition and rules) and written
/// into incident messages as they are (`publish::encode::LabelMap`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels(Box<[u8]>);

impl Labels {
    pub fn new(labels: &[(String, String)]) -> Self {
        let len = labels.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
        let mut buf = Vec::with_capacity(len);
        for (k, v) in labels {
            for part in [k, v] {
                buf.extend_from_slice(&(part.len() as u32).to_le_bytes());
            }
            buf.extend_from_slice(k.as_bytes());
            buf.extend_from_slice(v.as_bytes());
        }
        Labels(buf.into_boxed_slice())
    }

    /// Every label, in the order given to [`Labels::new`].
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut rest: &[u8] = &self.0;
        std::iter::from_fn(move || {
            let (lens, tail) = rest.split_first_chunk::<8>()?;
            let k = u32::from_le_bytes([lens[0], lens[1], lens[2], lens[3]]) as usize;
            let v = u32::from_le_bytes([lens[4], lens[5], lens[6], lens[7]]) as usize;
            let (name, tail) = tail.split_at(k);
            let (value, tail) = tail.split_at(v);
            rest = tail;
            // Both were `String`s: the bytes are UTF-8.
            Some((
                std::str::from_utf8(name).unwrap_or_default(),
                std::str::from_utf8(value).unwrap_or_default(),
            ))
        })
    }

    /// A label's value. Names are compared as bytes and only the value found is read as text:
    /// matchers, inhibition and grouping look labels up for every alert (reading each name as
    /// text took a sixth of the server's CPU in a 50-alert batch storm, perf, README
    /// "Performance").
    pub fn get(&self, name: &str) -> Option<&str> {
        let mut rest: &[u8] = &self.0;
        while let Some((lens, tail)) = rest.split_first_chunk::<8>() {
            let k = u32::from_le_bytes([lens[0], lens[1], lens[2], lens[3]]) as usize;
            let v = u32::from_le_bytes([lens[4], lens[5], lens[6], lens[7]]) as usize;
            let (key, tail) = tail.split_at(k);
            let (value, tail) = tail.split_at(v);
            if key == name.as_bytes() {
                // Both were `String`s: the bytes are UTF-8.
                return Some(std::str::from_utf8(value).unwrap_or_default());
            }
            rest = tail;
        }
        None
    }
}

/// Stored as `[[name, value], ...]`.
impl Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Labels::new(&Vec::<(String, String)>::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::Labels;

    #[test]
    fn labels_come_back_as_given() {
        let given: Vec<(String, String)> = [("alertname", "DiskFull"), ("", ""), ("zone", "é-1 ✓")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let labels = Labels::new(&given);
        let back: Vec<(&str, &str)> = labels.iter().collect();
        assert_eq!(
            back,
            [("alertname", "DiskFull"), ("", ""), ("zone", "é-1 ✓")]
        );
        assert_eq!(labels.get("zone"), Some("é-1 ✓"));
        assert_eq!(labels.get("alert"), None);
        assert_eq!(Labels::default().iter().count(), 0);
    }
}
