//! The JSON Schema of the project file (`pipedeck schema`, `assets/pipedeck.schema.json`),
//! derived with `schemars` from the serde types in [`super::schema`].
//!
//! Draft 7, which taplo (VS Code's Even Better TOML, Helix, Neovim) reads. The schema
//! says what a type can: keys, types, enums, name and duration patterns, ranges. What
//! needs the whole file (references, cycles, duplicates) stays with `pipedeck validate`.
//! It is never stricter than loading: a file that loads passes it.

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use super::schema::ProjectFile;

/// Names of services, steps, resources and infra projects (as `validate` checks them).
pub const NAME_PATTERN: &str = "^[A-Za-z0-9_.-]+$";
/// What `parse_duration` accepts.
pub const DURATION_PATTERN: &str = r"^\s*[0-9]+(ms|s|m|h|d)\s*$";

/// The project file's schema as a JSON value.
pub fn project_schema() -> serde_json::Value {
    let generator = SchemaGenerator::new(SchemaSettings::draft07());
    let mut value = generator.into_root_schema_for::<ProjectFile>().to_value();
    drop_null(&mut value);
    value
}

/// The schema as shipped in `assets/pipedeck.schema.json`: pretty JSON and a newline.
pub fn project_schema_text() -> String {
    // Serializing a `serde_json::Value` cannot fail (its keys are strings).
    let mut s = serde_json::to_string_pretty(&project_schema()).unwrap_or_default();
    s.push('\n');
    s
}

/// TOML has no null: an absent key is how a file leaves an `Option` unset, so the
/// `null` that schemars allows for `Option` fields is taken out (editors would
/// otherwise offer it).
fn drop_null(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(Value::Array(options)) = map.get_mut(key) {
                    options.retain(|o| o.get("type").is_none_or(|t| t != "null"));
                    if options.len() == 1 && key == "anyOf" {
                        let only = options.remove(0);
                        map.remove(key);
                        match only {
                            // Draft 7 ignores a `$ref`'s siblings (the description).
                            Value::Object(r) if r.contains_key("$ref") => {
                                map.insert("allOf".into(), Value::Array(vec![Value::Object(r)]));
                            }
                            Value::Object(inner) => {
                                for (k, val) in inner {
                                    map.entry(k).or_insert(val);
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            map.values_mut().for_each(drop_null);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null),
        _ => {}
    }
}

/// A type whose schema is fixed: a marker for `#[schemars(with = "…")]`.
macro_rules! fixed_schema {
    ($(#[$doc:meta])* $ty:ident, $name:literal, inline: $inline:literal, $schema:tt) => {
        $(#[$doc])*
        pub struct $ty;

        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }
            fn inline_schema() -> bool {
                $inline
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

fixed_schema!(
    /// A name: letters, digits, `-`, `_` and `.`.
    NameKey, "Name", inline: true,
    { "type": "string", "pattern": NAME_PATTERN }
);

fixed_schema!(
    /// A duration: a whole number with a unit.
    Duration, "Duration", inline: false,
    {
        "type": "string",
        "description": "A whole number with a unit: 500ms, 10s, 5m, 2h, 1d.",
        "pattern": DURATION_PATTERN,
        "examples": ["500ms", "10s", "5m", "2h", "1d"],
    }
);

fixed_schema!(
    /// `engine.concurrency`: 1 to 1024.
    Concurrency, "Concurrency", inline: true,
    { "type": "integer", "minimum": 1, "maximum": 1024 }
);

fixed_schema!(
    /// How a resource is deployed.
    Driver, "Driver", inline: false,
    { "type": "string", "enum": ["command", "terraform", "tofu"] }
);

fixed_schema!(
    /// Where Terraform keeps a resource's state.
    BackendType, "BackendType", inline: false,
    { "type": "string", "enum": ["local", "pg", "s3", "gcs", "azurerm", "http"] }
);

fixed_schema!(
    /// Pull-request runs.
    PullRequests, "PullRequests", inline: false,
    { "type": "string", "enum": ["off", "none", "build", "deploy", "preview"] }
);

fixed_schema!(
    /// An input value: any TOML value.
    InputValue, "InputValue", inline: true,
    { "description": "Any TOML value; strings may hold ${<id>.outputs.<key>} references." }
);

fixed_schema!(
    /// What of an upstream run starts a chained one.
    ChainOn, "ChainOn", inline: false,
    { "type": "string", "enum": ["succeeded", "failed", "deployed"] }
);

fixed_schema!(
    /// A notification's event.
    NotifyEvent, "NotifyEvent", inline: false,
    { "type": "string", "enum": ["gate_waiting", "run_failed", "run_succeeded", "deployed", "drifted"] }
);

fixed_schema!(
    /// A notification's payload.
    NotifyFormat, "NotifyFormat", inline: false,
    { "type": "string", "enum": ["json", "slack"] }
);

fixed_schema!(
    /// Whether every `after` entry must have happened, or any one.
    AfterWhen, "AfterWhen", inline: false,
    { "type": "string", "enum": ["all", "any"] }
);

fixed_schema!(
    /// An HTTP check's method.
    HttpMethod, "HttpMethod", inline: false,
    { "type": "string", "enum": ["GET", "HEAD", "POST", "PUT"] }
);

fixed_schema!(
    /// An HTTP status.
    HttpStatus, "HttpStatus", inline: true,
    { "type": "integer", "minimum": 100, "maximum": 599 }
);

fixed_schema!(
    /// An HTTP check's retries.
    Retries, "Retries", inline: true,
    { "type": "integer", "minimum": 0, "maximum": 100 }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_describes_the_file() {
        let s = project_schema();
        assert_eq!(s["$schema"], "http://json-schema.org/draft-07/schema#");
        assert_eq!(s["additionalProperties"], false);
        let engine = &s["definitions"]["EngineFile"]["properties"];
        assert_eq!(engine["concurrency"]["maximum"], 1024);
        assert!(
            engine["concurrency"]["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("Most steps")),
            "{engine}"
        );
        // No `null` anywhere: TOML has none.
        assert!(!project_schema_text().contains("\"null\""));
    }
}
