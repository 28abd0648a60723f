//! Step 1, sign in: the sign-in flows themselves live in [`crate::graph::auth`]; this step turns
//! fresh tokens into a checked session. It reads `/me` and `/organization` back, compares the
//! granted permissions with the ones the wizard needs and says how to fix what is missing, and
//! files the refresh token under the tenant and account.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use crate::graph::auth::{AuthConfig, AuthError, DeviceCodePrompt, Opener, browser_opener};
use crate::graph::auth::{Authenticator, DeviceCode, SignInFlows};
use crate::graph::cloud::{Cloud, short_scope};
use crate::graph::models::identity::{Me, Organization};
use crate::graph::token_store::{StoreKey, TokenStore, TokenStoreError};
use crate::graph::{ApiVersion, GraphClient, GraphError};

/// Who is signed in to which tenant, and what is missing. Plain data, kept across restarts
/// (no secrets): later steps use the tenant id and verified domains.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SignedIn {
    pub tenant_id: String,
    pub tenant_name: String,
    pub user_id: String,
    pub user_upn: String,
    pub user_name: String,
    /// Every verified domain of the tenant (e.g. to check Assigned User UPNs in the CSV).
    pub verified_domains: Vec<String>,
    pub default_domain: Option<String>,
    pub cloud: Cloud,
    pub client_id: String,
    /// Delegated permissions Entra granted, short form.
    pub granted_scopes: Vec<String>,
    /// Required permissions that were not granted, short form. Empty when all is well.
    pub missing_scopes: Vec<String>,
    /// What to do about `missing_scopes`, for the IT person (empty when nothing is missing).
    pub fix: String,
    /// The admin consent page for the missing permissions, when any are missing.
    pub admin_consent_url: Option<String>,
    /// False when the sign-in will not survive a restart (no credential store, or saving failed).
    pub remembered: bool,
    /// Why the sign-in is not remembered, when it is not.
    pub not_remembered_reason: Option<String>,
}

impl SignedIn {
    /// The key the refresh token is saved under.
    pub fn store_key(&self) -> StoreKey {
        StoreKey::new(&self.tenant_id, &self.user_upn)
    }

    pub fn all_scopes_granted(&self) -> bool {
        self.missing_scopes.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignInError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("Signed in, but reading your account back from Microsoft Graph failed: {0}")]
    ReadBack(String),
    #[error(
        "Signed in, but Microsoft Graph returned no organization for this account. Sign in with a work account of the tenant (not a personal Microsoft account)."
    )]
    NoOrganization,
}

impl SignInError {
    /// The person cancelled: nothing to report.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, SignInError::Auth(AuthError::Cancelled))
    }
}

/// A checked sign-in: the Graph client the next steps use, who signed in, and the tokens
/// behind it (kept here so signing out removes the saved one).
pub struct Session {
    pub graph: GraphClient,
    pub signed_in: SignedIn,
    auth: Authenticator,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("signed_in", &self.signed_in)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Forgets the tokens and removes the saved sign-in; true when there was one to remove.
    pub async fn sign_out(&self) -> Result<bool, TokenStoreError> {
        self.auth.sign_out().await
    }
}

/// The browser sign-in's address, reported as soon as it exists (`opened: None`) and again once
/// the system said whether a browser opened. Where none opens (remote session, locked-down PC)
/// the person copies the address into a browser on this computer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserAddress {
    pub url: String,
    /// `Some(Err(why))`: the system could not open a browser (the raw reason, for the log).
    pub opened: Option<Result<(), String>>,
}

/// The "browser" of the in-process simulated tenant (`--demo`): the tenant approves every
/// sign-in by itself, so following its authorize address to the loopback listener is all a
/// browser would do. The demo then signs in with one click, also where no browser exists.
pub fn simulated_browser() -> Opener {
    Arc::new(|url: &str| {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| format!("no runtime to follow the sign-in address: {e}"))?;
        let url = url.to_string();
        runtime.spawn(async move {
            // Both ends are on this computer: a system proxy must not see them.
            let client = reqwest::Client::builder().no_proxy().build();
            if let Err(e) = match client {
                Ok(c) => c.get(&url).send().await.map(drop),
                Err(e) => Err(e),
            } {
                tracing::warn!(error = %e, "the simulated browser could not follow the sign-in address");
            }
        });
        Ok(())
    })
}

/// A started device-code sign-in: what to show, and what [`Flows::finish_device_code`] needs.
pub struct CodeSignIn {
    pub prompt: DeviceCodePrompt,
    code: DeviceCode,
}

impl std::fmt::Debug for CodeSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeSignIn")
            .field("prompt", &self.prompt)
            .finish_non_exhaustive()
    }
}

/// The ways to sign in for one configuration, each ending in a checked [`Session`].
#[derive(Clone)]
pub struct Flows {
    flows: SignInFlows,
    opener: Opener,
}

impl std::fmt::Debug for Flows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flows")
            .field("flows", &self.flows)
            .finish_non_exhaustive()
    }
}

impl Flows {
    pub fn new(config: AuthConfig, store: Arc<dyn TokenStore>, opener: Opener) -> Self {
        Flows {
            flows: SignInFlows::new(config, store, &crate::steps::required_scopes()),
            opener,
        }
    }

    /// How long the browser sign-in waits for the browser's answer.
    pub fn with_browser_timeout(mut self, timeout: Duration) -> Self {
        self.flows = self.flows.with_browser_timeout(timeout);
        self
    }

    /// Signs in from the refresh token saved under `key`; `Ok(None)` when nothing is saved.
    pub async fn silent(&self, key: &StoreKey) -> Result<Option<Session>, SignInError> {
        match self.flows.silent(key).await? {
            Some(auth) => Ok(Some(complete_session(auth).await?)),
            None => Ok(None),
        }
    }

    /// Browser sign-in. `on_address` hears the sign-in address at once and again when the
    /// system said whether a browser opened. Opening a browser can block for good (seen under
    /// Wine) or do nothing, so it runs on its own thread and the wait for the answer, bounded by
    /// the browser timeout, starts at once.
    pub async fn browser(
        &self,
        on_address: impl Fn(BrowserAddress) + Send + Sync + 'static,
        cancel: &CancellationToken,
    ) -> Result<Session, SignInError> {
        let real = self.opener.clone();
        let report = Arc::new(on_address);
        let runtime = tokio::runtime::Handle::current();
        let opener: Opener = Arc::new(move |url: &str| {
            report(BrowserAddress {
                url: url.to_string(),
                opened: None,
            });
            let (real, report, runtime, url) = (
                real.clone(),
                report.clone(),
                runtime.clone(),
                url.to_string(),
            );
            let spawned = std::thread::Builder::new()
                .name("open-browser".into())
                .spawn(move || {
                    let _rt = runtime.enter();
                    let opened = real(&url);
                    if let Err(why) = &opened {
                        tracing::warn!(reason = %why, "no browser opened for the sign-in");
                    }
                    report(BrowserAddress {
                        url,
                        opened: Some(opened),
                    });
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start the thread that opens the browser");
            }
            Ok(())
        });
        let auth = self
            .flows
            .clone()
            .with_opener(opener)
            .browser(cancel)
            .await?;
        complete_session(auth).await
    }

    /// Asks for a device code to show.
    pub async fn start_device_code(&self) -> Result<CodeSignIn, SignInError> {
        let code = self.flows.start_device_code().await?;
        Ok(CodeSignIn {
            prompt: code.prompt.clone(),
            code,
        })
    }

    /// Waits until the person finished the device-code sign-in elsewhere.
    pub async fn finish_device_code(
        &self,
        code: &CodeSignIn,
        cancel: &CancellationToken,
    ) -> Result<Session, SignInError> {
        let auth = self.flows.finish_device_code(&code.code, cancel).await?;
        complete_session(auth).await
    }
}

async fn complete_session(auth: Authenticator) -> Result<Session, SignInError> {
    let (graph, signed_in) = complete(auth.clone()).await?;
    Ok(Session {
        graph,
        signed_in,
        auth,
    })
}

impl From<GraphError> for SignInError {
    fn from(e: GraphError) -> Self {
        SignInError::ReadBack(e.to_string())
    }
}

/// Required permissions (short form) that `granted` does not cover.
pub fn missing_scopes(granted: &[String]) -> Vec<String> {
    let has = |s: &str| {
        granted
            .iter()
            .any(|g| short_scope(g).eq_ignore_ascii_case(s))
    };
    // A tenant that consented a broader permission (`Directory.ReadWrite.All` for
    // `Group.ReadWrite.All`, reference §1.1) is fine.
    crate::steps::required_permissions()
        .into_iter()
        .filter(|p| !has(p.name) && !p.covered_by.iter().any(|alt| has(alt)))
        .map(|p| p.name.to_string())
        .collect()
}

/// How to fix missing permissions, in words and as an admin consent link.
pub fn consent_fix(config: &AuthConfig, tenant_id: &str, missing: &[String]) -> (String, String) {
    let refs: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
    let url = config
        .endpoints
        .admin_consent_url(tenant_id, config.client_id(), &refs);
    let text = format!(
        "The sign-in did not grant {}. The wizard needs them to create and assign Autopilot \
         settings. A Global Administrator (or Privileged Role Administrator) can grant them for \
         the whole organisation by opening the admin consent link below, or in the Entra admin \
         center: Enterprise applications, this app, Permissions, \"Grant admin consent\". Then \
         sign out and sign in again.",
        missing.join(", ")
    );
    (text, url)
}

/// Reads `/me` and `/organization` with the new session, checks the granted permissions and
/// saves the refresh token under tenant id + account. The returned client is ready for the
/// next steps.
pub async fn complete(auth: Authenticator) -> Result<(GraphClient, SignedIn), SignInError> {
    let config = auth.config().clone();
    let graph = GraphClient::new(
        &config.endpoints.graph_url,
        std::sync::Arc::new(auth.clone()),
    )
    .with_cloud_graph(config.endpoints.cloud.graph_host());
    let me: Me = graph
        .get_json(
            ApiVersion::V1,
            "/me?$select=id,displayName,userPrincipalName",
        )
        .await?;
    let orgs: Vec<Organization> = graph
        .get_all(
            ApiVersion::V1,
            "/organization?$select=id,displayName,verifiedDomains",
        )
        .await?;
    let org = orgs.into_iter().next().ok_or(SignInError::NoOrganization)?;

    let granted = auth.granted_scopes();
    let missing = missing_scopes(&granted);
    let (fix, admin_consent_url) = if missing.is_empty() {
        (String::new(), None)
    } else {
        let (text, url) = consent_fix(&config, &org.id, &missing);
        (text, Some(url))
    };

    let mut signed = SignedIn {
        tenant_id: org.id.clone(),
        tenant_name: org.display_name.clone().unwrap_or_else(|| org.id.clone()),
        user_id: me.id.clone(),
        user_name: me
            .display_name
            .clone()
            .unwrap_or_else(|| me.user_principal_name.clone()),
        user_upn: me.user_principal_name.clone(),
        verified_domains: org
            .verified_domains
            .iter()
            .map(|d| d.name.clone())
            .collect(),
        default_domain: org
            .verified_domains
            .iter()
            .find(|d| d.is_default == Some(true))
            .map(|d| d.name.clone()),
        cloud: config.endpoints.cloud,
        client_id: config.client_id().to_string(),
        granted_scopes: granted,
        missing_scopes: missing,
        fix,
        admin_consent_url,
        remembered: auth.remembered(),
        not_remembered_reason: None,
    };
    if let Err(e) = auth.remember_as(signed.store_key()).await {
        tracing::warn!(error = ?e, "the sign-in could not be saved");
        signed.remembered = false;
        signed.not_remembered_reason = Some(e.to_string());
    }
    Ok((graph, signed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_scopes_accept_broader_and_full_names() {
        let granted: Vec<String> = [
            "https://graph.microsoft.com/DeviceManagementServiceConfig.ReadWrite.All",
            "Directory.ReadWrite.All",
            "policy.read.all",
            "DeviceManagementApps.ReadWrite.All",
            "Policy.ReadWrite.DeviceConfiguration",
            // ReadWrite covers the deployment report's Read.
            "DeviceManagementManagedDevices.ReadWrite.All",
            "DeviceManagementManagedDevices.PrivilegedOperations.All",
            "DeviceManagementRBAC.Read.All",
            "User.Read",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert!(
            missing_scopes(&granted).is_empty(),
            "{:?}",
            missing_scopes(&granted)
        );
        let missing = missing_scopes(&["User.Read".to_string()]);
        assert_eq!(missing.len(), crate::steps::required_scopes().len());
    }

    #[test]
    fn consent_fix_names_scopes_and_tenant() {
        let config = AuthConfig::default();
        let (text, url) = consent_fix(&config, "tid-1", &["Policy.Read.All".to_string()]);
        assert!(text.contains("Policy.Read.All"));
        assert!(url.starts_with(
            "https://login.microsoftonline.com/tid-1/v2.0/adminconsent?client_id=14d82eec"
        ));
        assert!(url.contains("Policy.Read.All"));
    }
}
