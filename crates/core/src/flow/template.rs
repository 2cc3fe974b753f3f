//! Jinja templates and conditions of the flow files, on the `minijinja` engine.
//!
//! Owns the engine's setup (lenient undefined values, no HTML escaping, a fuel limit), the
//! check of a template or condition at load time (syntax, with the position inside the
//! text, and unknown filters, tests and functions) and rendering with a call's variables.
//! It does not know where a template is written in a flow file (the checker maps
//! positions) nor which variables a call has (the interpreter passes a [`Scope`]).
//!
//! Templates are compiled once, when the flows load, into the [`Templates`] of the flow
//! set, keyed by their text; identical texts share one compiled template. Conditions are
//! checked at load and compiled again when evaluated: they are short, and a compiled
//! expression borrows the engine, so it cannot be kept beside it.
//!
//! Undefined variables render as empty text and are false in conditions (`result.eta`
//! with no `result` is empty too); the renderer lists the ones a template used, so the
//! interpreter can note them in the call's story.
//!
//! URL templates (an `http` step's `url`) are compiled apart, by [`Templates::add_url`],
//! in an engine whose every `{{ value }}` is percent-encoded: the caller's number and the
//! digits they typed reach the URL as one piece of a path or query, never as `/`, `?`,
//! `#` or `&` that would change which resource the back end serves. Values of
//! `config.NAME` (written by the admin in hotline.yaml) and values passed through the
//! `safe` filter are inserted as written; a value that is exactly `.` or `..` fails the
//! rendering, because no encoding stops a URL parser from reading it as a path step.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use minijinja::value::{Serde, Value as JinjaValue};
use minijinja::{AutoEscape, Environment, Error as JinjaError, ErrorKind, Output, State};
use minijinja::{UndefinedBehavior, escape_formatter};
use serde_json::Value;

/// Instructions one template or condition may run; ends a runaway loop in a template.
pub const FUEL: u64 = 50_000;
/// Rendered text longer than this is cut: a template must not fill memory.
pub const MAX_RENDERED_BYTES: usize = 64 * 1024;

/// A template or condition that cannot be used. `line` and `column` (1-based, characters)
/// point inside the template's own text when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Characters the problem covers, at least 1.
    pub width: usize,
}

/// The variables a template sees: the call's own, `now` and `config`.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Variables set by steps and by the engine (`caller`, `dialed`, `language`, `call_id`).
    pub vars: &'a BTreeMap<String, Value>,
    /// `vars:` of hotline.yaml, seen as `config.NAME`.
    pub config: &'a BTreeMap<String, Value>,
    /// The wall-clock time now, seen as `now` (RFC 3339, UTC).
    pub now: DateTime<Utc>,
}

impl Scope<'_> {
    fn to_value(self) -> JinjaValue {
        let mut map: BTreeMap<String, JinjaValue> = self
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), JinjaValue::from(Serde(v))))
            .collect();
        map.insert("now".to_owned(), JinjaValue::from(format_now(self.now)));
        map.insert("config".to_owned(), JinjaValue::from(Serde(self.config)));
        JinjaValue::from(map)
    }

    /// The scope of a URL template: `config` texts are the admin's own and marked safe, so
    /// `{{ config.crm_url }}/orders` keeps its `://` and slashes.
    fn to_url_value(self) -> JinjaValue {
        let mut map: BTreeMap<String, JinjaValue> = self
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), JinjaValue::from(Serde(v))))
            .collect();
        map.insert("now".to_owned(), JinjaValue::from(format_now(self.now)));
        let config: BTreeMap<String, JinjaValue> = self
            .config
            .iter()
            .map(|(k, v)| (k.clone(), trusted(v)))
            .collect();
        map.insert("config".to_owned(), JinjaValue::from(config));
        JinjaValue::from(map)
    }

    /// Whether a dotted path (`result.eta`, `items.0`) names a value in this scope.
    fn has(&self, path: &str) -> bool {
        let mut segs = path.split('.');
        let Some(first) = segs.next() else {
            return false;
        };
        let mut v: &Value = match first {
            "now" => return segs.next().is_none(),
            "config" => match segs.next() {
                None => return true,
                Some(name) => match self.config.get(name) {
                    Some(v) => v,
                    None => return false,
                },
            },
            name => match self.vars.get(name) {
                Some(v) => v,
                None => return false,
            },
        };
        for seg in segs {
            v = match v {
                Value::Object(m) => match m.get(seg) {
                    Some(x) => x,
                    None => return false,
                },
                Value::Array(a) => match seg.parse::<usize>().ok().and_then(|i| a.get(i)) {
                    Some(x) => x,
                    None => return false,
                },
                _ => return false,
            };
        }
        true
    }
}

/// `now` as templates see it: `2026-11-23T09:00:00Z`. Text in this form sorts in time
/// order, so `now >= "2026-12-24"` works.
pub fn format_now(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// What a rendering gave, with the variables it used that were not set.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered<T> {
    pub value: T,
    pub undefined: Vec<String>,
}

/// Whether a text holds template syntax at all; plain text needs no engine.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// The expression of a text that is exactly one `{{ expression }}`, so its value can keep
/// its type (a number, a list, a mapping) instead of becoming text.
pub fn single_expression(text: &str) -> Option<&str> {
    let inner = text
        .trim()
        .strip_prefix("{{")?
        .strip_suffix("}}")?
        .trim_start_matches('-')
        .trim_end_matches('-');
    (!inner.contains("{{") && !inner.contains("}}") && !inner.trim().is_empty()).then_some(inner)
}

fn new_environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Admins write `{{ result.eta }}` before knowing whether the lookup answered; an
    // undefined value renders as empty text rather than failing the call.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    // URLs and spoken values are not HTML; a template ending in ".html" must not escape.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(FUEL));
    env.set_debug(true);
    // The built-in filter keeps `/`; this one encodes every reserved byte, and its result
    // is final, so a URL template does not encode it a second time.
    env.add_filter("urlencode", urlencode_filter);
    env
}

/// `{{ value | urlencode }}`: a mapping becomes `key=value&...`, anything else its text,
/// percent-encoded; undefined and none give empty text.
fn urlencode_filter(value: &JinjaValue) -> Result<JinjaValue, JinjaError> {
    if value.is_undefined() || value.is_none() {
        return Ok(JinjaValue::from_safe_string(String::new()));
    }
    if value.kind() != minijinja::value::ValueKind::Map {
        return Ok(JinjaValue::from_safe_string(url_encode(&value.to_string())));
    }
    let mut pairs = Vec::new();
    for k in value.try_iter()? {
        let v = value.get_item(&k)?;
        if v.is_none() || v.is_undefined() {
            continue;
        }
        pairs.push(format!(
            "{}={}",
            url_encode(&k.to_string()),
            url_encode(&v.to_string())
        ));
    }
    Ok(JinjaValue::from_safe_string(pairs.join("&")))
}

/// A config value for a URL template: its texts, at any depth, are inserted unencoded.
fn trusted(v: &Value) -> JinjaValue {
    match v {
        Value::String(s) => JinjaValue::from_safe_string(s.clone()),
        Value::Array(items) => JinjaValue::from(items.iter().map(trusted).collect::<Vec<_>>()),
        Value::Object(m) => JinjaValue::from(
            m.iter()
                .map(|(k, v)| (k.clone(), trusted(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
        other => JinjaValue::from(Serde(other)),
    }
}

/// Bytes a URL value keeps as they are: RFC 3986's unreserved characters. Everything else,
/// `/ ? # & = + % :` and spaces included, is percent-encoded.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodes one value for a URL (UTF-8, upper-case hex).
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if is_unreserved(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// How a URL template writes `{{ value }}`: percent-encoded unless marked safe.
fn url_formatter(
    out: &mut Output,
    state: &mut State,
    value: &JinjaValue,
) -> Result<(), JinjaError> {
    if value.is_safe() || value.is_undefined() || value.is_none() {
        return escape_formatter(out, state, value);
    }
    let text = value.to_string();
    // WHATWG URL parsers read `.`, `..`, `%2e` and `%2E%2e` alike as path steps, so no
    // encoding of these two values keeps them inside their path segment.
    if text == "." || text == ".." {
        return Err(JinjaError::new(
            ErrorKind::InvalidOperation,
            format!("the value '{text}' would change the URL's path"),
        ));
    }
    out.write_str(&url_encode(&text))
        .map_err(|e| JinjaError::new(ErrorKind::WriteFailure, e.to_string()))
}

/// Whether a URL template inserts something raw with the `safe` filter; `hotline check`
/// warns about it, as a caller's value passed through it can rewrite the URL.
pub fn uses_safe_filter(text: &str) -> bool {
    let b = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find("safe") {
        let at = from + i;
        from = at + 4;
        let before = text[..at].trim_end();
        let after_ok = b
            .get(at + 4)
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'));
        if before.ends_with('|') && after_ok {
            return true;
        }
    }
    false
}

/// Every template of a flow set, compiled, with the variables each one reads.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    /// The same engine, writing every value percent-encoded: for URL templates.
    url_env: Environment<'static>,
    /// Template or condition text to the variable paths it reads (`result.eta`).
    reads: HashMap<String, Vec<String>>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Self {
        let mut url_env = new_environment();
        url_env.set_formatter(url_formatter);
        Self {
            env: new_environment(),
            url_env,
            reads: HashMap::new(),
        }
    }

    /// Checks a URL template (an `http` step's `url`) and keeps it compiled for
    /// [`Templates::render_url`]. Returns the variable paths it reads.
    pub fn add_url(&mut self, source: &str) -> Result<Vec<String>, TemplateError> {
        let reads = self.add(source)?;
        if is_template(source) && self.url_env.get_template(source).is_err() {
            self.url_env
                .add_template_owned(source.to_owned(), source.to_owned())
                .map_err(|e| error_in(source, &e, "the template does not parse"))?;
        }
        Ok(reads)
    }

    /// Renders a URL template added by [`Templates::add_url`]: every value is
    /// percent-encoded except `config.NAME` texts and values passed through `safe`.
    pub fn render_url(&self, source: &str, scope: Scope<'_>) -> Result<Rendered<String>, String> {
        if !is_template(source) {
            return Ok(Rendered {
                value: source.to_owned(),
                undefined: Vec::new(),
            });
        }
        let t = self
            .url_env
            .get_template(source)
            .map_err(|e| plain_error(&e))?;
        let mut text = t
            .render(scope.to_url_value())
            .map_err(|e| plain_error(&e))?;
        truncate(&mut text);
        Ok(Rendered {
            value: text,
            undefined: self.undefined(source, scope),
        })
    }

    /// Checks a template and keeps it compiled. Returns the variable paths it reads.
    pub fn add(&mut self, source: &str) -> Result<Vec<String>, TemplateError> {
        if let Some(reads) = self.reads.get(source) {
            return Ok(reads.clone());
        }
        let reads = check_template(&self.env, source)?;
        if is_template(source) {
            self.env
                .add_template_owned(source.to_owned(), source.to_owned())
                .map_err(|e| error_in(source, &e, "the template does not parse"))?;
        }
        if let Some(expr) = single_expression(source) {
            check_expression(&self.env, expr)?;
        }
        self.reads.insert(source.to_owned(), reads.clone());
        Ok(reads)
    }

    /// Checks a condition (a Jinja expression such as `result.status == "shipped"`).
    /// Returns the variable paths it reads.
    pub fn add_condition(&mut self, source: &str) -> Result<Vec<String>, TemplateError> {
        if let Some(reads) = self.reads.get(source) {
            return Ok(reads.clone());
        }
        let reads = check_expression(&self.env, source)?;
        self.reads.insert(source.to_owned(), reads.clone());
        Ok(reads)
    }

    /// Renders a template added before (plain text is returned as it is).
    pub fn render(&self, source: &str, scope: Scope<'_>) -> Result<Rendered<String>, String> {
        if !is_template(source) {
            return Ok(Rendered {
                value: source.to_owned(),
                undefined: Vec::new(),
            });
        }
        let t = self.env.get_template(source).map_err(|e| plain_error(&e))?;
        let mut text = t.render(scope.to_value()).map_err(|e| plain_error(&e))?;
        truncate(&mut text);
        Ok(Rendered {
            value: text,
            undefined: self.undefined(source, scope),
        })
    }

    /// A template's value: the value itself when the template is one `{{ expression }}`
    /// (an undefined one is empty text), else the rendered text.
    pub fn value(&self, source: &str, scope: Scope<'_>) -> Result<Rendered<Value>, String> {
        let Some(expr) = single_expression(source) else {
            return self.render(source, scope).map(|r| Rendered {
                value: Value::String(r.value),
                undefined: r.undefined,
            });
        };
        let v = self.eval(expr, scope)?;
        let value = if v.is_undefined() {
            Value::String(String::new())
        } else {
            serde_json::to_value(&v).map_err(|e| e.to_string())?
        };
        Ok(Rendered {
            value,
            undefined: self.undefined(source, scope),
        })
    }

    /// Whether a condition added before holds.
    pub fn condition(&self, source: &str, scope: Scope<'_>) -> Result<Rendered<bool>, String> {
        let v = self.eval(source, scope)?;
        Ok(Rendered {
            value: v.is_true(),
            undefined: self.undefined(source, scope),
        })
    }

    fn eval(&self, expr: &str, scope: Scope<'_>) -> Result<JinjaValue, String> {
        let e = self
            .env
            .compile_expression_owned(expr.to_owned())
            .map_err(|e| plain_error(&e))?;
        e.eval(scope.to_value()).map_err(|e| plain_error(&e))
    }

    fn undefined(&self, source: &str, scope: Scope<'_>) -> Vec<String> {
        self.reads
            .get(source)
            .map(|paths| paths.iter().filter(|p| !scope.has(p)).cloned().collect())
            .unwrap_or_default()
    }
}

fn truncate(text: &mut String) {
    if text.len() > MAX_RENDERED_BYTES {
        let mut end = MAX_RENDERED_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

fn plain_error(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// Parses a template, tries it once with no variables (which finds unknown filters, tests
/// and functions) and lists the variable paths it reads.
fn check_template(env: &Environment<'static>, source: &str) -> Result<Vec<String>, TemplateError> {
    if !is_template(source) {
        return Ok(Vec::new());
    }
    let t = env
        .template_from_str(source)
        .map_err(|e| error_in(source, &e, "the template does not parse"))?;
    if let Err(e) = t.render(JinjaValue::UNDEFINED) {
        unknown_name(source, &e)?;
    }
    Ok(paths(env, t.undeclared_variables(true)))
}

fn check_expression(
    env: &Environment<'static>,
    source: &str,
) -> Result<Vec<String>, TemplateError> {
    if source.trim().is_empty() {
        return Err(TemplateError {
            message: "the condition is empty".to_owned(),
            line: None,
            column: None,
            width: 1,
        });
    }
    let e = env
        .compile_expression_owned(source.to_owned())
        .map_err(|e| error_in(source, &e, "the condition does not parse"))?;
    if let Err(err) = e.eval(JinjaValue::UNDEFINED) {
        unknown_name(source, &err)?;
    }
    Ok(paths(env, e.undeclared_variables(true)))
}

/// Turns the engine's "unknown filter/test/function" into a load error; other failures of
/// a trial with no variables depend on the call's data and are not errors.
fn unknown_name(source: &str, e: &minijinja::Error) -> Result<(), TemplateError> {
    match e.kind() {
        ErrorKind::UnknownFilter | ErrorKind::UnknownTest | ErrorKind::UnknownFunction => {
            Err(error_in(source, e, "the template cannot run"))
        }
        _ => Ok(()),
    }
}

/// The variable paths read, without the engine's own globals (`range`, `namespace`...).
fn paths(env: &Environment<'static>, set: std::collections::HashSet<String>) -> Vec<String> {
    let globals: Vec<&str> = env.globals().map(|(k, _)| k).collect();
    let mut v: Vec<String> = set
        .into_iter()
        .filter(|p| {
            let first = p.split('.').next().unwrap_or("");
            !globals.contains(&first)
        })
        .collect();
    v.sort();
    v
}

/// A load error with the position inside the template's text.
fn error_in(source: &str, e: &minijinja::Error, what: &str) -> TemplateError {
    let detail = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_owned);
    let message = format!("{what}: {detail}");
    let (line, column, width) = match e.range() {
        Some(r) => {
            let start = r.start.min(source.len());
            let before = source.get(..start).unwrap_or("");
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = before.get(line_start..).unwrap_or("").chars().count() + 1;
            let width = source
                .get(start..r.end.min(source.len()))
                .map_or(1, |s| s.chars().count().max(1));
            (Some(line), Some(column), width)
        }
        None => (e.line(), None, 1),
    };
    TemplateError {
        message,
        line,
        column,
        width,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn scope_vars() -> (BTreeMap<String, Value>, BTreeMap<String, Value>) {
        let mut v = BTreeMap::new();
        v.insert("order".to_owned(), Value::from("12345678"));
        v.insert(
            "result".to_owned(),
            serde_json::json!({ "eta": "2026-11-25", "items": [3, 4], "ok": true, "status": "shipped" }),
        );
        let mut c = BTreeMap::new();
        c.insert("support_url".to_owned(), Value::from("http://crm.local"));
        (v, c)
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0)
            .single()
            .expect("valid")
    }

    fn render(t: &mut Templates, s: &str) -> Rendered<String> {
        let (v, c) = scope_vars();
        t.add(s).expect("valid");
        t.render(
            s,
            Scope {
                vars: &v,
                config: &c,
                now: at(),
            },
        )
        .expect("renders")
    }

    #[test]
    fn fills_variables_fields_config_and_now() {
        let mut t = Templates::new();
        assert_eq!(render(&mut t, "no template").value, "no template");
        assert_eq!(render(&mut t, "{{ order }}").value, "12345678");
        assert_eq!(
            render(&mut t, "eta {{result.eta}}!").value,
            "eta 2026-11-25!"
        );
        assert_eq!(render(&mut t, "{{ result.items[1] }}").value, "4");
        // Jinja prints booleans as Python does.
        assert_eq!(render(&mut t, "{{ result.ok }}").value, "True");
        assert_eq!(render(&mut t, "{{ order | length }}").value, "8");
        assert_eq!(
            render(&mut t, "{{ config.support_url }}/x.html").value,
            "http://crm.local/x.html"
        );
        assert_eq!(render(&mut t, "{{ now }}").value, "2026-11-23T09:00:00Z");
        assert_eq!(render(&mut t, "<{{ '&' }}>").value, "<&>");
    }

    #[test]
    fn undefined_variables_render_empty_and_are_listed() {
        let mut t = Templates::new();
        let r = render(
            &mut t,
            "[{{ unknown }}|{{ result.nothing }}|{{ missing.deep.x }}]",
        );
        assert_eq!(r.value, "[||]");
        assert_eq!(r.undefined, ["missing.deep.x", "result.nothing", "unknown"]);
        let r = render(&mut t, "{% for i in result.items %}{{ i }}{% endfor %}");
        assert_eq!(r.value, "34");
        assert!(r.undefined.is_empty(), "{:?}", r.undefined);
    }

    #[test]
    fn conditions_and_typed_values() {
        let mut t = Templates::new();
        let (v, c) = scope_vars();
        let scope = Scope {
            vars: &v,
            config: &c,
            now: at(),
        };
        for (cond, want) in [
            ("result.status == \"shipped\"", true),
            ("result.items | length > 2", false),
            ("nothing.here", false),
            ("order is startingwith('123')", true),
            ("config.support_url and caller is undefined", true),
        ] {
            t.add_condition(cond).expect("valid");
            assert_eq!(
                t.condition(cond, scope).map(|r| r.value),
                Ok(want),
                "{cond}"
            );
        }
        t.add("{{ result.items }}").expect("valid");
        assert_eq!(
            t.value("{{ result.items }}", scope).map(|r| r.value),
            Ok(serde_json::json!([3, 4]))
        );
        t.add("n{{ 1 + 1 }}").expect("valid");
        assert_eq!(
            t.value("n{{ 1 + 1 }}", scope).map(|r| r.value),
            Ok(Value::from("n2"))
        );
    }

    #[test]
    fn load_errors_point_inside_the_text() {
        let mut t = Templates::new();
        let e = t.add("Hello {{ name").expect_err("unclosed");
        assert!(
            e.message.starts_with("the template does not parse: "),
            "{e:?}"
        );
        assert_eq!(e.line, Some(1));
        let e = t.add("x {{ order | upperr }}").expect_err("unknown filter");
        assert_eq!(
            e.message,
            "the template cannot run: filter upperr is unknown"
        );
        let e = t
            .add_condition("result.status = 'x'")
            .expect_err("assignment");
        assert!(
            e.message.starts_with("the condition does not parse: "),
            "{e:?}"
        );
        assert!(t.add_condition("  ").is_err());
    }

    #[test]
    fn a_runaway_loop_runs_out_of_fuel() {
        let mut t = Templates::new();
        let s = "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}";
        t.add(s).expect("parses");
        let (v, c) = scope_vars();
        let r = t.render(
            s,
            Scope {
                vars: &v,
                config: &c,
                now: at(),
            },
        );
        assert!(r.is_err());
    }

    #[test]
    fn single_expressions_are_recognised() {
        assert_eq!(single_expression("{{ a.b }}"), Some(" a.b "));
        assert_eq!(single_expression(" {{a}} "), Some("a"));
        assert_eq!(single_expression("{{ a }}{{ b }}"), None);
        assert_eq!(single_expression("x{{ a }}"), None);
        assert_eq!(single_expression("{{ }}"), None);
    }

    fn render_url(t: &mut Templates, s: &str, caller: &str) -> Result<String, String> {
        let (mut v, c) = scope_vars();
        v.insert("caller".to_owned(), Value::from(caller));
        t.add_url(s).expect("valid");
        t.render_url(
            s,
            Scope {
                vars: &v,
                config: &c,
                now: at(),
            },
        )
        .map(|r| r.value)
    }

    #[test]
    fn url_values_are_percent_encoded_but_config_and_safe_are_not() {
        let mut t = Templates::new();
        let url = "{{ config.support_url }}/customers/{{ caller }}/orders?n={{ order }}";
        assert_eq!(
            render_url(&mut t, url, "+49 30/../admin?x=1#f&y=%41").as_deref(),
            Ok(
                "http://crm.local/customers/%2B49%2030%2F..%2Fadmin%3Fx%3D1%23f%26y%3D%2541/orders?n=12345678"
            )
        );
        // Non-ASCII text is encoded as its UTF-8 bytes.
        assert_eq!(
            render_url(&mut t, "{{ config.support_url }}/{{ caller }}", "ü").as_deref(),
            Ok("http://crm.local/%C3%BC")
        );
        // `safe` is the admin's explicit way to insert text raw.
        assert_eq!(
            render_url(
                &mut t,
                "{{ config.support_url }}/{{ caller | safe }}",
                "a/b?c"
            )
            .as_deref(),
            Ok("http://crm.local/a/b?c")
        );
        // `urlencode` is not encoded a second time, and it encodes `/` too.
        assert_eq!(
            render_url(
                &mut t,
                "{{ config.support_url }}/{{ caller | urlencode }}",
                "a/b c"
            )
            .as_deref(),
            Ok("http://crm.local/a%2Fb%20c")
        );
        // The same text as an ordinary template is not encoded.
        assert_eq!(
            render(&mut t, "{{ config.support_url }}/{{ order }}/x?").value,
            "http://crm.local/12345678/x?"
        );
    }

    #[test]
    fn a_dot_segment_value_fails_the_url() {
        let mut t = Templates::new();
        for hostile in [".", ".."] {
            let r = render_url(
                &mut t,
                "{{ config.support_url }}/customers/{{ caller }}",
                hostile,
            );
            assert!(r.is_err(), "{hostile}: {r:?}");
        }
        assert_eq!(
            render_url(&mut t, "{{ config.support_url }}/c/{{ caller }}", "...").as_deref(),
            Ok("http://crm.local/c/...")
        );
    }

    #[test]
    fn the_safe_filter_is_found() {
        assert!(uses_safe_filter("{{ x | safe }}"));
        assert!(uses_safe_filter("{{ x|safe}}"));
        assert!(!uses_safe_filter("{{ unsafe_thing }}"));
        assert!(!uses_safe_filter("{{ x | safe_x }}"));
        assert!(!uses_safe_filter("http://h/safe"));
    }
}
