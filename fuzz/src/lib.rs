//! Helpers shared by the fuzz targets in `fuzz_targets/`: cutting one input into several
//! messages or operations, and the fixed scope a template is rendered with.
//!
//! Owns nothing the engine uses; it must not hold assertions of its own (each target
//! states what it checks) nor read files, the network or the clock beyond the one base
//! instant a state-machine target counts from.

use std::collections::BTreeMap;

/// The separator between messages in a multi-message input: a line no SIP message has.
pub const SEPARATOR: &[u8] = b"\n---\n";

/// Splits an input into the pieces between [`SEPARATOR`]s (at most `max`).
pub fn pieces(data: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() < max {
        match find(rest, SEPARATOR) {
            Some(i) => {
                out.push(&rest[..i]);
                rest = &rest[i + SEPARATOR.len()..];
            }
            None => {
                out.push(rest);
                break;
            }
        }
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads bytes off the front of an input; runs dry as zeros, so every input is usable.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }
}

/// The variables a template target renders with: a caller, collected digits and a
/// nested answer, beside the `config` map.
pub fn scope_vars(
    caller: &str,
) -> (
    BTreeMap<String, serde_json::Value>,
    BTreeMap<String, serde_json::Value>,
) {
    let mut vars = BTreeMap::new();
    vars.insert("caller".to_owned(), serde_json::Value::from(caller));
    vars.insert("order".to_owned(), serde_json::Value::from("12345678"));
    vars.insert(
        "result".to_owned(),
        serde_json::json!({ "eta": "2026-11-25", "items": [3, 4], "ok": true }),
    );
    let mut config = BTreeMap::new();
    config.insert(
        "crm_url".to_owned(),
        serde_json::Value::from("http://crm.local"),
    );
    (vars, config)
}
