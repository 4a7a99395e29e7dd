//! `Time_Format`: strptime with Fluent Bit's additions, compiled once per parser.
//!
//! Specifiers: `%Y %y %m %d %e %j %H %I %M %S %p %b %B %h %a %A %z %Z %s %T %D %F %R %n %t %%`,
//! and `%L`, Fluent Bit's fractional seconds (1 to 9 digits, scaled: `.5` is 500 ms). A space in
//! the format matches any run of whitespace. Without `%z` (or with `%Z` naming UTC/GMT) the time
//! is UTC, shifted by `Time_Offset` when given.

use crate::record::EventTime;

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Literal(u8),
    Space,
    Year4,
    Year2,
    Month,
    Day,
    YearDay,
    Hour24,
    Hour12,
    Minute,
    Second,
    AmPm,
    MonthName,
    WeekdayName,
    Offset,
    ZoneName,
    Epoch,
    Fraction,
}

/// A compiled time format.
#[derive(Debug, Clone)]
pub struct TimeFormat {
    items: Vec<Item>,
    /// Formats without a year (syslog's `%b %e %H:%M:%S`) take the current year.
    has_year: bool,
}

/// Why a `Time_Format` is not usable.
#[derive(Debug, thiserror::Error)]
#[error("unsupported specifier '%{0}' in Time_Format")]
pub struct FormatError(char);

impl TimeFormat {
    pub fn new(format: &str) -> Result<Self, FormatError> {
        let mut items = Vec::new();
        let mut chars = format.bytes();
        while let Some(b) = chars.next() {
            if b != b'%' {
                items.push(if b.is_ascii_whitespace() {
                    Item::Space
                } else {
                    Item::Literal(b)
                });
                continue;
            }
            let Some(spec) = chars.next() else {
                return Err(FormatError('%'));
            };
            match spec {
                b'Y' => items.push(Item::Year4),
                b'y' => items.push(Item::Year2),
                b'm' => items.push(Item::Month),
                b'd' | b'e' => items.push(Item::Day),
                b'j' => items.push(Item::YearDay),
                b'H' | b'k' => items.push(Item::Hour24),
                b'I' | b'l' => items.push(Item::Hour12),
                b'M' => items.push(Item::Minute),
                b'S' => items.push(Item::Second),
                b'p' | b'P' => items.push(Item::AmPm),
                b'b' | b'B' | b'h' => items.push(Item::MonthName),
                b'a' | b'A' => items.push(Item::WeekdayName),
                b'z' => items.push(Item::Offset),
                b'Z' => items.push(Item::ZoneName),
                b's' => items.push(Item::Epoch),
                b'L' | b'f' | b'N' => items.push(Item::Fraction),
                b'T' => items.extend([
                    Item::Hour24,
                    Item::Literal(b':'),
                    Item::Minute,
                    Item::Literal(b':'),
                    Item::Second,
                ]),
                b'R' => items.extend([Item::Hour24, Item::Literal(b':'), Item::Minute]),
                b'D' => items.extend([
                    Item::Month,
                    Item::Literal(b'/'),
                    Item::Day,
                    Item::Literal(b'/'),
                    Item::Year2,
                ]),
                b'F' => items.extend([
                    Item::Year4,
                    Item::Literal(b'-'),
                    Item::Month,
                    Item::Literal(b'-'),
                    Item::Day,
                ]),
                b'n' | b't' => items.push(Item::Space),
                b'%' => items.push(Item::Literal(b'%')),
                other => return Err(FormatError(other as char)),
            }
        }
        let has_year = items
            .iter()
            .any(|i| matches!(i, Item::Year4 | Item::Year2 | Item::Epoch));
        Ok(TimeFormat { items, has_year })
    }

    /// Parses `s`. `offset_secs` applies when the text carries no zone. Trailing text after the
    /// format is ignored, as strptime does.
    pub fn parse(&self, s: &[u8], offset_secs: i64) -> Option<EventTime> {
        let mut p = Cursor { s, pos: 0 };
        let mut year = if self.has_year { 1970 } else { current_year() };
        let (mut month, mut day, mut yday) = (1u32, 1u32, None::<u32>);
        let (mut hour, mut min, mut sec, mut nanos) = (0u32, 0u32, 0u32, 0u32);
        let mut pm: Option<bool> = None;
        let mut offset: Option<i64> = None;
        let mut epoch: Option<i64> = None;
        for item in &self.items {
            match item {
                Item::Literal(b) => p.expect(*b)?,
                Item::Space => p.skip_space(),
                Item::Year4 => year = p.signed(4)?,
                Item::Year2 => {
                    let y = p.num(2)? as i64;
                    year = if y < 69 { 2000 + y } else { 1900 + y };
                }
                Item::Month => month = p.num(2)?,
                Item::Day => {
                    p.skip_space();
                    day = p.num(2)?;
                }
                Item::YearDay => yday = Some(p.num(3)?),
                Item::Hour24 | Item::Hour12 => hour = p.num(2)?,
                Item::Minute => min = p.num(2)?,
                Item::Second => sec = p.num(2)?,
                Item::AmPm => pm = Some(p.am_pm()?),
                Item::MonthName => month = p.month_name()?,
                Item::WeekdayName => p.weekday_name()?,
                Item::Offset => offset = Some(p.offset()?),
                Item::ZoneName => {
                    let name = p.word();
                    if matches!(name, b"UTC" | b"GMT" | b"Z") {
                        offset = Some(0);
                    }
                }
                Item::Epoch => epoch = Some(p.signed(20)?),
                Item::Fraction => nanos = p.fraction()?,
            }
        }
        if let Some(e) = epoch {
            return Some(EventTime::from_parts(e, nanos));
        }
        if let Some(pm) = pm {
            hour = match (hour, pm) {
                (12, false) => 0,
                (h, true) if h < 12 => h + 12,
                (h, _) => h,
            };
        }
        if month == 0 || month > 12 || day == 0 || day > 31 || hour > 23 || min > 59 || sec > 60 {
            return None;
        }
        let days = match yday {
            Some(d) if (1..=366).contains(&d) => days_from_civil(year, 1, 1) + i64::from(d) - 1,
            Some(_) => return None,
            None => days_from_civil(year, month, day),
        };
        let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec)
            - offset.unwrap_or(offset_secs);
        Some(EventTime::from_parts(secs, nanos))
    }
}

fn current_year() -> i64 {
    use chrono::Datelike;
    i64::from(chrono::Utc::now().year())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `Time_Offset`: `+0900`, `-07:00`, `+09`.
pub fn parse_offset(s: &str) -> Result<i64, String> {
    let mut c = Cursor {
        s: s.trim().as_bytes(),
        pos: 0,
    };
    c.offset()
        .filter(|_| c.pos == c.s.len())
        .ok_or_else(|| format!("'{s}' is not a UTC offset (e.g. +0900, -07:00)"))
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

const MONTHS: [&[u8; 3]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];
const MONTH_TAILS: [&[u8]; 12] = [
    b"uary", b"ruary", b"ch", b"il", b"", b"e", b"y", b"ust", b"tember", b"ober", b"ember",
    b"ember",
];
const DAYS: [&[u8; 3]; 7] = [b"mon", b"tue", b"wed", b"thu", b"fri", b"sat", b"sun"];
const DAY_TAILS: [&[u8]; 7] = [
    b"day", b"sday", b"nesday", b"rsday", b"day", b"urday", b"day",
];

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.pos += 1)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// Up to `max` digits, at least one.
    fn num(&mut self, max: usize) -> Option<u32> {
        let start = self.pos;
        let mut v: u32 = 0;
        while self.pos - start < max {
            match self.peek() {
                Some(b @ b'0'..=b'9') => {
                    v = v * 10 + u32::from(b - b'0');
                    self.pos += 1;
                }
                _ => break,
            }
        }
        (self.pos > start).then_some(v)
    }

    fn signed(&mut self, max: usize) -> Option<i64> {
        let neg = self.expect(b'-').is_some();
        let start = self.pos;
        let mut v: i64 = 0;
        while self.pos - start < max {
            match self.peek() {
                Some(b @ b'0'..=b'9') => {
                    v = v.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
                    self.pos += 1;
                }
                _ => break,
            }
        }
        (self.pos > start).then_some(if neg { -v } else { v })
    }

    /// Fractional digits scaled to nanoseconds; extra digits past 9 are read and ignored.
    fn fraction(&mut self) -> Option<u32> {
        let start = self.pos;
        let mut nanos: u32 = 0;
        while let Some(b @ b'0'..=b'9') = self.peek() {
            if self.pos - start < 9 {
                nanos = nanos * 10 + u32::from(b - b'0');
            }
            self.pos += 1;
        }
        let digits = (self.pos - start).min(9) as u32;
        (digits > 0).then(|| nanos * 10u32.pow(9 - digits))
    }

    fn name(&mut self, heads: &[&[u8; 3]], tails: &[&[u8]]) -> Option<usize> {
        let head = self.s.get(self.pos..self.pos + 3)?;
        let i = heads
            .iter()
            .position(|h| head.eq_ignore_ascii_case(&h[..]))?;
        self.pos += 3;
        let tail = tails[i];
        if self
            .s
            .get(self.pos..self.pos + tail.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(tail))
        {
            self.pos += tail.len();
        }
        Some(i)
    }

    fn month_name(&mut self) -> Option<u32> {
        self.name(&MONTHS, &MONTH_TAILS).map(|i| i as u32 + 1)
    }

    fn weekday_name(&mut self) -> Option<()> {
        self.name(&DAYS, &DAY_TAILS).map(|_| ())
    }

    fn am_pm(&mut self) -> Option<bool> {
        let w = self.s.get(self.pos..self.pos + 2)?;
        let pm = if w.eq_ignore_ascii_case(b"pm") {
            true
        } else if w.eq_ignore_ascii_case(b"am") {
            false
        } else {
            return None;
        };
        self.pos += 2;
        Some(pm)
    }

    /// `Z`, `+hh`, `+hhmm`, `+hh:mm` (and `-`), in seconds east of UTC.
    fn offset(&mut self) -> Option<i64> {
        if self.expect(b'Z').is_some() {
            return Some(0);
        }
        let sign = match self.peek()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        self.pos += 1;
        let h = i64::from(self.fixed2()?);
        let _ = self.expect(b':');
        let m = if self.peek().is_some_and(|b| b.is_ascii_digit()) {
            i64::from(self.fixed2()?)
        } else {
            0
        };
        Some(sign * (h * 3600 + m * 60))
    }

    fn fixed2(&mut self) -> Option<u32> {
        let start = self.pos;
        let v = self.num(2)?;
        (self.pos - start == 2).then_some(v)
    }

    fn word(&mut self) -> &[u8] {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(fmt: &str, s: &str) -> Option<(i64, u32)> {
        TimeFormat::new(fmt)
            .unwrap()
            .parse(s.as_bytes(), 0)
            .map(|t| (t.secs(), t.subsec_nanos()))
    }

    #[test]
    fn nginx_and_apache_times() {
        assert_eq!(
            t("%d/%b/%Y:%H:%M:%S %z", "14/Nov/2023:22:13:20 +0000"),
            Some((1_700_000_000, 0))
        );
        assert_eq!(
            t("%d/%b/%Y:%H:%M:%S %z", "15/Nov/2023:07:13:20 +0900"),
            Some((1_700_000_000, 0))
        );
        assert_eq!(
            t("%d/%b/%Y:%H:%M:%S %z", "14/Nov/2023:17:13:20 -05:00"),
            Some((1_700_000_000, 0))
        );
    }

    #[test]
    fn fractions_and_iso_forms() {
        assert_eq!(
            t("%Y-%m-%dT%H:%M:%S.%L%z", "2023-11-14T22:13:20.5Z"),
            Some((1_700_000_000, 500_000_000))
        );
        assert_eq!(
            t(
                "%Y-%m-%dT%H:%M:%S.%L%z",
                "2023-11-14T22:13:20.123456789+00:00"
            ),
            Some((1_700_000_000, 123_456_789))
        );
        assert_eq!(
            t("%Y-%m-%dT%H:%M:%S.%L", "2023-11-14T22:13:20.123"),
            Some((1_700_000_000, 123_000_000))
        );
        assert_eq!(t("%s", "1700000000"), Some((1_700_000_000, 0)));
        let this_year = days_from_civil(current_year(), 11, 4) * 86_400 + 36_000;
        assert_eq!(t("%b %e %H:%M:%S", "Nov  4 10:00:00"), Some((this_year, 0)));
        assert_eq!(
            t(
                "%a, %d %B %Y %I:%M:%S %p",
                "Tue, 14 November 2023 10:13:20 PM"
            ),
            Some((1_700_000_000, 0))
        );
    }

    #[test]
    fn offsets_apply_when_the_text_has_no_zone() {
        let f = TimeFormat::new("%Y-%m-%d %H:%M:%S").unwrap();
        let t = f
            .parse(b"2023-11-15 07:13:20", parse_offset("+0900").unwrap())
            .unwrap();
        assert_eq!(t.secs(), 1_700_000_000);
        assert_eq!(parse_offset("-07:00"), Ok(-25_200));
        assert!(parse_offset("nine").is_err());
    }

    #[test]
    fn bad_input_is_none_not_a_panic() {
        assert_eq!(t("%d/%b/%Y", "32/Nov/2023"), None);
        assert_eq!(t("%d/%b/%Y", "14/Foo/2023"), None);
        assert_eq!(t("%Y-%m-%d", ""), None);
        assert_eq!(t("%s", "99999999999999999999999"), None);
        assert!(TimeFormat::new("%Q").is_err());
    }
}
