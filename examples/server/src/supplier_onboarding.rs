//! A supplier's contact fills in their company and bank details through a link, without an
//! account (issue #15): the link carries a single-use token (only its SHA-256 is stored),
//! it expires, and it works once — the redemption is one conditional statement, so two
//! submissions of the same link cannot both land. The IBAN is checked (ISO 13616 mod 97),
//! sealed by the field cipher, and a hint (country, last four) is kept for lists.

use procuhelp_auth::session::Credential;
use procuhelp_core::{SupplierId, UserId};
use procuhelp_tenancy::{FieldCipher, FieldRef, TenantTx};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// How long a link works.
pub const LIFETIME: Duration = Duration::days(14);

/// Why onboarding was refused.
#[derive(Debug, thiserror::Error)]
pub enum OnboardingError {
    /// The link is unknown, used or expired (one answer for all three).
    #[error("this link is not valid: it was used already, it expired, or it was mistyped")]
    InvalidLink,
    /// A field is out of bounds.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// The supplier is not in this organisation.
    #[error("no such supplier")]
    NotFound,
    /// The supplier is no longer waiting for its details (onboarded or archived): a link
    /// never replaces bank details.
    #[error("the supplier has given its details already")]
    AlreadyOnboarded,
    /// Sealing failed, or the database did.
    #[error("storage error")]
    Storage(#[from] procuhelp_tenancy::Error),
}

impl From<sqlx::Error> for OnboardingError {
    fn from(e: sqlx::Error) -> Self {
        OnboardingError::Storage(e.into())
    }
}

/// An IBAN, checked: 15–34 letters and digits, a country, two check digits that make the
/// whole number 1 modulo 97. Spaces are ignored, letters upper-cased.
#[derive(Clone, PartialEq, Eq)]
pub struct Iban(String);

impl std::fmt::Debug for Iban {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Bank details stay out of logs.
        f.write_str(&self.hint())
    }
}

impl Iban {
    /// Checks `text`.
    pub fn parse(text: &str) -> Result<Self, OnboardingError> {
        let iban: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let bytes = iban.as_bytes();
        let shaped = (15..=34).contains(&bytes.len())
            && bytes[..2].iter().all(u8::is_ascii_uppercase)
            && bytes[2..4].iter().all(u8::is_ascii_digit)
            && bytes.iter().all(u8::is_ascii_alphanumeric);
        if !shaped {
            return Err(OnboardingError::Invalid("iban"));
        }
        // Move the first four to the end, letters to 10..35, the number mod 97 must be 1.
        let mut rest: u32 = 0;
        for &b in bytes[4..].iter().chain(&bytes[..4]) {
            let value = if b.is_ascii_digit() {
                u32::from(b - b'0')
            } else {
                u32::from(b - b'A') + 10
            };
            rest = if value >= 10 {
                (rest * 100 + value) % 97
            } else {
                (rest * 10 + value) % 97
            };
        }
        if rest != 1 {
            return Err(OnboardingError::Invalid("iban"));
        }
        Ok(Iban(iban))
    }

    /// The country and the last four characters (`DE… …3000`), for lists.
    pub fn hint(&self) -> String {
        hint_of(&self.0)
    }

    /// The whole IBAN, grouped by four for reading.
    pub fn grouped(&self) -> String {
        group(&self.0)
    }
}

fn hint_of(iban: &str) -> String {
    let country = iban.get(..2).unwrap_or("");
    let last = iban.get(iban.len().saturating_sub(4)..).unwrap_or("");
    format!("{country}•• …{last}")
}

/// `text` grouped by four characters.
pub fn group(text: &str) -> String {
    text.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the contact fills in.
#[derive(Debug)]
pub struct Details {
    /// The company's legal name.
    pub legal_name: String,
    /// Its VAT id, if it has one.
    pub vat_id: Option<String>,
    /// Where to pay.
    pub iban: Iban,
}

impl Details {
    /// Checks the fields (the IBAN already is).
    pub fn new(legal_name: &str, vat_id: &str, iban: Iban) -> Result<Self, OnboardingError> {
        let legal_name = legal_name.trim();
        if legal_name.is_empty()
            || legal_name.chars().count() > 200
            || legal_name.chars().any(char::is_control)
        {
            return Err(OnboardingError::Invalid("legal_name"));
        }
        let vat_id: String = vat_id
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let vat_id = if vat_id.is_empty() {
            None
        } else if (2..=32).contains(&vat_id.len())
            && vat_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            Some(vat_id)
        } else {
            return Err(OnboardingError::Invalid("vat_id"));
        };
        Ok(Self {
            legal_name: legal_name.to_owned(),
            vat_id,
            iban,
        })
    }
}

/// A link for `supplier`'s contact at `contact_email`, made by `by`: the credential (give
/// it once; only its hash is kept) and when it expires.
pub async fn invite(
    tx: &mut TenantTx,
    supplier: SupplierId,
    contact_email: &procuhelp_auth::directory::Email,
    by: UserId,
    now: OffsetDateTime,
) -> Result<(Credential, OffsetDateTime), OnboardingError> {
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM app.suppliers WHERE org_id = $1 AND id = $2")
            .bind(tx.org().as_uuid())
            .bind(supplier.as_uuid())
            .fetch_optional(tx.conn())
            .await?;
    // A link fills in a new supplier's details once; it never replaces an onboarded (or
    // archived) supplier's bank account.
    match status.as_deref() {
        None => return Err(OnboardingError::NotFound),
        Some("invited") => {}
        Some(_) => return Err(OnboardingError::AlreadyOnboarded),
    }
    let credential =
        Credential::generate(tx.org()).map_err(|_| OnboardingError::Invalid("randomness"))?;
    let expires_at = now + LIFETIME;
    sqlx::query(
        "INSERT INTO app.supplier_invitations
             (org_id, id, supplier_id, token_hash, contact_email, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(tx.org().as_uuid())
    .bind(Uuid::now_v7())
    .bind(supplier.as_uuid())
    .bind(credential.token.hash().to_vec())
    .bind(contact_email.as_str())
    .bind(by.as_uuid())
    .bind(now)
    .bind(expires_at)
    .execute(tx.conn())
    .await?;
    Ok((credential, expires_at))
}

/// The supplier's current name, if `credential` is a live link (nothing is used up).
pub async fn peek(
    tx: &mut TenantTx,
    credential: &Credential,
    now: OffsetDateTime,
) -> Result<String, OnboardingError> {
    let name: Option<String> = sqlx::query_scalar(
        "SELECT s.name FROM app.supplier_invitations i
           JOIN app.suppliers s ON s.org_id = i.org_id AND s.id = i.supplier_id
          WHERE i.org_id = $1 AND i.token_hash = $2 AND i.used_at IS NULL AND i.expires_at > $3",
    )
    .bind(tx.org().as_uuid())
    .bind(credential.token.hash().to_vec())
    .bind(now)
    .fetch_optional(tx.conn())
    .await?;
    name.ok_or(OnboardingError::InvalidLink)
}

/// Uses the link once and stores `details` on its supplier (now `active`), in `tx`.
pub async fn redeem(
    tx: &mut TenantTx,
    cipher: &FieldCipher,
    credential: &Credential,
    details: &Details,
    now: OffsetDateTime,
) -> Result<SupplierId, OnboardingError> {
    let org = tx.org();
    let supplier: Option<Uuid> = sqlx::query_scalar(
        "UPDATE app.supplier_invitations SET used_at = $3
          WHERE org_id = $1 AND token_hash = $2 AND used_at IS NULL AND expires_at > $3
          RETURNING supplier_id",
    )
    .bind(org.as_uuid())
    .bind(credential.token.hash().to_vec())
    .bind(now)
    .fetch_optional(tx.conn())
    .await?;
    let supplier = supplier.ok_or(OnboardingError::InvalidLink)?;
    // Every other link for this supplier ends with this one.
    sqlx::query(
        "UPDATE app.supplier_invitations SET used_at = $3
          WHERE org_id = $1 AND supplier_id = $2 AND used_at IS NULL",
    )
    .bind(org.as_uuid())
    .bind(supplier)
    .bind(now)
    .execute(tx.conn())
    .await?;
    let row = supplier.to_string();
    let sealed = cipher
        .encrypt(
            org,
            FieldRef::new("suppliers", "iban", &row),
            details.iban.0.as_bytes(),
        )
        .await?;
    let updated = sqlx::query(
        "UPDATE app.suppliers
            SET name = $3, vat_id = $4, iban_sealed = $5, iban_hint = $6, status = 'active',
                updated_at = $7
          WHERE org_id = $1 AND id = $2 AND status = 'invited'",
    )
    .bind(org.as_uuid())
    .bind(supplier)
    .bind(&details.legal_name)
    .bind(&details.vat_id)
    .bind(&sealed)
    .bind(details.iban.hint())
    .bind(now)
    .execute(tx.conn())
    .await?;
    // Onboarded or archived meanwhile: the link is spent and nothing is replaced (the
    // caller rolls back).
    if updated.rows_affected() != 1 {
        return Err(OnboardingError::InvalidLink);
    }
    SupplierId::from_uuid(supplier).map_err(|_| OnboardingError::NotFound)
}

/// The supplier's bank details: the hint (for lists) and, sealed, the IBAN.
pub async fn bank_details(
    tx: &mut TenantTx,
    supplier: SupplierId,
) -> Result<(Option<String>, Option<Vec<u8>>), OnboardingError> {
    let row: Option<(Option<String>, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT iban_hint, iban_sealed FROM app.suppliers WHERE org_id = $1 AND id = $2",
    )
    .bind(tx.org().as_uuid())
    .bind(supplier.as_uuid())
    .fetch_optional(tx.conn())
    .await?;
    row.ok_or(OnboardingError::NotFound)
}

/// The whole IBAN of `supplier` (the caller checks the permission and records the reveal).
pub async fn reveal(
    tx: &mut TenantTx,
    cipher: &FieldCipher,
    supplier: SupplierId,
) -> Result<Option<String>, OnboardingError> {
    let (_, sealed) = bank_details(tx, supplier).await?;
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    let row = supplier.to_string();
    let open = cipher
        .decrypt(tx.org(), FieldRef::new("suppliers", "iban", &row), &sealed)
        .await?;
    let text = String::from_utf8(open.expose().to_vec())
        .map_err(|_| OnboardingError::Invalid("stored iban"))?;
    Ok(Some(group(&text)))
}

/// What the API and the pages both call for a supplier's invitation, bank details and
/// archiving: the permission, the change, its audit event.
pub(crate) mod handle {
    use procuhelp_audit::{Action, Outcome};
    use procuhelp_auth::directory::Email;
    use procuhelp_auth::{AuthError, Permission};
    use procuhelp_axum::{Authed, Error, Result};
    use procuhelp_core::SupplierId;
    use serde_json::json;

    use super::OnboardingError;
    use crate::mail::Mail;
    use crate::suppliers::{PgSupplierRepository, SupplierRepository as _, SupplierStatus};

    impl From<OnboardingError> for Error {
        fn from(e: OnboardingError) -> Self {
            match e {
                OnboardingError::InvalidLink => AuthError::Unauthenticated.into(),
                OnboardingError::Invalid(field) => Error::Invalid(field),
                OnboardingError::NotFound => AuthError::NotFound.into(),
                OnboardingError::AlreadyOnboarded => {
                    AuthError::Conflict("the supplier has given its details already").into()
                }
                OnboardingError::Storage(e) => e.into(),
            }
        }
    }

    /// Where an invitation link went.
    pub(crate) enum Invited {
        /// No mail configured: the path, to be shown once.
        Link(String),
        /// E-mailed to this address.
        SentTo(String),
    }

    impl std::fmt::Debug for Invited {
        /// The link holds a live single-use token: never in a log.
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Invited::Link(_) => f.write_str("Link(<redacted>)"),
                Invited::SentTo(to) => f.debug_tuple("SentTo").field(to).finish(),
            }
        }
    }

    /// A link for the supplier's contact, e-mailed before the caller commits (if the
    /// message cannot be handed over, the caller's transaction is dropped and nothing
    /// is kept); with no mail configured, the path to show once. The caller commits.
    pub(crate) async fn invite(
        authed: &mut Authed,
        mail: &Mail,
        id: SupplierId,
        email: &Email,
    ) -> Result<Invited> {
        authed.require(Permission::ManageSuppliers).await?;
        let by = authed.principal.acting_user();
        let now = authed.sdk().now();
        let (credential, expires_at) =
            super::invite(authed.tx().await?, id, email, by, now).await?;
        let event = authed
            .event(Action::SupplierInvitationCreated, Outcome::Success)
            .target(format!("supplier:{id}"))
            .context(json!({ "expires_at": expires_at.unix_timestamp() }));
        authed.record(event).await?;
        let path = format!("/supplier-invitations/accept?token={}", credential.expose());
        if !mail.is_enabled() {
            return Ok(Invited::Link(path));
        }
        let text = format!(
            "Hello,\n\nplease send us your company and bank details with this link \
             (it works once, until {}):\n\n{}\n\nProcuHelp",
            expires_at.date(),
            mail.link(&path)
        );
        mail.send(email.as_str(), "Please send your company details", &text)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "supplier invitation e-mail not sent");
                AuthError::Conflict("the e-mail could not be sent; nothing was kept")
            })?;
        Ok(Invited::SentTo(email.as_str().to_owned()))
    }

    /// The whole IBAN, grouped, its reveal recorded first. The caller commits (after it
    /// has what it shows: the record and the reveal stand or fall together).
    pub(crate) async fn reveal_iban(authed: &mut Authed, id: SupplierId) -> Result<String> {
        authed.require(Permission::ManageSuppliers).await?;
        let cipher = authed.sdk().cipher().clone();
        let Some(iban) = super::reveal(authed.tx().await?, &cipher, id).await? else {
            return Err(AuthError::Conflict("no bank details yet").into());
        };
        let event = authed
            .event(Action::SupplierBankDetailsRevealed, Outcome::Success)
            .target(format!("supplier:{id}"));
        authed.record(event).await?;
        Ok(iban)
    }

    /// Archives a supplier; its invitation links end with it.
    pub(crate) async fn archive(authed: &mut Authed, id: SupplierId) -> Result<()> {
        authed.require(Permission::ManageSuppliers).await?;
        PgSupplierRepository
            .set_status(authed.tx().await?, id, SupplierStatus::Archived)
            .await?;
        super::end_links(authed.tx().await?, id).await?;
        let event = authed
            .event(Action::SupplierArchived, Outcome::Success)
            .target(format!("supplier:{id}"));
        authed.record(event).await?;
        authed.commit().await
    }
}

/// Ends every unused link of `supplier` (it is archived).
pub async fn end_links(tx: &mut TenantTx, supplier: SupplierId) -> Result<(), OnboardingError> {
    sqlx::query(
        "UPDATE app.supplier_invitations SET used_at = now()
          WHERE org_id = $1 AND supplier_id = $2 AND used_at IS NULL",
    )
    .bind(tx.org().as_uuid())
    .bind(supplier.as_uuid())
    .execute(tx.conn())
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ibans_are_checked_by_their_check_digits() {
        for ok in [
            "DE89370400440532013000",
            "de89 3704 0044 0532 0130 00",
            "GB29NWBK60161331926819",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
        ] {
            let iban = Iban::parse(ok).unwrap();
            assert!(iban.hint().ends_with(
                &ok.replace(' ', "")[ok.replace(' ', "").len() - 4..].to_ascii_uppercase()
            ));
        }
        for bad in [
            "",
            "DE88370400440532013000",
            "DE89 3704 0044 0532 0130 0",
            "1289370400440532013000",
            "DE89370400440532013000<script>",
            &"DE89".repeat(10),
        ] {
            assert!(Iban::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            format!("{:?}", Iban::parse("DE89370400440532013000").unwrap()),
            "DE•• …3000"
        );
    }
}
