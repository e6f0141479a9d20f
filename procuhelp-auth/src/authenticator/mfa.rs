//! TOTP second factors: the code (or a recovery code) at sign-in, enrolment and its
//! confirmation. Secrets are sealed by the field cipher under [`TOTP_FIELD`](super::TOTP_FIELD)
//! and [`TOTP_PENDING_FIELD`](super::TOTP_PENDING_FIELD).

use procuhelp_audit::{Action, Outcome};
use procuhelp_core::SecretText;
use procuhelp_tenancy::{FieldRef, TenantTx};

use super::{
    Authenticator, ClientInfo, Enrolment, Issued, TOTP_COLUMN, TOTP_PENDING_COLUMN, USERS,
};
use crate::directory::{self, UserRecord};
use crate::recovery::RecoveryCodes;
use crate::session::SessionPrincipal;
use crate::totp::TotpSecret;
use crate::{AuthError, AuthResult};

impl Authenticator {
    async fn user_secret(
        &self,
        tx: &mut TenantTx,
        user: &UserRecord,
        column: &'static str,
        sealed: &[u8],
    ) -> AuthResult<TotpSecret> {
        let row = user.id.to_string();
        let bytes = self
            .cipher
            .decrypt(tx.org(), FieldRef::new(USERS, column, &row), sealed)
            .await?;
        TotpSecret::from_bytes(bytes).map_err(|_| AuthError::Internal)
    }

    /// Checks a TOTP code (never the same step twice) or, if it is not one, a recovery
    /// code (consumed). Returns the `amr` value that was used.
    pub(super) async fn second_factor(
        &self,
        tx: &mut TenantTx,
        user: &UserRecord,
        code: &str,
        client: &ClientInfo,
    ) -> AuthResult<&'static str> {
        let Some(sealed) = &user.totp_sealed else {
            return Err(AuthError::InvalidCode);
        };
        let secret = self.user_secret(tx, user, TOTP_COLUMN, sealed).await?;
        let last = user.totp_last_step.and_then(|s| u64::try_from(s).ok());
        if let Ok(step) = self.totp.verify(&secret, code.trim(), self.now(), last) {
            let step = i64::try_from(step).map_err(|_| AuthError::Internal)?;
            if directory::advance_totp_step(tx, user.id, step).await? {
                return Ok("otp");
            }
            return Err(AuthError::InvalidCode);
        }
        if directory::use_recovery_code(tx, user.id, code).await? {
            self.record(self.user_event(
                Some(tx.org()),
                user,
                Action::RecoveryCodeUsed,
                Outcome::Success,
                client,
            ))
            .await?;
            return Ok("otp");
        }
        Err(AuthError::InvalidCode)
    }

    /// Starts TOTP enrolment: a new 160-bit secret, stored sealed as *pending* (it does
    /// nothing until confirmed).
    pub async fn start_enrolment(
        &self,
        tx: &mut TenantTx,
        principal: &SessionPrincipal,
        client: &ClientInfo,
    ) -> AuthResult<Enrolment> {
        let user = directory::get(tx, principal.user).await?;
        if user.has_mfa() {
            return Err(AuthError::Conflict("MFA is already enabled"));
        }
        let secret = TotpSecret::generate().map_err(|_| AuthError::Internal)?;
        let row = user.id.to_string();
        let sealed = self
            .cipher
            .encrypt(
                tx.org(),
                FieldRef::new(USERS, TOTP_PENDING_COLUMN, &row),
                secret.expose(),
            )
            .await?;
        directory::set_totp_pending(tx, user.id, &sealed, self.now()).await?;
        let uri = self
            .totp
            .enrolment_uri(&secret, &user.email)
            .map_err(|_| AuthError::Internal)?;
        let qr = qrcode::QrCode::new(uri.as_bytes())
            .map_err(|_| AuthError::Internal)?
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build();
        self.record(self.user_event(
            Some(tx.org()),
            &user,
            Action::MfaEnrolmentStarted,
            Outcome::Success,
            client,
        ))
        .await?;
        Ok(Enrolment {
            uri: SecretText::new(uri),
            qr_svg: SecretText::new(qr),
        })
    }

    /// Confirms enrolment with a code from the authenticator app: the secret becomes
    /// active, ten recovery codes are issued (shown once), the session is replaced by a
    /// new one with `mfa` in its `amr`.
    pub async fn confirm_enrolment(
        &self,
        tx: &mut TenantTx,
        principal: &SessionPrincipal,
        code: &str,
        client: &ClientInfo,
    ) -> AuthResult<(Issued, RecoveryCodes)> {
        let user = directory::get(tx, principal.user).await?;
        let pending = directory::totp_pending(tx, user.id)
            .await?
            .ok_or(AuthError::Conflict("no enrolment in progress"))?;
        let secret = self
            .user_secret(tx, &user, TOTP_PENDING_COLUMN, &pending)
            .await?;
        let step = self
            .totp
            .verify(&secret, code.trim(), self.now(), None)
            .map_err(|_| AuthError::InvalidCode)?;
        let row = user.id.to_string();
        let sealed = self
            .cipher
            .encrypt(
                tx.org(),
                FieldRef::new(USERS, TOTP_COLUMN, &row),
                secret.expose(),
            )
            .await?;
        let step = i64::try_from(step).map_err(|_| AuthError::Internal)?;
        directory::confirm_totp(tx, user.id, &sealed, step, self.now()).await?;
        let codes = RecoveryCodes::generate().map_err(|_| AuthError::Internal)?;
        directory::replace_recovery_codes(tx, user.id, &codes.hashes).await?;
        self.record(self.user_event(
            Some(tx.org()),
            &user,
            Action::MfaEnabled,
            Outcome::Success,
            client,
        ))
        .await?;
        let issued = self
            .step_up(tx, &user, principal, &["pwd", "otp", "mfa"], client)
            .await?;
        Ok((issued, codes))
    }
}
