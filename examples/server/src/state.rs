//! The server's state: the SDK's ([`procuhelp_axum::Sdk`]) and its SSO clients. Its own
//! module so that the routes ([`crate::api`]) and the app ([`crate::app`]) both depend on
//! it, and not on each other.

use std::sync::Arc;

use axum::extract::FromRef;

/// Shared state of the handlers: the SDK's, and the server's SSO clients.
#[derive(Debug, Clone)]
pub struct AppState {
    /// What the SDK's extractor and routers need (tenants, authenticator, audit sink and
    /// clock, cipher, vault, audit log).
    pub sdk: procuhelp_axum::Sdk,
    /// SSO clients per organisation (discovery and key caches).
    pub sso: procuhelp_axum::sso::SsoClients,
    /// Outgoing mail (invitation links); disabled unless the server sets it.
    pub mail: crate::mail::Mail,
}

impl FromRef<AppState> for procuhelp_axum::Sdk {
    fn from_ref(state: &AppState) -> Self {
        state.sdk.clone()
    }
}

impl FromRef<AppState> for procuhelp_axum::sso::SsoClients {
    fn from_ref(state: &AppState) -> Self {
        state.sso.clone()
    }
}

impl FromRef<AppState> for crate::mail::Mail {
    fn from_ref(state: &AppState) -> Self {
        state.mail.clone()
    }
}

impl AppState {
    /// The server's state around `sdk`.
    pub fn new(sdk: procuhelp_axum::Sdk) -> Self {
        Self {
            sdk,
            sso: Default::default(),
            mail: crate::mail::Mail::disabled(),
        }
    }

    /// The same state, sending mail with `mail`.
    pub fn with_mail(mut self, mail: crate::mail::Mail) -> Self {
        self.mail = mail;
        self
    }

    /// The same state, with `log` for the audit API (reads and exports).
    pub fn with_audit_log(mut self, log: procuhelp_audit::PgAuditSink) -> Self {
        self.sdk = self.sdk.with_audit_log(log);
        self
    }

    /// The same state, with the SSO clients' fetches held to `policy` (the default is
    /// [`procuhelp_core::OutboundPolicy::public_only`]).
    pub fn with_outbound_policy(mut self, policy: procuhelp_core::OutboundPolicy) -> Self {
        self.sso = procuhelp_axum::sso::SsoClients::new(policy);
        self
    }

    /// Assembles the state from the runtime role's pool and the server's parts.
    pub fn assemble(
        runtime: sqlx::PgPool,
        cipher: Arc<procuhelp_tenancy::FieldCipher>,
        vault: Arc<dyn procuhelp_core::vault::SecretProvider>,
        audit: Arc<dyn procuhelp_audit::AuditSink>,
        clock: Arc<dyn procuhelp_core::Clock>,
        hasher: procuhelp_auth::password::PasswordHasher,
    ) -> Self {
        Self::new(
            procuhelp_axum::Sdk::builder(runtime, cipher, vault, audit)
                .clock(clock)
                .password_hasher(hasher)
                .personal_data(&crate::database::schema())
                .build(),
        )
    }
}
