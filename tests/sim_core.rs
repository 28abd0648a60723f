//! The simulated tenant's core over real HTTP: token check and its 401 shapes, request ids,
//! users, `/me`, `/organization`, `$search` rules and the request log.

mod support;

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
