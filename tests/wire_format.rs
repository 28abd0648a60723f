//! Wire-format audit: every Graph request the steps make, recorded on the wire by a proxy in
//! front of the simulated tenant and checked against the reference and the official schema
//! (`tests/fixtures/schema/`: v1.0/beta schema extracts and the path lists): API version per
//! resource, path and method in the path lists, OData query syntax (`$search` with
//! `ConsistencyLevel: eventual` + `$count=true`, quoted literals, URL encoding), `$select` /
//! `$expand` / `$orderby` names that exist on the resource type, request bodies valid against
//! the schema, the `$batch` envelope of reference §8, the `$ref` body of §4.2. A second part
//! checks what the simulator answers (schema-valid resources, status codes, error bodies,
//! 429 + Retry-After) for the resources the other test files do not cover.

use crate::support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autopilot_wizard::board::{DeviceEdit, GroupMembership};
use autopilot_wizard::graph::client::{GraphClient, StaticToken};
use autopilot_wizard::sim::autopilot::build_hardware_hash;
use autopilot_wizard::sim::{self, Seed, SimConfig, SimHandle, Speed};
use autopilot_wizard::steps::assignment;
use autopilot_wizard::steps::group::{self, GroupSpec, ReadBackPolicy, RuleSpec};
use autopilot_wizard::steps::import::{self, ImportOptions, ImportRow, NoObserver, PollPolicy};
use autopilot_wizard::steps::join_permission as jp;
use autopilot_wizard::steps::profile::{self, ProfileForm};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use support::schema;
use support::tenant;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// Recording proxy

#[derive(Debug, Clone)]
struct Rec {
    method: String,
    /// Path including the version segment, as sent.
    path: String,
    /// Raw (still encoded) query string.
    query: String,
    /// Lower-case header names.
    headers: HashMap<String, String>,
    body: Option<Value>,
    raw_body: Vec<u8>,
    status: u16,
}

impl Rec {
    fn version(&self) -> &str {
        self.path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("")
    }

    /// The path after the version segment, starting with `/`.
    fn resource_path(&self) -> &str {
        let p = self.path.trim_start_matches('/');
        p.find('/').map(|i| &p[i..]).unwrap_or("")
    }

    fn segments(&self) -> Vec<&str> {
        self.resource_path()
            .split('/')
            .filter(|s| !s.is_empty())
            .collect()
    }

    fn params(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect()
    }

    fn line(&self) -> String {
        if self.query.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, self.query)
        }
    }
}

#[derive(Clone)]
struct Proxy {
    target: String,
    /// This proxy's own base URL: `@odata.nextLink`s in answers are rewritten to it, so
    /// paging stays on the recorded path (the client refuses links to another host).
    own: Arc<Mutex<String>>,
    http: reqwest::Client,
    log: Arc<Mutex<Vec<Rec>>>,
}

async fn forward(
    axum::extract::State(p): axum::extract::State<Proxy>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let pq = parts
        .uri
        .path_and_query()
        .map(|x| x.as_str().to_string())
        .unwrap_or_default();
    let mut rb = p
        .http
        .request(parts.method.clone(), format!("{}{}", p.target, pq));
    let mut headers = HashMap::new();
    for (k, v) in parts.headers.iter() {
        let name = k.as_str().to_ascii_lowercase();
        if let Ok(s) = v.to_str() {
            headers.insert(name.clone(), s.to_string());
        }
        if name == "host" || name == "content-length" {
            continue;
        }
        rb = rb.header(k, v);
    }
    if !bytes.is_empty() {
        rb = rb.body(bytes.to_vec());
    }
    let (status, resp_headers, resp_body) = match rb.send().await {
        Ok(r) => {
            let status = r.status();
            let h = r.headers().clone();
            let b = r.bytes().await.unwrap_or_default();
            (status, h, b)
        }
        Err(_) => (
            reqwest::StatusCode::BAD_GATEWAY,
            reqwest::header::HeaderMap::new(),
            Default::default(),
        ),
    };
    p.log.lock().unwrap().push(Rec {
        method: parts.method.to_string(),
        path,
        query,
        headers,
        body: serde_json::from_slice(&bytes).ok(),
        raw_body: bytes.to_vec(),
        status: status.as_u16(),
    });
    let own = p.own.lock().unwrap().clone();
    let resp_body = match std::str::from_utf8(&resp_body) {
        Ok(text) if text.contains(&p.target) => text.replace(&p.target, &own).into_bytes(),
        _ => resp_body.to_vec(),
    };
    let mut out = axum::response::Response::new(axum::body::Body::from(resp_body));
    *out.status_mut() = status;
    for (k, v) in resp_headers.iter() {
        if k == "content-length" || k == "transfer-encoding" {
            continue;
        }
        out.headers_mut().insert(k.clone(), v.clone());
    }
    out
}

/// Starts a proxy to `sim`; returns its base URL and the request log.
async fn start_proxy(sim: &SimHandle) -> (String, Arc<Mutex<Vec<Rec>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let own = Arc::new(Mutex::new(String::new()));
    let state = Proxy {
        target: sim.url(),
        own: own.clone(),
        http: support::raw_http(),
        log: log.clone(),
    };
    let app = axum::Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    *own.lock().unwrap() = format!("http://{addr}");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), log)
}

// ---------------------------------------------------------------------------------------------
// What the reference allows

/// `(version, method, segments)` of every line of the path lists, plus the documented v1.0
/// directory endpoints the lists leave out (they only cover the Autopilot resources).
fn allowed_paths() -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    for (version, text) in [
        ("v1.0", include_str!("fixtures/schema/paths-v1.0.txt")),
        ("beta", include_str!("fixtures/schema/paths-beta.txt")),
        (
            "v1.0",
            "GET /me\nGET /organization\nGET /users\nGET /users/{user-id}\n\
             GET /users/{user-id}/transitiveMemberOf/microsoft.graph.group\n\
             GET /groups/{group-id}/transitiveMembers/microsoft.graph.user\n",
        ),
    ] {
        for line in text.lines() {
            let mut tokens = line.split_whitespace();
            let (Some(method), Some(path)) = (tokens.next(), tokens.next()) else {
                continue;
            };
            if !["GET", "POST", "PATCH", "PUT", "DELETE"].contains(&method) {
                continue;
            }
            let segs = path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            out.push((version.to_string(), method.to_string(), segs));
        }
    }
    out
}

fn path_allowed(allowed: &[(String, String, Vec<String>)], r: &Rec) -> bool {
    let segs = r.segments();
    allowed.iter().any(|(v, m, t)| {
        v == r.version()
            && *m == r.method
            && t.len() == segs.len()
            && t.iter()
                .zip(&segs)
                .all(|(t, s)| t.starts_with('{') || t == s)
    })
}

/// Reference §0.2 / PREAMBLE: beta for every Autopilot call and the MDM policies, v1.0 for
/// directory objects and the registration policy. The group read-back asks beta for
/// `membershipRuleProcessingStatus` (beta only, reference §4.1), so a group GET selecting it
/// may be beta. `$batch` exists in both.
fn version_ok(r: &Rec) -> bool {
    let p = r.resource_path();
    let v = r.version();
    if p.starts_with("/deviceManagement/")
        || p.starts_with("/policies/mobileDeviceManagementPolicies")
    {
        return v == "beta";
    }
    if p == "/$batch" {
        return v == "beta" || v == "v1.0";
    }
    if r.method == "GET"
        && p.starts_with("/groups/")
        && r.params()
            .get("$select")
            .is_some_and(|s| s.contains("membershipRuleProcessingStatus"))
    {
        return v == "beta";
    }
    v == "v1.0"
}

/// The resource type a path reads (for `$select` / `$expand` / `$filter` names).
fn resource_type(r: &Rec) -> Option<&'static str> {
    let mut ty = None;
    for s in r.segments() {
        let t = match s {
            "windowsAutopilotDeviceIdentities" => "windowsAutopilotDeviceIdentity",
            "importedWindowsAutopilotDeviceIdentities" => "importedWindowsAutopilotDeviceIdentity",
            "windowsAutopilotDeploymentProfiles" => "windowsAutopilotDeploymentProfile",
            "assignments" => "windowsAutopilotDeploymentProfileAssignment",
            "windowsAutopilotSettings" => "windowsAutopilotSettings",
            "mobileDeviceManagementPolicies" => "mobilityManagementPolicy",
            "deviceRegistrationPolicy" => "deviceRegistrationPolicy",
            "groups" | "includedGroups" | "microsoft.graph.group" => "group",
            "devices" | "microsoft.graph.device" => "device",
            "users" | "me" | "microsoft.graph.user" => "user",
            "organization" => "organization",
            _ => continue,
        };
        ty = Some(t);
    }
    ty
}

/// Property names of `ty`: from the schema, or (for `user` and `organization`, which the
/// extract does not carry) the documented v1.0 properties the wizard may select.
fn property_names(version: &str, ty: &str) -> Vec<String> {
    if let Some(p) = schema::property_names(version, ty) {
        return p;
    }
    let known: &[&str] = match ty {
        "user" => &[
            "id",
            "displayName",
            "userPrincipalName",
            "mail",
            "givenName",
            "surname",
            "accountEnabled",
            "userType",
        ],
        "organization" => &["id", "displayName", "verifiedDomains", "tenantType"],
        other => panic!("no property list for {other}"),
    };
    known.iter().map(|s| s.to_string()).collect()
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

/// Checks one recorded request; returns every problem.
fn audit(allowed: &[(String, String, Vec<String>)], graph_base: &str, r: &Rec) -> Vec<String> {
    let mut errs = Vec::new();
    let mut bad = |m: String| errs.push(format!("{}: {m}", r.line()));

    if !version_ok(r) {
        bad(format!("wrong API version {}", r.version()));
    }
    if !path_allowed(allowed, r) {
        bad("method + path are not in the reference path lists".into());
    }

    // Headers every request carries (reference §8).
    match r.headers.get("client-request-id") {
        Some(c) if uuid::Uuid::parse_str(c).is_ok() => {}
        other => bad(format!(
            "client-request-id missing or not a GUID: {other:?}"
        )),
    }
    if r.headers
        .get("return-client-request-id")
        .map(String::as_str)
        != Some("true")
    {
        bad("return-client-request-id: true missing".into());
    }
    if !r
        .headers
        .get("authorization")
        .is_some_and(|a| a.starts_with("Bearer "))
    {
        bad("no bearer token".into());
    }
    if !r.raw_body.is_empty()
        && !r
            .headers
            .get("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    {
        bad("a body without Content-Type: application/json".into());
    }

    // Query syntax.
    if r.query.contains(' ') || r.query.contains('"') || r.query.contains('\'') {
        bad("query is not URL-encoded (space or quote on the wire)".into());
    }
    let q = r.params();
    let eventual = r
        .headers
        .get("consistencylevel")
        .is_some_and(|v| v.eq_ignore_ascii_case("eventual"));
    let ty = resource_type(r);
    let props = ty
        .map(|t| property_names(r.version(), t))
        .unwrap_or_default();
    let known = |name: &str| props.iter().any(|p| p == name);
    if let Some(search) = q.get("$search") {
        if !eventual {
            bad("$search without ConsistencyLevel: eventual".into());
        }
        if q.get("$count").map(String::as_str) != Some("true") {
            bad("$search without $count=true (reference §8)".into());
        }
        for clause in search.split(" OR ") {
            let c = clause.trim();
            let inner = c.strip_prefix('"').and_then(|c| c.strip_suffix('"'));
            match inner.and_then(|i| i.split_once(':')) {
                Some((prop, term)) if known(prop) && !term.is_empty() => {}
                _ => bad(format!(
                    "$search clause {c:?} is not \"property:value\" with a property of {ty:?}"
                )),
            }
        }
    }
    if q.get("$count").map(String::as_str) == Some("true") && !eventual {
        bad("$count=true without ConsistencyLevel: eventual".into());
    }
    for key in ["$select", "$expand"] {
        if let Some(list) = q.get(key) {
            for name in split_list(list) {
                if !known(&name) {
                    bad(format!(
                        "{key} names {name:?}, which {ty:?} does not have in {}",
                        r.version()
                    ));
                }
            }
        }
    }
    if let Some(order) = q.get("$orderby") {
        let prop = order.split_whitespace().next().unwrap_or("");
        if !known(prop) {
            bad(format!("$orderby on {prop:?}, not a property of {ty:?}"));
        }
    }
    if let Some(filter) = q.get("$filter") {
        if filter.matches('\'').count() % 2 != 0 {
            bad(format!("$filter {filter:?} has an unbalanced quote"));
        }
        let p = r.resource_path();
        if p == "/devices" {
            // Reference §4.2: resolve by deviceId (not id).
            let ok = filter
                .split(" or ")
                .all(|c| c.trim().starts_with("deviceId eq '") && c.trim().ends_with('\''));
            if !ok {
                bad(format!(
                    "$filter on /devices is not deviceId eq '…': {filter:?}"
                ));
            }
        } else if p.ends_with("/windowsAutopilotDeviceIdentities") {
            // Reference §7: contains(serialNumber,'…') is what the service is known to take.
            if !(filter.starts_with("contains(serialNumber,'") && filter.ends_with("')")) {
                bad(format!(
                    "$filter on Autopilot devices is not contains(serialNumber,'…'): {filter:?}"
                ));
            }
        } else {
            let prop = filter.split_whitespace().next().unwrap_or("");
            if !known(prop) {
                bad(format!("$filter on {prop:?}, not a property of {ty:?}"));
            }
        }
    }

    // Bodies.
    let segs = r.segments();
    let last = segs.last().copied().unwrap_or("");
    let body = r.body.clone();
    let v = r.version();
    match (r.method.as_str(), last, body) {
        ("POST", "windowsAutopilotDeploymentProfiles", Some(b)) => {
            for e in schema::validate(v, "windowsAutopilotDeploymentProfile", &b) {
                bad(e);
            }
        }
        ("POST", "assignments", Some(b)) => {
            for e in schema::validate(v, "windowsAutopilotDeploymentProfileAssignment", &b) {
                bad(e);
            }
        }
        ("POST", "groups", Some(b)) => {
            for e in schema::validate(v, "group", &b) {
                bad(e);
            }
        }
        ("POST", "$ref", Some(b)) => {
            // Reference §4.2: exactly {"@odata.id": "<graph host>/v1.0/directoryObjects/{id}"}.
            let obj = b.as_object().cloned().unwrap_or_default();
            let id = obj.get("@odata.id").and_then(|x| x.as_str()).unwrap_or("");
            let prefix = format!("{graph_base}/v1.0/directoryObjects/");
            let rest = id.strip_prefix(&prefix).unwrap_or("");
            if obj.len() != 1 || rest.is_empty() || rest.contains('/') {
                bad(format!(
                    "$ref body is not {{\"@odata.id\": \"{prefix}{{id}}\"}}: {b}"
                ));
            }
        }
        ("PATCH", _, Some(b)) if segs.len() == 2 && segs[0] == "groups" => {
            for e in schema::validate(v, "group", &b) {
                bad(e);
            }
            // Reference §4.2: up to 20 "<graph host>/v1.0/directoryObjects/{id}" per request.
            if let Some(binds) = b.get("members@odata.bind") {
                let prefix = format!("{graph_base}/v1.0/directoryObjects/");
                match binds.as_array() {
                    Some(list) if !list.is_empty() && list.len() <= 20 => {
                        for x in list {
                            let rest = x
                                .as_str()
                                .and_then(|s| s.strip_prefix(&prefix))
                                .unwrap_or("");
                            if rest.is_empty() || rest.contains('/') {
                                bad(format!(
                                    "members@odata.bind item is not {prefix}{{id}}: {x}"
                                ));
                            }
                        }
                    }
                    _ => bad(format!(
                        "members@odata.bind is not an array of 1 to 20 references: {binds}"
                    )),
                }
            }
        }
        ("POST", "import", Some(b)) => {
            let obj = b.as_object().cloned().unwrap_or_default();
            let rows = obj
                .get("importedWindowsAutopilotDeviceIdentities")
                .and_then(|x| x.as_array());
            match rows {
                Some(rows) if obj.len() == 1 && !rows.is_empty() => {
                    for (i, row) in rows.iter().enumerate() {
                        for e in schema::validate(v, "importedWindowsAutopilotDeviceIdentity", row)
                        {
                            bad(format!("row {i}: {e}"));
                        }
                        if row
                            .get("hardwareIdentifier")
                            .and_then(|h| h.as_str())
                            .is_none()
                        {
                            bad(format!("row {i}: no hardwareIdentifier"));
                        }
                    }
                }
                _ => bad(format!(
                    "import body is not {{\"importedWindowsAutopilotDeviceIdentities\": [...]}}: {b}"
                )),
            }
        }
        ("POST", "updateDeviceProperties", Some(b)) => {
            // The action's parameters (reference §7, paths list) are all properties of the
            // device identity with the same types, so the type validates names and types.
            let params = [
                "userPrincipalName",
                "addressableUserName",
                "groupTag",
                "displayName",
                "deviceAccountUpn",
                "deviceAccountPassword",
                "deviceFriendlyName",
            ];
            let obj = b.as_object().cloned().unwrap_or_default();
            if obj.is_empty() {
                bad("updateDeviceProperties with an empty body".into());
            }
            for k in obj.keys() {
                let v1_only = params[..4].contains(&k.as_str());
                if !params.contains(&k.as_str()) || (v == "v1.0" && !v1_only) {
                    bad(format!(
                        "{k:?} is not a parameter of updateDeviceProperties in {v}"
                    ));
                }
            }
            for e in schema::validate(v, "windowsAutopilotDeviceIdentity", &b) {
                bad(e);
            }
        }
        ("POST", "$batch", Some(b)) => {
            for e in batch_envelope_problems(&b) {
                bad(e);
            }
        }
        ("POST", "sync", body) => {
            if body.is_some_and(|b| !b.as_object().is_some_and(|o| o.is_empty())) {
                bad("windowsAutopilotSettings/sync takes no body".into());
            }
        }
        ("GET" | "DELETE", _, None) => {}
        (m, _, Some(b)) => bad(format!("{m} with a body no check knows: {b}")),
        (m, _, None) => bad(format!("{m} without a body no check knows")),
    }
    errs
}

/// Reference §8: `{"requests": [{id, method, url, headers?, body?, dependsOn?}]}`, at most 20,
/// ids unique strings, URLs relative to the version root, Content-Type with a body.
fn batch_envelope_problems(b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(obj) = b.as_object() else {
        return vec![format!("$batch body is not an object: {b}")];
    };
    if obj.keys().any(|k| k != "requests") {
        out.push(format!("$batch body has keys other than requests: {b}"));
    }
    let Some(reqs) = obj.get("requests").and_then(|r| r.as_array()) else {
        return vec![format!("$batch body has no requests array: {b}")];
    };
    if reqs.is_empty() || reqs.len() > 20 {
        out.push(format!("$batch carries {} requests (1..=20)", reqs.len()));
    }
    let mut ids = Vec::new();
    for r in reqs {
        let Some(o) = r.as_object() else {
            out.push(format!("batch item is not an object: {r}"));
            continue;
        };
        for k in o.keys() {
            if !["id", "method", "url", "headers", "body", "dependsOn"].contains(&k.as_str()) {
                out.push(format!("batch item has unknown key {k:?}"));
            }
        }
        match o.get("id").and_then(|x| x.as_str()) {
            Some(id) if !id.is_empty() => {
                if ids.contains(&id) {
                    out.push(format!("batch id {id:?} used twice"));
                }
                ids.push(id);
            }
            _ => out.push(format!("batch item without a string id: {r}")),
        }
        let method = o.get("method").and_then(|x| x.as_str()).unwrap_or("");
        if !["GET", "POST", "PATCH", "PUT", "DELETE"].contains(&method) {
            out.push(format!("batch item method {method:?}"));
        }
        let url = o.get("url").and_then(|x| x.as_str()).unwrap_or("");
        if !url.starts_with('/') || url.starts_with("/v1.0/") || url.starts_with("/beta/") {
            out.push(format!(
                "batch url {url:?} must be relative to the version root (\"/groups/…\")"
            ));
        }
        if o.contains_key("body") {
            let ct = o.get("headers").and_then(|h| h.as_object()).and_then(|h| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                    .map(|(_, v)| v.clone())
            });
            if ct.is_none() {
                out.push(format!("batch item with a body but no Content-Type: {r}"));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Driving every step through the proxy

fn hash(serial: &str, salt: u64) -> String {
    STANDARD.encode(build_hardware_hash(serial, "Contoso", "Laptop 7", salt))
}

fn fast_poll() -> PollPolicy {
    PollPolicy {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(40),
        factor: 1.5,
        timeout: Duration::from_secs(30),
    }
}

fn import_opts() -> ImportOptions {
    ImportOptions {
        processing: fast_poll(),
        waiting: fast_poll(),
        sync_min_interval: Speed::TEST.scaled(Duration::from_secs(600)),
        ..ImportOptions::default()
    }
}

async fn drive_every_step(sim: &SimHandle, graph: &GraphClient) {
    // Step 2: join permission.
    let policies = jp::read_policies(graph).await.expect("read policies");
    let deployers = jp::search_deployers(graph, "a").await.expect("search");
    assert!(
        !deployers.is_empty(),
        "the demo tenant has users and groups"
    );
    jp::check_coverage(graph, &policies, &deployers)
        .await
        .expect("coverage");

    // Step 3: profile.
    let form = ProfileForm {
        name: "Wire format user-driven".into(),
        ..ProfileForm::default()
    };
    let valid = profile::validate(&form, &Vec::<String>::new()).expect("form valid");
    let created = profile::create_profile(graph, &valid)
        .await
        .expect("create profile");
    let pid = created.profile.id.clone();

    // Step 4: dynamic group, search, read-back, assignment.
    let spec = GroupSpec {
        display_name: "Wire format devices".into(),
        description: "Wire-format audit".into(),
        rule: Some(RuleSpec::GroupTags(vec!["WIRE".into()])),
    };
    let g = match group::create_group(graph, &spec)
        .await
        .expect("create group")
    {
        group::CreateOutcome::Created(g) | group::CreateOutcome::Exists(g) => g,
    };
    group::read_back(
        graph,
        &g.id,
        ReadBackPolicy {
            attempts: 40,
            delay: Duration::from_millis(25),
        },
    )
    .await
    .expect("read back");
    group::search_groups(graph, "Wire").await.expect("search");
    group::search_groups(graph, "").await.expect("list");
    profile::assign_to_group(graph, &pid, &g.id)
        .await
        .expect("assign");

    // Step 5: import two rows (upload, follow, $batch cleanup, sync).
    let rows: Vec<ImportRow> = (0..2u64)
        .map(|i| ImportRow {
            serial: format!("WIRE-{i}"),
            hash: hash(&format!("WIRE-{i}"), 70 + i),
            group_tag: "WIRE".into(),
            assigned_user: sim.admin().user_principal_name,
            file: "wire.csv".into(),
            line: i as usize + 2,
            ..Default::default()
        })
        .collect();
    let mut job = import::precheck(graph, rows, &import_opts())
        .await
        .expect("precheck");
    import::run(
        graph,
        &mut job,
        &import_opts(),
        &NoObserver,
        &CancellationToken::new(),
    )
    .await
    .expect("import");
    assert!(job.is_validated(), "{:#?}", job.rows);

    // Step 6: static group, members@odata.bind, board, edit, sync.
    let (dev_a, _) = sim.with_state(|s| tenant::add_device(s, "WIRE-S1", "S", true));
    let static_group = sim.with_state(|s| tenant::add_group(s, "Wire static", None, vec![]));
    let t = tenant::target(&static_group, GroupMembership::Static, &pid, "Wire");
    let devices = assignment::list_devices(graph).await.expect("devices");
    let mine: Vec<_> = devices.into_iter().filter(|d| d.id == dev_a).collect();
    assignment::ensure_static_members(graph, &t, &mine, &tenant::fast_wait(), |_| {})
        .await
        .expect("members");
    assignment::load_board(graph, &t).await.expect("board");
    let mut reader = assignment::BoardReader::new(t.clone());
    reader.read(graph).await.expect("board reader");
    assignment::get_device_expanded(graph, &dev_a)
        .await
        .expect("expanded");
    let edit = DeviceEdit {
        group_tag: Some("WIRE2".into()),
        display_name: Some("PC-WIRE".into()),
        user_principal_name: Some(sim.admin().user_principal_name),
    };
    assignment::update_device(graph, &dev_a, &edit)
        .await
        .expect("edit");
    import::update_group_tag(graph, &dev_a, "WIRE3")
        .await
        .expect("group tag");
    assignment::sync_now(graph).await.expect("sync");
}

#[tokio::test]
async fn every_request_the_steps_send_matches_the_reference() {
    let sim = demo_sim().await;
    let (proxy_url, log) = start_proxy(&sim).await;
    let token = sim.issue_token(&sim.admin().user_principal_name);
    let graph = GraphClient::new(&proxy_url, Arc::new(StaticToken(token)))
        .with_retry(support::fast_retry());

    drive_every_step(&sim, &graph).await;

    let recs = log.lock().unwrap().clone();
    eprintln!("{} requests recorded", recs.len());
    let allowed = allowed_paths();
    let mut problems = Vec::new();
    for r in &recs {
        problems.extend(audit(&allowed, &proxy_url, r));
    }
    let mut seen: Vec<String> = recs
        .iter()
        .map(|r| {
            let shape: Vec<String> = r
                .segments()
                .iter()
                .map(|s| {
                    if uuid::Uuid::parse_str(s).is_ok() {
                        "{id}".to_string()
                    } else {
                        s.to_string()
                    }
                })
                .collect();
            format!("{} /{}/{}", r.method, r.version(), shape.join("/"))
        })
        .collect();
    seen.sort();
    seen.dedup();
    eprintln!("request shapes:\n  {}", seen.join("\n  "));
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}\nrequests seen:\n  {}",
        problems.len(),
        problems.join("\n  "),
        seen.join("\n  ")
    );

    // The drive really covered every kind of request the audit knows.
    for needed in [
        "GET /v1.0/policies/deviceRegistrationPolicy",
        "GET /beta/policies/mobileDeviceManagementPolicies",
        "GET /v1.0/users",
        "POST /beta/deviceManagement/windowsAutopilotDeploymentProfiles",
        "POST /beta/deviceManagement/windowsAutopilotDeploymentProfiles/{id}/assignments",
        "POST /v1.0/groups",
        "PATCH /v1.0/groups/{id}",
        "GET /v1.0/devices",
        "POST /beta/deviceManagement/importedWindowsAutopilotDeviceIdentities/import",
        "POST /beta/$batch",
        "POST /beta/deviceManagement/windowsAutopilotDeviceIdentities/{id}/updateDeviceProperties",
        "POST /beta/deviceManagement/windowsAutopilotSettings/sync",
        "GET /beta/deviceManagement/windowsAutopilotSettings",
    ] {
        assert!(
            seen.iter().any(|s| s == needed),
            "the drive never sent {needed}; seen:\n  {}",
            seen.join("\n  ")
        );
    }
    // No request was refused for its form (a 400 a fallback path would hide). 404s of
    // read-backs during replication and 429s of a sync are expected service behaviour.
    let failed: Vec<String> = recs
        .iter()
        .filter(|r| matches!(r.status, 400 | 405 | 415))
        .map(|r| format!("{} -> {}", r.line(), r.status))
        .collect();
    assert!(
        failed.is_empty(),
        "requests the sim refused:\n  {}",
        failed.join("\n  ")
    );
}

#[test]
fn the_audit_rejects_what_it_is_meant_to_catch() {
    let allowed = allowed_paths();
    let rec = |method: &str, path: &str, query: &str, body: Option<Value>| {
        let mut headers = HashMap::new();
        headers.insert(
            "client-request-id".to_string(),
            uuid::Uuid::new_v4().to_string(),
        );
        headers.insert("return-client-request-id".to_string(), "true".to_string());
        headers.insert("authorization".to_string(), "Bearer x".to_string());
        let raw_body = body
            .as_ref()
            .map(|b| serde_json::to_vec(b).unwrap())
            .unwrap_or_default();
        if body.is_some() {
            headers.insert("content-type".to_string(), "application/json".to_string());
        }
        Rec {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers,
            body,
            raw_body,
            status: 200,
        }
    };
    let base = "https://graph.microsoft.com";
    let ok = rec(
        "GET",
        "/beta/deviceManagement/windowsAutopilotDeviceIdentities",
        "$filter=contains(serialNumber,%27PF1%27)&$select=id,serialNumber,deploymentProfileAssignmentStatus",
        None,
    );
    assert_eq!(audit(&allowed, base, &ok), Vec::<String>::new());
    let cases = [
        // Autopilot through v1.0.
        rec(
            "GET",
            "/v1.0/deviceManagement/windowsAutopilotDeploymentProfiles",
            "",
            None,
        ),
        // A beta-only property selected through v1.0.
        rec(
            "GET",
            "/v1.0/deviceManagement/windowsAutopilotDeviceIdentities",
            "$select=id,deploymentProfileAssignmentStatus",
            None,
        ),
        // $search without $count=true (and no header).
        rec("GET", "/v1.0/groups", "$search=%22displayName:x%22", None),
        // Unquoted $search.
        rec(
            "GET",
            "/v1.0/groups",
            "$search=displayName:x&$count=true",
            None,
        ),
        // $filter on /devices by object id.
        rec("GET", "/v1.0/devices", "$filter=id%20eq%20%27x%27", None),
        // Unencoded literal.
        rec("GET", "/v1.0/groups", "$filter=displayName eq 'x'", None),
        // Misspelled enum member in a profile body.
        rec(
            "POST",
            "/beta/deviceManagement/windowsAutopilotDeploymentProfiles",
            "",
            Some(json!({
                "@odata.type": "#microsoft.graph.azureADWindowsAutopilotDeploymentProfile",
                "displayName": "x", "deviceType": "windowsPC"
            })),
        ),
        // Relative $ref.
        rec(
            "POST",
            "/v1.0/groups/g1/members/$ref",
            "",
            Some(json!({"@odata.id": "directoryObjects/d1"})),
        ),
        // 21 members in one PATCH, and a relative reference.
        rec(
            "PATCH",
            "/v1.0/groups/g1",
            "",
            Some(json!({"members@odata.bind": (0..21)
                .map(|i| format!("http://x/v1.0/directoryObjects/d{i}"))
                .collect::<Vec<_>>()})),
        ),
        rec(
            "PATCH",
            "/v1.0/groups/g1",
            "",
            Some(json!({"members@odata.bind": ["directoryObjects/d1"]})),
        ),
        // orderIdentifier is obsolete (reference §0.5).
        rec(
            "POST",
            "/beta/deviceManagement/importedWindowsAutopilotDeviceIdentities/import",
            "",
            Some(json!({"importedWindowsAutopilotDeviceIdentities": [
                {"serialNumber": "1", "hardwareIdentifier": "AA==", "orderIdentifier": "x"}
            ]})),
        ),
        // serialNumber is not a parameter of updateDeviceProperties.
        rec(
            "POST",
            "/beta/deviceManagement/windowsAutopilotDeviceIdentities/d1/updateDeviceProperties",
            "",
            Some(json!({"serialNumber": "x"})),
        ),
        // Batch URL with the version inside, 21 requests.
        rec(
            "POST",
            "/beta/$batch",
            "",
            Some(json!({"requests": (0..21).map(|i| json!({
                "id": i.to_string(), "method": "DELETE", "url": "/beta/x"
            })).collect::<Vec<_>>()})),
        ),
        // A path the lists do not have.
        rec(
            "POST",
            "/beta/deviceManagement/windowsAutopilotSettings/syncNow",
            "",
            None,
        ),
    ];
    for c in &cases {
        assert!(
            !audit(&allowed, base, c).is_empty(),
            "the audit let through {}",
            c.line()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// What the simulator answers

async fn raw(
    sim: &SimHandle,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = support::raw_http()
        .request(method, format!("{}{path}", sim.url()))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body");
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, v)
}

fn strip_context(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.retain(|k, _| !k.starts_with("@odata.context"));
    }
    v
}

/// A simulated tenant with the demo data, at test speed.
async fn demo_sim() -> SimHandle {
    sim::spawn(SimConfig {
        seed: Seed::Demo,
        ..SimConfig::test()
    })
    .await
    .expect("sim")
}

#[track_caller]
fn assert_no_errors(what: &str, errors: Vec<String>) {
    assert!(errors.is_empty(), "{what}:\n  {}", errors.join("\n  "));
}

#[tokio::test]
async fn sim_autopilot_resources_match_the_schema() {
    let sim = demo_sim().await;
    let token = sim.issue_token(&sim.admin().user_principal_name);
    let dev = "/deviceManagement/windowsAutopilotDeviceIdentities";
    let imp = "/deviceManagement/importedWindowsAutopilotDeviceIdentities";

    // A device with an assigned profile, so the navigations have something to expand: one
    // profile targets every device, and the tenant's own assignment evaluation gives it out
    // (a profile set by hand would be undone by that evaluation whenever it runs first).
    sim.with_state(|s| {
        use autopilot_wizard::sim::profiles::{StoredAssignment, StoredTarget};
        let p = s.profiles.profiles[0].id.clone();
        s.profiles
            .assignments
            .retain(|a| a.target != StoredTarget::AllDevices);
        s.profiles.assignments.push(StoredAssignment {
            id: "5f0c2a71-8d3e-4b6a-9c1f-2e7d4a8b6c10".into(),
            profile_id: p,
            target: StoredTarget::AllDevices,
            filter_id: None,
            filter_type: "none".into(),
        });
    });
    let mut assigned = None;
    for _ in 0..200 {
        // Requests move the tenant's clock on.
        raw(
            &sim,
            &token,
            reqwest::Method::GET,
            &format!("/beta{dev}"),
            None,
        )
        .await;
        assigned = sim.with_state(|s| {
            s.autopilot
                .devices
                .iter()
                .find_map(|d| Some((d.assigned_profile_id.clone()?, d.id.clone())))
        });
        if assigned.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (profile_id, device_id) =
        assigned.expect("a device got the profile targeting every device");

    for version in ["beta", "v1.0"] {
        let (status, _, page) = raw(
            &sim,
            &token,
            reqwest::Method::GET,
            &format!("/{version}{dev}"),
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert!(!page["value"].as_array().unwrap().is_empty());
        assert_no_errors(
            &format!("{version} device list"),
            schema::validate_collection(version, "windowsAutopilotDeviceIdentity", &page),
        );
    }
    let (status, _, one) = raw(
        &sim,
        &token,
        reqwest::Method::GET,
        &format!("/beta{dev}/{device_id}?$expand=deploymentProfile,intendedDeploymentProfile"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(one["deploymentProfile"]["id"], profile_id.as_str());
    assert!(
        one["deploymentProfile"]["@odata.type"]
            .as_str()
            .is_some_and(|t| t.ends_with("azureADWindowsAutopilotDeploymentProfile")),
        "the expanded profile names its concrete type: {one:#}"
    );
    assert_no_errors(
        "expanded device",
        schema::validate(
            "beta",
            "windowsAutopilotDeviceIdentity",
            &strip_context(one),
        ),
    );
    let (status, _, nav) = raw(
        &sim,
        &token,
        reqwest::Method::GET,
        &format!("/beta{dev}/{device_id}/deploymentProfile"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_no_errors(
        "deploymentProfile navigation",
        schema::validate(
            "beta",
            "windowsAutopilotDeploymentProfile",
            &strip_context(nav),
        ),
    );

    // Import action: 200 with a `value` collection (reference §6.2); single create: 201.
    let rows: Vec<Value> = (0..2u64)
        .map(|i| {
            json!({
                "@odata.type": "#microsoft.graph.importedWindowsAutopilotDeviceIdentity",
                "serialNumber": format!("SIMWIRE-{i}"),
                "productKey": "",
                "hardwareIdentifier": hash(&format!("SIMWIRE-{i}"), 500 + i),
                "groupTag": "HQ",
                "assignedUserPrincipalName": "",
            })
        })
        .collect();
    for version in ["beta", "v1.0"] {
        let (status, _, page) = raw(
            &sim,
            &token,
            reqwest::Method::POST,
            &format!("/{version}{imp}/import"),
            Some(json!({"importedWindowsAutopilotDeviceIdentities": rows})),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["value"].as_array().map(Vec::len), Some(2));
        assert_no_errors(
            &format!("{version} import answer"),
            schema::validate_collection(version, "importedWindowsAutopilotDeviceIdentity", &page),
        );
        for rec in page["value"].as_array().unwrap() {
            // §6.2: one server-set importId per call, status in the enum.
            assert_eq!(rec["importId"], page["value"][0]["importId"]);
            assert!(
                ["unknown", "pending"]
                    .contains(&rec["state"]["deviceImportStatus"].as_str().unwrap()),
                "{rec}"
            );
        }
    }
    let (status, _, created) = raw(
        &sim,
        &token,
        reqwest::Method::POST,
        &format!("/beta{imp}"),
        Some(rows[0].clone()),
    )
    .await;
    assert_eq!(status, 201);
    assert_no_errors(
        "created import record",
        schema::validate(
            "beta",
            "importedWindowsAutopilotDeviceIdentity",
            &strip_context(created.clone()),
        ),
    );
    let (status, _, list) = raw(
        &sim,
        &token,
        reqwest::Method::GET,
        &format!("/beta{imp}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_no_errors(
        "import record list",
        schema::validate_collection("beta", "importedWindowsAutopilotDeviceIdentity", &list),
    );
    let rid = created["id"].as_str().unwrap();
    let (status, _, _) = raw(
        &sim,
        &token,
        reqwest::Method::DELETE,
        &format!("/beta{imp}/{rid}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _, err) = raw(
        &sim,
        &token,
        reqwest::Method::GET,
        &format!("/beta{imp}/{rid}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_no_errors("404 body", schema::validate_error(&err));

    // A bad hash fails the whole call with the Edm.Binary message (reference §6.1).
    let (status, _, err) = raw(
        &sim,
        &token,
        reqwest::Method::POST,
        &format!("/beta{imp}/import"),
        Some(json!({"importedWindowsAutopilotDeviceIdentities": [
            {"serialNumber": "X", "hardwareIdentifier": "not base64!"}
        ]})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Edm.Binary")
    );
    assert_no_errors("400 body", schema::validate_error(&err));

    // windowsAutopilotSettings (§6.5): beta only; sync 204, a second one inside the window 429
    // with a Retry-After in (possibly fractional) seconds.
    let settings = "/deviceManagement/windowsAutopilotSettings";
    let (status, _, s) = raw(
        &sim,
        &token,
        reqwest::Method::GET,
        &format!("/beta{settings}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_no_errors(
        "windowsAutopilotSettings",
        schema::validate("beta", "windowsAutopilotSettings", &strip_context(s)),
    );
    let (status, _, err) = raw(
        &sim,
        &token,
        reqwest::Method::GET,
        &format!("/v1.0{settings}"),
        None,
    )
    .await;
    assert!(
        status == 400 || status == 404,
        "v1.0 has no windowsAutopilotSettings: {status}"
    );
    assert_no_errors("v1.0 settings error", schema::validate_error(&err));
    // updateDeviceProperties: 204, no body (§7).
    let (status, _, body) = raw(
        &sim,
        &token,
        reqwest::Method::POST,
        &format!("/beta{dev}/{device_id}/updateDeviceProperties"),
        Some(json!({"groupTag": "NEW"})),
    )
    .await;
    assert_eq!((status, body), (204, Value::Null));

    // Service time as slow as Microsoft, so the manual-sync window really holds.
    let slow = sim::spawn(SimConfig {
        seed: Seed::Empty,
        speed: Speed::REALISTIC,
        ..SimConfig::test()
    })
    .await
    .expect("sim");
    let slow_token = slow.issue_token(&slow.admin().user_principal_name);
    let (sim, token) = (slow, slow_token);
    let (status, _, body) = raw(
        &sim,
        &token,
        reqwest::Method::POST,
        &format!("/beta{settings}/sync"),
        None,
    )
    .await;
    assert_eq!((status, body), (204, Value::Null));
    let (_, _, s) = raw(
        &sim,
        &token,
        reqwest::Method::GET,
        &format!("/beta{settings}"),
        None,
    )
    .await;
    assert_eq!(s["syncStatus"], "inProgress");
    assert!(
        s["lastManualSyncTriggerDateTime"]
            .as_str()
            .is_some_and(|t| !t.starts_with("0001"))
    );
    let (status, headers, err) = raw(
        &sim,
        &token,
        reqwest::Method::POST,
        &format!("/beta{settings}/sync"),
        None,
    )
    .await;
    assert_eq!(status, 429);
    let ra = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(ra.is_some(), "Retry-After in whole seconds: {headers:?}");
    assert_no_errors("429 body", schema::validate_error(&err));
}

#[tokio::test]
async fn sim_directory_answers_have_the_documented_shape() {
    let sim = demo_sim().await;
    let token = sim.issue_token(&sim.admin().user_principal_name);

    // user and organization are not in the schema extract; check the documented v1.0 names.
    let (status, _, me) = raw(&sim, &token, reqwest::Method::GET, "/v1.0/me", None).await;
    assert_eq!(status, 200);
    for k in ["id", "displayName", "userPrincipalName"] {
        assert!(me[k].is_string(), "/me lacks {k}: {me}");
    }
    let allowed_user = property_names("v1.0", "user");
    let (status, _, users) = raw(
        &sim,
        &token,
        reqwest::Method::GET,
        "/v1.0/users?$select=id,displayName,userPrincipalName",
        None,
    )
    .await;
    assert_eq!(status, 200);
    for u in users["value"].as_array().unwrap() {
        for k in u.as_object().unwrap().keys() {
            assert!(
                k.starts_with('@') || allowed_user.contains(k),
                "unexpected user property {k}: {u}"
            );
        }
    }
    let (status, _, orgs) = raw(
        &sim,
        &token,
        reqwest::Method::GET,
        "/v1.0/organization",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let org = &orgs["value"][0];
    assert!(uuid::Uuid::parse_str(org["id"].as_str().unwrap()).is_ok());
    let domains = org["verifiedDomains"].as_array().expect("verifiedDomains");
    assert!(domains.iter().any(|d| d["isInitial"] == true));
    for d in domains {
        for k in ["name", "isDefault", "isInitial", "type", "capabilities"] {
            assert!(!d[k].is_null(), "verifiedDomain lacks {k}: {d}");
        }
    }

    // $search needs ConsistencyLevel: eventual (reference §8), and answers @odata.count with
    // $count=true.
    let search = "/v1.0/users?$search=%22displayName:a%22&$count=true";
    let (status, _, err) = raw(&sim, &token, reqwest::Method::GET, search, None).await;
    assert_eq!(status, 400);
    assert_no_errors("$search error", schema::validate_error(&err));
    let resp = support::raw_http()
        .get(format!("{}{search}", sim.url()))
        .bearer_auth(&token)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let page: Value = resp.json().await.unwrap();
    assert!(page["@odata.count"].is_number(), "{page}");

    // members/$ref: 204; a relative or bare reference is refused (reference §4.2).
    let group = sim.with_state(|s| tenant::add_group(s, "Ref shape", None, vec![]));
    let (_, did) = sim.with_state(|s| tenant::add_device(s, "REF-1", "", true));
    let object_id = tenant::object_id_of(&sim, &did);
    for bad in [object_id.clone(), format!("directoryObjects/{object_id}")] {
        let (status, _, err) = raw(
            &sim,
            &token,
            reqwest::Method::POST,
            &format!("/v1.0/groups/{group}/members/$ref"),
            Some(json!({"@odata.id": bad})),
        )
        .await;
        assert_eq!(status, 400, "{bad} must be refused");
        assert_no_errors("$ref error", schema::validate_error(&err));
    }
    let (status, _, body) = raw(
        &sim,
        &token,
        reqwest::Method::POST,
        &format!("/v1.0/groups/{group}/members/$ref"),
        Some(json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{object_id}")})),
    )
    .await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, _, page) = raw(
        &sim,
        &token,
        reqwest::Method::GET,
        &format!(
            "/v1.0/groups/{group}/members/microsoft.graph.device?$select=id,deviceId,displayName"
        ),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page["value"][0]["deviceId"], did.as_str());
    assert_no_errors(
        "device members",
        schema::validate_collection("v1.0", "device", &page),
    );
    let (status, _, page) = raw(
        &sim,
        &token,
        reqwest::Method::GET,
        &format!("/v1.0/devices?$filter=deviceId%20eq%20%27{did}%27&$select=id,deviceId,displayName,physicalIds"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page["value"].as_array().map(Vec::len), Some(1));
    assert_no_errors(
        "device by deviceId",
        schema::validate_collection("v1.0", "device", &page),
    );
}

#[tokio::test]
async fn sim_batch_follows_the_reference_envelope() {
    let sim = demo_sim().await;
    let token = sim.issue_token(&sim.admin().user_principal_name);
    let me = sim.admin().id;
    // Reference §8: `responses` with id/status; a body without Content-Type is refused; a
    // request depending on a failed one gets 424; more than 20 requests is a 400.
    let (status, _, v) = raw(
        &sim,
        &token,
        reqwest::Method::POST,
        "/v1.0/$batch",
        Some(json!({"requests": [
            {"id": "1", "method": "GET", "url": format!("/users/{me}?$select=id")},
            {"id": "2", "method": "POST", "url": "/groups", "body": {"displayName": "x"}},
            {"id": "3", "method": "GET", "url": "/me", "dependsOn": ["2"]},
        ]})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let by_id = |id: &str| {
        v["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(by_id("1")["status"], 200);
    assert_eq!(by_id("1")["body"]["id"], me.as_str());
    assert_eq!(by_id("2")["status"], 400, "{v}");
    assert_no_errors("inner 400", schema::validate_error(&by_id("2")["body"]));
    assert_eq!(by_id("3")["status"], 424);
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/me"}))
        .collect();
    let (status, _, err) = raw(
        &sim,
        &token,
        reqwest::Method::POST,
        "/v1.0/$batch",
        Some(json!({ "requests": many })),
    )
    .await;
    assert_eq!(status, 400);
    assert_no_errors("batch limit", schema::validate_error(&err));
}
