//! Links only the organisation's agents can open (issue 15), through `ferry serve` with the
//! in-process S3 store (s3s-fs) and the Genesys emulators (guest side for the deployments, platform
//! side for sign-in and Open Messaging): no LocalStack needed.
//!
//! A client without a session gets the redirect to sign-in, never the file; an agent of the
//! organisation signs in once and opens every link of the deployment; another organisation's agent
//! gets a 403 page; a tampered state, a replayed code, a code issued for another verifier and an
//! attempt to redirect elsewhere all fail with nothing served; a bearer deployment is unchanged;
//! Open Messaging gets a bearer fetch URL that Genesys can use.

use crate::harness::{LINK_SECRET, TICKET_SECRET, bytes, curl, ticket};
use base64::Engine as _;
use ferry_sandbox::genesys::{GenesysEmulator, GenesysEmulatorConfig};
use ferry_sandbox::platform::{CodeClient, DEMO_ORGANIZATION_ID, PlatformConfig, PlatformEmulator};
use ferry_sandbox::s3::{ACCESS_KEY, LocalS3, SECRET_KEY};
use ferry_testkit::process::{Ferry, FerryCommand};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use std::collections::{BTreeMap, HashMap};

const AGENTS: &str = "dep-agents";
const BEARER: &str = "dep-bearer";
const OPEN: &str = "dep-open";
const CLIENT: &str = "ferry-agents";
const CLIENT_SECRET: &str = "agents-client-secret-not-for-production";

/// ferry with three deployments (agents, bearer, Open Messaging for agents), its stand-ins and a
/// folder.
struct Stack {
    ferry: Ferry,
    platform: PlatformEmulator,
    _genesys: GenesysEmulator,
    _s3: LocalS3,
    base: String,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Stack {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let s3 = LocalS3::start(dir.path().join("s3"), "127.0.0.1:0".parse().unwrap()).await.unwrap();
        s3.create_bucket("agents").unwrap();
        let genesys = GenesysEmulator::start(GenesysEmulatorConfig::default()).await.unwrap();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut config = PlatformConfig::with_client("om-client", "om-secret");
        config.code_clients.push(CodeClient {
            client_id: CLIENT.into(),
            client_secret: Some(CLIENT_SECRET.into()),
            redirect_uris: vec![format!("{base}/v1/agents/callback")],
        });
        let platform = PlatformEmulator::start(config).await.unwrap();
        let links = format!(
            "access = \"agents\"\nclient_id = \"{CLIENT}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
             organization_id = \"{DEMO_ORGANIZATION_ID}\"\nlogin_url = \"{login}\"\napi_url = \"{api}\"\n",
            login = platform.login_url(),
            api = platform.api_url(),
        );
        let ws = genesys.ws_url();
        let toml = format!(
            "public_url = \"{base}\"\nallow_insecure = true\nlink_secret = \"{LINK_SECRET}\"\n\
             ticket_secret = \"{TICKET_SECRET}\"\n\
             [s3]\nbucket = \"agents\"\nendpoint = \"{s3}\"\npath_style = true\naccess_key_id = \"{ACCESS_KEY}\"\n\
             secret_access_key = \"{SECRET_KEY}\"\nchecksum = \"md5\"\npart_size_mib = 5\n\
             [tickets]\nsingle_process = true\n\
             [deployments.{AGENTS}]\nweb_messaging_url = \"{ws}\"\n[deployments.{AGENTS}.links]\n{links}\
             [deployments.{BEARER}]\nweb_messaging_url = \"{ws}\"\n\
             [deployments.{OPEN}]\ndelivery = \"open-messaging\"\n[deployments.{OPEN}.open_messaging]\n\
             integration_id = \"integration-1\"\nclient_id = \"om-client\"\nclient_secret = \"om-secret\"\n\
             api_url = \"{api}\"\nlogin_url = \"{login}\"\n[deployments.{OPEN}.links]\n{links}",
            s3 = s3.endpoint(),
            api = platform.api_url(),
            login = platform.login_url(),
        );
        let path = dir.path().join("ferry.toml");
        std::fs::write(&path, toml).unwrap();
        let ferry = FerryCommand::new(env!("CARGO_BIN_EXE_ferry"), dir.path().join("ferry.log"))
            .env("FERRY_CONFIG", path.display().to_string())
            .env("FERRY_LISTEN", format!("127.0.0.1:{port}"))
            .start()
            .await
            .expect("ferry starts");
        Self { ferry, platform, _genesys: genesys, _s3: s3, base, _dir: dir }
    }

    /// Uploads `data` for `deployment` with a ticket; the reference.
    async fn upload(&self, deployment: &str, data: &[u8], from: Option<&str>) -> serde_json::Value {
        let ticket = ticket(|claims| {
            claims.dep = deployment.into();
            claims.from = from.map(str::to_owned);
        });
        let answer = Browser::default()
            .http
            .post(format!("{}/v1/uploads", self.base))
            .header("authorization", format!("Ferry-Ticket {ticket}"))
            .header("content-type", "application/pdf")
            .header("x-file-name", "letter.pdf")
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 201);
        answer.json().await.unwrap()
    }

    /// The end of every case: nothing secret in ferry's log.
    fn assert_clean_log(&self) -> String {
        let log = self.ferry.log();
        for (what, secret) in [
            ("a download-link signature", "signature="),
            ("a presigned URL", "X-Amz-Signature"),
            ("the client secret", CLIENT_SECRET),
            ("the link secret", LINK_SECRET),
            ("an authorization code", "code="),
        ] {
            assert!(!log.contains(secret), "ferry's log contains {what}:\n{log}");
        }
        log
    }
}

/// A browser: follows nothing by itself, keeps ferry's cookies.
struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl Default for Browser {
    fn default() -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { http, cookies: BTreeMap::new() }
    }
}

/// What a response said.
struct Page {
    status: u16,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: Vec<u8>,
}

impl Page {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Browser {
    async fn get(&mut self, url: &str) -> Page {
        let mut request = self.http.get(url);
        if !self.cookies.is_empty() {
            let line: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            request = request.header(COOKIE, line.join("; "));
        }
        self.absorb(request.send().await.unwrap()).await
    }

    async fn post_form(&mut self, url: &str, form: &[(String, String)]) -> Page {
        self.absorb(self.http.post(url).form(form).send().await.unwrap()).await
    }

    async fn absorb(&mut self, response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let location = response.headers().get(LOCATION).map(|v| v.to_str().unwrap().to_owned());
        let set_cookies: Vec<String> =
            response.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        for line in &set_cookies {
            let (pair, attributes) = line.split_once(';').unwrap_or((line, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page { status, location, set_cookies, body: response.bytes().await.unwrap().to_vec() }
    }

    /// Opens `link` without a session: the redirect to sign-in. Returns the authorize URL.
    async fn start_sign_in(&mut self, stack: &Stack, link: &str) -> String {
        let page = self.get(link).await;
        assert_eq!(page.status, 302, "{}", page.text());
        let authorize = page.location.clone().unwrap();
        assert!(
            authorize.starts_with(&format!("{}/oauth/authorize?", stack.platform.login_url())),
            "{authorize}"
        );
        let q = query(&authorize);
        assert_eq!((q["response_type"].as_str(), q["code_challenge_method"].as_str()), ("code", "S256"));
        assert_eq!(q["client_id"], CLIENT);
        assert_eq!(q["redirect_uri"], format!("{}/v1/agents/callback", stack.base));
        assert_eq!(q["code_challenge"].len(), 43);
        let cookie =
            page.set_cookies.iter().find(|c| c.starts_with("ferry_signin=")).expect("a sign-in cookie");
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/v1/agents", "Max-Age=600"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        assert!(page.body.is_empty(), "nothing but the redirect");
        authorize
    }

    /// The emulated sign-in page, as `user`: the callback URL Genesys redirects to.
    async fn pick(&mut self, authorize: &str, user: &str) -> String {
        let page = self.get(authorize).await;
        assert_eq!(page.status, 200);
        assert!(page.text().contains("Ada Agent"), "the sign-in page lists the demo agents");
        let mut form: Vec<(String, String)> = query(authorize).into_iter().collect();
        form.push(("user".into(), user.into()));
        let url = authorize.split('?').next().unwrap();
        let answer = self.post_form(url, &form).await;
        assert_eq!(answer.status, 303);
        answer.location.unwrap()
    }

    /// Signs in as `user` from `link`, and follows back to it: the presigned URL.
    async fn sign_in_and_open(&mut self, stack: &Stack, link: &str, user: &str) -> String {
        let authorize = self.start_sign_in(stack, link).await;
        let callback = self.pick(&authorize, user).await;
        let back = self.get(&callback).await;
        assert_eq!(back.status, 302, "{}", back.text());
        assert_eq!(back.location.as_deref(), Some(link), "back to the very link, nowhere else");
        let session = back.set_cookies.iter().find(|c| c.starts_with(&format!("ferry_agent_{AGENTS}=")));
        let session = session.expect("an agent session");
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/v1/files", "Max-Age=32400"] {
            assert!(session.contains(attribute), "{session}");
        }
        assert!(!self.cookies.contains_key("ferry_signin"), "the sign-in cookie is used up");
        let served = self.get(link).await;
        assert_eq!(served.status, 302);
        served.location.unwrap()
    }
}

fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

async fn fetch(url: &str) -> Vec<u8> {
    let answer = reqwest::get(url).await.unwrap();
    assert_eq!(answer.status(), 200, "{url}");
    answer.bytes().await.unwrap().to_vec()
}

fn link_of(reference: &serde_json::Value) -> String {
    reference["downloadUrl"].as_str().unwrap().to_owned()
}

/// Asserts a refusal that served nothing: an HTML page with `code`, no redirect, no session.
fn assert_refused(page: &Page, status: u16, code: &str, data: &[u8]) {
    assert_eq!(page.status, status, "{}", page.text());
    assert!(page.location.is_none(), "no redirect on a refusal");
    assert!(page.text().contains(&format!("<code id=code>{code}</code>")), "{}", page.text());
    assert!(!page.set_cookies.iter().any(|c| c.starts_with("ferry_agent_")), "no session");
    assert!(!page.body.windows(16).any(|w| w == &data[..16]), "nothing of the file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_sign_in_once_and_other_organisations_and_curl_get_nothing() {
    let stack = Stack::start().await;
    let data = bytes(b"%PDF-1.4\n", 300 * 1024, 15);
    let link = link_of(&stack.upload(AGENTS, &data, None).await);
    let expires: u64 = query(&link)["expires"].parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(expires > now + 29 * 24 * 3600, "agents links live agents_link_ttl_secs (30 days)");

    // curl without a cookie: the redirect, never the file; followed, the sign-in page.
    let reply = curl(&crate::args(&[&link]), None).await;
    assert_eq!(reply.status, 302, "{reply:?}");
    let followed = curl(&crate::args(&["-L", &link]), None).await;
    assert_eq!(followed.status, 200);
    assert!(String::from_utf8_lossy(&followed.body).contains("Genesys Cloud sign-in"), "{followed:?}");
    assert!(!followed.body.windows(64).any(|w| w == &data[..64]));

    // An agent of the organisation: sign in, back, the bytes.
    let mut ada = Browser::default();
    let presigned = ada.sign_in_and_open(&stack, &link, "agent-ada").await;
    assert_eq!(fetch(&presigned).await, data);
    // A second link opens without signing in again.
    let other = bytes(b"%PDF-1.4\n", 10 * 1024, 16);
    let second = link_of(&stack.upload(AGENTS, &other, None).await);
    let page = ada.get(&second).await;
    assert_eq!(page.status, 302);
    assert_eq!(fetch(&page.location.unwrap()).await, other);
    assert_eq!(stack.platform.state().codes_redeemed(), 1, "one sign-in for both");

    // Another organisation's agent: 403 with a page that says why.
    let mut olga = Browser::default();
    let authorize = olga.start_sign_in(&stack, &link).await;
    let callback = olga.pick(&authorize, "agent-olga").await;
    let refused = olga.get(&callback).await;
    assert_refused(&refused, 403, "wrong_organization", &data);
    assert!(refused.text().contains("another Genesys Cloud organisation"), "{}", refused.text());
    assert_eq!(olga.get(&link).await.location.as_deref().map(|l| l.contains("/oauth/authorize")), Some(true));

    // A session cookie of one deployment opens nothing of another; a forged one opens nothing.
    let mut forger = Browser::default();
    let sealed = ada.cookies[&format!("ferry_agent_{AGENTS}")].clone();
    forger.cookies.insert(format!("ferry_agent_{AGENTS}"), sealed.replacen('e', "f", 1));
    assert!(forger.get(&link).await.location.unwrap().contains("/oauth/authorize"));

    let log = stack.assert_clean_log();
    let audits: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "ferry::audit" && v["fields"]["event"] == "download")
        .collect();
    let outcome = |o: &str| audits.iter().filter(|a| a["fields"]["outcome"] == o).count();
    assert!(outcome("sign_in_required") >= 3, "{audits:?}");
    assert_eq!(outcome("wrong_organization"), 1, "{audits:?}");
    let served: Vec<_> = audits.iter().filter(|a| a["fields"]["outcome"] == "served").collect();
    assert_eq!(served.len(), 2, "{audits:?}");
    for audit in served {
        assert_eq!(audit["fields"]["user_id"], "agent-ada");
        assert_eq!(audit["fields"]["organization"], DEMO_ORGANIZATION_ID);
        assert_eq!(audit["fields"]["deployment"], AGENTS);
        assert_eq!(audit["fields"]["access"], "agents");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_state_replayed_code_foreign_verifier_and_redirects_elsewhere_serve_nothing() {
    let stack = Stack::start().await;
    let data = bytes(b"%PDF-1.4\n", 64 * 1024, 17);
    let link = link_of(&stack.upload(AGENTS, &data, None).await);

    // A tampered state.
    let mut browser = Browser::default();
    let authorize = browser.start_sign_in(&stack, &link).await;
    let callback = browser.pick(&authorize, "agent-ada").await;
    let state = query(&callback)["state"].clone();
    // Change the last character to another one (a state that already ends in `0` gets a `1`).
    let swap = if state.ends_with('0') { '1' } else { '0' };
    let tampered =
        callback.replace(&format!("state={state}"), &format!("state={}{swap}", &state[..state.len() - 1]));
    assert_ne!(tampered, callback, "the state really changed");
    assert_refused(&browser.get(&tampered).await, 403, "sign_in_failed", &data);
    assert_eq!(stack.platform.state().codes_redeemed(), 0, "the code was not even tried");

    // A replayed code: the first use signs in, the second (with a copy of the old cookie) fails.
    let mut browser = Browser::default();
    let authorize = browser.start_sign_in(&stack, &link).await;
    let old_cookie = browser.cookies["ferry_signin"].clone();
    let callback = browser.pick(&authorize, "agent-ada").await;
    assert_eq!(browser.get(&callback).await.status, 302);
    let mut replayer = Browser::default();
    replayer.cookies.insert("ferry_signin".into(), old_cookie);
    assert_refused(&replayer.get(&callback).await, 403, "sign_in_failed", &data);

    // A code issued for another browser's challenge (its verifier is not this state's).
    let mut victim = Browser::default();
    let victim_authorize = victim.start_sign_in(&stack, &link).await;
    let victim_state = query(&victim_authorize)["state"].clone();
    let mut attacker = Browser::default();
    let attacker_authorize = attacker.start_sign_in(&stack, &link).await;
    let attacker_callback = attacker.pick(&attacker_authorize, "agent-ada").await;
    let code = query(&attacker_callback)["code"].clone();
    let injected = format!("{}/v1/agents/callback?code={code}&state={victim_state}", stack.base);
    let redeemed = stack.platform.state().codes_redeemed();
    assert_refused(&victim.get(&injected).await, 403, "sign_in_failed", &data);
    assert_eq!(stack.platform.state().codes_redeemed(), redeemed, "Genesys refused the verifier");

    // Open redirect: extra parameters are ignored, and a sign-in cookie pointing elsewhere is void.
    let mut browser = Browser::default();
    let authorize = browser.start_sign_in(&stack, &link).await;
    let callback = browser.pick(&authorize, "agent-ada").await;
    let redirected =
        browser.get(&format!("{callback}&redirect_uri=https://evil.example/&next=//evil.example")).await;
    assert_eq!(redirected.location.as_deref(), Some(link.as_str()));
    let mut browser = Browser::default();
    browser.start_sign_in(&stack, &link).await;
    let sealed = browser.cookies["ferry_signin"].clone();
    let (payload, tag) = sealed.split_once('.').unwrap();
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut value: serde_json::Value = serde_json::from_slice(&engine.decode(payload).unwrap()).unwrap();
    let state = value["v"]["s"].as_str().unwrap().to_owned();
    value["v"]["t"] = "https://evil.example/".into();
    let forged = engine.encode(serde_json::to_vec(&value).unwrap());
    browser.cookies.insert("ferry_signin".into(), format!("{forged}.{tag}"));
    let page = browser.get(&format!("{}/v1/agents/callback?code=x&state={state}", stack.base)).await;
    assert_refused(&page, 403, "sign_in_failed", &data);
    stack.assert_clean_log();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_links_are_unchanged_and_open_messaging_fetches_without_signing_in() {
    let stack = Stack::start().await;
    let data = bytes(b"%PDF-1.4\n", 32 * 1024, 18);
    let link = link_of(&stack.upload(BEARER, &data, None).await);
    let page = Browser::default().get(&link).await;
    assert_eq!(page.status, 302);
    assert_eq!(fetch(&page.location.unwrap()).await, data, "a bearer link serves whoever holds it");

    let reference = stack.upload(OPEN, &data, Some("customer-1")).await;
    assert_eq!(reference["delivery"]["mode"], "open-messaging", "{reference}");
    let messages = stack.platform.state().open_messages();
    let fetched = &messages[0].attachments[0];
    assert_eq!((fetched.status, fetched.size), (Some(200), data.len() as u64), "{fetched:?}");
    assert!(fetched.url.ends_with("&access=fetch"), "{}", fetched.url);
    let expires: u64 = query(&fetched.url)["expires"].parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(expires <= now + 3600, "the fetch URL is short-lived");
    // Without its marker it is no link at all; the reference's own link asks agents to sign in.
    let stripped = fetched.url.trim_end_matches("&access=fetch");
    assert_eq!(Browser::default().get(stripped).await.status, 403);
    let own = Browser::default().get(&link_of(&reference)).await;
    assert!(own.location.unwrap().contains("/oauth/authorize"));
    stack.assert_clean_log();
}
