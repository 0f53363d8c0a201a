//! The parts of the template environment that follow Python rather than
//! MiniJinja's defaults, because transformers renders chat templates with
//! Jinja2 in Python: string methods that use Python's idea of whitespace and
//! of words, transformers' `tojson` (Python's `json.dumps`), and its
//! `strftime_now`.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Error, ErrorKind, State};

/// Deepest nesting of lists and maps `tojson` writes; Python stops a little
/// under 1000 levels (its recursion limit), this stops well before the render
/// thread's stack could.
const MAX_JSON_DEPTH: usize = 200;

/// Longest `indent` string `tojson` accepts: the indentation is written once
/// per nesting level and item, so an unbounded one would be an easy way to
/// make huge output from a small template.
const MAX_JSON_INDENT: usize = 64;

/// Whether Python's `str.isspace` holds for `c`: Unicode whitespace, as
/// Rust's `char::is_whitespace`, and the four ASCII information separators
/// U+001C..U+001F, which Python counts too.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` with no argument.
pub(crate) fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Python's `str.split()` with no separator: runs of whitespace separate the
/// words, whitespace at either end gives no empty word; after `maxsplit`
/// splits the rest is one last word (its leading whitespace removed, its
/// trailing kept).
pub(crate) fn split_whitespace(s: &str, maxsplit: Option<usize>) -> Vec<&str> {
    let mut words = Vec::new();
    let mut rest = s.trim_start_matches(is_space);
    while !rest.is_empty() {
        if maxsplit == Some(words.len()) {
            words.push(rest);
            break;
        }
        let end = rest.find(is_space).unwrap_or(rest.len());
        words.push(&rest[..end]);
        rest = rest[end..].trim_start_matches(is_space);
    }
    words
}

/// Python's `str.title()`: each run of cased letters starts upper-case and
/// goes on lower-case; any other character (digit, apostrophe, ...) ends the
/// run. (Python uses the title-case mapping where one exists, e.g. for `ǆ`;
/// the upper-case mapping is used here.)
pub(crate) fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        let cased = c.is_lowercase() || c.is_uppercase();
        match (cased, in_word) {
            (true, true) => out.extend(c.to_lowercase()),
            (true, false) => out.extend(c.to_uppercase()),
            (false, _) => out.push(c),
        }
        in_word = cased;
    }
    out
}

/// The unknown-method callback: Python's `str` methods whose MiniJinja
/// counterparts (in `minijinja_contrib::pycompat`) use Rust's notion of
/// whitespace or Jinja's `title` filter are answered here, everything else
/// (`startswith`, `items`, `get`, `replace`, ...) by pycompat.
pub(crate) fn unknown_method(
    state: &mut State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        let no_chars = match args {
            [] => true,
            [chars] => chars.is_none(),
            _ => false,
        };
        match method {
            "strip" if no_chars => return Ok(Value::from(strip(s))),
            "lstrip" if no_chars => return Ok(Value::from(s.trim_start_matches(is_space))),
            "rstrip" if no_chars => return Ok(Value::from(s.trim_end_matches(is_space))),
            "isspace" if args.is_empty() => {
                return Ok(Value::from(!s.is_empty() && s.chars().all(is_space)))
            }
            "title" if args.is_empty() => return Ok(Value::from(title(s))),
            "split" => {
                if let Some(maxsplit) = whitespace_split_args(args) {
                    let words = split_whitespace(s, maxsplit);
                    return Ok(words.into_iter().map(Value::from).collect());
                }
            }
            _ => {}
        }
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

/// The `maxsplit` of a `split(...)` call that splits on whitespace (no
/// separator, or `none`): `Some(None)` for no limit (none given, or a
/// negative one). `None` if the call names a separator or has other
/// arguments (keyword arguments included), which pycompat handles.
fn whitespace_split_args(args: &[Value]) -> Option<Option<usize>> {
    let limit = |v: &Value| v.as_i64().map(|n| usize::try_from(n).ok());
    match args {
        [] => Some(None),
        [sep] if sep.is_none() => Some(None),
        [sep, max] if sep.is_none() => limit(max),
        _ => None,
    }
}

/// Jinja2's `trim` filter, `str(value).strip(chars)`: Python's whitespace
/// when no characters are given.
pub(crate) fn trim_filter(value: &Value, chars: Option<Value>) -> Result<Value, Error> {
    let text = string_of(value);
    let chars = match chars {
        Some(c) if !c.is_none() && !c.is_undefined() => Some(
            c.as_str()
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        format!(
                            "trim: the characters to strip must be a string, not {}",
                            c.kind()
                        ),
                    )
                })?
                .to_owned(),
        ),
        _ => None,
    };
    Ok(Value::from(match chars {
        None => strip(&text).to_owned(),
        Some(chars) => text.trim_matches(|c| chars.contains(c)).to_owned(),
    }))
}

/// `str(value)` as Python gives it for the values templates pass around: a
/// string as itself, an undefined value as the empty string, anything else
/// as MiniJinja writes it (`None`, `True`, numbers, ...).
fn string_of(value: &Value) -> String {
    match value.as_str() {
        Some(s) => s.to_owned(),
        None if value.is_undefined() => String::new(),
        None => value.to_string(),
    }
}

/// transformers' `tojson` filter: `json.dumps(x, ensure_ascii=False,
/// indent=None, separators=None, sort_keys=False)`, whose keyword arguments
/// a template may set. Unlike Jinja's own `tojson` it does not escape `<`,
/// `>`, `&` or `'` for HTML.
pub(crate) fn tojson(state: &State, value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let ensure_ascii = kwargs
        .get::<Option<Value>>("ensure_ascii")?
        .is_some_and(|v| v.is_true());
    let indent = match kwargs.get::<Option<Value>>("indent")? {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => Some(json_indent(&v)?),
    };
    let (item_sep, key_sep) = match kwargs.get::<Option<Value>>("separators")? {
        Some(v) if !v.is_none() => json_separators(&v)?,
        _ if indent.is_some() => (",".to_owned(), ": ".to_owned()),
        _ => (", ".to_owned(), ": ".to_owned()),
    };
    let sort_keys = kwargs
        .get::<Option<Value>>("sort_keys")?
        .is_some_and(|v| v.is_true());
    kwargs.assert_all_used()?;
    let mut writer = JsonWriter {
        state,
        out: String::new(),
        ensure_ascii,
        indent,
        item_sep,
        key_sep,
        sort_keys,
    };
    writer.value(value, 0)?;
    Ok(Value::from_safe_string(writer.out))
}

/// The indentation `json.dumps` makes of its `indent`: a string as itself, a
/// number as that many spaces (none for zero or less).
fn json_indent(v: &Value) -> Result<String, Error> {
    let indent = if let Some(s) = v.as_str() {
        s.to_owned()
    } else if let Some(n) = v.as_i64() {
        " ".repeat(usize::try_from(n).unwrap_or(0).min(MAX_JSON_INDENT + 1))
    } else {
        return Err(json_error(format!(
            "indent must be a number or a string, not {}",
            v.kind()
        )));
    };
    if indent.len() > MAX_JSON_INDENT {
        return Err(json_error(format!(
            "an indent of more than {MAX_JSON_INDENT} characters is refused"
        )));
    }
    Ok(indent)
}

/// The `(item_separator, key_separator)` pair of `separators`.
fn json_separators(v: &Value) -> Result<(String, String), Error> {
    let pair: Vec<Value> = v
        .try_iter()
        .map_err(|_| json_error("separators must be a pair of strings".into()))?
        .collect();
    match pair.as_slice() {
        [item, key] => match (item.as_str(), key.as_str()) {
            (Some(item), Some(key)) if item.len() + key.len() <= 2 * MAX_JSON_INDENT => {
                Ok((item.to_owned(), key.to_owned()))
            }
            _ => Err(json_error(
                "separators must be a pair of short strings".into(),
            )),
        },
        _ => Err(json_error("separators must be a pair of strings".into())),
    }
}

/// An error of `tojson`.
fn json_error(detail: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, format!("tojson: {detail}"))
}

/// Writes values as Python's `json.JSONEncoder` does.
struct JsonWriter<'s, 'env> {
    /// The render's state, charged one fuel for each item written (a lazy
    /// sequence can be far longer than the data it holds).
    state: &'s State<'s, 'env>,
    out: String,
    ensure_ascii: bool,
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
}

impl JsonWriter<'_, '_> {
    /// Writes `value`, found `depth` lists or maps deep.
    fn value(&mut self, value: &Value, depth: usize) -> Result<(), Error> {
        match value.kind() {
            ValueKind::None => self.out.push_str("null"),
            ValueKind::Bool => self
                .out
                .push_str(if value.is_true() { "true" } else { "false" }),
            ValueKind::Number => self.number(value)?,
            ValueKind::String => self.string(value.as_str().unwrap_or_default()),
            // Lazy sequences (slices, concatenations) too: they are lists in
            // Python.
            ValueKind::Seq | ValueKind::Iterable => {
                let mut items = Vec::new();
                for item in value.try_iter()? {
                    self.state.consume_fuel(1)?;
                    items.push(item);
                }
                self.container(depth, '[', ']', &items, |w, item, depth| {
                    w.value(item, depth)
                })?;
            }
            ValueKind::Map => {
                let mut entries = Vec::new();
                for key in value.try_iter()? {
                    self.state.consume_fuel(1)?;
                    let item = value.get_item(&key)?;
                    entries.push((self.key(&key)?, item));
                }
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                }
                self.container(depth, '{', '}', &entries, |w, (key, item), depth| {
                    w.string(key);
                    let sep = std::mem::take(&mut w.key_sep);
                    w.out.push_str(&sep);
                    w.key_sep = sep;
                    w.value(item, depth)
                })?;
            }
            ValueKind::Undefined => {
                return Err(json_error(
                    "an undefined value is not JSON serializable".into(),
                ))
            }
            ValueKind::Invalid => {
                // Reading an item of an invalid value gives its error.
                value.get_item(&Value::from(0))?;
                return Err(json_error(
                    "an invalid value is not JSON serializable".into(),
                ));
            }
            kind => {
                return Err(json_error(format!(
                    "a value of type {kind} is not JSON serializable"
                )))
            }
        }
        Ok(())
    }

    /// Writes a list or map of `items`, each with `item`, indented as
    /// `json.dumps` does.
    fn container<T>(
        &mut self,
        depth: usize,
        open: char,
        close: char,
        items: &[T],
        mut item: impl FnMut(&mut Self, &T, usize) -> Result<(), Error>,
    ) -> Result<(), Error> {
        if depth >= MAX_JSON_DEPTH {
            return Err(json_error(format!(
                "values nested more than {MAX_JSON_DEPTH} deep are refused"
            )));
        }
        self.out.push(open);
        if items.is_empty() {
            self.out.push(close);
            return Ok(());
        }
        for (i, it) in items.iter().enumerate() {
            if i > 0 {
                let sep = std::mem::take(&mut self.item_sep);
                self.out.push_str(&sep);
                self.item_sep = sep;
            }
            self.newline(depth + 1);
            item(self, it, depth + 1)?;
        }
        self.newline(depth);
        self.out.push(close);
        Ok(())
    }

    /// With an indent, a newline and `depth` indents.
    fn newline(&mut self, depth: usize) {
        if let Some(indent) = &self.indent {
            self.out.push('\n');
            for _ in 0..depth {
                self.out.push_str(indent);
            }
        }
    }

    /// A map key as `json.dumps` turns it into a string: strings as
    /// themselves, numbers, booleans and `None` as their JSON text.
    fn key(&self, key: &Value) -> Result<String, Error> {
        match key.kind() {
            ValueKind::String => Ok(key.as_str().unwrap_or_default().to_owned()),
            ValueKind::None => Ok("null".into()),
            ValueKind::Bool => Ok(if key.is_true() { "true" } else { "false" }.into()),
            ValueKind::Number if key.is_integer() => Ok(key.to_string()),
            ValueKind::Number => Ok(python_float_repr(f64::try_from(key.clone())?)),
            kind => Err(json_error(format!(
                "keys must be str, int, float, bool or None, not {kind}"
            ))),
        }
    }

    /// An integer as its digits, a float as Python's `float.__repr__` (and
    /// `NaN`, `Infinity`, `-Infinity`, which `json.dumps` allows).
    fn number(&mut self, value: &Value) -> Result<(), Error> {
        if value.is_integer() {
            write!(self.out, "{value}").ok();
            return Ok(());
        }
        let x = f64::try_from(value.clone())?;
        self.out.push_str(&python_float_repr(x));
        Ok(())
    }

    /// A JSON string: `"` and `\` escaped, control characters as `\n`,
    /// `\u001f`, ...; with `ensure_ascii`, everything outside printable ASCII
    /// as `\uXXXX` (UTF-16, so two escapes above U+FFFF).
    fn string(&mut self, s: &str) {
        self.out.reserve(s.len() + 2);
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                '\u{8}' => self.out.push_str("\\b"),
                '\u{c}' => self.out.push_str("\\f"),
                c if c < ' ' || (self.ensure_ascii && !(' '..='~').contains(&c)) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        write!(self.out, "\\u{unit:04x}").ok();
                    }
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }
}

/// Python's `repr` of a float as `json.dumps` writes it: the shortest digits
/// that read back as `x`, positional for exponents -4 to 15 (`0.0001`,
/// `1.0`, `1e+16`, `1e-05`), and `NaN`, `Infinity`, `-Infinity`.
pub(crate) fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "-1.5e16".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::from(sign);
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.push_str(&"0".repeat(int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.push_str(&"0".repeat((-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let exp_sign = if exp < 0 { '-' } else { '+' };
        write!(out, "e{exp_sign}{:02}", exp.unsigned_abs()).ok();
    }
    out
}

/// transformers' `raise_exception(message)`: fails the render with the
/// message, which [`ChatTemplate::render`](super::ChatTemplate::render)
/// reports as [`ChatTemplateError::Raised`](super::ChatTemplateError::Raised).
pub(crate) fn raise_exception(message: &Value) -> Result<Value, Error> {
    let message = string_of(message);
    Err(Error::new(ErrorKind::InvalidOperation, message.clone())
        .with_source(RaisedException(message)))
}

/// The message of a `raise_exception` call, carried as the source of the
/// engine's error so that it can be told apart from the engine's own errors.
#[derive(Debug)]
pub(crate) struct RaisedException(pub(crate) String);

impl std::fmt::Display for RaisedException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RaisedException {}

/// transformers' `strftime_now(format)`: the current time formatted as
/// Python's `datetime.now().strftime(format)` does, in UTC (transformers uses
/// the local time zone; a library cannot know which one the user means).
pub(crate) fn strftime_now(format: &str) -> Result<Value, Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    strftime(format, now).map(Value::from)
}

/// English day names, Monday first.
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// English month names.
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A UTC time broken into its fields.
struct Civil {
    year: i64,
    /// 1..=12.
    month: u32,
    /// 1..=31.
    day: u32,
    /// 1..=366.
    day_of_year: u32,
    /// 0 = Monday .. 6 = Sunday.
    weekday: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Civil {
    /// The fields of `secs` seconds after 1970-01-01T00:00:00Z (days from
    /// civil dates as in Howard Hinnant's `civil_from_days`).
    fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let day_of_year = BEFORE[month as usize - 1] + day + u32::from(leap && month > 2);
        Civil {
            year,
            month,
            day,
            day_of_year,
            // 1970-01-01 was a Thursday.
            weekday: (days + 3).rem_euclid(7) as u32,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
        }
    }
}

/// `secs` (seconds since the Unix epoch, UTC) formatted as C's `strftime`
/// (glibc's, which Python's calls on Linux) formats a naive datetime, in the
/// C locale: `%a %A %b %h %B %d %e %H %I %j %m %M %p %S %u %w %y %Y %F %T
/// %D %R %c %x %X %n %t %%`, the glibc `-` flag (no padding) on the numeric
/// ones, and `%z`/`%Z` as nothing (a naive datetime has no zone). Any other
/// directive is an error.
pub(crate) fn strftime(format: &str, secs: i64) -> Result<String, Error> {
    let t = Civil::from_unix(secs);
    let mut out = String::with_capacity(format.len() * 2);
    let mut chars = format.chars();
    let hour12 = if t.hour.is_multiple_of(12) {
        12
    } else {
        t.hour % 12
    };
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut directive = chars.next();
        let no_pad = directive == Some('-');
        if no_pad {
            directive = chars.next();
        }
        let num = |out: &mut String, n: i64, width: usize| {
            if no_pad {
                write!(out, "{n}").ok();
            } else {
                write!(out, "{n:0width$}").ok();
            }
        };
        let day_name = DAYS[t.weekday as usize];
        let month_name = MONTHS[t.month as usize - 1];
        match directive {
            Some('a') => out.push_str(&day_name[..3]),
            Some('A') => out.push_str(day_name),
            Some('b' | 'h') => out.push_str(&month_name[..3]),
            Some('B') => out.push_str(month_name),
            Some('d') => num(&mut out, i64::from(t.day), 2),
            Some('e') if no_pad => num(&mut out, i64::from(t.day), 1),
            Some('e') => write!(out, "{:>2}", t.day).unwrap_or(()),
            Some('H') => num(&mut out, i64::from(t.hour), 2),
            Some('I') => num(&mut out, i64::from(hour12), 2),
            Some('j') => num(&mut out, i64::from(t.day_of_year), 3),
            Some('m') => num(&mut out, i64::from(t.month), 2),
            Some('M') => num(&mut out, i64::from(t.minute), 2),
            Some('p') => out.push_str(if t.hour < 12 { "AM" } else { "PM" }),
            Some('S') => num(&mut out, i64::from(t.second), 2),
            Some('u') => num(&mut out, i64::from(t.weekday + 1), 1),
            Some('w') => num(&mut out, i64::from((t.weekday + 1) % 7), 1),
            Some('y') => num(&mut out, t.year.rem_euclid(100), 2),
            Some('Y') => write!(out, "{}", t.year).unwrap_or(()),
            Some('F') => write!(out, "{}-{:02}-{:02}", t.year, t.month, t.day).unwrap_or(()),
            Some('T') => write!(out, "{:02}:{:02}:{:02}", t.hour, t.minute, t.second).unwrap_or(()),
            Some('D' | 'x') => write!(
                out,
                "{:02}/{:02}/{:02}",
                t.month,
                t.day,
                t.year.rem_euclid(100)
            )
            .unwrap_or(()),
            Some('R') => write!(out, "{:02}:{:02}", t.hour, t.minute).unwrap_or(()),
            Some('X') => write!(out, "{:02}:{:02}:{:02}", t.hour, t.minute, t.second).unwrap_or(()),
            Some('c') => write!(
                out,
                "{} {} {:>2} {:02}:{:02}:{:02} {}",
                &day_name[..3],
                &month_name[..3],
                t.day,
                t.hour,
                t.minute,
                t.second,
                t.year
            )
            .unwrap_or(()),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('z' | 'Z') => {}
            Some('%') if !no_pad => out.push('%'),
            other => {
                let shown = match other {
                    Some(d) => format!("%{}{d}", if no_pad { "-" } else { "" }),
                    None => "a lone % at the end".into(),
                };
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("strftime_now: unsupported directive {shown} in {format:?}"),
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_formats_known_dates() {
        // 1970-01-01 00:00:00 UTC, a Thursday.
        assert_eq!(
            strftime("%a %A %d %b %B %Y %H:%M:%S %j %w %u %p", 0).unwrap(),
            "Thu Thursday 01 Jan January 1970 00:00:00 001 4 4 AM"
        );
        // 2024-07-26 15:04:05 UTC, a Friday; the date Llama 3.1's template
        // falls back on.
        let t = 1_721_952_000 + 15 * 3600 + 4 * 60 + 5;
        assert_eq!(strftime("%d %b %Y", t).unwrap(), "26 Jul 2024");
        assert_eq!(
            strftime("%-d %B %Y, %I:%M %p (%y) %e|%-m|%F %T|%D|%R", t).unwrap(),
            "26 July 2024, 03:04 PM (24) 26|7|2024-07-26 15:04:05|07/26/24|15:04"
        );
        assert_eq!(
            strftime("%c|%x|%X|%%|%z%Z", t).unwrap(),
            "Fri Jul 26 15:04:05 2024|07/26/24|15:04:05|%|"
        );
        // Leap day and the last day of a leap year.
        assert_eq!(
            strftime("%F %j %a", 951_782_400).unwrap(),
            "2000-02-29 060 Tue"
        );
        assert_eq!(strftime("%F %j", 1_735_603_200).unwrap(), "2024-12-31 366");
        // Before the epoch.
        assert_eq!(strftime("%F %T", -1).unwrap(), "1969-12-31 23:59:59");
        assert_eq!(strftime("%e", 1_722_470_400).unwrap(), " 1");
    }

    #[test]
    fn strftime_refuses_unknown_directives() {
        for format in ["%Q", "%", "%-%", "%-"] {
            let err = strftime(format, 0).unwrap_err();
            assert!(
                err.to_string().contains("unsupported directive"),
                "{format}: {err}"
            );
        }
    }

    #[test]
    fn floats_are_written_as_python_writes_them() {
        for (x, repr) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1.5, "1.5"),
            (123.0, "123.0"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.25e-7, "1.25e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789.125, "123456789.125"),
            (1e300, "1e+300"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(python_float_repr(x), repr, "{x}");
        }
    }

    #[test]
    fn whitespace_is_pythons() {
        assert_eq!(strip("\u{1c}\u{1f} a b\u{85}\u{a0}\u{3000}"), "a b");
        assert_eq!(split_whitespace("  a\u{1e}b  c  ", None), ["a", "b", "c"]);
        assert_eq!(split_whitespace("  a b  c  ", Some(1)), ["a", "b  c  "]);
        assert_eq!(split_whitespace("  a b ", Some(0)), ["a b "]);
        assert!(split_whitespace(" \t ", None).is_empty());
        assert_eq!(
            title("they're bill's friends from the UK"),
            "They'Re Bill'S Friends From The Uk"
        );
        assert_eq!(title("élan vital 3rd"), "Élan Vital 3Rd");
    }
}
