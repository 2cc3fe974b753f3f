//! Filling `{{ name }}` and `{{ result.eta }}` into text from the call's variables.
//!
//! Owns variable substitution only: the subset of the Jinja syntax that names a variable
//! or a field of one. Filters, operators and conditions are not evaluated here; such a
//! template is reported as unsupported rather than guessed at.

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("'{{{{' without a closing '}}}}' in '{0}'")]
    Unclosed(String),
    #[error(
        "cannot evaluate '{{{{ {0} }}}}': only variable names like order or result.eta are supported"
    )]
    Unsupported(String),
}

/// Renders `template`; a variable that is not set renders as empty text (as in Jinja).
pub fn render(template: &str, vars: &BTreeMap<String, Value>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(rest.get(..open).unwrap_or(""));
        let after = rest.get(open + 2..).unwrap_or("");
        let Some(close) = after.find("}}") else {
            return Err(TemplateError::Unclosed(template.to_owned()));
        };
        let expr = after.get(..close).unwrap_or("").trim();
        if !is_path(expr) {
            return Err(TemplateError::Unsupported(expr.to_owned()));
        }
        if let Some(v) = lookup(vars, expr) {
            push_value(&mut out, v);
        }
        rest = after.get(close + 2..).unwrap_or("");
    }
    out.push_str(rest);
    Ok(out)
}

fn is_path(expr: &str) -> bool {
    !expr.is_empty()
        && expr.split('.').all(|seg| {
            let mut chars = seg.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

fn lookup<'a>(vars: &'a BTreeMap<String, Value>, path: &str) -> Option<&'a Value> {
    let mut segs = path.split('.');
    let mut v = vars.get(segs.next()?)?;
    for seg in segs {
        v = match v {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

fn push_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, Value> {
        let mut v = BTreeMap::new();
        v.insert("order".to_owned(), Value::from("12345678"));
        v.insert(
            "result".to_owned(),
            serde_json::json!({ "eta": "2026-11-25", "items": [3, 4], "ok": true }),
        );
        v
    }

    #[test]
    fn fills_variables_and_fields() {
        let v = vars();
        assert_eq!(render("no template", &v).as_deref(), Ok("no template"));
        assert_eq!(render("{{ order }}", &v).as_deref(), Ok("12345678"));
        assert_eq!(
            render("eta {{result.eta}}!", &v).as_deref(),
            Ok("eta 2026-11-25!")
        );
        assert_eq!(render("{{ result.items.1 }}", &v).as_deref(), Ok("4"));
        assert_eq!(render("{{ result.ok }}", &v).as_deref(), Ok("true"));
        assert_eq!(render("[{{ unknown }}]", &v).as_deref(), Ok("[]"));
    }

    #[test]
    fn refuses_what_it_cannot_evaluate() {
        let v = vars();
        assert_eq!(
            render("{{ order | upper }}", &v),
            Err(TemplateError::Unsupported("order | upper".to_owned()))
        );
        assert!(matches!(
            render("{{ order", &v),
            Err(TemplateError::Unclosed(_))
        ));
    }
}
