//! ID-token verification and the identity it asserts.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreGenderClaim, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
};
use openidconnect::{AdditionalClaims, ClientId, IdToken, IdTokenVerifier, IssuerUrl, Nonce};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::config::TENANT_PLACEHOLDER;
use super::error::claims_error;
use super::{OidcConnection, OidcError};
use crate::sso::GroupClaim;

/// Largest ID token accepted (Entra's are a few KiB; groups overage keeps them small).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The algorithms an ID token may be signed with: asymmetric only. HMAC is excluded so a
/// provider's public key can never be used as an HMAC secret, and `none` is never allowed.
const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 8] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
];

/// Entra's claims beyond the standard ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct EntraClaims {
    tid: Option<String>,
    oid: Option<String>,
    groups: Option<Vec<String>>,
    #[serde(rename = "_claim_names")]
    claim_names: Option<serde_json::Map<String, serde_json::Value>>,
    nbf: Option<i64>,
}

impl AdditionalClaims for EntraClaims {}

type EntraIdToken = IdToken<
    EntraClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// Who the provider says signed in. The user is `(tenant_id, object_id)`; the e-mail
/// address and name are informational only and never used to find an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// The provider tenant (`tid`).
    pub tenant_id: String,
    /// The user's immutable object id in that tenant (`oid`).
    pub object_id: String,
    /// `email`, else `preferred_username` (not verified; display only).
    pub email: Option<String>,
    /// `name`.
    pub name: Option<String>,
    /// The user's groups, or [`GroupClaim::Overage`].
    pub groups: GroupClaim,
    /// The authentication methods (`amr`).
    pub amr: Vec<String>,
    /// Whether the provider asserted multi-factor authentication (`amr` contains `mfa`,
    /// or `acr` is one of the connection's MFA values).
    pub mfa: bool,
}

impl OidcIdentity {
    /// The stable key linking this identity to a user: `oidc:<tid>:<oid>`.
    pub fn subject_key(&self) -> String {
        format!("oidc:{}:{}", self.tenant_id, self.object_id)
    }
}

#[derive(Deserialize)]
struct Peek {
    tid: Option<String>,
}

/// The token's `tid`, read before verification only to choose the issuer to expect; the
/// verified claims are checked again below.
fn peek_tenant(raw: &str) -> Result<Option<String>, OidcError> {
    let mut parts = raw.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(OidcError::Malformed(
            "ID token (not a signed JWT)".to_owned(),
        ));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| OidcError::Malformed("ID token payload encoding".to_owned()))?;
    let peek: Peek = serde_json::from_slice(&bytes)
        .map_err(|_| OidcError::Malformed("ID token payload".to_owned()))?;
    Ok(peek.tid)
}

fn chrono_time(t: OffsetDateTime) -> Result<chrono::DateTime<chrono::Utc>, OidcError> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond())
        .ok_or_else(|| OidcError::Malformed("time out of range".to_owned()))
}

pub(super) fn verify(
    conn: &OidcConnection,
    jwks: &CoreJsonWebKeySet,
    raw: &str,
    nonce: &str,
    now: OffsetDateTime,
) -> Result<OidcIdentity, OidcError> {
    if raw.len() > MAX_TOKEN_BYTES {
        return Err(OidcError::Malformed("ID token (too large)".to_owned()));
    }
    let tid = peek_tenant(raw)?.ok_or(OidcError::MissingClaim("tid"))?;
    if !conn.tenant_ids.contains(&tid) {
        return Err(OidcError::WrongTenant);
    }
    let issuer = IssuerUrl::new(conn.issuer.replace(TENANT_PLACEHOLDER, &tid))
        .map_err(|_| OidcError::WrongIssuer)?;
    let skew = time::Duration::seconds(i64::from(conn.max_clock_skew_secs));
    // The library rejects `now >= exp`; comparing with `now - skew` allows the skew.
    let lenient_now = chrono_time(now - skew)?;
    let verifier = IdTokenVerifier::new_public_client(
        ClientId::new(conn.client_id.clone()),
        issuer,
        jwks.clone(),
    )
    .set_allowed_algs(ALLOWED_ALGS)
    .set_time_fn(move || lenient_now)
    // Only our client id in `aud`: any other audience is untrusted.
    .set_other_audience_verifier_fn(|_| false);
    let token: EntraIdToken = raw
        .parse()
        .map_err(|_| OidcError::Malformed("ID token".to_owned()))?;
    let expected_nonce = Nonce::new(nonce.to_owned());
    let claims = token
        .claims(&verifier, &expected_nonce)
        .map_err(claims_error)?;

    let latest = now + skew;
    if claims.issue_time().timestamp() > latest.unix_timestamp() {
        return Err(OidcError::NotYetValid);
    }
    let extra = claims.additional_claims();
    if extra.nbf.is_some_and(|nbf| nbf > latest.unix_timestamp()) {
        return Err(OidcError::NotYetValid);
    }
    if extra.tid.as_deref() != Some(tid.as_str()) {
        return Err(OidcError::WrongTenant);
    }
    let object_id = extra.oid.clone().ok_or(OidcError::MissingClaim("oid"))?;
    if uuid::Uuid::try_parse(&object_id).is_err() {
        return Err(OidcError::Malformed("oid".to_owned()));
    }
    let overage = extra
        .claim_names
        .as_ref()
        .is_some_and(|names| names.contains_key("groups"));
    let groups = if overage {
        GroupClaim::Overage
    } else {
        GroupClaim::Listed(extra.groups.clone().unwrap_or_default())
    };
    let amr: Vec<String> = claims
        .auth_method_refs()
        .map(|refs| refs.iter().map(|r| r.as_str().to_owned()).collect())
        .unwrap_or_default();
    let acr_is_mfa = claims
        .auth_context_ref()
        .is_some_and(|acr| conn.mfa_acr_values.iter().any(|v| v == acr.as_str()));
    let mfa = acr_is_mfa || amr.iter().any(|m| m == "mfa");
    let email = claims
        .email()
        .map(|e| e.as_str().to_owned())
        .or_else(|| claims.preferred_username().map(|u| u.as_str().to_owned()));
    let name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_owned());
    Ok(OidcIdentity {
        tenant_id: tid,
        object_id,
        email,
        name,
        groups,
        amr,
        mfa,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_refuses_what_is_not_a_jws() {
        assert!(peek_tenant("a.b").is_err());
        assert!(peek_tenant("a.b.c.d.e").is_err());
        assert!(peek_tenant("a.%%%.c").is_err());
        let payload = URL_SAFE_NO_PAD.encode(br#"{"tid":"t"}"#);
        assert_eq!(
            peek_tenant(&format!("h.{payload}.s")).unwrap(),
            Some("t".to_owned())
        );
    }
}
