//! The typed error of every Graph call, parsed from Graph's error body and written for the IT
//! person who reads it.

use serde::Deserialize;

/// Ids that let Microsoft support (and our log) find a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestIds {
    pub request_id: Option<String>,
    pub client_request_id: Option<String>,
    pub date: Option<String>,
}

impl std::fmt::Display for RequestIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(id) = &self.request_id {
            parts.push(format!("request-id {id}"));
        }
        if let Some(id) = &self.client_request_id {
            parts.push(format!("client-request-id {id}"));
        }
        if let Some(d) = &self.date {
            parts.push(format!("date {d}"));
        }
        write!(f, "{}", parts.join(", "))
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum GraphError {
    /// Graph answered with an error status and (usually) an OData error body.
    #[error("{}", service_message(*status, code, message, ids))]
    Service {
        status: u16,
        code: String,
        message: String,
        ids: RequestIds,
    },
    /// Still throttled or unavailable after every retry the policy allows.
    #[error(
        "Microsoft Graph is busy (HTTP {status}) and still asked us to wait after {attempts} attempts. \
         Wait a few minutes and try again. {ids}"
    )]
    GaveUp {
        status: u16,
        attempts: u32,
        ids: RequestIds,
    },
    /// The request never got an HTTP answer.
    #[error(
        "Could not reach Microsoft Graph ({message}). Check the network connection and proxy, then try again."
    )]
    Network { message: String, attempts: u32 },
    /// Graph answered, but not with what the reference says it returns.
    #[error("Microsoft Graph answered something this wizard did not expect ({context}): {message}")]
    Decode { context: String, message: String },
    /// No usable access token: the user must sign in (again).
    #[error(
        "You are not signed in, or the sign-in has expired: {0}. Sign in again on the first page."
    )]
    Auth(String),
    /// The user pressed Cancel, or the window closed.
    #[error("Cancelled.")]
    Cancelled,
}

fn service_message(status: u16, code: &str, message: &str, ids: &RequestIds) -> String {
    let hint = match status {
        400 => "Graph rejected the request as invalid.",
        401 => "The sign-in is no longer accepted; sign in again.",
        403 => {
            "Your account or this app lacks a permission for this call (see the required roles and admin consent in the README)."
        }
        404 => {
            "Graph could not find the object; it may have been deleted, or it is not replicated yet."
        }
        409 => "The object already exists or changed meanwhile.",
        429 => "Graph is throttling requests.",
        500..=599 => "Microsoft Graph had an internal problem; try again later.",
        _ => "",
    };
    let ids = ids.to_string();
    let ids = if ids.is_empty() {
        String::new()
    } else {
        format!(" ({ids})")
    };
    format!("{hint} Graph said: {code}: {message} [HTTP {status}]{ids}")
        .trim()
        .to_string()
}

impl GraphError {
    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Service { status, .. } | GraphError::GaveUp { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The OData error code, such as `Request_ResourceNotFound`.
    pub fn code(&self) -> Option<&str> {
        match self {
            GraphError::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn ids(&self) -> Option<&RequestIds> {
        match self {
            GraphError::Service { ids, .. } | GraphError::GaveUp { ids, .. } => Some(ids),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub fn is_forbidden(&self) -> bool {
        self.status() == Some(403)
    }

    /// Builds the error from an HTTP status and the raw body of a failed Graph response.
    /// Lenient: Intune sometimes nests a JSON-ish string inside `message`, older services use
    /// `requestId`, and proxies answer with HTML.
    pub fn from_response(status: u16, body: &[u8], header_ids: RequestIds) -> GraphError {
        #[derive(Deserialize)]
        struct Body {
            error: Main,
        }
        #[derive(Deserialize)]
        struct Main {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
            #[serde(default, rename = "innerError", alias = "innererror")]
            inner: Option<Inner>,
        }
        #[derive(Deserialize)]
        struct Inner {
            #[serde(rename = "request-id", alias = "requestId")]
            request_id: Option<String>,
            #[serde(rename = "client-request-id")]
            client_request_id: Option<String>,
            date: Option<String>,
        }
        let mut ids = header_ids;
        match serde_json::from_slice::<Body>(body) {
            Ok(b) => {
                if let Some(inner) = b.error.inner {
                    ids.request_id = ids.request_id.or(inner.request_id);
                    ids.client_request_id = ids.client_request_id.or(inner.client_request_id);
                    ids.date = ids.date.or(inner.date);
                }
                GraphError::Service {
                    status,
                    code: if b.error.code.is_empty() {
                        "unknown".into()
                    } else {
                        b.error.code
                    },
                    message: simplify_intune_message(&b.error.message),
                    ids,
                }
            }
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let text: String = text.chars().take(300).collect();
                GraphError::Service {
                    status,
                    code: "unknown".into(),
                    message: if text.trim().is_empty() {
                        "(no error body)".into()
                    } else {
                        text
                    },
                    ids,
                }
            }
        }
    }
}

/// Intune wraps its real message in a JSON string such as
/// `{"_version":3,"Message":"An error has occurred - Operation ID …","CustomApiErrorPhrase":""}`;
/// show the inner `Message` when there is one.
fn simplify_intune_message(message: &str) -> String {
    let trimmed = message.trim();
    if trimmed.starts_with('{')
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(trimmed)
        && let Some(inner) = v.get("Message").and_then(|m| m.as_str())
    {
        return inner.to_string();
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_graph_error_body_with_ids() {
        let body = br#"{"error":{"code":"Request_BadRequest","message":"Invalid value specified for property 'mailNickname' of resource 'Group'.","innerError":{"date":"2026-11-24T10:00:00","request-id":"r-1","client-request-id":"c-1"}}}"#;
        let e = GraphError::from_response(400, body, RequestIds::default());
        assert_eq!(e.status(), Some(400));
        assert_eq!(e.code(), Some("Request_BadRequest"));
        let ids = e.ids().unwrap();
        assert_eq!(ids.request_id.as_deref(), Some("r-1"));
        assert_eq!(ids.client_request_id.as_deref(), Some("c-1"));
        let text = e.to_string();
        assert!(text.contains("mailNickname"), "{text}");
        assert!(text.contains("request-id r-1"), "{text}");
    }

    #[test]
    fn unwraps_intune_nested_message_and_tolerates_html() {
        let body = br#"{"error":{"code":"BadRequest","message":"{\"_version\":3,\"Message\":\"An error has occurred - Operation ID: 42\",\"CustomApiErrorPhrase\":\"\"}"}}"#;
        let e = GraphError::from_response(400, body, RequestIds::default());
        assert!(e.to_string().contains("Operation ID: 42"));
        let e = GraphError::from_response(502, b"<html>Bad gateway</html>", RequestIds::default());
        assert_eq!(e.code(), Some("unknown"));
        assert!(e.to_string().contains("Bad gateway"));
    }
}
