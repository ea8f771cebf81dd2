//! Daylight-saving tables: a local time inside a gap fires once, at the first instant after the
//! gap; a local time that happens twice fires once, at its first occurrence; slots landing on
//! the same instant are one slot. Every expected instant below was worked out by hand from the
//! zone's rules, not read back from the code.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use cron_core::Schedule;

fn slots(expr: &str, tz: &str, from: &str, n: usize) -> Vec<String> {
    let s = Schedule::parse(expr, Some(tz)).unwrap();
    let mut t = DateTime::parse_from_rfc3339(from)
        .unwrap()
        .with_timezone(&Utc);
    (0..n)
        .map(|_| {
            t = s.next_after(t).unwrap();
            t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
        })
        .collect()
}

#[test]
fn europe_berlin() {
    // 2026-03-29: 02:00 CET (01:00Z) jumps to 03:00 CEST.
    assert_eq!(
        slots("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", 3),
        [
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z"
        ]
    );
    // 02:00, 02:30 (in the gap) and 03:00 are one instant: one slot.
    assert_eq!(
        slots("*/30 * * * *", "Europe/Berlin", "2026-03-29T00:00:00Z", 3),
        [
            "2026-03-29T00:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T01:30:00Z"
        ]
    );
    // 2026-10-25: 03:00 CEST (01:00Z) falls back to 02:00 CET; 02:30 happens twice.
    assert_eq!(
        slots("30 2 * * *", "Europe/Berlin", "2026-10-23T12:00:00Z", 3),
        [
            "2026-10-24T00:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z"
        ]
    );
    // The repeated hour fires once: 02:00 and 02:30 CEST, not again in CET.
    assert_eq!(
        slots("*/30 * * * *", "Europe/Berlin", "2026-10-24T23:00:00Z", 5),
        [
            "2026-10-24T23:30:00Z",
            "2026-10-25T00:00:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-25T02:00:00Z",
            "2026-10-25T02:30:00Z"
        ]
    );
    // From inside the second pass of the repeated hour.
    assert_eq!(
        slots("*/30 * * * *", "Europe/Berlin", "2026-10-25T01:10:00Z", 1),
        ["2026-10-25T02:00:00Z"]
    );
}

#[test]
fn america_new_york() {
    // 2026-03-08: 02:00 EST (07:00Z) jumps to 03:00 EDT.
    assert_eq!(
        slots("30 2 * * *", "America/New_York", "2026-03-06T12:00:00Z", 3),
        [
            "2026-03-07T07:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z"
        ]
    );
    // 2026-11-01: 02:00 EDT (06:00Z) falls back to 01:00 EST; 01:30 happens twice.
    assert_eq!(
        slots("30 1 * * *", "America/New_York", "2026-10-30T12:00:00Z", 3),
        [
            "2026-10-31T05:30:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-02T06:30:00Z"
        ]
    );
    // A daily 09:00 keeps local time across the change.
    assert_eq!(
        slots("0 9 * * *", "America/New_York", "2026-10-31T00:00:00Z", 2),
        ["2026-10-31T13:00:00Z", "2026-11-01T14:00:00Z"]
    );
}

#[test]
fn australia_lord_howe_half_hour_shift() {
    // 2026-10-04: 02:00 +10:30 (15:30Z the day before) jumps to 02:30 +11:00.
    assert_eq!(
        slots(
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2026-10-02T00:00:00Z",
            3
        ),
        [
            "2026-10-02T15:45:00Z",
            "2026-10-03T15:30:00Z",
            "2026-10-04T15:15:00Z"
        ]
    );
    // 2026-04-05: 02:00 +11:00 (15:00Z the day before) falls back to 01:30 +10:30; 01:45
    // happens twice.
    assert_eq!(
        slots(
            "45 1 * * *",
            "Australia/Lord_Howe",
            "2026-04-03T00:00:00Z",
            3
        ),
        [
            "2026-04-03T14:45:00Z",
            "2026-04-04T14:45:00Z",
            "2026-04-05T15:15:00Z"
        ]
    );
    assert_eq!(
        slots(
            "*/15 1-2 5 4 *",
            "Australia/Lord_Howe",
            "2026-04-04T14:00:00Z",
            7
        ),
        [
            "2026-04-04T14:15:00Z", // 01:15 +11
            "2026-04-04T14:30:00Z", // 01:30 +11, first occurrence
            "2026-04-04T14:45:00Z", // 01:45 +11
            // 01:30 and 01:45 +10:30 (15:00Z, 15:15Z) are repeats: skipped.
            "2026-04-04T15:30:00Z", // 02:00 +10:30
            "2026-04-04T15:45:00Z",
            "2026-04-04T16:00:00Z",
            "2026-04-04T16:15:00Z",
        ]
    );
}

#[test]
fn asia_kathmandu() {
    // 1986-01-01: +05:30 becomes +05:45; local 00:00-00:15 never happens.
    assert_eq!(
        slots("5 0 * * *", "Asia/Kathmandu", "1985-12-30T00:00:00Z", 3),
        [
            "1985-12-30T18:35:00Z",
            "1985-12-31T18:30:00Z",
            "1986-01-01T18:20:00Z"
        ]
    );
    assert_eq!(
        slots("0 9 * * *", "Asia/Kathmandu", "2026-11-26T00:00:00Z", 2),
        ["2026-11-26T03:15:00Z", "2026-11-27T03:15:00Z"]
    );
}

#[test]
fn pacific_apia_skipped_day() {
    // 2011-12-29 24:00 -10:00 (2011-12-30T10:00Z) became 2011-12-31 00:00 +14:00: the 30th
    // never happened. Its noon fires at the first instant after the gap.
    assert_eq!(
        slots("0 12 * * *", "Pacific/Apia", "2011-12-28T00:00:00Z", 4),
        [
            "2011-12-28T22:00:00Z",
            "2011-12-29T22:00:00Z",
            "2011-12-30T10:00:00Z",
            "2011-12-30T22:00:00Z"
        ]
    );
    assert_eq!(
        slots("0 12 30 12 *", "Pacific/Apia", "2011-01-01T00:00:00Z", 2),
        ["2011-12-30T10:00:00Z", "2012-12-29T22:00:00Z"]
    );
}

#[test]
fn every_ignores_the_zone() {
    assert_eq!(
        slots("@every 1h", "Europe/Berlin", "2026-03-29T00:30:00Z", 2),
        ["2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"]
    );
}
