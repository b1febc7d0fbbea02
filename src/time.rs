//! Timestamps and durations: milliseconds since the Unix epoch, RFC 3339 output, the lenient
//! input parser senders need (any fraction, `Z`, `+00:00` or `+0000`, epoch seconds or
//! milliseconds, numeric strings, Go's zero time as "unset"), and `"30s"`-style config durations.

use std::fmt;
use std::time::Duration;

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// What a `"never"` pause ends at.
    pub const NEVER: UnixMillis = UnixMillis(u64::MAX);

    pub fn saturating_add(self, d: Duration) -> Self {
        UnixMillis(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }

    pub fn saturating_sub(self, other: UnixMillis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(other.0))
    }
}

/// An instant or none, in the 8 bytes of one (`Option<UnixMillis>` takes 16): what an open
/// alert keeps of its `ends_at`. The epoch itself is kept as its first millisecond, which is
/// as far in the past for every use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaybeMillis(Option<std::num::NonZeroU64>);

impl MaybeMillis {
    pub fn new(at: Option<UnixMillis>) -> Self {
        MaybeMillis(at.and_then(|at| std::num::NonZeroU64::new(at.0.max(1))))
    }

    pub fn get(self) -> Option<UnixMillis> {
        self.0.map(|at| UnixMillis(at.get()))
    }
}

/// `2024-05-02T09:14:07.120Z`: always UTC, always milliseconds, so output sorts as text.
impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1000;
        let (y, m, d) = civil_from_days((secs / 86_400) as i64);
        let sod = secs % 86_400;
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60,
            self.0 % 1000
        )
    }
}

/// RFC 3339 with milliseconds; past the year 9999 (a `"never"` pause's end, [`UnixMillis::NEVER`]),
/// which RFC 3339 cannot write, a number of milliseconds.
impl serde::Serialize for UnixMillis {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        /// 9999-12-31T23:59:59.999Z.
        const LAST_RFC3339: u64 = 253_402_300_799_999;
        if self.0 > LAST_RFC3339 {
            s.serialize_u64(self.0)
        } else {
            s.collect_str(self)
        }
    }
}

/// Reads what [`UnixMillis`] writes (RFC 3339, milliseconds), or a number of milliseconds.
impl<'de> serde::Deserialize<'de> for UnixMillis {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Either<'a> {
            Millis(u64),
            Text(std::borrow::Cow<'a, str>),
        }
        match Either::deserialize(d)? {
            Either::Millis(ms) => Ok(UnixMillis(ms)),
            Either::Text(s) => match parse_timestamp(&s) {
                Some(Timestamp::At(at)) => Ok(at),
                Some(Timestamp::Unset) => Ok(UnixMillis(0)),
                None => Err(serde::de::Error::custom(format!("not a time: {s:?}"))),
            },
        }
    }
}

/// Days since the epoch to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What a timestamp field held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timestamp {
    At(UnixMillis),
    /// Go's zero time (`0001-01-01T00:00:00Z`) or a zero epoch: the sender means "not set".
    Unset,
}

/// Parses a date-time string leniently: RFC 3339 / ISO 8601 with any fraction and a `Z`,
/// `±hh:mm`, `±hhmm` or `±hh` offset, or `UTC` / `GMT` (a space may stand for `T`, and one
/// may come before the offset: `2016-08-12 15:26:29 UTC`, `2021-04-28 21:50:00 +0200`), or
/// a numeric string of epoch seconds, milliseconds, microseconds or nanoseconds (see
/// [`from_epoch_number`]). `None` when it is none of those.
pub fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return s.parse::<f64>().ok().and_then(from_epoch_number);
    }
    // Go's `time.Time.String()`: a numeric offset, then the zone's abbreviation, which the
    // offset makes redundant (`2024-05-02 11:14:07 +0200 CEST`).
    if let Some((head, zone)) = s.rsplit_once(' ') {
        let numeric_offset = head.len() > 5
            && matches!(head.as_bytes()[head.len() - 5], b'+' | b'-')
            && head[head.len() - 4..].bytes().all(|b| b.is_ascii_digit());
        if numeric_offset && !zone.is_empty() && zone.bytes().all(|b| b.is_ascii_alphabetic()) {
            return parse_iso(head);
        }
    }
    parse_iso(s)
}

/// Epoch seconds, milliseconds, microseconds or nanoseconds as a JSON number, told apart by
/// size: from 10^11 milliseconds (10^11 seconds is the year 5138), from 10^14 microseconds,
/// from 10^17 nanoseconds (the same bound, one unit down each time).
pub fn from_epoch_number(n: f64) -> Option<Timestamp> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    if n == 0.0 {
        return Some(Timestamp::Unset);
    }
    let ms = if n >= 1e17 {
        n / 1e6
    } else if n >= 1e14 {
        n / 1e3
    } else if n >= 1e11 {
        n
    } else {
        n * 1000.0
    };
    (ms < 253_402_300_800_000.0).then_some(Timestamp::At(UnixMillis(ms as u64)))
}

fn parse_iso(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let part = b.get(from..from + len)?;
        part.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = num(0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let (month, day) = (num(5, 2)?, num(8, 2)?);
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') {
        return None;
    }
    let (hour, min) = (num(11, 2)?, num(14, 2)?);
    let mut i = 16;
    let mut sec = 0;
    if b.get(i) == Some(&b':') {
        sec = num(17, 2)?;
        i = 19;
    }
    let mut millis = 0u32;
    if matches!(b.get(i), Some(b'.' | b',')) {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                millis = millis * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    if b.get(i) == Some(&b' ') && i + 1 < b.len() {
        i += 1;
    }
    let zone = &s[i.min(s.len())..];
    let offset_secs: i64 = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        _ if zone.eq_ignore_ascii_case("utc") || zone.eq_ignore_ascii_case("gmt") => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let oh = num(i + 1, 2)?;
            let om = match b.len() - (i + 3) {
                0 => 0,
                2 => num(i + 3, 2)?,
                3 if b[i + 3] == b':' => num(i + 4, 2)?,
                _ => return None,
            };
            let off = i64::from(oh * 3600 + om * 60);
            if sign == b'+' {
                off
            } else {
                -off
            }
        }
        None => 0,
        _ => return None,
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    if year == 1 && month == 1 && day == 1 {
        return Some(Timestamp::Unset);
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + min * 60 + sec) - offset_secs;
    let ms = secs.checked_mul(1000)? + i64::from(millis);
    u64::try_from(ms)
        .ok()
        .map(|ms| Timestamp::At(UnixMillis(ms)))
}

/// Parses a config duration: an integer and a unit (`ms`, `s`, `m`, `h`, `d`), e.g. `"30s"`,
/// `"1m"`, `"1h30m"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("invalid duration {s:?}: expected a number"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            "d" => Duration::from_secs(n * 86_400),
            "" => {
                return Err(format!(
                    "invalid duration {s:?}: missing unit (ms, s, m, h, d)"
                ))
            }
            u => return Err(format!("invalid duration {s:?}: unknown unit {u:?}")),
        };
        total += part;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> u64 {
        match parse_timestamp(s) {
            Some(Timestamp::At(t)) => t.0,
            other => panic!("{s:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn formats_rfc3339_millis() {
        assert_eq!(UnixMillis(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            UnixMillis(1_714_641_247_120).to_string(),
            "2024-05-02T09:14:07.120Z"
        );
        assert_eq!(
            UnixMillis(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn parses_every_sender_format() {
        let want = 1_714_641_247_120;
        assert_eq!(at("2024-05-02T09:14:07.120Z"), want);
        assert_eq!(at("2024-05-02T09:14:07.120456789Z"), want);
        assert_eq!(at("2024-05-02T09:14:07.1204567Z"), want);
        assert_eq!(at("2024-05-02T09:14:07.120+0000"), want);
        assert_eq!(at("2024-05-02T11:14:07.120+02:00"), want);
        assert_eq!(at("2024-05-02T04:14:07.120-05"), want);
        assert_eq!(at("2024-05-02 09:14:07.12Z"), want);
        assert_eq!(at("1714641247.12"), want);
        assert_eq!(at("1714641247120"), want);
        assert_eq!(at("2024-05-02T09:14:07"), want - 120);
        assert_eq!(at("2024-05-02T09:14Z"), want - 7_120);
        // GitLab's and Ruby's spellings; microseconds and nanoseconds since the epoch.
        assert_eq!(at("2024-05-02 09:14:07.120 UTC"), want);
        assert_eq!(at("2024-05-02 09:14:07 gmt"), want - 120);
        assert_eq!(at("2024-05-02 11:14:07.120 +0200"), want);
        assert_eq!(at("1714641247120000"), want);
        assert_eq!(at("1714641247120000000"), want);
        assert_eq!(at("2024-05-02 11:14:07.12 +0200 CEST"), want);
        assert_eq!(at("2024-05-02 09:14:07.120 +0000 UTC"), want);
        assert_eq!(parse_timestamp("2024-05-02 09:14:07 CEST"), None);
        assert_eq!(parse_timestamp("2024-05-02 09:14:07 +"), None);
    }

    #[test]
    fn go_zero_time_means_unset() {
        assert_eq!(
            parse_timestamp("0001-01-01T00:00:00Z"),
            Some(Timestamp::Unset)
        );
        assert_eq!(from_epoch_number(0.0), Some(Timestamp::Unset));
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "yesterday",
            "2024-13-02T09:14:07Z",
            "2024-05-02",
            "2024-05-02T09:14:07Zjunk",
            "2024-05-02T09:14:07.Z",
            "-5",
        ] {
            assert_eq!(parse_timestamp(s), None, "{s:?}");
        }
    }

    #[test]
    fn an_optional_instant_in_eight_bytes() {
        assert_eq!(std::mem::size_of::<MaybeMillis>(), 8);
        assert_eq!(MaybeMillis::new(None).get(), None);
        assert_eq!(MaybeMillis::default().get(), None);
        let at = Some(UnixMillis(1_714_641_247_120));
        assert_eq!(MaybeMillis::new(at).get(), at);
        // The epoch is kept, as its first millisecond: still an end long past.
        assert_eq!(
            MaybeMillis::new(Some(UnixMillis(0))).get(),
            Some(UnixMillis(1))
        );
        assert_eq!(
            MaybeMillis::new(Some(UnixMillis::NEVER)).get(),
            Some(UnixMillis::NEVER)
        );
    }

    #[test]
    fn round_trips_through_display() {
        for ms in [0, 1, 999, 86_399_999, 1_714_641_247_120, 4_102_444_800_000] {
            assert_eq!(at(&UnixMillis(ms).to_string()), ms);
        }
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("30").unwrap_err().contains("missing unit"));
        assert!(parse_duration("5y").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("").is_err());
    }
}
