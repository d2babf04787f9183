//! The JSON Schema of the policy file, generated from the Rust types. The committed copy in
//! schema/policy.schema.json is checked against this by a test (`make schema` rewrites it).

use crate::rules::{Action, RuleId};
use schemars::{json_schema, Schema, SchemaGenerator};
use serde_json::{Map, Value};

/// `rules:` — one optional property per known rule, nothing else.
pub fn rule_actions(generator: &mut SchemaGenerator) -> Schema {
    let action = generator.subschema_for::<Action>();
    let mut properties = Map::new();
    for rule in RuleId::ALL {
        let info = rule.info();
        let mut s = action.clone();
        // A `$ref` with siblings is fine in draft 2020-12.
        if let Some(o) = s.as_object_mut() {
            o.insert(
                "description".into(),
                Value::String(format!(
                    "{} (default: {})",
                    info.summary, info.default_action
                )),
            );
        }
        properties.insert(info.name.to_owned(), s.into());
    }
    json_schema!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false
    })
}

/// `kinds:` — `Kind.group` strings.
pub fn kinds(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "type": "string", "pattern": "^[A-Z][A-Za-z0-9]*(\\.[a-z0-9.-]+)?$" }
    })
}

/// The schema of the whole file, as pretty JSON with a trailing newline.
pub fn policy_schema_json() -> String {
    let schema = schemars::schema_for!(super::Policy);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

impl schemars::JsonSchema for Action {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Action".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "deny: refuse the object (in mode enforce); warn: admit it with a warning; off: do not check.",
            "type": "string",
            "enum": ["deny", "warn", "off"]
        })
    }
}
