//! Core of the simulated tenant: bearer-token check, fault injection, request log, users, `/me`,
//! `/organization`.
//!
//! Every request passes [`wrap`]'s middleware, which in order: injects a fault (scripted first,
//! then by rate), checks the bearer token on Graph routes (`/v1.0/*`, `/beta/*`), runs the
//! handler, stamps `request-id` / `client-request-id` and appends to the request log.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::odata;
use super::{Seed, Shared, SimState};

// ---------------------------------------------------------------------------------------------
// Faults

/// One injected failure.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 429 `TooManyRequests` with `Retry-After` in (possibly fractional) seconds.
    Throttle { retry_after: Duration },
    /// 503 `serviceNotAvailable`, with a `Retry-After` when given.
    Unavailable { retry_after: Option<Duration> },
    /// 504 Gateway Timeout.
    GatewayTimeout,
    /// The connection closes without any HTTP answer; the client sees a connection error.
    DropConnection,
    /// The request waits this long, then is served normally.
    Latency(Duration),
}

/// A fault for the next `times` requests that match `method` (any when `None`) and whose path
/// contains `path_contains`. Scripts are consumed in order before rates apply.
#[derive(Debug, Clone)]
pub struct ScriptedFault {
    pub method: Option<Method>,
    pub path_contains: String,
    pub fault: Fault,
    pub times: u32,
}

impl ScriptedFault {
    pub fn new(method: Option<Method>, path_contains: &str, fault: Fault, times: u32) -> Self {
        ScriptedFault {
            method,
            path_contains: path_contains.to_string(),
            fault,
            times,
        }
    }
}

/// Faults to inject, by rate (probability per request, from an RNG seeded with `rng_seed` so a
/// run is reproducible) and by script ([`super::SimHandle::script_faults`]).
#[derive(Debug, Clone)]
pub struct FaultConfig {
    pub rng_seed: u64,
    /// Probability of a 429.
    pub throttle_rate: f64,
    /// `Retry-After` of rate-based 429s and 503s.
    pub retry_after: Duration,
    /// Probability of a 503.
    pub unavailable_rate: f64,
    /// Probability of a 504.
    pub gateway_timeout_rate: f64,
    /// Probability of a dropped connection.
    pub drop_rate: f64,
    /// Added to every request faults apply to.
    pub added_latency: Duration,
    /// Whether identity routes (`/{tenant}/oauth2/...`) get faults too (Graph routes always do).
    pub include_identity: bool,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            rng_seed: 0x5eed,
            throttle_rate: 0.0,
            retry_after: Duration::from_secs(1),
            unavailable_rate: 0.0,
            gateway_timeout_rate: 0.0,
            drop_rate: 0.0,
            added_latency: Duration::ZERO,
            include_identity: false,
        }
    }
}

impl FaultConfig {
    /// No faults at all.
    pub fn none() -> Self {
        FaultConfig::default()
    }

    /// `rate` of requests throttled or unavailable (half each), with a short `Retry-After`.
    pub fn flaky(rate: f64, retry_after: Duration) -> Self {
        FaultConfig {
            throttle_rate: rate / 2.0,
            unavailable_rate: rate / 2.0,
            retry_after,
            ..FaultConfig::default()
        }
    }
}

/// Live fault state: the rates in force, the remaining script and the RNG.
#[derive(Debug, Clone, Default)]
pub struct FaultState {
    pub config: FaultConfig,
    pub script: VecDeque<ScriptedFault>,
    rng: u64,
}

impl FaultState {
    pub fn new(config: FaultConfig) -> Self {
        FaultState {
            rng: config.rng_seed,
            config,
            script: VecDeque::new(),
        }
    }

    /// splitmix64: tiny, seedable, good enough for fault dice.
    fn next_f64(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The fault for this request, if any: the first matching script entry, else the dice.
    pub fn pick(&mut self, method: &Method, path: &str) -> Option<Fault> {
        if let Some(pos) = self.script.iter().position(|s| {
            s.times > 0
                && s.method.as_ref().is_none_or(|m| m == method)
                && path.contains(&s.path_contains)
        }) {
            let entry = &mut self.script[pos];
            entry.times -= 1;
            let fault = entry.fault.clone();
            if entry.times == 0 {
                self.script.remove(pos);
            }
            return Some(fault);
        }
        let c = &self.config;
        let any = c.throttle_rate + c.unavailable_rate + c.gateway_timeout_rate + c.drop_rate;
        if any <= 0.0 {
            return None;
        }
        let (t, u, g, d, ra) = (
            c.throttle_rate,
            c.unavailable_rate,
            c.gateway_timeout_rate,
            c.drop_rate,
            c.retry_after,
        );
        let x = self.next_f64();
        if x < t {
            Some(Fault::Throttle { retry_after: ra })
        } else if x < t + u {
            Some(Fault::Unavailable {
                retry_after: Some(ra),
            })
        } else if x < t + u + g {
            Some(Fault::GatewayTimeout)
        } else if x < t + u + g + d {
            Some(Fault::DropConnection)
        } else {
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens, users, organization

/// What an access token issued by [`super::identity`] grants. Tokens are opaque random strings.
#[derive(Debug, Clone)]
pub struct AccessGrant {
    /// Object id of the signed-in user (a key of the users the core keeps).
    pub user_id: String,
    /// Granted delegated scopes, short form (`Group.ReadWrite.All`).
    pub scopes: Vec<String>,
    pub expires_at: std::time::Instant,
}

/// What a refresh token can be redeemed for.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub user_id: String,
    pub scopes: Vec<String>,
    pub client_id: String,
    pub expires_at: std::time::Instant,
    /// The sign-in asked for `openid`: a refresh without `scope` gets an id_token too.
    pub openid: bool,
}

/// The signed-in user of a Graph request, put into the request extensions by the bearer check.
/// Handlers take it as `Extension<CurrentUser>`.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user_id: String,
    pub scopes: Vec<String>,
}

impl CurrentUser {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s.eq_ignore_ascii_case(scope))
    }
}

/// A directory user.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub display_name: String,
    pub user_principal_name: String,
    pub mail: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub job_title: Option<String>,
    pub account_enabled: bool,
    /// `Member` or `Guest`.
    pub user_type: String,
}

/// Properties Graph v1.0 returns for a user when the request has no `$select`.
pub const USER_DEFAULT_PROPERTIES: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

impl User {
    /// Every property the simulator knows, as Graph names them.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "businessPhones": [],
            "displayName": self.display_name,
            "givenName": self.given_name,
            "jobTitle": self.job_title,
            "mail": self.mail,
            "mobilePhone": null,
            "officeLocation": null,
            "preferredLanguage": "en-US",
            "surname": self.surname,
            "userPrincipalName": self.user_principal_name,
            "accountEnabled": self.account_enabled,
            "userType": self.user_type,
        })
    }

    /// What Graph returns without `$select`: the default property set only (no
    /// `accountEnabled`, no `userType`), so a client that forgets `$select` notices.
    pub fn to_default_json(&self) -> Value {
        keep_properties(self.to_json(), USER_DEFAULT_PROPERTIES)
    }
}

fn keep_properties(v: Value, keep: &[&str]) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| keep.contains(&k.as_str()))
                .collect(),
        ),
        other => other,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedDomain {
    pub name: String,
    pub is_default: bool,
    pub is_initial: bool,
    /// `Managed` or `Federated`.
    pub kind: String,
    /// Comma-separated, as Graph sends it: `Email, OfficeCommunicationsOnline`.
    pub capabilities: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Organization {
    /// The tenant id.
    pub id: String,
    pub display_name: String,
    pub verified_domains: Vec<VerifiedDomain>,
    /// `AAD` for a workforce tenant.
    pub tenant_type: String,
    pub country_letter_code: String,
    pub city: String,
    pub created: String,
}

impl Organization {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "deletedDateTime": null,
            "businessPhones": [],
            "city": self.city,
            "country": null,
            "countryLetterCode": self.country_letter_code,
            "createdDateTime": self.created,
            "displayName": self.display_name,
            "marketingNotificationEmails": [],
            "onPremisesLastSyncDateTime": null,
            "onPremisesSyncEnabled": null,
            "postalCode": null,
            "preferredLanguage": "en",
            "securityComplianceNotificationMails": [],
            "securityComplianceNotificationPhones": [],
            "state": null,
            "street": null,
            "technicalNotificationMails": [],
            "tenantType": self.tenant_type,
            "assignedPlans": [],
            "privacyProfile": null,
            "provisionedPlans": [],
            "verifiedDomains": self.verified_domains.iter().map(|d| json!({
                "capabilities": d.capabilities,
                "isDefault": d.is_default,
                "isInitial": d.is_initial,
                "name": d.name,
                "type": d.kind,
            })).collect::<Vec<_>>(),
        })
    }

    /// The `*.onmicrosoft.com` domain every tenant has.
    pub fn initial_domain(&self) -> Option<&str> {
        self.verified_domains
            .iter()
            .find(|d| d.is_initial)
            .map(|d| d.name.as_str())
    }
}

/// One request as the server saw it. `status` 0 means the connection was dropped without an
/// answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    /// The `client-request-id` the client sent, if any.
    pub client_request_id: Option<String>,
    /// When the answer was sent (or the connection dropped).
    pub time: chrono::DateTime<chrono::Utc>,
    /// For hardware-hash import POSTs: every `serialNumber` in the body, in order.
    pub serials: Vec<String>,
    /// The `Retry-After` a fault answered with, in (whole) seconds.
    pub retry_after: Option<f64>,
}

impl RequestRecord {
    /// One line of the `--request-log` file.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "time": self.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "method": self.method.as_str(),
            "path": self.path,
            "status": self.status,
        });
        if let Value::Object(m) = &mut v {
            if let Some(q) = &self.query {
                m.insert("query".into(), Value::String(q.clone()));
            }
            if let Some(c) = &self.client_request_id {
                m.insert("client_request_id".into(), Value::String(c.clone()));
            }
            if let Some(ra) = self.retry_after {
                m.insert("retry_after".into(), json!(ra));
            }
            if self.is_import_post() {
                m.insert("serials".into(), json!(self.serials));
            }
        }
        v
    }

    /// A POST that uploads hardware hashes (one device, the `import` action, or a `$batch`).
    pub fn is_import_post(&self) -> bool {
        self.method == Method::POST && is_import_post_path(&self.path)
    }
}

fn is_import_post_path(path: &str) -> bool {
    path.ends_with("/importedWindowsAutopilotDeviceIdentities")
        || path.ends_with("/importedWindowsAutopilotDeviceIdentities/import")
        || path.ends_with("/$batch")
}

/// Every `serialNumber` string anywhere in a JSON body (`$batch` nests request bodies).
fn serials_in(body: &[u8]) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match x {
                        Value::String(s) if k == "serialNumber" => out.push(s.clone()),
                        _ => walk(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        walk(&v, &mut out);
    }
    out
}

#[derive(Debug, Default)]
pub struct CoreState {
    /// Access token string -> grant. Written by `identity`, checked by the bearer middleware.
    pub access_tokens: HashMap<String, AccessGrant>,
    /// Refresh token string -> grant. Redeeming one issues another and keeps it, as Entra
    /// does; signing out removes the user's.
    pub refresh_tokens: HashMap<String, RefreshGrant>,
    /// The user interactive sign-ins (browser, device code) authenticate as in the demo.
    pub interactive_user_id: String,
    pub users: Vec<User>,
    pub organization: Organization,
    pub faults: FaultState,
    pub requests: Vec<RequestRecord>,
}

impl CoreState {
    pub fn user_by_id_or_upn(&self, key: &str) -> Option<&User> {
        user_by_id_or_upn(self, key)
    }

    pub fn interactive_user(&self) -> Option<&User> {
        user_by_id_or_upn(self, &self.interactive_user_id)
    }

    pub fn tenant_id(&self) -> &str {
        &self.organization.id
    }
}

/// A user by object id or userPrincipalName (both case-insensitive, as Graph resolves them).
pub fn user_by_id_or_upn<'a>(core: &'a CoreState, key: &str) -> Option<&'a User> {
    core.users
        .iter()
        .find(|u| u.id.eq_ignore_ascii_case(key) || u.user_principal_name.eq_ignore_ascii_case(key))
}

/// A stable GUID derived from a label, so seeded ids are the same on every run.
pub fn fixed_guid(label: &str) -> String {
    let h = Sha256::digest(label.as_bytes());
    let b: Vec<String> = h.iter().take(16).map(|x| format!("{x:02x}")).collect();
    let s = b.concat();
    format!(
        "{}-{}-4{}-8{}-{}",
        &s[0..8],
        &s[8..12],
        &s[13..16],
        &s[17..20],
        &s[20..32]
    )
}

// ---------------------------------------------------------------------------------------------
// Seeds

struct SeedUser {
    given: &'static str,
    surname: &'static str,
    alias: &'static str,
    job: &'static str,
}

const DEMO_USERS: &[SeedUser] = &[
    SeedUser {
        given: "Rowan",
        surname: "Achterberg",
        alias: "rowan.achterberg",
        job: "IT Technician",
    },
    SeedUser {
        given: "Imani",
        surname: "Okafor",
        alias: "imani.okafor",
        job: "Desktop Support Technician",
    },
    SeedUser {
        given: "Lucía",
        surname: "Ferrández",
        alias: "lucia.ferrandez",
        job: "Office Manager",
    },
    SeedUser {
        given: "Tomasz",
        surname: "Wierzbicki",
        alias: "tomasz.wierzbicki",
        job: "Accountant",
    },
    SeedUser {
        given: "Aiko",
        surname: "Nakamura",
        alias: "aiko.nakamura",
        job: "Sales Representative",
    },
    SeedUser {
        given: "Brendan",
        surname: "O'Callaghan",
        alias: "brendan.ocallaghan",
        job: "Warehouse Lead",
    },
    SeedUser {
        given: "Wanjiru",
        surname: "Kamau",
        alias: "wanjiru.kamau",
        job: "Designer",
    },
    SeedUser {
        given: "Walter",
        surname: "Brandt",
        alias: "walter.brandt",
        job: "Sales Representative",
    },
];

pub(crate) fn seed(state: &mut SimState, seed: Seed) {
    let core = &mut state.core;
    let (tenant_name, initial, custom) = match seed {
        Seed::Demo | Seed::Walkthrough => (
            "Fabrikam Demo",
            "fabrikamdemo.onmicrosoft.com",
            Some("fabrikam-demo.example"),
        ),
        Seed::Empty => ("Empty Test Tenant", "emptytest.onmicrosoft.com", None),
    };
    let mut domains = vec![VerifiedDomain {
        name: initial.to_string(),
        is_default: custom.is_none(),
        is_initial: true,
        kind: "Managed".into(),
        capabilities: "Email, OfficeCommunicationsOnline".into(),
    }];
    if let Some(c) = custom {
        domains.push(VerifiedDomain {
            name: c.to_string(),
            is_default: true,
            is_initial: false,
            kind: "Managed".into(),
            capabilities: "Email, OfficeCommunicationsOnline, Intune".into(),
        });
    }
    core.organization = Organization {
        id: fixed_guid(&format!("tenant:{initial}")),
        display_name: tenant_name.to_string(),
        verified_domains: domains,
        tenant_type: "AAD".into(),
        country_letter_code: "NL".into(),
        city: "Utrecht".into(),
        created: "2023-03-14T09:26:53Z".into(),
    };
    let admin_upn = format!("admin@{initial}");
    let admin = User {
        id: fixed_guid(&format!("user:{admin_upn}")),
        display_name: "Dana Whitfield (Admin)".into(),
        user_principal_name: admin_upn.clone(),
        mail: Some(admin_upn),
        given_name: Some("Dana".into()),
        surname: Some("Whitfield".into()),
        job_title: Some("IT Administrator".into()),
        account_enabled: true,
        user_type: "Member".into(),
    };
    core.interactive_user_id = admin.id.clone();
    core.users = vec![admin];
    let Some(domain) = custom else { return };
    for u in DEMO_USERS {
        let upn = format!("{}@{domain}", u.alias);
        core.users.push(User {
            id: fixed_guid(&format!("user:{upn}")),
            display_name: format!("{} {}", u.given, u.surname),
            user_principal_name: upn.clone(),
            mail: Some(upn),
            given_name: Some(u.given.into()),
            surname: Some(u.surname.into()),
            job_title: Some(u.job.into()),
            // One former employee whose account is switched off: not a valid assigned user.
            account_enabled: u.alias != "walter.brandt",
            user_type: "Member".into(),
        });
    }
    // A guest: UPNs with `#EXT#` must be percent-encoded in paths.
    let guest_upn = format!("jordan.reyes_contoso-partner.example#EXT#@{initial}");
    core.users.push(User {
        id: fixed_guid(&format!("user:{guest_upn}")),
        display_name: "Jordan Reyes (Contoso Partner)".into(),
        user_principal_name: guest_upn,
        mail: Some("jordan.reyes@contoso-partner.example".into()),
        given_name: Some("Jordan".into()),
        surname: Some("Reyes".into()),
        job_title: None,
        account_enabled: true,
        user_type: "Guest".into(),
    });
}

// ---------------------------------------------------------------------------------------------
// Routes

pub(crate) fn routes() -> Router<Shared> {
    let mut r = Router::new();
    for v in ["/v1.0", "/beta"] {
        r = r
            .route(&format!("{v}/me"), get(get_me))
            .route(&format!("{v}/organization"), get(list_organization))
            .route(&format!("{v}/organization/{{id}}"), get(get_organization))
            .route(&format!("{v}/users"), get(list_users))
            .route(&format!("{v}/users/{{id}}"), get(get_user));
    }
    r
}

fn context_url(base: &str, uri: &Uri, context: &str) -> String {
    let version = if uri.path().starts_with("/beta") {
        "beta"
    } else {
        "v1.0"
    };
    format!("{base}/{version}/$metadata#{context}")
}

fn single_user_response(shared: &Shared, uri: &Uri, user: &User) -> Response {
    let q = odata::query(uri);
    let mut body = match q.get("$select") {
        Some(sel) => odata::select(user.to_json(), Some(sel)),
        None => user.to_default_json(),
    };
    if let Value::Object(map) = &mut body {
        map.insert(
            "@odata.context".into(),
            Value::String(context_url(&shared.base_url, uri, "users/$entity")),
        );
    }
    Json(body).into_response()
}

async fn get_me(
    State(shared): State<Shared>,
    Extension(me): Extension<CurrentUser>,
    uri: Uri,
) -> Response {
    let state = shared.lock();
    match user_by_id_or_upn(&state.core, &me.user_id) {
        Some(u) => single_user_response(&shared, &uri, u),
        None => odata::not_found("user", &me.user_id),
    }
}

async fn get_user(State(shared): State<Shared>, Path(id): Path<String>, uri: Uri) -> Response {
    let state = shared.lock();
    match user_by_id_or_upn(&state.core, &id) {
        Some(u) => single_user_response(&shared, &uri, u),
        None => odata::not_found("user", &id),
    }
}

async fn list_organization(State(shared): State<Shared>, uri: Uri) -> Response {
    let org = shared.lock().core.organization.to_json();
    let q = odata::query(&uri);
    let item = odata::select(org, q.get("$select").map(|s| s.as_str()));
    Json(json!({
        "@odata.context": context_url(&shared.base_url, &uri, "organization"),
        "value": [item],
    }))
    .into_response()
}

async fn get_organization(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    let org = shared.lock().core.organization.clone();
    if !org.id.eq_ignore_ascii_case(&id) {
        return odata::not_found("organization", &id);
    }
    odata::entity(&uri, org.to_json())
}

fn is_eventual(headers: &HeaderMap) -> bool {
    headers
        .get("consistencylevel")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("eventual"))
}

async fn list_users(State(shared): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    let q = odata::query(&uri);
    let eventual = is_eventual(&headers);
    if q.contains_key("$search") && !eventual {
        return odata::bad_request(
            "Request_UnsupportedQuery",
            "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
        );
    }
    if q.get("$count").is_some_and(|c| c == "true") && !eventual {
        return odata::bad_request("Request_BadRequest", "$count is not currently supported.");
    }
    let users: Vec<User> = shared.lock().core.users.clone();
    let mut items: Vec<Value> = users.iter().map(User::to_json).collect();
    items = match odata::apply_filter(&uri, items) {
        Ok(i) => i,
        Err(resp) => return resp,
    };
    if let Some(search) = q.get("$search") {
        let clauses = match parse_search(search) {
            Some(c) => c,
            None => {
                return odata::bad_request(
                    "Request_UnsupportedQuery",
                    &format!(
                        "Unsupported $search expression: {search}. Use \"property:value\", for example $search=\"displayName:wa\"."
                    ),
                );
            }
        };
        items.retain(|i| clauses.matches(i));
    }
    if let Some(order) = q.get("$orderby") {
        let mut parts = order.split_whitespace();
        let prop = parts.next().unwrap_or("").to_string();
        let desc = parts.next().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
        if !["displayName", "userPrincipalName"].contains(&prop.as_str()) {
            return odata::bad_request(
                "Request_UnsupportedQuery",
                &format!("Sorting not supported for '{prop}'."),
            );
        }
        let key = |v: &Value| {
            v.get(&prop)
                .and_then(|x| x.as_str())
                .unwrap_or("")
                .to_lowercase()
        };
        items.sort_by_key(key);
        if desc {
            items.reverse();
        }
    }
    if !q.contains_key("$select") {
        items = items
            .into_iter()
            .map(|v| keep_properties(v, USER_DEFAULT_PROPERTIES))
            .collect();
    }
    shared.page(&uri, items, "users")
}

/// `$search="displayName:wa" OR "mail:wa"`: each clause matches when any word of the property
/// (split at spaces and punctuation, as Graph tokenizes) starts with the term.
enum Search {
    Term(String, String),
    And(Vec<Search>),
    Or(Vec<Search>),
}

impl Search {
    fn matches(&self, item: &Value) -> bool {
        match self {
            Search::Term(prop, term) => {
                let Some(text) = item
                    .as_object()
                    .and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(prop)))
                    .and_then(|(_, v)| v.as_str())
                else {
                    return false;
                };
                let text = text.to_lowercase();
                let term = term.to_lowercase();
                text.starts_with(&term)
                    || text
                        .split(|c: char| !c.is_alphanumeric())
                        .any(|w| w.starts_with(&term))
            }
            Search::And(v) => v.iter().all(|s| s.matches(item)),
            Search::Or(v) => v.iter().any(|s| s.matches(item)),
        }
    }
}

fn parse_search(text: &str) -> Option<Search> {
    let t = text.trim();
    for (sep, is_and) in [(" OR ", false), (" AND ", true)] {
        if t.contains(sep) {
            let parts: Option<Vec<Search>> = t.split(sep).map(parse_search).collect();
            let parts = parts?;
            return Some(if is_and {
                Search::And(parts)
            } else {
                Search::Or(parts)
            });
        }
    }
    let inner = t.strip_prefix('"')?.strip_suffix('"')?;
    let (prop, term) = inner.split_once(':')?;
    if prop.trim().is_empty() {
        return None;
    }
    Some(Search::Term(
        prop.trim().to_string(),
        term.trim().to_string(),
    ))
}

// ---------------------------------------------------------------------------------------------
// Connections that a fault can cut

/// Shared between a connection's socket and the requests on it, so a fault can cut the socket.
#[derive(Debug, Default)]
pub struct KillSwitch {
    killed: AtomicBool,
    waker: std::sync::Mutex<Option<Waker>>,
}

impl KillSwitch {
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            w.wake();
        }
    }

    fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    fn register(&self, cx: &Context<'_>) {
        *self.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
    }
}

/// What the server knows about the connection a request came on (axum `ConnectInfo`).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: std::net::SocketAddr,
    pub kill: Arc<KillSwitch>,
}

/// A connection of the simulated tenant: plain TCP, or TLS over it with `sim --tls`.
pub enum SimStream {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
}

/// A stream that fails every read and write once its [`KillSwitch`] fired; hyper then drops the
/// connection without writing the response.
pub struct KillableStream {
    inner: SimStream,
    kill: Arc<KillSwitch>,
}

fn killed_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "connection dropped by fault injection",
    )
}

impl tokio::io::AsyncRead for KillableStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.kill.is_killed() {
            return Poll::Ready(Err(killed_error()));
        }
        self.kill.register(cx);
        match &mut self.inner {
            SimStream::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            SimStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for KillableStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.kill.is_killed() {
            return Poll::Ready(Err(killed_error()));
        }
        match &mut self.inner {
            SimStream::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            SimStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.kill.is_killed() {
            return Poll::Ready(Err(killed_error()));
        }
        match &mut self.inner {
            SimStream::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            SimStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.inner {
            SimStream::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            SimStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The simulator's listener: TCP (with TLS when `tls` is set) whose connections can be cut by
/// a fault.
pub struct SimListener {
    pub tcp: tokio::net::TcpListener,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// A client that never finishes its handshake must not hold up every other connection.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl axum::serve::Listener for SimListener {
    type Io = KillableStream;
    type Addr = ConnInfo;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.tcp.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let inner = match &self.tls {
                        None => SimStream::Plain(stream),
                        Some(acceptor) => {
                            match tokio::time::timeout(
                                TLS_HANDSHAKE_TIMEOUT,
                                acceptor.accept(stream),
                            )
                            .await
                            {
                                Ok(Ok(tls)) => SimStream::Tls(Box::new(tls)),
                                // A client that does not trust the CA hangs up here: its
                                // problem, not the server's.
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "sim: TLS handshake failed");
                                    continue;
                                }
                                Err(_) => continue,
                            }
                        }
                    };
                    let kill = Arc::new(KillSwitch::default());
                    return (
                        KillableStream {
                            inner,
                            kill: kill.clone(),
                        },
                        ConnInfo { peer, kill },
                    );
                }
                // Out of file descriptors and the like: wait instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(ConnInfo {
            peer: self.tcp.local_addr()?,
            kill: Arc::new(KillSwitch::default()),
        })
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, SimListener>>
    for ConnInfo
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, SimListener>) -> Self {
        stream.remote_addr().clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Middleware

/// Wraps every route in the middleware that checks tokens, injects faults and logs requests.
pub(crate) fn wrap(routes: Router<Shared>, shared: Shared) -> Router<Shared> {
    routes
        .fallback(fallback)
        .layer(axum::middleware::from_fn_with_state(shared, middleware))
}

async fn fallback(uri: Uri) -> Response {
    let path = uri.path();
    if is_graph_path(path) {
        let segment = path
            .trim_start_matches('/')
            .split('/')
            .nth(1)
            .unwrap_or("")
            .to_string();
        odata::bad_request(
            "BadRequest",
            &format!("Resource not found for the segment '{segment}'."),
        )
    } else {
        (StatusCode::NOT_FOUND, "Not found").into_response()
    }
}

pub fn is_graph_path(path: &str) -> bool {
    path == "/v1.0" || path == "/beta" || path.starts_with("/v1.0/") || path.starts_with("/beta/")
}

/// The answer to an injected fault: Graph's error body on Graph routes, the identity
/// platform's OAuth error body on the login routes.
fn fault_response(fault: &Fault, graph: bool) -> Response {
    if !graph {
        return login_fault_response(fault);
    }
    let (mut resp, retry_after) = match fault {
        Fault::Throttle { retry_after } => (
            odata::error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests. Please retry after the time given in the Retry-After header.",
            ),
            Some(*retry_after),
        ),
        Fault::Unavailable { retry_after } => (
            odata::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "serviceNotAvailable",
                "The service is temporarily unavailable for maintenance or is overloaded. You may repeat the request after a delay, the length of which may be indicated in a Retry-After header.",
            ),
            *retry_after,
        ),
        _ => (
            odata::error(
                StatusCode::GATEWAY_TIMEOUT,
                "UnknownError",
                "The gateway did not receive a timely response from the upstream service.",
            ),
            None,
        ),
    };
    if let Some(ra) = retry_after
        && let Ok(v) = HeaderValue::from_str(&format_seconds(ra))
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// How Entra's token endpoint answers when it sheds load: an OAuth error body with
/// `temporarily_unavailable` and AADSTS90033, and `Retry-After` on 429/503.
fn login_fault_response(fault: &Fault) -> Response {
    let (status, retry_after) = match fault {
        Fault::Throttle { retry_after } => (StatusCode::TOO_MANY_REQUESTS, Some(*retry_after)),
        Fault::Unavailable { retry_after } => (StatusCode::SERVICE_UNAVAILABLE, *retry_after),
        _ => (StatusCode::GATEWAY_TIMEOUT, None),
    };
    let trace_id = uuid::Uuid::new_v4().to_string();
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let timestamp = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    let body = json!({
        "error": "temporarily_unavailable",
        "error_description": format!("AADSTS90033: A transient error has occurred. Please try again. Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}"),
        "error_codes": [90033],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
    });
    let mut resp = (status, Json(body)).into_response();
    if let Some(ra) = retry_after
        && let Ok(v) = HeaderValue::from_str(&format_seconds(ra))
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// `Retry-After` as HTTP defines it (RFC 9110 §10.2.3): whole seconds. Clients such as
/// Kiota's retry handler parse nothing else. A wait shorter than a second (a scaled-down clock
/// at test speed) is sent as 0, "retry at once"; longer ones are rounded up, so a client that
/// obeys never comes back early.
pub(crate) fn retry_after_seconds(d: Duration) -> u64 {
    if d < Duration::from_secs(1) {
        0
    } else {
        d.as_secs() + u64::from(d.subsec_nanos() > 0)
    }
}

fn format_seconds(d: Duration) -> String {
    retry_after_seconds(d).to_string()
}

fn unauthorized(shared: &Shared, message: &str) -> Response {
    let mut resp = odata::error(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        message,
    );
    let challenge = format!(
        "Bearer realm=\"\", authorization_uri=\"{}/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
        shared.base_url
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// Checks the bearer token: the grant's user and scopes, or Graph's 401.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<CurrentUser, Response> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
        .map(str::trim)
        .unwrap_or("");
    if token.is_empty() {
        return Err(unauthorized(shared, "Access token is empty."));
    }
    let grant = {
        let state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        state.core.access_tokens.get(token).cloned()
    };
    match grant {
        Some(g) if g.expires_at > Instant::now() => Ok(CurrentUser {
            user_id: g.user_id,
            scopes: g.scopes,
        }),
        Some(_) => Err(unauthorized(
            shared,
            "Access token has expired or is not yet valid.",
        )),
        None if !token.contains('.') => Err(unauthorized(
            shared,
            "IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in JWS or JWE Compact Serialization Format. (JWS): 'EncodedHeader.EndcodedPayload.EncodedSignature'. (JWE): 'EncodedProtectedHeader.EncodedEncryptedKey.EncodedInitializationVector.EncodedCiphertext.EncodedAuthenticationTag'.",
        )),
        None => Err(unauthorized(
            shared,
            "Access token validation failure. Invalid audience.",
        )),
    }
}

/// Largest request body read for the log; axum's own limit for `Bytes` bodies.
const LOGGED_BODY_LIMIT: usize = 2 << 20;

async fn middleware(State(shared): State<Shared>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let client_request_id = req.headers().get("client-request-id").cloned();
    let graph = is_graph_path(&path);

    // Import bodies are read here so the log can say which serials each upload carried, even
    // when a fault answers before the handler sees them.
    let mut serials = Vec::new();
    if method == Method::POST && is_import_post_path(&path) {
        let (parts, body) = req.into_parts();
        match axum::body::to_bytes(body, LOGGED_BODY_LIMIT).await {
            Ok(bytes) => {
                serials = serials_in(&bytes);
                req = Request::from_parts(parts, Body::from(bytes));
            }
            Err(_) => {
                req = Request::from_parts(parts, Body::empty());
                let mut resp = odata::error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    "The request body is too large.",
                );
                finish(&mut resp, client_request_id.as_ref()).await;
                drop(req);
                record(
                    &shared,
                    RequestRecord {
                        method,
                        path,
                        query,
                        status: resp.status().as_u16(),
                        client_request_id: header_text(client_request_id.as_ref()),
                        time: chrono::Utc::now(),
                        serials,
                        retry_after: None,
                    },
                );
                return resp;
            }
        }
    }

    let log = |status: u16, retry_after: Option<Duration>| {
        record(
            &shared,
            RequestRecord {
                method: method.clone(),
                path: path.clone(),
                query: query.clone(),
                status,
                client_request_id: header_text(client_request_id.as_ref()),
                time: chrono::Utc::now(),
                serials: serials.clone(),
                retry_after: retry_after.map(|d| retry_after_seconds(d) as f64),
            },
        );
    };

    let faultable = graph || shared.config.faults.include_identity;
    if faultable {
        let (fault, latency) = {
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            let latency = state.core.faults.config.added_latency;
            (state.core.faults.pick(&method, &path), latency)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match fault {
            None => {}
            Some(Fault::Latency(d)) => tokio::time::sleep(d).await,
            Some(Fault::DropConnection) => {
                log(0, None);
                if let Some(ConnectInfo(conn)) = req.extensions().get::<ConnectInfo<ConnInfo>>() {
                    conn.kill.kill();
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
                // Served without the simulator's listener (no socket to cut): never answer,
                // which the client also experiences as a failed connection once it times out.
                std::future::pending::<()>().await;
            }
            Some(f) => {
                let mut resp = fault_response(&f, graph);
                finish(&mut resp, client_request_id.as_ref()).await;
                log(resp.status().as_u16(), fault_retry_after(&f));
                return resp;
            }
        }
    }

    if graph {
        match authenticate(&shared, req.headers()) {
            Ok(user) => {
                req.extensions_mut().insert(user);
            }
            Err(mut resp) => {
                finish(&mut resp, client_request_id.as_ref()).await;
                log(resp.status().as_u16(), None);
                return resp;
            }
        }
    }

    let mut resp = next.run(req).await;
    if graph {
        resp = align_error_ids(resp, client_request_id.as_ref()).await;
    }
    finish(&mut resp, client_request_id.as_ref()).await;
    log(resp.status().as_u16(), None);
    resp
}

fn header_text(v: Option<&HeaderValue>) -> Option<String> {
    v.and_then(|c| c.to_str().ok()).map(str::to_string)
}

fn fault_retry_after(f: &Fault) -> Option<Duration> {
    match f {
        Fault::Throttle { retry_after } => Some(*retry_after),
        Fault::Unavailable { retry_after } => *retry_after,
        _ => None,
    }
}

/// Keeps the record in memory and appends it to the request log file, if there is one. The
/// line is written in one call so a killed process leaves whole lines behind.
fn record(shared: &Shared, rec: RequestRecord) {
    if let Some(file) = &shared.request_log {
        let mut line = rec.to_json().to_string();
        line.push('\n');
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = std::io::Write::write_all(&mut *f, line.as_bytes()) {
            tracing::warn!(error = %e, "request log not written");
        }
    }
    let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    state.core.requests.push(rec);
}

async fn finish(resp: &mut Response, client_request_id: Option<&HeaderValue>) {
    if !resp.headers().contains_key("request-id") {
        odata::add_request_ids(resp.headers_mut(), client_request_id);
    } else if let Some(c) = client_request_id {
        resp.headers_mut().insert("client-request-id", c.clone());
    }
}

/// Makes the ids in an error body's `innerError` the ones in the headers, as Graph's are.
async fn align_error_ids(resp: Response, client_request_id: Option<&HeaderValue>) -> Response {
    if resp.status().is_success() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let Some(inner) = v
        .pointer_mut("/error/innerError")
        .and_then(|i| i.as_object_mut())
    else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let request_id = inner
        .get("request-id")
        .and_then(|r| r.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let client = client_request_id
        .and_then(|c| c.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| request_id.clone());
    inner.insert("client-request-id".into(), Value::String(client));
    if let Ok(h) = HeaderValue::from_str(&request_id) {
        parts.headers.insert("request-id", h);
    }
    let body = serde_json::to_vec(&v).unwrap_or_else(|_| bytes.to_vec());
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// Intune's 403 unless the request's token carries one of `needed` (a token this tenant did not
/// issue skips the check, as [`granted_scopes`] says). The message is Intune's nested JSON.
pub(crate) fn require_one_of(
    state: &SimState,
    headers: &HeaderMap,
    needed: &[&str],
) -> Result<(), Response> {
    let Some(granted) = granted_scopes(state, headers) else {
        return Ok(());
    };
    if needed
        .iter()
        .any(|n| granted.iter().any(|g| g.eq_ignore_ascii_case(n)))
    {
        return Ok(());
    }
    Err(odata::error(
        StatusCode::FORBIDDEN,
        "Forbidden",
        &format!(
            "{{\"_version\":3,\"Message\":\"Application is not authorized to perform this operation. Application must have one of the following scopes: {} - Operation ID (for customer support): {}\",\"CustomApiErrorPhrase\":\"\"}}",
            needed.join(", "),
            uuid::Uuid::new_v4()
        ),
    ))
}

/// The scopes of the bearer token on a request, when this tenant's identity platform issued
/// it. `None` for a token it does not know (tests that mint their own skip the scope checks).
pub(crate) fn granted_scopes<'a>(state: &'a SimState, headers: &HeaderMap) -> Option<&'a [String]> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })?;
    state
        .core
        .access_tokens
        .get(token.trim())
        .map(|g| g.scopes.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_guids_are_stable_and_shaped() {
        let a = fixed_guid("x");
        assert_eq!(a, fixed_guid("x"));
        assert_ne!(a, fixed_guid("y"));
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
    }

    #[test]
    fn scripts_come_before_rates_and_are_consumed() {
        let mut f = FaultState::new(FaultConfig {
            throttle_rate: 1.0,
            ..FaultConfig::default()
        });
        f.script.push_back(ScriptedFault::new(
            Some(Method::POST),
            "/groups",
            Fault::GatewayTimeout,
            1,
        ));
        assert!(matches!(
            f.pick(&Method::GET, "/v1.0/groups"),
            Some(Fault::Throttle { .. })
        ));
        assert_eq!(
            f.pick(&Method::POST, "/v1.0/groups"),
            Some(Fault::GatewayTimeout)
        );
        assert!(f.script.is_empty());
    }

    #[test]
    fn rates_are_reproducible() {
        let cfg = FaultConfig {
            drop_rate: 0.3,
            rng_seed: 7,
            ..FaultConfig::default()
        };
        let run = |cfg: &FaultConfig| {
            let mut f = FaultState::new(cfg.clone());
            (0..200)
                .map(|_| f.pick(&Method::GET, "/v1.0/x").is_some())
                .collect::<Vec<_>>()
        };
        let a = run(&cfg);
        assert_eq!(a, run(&cfg));
        let hits = a.iter().filter(|x| **x).count();
        assert!((30..90).contains(&hits), "{hits}");
    }

    #[test]
    fn retry_after_formatting() {
        assert_eq!(format_seconds(Duration::from_millis(50)), "0");
        assert_eq!(format_seconds(Duration::from_millis(999)), "0");
        assert_eq!(format_seconds(Duration::from_secs(3)), "3");
        assert_eq!(format_seconds(Duration::from_millis(2128)), "3");
        assert_eq!(format_seconds(Duration::from_millis(9990)), "10");
    }

    #[test]
    fn search_clauses() {
        let s = parse_search("\"displayName:wa\"").unwrap();
        assert!(s.matches(&json!({"displayName": "Wanjiru Kamau"})));
        assert!(s.matches(&json!({"displayName": "Aiko Walter"})));
        assert!(!s.matches(&json!({"displayName": "Aiko Nakamura"})));
        assert!(parse_search("wa").is_none());
    }
}
