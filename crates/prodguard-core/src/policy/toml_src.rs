//! TOML text → the spanned tree, through `toml`'s span-preserving `DeTable`.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::PolicyError;
use super::tree::{Entry, Kind, Locator, Node};

/// Parses TOML text into a tree; syntax errors carry their position.
pub(crate) fn parse(text: &str, locator: &Locator<'_>) -> Result<Node, PolicyError> {
    match DeTable::parse(text) {
        Ok(root) => {
            let span = root.span();
            Ok(Node {
                span,
                kind: Kind::Table(convert_table(root.get_ref())),
            })
        }
        Err(error) => {
            let span = error.span().unwrap_or(text.len()..text.len());
            let mut message = format!("invalid TOML: {}", error.message());
            if error.message() == "duplicate key" {
                let key = locator.slice(&span).trim();
                if !key.is_empty() {
                    message = format!(
                        "invalid TOML: duplicate key `{key}`; a key may appear only once in a table"
                    );
                }
            }
            Err(locator.error(span.start, message))
        }
    }
}

fn convert_table(table: &DeTable<'_>) -> Vec<Entry> {
    let mut entries: Vec<Entry> = table
        .iter()
        .map(|(key, value)| Entry {
            key: key.get_ref().to_string(),
            key_span: key.span(),
            value: convert(value),
        })
        .collect();
    entries.sort_by_key(|e| e.key_span.start);
    entries
}

fn convert(value: &Spanned<DeValue<'_>>) -> Node {
    let kind = match value.get_ref() {
        DeValue::String(s) => Kind::String(s.to_string()),
        DeValue::Integer(i) => Kind::Integer(i128::from_str_radix(i.as_str(), i.radix()).ok()),
        DeValue::Float(_) => Kind::Float,
        DeValue::Boolean(b) => Kind::Bool(*b),
        DeValue::Datetime(_) => Kind::Datetime,
        DeValue::Array(items) => Kind::Array(items.iter().map(convert).collect()),
        DeValue::Table(table) => Kind::Table(convert_table(table)),
    };
    Node {
        span: value.span(),
        kind,
    }
}
