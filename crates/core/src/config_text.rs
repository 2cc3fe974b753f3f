//! The text of `hotline.yaml` before serde reads it. Secrets need not sit in the file:
//! `${NAME}` in a value is replaced by the environment variable's value, and `KEY_file: PATH`
//! (for the keys that hold secrets, [`FILE_KEYS`]) by `KEY: <the file's content>`. The
//! rewritten text keeps every line where it was, and a map leads a position in it back to
//! the file's, so that every diagnostic points at what the admin wrote. The position of
//! every key and value is kept by its path (`agents.alice.password`) for the checks done
//! after parsing.
//!
//! This module never logs and never puts a substituted value in a message: messages name
//! the variable or the file instead, and [`ConfigText::redact`] does the same to the
//! messages of others. Where variables and files come from is the caller's
//! ([`Sources`]): this module reads neither the environment nor the disk itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

/// The keys that may be given as `KEY_file: PATH` instead: the secret-bearing ones.
pub const FILE_KEYS: &[&str] = &["token", "password", "ha1_md5", "ha1_sha256", "store"];

/// Where `${NAME}` and `KEY_file` values come from.
pub struct Sources<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub read: &'a dyn Fn(&Path) -> std::io::Result<String>,
}

/// A place in the file: 1-based line and column (characters), and how many characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
    pub width: u32,
}

/// A problem found while rewriting, at its place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub pos: Pos,
    pub message: String,
    pub help: Option<String>,
}

/// One replaced span, on one line.
#[derive(Debug, Clone)]
struct Edit {
    line: u32,
    /// 0-based character column of the original span.
    column: u32,
    old_chars: u32,
    start_byte: usize,
    end_byte: usize,
    replacement: String,
}

/// The file's text rewritten for serde, and what is needed to speak about the original.
#[derive(Debug, Clone, Default)]
pub struct ConfigText {
    /// What serde reads: the same lines, with variables and secret files substituted.
    pub text: String,
    pub problems: Vec<Problem>,
    edits: Vec<Edit>,
    /// Each substituted value with the words that stand for it in messages.
    secrets: Vec<(String, String)>,
    values: BTreeMap<String, Pos>,
    keys: BTreeMap<String, Pos>,
}

impl ConfigText {
    /// Maps a 1-based position in [`Self::text`] back to the file's. A position inside
    /// a substituted value is the start of what was written there.
    pub fn original(&self, line: u32, column: u32) -> (u32, u32) {
        let col0 = i64::from(column.saturating_sub(1));
        let mut delta: i64 = 0;
        for e in self.edits.iter().filter(|e| e.line == line) {
            let new_start = i64::from(e.column) + delta;
            if col0 < new_start {
                break;
            }
            let new_len = e.replacement.chars().count() as i64;
            if col0 < new_start + new_len {
                return (line, e.column + 1);
            }
            delta += new_len - i64::from(e.old_chars);
        }
        (line, u32::try_from(col0 - delta + 1).unwrap_or(1).max(1))
    }

    /// Where the value at `path` (keys joined by '.', list items by index) was written;
    /// for a mapping or list, where its key was.
    pub fn value_at(&self, path: &str) -> Option<Pos> {
        self.values
            .get(path)
            .or_else(|| self.keys.get(path))
            .copied()
    }

    /// Where the key ending `path` was written.
    pub fn key_at(&self, path: &str) -> Option<Pos> {
        self.keys
            .get(path)
            .or_else(|| self.values.get(path))
            .copied()
    }

    /// `text` with every substituted value replaced by the words that name its source.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (value, label) in &self.secrets {
            // Two characters are no secret, and replacing them would garble messages.
            if value.chars().count() >= 3 && out.contains(value.as_str()) {
                out = out.replace(value.as_str(), label);
            }
        }
        out
    }

    /// Whether anything was substituted (a value may then hold a secret).
    pub fn has_secrets(&self) -> bool {
        !self.secrets.is_empty()
    }
}

/// Rewrites `text` (the file at `base`/...; relative `KEY_file` paths are taken from
/// `base`). A document the YAML parser rejects is returned unchanged: serde reports it.
pub fn expand(text: &str, base: &Path, sources: &Sources) -> ConfigText {
    let mut w = Walker {
        text,
        base,
        sources,
        stack: Vec::new(),
        out: ConfigText::default(),
    };
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else {
            w.out.edits.clear();
            w.out.problems.clear();
            w.out.secrets.clear();
            break;
        };
        w.event(event, span);
    }
    let mut out = w.out;
    out.edits.sort_by_key(|e| e.start_byte);
    let mut rewritten = String::with_capacity(text.len());
    let mut at = 0;
    for e in &out.edits {
        rewritten.push_str(&text[at..e.start_byte]);
        rewritten.push_str(&e.replacement);
        at = e.end_byte;
    }
    rewritten.push_str(&text[at..]);
    out.text = rewritten;
    // The longest first, so that a value holding another is named whole.
    out.secrets
        .sort_by_key(|(v, _)| std::cmp::Reverse(v.chars().count()));
    out
}

/// Where every key and value of `text` is written, substituting nothing (for checks that
/// run on a configuration already loaded and point back into its file).
pub fn positions(text: &str) -> ConfigText {
    let none = |_: &str| None;
    let unread = |_: &Path| Err(std::io::Error::from(std::io::ErrorKind::NotFound));
    expand(
        text,
        Path::new("."),
        &Sources {
            env: &none,
            read: &unread,
        },
    )
}

enum Frame {
    Map {
        path: String,
        /// The key whose value comes next (None: a key comes next).
        key: Option<Box<Key>>,
        seen: Vec<Key>,
    },
    Seq {
        path: String,
        index: usize,
    },
}

#[derive(Clone)]
struct Key {
    name: String,
    pos: Pos,
    span: Span,
    /// For `token_file`: `token`.
    file_of: Option<&'static str>,
    /// The edits made for this entry (to undo when it conflicts).
    edits: Vec<usize>,
}

struct Walker<'t, 's> {
    text: &'t str,
    base: &'t Path,
    sources: &'t Sources<'s>,
    stack: Vec<Frame>,
    out: ConfigText,
}

fn pos_of(span: &Span) -> Pos {
    let line = u32::try_from(span.start.line()).unwrap_or(u32::MAX);
    let column = u32::try_from(span.start.col() + 1).unwrap_or(u32::MAX);
    let width = if span.end.line() == span.start.line() {
        span.end.col().saturating_sub(span.start.col()).max(1)
    } else {
        1
    };
    Pos {
        line,
        column,
        width: u32::try_from(width).unwrap_or(1),
    }
}

fn join(path: &str, segment: &str) -> String {
    if path.is_empty() {
        segment.to_owned()
    } else {
        format!("{path}.{segment}")
    }
}

impl Walker<'_, '_> {
    /// The path of the node that starts now, if it is a value (not a key).
    fn child_path(&self) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some(Frame::Map { key: None, .. }) => None,
            Some(Frame::Map {
                path, key: Some(k), ..
            }) => Some(join(path, k.file_of.unwrap_or(&k.name))),
            Some(Frame::Seq { path, index }) => Some(join(path, &index.to_string())),
        }
    }

    /// A node (value) ended: the parent moves on.
    fn done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, seen, .. }) => {
                if let Some(k) = key.take() {
                    seen.push(*k);
                }
            }
            Some(Frame::Seq { index, .. }) => *index += 1,
            None => {}
        }
    }

    fn event(&mut self, event: Event<'_>, span: Span) {
        match event {
            Event::Scalar(value, style, ..) => {
                let Some(path) = self.child_path() else {
                    self.key(&value, span);
                    return;
                };
                self.out.values.insert(path.clone(), pos_of(&span));
                self.scalar(&value, style, span);
                self.done();
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                // A mapping or list used as a key is not something hotline.yaml has.
                let path = self.child_path().unwrap_or_default();
                self.stack
                    .push(if matches!(event, Event::MappingStart(..)) {
                        Frame::Map {
                            path,
                            key: None,
                            seen: Vec::new(),
                        }
                    } else {
                        Frame::Seq { path, index: 0 }
                    });
            }
            Event::MappingEnd => {
                if let Some(Frame::Map { seen, .. }) = self.stack.pop() {
                    self.conflicts(&seen);
                }
                self.done();
            }
            Event::SequenceEnd => {
                self.stack.pop();
                self.done();
            }
            Event::Alias(..) => {
                if self.child_path().is_none() {
                    // An alias as a key: keep the alternation.
                    if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                        *key = Some(Box::new(Key {
                            name: String::new(),
                            pos: pos_of(&span),
                            span,
                            file_of: None,
                            edits: Vec::new(),
                        }));
                    }
                    return;
                }
                self.done();
            }
            _ => {}
        }
    }

    fn key(&mut self, name: &str, span: Span) {
        let file_of = name
            .strip_suffix("_file")
            .and_then(|stem| FILE_KEYS.iter().find(|k| **k == stem).copied());
        let Some(Frame::Map { path, key, .. }) = self.stack.last_mut() else {
            return;
        };
        let full = join(path, file_of.unwrap_or(name));
        let pos = pos_of(&span);
        self.out.keys.insert(full, pos);
        *key = Some(Box::new(Key {
            name: name.to_owned(),
            pos,
            span,
            file_of,
            edits: Vec::new(),
        }));
    }

    fn scalar(&mut self, value: &str, style: ScalarStyle, span: Span) {
        let one_line = span.start.line() == span.end.line()
            && matches!(
                style,
                ScalarStyle::Plain | ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted
            );
        let raw = self.raw(&span).unwrap_or_default();
        let mut current = value.to_owned();
        let mut changed = false;
        if value.contains('$') {
            if !one_line {
                if value.contains("${") {
                    self.out.problems.push(Problem {
                        pos: pos_of(&span),
                        message: "'${NAME}' is replaced only in values written on one line"
                            .to_owned(),
                        help: Some("write the value on one line, in quotes if need be".to_owned()),
                    });
                }
            } else {
                match substitute(value, self.sources.env) {
                    Ok((text, used)) => {
                        changed = text != value;
                        for (name, v) in used {
                            self.out
                                .secrets
                                .push((v, format!("the value of ${{{name}}}")));
                        }
                        current = text;
                    }
                    Err(e) => {
                        let mut pos = pos_of(&span);
                        if let Some(i) = raw.find(&e.needle) {
                            pos.column += raw[..i].chars().count() as u32;
                            pos.width = e.needle.chars().count() as u32;
                        }
                        self.out.problems.push(Problem {
                            pos,
                            message: e.message,
                            help: e.help,
                        });
                        return;
                    }
                }
            }
        }
        let file_key = match self.stack.last() {
            Some(Frame::Map { key: Some(k), .. }) => k.file_of.map(|stem| (stem, k.clone())),
            _ => None,
        };
        if let Some((stem, key)) = file_key {
            let path = self.base.join(&current);
            match (self.sources.read)(&path) {
                Ok(content) => {
                    let content = content.trim_end_matches(['\n', '\r']).to_owned();
                    self.out
                        .secrets
                        .push((content.clone(), format!("the content of {current}")));
                    let key_edit = self.edit(&key.span, stem.to_owned());
                    let value_edit = if one_line {
                        self.edit(&span, quoted(&content))
                    } else {
                        None
                    };
                    if !one_line {
                        self.out.problems.push(Problem {
                            pos: pos_of(&span),
                            message: format!("'{}': expected a path on one line", key.name),
                            help: None,
                        });
                    }
                    if let Some(Frame::Map { key: Some(k), .. }) = self.stack.last_mut() {
                        k.edits.extend(key_edit.into_iter().chain(value_edit));
                    }
                }
                Err(e) => self.out.problems.push(Problem {
                    pos: pos_of(&span),
                    // As written: the folder it was taken from is the configuration's.
                    message: format!("{}: cannot read '{current}': {e}", key.name),
                    help: Some(format!(
                        "'{}' names a file holding the {stem} (relative paths are taken from the configuration's folder); the user hotline runs as must be able to read it",
                        key.name
                    )),
                }),
            }
            return;
        }
        if changed && one_line {
            // Plain when it reads the same plain, so that `"${PORT}"` (quoted because `{`
            // means something in YAML) can still be a number.
            let replacement = if plain_safe(&current) {
                current
            } else {
                quoted(&current)
            };
            self.edit(&span, replacement);
        }
    }

    /// The source text of a span, when it holds on one line.
    fn raw(&self, span: &Span) -> Option<&str> {
        let (a, b) = (span.start.byte_offset()?, span.end.byte_offset()?);
        self.text.get(a..b)
    }

    fn edit(&mut self, span: &Span, replacement: String) -> Option<usize> {
        if span.start.line() != span.end.line() {
            return None;
        }
        let (start_byte, end_byte) = (span.start.byte_offset()?, span.end.byte_offset()?);
        self.out.edits.push(Edit {
            line: u32::try_from(span.start.line()).ok()?,
            column: u32::try_from(span.start.col()).ok()?,
            old_chars: u32::try_from(span.end.col() - span.start.col()).ok()?,
            start_byte,
            end_byte,
            replacement,
        });
        Some(self.out.edits.len() - 1)
    }

    /// `token` and `token_file` in one mapping: one of them must go. The `_file` entry is
    /// left out of what serde reads (spaces, on its line), so nothing else is reported.
    fn conflicts(&mut self, seen: &[Key]) {
        let names: BTreeSet<&str> = seen.iter().map(|k| k.name.as_str()).collect();
        for k in seen {
            let Some(stem) = k.file_of else { continue };
            if !names.contains(stem) {
                continue;
            }
            self.out.problems.push(Problem {
                pos: k.pos,
                message: format!("both '{stem}' and '{}' are given", k.name),
                help: Some(format!(
                    "keep one: '{stem}' holds the value, '{}' names a file holding it",
                    k.name
                )),
            });
            let [key_edit, value_edit] = k.edits[..] else {
                continue;
            };
            let (start, end) = (
                self.out.edits[key_edit].start_byte,
                self.out.edits[value_edit].end_byte,
            );
            let line = self.out.edits[key_edit].line;
            if self.out.edits[value_edit].line != line {
                continue;
            }
            let chars = self.text[start..end].chars().count();
            let blank = Edit {
                line,
                column: self.out.edits[key_edit].column,
                old_chars: chars as u32,
                start_byte: start,
                end_byte: end,
                replacement: " ".repeat(chars),
            };
            self.out.edits[key_edit] = blank;
            // Emptied rather than removed: other entries hold indices into the list.
            self.out.edits[value_edit] = Edit {
                line,
                column: self.out.edits[value_edit].column,
                old_chars: 0,
                start_byte: end,
                end_byte: end,
                replacement: String::new(),
            };
        }
    }
}

/// What went wrong in a `${...}`, and the text to point at.
#[derive(Debug, PartialEq, Eq)]
pub struct SubstError {
    pub needle: String,
    pub message: String,
    pub help: Option<String>,
}

/// Replaces `${NAME}` and `${NAME:-default}` (the default when NAME is unset or empty);
/// `$${` stands for a literal `${`, and any other `$` is kept. Returns the text and the
/// variables used with their values.
pub fn substitute(
    value: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<(String, String)>), SubstError> {
    let mut out = String::with_capacity(value.len());
    let mut used = Vec::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix("${") {
            out.push_str("${");
            rest = r;
            continue;
        }
        let Some(inner) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(close) = inner.find('}') else {
            return Err(SubstError {
                needle: "${".to_owned(),
                message: "'${' without its closing '}'".to_owned(),
                help: Some("write ${NAME}, or $${ for a literal '${'".to_owned()),
            });
        };
        let body = &inner[..close];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(SubstError {
                needle: format!("${{{body}}}"),
                message: format!(
                    "'${{{body}}}': expected an environment variable name (letters, digits and '_')"
                ),
                help: Some(
                    "write ${NAME} or ${NAME:-default}, or $${ for a literal '${'".to_owned(),
                ),
            });
        }
        match (
            env(name).filter(|v| default.is_none() || !v.is_empty()),
            default,
        ) {
            (Some(v), _) => {
                out.push_str(&v);
                used.push((name.to_owned(), v));
            }
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(SubstError {
                    needle: format!("${{{name}}}"),
                    message: format!("the environment variable '{name}' is not set"),
                    help: Some(format!(
                        "set it where hotline starts (systemd: Environment= or EnvironmentFile=), or give a default: ${{{name}:-VALUE}}"
                    )),
                });
            }
        }
        rest = &inner[close + 1..];
    }
    out.push_str(rest);
    Ok((out, used))
}

/// Whether `s` written plain is a number or the same text (not `null`, `true`, ...).
fn plain_safe(s: &str) -> bool {
    const WORDS: &[&str] = &["null", "true", "false", "yes", "no", "on", "off", "y", "n"];
    !s.is_empty()
        && !WORDS.iter().any(|w| s.eq_ignore_ascii_case(w))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '+'))
}

/// `s` as a YAML double-quoted scalar.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "DB_URL" => Some("postgres://u:pw@db/hotline".to_owned()),
            "PORT" => Some("5070".to_owned()),
            "EMPTY" => Some(String::new()),
            "QUOTE" => Some("a\"b\\c".to_owned()),
            _ => None,
        }
    }

    fn files(path: &Path) -> std::io::Result<String> {
        match path.to_str() {
            Some("/etc/hotline/secrets/token") => Ok("s3cret-token\n".to_owned()),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "No such file or directory",
            )),
        }
    }

    fn run(text: &str) -> ConfigText {
        expand(
            text,
            Path::new("/etc/hotline"),
            &Sources {
                env: &env,
                read: &files,
            },
        )
    }

    #[test]
    fn substitutes_variables_with_defaults_and_escapes() {
        let e = |v: &str| substitute(v, &env).map(|(t, _)| t);
        assert_eq!(e("${DB_URL}").unwrap(), "postgres://u:pw@db/hotline");
        assert_eq!(e("x${PORT}y$z").unwrap(), "x5070y$z");
        assert_eq!(e("$${PORT}").unwrap(), "${PORT}");
        assert_eq!(e("${NOPE:-dflt}").unwrap(), "dflt");
        assert_eq!(e("${EMPTY:-dflt}").unwrap(), "dflt");
        assert_eq!(e("${EMPTY}").unwrap(), "");
        assert_eq!(e("${NOPE}").unwrap_err().needle, "${NOPE}");
        assert!(e("${PORT").unwrap_err().message.contains("closing"));
        assert!(e("${1X}").unwrap_err().message.contains("variable name"));
    }

    #[test]
    fn keeps_lines_and_maps_columns_back() {
        let text = "sip: { listen: [\"udp:127.0.0.1:${PORT}\"], t1: 0 }\nrecords: { store: \"${DB_URL}\", keep: x }\n";
        let t = run(text);
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        assert_eq!(
            t.text,
            "sip: { listen: [\"udp:127.0.0.1:5070\"], t1: 0 }\nrecords: { store: \"postgres://u:pw@db/hotline\", keep: x }\n"
        );
        // `keep`'s value, after the longer URL, is found where it was written.
        let keep_new = t.text.lines().nth(1).unwrap().find("x }").unwrap() as u32 + 1;
        let keep_old = text.lines().nth(1).unwrap().find("x }").unwrap() as u32 + 1;
        assert_eq!(t.original(2, keep_new), (2, keep_old));
        // Inside the substituted value: its start.
        assert_eq!(t.original(2, 25), (2, 19));
        assert_eq!(t.value_at("records.keep").unwrap().column, keep_old);
        assert_eq!(
            t.redact("found 'postgres://u:pw@db/hotline'"),
            "found 'the value of ${DB_URL}'"
        );
    }

    #[test]
    fn plain_numbers_stay_plain_and_odd_values_are_quoted() {
        let t = run(
            "sip: { max_calls: \"${PORT}\", user_agent: '${QUOTE}' }\nrtp:\n  ports: ${PORT}\n",
        );
        assert_eq!(
            t.text,
            "sip: { max_calls: 5070, user_agent: \"a\\\"b\\\\c\" }\nrtp:\n  ports: 5070\n"
        );
        let t = run("admin: { token: \"${EMPTY:-null}\" }\n");
        assert_eq!(t.text, "admin: { token: \"null\" }\n");
    }

    #[test]
    fn an_unset_variable_is_reported_where_it_is_written() {
        let t = run("admin:\n  token: \"Bearer ${ADMIN_TOKEN}\"\n");
        assert_eq!(t.problems.len(), 1);
        let p = &t.problems[0];
        assert_eq!((p.pos.line, p.pos.column, p.pos.width), (2, 18, 14));
        assert!(
            p.message.contains("'ADMIN_TOKEN' is not set"),
            "{}",
            p.message
        );
    }

    #[test]
    fn file_keys_read_the_file_and_are_checked() {
        let t = run("admin: { token_file: secrets/token }\n");
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        assert_eq!(t.text, "admin: { token: \"s3cret-token\" }\n");
        assert_eq!(t.value_at("admin.token").unwrap().column, 22);
        assert!(!t.redact("x s3cret-token y").contains("s3cret"));

        let t = run("agents:\n  alice:\n    password_file: /nowhere\n");
        assert_eq!(t.problems.len(), 1);
        assert_eq!(t.problems[0].pos.line, 3);
        assert_eq!(t.problems[0].pos.column, 20);
        assert!(t.problems[0].message.contains("cannot read '/nowhere'"));

        let t = run("admin:\n  token: x\n  token_file: secrets/token\n");
        assert_eq!(t.problems.len(), 1, "{:?}", t.problems);
        assert_eq!(t.problems[0].pos.line, 3);
        assert!(
            t.problems[0]
                .message
                .contains("both 'token' and 'token_file'")
        );
        assert_eq!(t.text, "admin:\n  token: x\n                           \n");
        // Keys that hold no secret have no file form.
        let t = run("flows_file: x\n");
        assert_eq!(t.text, "flows_file: x\n");
    }
}
