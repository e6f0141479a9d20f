//! The secret provider and field cipher as the server uses them, and `keys rotate`.

use std::sync::Arc;

use anyhow::Context as _;
use procuhelp_core::vault::{FileVault, OpenBao, OpenBaoAuth, SecretProvider};
use procuhelp_tenancy::{EncryptedColumn, FieldCipher, TenantDb};

use crate::cli::DatabaseArgs;

/// The server's own encrypted columns (supplier bank details).
pub const SUPPLIER_ENCRYPTED_COLUMNS: &[EncryptedColumn] = &[EncryptedColumn {
    table: "app.suppliers",
    column: "iban_sealed",
    field_table: "suppliers",
    field_column: "iban",
}];

/// Every encrypted column the server stores, for re-encryption and retirement.
pub const ENCRYPTED_COLUMNS: &[EncryptedColumn] = &[
    EncryptedColumn {
        table: "app.suppliers",
        column: "iban_sealed",
        field_table: "suppliers",
        field_column: "iban",
    },
    EncryptedColumn {
        table: "app.users",
        column: "totp_sealed",
        field_table: procuhelp_auth::TOTP_FIELD.0,
        field_column: procuhelp_auth::TOTP_FIELD.1,
    },
    EncryptedColumn {
        table: "app.users",
        column: "totp_pending_sealed",
        field_table: procuhelp_auth::TOTP_PENDING_FIELD.0,
        field_column: procuhelp_auth::TOTP_PENDING_FIELD.1,
    },
];

/// Opens the configured secret provider. The server refuses to start without it: a
/// missing or too-open master key file, or an unreachable or sealed vault, is an error.
pub async fn open_vault(args: &DatabaseArgs) -> anyhow::Result<Arc<dyn SecretProvider>> {
    let v = &args.vault;
    let Some(addr) = &v.openbao_addr else {
        let vault = FileVault::open_or_create(&args.data_dir.join("vault"))
            .context("opening the embedded vault")?;
        return Ok(Arc::new(vault));
    };
    let auth = match (
        &v.openbao_token_file,
        &v.openbao_role_id_file,
        &v.openbao_secret_id_file,
    ) {
        (Some(token), None, None) => OpenBaoAuth::TokenFile(token.clone()),
        (None, Some(role_id_file), Some(secret_id_file)) => OpenBaoAuth::AppRole {
            role_id_file: role_id_file.clone(),
            secret_id_file: secret_id_file.clone(),
        },
        _ => anyhow::bail!(
            "OpenBao needs exactly one of --openbao-token-file or --openbao-role-id-file with --openbao-secret-id-file"
        ),
    };
    let ca = match &v.openbao_ca_file {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => Vec::new(),
    };
    let vault = OpenBao::with_ca(addr, auth, &ca).context("configuring OpenBao")?;
    // Fail at start, not at the first request: the vault must answer now.
    match vault.list("").await {
        Ok(_) | Err(procuhelp_core::vault::VaultError::NotFound(_)) => {}
        Err(e) => return Err(e).context("OpenBao is not usable"),
    }
    Ok(Arc::new(vault))
}

/// The field cipher over `db` (aws-lc-rs AES-256-GCM).
pub fn field_cipher(db: TenantDb, vault: Arc<dyn SecretProvider>) -> FieldCipher {
    FieldCipher::new(db, vault, &procuhelp_core::crypto::AwsLcAead)
}

/// `keys rotate`: for every organisation, a new KEK version (re-wrapping its data keys),
/// a new data key, re-encryption of every encrypted column in batches, and retirement of
/// the old data-key versions. Interrupting it leaves everything readable; re-running
/// finishes the job.
pub async fn rotate_all(
    owner: &sqlx::PgPool,
    vault: Arc<dyn SecretProvider>,
    batch: i64,
) -> anyhow::Result<Vec<String>> {
    // Refused for a role that RLS does not bind, before anything is touched.
    crate::database::refuse_rls_bypass(owner, "keys rotate").await?;
    // Only the schema owner may list every organisation (refused for any other role,
    // which would otherwise silently rotate nothing).
    let orgs = procuhelp_tenancy::organisation_ids(owner).await?;
    let cipher = field_cipher(TenantDb::new(owner.clone()), vault.clone());
    let audit = procuhelp_audit::PgAuditSink::new(TenantDb::new(owner.clone()), vault);
    let mut report = Vec::new();
    for org in orgs {
        let (kek_version, rewrapped) = cipher.rotate_kek(org).await?;
        let dek_version = cipher.rotate_data_key(org).await?;
        let mut moved = 0;
        for column in ENCRYPTED_COLUMNS {
            loop {
                let progress = cipher.reencrypt_batch(org, column, batch).await?;
                moved += progress.reencrypted;
                tracing::info!(%org, table = column.table, remaining = progress.remaining, "re-encryption progress");
                if progress.remaining == 0 {
                    break;
                }
            }
        }
        for old in 1..dek_version {
            // Already retired or destroyed versions are skipped.
            let _ = cipher.retire(org, old, ENCRYPTED_COLUMNS).await;
        }
        {
            use procuhelp_audit::{Action, Actor, AuditEvent, AuditSink as _, Outcome};
            audit
                .record(
                    AuditEvent::new(
                        Some(org),
                        Actor::System,
                        Action::KeysRotated,
                        Outcome::Success,
                    )
                    .at(time::OffsetDateTime::now_utc())
                    .context(serde_json::json!({
                        "kek_version": kek_version, "rewrapped": rewrapped,
                        "dek_version": dek_version, "reencrypted": moved,
                    })),
                )
                .await
                .context("recording the rotation in the audit log")?;
        }
        report.push(format!(
            "organisation {org}: KEK v{kek_version} ({rewrapped} data keys re-wrapped), data key v{dek_version}, {moved} values re-encrypted"
        ));
    }
    Ok(report)
}
