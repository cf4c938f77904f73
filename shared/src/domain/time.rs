//! Timestamps on the wire: RFC 3339 with seven fractional digits and an explicit offset,
//! the way ACS writes them (`2026-11-21T13:57:04.4510000+00:00`).

use chrono::{DateTime, Utc};

/// Now, to the millisecond: the precision the stores keep.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    now - chrono::Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos() % 1_000_000))
}

pub fn to_wire(at: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    // chrono gives 9 digits at most; ACS uses 7 (100 ns ticks). Written digit by digit:
    // every token answer carries one, and `format!` with padding cost ten times as much
    // (benches/issue_path.rs). Years past 9999 and leap seconds take `format!`.
    let ticks = at.timestamp_subsec_nanos() / 100;
    let year = u32::try_from(at.year()).ok().filter(|year| *year <= 9999);
    let Some(year) = year.filter(|_| ticks <= 9_999_999) else {
        return format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{ticks:07}+00:00",
            at.year(),
            at.month(),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        );
    };
    let mut text = Vec::with_capacity(33);
    let fields = [
        (year, 4, b'-'),
        (at.month(), 2, b'-'),
        (at.day(), 2, b'T'),
        (at.hour(), 2, b':'),
        (at.minute(), 2, b':'),
        (at.second(), 2, b'.'),
        (ticks, 7, b'+'),
    ];
    for (value, width, separator) in fields {
        for place in (0..width).rev() {
            let digit = value / 10u32.pow(place) % 10;
            text.push(b"0123456789"[digit as usize]);
        }
        text.push(separator);
    }
    text.extend_from_slice(b"00:00");
    String::from_utf8(text).expect("digits and ASCII punctuation")
}

/// A whole-second instant (a token's `exp`) in wire form.
pub fn epoch_seconds_to_wire(seconds: i64) -> String {
    // Token expiries are computed from the clock plus at most a day: always representable.
    to_wire(DateTime::from_timestamp(seconds, 0).expect("a token expiry is a valid instant"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_whole_milliseconds() {
        assert_eq!(now().timestamp_subsec_nanos() % 1_000_000, 0);
    }

    #[test]
    fn digit_by_digit_matches_the_padded_format() {
        for seconds in [0, 59, 1_700_000_000, 4_102_444_799, 253_402_300_799] {
            for nanos in [0, 100, 451_000_000, 999_999_999] {
                let at = DateTime::from_timestamp(seconds, nanos).unwrap();
                let expected = format!(
                    "{}.{:07}+00:00",
                    at.format("%Y-%m-%dT%H:%M:%S"),
                    nanos / 100
                );
                assert_eq!(to_wire(at), expected);
            }
        }
    }

    #[test]
    fn formats_like_acs() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T13:57:04.451Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(to_wire(at), "2026-11-21T13:57:04.4510000+00:00");
        assert_eq!(
            epoch_seconds_to_wire(1_700_000_000),
            "2023-11-14T22:13:20.0000000+00:00"
        );
        assert_eq!(
            DateTime::parse_from_rfc3339(&to_wire(at)).unwrap(),
            at.fixed_offset()
        );
    }
}
