//! The compiled form of a crontab expression, and the search for the next matching local time.
//!
//! saffron's parse tree is turned into one bitset per field (seconds, minutes, hours, months)
//! plus the day rules (`L`, `W`, `#`, last weekday), so that finding the next match is a few
//! bit scans: month, then day (a 31-bit mask computed per month), hour, minute, second. This
//! works on naive local wall-clock time; the time zone and daylight saving are the caller's
//! ([`super::Schedule::next_after`]).

use chrono_tz::Tz;
use saffron::parse::{CronExpr, DayOfMonthExpr, DayOfWeekExpr, Expr, Last, OrsExpr};

/// How far ahead a search looks before it gives up: an expression with no match in 400 years
/// (the Gregorian cycle) has none at all, e.g. `0 0 30 2 *`.
const SEARCH_YEARS: i32 = 400;

/// The day-of-month rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DomRule {
    /// Bit `d` set: day `d` matches.
    Days(u32),
    /// `L` (offset 0) or `L-n`: the last day of the month minus `n`.
    Last(u8),
    /// `LW` or `L-nW`: the weekday nearest to the last day minus `n`.
    LastWeekday(u8),
    /// `nW`: the weekday nearest to day `n`, inside the month.
    NearestWeekday(u8),
}

/// A [`DomRule`] in 4 bytes instead of 8, as the planner holds a calendar per job: bit 0 clear,
/// the value is the `Days` bitset itself (there is no day 0); bit 0 set, bits 1-2 are the kind
/// and bits 8-15 its argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PackedDom(u32);

impl PackedDom {
    fn pack(rule: DomRule) -> PackedDom {
        let (kind, arg) = match rule {
            DomRule::Days(bits) => return PackedDom(bits & !1),
            DomRule::Last(n) => (0, n),
            DomRule::LastWeekday(n) => (1, n),
            DomRule::NearestWeekday(d) => (2, d),
        };
        PackedDom(1 | kind << 1 | u32::from(arg) << 8)
    }

    fn rule(self) -> DomRule {
        if self.0 & 1 == 0 {
            return DomRule::Days(self.0);
        }
        let arg = self.0.to_le_bytes()[1];
        match (self.0 >> 1) & 3 {
            0 => DomRule::Last(arg),
            1 => DomRule::LastWeekday(arg),
            _ => DomRule::NearestWeekday(arg),
        }
    }
}

/// Every day of a month, as a `Days` bitset.
const ALL_DAYS: u32 = 0xffff_fffe;

/// Every day of the week, as a `Days` bitset.
const ALL_WEEKDAYS: u8 = 0x7f;

/// The day-of-week rule; weekdays count from Sunday = 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DowRule {
    /// Bit `w` set: weekday `w` matches.
    Days(u8),
    /// `wL`: the last weekday `w` of the month.
    Last(u8),
    /// `w#k`: the k-th weekday `w` of the month.
    Nth(u8, u8),
}

/// A compiled crontab expression, with its zone: 32 bytes, as the planner holds one per job
/// (and a 32-byte schedule keeps a validated job in a 400-byte malloc chunk instead of 416).
/// The zone is not used here (the search is in local time); it rides in the calendar's padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Calendar {
    pub seconds: u64,
    pub minutes: u64,
    pub hours: u32,
    /// Bit `m` set: month `m` (1-12) matches.
    pub months: u16,
    pub dom: PackedDom,
    pub dow: DowRule,
    /// The Vixie rule: when both day fields are restricted (neither starts with `*`), a day
    /// matches if either matches; otherwise both must.
    pub days_or: bool,
    /// The zone of the local times (see [`super::Schedule`]).
    pub tz: Tz,
}

/// A local wall-clock time, field by field (month and day from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Civil {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

fn ors_bits<E: Copy + Into<u8>>(e: &OrsExpr<E>) -> u64 {
    let (lo, hi, step) = match *e {
        OrsExpr::One(v) => (v.into(), v.into(), 1),
        OrsExpr::Range(a, b) => (a.into(), b.into(), 1),
        OrsExpr::Step { start, end, step } => (start.into(), end.into(), u8::from(step)),
        // saffron's enum is non-exhaustive; nothing else exists in 0.1.
        _ => (0, 0, 1),
    };
    let mut bits = 0u64;
    let mut v = lo;
    while v <= hi && v < 64 {
        bits |= 1 << v;
        v = v.saturating_add(step.max(1));
    }
    bits
}

fn expr_bits<E: Copy + Into<u8>>(e: &Expr<E>, all: u64) -> u64 {
    match e {
        Expr::Many(list) => list.iter().map(ors_bits).fold(0, |a, b| a | b),
        _ => all,
    }
}

const fn span(lo: u32, hi: u32) -> u64 {
    ((1u64 << (hi + 1)) - 1) & !((1u64 << lo) - 1)
}

/// The smallest difference between two consecutive set bits of `bits` (`None` with fewer than
/// two), and the distance from the lowest set bit to the highest.
fn gaps(bits: u64) -> (Option<u64>, u64) {
    if bits == 0 {
        return (None, 0);
    }
    let (lo, hi) = (bits.trailing_zeros(), 63 - bits.leading_zeros());
    let mut smallest: Option<u64> = None;
    let mut prev = lo;
    let mut rest = bits & !(1u64 << lo);
    while rest != 0 {
        let b = rest.trailing_zeros();
        let d = u64::from(b - prev);
        smallest = Some(smallest.map_or(d, |s| s.min(d)));
        prev = b;
        rest &= !(1u64 << b);
    }
    (smallest, u64::from(hi - lo))
}

impl Calendar {
    /// Compiles saffron's parse of the five fields in zone `tz`, with the seconds from a sixth
    /// one (parsed by saffron as a minutes field) and the two "starts with `*`" flags of the
    /// Vixie rule.
    pub(crate) fn compile(
        expr: &CronExpr,
        tz: Tz,
        seconds: Option<&CronExpr>,
        dom_star: bool,
        dow_star: bool,
    ) -> Calendar {
        let seconds = seconds.map_or(1, |s| expr_bits(&s.minutes, span(0, 59)));
        let dom = match &expr.doms {
            // saffron's DayOfMonth and Month convert to 0-based numbers: shift them by one.
            DayOfMonthExpr::Many(list) => DomRule::Days(
                u32::try_from((list.iter().map(ors_bits).fold(0, |a, b| a | b) << 1) & span(1, 31))
                    .unwrap_or(0),
            ),
            DayOfMonthExpr::Last(Last::Day) => DomRule::Last(0),
            DayOfMonthExpr::Last(Last::Weekday) => DomRule::LastWeekday(0),
            DayOfMonthExpr::Last(Last::Offset(n)) => DomRule::Last((*n).into()),
            DayOfMonthExpr::Last(Last::OffsetWeekday(n)) => DomRule::LastWeekday((*n).into()),
            DayOfMonthExpr::ClosestWeekday(d) => DomRule::NearestWeekday(u8::from(*d) + 1),
            _ => DomRule::Days(ALL_DAYS),
        };
        // saffron's DayOfWeek converts to 0-6 from Sunday.
        let dow = match &expr.dows {
            DayOfWeekExpr::Many(list) => DowRule::Days(
                u8::try_from(list.iter().map(ors_bits).fold(0, |a, b| a | b) & 0x7f).unwrap_or(0),
            ),
            DayOfWeekExpr::Last(d) => DowRule::Last((*d).into()),
            DayOfWeekExpr::Nth(d, k) => DowRule::Nth((*d).into(), (*k).into()),
            _ => DowRule::Days(ALL_WEEKDAYS),
        };
        Calendar {
            seconds,
            minutes: expr_bits(&expr.minutes, span(0, 59)),
            hours: u32::try_from(expr_bits(&expr.hours, span(0, 23))).unwrap_or(0),
            months: u16::try_from(expr_bits(&expr.months, span(0, 11)) << 1).unwrap_or(0),
            dom: PackedDom::pack(dom),
            dow,
            days_or: !dom_star && !dow_star,
            tz,
        }
    }

    /// The days of `year`-`month` that match, as a bitset (bit `d` for day `d`).
    fn day_mask(&self, year: i32, month: u32) -> u64 {
        let dim = days_in_month(year, month);
        let all = span(1, dim);
        // Every day matches (the fast path), however the fields were written.
        if self.dom == PackedDom(ALL_DAYS) && self.dow == DowRule::Days(ALL_WEEKDAYS) {
            return all;
        }
        let first = weekday(year, month, 1);
        // The weekday of day d is (first + d - 1) % 7.
        let wd = |d: u32| (first + d + 6) % 7;
        let nearest_weekday = |d: u32| -> u64 {
            if d == 0 || d > dim {
                return 0;
            }
            let n = match wd(d) {
                6 if d == 1 => 3,
                6 => d - 1,
                0 if d == dim => d.saturating_sub(2),
                0 => d + 1,
                _ => d,
            };
            1 << n
        };
        let dom = match self.dom.rule() {
            DomRule::Days(b) => u64::from(b) & all,
            DomRule::Last(n) => dim
                .checked_sub(u32::from(n))
                .filter(|d| *d >= 1)
                .map_or(0, |d| 1 << d),
            DomRule::LastWeekday(n) => nearest_weekday(dim.saturating_sub(u32::from(n))),
            DomRule::NearestWeekday(d) => nearest_weekday(u32::from(d)),
        };
        let dow = match self.dow {
            DowRule::Days(b) => {
                // The first week, then repeated every 7 days.
                let mut week = 0u64;
                for d in 1..=7 {
                    if b & (1 << wd(d)) != 0 {
                        week |= 1 << d;
                    }
                }
                (week | week << 7 | week << 14 | week << 21 | week << 28) & all
            }
            DowRule::Last(w) => {
                let last = dim - (wd(dim) + 7 - u32::from(w)) % 7;
                1 << last
            }
            DowRule::Nth(w, k) => {
                let d = 1 + (u32::from(w) + 7 - first) % 7 + 7 * (u32::from(k) - 1);
                if d <= dim {
                    1 << d
                } else {
                    0
                }
            }
        };
        if self.days_or {
            dom | dow
        } else {
            dom & dow
        }
    }

    /// The shortest distance in seconds between two consecutive matching times of day on the
    /// local clock, counting the step from the day's last time to the next day's first as if
    /// the next day matched. The times of a day are the product hours × minutes × seconds, so
    /// two consecutive ones differ in the second only, or in the minute (last second to first),
    /// or in the hour, or across midnight.
    pub(crate) fn shortest_interval(&self) -> u64 {
        let (ds, span_s) = gaps(self.seconds);
        let (dm, span_m) = gaps(self.minutes);
        let (dh, span_h) = gaps(u64::from(self.hours));
        let within_minute = span_s;
        let within_hour = span_m * 60 + within_minute;
        let within_day = span_h * 3600 + within_hour;
        [
            ds,
            dm.map(|d| d * 60 - within_minute),
            dh.map(|d| d * 3600 - within_hour),
            Some(86_400 - within_day),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(86_400)
    }

    /// The first local time at or after `t` that matches, or `None` within [`SEARCH_YEARS`].
    pub(crate) fn next_match(&self, t: Civil) -> Option<Civil> {
        let Civil {
            mut year,
            mut month,
            mut day,
            mut hour,
            mut minute,
            mut second,
        } = t;
        let limit = year.saturating_add(SEARCH_YEARS);
        // Carries are lazy: a field past its end is found empty below and moves the next one.
        loop {
            if year > limit {
                return None;
            }
            if month > 12 {
                (year, month, day, hour, minute, second) = (year + 1, 1, 1, 0, 0, 0);
                continue;
            }
            match next_bit(u64::from(self.months), month) {
                Some(m) if m == month => {}
                Some(m) => (month, day, hour, minute, second) = (m, 1, 0, 0, 0),
                None => {
                    (year, month, day, hour, minute, second) = (year + 1, 1, 1, 0, 0, 0);
                    continue;
                }
            }
            match next_bit(self.day_mask(year, month), day) {
                Some(d) if d == day => {}
                Some(d) => (day, hour, minute, second) = (d, 0, 0, 0),
                None => {
                    (month, day, hour, minute, second) = (month + 1, 1, 0, 0, 0);
                    continue;
                }
            }
            match next_bit(u64::from(self.hours), hour) {
                Some(h) if h == hour => {}
                Some(h) => (hour, minute, second) = (h, 0, 0),
                None => {
                    (day, hour, minute, second) = (day + 1, 0, 0, 0);
                    continue;
                }
            }
            match next_bit(self.minutes, minute) {
                Some(m) if m == minute => {}
                Some(m) => (minute, second) = (m, 0),
                None => {
                    (hour, minute, second) = (hour + 1, 0, 0);
                    continue;
                }
            }
            match next_bit(self.seconds, second) {
                Some(s) => {
                    return Some(Civil {
                        year,
                        month,
                        day,
                        hour,
                        minute,
                        second: s,
                    })
                }
                None => {
                    (minute, second) = (minute + 1, 0);
                    continue;
                }
            }
        }
    }
}

/// The lowest set bit of `bits` at or above `from`.
#[inline]
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let m = bits & (!0u64 << from);
    (m != 0).then(|| m.trailing_zeros())
}

pub(crate) fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

pub(crate) fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The weekday of a date, Sunday = 0.
fn weekday(year: i32, month: u32, day: u32) -> u32 {
    // 1970-01-01 was a Thursday.
    u32::try_from((days_from_civil(year, month, day) + 4).rem_euclid(7)).unwrap_or(0)
}
