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
    // chrono gives 9 digits at most; ACS uses 7 (100 ns ticks). Formatted field by field:
    // every token answer carries one, and a strftime pattern is parsed on each use.
    let ticks = at.timestamp_subsec_nanos() / 100;
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{ticks:07}+00:00",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
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
