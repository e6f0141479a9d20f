//! Shared set-up: a scratch database, organisations, a file vault, a sink as the runtime role.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use procuhelp_audit::{Action, Actor, AuditEvent, Outcome, PgAuditSink};
use procuhelp_core::vault::{FileVault, SecretProvider};
use procuhelp_core::{OrgId, UserId};
use procuhelp_tenancy::TenantDb;
use procuhelp_tenancy::testkit::ScratchDb;
use sqlx::PgPool;

pub struct Fixture {
    pub scratch: ScratchDb,
    pub owner: PgPool,
    pub runtime: PgPool,
    pub db: TenantDb,
    pub vault: Arc<dyn SecretProvider>,
    pub vault_dir: std::path::PathBuf,
    pub a: OrgId,
    pub b: OrgId,
}

impl Fixture {
    pub async fn new() -> Self {
        let scratch = ScratchDb::migrated_with(
            &procuhelp_tenancy::migrate::Schema::new().with(procuhelp_audit::MIGRATIONS),
        )
        .await
        .unwrap();
        let owner = scratch.owner_pool(4).await.unwrap();
        let a = procuhelp_tenancy::create_organisation(&owner, "Org A")
            .await
            .unwrap();
        let b = procuhelp_tenancy::create_organisation(&owner, "Org B")
            .await
            .unwrap();
        let runtime = scratch.runtime_pool(8).await.unwrap();
        let vault_dir = std::env::temp_dir().join(format!("audit-vault-{}", uuid::Uuid::now_v7()));
        let vault: Arc<dyn SecretProvider> =
            Arc::new(FileVault::open_or_create(&vault_dir).unwrap());
        Self {
            scratch,
            owner,
            db: TenantDb::new(runtime.clone()),
            runtime,
            vault,
            vault_dir,
            a,
            b,
        }
    }

    pub fn sink(&self) -> PgAuditSink {
        PgAuditSink::new(self.db.clone(), self.vault.clone())
    }

    pub async fn teardown(self) {
        self.runtime.close().await;
        self.owner.close().await;
        self.scratch.drop_all().await.unwrap();
        std::fs::remove_dir_all(&self.vault_dir).ok();
    }
}

/// The verifier's side: the deployment's published keys, pinned.
pub async fn pinned(sink: &PgAuditSink) -> procuhelp_audit::Trust {
    procuhelp_audit::Trust::pinned(sink.signing_keys().await.unwrap()).unwrap()
}

pub fn event(org: OrgId, n: u64) -> AuditEvent {
    let user = UserId::new();
    AuditEvent::new(
        Some(org),
        Actor::User { id: user },
        Action::SupplierUpdated,
        Outcome::Success,
    )
    .target(format!("supplier:{n}"))
    .context(serde_json::json!({ "n": n, "fields": ["name", "vat_id"] }))
    .request_id(format!("req-{n}"))
}

pub fn personal_event(org: OrgId, user: UserId, n: u64) -> AuditEvent {
    event(org, n)
        .source(
            Some("192.0.2.44".parse().unwrap()),
            Some("Mozilla/5.0 (test)"),
        )
        .person(user, Some("ada@example.com"), Some("Ada Lovelace"))
}
