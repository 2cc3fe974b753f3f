//! Flow templates: an arbitrary template text is checked and rendered (fuel bounds its
//! work), and a caller value from the input is rendered into a fixed `http` URL. Checks
//! that the caller's value arrives percent-encoded, as one piece of the path and of the
//! query, whatever its bytes.
#![no_main]

use chrono::TimeZone;
use hotline_core::flow::template::{Scope, Templates};
use hotline_fuzz::{pieces, scope_vars};
use libfuzzer_sys::fuzz_target;

const URL: &str = "{{ config.crm_url }}/customers/{{ caller }}/orders?n={{ caller }}";

fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let parts = pieces(data, 2);
    let template = String::from_utf8_lossy(parts[0]);
    let caller = String::from_utf8_lossy(parts.get(1).copied().unwrap_or_default());
    let (vars, config) = scope_vars(&caller);
    let now = chrono::Utc
        .with_ymd_and_hms(2026, 11, 23, 9, 0, 0)
        .single()
        .expect("time");
    let scope = Scope {
        vars: &vars,
        config: &config,
        now,
    };
    let mut t = Templates::new();
    if t.add(&template).is_ok() {
        let _ = t.render(&template, scope);
        let _ = t.value(&template, scope);
    }
    if t.add_url(&template).is_ok() {
        let _ = t.render_url(&template, scope);
    }
    if t.add_condition(&template).is_ok() {
        let _ = t.condition(&template, scope);
    }

    t.add_url(URL).expect("the fixed URL template");
    let rendered = t.render_url(URL, scope);
    if caller == "." || caller == ".." {
        assert!(
            rendered.is_err(),
            "a dot segment was let through: {rendered:?}"
        );
    } else {
        let e = encoded(&caller);
        let want = format!("http://crm.local/customers/{e}/orders?n={e}");
        let got = rendered.expect("renders").value;
        let cut = want
            .len()
            .min(hotline_core::flow::template::MAX_RENDERED_BYTES);
        assert_eq!(got, want[..cut], "the caller's value changed the URL");
    }
});
