//! Typed values in Fluent Bit's spelling: sizes, booleans, durations, retry limits.

use std::time::Duration;

/// A size such as `5M`, `256K`, `5MB`, `1g` or `6144000` (bytes). As in Fluent Bit's
/// `flb_utils_size_to_bytes`, units are powers of 1000 (`1M` = 1,000,000) and `K`/`KB`, `M`/`MB`,
/// `G`/`GB` mean the same, in any case.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    let bad = || format!("'{s}' is not a size (examples: 6144000, 256K, 5M, 5MB, 1G)");
    let num: f64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        _ => return Err(bad()),
    };
    Ok((num * mult as f64) as u64)
}

/// A boolean: `on/off`, `true/false`, `yes/no`, `1/0`, in any case.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!(
            "'{s}' is not a boolean (use On/Off, true/false, yes/no)"
        )),
    }
}

/// A duration: plain numbers are seconds (`1`, `0.5`); a suffix may say `ms`, `s`, `m`, `h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim().to_ascii_lowercase();
    let bad = || format!("'{s}' is not a duration (examples: 1, 0.5, 500ms, 30s, 10m)");
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t.as_str(), 1.0)
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    if !v.is_finite() || v < 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// How many times a failed flush is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryLimit {
    /// Retry this many times after the first attempt (`no_retries`: never).
    Limited(u32),
    /// `False` / `no_limits`: retry until delivered.
    Unlimited,
}

impl RetryLimit {
    /// Fluent Bit's default: one retry.
    pub const DEFAULT: RetryLimit = RetryLimit::Limited(1);

    pub fn allows(self, retries_done: u32) -> bool {
        match self {
            RetryLimit::Limited(n) => retries_done < n,
            RetryLimit::Unlimited => true,
        }
    }
}

pub fn parse_retry_limit(s: &str) -> Result<RetryLimit, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "false" | "no_limits" | "off" => Ok(RetryLimit::Unlimited),
        "no_retries" => Ok(RetryLimit::Limited(0)),
        // As in Fluent Bit, a count below 1 means the default.
        n => n
            .parse::<i64>()
            .map(|n| RetryLimit::Limited(n.clamp(1, i64::from(u32::MAX)) as u32))
            .map_err(|_| {
                format!("'{s}' is not a retry limit (a number, False/no_limits, or no_retries)")
            }),
    }
}

/// A non-negative integer.
pub fn parse_uint(s: &str) -> Result<u64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a non-negative integer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("6144000"), Ok(6_144_000));
        assert_eq!(parse_size("256K"), Ok(256_000));
        assert_eq!(parse_size("5M"), Ok(5_000_000));
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        assert_eq!(parse_size("1g"), Ok(1_000_000_000));
        assert_eq!(parse_size("1.5k"), Ok(1500));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
    }

    #[test]
    fn booleans() {
        for t in ["On", "true", "YES", "1"] {
            assert_eq!(parse_bool(t), Ok(true));
        }
        for f in ["off", "False", "no", "0"] {
            assert_eq!(parse_bool(f), Ok(false));
        }
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn retry_limits() {
        assert_eq!(parse_retry_limit("False"), Ok(RetryLimit::Unlimited));
        assert_eq!(parse_retry_limit("no_limits"), Ok(RetryLimit::Unlimited));
        assert_eq!(parse_retry_limit("no_retries"), Ok(RetryLimit::Limited(0)));
        assert_eq!(parse_retry_limit("3"), Ok(RetryLimit::Limited(3)));
        assert_eq!(parse_retry_limit("0"), Ok(RetryLimit::Limited(1)));
        assert!(parse_retry_limit("often").is_err());
        assert!(RetryLimit::Limited(1).allows(0));
        assert!(!RetryLimit::Limited(1).allows(1));
    }
}
