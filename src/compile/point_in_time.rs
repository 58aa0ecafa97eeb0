//! Point-in-time facts: the cutoff, each source's time column, and feature windows.
//!
//! A point-in-time recipe's rows are (entity, cutoff). A timed source contributes only the
//! rows before a row's cutoff (`time < cutoff`, or `time <= cutoff` with `include_cutoff`),
//! and a feature with a `window` only those within it (`cutoff − window <= time`, or
//! `cutoff − window < time` with `include_cutoff`, as Featuretools' `training_window`).
//! Windows are fixed lengths: seconds, minutes, hours, days and weeks. Months and years
//! are refused rather than guessed, since their length depends on the date.

use crate::types::TypeFamily;
use datafusion::arrow::datatypes::DataType;

/// Whether a cutoff or time column holds dates or timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeType {
    /// A calendar date (midnight when compared with a timestamp).
    Date,
    /// A timestamp.
    Timestamp,
}

impl TimeType {
    /// The time type of an Arrow type, `None` for any other type.
    pub fn of(data_type: &DataType) -> Option<TimeType> {
        match TypeFamily::of(data_type) {
            TypeFamily::Date => Some(TimeType::Date),
            TypeFamily::Timestamp => Some(TimeType::Timestamp),
            _ => None,
        }
    }
}

/// The point-in-time facts of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanTime {
    /// The cutoff column as the spine spells it (one of the grain).
    pub cutoff: String,
    /// Whether the cutoff is a date or a timestamp.
    pub cutoff_type: TimeType,
    /// A source row exactly at the cutoff counts.
    pub include_cutoff: bool,
}

/// The time column of a timed source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceTime {
    /// The column as the source spells it.
    pub column: String,
    /// Whether it is a date or a timestamp.
    pub time_type: TimeType,
    /// The columns that break ties between rows at the same time for as-of values, in
    /// catalog order: every column but the entity key and the time, of a type every engine
    /// orders alike (numbers, strings, booleans, dates, timestamps).
    pub tie_break: Vec<TieColumn>,
}

/// A column of an as-of tie-break.
#[derive(Debug, Clone, PartialEq)]
pub struct TieColumn {
    /// The column as the source spells it.
    pub name: String,
    /// Strings are ordered by their bytes, which some engines need told.
    pub is_string: bool,
}

/// A fixed span before the cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    /// Its length in seconds (positive).
    pub seconds: u64,
}

/// The units a window is written in, in seconds.
const UNITS: &[(&[&str], u64)] = &[
    (&["s", "sec", "secs", "second", "seconds"], 1),
    (&["min", "mins", "minute", "minutes"], 60),
    (&["h", "hr", "hrs", "hour", "hours"], 3_600),
    (&["d", "day", "days"], 86_400),
    (&["w", "wk", "wks", "week", "weeks"], 604_800),
];

/// Units that are not a fixed length, refused with their reason.
const CALENDAR_UNITS: &[&str] = &[
    "mo", "mon", "mons", "month", "months", "y", "yr", "yrs", "year", "years",
];

/// The longest window: 100 years of days.
const MAX_WINDOW_SECONDS: u64 = 36_500 * 86_400;

/// The largest unit a window is a whole number of, as rendered SQL spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowUnit {
    /// Whole days.
    Day,
    /// Whole hours.
    Hour,
    /// Whole minutes.
    Minute,
    /// Seconds.
    Second,
}

impl WindowUnit {
    /// Every unit, largest first.
    pub const ALL: [WindowUnit; 4] = [
        WindowUnit::Day,
        WindowUnit::Hour,
        WindowUnit::Minute,
        WindowUnit::Second,
    ];

    /// Seconds in one of it.
    pub fn seconds(self) -> u64 {
        match self {
            WindowUnit::Day => 86_400,
            WindowUnit::Hour => 3_600,
            WindowUnit::Minute => 60,
            WindowUnit::Second => 1,
        }
    }

    /// The unit whose SQL interval name is `name` (`DAY`), if any.
    pub fn from_sql_name(name: &str) -> Option<WindowUnit> {
        WindowUnit::ALL.into_iter().find(|u| u.names().1 == name)
    }

    /// Its names: in a recipe (`day`), in SQL intervals (`DAY`), in a feature's name (`d`).
    pub fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            WindowUnit::Day => ("day", "DAY", "d"),
            WindowUnit::Hour => ("hour", "HOUR", "h"),
            WindowUnit::Minute => ("minute", "MINUTE", "min"),
            WindowUnit::Second => ("second", "SECOND", "s"),
        }
    }
}

impl Window {
    /// The window as a count of its largest exact unit (`(30, Day)` for 30 days, and for
    /// 4 weeks `(28, Day)`: not every engine has a WEEK interval for timestamps).
    pub fn in_unit(self) -> (u64, WindowUnit) {
        WindowUnit::ALL
            .into_iter()
            .find(|unit| self.seconds.is_multiple_of(unit.seconds()))
            .map_or((self.seconds, WindowUnit::Second), |unit| {
                (self.seconds / unit.seconds(), unit)
            })
    }

    /// Whether the window is whole days (so date arithmetic keeps a date a date).
    pub fn whole_days(self) -> bool {
        self.seconds.is_multiple_of(86_400)
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (n, unit) = self.in_unit();
        let (unit, _, _) = unit.names();
        write!(f, "{n} {unit}{}", if n == 1 { "" } else { "s" })
    }
}

/// Why a window was refused, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowError {
    /// What is wrong.
    pub message: String,
    /// What to write instead.
    pub hint: String,
}

/// Reads a window: a whole number and a unit (`"30 days"`, `"1 day"`, `"12h"`, `"2 weeks"`).
pub fn parse_window(text: &str) -> Result<Window, WindowError> {
    parse_span(text, "window", false)
}

/// Reads a fixed span such as a window; `what` names it in messages (`window`, `gap`,
/// `every`), and `zero_ok` lets it be zero (a label's gap).
pub fn parse_span(text: &str, what: &str, zero_ok: bool) -> Result<Window, WindowError> {
    let refuse = |message: String| {
        WindowError {
        message,
        hint: "write a whole number and a unit: seconds, minutes, hours, days or weeks (e.g. `\"30 days\"`, `\"12 hours\"`)".to_string(),
    }
    };
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '-' || c == '+' || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let unit = unit.trim().to_ascii_lowercase();
    if number.is_empty() {
        return Err(refuse(format!(
            "{what} `{text}` does not start with a number"
        )));
    }
    if CALENDAR_UNITS.contains(&unit.as_str()) {
        return Err(WindowError {
            message: format!(
                "{what} `{text}` counts {}, which are not a fixed length",
                if unit.starts_with('y') {
                    "years"
                } else {
                    "months"
                }
            ),
            hint: format!(
                "write it in days (e.g. `\"30 days\"` or `\"365 days\"`) so every row's {} has the same length",
                if what == "window" { "window" } else { "span" }
            ),
        });
    }
    if unit == "m" {
        return Err(refuse(format!(
            "{what} `{text}`: `m` could mean minutes or months"
        )));
    }
    let Some(&(_, size)) = UNITS
        .iter()
        .find(|(names, _)| names.contains(&unit.as_str()))
    else {
        return Err(refuse(if unit.is_empty() {
            format!("{what} `{text}` has no unit")
        } else {
            format!("{what} `{text}` has an unknown unit `{unit}`")
        }));
    };
    let count: i128 = match number.parse() {
        Ok(n) => n,
        Err(_) => {
            return Err(refuse(format!(
                "{what} `{text}` is not a whole number of {unit}"
            )));
        }
    };
    if count < 0 || (count == 0 && !zero_ok) {
        return Err(WindowError {
            message: format!(
                "{what} `{text}` is {}",
                if count < 0 {
                    "negative"
                } else {
                    "not positive"
                }
            ),
            hint: match what {
                "window" => "a window is a span before the cutoff: give it a positive length",
                "gap" => {
                    "a gap is the span between the cutoff and the label window: zero or positive"
                }
                _ => "give it a positive length",
            }
            .to_string(),
        });
    }
    let seconds = count.saturating_mul(i128::from(size));
    if seconds > i128::from(MAX_WINDOW_SECONDS) {
        return Err(WindowError {
            message: format!("{what} `{text}` is longer than 100 years"),
            hint: match what {
                "window" => "leave `window` out to read every row before the cutoff",
                _ => "give a span of at most 100 years",
            }
            .to_string(),
        });
    }
    Ok(Window {
        seconds: seconds as u64,
    })
}

/// The first cutoff of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleStart {
    /// A fixed time, the same for every entity.
    At(chrono::NaiveDateTime),
    /// The entity's earliest time in the schedule's source, plus this span (maybe zero).
    FirstEvent(Window),
}

/// The last possible cutoff of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleEnd {
    /// A fixed time, the same for every entity.
    At(chrono::NaiveDateTime),
    /// The entity's latest time in the schedule's source.
    LastEvent,
}

/// Reads a time written in a recipe: `2014-01-02T00:00:00` (or with a space, or with a
/// fraction of a second), or a date (`2014-01-02`, its midnight).
fn parse_time(text: &str) -> Option<chrono::NaiveDateTime> {
    let text = text.trim();
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Some(t);
        }
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
}

/// The hint for a schedule time that does not read.
const TIME_HINT: &str = "write a timestamp (`\"2014-01-02T00:00:00\"`), a date (`\"2014-01-02\"`)";

/// Reads a schedule's `start`: a time, `first_event` or `first_event + SPAN`.
pub fn parse_start(text: &str) -> Result<ScheduleStart, WindowError> {
    let trimmed = text.trim();
    if let Some(rest) = strip_word(trimmed, "first_event") {
        let rest = rest.trim();
        if rest.is_empty() {
            return Ok(ScheduleStart::FirstEvent(Window { seconds: 0 }));
        }
        return match rest.strip_prefix('+') {
            Some(span) => parse_span(span, "start offset", true).map(ScheduleStart::FirstEvent),
            None => Err(WindowError {
                message: format!("start `{text}`: only a span can be added to `first_event`"),
                hint: "write `\"first_event + 30 days\"`".to_string(),
            }),
        };
    }
    parse_time(trimmed)
        .map(ScheduleStart::At)
        .ok_or_else(|| WindowError {
            message: format!("start `{text}` is neither a time nor `first_event`"),
            hint: format!("{TIME_HINT}, `\"first_event\"` or `\"first_event + 30 days\"`"),
        })
}

/// Reads a schedule's `until`: a time or `last_event`.
pub fn parse_until(text: &str) -> Result<ScheduleEnd, WindowError> {
    let trimmed = text.trim();
    if strip_word(trimmed, "last_event").is_some_and(|rest| rest.trim().is_empty()) {
        return Ok(ScheduleEnd::LastEvent);
    }
    parse_time(trimmed)
        .map(ScheduleEnd::At)
        .ok_or_else(|| WindowError {
            message: format!("until `{text}` is neither a time nor `last_event`"),
            hint: format!("{TIME_HINT} or `\"last_event\"`"),
        })
}

/// `text` after `word` (ignoring ASCII case), if it starts with it.
fn strip_word<'t>(text: &'t str, word: &str) -> Option<&'t str> {
    let head = text.get(..word.len())?;
    head.eq_ignore_ascii_case(word).then(|| &text[word.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_to_seconds() {
        let days = |n: u64| {
            Ok(Window {
                seconds: n * 86_400,
            })
        };
        assert_eq!(parse_window("30 days"), days(30));
        assert_eq!(parse_window("1 day"), days(1));
        assert_eq!(parse_window(" 7d "), days(7));
        assert_eq!(parse_window("2 weeks"), days(14));
        assert_eq!(parse_window("12 hours").map(|w| w.seconds), Ok(43_200));
        assert_eq!(parse_window("90 MINUTES").map(|w| w.seconds), Ok(5_400));
        assert_eq!(parse_window("1 second").map(|w| w.seconds), Ok(1));
        assert_eq!(
            parse_window("2 weeks").map(Window::in_unit),
            Ok((14, WindowUnit::Day))
        );
        assert_eq!(
            parse_window("36 hours").map(Window::in_unit),
            Ok((36, WindowUnit::Hour))
        );
        assert_eq!(
            parse_window("36 hours").map(|w| w.to_string()),
            Ok("36 hours".into())
        );
    }

    #[test]
    fn schedule_bounds_parse() {
        let t = |s: &str| parse_time(s).expect(s);
        assert_eq!(
            parse_start("2014-01-02T00:00:00"),
            Ok(ScheduleStart::At(t("2014-01-02")))
        );
        assert_eq!(
            parse_start("first_event"),
            Ok(ScheduleStart::FirstEvent(Window { seconds: 0 }))
        );
        assert_eq!(
            parse_start(" FIRST_EVENT + 2 days"),
            Ok(ScheduleStart::FirstEvent(Window {
                seconds: 2 * 86_400
            }))
        );
        assert_eq!(parse_until("last_event"), Ok(ScheduleEnd::LastEvent));
        assert_eq!(
            parse_until("2014-01-02 12:30:00"),
            Ok(ScheduleEnd::At(t("2014-01-02T12:30:00")))
        );
        for bad in [
            "yesterday",
            "first_event - 2 days",
            "first_event + 1 month",
            "2014-13-01",
        ] {
            assert!(parse_start(bad).is_err(), "{bad}");
        }
        for bad in ["last_event + 1 day", "soon", ""] {
            assert!(parse_until(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_span("0 hours", "gap", true).map(|w| w.seconds), Ok(0));
        assert!(parse_span("0 hours", "every", false).is_err());
        assert!(
            parse_span("-1 hours", "gap", true)
                .expect_err("negative")
                .message
                .contains("negative")
        );
    }

    #[test]
    fn bad_windows_say_why() {
        for (text, why) in [
            ("30 parsecs", "unknown unit `parsecs`"),
            ("0 days", "not positive"),
            ("-3 days", "negative"),
            ("1 month", "not a fixed length"),
            ("2 years", "not a fixed length"),
            ("1.5 days", "not a whole number"),
            ("days", "does not start with a number"),
            ("30", "has no unit"),
            ("5m", "minutes or months"),
            ("99999999999999999999999 days", "longer than 100 years"),
            ("40000 days", "longer than 100 years"),
        ] {
            let error = parse_window(text).expect_err(text);
            assert!(error.message.contains(why), "{text}: {}", error.message);
        }
    }
}
