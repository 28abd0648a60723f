//! The simulated tenant: a stateful, in-process HTTP server that speaks the wire format of
//! Microsoft Graph and the Microsoft identity platform for everything the wizard uses.
//!
//! It is written from `shared/reference/` on its own and shares no serde types or constants with
//! [`crate::graph`]: a field name misread on one side is caught by the other.
//!
//! Layout: one module per area, each with its own part of [`SimState`] and its own routes.
//! - [`core`] — bearer-token check, fault injection, request log, users, `/me`, `/organization`.
//! - [`identity`] — `/{tenant}/oauth2/v2.0/{devicecode,token,authorize}`.
//! - [`directory`] — groups, members, Entra devices, device registration and MDM policies.
//! - [`profiles`] — Autopilot deployment profiles and their assignments.
//! - [`autopilot`] — hardware-hash import, Autopilot device identities, settings and sync.
//! - [`assignment`] — dynamic membership evaluation and profile assignment progress.
//! - [`esp`] — Enrollment Status Pages, apps, and the enrollment restrictions beside them.
//! - [`readiness`] — licences, Conditional Access, owned devices, branding and the platform
//!   restrictions: what else fails OOBE (reference §10).
//! - [`oobe`] — devices switched on: OOBE played over service time, `autopilotEvents`.
//! - [`removal`] — Intune managed devices, wipe, deletes after sync, Multi Admin Approval.
//! - [`odata`] — error bodies, paging, `$select`, `$filter` helpers shared by all areas.
//!
//! Service-side asynchronous work (imports, membership, assignment) is evaluated lazily: every
//! request first calls [`advance`], which moves whatever is due. Durations are "service time",
//! scaled by [`Speed`] so demos take seconds and tests milliseconds.

// Handlers answer errors with a ready `Response` (axum's idiom); boxing them buys nothing here.
#![allow(clippy::result_large_err)]

pub mod assignment;
pub mod autopilot;
pub mod core;
pub mod directory;
pub mod esp;
pub mod identity;
pub mod odata;
pub mod oobe;
pub mod profiles;
pub mod readiness;
pub mod removal;
pub mod standalone;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::Uri;
use axum::response::Response;
use serde_json::Value;

/// How fast service-side time runs compared with the real service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Speed {
    /// Real seconds per service second: 1.0 is as slow as Microsoft, 0.001 is a test.
    pub scale: f64,
}

impl Speed {
    /// As slow as the real service (imports take minutes).
    pub const REALISTIC: Speed = Speed { scale: 1.0 };
    /// Every asynchronous step finishes within about ten seconds.
    pub const DEMO: Speed = Speed { scale: 1.0 / 60.0 };
    /// Milliseconds.
    pub const TEST: Speed = Speed {
        scale: 1.0 / 20_000.0,
    };

    pub fn scaled(self, service_time: Duration) -> Duration {
        service_time.mul_f64(self.scale)
    }

    /// `realistic`, `demo` or `test` (case-insensitive), as the CLI accepts them.
    pub fn from_name(name: &str) -> Option<Speed> {
        match name.trim().to_ascii_lowercase().as_str() {
            "realistic" | "real" => Some(Speed::REALISTIC),
            "demo" => Some(Speed::DEMO),
            "test" => Some(Speed::TEST),
            _ => None,
        }
    }

    pub const NAMES: &'static [&'static str] = &["demo", "realistic", "test"];
}

impl std::str::FromStr for Speed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Speed::from_name(s).ok_or_else(|| {
            format!(
                "unknown speed '{s}': use one of {}",
                Speed::NAMES.join(", ")
            )
        })
    }
}

/// Which data the tenant starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seed {
    /// What a person sees with `--demo`: the [`Seed::Demo`] tenant without its All-devices
    /// profile assignment. That assignment is older than any profile the person creates, so it
    /// would win every device (oldest wins) and the demo could never reach "ready" — and a
    /// simulated tenant has no Intune console to remove it from. Conflicts still show through
    /// the kiosk group's profile.
    #[default]
    Walkthrough,
    /// A small fictional tenant with users, groups and some Autopilot devices, including an
    /// older default profile assigned to All devices (the common real-tenant trap tests need).
    Demo,
    /// One admin user and nothing else.
    Empty,
}

impl Seed {
    /// Whether the fictional demo data (users, groups, devices, profiles) is there.
    pub fn has_demo_data(self) -> bool {
        !matches!(self, Seed::Empty)
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub speed: Speed,
    /// Items per page of every collection (Graph's own is larger; small pages exercise paging).
    pub page_size: usize,
    pub seed: Seed,
    pub faults: core::FaultConfig,
    /// Device-code sign-ins are approved after this many polls (the demo approves on the first).
    pub approve_device_code_after_polls: u32,
    /// Append one JSON line per request to this file (`sim --request-log`).
    pub request_log: Option<PathBuf>,
    /// Lifetime of access tokens the token endpoint issues (Entra: about an hour).
    pub access_token_lifetime: Duration,
    /// Lifetime of refresh tokens (Entra: 90 days).
    pub refresh_token_lifetime: Duration,
    /// Serve HTTPS with a certificate made at start (its CA: [`SimHandle::ca_pem`]).
    pub tls: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            speed: Speed::DEMO,
            page_size: 20,
            seed: Seed::Walkthrough,
            faults: core::FaultConfig::default(),
            approve_device_code_after_polls: 1,
            request_log: None,
            access_token_lifetime: Duration::from_secs(3599),
            refresh_token_lifetime: Duration::from_secs(90 * 24 * 3600),
            tls: false,
        }
    }
}

impl SimConfig {
    /// The configuration tests start from: test speed, small pages, demo data, no faults.
    pub fn test() -> Self {
        SimConfig {
            speed: Speed::TEST,
            page_size: 5,
            seed: Seed::Demo,
            ..SimConfig::default()
        }
    }
}

/// Everything the tenant knows. One lock for all: requests are small and the simulator is not a
/// load test target.
#[derive(Debug, Default)]
pub struct SimState {
    pub core: core::CoreState,
    pub identity: identity::IdentityState,
    pub directory: directory::DirectoryState,
    pub profiles: profiles::ProfileState,
    pub autopilot: autopilot::AutopilotState,
    pub assignment: assignment::AssignmentState,
    pub esp: esp::EspState,
    pub readiness: readiness::ReadinessState,
    pub oobe: oobe::OobeState,
    pub removal: removal::RemovalState,
}

impl SimState {
    pub fn seeded(seed: Seed) -> Self {
        let mut state = SimState::default();
        core::seed(&mut state, seed);
        directory::seed(&mut state, seed);
        profiles::seed(&mut state, seed);
        autopilot::seed(&mut state, seed);
        assignment::seed(&mut state, seed);
        esp::seed(&mut state, seed);
        readiness::seed(&mut state, seed);
        oobe::seed(&mut state, seed);
        removal::seed(&mut state, seed);
        state
    }
}

/// State shared by every handler.
pub struct SimShared {
    pub config: SimConfig,
    pub state: Mutex<SimState>,
    pub base_url: String,
    /// The open `--request-log` file.
    pub request_log: Option<Mutex<std::fs::File>>,
    /// The token-signing key, generated on first use (RSA generation takes a moment).
    pub signing_key: std::sync::OnceLock<identity::SigningKey>,
    /// The certificates with [`SimConfig::tls`].
    pub tls: Option<tls::SimTls>,
}

pub type Shared = Arc<SimShared>;

impl SimShared {
    /// Locks the state after moving every service-side process that is due.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        advance(&mut guard, &self.config);
        guard
    }

    /// An HTTP client for requests the tenant sends to itself (`$batch`), trusting its own CA.
    pub fn loopback_http(&self) -> reqwest::Client {
        let mut b = reqwest::Client::builder();
        if let Some(tls) = &self.tls {
            match reqwest::Certificate::from_der(tls.ca_der.as_ref()) {
                Ok(ca) => b = b.tls_certs_only([ca]),
                Err(e) => tracing::warn!(error = %e, "sim: own CA not usable for $batch"),
            }
        }
        b.build().unwrap_or_default()
    }

    pub fn scaled(&self, service_time: Duration) -> Duration {
        self.config.speed.scaled(service_time)
    }

    /// One page of a collection at this server's address with the configured page size; see
    /// [`odata::page`].
    pub fn page(&self, uri: &Uri, items: Vec<Value>, context: &str) -> Response {
        odata::page(&self.base_url, uri, items, self.config.page_size, context)
    }
}

/// Moves service-side work that is due, in dependency order: imports register devices, devices
/// create Entra objects, membership follows, assignment follows membership.
pub fn advance(state: &mut SimState, config: &SimConfig) {
    autopilot::advance(state, config);
    removal::advance(state, config);
    assignment::advance(state, config);
    oobe::advance(state, config);
}

/// A running simulated tenant. Dropping it stops the server.
pub struct SimHandle {
    pub shared: Shared,
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl SimHandle {
    /// Root URL for both Graph (`{url}/v1.0/...`) and login (`{url}/{tenant}/oauth2/v2.0/...`).
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The CA certificate (PEM) clients must trust, when the tenant serves HTTPS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.shared.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// Runs `f` on the tenant state (after advancing it), for tests and fault scripts.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> R {
        let mut guard = self.shared.lock();
        f(&mut guard)
    }

    /// The tenant id (also the organization's id).
    pub fn tenant_id(&self) -> String {
        self.with_state(|s| s.core.organization.id.clone())
    }

    /// The user interactive sign-ins authenticate as (the seeded admin).
    pub fn admin(&self) -> core::User {
        self.with_state(|s| {
            s.core
                .interactive_user()
                .cloned()
                .unwrap_or_else(|| s.core.users[0].clone())
        })
    }

    /// A test shortcut past the sign-in: an access token for `upn_or_id` with every scope the
    /// wizard asks for, valid for an hour. An unknown user gets a token whose `/me` answers 404.
    pub fn issue_token(&self, upn_or_id: &str) -> String {
        let scopes: Vec<&str> = consented_permissions()
            .into_iter()
            .chain(["openid", "profile", "offline_access"])
            .collect();
        self.issue_token_with(upn_or_id, &scopes, Duration::from_secs(3600))
    }

    /// Like [`SimHandle::issue_token`] with chosen scopes and lifetime.
    pub fn issue_token_with(
        &self,
        upn_or_id: &str,
        scopes: &[&str],
        valid_for: Duration,
    ) -> String {
        let token = format!(
            "sim-at-{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        self.with_state(|s| {
            let user_id = core::user_by_id_or_upn(&s.core, upn_or_id)
                .map(|u| u.id.clone())
                .unwrap_or_else(|| upn_or_id.to_string());
            s.core.access_tokens.insert(
                token.clone(),
                core::AccessGrant {
                    user_id,
                    scopes: scopes.iter().map(|x| x.to_string()).collect(),
                    expires_at: std::time::Instant::now() + valid_for,
                },
            );
        });
        token
    }

    /// Makes `token` expired from now on (Graph then answers 401).
    pub fn expire_access_token(&self, token: &str) {
        self.with_state(|s| {
            if let Some(g) = s.core.access_tokens.get_mut(token) {
                g.expires_at = std::time::Instant::now();
            }
        });
    }

    /// Every request served so far, in order (fault answers and dropped connections included).
    pub fn requests(&self) -> Vec<core::RequestRecord> {
        self.with_state(|s| s.core.requests.clone())
    }

    pub fn clear_requests(&self) {
        self.with_state(|s| s.core.requests.clear());
    }

    /// Queues faults, consumed in order (first matching entry) before the rates apply.
    pub fn script_faults(&self, faults: Vec<core::ScriptedFault>) {
        self.with_state(|s| s.core.faults.script.extend(faults));
    }

    /// Switches devices on (see [`oobe::switch_on`]); their serial numbers.
    pub fn switch_on(&self, req: &oobe::SwitchOn) -> Vec<String> {
        self.with_state(|s| oobe::switch_on(s, req))
    }

    /// Replaces the fault rates for the rest of the run (the script is kept).
    pub fn set_fault_rates(&self, config: core::FaultConfig) {
        self.with_state(|s| {
            let script = std::mem::take(&mut s.core.faults.script);
            s.core.faults = core::FaultState::new(config);
            s.core.faults.script = script;
        });
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The whole router: every area's routes behind the core middleware.
/// The delegated permissions the simulated tenant has consented for any client: the core areas'
/// and those of each area with a module of its own (added here, beside its router).
pub fn consented_permissions() -> Vec<&'static str> {
    [
        identity::CONSENTED,
        esp::CONSENTED,
        readiness::CONSENTED,
        oobe::CONSENTED,
        removal::CONSENTED,
    ]
    .concat()
}

pub fn router(shared: Shared) -> Router {
    let routes = Router::new()
        .merge(identity::routes())
        .merge(core::routes())
        .merge(directory::routes())
        .merge(profiles::routes())
        .merge(autopilot::routes())
        .merge(assignment::routes())
        .merge(esp::routes())
        .merge(readiness::routes())
        .merge(oobe::routes())
        .merge(removal::routes());
    core::wrap(routes, shared.clone()).with_state(shared)
}

/// Starts the simulated tenant on 127.0.0.1 (`port` 0 picks a free one) on the current tokio
/// runtime.
pub async fn spawn_on(config: SimConfig, port: u16) -> std::io::Result<SimHandle> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let mut state = SimState::seeded(config.seed);
    state.core.faults = core::FaultState::new(config.faults.clone());
    state.identity.access_token_lifetime = config.access_token_lifetime;
    state.identity.refresh_token_lifetime = config.refresh_token_lifetime;
    let request_log = match &config.request_log {
        Some(path) => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        )),
        None => None,
    };
    let tls = if config.tls {
        Some(tls::generate()?)
    } else {
        None
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let acceptor = tls.as_ref().map(|t| t.acceptor.clone());
    let shared = Arc::new(SimShared {
        state: Mutex::new(state),
        config,
        base_url: format!("{scheme}://{addr}"),
        request_log,
        signing_key: std::sync::OnceLock::new(),
        tls,
    });
    // The connection info carries the socket's kill switch, for dropped-connection faults.
    let app = router(shared.clone()).into_make_service_with_connect_info::<core::ConnInfo>();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(
            core::SimListener {
                tcp: listener,
                tls: acceptor,
            },
            app,
        )
        .with_graceful_shutdown(async {
            let _ = rx.await;
        })
        .await;
    });
    Ok(SimHandle {
        shared,
        addr,
        shutdown: Some(tx),
    })
}

/// Starts the simulated tenant on a random free port.
pub async fn spawn(config: SimConfig) -> std::io::Result<SimHandle> {
    spawn_on(config, 0).await
}

/// The text `run_standalone` prints: URLs, the admin, device-code sign-in with curl and a
/// ready-made token.
pub fn standalone_banner(sim: &SimHandle) -> String {
    let url = sim.url();
    let (org, tenant) = sim.with_state(|s| {
        (
            s.core.organization.display_name.clone(),
            s.core.organization.id.clone(),
        )
    });
    let admin = sim.admin().user_principal_name;
    let token = sim.issue_token(&admin);
    let client_id = "14d82eec-204b-4c2f-b7e8-296a70dab67e";
    let scope = "https://graph.microsoft.com/.default offline_access openid profile";
    let switch_on = oobe::SWITCH_ON_PATH;
    format!(
        "Simulated tenant \"{org}\" (tenant id {tenant}) is running.\n\
         \n  Graph:  {url}/v1.0/  and  {url}/beta/\
         \n  Login:  {url}/{tenant}/oauth2/v2.0/  (\"organizations\" works in place of the tenant id)\
         \n  OpenID Connect discovery:  {url}/{tenant}/v2.0/.well-known/openid-configuration\
         \n  Signs in as: {admin}\n\
         \nSign in with the device code flow:\
         \n  curl -s {url}/organizations/oauth2/v2.0/devicecode -d client_id={client_id} --data-urlencode \"scope={scope}\"\
         \n  curl -s {url}/organizations/oauth2/v2.0/token -d grant_type=urn:ietf:params:oauth:grant-type:device_code -d client_id={client_id} -d device_code=DEVICE_CODE_FROM_ABOVE\n\
         \nOr use this ready-made access token (valid one hour):\
         \n  export TOKEN={token}\
         \n  curl -s -H \"Authorization: Bearer $TOKEN\" {url}/v1.0/me\n\
         \nSwitch devices on (they go through OOBE; the first batch of several has one failure):\
         \n  curl -s -X POST {url}{switch_on} -d '{{\"count\": 3}}'\n\
         \nRun the wizard against this tenant (--demo starts a tenant of its own instead):\
         \n  autopilot-wizard --graph-url {url} --login-url {url}\
         \nPress Ctrl-C to stop."
    )
}
