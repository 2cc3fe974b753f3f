//! A stand-in for the JSON Schema of flow files until the schema is generated from the
//! model's types: the top-level keys and the step action keys, so editors can already
//! complete them. Replaced by the generated `flow_schema`; it must not grow.

use serde_json::{Value, json};

/// The JSON Schema (draft 2020-12) of one flow file.
pub fn flow_schema() -> Value {
    let step_keys = [
        "play",
        "menu",
        "collect",
        "set",
        "branch",
        "hours",
        "language",
        "http",
        "record",
        "queue",
        "transfer",
        "goto",
        "hangup",
        "next",
        "tag",
        "barge_in",
        "open",
        "closed",
        "holiday",
        "priority",
        "skills",
        "on_timeout",
        "after",
        "timeout",
        "on_failure",
        "return",
    ];
    let step_properties: serde_json::Map<String, Value> = step_keys
        .iter()
        .map(|k| ((*k).to_owned(), json!({})))
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "hotline flow",
        "description": "A call flow of hotline: flows/NAME.yaml",
        "type": "object",
        "additionalProperties": false,
        "required": ["steps"],
        "properties": {
            "description": { "type": "string" },
            "start": { "type": "string", "description": "The first step (default: the first in the file)" },
            "defaults": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "language": { "type": "string" },
                    "timeout": { "type": "string" },
                    "retries": { "type": "integer", "minimum": 0 }
                }
            },
            "global_keys": {
                "type": "object",
                "propertyNames": { "pattern": "^[0-9*#]$" },
                "additionalProperties": { "type": "string" }
            },
            "steps": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": step_properties
                }
            }
        }
    })
}
