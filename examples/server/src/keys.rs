//! The secret provider and field cipher as the server uses them, and `keys rotate`.

use std::sync::Arc;

use anyhow::Context as _;
use procuhelp_audit::RotationAuditor;
use procuhelp_core::vault::{FileVault, OpenBao, OpenBaoAuth, SecretProvider};
use procuhelp_tenancy::{FieldCipher, TenantDb};

use crate::cli::DatabaseArgs;

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
/// a new data key, re-encryption of every column the composed schema declares encrypted
/// (auth's TOTP secrets, the suppliers' bank details), and retirement of the old
/// data-key versions, each organisation recorded in the audit trail (`KeysRotated`, by
/// `procuhelp_audit::RotationAuditor`).
/// Interrupting it leaves everything readable; re-running finishes the job. The work is
/// `procuhelp_tenancy::rotation`'s; this wires it.
pub async fn rotate_all(
    owner: &sqlx::PgPool,
    vault: Arc<dyn SecretProvider>,
    batch: i64,
) -> anyhow::Result<Vec<String>> {
    // Refused for a role that RLS does not bind, before anything is touched.
    crate::database::refuse_rls_bypass(owner, "keys rotate").await?;
    let cipher = field_cipher(TenantDb::new(owner.clone()), vault.clone());
    let sink = procuhelp_audit::PgAuditSink::new(TenantDb::new(owner.clone()), vault);
    let audit = RotationAuditor::new(Arc::new(sink), Arc::new(procuhelp_core::SystemClock));
    let columns = crate::database::schema().encrypted_columns();
    let done = procuhelp_tenancy::rotation::rotate_all(owner, &cipher, &columns, batch, &audit)
        .await
        .context("rotating keys")?;
    Ok(done.iter().map(ToString::to_string).collect())
}
