//! Journeys through the pages in a real browser (issue #15): Debian's headless Chromium
//! driven over WebDriver (`chromedriver`), against `procuhelp-server serve` on its embedded
//! defaults on loopback. No JavaScript of ours runs: what the person does is typing and
//! pressing buttons. Every journey ends with its last page saved as a screenshot under
//! `target/browser-artifacts/`, and with the browser's log read for any Content Security
//! Policy violation (a canary line proves the log is being read).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum_server::Handle;
use clap::Parser as _;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `chromedriver` on a loopback port, killed with the test.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            // Its own process group, so that the browsers it starts go with it (a test
            // that fails before closing its browser would leave them running).
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; scripts/setup.sh installs it)");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver { child, url }
    }

    async fn browser(&self) -> Client {
        self.browser_downloading_to(&std::env::temp_dir()).await
    }

    async fn browser_downloading_to(&self, downloads: &std::path::Path) -> Client {
        let caps = json!({
            "browserName": "chrome",
            // The server's own self-signed certificate (embedded default).
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1200,1000"],
                "prefs": {
                    "download.default_directory": downloads.to_str().unwrap(),
                    "download.prompt_for_download": false,
                },
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// aiosmtpd on a loopback port, keeping messages in a Maildir; killed with the test.
struct Smtp {
    child: Child,
    maildir: PathBuf,
    config: PathBuf,
}

impl Smtp {
    async fn start(dir: &std::path::Path) -> Smtp {
        let port = free_port();
        let maildir = dir.join("maildir");
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd (PyPI; scripts/setup.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let config = dir.join("smtp.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"host": "127.0.0.1", "port": {port}, "from": "ProcuHelp <no-reply@procuhelp.test>", "tls": "none"}}"#
            ),
        )
        .unwrap();
        Smtp {
            child,
            maildir,
            config,
        }
    }

    /// The first message delivered to `to`, whole, its quoted-printable body decoded (as a
    /// mail client shows it).
    async fn message_to(&self, to: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for entry in std::fs::read_dir(self.maildir.join("new"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                if text.contains(&format!("To: {to}")) {
                    return quoted_printable_decoded(&text);
                }
            }
            assert!(Instant::now() < deadline, "no message to {to}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// RFC 2045 quoted-printable: soft line breaks joined, `=XX` as its byte.
fn quoted_printable_decoded(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser's log since the last read (chromedriver's `se/log`).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

async fn log_lines(browser: &Client) -> Vec<String> {
    let entries = browser.issue_cmd(BrowserLog).await.unwrap();
    entries
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The page's path once the browser is there (a form's redirect has landed).
async fn wait_for_path(browser: &Client, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let url = browser.current_url().await.unwrap();
        if url.path() == path {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still at {url}, expected {path}: {}",
            browser.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The element, once the page showing it has loaded (after a form's redirect to the
/// same path, the path alone does not say the new page is there).
async fn wait_for(browser: &Client, css: &str) -> fantoccini::elements::Element {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(e) = browser.find(Locator::Css(css)).await {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "no {css}: {}",
            browser.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(browser: &Client, css: &str, text: &str) {
    let field = browser.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn press(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn text(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The page as it is now, under `target/browser-artifacts/{name}.png`.
async fn snap(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(artifacts().join(format!("{name}.png")), png).unwrap();
}

/// Ends a journey: its last page as a screenshot, and no CSP violation in the log.
async fn finish(browser: Client, journey: &str) {
    snap(&browser, journey).await;
    browser
        .execute("console.error('procuhelp-log-canary')", vec![])
        .await
        .unwrap();
    let lines = log_lines(&browser).await;
    assert!(
        lines.iter().any(|l| l.contains("procuhelp-log-canary")),
        "the browser log is not being read: {lines:?}"
    );
    let violations: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("Content Security Policy") || l.contains("Refused to"))
        .collect();
    assert!(
        violations.is_empty(),
        "{journey}: CSP violations {violations:?}"
    );
    browser.close().await.unwrap();
}

/// An organisation with its first admin invited, on the embedded default in `dir`:
/// (organisation id, invitation token).
async fn organisation_with_invited_admin(dir: &std::path::Path) -> (String, String) {
    let data_dir = dir.to_str().unwrap();
    let cli = procuhelp_server::cli::Cli::parse_from([
        "procuhelp-server",
        "org",
        "create",
        "--data-dir",
        data_dir,
        "--name",
        "Browser Test Ltd",
        "--admin-email",
        "ada@browser.test",
        "--admin-name",
        "Ada Admin",
    ]);
    let procuhelp_server::cli::Command::Org(command) = cli.command else {
        unreachable!()
    };
    let lines = procuhelp_server::orgs::command(command.command)
        .await
        .unwrap();
    let org = lines[0].split_whitespace().nth(1).unwrap().to_owned();
    (org, lines.last().unwrap().clone())
}

/// `procuhelp-server serve` on its embedded default in a data directory, on a free
/// loopback port, until [`Server::stop`].
struct Server {
    base: String,
    handle: Handle<SocketAddr>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn start(dir: &std::path::Path) -> Server {
        Server::start_with(serve_args(dir.to_owned())).await
    }

    /// With changed arguments (`serve_args` and then, say, `--smtp`).
    async fn start_with(args: procuhelp_server::cli::ServeArgs) -> Server {
        let https = args.https_addr;
        let handle: Handle<SocketAddr> = Handle::new();
        let task = tokio::spawn(procuhelp_server::serve::serve(args, Some(handle.clone())));
        let listening = tokio::time::timeout(Duration::from_secs(60), handle.listening())
            .await
            .unwrap();
        assert_eq!(listening, Some(https));
        Server {
            base: format!("https://127.0.0.1:{}", https.port()),
            handle,
            task,
        }
    }

    /// Stops it gracefully; it must have run without an error.
    async fn stop(self) {
        self.handle.graceful_shutdown(Some(Duration::from_secs(5)));
        self.task.await.unwrap().unwrap();
    }
}

fn serve_args(dir: PathBuf) -> procuhelp_server::cli::ServeArgs {
    let cli = procuhelp_server::cli::Cli::parse_from([
        "procuhelp-server",
        "serve",
        "--data-dir",
        dir.to_str().unwrap(),
        "--https-addr",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    let procuhelp_server::cli::Command::Serve(mut args) = cli.command else {
        unreachable!()
    };
    args.http_redirect_addr = None;
    args
}

fn totp(secret: &str, at: u64) -> String {
    let secret = totp_rs::Secret::Encoded(secret.to_owned())
        .to_bytes()
        .unwrap();
    totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        secret,
        None,
        String::new(),
    )
    .generate(at)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A new user accepts an invitation, signs in, turns on TOTP by reading the secret from
/// the page and computing the code, signs out, and signs in again with a code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invited_user_sets_a_password_turns_on_totp_and_signs_in_with_it() {
    procuhelp_server::tls::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("ph-browser-{}", uuid::Uuid::new_v4().simple()));
    let (org, token) = organisation_with_invited_admin(&dir).await;
    let server = Server::start(&dir).await;
    let base = server.base.clone();
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let password = "correct horse battery staple 42";

    // The invitation link.
    browser
        .goto(&format!("{base}/invitations/accept?token={token}"))
        .await
        .unwrap();
    fill(&browser, "input[name=password]", password).await;
    press(&browser, "main button[type=submit]").await;
    wait_for_path(&browser, "/login").await;
    assert!(
        text(&browser, "main")
            .await
            .contains("Your password is set")
    );

    // Sign in (the organisation comes with the link).
    let org_field = browser.find(Locator::Css("input[name=org]")).await.unwrap();
    assert_eq!(
        org_field.prop("value").await.unwrap().as_deref(),
        Some(org.as_str())
    );
    fill(&browser, "input[name=email]", "ada@browser.test").await;
    fill(&browser, "input[name=password]", password).await;
    press(&browser, "main button[type=submit]").await;
    wait_for_path(&browser, "/account").await;
    wait_for(&browser, "[data-mfa=off]").await;

    // Turn on TOTP: the secret as text, the code computed from it.
    press(&browser, "form[action='/account/mfa/enrol'] button").await;
    wait_for_path(&browser, "/account/mfa/enrol").await;
    let secret = text(&browser, "#totp-secret").await;
    assert!(secret.len() >= 16, "{secret}");
    browser.find(Locator::Css("img.qr")).await.unwrap();
    let enrolled_at = unix_now();
    fill(&browser, "input[name=code]", &totp(&secret, enrolled_at)).await;
    press(&browser, "main button[type=submit]").await;
    wait_for_path(&browser, "/account/mfa/confirm").await;
    let codes = browser
        .find_all(Locator::Css("#recovery-codes li"))
        .await
        .unwrap();
    assert!(codes.len() >= 8, "{} recovery codes", codes.len());
    press(&browser, "main a[href='/account']").await;
    wait_for_path(&browser, "/account").await;
    wait_for(&browser, "[data-mfa=on]").await;

    // Sign out, and in again: password, then a code of a later step (a code is used once).
    press(&browser, "header form[action='/logout'] button").await;
    wait_for_path(&browser, "/login").await;
    assert!(text(&browser, "main").await.contains("You are signed out"));
    browser.goto(&format!("{base}/account")).await.unwrap();
    wait_for_path(&browser, "/login").await;
    browser
        .goto(&format!("{base}/login?org={org}"))
        .await
        .unwrap();
    fill(&browser, "input[name=email]", "ada@browser.test").await;
    fill(&browser, "input[name=password]", password).await;
    press(&browser, "main button[type=submit]").await;
    wait_for_path(&browser, "/login/mfa").await;
    // A wrong code: a clear message, still at the second step.
    fill(&browser, "input[name=code]", "000000").await;
    press(&browser, "main button[type=submit]").await;
    wait_for(&browser, "[data-error=code]").await;
    let next_step = (enrolled_at / 30 + 1) * 30;
    let wait = next_step.saturating_sub(unix_now());
    tokio::time::sleep(Duration::from_secs(wait + 1)).await;
    fill(&browser, "input[name=code]", &totp(&secret, unix_now())).await;
    press(&browser, "main button[type=submit]").await;
    wait_for_path(&browser, "/account").await;
    wait_for(&browser, "[data-mfa=on]").await;
    assert!(text(&browser, "header").await.contains("Ada Admin"));
    finish(browser, "journey-1-invitation-totp").await;

    server.stop().await;
    std::fs::remove_dir_all(&dir).ok();
}

/// Every page answers with the hardened headers, and a form from another site is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_answer_with_the_hardened_headers_and_refuse_other_sites_forms() {
    procuhelp_server::tls::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("ph-pages-{}", uuid::Uuid::new_v4().simple()));
    let (org, _) = organisation_with_invited_admin(&dir).await;
    let server = Server::start(&dir).await;
    let cert = std::fs::read(dir.join("tls/cert.pem")).unwrap();
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = server.base.clone();
    for path in [
        "/login",
        "/login?org=<script>alert(1)</script>",
        "/invitations/accept?token=x",
        "/account",
        "/login/mfa",
        "/static/app.css",
    ] {
        let res = client.get(format!("{base}{path}")).send().await.unwrap();
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        for name in [
            "strict-transport-security",
            "x-content-type-options",
            "referrer-policy",
            "x-frame-options",
        ] {
            assert!(h.contains_key(name), "{path}: no {name}");
        }
        let status = res.status();
        let body = res.text().await.unwrap();
        assert!(
            !body.contains("<script>alert(1)</script>"),
            "{path} reflected a script"
        );
        assert!(
            status.is_success() || status.is_redirection(),
            "{path}: {status}"
        );
    }
    // Another site's form posting a sign-in (login CSRF): refused before any check.
    let res = client
        .post(format!("{base}/login"))
        .header("sec-fetch-site", "cross-site")
        .form(&[
            ("org", org.as_str()),
            ("email", "a@b.test"),
            ("password", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("data-error=\"cross_site\"")
    );
    // A signed-in form without its token: refused (the same rule as the API's header).
    let res = client
        .post(format!("{base}/account/password"))
        .header("cookie", "procuhelp_session=whatever")
        .form(&[("current", "a"), ("new", "b")])
        .send()
        .await
        .unwrap();
    assert!(
        matches!(res.status().as_u16(), 401 | 403),
        "{}",
        res.status()
    );
    server.stop().await;
    std::fs::remove_dir_all(&dir).ok();
}

/// The demo organisation's people (seed-demo): role → (org, email, password).
async fn demo_people(dir: &std::path::Path) -> HashMap<String, (String, String, String)> {
    let cli = procuhelp_server::cli::Cli::parse_from([
        "procuhelp-server",
        "seed-demo",
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    let procuhelp_server::cli::Command::SeedDemo(args) = cli.command else {
        unreachable!()
    };
    let lines = procuhelp_server::seed_demo_command(&args).await.unwrap();
    let mut people = HashMap::new();
    // The first organisation's users come first: `role`; the second's: `b:role`.
    for line in lines.iter().filter(|l| l.starts_with("  ")) {
        let mut words = line.split_whitespace();
        let role = words.next().unwrap().to_owned();
        let field = |w: &str| w.split_once('=').unwrap().1.to_owned();
        let (org, email, password) = (
            field(words.next().unwrap()),
            field(words.next().unwrap()),
            field(words.next().unwrap()),
        );
        let key = if people.contains_key(&role) {
            format!("b:{role}")
        } else {
            role
        };
        people.insert(key, (org, email, password));
    }
    people
}

async fn sign_in(browser: &Client, base: &str, who: &(String, String, String)) {
    browser
        .goto(&format!("{base}/login?org={}", who.0))
        .await
        .unwrap();
    fill(browser, "input[name=email]", &who.1).await;
    fill(browser, "input[name=password]", &who.2).await;
    press(browser, "main button[type=submit]").await;
    wait_for_path(browser, "/account").await;
}

async fn sign_out(browser: &Client, base: &str) {
    browser.goto(&format!("{base}/account")).await.unwrap();
    press(browser, "header form[action='/logout'] button").await;
    wait_for_path(browser, "/login").await;
}

/// A requester raises a purchase request; they cannot approve it (no button, and a
/// forged form is refused); an approver approves it; the admin sees both (submitted,
/// approved) in the audit viewer and downloads the export, which `audit verify` accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_raised_approved_by_someone_else_and_found_in_the_audit_log() {
    procuhelp_server::tls::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("ph-journey2-{}", uuid::Uuid::new_v4().simple()));
    let people = demo_people(&dir).await;
    let server = Server::start(&dir).await;
    let base = server.base.clone();
    let downloads = dir.join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let driver = Driver::start().await;
    let browser = driver.browser_downloading_to(&downloads).await;

    // The requester raises it, as a draft, and submits it.
    sign_in(&browser, &base, &people["requester"]).await;
    press(&browser, "header a[href='/requests']").await;
    wait_for_path(&browser, "/requests").await;
    // Markup in a text field is shown as text: if it ran, the CSP would refuse it and
    // log a violation (which `finish` fails on), and the page would set the flag.
    let title = "Laptops <script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">";
    fill(&browser, "input[name=title]", title).await;
    fill(&browser, "input[name=amount]", "7200.50").await;
    press(&browser, "form[action='/requests'] button").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let request_path = loop {
        let path = browser.current_url().await.unwrap().path().to_owned();
        if path.starts_with("/requests/") {
            break path;
        }
        assert!(Instant::now() < deadline, "no request page");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(text(&browser, "dd[data-status]").await, "Draft");
    assert_eq!(text(&browser, "h1").await, title);
    let pwned = browser
        .execute("return typeof window.pwned", vec![])
        .await
        .unwrap();
    assert_eq!(pwned, json!("undefined"));
    press(&browser, "form[action$='/submit'] button").await;
    wait_for(&browser, "dd[data-status=open]").await;
    // No way to approve it from here; a forged approval form is refused.
    assert!(
        browser
            .find_all(Locator::Css("form[action$='/approve']"))
            .await
            .unwrap()
            .is_empty()
    );
    let csrf = browser
        .find(Locator::Css("input[name=csrf_token]"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    browser
        .execute(
            "const f = document.createElement('form'); f.method = 'post'; \
             f.action = arguments[0]; const i = document.createElement('input'); \
             i.name = 'csrf_token'; i.value = arguments[1]; f.appendChild(i); \
             document.body.appendChild(f); f.submit();",
            vec![json!(format!("{request_path}/approve")), json!(csrf)],
        )
        .await
        .unwrap();
    wait_for_path(&browser, &format!("{request_path}/approve")).await;
    wait_for(&browser, "[data-error=forbidden]").await;
    sign_out(&browser, &base).await;

    // An approver approves it with a comment.
    sign_in(&browser, &base, &people["approver"]).await;
    browser
        .goto(&format!("{base}{request_path}"))
        .await
        .unwrap();
    fill(
        &browser,
        "form[action$='/approve'] textarea",
        "Budgeted <b>in Q1</b>",
    )
    .await;
    press(&browser, "form[action$='/approve'] button").await;
    // The path is the request's before and after the post: wait for the new state.
    wait_for(&browser, "dd[data-status=approved]").await;
    // The comment is shown as text, not markup.
    assert!(
        text(&browser, "main")
            .await
            .contains("Budgeted <b>in Q1</b>")
    );
    // Approving again: the request is decided, and the page says so.
    browser.back().await.unwrap();
    sign_out(&browser, &base).await;

    // The auditor (reads, changes nothing) finds both in the audit log and downloads
    // the export; no page offers them a change.
    sign_in(&browser, &base, &people["auditor"]).await;
    for link in ["/users", "/admin", "/suppliers"] {
        let found = browser
            .find_all(Locator::Css(&format!("header a[href='{link}']")))
            .await
            .unwrap();
        assert_eq!(
            found.is_empty(),
            link != "/suppliers",
            "auditor's link {link}"
        );
    }
    browser
        .goto(&format!("{base}{request_path}"))
        .await
        .unwrap();
    wait_for(&browser, "dd[data-status=approved]").await;
    assert!(
        browser
            .find_all(Locator::Css("main form"))
            .await
            .unwrap()
            .is_empty(),
        "an auditor is offered a change"
    );
    browser
        .goto(&format!("{base}/audit?action=request.approved"))
        .await
        .unwrap();
    let rows = text(&browser, "tbody").await;
    assert!(rows.contains("request.approved"), "{rows}");
    browser
        .goto(&format!("{base}/audit?action=request.submitted"))
        .await
        .unwrap();
    assert!(text(&browser, "tbody").await.contains("request.submitted"));
    browser.goto(&format!("{base}/audit")).await.unwrap();
    press(&browser, "a[href='/api/audit/export']").await;
    let export = downloads.join("audit-export");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !export.exists() {
        assert!(Instant::now() < deadline, "the export was not downloaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser.goto(&format!("{base}/audit")).await.unwrap();
    wait_for(&browser, "tbody tr[data-action]").await;
    snap(&browser, "audit-viewer").await;
    // Addresses of this organisation's supplier and person, for the other
    // organisation's admin to type below.
    browser.goto(&format!("{base}/suppliers")).await.unwrap();
    let supplier_path = browser
        .find(Locator::Css("main a[href^='/suppliers/']"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let supplier_name = text(&browser, "main a[href^='/suppliers/']").await;
    browser.goto(&format!("{base}/api/session")).await.unwrap();
    let me: Value = serde_json::from_str(&text(&browser, "body").await).unwrap();
    let user_path = format!("/users/{}", me["user"].as_str().unwrap());
    finish(browser, "journey-2-request-approval-audit").await;

    // Another organisation's admin, typing the request's, a supplier's and a person's
    // addresses: not found, and not listed.
    let browser = driver.browser().await;
    sign_in(&browser, &base, &people["b:admin"]).await;
    browser
        .goto(&format!("{base}{request_path}"))
        .await
        .unwrap();
    wait_for(&browser, "[data-error=not_found]").await;
    assert!(!browser.source().await.unwrap().contains("Laptops"));
    browser.goto(&format!("{base}/requests")).await.unwrap();
    assert!(!text(&browser, "main").await.contains("Laptops"));
    for path in [&supplier_path, &user_path] {
        browser.goto(&format!("{base}{path}")).await.unwrap();
        wait_for(&browser, "[data-error=not_found]").await;
        assert!(!browser.source().await.unwrap().contains(&supplier_name));
    }
    browser.goto(&format!("{base}/suppliers")).await.unwrap();
    assert!(!text(&browser, "main").await.contains(&supplier_name));
    browser.goto(&format!("{base}/users")).await.unwrap();
    assert!(
        !text(&browser, "main")
            .await
            .contains("a.demo.procuhelp.test")
    );
    finish(browser, "journey-5-other-organisation").await;
    server.stop().await;
    // `audit verify` accepts it, trusting the deployment's published checkpoint key.
    let signer = procuhelp_server::audit_log::checkpoint_signer(&serve_args(dir.clone()).db)
        .await
        .unwrap();
    let key = procuhelp_server::audit_log::key_hex(&signer.public_keys().await.unwrap()[0]);
    procuhelp_server::run(procuhelp_server::cli::Cli::parse_from([
        "procuhelp-server",
        "audit",
        "verify",
        "--file",
        export.to_str().unwrap(),
        "--trusted-key",
        &key,
    ]))
    .await
    .unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

/// A supplier's contact opens an invitation link (no account) and sends bank details;
/// the IBAN is masked in the list, revealing it is recorded in the audit trail, and the
/// link does not work twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supplier_contact_sends_bank_details_through_a_single_use_link() {
    procuhelp_server::tls::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("ph-journey3-{}", uuid::Uuid::new_v4().simple()));
    let people = demo_people(&dir).await;
    // The invitation goes out by e-mail, to a real SMTP server on loopback (aiosmtpd),
    // which keeps each message in a Maildir.
    let smtp = Smtp::start(&dir).await;
    let mut args = serve_args(dir.clone());
    args.smtp = Some(smtp.config.clone());
    let server = Server::start_with(args).await;
    let base = server.base.clone();
    let driver = Driver::start().await;
    let admin = driver.browser().await;

    // The admin adds a supplier and makes a link for its contact.
    sign_in(&admin, &base, &people["admin"]).await;
    press(&admin, "header a[href='/suppliers']").await;
    wait_for_path(&admin, "/suppliers").await;
    fill(&admin, "input[name=name]", "Northwind").await;
    fill(&admin, "input[name=country]", "fr").await;
    press(&admin, "form[action='/suppliers'] button").await;
    wait_for(&admin, "dd[data-status=invited]").await;
    let supplier_path = admin.current_url().await.unwrap().path().to_owned();
    // A first link, to an address that turns out wrong; then the right one.
    fill(&admin, "input[name=email]", "old@northwind.test").await;
    press(&admin, "form[action$='/invite'] button").await;
    wait_for(&admin, "[data-invitation=sent]").await;
    let old_message = smtp.message_to("old@northwind.test").await;
    let old_link = old_message
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{base}/supplier-invitations/accept?token=")))
        .unwrap()
        .to_owned();
    admin.goto(&format!("{base}{supplier_path}")).await.unwrap();
    fill(&admin, "input[name=email]", "billing@northwind.test").await;
    press(&admin, "form[action$='/invite'] button").await;
    wait_for(&admin, "[data-invitation=sent]").await;
    let message = smtp.message_to("billing@northwind.test").await;
    let link = message
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{base}/supplier-invitations/accept?token=")))
        .unwrap_or_else(|| panic!("no link in {message}"))
        .trim_start_matches(&base)
        .to_owned();

    // The contact, in a browser of their own: a wrong IBAN first (told, link still good).
    let contact = driver.browser().await;
    contact.goto(&format!("{base}{link}")).await.unwrap();
    assert_eq!(
        wait_for(&contact, "input[name=legal_name]")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("Northwind")
    );
    fill(&contact, "input[name=legal_name]", "Northwind SAS").await;
    fill(&contact, "input[name=vat_id]", "FR40303265045").await;
    fill(
        &contact,
        "input[name=iban]",
        "FR14 2004 1010 0505 0001 3M02 607",
    )
    .await;
    press(&contact, "main button[type=submit]").await;
    wait_for(&contact, "[data-error=invalid_input]").await;
    fill(
        &contact,
        "input[name=iban]",
        "FR14 2004 1010 0505 0001 3M02 606",
    )
    .await;
    press(&contact, "main button[type=submit]").await;
    wait_for(&contact, "[data-onboarded=yes]").await;
    // (The VAT id typed before the refusal is kept in the form sent again.)
    // Twice: refused. And the older link can no longer replace the bank details.
    contact.goto(&format!("{base}{link}")).await.unwrap();
    wait_for(&contact, "[data-error=invalid_link]").await;
    contact.goto(&old_link).await.unwrap();
    wait_for(&contact, "[data-error=invalid_link]").await;
    finish(contact, "journey-3-supplier-contact").await;

    // The list shows the account masked; the full IBAN only on request, recorded.
    admin.goto(&format!("{base}/suppliers")).await.unwrap();
    let list = text(&admin, "main").await;
    assert!(
        list.contains("Northwind SAS") && list.contains("FR•• …2606"),
        "{list}"
    );
    assert!(!list.contains("3M02"), "the list shows the IBAN: {list}");
    admin.goto(&format!("{base}{supplier_path}")).await.unwrap();
    press(&admin, "form[action$='/reveal-iban'] button").await;
    let iban = wait_for(&admin, "#iban").await.text().await.unwrap();
    assert_eq!(iban, "FR14 2004 1010 0505 0001 3M02 606");
    snap(&admin, "supplier-iban-revealed").await;
    admin
        .goto(&format!(
            "{base}/audit?action=supplier.bank_details_revealed"
        ))
        .await
        .unwrap();
    assert!(
        text(&admin, "tbody")
            .await
            .contains("supplier.bank_details_revealed")
    );
    admin
        .goto(&format!("{base}/audit?action=supplier.onboarded"))
        .await
        .unwrap();
    assert!(text(&admin, "tbody").await.contains("supplier.onboarded"));
    finish(admin, "journey-3-supplier-audit").await;
    server.stop().await;
    std::fs::remove_dir_all(&dir).ok();
}

/// A contract is amended twice in the browser: its history shows three versions, and the
/// audit viewer shows each change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_amended_twice_shows_three_versions_each_audited() {
    procuhelp_server::tls::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("ph-journey4-{}", uuid::Uuid::new_v4().simple()));
    let people = demo_people(&dir).await;
    let server = Server::start(&dir).await;
    let base = server.base.clone();
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    sign_in(&browser, &base, &people["admin"]).await;
    press(&browser, "header a[href='/contracts']").await;
    wait_for_path(&browser, "/contracts").await;
    fill(&browser, "input[name=title]", "Office furniture 2027").await;
    fill(&browser, "input[name=value]", "10000").await;
    // Date fields take the date as typed in the browser's locale (en-US: mm/dd/yyyy).
    fill(&browser, "input[name=starts_on]", "01012027").await;
    fill(&browser, "input[name=ends_on]", "12312027").await;
    fill(&browser, "textarea[name=terms]", "Net 30").await;
    press(&browser, "form[action='/contracts'] button").await;
    wait_for(&browser, "tr[data-version='1']").await;
    for (n, value) in [(2, "12000"), (3, "12500.50")] {
        fill(&browser, "form[action$='/amend'] input[name=value]", value).await;
        fill(
            &browser,
            "form[action$='/amend'] textarea[name=terms]",
            &format!("Net {}", 30 + n * 15),
        )
        .await;
        press(&browser, "form[action$='/amend'] button").await;
        wait_for(&browser, &format!("tr[data-version='{n}']")).await;
    }
    let history = browser
        .find_all(Locator::Css("#history tbody tr"))
        .await
        .unwrap();
    assert_eq!(history.len(), 3);
    let rows = text(&browser, "#history").await;
    assert!(
        rows.contains("€12500.50") && rows.contains("€12000.00") && rows.contains("€10000.00"),
        "{rows}"
    );
    snap(&browser, "contract-history").await;
    browser
        .goto(&format!("{base}/audit?action=contract.amended"))
        .await
        .unwrap();
    let amended = text(&browser, "tbody").await;
    assert_eq!(amended.matches("contract.amended").count(), 2, "{amended}");
    browser
        .goto(&format!("{base}/audit?action=contract.created"))
        .await
        .unwrap();
    assert!(text(&browser, "tbody").await.contains("contract.created"));
    finish(browser, "journey-4-contract-versions").await;
    server.stop().await;
    std::fs::remove_dir_all(&dir).ok();
}

/// An admin invites someone by e-mail (never typing a password for them); the invitee
/// opens the link from the message, sets a password, and signs in; the link does not work
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_invites_by_e_mail_and_the_invitee_signs_in() {
    procuhelp_server::tls::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("ph-invite-{}", uuid::Uuid::new_v4().simple()));
    let people = demo_people(&dir).await;
    let smtp = Smtp::start(&dir).await;
    let mut args = serve_args(dir.clone());
    args.smtp = Some(smtp.config.clone());
    let server = Server::start_with(args).await;
    let base = server.base.clone();
    let driver = Driver::start().await;
    let admin = driver.browser().await;
    sign_in(&admin, &base, &people["admin"]).await;
    press(&admin, "header a[href='/users']").await;
    wait_for_path(&admin, "/users").await;
    fill(&admin, "input[name=email]", "grace@a.demo.procuhelp.test").await;
    fill(&admin, "input[name=display_name]", "Grace <i>Hopper</i>").await;
    press(&admin, "form[action='/users/invite'] button").await;
    wait_for(&admin, "[data-invitation=sent]").await;
    assert!(text(&admin, "main").await.contains("Grace <i>Hopper</i>"));
    finish(admin, "journey-1b-admin-invites").await;

    let message = smtp.message_to("grace@a.demo.procuhelp.test").await;
    let link = message
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{base}/invitations/accept?token=")))
        .unwrap_or_else(|| panic!("no link in {message}"))
        .to_owned();
    let invitee = driver.browser().await;
    invitee.goto(&link).await.unwrap();
    let password = "a long passphrase for grace";
    fill(&invitee, "input[name=password]", password).await;
    press(&invitee, "main button[type=submit]").await;
    wait_for_path(&invitee, "/login").await;
    fill(&invitee, "input[name=email]", "grace@a.demo.procuhelp.test").await;
    fill(&invitee, "input[name=password]", password).await;
    press(&invitee, "main button[type=submit]").await;
    wait_for_path(&invitee, "/account").await;
    assert!(
        text(&invitee, "header")
            .await
            .contains("Grace <i>Hopper</i>")
    );
    // The link again: refused with one clear message.
    invitee.goto(&link).await.unwrap();
    fill(&invitee, "input[name=password]", "another long passphrase").await;
    press(&invitee, "main button[type=submit]").await;
    wait_for(&invitee, "[data-error=invitation]").await;
    finish(invitee, "journey-1b-invitee").await;
    server.stop().await;
    std::fs::remove_dir_all(&dir).ok();
}

/// Markup typed into every text field is data: each page shows it as text, no script of
/// it runs (the page would set `window.pwned`; the CSP would log a refusal, which
/// `finish` fails on), and a field that refuses it says so without echoing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_typed_into_every_text_field_stays_text() {
    procuhelp_server::tls::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("ph-markup-{}", uuid::Uuid::new_v4().simple()));
    let people = demo_people(&dir).await;
    let server = Server::start(&dir).await;
    let base = server.base.clone();
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let markup = "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">'\"&";
    async fn inert(browser: &Client, at: &str) {
        let pwned = browser
            .execute("return typeof window.pwned", vec![])
            .await
            .unwrap();
        assert_eq!(pwned, json!("undefined"), "a script ran on {at}");
        // No element came of it (the pages have no script and no handler of their own;
        // the markup may sit in a form field's value, where it is text).
        let live = browser
            .execute(
                "return document.querySelectorAll('script, [onerror], img').length",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(live, json!(0), "{at} holds live markup");
    }
    sign_in(&browser, &base, &people["admin"]).await;

    // Suppliers: created with it, shown as its name; edited with it.
    browser.goto(&format!("{base}/suppliers")).await.unwrap();
    fill(
        &browser,
        "form[action='/suppliers'] input[name=name]",
        &format!("Acme {markup}"),
    )
    .await;
    fill(
        &browser,
        "form[action='/suppliers'] input[name=country]",
        "DE",
    )
    .await;
    press(&browser, "form[action='/suppliers'] button").await;
    wait_for(&browser, "form[action$='/edit']").await;
    assert_eq!(text(&browser, "h1").await, format!("Acme {markup}"));
    inert(&browser, "a supplier's page").await;
    fill(
        &browser,
        "form[action$='/edit'] input[name=name]",
        &format!("Edited {markup}"),
    )
    .await;
    press(&browser, "form[action$='/edit'] button").await;
    // The same path reloads: read the heading until it is the new one (an element of the
    // old page may go away between finding and reading it).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let heading = match browser.find(Locator::Css("h1")).await {
            Ok(h1) => h1.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if heading == format!("Edited {markup}") {
            break;
        }
        assert!(Instant::now() < deadline, "the edit did not land");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    inert(&browser, "an edited supplier").await;
    // A VAT id refuses markup: told, not echoed.
    fill(&browser, "form[action$='/edit'] input[name=vat_id]", markup).await;
    press(&browser, "form[action$='/edit'] button").await;
    wait_for(&browser, "[data-error=invalid_input] [data-field=vat_id]").await;
    inert(&browser, "a refused edit").await;
    browser.goto(&format!("{base}/suppliers")).await.unwrap();
    assert!(
        text(&browser, "main")
            .await
            .contains(&format!("Edited {markup}"))
    );
    inert(&browser, "the supplier list").await;

    // Contracts: title and terms.
    browser.goto(&format!("{base}/contracts")).await.unwrap();
    fill(
        &browser,
        "form[action='/contracts'] input[name=title]",
        markup,
    )
    .await;
    fill(
        &browser,
        "form[action='/contracts'] input[name=value]",
        "100",
    )
    .await;
    fill(&browser, "input[name=starts_on]", "01012027").await;
    fill(&browser, "input[name=ends_on]", "12312027").await;
    fill(
        &browser,
        "form[action='/contracts'] textarea[name=terms]",
        markup,
    )
    .await;
    press(&browser, "form[action='/contracts'] button").await;
    wait_for(&browser, "tr[data-version='1']").await;
    assert_eq!(text(&browser, "h1").await, markup);
    inert(&browser, "a contract's page").await;
    browser.goto(&format!("{base}/contracts")).await.unwrap();
    inert(&browser, "the contract list").await;

    // A purchase request's title.
    browser.goto(&format!("{base}/requests")).await.unwrap();
    fill(&browser, "input[name=title]", markup).await;
    fill(&browser, "input[name=amount]", "12").await;
    press(&browser, "form[action='/requests'] button").await;
    wait_for(&browser, "dd[data-status]").await;
    inert(&browser, "a request's page").await;

    // A person invited with it as their name.
    browser.goto(&format!("{base}/users")).await.unwrap();
    fill(
        &browser,
        "input[name=email]",
        "marked.up@a.demo.procuhelp.test",
    )
    .await;
    fill(&browser, "input[name=display_name]", markup).await;
    press(&browser, "form[action='/users/invite'] button").await;
    wait_for(&browser, "[data-invitation]").await;
    assert!(text(&browser, "main").await.contains(markup));
    inert(&browser, "the users page").await;

    // An elevation's reason and a token's name.
    browser
        .goto(&format!("{base}/admin/elevations"))
        .await
        .unwrap();
    fill(&browser, "input[name=reason]", markup).await;
    press(&browser, "form[action='/admin/elevations'] button").await;
    wait_for_path(&browser, "/admin/elevations").await;
    wait_for(&browser, "main table").await;
    assert!(text(&browser, "main").await.contains(markup));
    inert(&browser, "the elevations page").await;
    browser.goto(&format!("{base}/admin/tokens")).await.unwrap();
    fill(
        &browser,
        "form[action='/admin/tokens'] input[name=name]",
        markup,
    )
    .await;
    press(&browser, "form[action='/admin/tokens'] button").await;
    wait_for(&browser, "main").await;
    browser.goto(&format!("{base}/admin/tokens")).await.unwrap();
    assert!(text(&browser, "main").await.contains(markup));
    inert(&browser, "the tokens page").await;

    // And where it all is recorded.
    browser.goto(&format!("{base}/audit")).await.unwrap();
    inert(&browser, "the audit viewer").await;
    finish(browser, "markup-stays-text").await;
    server.stop().await;
    std::fs::remove_dir_all(&dir).ok();
}
