//! One HTTP client for Graph v1.0 and beta: client-request-id on every call, typed errors,
//! retries that honour `Retry-After`, paging through `@odata.nextLink`, one token refresh on 401.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::error::{GraphError, RequestIds};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where access tokens come from. `force_refresh` is set after Graph answered 401, so the
/// source must not hand out the same cached token again.
pub trait TokenSource: Send + Sync + 'static {
    fn access_token(&self, force_refresh: bool) -> BoxFuture<'_, Result<String, GraphError>>;
}

/// A fixed token; for tests and scripts.
pub struct StaticToken(pub String);

impl TokenSource for StaticToken {
    fn access_token(&self, _force_refresh: bool) -> BoxFuture<'_, Result<String, GraphError>> {
        let t = self.0.clone();
        Box::pin(async move { Ok(t) })
    }
}

/// Autopilot profiles, assignments and sync exist only in beta (reference §0.1); directory
/// objects and policies are used from v1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ApiVersion {
    V1,
    Beta,
}

impl ApiVersion {
    pub fn segment(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1.0",
            ApiVersion::Beta => "beta",
        }
    }
}

/// How hard to try before giving up.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included.
    pub max_attempts: u32,
    /// Backoff base when the server gives no `Retry-After`.
    pub base_delay: Duration,
    /// No single wait is longer than this (a `Retry-After` above it is capped).
    pub max_delay: Duration,
    /// Total time spent waiting across retries of one request.
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            max_total_wait: Duration::from_secs(180),
        }
    }
}

/// Largest answer read: Graph's biggest pages (999 objects) are a few MiB; anything far larger is
/// a broken or hostile server, and reading it whole could exhaust memory.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Most pages one collection read follows (999 objects each at most, so millions of objects).
pub const MAX_PAGES: usize = 10_000;

/// The body, or `None` once it passes [`MAX_RESPONSE_BYTES`] (not read further).
async fn read_capped(mut resp: reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Ok(None);
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

/// A successful response with the ids Graph returned.
#[derive(Debug, Clone)]
pub struct GraphResponse {
    pub status: u16,
    pub body: Vec<u8>,
    pub ids: RequestIds,
}

impl GraphResponse {
    pub fn json<T: DeserializeOwned>(&self, context: &str) -> Result<T, GraphError> {
        serde_json::from_slice(&self.body).map_err(|e| GraphError::Decode {
            context: context.to_string(),
            message: e.to_string(),
        })
    }
}

/// One page of a collection.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Page<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
}

#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base: String,
    tokens: Arc<dyn TokenSource>,
    retry: RetryPolicy,
    cancel: CancellationToken,
    /// Extra request headers, e.g. `ConsistencyLevel: eventual` for advanced directory queries.
    extra_headers: Vec<(String, String)>,
    /// The cloud's own Graph root (`https://graph.microsoft.com`). Behind a reverse proxy Graph
    /// still writes its `@odata.nextLink`s on this host; they are followed through `base`.
    cloud_graph: Option<String>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print tokens.
        f.debug_struct("GraphClient")
            .field("base", &self.base)
            .finish()
    }
}

impl GraphClient {
    /// `graph_base` is the cloud's Graph root, such as `https://graph.microsoft.com` or the
    /// simulated tenant's `http://127.0.0.1:PORT`.
    pub fn new(graph_base: &str, tokens: Arc<dyn TokenSource>) -> Self {
        Self::with_http(default_http(), graph_base, tokens)
    }

    pub fn with_http(
        http: reqwest::Client,
        graph_base: &str,
        tokens: Arc<dyn TokenSource>,
    ) -> Self {
        GraphClient {
            http,
            base: graph_base.trim_end_matches('/').to_string(),
            tokens,
            retry: RetryPolicy::default(),
            cancel: CancellationToken::new(),
            extra_headers: Vec::new(),
            cloud_graph: None,
        }
    }

    /// A copy that also accepts next links on the cloud's own Graph root (`cloud_graph`, e.g.
    /// [`super::cloud::Cloud::graph_host`]) when `base` is a proxy in front of it.
    pub fn with_cloud_graph(mut self, cloud_graph: &str) -> Self {
        self.cloud_graph = Some(cloud_graph.trim_end_matches('/').to_string());
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// A copy whose requests stop (with [`GraphError::Cancelled`]) when `cancel` fires.
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// A copy that sends `ConsistencyLevel: eventual` (needed for `$count`, `$search` and
    /// some `$filter`s on directory objects, reference §8).
    pub fn eventual(mut self) -> Self {
        self.extra_headers
            .push(("ConsistencyLevel".into(), "eventual".into()));
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Absolute URL of `path` (which starts with `/` and may carry a query) in `version`.
    pub fn url(&self, version: ApiVersion, path: &str) -> String {
        format!("{}/{}{}", self.base, version.segment(), path)
    }

    pub async fn get_json<T: DeserializeOwned>(
        &self,
        version: ApiVersion,
        path: &str,
    ) -> Result<T, GraphError> {
        let url = self.url(version, path);
        self.send_url(Method::GET, &url, None)
            .await?
            .json(&format!("GET {path}"))
    }

    /// Reads every page of a collection, following `@odata.nextLink` to the end.
    pub async fn get_all<T: DeserializeOwned>(
        &self,
        version: ApiVersion,
        path: &str,
    ) -> Result<Vec<T>, GraphError> {
        let mut out = Vec::new();
        let mut url = self.url(version, path);
        let mut seen = std::collections::HashSet::new();
        loop {
            let page: Page<T> = self.get_page_url(&url).await?;
            out.extend(page.value);
            seen.insert(url);
            match page.next_link {
                // A link back to a page already read would loop forever.
                Some(next) if seen.contains(&next) || seen.len() >= MAX_PAGES => {
                    return Err(GraphError::Decode {
                        context: format!("GET {}", strip_query(path)),
                        message: format!(
                            "the pages do not end (after {} pages, the next link points back)",
                            seen.len()
                        ),
                    });
                }
                Some(next) => url = next,
                None => return Ok(out),
            }
        }
    }

    /// One page by absolute URL (a `@odata.nextLink` or [`GraphClient::url`]). Only URLs on this
    /// client's Graph host, or on the cloud's own Graph host (then fetched through this client's
    /// root), are followed, so a forged nextLink cannot receive our token.
    pub async fn get_page_url<T: DeserializeOwned>(
        &self,
        url: &str,
    ) -> Result<Page<T>, GraphError> {
        let Some(url) = self.follow_url(url) else {
            return Err(GraphError::Decode {
                context: "paging".into(),
                message: format!("next page link points outside Microsoft Graph: {url}"),
            });
        };
        self.send_url(Method::GET, &url, None)
            .await?
            .json(&format!("GET {url}"))
    }

    /// Where a next link is fetched from, or `None` when it is on neither Graph host.
    pub fn follow_url(&self, link: &str) -> Option<String> {
        let link_url = url::Url::parse(link).ok()?;
        let base = url::Url::parse(&self.base).ok()?;
        // The configured host: Graph (or the proxy) wrote the link itself.
        if link_url.origin() == base.origin() {
            return Some(link.to_string());
        }
        // The upstream Graph host, as Graph writes links behind a proxy: same path and query,
        // sent through the configured root. Userinfo or a different scheme/port is not Graph.
        let cloud = url::Url::parse(self.cloud_graph.as_deref()?).ok()?;
        if link_url.origin() != cloud.origin()
            || !link_url.username().is_empty()
            || link_url.password().is_some()
        {
            return None;
        }
        let cloud_path = cloud.path().trim_end_matches('/');
        let rest = link_url.path().strip_prefix(cloud_path)?;
        if !rest.starts_with('/') {
            return None;
        }
        Some(match link_url.query() {
            Some(q) => format!("{}{rest}?{q}", self.base),
            None => format!("{}{rest}", self.base),
        })
    }

    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        version: ApiVersion,
        path: &str,
        body: &B,
    ) -> Result<T, GraphError> {
        let body = to_body(body)?;
        self.send_url(Method::POST, &self.url(version, path), Some(body))
            .await?
            .json(&format!("POST {path}"))
    }

    /// A POST whose answer has no body we need (actions answering 204, `$ref` adds).
    pub async fn post_no_content<B: Serialize + ?Sized>(
        &self,
        version: ApiVersion,
        path: &str,
        body: Option<&B>,
    ) -> Result<GraphResponse, GraphError> {
        let body = match body {
            Some(b) => Some(to_body(b)?),
            None => None,
        };
        self.send_url(Method::POST, &self.url(version, path), body)
            .await
    }

    pub async fn patch_json<B: Serialize + ?Sized>(
        &self,
        version: ApiVersion,
        path: &str,
        body: &B,
    ) -> Result<GraphResponse, GraphError> {
        let body = to_body(body)?;
        self.send_url(Method::PATCH, &self.url(version, path), Some(body))
            .await
    }

    pub async fn delete(
        &self,
        version: ApiVersion,
        path: &str,
    ) -> Result<GraphResponse, GraphError> {
        self.send_url(Method::DELETE, &self.url(version, path), None)
            .await
    }

    /// Sends one request with retries. Every attempt carries a fresh `client-request-id`.
    pub async fn send_url(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> Result<GraphResponse, GraphError> {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(GraphError::Cancelled),
            r = self.send_inner(method, url, body) => r,
        }
    }

    async fn send_inner(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> Result<GraphResponse, GraphError> {
        // Connection errors are retried only where repeating the request cannot do harm twice.
        let idempotent = matches!(
            method,
            Method::GET | Method::PUT | Method::DELETE | Method::HEAD
        );
        let mut attempt: u32 = 0;
        let mut waited = Duration::ZERO;
        let mut refreshed = false;
        loop {
            attempt += 1;
            let token = self.tokens.access_token(refreshed).await?;
            let client_request_id = uuid::Uuid::new_v4().to_string();
            let mut req = self
                .http
                .request(method.clone(), url)
                .bearer_auth(&token)
                .header("client-request-id", &client_request_id)
                .header("return-client-request-id", "true")
                .header("Accept", "application/json");
            for (k, v) in &self.extra_headers {
                req = req.header(k, v);
            }
            if let Some(b) = &body {
                req = req
                    .header("Content-Type", "application/json")
                    .body(b.clone());
            }
            let started = std::time::Instant::now();
            let result = req.send().await;
            let resp = match result {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(%method, url = %strip_query(url), attempt, error = %e, "Graph request failed to connect");
                    if idempotent && let Some(delay) = self.next_wait(attempt, None, waited) {
                        waited += delay;
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(GraphError::Network {
                        message: network_message(&e),
                        attempts: attempt,
                    });
                }
            };
            let status = resp.status();
            let ids = RequestIds {
                request_id: header(&resp, "request-id"),
                client_request_id: header(&resp, "client-request-id").or(Some(client_request_id)),
                date: header(&resp, "date"),
            };
            let retry_after = header(&resp, "retry-after").and_then(|v| parse_retry_after(&v));
            let bytes = match read_capped(resp).await {
                Ok(Some(b)) => b,
                Ok(None) => {
                    return Err(GraphError::Decode {
                        context: format!("{method} {}", strip_query(url)),
                        message: format!(
                            "the answer is larger than {} MiB, far more than Graph sends",
                            MAX_RESPONSE_BYTES >> 20
                        ),
                    });
                }
                Err(e) => {
                    // A body cut off mid-way is a connection fault: same budget as any other.
                    if idempotent && let Some(delay) = self.next_wait(attempt, None, waited) {
                        waited += delay;
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(GraphError::Network {
                        message: network_message(&e),
                        attempts: attempt,
                    });
                }
            };
            tracing::debug!(
                %method,
                url = %strip_query(url),
                status = status.as_u16(),
                request_id = ids.request_id.as_deref().unwrap_or("-"),
                client_request_id = ids.client_request_id.as_deref().unwrap_or("-"),
                ms = started.elapsed().as_millis() as u64,
                "graph"
            );
            if status.is_success() {
                return Ok(GraphResponse {
                    status: status.as_u16(),
                    body: bytes,
                    ids,
                });
            }
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                refreshed = true;
                continue;
            }
            let retryable = matches!(status.as_u16(), 429 | 503 | 504);
            if retryable {
                if let Some(delay) = self.next_wait(attempt, retry_after, waited) {
                    tracing::info!(
                        status = status.as_u16(),
                        wait_ms = delay.as_millis() as u64,
                        attempt,
                        "Graph asked us to wait; retrying"
                    );
                    waited += delay;
                    tokio::time::sleep(delay).await;
                    continue;
                }
                return Err(GraphError::GaveUp {
                    status: status.as_u16(),
                    attempts: attempt,
                    ids,
                });
            }
            return Err(GraphError::from_response(status.as_u16(), &bytes, ids));
        }
    }

    /// How long to wait before the next attempt, or `None` once the attempt count or the total
    /// wait budget would be exceeded.
    fn next_wait(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        waited: Duration,
    ) -> Option<Duration> {
        let delay = self.backoff(attempt, retry_after);
        (attempt < self.retry.max_attempts && waited + delay <= self.retry.max_total_wait)
            .then_some(delay)
    }

    /// `Retry-After` when the server sent one (capped), else exponential backoff with full jitter.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.retry.max_delay);
        }
        let exp = self
            .retry
            .base_delay
            .saturating_mul(1u32 << (attempt.saturating_sub(1)).min(16));
        let cap = exp.min(self.retry.max_delay);
        let jitter: f64 = rand::random::<f64>();
        // Half fixed, half random: never zero, never in lockstep with other clients.
        cap.mul_f64(0.5 + 0.5 * jitter)
    }
}

fn to_body<B: Serialize + ?Sized>(body: &B) -> Result<Vec<u8>, GraphError> {
    serde_json::to_vec(body).map_err(|e| GraphError::Decode {
        context: "request body".into(),
        message: e.to_string(),
    })
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_string())
}

/// `Retry-After` is seconds, possibly fractional (`2.128`), per reference §8. HTTP dates are
/// not used by Graph; treat anything else as absent.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let secs: f64 = v.trim().parse().ok()?;
    if secs.is_finite() && secs >= 0.0 {
        Some(Duration::from_secs_f64(secs))
    } else {
        None
    }
}

fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn network_message(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the request timed out".into()
    } else if e.is_connect() {
        "the connection could not be opened".into()
    } else {
        // reqwest errors carry the URL; keep only the kind, never query strings.
        let s = e.to_string();
        s.split(" for url").next().unwrap_or(&s).to_string()
    }
}

/// The shared HTTP client: rustls with the system's trust store plus any extra CA
/// ([`super::tls`]), sensible timeouts, a recognisable user agent.
pub fn default_http() -> reqwest::Client {
    super::tls::with_extra_roots(reqwest::Client::builder())
        .user_agent(concat!("autopilot-wizard/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(120))
        .build()
        .expect("reqwest client with default TLS")
}

/// Quotes a string for an OData literal (`'` doubled) and percent-encodes it for a query.
pub fn odata_string(value: &str) -> String {
    let quoted = format!("'{}'", value.replace('\'', "''"));
    url::form_urlencoded::byte_serialize(quoted.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Percent-encodes one query value.
pub fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_fractional_seconds() {
        assert_eq!(
            parse_retry_after("2.128"),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn odata_literals_are_quoted_and_encoded() {
        assert_eq!(odata_string("O'Brien"), "%27O%27%27Brien%27");
        assert_eq!(encode("VMware-56 4d"), "VMware-56%204d");
    }
}
