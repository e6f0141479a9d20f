//! Editing a supplier (issue #15, point 1): the page's form and `PUT /api/suppliers/{id}`
//! do the same change on the version read; of two edits of one version, one wins and the
//! other is told and writes nothing; markup typed into a field is shown as text.

use axum::http::{Method, StatusCode};
use procuhelp_audit::Action;
use procuhelp_auth::Role;
use procuhelp_auth::password::PasswordHasher;
use serde_json::json;

use crate::common::world;
use crate::forms::{error_code, input_value, open, post, redirected};

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
    let seen = input_value(&first, "updated_at");
    assert_eq!(seen, input_value(&second, "updated_at"));

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
        true,
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
        true,
    )
    .await;
    assert_eq!(late.0, StatusCode::CONFLICT, "{}", late.2);
    assert_eq!(error_code(&late), "conflict");
    assert!(late.2.contains("changed meanwhile"));

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
    assert!(!shown.2.contains("<script>window.pwned"));
    assert!(
        shown
            .2
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
    let current = input_value(&open(&w, &admin, &path).await, "updated_at");
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
        let fields: Vec<(&str, &str)> = fields.iter().map(|(f, v)| (*f, v.as_str())).collect();
        let refused = post(&w, &admin, &format!("{path}/edit"), &fields, true).await;
        assert_eq!(
            refused.0,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {}",
            refused.2
        );
    }
    // Without the form's token: refused, nothing changed.
    let forged = post(
        &w,
        &admin,
        &format!("{path}/edit"),
        &[
            ("name", "Forged"),
            ("country", "DE"),
            ("updated_at", &current),
        ],
        false,
    )
    .await;
    assert_eq!(forged.0, StatusCode::FORBIDDEN);
    // A role without the permission: 403 before the form is read; another
    // organisation's admin: not found.
    let approver = w.login(0, Role::Approver).await;
    let refused = post(&w, &approver, &format!("{path}/edit"), &[], true).await;
    assert_eq!(refused.0, StatusCode::FORBIDDEN);
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
        true,
    )
    .await;
    assert_eq!(hidden.0, StatusCode::NOT_FOUND);
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
    w.close().await;
}
