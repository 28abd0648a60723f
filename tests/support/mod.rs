//! Helpers every integration test needs: a running simulated tenant and a signed-in client.
//! Area-specific helpers live in their own files under `tests/support/` (each test file does
//! `mod support;`).
#![allow(dead_code)]

pub mod plan;
pub mod schema;
pub mod tenant;

use std::sync::Arc;
use std::time::Duration;

use autopilot_wizard::graph::client::{GraphClient, RetryPolicy, StaticToken};
use autopilot_wizard::sim::{self, SimConfig, SimHandle};

/// Retries with millisecond waits, so fault tests run fast.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_secs(2),
        max_total_wait: Duration::from_secs(10),
    }
}

/// A simulated tenant and a Graph client signed in as its admin (static token, fast retries).
pub async fn signed_in_sim(config: SimConfig) -> (SimHandle, GraphClient) {
    let sim = sim::spawn(config)
        .await
        .expect("start the simulated tenant");
    let admin = sim.admin();
    let client = client_for(&sim, &admin.user_principal_name);
    (sim, client)
}

/// A client for `sim` signed in as `upn_or_id`, with fast retries.
pub fn client_for(sim: &SimHandle, upn_or_id: &str) -> GraphClient {
    let token = sim.issue_token(upn_or_id);
    GraphClient::new(&sim.url(), Arc::new(StaticToken(token))).with_retry(fast_retry())
}

/// Writes the HTTPS tenant's CA to a file and has the wizard trust it, as `--ca-file` does.
/// Returns the file (kept in the temp folder until the process ends: trust is process-wide).
pub fn trust_sim_ca(sim: &SimHandle) -> std::path::PathBuf {
    let pem = sim.ca_pem().expect("the tenant serves HTTPS");
    let path = std::env::temp_dir().join(format!(
        "autopilot-wizard-test-ca-{}-{}.pem",
        std::process::id(),
        sim.addr.port()
    ));
    std::fs::write(&path, pem).expect("write the CA file");
    autopilot_wizard::graph::tls::trust_ca_file(&path).expect("trust the CA file");
    path
}

/// Raw HTTP client for wire-level assertions (headers, bodies) the Graph client hides.
pub fn raw_http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client")
}
pub mod page;
pub mod ui;

/// An in-memory eframe storage, as eframe hands it to `save` and `cc.storage`.
#[derive(Default)]
pub struct MemoryStorage(pub std::collections::HashMap<String, String>);

impl eframe::Storage for MemoryStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }
    fn flush(&mut self) {}
}
