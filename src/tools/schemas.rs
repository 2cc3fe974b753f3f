//! The machine-readable descriptions hotline publishes of what admins write and read: the
//! JSON Schemas of flow files, `hotline.yaml` and flow test files, and the admin API's
//! OpenAPI document. Owns their names and the files in the repository's `schemas/` folder
//! that editors read; the documents themselves are generated next to the types they
//! describe, so this module decides nothing about their content.

use serde_json::Value;

/// One published document.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaKind {
    /// Flow files (flows/*.yaml).
    Flow,
    /// The server configuration (hotline.yaml).
    Config,
    /// Flow test files (flows/tests/*.yaml).
    Test,
    /// The admin API (OpenAPI 3.1, also served at GET /openapi.json).
    Openapi,
}

impl SchemaKind {
    pub const ALL: [SchemaKind; 4] = [
        SchemaKind::Flow,
        SchemaKind::Config,
        SchemaKind::Test,
        SchemaKind::Openapi,
    ];

    /// The document.
    pub fn document(self) -> Value {
        match self {
            SchemaKind::Flow => crate::flow::model::flow_schema(),
            SchemaKind::Config => crate::config::config_schema(),
            SchemaKind::Test => super::testfile::test_file_schema(),
            SchemaKind::Openapi => crate::admin::openapi::document(),
        }
    }

    /// Its file in `schemas/`, which the sample files name in their
    /// `# yaml-language-server: $schema=` line.
    pub fn file_name(self) -> &'static str {
        match self {
            SchemaKind::Flow => "flow.schema.json",
            SchemaKind::Config => "hotline.schema.json",
            SchemaKind::Test => "flow-test.schema.json",
            SchemaKind::Openapi => "openapi.json",
        }
    }

    /// The document as written to its file: pretty JSON and a final newline.
    pub fn text(self) -> String {
        let mut text =
            serde_json::to_string_pretty(&self.document()).expect("a JSON value always serializes");
        text.push('\n');
        text
    }
}
