//! Date parts for the date and currentdate tests (RFC 5260 §4.2), and time zone offsets.

/// A moment and the zone offset (seconds east of UTC) it is to be shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub unix: i64,
    /// The zone's offset from UTC in seconds (east positive), e.g. 3600 for +0100.
    pub offset: i32,
}

impl DateTime {
    /// The current time in UTC.
    pub fn now_utc() -> DateTime {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        DateTime { unix, offset: 0 }
    }

    /// Parses an RFC 5322 date-time (as in a Date: header); None when it is not one.
    pub(crate) fn parse_rfc5322(s: &str) -> Option<DateTime> {
        let d = mail_parser::DateTime::parse_rfc822(s)?;
        if !d.is_valid() {
            return None;
        }
        let off = (i32::from(d.tz_hour) * 3600 + i32::from(d.tz_minute) * 60)
            * if d.tz_before_gmt { -1 } else { 1 };
        Some(DateTime {
            unix: d.to_timestamp(),
            offset: off,
        })
    }

    pub(crate) fn in_zone(self, offset: i32) -> DateTime {
        DateTime {
            unix: self.unix,
            offset,
        }
    }

    fn civil(self) -> mail_parser::DateTime {
        mail_parser::DateTime::from_timestamp(self.unix + i64::from(self.offset))
    }

    fn zone(self) -> String {
        let sign = if self.offset < 0 { '-' } else { '+' };
        let a = self.offset.unsigned_abs();
        format!("{sign}{:02}{:02}", a / 3600, (a % 3600) / 60)
    }

    /// The RFC 5322 form, as in a Date: header ("Fri, 15 Mar 2024 10:30:00 +0000").
    pub fn rfc5322(self) -> String {
        self.part("std11").unwrap_or_default()
    }

    /// The value of one date part (already checked by `is_date_part`).
    pub(crate) fn part(self, part: &str) -> Option<String> {
        let c = self.civil();
        let local_days = (self.unix + i64::from(self.offset)).div_euclid(86400);
        Some(match part.to_ascii_lowercase().as_str() {
            "year" => format!("{:04}", c.year),
            "month" => format!("{:02}", c.month),
            "day" => format!("{:02}", c.day),
            "date" => format!("{:04}-{:02}-{:02}", c.year, c.month, c.day),
            // Modified Julian Day: days since 1858-11-17, which is day -40587 of the epoch.
            "julian" => format!("{}", local_days + 40587),
            "hour" => format!("{:02}", c.hour),
            "minute" => format!("{:02}", c.minute),
            "second" => format!("{:02}", c.second),
            "time" => format!("{:02}:{:02}:{:02}", c.hour, c.minute, c.second),
            "iso8601" => {
                let z = self.zone();
                format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}:{}",
                    c.year,
                    c.month,
                    c.day,
                    c.hour,
                    c.minute,
                    c.second,
                    &z[..3],
                    &z[3..]
                )
            }
            "std11" => {
                const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
                const MONTHS: [&str; 12] = [
                    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                    "Dec",
                ];
                format!(
                    "{}, {:02} {} {:04} {:02}:{:02}:{:02} {}",
                    DAYS[(local_days + 4).rem_euclid(7) as usize],
                    c.day,
                    MONTHS[usize::from(c.month.clamp(1, 12)) - 1],
                    c.year,
                    c.hour,
                    c.minute,
                    c.second,
                    self.zone()
                )
            }
            "zone" => self.zone(),
            "weekday" => format!("{}", (local_days + 4).rem_euclid(7)),
            _ => return None,
        })
    }
}

pub(crate) fn is_date_part(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "year"
            | "month"
            | "day"
            | "date"
            | "julian"
            | "hour"
            | "minute"
            | "second"
            | "time"
            | "iso8601"
            | "std11"
            | "zone"
            | "weekday"
    )
}

/// "+hhmm" / "-hhmm" as seconds east of UTC.
pub(crate) fn parse_zone(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 5 || !matches!(b[0], b'+' | b'-') || !b[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let h: i32 = s[1..3].parse().ok()?;
    let m: i32 = s[3..5].parse().ok()?;
    if h > 23 || m > 59 {
        return None;
    }
    Some((h * 3600 + m * 60) * if b[0] == b'-' { -1 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts() {
        let d = DateTime::parse_rfc5322("Fri, 26 Aug 2005 12:34:56 -0700").unwrap();
        assert_eq!(d.part("date").unwrap(), "2005-08-26");
        assert_eq!(d.part("time").unwrap(), "12:34:56");
        assert_eq!(d.part("zone").unwrap(), "-0700");
        assert_eq!(d.part("weekday").unwrap(), "5");
        assert_eq!(d.part("iso8601").unwrap(), "2005-08-26T12:34:56-07:00");
        assert_eq!(d.part("std11").unwrap(), "Fri, 26 Aug 2005 12:34:56 -0700");
        assert_eq!(d.rfc5322(), "Fri, 26 Aug 2005 12:34:56 -0700");
        let u = d.in_zone(0);
        assert_eq!(u.part("hour").unwrap(), "19");
        // 2005-08-26 is MJD 53608.
        assert_eq!(d.part("julian").unwrap(), "53608");
    }

    #[test]
    fn zones() {
        assert_eq!(parse_zone("+0130"), Some(5400));
        assert_eq!(parse_zone("-0800"), Some(-28800));
        assert_eq!(parse_zone("0800"), None);
        assert_eq!(parse_zone("+2500"), None);
    }
}
