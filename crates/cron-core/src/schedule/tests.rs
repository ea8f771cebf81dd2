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
    assert_eq!(next("@Daily", None, from, 1), ["2026-11-27T00:00:00Z"]);
    assert_eq!(next("@EVERY 1m", None, from, 1), ["2026-11-26T20:32:00Z"]);
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
fn upcoming_lists_slots_in_order() {
    let s = Schedule::parse("0 0 1 * *", None).unwrap();
    let got: Vec<_> = s.upcoming(utc("2026-11-26T00:00:00Z")).take(2).collect();
    assert_eq!(
        got,
        [utc("2026-12-01T00:00:00Z"), utc("2027-01-01T00:00:00Z")]
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

#[test]
fn every_syntax_element() {
    let from = "2026-11-26T20:31:10Z";
    let cases: &[(&str, &[&str])] = &[
        ("5 * * * *", &["2026-11-26T21:05:00Z"]),
        (
            "5,35 * * * *",
            &["2026-11-26T20:35:00Z", "2026-11-26T21:05:00Z"],
        ),
        (
            "40-41 * * * *",
            &[
                "2026-11-26T20:40:00Z",
                "2026-11-26T20:41:00Z",
                "2026-11-26T21:40:00Z",
            ],
        ),
        (
            "10-50/20 * * * *",
            &["2026-11-26T20:50:00Z", "2026-11-26T21:10:00Z"],
        ),
        (
            "50/5 * * * *",
            &[
                "2026-11-26T20:50:00Z",
                "2026-11-26T20:55:00Z",
                "2026-11-26T21:50:00Z",
            ],
        ),
        (
            "*/45 * * * *",
            &["2026-11-26T20:45:00Z", "2026-11-26T21:00:00Z"],
        ),
        (
            "0 */8 * * *",
            &["2026-11-27T00:00:00Z", "2026-11-27T08:00:00Z"],
        ),
        (
            "0 0 1-2 * *",
            &[
                "2026-12-01T00:00:00Z",
                "2026-12-02T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ],
        ),
        (
            "0 0 1 jan,Jul *",
            &["2027-01-01T00:00:00Z", "2027-07-01T00:00:00Z"],
        ),
        (
            "0 0 1 FEB-MAR *",
            &["2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z"],
        ),
        (
            "0 0 1 */5 *",
            &[
                "2027-01-01T00:00:00Z",
                "2027-06-01T00:00:00Z",
                "2027-11-01T00:00:00Z",
            ],
        ),
        (
            "0 0 * * mon,WED",
            &["2026-11-30T00:00:00Z", "2026-12-02T00:00:00Z"],
        ),
        (
            "0 0 * * Sat-Sun",
            &[
                "2026-11-28T00:00:00Z",
                "2026-11-29T00:00:00Z",
                "2026-12-05T00:00:00Z",
            ],
        ),
        (
            "0 0 * * */3",
            &[
                "2026-11-28T00:00:00Z",
                "2026-11-29T00:00:00Z",
                "2026-12-02T00:00:00Z",
            ],
        ),
        (
            "0 0 * * 0-7",
            &["2026-11-27T00:00:00Z", "2026-11-28T00:00:00Z"],
        ),
        // Last day, and n days before it.
        (
            "0 0 L * *",
            &[
                "2026-11-30T00:00:00Z",
                "2026-12-31T00:00:00Z",
                "2027-01-31T00:00:00Z",
            ],
        ),
        (
            "0 0 L-2 * *",
            &["2026-11-28T00:00:00Z", "2026-12-29T00:00:00Z"],
        ),
        // Last weekday: 2027-01-31 is a Sunday, 2027-07-31 a Saturday.
        (
            "0 0 LW 1,7 *",
            &["2027-01-29T00:00:00Z", "2027-07-30T00:00:00Z"],
        ),
        // L-1 is Sunday the 30th: its nearest weekday is Monday the 31st.
        ("0 0 L-1W 5 *", &["2027-05-31T00:00:00Z"]),
        // Nearest weekday, never across the month: 2027-05-01 is a Saturday, 2027-08-15 a
        // Sunday, 2027-05-15 a Saturday, 2027-10-31 a Sunday.
        ("0 0 1W 5 *", &["2027-05-03T00:00:00Z"]),
        ("0 0 15W 8 *", &["2027-08-16T00:00:00Z"]),
        ("0 0 15W 5 *", &["2027-05-14T00:00:00Z"]),
        ("0 0 31W 10 *", &["2027-10-29T00:00:00Z"]),
        ("0 0 3W 11 *", &["2027-11-03T00:00:00Z"]),
        // Last Friday; last Sunday as 0L and 7L.
        (
            "0 0 * * 5L",
            &["2026-11-27T00:00:00Z", "2026-12-25T00:00:00Z"],
        ),
        (
            "0 0 * * 0L",
            &["2026-11-29T00:00:00Z", "2026-12-27T00:00:00Z"],
        ),
        ("0 0 * * 7L", &["2026-11-29T00:00:00Z"]),
        ("0 0 * * FRIL", &["2026-11-27T00:00:00Z"]),
        // First Monday; fifth Friday (only some months have one).
        (
            "0 0 * * 1#1",
            &["2026-12-07T00:00:00Z", "2027-01-04T00:00:00Z"],
        ),
        (
            "0 0 * * 5#5",
            &[
                "2027-01-29T00:00:00Z",
                "2027-04-30T00:00:00Z",
                "2027-07-30T00:00:00Z",
            ],
        ),
        ("0 0 * * MON#2", &["2026-12-14T00:00:00Z"]),
        // Vixie: both restricted, either matches (the 13th, or a Friday).
        (
            "0 0 13 * 5",
            &[
                "2026-11-27T00:00:00Z",
                "2026-12-04T00:00:00Z",
                "2026-12-11T00:00:00Z",
                "2026-12-13T00:00:00Z",
            ],
        ),
        // ... but a day field starting with `*` is unrestricted: both must match.
        (
            "0 0 */13 * 5",
            &["2026-11-27T00:00:00Z", "2027-01-01T00:00:00Z"],
        ),
        (
            "0 0 L * 1",
            &["2026-11-30T00:00:00Z", "2026-12-07T00:00:00Z"],
        ),
        (
            "30 */20 9 * * *",
            &["2026-11-27T09:00:30Z", "2026-11-27T09:20:30Z"],
        ),
        ("  0  0  1  1  *  ", &["2027-01-01T00:00:00Z"]),
    ];
    for (expr, want) in cases {
        assert_eq!(next(expr, None, from, want.len()), *want, "{expr}");
    }
}

#[test]
fn february_29() {
    assert_eq!(
        next("0 0 29 2 *", None, "2026-11-26T00:00:00Z", 3),
        [
            "2028-02-29T00:00:00Z",
            "2032-02-29T00:00:00Z",
            "2036-02-29T00:00:00Z"
        ]
    );
    // 2100 is not a leap year; 2400 is.
    assert_eq!(
        next("0 0 29 2 *", None, "2096-03-01T00:00:00Z", 1),
        ["2104-02-29T00:00:00Z"]
    );
    assert_eq!(
        next("0 0 L 2 *", None, "2100-01-01T00:00:00Z", 1),
        ["2100-02-28T00:00:00Z"]
    );
    assert_eq!(
        next("0 0 L 2 *", None, "2028-01-01T00:00:00Z", 1),
        ["2028-02-29T00:00:00Z"]
    );
    // A day field starting with `*` is unrestricted: days 1 and 30 that are Tuesdays.
    assert_eq!(
        next("0 0 */29 2 2", None, "2026-01-01T00:00:00Z", 1),
        ["2028-02-01T00:00:00Z"]
    );
}

#[test]
fn impossible_dates_are_refused() {
    for e in ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 31W 2 *"] {
        let err = Schedule::parse(e, None).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("{e:?} never fires: no date matches its day and month fields")
        );
    }
    // Rare but possible: a fifth Friday in February (leap years starting on a Friday).
    let s = Schedule::parse("0 0 * 2 5#5", None).unwrap();
    assert_eq!(
        s.next_after(utc("2026-01-01T00:00:00Z")),
        Some(utc("2036-02-29T00:00:00Z"))
    );
}

#[test]
fn slots_are_whole_seconds_strictly_after() {
    let s = Schedule::parse("* * * * * *", None).unwrap();
    let t = utc("2026-01-01T00:00:00.5Z");
    assert_eq!(s.next_after(t), Some(utc("2026-01-01T00:00:01Z")));
    let s = Schedule::parse("@every 1s", None).unwrap();
    assert_eq!(s.next_after(t), Some(utc("2026-01-01T00:00:01Z")));
    assert_eq!(
        s.next_after(utc("1969-12-31T23:59:58Z")),
        Some(utc("1969-12-31T23:59:59Z"))
    );
}

#[test]
fn equal_schedules_compare_by_slots() {
    let a = Schedule::parse("*/15 * * * *", None).unwrap();
    let b = Schedule::parse("0,15,30,45 * * * *", None).unwrap();
    assert_eq!(a, b);
    assert_ne!(
        a,
        Schedule::parse("*/15 * * * *", Some("Europe/Berlin")).unwrap()
    );
    assert_eq!(a.timezone(), "UTC");
}

#[test]
fn every_error_message() {
    let cases = [
        ("0 24 * * *", "hour: 24 is out of range 0-23"),
        ("0 0 * * 8", "day of week: 8 is out of range 0-7"),
        ("60 * * * *", "minute: 60 is out of range 0-59"),
        ("60 * * * * *", "second: 60 is out of range 0-59"),
        ("* * 0 * *", "day of month: 0 is out of range 1-31"),
        ("* * 32 * *", "day of month: 32 is out of range 1-31"),
        ("* * * 13 *", "month: 13 is out of range 1-12"),
        ("* * * FOO *", "month: \"FOO\" is not a valid value (allowed: 1-12 or JAN-DEC)"),
        ("* * * * moo", "day of week: \"moo\" is not a valid value (allowed: 0-7 or SUN-SAT)"),
        ("a-b * * * *", "minute: \"a\" is not a valid value (allowed: 0-59)"),
        ("*/0 * * * *", "minute: step 0 is out of range 1-59"),
        ("* */24 * * *", "hour: step 24 is out of range 1-23"),
        ("30-10 * * * *", "minute: 30-10: the range starts after it ends (30 > 10)"),
        ("1-2-3 * * * *", "minute: 1-2-3: expected a range a-b"),
        ("1,,2 * * * *", "minute: \"1,,2\" has an empty list item"),
        ("* * L,5 * *", "day of month: L cannot be combined with other items in a list"),
        ("* * 1,15W * *", "day of month: 15W cannot be combined with other items in a list"),
        ("* * lx * *", "day of month: \"lx\" is not valid (allowed: L, LW, L-n, L-nW, nW)"),
        ("* * L-31 * *", "day of month: L-31: offset 31 is out of range 1-30"),
        ("* * 32W * *", "day of month: 32 is out of range 1-31"),
        ("* * * * 5#6", "day of week: 5#6: occurrence 6 is out of range 1-5"),
        ("* * * * 8#1", "day of week: 8 is out of range 0-7"),
        ("* * * * L", "day of week: L needs a day before it (5L is the last Friday of the month)"),
        ("* * * * 1#2,3", "day of week: 1#2 cannot be combined with other items in a list"),
        ("* * * *", "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (with a leading second), found 4 in \"* * * *\""),
        ("@reboot", "unknown macro \"@reboot\" (allowed: @yearly @annually @monthly @weekly @daily @midnight @hourly @every <duration> @at <RFC 3339 instant>)"),
        ("@every", "@every needs a duration, e.g. @every 90s or @every 1h30m"),
        ("@every 0s", "duration \"0s\": @every needs a whole number of seconds, at least 1s"),
        ("@every 1500ms", "duration \"1500ms\": @every needs a whole number of seconds, at least 1s"),
        ("@every 5d", "duration \"5d\": unknown unit \"d\"; allowed: ns, us, ms, s, m, h"),
    ];
    for (expr, msg) in cases {
        let err = Schedule::parse(expr, None).unwrap_err();
        assert_eq!(err.to_string(), msg, "{expr}");
    }
    let err = Schedule::parse("0 24 * * *", None).unwrap_err();
    assert_eq!(
        err,
        ScheduleError::Field {
            field: "hour",
            token: "24".into(),
            message: "24 is out of range 0-23".into()
        }
    );
}

#[test]
fn civil_conversion_matches_chrono() {
    let mut ts = -62_135_596_800i64; // 0001-01-01
    while ts < 253_402_300_799 {
        let c = civil_of(ts).unwrap();
        let n = DateTime::from_timestamp(ts, 0).unwrap().naive_utc();
        assert_eq!(c, civil_of_naive(n), "{ts}");
        assert_eq!(timestamp_of_civil(c), ts);
        ts += 86_400 * 13 + 3_607;
    }
}
