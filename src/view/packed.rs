//! The listed alerts of an incident's latest message as the view keeps them: their JSON text,
//! deflated once it is longer than [`PACK_OVER`] bytes. A storm's incidents list up to
//! `max_alerts_per_message` alerts each, and their text was the view's largest part (about
//! 100 bytes per open alert of the load tests' RSS shape, whose incidents list 100 alerts
//! each); the text of alerts deflates several times over (the same members in every alert).
//! It is inflated when read: an incident's page, the statistics, the status page.

use std::borrow::Cow;
use std::io::{Read, Write};

use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;

/// Shorter text is kept as it is (a few alerts: deflating gains little).
pub const PACK_OVER: usize = 2048;

#[derive(Clone, Debug)]
pub enum Packed {
    Plain(Box<str>),
    /// Deflated text, and its length.
    Deflated(Box<[u8]>, u32),
}

impl Packed {
    pub fn new(text: &str) -> Packed {
        let plain = || Packed::Plain(text.into());
        let Ok(len) = u32::try_from(text.len()) else {
            return plain();
        };
        if text.len() <= PACK_OVER {
            return plain();
        }
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::fast());
        match encoder
            .write_all(text.as_bytes())
            .and_then(|()| encoder.finish())
        {
            Ok(bytes) if bytes.len() < text.len() => {
                Packed::Deflated(bytes.into_boxed_slice(), len)
            }
            _ => plain(),
        }
    }

    /// The text as it was given.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Packed::Plain(text) => Cow::Borrowed(text),
            Packed::Deflated(bytes, len) => {
                let mut text = String::with_capacity(*len as usize);
                // Deflated here from UTF-8 text: reading it back cannot fail short of memory
                // corruption; an empty text then reads as no alerts.
                match DeflateDecoder::new(&bytes[..]).read_to_string(&mut text) {
                    Ok(_) => Cow::Owned(text),
                    Err(_) => Cow::Borrowed(""),
                }
            }
        }
    }

    /// Bytes kept.
    #[cfg(test)]
    pub fn kept(&self) -> usize {
        match self {
            Packed::Plain(text) => text.len(),
            Packed::Deflated(bytes, _) => bytes.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_kept_deflated_and_reads_back_whole() {
        let alert = r#"{"dedup_key":"d41d8cd9","summary":"DiskFull on host-065","severity":"critical","status":"triggered","event_count":1}"#;
        let text = format!("[{}]", vec![alert; 100].join(","));
        let packed = Packed::new(&text);
        assert!(
            packed.kept() * 10 < text.len(),
            "{} of {}",
            packed.kept(),
            text.len()
        );
        assert_eq!(packed.text(), text);
        // Short text stays as it is.
        let short = format!("[{alert}]");
        let packed = Packed::new(&short);
        assert_eq!((packed.kept(), packed.text()), (short.len(), short.into()));
    }
}
