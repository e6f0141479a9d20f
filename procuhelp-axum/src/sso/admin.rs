//! The organisation's SSO connections (`ManageSso`): read (never a secret), save after
//! validation, remove. Every change and every refused change is an audit event, durable
//! before anything changes.
//!
//! The SDK functions — [`connections`], [`save_oidc`], [`save_saml`] and
//! [`delete_connection`] — each do the whole of one step (permission; for a change,
//! validation with its refusal recorded, audit, commit), for a page or any other caller;
//! the JSON handlers of `/api/sso` are thin wrappers around them.

use axum::Json;
#[cfg(feature = "oidc")]
use axum::extract::State;
use axum::http::StatusCode;
use procuhelp_audit::{Action, Outcome};
use procuhelp_auth::Permission;
#[cfg(feature = "oidc")]
use procuhelp_auth::sso::oidc::{OidcConnection, OidcError};
#[cfg(feature = "saml")]
use procuhelp_auth::sso::saml::{ConnectionError, SamlError, SamlSettings, ServiceProvider};
use procuhelp_auth::sso::store::{self, Protocol, StoredConnection};
#[cfg(feature = "oidc")]
use procuhelp_core::SecretBytes;
#[cfg(feature = "oidc")]
use serde::Deserialize;
use serde_json::{Value, json};

#[cfg(feature = "oidc")]
use super::SsoClients;
#[cfg(feature = "oidc")]
use super::oidc::client_secret_name;
use crate::{Authed, Error, Result};

/// The organisation's SSO connections as stored: each protocol's settings document,
/// never a secret (the OIDC client secret is in the vault).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Connections {
    /// The OpenID Connect connection, if configured.
    pub oidc: Option<StoredConnection>,
    /// The SAML 2.0 connection, if configured.
    pub saml: Option<StoredConnection>,
}

impl Connections {
    /// The OpenID Connect settings, parsed (`None`: not configured, or a stored document
    /// that no longer parses).
    #[cfg(feature = "oidc")]
    pub fn oidc_settings(&self) -> Option<OidcConnection> {
        let stored = self.oidc.as_ref()?;
        serde_json::from_value(stored.settings.clone()).ok()
    }

    /// The SAML settings, parsed (`None`: not configured, or a stored document that no
    /// longer parses).
    #[cfg(feature = "saml")]
    pub fn saml_settings(&self) -> Option<SamlSettings> {
        let stored = self.saml.as_ref()?;
        serde_json::from_value(stored.settings.clone()).ok()
    }
}

/// Why a connection's settings were refused. The refusal is an audit event
/// (`sso.configured`, outcome failure, with the detailed reason) and nothing changed.
/// [`SettingsRefusal::code`] and [`SettingsRefusal::message`] are fixed words, never the
/// input, for a page to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettingsRefusal {
    /// The settings document does not parse (a field missing, unknown or mistyped).
    Malformed,
    /// The OIDC discovery URL is not https (http only on loopback), or is an address no
    /// server fetches from.
    DiscoveryUrl,
    /// The server's outbound policy does not allow fetching the discovery document there.
    DestinationNotAllowed,
    /// The OIDC issuer is not an https URL, or has a placeholder other than `{tenantid}`.
    Issuer,
    /// The OIDC client id is empty or longer than 256 characters.
    ClientId,
    /// No tenant id, one that is not a lowercase hyphenated GUID, or one that is not the
    /// issuer's tenant.
    TenantIds,
    /// The OIDC redirect URI is not https (http only on loopback).
    RedirectUri,
    /// A SAML URL is not absolute, or not https (http only on loopback): the field.
    Url(&'static str),
    /// A SAML entity id or attribute name is empty or longer than 1024 bytes: the field.
    Identifier(&'static str),
    /// The tolerated clock skew is above 300 seconds.
    ClockSkew,
    /// The group → role mapping has an empty or overlong group id, or an unknown role.
    GroupRoles,
    /// No IdP signing certificate (never "skip verification").
    NoCertificate,
    /// An IdP certificate is not one PEM X.509 certificate with an acceptable key (RSA of
    /// at least 2048 bits, or EC).
    BadCertificate,
    /// The OIDC client secret is missing (required the first time), empty or longer than
    /// 1024 bytes.
    ClientSecret,
    /// Any other reason the settings are not usable.
    Invalid,
}

impl SettingsRefusal {
    /// The stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::DiscoveryUrl => "discovery_url",
            Self::DestinationNotAllowed => "destination_not_allowed",
            Self::Issuer => "issuer",
            Self::ClientId => "client_id",
            Self::TenantIds => "tenant_ids",
            Self::RedirectUri => "redirect_uri",
            Self::Url(_) => "insecure_url",
            Self::Identifier(_) => "identifier",
            Self::ClockSkew => "clock_skew",
            Self::GroupRoles => "group_roles",
            Self::NoCertificate => "no_certificate",
            Self::BadCertificate => "bad_certificate",
            Self::ClientSecret => "client_secret",
            Self::Invalid => "invalid_settings",
        }
    }

    /// A fixed sentence for a person.
    pub fn message(self) -> &'static str {
        match self {
            Self::Malformed => "The settings are incomplete or not in the expected form.",
            Self::DiscoveryUrl => {
                "The discovery URL must be an https URL of the identity provider (http only on this machine)."
            }
            Self::DestinationNotAllowed => {
                "This server may not fetch the discovery document from that address."
            }
            Self::Issuer => {
                "The issuer must be an https URL; the only placeholder allowed is {tenantid}."
            }
            Self::ClientId => "The client id must be 1 to 256 characters.",
            Self::TenantIds => {
                "Give at least one tenant id, each a lowercase GUID and the issuer's tenant."
            }
            Self::RedirectUri => "The redirect URI must be https (http only on this machine).",
            Self::Url(_) => {
                "The sign-in URL and the ACS URL must be absolute https URLs (http only on this machine)."
            }
            Self::Identifier(_) => {
                "Entity ids and attribute names must be between 1 and 1024 bytes."
            }
            Self::ClockSkew => "The tolerated clock difference must be at most 300 seconds.",
            Self::GroupRoles => {
                "Each group mapping needs a group id (1 to 256 characters) and a known role."
            }
            Self::NoCertificate => "The identity provider's signing certificate is required.",
            Self::BadCertificate => {
                "Each certificate must be one PEM X.509 certificate with an RSA key of at least 2048 bits or an EC key."
            }
            Self::ClientSecret => {
                "The client secret is required the first time and whenever the provider or the client changes, and is at most 1024 characters."
            }
            Self::Invalid => "These settings cannot be used.",
        }
    }

    /// The field the API's 422 names (`settings`, or `client_secret`).
    fn api_field(self) -> &'static str {
        match self {
            Self::ClientSecret => "client_secret",
            _ => "settings",
        }
    }
}

/// What an OIDC validation error means, by the fixed start of its message (pinned by the
/// tests below).
#[cfg(feature = "oidc")]
fn oidc_refusal(e: &OidcError) -> SettingsRefusal {
    use SettingsRefusal as R;
    match e {
        OidcError::Fetch(_) => R::DestinationNotAllowed,
        OidcError::Config(m) => {
            let starts = |p: &str| m.starts_with(p);
            if starts("discovery_url") {
                R::DiscoveryUrl
            } else if starts("redirect_uri") {
                R::RedirectUri
            } else if starts("issuer") {
                R::Issuer
            } else if starts("client_id") {
                R::ClientId
            } else if starts("tenant") {
                R::TenantIds
            } else if starts("max_clock_skew_secs") {
                R::ClockSkew
            } else if starts("group") {
                R::GroupRoles
            } else {
                R::Invalid
            }
        }
        _ => R::Invalid,
    }
}

/// What a SAML connection error means.
#[cfg(feature = "saml")]
fn saml_refusal(e: &SamlError) -> SettingsRefusal {
    use SettingsRefusal as R;
    match e {
        SamlError::Connection(c) => match c {
            ConnectionError::NoCertificate => R::NoCertificate,
            ConnectionError::BadCertificate { .. } => R::BadCertificate,
            ConnectionError::BadUrl { field } | ConnectionError::InsecureUrl { field } => {
                R::Url(field)
            }
            ConnectionError::BadIdentifier { field } => R::Identifier(field),
            ConnectionError::ClockSkewTooLarge { .. } => R::ClockSkew,
            _ => R::Invalid,
        },
        _ => R::Invalid,
    }
}

/// The organisation's connections (never a secret). Needs `manage_sso`. Reads in the
/// request's transaction and leaves it open: read more if needed, then commit.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed) -> procuhelp_axum::Result<()> {
/// let connections = procuhelp_axum::sso::connections(&mut authed).await?;
/// authed.commit().await?;
/// if let Some(oidc) = connections.oidc_settings() {
///     println!("signed in through {}", oidc.issuer);
/// }
/// # Ok(()) }
/// ```
pub async fn connections(authed: &mut Authed) -> Result<Connections> {
    authed.require(Permission::ManageSso).await?;
    let oidc = store::connection(authed.tx().await?, Protocol::Oidc).await?;
    let saml = store::connection(authed.tx().await?, Protocol::Saml).await?;
    Ok(Connections { oidc, saml })
}

/// `GET /api/sso`: the organisation's connections (never their secrets).
pub(super) async fn get_settings(mut authed: Authed) -> Result<Json<Value>> {
    let found = connections(&mut authed).await?;
    authed.commit().await?;
    Ok(Json(json!({
        "oidc": found.oidc.map(|c| json!({ "settings": c.settings })),
        "saml": found.saml.map(|c| json!({ "settings": c.settings })),
    })))
}

/// Records the refusal of a connection's settings (the reason, no secret) and commits:
/// nothing else of the request is kept.
async fn refuse(
    authed: &mut Authed,
    protocol: Protocol,
    refusal: SettingsRefusal,
    reason: String,
) -> Result<SettingsRefusal> {
    let event = authed
        .event(Action::SsoConfigured, Outcome::Failure)
        .target(format!("sso:{}", protocol.as_str()))
        .context(json!({ "reason": reason, "refusal": refusal.code() }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(refusal)
}

/// Validates and stores the organisation's OpenID Connect connection; `client_secret`
/// goes to the vault (`None`: keep the stored one — required the first time). Needs
/// `manage_sso`. The settings must pass [`OidcConnection::validate`] and the server's
/// outbound policy ([`SsoClients::outbound`]); a refusal is recorded and committed, and
/// answered `Ok(Err(refusal))` — nothing changed. On success the audit event is durable
/// before anything changes: the vault write (which no transaction rolls back) comes after
/// it, the settings' commit last.
///
/// ```no_run
/// # async fn demo(
/// #     mut authed: procuhelp_axum::Authed,
/// #     sso: procuhelp_axum::sso::SsoClients,
/// # ) -> Result<(), Box<dyn std::error::Error>> {
/// use procuhelp_auth::sso::oidc::OidcConnection;
/// let tenant = "f7393f3e-c33d-4dfe-b4a8-f473310e7bf5";
/// let settings: OidcConnection = serde_json::from_value(serde_json::json!({
///     "discovery_url": format!("https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration"),
///     "issuer": format!("https://login.microsoftonline.com/{tenant}/v2.0"),
///     "client_id": "13f0eaea-7284-4cae-8822-bcd14389d2fc",
///     "tenant_ids": [tenant],
///     "redirect_uri": "https://procuhelp.example/sso/oidc/callback",
/// }))?;
/// match procuhelp_axum::sso::save_oidc(&mut authed, &sso, &settings, Some("secret")).await? {
///     Ok(()) => println!("saved"),
///     Err(refusal) => println!("refused: {}", refusal.message()),
/// }
/// # Ok(()) }
/// ```
#[cfg(feature = "oidc")]
pub async fn save_oidc(
    authed: &mut Authed,
    sso: &SsoClients,
    settings: &OidcConnection,
    client_secret: Option<&str>,
) -> Result<Result<(), SettingsRefusal>> {
    authed.require(Permission::ManageSso).await?;
    let org = authed.org();
    let checked = settings
        .validate()
        .and_then(|_| settings.check_destinations(sso.outbound()));
    if let Err(e) = checked {
        return Ok(Err(refuse(
            authed,
            Protocol::Oidc,
            oidc_refusal(&e),
            e.to_string(),
        )
        .await?));
    }
    let vault = authed.sdk().vault().clone();
    let name = client_secret_name(org).ok_or(Error::Invalid("org"))?;
    let new_secret = match client_secret {
        Some(secret) if !secret.is_empty() && secret.len() <= 1024 => {
            Some(SecretBytes::new(secret.as_bytes().to_vec()))
        }
        Some(_) => {
            let reason = "client_secret must be 1 to 1024 bytes".to_owned();
            let refusal = SettingsRefusal::ClientSecret;
            return Ok(Err(refuse(authed, Protocol::Oidc, refusal, reason).await?));
        }
        None => {
            if vault.get(&name).await.is_err() {
                let reason = "client_secret is required the first time".to_owned();
                let refusal = SettingsRefusal::ClientSecret;
                return Ok(Err(refuse(authed, Protocol::Oidc, refusal, reason).await?));
            }
            // The stored secret is kept only for the same provider and client: pointed
            // elsewhere, it would be sent to the new token endpoint at the next sign-in.
            let stored = store::connection(authed.tx().await?, Protocol::Oidc).await?;
            let same_party = stored
                .and_then(|c| serde_json::from_value::<OidcConnection>(c.settings).ok())
                .is_some_and(|old| {
                    (&old.discovery_url, &old.issuer, &old.client_id)
                        == (
                            &settings.discovery_url,
                            &settings.issuer,
                            &settings.client_id,
                        )
                });
            if !same_party {
                let reason =
                    "client_secret is required when the provider or the client changes".to_owned();
                let refusal = SettingsRefusal::ClientSecret;
                return Ok(Err(refuse(authed, Protocol::Oidc, refusal, reason).await?));
            }
            None
        }
    };
    let document = serde_json::to_value(settings).map_err(|_| Error::Invalid("settings"))?;
    let event = authed
        .event(Action::SsoConfigured, Outcome::Success)
        .target("sso:oidc")
        .context(json!({
            "issuer": settings.issuer,
            "client_id": settings.client_id,
            "tenant_ids": settings.tenant_ids,
            "client_secret_replaced": new_secret.is_some(),
        }));
    // Recorded first (fails closed: a failing audit log leaves vault and settings as they
    // were); a vault failure after it aborts the request and leaves the settings as they
    // were, the event then records an attempt.
    authed.record(event).await?;
    if let Some(secret) = new_secret {
        vault
            .put(&name, secret)
            .await
            .map_err(|_| Error::Unavailable)?;
    }
    let now = authed.sdk().now();
    store::save_connection(authed.tx().await?, Protocol::Oidc, &document, now).await?;
    authed.commit().await?;
    Ok(Ok(()))
}

#[cfg(feature = "oidc")]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OidcSettingsBody {
    settings: OidcConnection,
    /// Required the first time; omitted to keep the stored one.
    client_secret: Option<String>,
}

#[cfg(feature = "oidc")]
/// `PUT /api/sso/oidc`: [`save_oidc`]; a refusal is 422 naming `settings` (or
/// `client_secret`).
pub(super) async fn put_oidc(
    State(sso): State<SsoClients>,
    mut authed: Authed,
    Json(body): Json<OidcSettingsBody>,
) -> Result<Json<Value>> {
    let saved = save_oidc(
        &mut authed,
        &sso,
        &body.settings,
        body.client_secret.as_deref(),
    )
    .await?;
    if let Err(refusal) = saved {
        return Err(Error::Invalid(refusal.api_field()));
    }
    let settings = serde_json::to_value(&body.settings).map_err(|_| Error::Invalid("settings"))?;
    Ok(Json(json!({ "settings": settings })))
}

/// The stored document of `settings` (`{"connection": {...}, "group_roles": {...}}`,
/// every field written out, the settings that weaken verification by their stored names).
#[cfg(feature = "saml")]
fn saml_document(settings: &SamlSettings) -> Value {
    let c = &settings.connection;
    json!({
        "connection": {
            "idp_entity_id": c.idp_entity_id,
            "idp_sso_url": c.idp_sso_url,
            "idp_certificates": c.idp_certificates,
            "sp_entity_id": c.sp_entity_id,
            "acs_url": c.acs_url,
            "allow_sha1": c.allows_sha1(),
            "allow_idp_initiated": c.allows_idp_initiated(),
            "mfa_authn_contexts": c.mfa_authn_contexts,
            "max_clock_skew_secs": c.max_clock_skew_secs,
            "attributes": {
                "email": c.attributes.email,
                "display_name": c.attributes.display_name,
                "groups": c.attributes.groups,
                "groups_overage": c.attributes.groups_overage,
            },
        },
        "group_roles": settings.group_roles,
    })
}

/// Validates and stores the organisation's SAML connection with its group → role
/// mapping. Needs `manage_sso`. A connection without an IdP certificate (or with an
/// unusable one, a URL that is not https, an unknown role…) is refused: recorded,
/// committed and answered `Ok(Err(refusal))` — nothing changed.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed) -> procuhelp_axum::Result<()> {
/// use procuhelp_auth::sso::saml::{SamlConnection, SamlSettings};
/// let connection = SamlConnection::new(
///     "https://sts.windows.net/f7393f3e-c33d-4dfe-b4a8-f473310e7bf5/",
///     "https://login.microsoftonline.com/f7393f3e-c33d-4dfe-b4a8-f473310e7bf5/saml2",
///     vec![std::fs::read_to_string("idp.crt").unwrap_or_default()],
///     "https://procuhelp.example/sso/ORG/saml",
///     "https://procuhelp.example/sso/ORG/saml/acs",
/// );
/// let settings = SamlSettings { connection, group_roles: Default::default() };
/// if let Err(refusal) = procuhelp_axum::sso::save_saml(&mut authed, &settings).await? {
///     println!("refused: {}", refusal.message());
/// }
/// # Ok(()) }
/// ```
#[cfg(feature = "saml")]
pub async fn save_saml(
    authed: &mut Authed,
    settings: &SamlSettings,
) -> Result<Result<(), SettingsRefusal>> {
    authed.require(Permission::ManageSso).await?;
    save_saml_document(authed, settings, &saml_document(settings)).await
}

/// [`save_saml`] after the permission, keeping `document` (what `settings` was parsed
/// from).
#[cfg(feature = "saml")]
async fn save_saml_document(
    authed: &mut Authed,
    settings: &SamlSettings,
    document: &Value,
) -> Result<Result<(), SettingsRefusal>> {
    if let Err(e) = settings.roles() {
        let refusal = SettingsRefusal::GroupRoles;
        return Ok(Err(
            refuse(authed, Protocol::Saml, refusal, e.to_string()).await?
        ));
    }
    if let Err(e) = ServiceProvider::new(settings.connection.clone()) {
        let refusal = saml_refusal(&e);
        return Ok(Err(
            refuse(authed, Protocol::Saml, refusal, e.to_string()).await?
        ));
    }
    let now = authed.sdk().now();
    store::save_connection(authed.tx().await?, Protocol::Saml, document, now).await?;
    let event = authed
        .event(Action::SsoConfigured, Outcome::Success)
        .target("sso:saml")
        .context(json!({
            "idp_entity_id": settings.connection.idp_entity_id,
            "certificates": settings.connection.idp_certificates.len(),
            "allow_sha1": settings.connection.allows_sha1(),
            "allow_idp_initiated": settings.connection.allows_idp_initiated(),
        }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(Ok(()))
}

#[cfg(feature = "saml")]
/// `PUT /api/sso/saml`: the document as sent, parsed (a document that does not parse is
/// a recorded refusal too), then [`save_saml`]; stored as sent.
pub(super) async fn put_saml(mut authed: Authed, Json(body): Json<Value>) -> Result<Json<Value>> {
    authed.require(Permission::ManageSso).await?;
    let saved = match serde_json::from_value::<SamlSettings>(body.clone()) {
        Ok(settings) => save_saml_document(&mut authed, &settings, &body).await?,
        Err(e) => {
            let refusal = SettingsRefusal::Malformed;
            Err(refuse(&mut authed, Protocol::Saml, refusal, e.to_string()).await?)
        }
    };
    if let Err(refusal) = saved {
        return Err(Error::Invalid(refusal.api_field()));
    }
    Ok(Json(json!({ "settings": body })))
}

/// Removes the organisation's connection for `protocol` (recorded as `sso.configured`
/// with `removed`) and commits; whether there was one. Needs `manage_sso`.
///
/// ```no_run
/// # async fn demo(mut authed: procuhelp_axum::Authed) -> procuhelp_axum::Result<()> {
/// use procuhelp_auth::sso::store::Protocol;
/// let removed = procuhelp_axum::sso::delete_connection(&mut authed, Protocol::Saml).await?;
/// # Ok(()) }
/// ```
pub async fn delete_connection(authed: &mut Authed, protocol: Protocol) -> Result<bool> {
    authed.require(Permission::ManageSso).await?;
    let removed = store::delete_connection(authed.tx().await?, protocol).await?;
    let event = authed
        .event(Action::SsoConfigured, Outcome::Success)
        .target(format!("sso:{}", protocol.as_str()))
        .context(json!({ "removed": removed }));
    authed.record(event).await?;
    authed.commit().await?;
    Ok(removed)
}

#[cfg(feature = "oidc")]
/// `DELETE /api/sso/oidc`.
pub(super) async fn delete_oidc(mut authed: Authed) -> Result<StatusCode> {
    delete_connection(&mut authed, Protocol::Oidc).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(feature = "saml")]
/// `DELETE /api/sso/saml`.
pub(super) async fn delete_saml(mut authed: Authed) -> Result<StatusCode> {
    delete_connection(&mut authed, Protocol::Saml).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "oidc")]
    #[test]
    fn every_oidc_validation_error_has_its_refusal_kind() {
        use SettingsRefusal as R;
        use procuhelp_core::OutboundPolicy;
        let tenant = "f7393f3e-c33d-4dfe-b4a8-f473310e7bf5";
        let good = || OidcConnection {
            discovery_url: format!(
                "https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration"
            ),
            issuer: format!("https://login.microsoftonline.com/{tenant}/v2.0"),
            client_id: "13f0eaea-7284-4cae-8822-bcd14389d2fc".to_owned(),
            tenant_ids: vec![tenant.to_owned()],
            redirect_uri: "https://procuhelp.example/sso/oidc/callback".to_owned(),
            group_roles: Default::default(),
            mfa_acr_values: Vec::new(),
            max_clock_skew_secs: 120,
        };
        assert!(good().validate().is_ok());
        type Spoil = fn(&mut OidcConnection);
        let cases: [(Spoil, R); 10] = [
            (
                |c| c.discovery_url = "http://idp.example/.well-known".into(),
                R::DiscoveryUrl,
            ),
            (
                |c| c.redirect_uri = "http://sp.example/cb".into(),
                R::RedirectUri,
            ),
            (|c| c.redirect_uri = "not a url".into(), R::RedirectUri),
            (|c| c.issuer = "http://idp.example/".into(), R::Issuer),
            (|c| c.issuer = "https://idp.example/{x}".into(), R::Issuer),
            (|c| c.client_id = String::new(), R::ClientId),
            (|c| c.tenant_ids.clear(), R::TenantIds),
            (|c| c.tenant_ids = vec!["F7393F3E".into()], R::TenantIds),
            (|c| c.max_clock_skew_secs = 301, R::ClockSkew),
            (
                |c| {
                    c.group_roles.insert("g".into(), "root".into());
                },
                R::GroupRoles,
            ),
        ];
        for (spoil, want) in cases {
            let mut c = good();
            spoil(&mut c);
            let e = c.validate().unwrap_err();
            assert_eq!(oidc_refusal(&e), want, "{e}");
        }
        let mut c = good();
        c.tenant_ids = vec!["00000000-0000-0000-0000-000000000001".into()];
        assert_eq!(oidc_refusal(&c.validate().unwrap_err()), R::TenantIds);
        let mut c = good();
        c.discovery_url = "https://10.1.2.3/.well-known/openid-configuration".into();
        let e = c
            .check_destinations(OutboundPolicy::public_only())
            .unwrap_err();
        assert_eq!(oidc_refusal(&e), R::DestinationNotAllowed);
    }

    #[cfg(feature = "saml")]
    #[test]
    fn the_canonical_saml_document_parses_back_to_the_same_settings() {
        use procuhelp_auth::sso::saml::SamlConnection;
        let mut connection = SamlConnection::new(
            "https://idp.example/",
            "https://idp.example/saml2",
            vec!["PEM".to_owned()],
            "https://sp.example/saml",
            "https://sp.example/acs",
        );
        connection.dangerous().set_allow_idp_initiated(true);
        connection.mfa_authn_contexts = vec!["mfa".to_owned()];
        connection.max_clock_skew_secs = 60;
        connection.attributes.email = "mail".to_owned();
        let settings = SamlSettings {
            connection,
            group_roles: [("g".to_owned(), "admin".to_owned())].into(),
        };
        let back: SamlSettings = serde_json::from_value(saml_document(&settings)).unwrap();
        assert_eq!(back, settings);
    }

    #[test]
    fn refusal_codes_are_distinct() {
        use SettingsRefusal as R;
        let all = [
            R::Malformed,
            R::DiscoveryUrl,
            R::DestinationNotAllowed,
            R::Issuer,
            R::ClientId,
            R::TenantIds,
            R::RedirectUri,
            R::Url("acs_url"),
            R::Identifier("sp_entity_id"),
            R::ClockSkew,
            R::GroupRoles,
            R::NoCertificate,
            R::BadCertificate,
            R::ClientSecret,
            R::Invalid,
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), all.len());
    }
}
