//! `/Groups`: list and search, read, create, replace, patch, delete. Membership changes
//! recompute the roles of the users they touch (recorded as `user.role_changed`).

use axum::extract::{Path, Request};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use procuhelp_audit::Action;
use procuhelp_auth::scim::filter::parse_filter;
use procuhelp_auth::scim::model::{self, ResourceKind};
use procuhelp_auth::scim::patch::parse_group_patch;
use procuhelp_auth::scim::store::{self, Effects};
use serde_json::json;

use super::context::ScimCtx;
use super::query::{ListQuery, body, projection};
use super::reply::{ScimReply, ScimResult};

pub(super) async fn list_groups(ctx: ScimCtx, uri: Uri) -> ScimResult<ScimReply> {
    let q = ListQuery::from_uri(&uri, ResourceKind::Group)?;
    groups_page(ctx, q).await
}

pub(super) async fn search_groups(ctx: ScimCtx, request: Request) -> ScimResult<ScimReply> {
    let s = model::parse_search(&body(request).await?)?;
    groups_page(ctx, ListQuery::from_search(&s, ResourceKind::Group)?).await
}

async fn groups_page(mut ctx: ScimCtx, q: ListQuery) -> ScimResult<ScimReply> {
    let filter = q
        .filter
        .as_deref()
        .map(|f| parse_filter(f, ResourceKind::Group))
        .transpose()?;
    let (total, groups) = store::list_groups(ctx.tx()?, filter.as_ref(), q.page).await?;
    ctx.commit().await?;
    let items = groups
        .iter()
        .map(|g| q.projection.apply(g.to_json(&ctx.base)))
        .collect();
    Ok(ScimReply::ok(model::list_response(total, q.page, items)))
}

pub(super) async fn get_group(
    mut ctx: ScimCtx,
    Path((_, id)): Path<(String, String)>,
    uri: Uri,
) -> ScimResult<ScimReply> {
    let p = projection(&uri, ResourceKind::Group)?;
    let group = store::group(ctx.tx()?, &id).await?;
    ctx.commit().await?;
    Ok(ScimReply::ok(p.apply(group.to_json(&ctx.base))))
}

async fn group_changed(
    ctx: &mut ScimCtx,
    action: Action,
    group: &str,
    op: &str,
    effects: &Effects,
) -> ScimResult<()> {
    let e = ctx.event(
        action,
        format!("scim_group:{group}"),
        json!({ "op": op, "members_added": effects.members_added,
                "members_removed": effects.members_removed }),
    );
    ctx.record(e).await?;
    ctx.record_effects(None, effects).await
}

pub(super) async fn create_group(
    mut ctx: ScimCtx,
    uri: Uri,
    request: Request,
) -> ScimResult<ScimReply> {
    let p = projection(&uri, ResourceKind::Group)?;
    let input = model::parse_group(&body(request).await?)?;
    let now = ctx.now();
    let (group, effects) = store::create_group(ctx.tx()?, input, now).await?;
    let id = group.id.to_string();
    group_changed(&mut ctx, Action::ScimGroupCreated, &id, "create", &effects).await?;
    ctx.commit().await?;
    let location = format!("{}/Groups/{id}", ctx.base);
    Ok(ScimReply::created(
        p.apply(group.to_json(&ctx.base)),
        location,
    ))
}

pub(super) async fn replace_group(
    mut ctx: ScimCtx,
    Path((_, id)): Path<(String, String)>,
    uri: Uri,
    request: Request,
) -> ScimResult<ScimReply> {
    let p = projection(&uri, ResourceKind::Group)?;
    let input = model::parse_group(&body(request).await?)?;
    let now = ctx.now();
    let (group, effects) = store::replace_group(ctx.tx()?, &id, input, now).await?;
    group_changed(&mut ctx, Action::ScimGroupChanged, &id, "replace", &effects).await?;
    ctx.commit().await?;
    Ok(ScimReply::ok(p.apply(group.to_json(&ctx.base))))
}

pub(super) async fn patch_group(
    mut ctx: ScimCtx,
    Path((_, id)): Path<(String, String)>,
    uri: Uri,
    request: Request,
) -> ScimResult<Response> {
    let p = projection(&uri, ResourceKind::Group)?;
    let changes = parse_group_patch(&body(request).await?)?;
    let now = ctx.now();
    let (group, effects) = store::patch_group(ctx.tx()?, &id, &changes, now).await?;
    group_changed(&mut ctx, Action::ScimGroupChanged, &id, "patch", &effects).await?;
    ctx.commit().await?;
    Ok(ScimReply::ok(p.apply(group.to_json(&ctx.base))).into_response())
}

pub(super) async fn delete_group(
    mut ctx: ScimCtx,
    Path((_, id)): Path<(String, String)>,
) -> ScimResult<Response> {
    let now = ctx.now();
    let effects = store::delete_group(ctx.tx()?, &id, now).await?;
    group_changed(&mut ctx, Action::ScimGroupDeleted, &id, "delete", &effects).await?;
    ctx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
