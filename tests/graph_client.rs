//! `GraphClient` over real HTTP against the simulated tenant: retries honouring Retry-After,
//! backoff, giving up, paging, token refresh on 401, error bodies, request ids, `$select`,
//! dropped connections and cancellation.

use crate::support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use autopilot_wizard::graph::client::{
    ApiVersion, BoxFuture, GraphClient, RetryPolicy, StaticToken, TokenSource,
};
use autopilot_wizard::graph::error::GraphError;
use autopilot_wizard::sim::core::{Fault, ScriptedFault};
use autopilot_wizard::sim::{self, SimConfig, SimHandle};
use reqwest::Method;
use serde_json::Value;
use support::{fast_retry, signed_in_sim};
use tokio_util::sync::CancellationToken;

fn statuses(sim: &SimHandle, path: &str) -> Vec<u16> {
    sim.requests()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| r.status)
        .collect()
}

fn script(sim: &SimHandle, method: Option<Method>, path: &str, fault: Fault, times: u32) {
    sim.script_faults(vec![ScriptedFault::new(method, path, fault, times)]);
}

#[tokio::test]
async fn throttling_is_retried_after_the_retry_after_delay() {
    let (sim, client) = signed_in_sim(SimConfig::test()).await;
    // Retry-After is whole seconds (a shorter wait is sent as 0), so one second is the
    // shortest wait the client can be seen to honour.
    let wait = Duration::from_secs(1);
    script(
        &sim,
        Some(Method::GET),
        "/v1.0/me",
        Fault::Throttle { retry_after: wait },
        2,
    );
    sim.clear_requests();
    let started = Instant::now();
    let me: Value = client.get_json(ApiVersion::V1, "/me").await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(me["id"], sim.admin().id.as_str());
    assert!(elapsed >= wait * 2, "waited only {elapsed:?}");
    assert_eq!(statuses(&sim, "/v1.0/me"), vec![429, 429, 200]);
    // Every attempt carries its own client-request-id.
    let ids: HashSet<Option<String>> = sim
        .requests()
        .into_iter()
        .map(|r| r.client_request_id)
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(!ids.contains(&None));
}

#[tokio::test]
async fn unavailable_is_retried_with_backoff_then_succeeds() {
    let (sim, client) = signed_in_sim(SimConfig::test()).await;
    script(
        &sim,
        None,
        "/v1.0/organization",
        Fault::Unavailable { retry_after: None },
        2,
    );
    script(&sim, None, "/v1.0/organization", Fault::GatewayTimeout, 1);
    sim.clear_requests();
    let org: Value = client
        .get_json(ApiVersion::V1, "/organization")
        .await
        .unwrap();
    assert_eq!(org["value"][0]["id"], sim.tenant_id().as_str());
    assert_eq!(
        statuses(&sim, "/v1.0/organization"),
        vec![503, 503, 504, 200]
    );
}

#[tokio::test]
async fn gives_up_after_the_attempt_cap_with_a_clear_message() {
    let (sim, client) = signed_in_sim(SimConfig::test()).await;
    let client = client.with_retry(RetryPolicy {
        max_attempts: 3,
        ..fast_retry()
    });
    script(
        &sim,
        None,
        "/v1.0/me",
        Fault::Throttle {
            retry_after: Duration::from_millis(10),
        },
        50,
    );
    sim.clear_requests();
    let err = client
        .get_json::<Value>(ApiVersion::V1, "/me")
        .await
        .unwrap_err();
    match &err {
        GraphError::GaveUp {
            status, attempts, ..
        } => {
            assert_eq!(*status, 429);
            assert_eq!(*attempts, 3);
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("429") && text.contains("3 attempts"),
        "{text}"
    );
    assert!(text.contains("try again"), "{text}");
    assert!(
        err.ids().unwrap().request_id.is_some(),
        "ids of the last answer"
    );
    assert_eq!(statuses(&sim, "/v1.0/me"), vec![429, 429, 429]);
}

#[tokio::test]
async fn get_all_follows_next_links_across_pages() {
    let (sim, client) = signed_in_sim(SimConfig {
        page_size: 3,
        ..SimConfig::test()
    })
    .await;
    let expected: HashSet<String> =
        sim.with_state(|s| s.core.users.iter().map(|u| u.id.clone()).collect());
    assert!(expected.len() > 6, "needs several pages");
    sim.clear_requests();
    let users: Vec<Value> = client
        .get_all(ApiVersion::V1, "/users?$select=id,displayName")
        .await
        .unwrap();
    let ids: Vec<String> = users
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    let unique: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), unique.len(), "no duplicates");
    assert_eq!(unique, expected);
    assert_eq!(
        statuses(&sim, "/v1.0/users").len(),
        expected.len().div_ceil(3),
        "one request per page"
    );
    // The later pages kept $select.
    assert!(users.iter().all(|u| u.get("userPrincipalName").is_none()));
}

/// Hands out a stale token until asked to refresh, then a good one; counts refreshes.
struct RefreshingSource {
    stale: String,
    fresh: String,
    refreshes: AtomicU32,
}

impl TokenSource for RefreshingSource {
    fn access_token(&self, force_refresh: bool) -> BoxFuture<'_, Result<String, GraphError>> {
        Box::pin(async move {
            if force_refresh {
                self.refreshes.fetch_add(1, Ordering::SeqCst);
                Ok(self.fresh.clone())
            } else {
                Ok(self.stale.clone())
            }
        })
    }
}

#[tokio::test]
async fn a_401_forces_one_refresh_then_retries() {
    let sim = sim::spawn(SimConfig::test()).await.unwrap();
    let admin = sim.admin().id;
    let stale = sim.issue_token(&admin);
    sim.expire_access_token(&stale);
    let source = Arc::new(RefreshingSource {
        stale,
        fresh: sim.issue_token(&admin),
        refreshes: AtomicU32::new(0),
    });
    let client = GraphClient::new(&sim.url(), source.clone()).with_retry(fast_retry());
    sim.clear_requests();
    let me: Value = client.get_json(ApiVersion::V1, "/me").await.unwrap();
    assert_eq!(me["id"], admin.as_str());
    assert_eq!(source.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(statuses(&sim, "/v1.0/me"), vec![401, 200]);
}

#[tokio::test]
async fn a_token_still_refused_after_refresh_is_an_auth_error_not_a_loop() {
    let sim = sim::spawn(SimConfig::test()).await.unwrap();
    let client = GraphClient::new(&sim.url(), Arc::new(StaticToken("revoked".into())))
        .with_retry(fast_retry());
    sim.clear_requests();
    let err = client
        .get_json::<Value>(ApiVersion::V1, "/me")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.code(), Some("InvalidAuthenticationToken"));
    assert!(err.to_string().contains("sign in again"), "{err}");
    assert_eq!(statuses(&sim, "/v1.0/me"), vec![401, 401]);
}

#[tokio::test]
async fn not_found_error_body_is_parsed_with_request_ids() {
    let (sim, client) = signed_in_sim(SimConfig::test()).await;
    sim.clear_requests();
    let err = client
        .get_json::<Value>(ApiVersion::V1, "/users/ghost@fabrikam-demo.example")
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.code(), Some("Request_ResourceNotFound"));
    let ids = err.ids().unwrap();
    let sent = sim.requests()[0].client_request_id.clone();
    assert!(ids.request_id.is_some());
    assert_eq!(ids.client_request_id, sent, "echoed client-request-id");
    let text = err.to_string();
    assert!(text.contains("ghost@fabrikam-demo.example"), "{text}");
    assert!(text.contains(ids.request_id.as_deref().unwrap()), "{text}");
}

#[tokio::test]
async fn client_request_id_is_echoed_on_success() {
    let (sim, client) = signed_in_sim(SimConfig::test()).await;
    sim.clear_requests();
    let resp = client
        .send_url(Method::GET, &client.url(ApiVersion::V1, "/me"), None)
        .await
        .unwrap();
    let sent = sim.requests()[0].client_request_id.clone();
    assert!(sent.is_some());
    assert_eq!(resp.ids.client_request_id, sent);
    assert!(resp.ids.request_id.is_some());
    assert_ne!(resp.ids.request_id, resp.ids.client_request_id);
}

#[tokio::test]
async fn select_is_honoured() {
    let (sim, client) = signed_in_sim(SimConfig::test()).await;
    let id = sim.admin().id;
    let user: Value = client
        .get_json(
            ApiVersion::V1,
            &format!("/users/{id}?$select=id,accountEnabled,userType"),
        )
        .await
        .unwrap();
    let mut keys: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| !k.starts_with("@odata"))
        .collect();
    keys.sort();
    assert_eq!(keys, vec!["accountEnabled", "id", "userType"]);
    assert_eq!(user["accountEnabled"], true);
}

#[tokio::test]
async fn dropped_connection_is_retried_for_get_but_not_for_post() {
    let (sim, client) = signed_in_sim(SimConfig::test()).await;
    script(
        &sim,
        Some(Method::GET),
        "/v1.0/me",
        Fault::DropConnection,
        1,
    );
    sim.clear_requests();
    let me: Value = client.get_json(ApiVersion::V1, "/me").await.unwrap();
    assert_eq!(me["id"], sim.admin().id.as_str());
    assert_eq!(statuses(&sim, "/v1.0/me"), vec![0, 200]);

    script(
        &sim,
        Some(Method::POST),
        "/v1.0/groups",
        Fault::DropConnection,
        1,
    );
    sim.clear_requests();
    let body = serde_json::json!({
        "displayName": "Autopilot devices",
        "mailEnabled": false,
        "mailNickname": "autopilot-devices",
        "securityEnabled": true,
    });
    let err = client
        .post_json::<_, Value>(ApiVersion::V1, "/groups", &body)
        .await
        .unwrap_err();
    match &err {
        GraphError::Network { attempts, .. } => assert_eq!(*attempts, 1),
        other => panic!("expected a network error, got {other:?}"),
    }
    assert!(err.to_string().contains("Could not reach"), "{err}");
    assert_eq!(
        statuses(&sim, "/v1.0/groups"),
        vec![0],
        "a POST that may have been applied is not repeated"
    );
}

#[tokio::test]
async fn cancel_stops_a_long_retry_after_wait() {
    let (sim, client) = signed_in_sim(SimConfig::test()).await;
    let cancel = CancellationToken::new();
    let client = client.with_cancel(cancel.clone()).with_retry(RetryPolicy {
        max_delay: Duration::from_secs(120),
        max_total_wait: Duration::from_secs(300),
        ..fast_retry()
    });
    script(
        &sim,
        None,
        "/v1.0/me",
        Fault::Throttle {
            retry_after: Duration::from_secs(60),
        },
        1,
    );
    let started = Instant::now();
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        canceller.cancel();
    });
    let err = client
        .get_json::<Value>(ApiVersion::V1, "/me")
        .await
        .unwrap_err();
    assert!(matches!(err, GraphError::Cancelled), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(statuses(&sim, "/v1.0/me"), vec![429]);
}

#[tokio::test]
async fn rate_based_faults_are_survived_by_retries() {
    let (sim, client) = signed_in_sim(SimConfig {
        faults: autopilot_wizard::sim::core::FaultConfig {
            throttle_rate: 0.2,
            unavailable_rate: 0.1,
            drop_rate: 0.1,
            retry_after: Duration::from_millis(5),
            rng_seed: 42,
            ..Default::default()
        },
        page_size: 2,
        ..SimConfig::test()
    })
    .await;
    let client = client.with_retry(RetryPolicy {
        max_attempts: 10,
        ..fast_retry()
    });
    let users: Vec<Value> = client
        .get_all(ApiVersion::V1, "/users?$select=id")
        .await
        .unwrap();
    let count = sim.with_state(|s| s.core.users.len());
    assert_eq!(users.len(), count);
    let faulted = sim.requests().iter().filter(|r| r.status != 200).count();
    assert!(faulted > 0, "the rates injected something");
}

#[tokio::test]
async fn https_tenant_is_reached_once_its_ca_is_trusted_besides_the_system_store() {
    let sim = sim::spawn(SimConfig {
        tls: true,
        page_size: 2,
        ..SimConfig::test()
    })
    .await
    .unwrap();
    assert!(sim.url().starts_with("https://"), "{}", sim.url());
    let token = sim.issue_token(&sim.admin().user_principal_name);
    let once = RetryPolicy {
        max_attempts: 1,
        ..fast_retry()
    };
    // This tenant's CA is new: the system store alone does not know it.
    let untrusting =
        GraphClient::new(&sim.url(), Arc::new(StaticToken(token.clone()))).with_retry(once.clone());
    let err = untrusting
        .get_json::<Value>(ApiVersion::V1, "/me")
        .await
        .unwrap_err();
    assert!(matches!(err, GraphError::Network { .. }), "{err:?}");
    assert!(sim.requests().is_empty(), "nothing got past the handshake");

    support::trust_sim_ca(&sim);
    let client = GraphClient::new(&sim.url(), Arc::new(StaticToken(token))).with_retry(once);
    // Several pages: the next links are https too.
    let users: Vec<Value> = client
        .get_all(ApiVersion::V1, "/users?$select=id")
        .await
        .unwrap();
    assert_eq!(users.len(), sim.with_state(|s| s.core.users.len()));
    assert!(users.len() > 2);
    // Trusting one CA is not "anything goes": another tenant's fresh CA is still unknown.
    let other = sim::spawn(SimConfig {
        tls: true,
        ..SimConfig::test()
    })
    .await
    .unwrap();
    let other_client = GraphClient::new(
        &other.url(),
        Arc::new(StaticToken(
            other.issue_token(&other.admin().user_principal_name),
        )),
    )
    .with_retry(RetryPolicy {
        max_attempts: 1,
        ..fast_retry()
    });
    assert!(
        other_client
            .get_json::<Value>(ApiVersion::V1, "/me")
            .await
            .is_err()
    );
}

/// Next links as Graph writes them behind a reverse proxy: on the upstream (the cloud's own)
/// host. `localhost` plays the proxy in front of the tenant at `127.0.0.1`.
#[tokio::test]
async fn next_links_on_the_configured_or_the_clouds_graph_host_are_followed_others_refused() {
    let (sim, _) = signed_in_sim(SimConfig {
        page_size: 2,
        ..SimConfig::test()
    })
    .await;
    let all = sim.with_state(|s| s.core.users.len());
    assert!(all > 2, "several pages");
    let token = Arc::new(StaticToken(
        sim.issue_token(&sim.admin().user_principal_name),
    ));
    let proxy = format!("http://localhost:{}", sim.addr.port());

    // Links on the cloud's Graph host (127.0.0.1 here), read through the proxy.
    let through_proxy = GraphClient::new(&proxy, token.clone())
        .with_retry(fast_retry())
        .with_cloud_graph(&sim.url());
    let users: Vec<Value> = through_proxy
        .get_all(ApiVersion::V1, "/users?$select=id")
        .await
        .unwrap();
    assert_eq!(users.len(), all);
    let link = format!("{}/v1.0/users?$skiptoken=abc&$select=id", sim.url());
    assert_eq!(
        through_proxy.follow_url(&link).as_deref(),
        Some(format!("{proxy}/v1.0/users?$skiptoken=abc&$select=id").as_str()),
        "followed through the configured root, not around it"
    );

    // Links on the configured host itself (no proxy), with the real cloud host known too.
    let direct = GraphClient::new(&sim.url(), token.clone())
        .with_retry(fast_retry())
        .with_cloud_graph("https://graph.microsoft.com");
    let users: Vec<Value> = direct
        .get_all(ApiVersion::V1, "/users?$select=id")
        .await
        .unwrap();
    assert_eq!(users.len(), all);

    // Links on any other host: refused after the first page, the token never sent there.
    sim.clear_requests();
    let foreign = GraphClient::new(&proxy, token)
        .with_retry(fast_retry())
        .with_cloud_graph("https://graph.microsoft.com");
    let err = foreign
        .get_all::<Value>(ApiVersion::V1, "/users?$select=id")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("outside Microsoft Graph")
            || format!("{err:?}").contains("outside Microsoft Graph"),
        "{err:?}"
    );
    assert_eq!(sim.requests().len(), 1, "only the first page was read");
    for bad in [
        "https://graph.microsoft.com.evil.example/v1.0/users",
        "https://user@graph.microsoft.com/v1.0/users",
        "http://graph.microsoft.com/v1.0/users",
        "https://graph.microsoft.com:8443/v1.0/users",
    ] {
        assert_eq!(foreign.follow_url(bad), None, "{bad}");
    }
    assert_eq!(
        foreign
            .follow_url("https://graph.microsoft.com/beta/deviceManagement/x?$skiptoken=1")
            .as_deref(),
        Some(format!("{proxy}/beta/deviceManagement/x?$skiptoken=1").as_str())
    );
}
