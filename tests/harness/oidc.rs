//! A real OpenID provider for the single sign-on tests: npm's `oidc-provider`
//! (`tests/oidc/provider.mjs`, installed by `npm ci` in `tests/oidc`, see
//! `scripts/install-deps.sh`) on a random loopback port, with a client for the relay and a
//! few users with group claims; and [`SsoBrowser`], an HTTP client with a cookie jar that
//! signs in through the provider's own development login and consent pages as a person
//! would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::Url;
use reqwest::cookie::CookieStore;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The provider id the relay knows the test provider by.
pub const PROVIDER_ID: &str = "test";
/// The relay's client at the provider.
pub const CLIENT_ID: &str = "opsdeck";
/// Its secret (handed to the relay through a file, as deployments would).
pub const CLIENT_SECRET: &str = "test-client-secret-0123456789";
/// The key id the provider signs with.
pub const SIGNING_KID: &str = "test-key-1";

/// The provider's users: login → claims. `alice` is in `staff` and `admins`, `bob` in
/// `staff`, `eve` only in `guests`.
pub fn accounts() -> serde_json::Value {
    serde_json::json!({
        "alice": {
            "preferred_username": "alice", "email": "alice@example.com",
            "email_verified": true, "groups": ["staff", "admins"]
        },
        "bob": {
            "preferred_username": "bob", "email": "bob@example.com",
            "email_verified": true, "groups": ["staff"]
        },
        "eve": {
            "preferred_username": "eve", "email": "eve@example.org",
            "email_verified": true, "groups": ["guests"]
        }
    })
}

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc")
}

/// The running provider; stopped when dropped.
pub struct TestOidcProvider {
    child: Child,
    pub issuer: String,
    dir: tempfile::TempDir,
}

impl TestOidcProvider {
    /// Starts the provider with one client whose redirect, post-logout and back-channel
    /// logout URLs point at a relay on `relay`.
    pub async fn start(relay: SocketAddr) -> anyhow::Result<Self> {
        Self::start_misbehaving(relay, serde_json::json!({})).await
    }

    /// As [`TestOidcProvider::start`], with `variant`'s settings merged into the
    /// provider's (`clockOffsetSeconds`, `idTokenTtl`, `reissueIdToken`: see
    /// `tests/oidc/provider.mjs`).
    pub async fn start_misbehaving(
        relay: SocketAddr,
        variant: serde_json::Value,
    ) -> anyhow::Result<Self> {
        let scripts = script_dir();
        if !scripts.join("node_modules/oidc-provider").is_dir() {
            bail!(
                "{} has no node_modules/oidc-provider: run scripts/install-deps.sh (npm ci in tests/oidc)",
                scripts.display()
            );
        }
        let dir = tempfile::tempdir()?;
        let base = format!("http://{relay}");
        let mut settings = serde_json::json!({
            "dir": dir.path(),
            "clients": [{
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [format!("{base}/api/auth/oidc/{PROVIDER_ID}/callback")],
                "post_logout_redirect_uris": [format!("{base}/")],
                "backchannel_logout_uri": format!("{base}/api/auth/oidc/{PROVIDER_ID}/backchannel-logout"),
                "backchannel_logout_session_required": true,
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            }],
            "accounts": accounts(),
        });
        if let (Some(settings), Some(variant)) = (settings.as_object_mut(), variant.as_object()) {
            settings.extend(variant.clone());
        }
        let settings_file = dir.path().join("settings.json");
        std::fs::write(&settings_file, settings.to_string())?;
        let log = std::fs::File::create(dir.path().join("provider.log"))?;
        let mut child = Command::new("node")
            .arg(scripts.join("provider.mjs"))
            .arg(&settings_file)
            .current_dir(&scripts)
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting node (Debian's nodejs) for oidc-provider")?;
        let stdout = child.stdout.take().context("the provider's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let issuer = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(issuer) = line.strip_prefix("issuer ") {
                    return Ok(issuer.to_owned());
                }
            }
            bail!("the provider exited before it served")
        })
        .await
        .context("waiting for the provider to serve")?
        .with_context(|| {
            let log = std::fs::read_to_string(dir.path().join("provider.log")).unwrap_or_default();
            format!("the provider did not start:\n{log}")
        })?;
        // Keep reading its stdout so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, issuer, dir })
    }

    /// The relay's `[[auth.oidc]]` table for this provider (after `[auth]`), with `extra`
    /// lines inside it; the client secret is written to a file the table names.
    pub fn provider_toml(&self, extra: &str) -> anyhow::Result<String> {
        let secret = self.dir.path().join("client-secret");
        std::fs::write(&secret, format!("{CLIENT_SECRET}\n"))?;
        Ok(format!(
            "[[auth.oidc]]\nid = \"{PROVIDER_ID}\"\nlabel = \"Sign in with Test IdP\"\n\
             issuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"{}\"\n\
             scopes = [\"openid\", \"email\", \"profile\", \"groups\"]\n{extra}\n",
            self.issuer,
            secret.display()
        ))
    }

    /// The PEM of the key the provider signs with.
    pub fn signing_key(&self) -> anyhow::Result<Vec<u8>> {
        Ok(std::fs::read(self.dir.path().join("signing-key.pem"))?)
    }

    /// The PEM of a key the provider never publishes.
    pub fn stranger_key(&self) -> anyhow::Result<Vec<u8>> {
        Ok(std::fs::read(self.dir.path().join("stranger-key.pem"))?)
    }

    /// The provider's session id (`sid`) in the last ID token it issued.
    pub fn last_session_id(&self) -> anyhow::Result<String> {
        let issued = std::fs::read_to_string(self.dir.path().join("issued.jsonl"))
            .context("the provider issued no ID token yet")?;
        let last: serde_json::Value =
            serde_json::from_str(issued.lines().last().context("no ID token issued")?)?;
        last["sid"]
            .as_str()
            .map(str::to_owned)
            .context("the last ID token has no sid")
    }

    /// What the provider logged (errors of its back-channel calls).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("provider.log")).unwrap_or_default()
    }
}

impl Drop for TestOidcProvider {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Where a walk through redirects stopped.
#[derive(Debug)]
pub struct Landing {
    pub url: Url,
    pub status: u16,
    pub body: String,
}

/// A browser without JavaScript: a cookie jar, redirects followed by hand (so a test can
/// stop at the relay's callback and look at, or tamper with, what the provider sent).
pub struct SsoBrowser {
    client: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
}

impl Default for SsoBrowser {
    fn default() -> Self {
        Self::new()
    }
}

impl SsoBrowser {
    pub fn new() -> Self {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("a reqwest client");
        Self { client, jar }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The value of cookie `name` the jar would send to `url`.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let url = Url::parse(url).ok()?;
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_owned())
    }

    /// Puts a cookie back into the jar (a replay).
    pub fn set_cookie(&self, url: &str, cookie: &str) -> anyhow::Result<()> {
        self.jar.add_cookie_str(cookie, &Url::parse(url)?);
        Ok(())
    }

    /// GETs `url` and follows redirects until a page answers, or until a redirect points
    /// at a URL starting with `stop_at` (returned unvisited, status 303).
    pub async fn walk(&self, url: &str, stop_at: Option<&str>) -> anyhow::Result<Landing> {
        let mut url = Url::parse(url)?;
        for _ in 0..20 {
            let response = self.client.get(url.clone()).send().await?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .context("a redirect without a Location")?;
                url = url.join(location)?;
                if stop_at.is_some_and(|prefix| url.as_str().starts_with(prefix)) {
                    return Ok(Landing {
                        url,
                        status: 303,
                        body: String::new(),
                    });
                }
                continue;
            }
            let body = response.text().await?;
            return Ok(Landing {
                url,
                status: status.as_u16(),
                body,
            });
        }
        bail!("more than 20 redirects")
    }

    /// Submits the first form of `page` with `fields` (besides its hidden inputs), then
    /// walks on like [`SsoBrowser::walk`].
    pub async fn submit(
        &self,
        page: &Landing,
        fields: &[(&str, &str)],
        stop_at: Option<&str>,
    ) -> anyhow::Result<Landing> {
        let action = attribute(&page.body, "<form", "action")
            .with_context(|| format!("no form on {}: {}", page.url, page.body))?;
        let action = page.url.join(&action)?;
        let mut form: Vec<(String, String)> = hidden_inputs(&page.body);
        form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        tracing::debug!(%action, ?form, "submitting a form");
        let response = self.client.post(action.clone()).form(&form).send().await?;
        if !response.status().is_redirection() {
            let status = response.status().as_u16();
            let body = response.text().await?;
            return Ok(Landing {
                url: action,
                status,
                body,
            });
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("a redirect without a Location")?;
        let next = action.join(location)?;
        if stop_at.is_some_and(|prefix| next.as_str().starts_with(prefix)) {
            return Ok(Landing {
                url: next,
                status: 303,
                body: String::new(),
            });
        }
        self.walk(next.as_str(), stop_at).await
    }

    /// Presses the relay's button for the test provider, logs in as `login` on the
    /// provider's page and consents; returns the callback URL the provider sent the browser
    /// to (not yet visited).
    pub async fn sign_in_at_provider(&self, relay: &str, login: &str) -> anyhow::Result<Url> {
        self.sign_in_at_provider_changing(relay, login, |_| {})
            .await
    }

    /// As [`SsoBrowser::sign_in_at_provider`], with the authorization request the relay
    /// sent the browser to changed by `change` before the browser follows it.
    pub async fn sign_in_at_provider_changing(
        &self,
        relay: &str,
        login: &str,
        change: impl FnOnce(&mut Url),
    ) -> anyhow::Result<Url> {
        let callback = format!("{relay}/api/auth/oidc/{PROVIDER_ID}/callback");
        let start = Url::parse(&format!("{relay}/api/auth/oidc/{PROVIDER_ID}/login"))?;
        let response = self.client.get(start.clone()).send().await?;
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .with_context(|| format!("the relay did not redirect: {}", response.status()))?;
        let mut authorize = start.join(location)?;
        change(&mut authorize);
        let mut page = self.walk(authorize.as_str(), Some(&callback)).await?;
        for _ in 0..4 {
            if page.url.as_str().starts_with(&callback) {
                return Ok(page.url);
            }
            if page.status != 200 {
                bail!(
                    "the provider answered {} at {}: {}",
                    page.status,
                    page.url,
                    page.body
                );
            }
            page = if page.body.contains("name=\"login\"") {
                self.submit(
                    &page,
                    &[("login", login), ("password", "any")],
                    Some(&callback),
                )
                .await?
            } else {
                self.submit(&page, &[], Some(&callback)).await?
            };
        }
        bail!("the provider did not send the browser back: {}", page.body)
    }

    /// Signs in fully: the callback visited, the relay's answer returned (its Location is
    /// the app, or the login page with `sso_error=`).
    pub async fn sign_in(&self, relay: &str, login: &str) -> anyhow::Result<reqwest::Response> {
        let callback = self.sign_in_at_provider(relay, login).await?;
        Ok(self.client.get(callback).send().await?)
    }
}

/// The value of `name="..."` in the first tag starting with `tag`.
fn attribute(html: &str, tag: &str, name: &str) -> Option<String> {
    let start = html.find(tag)?;
    let rest = &html[start..];
    let end = rest.find('>').unwrap_or(rest.len());
    let element = &rest[..end];
    let key = format!("{name}=\"");
    let at = element.find(&key)? + key.len();
    let value = &element[at..];
    Some(unescape(&value[..value.find('"')?]))
}

fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find("<input") {
        rest = &rest[at..];
        let end = rest.find('>').unwrap_or(rest.len());
        let element = &rest[..end];
        if element.contains("type=\"hidden\"")
            && let (Some(name), Some(value)) = (
                attribute(element, "<input", "name"),
                attribute(element, "<input", "value"),
            )
        {
            out.push((name, value));
        }
        rest = &rest[end..];
    }
    out
}

fn unescape(text: &str) -> String {
    text.replace("&amp;", "&")
        .replace("&#x3D;", "=")
        .replace("&#x2F;", "/")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}
