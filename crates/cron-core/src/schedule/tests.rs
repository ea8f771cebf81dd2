//! Unit tests of the schedule language: every syntax element and every error message.

use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn next(expr: &str, tz: Option<&str>, from: &str, n: usize) -> Vec<String> {
    let s = Schedule::parse(expr, tz).unwrap();
    let mut t = utc(from);
    let mut out = Vec::new();
    for _ in 0..n {
        t = s.next_after(t).unwrap();
        out.push(t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    out
}

#[test]
fn weekdays_follow_crontab5() {
    // 2026-11-27 is a Friday.
    assert_eq!(
        next("0 9 * * 1-5", None, "2026-11-27T10:00:00Z", 3),
        [
            "2026-11-30T09:00:00Z",
            "2026-12-01T09:00:00Z",
            "2026-12-02T09:00:00Z"
        ]
    );
    assert_eq!(
        next("0 0 * * 0", None, "2026-11-27T00:00:00Z", 1),
        ["2026-11-29T00:00:00Z"]
    );
    assert_eq!(
        next("0 0 * * 7", None, "2026-11-27T00:00:00Z", 1),
        ["2026-11-29T00:00:00Z"]
    );
    assert_eq!(
        next("0 0 * * SUN", None, "2026-11-27T00:00:00Z", 1),
        ["2026-11-29T00:00:00Z"]
    );
    assert_eq!(
        next("0 0 * * 5-7", None, "2026-11-26T00:00:00Z", 3),
        [
            "2026-11-27T00:00:00Z",
            "2026-11-28T00:00:00Z",
            "2026-11-29T00:00:00Z"
        ]
    );
}

#[test]
fn macros_and_every() {
    let from = "2026-11-26T20:31:10Z";
    assert_eq!(next("@hourly", None, from, 1), ["2026-11-26T21:00:00Z"]);
    assert_eq!(next("@daily", None, from, 1), ["2026-11-27T00:00:00Z"]);
    assert_eq!(next("@midnight", None, from, 1), ["2026-11-27T00:00:00Z"]);
    assert_eq!(next("@weekly", None, from, 1), ["2026-11-29T00:00:00Z"]);
    assert_eq!(next("@monthly", None, from, 1), ["2026-12-01T00:00:00Z"]);
    assert_eq!(next("@yearly", None, from, 1), ["2027-01-01T00:00:00Z"]);
    assert_eq!(next("@annually", None, from, 1), ["2027-01-01T00:00:00Z"]);
    assert_eq!(
        next("@every 90s", None, from, 2),
        ["2026-11-26T20:31:30Z", "2026-11-26T20:33:00Z"]
    );
    // Anchored at the epoch, whatever the zone.
    assert_eq!(
        next("@every 1h30m", Some("Asia/Kathmandu"), from, 1),
        ["2026-11-26T21:00:00Z"]
    );
}

#[test]
fn six_fields_have_seconds() {
    assert_eq!(
        next("*/20 * * * * *", None, "2026-11-26T20:31:10Z", 3),
        [
            "2026-11-26T20:31:20Z",
            "2026-11-26T20:31:40Z",
            "2026-11-26T20:32:00Z"
        ]
    );
}

#[test]
fn zones_shift_local_times() {
    assert_eq!(
        next(
            "0 9 * * *",
            Some("Europe/Berlin"),
            "2026-11-26T20:00:00Z",
            1
        ),
        ["2026-11-27T08:00:00Z"]
    );
}

#[test]
fn errors_name_field_token_and_range() {
    let e = |x: &str| Schedule::parse(x, None).unwrap_err().to_string();
    assert_eq!(e("0 24 * * *"), "hour: 24 is out of range 0-23");
    assert_eq!(e("0 0 * * 8"), "day of week: 8 is out of range 0-7");
    assert_eq!(
        Schedule::parse("* * * * *", Some("Mars/Olympus"))
            .unwrap_err()
            .to_string(),
        "unknown time zone \"Mars/Olympus\" (expected an IANA name such as Europe/Berlin)"
    );
}
