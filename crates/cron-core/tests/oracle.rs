//! Property test: cron-core against croner, an independent implementation, on random 5- and
//! 6-field expressions and instants in UTC. Both read the day of week as crontab(5) does (0-7,
//! 0 and 7 = Sunday). The generator stays inside what both agree on: croner treats only an
//! exact `*` as an unrestricted day field, where the Vixie rule (ours) also counts `*/n`, so a
//! `*/n` day field is only generated when the other day field is `*`.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use cron_core::Schedule;
use proptest::prelude::*;

fn item(min: u32, max: u32, names: &'static [&'static str]) -> BoxedStrategy<String> {
    let value = move |v: u32| -> String {
        if !names.is_empty() && v >= min && ((v - min) as usize) < names.len() && v % 3 == 0 {
            names[(v - min) as usize].to_string()
        } else {
            v.to_string()
        }
    };
    prop_oneof![
        (min..=max).prop_map(value),
        (min..=max, min..=max).prop_map(move |(a, b)| {
            let (a, b) = if a <= b { (a, b) } else { (b, a) };
            // Names stay out of ranges: croner reads `SUN-SUN` as every day.
            format!("{a}-{b}")
        }),
        (min..=max, min..=max, 1..=(max - min)).prop_map(move |(a, b, s)| {
            let (a, b) = if a <= b { (a, b) } else { (b, a) };
            format!("{a}-{b}/{s}")
        }),
    ]
    .boxed()
}

fn list(min: u32, max: u32, names: &'static [&'static str]) -> BoxedStrategy<String> {
    prop::collection::vec(item(min, max, names), 1..4)
        .prop_map(|v| v.join(","))
        .boxed()
}

fn plain(min: u32, max: u32, names: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        2 => Just("*".to_string()),
        1 => (1..=(max - min)).prop_map(|s| format!("*/{s}")),
        4 => list(min, max, names),
    ]
    .boxed()
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn days() -> BoxedStrategy<(String, String)> {
    let dom = prop_oneof![
        3 => list(1, 31, &[]),
        1 => Just("L".to_string()),
    ];
    let dow = prop_oneof![
        3 => list(0, 7, DAYS),
        1 => (0u32..=7, 1u32..=5).prop_map(|(d, k)| format!("{d}#{k}")),
        // croner misses `7L` (Sunday as 7); ours is tested by the unit tests.
        1 => (0u32..=6).prop_map(|d| format!("{d}L")),
    ];
    prop_oneof![
        2 => Just(("*".to_string(), "*".to_string())),
        2 => (dom.clone(), Just("*".to_string())),
        2 => (Just("*".to_string()), dow.clone()),
        1 => (1u32..=30).prop_map(|s| (format!("*/{s}"), "*".to_string())),
        1 => (1u32..=6).prop_map(|s| ("*".to_string(), format!("*/{s}"))),
        2 => (dom, dow),
    ]
    .boxed()
}

fn expression() -> impl Strategy<Value = String> {
    (
        prop::option::of(plain(0, 59, &[])),
        plain(0, 59, &[]),
        plain(0, 23, &[]),
        days(),
        plain(1, 12, MONTHS),
    )
        .prop_map(|(sec, min, hour, (dom, dow), month)| {
            let five = format!("{min} {hour} {dom} {month} {dow}");
            match sec {
                Some(s) => format!("{s} {five}"),
                None => five,
            }
        })
}

fn oracle_next(expr: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let cron = croner::Cron::new(expr)
        .with_seconds_optional()
        .parse()
        .unwrap();
    cron.find_next_occurrence(&after, false).ok()
}

#[test]
fn the_oracle_reads_weekdays_as_crontab5() {
    // 2026-11-29 is a Sunday: 1 is Monday, 0 and 7 are Sunday, for croner as for us.
    let sunday = DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z")
        .unwrap()
        .to_utc();
    for (expr, want) in [
        ("0 0 * * 1", "2026-11-30T00:00:00Z"),
        ("0 0 * * 0", "2026-12-06T00:00:00Z"),
        ("0 0 * * 7", "2026-12-06T00:00:00Z"),
        ("0 9 * * 1-5", "2026-11-30T09:00:00Z"),
    ] {
        let want = DateTime::parse_from_rfc3339(want).unwrap().to_utc();
        assert_eq!(oracle_next(expr, sunday), Some(want), "croner {expr}");
        let ours = Schedule::parse(expr, None).unwrap().next_after(sunday);
        assert_eq!(ours, Some(want), "cron-core {expr}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_croner(expr in expression(), at in 0i64..4_102_444_800) {
        let ours = match Schedule::parse(&expr, None) {
            Ok(s) => s,
            // Refused as impossible (30 February): then croner finds no slot either.
            Err(e) => {
                prop_assert!(e.to_string().contains("never fires"), "{}: {}", expr, e);
                let from = DateTime::from_timestamp(at, 0).unwrap();
                prop_assert_eq!(oracle_next(&expr, from), None, "{}", expr);
                return Ok(());
            }
        };
        let mut t = DateTime::from_timestamp(at, 0).unwrap();
        for _ in 0..4 {
            let Some(theirs) = oracle_next(&expr, t) else { break };
            let mine = ours.next_after(t);
            prop_assert_eq!(mine, Some(theirs), "{} after {}", expr, t);
            t = theirs;
        }
    }
}
