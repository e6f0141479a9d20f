//! Fast decoders for the two fields every event line has many of: 64-digit hashes and
//! RFC 3339 UTC timestamps. Each agrees exactly with the general decoder (tests below).

use crate::Result;
use crate::chain::{Hash, unix_micros};

use super::bad;

/// The value of each hex digit (either case); 0xff for every other byte.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` — the form our exports
/// write — without the general RFC 3339 parser (the largest share of verification
/// time). `None` for anything else, including out-of-range fields: the caller then uses
/// the general parser, so both paths accept and reject exactly the same strings, and a
/// property test checks they agree.
pub(super) fn utc_micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || *b.last()? != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r)?.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(num(5..7)?).ok()?).ok()?;
    let day = u8::try_from(num(8..10)?).ok()?;
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let frac = &b[19..b.len() - 1];
    let nanos = match frac {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let mut n = 0u32;
            for (i, &c) in digits.iter().enumerate() {
                if !c.is_ascii_digit() {
                    return None;
                }
                n += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
            }
            n
        }
        _ => return None,
    };
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let clock = time::Time::from_hms_nano(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        nanos,
    )
    .ok()?;
    Some(unix_micros(date.with_time(clock).assume_utc()))
}

/// Decodes 64 hex digits into a stack array (table lookup: the `hex` crate's generic
/// decoder was a fifth of export verification).
pub(super) fn hex32(s: &str, line: u64, field: &str) -> Result<Hash> {
    let mut out = [0u8; 32];
    let digits = s.as_bytes();
    let mut invalid = digits.len() != 64;
    if !invalid {
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let (hi, lo) = match pair {
                [hi, lo] => (HEX_VALUE[usize::from(*hi)], HEX_VALUE[usize::from(*lo)]),
                _ => (0xff, 0xff),
            };
            invalid |= (hi | lo) > 0x0f;
            *byte = (hi << 4) | (lo & 0x0f);
        }
    }
    if invalid {
        return Err(bad(line, format!("{field} is not 64 hex digits")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    use super::*;
    use crate::export::format_time;

    fn general(s: &str) -> Option<i64> {
        OffsetDateTime::parse(s, &Rfc3339).ok().map(unix_micros)
    }

    #[test]
    fn the_timestamp_fast_path_agrees_with_the_rfc3339_parser() {
        for s in [
            "2026-11-25T09:00:00Z",
            "2026-11-25T09:00:00.123456Z",
            "2026-11-25T09:00:00.1Z",
            "2026-11-25T09:00:00.123456789Z",
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59.999999Z",
        ] {
            assert_eq!(utc_micros(s), general(s), "{s}");
        }
        for s in [
            "2026-02-30T00:00:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T09:00:60Z",
            "2026-11-25t09:00:00z",
            "2026-11-25T09:00:00+00:00",
            "2026-11-25T09:00:00.Z",
            "2026-11-25T09:00:00.1234567890Z",
            "+026-11-25T09:00:00Z",
        ] {
            assert_eq!(utc_micros(s), None, "{s}");
        }
        // What the exporter writes always takes the fast path.
        let at = time::macros::datetime!(2026-11-25 09:00:00.123456 UTC);
        let written = format_time(at).unwrap();
        assert_eq!(utc_micros(&written), Some(unix_micros(at)));
    }

    proptest::proptest! {
        #[test]
        fn the_fast_path_never_disagrees(
            y in 0i32..10000, mo in 0u8..14, d in 0u8..33, h in 0u8..26, mi in 0u8..62,
            se in 0u8..62, frac in proptest::option::of("[0-9]{1,10}"),
        ) {
            let s = format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}{}Z",
                frac.map(|f| format!(".{f}")).unwrap_or_default()
            );
            if let Some(fast) = utc_micros(&s) {
                proptest::prop_assert_eq!(Some(fast), general(&s), "{}", s);
            }
        }
    }

    #[test]
    fn hex32_matches_the_hex_crate() {
        let bytes: Vec<u8> = (0u8..32)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect();
        for text in [hex::encode(&bytes), hex::encode_upper(&bytes)] {
            assert_eq!(
                hex32(&text, 1, "h").ok().map(|h| h.to_vec()),
                Some(bytes.clone())
            );
        }
        for bad_text in [
            "",
            "0",
            &"0".repeat(63),
            &"0".repeat(65),
            &format!("{}g", "0".repeat(63)),
            &format!("{}é", "0".repeat(62)),
        ] {
            assert!(hex32(bad_text, 1, "h").is_err(), "{bad_text}");
        }
    }
}
