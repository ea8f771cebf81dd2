//! Checking crontab fields and translating them into saffron's dialect.
//!
//! saffron parses the fields, but its errors carry no detail and two of its conventions differ
//! from crontab(5): its day of week is 1-7 with 1 = Sunday (Quartz), where crontab has 0-7 with
//! 0 and 7 = Sunday and 1 = Monday, and it has no seconds field. So every field is first read
//! here, token by token, against crontab(5)'s ranges: a bad token gets an error naming the
//! field, the token and what is allowed. A field that passes is rewritten in saffron's terms
//! (day-of-week values become an explicit saffron list; a seconds field is parsed as a minutes
//! field, same syntax and range), and [`super::calendar`] compiles saffron's parse.
//!
//! This module does not evaluate anything; start at [`check_field`].

use super::ScheduleError;

/// One crontab field: its name in errors, its range, and its names (JAN..., SUN...).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldDef {
    pub name: &'static str,
    pub min: u8,
    pub max: u8,
    /// Names for the values `min..`: `names[i]` is value `min + i` (or `i` for day of week).
    names: &'static [&'static str],
    kind: FieldKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    Plain,
    DayOfMonth,
    DayOfWeek,
}

pub(crate) const SECOND: FieldDef = FieldDef {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
    kind: FieldKind::Plain,
};
pub(crate) const MINUTE: FieldDef = FieldDef {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    kind: FieldKind::Plain,
};
pub(crate) const HOUR: FieldDef = FieldDef {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    kind: FieldKind::Plain,
};
pub(crate) const DAY_OF_MONTH: FieldDef = FieldDef {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
    kind: FieldKind::DayOfMonth,
};
pub(crate) const MONTH: FieldDef = FieldDef {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    kind: FieldKind::Plain,
};
pub(crate) const DAY_OF_WEEK: FieldDef = FieldDef {
    name: "day of week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    kind: FieldKind::DayOfWeek,
};

/// Largest `k` in `n#k`: no weekday occurs a sixth time in a month.
const MAX_NTH: u8 = 5;

impl FieldDef {
    fn err(&self, token: &str, message: impl Into<String>) -> ScheduleError {
        ScheduleError::Field {
            field: self.name,
            token: token.to_string(),
            message: message.into(),
        }
    }

    fn allowed(&self) -> String {
        match (self.names.first(), self.names.last()) {
            (Some(a), Some(b)) => format!("{}-{} or {a}-{b}", self.min, self.max),
            _ => format!("{}-{}", self.min, self.max),
        }
    }

    /// One value: a number in range, or a name.
    fn value(&self, tok: &str) -> Result<u8, ScheduleError> {
        if tok.is_empty() {
            return Err(self.err(
                tok,
                "empty value (allowed: ".to_string() + &self.allowed() + ")",
            ));
        }
        if tok.bytes().all(|b| b.is_ascii_digit()) {
            return match tok.parse::<u32>() {
                Ok(v) if v >= u32::from(self.min) && v <= u32::from(self.max) => {
                    Ok(u8::try_from(v).unwrap_or(self.max))
                }
                _ => Err(self.err(
                    tok,
                    format!("{tok} is out of range {}-{}", self.min, self.max),
                )),
            };
        }
        let upper = tok.to_ascii_uppercase();
        if let Some(i) = self.names.iter().position(|n| *n == upper) {
            let base = if self.kind == FieldKind::DayOfWeek {
                0
            } else {
                self.min
            };
            return Ok(base + u8::try_from(i).unwrap_or(0));
        }
        Err(self.err(
            tok,
            format!("{tok:?} is not a valid value (allowed: {})", self.allowed()),
        ))
    }

    /// A step: at least 1, at most the width of the field.
    fn step(&self, tok: &str) -> Result<u8, ScheduleError> {
        let top = self.max - self.min;
        match tok.parse::<u32>() {
            Ok(v) if v >= 1 && v <= u32::from(top) && tok.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(u8::try_from(v).unwrap_or(top))
            }
            _ => Err(self.err(tok, format!("step {tok} is out of range 1-{top}"))),
        }
    }
}

/// Checks one field against crontab(5) and returns it in saffron's dialect.
pub(crate) fn check_field(def: &FieldDef, text: &str) -> Result<String, ScheduleError> {
    // Names, `L` and `W` are case-insensitive; errors quote the text as written.
    if let Some(special) = special_item(def, text)? {
        return Ok(special);
    }
    let upper = text.to_ascii_uppercase();
    let mut days_of_week: u8 = 0;
    let mut out = Vec::new();
    for (item, written) in upper.split(',').zip(text.split(',')) {
        if item.is_empty() {
            return Err(def.err(text, format!("{text:?} has an empty list item")));
        }
        if item != upper && is_special(def, item) {
            let item = written;
            return Err(def.err(
                item,
                format!("{item} cannot be combined with other items in a list"),
            ));
        }
        let (lo, hi, step) = range_item(def, written)?;
        if def.kind == FieldKind::DayOfWeek {
            let mut v = lo;
            while v <= hi {
                // crontab(5): 7 is Sunday, like 0.
                days_of_week |= 1 << (v % 7);
                v = v.saturating_add(step.unwrap_or(1));
            }
        } else {
            out.push(item.to_string());
        }
    }
    if def.kind == FieldKind::DayOfWeek {
        if text.trim_start().starts_with('*') && days_of_week == 0x7f {
            return Ok("*".into());
        }
        // saffron numbers days 1-7 from Sunday: crontab's day d is saffron's d + 1.
        let list: Vec<String> = (0..7u8)
            .filter(|d| days_of_week & (1 << d) != 0)
            .map(|d| (d + 1).to_string())
            .collect();
        return Ok(list.join(","));
    }
    Ok(out.join(","))
}

fn is_special(def: &FieldDef, item: &str) -> bool {
    match def.kind {
        FieldKind::DayOfMonth => item.starts_with('L') || item.ends_with('W'),
        FieldKind::DayOfWeek => item.contains('#') || (item.ends_with('L') && item.len() > 1),
        FieldKind::Plain => false,
    }
}

/// `L`, `LW`, `L-n`, `L-nW`, `nW` in day of month; `nL`, `n#k` in day of week. saffron takes
/// these only as the whole field.
fn special_item(def: &FieldDef, written: &str) -> Result<Option<String>, ScheduleError> {
    let upper = written.to_ascii_uppercase();
    let item = upper.as_str();
    // Errors quote the item as written.
    let err = |message: String| def.err(written, message.replace(item, written));
    match def.kind {
        FieldKind::Plain => Ok(None),
        FieldKind::DayOfMonth => {
            if item == "L" || item == "LW" {
                return Ok(Some(item.to_string()));
            }
            if let Some(rest) = item.strip_prefix("L-") {
                let (num, w) = match rest.strip_suffix('W') {
                    Some(n) => (n, "W"),
                    None => (rest, ""),
                };
                let n: u32 = num
                    .parse()
                    .map_err(|_| err(format!("{item}: expected L-n with n in 1-30")))?;
                if !(1..=30).contains(&n) || !num.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err(format!("{item}: offset {num} is out of range 1-30")));
                }
                return Ok(Some(format!("L-{n}{w}")));
            }
            if item.starts_with('L') && !item.contains(',') {
                return Err(err(format!(
                    "{item:?} is not valid (allowed: L, LW, L-n, L-nW, nW)"
                )));
            }
            if let Some(num) = item.strip_suffix('W') {
                if !item.contains(',') {
                    let day = def.value(num)?;
                    return Ok(Some(format!("{day}W")));
                }
            }
            Ok(None)
        }
        FieldKind::DayOfWeek => {
            if item.contains(',') {
                return Ok(None);
            }
            if item == "L" {
                return Err(err(
                    "L needs a day before it (5L is the last Friday of the month)".to_string(),
                ));
            }
            if let Some(day) = item.strip_suffix('L') {
                let d = def.value(day)? % 7;
                return Ok(Some(format!("{}L", d + 1)));
            }
            if let Some((day, nth)) = item.split_once('#') {
                let d = def.value(day)? % 7;
                let k = match nth.parse::<u8>() {
                    Ok(k)
                        if (1..=MAX_NTH).contains(&k)
                            && nth.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        k
                    }
                    _ => {
                        return Err(err(format!(
                            "{item}: occurrence {nth} is out of range 1-{MAX_NTH}"
                        )))
                    }
                };
                return Ok(Some(format!("{}#{k}", d + 1)));
            }
            Ok(None)
        }
    }
}

/// `*`, `*/s`, `a`, `a-b`, `a/s`, `a-b/s`: the values `lo..=hi` every `step`.
fn range_item(def: &FieldDef, item: &str) -> Result<(u8, u8, Option<u8>), ScheduleError> {
    let (base, step) = match item.split_once('/') {
        Some((b, s)) => (b, Some(def.step(s)?)),
        None => (item, None),
    };
    if base == "*" {
        return Ok((def.min, def.max, step));
    }
    if let Some((a, b)) = base.split_once('-') {
        if b.contains('-') {
            return Err(def.err(item, format!("{item}: expected a range a-b")));
        }
        let lo = def.value(a)?;
        let mut hi = def.value(b)?;
        // `FRI-SUN`: a range ending on Sunday by name ends on day 7.
        if def.kind == FieldKind::DayOfWeek && hi == 0 && lo > 0 && !b.starts_with('0') {
            hi = 7;
        }
        if lo > hi {
            return Err(def.err(
                item,
                format!("{item}: the range starts after it ends ({a} > {b})"),
            ));
        }
        return Ok((lo, hi, step));
    }
    let v = def.value(base)?;
    // `a/s` means from a to the end of the field, every s.
    let hi = if step.is_some() { def.max } else { v };
    Ok((v, hi, step))
}
