//! The operator console in a real browser: Debian's Chromium, headless,
//! driven through chromedriver's WebDriver protocol (plain HTTP and JSON
//! with the harness's reqwest client), on a coupon-service running in this
//! process with a console token.
//!
//! It opens the console, sees the `coupon-issuer` listener with its three
//! partitions; writes a request for a coupon that does not exist yet to the
//! topic directly and sees it appear under dead letters; creates the
//! coupon, enters the token, replays the record from the page, and sees the
//! coupon issued and the record leave the list.
//!
//! Skipped (with a note) only when Chromium or chromedriver is not
//! installed; `.ci/install-packages` installs both. With
//! `CONSOLE_SCREENSHOTS=<dir>` it saves the guide's screenshots there
//! (`console-*.png`; the guide's are in `docs/src/images`).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use coupon_service::{IssueRequested, ServiceConfig, LISTENER_ID, TOPIC};
use kafka_listener::avro::TimestampMillis;
use kafka_listener::console::ConsoleToken;
use kafka_listener_tests::{
    init_logs, poll, test_bootstrap, unique, wait_until, Api, SqliteFile, CONSOLE_SECRET,
    CONSOLE_TOKEN,
};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver session (W3C protocol).
struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: Driver,
    _profile: Profile,
}

/// The browser's profile directory, removed on drop.
struct Profile(std::path::PathBuf);

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Browser {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        wait_until(Duration::from_secs(20), "chromedriver ready", || async {
            match http.get(format!("{}/status", driver.url)).send().await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            }
        })
        .await;
        let profile = std::env::temp_dir().join(unique("console-chromium"));
        std::fs::create_dir_all(&profile).unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let created: Value = http
            .post(format!("{}/session", driver.url))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_owned();
        Self {
            http,
            session,
            _driver: driver,
            _profile: Profile(profile),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self._driver.url, self.session)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The elements `css` selects (their WebDriver ids).
    async fn all(&self, css: &str) -> Vec<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        // Each element is `{"element-6066-...": id}` (the W3C reference key).
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_object()?.values().next()?.as_str().map(str::to_owned))
            .collect()
    }

    async fn one(&self, css: &str) -> String {
        let found = self.all(css).await;
        assert_eq!(
            found.len(),
            1,
            "exactly one `{css}` in\n{}",
            self.source().await
        );
        found.into_iter().next().unwrap()
    }

    async fn click(&self, css: &str) {
        let e = self.one(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.one(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Saves a PNG of the page as `<CONSOLE_SCREENSHOTS>/console-<name>.png`.
    async fn screenshot(&self, name: &str) {
        let Ok(dir) = std::env::var("CONSOLE_SCREENSHOTS") else {
            return;
        };
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(Path::new(&dir).join(format!("console-{name}.png")), bytes).unwrap();
    }

    async fn quit(self) {
        self.call(reqwest::Method::DELETE, "", None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_shows_listener_and_replays_a_dead_letter_from_the_page() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        eprintln!("console_browser: {CHROMIUM} or {CHROMEDRIVER} is not installed (bash .ci/install-packages installs them); not run");
        return;
    }
    if test_bootstrap().is_some() {
        println!("console_browser: runs in the embedded pass");
        return;
    }
    init_logs();
    let sqlite = SqliteFile::new("console-browser");
    let service = coupon_service::start(ServiceConfig {
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: sqlite.url().to_owned(),
        console_token: ConsoleToken::parse(CONSOLE_TOKEN),
        metrics: false,
        ..ServiceConfig::default()
    })
    .await
    .expect("coupon-service starts");
    let base = service.base_url();
    let api = Api::with_bearer(base.clone(), CONSOLE_SECRET);
    let issuer = service.app().container(LISTENER_ID).unwrap();
    assert!(
        issuer.wait_for_assignment(3, Duration::from_secs(60)).await,
        "coupon-issuer assigned"
    );
    let browser = Browser::start().await;

    // The listeners page, then the issuer's three partitions.
    browser.goto(&format!("{base}/console")).await;
    let row = format!(r#"tr[data-listener="{LISTENER_ID}"]"#);
    browser.one(&row).await;
    assert!(browser.source().await.contains("running"));
    browser
        .goto(&format!("{base}/console/listeners/{LISTENER_ID}"))
        .await;
    assert_eq!(browser.all("tr[data-partition]").await.len(), 3);

    // A request for a coupon that does not exist yet, written directly.
    let coupon = unique("ghost");
    let request = IssueRequested {
        coupon_id: coupon.clone(),
        user_id: "dora".into(),
        requested_at: TimestampMillis(1),
    };
    let sent = service
        .app()
        .template()
        .send_avro(TOPIC, coupon.clone(), &request)
        .await
        .unwrap();
    // The partitions page, still open, follows it live (its event stream):
    // the partition's finished offset moves past the record, and the
    // listener's charts are drawn.
    let finished = format!(
        r#"<tr data-topic="{TOPIC}" data-partition="{}">"#,
        sent.partition
    );
    wait_until(
        Duration::from_secs(60),
        "the partition row updated in place",
        || async {
            let page = browser.source().await;
            let Some(at) = page.find(&finished) else {
                return false;
            };
            let row = &page[at..];
            let row = &row[..row.find("</tr>").unwrap_or(row.len())];
            row.contains(&format!(
                r#"<td data-field="finished">{}</td>"#,
                sent.offset + 1
            )) && page.contains("<polyline")
        },
    )
    .await;
    let letters = format!("{base}/console/dead-letters");
    let id = poll(
        Duration::from_secs(60),
        "the dead letter on the page",
        || async {
            browser.goto(&letters).await;
            let (_, list) = api.get("/console/api/dead-letters").await;
            let found = list["dead_letters"]
                .as_array()?
                .iter()
                .find(|l| l["key"] == coupon.as_str())?
                .clone();
            let id = found["id"].as_str()?.to_owned();
            browser.source().await.contains(&id).then_some(id)
        },
    )
    .await;
    browser
        .goto(&format!("{base}/console/dead-letters/{id}"))
        .await;
    let page = browser.source().await;
    assert!(
        page.contains("kafka_dlt-original-topic")
            && page.contains("Payload (avro)")
            && page.contains("dora"),
        "headers and the Avro payload decoded:\n{page}"
    );
    browser.screenshot("dead-letter").await;

    // The coupon now exists; the operator enters the token and replays.
    let (status, body) = api
        .post("/coupons", json!({"coupon_id": coupon, "stock": 1}))
        .await;
    assert_eq!(status.as_u16(), 201, "{body}");
    browser.goto(&letters).await;
    browser
        .type_into("#token-form input[name=token]", CONSOLE_SECRET)
        .await;
    browser.click("#token-form button").await;
    browser.screenshot("dead-letters").await;
    browser
        .click(&format!(
            r#"tr[data-id="{id}"] button[data-post$="/replay"]"#
        ))
        .await;
    wait_until(
        Duration::from_secs(60),
        "the replayed request issued",
        || async {
            let (_, s) = api.get(&format!("/coupons/{coupon}/issues/dora")).await;
            s["status"] == "issued"
        },
    )
    .await;
    wait_until(
        Duration::from_secs(20),
        "the record gone from the page",
        || async {
            browser.goto(&letters).await;
            browser
                .all(&format!(r#"tr[data-id="{id}"]"#))
                .await
                .is_empty()
        },
    )
    .await;
    browser.goto(&format!("{base}/console/audit")).await;
    let audit = browser.source().await;
    assert!(
        audit.contains(&id) && audit.contains("tests"),
        "the replay audited with the token's name:\n{audit}"
    );
    browser.screenshot("audit").await;
    if std::env::var_os("CONSOLE_SCREENSHOTS").is_some() {
        // For the guide's pictures only: 25 s of issue requests, so that
        // the charts (one sample every 5 s) show them.
        let (status, body) = api
            .post(
                "/coupons",
                json!({"coupon_id": "launch", "stock": 1_000_000}),
            )
            .await;
        assert_eq!(status.as_u16(), 201, "{body}");
        let until = std::time::Instant::now() + Duration::from_secs(25);
        let mut n = 0u32;
        while std::time::Instant::now() < until {
            let (status, body) = api
                .post(
                    "/coupons/launch/issue",
                    json!({ "user_id": format!("u{n}") }),
                )
                .await;
            assert_eq!(status.as_u16(), 202, "{body}");
            n += 1;
            if n.is_multiple_of(25) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    browser
        .goto(&format!("{base}/console/listeners/{LISTENER_ID}"))
        .await;
    browser.screenshot("listener").await;
    browser.goto(&format!("{base}/console")).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    browser.screenshot("listeners").await;
    browser.goto(&format!("{base}/console/topics")).await;
    let rows = format!(r#"tr[data-topic="{TOPIC}"]"#);
    assert_eq!(
        browser.all(&rows).await.len(),
        3,
        "the request topic's partitions"
    );
    browser.screenshot("topics").await;
    browser.quit().await;
    service.shutdown().await;
}
