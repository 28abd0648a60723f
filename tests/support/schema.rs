//! A validator for Graph JSON bodies against the official schema extracts in
//! `tests/fixtures/schema/{v1.0,beta}.json` (copied from `shared/reference/graph-schema/`, see the
//! README beside them). Every area's tests use it to check that what the client sends and what
//! the simulated tenant answers have the property names, enum members and primitive types the
//! schema defines.
//!
//! What it checks, per object: `@odata.type` picks the concrete type (it must be the declared
//! type or derived from it), abstract types need a concrete `@odata.type`, properties must exist
//! on the type or one of its bases (`allOf`/`$ref`) unless the type is open, enum members must be
//! listed, primitives must have the right JSON type (`null` only where nullable), nested complex
//! values and arrays are checked recursively. Instance annotations (`@odata.context`,
//! `members@odata.bind`, ...) are ignored.
//!
//! Use [`validate`] for one resource, [`validate_collection`] for a `{ "value": [...] }` page and
//! [`validate_error`] for a Graph error body.
#![allow(dead_code)]

use std::sync::OnceLock;

use serde_json::{Map, Value};

const V1_JSON: &str = include_str!("../fixtures/schema/v1.0.json");
const BETA_JSON: &str = include_str!("../fixtures/schema/beta.json");

/// Types the reference says are abstract although the beta extract (converted from the 2023
/// OpenAPI, which has no abstract marker) does not mark them: the profile base (reference §3,
/// "Base windowsAutopilotDeploymentProfile is abstract"), the assignment target base (v1.0 marks
/// it `x-abstract`) and the join-policy membership (reference §2.1, "abstract, discriminated by
/// @odata.type").
const ALSO_ABSTRACT: &[&str] = &[
    "microsoft.graph.windowsAutopilotDeploymentProfile",
    "microsoft.graph.deviceAndAppManagementAssignmentTarget",
    "microsoft.graph.deviceRegistrationMembership",
    "microsoft.graph.entity",
];

struct Schema {
    types: Map<String, Value>,
    version: &'static str,
}

fn schema(version: &str) -> &'static Schema {
    static V1: OnceLock<Schema> = OnceLock::new();
    static BETA: OnceLock<Schema> = OnceLock::new();
    let (cell, text, v) = match version {
        "v1.0" => (&V1, V1_JSON, "v1.0"),
        "beta" => (&BETA, BETA_JSON, "beta"),
        other => panic!("schema version must be \"v1.0\" or \"beta\", not {other:?}"),
    };
    cell.get_or_init(|| {
        let types = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            _ => panic!("tests/fixtures/schema/{v}.json is not a JSON object"),
        };
        Schema { types, version: v }
    })
}

/// Qualified name of a type: accepts `windowsUserType`, `microsoft.graph.windowsUserType`,
/// `#microsoft.graph.windowsUserType`.
fn qualify(name: &str) -> String {
    let n = name.trim_start_matches('#');
    if n.starts_with("microsoft.graph.") {
        n.to_string()
    } else {
        format!("microsoft.graph.{n}")
    }
}

fn ref_name(r: &str) -> &str {
    r.rsplit('/').next().unwrap_or(r)
}

impl Schema {
    fn get(&self, name: &str) -> Option<&Value> {
        self.types.get(name)
    }

    /// The direct base of `name` (first `allOf` `$ref`).
    fn base(&self, name: &str) -> Option<String> {
        let t = self.get(name)?;
        t.get("allOf")?
            .as_array()?
            .iter()
            .find_map(|p| p.get("$ref").and_then(|r| r.as_str()))
            .map(|r| ref_name(r).to_string())
    }

    /// `name` and its bases, most derived first.
    fn chain(&self, name: &str) -> Vec<String> {
        let mut out = vec![name.to_string()];
        let mut cur = name.to_string();
        while let Some(b) = self.base(&cur) {
            if out.contains(&b) {
                break;
            }
            out.push(b.clone());
            cur = b;
        }
        out
    }

    fn derives_from(&self, derived: &str, base: &str) -> bool {
        self.chain(derived).iter().any(|t| t == base)
    }

    /// The parts of a type that carry its own properties and flags.
    fn parts<'a>(&self, t: &'a Value) -> Vec<&'a Value> {
        match t.get("allOf").and_then(|a| a.as_array()) {
            Some(parts) => parts.iter().filter(|p| p.get("$ref").is_none()).collect(),
            None => vec![t],
        }
    }

    fn flag(&self, name: &str, flag: &str) -> bool {
        let Some(t) = self.get(name) else {
            return false;
        };
        t.get(flag).and_then(|v| v.as_bool()) == Some(true)
            || self
                .parts(t)
                .iter()
                .any(|p| p.get(flag).and_then(|v| v.as_bool()) == Some(true))
    }

    fn is_abstract(&self, name: &str) -> bool {
        self.flag(name, "x-abstract")
            || ALSO_ABSTRACT.contains(&name)
            // An abstract type in one version is abstract in the other.
            || schema(if self.version == "beta" { "v1.0" } else { "beta" }).flag(name, "x-abstract")
    }

    /// Open types accept dynamic properties. The OpenAPI conversion puts
    /// `additionalProperties: {type: object}` on nearly every type, so that is not taken as
    /// "open"; only the CSDL flag is, plus the OData error types (not in CSDL; their
    /// `innerError` content is service-specific).
    fn is_open(&self, name: &str) -> bool {
        self.chain(name)
            .iter()
            .any(|t| self.flag(t, "x-open-type") || t.starts_with("microsoft.graph.ODataErrors."))
    }

    fn properties(&self, name: &str) -> Map<String, Value> {
        let mut out = Map::new();
        for t in self.chain(name).iter().rev() {
            if let Some(tv) = self.get(t) {
                for part in self.parts(tv) {
                    if let Some(Value::Object(props)) = part.get("properties") {
                        for (k, v) in props {
                            out.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
        }
        out
    }

    fn required(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        for t in self.chain(name) {
            if let Some(tv) = self.get(&t) {
                for part in self.parts(tv) {
                    if let Some(Value::Array(req)) = part.get("required") {
                        out.extend(req.iter().filter_map(|r| r.as_str()).map(String::from));
                    }
                }
            }
        }
        out
    }

    fn enum_members(&self, name: &str) -> Option<Vec<String>> {
        let t = self.get(name)?;
        let members = t.get("enum")?.as_array()?;
        Some(
            members
                .iter()
                .filter_map(|m| m.as_str().map(String::from))
                .collect(),
        )
    }
}

struct Ctx<'a> {
    s: &'a Schema,
    errors: Vec<String>,
}

impl Ctx<'_> {
    fn err(&mut self, path: &str, msg: String) {
        let at = if path.is_empty() { "(body)" } else { path };
        self.errors.push(format!("{at}: {msg}"));
    }

    /// Checks `body` as an instance of the structured type `declared`.
    fn object(&mut self, path: &str, declared: &str, body: &Value) {
        let Some(obj) = body.as_object() else {
            self.err(
                path,
                format!(
                    "expected an object of type {declared}, found {}",
                    kind(body)
                ),
            );
            return;
        };
        let mut concrete = declared.to_string();
        match obj.get("@odata.type") {
            Some(Value::String(t)) => {
                let named = qualify(t);
                if self.s.get(&named).is_none() {
                    self.err(
                        path,
                        format!(
                            "@odata.type {t:?} is not a type in the {} schema",
                            self.s.version
                        ),
                    );
                    return;
                }
                if !self.s.derives_from(&named, declared) {
                    self.err(
                        path,
                        format!("@odata.type {t:?} is not {declared} or a type derived from it"),
                    );
                    return;
                }
                concrete = named;
            }
            Some(other) => {
                self.err(
                    path,
                    format!("@odata.type must be a string, found {}", kind(other)),
                );
                return;
            }
            None => {}
        }
        if self.s.is_abstract(&concrete) {
            self.err(
                path,
                format!(
                    "{concrete} is abstract: the body needs an @odata.type naming a concrete derived type"
                ),
            );
        }
        let props = self.s.properties(&concrete);
        let open = self.s.is_open(&concrete);
        for (key, value) in obj {
            // Instance and property annotations: @odata.type, @odata.context,
            // members@odata.bind, ...@odata.nextLink.
            if key.starts_with('@') || key.contains("@odata.") {
                continue;
            }
            let p = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            match props.get(key) {
                Some(schema) => self.value(&p, schema, value),
                None if open => {}
                None => {
                    let hint = props
                        .keys()
                        .find(|k| k.eq_ignore_ascii_case(key))
                        .map(|k| format!(" (did you mean {k:?}?)"))
                        .unwrap_or_default();
                    self.err(
                        &p,
                        format!(
                            "property {key:?} does not exist on type {concrete} in {}{hint}",
                            self.s.version
                        ),
                    );
                }
            }
        }
        for r in self.s.required(&concrete) {
            if !obj.contains_key(&r) {
                self.err(
                    path,
                    format!("required property {r:?} of {concrete} is missing"),
                );
            }
        }
    }

    /// Checks `value` against one property schema.
    fn value(&mut self, path: &str, schema: &Value, value: &Value) {
        if let Some(any) = schema.get("anyOf").and_then(|a| a.as_array()) {
            // `anyOf: [{$ref}, {type: object, nullable: true}]`: a nullable reference.
            let nullable = any
                .iter()
                .any(|a| a.get("nullable").and_then(|n| n.as_bool()) == Some(true));
            if value.is_null() {
                if !nullable {
                    self.err(path, "null is not allowed here".into());
                }
                return;
            }
            if let Some(r) = any
                .iter()
                .find_map(|a| a.get("$ref").and_then(|r| r.as_str()))
            {
                self.reference(path, ref_name(r), value, true);
            }
            return;
        }
        if let Some(r) = schema.get("$ref").and_then(|r| r.as_str()) {
            // v1.0 was converted with nullable references as `anyOf`, so a plain `$ref` there
            // is non-nullable; the 2023 beta OpenAPI does not make that distinction.
            let nullable = self.s.version == "beta"
                || schema.get("nullable").and_then(|n| n.as_bool()) == Some(true);
            if value.is_null() {
                if !nullable {
                    self.err(path, "null is not allowed here".into());
                }
                return;
            }
            self.reference(path, ref_name(r), value, nullable);
            return;
        }
        let nullable = schema.get("nullable").and_then(|n| n.as_bool()) == Some(true);
        if value.is_null() {
            if !nullable {
                self.err(
                    path,
                    "null is not allowed here (the property is not nullable)".into(),
                );
            }
            return;
        }
        if let Some(Value::Array(members)) = schema.get("enum") {
            self.enum_value(path, "(inline enum)", members, value);
            return;
        }
        let ty = schema.get("type").and_then(|t| t.as_str()).unwrap_or("");
        match ty {
            "string" => match value.as_str() {
                Some(s) => self.format(path, schema, s),
                None => self.err(path, format!("expected a string, found {}", kind(value))),
            },
            "boolean" if !value.is_boolean() => {
                self.err(
                    path,
                    format!("expected true or false, found {}", kind(value)),
                );
            }
            "integer" => match value.as_i64() {
                Some(n) => {
                    let min = schema.get("minimum").and_then(|m| m.as_i64());
                    let max = schema.get("maximum").and_then(|m| m.as_i64());
                    if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                        self.err(path, format!("{n} is out of range"));
                    }
                }
                None => self.err(path, format!("expected an integer, found {}", kind(value))),
            },
            "number" if !value.is_number() => {
                self.err(path, format!("expected a number, found {}", kind(value)));
            }
            "array" => match value.as_array() {
                Some(items) => {
                    let item_schema = schema.get("items").cloned().unwrap_or(Value::Null);
                    for (i, item) in items.iter().enumerate() {
                        self.value(&format!("{path}[{i}]"), &item_schema, item);
                    }
                }
                None => self.err(path, format!("expected an array, found {}", kind(value))),
            },
            "object" if !value.is_object() => {
                self.err(path, format!("expected an object, found {}", kind(value)));
            }
            // Valid values of the kinds above, and untyped schemas.
            _ => {}
        }
    }

    fn reference(&mut self, path: &str, name: &str, value: &Value, _nullable: bool) {
        let Some(target) = self.s.get(name) else {
            // Navigation targets outside the extract are intentionally dangling (README).
            return;
        };
        if let Some(Value::Array(members)) = target.get("enum") {
            let members = members.clone();
            self.enum_value(path, name, &members, value);
        } else {
            self.object(path, name, value);
        }
    }

    fn enum_value(&mut self, path: &str, name: &str, members: &[Value], value: &Value) {
        let Some(s) = value.as_str() else {
            self.err(
                path,
                format!("expected a member of enum {name}, found {}", kind(value)),
            );
            return;
        };
        let names: Vec<&str> = members.iter().filter_map(|m| m.as_str()).collect();
        // Flags enums serialise as "a,b".
        if !s.split(',').all(|part| names.contains(&part.trim())) {
            self.err(
                path,
                format!(
                    "{s:?} is not a member of enum {name}; members are {}",
                    names.join(", ")
                ),
            );
        }
    }

    fn format(&mut self, path: &str, schema: &Value, s: &str) {
        match schema.get("format").and_then(|f| f.as_str()) {
            Some("date-time") if chrono::DateTime::parse_from_rfc3339(s).is_err() => {
                self.err(
                    path,
                    format!("{s:?} is not an ISO 8601 date-time with offset"),
                );
            }
            Some("uuid") if uuid::Uuid::parse_str(s).is_err() => {
                self.err(path, format!("{s:?} is not a GUID"));
            }
            Some("base64url") => {
                let ok = s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_'));
                if !ok {
                    self.err(path, format!("{s:?} is not base64"));
                }
            }
            _ => {}
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Validates one Graph resource body against `type_name` (`"windowsUserType"`,
/// `"microsoft.graph.group"` or `"#microsoft.graph.group"`) in `version` (`"v1.0"` or `"beta"`).
/// Returns every problem found, empty when the body is valid.
pub fn validate(version: &str, type_name: &str, body: &Value) -> Vec<String> {
    let s = schema(version);
    let name = qualify(type_name);
    let mut ctx = Ctx {
        s,
        errors: Vec::new(),
    };
    match s.get(&name) {
        None => ctx.err(
            "",
            format!("type {name} is not in the {version} schema extract"),
        ),
        Some(t) if t.get("enum").is_some() => {
            let members = t
                .get("enum")
                .and_then(|e| e.as_array())
                .cloned()
                .unwrap_or_default();
            ctx.enum_value("", &name, &members, body);
        }
        Some(_) => ctx.object("", &name, body),
    }
    ctx.errors
}

/// Validates every item of a collection page (`{ "@odata.context", "value": [...] }`).
pub fn validate_collection(version: &str, type_name: &str, page: &Value) -> Vec<String> {
    let Some(items) = page.get("value").and_then(|v| v.as_array()) else {
        return vec!["(body): a collection page needs a \"value\" array".into()];
    };
    items
        .iter()
        .enumerate()
        .flat_map(|(i, item)| {
            validate(version, type_name, item)
                .into_iter()
                .map(move |e| format!("value[{i}].{e}"))
        })
        .collect()
}

/// Validates a Graph error body (`{"error":{"code","message",...}}`).
pub fn validate_error(body: &Value) -> Vec<String> {
    validate("v1.0", "microsoft.graph.ODataErrors.ODataError", body)
}

/// Panics with every problem when `body` is not valid; for tests.
#[track_caller]
pub fn assert_valid(version: &str, type_name: &str, body: &Value) {
    let errors = validate(version, type_name, body);
    assert!(
        errors.is_empty(),
        "body does not match {type_name} in the {version} schema:\n  {}\nbody: {body:#}",
        errors.join("\n  ")
    );
}

/// Every property name (structural and navigation) of `type_name` and its bases in `version`;
/// `None` when the type is not in the extract. For checking `$select` / `$expand` names.
pub fn property_names(version: &str, type_name: &str) -> Option<Vec<String>> {
    let s = schema(version);
    let name = qualify(type_name);
    s.get(&name)?;
    Some(s.properties(&name).keys().cloned().collect())
}
