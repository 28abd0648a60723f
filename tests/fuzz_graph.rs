//! Hostile Graph answers: the step modules read arbitrary JSON, and mutations of answers
//! recorded from the simulated tenant, served over real HTTP by a tiny server; they return an
//! error or a value and never panic. Oversized answers and endless paging are refused with a
//! bounded amount of memory. Case counts are bounded so CI stays fast.

use crate::support;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use autopilot_wizard::graph::client::{GraphClient, MAX_RESPONSE_BYTES, RetryPolicy, StaticToken};
use autopilot_wizard::graph::{ApiVersion, GraphError};
use autopilot_wizard::sim::{self, SimConfig};
use autopilot_wizard::steps::assignment::{self, GroupMembership};
use autopilot_wizard::steps::{group, import, join_permission, profile};
use axum::body::Body;
use axum::http::{Response, StatusCode};
use proptest::prelude::*;
use serde_json::{Value, json};

/// What the tiny server answers to every request.
#[derive(Clone)]
struct Answer {
    status: u16,
    body: Arc<Vec<u8>>,
}

struct Server {
    rt: tokio::runtime::Runtime,
    url: String,
    answer: Arc<Mutex<Answer>>,
}

/// One server and runtime for all cases (proptest runs cases on one thread, one at a time).
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let answer = Arc::new(Mutex::new(Answer {
            status: 200,
            body: Arc::new(b"{}".to_vec()),
        }));
        let a = answer.clone();
        let url = rt.block_on(async move {
            let app = axum::Router::new().fallback(move || {
                let a = a.lock().unwrap().clone();
                async move {
                    Response::builder()
                        .status(StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK))
                        .header("content-type", "application/json")
                        .body(Body::from(a.body.as_ref().clone()))
                        .unwrap()
                }
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            format!("http://{addr}")
        });
        Server { rt, url, answer }
    })
}

fn client(url: &str) -> GraphClient {
    GraphClient::new(url, Arc::new(StaticToken("fuzz".into()))).with_retry(RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        max_total_wait: Duration::from_millis(10),
    })
}

/// Every reading path of the steps against whatever the server answers. Only panics matter;
/// the results are dropped.
async fn read_everything(graph: &GraphClient) {
    let _ = assignment::list_devices(graph).await;
    let _ = assignment::get_device_expanded(graph, "d1").await;
    let t = support::tenant::target("g1", GroupMembership::Static, "p1", "P");
    let _ = assignment::read_group(graph, &t).await;
    let _ = assignment::sync_now(graph).await;
    let _ = profile::list_profiles(graph).await;
    let _ = profile::list_assignments(graph, "p1").await;
    let _ = join_permission::read_policies(graph).await;
    let _ = join_permission::search_deployers(graph, "a").await;
    let _ = import::read_sync_settings(graph).await;
    let _ = group::find_by_display_name(graph, "Autopilot").await;
    let _ = graph
        .get_all::<Value>(
            ApiVersion::Beta,
            "/deviceManagement/windowsAutopilotDeviceIdentities",
        )
        .await;
    let _ = graph.get_json::<Value>(ApiVersion::V1, "/me").await;
}

fn serve_and_read(status: u16, body: Vec<u8>) {
    let s = server();
    *s.answer.lock().unwrap() = Answer {
        status,
        body: Arc::new(body),
    };
    let graph = client(&s.url);
    s.rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), read_everything(&graph))
            .await
            .expect("every read ends");
    });
}

/// Answers of the simulated tenant to the requests the steps make, recorded once.
fn recorded() -> &'static Vec<Value> {
    static RECORDED: OnceLock<Vec<Value>> = OnceLock::new();
    RECORDED.get_or_init(|| {
        let s = server();
        s.rt.block_on(async {
            let sim = sim::spawn(SimConfig::test()).await.unwrap();
            let token = sim.issue_token(&sim.admin().user_principal_name);
            let http = support::raw_http();
            let mut out = Vec::new();
            for path in [
                "/beta/deviceManagement/windowsAutopilotDeviceIdentities",
                "/beta/deviceManagement/windowsAutopilotDeploymentProfiles",
                "/beta/deviceManagement/importedWindowsAutopilotDeviceIdentities",
                "/beta/deviceManagement/windowsAutopilotSettings",
                "/v1.0/policies/deviceRegistrationPolicy",
                "/beta/policies/mobileDeviceManagementPolicies",
                "/v1.0/groups",
                "/v1.0/devices",
                "/v1.0/users",
                "/v1.0/me",
                "/v1.0/organization",
                "/v1.0/groups/00000000-0000-0000-0000-000000000000",
            ] {
                let resp = http
                    .get(format!("{}{path}", sim.url()))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                if let Ok(v) = resp.json::<Value>().await {
                    out.push(v);
                }
            }
            out
        })
    })
}

/// Any JSON value, a few levels deep, with the key names Graph answers use (so mutations
/// reach the typed fields, not only unknown keys).
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("value".to_string()),
        Just("@odata.nextLink".to_string()),
        Just("id".to_string()),
        Just("displayName".to_string()),
        Just("serialNumber".to_string()),
        Just("deviceId".to_string()),
        Just("error".to_string()),
        Just("code".to_string()),
        Just("message".to_string()),
        "[a-zA-Z@.]{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,24}".prop_map(Value::String),
        Just(json!("2025-13-45T99:99:99Z")),
        Just(json!("http://127.0.0.1:1/v1.0/elsewhere")),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Replaces, removes or retypes values at random places of `v`.
fn mutate(v: &mut Value, edits: &[(prop::sample::Index, u8, Value)]) {
    fn nodes(v: &mut Value) -> Vec<*mut Value> {
        let mut out = vec![v as *mut Value];
        match v {
            Value::Array(a) => a.iter_mut().for_each(|x| out.extend(nodes(x))),
            Value::Object(m) => m.values_mut().for_each(|x| out.extend(nodes(x))),
            _ => {}
        }
        out
    }
    for (at, op, replacement) in edits {
        // Collected afresh after every edit: the previous one may have moved things.
        let all = nodes(v);
        let target = all[at.index(all.len())];
        // SAFETY: `target` points into `v`, which is exclusively borrowed here, and no other
        // pointer from `all` is used after this write.
        let node = unsafe { &mut *target };
        match op % 4 {
            0 => *node = replacement.clone(),
            1 => {
                if let Value::Object(m) = node
                    && let Some(k) = m.keys().next().cloned()
                {
                    m.remove(&k);
                }
            }
            2 => {
                if let Value::Array(a) = node {
                    a.push(replacement.clone());
                    a.rotate_right(1);
                }
            }
            _ => {
                *node = match node {
                    Value::String(s) => json!(s.len()),
                    Value::Number(n) => json!(n.to_string()),
                    Value::Array(_) => json!({}),
                    Value::Object(_) => json!([]),
                    Value::Bool(b) => json!(if *b { "true" } else { "false" }),
                    Value::Null => json!(""),
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn steps_survive_arbitrary_json(
        body in any_json(),
        status in prop::sample::select(vec![200u16, 200, 201, 400, 403, 404, 500]),
    ) {
        serve_and_read(status, serde_json::to_vec(&body).unwrap());
    }

    #[test]
    fn steps_survive_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        serve_and_read(200, body);
    }

    #[test]
    fn steps_survive_mutated_recorded_answers(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any_json()), 1..6),
        status in prop::sample::select(vec![200u16, 200, 200, 400, 404]),
    ) {
        let answers = recorded();
        prop_assume!(!answers.is_empty());
        let mut v = answers[which.index(answers.len())].clone();
        mutate(&mut v, &edits);
        serve_and_read(status, serde_json::to_vec(&v).unwrap());
    }
}

#[test]
fn recorded_answers_cover_every_area() {
    assert!(recorded().len() >= 10, "{}", recorded().len());
}

/// A server that streams more than the cap (chunked, no Content-Length): the client stops
/// reading and says so.
#[test]
fn an_oversized_answer_is_refused_without_reading_it_all() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = server();
    s.rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let written = Arc::new(Mutex::new(0usize));
        let w = written.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let w = w.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                    if sock.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = vec![b' '; 1 << 20];
                    // Twice the cap at most; the client hangs up long before.
                    for _ in 0..((2 * MAX_RESPONSE_BYTES) >> 20) {
                        let mut msg = format!("{:x}\r\n", chunk.len()).into_bytes();
                        msg.extend_from_slice(&chunk);
                        msg.extend_from_slice(b"\r\n");
                        if sock.write_all(&msg).await.is_err() {
                            return;
                        }
                        *w.lock().unwrap() += chunk.len();
                    }
                    let _ = sock.write_all(b"0\r\n\r\n").await;
                });
            }
        });
        let err = client(&url)
            .get_json::<Value>(ApiVersion::V1, "/me")
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, GraphError::Decode { message, .. } if message.contains("MiB")),
            "{err:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent = *written.lock().unwrap();
        assert!(sent < 2 * MAX_RESPONSE_BYTES, "the client stopped reading ({sent} bytes sent)");
    });
}

/// A collection whose next link points back to itself: the read stops with an error.
#[test]
fn endless_paging_is_refused() {
    let s = server();
    let url = s.url.clone();
    *s.answer.lock().unwrap() = Answer {
        status: 200,
        body: Arc::new(
            serde_json::to_vec(&json!({
                "value": [{"id": "1"}],
                "@odata.nextLink": format!("{url}/v1.0/groups"),
            }))
            .unwrap(),
        ),
    };
    s.rt.block_on(async {
        let err = client(&url)
            .get_all::<Value>(ApiVersion::V1, "/groups")
            .await
            .expect_err("a loop is refused");
        assert!(matches!(err, GraphError::Decode { .. }), "{err:?}");
    });
}
