//! The signed-in user (`GET /me`) and their organisation (`GET /organization`), v1.0.

use serde::{Deserialize, Serialize};

/// `GET /v1.0/me?$select=id,displayName,userPrincipalName`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Me {
    pub id: String,
    pub display_name: Option<String>,
    pub user_principal_name: String,
}

/// One entry of `GET /v1.0/organization` (a collection with exactly one item: the tenant).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Organization {
    /// The tenant id.
    pub id: String,
    pub display_name: Option<String>,
    pub verified_domains: Vec<VerifiedDomain>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VerifiedDomain {
    pub name: String,
    pub is_default: Option<bool>,
    pub is_initial: Option<bool>,
    /// `Managed` or `Federated`.
    #[serde(rename = "type")]
    pub domain_type: Option<String>,
    /// Comma-separated, e.g. `Email, OfficeCommunicationsOnline`.
    pub capabilities: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organization_parses_documented_shape() {
        let org: Organization = serde_json::from_value(serde_json::json!({
            "id": "84841066-274d-4ec0-a5c1-276be684bdd3",
            "displayName": "Contoso",
            "unknownFutureProperty": 1,
            "verifiedDomains": [
                {"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": true,
                 "isInitial": false, "name": "contoso.com", "type": "Managed"},
                {"capabilities": "Email", "isDefault": false, "isInitial": true,
                 "name": "contoso.onmicrosoft.com", "type": "Managed"}
            ]
        }))
        .unwrap();
        assert_eq!(org.verified_domains.len(), 2);
        assert_eq!(org.verified_domains[1].is_initial, Some(true));
        assert_eq!(
            org.verified_domains[0].domain_type.as_deref(),
            Some("Managed")
        );
    }
}
