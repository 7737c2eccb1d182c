//! Input limits: how much of a file is read, how much of a value an error may echo, and the
//! bounds a duration key must fall in. A config, a mapping or a secret file can be
//! anything (`/dev/zero`, a log file, a 20 MB value): these keep every load fast, bounded
//! in memory, and every date computed from a duration within range.

use std::fmt;
use std::time::Duration;

/// The longest value echoed in a problem, in chars; longer values are cut.
pub const MAX_SHOWN_CHARS: usize = 80;

/// `value` as a problem quotes it: Debug-quoted, cut to [`MAX_SHOWN_CHARS`] chars with
/// its full length, so a 20 MB value is never echoed.
pub fn shown(value: &str) -> String {
    if value.chars().count() <= MAX_SHOWN_CHARS {
        return format!("{value:?}");
    }
    let head: String = value.chars().take(MAX_SHOWN_CHARS).collect();
    format!("{head:?}… ({} bytes in all)", value.len())
}

/// `text` cut to [`MAX_SHOWN_CHARS`] chars (unquoted), for messages that may embed a value.
pub fn cut(text: &str) -> String {
    if text.chars().count() <= MAX_SHOWN_CHARS {
        return text.to_string();
    }
    let head: String = text.chars().take(MAX_SHOWN_CHARS).collect();
    format!("{head}…")
}

/// The largest config or mapping file read (1 MiB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// The largest secret file read (64 KiB: a PEM key is a few KiB).
pub const MAX_SECRET_FILE_BYTES: u64 = 64 << 10;

/// Why a capped read failed.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    /// More than `cap` bytes (the read stopped there).
    TooLarge {
        cap: u64,
    },
    /// Not UTF-8 from this byte on (1-based line, 0-based byte offset).
    NotUtf8 {
        line: u32,
        offset: usize,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::TooLarge { cap } => write!(
                f,
                "it is larger than {cap} bytes (read stopped at byte offset {cap}); point it at the right file"
            ),
            ReadError::NotUtf8 { line, offset } => write!(
                f,
                "it is not UTF-8 text (invalid bytes at line {line}, byte offset {offset}); save it as UTF-8"
            ),
        }
    }
}

/// Reads at most `cap` bytes of `path` as UTF-8 text. Never reads more than `cap + 1`
/// bytes, so `/dev/zero` or a log file fails fast instead of filling memory.
pub fn read_capped(path: &std::path::Path, cap: u64) -> Result<String, ReadError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > cap {
        return Err(ReadError::TooLarge { cap });
    }
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let before = &e.as_bytes()[..offset];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        ReadError::NotUtf8 {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            offset,
        }
    })
}

/// Bounds on one duration key: `min..=max`, and zero also allowed when `zero_is_off`.
#[derive(Clone, Copy, Debug)]
pub struct DurationBounds {
    pub min: Duration,
    pub max: Duration,
    /// `0` keeps meaning "off" for this key.
    pub zero_is_off: bool,
}

/// Ten years (of 365.25 days): the longest duration any key accepts, so that no date
/// arithmetic on it can overflow.
pub const TEN_YEARS: Duration = Duration::from_secs(10 * 31_557_600);

impl DurationBounds {
    pub const fn new(min: Duration, max: Duration) -> DurationBounds {
        DurationBounds {
            min,
            max,
            zero_is_off: false,
        }
    }
    pub const fn off_or(min: Duration, max: Duration) -> DurationBounds {
        DurationBounds {
            min,
            max,
            zero_is_off: true,
        }
    }
    /// The allowed range in words, e.g. `0 (off) or 100ms to 10 years`.
    pub fn describe(&self) -> String {
        let human = |d: Duration| {
            let ms = d.as_millis();
            let (n, unit) = if d == TEN_YEARS {
                (10, "year")
            } else if ms % 86_400_000 == 0 {
                (ms / 86_400_000, "day")
            } else if ms % 3_600_000 == 0 {
                (ms / 3_600_000, "hour")
            } else if ms % 60_000 == 0 {
                (ms / 60_000, "minute")
            } else if ms % 1000 == 0 {
                (ms / 1000, "second")
            } else {
                return format!("{ms}ms");
            };
            if n == 0 {
                "0s".to_string()
            } else if n == 1 {
                format!("1 {unit}")
            } else {
                format!("{n} {unit}s")
            }
        };
        let range = format!("from {} to {}", human(self.min), human(self.max));
        if self.zero_is_off {
            format!("\"0s\" (off) or {range}")
        } else {
            range
        }
    }
    pub fn allows(&self, d: Duration) -> bool {
        (self.zero_is_off && d.is_zero()) || (d >= self.min && d <= self.max)
    }
}
