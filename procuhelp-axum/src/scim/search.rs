//! `POST /.search` at the root: Users, then Groups, paged as one list. A filter applies
//! to the resource types that have its attribute (`externalId`: both).

use axum::extract::Request;
use procuhelp_auth::scim::filter::parse_filter;
use procuhelp_auth::scim::model::{self, Page, ResourceKind};
use procuhelp_auth::scim::store;

use super::context::ScimCtx;
use super::query::{ListQuery, body};
use super::reply::{ScimReply, ScimResult};

pub(super) async fn search_all(mut ctx: ScimCtx, request: Request) -> ScimResult<ScimReply> {
    let s = model::parse_search(&body(request).await?)?;
    let users_q = ListQuery::from_search(&s, ResourceKind::User)?;
    let groups_q = ListQuery::from_search(&s, ResourceKind::Group)?;
    let page = users_q.page;
    let (user_filter, group_filter) = match s.filter.as_deref() {
        None => (None, None),
        Some(f) => {
            let u = parse_filter(f, ResourceKind::User);
            let g = parse_filter(f, ResourceKind::Group);
            if let (Err(e), Err(_)) = (&u, &g) {
                return Err((*e).into());
            }
            (Some(u.ok()), Some(g.ok()))
        }
    };
    let mut items = Vec::new();
    let mut total = 0;
    // `Some(None)`: a filter this resource type cannot match.
    if !matches!(user_filter, Some(None)) {
        let (t, users) = store::list_users(ctx.tx()?, user_filter.flatten().as_ref(), page).await?;
        total += t;
        items.extend(
            users
                .iter()
                .map(|u| users_q.projection.apply(u.to_json(&ctx.base))),
        );
    }
    if !matches!(group_filter, Some(None)) {
        let users_total = total;
        let skip = (page.offset() - users_total).max(0);
        let left = page
            .count
            .saturating_sub(u32::try_from(items.len()).unwrap_or(u32::MAX));
        let group_page = Page {
            start_index: u32::try_from(skip + 1).unwrap_or(u32::MAX),
            count: left,
        };
        let (t, groups) =
            store::list_groups(ctx.tx()?, group_filter.flatten().as_ref(), group_page).await?;
        total += t;
        items.extend(
            groups
                .iter()
                .map(|g| groups_q.projection.apply(g.to_json(&ctx.base))),
        );
    }
    ctx.commit().await?;
    Ok(ScimReply::ok(model::list_response(total, page, items)))
}
