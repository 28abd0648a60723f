//! OData wire details shared by every area of the simulated tenant: error bodies, collection
//! paging with `@odata.nextLink`, `$select`, `$top`, and a small `$filter` reader.

use std::collections::HashMap;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// Graph's error body: `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                "request-id": request_id,
                "client-request-id": request_id,
            }
        }
    });
    (status, Json(body)).into_response()
}

/// Graph's 404 for a directory object. `what` names the kind for the simulator's own log only:
/// Graph's message does not say it, and clients must not depend on it.
pub fn not_found(what: &str, id: &str) -> Response {
    tracing::debug!(kind = what, id, "sim: not found");
    error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

pub fn bad_request(code: &str, message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, code, message)
}

/// A request body as JSON, or Graph's 400 saying why it is not.
pub fn json_body(body: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| {
        bad_request(
            "BadRequest",
            &format!("The request body is not valid JSON: {e}"),
        )
    })
}

/// Query parameters, decoded.
pub fn query(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// Keeps only the `$select`ed properties (plus `id` and `@odata.*` annotations, as Graph does).
pub fn select(item: Value, select: Option<&str>) -> Value {
    let Some(sel) = select else { return item };
    let wanted: Vec<&str> = sel
        .split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    if wanted.is_empty() {
        return item;
    }
    match item {
        Value::Object(map) => {
            let kept: Map<String, Value> = map
                .into_iter()
                .filter(|(k, _)| {
                    k == "id"
                        || k.starts_with("@odata.")
                        || wanted.iter().any(|w| w.eq_ignore_ascii_case(k))
                })
                .collect();
            Value::Object(kept)
        }
        other => other,
    }
}

/// One page of `items` as Graph returns it, honouring `$top`, `$select` and the `$skiptoken`
/// this function put in the previous `@odata.nextLink`. `base_url` is the server root
/// (`http://127.0.0.1:PORT`), `uri` the request's path and query.
pub fn page(
    base_url: &str,
    uri: &Uri,
    items: Vec<Value>,
    page_size: usize,
    context: &str,
) -> Response {
    let q = query(uri);
    let skip: usize = q
        .get("$skiptoken")
        .and_then(|s| s.strip_prefix("skip-"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // `$top` sets the page size (Graph allows up to 999 for directory objects) and paging
    // continues through `@odata.nextLink`, as on the real service.
    let size = q
        .get("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .map(|t| t.clamp(1, 999))
        .unwrap_or(page_size.max(1));
    let total = items.len();
    let select_param = q.get("$select").map(|s| s.as_str());
    let value: Vec<Value> = items
        .into_iter()
        .skip(skip)
        .take(size)
        .map(|v| select(v, select_param))
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(format!(
            "{base_url}{}/$metadata#{context}",
            version_prefix(uri.path())
        )),
    );
    if q.get("$count").map(|c| c == "true").unwrap_or(false) {
        body.insert("@odata.count".into(), json!(total));
    }
    if skip + size < total {
        let mut pairs: Vec<(String, String)> = q
            .iter()
            .filter(|(k, _)| k.as_str() != "$skiptoken")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pairs.sort();
        pairs.push(("$skiptoken".into(), format!("skip-{}", skip + size)));
        let qs = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        body.insert(
            "@odata.nextLink".into(),
            Value::String(format!("{base_url}{}?{qs}", uri.path())),
        );
    }
    body.insert("value".into(), Value::Array(value));
    Json(Value::Object(body)).into_response()
}

/// `/v1.0` or `/beta` when `path` is under one, as Graph's `@odata.context` URLs carry it.
fn version_prefix(path: &str) -> &'static str {
    if path.starts_with("/beta") {
        "/beta"
    } else if path.starts_with("/v1.0") {
        "/v1.0"
    } else {
        ""
    }
}

/// One entity, honouring `$select`.
pub fn entity(uri: &Uri, item: Value) -> Response {
    let q = query(uri);
    Json(select(item, q.get("$select").map(|s| s.as_str()))).into_response()
}

/// A parsed simple `$filter` clause: `prop eq 'v'`, `contains(prop,'v')`, `startswith(prop,'v')`,
/// optionally joined by `and` / `or` of the same kind. Enough for what the wizard sends; other
/// filters are answered with Graph's 400 for unsupported queries.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Eq(String, String),
    Contains(String, String),
    StartsWith(String, String),
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

impl Filter {
    pub fn parse(text: &str) -> Option<Filter> {
        let t = text.trim();
        for (sep, is_and) in [(" or ", false), (" and ", true)] {
            let parts = split_outside_quotes(t, sep);
            if parts.len() > 1 {
                let subs: Option<Vec<Filter>> = parts.iter().map(|p| Filter::parse(p)).collect();
                let subs = subs?;
                return Some(if is_and {
                    Filter::And(subs)
                } else {
                    Filter::Or(subs)
                });
            }
        }
        let t = t.trim_start_matches('(').trim_end_matches(')').trim();
        let lower = t.to_ascii_lowercase();
        for (name, ctor) in [
            (
                "contains(",
                Filter::Contains as fn(String, String) -> Filter,
            ),
            (
                "startswith(",
                Filter::StartsWith as fn(String, String) -> Filter,
            ),
        ] {
            if lower.starts_with(name) {
                let inner = &t[name.len()..];
                let inner = inner.strip_suffix(')').unwrap_or(inner);
                let (prop, lit) = inner.split_once(',')?;
                return Some(ctor(prop.trim().to_string(), literal(lit.trim())?));
            }
        }
        let parts = split_outside_quotes(t, " eq ");
        if parts.len() == 2 {
            return Some(Filter::Eq(
                parts[0].trim().to_string(),
                literal(parts[1].trim())?,
            ));
        }
        None
    }

    /// Whether `item` matches, comparing strings case-insensitively like Graph does.
    pub fn matches(&self, item: &Value) -> bool {
        let get = |prop: &str| -> Option<String> {
            let mut cur = item;
            for seg in prop.split('/') {
                cur = cur.get(seg)?;
            }
            match cur {
                Value::String(s) => Some(s.to_lowercase()),
                Value::Null => None,
                other => Some(other.to_string().to_lowercase()),
            }
        };
        match self {
            Filter::Eq(p, v) => get(p).map(|x| x == v.to_lowercase()).unwrap_or(false),
            Filter::Contains(p, v) => get(p)
                .map(|x| x.contains(&v.to_lowercase()))
                .unwrap_or(false),
            Filter::StartsWith(p, v) => get(p)
                .map(|x| x.starts_with(&v.to_lowercase()))
                .unwrap_or(false),
            Filter::And(fs) => fs.iter().all(|f| f.matches(item)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(item)),
        }
    }
}

fn literal(s: &str) -> Option<String> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
        Some(inner.replace("''", "'"))
    } else if s == "true" || s == "false" || s.parse::<f64>().is_ok() {
        Some(s.to_string())
    } else {
        None
    }
}

fn split_outside_quotes<'a>(s: &'a str, sep: &str) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let mut in_quote = false;
    let mut start = 0;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            in_quote = !in_quote;
        } else if !in_quote && s[i..].to_ascii_lowercase().starts_with(sep) {
            parts.push(&s[start..i]);
            i += sep.len();
            start = i;
            continue;
        }
        i += 1;
    }
    parts.push(&s[start..]);
    parts
}

/// Applies the request's `$filter` (if any) to `items`; `Err` is Graph's 400 for a filter this
/// simulator (and, for the forms we reject, Graph) does not support.
pub fn apply_filter(uri: &Uri, items: Vec<Value>) -> Result<Vec<Value>, Response> {
    let q = query(uri);
    let Some(f) = q.get("$filter") else {
        return Ok(items);
    };
    let Some(filter) = Filter::parse(f) else {
        return Err(bad_request(
            "BadRequest",
            &format!("Invalid filter clause: the query specified in the URI is not valid: {f}"),
        ));
    };
    Ok(items.into_iter().filter(|i| filter.matches(i)).collect())
}

/// Adds the ids Graph puts on every response.
pub fn add_request_ids(headers: &mut HeaderMap, client_request_id: Option<&HeaderValue>) {
    let request_id = uuid::Uuid::new_v4().to_string();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("request-id", v);
    }
    if let Some(c) = client_request_id {
        headers.insert("client-request-id", c.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_forms() {
        let f = Filter::parse("contains(serialNumber,'ABC')").unwrap();
        assert!(f.matches(&json!({"serialNumber": "xxabcxx"})));
        let f = Filter::parse("deviceId eq 'g-1' or deviceId eq 'g-2'").unwrap();
        assert!(f.matches(&json!({"deviceId": "g-2"})));
        assert!(!f.matches(&json!({"deviceId": "g-3"})));
        let f = Filter::parse("startswith(displayName,'O''Br')").unwrap();
        assert!(f.matches(&json!({"displayName": "O'Brien"})));
        assert!(Filter::parse("foo gt 3").is_none());
    }
}
