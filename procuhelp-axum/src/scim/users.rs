//! `/Users`: list and search, read, create (or revive), replace, patch, delete. SCIM sees
//! only the users it owns; a request by id for one it does not manage is the same 404 as
//! an unknown id, and is recorded.

use axum::extract::{Path, Request};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use procuhelp_audit::Action;
use procuhelp_auth::scim::ScimError;
use procuhelp_auth::scim::filter::parse_filter;
use procuhelp_auth::scim::model::{self, Projection, ResourceKind};
use procuhelp_auth::scim::patch::parse_user_patch;
use procuhelp_auth::scim::store::{self, Effects, ScimUser};
use serde_json::json;

use super::context::ScimCtx;
use super::query::{ListQuery, body, projection};
use super::reply::{ScimReply, ScimResult};

pub(super) async fn list_users(ctx: ScimCtx, uri: Uri) -> ScimResult<ScimReply> {
    let q = ListQuery::from_uri(&uri, ResourceKind::User)?;
    users_page(ctx, q).await
}

pub(super) async fn search_users(ctx: ScimCtx, request: Request) -> ScimResult<ScimReply> {
    let s = model::parse_search(&body(request).await?)?;
    users_page(ctx, ListQuery::from_search(&s, ResourceKind::User)?).await
}

async fn users_page(mut ctx: ScimCtx, q: ListQuery) -> ScimResult<ScimReply> {
    let filter = q
        .filter
        .as_deref()
        .map(|f| parse_filter(f, ResourceKind::User))
        .transpose()?;
    let (total, users) = store::list_users(ctx.tx()?, filter.as_ref(), q.page).await?;
    ctx.commit().await?;
    let items = users
        .iter()
        .map(|u| q.projection.apply(u.to_json(&ctx.base)))
        .collect();
    Ok(ScimReply::ok(model::list_response(total, q.page, items)))
}

pub(super) async fn get_user(
    mut ctx: ScimCtx,
    Path((_, id)): Path<(String, String)>,
    uri: Uri,
) -> ScimResult<ScimReply> {
    let p = projection(&uri, ResourceKind::User)?;
    let user = match store::user(ctx.tx()?, &id).await {
        Ok(user) => user,
        Err(e) => return Err(ctx.user_failure(e, "get", &id).await),
    };
    ctx.commit().await?;
    Ok(ScimReply::ok(p.apply(user.to_json(&ctx.base))))
}

pub(super) async fn create_user(
    mut ctx: ScimCtx,
    uri: Uri,
    request: Request,
) -> ScimResult<ScimReply> {
    let p = projection(&uri, ResourceKind::User)?;
    let input = model::parse_user(&body(request).await?)?;
    let now = ctx.now();
    let (user, effects) = match store::create_user(ctx.tx()?, input.clone(), now).await {
        Ok(done) => done,
        Err(e) if e.is_ownership_refusal() => {
            let target = store::create_target(ctx.tx()?, &input).await?;
            return Err(ctx
                .refuse(e, "create", target.map(|t| t.to_string()), e.detail)
                .await);
        }
        Err(e) => return Err(e.into()),
    };
    let id = user.id.to_string();
    let e = ctx
        .event(
            Action::ScimUserProvisioned,
            format!("user:{id}"),
            json!({ "revived": effects.revived, "active": user.active }),
        )
        .person(user.id, Some(&user.email), user.display_name.as_deref());
    ctx.record(e).await?;
    ctx.record_effects(Some(id.clone()), &effects).await?;
    ctx.commit().await?;
    let location = format!("{}/Users/{id}", ctx.base);
    Ok(ScimReply::created(
        p.apply(user.to_json(&ctx.base)),
        location,
    ))
}

/// Answers a replace or patch (`op`) of user `id`: a refusal is recorded as such; an
/// update is recorded with its effects, committed, and the user returned.
async fn user_updated(
    mut ctx: ScimCtx,
    p: Projection,
    op: &'static str,
    id: &str,
    done: Result<(ScimUser, Effects), ScimError>,
) -> ScimResult<ScimReply> {
    let (user, effects) = match done {
        Ok(done) => done,
        Err(e) => return Err(ctx.user_failure(e, op, id).await),
    };
    let e = ctx
        .event(
            Action::ScimUserUpdated,
            format!("user:{}", user.id),
            json!({ "op": op }),
        )
        .person(user.id, Some(&user.email), user.display_name.as_deref());
    ctx.record(e).await?;
    ctx.record_effects(Some(user.id.to_string()), &effects)
        .await?;
    ctx.commit().await?;
    Ok(ScimReply::ok(p.apply(user.to_json(&ctx.base))))
}

pub(super) async fn replace_user(
    mut ctx: ScimCtx,
    Path((_, id)): Path<(String, String)>,
    uri: Uri,
    request: Request,
) -> ScimResult<ScimReply> {
    let p = projection(&uri, ResourceKind::User)?;
    let input = model::parse_user(&body(request).await?)?;
    let now = ctx.now();
    let done = store::replace_user(ctx.tx()?, &id, input, now).await;
    user_updated(ctx, p, "replace", &id, done).await
}

pub(super) async fn patch_user(
    mut ctx: ScimCtx,
    Path((_, id)): Path<(String, String)>,
    uri: Uri,
    request: Request,
) -> ScimResult<ScimReply> {
    let p = projection(&uri, ResourceKind::User)?;
    let changes = parse_user_patch(&body(request).await?)?;
    let now = ctx.now();
    let done = store::patch_user(ctx.tx()?, &id, &changes, now).await;
    user_updated(ctx, p, "patch", &id, done).await
}

pub(super) async fn delete_user(
    mut ctx: ScimCtx,
    Path((_, id)): Path<(String, String)>,
) -> ScimResult<Response> {
    let now = ctx.now();
    let effects = match store::delete_user(ctx.tx()?, &id, now).await {
        Ok(effects) => effects,
        Err(e) => return Err(ctx.user_failure(e, "delete", &id).await),
    };
    let e = ctx.event(
        Action::ScimUserDeprovisioned,
        format!("user:{id}"),
        json!({ "op": "delete", "sessions_revoked": effects.deprovisioned.unwrap_or(0) }),
    );
    ctx.record(e).await?;
    let rest = Effects {
        deprovisioned: None,
        ..effects
    };
    ctx.record_effects(Some(id), &rest).await?;
    ctx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
