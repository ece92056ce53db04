//! A strict parser for the handler's own `.jcfg` file, self-contained (it
//! uses nothing from the rest of the crate: it can be read, tested and
//! fuzzed on its own).
//!
//! Janus reads its `.jcfg` files with [libconfig] (Debian 12: libconfig 1.5,
//! through Janus's `janus_config` layer), so this module follows libconfig's
//! syntax, and a file Janus's other modules accept reads the same here:
//!
//! - comments: `# ...` and `// ...` to the end of the line, `/* ... */` blocks;
//! - settings `name = value` or `name : value`, optionally ended by `;` or `,`;
//!   names start with a letter or `*`, then letters, digits, `-`, `_` or `*`;
//! - scalars: double-quoted strings (escapes `\\ \" \n \r \t \f \xNN`, and
//!   adjacent literals are concatenated), integers (decimal with optional sign,
//!   hexadecimal `0x..`, optional `L`/`LL` suffix), floats (`1.5`, `-2e3`,
//!   `.5`, `1.`) and case-insensitive booleans;
//! - arrays `[ ... ]` of scalars of one type, lists `( ... )` of any values,
//!   and groups `{ ... }` of settings;
//! - a setting name used twice in one group is an error, as in libconfig.
//!
//! Top-level settings whose value is a group are the Janus "categories".
//!
//! How it differs from libconfig (and from `janus_config` on top of it).
//! Each difference makes a mistake an error instead of a silent change of
//! meaning:
//!
//! - `@include` directives are rejected with an error (libconfig reads the
//!   named file): the whole configuration is in one file, the one named in
//!   errors;
//! - unknown string escapes such as `\q` are an error (libconfig keeps the
//!   backslash), as is `\x00` and any escape sequence producing invalid UTF-8;
//! - a lone `.` is not accepted as the float `0.0`, and infinite floats
//!   (`1e999`) are an error;
//! - there is a single integer type: 32- and 64-bit integers (with or without
//!   `L`) mix freely in arrays, hexadecimal values are read as unsigned 64-bit
//!   and stored as two's complement (`0xFFFFFFFFFFFFFFFF` is `-1`), without
//!   libconfig's 32-bit truncation of hexadecimal values lacking `L`;
//! - binary and octal literals of newer libconfig versions are not accepted
//!   (1.5 has none either: `0640` is the decimal 640 in both);
//! - groups, arrays and lists may be nested at most [`MAX_DEPTH`] levels deep
//!   (libconfig recurses without a limit);
//! - errors carry the line and the column (libconfig: the line only);
//! - names are matched exactly ([`find`], [`Document::category`]), while
//!   `janus_config` matches them ignoring case: `Enabled` is not `enabled`
//!   here, and the handler's reader reports it as an unknown key.
//!
//! `janus_config` turns every scalar into a string (a float with `%f`) and
//! leaves its type behind, so Janus's own modules read `max = 1.5e3` as the
//! text `"1500.000000"`. This module keeps each value's type; the
//! caller decides what a key accepts. [`Value::as_text`] gives the
//! Janus-style text of a scalar for keys that take text, but a float's text
//! always keeps its `.` or exponent, so it never passes for a whole number.
//!
//! [libconfig]: https://hyperrealm.github.io/libconfig/libconfig_manual.html

use std::collections::HashMap;
use std::fmt;

/// Maximum nesting of groups, arrays and lists.
pub const MAX_DEPTH: usize = 64;

/// The value of a setting.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Scalars, all of the same type.
    Array(Vec<Value>),
    /// Values of any type.
    List(Vec<Value>),
    Group(Vec<Setting>),
}

/// One `name = value` setting.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub name: String,
    pub value: Value,
    /// 1-based line where the name starts.
    pub line: usize,
}

/// A parsed file: its top-level settings, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Document {
    pub settings: Vec<Setting>,
}

/// A syntax error, with its 1-based position (the column counts chars).
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ParseError {}

impl Document {
    /// A top-level group ("category") by name.
    pub fn category(&self, name: &str) -> Option<&[Setting]> {
        self.settings.iter().find_map(|s| match &s.value {
            Value::Group(items) if s.name == name => Some(items.as_slice()),
            _ => None,
        })
    }

    /// Names of all top-level groups, in file order.
    pub fn category_names(&self) -> Vec<&str> {
        self.settings
            .iter()
            .filter(|s| matches!(s.value, Value::Group(_)))
            .map(|s| s.name.as_str())
            .collect()
    }
}

impl Value {
    /// Janus-style view of a scalar as text (`janus_config` converts every
    /// scalar to a string); `None` for arrays, lists and groups.
    ///
    /// A float always keeps a `.` or an exponent (`1.5e3` is `1500.0`, `2.`
    /// is `2.0`), so that no float reads as a whole number: whole-number
    /// keys refuse fractions and exponents.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(format!("{f:?}")),
            Value::Bool(b) => Some(b.to_string()),
            Value::Array(_) | Value::List(_) | Value::Group(_) => None,
        }
    }

    /// Short type name for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Bool(_) => "boolean",
            Value::Array(_) => "array",
            Value::List(_) => "list",
            Value::Group(_) => "group",
        }
    }
}

/// Finds a setting by name in a slice (first match).
pub fn find<'a>(settings: &'a [Setting], name: &str) -> Option<&'a Setting> {
    settings.iter().find(|s| s.name == name)
}

/// Parses the text of a `.jcfg` file.
///
/// # Errors
///
/// A [`ParseError`] at the first syntax error, unsupported construct
/// (`@include`), duplicate setting name or nesting deeper than [`MAX_DEPTH`].
pub fn parse(text: &str) -> Result<Document, ParseError> {
    let mut parser = Parser {
        lexer: Lexer::new(text),
        peeked: None,
    };
    let settings = parser.settings(0, None)?;
    Ok(Document { settings })
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Name(String),
    /// One string literal (adjacent ones are joined by the parser).
    Str(String),
    /// The raw text of a number, classified by the parser.
    Num(String),
    Bool(bool),
    /// One of `= : ; , { } [ ] ( )`.
    Punct(char),
    Eof,
}

impl Kind {
    fn describe(&self) -> String {
        match self {
            Kind::Name(n) => format!("'{n}'"),
            Kind::Str(_) => "a string".to_string(),
            Kind::Num(t) => format!("'{t}'"),
            Kind::Bool(b) => format!("'{b}'"),
            Kind::Punct(c) => format!("'{c}'"),
            Kind::Eof => "end of file".to_string(),
        }
    }
}

#[derive(Debug)]
struct Token {
    kind: Kind,
    line: usize,
    column: usize,
}

impl Token {
    fn error(&self, message: impl Into<String>) -> ParseError {
        error_at(self.line, self.column, message)
    }
}

fn error_at(line: usize, column: usize, message: impl Into<String>) -> ParseError {
    let message = message.into();
    ParseError {
        line,
        column,
        message,
    }
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    column: usize,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*')
}

impl Lexer {
    fn new(text: &str) -> Lexer {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Lexer {
            chars: text.chars().collect(),
            pos: 0,
            line: 1,
            column: 1,
        }
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_at(0)?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn error_here(&self, message: impl Into<String>) -> ParseError {
        error_at(self.line, self.column, message)
    }

    /// Skips whitespace and comments.
    fn skip_blank(&mut self) -> Result<(), ParseError> {
        loop {
            match (self.peek_at(0), self.peek_at(1)) {
                (Some(' ' | '\t' | '\r' | '\n' | '\x0c'), _) => {
                    self.bump();
                }
                (Some('#'), _) | (Some('/'), Some('/')) => {
                    while self.peek_at(0).is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                (Some('/'), Some('*')) => {
                    let start = self.error_here("unterminated comment ('/*' without '*/')");
                    self.bump();
                    self.bump();
                    loop {
                        match (self.peek_at(0), self.peek_at(1)) {
                            (None, _) => return Err(start),
                            (Some('*'), Some('/')) => break,
                            _ => {
                                self.bump();
                            }
                        }
                    }
                    self.bump();
                    self.bump();
                }
                _ => return Ok(()),
            }
        }
    }

    fn next_token(&mut self) -> Result<Token, ParseError> {
        self.skip_blank()?;
        let (line, column) = (self.line, self.column);
        let kind = match self.peek_at(0) {
            None => Kind::Eof,
            Some('"') => Kind::Str(self.string()?),
            Some(c @ ('=' | ':' | ';' | ',' | '{' | '}' | '[' | ']' | '(' | ')')) => {
                self.bump();
                Kind::Punct(c)
            }
            Some(c) if c.is_ascii_alphabetic() || c == '*' => {
                let word = self.take_while(is_name_char);
                if word.eq_ignore_ascii_case("true") {
                    Kind::Bool(true)
                } else if word.eq_ignore_ascii_case("false") {
                    Kind::Bool(false)
                } else {
                    Kind::Name(word)
                }
            }
            Some(c) if c.is_ascii_digit() || matches!(c, '.' | '+' | '-') => {
                Kind::Num(self.number())
            }
            Some('@') => {
                let is_include = (1..=7)
                    .map(|i| self.peek_at(i))
                    .eq("include".chars().map(Some));
                return Err(self.error_here(if is_include {
                    "@include directives are not supported; put the settings in this file"
                } else {
                    "unexpected character '@'"
                }));
            }
            Some(c) => return Err(self.error_here(format!("unexpected character {c:?}"))),
        };
        Ok(Token { kind, line, column })
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek_at(0).filter(|&c| keep(c)) {
            out.push(c);
            self.bump();
        }
        out
    }

    /// Collects the raw text of a number: alphanumerics, `.`, `_`, and a
    /// sign at the start or right after a decimal exponent marker.
    fn number(&mut self) -> String {
        let mut text = String::new();
        let mut hex = false;
        while let Some(c) = self.peek_at(0) {
            let sign_ok = text.is_empty() || (!hex && text.ends_with(['e', 'E']));
            if !(c.is_ascii_alphanumeric()
                || matches!(c, '.' | '_')
                || (sign_ok && matches!(c, '+' | '-')))
            {
                break;
            }
            hex |= matches!(c, 'x' | 'X');
            text.push(c);
            self.bump();
        }
        text
    }

    /// Reads one string literal, the opening quote being the current char.
    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.error_here("unterminated string");
        self.bump();
        let mut bytes = Vec::new();
        loop {
            let (line, column) = (self.line, self.column);
            let Some(c) = self.bump() else {
                return Err(start);
            };
            let escape_error = |message: &str| error_at(line, column, message);
            match c {
                '"' => break,
                '\\' => {
                    let byte = match self.bump() {
                        Some('\\') => b'\\',
                        Some('"') => b'"',
                        Some('n') => b'\n',
                        Some('r') => b'\r',
                        Some('t') => b'\t',
                        Some('f') => b'\x0c',
                        Some('x' | 'X') => {
                            let digit = |i| self.peek_at(i).and_then(|c: char| c.to_digit(16));
                            let (Some(high), Some(low)) = (digit(0), digit(1)) else {
                                let message =
                                    "invalid \\x escape in string: expected two hex digits";
                                return Err(escape_error(message));
                            };
                            self.bump();
                            self.bump();
                            let byte = (high * 16 + low) as u8;
                            if byte == 0 {
                                return Err(escape_error("\\x00 is not allowed in strings"));
                            }
                            byte
                        }
                        Some(other) => {
                            return Err(escape_error(&format!(
                                "invalid escape sequence '\\{other}' in string \
                                 (valid: \\\\ \\\" \\n \\r \\t \\f \\xNN)"
                            )));
                        }
                        None => return Err(start),
                    };
                    bytes.push(byte);
                }
                c => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        String::from_utf8(bytes).map_err(|_| ParseError {
            message: "string is not valid UTF-8 (check its \\x escapes)".into(),
            ..start
        })
    }
}

/// `s` without a trailing `L` or `LL` (64-bit integer suffix).
fn without_suffix(s: &str) -> &str {
    s.strip_suffix("LL")
        .or_else(|| s.strip_suffix('L'))
        .unwrap_or(s)
}

/// Classifies the raw text of a number the way libconfig's scanner does.
fn number_value(text: &str) -> Result<Value, String> {
    let invalid = || format!("invalid number '{text}'");
    let body = text.trim_start_matches(['+', '-']);
    if body.len() + 1 < text.len() {
        return Err(invalid());
    }
    let signed = body.len() < text.len();
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        let digits = without_suffix(hex);
        if signed {
            return Err(format!(
                "invalid number '{text}': hexadecimal numbers cannot have a sign"
            ));
        }
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        // Two's complement, like libconfig's strtoull followed by a cast.
        return u64::from_str_radix(digits, 16)
            .map(|v| Value::Int(v as i64))
            .map_err(|_| format!("integer value out of range: '{text}'"));
    }
    let digits = without_suffix(body);
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        let number = &text[..text.len() - (body.len() - digits.len())];
        return number
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| format!("integer value out of range: '{text}'"));
    }
    // [0-9]* ('.' [0-9]*)? ([eE] [-+]? [0-9]+)?, with a mantissa digit and a
    // '.' or an exponent.
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => {
            let exponent = &body[i + 1..];
            (
                &body[..i],
                Some(exponent.strip_prefix(['+', '-']).unwrap_or(exponent)),
            )
        }
        None => (body, None),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let valid = all_digits(int_part)
        && all_digits(frac_part)
        && int_part.len() + frac_part.len() > 0
        && (mantissa.contains('.') || exponent.is_some())
        && exponent.is_none_or(|e| !e.is_empty() && all_digits(e));
    if !valid {
        return Err(invalid());
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(Value::Float(f)),
        Ok(_) => Err(format!("float value out of range: '{text}'")),
        Err(_) => Err(invalid()),
    }
}

struct Parser {
    lexer: Lexer,
    peeked: Option<Token>,
}

impl Parser {
    fn next(&mut self) -> Result<Token, ParseError> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.lexer.next_token(),
        }
    }

    fn peek(&mut self) -> Result<&Token, ParseError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next_token()?);
        }
        Ok(self.peeked.as_ref().expect("just filled"))
    }

    fn peek_is(&mut self, chars: &[char]) -> Result<bool, ParseError> {
        Ok(matches!(self.peek()?.kind, Kind::Punct(c) if chars.contains(&c)))
    }

    /// Settings until end of file (top level) or the `}` closing the group
    /// opened by `open`.
    fn settings(&mut self, depth: usize, open: Option<&Token>) -> Result<Vec<Setting>, ParseError> {
        let mut settings = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        loop {
            let token = self.next()?;
            let name = match (&token.kind, open) {
                (Kind::Eof, None) | (Kind::Punct('}'), Some(_)) => return Ok(settings),
                (Kind::Eof, Some(open)) => {
                    return Err(token.error(format!(
                        "unexpected end of file: the group opened at line {}, column {} is not closed with '}}'",
                        open.line, open.column
                    )));
                }
                (Kind::Name(name), _) => name.clone(),
                (Kind::Bool(_), _) => {
                    return Err(token.error(format!(
                        "expected a setting name, found {} (true and false cannot be setting names)",
                        token.kind.describe()
                    )));
                }
                (kind, _) => {
                    return Err(token.error(format!(
                        "expected a setting name, found {}",
                        kind.describe()
                    )));
                }
            };
            if let Some(first) = seen.get(&name) {
                return Err(token.error(format!(
                    "duplicate setting name '{name}' (first at line {first})"
                )));
            }
            let separator = self.next()?;
            if !matches!(separator.kind, Kind::Punct('=' | ':')) {
                return Err(separator.error(format!(
                    "expected '=' or ':' after setting name '{name}', found {}",
                    separator.kind.describe()
                )));
            }
            let value = self.value(depth)?;
            if self.peek_is(&[';', ','])? {
                self.next()?;
            }
            seen.insert(name.clone(), token.line);
            settings.push(Setting {
                name,
                value,
                line: token.line,
            });
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        let token = self.next()?;
        match token.kind {
            Kind::Str(mut s) => {
                while let Kind::Str(more) = &self.peek()?.kind {
                    s.push_str(more);
                    self.next()?;
                }
                Ok(Value::Str(s))
            }
            Kind::Num(ref text) => number_value(text).map_err(|m| token.error(m)),
            Kind::Bool(b) => Ok(Value::Bool(b)),
            Kind::Punct(open @ ('{' | '[' | '(')) => {
                if depth >= MAX_DEPTH {
                    return Err(token.error(format!(
                        "nesting too deep (more than {MAX_DEPTH} levels of groups, arrays and lists)"
                    )));
                }
                match open {
                    '{' => Ok(Value::Group(self.settings(depth + 1, Some(&token))?)),
                    '[' => Ok(Value::Array(self.sequence(depth + 1, &token, ']')?)),
                    _ => Ok(Value::List(self.sequence(depth + 1, &token, ')')?)),
                }
            }
            ref kind => Err(token.error(format!("expected a value, found {}", kind.describe()))),
        }
    }

    /// The elements of an array (`close` is `]`) or a list (`)`), after the
    /// opening bracket `open`.
    fn sequence(
        &mut self,
        depth: usize,
        open: &Token,
        close: char,
    ) -> Result<Vec<Value>, ParseError> {
        let what = if close == ']' { "array" } else { "list" };
        let mut items: Vec<Value> = Vec::new();
        if self.peek_is(&[close])? {
            self.next()?;
            return Ok(items);
        }
        loop {
            let (line, column) = {
                let next = self.peek()?;
                if close == ']' && matches!(next.kind, Kind::Punct('{' | '[' | '(')) {
                    return Err(next.error(
                        "arrays may only contain scalar values (use a list '( ... )' to nest values)",
                    ));
                }
                if next.kind == Kind::Punct(close) {
                    return Err(next.error(format!("trailing ',' before '{close}' is not allowed")));
                }
                (next.line, next.column)
            };
            let item = self.value(depth)?;
            if close == ']'
                && let Some(first) = items.first()
                && first.type_name() != item.type_name()
            {
                let (expected, found) = (first.type_name(), item.type_name());
                return Err(error_at(
                    line,
                    column,
                    format!(
                        "array elements must all have the same type: expected {expected}, found {found}"
                    ),
                ));
            }
            items.push(item);
            let token = self.next()?;
            match token.kind {
                Kind::Punct(',') => {}
                Kind::Punct(c) if c == close => return Ok(items),
                ref kind => {
                    return Err(token.error(format!(
                        "expected ',' or '{close}' in the {what} opened at line {}, column {}, found {}",
                        open.line,
                        open.column,
                        kind.describe()
                    )));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error for `text`, as "line:column: message".
    fn err(text: &str) -> String {
        let e = parse(text).expect_err(text);
        format!("{}:{}: {}", e.line, e.column, e.message)
    }

    /// Checks (input, "line:column: message") pairs.
    fn check_errors(cases: &[(&str, &str)]) {
        for (text, expected) in cases {
            assert_eq!(err(text), *expected, "input: {text:?}");
        }
    }

    /// The value of `v = {text}`.
    fn value(text: &str) -> Value {
        let doc = parse(&format!("v = {text}")).unwrap_or_else(|e| panic!("{text}: {e}"));
        doc.settings[0].value.clone()
    }

    fn names(doc: &Document) -> Vec<&str> {
        doc.settings.iter().map(|s| s.name.as_str()).collect()
    }

    fn strs(items: &[&str]) -> Vec<Value> {
        items.iter().map(|s| Value::Str(s.to_string())).collect()
    }

    fn setting(name: &str, value: Value, line: usize) -> Setting {
        let name = name.to_string();
        Setting { name, value, line }
    }

    const REAL: &str = r#"# comment
general: {
	enabled = false		# By default the module is not enabled
	events = "all"
	grouping = true;
	json = "indented"
	backend = "http://your.webserver.here/and/a/path"
	//max_retransmissions = 5
	/* block
	   comment */
	retransmissions_backoff = 100,
	protected_folders = [ "/bin", "/boot" ]
}
certificates: {
}
media: { }
http-billing: { url = "http://x" "/y" }   # adjacent string literals concatenate
"#;

    #[test]
    fn real_file() {
        let doc = parse(REAL).unwrap();
        let categories = ["general", "certificates", "media", "http-billing"];
        assert_eq!(doc.category_names(), categories);
        let general = doc.category("general").unwrap();
        let get = |name| &find(general, name).unwrap().value;
        assert_eq!(get("enabled"), &Value::Bool(false));
        assert_eq!(get("events"), &Value::Str("all".into()));
        assert_eq!(get("grouping"), &Value::Bool(true));
        assert_eq!(get("retransmissions_backoff"), &Value::Int(100));
        assert_eq!(
            get("protected_folders"),
            &Value::Array(strs(&["/bin", "/boot"]))
        );
        assert!(find(general, "max_retransmissions").is_none());
        assert_eq!(find(general, "enabled").unwrap().line, 3);
        assert_eq!(find(general, "protected_folders").unwrap().line, 12);
        assert_eq!(general.len(), 7);
        assert_eq!(doc.category("certificates"), Some(&[][..]));
        assert_eq!(doc.category("media"), Some(&[][..]));
        let billing = doc.category("http-billing").unwrap();
        assert_eq!(
            billing,
            [setting("url", Value::Str("http://x/y".into()), 17)]
        );
        assert!(doc.category("nope").is_none());
    }

    #[test]
    fn root_items_and_categories() {
        let doc = parse("a = 1\ng: { b = 2 }\nc = \"x\"").unwrap();
        assert_eq!(doc.category_names(), ["g"]);
        assert!(doc.category("a").is_none());
        assert_eq!(
            find(&doc.settings, "c"),
            Some(&setting("c", Value::Str("x".into()), 3))
        );
    }

    #[test]
    fn blank_files_whitespace_bom_crlf() {
        for blank in [
            "",
            " \t\r\n\x0c\n",
            "# only\n// comments\n/* here */",
            "\u{feff}",
        ] {
            assert_eq!(parse(blank).unwrap(), Document::default());
        }
        let doc = parse("\u{feff}a=1;b:2,c=3\r\n\r\nd\t=\r\n4").unwrap();
        assert_eq!(names(&doc), ["a", "b", "c", "d"]);
        assert_eq!(doc.settings[3].line, 3);
        check_errors(&[
            (
                "\u{feff}x",
                "1:2: expected '=' or ':' after setting name 'x', found end of file",
            ),
            ("a = 1\r\n  =", "2:3: expected a setting name, found '='"),
        ]);
    }

    #[test]
    fn comments() {
        let doc =
            parse("a = 1 # x = 2\nb = 2 // c = 3\n/* d = 4\n */ e /* in */ = /**/ 5").unwrap();
        assert_eq!(names(&doc), ["a", "b", "e"]);
        assert_eq!(doc.settings[2].line, 4);
        assert_eq!(value("\"a#b//c/*d*/\""), Value::Str("a#b//c/*d*/".into()));
        check_errors(&[
            (
                "a = 1\n  /* open\n",
                "2:3: unterminated comment ('/*' without '*/')",
            ),
            ("/*/", "1:1: unterminated comment ('/*' without '*/')"),
            ("a = 1 / 2", "1:7: unexpected character '/'"),
        ]);
    }

    #[test]
    fn names_and_separators() {
        let doc = parse("a-b_c* = 1\n*x = 2\nZ9 = 3\nTrueish = 4").unwrap();
        assert_eq!(names(&doc), ["a-b_c*", "*x", "Z9", "Trueish"]);
        check_errors(&[
            ("_x = 1", "1:1: unexpected character '_'"),
            ("é = 1", "1:1: unexpected character 'é'"),
            ("a\u{1} = 1", "1:2: unexpected character '\\u{1}'"),
            ("1abc = 1", "1:1: expected a setting name, found '1abc'"),
            ("\"s\" = 1", "1:1: expected a setting name, found a string"),
            ("a = 1 }", "1:7: expected a setting name, found '}'"),
            ("a = 1;;", "1:7: expected a setting name, found ';'"),
            ("a = ;", "1:5: expected a value, found ';'"),
            ("a =", "1:4: expected a value, found end of file"),
            ("a = yes", "1:5: expected a value, found 'yes'"),
            ("a = truee", "1:5: expected a value, found 'truee'"),
            (
                "b 2",
                "1:3: expected '=' or ':' after setting name 'b', found '2'",
            ),
            (
                "g: {\n\tenabled false\n}",
                "2:10: expected '=' or ':' after setting name 'enabled', found 'false'",
            ),
            (
                "TRUE = 1",
                "1:1: expected a setting name, found 'true' (true and false cannot be setting names)",
            ),
        ]);
    }

    #[test]
    fn strings() {
        let cases = [
            (r#""""#, ""),
            (r#""a\\b\"c\nd\re\tf\fg""#, "a\\b\"c\nd\re\tf\x0cg"),
            (r#""\x41\x7a\xC3\xA9""#, "Azé"),
            ("\"héllo ✓\"", "héllo ✓"),
            ("\"two\nlines\"", "two\nlines"),
            ("\"a\" \"b\"\n # c\n /* d */ \"c\"; x = 1", "abc"),
        ];
        for (text, expected) in cases {
            assert_eq!(value(text), Value::Str(expected.into()), "{text}");
        }
        assert_eq!(
            parse("a = \"multi\nline\"\nb = 2").unwrap().settings[1].line,
            3
        );
        check_errors(&[
            (
                r#"v = "ab\q""#,
                r#"1:8: invalid escape sequence '\q' in string (valid: \\ \" \n \r \t \f \xNN)"#,
            ),
            (
                r#"v = "\x4""#,
                r"1:6: invalid \x escape in string: expected two hex digits",
            ),
            (
                r#"v = "\x+1""#,
                r"1:6: invalid \x escape in string: expected two hex digits",
            ),
            (
                r#"v = "\x"#,
                r"1:6: invalid \x escape in string: expected two hex digits",
            ),
            (r#"v = "\x00""#, r"1:6: \x00 is not allowed in strings"),
            (
                r#"v = "\xff""#,
                r"1:5: string is not valid UTF-8 (check its \x escapes)",
            ),
            ("a = 1\nb = [\n  \"open", "3:3: unterminated string"),
            ("v = \"ends in \\", "1:5: unterminated string"),
        ]);
    }

    #[test]
    fn integers() {
        let texts = "0 42 -42 +7 007 5000000000 12L -12LL 0x1F 0XffL 0xFFFFFFFFFFFFFFFF";
        let expected = [0, 42, -42, 7, 7, 5_000_000_000, 12, -12, 31, 255, -1];
        for (text, expected) in texts.split(' ').zip(expected) {
            assert_eq!(value(text), Value::Int(expected), "{text}");
        }
        assert_eq!(value("9223372036854775807"), Value::Int(i64::MAX));
        assert_eq!(value("-9223372036854775808L"), Value::Int(i64::MIN));
        assert_eq!(value("0x7FFFFFFFFFFFFFFFLL"), Value::Int(i64::MAX));
        for text in [
            "9223372036854775808",
            "-99999999999999999999L",
            "0x10000000000000000",
        ] {
            let expected = format!("1:5: integer value out of range: '{text}'");
            assert_eq!(err(&format!("v = {text}")), expected);
        }
        for bad in [
            "0x", "0xG", "1LLL", "1l", "12ab", "1_000", "+", "-", "1x2", "1e5L",
        ] {
            assert_eq!(
                err(&format!("v = {bad}")),
                format!("1:5: invalid number '{bad}'")
            );
        }
        check_errors(&[
            (
                "v = -0x10",
                "1:5: invalid number '-0x10': hexadecimal numbers cannot have a sign",
            ),
            ("a = 1\nb =  1abc", "2:6: invalid number '1abc'"),
            // A sign after a number starts a new token, as in libconfig.
            ("a = 1-2", "1:6: expected a setting name, found '-2'"),
            ("a = --1", "1:5: invalid number '-'"),
        ]);
    }

    #[test]
    fn floats() {
        let texts = "1.5 -2e3 .5 1. +1.25 -.5 1E-2 2e+2 1.5e3 1.e2 0.0";
        let expected = [
            1.5, -2000.0, 0.5, 1.0, 1.25, -0.5, 0.01, 200.0, 1500.0, 100.0, 0.0,
        ];
        for (text, expected) in texts.split(' ').zip(expected) {
            assert_eq!(value(text), Value::Float(expected), "{text}");
        }
        assert_eq!(err("v = 1e999"), "1:5: float value out of range: '1e999'");
        for bad in [
            ".", "1e", "1.2.3", "1e+", "1.5f", "-.", ".e1", "1e2.5", "0x1.5",
        ] {
            assert_eq!(
                err(&format!("v = {bad}")),
                format!("1:5: invalid number '{bad}'")
            );
        }
    }

    #[test]
    fn booleans() {
        for (text, b) in [
            ("true", true),
            ("TRUE", true),
            ("tRuE", true),
            ("False", false),
        ] {
            assert_eq!(value(text), Value::Bool(b));
        }
    }

    #[test]
    fn arrays() {
        let ints = |v: &[i64]| Value::Array(v.iter().map(|&i| Value::Int(i)).collect());
        assert_eq!(value("[]"), ints(&[]));
        assert_eq!(value("[ ]"), ints(&[]));
        assert_eq!(value("[1, -2, 3L, 0x4]"), ints(&[1, -2, 3, 4]));
        assert_eq!(
            value("[\"a\" \"b\", \"c\"]"),
            Value::Array(strs(&["ab", "c"]))
        );
        let bools = Value::Array(vec![Value::Bool(true), Value::Bool(false)]);
        assert_eq!(value("[true, FALSE]"), bools);
        let floats = Value::Array(vec![Value::Float(1.5), Value::Float(2.0)]);
        assert_eq!(value("[1.5,\n 2.]"), floats);
        let scalar = "arrays may only contain scalar values (use a list '( ... )' to nest values)";
        let unclosed = "expected ',' or ']' in the array opened at line 1, column 5, found";
        check_errors(&[
            (
                "v = [1, \"x\"]",
                "1:9: array elements must all have the same type: expected integer, found string",
            ),
            (
                "v = [1, 2.0]",
                "1:9: array elements must all have the same type: expected integer, found float",
            ),
            ("v = [1, [2]]", &format!("1:9: {scalar}")),
            ("v = [(1)]", &format!("1:6: {scalar}")),
            ("v = [{}]", &format!("1:6: {scalar}")),
            ("v = [1, ]", "1:9: trailing ',' before ']' is not allowed"),
            ("v = [,]", "1:6: expected a value, found ','"),
            ("v = [1 2]", &format!("1:8: {unclosed} '2'")),
            ("v = [1)", &format!("1:7: {unclosed} ')'")),
            ("v = [1,\n2", &format!("2:2: {unclosed} end of file")),
        ]);
    }

    #[test]
    fn lists() {
        assert_eq!(value("()"), Value::List(vec![]));
        let expected = Value::List(vec![
            Value::Int(1),
            Value::Str("two".into()),
            Value::Float(3.0),
            Value::Bool(true),
            Value::Array(vec![Value::Int(4), Value::Int(5)]),
            Value::List(vec![Value::Int(6)]),
            Value::Group(vec![setting("seven", Value::Int(7), 1)]),
        ]);
        assert_eq!(
            value("( 1, \"two\", 3.0, true, [4, 5], (6), { seven = 7; } )"),
            expected
        );
        check_errors(&[
            ("v = (1,)", "1:8: trailing ',' before ')' is not allowed"),
            (
                "v = (1; 2)",
                "1:7: expected ',' or ')' in the list opened at line 1, column 5, found ';'",
            ),
        ]);
    }

    #[test]
    fn groups() {
        let doc = parse("outer = {\n  inner: { x = 1 };\n  y = ( { z = 2 } )\n};").unwrap();
        let outer = doc.category("outer").unwrap();
        let inner = Value::Group(vec![setting("x", Value::Int(1), 2)]);
        assert_eq!(find(outer, "inner").unwrap().value, inner);
        assert_eq!(find(outer, "y").unwrap().line, 3);
        check_errors(&[
            (
                "g: {\n  a = 1\n",
                "3:1: unexpected end of file: the group opened at line 1, column 4 is not closed with '}'",
            ),
            ("}", "1:1: expected a setting name, found '}'"),
            ("g: { a = 1 ]", "1:12: expected a setting name, found ']'"),
            ("g: { 5 }", "1:6: expected a setting name, found '5'"),
        ]);
    }

    #[test]
    fn duplicates() {
        check_errors(&[
            (
                "events = 1\nevents = 2",
                "2:1: duplicate setting name 'events' (first at line 1)",
            ),
            (
                "g: {\n  a = 1\n  b = 2\n  a = { }\n}",
                "4:3: duplicate setting name 'a' (first at line 2)",
            ),
        ]);
        // The same name in different groups, or differing in case, is fine.
        assert!(parse("a = 1\ng: { a = 2 }\nh: { a = 3; g = { a = 4 } }\nA = 5").is_ok());
    }

    #[test]
    fn includes_are_rejected() {
        check_errors(&[
            (
                "a = 1\n  @include \"x.cfg\"\n",
                "2:3: @include directives are not supported; put the settings in this file",
            ),
            ("@inc", "1:1: unexpected character '@'"),
            ("@", "1:1: unexpected character '@'"),
        ]);
    }

    #[test]
    fn nesting_depth() {
        let nested = |open: &str, close: &str, n| format!("{}{}", open.repeat(n), close.repeat(n));
        assert!(parse(&format!("v = {}", nested("(", ")", MAX_DEPTH))).is_ok());
        assert!(
            parse(&format!(
                "v = {}",
                nested("(", ")", MAX_DEPTH - 1).replace("()", "[1]")
            ))
            .is_ok()
        );
        assert!(parse(&nested("g = {", "}", MAX_DEPTH)).is_ok());
        let e = "nesting too deep (more than 64 levels of groups, arrays and lists)";
        assert_eq!(
            err(&format!("v = {}", nested("(", ")", MAX_DEPTH + 1))),
            format!("1:69: {e}")
        );
        assert_eq!(
            err(&nested("g = {", "}", MAX_DEPTH + 1)),
            format!("1:325: {e}")
        );
        for (open, close) in [("(", ")"), ("[", "]"), ("{", "}"), ("(", ""), ("g:{", "}")] {
            assert!(parse(&format!("v = {}", nested(open, close, 1000))).is_err());
            assert!(parse(&open.repeat(100_000)).is_err());
        }
    }

    #[test]
    fn value_helpers() {
        let text = |v: Value| v.as_text();
        assert_eq!(text(Value::Str("x y".into())).as_deref(), Some("x y"));
        assert_eq!(text(Value::Int(-5)).as_deref(), Some("-5"));
        assert_eq!(text(Value::Float(1.5)).as_deref(), Some("1.5"));
        assert_eq!(text(Value::Float(2.0)).as_deref(), Some("2.0"));
        assert_eq!(text(Value::Float(1500.0)).as_deref(), Some("1500.0"));
        assert_eq!(text(Value::Float(1e300)).as_deref(), Some("1e300"));
        assert_eq!(text(Value::Bool(true)).as_deref(), Some("true"));
        assert_eq!(text(Value::Bool(false)).as_deref(), Some("false"));
        let all = [
            Value::Str(String::new()),
            Value::Int(0),
            Value::Float(0.0),
            Value::Bool(true),
            Value::Array(vec![]),
            Value::List(vec![]),
            Value::Group(vec![]),
        ];
        let types: Vec<_> = all.iter().map(Value::type_name).collect();
        assert_eq!(
            types,
            [
                "string", "integer", "float", "boolean", "array", "list", "group"
            ]
        );
        assert!(all[4..].iter().all(|v| v.as_text().is_none()));
        let settings = parse("a = 1\nb = 2").unwrap().settings;
        assert_eq!(find(&settings, "b").map(|s| s.line), Some(2));
        assert!(find(&settings, "c").is_none());
    }

    #[test]
    fn error_display() {
        let e: Box<dyn std::error::Error> = Box::new(parse("a = 1\nb 2").unwrap_err());
        let text = "line 2, column 3: expected '=' or ':' after setting name 'b', found '2'";
        assert_eq!(e.to_string(), text);
    }

    /// xorshift64*: a small deterministic PRNG for the robustness test.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn check_no_panic(text: &str) {
        if let Err(e) = parse(text) {
            assert!(
                e.line >= 1 && e.column >= 1 && !e.message.is_empty(),
                "{text:?}: {e}"
            );
        }
    }

    #[test]
    fn robustness() {
        let valid = format!("{REAL}\nl = ( 1, [0x1FL, -2], {{ f = .5e-3 }}, \"\\x41\\n\" );\n");
        assert!(parse(&valid).is_ok());
        for (i, _) in valid.char_indices() {
            check_no_panic(&valid[..i]);
            check_no_panic(&valid[i..]);
        }
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..3000 {
            let bytes: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            check_no_panic(&String::from_utf8_lossy(&bytes));
        }
        // Random soups of syntax-relevant fragments.
        let mut pieces: Vec<&str> =
            "a = : ; , { } [ ] ( ) \" \\ \\x 0x 1 - + . e L true /* */ // #"
                .split(' ')
                .collect();
        pieces.extend([
            "\n",
            "\r\n",
            " ",
            "@include",
            "\u{feff}",
            "é",
            "99999999999999999999",
        ]);
        for _ in 0..5000 {
            let text: String = (0..rng.below(40))
                .map(|_| pieces[rng.below(pieces.len())])
                .collect();
            check_no_panic(&text);
        }
        // Mutations of the valid file: deleted, inserted and swapped chars.
        let chars: Vec<char> = valid.chars().collect();
        for _ in 0..2000 {
            let mut mutated = chars.clone();
            for _ in 0..=rng.below(4) {
                let (at, other) = (rng.below(mutated.len()), rng.below(mutated.len()));
                match rng.below(3) {
                    0 => drop(mutated.remove(at)),
                    1 => mutated.insert(at, pieces[other % pieces.len()].chars().next().unwrap()),
                    _ => mutated.swap(at, other),
                }
            }
            check_no_panic(&mutated.iter().collect::<String>());
        }
        for text in [
            "9".repeat(10_000),
            format!("v = {}", "9".repeat(10_000)),
            format!("v = 0.{}e{}", "9".repeat(5000), "9".repeat(5000)),
            format!("v = \"{}", "\\".repeat(10_001)),
            format!("v = ({}", "[".repeat(1000)),
        ] {
            check_no_panic(&text);
        }
    }
}
