//! How sizes, dates, times and durations read on screen: one place, so the files pane, the
//! recordings list and the player say `1.5 KiB` or `2026-12-05` alike. Dates are UTC and
//! computed with Howard Hinnant's civil-date algorithms (no time-zone data in the wasm).

/// Seconds in a day.
pub const DAY: u64 = 24 * 60 * 60;

/// `512 B`, `1.5 KiB`, `300.0 MiB`.
pub fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Unix seconds of the start (UTC) of a `YYYY-MM-DD` day.
pub fn day_start(day: &str) -> Option<u64> {
    let mut parts = day.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    u64::try_from(days_from_civil(y, m, d) * DAY as i64).ok()
}

/// Days since 1970-01-01 of a date (`days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a count of days since 1970-01-01 (`civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The date (UTC) of unix seconds, `YYYY-MM-DD`.
pub fn day_text(seconds: u64) -> String {
    let (y, m, d) = civil_from_days(i64::try_from(seconds / DAY).unwrap_or(0));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn time_text(seconds: u64) -> String {
    let s = seconds % DAY;
    format!(
        "{} {:02}:{:02}:{:02}",
        day_text(seconds),
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `YYYY-MM-DD HH:MM UTC`, as a folder listing shows a modification time.
pub fn minute_text(seconds: u64) -> String {
    let s = seconds % DAY;
    format!(
        "{} {:02}:{:02} UTC",
        day_text(seconds),
        s / 3600,
        s / 60 % 60
    )
}

/// `1h 02m 03s`, `2m 03s`, `4s`.
pub fn duration_text(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// A time left as a clock shows it: `m:ss` or `h:mm:ss` (rounded up).
pub fn clock_text(seconds: f64) -> String {
    let secs = seconds.ceil() as u64;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn days_round_trip_through_their_unix_seconds() {
        assert_eq!(day_start("1970-01-01"), Some(0));
        assert_eq!(day_start("2026-12-05"), Some(1_796_428_800));
        assert_eq!(day_text(1_796_428_800 + 3_599), "2026-12-05");
        assert_eq!(
            day_start("2024-02-29").map(day_text).as_deref(),
            Some("2024-02-29")
        );
        assert_eq!(day_start("2026-13-01"), None);
        assert_eq!(day_start("nonsense"), None);
        assert_eq!(time_text(1_796_428_800 + 3_723), "2026-12-05 01:02:03");
        assert_eq!(minute_text(0), "1970-01-01 00:00 UTC");
        assert_eq!(minute_text(1_765_000_000), "2025-12-06 05:46 UTC");
        assert_eq!(minute_text(951_782_400), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn durations_and_sizes_read_as_people_say_them() {
        assert_eq!(duration_text(4), "4s");
        assert_eq!(duration_text(123), "2m 03s");
        assert_eq!(duration_text(3723), "1h 02m 03s");
        assert_eq!(clock_text(5.2), "0:06");
        assert_eq!(clock_text(3725.0), "1:02:05");
        assert_eq!(size_text(0), "0 B");
        assert_eq!(size_text(1023), "1023 B");
        assert_eq!(size_text(1536), "1.5 KiB");
        assert_eq!(size_text(300 * 1024 * 1024), "300.0 MiB");
    }
}
