//! Durations on the command line (`--duration 30d`) and times in text output.
//!
//! A duration is whole seconds (`3600`) or numbers with units, largest first or in any order,
//! summed: `s`, `m`, `h`, `d`, `w`, `y` (365 days, as the contract counts its 100-year limit),
//! e.g. `30d`, `1d12h`, `90m`.

/// Parses a duration into seconds (at least 1).
pub(crate) fn parse(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return at_least_one(seconds);
    }
    let mut total: u64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return Err(usage(text));
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.chars().next().map_or(0, char::len_utf8);
        let (unit, tail) = tail.split_at(unit_len);
        let n: u64 = number.parse().map_err(|_| usage(text))?;
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "y" => 365 * 86_400,
            _ => return Err(usage(text)),
        };
        total = n
            .checked_mul(scale)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| format!("{text:?} is too long"))?;
        rest = tail;
    }
    at_least_one(total)
}

fn at_least_one(seconds: u64) -> Result<u64, String> {
    if seconds == 0 {
        Err("a duration must be at least 1 second".into())
    } else {
        Ok(seconds)
    }
}

fn usage(text: &str) -> String {
    format!(
        "{text:?} is not a duration: give seconds (3600) or a number with a unit \
         (s, m, h, d, w, y = 365 days), e.g. 30d or 1d12h"
    )
}

/// Seconds in the units `parse` reads, largest first: `30d`, `1d12h`, `90s` → `1m30s`.
pub(crate) fn format(seconds: u64) -> String {
    if seconds == 0 {
        return "0s".into();
    }
    let mut left = seconds;
    let mut out = String::new();
    for (unit, scale) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        let n = left / scale;
        if n > 0 {
            out += &format!("{n}{unit}");
            left %= scale;
        }
    }
    out
}

/// A unix time as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn utc(unix: u64) -> String {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm, for days >= 0).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds_and_units() {
        assert_eq!(parse("3600"), Ok(3600));
        assert_eq!(parse("30d"), Ok(30 * 86_400));
        assert_eq!(parse("1d12h"), Ok(86_400 + 12 * 3600));
        assert_eq!(parse("90m"), Ok(5400));
        assert_eq!(parse("45s"), Ok(45));
        assert_eq!(parse("2w"), Ok(14 * 86_400));
        assert_eq!(parse("1y"), Ok(365 * 86_400));
        assert_eq!(parse(" 12h "), Ok(12 * 3600));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in ["", "d", "30x", "1.5d", "-1d", "30 d", "h1", "30dd", "1D"] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains("is not a duration"), "{bad}: {e}");
        }
        assert_eq!(
            parse("0"),
            Err("a duration must be at least 1 second".into())
        );
        assert_eq!(
            parse("0d"),
            Err("a duration must be at least 1 second".into())
        );
        assert!(parse("99999999999999999999y").is_err());
        assert!(
            parse("600000000000y")
                .expect_err("overflow")
                .contains("too long")
        );
    }

    #[test]
    fn formats_as_it_parses() {
        for s in [
            1,
            59,
            60,
            90,
            3600,
            86_400,
            30 * 86_400,
            86_400 + 12 * 3600 + 5,
        ] {
            assert_eq!(parse(&format(s)), Ok(s), "{s}");
        }
        assert_eq!(format(30 * 86_400), "30d");
        assert_eq!(format(90), "1m30s");
        assert_eq!(format(0), "0s");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(4_102_444_799), "2099-12-31 23:59:59 UTC");
    }
}
