//! Cron schedules as a Kubernetes CronJob accepts them: the five standard fields (minute hour
//! day-of-month month day-of-week) with `*`, `?`, lists, ranges, steps and month/day names, or
//! a descriptor (`@daily`, `@every 1h30m`). This follows the parser the API server uses
//! (robfig/cron's standard parser) rather than a crate with a richer dialect (`L`, `W`, `#`,
//! seconds), which would accept schedules the API server then refuses.

/// One field's name and bounds, with the names it accepts (index = value - `min`).
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field { name: "minute", min: 0, max: 59, names: &[] },
    Field { name: "hour", min: 0, max: 23, names: &[] },
    Field { name: "day of month", min: 1, max: 31, names: &[] },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    },
    Field { name: "day of week", min: 0, max: 6, names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"] },
];

const DESCRIPTORS: &[&str] = &["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"];

/// Checks a schedule; the error says which field is wrong and why.
pub fn check(schedule: &str) -> Result<(), String> {
    let s = schedule.trim();
    if let Some(rest) = s.strip_prefix("@every ") {
        return if is_go_duration(rest.trim()) {
            Ok(())
        } else {
            Err(format!("`@every {}` needs a duration such as 1h30m or 90s", rest.trim()))
        };
    }
    if s.starts_with('@') {
        return if DESCRIPTORS.contains(&s.to_ascii_lowercase().as_str()) {
            Ok(())
        } else {
            Err(format!("unknown descriptor `{s}`, expected one of {} or @every DURATION", DESCRIPTORS.join(", ")))
        };
    }
    if s.starts_with("TZ=") || s.starts_with("CRON_TZ=") {
        return Err("time zones in the schedule are not accepted by Kubernetes (it has a timeZone field)".into());
    }
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != FIELDS.len() {
        return Err(format!("expected 5 fields (minute hour day-of-month month day-of-week), found {}", parts.len()));
    }
    for (part, field) in parts.iter().zip(&FIELDS) {
        for expr in part.split(',') {
            check_expr(expr, field).map_err(|why| format!("{} field `{part}`: {why}", field.name))?;
        }
    }
    Ok(())
}

fn check_expr(expr: &str, f: &Field) -> Result<(), String> {
    let (range, step) = match expr.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (expr, None),
    };
    if let Some(step) = step {
        match step.parse::<u32>() {
            Ok(n) if n > 0 => {}
            _ => return Err(format!("step `{step}` must be a positive number")),
        }
    }
    if range == "*" || range == "?" {
        return Ok(());
    }
    let (lo, hi) = match range.split_once('-') {
        Some((a, b)) => (value(a, f)?, value(b, f)?),
        None => {
            let v = value(range, f)?;
            (v, v)
        }
    };
    if lo > hi {
        return Err(format!("range `{range}` starts after it ends"));
    }
    Ok(())
}

fn value(text: &str, f: &Field) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = f.names.iter().position(|n| *n == lower) {
        return Ok(f.min + i as u32);
    }
    let n: u32 = text.parse().map_err(|_| {
        if text.is_empty() { "an empty value".to_string() } else { format!("`{text}` is not a number") }
    })?;
    if n < f.min || n > f.max {
        return Err(format!("{n} is out of range {}-{}", f.min, f.max));
    }
    Ok(n)
}

/// A Go duration as `time.ParseDuration` reads it: `1h30m`, `90s`, `1.5h`.
fn is_go_duration(s: &str) -> bool {
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let num = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        if num == 0 || rest[..num].matches('.').count() > 1 {
            return false;
        }
        rest = &rest[num..];
        let Some(unit) = ["ns", "us", "µs", "ms", "s", "m", "h"].iter().find(|u| rest.starts_with(*u)) else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_kubernetes_accepts() {
        for ok in [
            "0 3 * * *",
            "*/15 * * * *",
            "0 0 1,15 * *",
            "5-10/2 1-5 ? JAN-mar mon-fri",
            "0 3 * * 0",
            "59 23 31 12 6",
            "5/15 * * * *",
            "@daily",
            "@every 1h30m",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_out_of_range_and_malformed_fields() {
        for (bad, says) in [
            ("61 3 * * *", "minute field `61`: 61 is out of range 0-59"),
            ("0 24 * * *", "hour field `24`"),
            ("0 3 0 * *", "day of month field `0`: 0 is out of range 1-31"),
            ("0 3 * 13 *", "month field `13`"),
            ("0 3 * * 7", "day of week field `7`"),
            ("*/0 * * * *", "step `0` must be a positive number"),
            ("10-5 * * * *", "range `10-5` starts after it ends"),
            ("a * * * *", "`a` is not a number"),
            ("1,,2 * * * *", "an empty value"),
            ("0 3 * *", "expected 5 fields"),
            ("0 3 * * * *", "found 6"),
            ("@sometimes", "unknown descriptor"),
            ("@every soon", "needs a duration"),
            ("TZ=UTC 0 3 * * *", "time zones"),
        ] {
            let err = check(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
