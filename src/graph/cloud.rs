//! National clouds, their Graph and login hosts (reference §1.3), the scopes the wizard asks for
//! (reference §1.1) and the public client it signs in with (reference §1.2).

use serde::{Deserialize, Serialize};

/// A Microsoft cloud. Tokens are not interchangeable between clouds, so the cloud decides both
/// where to sign in and which Graph host prefixes the scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Cloud {
    /// Worldwide Microsoft 365, including GCC.
    #[default]
    #[serde(rename = "global")]
    Global,
    /// US Government L4 (GCC High).
    #[serde(rename = "usgov")]
    UsGovHigh,
    /// US Government L5 (DoD).
    #[serde(rename = "usgovdod")]
    UsGovDod,
    /// Microsoft 365 operated by 21Vianet.
    #[serde(rename = "china")]
    China,
}

impl std::str::FromStr for Cloud {
    type Err = String;

    /// The names used on the command line and in settings: `global`, `usgov`, `usgovdod`, `china`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "global" | "public" | "commercial" | "gcc" => Ok(Cloud::Global),
            "usgov" | "usgovhigh" | "gcchigh" | "l4" => Ok(Cloud::UsGovHigh),
            "usgovdod" | "dod" | "l5" => Ok(Cloud::UsGovDod),
            "china" | "21vianet" => Ok(Cloud::China),
            other => Err(format!(
                "Unknown cloud \"{other}\". Use one of: global, usgov, usgovdod, china."
            )),
        }
    }
}

impl Cloud {
    pub const ALL: [Cloud; 4] = [
        Cloud::Global,
        Cloud::UsGovHigh,
        Cloud::UsGovDod,
        Cloud::China,
    ];

    /// The name used on the command line and in settings.
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::UsGovHigh => "usgov",
            Cloud::UsGovDod => "usgovdod",
            Cloud::China => "china",
        }
    }

    /// How the cloud is named in the sign-in page.
    pub fn label(self) -> &'static str {
        match self {
            Cloud::Global => "Global (Microsoft 365, including GCC)",
            Cloud::UsGovHigh => "US Government GCC High",
            Cloud::UsGovDod => "US Government DoD",
            Cloud::China => "China (21Vianet)",
        }
    }

    /// The Graph root, also the resource identifier that prefixes scopes.
    pub fn graph_host(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGovHigh => "https://graph.microsoft.us",
            Cloud::UsGovDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }

    /// The login authority root (the tenant and `/oauth2/v2.0/...` follow it).
    pub fn login_host(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGovHigh | Cloud::UsGovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// `Group.ReadWrite.All` → `https://graph.microsoft.com/Group.ReadWrite.All`. OpenID scopes
    /// (`openid`, `profile`, `offline_access`, `email`) are not resource scopes and stay bare.
    pub fn scope(self, short: &str) -> String {
        if OIDC_SCOPES.contains(&short) || short.contains("://") {
            short.to_string()
        } else {
            format!("{}/{}", self.graph_host(), short)
        }
    }
}

/// Scopes of OpenID Connect itself, requested without a resource prefix.
pub const OIDC_SCOPES: &[&str] = &["openid", "profile", "offline_access", "email"];

/// The scopes sent with every sign-in: the Graph permissions the procedure declares (short form,
/// `steps::required_permissions`) plus `offline_access` (a refresh token, so the wizard can stay
/// signed in) and `openid profile`.
pub fn request_scopes(cloud: Cloud, permissions: &[&str]) -> Vec<String> {
    permissions
        .iter()
        .chain(["offline_access", "openid", "profile"].iter())
        .map(|s| cloud.scope(s))
        .collect()
}

/// Reduces a granted scope to its short form: `https://graph.microsoft.com/Device.Read.All` and
/// `Device.Read.All` are the same permission.
pub fn short_scope(scope: &str) -> &str {
    if scope.contains("://") {
        scope.rsplit('/').next().unwrap_or(scope)
    } else {
        scope
    }
}

/// Microsoft Graph Command Line Tools, the first-party public client the Graph PowerShell SDK
/// uses (reference §1.2). Supports device code and the `http://localhost` loopback redirect.
pub const GRAPH_CLI_CLIENT_ID: &str = "14d82eec-204b-4c2f-b7e8-296a70dab67e";

/// Which app registration the wizard signs in as.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ClientApp {
    /// Microsoft Graph Command Line Tools; may be blocked by tenant policy.
    #[default]
    GraphCommandLineTools,
    /// The organisation's own registration: a public client with "Allow public client flows"
    /// on and `http://localhost` as a mobile/desktop redirect URI.
    Own { client_id: String },
}

impl ClientApp {
    pub fn client_id(&self) -> &str {
        match self {
            ClientApp::GraphCommandLineTools => GRAPH_CLI_CLIENT_ID,
            ClientApp::Own { client_id } => client_id.trim(),
        }
    }

    /// From a client id as typed: the default id (or nothing) means the first-party app.
    pub fn from_client_id(client_id: &str) -> ClientApp {
        let id = client_id.trim();
        if id.is_empty() || id.eq_ignore_ascii_case(GRAPH_CLI_CLIENT_ID) {
            ClientApp::GraphCommandLineTools
        } else {
            ClientApp::Own {
                client_id: id.to_string(),
            }
        }
    }
}

/// Where Graph and the login service are reached. Normally derived from the cloud; the URLs can
/// be overridden (`--graph-url`, `--login-url`) for proxies and for the simulated tenant. The
/// scope prefix always follows the cloud: it names the resource, not a network address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    pub cloud: Cloud,
    pub graph_url: String,
    pub login_url: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints::for_cloud(Cloud::Global)
    }
}

impl Endpoints {
    pub fn for_cloud(cloud: Cloud) -> Self {
        Endpoints {
            cloud,
            graph_url: cloud.graph_host().to_string(),
            login_url: cloud.login_host().to_string(),
        }
    }

    /// The cloud's hosts, with whichever override is given.
    pub fn with_overrides(
        cloud: Cloud,
        graph_url: Option<String>,
        login_url: Option<String>,
    ) -> Self {
        let mut e = Endpoints::for_cloud(cloud);
        if let Some(g) = graph_url.filter(|s| !s.trim().is_empty()) {
            e.graph_url = g.trim().trim_end_matches('/').to_string();
        }
        if let Some(l) = login_url.filter(|s| !s.trim().is_empty()) {
            e.login_url = l.trim().trim_end_matches('/').to_string();
        }
        e
    }

    /// Both services at one root, as the simulated tenant serves them.
    pub fn simulated(root: &str) -> Self {
        let root = root.trim_end_matches('/').to_string();
        Endpoints {
            cloud: Cloud::Global,
            graph_url: root.clone(),
            login_url: root,
        }
    }

    /// The same URLs for another cloud, unless they were overridden.
    pub fn with_cloud(&self, cloud: Cloud) -> Self {
        let old = Endpoints::for_cloud(self.cloud);
        let mut e = Endpoints::for_cloud(cloud);
        if self.graph_url != old.graph_url {
            e.graph_url = self.graph_url.clone();
        }
        if self.login_url != old.login_url {
            e.login_url = self.login_url.clone();
        }
        e
    }

    fn authority(&self, tenant: &str) -> String {
        let tenant = tenant.trim();
        let tenant = if tenant.is_empty() {
            "organizations"
        } else {
            tenant
        };
        format!(
            "{}/{}/oauth2/v2.0",
            self.login_url.trim_end_matches('/'),
            tenant
        )
    }

    pub fn authorize_url(&self, tenant: &str) -> String {
        format!("{}/authorize", self.authority(tenant))
    }

    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/token", self.authority(tenant))
    }

    pub fn device_code_url(&self, tenant: &str) -> String {
        format!("{}/devicecode", self.authority(tenant))
    }

    /// Where a Global Administrator grants the missing permissions for the whole organisation
    /// (the v2 admin consent endpoint, which takes the scopes explicitly).
    pub fn admin_consent_url(&self, tenant: &str, client_id: &str, scopes: &[&str]) -> String {
        let scope: Vec<String> = scopes.iter().map(|s| self.cloud.scope(s)).collect();
        let mut url = format!(
            "{}/{}/v2.0/adminconsent",
            self.login_url.trim_end_matches('/'),
            tenant.trim()
        );
        url.push_str("?client_id=");
        url.push_str(&super::client::encode(client_id));
        url.push_str("&scope=");
        url.push_str(&super::client::encode(&scope.join(" ")));
        url.push_str("&redirect_uri=");
        url.push_str(&super::client::encode("http://localhost"));
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_carry_the_cloud_graph_host() {
        assert_eq!(
            Cloud::UsGovHigh.scope("Group.ReadWrite.All"),
            "https://graph.microsoft.us/Group.ReadWrite.All"
        );
        assert_eq!(Cloud::China.scope("offline_access"), "offline_access");
        let s = request_scopes(Cloud::Global, &["Device.Read.All"]);
        assert!(s.contains(&"https://graph.microsoft.com/Device.Read.All".to_string()));
        assert!(s.contains(&"offline_access".to_string()));
        assert_eq!(
            short_scope("https://graph.microsoft.us/Policy.Read.All"),
            "Policy.Read.All"
        );
        assert_eq!(short_scope("Policy.Read.All"), "Policy.Read.All");
    }

    #[test]
    fn endpoints_follow_cloud_and_overrides() {
        let e = Endpoints::for_cloud(Cloud::UsGovDod);
        assert_eq!(e.graph_url, "https://dod-graph.microsoft.us");
        assert_eq!(
            e.token_url("contoso.us"),
            "https://login.microsoftonline.us/contoso.us/oauth2/v2.0/token"
        );
        assert_eq!(
            e.device_code_url(""),
            "https://login.microsoftonline.us/organizations/oauth2/v2.0/devicecode"
        );
        let o = Endpoints::with_overrides(Cloud::Global, Some("http://proxy:8080/".into()), None);
        assert_eq!(o.graph_url, "http://proxy:8080");
        assert_eq!(o.login_url, "https://login.microsoftonline.com");
        let china = o.with_cloud(Cloud::China);
        assert_eq!(china.graph_url, "http://proxy:8080");
        assert_eq!(china.login_url, "https://login.chinacloudapi.cn");
    }

    #[test]
    fn cloud_names_round_trip() {
        for c in Cloud::ALL {
            assert_eq!(c.name().parse::<Cloud>(), Ok(c));
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.name())
            );
        }
        assert!("mars".parse::<Cloud>().unwrap_err().contains("usgovdod"));
    }

    #[test]
    fn client_app_from_typed_id() {
        assert_eq!(
            ClientApp::from_client_id(""),
            ClientApp::GraphCommandLineTools
        );
        assert_eq!(
            ClientApp::from_client_id(&GRAPH_CLI_CLIENT_ID.to_uppercase()),
            ClientApp::GraphCommandLineTools
        );
        assert_eq!(ClientApp::from_client_id(" abc ").client_id(), "abc");
    }
}
