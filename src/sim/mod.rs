//! The simulated tenant: a stateful, in-process HTTP server that speaks the wire format of
//! Microsoft Graph and the Microsoft identity platform for everything the wizard uses.
//!
//! It is written from `shared/reference/` on its own and shares no serde types or constants with
//! [`crate::graph`]: a field name misread on one side is caught by the other.
//!
//! Layout: one module per area, each with its own part of [`SimState`] and its own routes.
//! - [`core`]: bearer-token check, fault injection, request log, `/me`, `/organization`.
//! - [`identity`]: `/{tenant}/oauth2/v2.0/{devicecode,token,authorize}`.
//! - [`directory`]: users, groups, members, Entra devices, device registration and MDM policies.
//! - [`profiles`]: Autopilot deployment profiles and their assignments.
//! - [`autopilot`]: hardware-hash import, Autopilot device identities, settings and sync.
//! - [`assignment`]: dynamic membership evaluation and profile assignment progress.
//! - [`odata`]: error bodies, paging, `$select`, `$filter` helpers shared by all areas.
//!
//! Service-side asynchronous work (imports, membership, assignment) is evaluated lazily: every
//! request first calls [`advance`], which moves whatever is due. Durations are "service time",
//! scaled by [`Speed`] so demos take seconds and tests milliseconds.

pub mod assignment;
pub mod autopilot;
pub mod core;
pub mod directory;
pub mod identity;
pub mod odata;
pub mod profiles;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;

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
}

/// Which data the tenant starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seed {
    /// A small fictional tenant with users, groups and some Autopilot devices.
    #[default]
    Demo,
    /// One admin user and nothing else.
    Empty,
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
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            speed: Speed::DEMO,
            page_size: 20,
            seed: Seed::Demo,
            faults: core::FaultConfig::default(),
            approve_device_code_after_polls: 1,
        }
    }
}

impl SimConfig {
    /// The configuration tests start from: test speed, small pages, demo data, no faults.
    pub fn test() -> Self {
        SimConfig {
            speed: Speed::TEST,
            page_size: 5,
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
}

impl SimState {
    pub fn seeded(seed: Seed) -> Self {
        let mut state = SimState::default();
        core::seed(&mut state, seed);
        directory::seed(&mut state, seed);
        profiles::seed(&mut state, seed);
        autopilot::seed(&mut state, seed);
        assignment::seed(&mut state, seed);
        state
    }
}

/// State shared by every handler.
pub struct SimShared {
    pub config: SimConfig,
    pub state: Mutex<SimState>,
    pub base_url: String,
}

pub type Shared = Arc<SimShared>;

impl SimShared {
    /// Locks the state after moving every service-side process that is due.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        advance(&mut guard, &self.config);
        guard
    }

    pub fn scaled(&self, service_time: Duration) -> Duration {
        self.config.speed.scaled(service_time)
    }
}

/// Moves service-side work that is due, in dependency order: imports register devices, devices
/// create Entra objects, membership follows, assignment follows membership.
pub fn advance(state: &mut SimState, config: &SimConfig) {
    autopilot::advance(state, config);
    assignment::advance(state, config);
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

    /// Runs `f` on the tenant state (after advancing it), for tests and fault scripts.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> R {
        let mut guard = self.shared.lock();
        f(&mut guard)
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
pub fn router(shared: Shared) -> Router {
    let routes = Router::new()
        .merge(identity::routes())
        .merge(core::routes())
        .merge(directory::routes())
        .merge(profiles::routes())
        .merge(autopilot::routes())
        .merge(assignment::routes());
    core::wrap(routes, shared.clone()).with_state(shared)
}

/// Starts the simulated tenant on 127.0.0.1 (`port` 0 picks a free one) on the current tokio
/// runtime.
pub async fn spawn_on(config: SimConfig, port: u16) -> std::io::Result<SimHandle> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(SimShared {
        state: Mutex::new(SimState::seeded(config.seed)),
        config,
        base_url: format!("http://{addr}"),
    });
    let app = router(shared.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
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
