//! Signing in to Microsoft Entra ID as a public client: browser sign-in (authorization code with
//! PKCE through a loopback redirect) and device code, plus the [`Authenticator`] that hands
//! access tokens to [`crate::graph::GraphClient`] and renews them with the refresh token.
//!
//! Access tokens live in memory only. The refresh token goes to the [`TokenStore`] once the
//! account is known ([`Authenticator::remember_as`]) and is saved again every time Entra
//! rotates it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oauth2::basic::{BasicClient, BasicErrorResponse, BasicTokenResponse};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, DeviceAuthorizationUrl, EndpointNotSet,
    EndpointSet, ErrorResponse, PkceCodeChallenge, RedirectUrl, RefreshToken, RequestTokenError,
    Scope, TokenResponse, TokenUrl,
};
use oauth2::{
    DeviceAuthorizationResponse, DeviceCodeErrorResponse, DeviceCodeErrorResponseType,
    ExtraDeviceAuthorizationFields,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::client::{BoxFuture, TokenSource};
use super::cloud::{ClientApp, Endpoints, request_scopes, short_scope};
use super::error::GraphError;
use super::token_store::{StoreKey, TokenStore, TokenStoreError};

/// What the wizard signs in to, and as which app. Plain data, kept across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuthConfig {
    pub endpoints: Endpoints,
    /// A domain (`contoso.com`), a tenant id, or empty for `organizations`.
    pub tenant: String,
    pub client: ClientApp,
}

impl AuthConfig {
    pub fn client_id(&self) -> &str {
        self.client.client_id()
    }

    /// The tenant segment of the login URLs.
    pub fn tenant_segment(&self) -> &str {
        let t = self.tenant.trim();
        if t.is_empty() { "organizations" } else { t }
    }
}

/// Opens a URL in the user's browser. Injected so tests can follow the URL with an HTTP client.
pub type Opener = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// The system browser, through the `webbrowser` crate.
pub fn browser_opener() -> Opener {
    Arc::new(|url: &str| webbrowser::open(url).map_err(|e| e.to_string()))
}

/// Waits between device-code polls. Injected so tests need not wait the server's interval.
pub type Sleeper = Arc<dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync>;

pub fn tokio_sleeper() -> Sleeper {
    Arc::new(|d| Box::pin(tokio::time::sleep(d)))
}

/// A sign-in failure, worded for the IT person at the keyboard. Never carries a token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthError {
    /// Entra answered with an OAuth error.
    #[error("{explanation} (Microsoft said: {error}{}{})", if description.is_empty() { "" } else { ": " }, description)]
    Service {
        /// The OAuth error code, such as `invalid_grant`.
        error: String,
        /// First line of `error_description`, which starts with the AADSTS code.
        description: String,
        /// AADSTS numbers found in the answer.
        codes: Vec<u32>,
        explanation: String,
    },
    #[error(
        "Could not reach the Microsoft sign-in service ({0}). Check the network connection, the proxy and the cloud selection, then try again."
    )]
    Network(String),
    #[error(
        "The sign-in service answered something this wizard did not expect ({0}). Check the cloud selection and any --login-url override."
    )]
    Unexpected(String),
    #[error(
        "The browser returned an answer that does not belong to the sign-in this wizard started (the state value did not match), so it was rejected. Start the sign-in again."
    )]
    StateMismatch,
    #[error(
        "Could not open a web browser ({0}). Use \"Sign in with a code\" instead, which works from any device."
    )]
    Browser(String),
    #[error(
        "Could not listen on this computer for the browser's answer ({0}). Use \"Sign in with a code\" instead."
    )]
    Listener(String),
    #[error(
        "No answer came back from the browser in time. Start the sign-in again, or use \"Sign in with a code\"."
    )]
    BrowserTimeout,
    #[error(
        "The code expired before the sign-in was finished. Press \"Sign in with a code\" again for a new code."
    )]
    DeviceCodeExpired,
    #[error(
        "The sign-in was declined on the verification page. If that was not intended, start again and choose Accept."
    )]
    Declined,
    #[error(
        "The saved sign-in is no longer accepted ({0}). Sign in again; the saved sign-in was removed."
    )]
    SignInRequired(String),
    #[error("The sign-in could not be saved: {0}")]
    Store(#[from] TokenStoreError),
    #[error("Sign-in cancelled.")]
    Cancelled,
}

impl AuthError {
    /// Builds the error from Entra's OAuth error answer. `error_description` starts with the
    /// AADSTS code; `error_codes` is not kept by the OAuth library, so the codes are read from
    /// the description.
    pub fn from_oauth(error: &str, description: Option<&str>) -> AuthError {
        let description = description.unwrap_or("");
        let codes = aadsts_codes(description);
        let first_line = description.lines().next().unwrap_or("").trim().to_string();
        AuthError::Service {
            error: error.to_string(),
            explanation: explain(error, &codes),
            description: first_line,
            codes,
        }
    }

    pub fn codes(&self) -> &[u32] {
        match self {
            AuthError::Service { codes, .. } => codes,
            _ => &[],
        }
    }

    /// Entra's OAuth error code, such as `invalid_grant`.
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            AuthError::Service { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Every `AADSTS<digits>` in the text, in order.
fn aadsts_codes(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("AADSTS") {
        rest = &rest[i + 6..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Ok(n) = digits.parse::<u32>()
            && !out.contains(&n)
        {
            out.push(n);
        }
    }
    out
}

/// A plain explanation of the common Entra sign-in failures.
fn explain(error: &str, codes: &[u32]) -> String {
    for code in codes {
        let s = match code {
            65001 | 90094 | 90095 => {
                "The app has not been granted the permissions the wizard needs in this tenant. A Global Administrator (or Privileged Role Administrator) must grant admin consent: sign in once as that administrator and accept \"Consent on behalf of your organization\", or grant it in the Entra admin center under Enterprise applications."
            }
            65004 => "The permission request was declined in the browser. Start again and accept.",
            700016 => {
                "The client id is not an app registered in this tenant (or in this cloud). Check the client id, or switch back to Microsoft Graph Command Line Tools."
            }
            7000218 | 700025 => {
                "The app registration does not allow public client flows. In the Entra admin center, open the app registration, Authentication, and turn on \"Allow public client flows\"."
            }
            50011 | 500113 => {
                "The app registration has no matching redirect URI. Add http://localhost as a \"Mobile and desktop applications\" redirect URI in the app registration, or use \"Sign in with a code\"."
            }
            90002 | 900023 => {
                "No tenant with that name or id was found. Check the tenant domain or id, and the cloud selection."
            }
            50020 | 50034 => {
                "This account does not exist in that tenant. Sign in with an account of the tenant (or leave the tenant empty to use the account's home tenant)."
            }
            50105 => {
                "Your account is not assigned to this app, and the app requires assignment. Ask an administrator to assign you in Enterprise applications."
            }
            53003 => {
                "Conditional Access blocked this sign-in. Ask your administrator to allow this app, or sign in from a compliant device."
            }
            50076 | 50079 | 50158 => {
                "Multi-factor authentication is required. Use \"Sign in with browser\" and complete the prompt."
            }
            50126 => "The user name or password is wrong.",
            50053 => {
                "The account is locked after too many failed sign-ins. Wait, or ask an administrator to unlock it."
            }
            70008 | 700082 | 700084 | 50173 | 50133 | 70043 => {
                "The saved sign-in has expired or was revoked. Sign in again."
            }
            501481 => {
                "The answer from the browser did not match this sign-in attempt (the PKCE check failed). Start the sign-in again."
            }
            500011 => {
                "Microsoft Graph was not found in this tenant's cloud. Check the cloud selection."
            }
            70016 => "The sign-in has not been completed on the verification page yet.",
            70020 => "The code expired. Ask for a new code.",
            _ => continue,
        };
        return s.to_string();
    }
    match error {
        "access_denied" | "authorization_declined" => {
            "The sign-in was cancelled or declined in the browser. Start again if that was not intended.".into()
        }
        "invalid_grant" => "The sign-in was not accepted. Sign in again.".into(),
        "invalid_client" | "unauthorized_client" => {
            "The app registration cannot be used for this sign-in. Check the client id and that public client flows are allowed.".into()
        }
        "invalid_scope" => {
            "Microsoft did not accept the permissions the wizard asks for. Check the cloud selection.".into()
        }
        "consent_required" | "interaction_required" => {
            "Microsoft needs you to sign in interactively (consent or multi-factor authentication). Use \"Sign in with browser\".".into()
        }
        "temporarily_unavailable" | "server_error" => {
            "The Microsoft sign-in service had a temporary problem. Try again in a minute.".into()
        }
        _ => "Microsoft refused the sign-in.".into(),
    }
}

/// The HTTP adapter's error: a short description of what failed, never a URL with a query.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// Tries per login request when the service sheds load (429/503/504) or the connection drops
/// before an answer, as MSAL does. Six: with a quarter of requests refused (the fault runs of
/// `sim`), a sign-in or refresh still fails only about once in 2,500.
const LOGIN_ATTEMPTS: u32 = 6;
/// Longest wait between tries, whatever `Retry-After` says.
const LOGIN_MAX_WAIT: Duration = Duration::from_secs(30);

/// oauth2 speaks `http` types; this sends them with the app's reqwest 0.13 client.
async fn send(
    http: &reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, HttpError> {
    let request = reqwest::Request::try_from(request)
        .map_err(|e| HttpError(format!("bad request: {}", kind(e))))?;
    let mut pending = Some(request);
    let mut attempt = 1;
    let response = loop {
        let Some(request) = pending.take() else {
            return Err(HttpError("no request to send".into()));
        };
        // A form body always clones; the copy is the next try.
        let next = if attempt < LOGIN_ATTEMPTS {
            request.try_clone()
        } else {
            None
        };
        let can_retry = next.is_some();
        let wait = match http.execute(request).await {
            Ok(resp) if can_retry && matches!(resp.status().as_u16(), 429 | 503 | 504) => resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(crate::graph::client::parse_retry_after)
                .unwrap_or(Duration::from_secs(u64::from(attempt))),
            Ok(resp) => break resp,
            Err(e) if can_retry && !e.is_timeout() && (e.is_connect() || e.is_request()) => {
                Duration::from_secs(u64::from(attempt))
            }
            Err(e) => return Err(HttpError(kind(e))),
        };
        tracing::debug!(
            attempt,
            wait_ms = wait.as_millis() as u64,
            "login service busy; trying again"
        );
        tokio::time::sleep(wait.min(LOGIN_MAX_WAIT)).await;
        pending = next;
        attempt += 1;
    };
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response.bytes().await.map_err(|e| HttpError(kind(e)))?;
    builder
        .body(body.to_vec())
        .map_err(|e| HttpError(e.to_string()))
}

fn kind(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "the request timed out".into()
    } else if e.is_connect() {
        "the connection could not be opened".into()
    } else {
        e.without_url().to_string()
    }
}

/// The HTTP client for the login service: no redirects (a token endpoint never redirects, and
/// following one could send the form elsewhere).
pub fn login_http() -> reqwest::Client {
    super::tls::with_extra_roots(reqwest::Client::builder())
        .user_agent(concat!("autopilot-wizard/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("reqwest client with default TLS")
}

type MsClient = BasicClient<EndpointSet, EndpointSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

fn oauth_client(config: &AuthConfig) -> Result<MsClient, AuthError> {
    let e = &config.endpoints;
    let tenant = config.tenant_segment();
    let bad = |what: &str, err: url::ParseError| {
        AuthError::Unexpected(format!("the {what} URL is not valid: {err}"))
    };
    Ok(
        BasicClient::new(ClientId::new(config.client_id().to_string()))
            .set_auth_uri(AuthUrl::new(e.authorize_url(tenant)).map_err(|x| bad("authorize", x))?)
            .set_device_authorization_url(
                DeviceAuthorizationUrl::new(e.device_code_url(tenant))
                    .map_err(|x| bad("device code", x))?,
            )
            .set_token_uri(TokenUrl::new(e.token_url(tenant)).map_err(|x| bad("token", x))?),
    )
}

fn map_token_error<TE>(e: RequestTokenError<HttpError, TE>) -> AuthError
where
    TE: ErrorResponse + 'static + OAuthErrorParts,
{
    match e {
        RequestTokenError::ServerResponse(r) => {
            let (error, description) = r.parts();
            AuthError::from_oauth(&error, description.as_deref())
        }
        RequestTokenError::Request(h) => AuthError::Network(h.0),
        // The body of an answer that did not parse may hold a token: never show it.
        RequestTokenError::Parse(err, _body) => {
            AuthError::Unexpected(format!("unreadable answer at {}", err.path()))
        }
        RequestTokenError::Other(s) => AuthError::Unexpected(s),
    }
}

/// The error code and description of an OAuth error answer, whatever its code type.
trait OAuthErrorParts {
    fn parts(&self) -> (String, Option<String>);
}

impl OAuthErrorParts for BasicErrorResponse {
    fn parts(&self) -> (String, Option<String>) {
        (
            self.error().as_ref().to_string(),
            self.error_description().cloned(),
        )
    }
}

impl OAuthErrorParts for DeviceCodeErrorResponse {
    fn parts(&self) -> (String, Option<String>) {
        (
            self.error().as_ref().to_string(),
            self.error_description().cloned(),
        )
    }
}

/// Microsoft's device-code answer carries a ready-made `message` for the user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MsDeviceFields {
    #[serde(default)]
    message: Option<String>,
}

impl ExtraDeviceAuthorizationFields for MsDeviceFields {}

/// What to show while waiting for a device-code sign-in. Plain data, no secrets: the user code
/// is meant to be read and typed by a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCodePrompt {
    pub user_code: String,
    pub verification_uri: String,
    /// Microsoft's own instruction sentence, when it sent one.
    pub message: Option<String>,
    pub expires_in_secs: u64,
}

/// A started device-code sign-in: the prompt plus the device code needed to poll (secret).
pub struct DeviceCode {
    pub prompt: DeviceCodePrompt,
    details: DeviceAuthorizationResponse<MsDeviceFields>,
}

impl std::fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCode")
            .field("prompt", &self.prompt)
            .finish_non_exhaustive()
    }
}

/// The sign-in flows for one configuration. Cheap to clone.
#[derive(Clone)]
pub struct SignInFlows {
    config: AuthConfig,
    /// Full scope strings asked at every sign-in and refresh (the procedure's permissions).
    scopes: Arc<[String]>,
    http: reqwest::Client,
    store: Arc<dyn TokenStore>,
    opener: Opener,
    sleeper: Sleeper,
    browser_timeout: Duration,
}

impl std::fmt::Debug for SignInFlows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInFlows")
            .field("config", &self.config)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl SignInFlows {
    /// `permissions`: the delegated Graph permissions to ask for, short form (the procedure
    /// declares them: `steps::required_permissions`).
    pub fn new(config: AuthConfig, store: Arc<dyn TokenStore>, permissions: &[&str]) -> Self {
        SignInFlows {
            scopes: request_scopes(config.endpoints.cloud, permissions).into(),
            config,
            http: login_http(),
            store,
            opener: browser_opener(),
            sleeper: tokio_sleeper(),
            browser_timeout: Duration::from_secs(300),
        }
    }

    pub fn with_opener(mut self, opener: Opener) -> Self {
        self.opener = opener;
        self
    }

    pub fn with_sleeper(mut self, sleeper: Sleeper) -> Self {
        self.sleeper = sleeper;
        self
    }

    pub fn with_http(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// How long the browser sign-in waits for the redirect (five minutes by default).
    pub fn with_browser_timeout(mut self, timeout: Duration) -> Self {
        self.browser_timeout = timeout;
        self
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.store
    }

    /// Browser sign-in: authorization code with PKCE (S256). Listens on 127.0.0.1 on a free
    /// port, opens the authorize URL, serves exactly one answer and checks its `state`.
    pub async fn browser(&self, cancel: &CancellationToken) -> Result<Authenticator, AuthError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| AuthError::Listener(e.to_string()))?;
        let port = listener
            .local_addr()
            .map_err(|e| AuthError::Listener(e.to_string()))?
            .port();
        // `http://localhost` is the redirect Microsoft Graph Command Line Tools registers; Entra
        // ignores the port of loopback redirect URIs, so any free port works.
        let redirect = format!("http://localhost:{port}");
        let client = oauth_client(&self.config)?.set_redirect_uri(
            RedirectUrl::new(redirect.clone()).map_err(|e| AuthError::Listener(e.to_string()))?,
        );
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(self.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge)
            .add_extra_param("prompt", "select_account")
            .url();
        (self.opener)(url.as_str()).map_err(AuthError::Browser)?;
        tracing::info!(port, "waiting for the browser sign-in to come back");

        let code = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(AuthError::Cancelled),
            r = tokio::time::timeout(self.browser_timeout, wait_for_redirect(&listener, state.secret())) => {
                r.map_err(|_| AuthError::BrowserTimeout)??
            }
        };
        drop(listener);

        let http = self.http.clone();
        let send_fn = move |r| {
            let http = http.clone();
            async move { send(&http, r).await }
        };
        let request = client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(verifier)
            .add_extra_param("scope", self.scopes.join(" "));
        let token = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(AuthError::Cancelled),
            r = request.request_async(&send_fn) => r.map_err(map_token_error)?,
        };
        Ok(self.accept(token, None))
    }

    /// Starts a device-code sign-in and returns what to show the user.
    pub async fn start_device_code(&self) -> Result<DeviceCode, AuthError> {
        let client = oauth_client(&self.config)?;
        let http = self.http.clone();
        let send_fn = move |r| {
            let http = http.clone();
            async move { send(&http, r).await }
        };
        let details: DeviceAuthorizationResponse<MsDeviceFields> = client
            .exchange_device_code()
            .add_scopes(self.scopes.iter().cloned().map(Scope::new))
            .request_async(&send_fn)
            .await
            .map_err(map_token_error)?;
        let prompt = DeviceCodePrompt {
            user_code: details.user_code().secret().clone(),
            verification_uri: details.verification_uri().to_string(),
            message: details.extra_fields().message.clone(),
            expires_in_secs: details.expires_in().as_secs(),
        };
        Ok(DeviceCode { prompt, details })
    }

    /// Polls until the user finished (or declined) the device-code sign-in, the code expired,
    /// or `cancel` fired. `authorization_pending` keeps the interval, `slow_down` adds 5 s.
    pub async fn finish_device_code(
        &self,
        code: &DeviceCode,
        cancel: &CancellationToken,
    ) -> Result<Authenticator, AuthError> {
        let client = oauth_client(&self.config)?;
        let http = self.http.clone();
        let send_fn = move |r| {
            let http = http.clone();
            async move { send(&http, r).await }
        };
        let sleeper = self.sleeper.clone();
        let sleep_fn = move |d: Duration| sleeper(d);
        let poll = client
            .exchange_device_access_token(&code.details)
            .request_async(&send_fn, sleep_fn, None);
        let result = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(AuthError::Cancelled),
            r = poll => r,
        };
        match result {
            Ok(token) => Ok(self.accept(token, None)),
            Err(RequestTokenError::ServerResponse(r)) => Err(match r.error() {
                DeviceCodeErrorResponseType::ExpiredToken => AuthError::DeviceCodeExpired,
                DeviceCodeErrorResponseType::AccessDenied => AuthError::Declined,
                other if other.as_ref() == "authorization_declined" => AuthError::Declined,
                _ => map_token_error(RequestTokenError::<HttpError, _>::ServerResponse(r)),
            }),
            Err(e) => Err(map_token_error(e)),
        }
    }

    /// Signs in without the user, from the refresh token saved for `key`. `Ok(None)` when
    /// nothing is saved. A saved token Entra no longer accepts is removed.
    pub async fn silent(&self, key: &StoreKey) -> Result<Option<Authenticator>, AuthError> {
        let store = self.store.clone();
        let k = key.clone();
        let Some(refresh) = blocking(move || store.load(&k)).await? else {
            return Ok(None);
        };
        let auth = self.accept_refresh(refresh, key.clone());
        match auth.refresh().await {
            Ok(()) => Ok(Some(auth)),
            Err(e @ AuthError::Service { .. }) if e.oauth_error() == Some("invalid_grant") => {
                let store = self.store.clone();
                let k = key.clone();
                // Best effort: a token that is refused once is refused forever.
                let _ = blocking(move || store.delete(&k)).await;
                let reason = match &e {
                    AuthError::Service { description, .. } => description.clone(),
                    _ => String::new(),
                };
                Err(AuthError::SignInRequired(reason))
            }
            Err(e) => Err(e),
        }
    }

    fn accept(&self, token: BasicTokenResponse, key: Option<StoreKey>) -> Authenticator {
        let mut tokens = Tokens::default();
        let scopes = take(&self.scopes, &token, &mut tokens);
        self.session(tokens, scopes, key)
    }

    fn accept_refresh(&self, refresh: String, key: StoreKey) -> Authenticator {
        let tokens = Tokens {
            access: None,
            refresh: Some(Secret(refresh)),
        };
        self.session(tokens, Vec::new(), Some(key))
    }

    fn session(&self, tokens: Tokens, scopes: Vec<String>, key: Option<StoreKey>) -> Authenticator {
        Authenticator {
            inner: Arc::new(Inner {
                config: self.config.clone(),
                requested: self.scopes.clone(),
                http: self.http.clone(),
                store: self.store.clone(),
                tokens: tokio::sync::Mutex::new(tokens),
                scopes: Mutex::new(scopes),
                key: Mutex::new(key),
            }),
        }
    }
}

/// Removes the saved sign-in for `key` (sign out when no session is open).
pub async fn forget(store: Arc<dyn TokenStore>, key: StoreKey) -> Result<(), TokenStoreError> {
    blocking(move || store.delete(&key)).await
}

/// Runs a credential-store call off the async threads (the platform stores block).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TokenStoreError> + Send + 'static,
) -> Result<T, TokenStoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(TokenStoreError::Platform(e.to_string())))
}

/// A string that never shows itself in Debug output.
#[derive(Clone)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Default)]
struct Tokens {
    /// The access token and when to renew it.
    access: Option<(Secret, Instant)>,
    refresh: Option<Secret>,
}

struct Inner {
    config: AuthConfig,
    /// The scopes the sign-in asked for; a refresh asks for the same.
    requested: Arc<[String]>,
    http: reqwest::Client,
    store: Arc<dyn TokenStore>,
    /// Async lock: concurrent Graph calls wait for one refresh instead of starting several.
    tokens: tokio::sync::Mutex<Tokens>,
    scopes: Mutex<Vec<String>>,
    key: Mutex<Option<StoreKey>>,
}

/// Takes the tokens of an answer into `tokens` and returns the granted scopes, short form.
fn take(requested: &[String], token: &BasicTokenResponse, tokens: &mut Tokens) -> Vec<String> {
    let lifetime = token.expires_in().unwrap_or(Duration::from_secs(3600));
    tokens.access = Some((
        Secret(token.access_token().secret().clone()),
        Instant::now() + lifetime - renewal_margin(lifetime),
    ));
    // Entra sends a refresh token on every answer when offline_access was granted; keep the
    // old one if an answer comes without.
    if let Some(r) = token.refresh_token() {
        tokens.refresh = Some(Secret(r.secret().clone()));
    }
    match token.scopes() {
        Some(s) => s
            .iter()
            .map(|x| short_scope(x.as_str()).to_string())
            .collect(),
        // `scope` may be omitted when exactly what was asked was granted (RFC 6749 §5.1).
        None => requested
            .iter()
            .map(|s| short_scope(s).to_string())
            .collect(),
    }
}

/// A signed-in session: hands out access tokens, renews them with the refresh token, saves the
/// rotated refresh token. Use it as the [`TokenSource`] of a [`crate::graph::GraphClient`].
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tenant", &self.inner.config.tenant)
            .field("client_id", &self.inner.config.client_id())
            .field("key", &self.key())
            .finish_non_exhaustive()
    }
}

/// How long before the expiry Entra announced a token is renewed, so it does not lapse in
/// flight: a minute, but never more than a fifth of its lifetime. A fixed minute would renew a
/// token that lives less than that before every single request.
pub fn renewal_margin(lifetime: Duration) -> Duration {
    Duration::from_secs(60).min(lifetime / 5)
}

impl Authenticator {
    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    /// Granted delegated scopes, short form (`Group.ReadWrite.All`).
    pub fn granted_scopes(&self) -> Vec<String> {
        self.inner
            .scopes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The store entry the refresh token is saved under, once known.
    pub fn key(&self) -> Option<StoreKey> {
        self.inner
            .key
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// True when the refresh token survives a restart.
    pub fn remembered(&self) -> bool {
        self.inner.store.remembers()
    }

    /// Saves the refresh token under `key` (tenant id + account, known once `/me` and
    /// `/organization` were read) and keeps saving rotated tokens there.
    pub async fn remember_as(&self, key: StoreKey) -> Result<(), TokenStoreError> {
        *self.inner.key.lock().unwrap_or_else(|p| p.into_inner()) = Some(key.clone());
        let refresh = self.inner.tokens.lock().await.refresh.clone();
        match refresh {
            Some(Secret(rt)) => {
                let store = self.inner.store.clone();
                blocking(move || store.save(&key, &rt)).await
            }
            None => Ok(()),
        }
    }

    /// Forgets the tokens and removes the saved refresh token. True when a sign-in that would
    /// have outlived the wizard was removed; false when nothing was kept past this run (no
    /// credential store, or nothing saved in it), so the person is not told otherwise.
    pub async fn sign_out(&self) -> Result<bool, TokenStoreError> {
        {
            let mut t = self.inner.tokens.lock().await;
            t.access = None;
            t.refresh = None;
        }
        let Some(key) = self.key() else {
            return Ok(false);
        };
        let store = self.inner.store.clone();
        blocking(move || {
            let saved = store.remembers() && store.load(&key)?.is_some();
            store.delete(&key)?;
            Ok(saved)
        })
        .await
    }

    /// A valid access token: the cached one, or a new one from the refresh token when it is due
    /// for renewal ([`renewal_margin`] before it expires) or `force_refresh` is set (Graph
    /// answered 401).
    pub async fn token(&self, force_refresh: bool) -> Result<String, AuthError> {
        let mut tokens = self.inner.tokens.lock().await;
        if !force_refresh
            && let Some((Secret(t), renew_at)) = &tokens.access
            && Instant::now() < *renew_at
        {
            return Ok(t.clone());
        }
        self.refresh_locked(&mut tokens).await?;
        match &tokens.access {
            Some((Secret(t), _)) => Ok(t.clone()),
            None => Err(AuthError::SignInRequired("no access token".into())),
        }
    }

    /// Redeems the refresh token now.
    pub async fn refresh(&self) -> Result<(), AuthError> {
        let mut tokens = self.inner.tokens.lock().await;
        self.refresh_locked(&mut tokens).await
    }

    async fn refresh_locked(&self, tokens: &mut Tokens) -> Result<(), AuthError> {
        let Some(Secret(rt)) = tokens.refresh.clone() else {
            return Err(AuthError::SignInRequired(
                "there is no refresh token; the session was signed out".into(),
            ));
        };
        let client = oauth_client(&self.inner.config)?;
        let http = self.inner.http.clone();
        let send_fn = move |r| {
            let http = http.clone();
            async move { send(&http, r).await }
        };
        let refresh = RefreshToken::new(rt.clone());
        let token = client
            .exchange_refresh_token(&refresh)
            .add_scopes(self.inner.requested.iter().cloned().map(Scope::new))
            .request_async(&send_fn)
            .await
            .map_err(map_token_error)?;
        let scopes = take(&self.inner.requested, &token, tokens);
        *self.inner.scopes.lock().unwrap_or_else(|p| p.into_inner()) = scopes;
        let rotated = match &tokens.refresh {
            Some(Secret(new)) if *new != rt => Some(new.clone()),
            _ => None,
        };
        if let (Some(new), Some(key)) = (rotated, self.key()) {
            let store = self.inner.store.clone();
            if let Err(e) = blocking(move || store.save(&key, &new)).await {
                // The session keeps working; only the next start will ask for a sign-in.
                tracing::warn!(error = %e, "could not save the renewed sign-in");
            }
        }
        Ok(())
    }
}

impl TokenSource for Authenticator {
    fn access_token(&self, force_refresh: bool) -> BoxFuture<'_, Result<String, GraphError>> {
        Box::pin(async move {
            self.token(force_refresh)
                .await
                .map_err(|e| GraphError::Auth(e.to_string()))
        })
    }
}

/// Waits for the browser's redirect on the loopback listener and returns the authorization
/// code. Connections that are not the redirect (favicon, pre-connects) get a 404 and the wait
/// goes on; the first redirect carrying a `state` ends it, accepted or rejected.
async fn wait_for_redirect(
    listener: &tokio::net::TcpListener,
    expected_state: &str,
) -> Result<String, AuthError> {
    loop {
        let (mut stream, _) = listener
            .accept()
            .await
            .map_err(|e| AuthError::Listener(e.to_string()))?;
        let target =
            match tokio::time::timeout(Duration::from_secs(10), read_target(&mut stream)).await {
                Ok(Some(t)) => t,
                _ => continue,
            };
        let url = match url::Url::parse(&format!("http://localhost{target}")) {
            Ok(u) => u,
            Err(_) => {
                let _ = respond(
                    &mut stream,
                    400,
                    "Bad request",
                    "This is not a sign-in answer.",
                )
                .await;
                continue;
            }
        };
        let mut code = None;
        let mut state = None;
        let mut error = None;
        let mut description = None;
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "code" => code = Some(v.into_owned()),
                "state" => state = Some(v.into_owned()),
                "error" => error = Some(v.into_owned()),
                "error_description" => description = Some(v.into_owned()),
                _ => {}
            }
        }
        if url.path() != "/" || (state.is_none() && code.is_none() && error.is_none()) {
            let _ = respond(&mut stream, 404, "Not found", "Nothing here.").await;
            continue;
        }
        // Compare digests so the comparison takes the same time whatever matches.
        let matches = state
            .as_deref()
            .map(|s| Sha256::digest(s.as_bytes()) == Sha256::digest(expected_state.as_bytes()))
            .unwrap_or(false);
        if !matches {
            let _ = respond(
                &mut stream,
                400,
                "Sign-in rejected",
                "This answer does not belong to the sign-in the Autopilot wizard started, so it was rejected. Return to the wizard and start again.",
            )
            .await;
            return Err(AuthError::StateMismatch);
        }
        if let Some(error) = error {
            let err = AuthError::from_oauth(&error, description.as_deref());
            let _ = respond(
                &mut stream,
                200,
                "Sign-in failed",
                "The sign-in did not complete. Return to the Autopilot wizard to see why.",
            )
            .await;
            return Err(err);
        }
        let Some(code) = code else {
            let _ = respond(
                &mut stream,
                400,
                "Sign-in failed",
                "The answer had no code.",
            )
            .await;
            return Err(AuthError::Unexpected(
                "the browser's answer carried neither a code nor an error".into(),
            ));
        };
        let _ = respond(
            &mut stream,
            200,
            "Signed in",
            "You are signed in to the Autopilot wizard. You can close this tab and return to the wizard.",
        )
        .await;
        return Ok(code);
    }
}

/// Reads an HTTP request head and returns its target (`/?code=...`), or None if it is not a GET.
async fn read_target(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > 32 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let line = head.lines().next()?;
    let mut parts = line.split_whitespace();
    if parts.next()? != "GET" {
        return None;
    }
    let target = parts.next()?;
    target.starts_with('/').then(|| target.to_string())
}

async fn respond(
    stream: &mut tokio::net::TcpStream,
    status: u16,
    title: &str,
    text: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;margin:3em\"><h1>{title}</h1><p>{text}</p></body></html>"
    );
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aadsts_codes_are_read_from_the_description() {
        let e = AuthError::from_oauth(
            "invalid_grant",
            Some(
                "AADSTS65001: The user or administrator has not consented to use the application.\r\nTrace ID: x\r\nCorrelation ID: y",
            ),
        );
        assert_eq!(e.codes(), &[65001]);
        let text = e.to_string();
        assert!(text.contains("admin consent"), "{text}");
        assert!(text.contains("AADSTS65001"), "{text}");
        assert!(!text.contains("Trace ID"), "{text}");
    }

    #[test]
    fn unknown_codes_fall_back_to_the_oauth_error() {
        let e = AuthError::from_oauth("access_denied", None);
        assert!(e.to_string().contains("cancelled or declined"));
        let e = AuthError::from_oauth(
            "invalid_client",
            Some("AADSTS7000218: The request body must contain client_assertion"),
        );
        assert!(e.to_string().contains("Allow public client flows"));
    }
}
