//! Time to first byte of the heaviest pages (issue #15): the suppliers list
//! (`examples/server/src/pages/suppliers.rs`) of an organisation with 10,000 suppliers
//! and the audit viewer (`examples/server/src/pages/audit.rs` on
//! `procuhelp_axum::audit::read_page`) of one with 100,000 audit events, with paging and
//! filters, served by the example server's real router (`procuhelp_server::app::app`:
//! hardening layers, access log, session, permission, row-level security, the viewer's
//! own `audit.read` event) over loopback HTTP/1.1.
//!
//! * **sdk** — `procuhelp_server::app::app(AppState::assemble(…), Limits::default())` as
//!   `examples/server/tests/common/mod.rs` `world()` builds it (runtime pool of 8, field
//!   cipher on a key pool of 2, file vault, `PgAuditSink` on an audit pool of 2 behind the
//!   refusal aggregator, as `serve`), an admin signed in by `POST /api/login`.
//! * **peer** — plain axum + sqlx + maud in the same process: the same two pages (same
//!   ORDER BY, page size, keyset paging and filters) with the organisation in the query
//!   string, no session, no row-level security, no audit, as the table owner; the audit
//!   page lists the organisation's people for its filter and names the users who acted,
//!   as the app's page does. The owner
//!   is bound by FORCE ROW LEVEL SECURITY on the app's tables, so the peer reads copies
//!   in a `peer` schema (`CREATE TABLE … (LIKE … INCLUDING ALL)`: same columns, indexes
//!   and rows, no policy, no trigger), as `benches/benches/request.rs` does.
//!
//! Seeded data: organisation A with 10,000 suppliers (half of them onboarded, their IBAN
//! sealed by the field cipher) and 100,000 audit events appended by `PgAuditSink::
//! append_batch` (the production chain: hashed, linked, personal data sealed per person;
//! ten users, sign-ins, refusals, supplier and request changes, system jobs); organisation
//! B with 500 suppliers and 5,000 events (row-level security has rows to filter).
//! `VACUUM ANALYZE` of both sides' tables before measuring.
//!
//! Measurement: one client, sequential, a kept-alive connection per side; each request is
//! written whole, the clock stops when the first byte of the response arrives, and the
//! rest is read (Content-Length or chunked) to keep the connection in step. SDK and peer
//! requests alternate, so both sides see the same machine. Warm-up first, then
//! `--requests N` per case and side: p50, p99, max and the ratio to the peer. Then an
//! optional bounded concurrent run (`--concurrency C` connections for `--seconds S` per
//! case and side): p99 and requests per second.
//!
//! Run: `scripts/bench-pages.sh` (release), `scripts/bench-pages.sh --quick` (dev
//! profile, few requests), or `cargo bench -p procuhelp-benches --bench pages --
//! --requests 1000 [--warmup N] [--concurrency C] [--seconds S] [--explain]`.
//! `--explain` prints the plans (EXPLAIN ANALYZE, as the runtime role, generic plans as
//! the role has them) of the pages' queries. Needs the machine's PostgreSQL
//! (`PROCUHELP_TEST_ADMIN_URL`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a bench: set-up failures stop it, results go to stdout
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};
use procuhelp_audit::{Action, Actor, AuditEvent, AuditSink, EventQuery, Outcome, PgAuditSink};
use procuhelp_auth::Role;
use procuhelp_auth::directory::{self, Email, NewUser};
use procuhelp_auth::password::PasswordHasher;
use procuhelp_core::{OrgId, SecretText, SystemClock, UserId};
use procuhelp_server::app::{AppState, Limits};
use procuhelp_server::supplier_onboarding::Iban;
use procuhelp_tenancy::testkit::ScratchDb;
use procuhelp_tenancy::{FieldRef, TenantDb};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";
/// Organisation A (measured) and B (rows for row-level security to filter).
const SUPPLIERS: [usize; 2] = [10_000, 500];
const EVENTS: [usize; 2] = [100_000, 5_000];
/// Users per organisation (the first is the admin who signs in).
const USERS: usize = 10;
/// `examples/server/src/pages/suppliers.rs` `PAGE`.
const SUPPLIER_PAGE: usize = 50;
/// `procuhelp-axum/src/audit.rs`: the page's default `limit`.
const AUDIT_PAGE: usize = 100;
/// The deep pages: the suppliers page after row 9,000 (180 next links), the audit page
/// after 50 next links.
const SUPPLIER_DEEP_FOLLOWS: usize = 180;
const AUDIT_DEEP_FOLLOWS: usize = 50;

#[derive(Debug, Clone)]
struct Options {
    requests: usize,
    warmup: usize,
    concurrency: usize,
    seconds: u64,
    explain: bool,
}

fn options() -> Options {
    let mut o = Options {
        requests: 1000,
        warmup: 50,
        concurrency: 8,
        seconds: 3,
        explain: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match a.as_str() {
            "--requests" => o.requests = num("--requests").max(1),
            "--warmup" => o.warmup = num("--warmup"),
            "--concurrency" => o.concurrency = num("--concurrency"),
            "--seconds" => o.seconds = num("--seconds") as u64,
            "--explain" => o.explain = true,
            // cargo bench passes --bench; anything else is ignored.
            _ => {}
        }
    }
    o
}

// ---------------------------------------------------------------------------------------
// The peer: plain axum + sqlx + maud on copies of the tables, no session, no RLS, no audit.

#[derive(Debug, Clone)]
struct Peer {
    pool: PgPool,
}

fn fail(e: impl std::fmt::Debug) -> StatusCode {
    eprintln!("peer request failed: {e:?}");
    StatusCode::INTERNAL_SERVER_ERROR
}

/// `application/x-www-form-urlencoded` serialisation of one value (as `form_urlencoded`
/// does it: the pages build their next links with it).
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[derive(Debug, Deserialize)]
struct PeerSuppliersQuery {
    org: Uuid,
    after_name: Option<String>,
    after_id: Option<Uuid>,
}

fn status_label(status: &str) -> &'static str {
    match status {
        "invited" => "Invited",
        "active" => "Active",
        "suspended" => "Suspended",
        _ => "Archived",
    }
}

/// `GET /peer/suppliers?org=&after_name=&after_id=`: the suppliers page, hand-written.
async fn peer_suppliers(
    State(peer): State<Peer>,
    Query(q): Query<PeerSuppliersQuery>,
) -> Result<Markup, StatusCode> {
    type Row = (Uuid, String, String, String, Option<String>);
    let rows: Vec<Row> = match (&q.after_name, q.after_id) {
        (Some(name), Some(id)) => sqlx::query_as(
            "SELECT id, name, country, status, iban_hint FROM peer.suppliers \
             WHERE org_id = $1 AND (name, id) > ($2, $3) ORDER BY name, id LIMIT $4",
        )
        .bind(q.org)
        .bind(name)
        .bind(id)
        .bind(SUPPLIER_PAGE as i64)
        .fetch_all(&peer.pool)
        .await
        .map_err(fail)?,
        _ => sqlx::query_as(
            "SELECT id, name, country, status, iban_hint FROM peer.suppliers \
             WHERE org_id = $1 ORDER BY name, id LIMIT $2",
        )
        .bind(q.org)
        .bind(SUPPLIER_PAGE as i64)
        .fetch_all(&peer.pool)
        .await
        .map_err(fail)?,
    };
    let next = (rows.len() == SUPPLIER_PAGE)
        .then(|| rows.last())
        .flatten()
        .map(|(id, name, ..)| {
            format!(
                "/peer/suppliers?org={}&after_name={}&after_id={id}",
                q.org,
                form_encode(name)
            )
        });
    Ok(html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "Suppliers · Peer" } }
            body {
                main {
                    h1 { "Suppliers" }
                    table {
                        thead { tr { th scope="col" { "Name" } th scope="col" { "Country" } th scope="col" { "Status" } th scope="col" { "Bank account" } } }
                        tbody {
                            @for (id, name, country, status, hint) in &rows {
                                tr {
                                    td { a href=(format!("/suppliers/{id}")) { (name) } }
                                    td { (country) }
                                    td data-status=(status) { (status_label(status)) }
                                    td.iban-hint { (hint.as_deref().unwrap_or("—")) }
                                }
                            }
                        }
                    }
                    @if let Some(next) = next { p { a rel="next" href=(next) { "Next page" } } }
                }
            }
        }
    })
}

#[derive(Debug, Deserialize)]
struct PeerAuditQuery {
    org: Uuid,
    from: Option<String>,
    to: Option<String>,
    action: Option<String>,
    actor: Option<Uuid>,
    after_seq: Option<i64>,
    limit: Option<i64>,
}

fn peer_time(v: Option<&str>) -> Result<Option<OffsetDateTime>, StatusCode> {
    v.filter(|v| !v.is_empty())
        .map(|v| OffsetDateTime::parse(v, &Rfc3339).map_err(|_| StatusCode::BAD_REQUEST))
        .transpose()
}

/// The audit page's query (`PgAuditSink::read_events`), on the peer's copy.
const PEER_AUDIT_SQL: &str = "SELECT seq, at, actor_kind, actor_id, action, target, outcome, context \
     FROM peer.audit_events WHERE org_id = $1 AND seq > $2 AND ($3::timestamptz IS NULL OR at >= $3) \
     AND ($4::timestamptz IS NULL OR at < $4) AND ($5::text IS NULL OR action = $5) \
     AND ($6::uuid IS NULL OR actor_id = $6) ORDER BY seq LIMIT $7";

/// `PgAuditSink::read_events`'s statement (`storage::SELECT_ROWS` and its filters).
const AUDIT_SELECT: &str = "SELECT seq, at, actor_kind, actor_id, action, target, outcome, context, \
     request_id, subject, person_key, personal, prev_hash, hash FROM app.audit_events";
const AUDIT_WHERE: &str = "WHERE org_id = $1 AND seq > $2 AND ($3::timestamptz IS NULL OR at >= $3) \
     AND ($4::timestamptz IS NULL OR at < $4) AND ($5::text IS NULL OR action = $5) \
     AND ($6::uuid IS NULL OR actor_id = $6) ORDER BY seq LIMIT $7";

type AuditRow = (
    i64,
    OffsetDateTime,
    String,
    Option<Uuid>,
    String,
    Option<String>,
    String,
    String,
);

/// `GET /peer/audit?org=&from=&to=&action=&actor=&after_seq=`: the audit page, hand-written.
async fn peer_audit(
    State(peer): State<Peer>,
    Query(q): Query<PeerAuditQuery>,
) -> Result<Markup, StatusCode> {
    let limit = q.limit.unwrap_or(AUDIT_PAGE as i64).clamp(1, 1000);
    let action = q.action.as_deref().filter(|a| !a.is_empty());
    // The people of the organisation (the filter's list and the names for ids), as the
    // app's page reads them (`directory::list`: by e-mail, at most 1,000).
    let people: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, display_name FROM peer.users WHERE org_id = $1 ORDER BY email LIMIT 1000",
    )
    .bind(q.org)
    .fetch_all(&peer.pool)
    .await
    .map_err(fail)?;
    let rows: Vec<AuditRow> = sqlx::query_as(PEER_AUDIT_SQL)
        .bind(q.org)
        .bind(q.after_seq.unwrap_or(0))
        .bind(peer_time(q.from.as_deref())?)
        .bind(peer_time(q.to.as_deref())?)
        .bind(action)
        .bind(q.actor)
        .bind(limit)
        .fetch_all(&peer.pool)
        .await
        .map_err(fail)?;
    let next = match rows.last() {
        Some(last) if rows.len() >= limit as usize => {
            let mut query = format!("org={}", q.org);
            for (k, v) in [("from", &q.from), ("to", &q.to), ("action", &q.action)] {
                if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                    query.push_str(&format!("&{k}={}", form_encode(v)));
                }
            }
            if let Some(actor) = q.actor {
                query.push_str(&format!("&actor={actor}"));
            }
            query.push_str(&format!("&after_seq={}", last.0));
            Some(format!("/peer/audit?{query}"))
        }
        _ => None,
    };
    let name_of = |id: &Uuid| {
        people
            .iter()
            .find(|(p, _)| p == id)
            .map(|(_, name)| name.clone())
    };
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    Ok(html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "Audit log · Peer" } }
            body {
                main {
                    h1 { "Audit log" }
                    form.filters method="get" action="/peer/audit" {
                        input type="hidden" name="org" value=(q.org);
                        label { "Action" input name="action" value=(value(&q.action)) maxlength="64"; }
                        label { "Person" select name="actor" {
                            option value="" { "anyone" }
                            @for (id, name) in &people {
                                option value=(id) selected[q.actor == Some(*id)] { (name) }
                            }
                        } }
                        label { "From" input name="from" value=(value(&q.from)) maxlength="40"; }
                        label { "To" input name="to" value=(value(&q.to)) maxlength="40"; }
                        button type="submit" { "Filter" }
                    }
                    table {
                        thead { tr {
                            th scope="col" { "#" } th scope="col" { "Time (UTC)" } th scope="col" { "Who" }
                            th scope="col" { "Action" } th scope="col" { "Target" } th scope="col" { "Outcome" }
                            th scope="col" { "Details" }
                        } }
                        tbody {
                            @for (seq, at, kind, id, action, target, outcome, context) in &rows {
                                tr data-action=(action) {
                                    td { (seq) }
                                    td { (at.format(&Rfc3339).unwrap_or_default()) }
                                    td { @match id {
                                        Some(id) if kind == "user" => { (name_of(id).unwrap_or_else(|| id.to_string())) }
                                        _ => { (kind) }
                                    } }
                                    td { code { (action) } }
                                    td { (target.as_deref().unwrap_or("")) }
                                    td { (outcome) }
                                    td.details { (context) }
                                }
                            }
                        }
                    }
                    @if rows.is_empty() { p.muted { "No events match." } }
                    @if let Some(next) = next { p { a rel="next" href=(next) { "Next page" } } }
                }
            }
        }
    })
}

// ---------------------------------------------------------------------------------------
// The client: raw HTTP/1.1 over a kept-alive TCP connection.

#[derive(Debug)]
struct Reply {
    ttfb: Duration,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Client {
    async fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    async fn get(&mut self, path: &str, cookie: Option<&str>) -> Reply {
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n");
        if let Some(c) = cookie {
            req.push_str(&format!("Cookie: {c}\r\n"));
        }
        req.push_str("\r\n");
        self.exchange(req.as_bytes()).await
    }

    async fn post_json(&mut self, path: &str, body: &str) -> Reply {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.exchange(req.as_bytes()).await
    }

    /// Reads more bytes into the buffer; panics at end of stream.
    async fn more(&mut self) {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    async fn fill(&mut self, len: usize) {
        while self.buf.len() < len {
            self.more().await;
        }
    }

    /// Writes `request`, times the first byte of the answer, then reads the whole answer.
    async fn exchange(&mut self, request: &[u8]) -> Reply {
        self.buf.clear();
        let t0 = Instant::now();
        self.stream.write_all(request).await.unwrap();
        self.more().await;
        let ttfb = t0.elapsed();
        let head_end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p + 4;
            }
            self.more().await;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end - 4]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.parse::<usize>().unwrap());
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
        let body = if let Some(len) = length {
            self.fill(head_end + len).await;
            assert_eq!(self.buf.len(), head_end + len, "bytes after the response");
            self.buf[head_end..].to_vec()
        } else if chunked {
            let mut body = Vec::new();
            let mut at = head_end;
            loop {
                let line_end = loop {
                    if let Some(p) = find(&self.buf[at..], b"\r\n") {
                        break at + p;
                    }
                    self.more().await;
                };
                let size_text = String::from_utf8_lossy(&self.buf[at..line_end]).into_owned();
                let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                    .expect("a chunk size");
                at = line_end + 2;
                if size == 0 {
                    // No trailers are sent: the final CRLF.
                    self.fill(at + 2).await;
                    break;
                }
                self.fill(at + size + 2).await;
                body.extend_from_slice(&self.buf[at..at + size]);
                at += size + 2;
            }
            body
        } else {
            panic!("a response without a length (status {status})");
        };
        Reply {
            ttfb,
            status,
            headers,
            body,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Seeding.

struct Person {
    id: UserId,
    email: String,
    name: String,
}

const NAME_PARTS: [&[&str]; 3] = [
    &[
        "Nordic", "Alpine", "Baltic", "Rhine", "Atlas", "Delta", "Summit", "Harbour", "Meridian",
        "Granite", "Silver", "Oak", "Cedar", "Aurora", "Pioneer", "Vector", "Crown", "Falcon",
        "Lumen", "Orbit",
    ],
    &[
        "Steel",
        "Logistics",
        "Office Supplies",
        "Packaging",
        "Chemicals",
        "Electronics",
        "Textiles",
        "Foods",
        "Machinery",
        "Consulting",
        "Printing",
        "Cleaning",
        "Software",
        "Timber",
        "Plastics",
        "Energy",
        "Freight",
        "Tools",
        "Glass",
        "Paper",
    ],
    &[
        "GmbH",
        "AG",
        "Ltd",
        "SAS",
        "BV",
        "S.p.A.",
        "Oy",
        "AB",
        "Sp. z o.o.",
        "KG",
    ],
];
const COUNTRIES: [&str; 8] = ["DE", "FR", "NL", "IT", "PL", "SE", "FI", "AT"];

/// A valid German IBAN from 18 random digits.
fn iban(rng: &mut StdRng) -> String {
    let bban: String = (0..18)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect();
    // mod 97 of BBAN ‖ "DE" as digits (1314) ‖ "00".
    let rem = format!("{bban}131400")
        .bytes()
        .fold(0u32, |r, d| (r * 10 + u32::from(d - b'0')) % 97);
    format!("DE{:02}{bban}", 98 - rem)
}

/// Suppliers as the app writes them (`PgSupplierRepository::create`, then onboarding:
/// name, VAT id, IBAN sealed by the field cipher with the row as AAD, its hint), inserted
/// as the runtime role in tenant transactions, 2,500 rows per statement.
async fn seed_suppliers(
    db: &TenantDb,
    cipher: &procuhelp_tenancy::FieldCipher,
    org: OrgId,
    created_by: UserId,
    count: usize,
    rng: &mut StdRng,
) {
    let start = OffsetDateTime::now_utc() - time::Duration::days(400);
    for chunk in (0..count).collect::<Vec<_>>().chunks(2500) {
        let (mut ids, mut names, mut countries, mut vats, mut statuses) =
            (vec![], vec![], vec![], vec![], vec![]);
        let (mut sealed, mut hints, mut created) = (vec![], vec![], vec![]);
        for &i in chunk {
            let id = Uuid::now_v7();
            let name = format!(
                "{} {} {}",
                NAME_PARTS[0][rng.random_range(0..NAME_PARTS[0].len())],
                NAME_PARTS[1][rng.random_range(0..NAME_PARTS[1].len())],
                NAME_PARTS[2][rng.random_range(0..NAME_PARTS[2].len())],
            );
            let country = COUNTRIES[rng.random_range(0..COUNTRIES.len())];
            let status = match rng.random_range(0..10) {
                0..5 => "active",
                5..8 => "invited",
                8 => "suspended",
                _ => "archived",
            };
            let onboarded = status != "invited";
            let (vat, seal, hint) = if onboarded {
                let number = iban(rng);
                let hint = Iban::parse(&number).expect("a valid IBAN").hint();
                let seal = cipher
                    .encrypt(
                        org,
                        FieldRef::new("suppliers", "iban", &id.to_string()),
                        number.as_bytes(),
                    )
                    .await
                    .unwrap();
                (
                    Some(format!(
                        "{country}{:09}",
                        rng.random_range(0..1_000_000_000u32)
                    )),
                    Some(seal),
                    Some(hint),
                )
            } else {
                (None, None, None)
            };
            ids.push(id);
            names.push(name);
            countries.push(country.to_owned());
            vats.push(vat);
            statuses.push(status.to_owned());
            sealed.push(seal);
            hints.push(hint);
            created.push(start + time::Duration::minutes(i as i64 * 50));
        }
        let mut tx = db.begin(org).await.unwrap();
        sqlx::query(
            "INSERT INTO app.suppliers (org_id, id, name, country, vat_id, status, created_by, \
             created_at, updated_at, iban_sealed, iban_hint) \
             SELECT $1, r.id, r.name, r.country, r.vat_id, r.status, $2, r.created_at, \
                    r.created_at, r.sealed, r.hint \
             FROM UNNEST($3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], \
                         $8::timestamptz[], $9::bytea[], $10::text[]) \
                  AS r(id, name, country, vat_id, status, created_at, sealed, hint)",
        )
        .bind(org.as_uuid())
        .bind(created_by.as_uuid())
        .bind(&ids)
        .bind(&names)
        .bind(&countries)
        .bind(&vats)
        .bind(&statuses)
        .bind(&created)
        .bind(&sealed)
        .bind(&hints)
        .execute(tx.conn())
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
}

const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "procuhelp-cli/1.4",
];

/// One event of a realistic mix (shares in percent): supplier changes 30, sign-ins 22,
/// purchase requests 18, failed sign-ins 3 (by the system, the typed address sealed under
/// the day's unattributed key), supplier invitations 5, IBAN reveals 2, sign-outs 5,
/// session revocations 3, audit reads 5, elevations 2, system jobs 4.9 (no personal data),
/// account lock-outs 0.1.
fn audit_event(org: OrgId, at: OffsetDateTime, people: &[Person], rng: &mut StdRng) -> AuditEvent {
    let who = &people[rng.random_range(0..people.len())];
    let source: std::net::IpAddr = format!(
        "198.51.100.{}",
        rng.random_range(1..255u8) // TEST-NET-2
    )
    .parse()
    .unwrap();
    let agent = AGENTS[rng.random_range(0..AGENTS.len())];
    let request_id = format!("{:016x}", rng.random::<u64>());
    let by_user = |action, outcome| {
        AuditEvent::new(Some(org), Actor::User { id: who.id }, action, outcome)
            .at(at)
            .source(Some(source), Some(agent))
            .person(who.id, Some(who.email.as_str()), Some(who.name.as_str()))
            .request_id(request_id.clone())
    };
    let supplier = format!("supplier:{}", Uuid::now_v7());
    let request = format!("request:{}", Uuid::now_v7());
    let r = rng.random_range(0..1000);
    match r {
        0..300 => by_user(Action::SupplierUpdated, Outcome::Success)
            .target(supplier)
            .context(serde_json::json!({ "fields": ["name", "vat_id"] })),
        300..520 => by_user(Action::LoginSucceeded, Outcome::Success)
            .context(serde_json::json!({ "method": "password", "mfa": false })),
        520..610 => by_user(Action::RequestCreated, Outcome::Success)
            .target(request)
            .context(serde_json::json!({ "amount_cents": rng.random_range(1_000..5_000_000), "currency": "EUR" })),
        610..700 => by_user(Action::RequestApproved, Outcome::Success)
            .target(request)
            .context(serde_json::json!({ "step": 1 })),
        700..730 => AuditEvent::new(
            Some(org),
            Actor::System,
            Action::LoginFailed,
            Outcome::Failure,
        )
        .at(at)
        .source(Some(source), Some(agent))
        .context(serde_json::json!({ "method": "password", "reason": "bad_password" })),
        730..780 => by_user(Action::SupplierInvited, Outcome::Success)
            .target(supplier)
            .context(serde_json::json!({ "country": "DE" })),
        780..800 => by_user(Action::SupplierBankDetailsRevealed, Outcome::Success).target(supplier),
        800..850 => by_user(Action::Logout, Outcome::Success),
        850..880 => by_user(Action::SessionRevoked, Outcome::Success)
            .context(serde_json::json!({ "reason": "user" })),
        880..930 => by_user(Action::AuditRead, Outcome::Success)
            .context(serde_json::json!({ "filter": "Filter { from: None, to: None, action: None, actor: None, after_seq: None, limit: None, format: None }" })),
        930..950 => by_user(Action::ElevationGranted, Outcome::Success)
            .context(serde_json::json!({ "permission": "manage_users", "minutes": 30 })),
        950..999 => AuditEvent::new(
            Some(org),
            Actor::System,
            Action::BackupTaken,
            Outcome::Success,
        )
        .at(at)
        .context(serde_json::json!({ "bytes": rng.random_range(1_000_000..9_000_000), "kind": "daily" })),
        _ => AuditEvent::new(
            Some(org),
            Actor::System,
            Action::AccountLocked,
            Outcome::Success,
        )
        .at(at)
        .target(format!("user:{}", who.id))
        .context(serde_json::json!({ "method": "password", "failures": 10, "today": 10 })),
    }
}

/// `count` events over the last 100 days, appended by `PgAuditSink::append_batch` in
/// batches of 1,000 (one transaction, one chain lock and one INSERT each).
async fn seed_audit(
    sink: &PgAuditSink,
    org: OrgId,
    people: &[Person],
    count: usize,
    rng: &mut StdRng,
) {
    let span = time::Duration::days(100);
    let start = OffsetDateTime::now_utc() - span - time::Duration::hours(1);
    let step = span / count as f64;
    let mut n = 0;
    while n < count {
        let batch: Vec<AuditEvent> = (n..(n + 1000).min(count))
            .map(|i| audit_event(org, start + step * i as f64, people, rng))
            .collect();
        sink.append_batch(org, &batch).await.unwrap();
        n += batch.len();
    }
}

// ---------------------------------------------------------------------------------------
// Statistics.

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[derive(Debug, Clone)]
struct Summary {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn summary(mut v: Vec<Duration>) -> Summary {
    v.sort();
    Summary {
        p50: percentile(&v, 50.0),
        p99: percentile(&v, 99.0),
        max: *v.last().unwrap(),
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

// ---------------------------------------------------------------------------------------
// Pages.

/// The page's `rel="next"` link, unescaped.
fn next_link(html: &str) -> Option<String> {
    let at = html.find(r#"rel="next" href=""#)? + r#"rel="next" href=""#.len();
    let end = html[at..].find('"')?;
    Some(html[at..at + end].replace("&amp;", "&"))
}

/// The rows of a page's table (every `<tr` but the head's).
fn rows(html: &str) -> usize {
    html.matches("<tr").count().saturating_sub(1)
}

/// The query of a path, without the peer's `org=…` parameter.
fn query_of(path: &str) -> String {
    let q = path.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&')
        .filter(|kv| !kv.starts_with("org="))
        .collect::<Vec<_>>()
        .join("&")
}

struct Case {
    name: String,
    sdk: String,
    peer: String,
}

struct Measured {
    name: String,
    rows: usize,
    bytes: (usize, usize),
    sdk: Summary,
    peer: Summary,
    concurrent: Option<(Summary, f64, Summary, f64)>,
}

async fn check_pair(
    sdk: &mut Client,
    peer: &mut Client,
    cookie: &str,
    case: &Case,
) -> (usize, usize, usize) {
    let a = sdk.get(&case.sdk, Some(cookie)).await;
    assert_eq!(a.status, 200, "{}: {}", case.sdk, a.text());
    let b = peer.get(&case.peer, None).await;
    assert_eq!(b.status, 200, "{}: {}", case.peer, b.text());
    let (ta, tb) = (a.text(), b.text());
    assert_eq!(rows(&ta), rows(&tb), "{}: rows differ", case.name);
    assert_eq!(
        next_link(&ta).map(|l| query_of(&l)),
        next_link(&tb).map(|l| query_of(&l)),
        "{}: the next pages differ",
        case.name
    );
    (rows(&ta), a.body.len(), b.body.len())
}

async fn concurrent(
    port: u16,
    path: &str,
    cookie: Option<&str>,
    c: usize,
    seconds: u64,
) -> (Summary, f64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..c)
        .map(|_| {
            let path = path.to_owned();
            let cookie = cookie.map(str::to_owned);
            tokio::spawn(async move {
                let mut client = Client::connect(port).await;
                let mut v = Vec::new();
                while Instant::now() < deadline {
                    let r = client.get(&path, cookie.as_deref()).await;
                    assert_eq!(r.status, 200);
                    v.push(r.ttfb);
                }
                v
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rps = all.len() as f64 / seconds as f64;
    (summary(all), rps)
}

/// Where the audit page's time goes, without HTTP: the parts of
/// `PgAuditSink::read_events` (first page, no filter) timed one by one, sequentially,
/// `n` times each, interleaved.
async fn breakdown(log: &PgAuditSink, db: &TenantDb, org: OrgId, user: UserId, n: usize) {
    let access = || {
        AuditEvent::new(
            Some(org),
            Actor::User { id: user },
            Action::AuditRead,
            Outcome::Success,
        )
        .context(serde_json::json!({ "filter": "breakdown" }))
    };
    let query = EventQuery {
        limit: AUDIT_PAGE as u32,
        ..EventQuery::default()
    };
    const KEY_SQL: &str = "SELECT kek_version, wrapped FROM app.audit_person_keys \
         WHERE org_id = $1 AND id = $2 AND erased_at IS NULL";
    let mut parts: [Vec<Duration>; 5] = Default::default();
    let mut lookups = 0;
    for _ in 0..n {
        let t = Instant::now();
        log.record(access()).await.unwrap();
        parts[0].push(t.elapsed());

        let t = Instant::now();
        let mut tx = db.begin(org).await.unwrap();
        let rows = sqlx::query(&format!("{AUDIT_SELECT} {AUDIT_WHERE}"))
            .bind(org.as_uuid())
            .bind(0i64)
            .bind(None::<OffsetDateTime>)
            .bind(None::<OffsetDateTime>)
            .bind(None::<String>)
            .bind(None::<Uuid>)
            .bind(AUDIT_PAGE as i64)
            .fetch_all(tx.conn())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        parts[1].push(t.elapsed());
        let keys: Vec<Uuid> = rows
            .iter()
            .filter_map(|r| sqlx::Row::get::<Option<Uuid>, _>(r, "person_key"))
            .collect();
        lookups = keys.len();

        let t = Instant::now();
        let mut tx = db.begin(org).await.unwrap();
        for key in &keys {
            let _: Option<(Option<i32>, Option<Vec<u8>>)> = sqlx::query_as(KEY_SQL)
                .bind(org.as_uuid())
                .bind(key)
                .fetch_optional(tx.conn())
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        parts[2].push(t.elapsed());

        let t = Instant::now();
        let mut distinct = keys.clone();
        distinct.sort();
        distinct.dedup();
        let mut tx = db.begin(org).await.unwrap();
        let _: Vec<(Uuid, Option<i32>, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT id, kek_version, wrapped FROM app.audit_person_keys \
             WHERE org_id = $1 AND id = ANY($2) AND erased_at IS NULL",
        )
        .bind(org.as_uuid())
        .bind(&distinct)
        .fetch_all(tx.conn())
        .await
        .unwrap();
        tx.commit().await.unwrap();
        parts[3].push(t.elapsed());

        let t = Instant::now();
        let events = log.read_events(access(), &query).await.unwrap();
        assert_eq!(events.len(), AUDIT_PAGE);
        parts[4].push(t.elapsed());
    }
    let labels = [
        "record the audit.read event (durable group commit)",
        "BEGIN + tenant, the page's SELECT (100 rows), COMMIT",
        "person-key lookups as open_rows does them (one per row), in a tx",
        "the same keys in one query (id = ANY), in a tx",
        "PgAuditSink::read_events, whole (record + read + open)",
    ];
    println!(
        "\nwhere the audit page's time goes (first page, no HTTP, {n} rounds; {lookups} of {AUDIT_PAGE} rows carry personal data):"
    );
    for (label, v) in labels.iter().zip(parts) {
        let s = summary(v);
        println!(
            "  {label:66} p50 {:6.2} ms  p99 {:6.2} ms",
            ms(s.p50),
            ms(s.p99)
        );
    }
}

async fn print_plan(conn: &mut sqlx::PgConnection, label: &str, call: &str) {
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE {call}"
    ))
    .fetch_all(conn)
    .await
    .unwrap();
    println!("\n-- {label}:");
    for line in plan {
        println!("   {line}");
    }
}

/// The plans of the pages' statements as the runtime role has them (row-level security,
/// `plan_cache_mode = force_generic_plan`), then the proposed fix for the filtered audit
/// page tried on this scratch database: an index leading with the action, and the filter
/// written into the statement only when given (a generic plan cannot use an index for
/// `($5 IS NULL OR action = $5)`).
async fn explain(scratch: &ScratchDb, db: &TenantDb, org: OrgId, actor: Uuid) {
    let o = org.as_uuid();
    let mut tx = db.begin(org).await.unwrap();
    sqlx::raw_sql(&format!(
        "PREPARE audit_page(uuid, bigint, timestamptz, timestamptz, text, uuid, bigint) AS \
         {AUDIT_SELECT} {AUDIT_WHERE}; \
         PREPARE suppliers_first(bigint) AS SELECT org_id, id, name, country, vat_id, status, \
         created_by, created_at, updated_at FROM app.suppliers ORDER BY name, id LIMIT $1; \
         PREPARE suppliers_after(text, uuid, bigint) AS SELECT org_id, id, name, country, vat_id, \
         status, created_by, created_at, updated_at FROM app.suppliers WHERE (name, id) > ($1, $2) \
         ORDER BY name, id LIMIT $3; \
         PREPARE person_key(uuid, uuid) AS SELECT kek_version, wrapped FROM app.audit_person_keys \
         WHERE org_id = $1 AND id = $2 AND erased_at IS NULL"
    ))
    .execute(tx.conn())
    .await
    .unwrap();
    let key: Uuid = sqlx::query_scalar("SELECT id FROM app.audit_person_keys LIMIT 1")
        .fetch_one(tx.conn())
        .await
        .unwrap();
    let (deep_name, deep_id): (String, Uuid) =
        sqlx::query_as("SELECT name, id FROM app.suppliers ORDER BY name, id OFFSET 8999 LIMIT 1")
            .fetch_one(tx.conn())
            .await
            .unwrap();
    let deep_name = deep_name.replace('\'', "''");
    for (label, call) in [
        (
            "audit first page",
            format!("audit_page('{o}', 0, NULL, NULL, NULL, NULL, 100)"),
        ),
        (
            "audit, action = auth.login_failed",
            format!("audit_page('{o}', 0, NULL, NULL, 'auth.login_failed', NULL, 100)"),
        ),
        (
            "audit, action = auth.account_locked",
            format!("audit_page('{o}', 0, NULL, NULL, 'auth.account_locked', NULL, 100)"),
        ),
        (
            "audit, actor",
            format!("audit_page('{o}', 0, NULL, NULL, NULL, '{actor}', 100)"),
        ),
        (
            "audit deep page",
            format!("audit_page('{o}', 5000, NULL, NULL, NULL, NULL, 100)"),
        ),
        ("suppliers first page", "suppliers_first(50)".to_owned()),
        (
            "suppliers deep page",
            format!("suppliers_after('{deep_name}', '{deep_id}', 50)"),
        ),
        (
            "person key (one per event with personal data)",
            format!("person_key('{o}', '{key}')"),
        ),
    ] {
        print_plan(tx.conn(), &format!("{label} (runtime role)"), &call).await;
    }
    tx.rollback().await.unwrap();

    // The proposed fix, tried here.
    let admin = scratch.admin_pool(1).await.unwrap();
    sqlx::raw_sql(
        "CREATE INDEX audit_events_by_action ON app.audit_events (org_id, action, seq); \
         ANALYZE app.audit_events",
    )
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
    let mut tx = db.begin(org).await.unwrap();
    sqlx::raw_sql(&format!(
        "PREPARE audit_page2(uuid, bigint, timestamptz, timestamptz, text, uuid, bigint) AS \
         {AUDIT_SELECT} {AUDIT_WHERE}; \
         PREPARE audit_by_action(uuid, bigint, text, bigint) AS {AUDIT_SELECT} \
         WHERE org_id = $1 AND seq > $2 AND action = $3 ORDER BY seq LIMIT $4"
    ))
    .execute(tx.conn())
    .await
    .unwrap();
    for (label, call) in [
        (
            "with index (org_id, action, seq), today's statement: action = auth.account_locked",
            format!("audit_page2('{o}', 0, NULL, NULL, 'auth.account_locked', NULL, 100)"),
        ),
        (
            "with index (org_id, action, seq), action written in: auth.account_locked",
            format!("audit_by_action('{o}', 0, 'auth.account_locked', 100)"),
        ),
        (
            "with index (org_id, action, seq), action written in: auth.login_failed",
            format!("audit_by_action('{o}', 0, 'auth.login_failed', 100)"),
        ),
    ] {
        print_plan(tx.conn(), &format!("{label} (runtime role)"), &call).await;
    }
    tx.rollback().await.unwrap();
}

fn main() {
    let o = options();
    // As a server logs: INFO, formatted, into a sink (the access log's line per request).
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(std::io::sink)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let vault_dir =
        std::env::temp_dir().join(format!("procuhelp-bench-pages-{}", std::process::id()));

    // The world, as examples/server/tests/common/mod.rs builds it.
    let (scratch, state, audit_log, db, orgs, people, peer_pool) = rt.block_on(async {
        let scratch = ScratchDb::migrated_with(&procuhelp_server::database::schema())
            .await
            .unwrap();
        let owner = scratch.owner_pool(2).await.unwrap();
        let a = procuhelp_tenancy::create_organisation(&owner, "Heavy org")
            .await
            .unwrap();
        let b = procuhelp_tenancy::create_organisation(&owner, "Other org")
            .await
            .unwrap();
        owner.close().await;
        let runtime = scratch.runtime_pool(8).await.unwrap();
        let vault: Arc<dyn procuhelp_core::vault::SecretProvider> =
            Arc::new(procuhelp_core::vault::FileVault::open_or_create(&vault_dir).unwrap());
        let key_pool = scratch.runtime_pool(2).await.unwrap();
        let cipher = Arc::new(procuhelp_server::keys::field_cipher(
            TenantDb::new(key_pool),
            vault.clone(),
        ));
        let audit_pool = scratch.runtime_pool(2).await.unwrap();
        let audit_log = PgAuditSink::new(TenantDb::new(audit_pool), vault.clone());
        // As in `serve`: unauthenticated refusals are counted, not all stored.
        let sink: Arc<dyn AuditSink> =
            Arc::new(procuhelp_audit::RefusalAggregator::new(audit_log.clone()));
        let hasher = PasswordHasher::for_tests();
        let phc = hasher.hash(&SecretText::new(PASSWORD.to_owned())).unwrap();
        let state = AppState::assemble(
            runtime.clone(),
            cipher.clone(),
            vault,
            sink,
            Arc::new(SystemClock),
            hasher,
        )
        .with_audit_log(audit_log.clone());
        let db = state.sdk.tenants().clone();
        let mut people: Vec<Vec<Person>> = Vec::new();
        for (i, org) in [a, b].into_iter().enumerate() {
            let mut tx = db.begin(org).await.unwrap();
            let mut list = Vec::new();
            for u in 0..USERS {
                let (role, first) = match u {
                    0 => (Role::Admin, "Ada"),
                    1..4 => (Role::Approver, ["Grace", "Alan", "Edsger"][u - 1]),
                    4..8 => (
                        Role::Requester,
                        ["Barbara", "Donald", "Frances", "Ken"][u - 4],
                    ),
                    _ => (Role::ReadOnly, ["Radia", "Niklaus"][u - 8]),
                };
                let email = format!("{}.{u}@org{i}.test", first.to_ascii_lowercase());
                let name = format!("{first} Example{u}");
                let id = directory::create(
                    &mut tx,
                    NewUser {
                        email: Email::parse(&email).unwrap(),
                        display_name: name.clone(),
                        role: Some(role),
                        password_hash: (u == 0).then(|| phc.clone()),
                    },
                    OffsetDateTime::now_utc(),
                )
                .await
                .unwrap();
                list.push(Person { id, email, name });
            }
            tx.commit().await.unwrap();
            people.push(list);
        }

        let mut rng = StdRng::seed_from_u64(15);
        let t = Instant::now();
        for (i, org) in [a, b].into_iter().enumerate() {
            seed_suppliers(&db, &cipher, org, people[i][0].id, SUPPLIERS[i], &mut rng).await;
        }
        let t_suppliers = t.elapsed();
        let t = Instant::now();
        for (i, org) in [a, b].into_iter().enumerate() {
            seed_audit(&audit_log, org, &people[i], EVENTS[i], &mut rng).await;
        }
        let t_audit = t.elapsed();
        // The peer's copies (as the superuser: it reads the app's tables past RLS), owned
        // by the table owner; then statistics and visibility maps for both sides.
        let t = Instant::now();
        let admin = scratch.admin_pool(1).await.unwrap();
        let owner_role = scratch.owner_role().to_owned();
        for sql in [
            format!("CREATE SCHEMA peer AUTHORIZATION {owner_role}"),
            "CREATE TABLE peer.suppliers (LIKE app.suppliers INCLUDING ALL)".to_owned(),
            "INSERT INTO peer.suppliers SELECT * FROM app.suppliers".to_owned(),
            "CREATE TABLE peer.audit_events (LIKE app.audit_events INCLUDING ALL)".to_owned(),
            "INSERT INTO peer.audit_events SELECT * FROM app.audit_events".to_owned(),
            "CREATE TABLE peer.users (LIKE app.users INCLUDING ALL)".to_owned(),
            "INSERT INTO peer.users SELECT * FROM app.users".to_owned(),
            format!("ALTER TABLE peer.suppliers OWNER TO {owner_role}"),
            format!("ALTER TABLE peer.audit_events OWNER TO {owner_role}"),
            format!("ALTER TABLE peer.users OWNER TO {owner_role}"),
        ] {
            sqlx::query(&sql).execute(&admin).await.unwrap();
        }
        sqlx::raw_sql(
            "VACUUM ANALYZE app.suppliers, app.audit_events, app.audit_person_keys, app.users, \
             peer.suppliers, peer.audit_events, peer.users",
        )
        .execute(&admin)
        .await
        .unwrap();
        admin.close().await;
        let t_copy = t.elapsed();
        println!(
            "seeded: {} + {} suppliers in {:.1} s, {} + {} audit events in {:.1} s \
             ({:.0} events/s), peer copies + VACUUM ANALYZE in {:.1} s",
            SUPPLIERS[0],
            SUPPLIERS[1],
            t_suppliers.as_secs_f64(),
            EVENTS[0],
            EVENTS[1],
            t_audit.as_secs_f64(),
            (EVENTS[0] + EVENTS[1]) as f64 / t_audit.as_secs_f64(),
            t_copy.as_secs_f64()
        );
        let peer_pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .connect_with(scratch.options_for(&owner_role))
            .await
            .unwrap();
        (scratch, state, audit_log, db, [a, b], people, peer_pool)
    });

    // The servers: the app as `serve` runs it (with the peer's address), plain HTTP.
    let app = procuhelp_server::app::app(state.clone(), Limits::default());
    let peer_app = Router::new()
        .route("/peer/suppliers", get(peer_suppliers))
        .route("/peer/audit", get(peer_audit))
        .with_state(Peer {
            pool: peer_pool.clone(),
        });
    let (sdk_port, peer_port) = rt.block_on(async {
        let l1 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let l2 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ports = (
            l1.local_addr().unwrap().port(),
            l2.local_addr().unwrap().port(),
        );
        tokio::spawn(async move {
            axum::serve(l1, app.into_make_service_with_connect_info::<SocketAddr>())
                .await
                .unwrap()
        });
        tokio::spawn(async move { axum::serve(l2, peer_app).await.unwrap() });
        ports
    });

    // The client runs on this thread, apart from the server's two workers.
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let org = orgs[0];
    let actor = people[0][3].id.as_uuid();
    let results = client_rt.block_on(async {
        let mut sdk = Client::connect(sdk_port).await;
        let mut peer = Client::connect(peer_port).await;
        let login = sdk
            .post_json(
                "/api/login",
                &serde_json::json!({ "org": org.to_string(), "email": people[0][0].email, "password": PASSWORD })
                    .to_string(),
            )
            .await;
        assert_eq!(login.status, 200, "login: {}", login.text());
        let set = login.header("set-cookie").expect("a session cookie");
        let cookie = set.split(';').next().unwrap().to_owned();

        // The deep pages: follow the next links as a reader would.
        let mut path = "/suppliers".to_owned();
        for _ in 0..SUPPLIER_DEEP_FOLLOWS {
            let r = sdk.get(&path, Some(&cookie)).await;
            assert_eq!(r.status, 200);
            path = next_link(&r.text()).expect("a next page");
        }
        let suppliers_deep = query_of(&path);
        let mut path = "/audit".to_owned();
        for _ in 0..AUDIT_DEEP_FOLLOWS {
            let r = sdk.get(&path, Some(&cookie)).await;
            assert_eq!(r.status, 200);
            path = next_link(&r.text()).expect("a next page");
        }
        let audit_deep = query_of(&path);

        let pair = |name: &str, sdk: &str, peer: &str, query: &str| Case {
            name: name.to_owned(),
            sdk: if query.is_empty() {
                sdk.to_owned()
            } else {
                format!("{sdk}?{query}")
            },
            peer: if query.is_empty() {
                format!("{peer}?org={org}")
            } else {
                format!("{peer}?org={org}&{query}")
            },
        };
        let cases = vec![
            pair("suppliers, first page", "/suppliers", "/peer/suppliers", ""),
            pair(
                "suppliers, deep page (after row 9,000)",
                "/suppliers",
                "/peer/suppliers",
                &suppliers_deep,
            ),
            pair("audit, first page", "/audit", "/peer/audit", ""),
            pair(
                "audit, action = auth.login_failed (3 %)",
                "/audit",
                "/peer/audit",
                "action=auth.login_failed",
            ),
            pair(
                "audit, action = auth.account_locked (0.1 %)",
                "/audit",
                "/peer/audit",
                "action=auth.account_locked",
            ),
            pair(
                "audit, actor = one of 10 users (~7 %)",
                "/audit",
                "/peer/audit",
                &format!("actor={actor}"),
            ),
            pair(
                &format!("audit, deep page ({AUDIT_DEEP_FOLLOWS} next links)"),
                "/audit",
                "/peer/audit",
                &audit_deep,
            ),
        ];
        println!(
            "pages bench: {} requests per case and side after {} warm-up, one client, \
             kept-alive connections, SDK and peer alternating; load average before: {}",
            o.requests,
            o.warmup,
            load_average()
        );
        let mut measured = Vec::new();
        for case in &cases {
            let (rows, sdk_bytes, peer_bytes) = check_pair(&mut sdk, &mut peer, &cookie, case).await;
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for i in 0..o.warmup + o.requests {
                let r = sdk.get(&case.sdk, Some(&cookie)).await;
                assert_eq!(r.status, 200, "{}", case.sdk);
                let p = peer.get(&case.peer, None).await;
                assert_eq!(p.status, 200, "{}", case.peer);
                if i >= o.warmup {
                    a.push(r.ttfb);
                    b.push(p.ttfb);
                }
            }
            let (sa, sb) = (summary(a), summary(b));
            println!(
                "{:48} sdk p50 {:7.2} p99 {:7.2} max {:7.2} ms | peer p50 {:6.2} p99 {:6.2} max {:6.2} ms | p99 {:5.1}×",
                case.name,
                ms(sa.p50),
                ms(sa.p99),
                ms(sa.max),
                ms(sb.p50),
                ms(sb.p99),
                ms(sb.max),
                ms(sa.p99) / ms(sb.p99)
            );
            measured.push(Measured {
                name: case.name.clone(),
                rows,
                bytes: (sdk_bytes, peer_bytes),
                sdk: sa,
                peer: sb,
                concurrent: None,
            });
        }
        if o.concurrency > 0 {
            println!(
                "\nconcurrent: {} connections for {} s per case and side (load average before: {})",
                o.concurrency,
                o.seconds,
                load_average()
            );
            for (case, m) in cases.iter().zip(measured.iter_mut()) {
                let (sa, ra) =
                    concurrent(sdk_port, &case.sdk, Some(&cookie), o.concurrency, o.seconds).await;
                let (sb, rb) =
                    concurrent(peer_port, &case.peer, None, o.concurrency, o.seconds).await;
                println!(
                    "{:48} sdk p99 {:7.2} ms {:6.0} req/s | peer p99 {:6.2} ms {:6.0} req/s",
                    case.name,
                    ms(sa.p99),
                    ra,
                    ms(sb.p99),
                    rb
                );
                m.concurrent = Some((sa, ra, sb, rb));
            }
        }
        measured
    });

    println!(
        "\n| page | rows | SDK p50 | SDK p99 | SDK max | peer p50 | peer p99 | peer max | p50 ratio | p99 ratio | p99 < 50 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for m in &results {
        println!(
            "| {} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.1}× | {:.1}× | {} |",
            m.name,
            m.rows,
            ms(m.sdk.p50),
            ms(m.sdk.p99),
            ms(m.sdk.max),
            ms(m.peer.p50),
            ms(m.peer.p99),
            ms(m.peer.max),
            ms(m.sdk.p50) / ms(m.peer.p50),
            ms(m.sdk.p99) / ms(m.peer.p99),
            if m.sdk.p99 < Duration::from_millis(50) {
                "yes"
            } else {
                "**no**"
            }
        );
    }
    println!("\npage sizes (bytes, sdk / peer):");
    for m in &results {
        println!("  {:48} {:>7} / {:>7}", m.name, m.bytes.0, m.bytes.1);
    }
    if results.iter().any(|m| m.concurrent.is_some()) {
        println!(
            "\n| page ({} connections) | SDK p99 | SDK req/s | peer p99 | peer req/s | p99 ratio |",
            o.concurrency
        );
        println!("|---|---|---|---|---|---|");
        for m in &results {
            if let Some((sa, ra, sb, rb)) = &m.concurrent {
                println!(
                    "| {} | {:.2} ms | {:.0} | {:.2} ms | {:.0} | {:.1}× |",
                    m.name,
                    ms(sa.p99),
                    ra,
                    ms(sb.p99),
                    rb,
                    ms(sa.p99) / ms(sb.p99)
                );
            }
        }
    }
    println!("\nload average after: {}", load_average());

    rt.block_on(async {
        breakdown(&audit_log, &db, org, people[0][0].id, o.requests.min(200)).await;
        if o.explain {
            explain(&scratch, &db, org, actor).await;
        }
        drop(audit_log);
        drop(state);
        peer_pool.close().await;
        db.close().await;
        scratch.drop_all().await.unwrap();
    });
    std::fs::remove_dir_all(&vault_dir).ok();
    println!("\ntotal {:.0} s", started.elapsed().as_secs_f64());
}
