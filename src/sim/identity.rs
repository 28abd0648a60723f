//! Identity platform endpoints: `/{tenant}/oauth2/v2.0/{devicecode,token,authorize}`.
//!
//! Written from the Microsoft identity platform's wire format (reference §1 and the OAuth RFCs),
//! independently of the wizard's client. Any tenant segment is accepted (`organizations`, a
//! domain, a GUID): the demo tenant answers for all of them. Sign-ins authenticate as
//! `core.interactive_user_id`. Tokens are opaque random strings filed in `core`'s grant tables,
//! which the bearer middleware checks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Shared;
use super::core::{AccessGrant, RefreshGrant};

/// Permissions the demo tenant has consented for any client (delegated, short names), for the
/// areas of the core directory and Autopilot; areas with their own module add theirs
/// ([`super::consented_permissions`]).
pub const CONSENTED: &[&str] = &[
    "DeviceManagementServiceConfig.ReadWrite.All",
    "DeviceManagementServiceConfig.Read.All",
    "Group.ReadWrite.All",
    "Device.Read.All",
    "Policy.Read.All",
    "User.ReadBasic.All",
    "User.Read",
];

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Sign-ins in progress plus the knobs tests turn.
#[derive(Debug)]
pub struct IdentityState {
    device_codes: HashMap<String, DeviceGrant>,
    auth_codes: HashMap<String, CodeGrant>,
    /// Answer this many upcoming device-code polls with `slow_down` (before anything else).
    pub slow_down_polls: u32,
    /// Lifetime of new device codes, wall-clock (a person types them).
    pub device_code_lifetime: Duration,
    /// Lifetime of new access tokens, wall-clock (reported as `expires_in`).
    pub access_token_lifetime: Duration,
    /// Lifetime of new refresh tokens, wall-clock.
    pub refresh_token_lifetime: Duration,
    /// The user declines on the verification page / consent prompt.
    pub decline: bool,
    /// Delegated permissions the tenant has *not* consented (short names), to simulate a
    /// missing admin consent: they are left out of granted scopes.
    pub withheld_scopes: Vec<String>,
    /// How many token requests were answered, by grant type (for tests).
    pub token_requests: HashMap<String, u32>,
}

impl Default for IdentityState {
    fn default() -> Self {
        IdentityState {
            device_codes: HashMap::new(),
            auth_codes: HashMap::new(),
            slow_down_polls: 0,
            device_code_lifetime: Duration::from_secs(900),
            access_token_lifetime: Duration::from_secs(3599),
            refresh_token_lifetime: Duration::from_secs(90 * 24 * 3600),
            decline: false,
            withheld_scopes: Vec::new(),
            token_requests: HashMap::new(),
        }
    }
}

#[derive(Debug, Clone)]
struct DeviceGrant {
    client_id: String,
    scopes: Vec<String>,
    polls: u32,
    expires_at: Instant,
}

#[derive(Debug, Clone)]
struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    challenge_method: String,
    scopes: Vec<String>,
    expires_at: Instant,
    /// OpenID Connect `nonce` of the authorize request, echoed in the id_token.
    nonce: Option<String>,
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/devicecode", post(device_code))
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/{tenant}/oauth2/v2.0/authorize", get(authorize))
        .route("/{tenant}/oauth2/v2.0/logout", get(logout))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(jwks))
}

fn random_token(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// An Entra-style OAuth error answer: `error`, `error_description` starting with the AADSTS
/// code and ending with trace/correlation ids and a timestamp, `error_codes`, ids.
fn oauth_error(status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    let trace_id = uuid::Uuid::new_v4().to_string();
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let timestamp = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    let description = format!(
        "AADSTS{code}: {text} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}"
    );
    let body = json!({
        "error": error,
        "error_description": description,
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (status, no_store(), Json(body)).into_response()
}

fn no_store() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CACHE_CONTROL,
        "no-store".parse().expect("static header"),
    );
    h
}

/// `https://graph.microsoft.com/Group.ReadWrite.All` and `Group.ReadWrite.All` are one scope.
fn short(scope: &str) -> &str {
    if scope.contains("://") {
        scope.rsplit('/').next().unwrap_or(scope)
    } else {
        scope
    }
}

/// The delegated Graph permissions granted for a request's `scope` parameter: what was asked
/// and consented (`.default` means everything consented), always with `User.Read`.
fn granted(requested: &str, withheld: &[String]) -> (Vec<String>, bool) {
    let consented = super::consented_permissions();
    let mut out: Vec<String> = Vec::new();
    let mut offline = false;
    for s in requested.split_whitespace() {
        let name = short(s);
        match name {
            "offline_access" => offline = true,
            "openid" | "profile" | "email" => {}
            ".default" => out.extend(consented.iter().map(|c| c.to_string())),
            other => {
                if consented.contains(&other) {
                    out.push(other.to_string())
                }
            }
        }
    }
    out.push("User.Read".to_string());
    out.retain(|s| !withheld.iter().any(|w| w.eq_ignore_ascii_case(s)));
    out.sort();
    out.dedup();
    (out, offline)
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    form.get(name).map(|s| s.as_str()).filter(|s| !s.is_empty())
}

fn missing(name: &str) -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{name}'."),
    )
}

async fn device_code(
    State(shared): State<Shared>,
    Path(_tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(client_id) = field(&form, "client_id") else {
        return missing("client_id");
    };
    let Some(scope) = field(&form, "scope") else {
        return missing("scope");
    };
    let device_code = random_token(48);
    let user_code: String = (0..9)
        .map(|_| {
            const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
            ALPHABET[rand::random_range(0..ALPHABET.len())] as char
        })
        .collect();
    let mut state = shared.lock();
    let lifetime = state.identity.device_code_lifetime;
    state.identity.device_codes.insert(
        device_code.clone(),
        DeviceGrant {
            client_id: client_id.to_string(),
            scopes: scope.split_whitespace().map(str::to_string).collect(),
            polls: 0,
            expires_at: Instant::now() + lifetime,
        },
    );
    let verification_uri = "https://microsoft.com/devicelogin";
    let body = json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": verification_uri,
        "expires_in": lifetime.as_secs(),
        "interval": 5,
        "message": format!(
            "To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."
        ),
    });
    (StatusCode::OK, no_store(), Json(body)).into_response()
}

async fn authorize(
    State(shared): State<Shared>,
    Path(_tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let page = |status: StatusCode, code: u32, text: &str| {
        // Entra shows an error page (no redirect) when it cannot trust the redirect URI.
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            format!("<html><body><h1>Sign in</h1><p>AADSTS{code}: {text}</p></body></html>"),
        )
            .into_response()
    };
    let Some(client_id) = field(&q, "client_id") else {
        return page(
            StatusCode::BAD_REQUEST,
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let Some(redirect_uri) = field(&q, "redirect_uri") else {
        return page(
            StatusCode::BAD_REQUEST,
            900144,
            "The request body must contain the following parameter: 'redirect_uri'.",
        );
    };
    let loopback = ["http://localhost", "http://127.0.0.1"].iter().any(|p| {
        redirect_uri == *p
            || redirect_uri.starts_with(&format!("{p}:"))
            || redirect_uri.starts_with(&format!("{p}/"))
    });
    if !loopback {
        return page(
            StatusCode::BAD_REQUEST,
            50011,
            &format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'."
            ),
        );
    }
    let state_param = q.get("state").cloned();
    let redirect = |pairs: Vec<(&str, String)>| {
        let mut url = match url::Url::parse(redirect_uri) {
            Ok(u) => u,
            Err(_) => {
                return page(
                    StatusCode::BAD_REQUEST,
                    50011,
                    "The redirect URI is not valid.",
                );
            }
        };
        {
            let mut qp = url.query_pairs_mut();
            for (k, v) in &pairs {
                qp.append_pair(k, v);
            }
            if let Some(s) = &state_param {
                qp.append_pair("state", s);
            }
        }
        (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
    };
    if field(&q, "response_type") != Some("code") {
        return redirect(vec![
            ("error", "unsupported_response_type".into()),
            (
                "error_description",
                "AADSTS700054: response_type 'code' is required.".into(),
            ),
        ]);
    }
    let challenge = q.get("code_challenge").cloned();
    let method = q
        .get("code_challenge_method")
        .cloned()
        .unwrap_or_else(|| "plain".into());
    if challenge.is_some() && method != "S256" && method != "plain" {
        return redirect(vec![
            ("error", "invalid_request".into()),
            (
                "error_description",
                "AADSTS501491: Invalid code_challenge_method.".into(),
            ),
        ]);
    }
    let mut st = shared.lock();
    if st.identity.decline {
        return redirect(vec![
            ("error", "access_denied".into()),
            (
                "error_description",
                "AADSTS65004: User declined to consent to access the app.".into(),
            ),
        ]);
    }
    let code = random_token(64);
    st.identity.auth_codes.insert(
        code.clone(),
        CodeGrant {
            client_id: client_id.to_string(),
            redirect_uri: redirect_uri.to_string(),
            challenge,
            challenge_method: method,
            scopes: q
                .get("scope")
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            expires_at: Instant::now() + Duration::from_secs(600),
            nonce: q.get("nonce").cloned(),
        },
    );
    drop(st);
    redirect(vec![("code", code)])
}

async fn token(
    State(shared): State<Shared>,
    Path(_tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(grant_type) = field(&form, "grant_type").map(str::to_string) else {
        return missing("grant_type");
    };
    let Some(client_id) = field(&form, "client_id").map(str::to_string) else {
        return missing("client_id");
    };
    {
        let mut st = shared.lock();
        *st.identity
            .token_requests
            .entry(grant_type.clone())
            .or_insert(0) += 1;
    }
    match grant_type.as_str() {
        DEVICE_CODE_GRANT => device_code_token(&shared, &client_id, &form),
        "authorization_code" => code_token(&shared, &client_id, &form),
        "refresh_token" => refresh_token(&shared, &client_id, &form),
        other => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{other}'."),
        ),
    }
}

fn device_code_token(shared: &Shared, client_id: &str, form: &HashMap<String, String>) -> Response {
    let Some(code) = field(form, "device_code") else {
        return missing("device_code");
    };
    let approve_after = shared.config.approve_device_code_after_polls;
    let mut st = shared.lock();
    let Some(grant) = st.identity.device_codes.get_mut(code) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "bad_verification_code",
            70019,
            "Verification code is not recognized.",
        );
    };
    if grant.client_id != client_id {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70000,
            "The provided value for the 'device_code' parameter is not valid for this client.",
        );
    }
    if Instant::now() >= grant.expires_at {
        st.identity.device_codes.remove(code);
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "expired_token",
            70020,
            "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
        );
    }
    if st.identity.slow_down_polls > 0 {
        st.identity.slow_down_polls -= 1;
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "slow_down",
            70016,
            "Polling too frequently; wait longer between requests.",
        );
    }
    let Some(grant) = st.identity.device_codes.get_mut(code) else {
        return missing("device_code");
    };
    grant.polls += 1;
    if grant.polls < approve_after.max(1) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "authorization_pending",
            70016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        );
    }
    let grant = st
        .identity
        .device_codes
        .remove(code)
        .expect("present above");
    if st.identity.decline {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "authorization_declined",
            70000,
            "The user declined the authorization request.",
        );
    }
    drop(st);
    issue(shared, client_id, &grant.scopes.join(" "), form, None)
}

fn code_token(shared: &Shared, client_id: &str, form: &HashMap<String, String>) -> Response {
    let Some(code) = field(form, "code") else {
        return missing("code");
    };
    let mut st = shared.lock();
    // Codes are single use: taken out whether or not the redemption succeeds.
    let Some(grant) = st.identity.auth_codes.remove(code) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70000,
            "The provided value for the 'code' parameter is not valid. The code has been redeemed already or is not valid.",
        );
    };
    drop(st);
    if Instant::now() >= grant.expires_at {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity.",
        );
    }
    if grant.client_id != client_id {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70000,
            "The code was issued to another application.",
        );
    }
    if field(form, "redirect_uri") != Some(grant.redirect_uri.as_str()) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            500112,
            "The reply address does not match the reply address that was provided when requesting the authorization code.",
        );
    }
    if let Some(challenge) = &grant.challenge {
        let Some(verifier) = field(form, "code_verifier") else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                50148,
                "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.",
            );
        };
        let computed = if grant.challenge_method == "S256" {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(verifier.as_bytes()))
        } else {
            verifier.to_string()
        };
        if &computed != challenge {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            );
        }
    }
    let scope = field(form, "scope")
        .map(str::to_string)
        .unwrap_or_else(|| grant.scopes.join(" "));
    issue(shared, client_id, &scope, form, grant.nonce.as_deref())
}

fn refresh_token(shared: &Shared, client_id: &str, form: &HashMap<String, String>) -> Response {
    let Some(rt) = field(form, "refresh_token") else {
        return missing("refresh_token");
    };
    let mut st = shared.lock();
    let Some(grant) = st.core.refresh_tokens.get(rt).cloned() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity or was revoked.",
        );
    };
    if Instant::now() >= grant.expires_at {
        st.core.refresh_tokens.remove(rt);
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            700082,
            "The refresh token has expired due to inactivity.",
        );
    }
    if grant.client_id != client_id {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            700003,
            "The refresh token was issued to a different client id.",
        );
    }
    // Entra hands out a new refresh token with every redemption but does not revoke the one
    // redeemed: it stays usable until it expires or the user's sessions are revoked. A client
    // that lost the answer (dropped connection, killed process) can redeem it again.
    drop(st);
    // A refresh may ask for fewer scopes, never more than the original grant.
    let requested = field(form, "scope").map(str::to_string).unwrap_or_else(|| {
        let mut s = grant.scopes.join(" ");
        if grant.openid {
            s.push_str(" openid profile");
        }
        s
    });
    let narrowed: Vec<&str> = requested
        .split_whitespace()
        .filter(|s| {
            let n = short(s);
            matches!(
                n,
                "offline_access" | "openid" | "profile" | "email" | ".default"
            ) || grant.scopes.iter().any(|g| g == n)
        })
        .collect();
    let mut scope = narrowed.join(" ");
    if !scope.split_whitespace().any(|s| s == "offline_access") {
        // The original grant had offline_access (it produced this refresh token).
        scope.push_str(" offline_access");
    }
    issue_for(shared, &grant.user_id, client_id, &scope, form, None)
}

fn issue(
    shared: &Shared,
    client_id: &str,
    scope: &str,
    form: &HashMap<String, String>,
    nonce: Option<&str>,
) -> Response {
    let user = shared.lock().core.interactive_user_id.clone();
    issue_for(shared, &user, client_id, scope, form, nonce)
}

/// Files new tokens in `core` and answers like Entra's token endpoint: with an `id_token` and
/// `client_info` when `openid` was asked for (or `client_info=1`, as MSAL sends it).
fn issue_for(
    shared: &Shared,
    user_id: &str,
    client_id: &str,
    scope: &str,
    form: &HashMap<String, String>,
    nonce: Option<&str>,
) -> Response {
    let openid = scope.split_whitespace().any(|s| short(s) == "openid");
    let wants_client_info = openid || field(form, "client_info") == Some("1");
    // Signed outside the state lock: the first signature generates the key.
    let identity = if openid || wants_client_info {
        let (user, tid) = {
            let st = shared.lock();
            (
                st.core.user_by_id_or_upn(user_id).cloned(),
                st.core.tenant_id().to_string(),
            )
        };
        let client_info = wants_client_info.then(|| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(json!({"uid": user_id, "utid": tid}).to_string())
        });
        let id_token = match (openid, &user) {
            (true, Some(u)) => match id_token(shared, u, &tid, client_id, nonce) {
                Ok(t) => Some(t),
                Err(e) => {
                    return oauth_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        50000,
                        &format!("There was an error issuing a token ({e})."),
                    );
                }
            },
            _ => None,
        };
        (id_token, client_info)
    } else {
        (None, None)
    };
    let mut st = shared.lock();
    let (scopes, offline) = granted(scope, &st.identity.withheld_scopes);
    let lifetime = st.identity.access_token_lifetime;
    let refresh_lifetime = st.identity.refresh_token_lifetime;
    let access = random_token(96);
    st.core.access_tokens.insert(
        access.clone(),
        AccessGrant {
            user_id: user_id.to_string(),
            scopes: scopes.clone(),
            expires_at: Instant::now() + lifetime,
        },
    );
    let mut granted_scope: Vec<String> = scopes.clone();
    granted_scope.extend(["openid", "profile"].iter().map(|s| s.to_string()));
    let mut body = json!({
        "token_type": "Bearer",
        "scope": granted_scope.join(" "),
        "expires_in": lifetime.as_secs(),
        "ext_expires_in": lifetime.as_secs(),
        "access_token": access,
    });
    if offline {
        let refresh = random_token(96);
        st.core.refresh_tokens.insert(
            refresh.clone(),
            RefreshGrant {
                user_id: user_id.to_string(),
                scopes,
                client_id: client_id.to_string(),
                expires_at: Instant::now() + refresh_lifetime,
                openid,
            },
        );
        if let Value::Object(m) = &mut body {
            m.insert("refresh_token".into(), Value::String(refresh));
            if let Some(Value::String(s)) = m.get_mut("scope") {
                s.push_str(" offline_access");
            }
        }
    }
    if let Value::Object(m) = &mut body {
        if let Some(t) = identity.0 {
            m.insert("id_token".into(), Value::String(t));
        }
        if let Some(c) = identity.1 {
            m.insert("client_info".into(), Value::String(c));
        }
    }
    (StatusCode::OK, no_store(), Json(body)).into_response()
}

// ---- OpenID Connect -------------------------------------------------------------------------

/// The tenant's token-signing key: RSA 2048, generated on first use (per simulated tenant, so
/// nothing secret ships with the program).
pub struct SigningKey {
    /// Key id in JWT headers and the JWKS (base64url SHA-256 of the public key, shortened).
    pub kid: String,
    key: aws_lc_rs::rsa::KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish()
    }
}

/// Why a token could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("the signing key could not be generated")]
    Generate,
    #[error("the token could not be signed")]
    Sign,
}

impl SigningKey {
    pub fn generate() -> Result<Self, SigningError> {
        use aws_lc_rs::signature::KeyPair as _;
        let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| SigningError::Generate)?;
        let digest = Sha256::digest(key.public_key().as_ref());
        let kid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..20]);
        Ok(SigningKey { kid, key })
    }

    /// The public key as a JWK (RFC 7517), as Entra publishes its keys.
    pub fn jwk(&self, issuer: &str) -> Value {
        use aws_lc_rs::signature::KeyPair as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let public = self.key.public_key();
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "x5t": self.kid,
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()),
            "issuer": issuer,
        })
    }

    /// A compact JWS (RS256) of `claims`.
    pub fn sign(&self, claims: &Value) -> Result<String, SigningError> {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": self.kid});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| SigningError::Sign)?;
        Ok(format!("{input}.{}", b64(&sig)))
    }
}

/// The tenant's signing key, generated the first time a token or the JWKS needs it.
pub fn signing_key(shared: &Shared) -> Result<&SigningKey, SigningError> {
    if let Some(k) = shared.signing_key.get() {
        return Ok(k);
    }
    let key = SigningKey::generate()?;
    // Two first requests at once: one key wins, the other is dropped unused.
    Ok(shared.signing_key.get_or_init(|| key))
}

/// `{base}/{tid}/v2.0`, as Entra's v2.0 issuer is `https://login.microsoftonline.com/{tid}/v2.0`.
pub fn issuer(shared: &Shared, tid: &str) -> String {
    format!("{}/{tid}/v2.0", shared.base_url)
}

/// ID token lifetime: Entra's is one hour.
const ID_TOKEN_LIFETIME_SECS: i64 = 3600;

/// An id_token with the claims of Microsoft's "ID token claims reference" (v2.0).
fn id_token(
    shared: &Shared,
    user: &super::core::User,
    tid: &str,
    client_id: &str,
    nonce: Option<&str>,
) -> Result<String, SigningError> {
    let now = chrono::Utc::now().timestamp();
    // `sub` is pairwise: the same user has another subject in another app.
    let sub = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(&Sha256::digest(format!("{}:{client_id}", user.id).as_bytes())[..24]);
    let mut claims = json!({
        "aud": client_id,
        "iss": issuer(shared, tid),
        "iat": now,
        "nbf": now,
        "exp": now + ID_TOKEN_LIFETIME_SECS,
        "name": user.display_name,
        "oid": user.id,
        "preferred_username": user.user_principal_name,
        "sub": sub,
        "tid": tid,
        "ver": "2.0",
    });
    if let (Some(n), Value::Object(m)) = (nonce, &mut claims) {
        m.insert("nonce".into(), Value::String(n.to_string()));
    }
    signing_key(shared)?.sign(&claims)
}

/// Tenant segments that stand for "any tenant": Entra keeps them in the endpoints and puts a
/// `{tenantid}` placeholder in the issuer.
fn is_multi_tenant(segment: &str) -> bool {
    matches!(
        segment.to_ascii_lowercase().as_str(),
        "organizations" | "common" | "consumers"
    )
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`: what MSAL discovers an authority
/// from (reference §1.4).
async fn openid_configuration(
    State(shared): State<Shared>,
    Path(tenant): Path<String>,
) -> Response {
    let tid = shared.lock().core.tenant_id().to_string();
    let (segment, issuer) = if is_multi_tenant(&tenant) {
        (tenant.clone(), issuer(&shared, "{tenantid}"))
    } else {
        (tid.clone(), issuer(&shared, &tid))
    };
    let base = format!("{}/{segment}", shared.base_url);
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
        "jwks_uri": format!("{base}/discovery/v2.0/keys"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "nonce", "preferred_username", "name", "tid", "oid", "ver"],
        "code_challenge_methods_supported": ["plain", "S256"],
        "request_uri_parameter_supported": false,
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "msgraph_host": shared.base_url.trim_start_matches("http://").trim_start_matches("https://"),
    }))
    .into_response()
}

/// `GET /{tenant}/discovery/v2.0/keys`: the public signing key.
async fn jwks(State(shared): State<Shared>, Path(_tenant): Path<String>) -> Response {
    let tid = shared.lock().core.tenant_id().to_string();
    let issuer = issuer(&shared, &tid);
    match signing_key(&shared) {
        Ok(k) => Json(json!({ "keys": [k.jwk(&issuer)] })).into_response(),
        Err(e) => oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            50000,
            &format!("The signing keys are not available ({e})."),
        ),
    }
}

/// `GET /{tenant}/oauth2/v2.0/logout`: signs the (simulated) user out everywhere: their refresh
/// tokens stop working, as after Entra's sign-out or a session revocation.
async fn logout(
    State(shared): State<Shared>,
    Path(_tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    {
        let mut st = shared.lock();
        let user = st.core.interactive_user_id.clone();
        st.core.refresh_tokens.retain(|_, g| g.user_id != user);
    }
    match q
        .get("post_logout_redirect_uri")
        .and_then(|u| url::Url::parse(u).ok())
    {
        Some(u) => (StatusCode::FOUND, [(header::LOCATION, u.to_string())]).into_response(),
        None => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<html><body><h1>You signed out of your account</h1><p>It's a good idea to close all browser windows.</p></body></html>",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granted_scopes_accept_full_and_short_names() {
        let (s, offline) = granted(
            "https://graph.microsoft.com/Group.ReadWrite.All Device.Read.All offline_access openid Bogus.All",
            &["Device.Read.All".to_string()],
        );
        assert!(offline);
        assert_eq!(
            s,
            vec!["Group.ReadWrite.All".to_string(), "User.Read".to_string()]
        );
        let (all, offline) = granted("https://graph.microsoft.us/.default", &[]);
        assert!(!offline);
        assert!(all.contains(&"Policy.Read.All".to_string()));
    }
}
