//! The simulated tenant's core over real HTTP: token check and its 401 shapes, request ids,
//! users, `/me`, `/organization`, `$search` rules and the request log.

use crate::support;

use autopilot_wizard::sim::{self, SimConfig};
use serde_json::Value;
use support::raw_http;

async fn json(resp: reqwest::Response) -> Value {
    resp.json().await.expect("JSON body")
}

#[tokio::test]
async fn me_and_organization_for_the_admin() {
    let sim = sim::spawn(SimConfig::test()).await.unwrap();
    let token = sim.issue_token(&sim.admin().user_principal_name);
    let http = raw_http();
    let me = json(
        http.get(format!("{}/v1.0/me", sim.url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(me["id"], Value::String(sim.admin().id.clone()));
    assert!(
        me["userPrincipalName"]
            .as_str()
            .unwrap()
            .starts_with("admin@")
    );
    // accountEnabled is not in Graph's default property set.
    assert!(me.get("accountEnabled").is_none(), "{me}");

    let org = json(
        http.get(format!("{}/v1.0/organization", sim.url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let org = &org["value"][0];
    assert_eq!(org["id"], Value::String(sim.tenant_id()));
    let domains = org["verifiedDomains"].as_array().unwrap();
    assert!(domains.iter().any(
        |d| d["isInitial"] == true && d["name"].as_str().unwrap().ends_with(".onmicrosoft.com")
    ));
    assert_eq!(
        domains.iter().filter(|d| d["isDefault"] == true).count(),
        1,
        "exactly one default domain"
    );
}

async fn sim_with_token() -> (sim::SimHandle, String) {
    let sim = sim::spawn(SimConfig::test()).await.unwrap();
    let token = sim.issue_token(&sim.admin().id);
    (sim, token)
}

fn assert_graph_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(!body["error"]["message"].as_str().unwrap_or("").is_empty());
    assert!(
        body["error"]["innerError"]["request-id"].is_string(),
        "{body}"
    );
    assert!(body["error"]["innerError"]["date"].is_string(), "{body}");
}

#[tokio::test]
async fn bearer_check_answers_graph_401s() {
    let (sim, token) = sim_with_token().await;
    let http = raw_http();
    let url = format!("{}/v1.0/me", sim.url());

    let missing = http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let challenge = missing.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains("authorization_uri="), "{challenge}");
    let body = json(missing).await;
    assert_graph_error(&body, "InvalidAuthenticationToken");

    let garbage = http
        .get(&url)
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 401);
    assert!(garbage.headers().contains_key("www-authenticate"));
    let body = json(garbage).await;
    assert_graph_error(&body, "InvalidAuthenticationToken");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("IDX14100")
    );

    // Valid until expired.
    let ok = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    sim.expire_access_token(&token);
    let expired = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(expired.status(), 401);
    let body = json(expired).await;
    assert_graph_error(&body, "InvalidAuthenticationToken");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );

    // The beta endpoint is guarded the same way.
    let beta = http
        .get(format!("{}/beta/me", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(beta.status(), 401);
}

#[tokio::test]
async fn identity_routes_are_not_behind_the_bearer_check() {
    let sim = sim::spawn(SimConfig::test()).await.unwrap();
    let resp = raw_http()
        .post(format!("{}/organizations/oauth2/v2.0/token", sim.url()))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "nope")])
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_ne!(
        body["error"]["code"], "InvalidAuthenticationToken",
        "{body}"
    );
}

#[tokio::test]
async fn request_ids_on_every_response_and_client_id_echoed() {
    let (sim, token) = sim_with_token().await;
    let http = raw_http();
    let ok = http
        .get(format!("{}/v1.0/organization", sim.url()))
        .bearer_auth(&token)
        .header("client-request-id", "c0ffee00-0000-4000-8000-000000000001")
        .send()
        .await
        .unwrap();
    assert!(ok.headers().contains_key("request-id"));
    assert_eq!(
        ok.headers()["client-request-id"],
        "c0ffee00-0000-4000-8000-000000000001"
    );
    // Error bodies carry the same ids as the headers.
    let nf = http
        .get(format!("{}/v1.0/users/nobody@nowhere.example", sim.url()))
        .bearer_auth(&token)
        .header("client-request-id", "c0ffee00-0000-4000-8000-000000000002")
        .send()
        .await
        .unwrap();
    assert_eq!(nf.status(), 404);
    let header_id = nf.headers()["request-id"].to_str().unwrap().to_string();
    let body = json(nf).await;
    assert_graph_error(&body, "Request_ResourceNotFound");
    assert_eq!(
        body["error"]["innerError"]["request-id"],
        header_id.as_str()
    );
    assert_eq!(
        body["error"]["innerError"]["client-request-id"],
        "c0ffee00-0000-4000-8000-000000000002"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nobody@nowhere.example")
    );
}

#[tokio::test]
async fn users_by_id_upn_and_guest_upn() {
    let (sim, token) = sim_with_token().await;
    let http = raw_http();
    let (tech, guest) = sim.with_state(|s| {
        let tech = s
            .core
            .users
            .iter()
            .find(|u| u.job_title.as_deref() == Some("IT Technician"))
            .cloned()
            .unwrap();
        let guest = s
            .core
            .users
            .iter()
            .find(|u| u.user_type == "Guest")
            .cloned()
            .unwrap();
        (tech, guest)
    });
    for key in [tech.id.clone(), tech.user_principal_name.to_uppercase()] {
        let u = json(
            http.get(format!("{}/v1.0/users/{key}", sim.url()))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(u["id"], tech.id.as_str(), "{key}");
    }
    // `#` must be percent-encoded, or it starts a URL fragment.
    let encoded = guest.user_principal_name.replace('#', "%23");
    let u = json(
        http.get(format!(
            "{}/v1.0/users/{encoded}?$select=id,userType,accountEnabled",
            sim.url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(u["userType"], "Guest", "{u}");
    assert_eq!(u["accountEnabled"], true);
    assert!(u.get("displayName").is_none(), "$select honoured: {u}");
}

#[tokio::test]
async fn users_filter_search_and_consistency_level() {
    let (sim, token) = sim_with_token().await;
    let http = raw_http();
    let base = format!("{}/v1.0/users", sim.url());

    let r = http
        .get(&base)
        .query(&[("$filter", "startswith(displayName,'Imani')")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let v = json(r).await;
    let names: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Imani Okafor"]);

    let upn = sim.admin().user_principal_name;
    let v = json(
        http.get(&base)
            .query(&[("$filter", format!("userPrincipalName eq '{upn}'"))])
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["value"].as_array().unwrap().len(), 1);

    let no_header = http
        .get(&base)
        .query(&[("$search", "\"displayName:wa\"")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(no_header.status(), 400);
    let body = json(no_header).await;
    assert_graph_error(&body, "Request_UnsupportedQuery");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ConsistencyLevel"),
        "{body}"
    );

    let v = json(
        http.get(&base)
            .query(&[("$search", "\"displayName:wa\""), ("$count", "true")])
            .header("ConsistencyLevel", "eventual")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let mut names: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["displayName"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["Walter Brandt", "Wanjiru Kamau"]);
    assert_eq!(v["@odata.count"], 2);

    let bad_filter = http
        .get(&base)
        .query(&[("$filter", "employeeId gt 3")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_filter.status(), 400);
}

#[tokio::test]
async fn users_default_properties_and_paging_links() {
    let (sim, token) = sim_with_token().await;
    let http = raw_http();
    let v = json(
        http.get(format!("{}/v1.0/users", sim.url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let page = v["value"].as_array().unwrap();
    assert_eq!(page.len(), SimConfig::test().page_size);
    assert!(page[0].get("accountEnabled").is_none());
    assert!(page[0]["userPrincipalName"].is_string());
    let next = v["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("{}/v1.0/users?", sim.url())),
        "{next}"
    );
}

#[tokio::test]
async fn unknown_graph_segment_and_request_log() {
    let (sim, token) = sim_with_token().await;
    sim.clear_requests();
    let http = raw_http();
    let r = http
        .get(format!("{}/v1.0/nonsense?x=1", sim.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body = json(r).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nonsense")
    );
    let log = sim.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].path, "/v1.0/nonsense");
    assert_eq!(log[0].query.as_deref(), Some("x=1"));
    assert_eq!(log[0].status, 400);
}

#[tokio::test]
async fn dropped_connection_gives_no_http_answer() {
    use autopilot_wizard::sim::core::{Fault, ScriptedFault};
    let (sim, token) = sim_with_token().await;
    sim.script_faults(vec![ScriptedFault::new(
        None,
        "/v1.0/me",
        Fault::DropConnection,
        1,
    )]);
    let http = raw_http();
    let first = http
        .get(format!("{}/v1.0/me", sim.url()))
        .bearer_auth(&token)
        .send()
        .await;
    let err = first.expect_err("a dropped connection has no response");
    assert!(!err.is_timeout(), "{err:?}");
    let second = http
        .get(format!("{}/v1.0/me", sim.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 200);
    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![0, 200]);
}

#[tokio::test]
async fn throttle_and_unavailable_send_whole_second_retry_after() {
    use autopilot_wizard::sim::core::{Fault, ScriptedFault};
    use std::time::Duration;
    let (sim, token) = sim_with_token().await;
    sim.script_faults(vec![ScriptedFault::new(
        Some(reqwest::Method::GET),
        "/users",
        Fault::Throttle {
            retry_after: Duration::from_millis(50),
        },
        1,
    )]);
    let r = raw_http()
        .get(format!("{}/v1.0/users", sim.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // Whole seconds as HTTP defines them: a test-speed wait under a second is "0".
    assert_eq!(r.headers()["retry-after"], "0");
    let body = json(r).await;
    assert_graph_error(&body, "TooManyRequests");

    sim.script_faults(vec![ScriptedFault::new(
        Some(reqwest::Method::GET),
        "/users",
        Fault::Unavailable {
            retry_after: Some(Duration::from_millis(1500)),
        },
        1,
    )]);
    let r = raw_http()
        .get(format!("{}/v1.0/users", sim.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "2", "rounded up, never early");
}

#[tokio::test]
async fn seeds_demo_and_empty() {
    let demo = sim::spawn(SimConfig::test()).await.unwrap();
    demo.with_state(|s| {
        assert!(s.core.users.len() >= 9);
        assert_eq!(s.core.organization.verified_domains.len(), 2);
        assert!(s.core.users.iter().any(|u| !u.account_enabled));
    });
    let empty = sim::spawn(SimConfig {
        seed: sim::Seed::Empty,
        ..SimConfig::test()
    })
    .await
    .unwrap();
    empty.with_state(|s| {
        assert_eq!(s.core.users.len(), 1);
        assert_eq!(s.core.users[0].id, s.core.interactive_user_id);
    });
    assert!(sim::standalone_banner(&demo).contains("/oauth2/v2.0/devicecode"));
}

#[tokio::test]
async fn latency_faults_delay_but_serve() {
    use autopilot_wizard::sim::core::{Fault, ScriptedFault};
    use std::time::{Duration, Instant};
    let (sim, token) = sim_with_token().await;
    sim.script_faults(vec![ScriptedFault::new(
        None,
        "/v1.0/me",
        Fault::Latency(Duration::from_millis(200)),
        1,
    )]);
    let started = Instant::now();
    let r = raw_http()
        .get(format!("{}/v1.0/me", sim.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn identity_routes_get_faults_only_when_opted_in() {
    use autopilot_wizard::sim::core::{Fault, FaultConfig, ScriptedFault};
    let token_path = "/organizations/oauth2/v2.0/token";
    let fault = || {
        vec![ScriptedFault::new(
            None,
            "/oauth2/",
            Fault::Unavailable { retry_after: None },
            1,
        )]
    };
    let post = |sim: &sim::SimHandle| {
        raw_http()
            .post(format!("{}{token_path}", sim.url()))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
            .send()
    };
    let plain = sim::spawn(SimConfig::test()).await.unwrap();
    plain.script_faults(fault());
    assert_ne!(post(&plain).await.unwrap().status(), 503);

    let opted = sim::spawn(SimConfig {
        faults: FaultConfig {
            include_identity: true,
            ..FaultConfig::default()
        },
        ..SimConfig::test()
    })
    .await
    .unwrap();
    opted.script_faults(fault());
    assert_eq!(post(&opted).await.unwrap().status(), 503);
    assert_ne!(post(&opted).await.unwrap().status(), 503, "consumed");
}
