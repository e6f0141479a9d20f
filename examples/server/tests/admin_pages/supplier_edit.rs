//! Editing a supplier (issue #15, point 1): the page's form and `PUT /api/suppliers/{id}`
//! do the same change on the version read; of two edits of one version, one wins and the
//! other is told and writes nothing; markup typed into a field is shown as text.

use axum::http::{Method, StatusCode};
use procuhelp_audit::Action;
use procuhelp_auth::Role;
use procuhelp_auth::password::PasswordHasher;
use serde_json::json;

use crate::common::world;
use crate::forms::{BUTTON, open, post, post_without_token, redirected};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edits_of_one_version_one_wins_and_the_other_writes_nothing() {
    let w = world(PasswordHasher::for_tests()).await;
    let admin = w.login(0, Role::Admin).await;
    let created = w
        .request(
            Method::POST,
            "/api/suppliers",
            Some(&admin),
            Some(json!({ "name": "Acme", "country": "DE" })),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("/suppliers/{id}");

    // Two people open the page: both forms carry the same version.
    let other_admin = w.login(0, Role::Admin).await;
    let first = open(&w, &admin, &path).await;
    let second = open(&w, &other_admin, &path).await;
    let seen = first.input_value("updated_at");
    assert_eq!(seen, second.input_value("updated_at"));

    let name = "Acme <script>window.pwned=1</script> GmbH";
    let saved = post(
        &w,
        &admin,
        &format!("{path}/edit"),
        &[
            ("name", name),
            ("country", "at"),
            ("vat_id", "ATU 1234 5678"),
            ("updated_at", &seen),
        ],
    )
    .await;
    redirected(&saved, &path);
    let late = post(
        &w,
        &other_admin,
        &format!("{path}/edit"),
        &[
            ("name", "Lost update"),
            ("country", "FR"),
            ("updated_at", &seen),
        ],
    )
    .await;
    assert_eq!(late.status, StatusCode::CONFLICT, "{}", late.html);
    assert_eq!(late.error_code(), "conflict");
    assert!(late.html.contains("changed meanwhile"));

    let now = w
        .request(
            Method::GET,
            &format!("/api/suppliers/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(now.body["name"], name);
    assert_eq!(now.body["country"], "AT");
    assert_eq!(now.body["vat_id"], "ATU12345678");
    // Shown as text, never as markup.
    let shown = open(&w, &admin, &path).await;
    assert!(!shown.html.contains("<script>window.pwned"));
    assert!(
        shown
            .html
            .contains("&lt;script&gt;window.pwned=1&lt;/script&gt;")
    );
    assert_eq!(w.count(Action::SupplierUpdated), 1);

    // The API twin: the same rule on the version it read.
    let stale = w
        .request(
            Method::PUT,
            &format!("/api/suppliers/{id}"),
            Some(&admin),
            Some(json!({ "name": "Via API", "country": "DE", "updated_at": created.body["updated_at"] })),
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    let fresh = w
        .request(
            Method::PUT,
            &format!("/api/suppliers/{id}"),
            Some(&admin),
            Some(
                json!({ "name": "Via API", "country": "DE", "updated_at": now.body["updated_at"] }),
            ),
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{:?}", fresh.body);
    assert_eq!(w.count(Action::SupplierUpdated), 2);

    // Bad input: a clear refusal, nothing changed.
    let current = open(&w, &admin, &path).await.input_value("updated_at");
    for (field, bad) in [
        ("name", "x".repeat(201)),
        ("country", "Germany".to_owned()),
        ("vat_id", "<b>".to_owned()),
    ] {
        let mut fields = vec![
            ("name", "Fine".to_owned()),
            ("country", "DE".to_owned()),
            ("updated_at", current.clone()),
        ];
        fields.retain(|(f, _)| *f != field);
        fields.push((field, bad));
        let refused = post(&w, &admin, &format!("{path}/edit"), &fields).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {}",
            refused.html
        );
    }
    // Without the form's token: refused, nothing changed.
    let forged = post_without_token(
        &w,
        &admin,
        &format!("{path}/edit"),
        &[
            ("name", "Forged"),
            ("country", "DE"),
            ("updated_at", &current),
        ],
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // A role without the permission: 403 before the form is read; another
    // organisation's admin: not found.
    let approver = w.login(0, Role::Approver).await;
    let refused = post(&w, &approver, &format!("{path}/edit"), BUTTON).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let stranger = w.login(1, Role::Admin).await;
    let hidden = post(
        &w,
        &stranger,
        &format!("{path}/edit"),
        &[
            ("name", "Mine"),
            ("country", "DE"),
            ("updated_at", &current),
        ],
    )
    .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    let after = w
        .request(
            Method::GET,
            &format!("/api/suppliers/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(after.body["name"], "Via API");
    assert_eq!(w.count(Action::SupplierUpdated), 2);

    // A contract started from the supplier's page (its form names the supplier), listed
    // with the supplier's name.
    let page = open(&w, &admin, &path).await;
    assert!(
        page.html
            .contains(&format!("name=\"supplier\" value=\"{id}\""))
    );
    let made = post(
        &w,
        &admin,
        "/contracts",
        &[
            ("supplier", id.as_str()),
            ("title", "Framework agreement"),
            ("value", "1000"),
            ("starts_on", "2027-01-01"),
            ("ends_on", "2027-12-31"),
            ("terms", "Net 30"),
        ],
    )
    .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.html);
    assert!(made.location().unwrap_or("").starts_with("/contracts/"));
    let list = open(&w, &admin, "/contracts").await;
    assert!(list.html.contains("Framework agreement") && list.html.contains("Via API"));
    w.close().await;
}
