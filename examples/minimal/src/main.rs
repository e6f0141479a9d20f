//! `cargo run -p procuhelp-minimal`: migrates, then serves plain HTTP on
//! `127.0.0.1:3000` until Ctrl-C (put TLS in front of it outside a laptop).
//!
//! Environment: `DATABASE_URL`, the schema owner (default
//! `postgres://postgres@127.0.0.1:5432/procuhelp_minimal`; create the database first);
//! `RUNTIME_DATABASE_URL`, the runtime role the app serves as (default: the owner's URL
//! with the user `procuhelp_app`, which the migration creates); `DATA_DIR`, where the
//! vault and the checkpoint signing key live (default `./minimal-data`).

use std::net::SocketAddr;
use std::path::PathBuf;

use sqlx::postgres::PgConnectOptions;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let owner_url = env(
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/procuhelp_minimal",
    );
    let role = procuhelp::tenancy::RuntimeRole::default();
    let owner = sqlx::PgPool::connect(&owner_url).await?;
    procuhelp_minimal::schema().migrate(&owner, &role).await?;
    owner.close().await;
    let runtime: PgConnectOptions = match std::env::var("RUNTIME_DATABASE_URL") {
        Ok(url) => url.parse()?,
        Err(_) => owner_url.parse::<PgConnectOptions>()?.username(role.name()),
    };
    let data = PathBuf::from(env("DATA_DIR", "minimal-data"));
    let (app, pipeline) = procuhelp_minimal::app(&runtime, &data)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    eprintln!("serving http://127.0.0.1:3000/ (Ctrl-C stops)");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    // Records the open refusal counts and signs a checkpoint of every chain.
    pipeline.shutdown().await;
    Ok(())
}
