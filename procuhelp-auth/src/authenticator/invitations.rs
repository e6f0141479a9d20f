//! Redeeming an invitation ([`crate::invitation`]): the first password of an invited user.

use procuhelp_audit::{Action, Outcome};
use procuhelp_core::{SecretText, UserId};

use super::{Authenticator, ClientInfo, commit_if_ok};
use crate::directory;
use crate::session::Credential;
use crate::{AuthError, AuthResult};

impl Authenticator {
    /// Redeems the invitation `credential`: its user's first password becomes `password`
    /// (checked against the policy), the invitation is used up and the user's other
    /// invitations withdrawn — in one transaction — and `user.invitation_accepted` is
    /// recorded before it commits (fail closed). Any invitation that
    /// cannot be redeemed (unknown, used, expired, another organisation's, of a disabled
    /// or erased user, an organisation this deployment does not serve) is the same
    /// [`AuthError::Unauthenticated`]. No session is opened: the user signs in next.
    pub async fn accept_invitation(
        &self,
        credential: &Credential,
        password: SecretText,
        client: &ClientInfo,
    ) -> AuthResult<UserId> {
        self.password_policy.check(&password)?;
        let mut tx = match self.db.begin(credential.org).await {
            Ok(tx) => tx,
            Err(procuhelp_tenancy::Error::UnknownOrg(_)) => return Err(AuthError::Unauthenticated),
            Err(e) => return Err(e.into()),
        };
        let done = async {
            let now = self.now();
            let Some(user) = crate::invitation::redeem(&mut tx, credential, now).await? else {
                return Err(AuthError::Unauthenticated);
            };
            // Only a live invitation's holder gets a hashing slot.
            let permit = self.limiter.acquire().await?;
            let (phc, _) = self.hash_with(permit, password).await?;
            directory::set_password_hash(&mut tx, user, &phc, now).await?;
            let record = directory::get(&mut tx, user).await?;
            self.record(self.user_event(
                Some(credential.org),
                &record,
                Action::UserInvitationAccepted,
                Outcome::Success,
                client,
            ))
            .await?;
            Ok(user)
        }
        .await;
        commit_if_ok(tx, done).await
    }
}
