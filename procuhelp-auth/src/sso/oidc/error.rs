//! Why an OpenID Connect sign-in was refused.

use openidconnect::core::CoreErrorResponseType;
use openidconnect::{
    ClaimsVerificationError, RequestTokenError, SignatureVerificationError, StandardErrorResponse,
};
use procuhelp_core::OutboundError;

/// Why an OpenID Connect sign-in was refused. Messages never contain tokens, codes or
/// secrets.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OidcError {
    /// The connection's settings are invalid.
    #[error("OIDC connection misconfigured: {0}")]
    Config(String),
    /// Discovery or the key set could not be fetched or did not match the connection.
    #[error("OIDC discovery failed: {0}")]
    Discovery(String),
    /// A request to the provider (discovery, keys, token endpoint) was refused by the
    /// outbound policy or failed. Only the policy's fixed reason is kept: the detail
    /// (status, connect error) would turn the sign-in into a scanner of the server's
    /// network, and goes to the server log at debug level only.
    #[error("OIDC provider: {0}")]
    Fetch(procuhelp_core::OutboundError),
    /// The provider answered with an OAuth error (authorization or token endpoint).
    #[error("the identity provider refused: {0}")]
    Provider(String),
    /// The `state` returned to the callback is not the one this browser started with.
    #[error("state mismatch")]
    StateMismatch,
    /// The token response had no ID token.
    #[error("the token response carries no ID token")]
    MissingIdToken,
    /// The token or a value in it is not well-formed.
    #[error("malformed {0}")]
    Malformed(String),
    /// The signature is missing, uses an algorithm outside the allow-list, or does not
    /// verify.
    #[error("ID token signature rejected: {0}")]
    Signature(String),
    /// The token names a key the provider does not publish (also after a refresh).
    #[error("ID token signed with an unknown key")]
    UnknownKey,
    /// `iss` is not the connection's issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `tid` is missing or not one of the organisation's tenants.
    #[error("wrong tenant")]
    WrongTenant,
    /// `aud` is not our client id, or lists audiences we do not trust.
    #[error("wrong audience")]
    WrongAudience,
    /// `exp` has passed (beyond the allowed skew).
    #[error("ID token expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the allowed skew).
    #[error("ID token not yet valid")]
    NotYetValid,
    /// The nonce is missing or not the one this sign-in sent.
    #[error("nonce mismatch")]
    NonceMismatch,
    /// A claim we need is missing.
    #[error("ID token lacks the {0} claim")]
    MissingClaim(&'static str),
}

/// The token endpoint's failure, in fixed words: the standard OAuth error code the
/// provider sent (an extension code is not repeated), or the outbound policy's reason.
pub(super) fn token_request_error(
    e: RequestTokenError<OutboundError, StandardErrorResponse<CoreErrorResponseType>>,
) -> OidcError {
    match e {
        RequestTokenError::ServerResponse(r) => OidcError::Provider(match r.error() {
            CoreErrorResponseType::Extension(_) => "unrecognised error".to_owned(),
            standard => standard.as_ref().to_owned(),
        }),
        RequestTokenError::Request(e) => OidcError::Fetch(e),
        RequestTokenError::Parse(_, _) => OidcError::Malformed("token response".to_owned()),
        RequestTokenError::Other(_) => OidcError::Provider("unexpected token response".to_owned()),
    }
}

pub(super) fn claims_error(e: ClaimsVerificationError) -> OidcError {
    match e {
        ClaimsVerificationError::InvalidAudience(_) => OidcError::WrongAudience,
        ClaimsVerificationError::InvalidIssuer(_) => OidcError::WrongIssuer,
        ClaimsVerificationError::Expired(_) => OidcError::Expired,
        ClaimsVerificationError::InvalidNonce(_) => OidcError::NonceMismatch,
        ClaimsVerificationError::SignatureVerification(s) => signature_error(s),
        ClaimsVerificationError::Unsupported(m) => OidcError::Malformed(m),
        other => OidcError::Malformed(other.to_string()),
    }
}

fn signature_error(e: SignatureVerificationError) -> OidcError {
    match e {
        SignatureVerificationError::NoMatchingKey => OidcError::UnknownKey,
        SignatureVerificationError::NoSignature => OidcError::Signature("unsigned".to_owned()),
        SignatureVerificationError::DisallowedAlg(alg) => {
            OidcError::Signature(format!("algorithm {alg} not allowed"))
        }
        other => OidcError::Signature(other.to_string()),
    }
}
