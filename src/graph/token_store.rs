//! Where refresh tokens are kept between runs: the operating system's credential store
//! (Secret Service on Linux, Credential Manager on Windows, Keychain on macOS) through
//! keyring-core, or process memory when no store is available. Access tokens are never stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Service name under which every entry is filed in the credential store.
pub const SERVICE: &str = "autopilot-wizard";

/// Which refresh token: one per tenant and account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct StoreKey {
    pub tenant: String,
    pub account: String,
}

impl StoreKey {
    pub fn new(tenant: &str, account: &str) -> Self {
        StoreKey {
            tenant: tenant.trim().to_ascii_lowercase(),
            account: account.trim().to_ascii_lowercase(),
        }
    }

    /// The user name of the credential entry (`tenant/account`).
    pub fn entry_user(&self) -> String {
        format!("{}/{}", self.tenant, self.account)
    }
}

/// A credential store failure in words; the store's own message (often a raw D-Bus or OS error)
/// stays in the variant for the log and tooltips ([`TokenStoreError::detail`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenStoreError {
    #[error(
        "The system credential store refused access. Unlock the keyring (or Keychain) and try \
         again; until then you will have to sign in at every start."
    )]
    NoAccess(String),
    #[error(
        "The system credential store did not work, so you will have to sign in at every start."
    )]
    Platform(String),
    #[error(
        "The saved sign-in in the system credential store is damaged; it was ignored. Sign in again."
    )]
    Damaged,
}

impl TokenStoreError {
    /// The store's own words, for the log and a tooltip (never a stored secret).
    pub fn detail(&self) -> Option<&str> {
        match self {
            TokenStoreError::NoAccess(d) | TokenStoreError::Platform(d) => Some(d),
            TokenStoreError::Damaged => None,
        }
    }
}

/// Why sign-ins will not be remembered on this computer: a sentence for the page and the raw
/// reason for its tooltip and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreNotice {
    pub message: String,
    pub detail: String,
}

/// Keeps refresh tokens. Implementations must never log or print the tokens they hold.
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    fn load(&self, key: &StoreKey) -> Result<Option<String>, TokenStoreError>;
    fn save(&self, key: &StoreKey, refresh_token: &str) -> Result<(), TokenStoreError>;
    /// Removing a key that holds nothing is not an error.
    fn delete(&self, key: &StoreKey) -> Result<(), TokenStoreError>;
    /// True when tokens survive a restart of the wizard.
    fn remembers(&self) -> bool;
    /// Every key a token is saved under (for `sign-out` on the command line).
    fn keys(&self) -> Result<Vec<StoreKey>, TokenStoreError>;
}

/// Tokens in process memory: for tests, and the fallback when the system has no credential store.
#[derive(Default)]
pub struct MemoryStore {
    tokens: Mutex<HashMap<StoreKey, String>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// How many tokens are held (for tests; never the tokens themselves).
    pub fn len(&self) -> usize {
        self.tokens.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self
            .tokens
            .lock()
            .map(|m| m.keys().map(StoreKey::entry_user).collect())
            .unwrap_or_default();
        f.debug_struct("MemoryStore")
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

impl TokenStore for MemoryStore {
    fn load(&self, key: &StoreKey) -> Result<Option<String>, TokenStoreError> {
        let m = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        Ok(m.get(key).cloned())
    }

    fn save(&self, key: &StoreKey, refresh_token: &str) -> Result<(), TokenStoreError> {
        let mut m = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(key.clone(), refresh_token.to_string());
        Ok(())
    }

    fn delete(&self, key: &StoreKey) -> Result<(), TokenStoreError> {
        let mut m = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(key);
        Ok(())
    }

    fn remembers(&self) -> bool {
        false
    }

    fn keys(&self) -> Result<Vec<StoreKey>, TokenStoreError> {
        let m = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys: Vec<StoreKey> = m.keys().cloned().collect();
        keys.sort_by_key(StoreKey::entry_user);
        Ok(keys)
    }
}

/// Tokens in a keyring-core credential store, filed under [`SERVICE`] and `tenant/account`.
pub struct KeyringStore {
    store: Arc<keyring_core::CredentialStore>,
}

impl std::fmt::Debug for KeyringStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringStore")
            .field("vendor", &self.store.vendor())
            .finish_non_exhaustive()
    }
}

impl KeyringStore {
    /// Over a given store, e.g. `keyring_core::mock::Store::new()` in tests.
    pub fn with_store(store: Arc<keyring_core::CredentialStore>) -> Self {
        KeyringStore { store }
    }

    /// The platform store: keyring v4 picks it once per process (zbus Secret Service on Linux
    /// and BSD, Credential Manager on Windows, Keychain on macOS) and installs it as
    /// keyring-core's default; we take that store and use it directly.
    pub fn platform() -> Result<Self, String> {
        match keyring::Entry::store_status() {
            Ok(()) => keyring_core::get_default_store()
                .map(KeyringStore::with_store)
                .ok_or_else(|| "no credential store was set up".to_string()),
            Err(e) => Err(describe(e)),
        }
    }

    fn entry(&self, key: &StoreKey) -> Result<keyring_core::Entry, TokenStoreError> {
        self.store
            .build(SERVICE, &key.entry_user(), None)
            .map_err(map_err)
    }

    /// The list of saved keys, itself an entry: the stores' own search differs on every platform
    /// (a regex on Windows, attributes on the Secret Service), a list of our own does not.
    fn index(&self) -> Result<Vec<StoreKey>, TokenStoreError> {
        let entry = self
            .store
            .build(SERVICE, INDEX_USER, None)
            .map_err(map_err)?;
        match entry.get_password() {
            Ok(text) => Ok(serde_json::from_str(&text).unwrap_or_default()),
            Err(keyring_core::Error::NoEntry) => Ok(Vec::new()),
            Err(e) => Err(map_err(e)),
        }
    }

    fn set_index(&self, keys: &[StoreKey]) -> Result<(), TokenStoreError> {
        let entry = self
            .store
            .build(SERVICE, INDEX_USER, None)
            .map_err(map_err)?;
        if keys.is_empty() {
            return match entry.delete_credential() {
                Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
                Err(e) => Err(map_err(e)),
            };
        }
        let text = serde_json::to_string(keys).unwrap_or_default();
        entry.set_password(&text).map_err(map_err)
    }
}

/// The index entry's user name; it has no `/`, so no `tenant/account` can be it.
const INDEX_USER: &str = "saved-sign-ins";

impl TokenStore for KeyringStore {
    fn load(&self, key: &StoreKey) -> Result<Option<String>, TokenStoreError> {
        match self.entry(key)?.get_password() {
            Ok(t) => Ok(Some(t)),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    fn save(&self, key: &StoreKey, refresh_token: &str) -> Result<(), TokenStoreError> {
        self.entry(key)?
            .set_password(refresh_token)
            .map_err(map_err)?;
        let mut keys = self.index()?;
        if !keys.contains(key) {
            keys.push(key.clone());
            self.set_index(&keys)?;
        }
        Ok(())
    }

    fn delete(&self, key: &StoreKey) -> Result<(), TokenStoreError> {
        match self.entry(key)?.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => {}
            Err(e) => return Err(map_err(e)),
        }
        let mut keys = self.index()?;
        let before = keys.len();
        keys.retain(|k| k != key);
        if keys.len() != before {
            self.set_index(&keys)?;
        }
        Ok(())
    }

    fn keys(&self) -> Result<Vec<StoreKey>, TokenStoreError> {
        self.index()
    }

    fn remembers(&self) -> bool {
        matches!(
            self.store.persistence(),
            keyring_core::CredentialPersistence::UntilDelete
                | keyring_core::CredentialPersistence::UntilLogout
                | keyring_core::CredentialPersistence::UntilReboot
                | keyring_core::CredentialPersistence::Unspecified
        )
    }
}

/// A description of a keyring error that never includes stored data (some variants carry the
/// raw secret bytes).
fn describe(e: &keyring_core::Error) -> String {
    use keyring_core::Error as E;
    match e {
        E::PlatformFailure(inner) | E::NoStorageAccess(inner) => inner.to_string(),
        E::NoEntry => "no saved sign-in".into(),
        E::BadEncoding(_) | E::BadDataFormat(..) => "saved data is damaged".into(),
        E::BadStoreFormat(why) => why.clone(),
        E::TooLong(name, len) => format!("{name} is longer than the store allows ({len})"),
        E::Invalid(what, why) => format!("{what}: {why}"),
        E::Ambiguous(items) => format!("{} saved entries match", items.len()),
        E::NoDefaultStore => "no credential store is available".into(),
        E::NotSupportedByStore(why) => why.clone(),
        _ => "unknown credential store error".into(),
    }
}

fn map_err(e: keyring_core::Error) -> TokenStoreError {
    use keyring_core::Error as E;
    match &e {
        E::NoStorageAccess(_) => TokenStoreError::NoAccess(describe(&e)),
        E::BadEncoding(_) | E::BadDataFormat(..) => TokenStoreError::Damaged,
        _ => TokenStoreError::Platform(describe(&e)),
    }
}

/// The store the app uses: the platform credential store when there is one, otherwise memory,
/// with the sentence to show the user about why sign-ins will not be remembered.
pub fn open_default_store() -> (Arc<dyn TokenStore>, Option<StoreNotice>) {
    match KeyringStore::platform() {
        Ok(store) => {
            tracing::info!(store = ?store, "refresh tokens are kept in the system credential store");
            (Arc::new(store), None)
        }
        Err(why) => {
            tracing::warn!(reason = %why, "no system credential store; sign-ins are kept in memory only");
            (Arc::new(MemoryStore::new()), Some(no_store_notice(why)))
        }
    }
}

/// Removes the saved sign-ins, all of them or those of `tenant` (a tenant id, or the domain of
/// the account that signed in, e.g. `contoso.onmicrosoft.com`). Returns the keys removed.
pub fn sign_out(
    store: &dyn TokenStore,
    tenant: Option<&str>,
) -> Result<Vec<StoreKey>, TokenStoreError> {
    let want = tenant.map(|t| t.trim().to_ascii_lowercase());
    let mut removed = Vec::new();
    for key in store.keys()? {
        let matches = match &want {
            None => true,
            Some(t) => {
                key.tenant == *t
                    || key
                        .account
                        .rsplit_once('@')
                        .is_some_and(|(_, domain)| domain == t)
            }
        };
        if matches {
            store.delete(&key)?;
            removed.push(key);
        }
    }
    Ok(removed)
}

/// What the sign-in page says when there is no credential store (`why` is the raw reason).
pub fn no_store_notice(why: impl Into<String>) -> StoreNotice {
    StoreNotice {
        message: "This computer has no credential store the wizard can use (such as the Secret \
                  Service of a desktop session), so the sign-in is kept in memory only: you will \
                  sign in again next time you start the wizard."
            .into(),
        detail: why.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyring_store_round_trip_with_mock() {
        let store = KeyringStore::with_store(keyring_core::mock::Store::new().unwrap());
        let key = StoreKey::new("Contoso.onmicrosoft.com", "Admin@Contoso.com");
        assert_eq!(store.load(&key).unwrap(), None);
        store.save(&key, "rt-1").unwrap();
        assert_eq!(store.load(&key).unwrap().as_deref(), Some("rt-1"));
        store.save(&key, "rt-2").unwrap();
        assert_eq!(store.load(&key).unwrap().as_deref(), Some("rt-2"));
        store.delete(&key).unwrap();
        assert_eq!(store.load(&key).unwrap(), None);
        store.delete(&key).unwrap();
        // The mock keeps entries in process memory only.
        assert!(!store.remembers());
    }

    #[test]
    fn memory_store_debug_shows_keys_not_tokens() {
        let store = MemoryStore::new();
        store
            .save(&StoreKey::new("t", "a"), "secret-refresh-token")
            .unwrap();
        let dbg = format!("{store:?}");
        assert!(dbg.contains("t/a"));
        assert!(!dbg.contains("secret-refresh-token"));
    }
}
