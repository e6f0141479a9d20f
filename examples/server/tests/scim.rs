//! SCIM 2.0 provisioning against the real database: CRUD, filters, paging, Entra-shaped
//! PATCH bodies, deprovisioning (sessions end at once), group → role mapping, token
//! isolation, hostile input, audit events — and the `scim2` conformance checker
//! (PyPI scim2-cli) against the server on a loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{PASSWORD, Reply, World, email, world};
use http_body_util::BodyExt as _;
use procuhelp_audit::Action;
use procuhelp_auth::Role;
use procuhelp_auth::password::PasswordHasher;
use procuhelp_auth::scim::token;
use procuhelp_axum::scim::{PublicOrigin, SCIM_ENDPOINTS};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

async fn fresh() -> World {
    world(PasswordHasher::for_tests()).await
}

/// Issues a SCIM token for organisation `org` (as an admin would, through the library).
async fn scim_token(w: &World, org: usize, days: i64) -> String {
    let mut tx = w.state.sdk.tenants().begin(w.orgs[org]).await.unwrap();
    let (_, secret) = token::issue(
        &mut tx,
        "entra",
        time::Duration::days(days),
        None,
        w.state.sdk.now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    secret.expose().to_owned()
}

fn base(w: &World, org: usize) -> String {
    format!("/scim/v2/{}", w.orgs[org])
}

async fn scim(
    w: &World,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/scim+json")
            .body(Body::from(b.to_owned()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let resp = w.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn assert_scim_error(r: &Reply, status: StatusCode, scim_type: Option<&str>) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["schemas"][0], ERROR, "{}", r.text);
    assert_eq!(r.body["status"], status.as_u16().to_string());
    assert_eq!(r.body["scimType"].as_str(), scim_type, "{}", r.text);
    assert_eq!(
        r.headers.get(header::CONTENT_TYPE).unwrap(),
        "application/scim+json"
    );
}

fn user_body(user_name: &str, external_id: &str) -> String {
    json!({
        "schemas": [USER],
        "userName": user_name,
        "externalId": external_id,
        "active": true,
        "displayName": "Ada Lovelace",
        "name": { "givenName": "Ada", "familyName": "Lovelace" },
        "emails": [{ "value": user_name, "type": "work", "primary": true }],
    })
    .to_string()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn patch(ops: Value) -> String {
    json!({ "schemas": [PATCH], "Operations": ops }).to_string()
}

async fn user_row(w: &World, org: usize, id: &str) -> (String, String, bool) {
    let mut tx = w.state.sdk.tenants().begin(w.orgs[org]).await.unwrap();
    let row: (String, String, bool) = sqlx::query_as(
        "SELECT role, status, deprovisioned_by_scim FROM app.users WHERE id = $1::uuid",
    )
    .bind(id)
    .fetch_one(tx.conn())
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    row
}

async fn total(w: &World, org: usize, token: &str, kind: &str) -> i64 {
    let r = scim(
        w,
        Method::GET,
        &format!("{}/{kind}?count=0", base(w, org)),
        Some(token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["totalResults"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_groups_crud_filter_paging_projection_and_discovery() {
    let w = fresh().await;
    let t = scim_token(&w, 0, 30).await;
    let b = base(&w, 0);
    let seeded = total(&w, 0, &t, "Users").await;
    assert_eq!(seeded, 0, "the seeded local users are not SCIM's");

    let r = scim(
        &w,
        Method::POST,
        &format!("{b}/Users"),
        Some(&t),
        Some(&user_body("Ada@Contoso.com", "ext-ada")),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.headers.get(header::CONTENT_TYPE).unwrap(),
        "application/scim+json"
    );
    let ada = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["schemas"][0], USER);
    assert_eq!(r.body["userName"], "Ada@Contoso.com");
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body["name"]["givenName"], "Ada");
    assert_eq!(r.body["meta"]["resourceType"], "User");
    let location = r.body["meta"]["location"].as_str().unwrap();
    assert!(
        location.ends_with(&format!("{b}/Users/{ada}")),
        "{location}"
    );
    assert_eq!(
        r.headers.get(header::LOCATION).unwrap().to_str().unwrap(),
        location
    );
    assert_eq!(
        user_row(&w, 0, &ada).await,
        ("read_only".into(), "active".into(), false)
    );

    // Uniqueness: userName (case-insensitive) and externalId.
    for body in [
        user_body("ADA@contoso.com", "ext-other"),
        user_body("someone@contoso.com", "ext-ada"),
        user_body("admin@org0.test", "x"),
    ] {
        let r = scim(
            &w,
            Method::POST,
            &format!("{b}/Users"),
            Some(&t),
            Some(&body),
        )
        .await;
        assert_scim_error(&r, StatusCode::CONFLICT, Some("uniqueness"));
    }

    let r = scim(&w, Method::GET, &format!("{b}/Users/{ada}"), Some(&t), None).await;
    assert_eq!(
        (r.status, r.body["userName"].as_str()),
        (StatusCode::OK, Some("Ada@Contoso.com"))
    );
    for i in 1..=4 {
        let r = scim(
            &w,
            Method::POST,
            &format!("{b}/Users"),
            Some(&t),
            Some(&user_body(
                &format!("user{i}@contoso.com"),
                &format!("ext-{i}"),
            )),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }

    // Filters.
    let list = |filter: &str| format!("{b}/Users?filter={}", enc(filter));
    let r = scim(
        &w,
        Method::GET,
        &list(r#"userName eq "ada@CONTOSO.com""#),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.text);
    assert_eq!(r.body["Resources"][0]["id"], ada.as_str());
    assert_eq!(
        r.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );
    let r = scim(
        &w,
        Method::GET,
        &list(r#"externalId eq "ext-ada""#),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(r.body["totalResults"], 1);
    let r = scim(
        &w,
        Method::GET,
        &list(r#"externalId eq "EXT-ADA""#),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(r.body["totalResults"], 0, "externalId is case-exact");
    let r = scim(
        &w,
        Method::GET,
        &list(r#"userName eq "nobody@contoso.com""#),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(
        (
            r.body["totalResults"].as_i64(),
            r.body["Resources"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );

    // Paging: 1-based, bounded.
    let r = scim(
        &w,
        Method::GET,
        &format!("{b}/Users?startIndex=2&count=3"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(
        (
            r.body["totalResults"].as_i64(),
            r.body["startIndex"].as_i64(),
            r.body["itemsPerPage"].as_i64()
        ),
        (Some(5), Some(2), Some(3))
    );
    let all = scim(
        &w,
        Method::GET,
        &format!("{b}/Users?count=100000"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(all.body["itemsPerPage"], 5);
    assert_eq!(r.body["Resources"][0]["id"], all.body["Resources"][1]["id"]);
    let r = scim(
        &w,
        Method::GET,
        &format!("{b}/Users?startIndex=5&count=5"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(r.body["itemsPerPage"], 1);
    let r = scim(
        &w,
        Method::GET,
        &format!("{b}/Users?startIndex=-4&count=-1"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(
        (
            r.body["startIndex"].as_i64(),
            r.body["itemsPerPage"].as_i64()
        ),
        (Some(1), Some(0))
    );

    // attributes / excludedAttributes.
    let r = scim(
        &w,
        Method::GET,
        &format!("{b}/Users/{ada}?excludedAttributes=emails,name"),
        Some(&t),
        None,
    )
    .await;
    assert!(
        r.body.get("emails").is_none()
            && r.body.get("name").is_none()
            && r.body.get("userName").is_some()
    );
    let r = scim(
        &w,
        Method::GET,
        &format!("{b}/Users/{ada}?attributes=userName"),
        Some(&t),
        None,
    )
    .await;
    assert!(
        r.body.get("emails").is_none()
            && r.body["userName"] == "Ada@Contoso.com"
            && r.body["id"] == ada.as_str()
    );

    // PUT replaces: what is not sent is cleared.
    let put = json!({ "schemas": [USER], "userName": "ada@contoso.com", "externalId": "ext-ada",
                      "displayName": "Countess Lovelace", "active": true })
    .to_string();
    let r = scim(
        &w,
        Method::PUT,
        &format!("{b}/Users/{ada}"),
        Some(&t),
        Some(&put),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["displayName"], "Countess Lovelace");
    assert!(r.body.get("name").is_none() && r.body.get("emails").is_none());

    // Groups.
    let u1 = all.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["userName"] == "user1@contoso.com")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let g = json!({ "schemas": [GROUP], "displayName": "Engineering", "externalId": "g-eng",
                    "members": [{ "value": ada }, { "value": u1 }] })
    .to_string();
    let r = scim(&w, Method::POST, &format!("{b}/Groups"), Some(&t), Some(&g)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let eng = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["members"].as_array().unwrap().len(), 2);
    let r = scim(
        &w,
        Method::POST,
        &format!("{b}/Groups"),
        Some(&t),
        Some(&json!({ "schemas": [GROUP], "displayName": "ENGINEERING" }).to_string()),
    )
    .await;
    assert_scim_error(&r, StatusCode::CONFLICT, Some("uniqueness"));
    let r = scim(
        &w,
        Method::GET,
        &format!(
            "{b}/Groups?filter={}&excludedAttributes=members",
            enc(r#"displayName eq "engineering""#)
        ),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.text);
    assert!(r.body["Resources"][0].get("members").is_none());
    let r = scim(&w, Method::GET, &format!("{b}/Users/{ada}"), Some(&t), None).await;
    assert_eq!(r.body["groups"][0]["value"], eng.as_str());
    assert_eq!(r.body["groups"][0]["display"], "Engineering");
    let put = json!({ "schemas": [GROUP], "displayName": "Engineering EU", "members": [{ "value": u1 }] }).to_string();
    let r = scim(
        &w,
        Method::PUT,
        &format!("{b}/Groups/{eng}"),
        Some(&t),
        Some(&put),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (
            r.body["displayName"].as_str(),
            r.body["members"].as_array().unwrap().len()
        ),
        (Some("Engineering EU"), 1)
    );
    assert!(r.body.get("externalId").is_none());

    // DELETE: 204, then 404; the user row stays, disabled and marked.
    let r = scim(
        &w,
        Method::DELETE,
        &format!("{b}/Users/{u1}"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = scim(&w, Method::GET, &format!("{b}/Users/{u1}"), Some(&t), None).await;
    assert_scim_error(&r, StatusCode::NOT_FOUND, None);
    assert_eq!(
        user_row(&w, 0, &u1).await,
        ("read_only".into(), "disabled".into(), true)
    );
    let r = scim(
        &w,
        Method::GET,
        &format!("{b}/Groups/{eng}"),
        Some(&t),
        None,
    )
    .await;
    assert!(
        r.body.get("members").is_none(),
        "a deleted user leaves every group: {}",
        r.text
    );
    assert_eq!(total(&w, 0, &t, "Users").await, 4);
    // SCIM itself may re-create a deleted user: the same row is revived.
    let r = scim(
        &w,
        Method::POST,
        &format!("{b}/Users"),
        Some(&t),
        Some(&user_body("user1@contoso.com", "ext-1")),
    )
    .await;
    assert_eq!(
        (r.status, r.body["id"].as_str()),
        (StatusCode::CREATED, Some(u1.as_str())),
        "{}",
        r.text
    );
    assert_eq!(
        user_row(&w, 0, &u1).await,
        ("read_only".into(), "active".into(), false)
    );
    let r = scim(
        &w,
        Method::DELETE,
        &format!("{b}/Groups/{eng}"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = scim(
        &w,
        Method::GET,
        &format!("{b}/Groups/{eng}"),
        Some(&t),
        None,
    )
    .await;
    assert_scim_error(&r, StatusCode::NOT_FOUND, None);

    // Root search: users then groups.
    let r = scim(
        &w,
        Method::POST,
        &format!("{b}/.search"),
        Some(&t),
        Some(
            &json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                      "filter": "externalId eq \"ext-ada\"" })
            .to_string(),
        ),
    )
    .await;
    assert_eq!(
        (r.status, r.body["totalResults"].as_i64()),
        (StatusCode::OK, Some(1)),
        "{}",
        r.text
    );

    // Discovery.
    let r = scim(
        &w,
        Method::GET,
        &format!("{b}/ServiceProviderConfig"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(
        (
            r.body["patch"]["supported"].as_bool(),
            r.body["bulk"]["supported"].as_bool(),
            r.body["sort"]["supported"].as_bool()
        ),
        (Some(true), Some(false), Some(false))
    );
    let r = scim(
        &w,
        Method::GET,
        &format!("{b}/ResourceTypes"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(r.body["totalResults"], 2);
    let r = scim(
        &w,
        Method::GET,
        &format!("{b}/Schemas/{USER}"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(r.body["id"], USER);
    for path in ["/Bulk", "/Me"] {
        let m = if path == "/Me" {
            Method::GET
        } else {
            Method::POST
        };
        let r = scim(&w, m, &format!("{b}{path}"), Some(&t), Some("{}")).await;
        assert_scim_error(&r, StatusCode::NOT_IMPLEMENTED, None);
    }

    // The request id travels into the audit event.
    let req = Request::builder()
        .method(Method::PATCH)
        .uri(format!("{b}/Users/{ada}"))
        .header(header::AUTHORIZATION, format!("Bearer {t}"))
        .header("x-request-id", "entra-req-42")
        .body(Body::from(patch(
            json!([{ "op": "Replace", "path": "displayName", "value": "Ada" }]),
        )))
        .unwrap();
    assert_eq!(
        w.app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );
    let events = w.audit.events();
    let e = events.last().unwrap();
    assert_eq!(
        (e.action, e.request_id.as_deref()),
        (Action::ScimUserUpdated, Some("entra-req-42"))
    );
    assert_eq!(e.target.as_deref(), Some(format!("user:{ada}").as_str()));

    // Every change was audited, with the SCIM token as the actor and "via": "scim".
    assert_eq!(w.count(Action::ScimUserProvisioned), 6);
    assert_eq!(w.count(Action::ScimUserUpdated), 2);
    assert_eq!(w.count(Action::ScimUserDeprovisioned), 1);
    assert_eq!(w.count(Action::ScimGroupCreated), 1);
    assert_eq!(w.count(Action::ScimGroupChanged), 1);
    assert_eq!(w.count(Action::ScimGroupDeleted), 1);
    let events = w.audit.events();
    let e = events
        .iter()
        .find(|e| e.action == Action::ScimUserDeprovisioned)
        .unwrap();
    assert_eq!(e.actor.kind(), "service_account");
    assert_eq!(e.org, Some(w.orgs[0]));
    assert_eq!(e.context["via"], "scim");
    w.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_patch_bodies_and_deprovisioning_end_sessions_at_once() {
    let w = fresh().await;
    let t = scim_token(&w, 0, 30).await;
    let b = base(&w, 0);
    let who = email(0, Role::Requester);
    let session = w.login(0, Role::Requester).await;
    assert_eq!(
        w.request(Method::GET, "/api/session", Some(&session), None)
            .await
            .status,
        StatusCode::OK
    );

    // SCIM never adopts a local user: an admin hands the requester over explicitly.
    let admin = w.login(0, Role::Admin).await;
    let handover = |id: String| format!("/api/users/{id}/scim-handover");
    let r = w
        .request(
            Method::POST,
            &handover(w.users[&(0, Role::Requester)].to_string()),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Entra first looks the user up by userName, then PATCHes the match.
    let r = scim(
        &w,
        Method::GET,
        &format!(
            "{b}/Users?filter={}",
            enc(&format!(r#"userName eq "{}""#, who.to_uppercase()))
        ),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.text);
    let id = r.body["Resources"][0]["id"].as_str().unwrap().to_owned();
    let url = format!("{b}/Users/{id}");

    // Real Entra bodies.
    let r = scim(&w, Method::PATCH, &url, Some(&t), Some(&patch(json!([
        { "op": "Replace", "path": "externalId", "value": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef" },
        { "op": "Add", "path": "emails[type eq \"work\"].value", "value": who },
        { "op": "Replace", "path": "name.givenName", "value": "Rhea" },
    ])))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["externalId"], "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef");
    assert_eq!(
        r.body["emails"][0],
        json!({ "value": who, "type": "work", "primary": true })
    );
    let r = scim(&w, Method::PATCH, &url, Some(&t), Some(&patch(json!([
        { "op": "Add", "value": { "displayName": "Rhea Quester", "name": { "familyName": "Quester" }, "active": "True" } },
    ])))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (
            r.body["displayName"].as_str(),
            r.body["name"]["familyName"].as_str()
        ),
        (Some("Rhea Quester"), Some("Quester"))
    );
    let r = scim(
        &w,
        Method::PATCH,
        &url,
        Some(&t),
        Some(&patch(
            json!([{ "op": "remove", "path": "name.givenName" }]),
        )),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["name"].get("givenName").is_none());
    // Attribute changes without a privilege change keep the session.
    assert_eq!(
        w.request(Method::GET, "/api/session", Some(&session), None)
            .await
            .status,
        StatusCode::OK
    );

    // A user an admin disabled stays exactly that: an attribute PATCH does not turn it
    // into a SCIM deprovisioning, and a PUT without `active` does not re-enable it.
    let approver = w.users[&(0, Role::Approver)].to_string();
    let r = w
        .request(
            Method::POST,
            &handover(approver.clone()),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = w
        .request(
            Method::POST,
            &format!("/api/users/{approver}/disable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = scim(
        &w,
        Method::PATCH,
        &format!("{b}/Users/{approver}"),
        Some(&t),
        Some(&patch(
            json!([{ "op": "Replace", "path": "displayName", "value": "Appro" }]),
        )),
    )
    .await;
    assert_eq!(
        (r.status, r.body["active"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{}",
        r.text
    );
    let put = json!({ "schemas": [USER], "userName": email(0, Role::Approver) }).to_string();
    let r = scim(
        &w,
        Method::PUT,
        &format!("{b}/Users/{approver}"),
        Some(&t),
        Some(&put),
    )
    .await;
    assert_eq!(
        (r.status, r.body["active"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{}",
        r.text
    );
    assert_eq!(
        user_row(&w, 0, &approver).await,
        ("approver".into(), "disabled".into(), false)
    );

    // Deprovisioning as Entra sends it: the very next request of the session is refused,
    // and so is the password.
    let r = scim(
        &w,
        Method::PATCH,
        &url,
        Some(&t),
        Some(&patch(json!([
            { "op": "Replace", "path": "active", "value": "False" },
        ]))),
    )
    .await;
    assert_eq!(
        (r.status, r.body["active"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{}",
        r.text
    );
    assert_eq!(
        w.request(Method::GET, "/api/session", Some(&session), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        w.try_login(0, &who, PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(user_row(&w, 0, &id).await.1, "disabled");
    assert!(user_row(&w, 0, &id).await.2, "marked deprovisioned_by_scim");
    let mut tx = w.state.sdk.tenants().begin(w.orgs[0]).await.unwrap();
    let addr = procuhelp_auth::directory::Email::parse(&who).unwrap();
    assert!(
        procuhelp_auth::scim::is_deprovisioned_by_scim(&mut tx, &addr)
            .await
            .unwrap()
    );
    tx.rollback().await.unwrap();
    let e = w
        .audit
        .events()
        .into_iter()
        .find(|e| e.action == Action::ScimUserDeprovisioned)
        .unwrap();
    assert_eq!(e.context["sessions_revoked"], 1);

    // Only SCIM re-activates: an admin cannot.
    let r = w
        .request(
            Method::POST,
            &format!("/api/users/{id}/enable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(
        w.try_login(0, &who, PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = scim(
        &w,
        Method::PATCH,
        &url,
        Some(&t),
        Some(&patch(json!([
            { "op": "replace", "value": { "active": true } },
        ]))),
    )
    .await;
    assert_eq!(
        (r.status, r.body["active"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{}",
        r.text
    );
    assert_eq!(w.try_login(0, &who, PASSWORD).await.status, StatusCode::OK);
    assert_eq!(
        user_row(&w, 0, &id).await,
        ("requester".into(), "active".into(), false)
    );

    assert_eq!(w.count(Action::ScimUserDeprovisioned), 1);
    assert_eq!(w.count(Action::ScimUserReactivated), 1);
    assert_eq!(w.count(Action::ScimUserUpdated), 7);
    w.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_membership_sets_roles_through_the_mapping() {
    let w = fresh().await;
    let t = scim_token(&w, 0, 30).await;
    let b = base(&w, 0);
    let admin = w.login(0, Role::Admin).await;
    let settings =
        |mappings: Value| json!({ "role_mappings": mappings, "sso_jit_provisioning": false });
    let r = w
        .request(
            Method::PUT,
            "/api/scim/settings",
            Some(&admin),
            Some(settings(
                json!([{ "group": "approvers", "role": "approver" }]),
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    let r = scim(
        &w,
        Method::POST,
        &format!("{b}/Users"),
        Some(&t),
        Some(&user_body("bob@contoso.com", "ext-bob")),
    )
    .await;
    let bob = r.body["id"].as_str().unwrap().to_owned();
    // The seeded read-only user, handed over to SCIM by the admin, with a live session.
    let ro = w.users[&(0, Role::ReadOnly)].to_string();
    let ro_session = w.login(0, Role::ReadOnly).await;
    let r = w
        .request(
            Method::POST,
            &format!("/api/users/{ro}/scim-handover"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = scim(
        &w,
        Method::PATCH,
        &format!("{b}/Users/{ro}"),
        Some(&t),
        Some(&patch(
            json!([{ "op": "Add", "path": "externalId", "value": "ext-ro" }]),
        )),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let r = scim(
        &w,
        Method::POST,
        &format!("{b}/Groups"),
        Some(&t),
        Some(&json!({ "schemas": [GROUP], "displayName": "Approvers" }).to_string()),
    )
    .await;
    let approvers = r.body["id"].as_str().unwrap().to_owned();
    let r = scim(
        &w,
        Method::POST,
        &format!("{b}/Groups"),
        Some(&t),
        Some(&json!({ "schemas": [GROUP], "displayName": "Admins" }).to_string()),
    )
    .await;
    let admins = r.body["id"].as_str().unwrap().to_owned();
    let g = |id: &str| format!("{b}/Groups/{id}");

    // Entra's add-member body: the mapped role (by displayName, case-insensitive).
    let r = scim(
        &w,
        Method::PATCH,
        &g(&approvers),
        Some(&t),
        Some(&patch(json!([
            { "op": "Add", "path": "members", "value": [{ "value": bob }, { "value": ro }] },
        ]))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(user_row(&w, 0, &bob).await.0, "approver");
    assert_eq!(user_row(&w, 0, &ro).await.0, "approver");
    assert_eq!(
        w.request(Method::GET, "/api/session", Some(&ro_session), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "a role change ends the user's sessions"
    );

    // Map by group id; the most privileged mapped role wins.
    let r = w
        .request(
            Method::PUT,
            "/api/scim/settings",
            Some(&admin),
            Some(settings(json!([
                { "group": "Approvers", "role": "approver" }, { "group": admins, "role": "admin" },
            ]))),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = scim(
        &w,
        Method::PATCH,
        &g(&admins),
        Some(&t),
        Some(&patch(json!([
            { "op": "add", "value": { "members": [{ "value": bob }] } },
        ]))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(user_row(&w, 0, &bob).await.0, "admin");

    // Entra's remove-member body (the member in `value`); the RFC filter form.
    let r = scim(
        &w,
        Method::PATCH,
        &g(&admins),
        Some(&t),
        Some(&patch(json!([
            { "op": "Remove", "path": "members", "value": [{ "value": bob }] },
        ]))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(user_row(&w, 0, &bob).await.0, "approver");
    let r = scim(
        &w,
        Method::PATCH,
        &g(&approvers),
        Some(&t),
        Some(&patch(json!([
            { "op": "remove", "path": format!("members[value eq \"{bob}\"]") },
        ]))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        user_row(&w, 0, &bob).await.0,
        "read_only",
        "no mapped group: least privileged"
    );

    // Never remove every member by mistake: a removal that names nobody is refused.
    for ops in [
        json!([{ "op": "Remove", "path": "members", "value": null }]),
        json!([{ "op": "Remove", "path": "members", "value": [] }]),
    ] {
        let r = scim(
            &w,
            Method::PATCH,
            &g(&approvers),
            Some(&t),
            Some(&patch(ops)),
        )
        .await;
        assert_scim_error(&r, StatusCode::BAD_REQUEST, Some("noTarget"));
    }
    let r = scim(&w, Method::GET, &g(&approvers), Some(&t), None).await;
    assert_eq!(r.body["members"].as_array().unwrap().len(), 1);

    // Renaming a group away from its mapping, then deleting it.
    let r = scim(
        &w,
        Method::PATCH,
        &g(&approvers),
        Some(&t),
        Some(&patch(json!([
            { "op": "Replace", "path": "displayName", "value": "Former approvers" },
        ]))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(user_row(&w, 0, &ro).await.0, "read_only");

    // Only admins map roles, and never to a role above their own (matrix in auth.rs).
    let approver = w.login(0, Role::Approver).await;
    let r = w
        .request(
            Method::PUT,
            "/api/scim/settings",
            Some(&approver),
            Some(settings(json!([]))),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w
        .request(Method::GET, "/api/scim/settings", Some(&admin), None)
        .await;
    assert_eq!(
        r.body["role_mappings"].as_array().unwrap().len(),
        2,
        "{:?}",
        r.body
    );
    assert_eq!(r.body["sso_jit_provisioning"], false, "off by default");
    let mappings = r.body["role_mappings"].clone();
    let r = w
        .request(
            Method::PUT,
            "/api/scim/settings",
            Some(&admin),
            Some(json!({ "role_mappings": mappings, "sso_jit_provisioning": true })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let mut tx = w.state.sdk.tenants().begin(w.orgs[0]).await.unwrap();
    assert!(
        procuhelp_auth::scim::sso_jit_provisioning(&mut tx)
            .await
            .unwrap()
    );
    tx.rollback().await.unwrap();
    let r = w
        .request(
            Method::PUT,
            "/api/scim/settings",
            Some(&admin),
            Some(json!({ "role_mappings": [{ "group": "x", "role": "root" }] })),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown role refused"
    );

    assert!(w.count(Action::UserRoleChanged) >= 5);
    assert_eq!(w.count(Action::ScimSettingsChanged), 3);
    assert_eq!(w.count(Action::ScimGroupChanged), 5);
    w.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_per_organisation_and_every_refusal_looks_the_same() {
    let w = fresh().await;
    let t0 = scim_token(&w, 0, 30).await;
    let t1 = scim_token(&w, 1, 30).await;
    let b0 = base(&w, 0);
    let admin = w.login(0, Role::Admin).await;
    let before = total(&w, 0, &t0, "Users").await;
    let body = user_body("mallory@contoso.com", "ext-m");
    let unknown_org = format!("/scim/v2/{}/Users", uuid::Uuid::now_v7());
    let cookie = format!("{}={}", procuhelp_auth::session::COOKIE_NAME, admin.cookie);
    let cases: Vec<(String, Vec<(header::HeaderName, String)>)> = vec![
        (format!("{b0}/Users"), vec![]),
        (
            format!("{b0}/Users"),
            vec![(header::AUTHORIZATION, "Bearer not-a-token".into())],
        ),
        (
            format!("{b0}/Users"),
            vec![(header::AUTHORIZATION, format!("Bearer {t1}"))],
        ),
        (
            format!("{b0}/Users"),
            vec![(header::AUTHORIZATION, format!("Basic {t0}"))],
        ),
        (
            format!("{b0}/Users"),
            vec![
                (header::COOKIE, cookie.clone()),
                ("x-csrf-token".parse().unwrap(), admin.csrf.clone()),
            ],
        ),
        (
            format!("{b0}/Users"),
            vec![(header::AUTHORIZATION, format!("Bearer {}", admin.cookie))],
        ),
        (
            unknown_org.clone(),
            vec![(header::AUTHORIZATION, format!("Bearer {t0}"))],
        ),
        (
            "/scim/v2/not-an-org/Users".into(),
            vec![(header::AUTHORIZATION, format!("Bearer {t0}"))],
        ),
    ];
    let mut first: Option<String> = None;
    for (path, headers) in &cases {
        for method in [Method::GET, Method::POST] {
            let mut req = Request::builder().method(method.clone()).uri(path.as_str());
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let resp = w
                .app
                .clone()
                .oneshot(
                    req.header(header::CONTENT_TYPE, "application/scim+json")
                        .body(Body::from(body.clone()))
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(
                resp.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {headers:?}"
            );
            assert_eq!(
                resp.headers().get(header::WWW_AUTHENTICATE).unwrap(),
                "Bearer realm=\"scim\""
            );
            let text =
                String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes())
                    .into_owned();
            assert!(text.contains(ERROR), "{text}");
            match &first {
                None => first = Some(text),
                Some(f) => assert_eq!(f, &text, "{path}: the refusal must not differ"),
            }
        }
    }
    assert_eq!(
        total(&w, 0, &t0, "Users").await,
        before,
        "nothing was created"
    );
    // Another organisation's token cannot change or delete this organisation's users,
    // not even through its own tenant URL.
    let victim = w.users[&(0, Role::Requester)];
    for url in [
        format!("{b0}/Users/{victim}"),
        format!("{}/Users/{victim}", base(&w, 1)),
    ] {
        let r = scim(
            &w,
            Method::PATCH,
            &url,
            Some(&t1),
            Some(&patch(
                json!([{ "op": "Replace", "path": "active", "value": "False" }]),
            )),
        )
        .await;
        assert!(
            matches!(r.status, StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND),
            "{url}: {}",
            r.text
        );
        let r = scim(&w, Method::DELETE, &url, Some(&t1), None).await;
        assert!(
            matches!(r.status, StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND),
            "{url}: {}",
            r.text
        );
    }
    assert_eq!(
        user_row(&w, 0, &victim.to_string()).await,
        ("requester".into(), "active".into(), false)
    );
    assert_eq!(total(&w, 1, &t1, "Users").await, 0);
    assert_eq!(w.count(Action::ScimUserProvisioned), 0);
    // Every SCIM endpoint refuses without a token.
    for (method, path) in SCIM_ENDPOINTS {
        let path = format!(
            "{b0}{}",
            path.replace("{id}", &uuid::Uuid::now_v7().to_string())
        );
        let r = scim(&w, method.parse().unwrap(), &path, None, Some("{}")).await;
        assert_scim_error(&r, StatusCode::UNAUTHORIZED, None);
    }

    // Issued through the admin API: shown once, listed without secret, revocable.
    let r = w
        .request(
            Method::POST,
            "/api/scim/tokens",
            Some(&admin),
            Some(json!({ "name": "Entra", "days": 1 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let secret = r.body["token"].as_str().unwrap().to_owned();
    let token_id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["tenant_url"], b0.as_str());
    assert_eq!(total(&w, 0, &secret, "Users").await, before);
    let r = w
        .request(Method::GET, "/api/scim/tokens", Some(&admin), None)
        .await;
    assert!(!r.text.contains(&secret) && r.text.contains(&token_id));
    // Expiry: one day later it is refused.
    w.clock
        .advance(time::Duration::days(1) + time::Duration::seconds(1));
    let r = scim(&w, Method::GET, &format!("{b0}/Users"), Some(&secret), None).await;
    assert_scim_error(&r, StatusCode::UNAUTHORIZED, None);
    let admin = w.login(0, Role::Admin).await;
    let r = w
        .request(
            Method::POST,
            &format!("/api/scim/tokens/{token_id}/revoke"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Revocation of t0 (issued through the library).
    let mut tx = w.state.sdk.tenants().begin(w.orgs[0]).await.unwrap();
    let ids: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM app.scim_tokens WHERE revoked_at IS NULL")
            .fetch_all(tx.conn())
            .await
            .unwrap();
    tx.rollback().await.unwrap();
    for id in ids {
        let r = w
            .request(
                Method::POST,
                &format!("/api/scim/tokens/{id}/revoke"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = scim(&w, Method::GET, &format!("{b0}/Users"), Some(&t0), None).await;
    assert_scim_error(&r, StatusCode::UNAUTHORIZED, None);
    assert_eq!(w.count(Action::ScimTokenIssued), 1);
    assert_eq!(w.count(Action::ScimTokenRevoked), 2);
    w.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_refused_with_scim_errors_and_changes_nothing() {
    let w = fresh().await;
    let t = scim_token(&w, 0, 30).await;
    let b = base(&w, 0);
    let r = scim(
        &w,
        Method::POST,
        &format!("{b}/Users"),
        Some(&t),
        Some(&user_body("eve@contoso.com", "ext-eve")),
    )
    .await;
    let eve = r.body["id"].as_str().unwrap().to_owned();
    let r = scim(
        &w,
        Method::POST,
        &format!("{b}/Groups"),
        Some(&t),
        Some(
            &json!({ "schemas": [GROUP], "displayName": "G", "members": [{ "value": eve }] })
                .to_string(),
        ),
    )
    .await;
    let group = r.body["id"].as_str().unwrap().to_owned();
    let snapshot = |r: &Reply| {
        let mut v = r.body.clone();
        v.as_object_mut().unwrap().remove("meta");
        v
    };
    let eve_before =
        snapshot(&scim(&w, Method::GET, &format!("{b}/Users/{eve}"), Some(&t), None).await);
    let group_before = snapshot(
        &scim(
            &w,
            Method::GET,
            &format!("{b}/Groups/{group}"),
            Some(&t),
            None,
        )
        .await,
    );
    let events_before = w.audit.events().len();
    let users_before = total(&w, 0, &t, "Users").await;

    let huge = json!({ "schemas": [USER], "userName": "big@contoso.com", "displayName": "x".repeat(300 * 1024) }).to_string();
    let bad_user_bodies: Vec<(String, &str)> = vec![
        ("{\"schemas\":".into(), "invalidSyntax"),
        ("[1,2]".into(), "invalidSyntax"),
        ("\u{0}\u{1}".into(), "invalidSyntax"),
        (json!({ "userName": "x@contoso.com" }).to_string(), "invalidSyntax"),
        (json!({ "schemas": [USER], "userName": "x@contoso.com", "favouriteColour": "red" }).to_string(), "invalidValue"),
        (json!({ "schemas": [USER], "userName": "x@contoso.com", "roles": [{ "value": "admin" }] }).to_string(), "invalidValue"),
        (json!({ "schemas": [USER], "userName": "x@contoso.com", "password": "hunter2hunter2" }).to_string(), "invalidValue"),
        (json!({ "schemas": [USER], "userName": "x@contoso.com", "active": "yes" }).to_string(), "invalidValue"),
        (json!({ "schemas": [USER], "userName": 7 }).to_string(), "invalidValue"),
        (json!({ "schemas": [USER], "userName": "x@contoso.com", "emails": [{ "value": "nope" }] }).to_string(), "invalidValue"),
        (json!({ "schemas": [USER], "userName": "x\u{7}y" }).to_string(), "invalidValue"),
    ];
    for (body, scim_type) in &bad_user_bodies {
        let r = scim(
            &w,
            Method::POST,
            &format!("{b}/Users"),
            Some(&t),
            Some(body),
        )
        .await;
        assert_scim_error(&r, StatusCode::BAD_REQUEST, Some(scim_type));
        let r = scim(
            &w,
            Method::PUT,
            &format!("{b}/Users/{eve}"),
            Some(&t),
            Some(body),
        )
        .await;
        assert_scim_error(&r, StatusCode::BAD_REQUEST, Some(scim_type));
    }
    let r = scim(
        &w,
        Method::POST,
        &format!("{b}/Users"),
        Some(&t),
        Some(&huge),
    )
    .await;
    assert_scim_error(&r, StatusCode::PAYLOAD_TOO_LARGE, None);

    for filter in [
        r#"userName ne "x""#,
        r#"userName eq "x" or userName eq "y""#,
        "title eq \"x\"",
        "userName eq x",
        "((",
        r#"displayName eq "G""#,
    ] {
        let r = scim(
            &w,
            Method::GET,
            &format!("{b}/Users?filter={}", enc(filter)),
            Some(&t),
            None,
        )
        .await;
        assert_scim_error(&r, StatusCode::BAD_REQUEST, Some("invalidFilter"));
    }
    let r = scim(
        &w,
        Method::GET,
        &format!("{b}/Groups?filter={}", enc(r#"userName eq "x""#)),
        Some(&t),
        None,
    )
    .await;
    assert_scim_error(&r, StatusCode::BAD_REQUEST, Some("invalidFilter"));
    let r = scim(
        &w,
        Method::GET,
        &format!("{b}/Users?sortBy=userName"),
        Some(&t),
        None,
    )
    .await;
    assert_scim_error(&r, StatusCode::BAD_REQUEST, Some("invalidValue"));
    let r = scim(
        &w,
        Method::GET,
        &format!("{b}/Users?count=ten"),
        Some(&t),
        None,
    )
    .await;
    assert_scim_error(&r, StatusCode::BAD_REQUEST, Some("invalidValue"));

    // PATCH: one bad operation refuses the whole body.
    let bad_patches: Vec<(Value, &str)> = vec![
        (
            json!([{ "op": "Replace", "path": "displayName", "value": "Changed" }, { "op": "Replace", "path": "roles", "value": "admin" }]),
            "invalidPath",
        ),
        (
            json!([{ "op": "Replace", "path": "active", "value": "False" }, { "op": "Explode" }]),
            "invalidSyntax",
        ),
        (
            json!([{ "op": "Replace", "path": "active", "value": "maybe" }]),
            "invalidValue",
        ),
        (
            json!([{ "op": "Remove", "path": "userName" }]),
            "invalidPath",
        ),
        (
            json!([{ "op": "Replace", "path": "displayName", "value": "Changed" }, { "op": "Add", "path": "emails", "value": [{ "value": "not-an-address" }] }]),
            "invalidValue",
        ),
        (json!([]), "invalidSyntax"),
    ];
    for (ops, scim_type) in &bad_patches {
        let r = scim(
            &w,
            Method::PATCH,
            &format!("{b}/Users/{eve}"),
            Some(&t),
            Some(&patch(ops.clone())),
        )
        .await;
        assert_scim_error(&r, StatusCode::BAD_REQUEST, Some(scim_type));
    }
    let r = scim(
        &w,
        Method::PATCH,
        &format!("{b}/Users/{eve}"),
        Some(&t),
        Some("not json"),
    )
    .await;
    assert_scim_error(&r, StatusCode::BAD_REQUEST, Some("invalidSyntax"));
    for ops in [
        json!([{ "op": "Add", "path": "members", "value": [{ "value": uuid::Uuid::now_v7() }] }]),
        json!([{ "op": "Add", "path": "members", "value": [{ "value": w.users[&(1, Role::Admin)] }] }]),
        json!([{ "op": "Add", "path": "members", "value": [{ "value": "../../etc" }] }]),
        json!([{ "op": "Replace", "path": "displayName", "value": "H" }, { "op": "Add", "path": "members", "value": "x" }]),
    ] {
        let r = scim(
            &w,
            Method::PATCH,
            &format!("{b}/Groups/{group}"),
            Some(&t),
            Some(&patch(ops)),
        )
        .await;
        assert_scim_error(&r, StatusCode::BAD_REQUEST, Some("invalidValue"));
    }
    for path in [
        format!("{b}/Users/not-a-uuid"),
        format!("{b}/Users/{}", uuid::Uuid::now_v7()),
        format!("{b}/Users/{}", w.users[&(1, Role::Admin)]),
    ] {
        let r = scim(&w, Method::GET, &path, Some(&t), None).await;
        assert_scim_error(&r, StatusCode::NOT_FOUND, None);
        let r = scim(&w, Method::DELETE, &path, Some(&t), None).await;
        assert_scim_error(&r, StatusCode::NOT_FOUND, None);
    }

    assert_eq!(
        snapshot(&scim(&w, Method::GET, &format!("{b}/Users/{eve}"), Some(&t), None).await),
        eve_before
    );
    assert_eq!(
        snapshot(
            &scim(
                &w,
                Method::GET,
                &format!("{b}/Groups/{group}"),
                Some(&t),
                None
            )
            .await
        ),
        group_before
    );
    assert_eq!(total(&w, 0, &t, "Users").await, users_before);
    assert_eq!(w.audit.events().len(), events_before, "no change, no event");
    w.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_audit_log_stops_every_scim_change() {
    let w = fresh().await;
    let t = scim_token(&w, 0, 30).await;
    let b = base(&w, 0);
    let session = w.login(0, Role::Requester).await;
    let requester = w.users[&(0, Role::Requester)];
    let admin = w.login(0, Role::Admin).await;
    let r = w
        .request(
            Method::POST,
            &format!("/api/users/{requester}/scim-handover"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let users = total(&w, 0, &t, "Users").await;
    w.audit.set_failing(true);
    let r = scim(
        &w,
        Method::POST,
        &format!("{b}/Users"),
        Some(&t),
        Some(&user_body("ghost@contoso.com", "ext-g")),
    )
    .await;
    assert_scim_error(&r, StatusCode::SERVICE_UNAVAILABLE, None);
    let r = scim(
        &w,
        Method::PATCH,
        &format!("{b}/Users/{requester}"),
        Some(&t),
        Some(&patch(
            json!([{ "op": "Replace", "path": "active", "value": "False" }]),
        )),
    )
    .await;
    assert_scim_error(&r, StatusCode::SERVICE_UNAVAILABLE, None);
    let r = scim(
        &w,
        Method::DELETE,
        &format!("{b}/Users/{requester}"),
        Some(&t),
        None,
    )
    .await;
    assert_scim_error(&r, StatusCode::SERVICE_UNAVAILABLE, None);
    let r = scim(
        &w,
        Method::POST,
        &format!("{b}/Groups"),
        Some(&t),
        Some(&json!({ "schemas": [GROUP], "displayName": "Unaudited" }).to_string()),
    )
    .await;
    assert_scim_error(&r, StatusCode::SERVICE_UNAVAILABLE, None);
    w.audit.set_failing(false);
    // Nothing happened: the user is active with a live session, nothing was created.
    assert_eq!(
        w.request(Method::GET, "/api/session", Some(&session), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        user_row(&w, 0, &requester.to_string()).await,
        ("requester".into(), "active".into(), false)
    );
    assert_eq!(total(&w, 0, &t, "Users").await, users);
    assert_eq!(total(&w, 0, &t, "Groups").await, 0);
    w.close().await;
}

/// The real conformance checker against the real server on a loopback port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim2_cli_conformance_checker_passes() {
    // A real part missing is a failure, never a skip.
    let found = std::process::Command::new("scim2")
        .arg("--help")
        .output()
        .expect("scim2 (PyPI scim2-cli) is not installed; run scripts/setup.sh");
    assert!(found.status.success());
    let w = fresh().await;
    let token = scim_token(&w, 0, 1).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let origin = format!("http://{addr}");
    let app = w
        .app
        .clone()
        .layer(axum::Extension(PublicOrigin(origin.clone())));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("{origin}{}", base(&w, 0));
    let output = tokio::process::Command::new("scim2")
        .arg("--url")
        .arg(&url)
        .arg("--header")
        .arg(format!("Authorization: Bearer {token}"))
        .arg("test")
        .arg("--verbose")
        .output()
        .await
        .unwrap();
    server.abort();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = format!("scim2 test exited {}:\n{stdout}\n{stderr}", output.status);
    // One result per line (`SUCCESS name`), its reason on the next line.
    let lines: Vec<&str> = stdout.lines().collect();
    let mut results = 0;
    let mut deviations = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((status, name)) = line.split_once(' ') else {
            continue;
        };
        if !matches!(status, "SUCCESS" | "ERROR" | "SKIPPED" | "CRITICAL") {
            continue;
        }
        results += 1;
        if status != "SUCCESS" {
            deviations.push((status, name, lines.get(i + 1).map_or("", |r| r.trim())));
        }
    }
    eprintln!("scim2 test: {results} checks, deviations {deviations:?}");
    assert!(results > 60, "too few checks ran:\n{report}");
    assert!(
        deviations.is_empty() && output.status.success(),
        "conformance failures {deviations:?}:\n{report}"
    );
    assert!(!stdout.contains(&token), "the token was printed");
    w.close().await;
}

// --- Ownership (issue #11, finding 7): SCIM manages only the users it owns -----------

/// The SCIM-relevant columns of a user, read around SCIM (as the server's runtime role).
async fn ownership_row(w: &World, id: &str) -> (String, bool, Option<String>, String) {
    let mut tx = w.state.sdk.tenants().begin(w.orgs[0]).await.unwrap();
    let row = sqlx::query_as(
        "SELECT email, scim_managed, scim_external_id, status FROM app.users WHERE id = $1::uuid",
    )
    .bind(id)
    .fetch_one(tx.conn())
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    row
}

fn refusals(w: &World) -> Vec<procuhelp_audit::AuditEvent> {
    w.audit
        .events()
        .into_iter()
        .filter(|e| e.outcome == procuhelp_audit::Outcome::Denied && e.context["via"] == "scim")
        .collect()
}

/// A local admin (password, admin role) is invisible to SCIM: not listed, not found by
/// filter, 404 for GET/PUT/PATCH/DELETE; a create with their address is refused (409)
/// instead of adopting them; a group cannot take them as a member. Each refusal about
/// them is audited; nothing about them changes and their password still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_sees_and_changes_only_the_users_it_owns() {
    let w = fresh().await;
    let t = scim_token(&w, 0, 30).await;
    let b = base(&w, 0);
    assert_eq!(
        total(&w, 0, &t, "Users").await,
        0,
        "the seeded local users are not SCIM's"
    );
    let admin = w.users[&(0, Role::Admin)].to_string();
    let admin_email = email(0, Role::Admin);
    let before = ownership_row(&w, &admin).await;
    let r = scim(
        &w,
        Method::GET,
        &format!(
            "{b}/Users?filter={}",
            enc(&format!(r#"userName eq "{admin_email}""#))
        ),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.text);
    let r = scim(
        &w,
        Method::POST,
        &format!("{b}/.search"),
        Some(&t),
        Some(
            &json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"] })
                .to_string(),
        ),
    )
    .await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.text);

    let url = format!("{b}/Users/{admin}");
    let takeover = patch(json!([
        { "op": "Replace", "path": "externalId", "value": "attacker-oid" },
        { "op": "Replace", "path": "userName", "value": "attacker@evil.example" },
    ]));
    let put = json!({ "schemas": [USER], "userName": admin_email, "externalId": "attacker-oid" })
        .to_string();
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(takeover.as_str())),
        (Method::PUT, Some(put.as_str())),
        (Method::DELETE, None),
    ] {
        let r = scim(&w, method.clone(), &url, Some(&t), body).await;
        assert_scim_error(&r, StatusCode::NOT_FOUND, None);
        // The same answer as for an id that does not exist at all.
        let unknown = scim(
            &w,
            method.clone(),
            &format!("{b}/Users/{}", uuid::Uuid::now_v7()),
            Some(&t),
            body,
        )
        .await;
        assert_eq!(r.text, unknown.text, "{method}");
    }
    // A create with the admin's address (or userName) never adopts them.
    let r = scim(
        &w,
        Method::POST,
        &format!("{b}/Users"),
        Some(&t),
        Some(&user_body(&admin_email.to_uppercase(), "attacker-oid")),
    )
    .await;
    assert_scim_error(&r, StatusCode::CONFLICT, Some("uniqueness"));
    assert_eq!(
        r.body["detail"],
        "userName or e-mail address belongs to a user that SCIM does not manage"
    );
    // Nor can a group take them in.
    let r = scim(
        &w,
        Method::POST,
        &format!("{b}/Groups"),
        Some(&t),
        Some(
            &json!({ "schemas": [GROUP], "displayName": "Admins", "members": [{ "value": admin }] })
                .to_string(),
        ),
    )
    .await;
    assert_scim_error(&r, StatusCode::BAD_REQUEST, Some("invalidValue"));

    assert_eq!(ownership_row(&w, &admin).await, before, "nothing changed");
    assert_eq!((before.1, before.2.as_deref()), (false, None));
    assert_eq!(
        w.try_login(0, &admin_email, PASSWORD).await.status,
        StatusCode::OK
    );
    // Each refusal about the local user is audited (actor: the SCIM token), with a
    // fixed reason; the unknown ids are plain 404s.
    let denied = refusals(&w);
    assert_eq!(denied.len(), 5, "{denied:?}");
    for e in &denied {
        assert_eq!(e.action, Action::ScimRequestRefused);
        assert_eq!(e.actor.kind(), "service_account");
        assert!(e.context["reason"].is_string(), "{:?}", e.context);
        assert!(
            !e.context.to_string().contains("attacker"),
            "no input echoed"
        );
    }
    assert_eq!(w.count(Action::ScimUserProvisioned), 0);
    assert_eq!(w.count(Action::ScimUserUpdated), 0);
    w.close().await;
}

/// An admin's disable wins over SCIM: `active: true` (PATCH, PUT, or a POST reviving the
/// user) is refused while an admin has the user disabled, and audited; the admin can
/// re-enable, after which SCIM manages the status again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admins_disable_wins_over_scim_active_true() {
    let w = fresh().await;
    let t = scim_token(&w, 0, 30).await;
    let b = base(&w, 0);
    let admin = w.login(0, Role::Admin).await;
    let r = scim(
        &w,
        Method::POST,
        &format!("{b}/Users"),
        Some(&t),
        Some(&user_body("dave@contoso.com", "ext-dave")),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let dave = r.body["id"].as_str().unwrap().to_owned();
    let url = format!("{b}/Users/{dave}");
    let r = w
        .request(
            Method::POST,
            &format!("/api/users/{dave}/disable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let enable = patch(json!([{ "op": "Replace", "path": "active", "value": "True" }]));
    let put =
        json!({ "schemas": [USER], "userName": "dave@contoso.com", "active": true }).to_string();
    for (method, body) in [(Method::PATCH, &enable), (Method::PUT, &put)] {
        let r = scim(&w, method, &url, Some(&t), Some(body)).await;
        assert_scim_error(&r, StatusCode::BAD_REQUEST, Some("mutability"));
        assert_eq!(
            r.body["detail"],
            "an administrator disabled this user; only an administrator can enable them"
        );
        assert_eq!(ownership_row(&w, &dave).await.3, "disabled");
    }
    // SCIM may still deprovision (and delete) the user, but not bring them back.
    let r = scim(
        &w,
        Method::PATCH,
        &url,
        Some(&t),
        Some(&patch(
            json!([{ "op": "Replace", "path": "active", "value": false }]),
        )),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = scim(&w, Method::DELETE, &url, Some(&t), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = scim(
        &w,
        Method::POST,
        &format!("{b}/Users"),
        Some(&t),
        Some(&user_body("dave@contoso.com", "ext-dave")),
    )
    .await;
    assert_scim_error(&r, StatusCode::BAD_REQUEST, Some("mutability"));
    assert_eq!(ownership_row(&w, &dave).await.3, "disabled");
    let denied = refusals(&w);
    assert_eq!(denied.len(), 3, "{denied:?}");
    assert!(denied.iter().all(|e| e.action == Action::ScimRequestRefused
        && e.target.as_deref() == Some(format!("user:{dave}").as_str())));
    assert_eq!(w.count(Action::ScimUserReactivated), 0);
    // Disabled by both: the admin's enable lifts only the admin's disable (no deadlock),
    // the user stays disabled until SCIM re-activates them.
    let r = w
        .request(
            Method::POST,
            &format!("/api/users/{dave}/enable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("disabled")),
        "{}",
        r.text
    );
    assert_eq!(ownership_row(&w, &dave).await.3, "disabled");
    let r = scim(
        &w,
        Method::POST,
        &format!("{b}/Users"),
        Some(&t),
        Some(&user_body("dave@contoso.com", "ext-dave")),
    )
    .await;
    assert_eq!(
        (r.status, r.body["id"].as_str(), r.body["active"].as_bool()),
        (StatusCode::CREATED, Some(dave.as_str()), Some(true)),
        "{}",
        r.text
    );

    // A user only an admin disabled: the admin re-enables them; then SCIM's status
    // changes apply again.
    let r = scim(
        &w,
        Method::POST,
        &format!("{b}/Users"),
        Some(&t),
        Some(&user_body("erin@contoso.com", "ext-erin")),
    )
    .await;
    let erin = r.body["id"].as_str().unwrap().to_owned();
    let r = w
        .request(
            Method::POST,
            &format!("/api/users/{erin}/disable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = scim(
        &w,
        Method::PATCH,
        &format!("{b}/Users/{erin}"),
        Some(&t),
        Some(&enable),
    )
    .await;
    assert_scim_error(&r, StatusCode::BAD_REQUEST, Some("mutability"));
    let r = w
        .request(
            Method::POST,
            &format!("/api/users/{erin}/enable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(ownership_row(&w, &erin).await.3, "active");
    let off = patch(json!([{ "op": "Replace", "path": "active", "value": "False" }]));
    let r = scim(
        &w,
        Method::PATCH,
        &format!("{b}/Users/{erin}"),
        Some(&t),
        Some(&off),
    )
    .await;
    assert_eq!(
        (r.status, r.body["active"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    let r = scim(
        &w,
        Method::PATCH,
        &format!("{b}/Users/{erin}"),
        Some(&t),
        Some(&enable),
    )
    .await;
    assert_eq!(
        (r.status, r.body["active"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{}",
        r.text
    );
    w.close().await;
}

/// A local user becomes SCIM-managed only when an admin hands them over: the endpoint
/// needs an admin (manage_users and manage_sso), is audited before it takes effect
/// (a failing audit log leaves the user local), refuses the caller themselves and a
/// second handover; afterwards Entra finds the user by userName and manages them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_handover_makes_a_local_user_scim_managed_and_is_audited() {
    let w = fresh().await;
    let t = scim_token(&w, 0, 30).await;
    let b = base(&w, 0);
    let admin = w.login(0, Role::Admin).await;
    let approver = w.login(0, Role::Approver).await;
    let requester = w.users[&(0, Role::Requester)].to_string();
    let admin_id = w.users[&(0, Role::Admin)].to_string();
    let handover = |id: &str| format!("/api/users/{id}/scim-handover");

    let r = w
        .request(Method::POST, &handover(&requester), Some(&approver), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = w
        .request(Method::POST, &handover(&admin_id), Some(&admin), None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    for unknown in [
        uuid::Uuid::now_v7().to_string(),
        w.users[&(1, Role::Requester)].to_string(),
    ] {
        let r = w
            .request(Method::POST, &handover(&unknown), Some(&admin), None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    }
    w.audit.set_failing(true);
    let r = w
        .request(Method::POST, &handover(&requester), Some(&admin), None)
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    w.audit.set_failing(false);
    assert!(!ownership_row(&w, &requester).await.1, "not handed over");
    assert_eq!(total(&w, 0, &t, "Users").await, 0);

    let r = w
        .request(Method::POST, &handover(&requester), Some(&admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["scim_managed"], true);
    let e = w
        .audit
        .events()
        .into_iter()
        .find(|e| e.action == Action::ScimUserHandedOver)
        .expect("the handover is audited");
    assert_eq!(
        e.target.as_deref(),
        Some(format!("user:{requester}").as_str())
    );
    assert_eq!(e.actor.kind(), "user");
    assert_eq!(e.org, Some(w.orgs[0]));
    let r = w
        .request(Method::POST, &handover(&requester), Some(&admin), None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "a second handover: {}",
        r.text
    );
    assert_eq!(w.count(Action::ScimUserHandedOver), 1);

    // Entra's first lookup now finds them, and its PATCH applies.
    let r = scim(
        &w,
        Method::GET,
        &format!(
            "{b}/Users?filter={}",
            enc(&format!(r#"userName eq "{}""#, email(0, Role::Requester)))
        ),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.text);
    assert_eq!(r.body["Resources"][0]["id"], requester.as_str());
    let r = scim(
        &w,
        Method::PATCH,
        &format!("{b}/Users/{requester}"),
        Some(&t),
        Some(&patch(
            json!([{ "op": "Replace", "path": "externalId", "value": "oid-rq" }]),
        )),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        ownership_row(&w, &requester).await,
        (
            email(0, Role::Requester),
            true,
            Some("oid-rq".to_owned()),
            "active".to_owned()
        )
    );
    w.close().await;
}
