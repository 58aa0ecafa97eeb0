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
        for (size, unit) in [
            (86_400, WindowUnit::Day),
            (3_600, WindowUnit::Hour),
            (60, WindowUnit::Minute),
        ] {
            if self.seconds.is_multiple_of(size) {
                return (self.seconds / size, unit);
            }
        }
        (self.seconds, WindowUnit::Second)
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
            "window `{text}` does not start with a number"
        )));
    }
    if CALENDAR_UNITS.contains(&unit.as_str()) {
        return Err(WindowError {
            message: format!(
                "window `{text}` counts {}, which are not a fixed length",
                if unit.starts_with('y') {
                    "years"
                } else {
                    "months"
                }
            ),
            hint: "write it in days (e.g. `\"30 days\"` or `\"365 days\"`) so every row's window has the same length".to_string(),
        });
    }
    if unit == "m" {
        return Err(refuse(format!(
            "window `{text}`: `m` could mean minutes or months"
        )));
    }
    let Some(&(_, size)) = UNITS
        .iter()
        .find(|(names, _)| names.contains(&unit.as_str()))
    else {
        return Err(refuse(if unit.is_empty() {
            format!("window `{text}` has no unit")
        } else {
            format!("window `{text}` has an unknown unit `{unit}`")
        }));
    };
    let count: i128 = match number.parse() {
        Ok(n) => n,
        Err(_) => {
            return Err(refuse(format!(
                "window `{text}` is not a whole number of {unit}"
            )));
        }
    };
    if count <= 0 {
        return Err(WindowError {
            message: format!("window `{text}` is not positive"),
            hint: "a window is a span before the cutoff: give it a positive length".to_string(),
        });
    }
    let seconds = count.saturating_mul(i128::from(size));
    if seconds > i128::from(MAX_WINDOW_SECONDS) {
        return Err(WindowError {
            message: format!("window `{text}` is longer than 100 years"),
            hint: "leave `window` out to read every row before the cutoff".to_string(),
        });
    }
    Ok(Window {
        seconds: seconds as u64,
    })
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
    fn bad_windows_say_why() {
        for (text, why) in [
            ("30 parsecs", "unknown unit `parsecs`"),
            ("0 days", "not positive"),
            ("-3 days", "not positive"),
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
