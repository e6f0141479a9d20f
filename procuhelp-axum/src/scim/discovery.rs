//! Discovery (`/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`), the optional
//! features we do not offer (501) and unknown paths (404). Each still needs the SCIM
//! token: nothing under `/scim/v2/{org}` answers without it.

use axum::body::Body;
use axum::extract::Path;
use procuhelp_auth::scim::model::ResourceKind;
use procuhelp_auth::scim::{ScimError, discovery};

use super::context::ScimCtx;
use super::reply::{ScimReply, ScimResult};

pub(super) async fn service_provider_config(mut ctx: ScimCtx) -> ScimResult<ScimReply> {
    ctx.commit().await?;
    Ok(ScimReply::ok(discovery::service_provider_config(&ctx.base)))
}

pub(super) async fn resource_types(mut ctx: ScimCtx) -> ScimResult<ScimReply> {
    ctx.commit().await?;
    Ok(ScimReply::ok(discovery::resource_types(&ctx.base)))
}

pub(super) async fn resource_type(
    mut ctx: ScimCtx,
    Path((_, id)): Path<(String, String)>,
) -> ScimResult<ScimReply> {
    ctx.commit().await?;
    let kind = match id.as_str() {
        "User" => ResourceKind::User,
        "Group" => ResourceKind::Group,
        _ => return Err(ScimError::not_found().into()),
    };
    Ok(ScimReply::ok(discovery::resource_type(&ctx.base, kind)))
}

pub(super) async fn schemas(mut ctx: ScimCtx) -> ScimResult<ScimReply> {
    ctx.commit().await?;
    Ok(ScimReply::ok(discovery::schemas(&ctx.base)))
}

pub(super) async fn schema(
    mut ctx: ScimCtx,
    Path((_, id)): Path<(String, String)>,
) -> ScimResult<ScimReply> {
    ctx.commit().await?;
    discovery::schema_by_id(&ctx.base, &id)
        .map(ScimReply::ok)
        .ok_or(ScimError::not_found().into())
}

pub(super) async fn not_implemented(mut ctx: ScimCtx) -> ScimResult<ScimReply> {
    ctx.commit().await?;
    Err(ScimError::not_implemented().into())
}

pub(super) async fn unknown(mut ctx: ScimCtx, _body: Body) -> ScimResult<ScimReply> {
    ctx.commit().await?;
    Err(ScimError::not_found().into())
}
