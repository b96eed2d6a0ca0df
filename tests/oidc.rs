//! Single sign-on through a real OpenID provider (npm's certified `oidc-provider`, its own
//! login and consent pages): the code flow with PKCE ending with the relay's cookie and a
//! stream opened with the mapped groups, refusals with their reason, RP-initiated and
//! back-channel logout, and the answers that must not verify.

use base64::Engine;
use common::CloseCode;
use common::api::Me;
use common::sso::{AuthProviders, LogoutAnswer};
use fantoccini::Locator;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use opsdeck_tests::browser::{
    Chromedriver, PAGE_TIMEOUT, built_app, screenshot, type_in_terminal, wait_for_js,
    wait_for_state, wait_for_terminal_text,
};
use opsdeck_tests::client::WsClient;
use opsdeck_tests::oidc::{CLIENT_ID, PROVIDER_ID, SIGNING_KID, SsoBrowser, TestOidcProvider};
use opsdeck_tests::relay::TestRelay;
use opsdeck_tests::sshd::TestSshd;

/// `staff` may sign in; `admins` are Opsdeck's `ops`, who may open the chat room `ops`.
const RULES: &str = "required_groups = [\"staff\"]\n\
    [auth.oidc.group_mapping]\nadmins = [\"ops\"]\nunused = [\"nobody\"]\n";

const REST: &str = r#"
[[grants]]
groups = ["ops"]
chat = ["ops"]

[[chat_rooms]]
id = "ops"
"#;

struct Fixture {
    provider: TestOidcProvider,
    relay: TestRelay,
    base: String,
}

/// A provider and a relay that knows it; `auth` lines go into `[auth]`.
async fn start(auth: &str) -> anyhow::Result<Fixture> {
    start_with("", auth, REST).await
}

/// As [`start`], with `top` level keys and the `rest` of the config (grants, targets).
async fn start_with(top: &str, auth: &str, rest: &str) -> anyhow::Result<Fixture> {
    start_misbehaving(top, auth, rest, serde_json::json!({})).await
}

/// As [`start_with`], the provider started with `variant`'s settings
/// ([`TestOidcProvider::start_misbehaving`]).
async fn start_misbehaving(
    top: &str,
    auth: &str,
    rest: &str,
    variant: serde_json::Value,
) -> anyhow::Result<Fixture> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let provider = TestOidcProvider::start_misbehaving(addr, variant).await?;
    let config = format!(
        "{top}\n[auth]\njwt_secret = \"test-secret\"\ncookie_secure = false\n{auth}\n{}\n{rest}",
        provider.provider_toml(RULES)?
    );
    let relay = TestRelay::start_on(listener, &config)?;
    Ok(Fixture {
        provider,
        relay,
        base: format!("http://{addr}"),
    })
}

impl Fixture {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn callback_prefix(&self) -> String {
        self.url(&format!("/api/auth/oidc/{PROVIDER_ID}/callback"))
    }

    /// The logout token the provider would send, signed with `key` as `kid`, with
    /// `claims` merged over the standard ones.
    fn logout_token(&self, key: &[u8], kid: &str, claims: serde_json::Value) -> String {
        let now = relay_now();
        let mut body = serde_json::json!({
            "iss": self.provider.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 120,
            "jti": format!("jti-{now}-{}", rand_suffix()),
            "sub": "alice",
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        });
        for (k, v) in claims.as_object().expect("an object") {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        header.typ = Some("logout+jwt".to_owned());
        let key = EncodingKey::from_rsa_pem(key).expect("an RSA key");
        jsonwebtoken::encode(&header, &body, &key).expect("signing")
    }

    async fn post_logout_token(&self, token: &str) -> anyhow::Result<(u16, String)> {
        let response = reqwest::Client::new()
            .post(self.url(&format!("/api/auth/oidc/{PROVIDER_ID}/backchannel-logout")))
            .form(&[("logout_token", token)])
            .send()
            .await?;
        Ok((response.status().as_u16(), response.text().await?))
    }
}

fn relay_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn me(fixture: &Fixture, token: &str) -> anyhow::Result<reqwest::Response> {
    Ok(reqwest::Client::new()
        .get(fixture.url("/api/me"))
        .header("cookie", format!("X-Token={token}"))
        .send()
        .await?)
}

/// Signs `login` in; the relay's token.
async fn signed_in(fixture: &Fixture, browser: &SsoBrowser, login: &str) -> anyhow::Result<String> {
    let answer = browser.sign_in(&fixture.base, login).await?;
    assert_eq!(answer.status().as_u16(), 303);
    assert_eq!(location(&answer), "/", "signed in, into the app");
    browser
        .cookie(&fixture.base, "X-Token")
        .ok_or_else(|| anyhow::anyhow!("no X-Token cookie after signing in"))
}

#[tokio::test]
async fn signing_in_through_the_provider_gives_the_mapped_groups_and_opens_streams()
-> anyhow::Result<()> {
    let fixture = start("").await?;
    let providers: AuthProviders = reqwest::get(fixture.url("/api/auth/providers"))
        .await?
        .json()
        .await?;
    assert!(providers.local_login);
    assert_eq!(providers.providers.len(), 1);
    assert_eq!(providers.providers[0].id, PROVIDER_ID);
    assert_eq!(providers.providers[0].label, "Sign in with Test IdP");

    let browser = SsoBrowser::new();
    let token = signed_in(&fixture, &browser, "alice").await?;
    let who: Me = me(&fixture, &token).await?.json().await?;
    assert_eq!(who.username, "test:alice");
    // admins → ops; staff is admitted but maps to nothing; no IdP group by its own name.
    assert_eq!(who.groups, ["ops"]);

    let mut chat =
        WsClient::connect(&fixture.relay.ws_url("/ws/chat/ops"), Some(&token), None).await?;
    chat.connected().await?;

    // bob is staff but not an admin: signed in, with no groups, so the room is closed.
    let bob = SsoBrowser::new();
    let bob_token = signed_in(&fixture, &bob, "bob").await?;
    let who: Me = me(&fixture, &bob_token).await?.json().await?;
    assert_eq!((who.username.as_str(), who.groups.len()), ("test:bob", 0));
    let mut refused = WsClient::connect(
        &fixture.relay.ws_url("/ws/chat/ops"),
        Some(&bob_token),
        None,
    )
    .await?;
    let (code, _, _) = refused.read_until_closed().await?;
    assert_eq!(code, CloseCode::Forbidden.code());
    Ok(())
}

#[tokio::test]
async fn a_user_outside_the_required_groups_is_refused_with_the_reason() -> anyhow::Result<()> {
    let fixture = start("").await?;
    let browser = SsoBrowser::new();
    let answer = browser.sign_in(&fixture.base, "eve").await?;
    assert_eq!(answer.status().as_u16(), 303);
    assert_eq!(location(&answer), "/#/login?sso_error=not_allowed");
    assert!(browser.cookie(&fixture.base, "X-Token").is_none());
    Ok(())
}

#[tokio::test]
async fn back_channel_logout_from_the_provider_closes_open_streams_with_4431() -> anyhow::Result<()>
{
    let fixture = start("").await?;
    let browser = SsoBrowser::new();
    let token = signed_in(&fixture, &browser, "alice").await?;
    let mut chat =
        WsClient::connect(&fixture.relay.ws_url("/ws/chat/ops"), Some(&token), None).await?;
    chat.connected().await?;

    // The user signs out at the provider, which tells the relay over the back channel.
    let end = browser
        .walk(
            &format!(
                "{}/session/end?client_id={CLIENT_ID}",
                fixture.provider.issuer
            ),
            None,
        )
        .await?;
    assert_eq!(end.status, 200, "{}", end.body);
    browser.submit(&end, &[("logout", "yes")], None).await?;

    let (code, reason, _) = chat.read_until_closed().await?;
    assert_eq!(
        code,
        CloseCode::TokenRevoked.code(),
        "{reason}; provider log: {}",
        fixture.provider.log()
    );
    assert_eq!(me(&fixture, &token).await?.status().as_u16(), 401);
    Ok(())
}

#[tokio::test]
async fn logging_out_of_a_provider_login_ends_at_the_providers_end_session_endpoint()
-> anyhow::Result<()> {
    let fixture = start("").await?;
    let browser = SsoBrowser::new();
    let token = signed_in(&fixture, &browser, "alice").await?;
    let answer = browser
        .client()
        .post(fixture.url("/api/logout"))
        .send()
        .await?;
    assert_eq!(answer.status().as_u16(), 200);
    let body: LogoutAnswer = answer.json().await?;
    let expected = format!("{}/session/end?", fixture.provider.issuer);
    assert!(
        body.end_session_url.starts_with(&expected),
        "{}",
        body.end_session_url
    );
    assert!(
        body.end_session_url
            .contains(&format!("client_id={CLIENT_ID}"))
    );
    // The provider's page asks whether to sign out: the relay sent a valid request.
    let page = browser.walk(&body.end_session_url, None).await?;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("name=\"logout\""), "{}", page.body);
    assert_eq!(me(&fixture, &token).await?.status().as_u16(), 401);
    Ok(())
}

#[tokio::test]
async fn tampered_replayed_foreign_and_malformed_callbacks_are_refused() -> anyhow::Result<()> {
    let fixture = start("").await?;
    let browser = SsoBrowser::new();
    let prefix = fixture.callback_prefix();

    // A tampered state.
    let callback = browser.sign_in_at_provider(&fixture.base, "alice").await?;
    let mut tampered = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                format!("{v}x")
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(&pairs);
    let answer = browser.client().get(tampered).send().await?;
    assert_eq!(location(&answer), "/#/login?sso_error=state_mismatch");

    // The flow is gone with that answer: the genuine callback now finds no sign-in.
    let answer = browser.client().get(callback.clone()).send().await?;
    assert_eq!(location(&answer), "/#/login?sso_error=login_expired");

    // Another issuer in the answer (RFC 9207 mix-up).
    let callback = browser.sign_in_at_provider(&fixture.base, "alice").await?;
    let mut foreign = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "iss" {
                "http://127.0.0.1:1".to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    foreign.query_pairs_mut().clear().extend_pairs(&pairs);
    let answer = browser.client().get(foreign).send().await?;
    assert_eq!(location(&answer), "/#/login?sso_error=token_invalid");

    // A replayed code: the flow cookie put back, the code already exchanged once.
    let callback = browser.sign_in_at_provider(&fixture.base, "alice").await?;
    let flow = browser
        .cookie(&prefix, "opsdeck-sso")
        .ok_or_else(|| anyhow::anyhow!("no flow cookie after pressing the button"))?;
    let first = browser.client().get(callback.clone()).send().await?;
    assert_eq!(location(&first), "/");
    browser.set_cookie(
        &prefix,
        &format!("opsdeck-sso={flow}; Path=/api/auth/oidc/"),
    )?;
    let replay = browser.client().get(callback).send().await?;
    assert_eq!(location(&replay), "/#/login?sso_error=token_invalid");

    // A callback this browser never started, an oversized one, an unknown provider.
    let stranger = SsoBrowser::new();
    let answer = stranger
        .client()
        .get(format!("{prefix}?code=abc&state=def"))
        .send()
        .await?;
    assert_eq!(location(&answer), "/#/login?sso_error=login_expired");
    let answer = stranger
        .client()
        .get(format!("{prefix}?code={}&state=def", "a".repeat(5000)))
        .send()
        .await?;
    assert_eq!(location(&answer), "/#/login?sso_error=bad_callback");
    let answer = stranger
        .client()
        .get(format!("{prefix}?error=access_denied&state=def"))
        .send()
        .await?;
    assert_eq!(location(&answer), "/#/login?sso_error=provider_refused");
    let answer = stranger
        .client()
        .get(fixture.url(&format!("/api/auth/oidc/{}/login", "n".repeat(300))))
        .send()
        .await?;
    assert_eq!(location(&answer), "/#/login?sso_error=unknown_provider");
    Ok(())
}

#[tokio::test]
async fn an_id_token_with_another_nonce_is_refused() -> anyhow::Result<()> {
    let fixture = start("").await?;
    // The browser follows the relay's authorization request with the nonce changed: the
    // provider really issues an ID token carrying that other nonce.
    let browser = SsoBrowser::new();
    let callback = browser
        .sign_in_at_provider_changing(&fixture.base, "alice", |url| {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "nonce" {
                        "another-nonce".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(&pairs);
        })
        .await?;
    let answer = browser.client().get(callback).send().await?;
    assert_eq!(location(&answer), "/#/login?sso_error=token_invalid");
    assert!(browser.cookie(&fixture.base, "X-Token").is_none());

    // The same walk with the nonce untouched signs in (the change is what was refused).
    let browser = SsoBrowser::new();
    let callback = browser
        .sign_in_at_provider_changing(&fixture.base, "alice", |_| {})
        .await?;
    let answer = browser.client().get(callback).send().await?;
    assert_eq!(location(&answer), "/");
    Ok(())
}

/// Signs alice in at a relay whose provider misbehaves as `variant` says; where the
/// relay sent the browser.
async fn sign_in_at_misbehaving(variant: serde_json::Value) -> anyhow::Result<String> {
    let fixture = start_misbehaving("", "", REST, variant).await?;
    let browser = SsoBrowser::new();
    let answer = browser.sign_in(&fixture.base, "alice").await?;
    let landed = location(&answer);
    if landed == "/" {
        anyhow::ensure!(
            browser.cookie(&fixture.base, "X-Token").is_some(),
            "sent into the app without a token"
        );
    } else {
        anyhow::ensure!(
            browser.cookie(&fixture.base, "X-Token").is_none(),
            "refused ({landed}) but a token was set"
        );
    }
    Ok(landed)
}

#[tokio::test]
async fn id_tokens_for_another_audience_or_issuer_unsigned_or_signed_with_an_unpublished_key_or_expired_are_refused()
-> anyhow::Result<()> {
    let refused = "/#/login?sso_error=token_invalid";
    let reissued = |claims: serde_json::Value, key: &str, kid: &str| serde_json::json!({"reissueIdToken": {"claims": claims, "key": key, "kid": kid}});
    let unsigned_or_hmac =
        |alg: &str| serde_json::json!({"reissueIdToken": {"alg": alg, "kid": SIGNING_KID}});
    // The control: the provider's token signed again unchanged, with its own key, is
    // taken, so each refusal below is the change's doing.
    assert_eq!(
        sign_in_at_misbehaving(reissued(serde_json::json!({}), "signing", SIGNING_KID)).await?,
        "/"
    );
    // And a provider ten minutes slow whose tokens live an hour is fine.
    assert_eq!(
        sign_in_at_misbehaving(serde_json::json!({"clockOffsetSeconds": -600})).await?,
        "/"
    );
    let cases = [
        (
            "another audience",
            reissued(
                serde_json::json!({"aud": "someone-else"}),
                "signing",
                SIGNING_KID,
            ),
        ),
        (
            "another audience beside ours",
            reissued(
                serde_json::json!({"aud": [CLIENT_ID, "someone-else"]}),
                "signing",
                SIGNING_KID,
            ),
        ),
        (
            "an unknown issuer",
            reissued(
                serde_json::json!({"iss": "http://127.0.0.1:1"}),
                "signing",
                SIGNING_KID,
            ),
        ),
        (
            "a rotated-out key the provider no longer publishes",
            reissued(serde_json::json!({}), "stranger", "rotated-out"),
        ),
        (
            "an unpublished key under the published kid",
            reissued(serde_json::json!({}), "stranger", SIGNING_KID),
        ),
        ("no signature (alg none)", unsigned_or_hmac("none")),
        (
            "HS256 keyed with the client secret",
            unsigned_or_hmac("HS256"),
        ),
        (
            // A provider whose clock is ten minutes slow issues ID tokens valid for a
            // minute: each is expired by the relay's clock when it arrives.
            "an expired token",
            serde_json::json!({"clockOffsetSeconds": -600, "idTokenTtl": 60}),
        ),
    ];
    for (what, variant) in cases {
        assert_eq!(
            sign_in_at_misbehaving(variant).await?,
            refused,
            "an ID token with {what}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn logout_tokens_are_verified_like_id_tokens() -> anyhow::Result<()> {
    let fixture = start("").await?;
    let browser = SsoBrowser::new();
    let token = signed_in(&fixture, &browser, "alice").await?;
    let key = fixture.provider.signing_key()?;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };

    let unsigned = format!(
        "{}.{}.",
        b64(serde_json::json!({"alg": "none", "typ": "logout+jwt"})),
        b64(serde_json::json!({
            "iss": fixture.provider.issuer, "aud": CLIENT_ID, "iat": relay_now(),
            "exp": relay_now() + 60, "jti": "x", "sub": "alice",
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}}
        }))
    );
    let forged = [
        ("alg none", unsigned),
        (
            "a nonce",
            fixture.logout_token(&key, SIGNING_KID, serde_json::json!({"nonce": "n"})),
        ),
        (
            "no back-channel event",
            fixture.logout_token(&key, SIGNING_KID, serde_json::json!({"events": {}})),
        ),
        (
            "another audience",
            fixture.logout_token(
                &key,
                SIGNING_KID,
                serde_json::json!({"aud": "someone-else"}),
            ),
        ),
        (
            "another issuer",
            fixture.logout_token(
                &key,
                SIGNING_KID,
                serde_json::json!({"iss": "http://127.0.0.1:1"}),
            ),
        ),
        (
            "expired",
            fixture.logout_token(
                &key,
                SIGNING_KID,
                serde_json::json!({"exp": relay_now() - 10}),
            ),
        ),
        (
            "an unpublished key",
            fixture.logout_token(
                &fixture.provider.stranger_key()?,
                "rotated-out",
                serde_json::json!({}),
            ),
        ),
        (
            "an unpublished key under a published kid",
            fixture.logout_token(
                &fixture.provider.stranger_key()?,
                SIGNING_KID,
                serde_json::json!({}),
            ),
        ),
        (
            "neither a sub nor a sid",
            fixture.logout_token(&key, SIGNING_KID, serde_json::json!({"sub": null})),
        ),
        (
            "no jti",
            fixture.logout_token(&key, SIGNING_KID, serde_json::json!({"jti": null})),
        ),
        (
            "no iat",
            fixture.logout_token(&key, SIGNING_KID, serde_json::json!({"iat": null})),
        ),
        (
            "another audience beside ours",
            fixture.logout_token(
                &key,
                SIGNING_KID,
                serde_json::json!({"aud": [CLIENT_ID, "someone-else"]}),
            ),
        ),
        (
            "HS256 keyed with the client secret",
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &serde_json::json!({
                    "iss": fixture.provider.issuer, "aud": CLIENT_ID, "iat": relay_now(),
                    "exp": relay_now() + 60, "jti": "hs", "sub": "alice",
                    "events": {"http://schemas.openid.net/event/backchannel-logout": {}}
                }),
                &EncodingKey::from_secret(opsdeck_tests::oidc::CLIENT_SECRET.as_bytes()),
            )?,
        ),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (what, logout_token) in &forged {
        let (status, body) = fixture.post_logout_token(logout_token).await?;
        assert_eq!(status, 400, "a logout token with {what}: {body}");
        assert!(body.contains("invalid_request"), "{body}");
        assert_eq!(
            me(&fixture, &token).await?.status().as_u16(),
            200,
            "still logged in after a logout token with {what}"
        );
    }
    let (status, _) = fixture.post_logout_token(&"x".repeat(20 * 1024)).await?;
    assert_eq!(status, 413);

    // The same token, well formed, is taken.
    let genuine = fixture.logout_token(&key, SIGNING_KID, serde_json::json!({}));
    let (status, body) = fixture.post_logout_token(&genuine).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(me(&fixture, &token).await?.status().as_u16(), 401);
    Ok(())
}

#[tokio::test]
async fn a_logout_token_naming_only_the_provider_session_ends_that_session_and_is_taken_once()
-> anyhow::Result<()> {
    let fixture = start("").await?;
    // alice signs in twice, in two browsers: two sessions at the provider.
    let first = SsoBrowser::new();
    let first_token = signed_in(&fixture, &first, "alice").await?;
    let first_sid = fixture.provider.last_session_id()?;
    let second = SsoBrowser::new();
    let second_token = signed_in(&fixture, &second, "alice").await?;
    assert_ne!(fixture.provider.last_session_id()?, first_sid);

    // A logout token with the first session's sid and no sub (Back-Channel Logout 1.0
    // §2.4 allows either).
    let key = fixture.provider.signing_key()?;
    let logout = fixture.logout_token(
        &key,
        SIGNING_KID,
        serde_json::json!({"sub": null, "sid": first_sid}),
    );
    let (status, body) = fixture.post_logout_token(&logout).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(me(&fixture, &first_token).await?.status().as_u16(), 401);
    assert_eq!(me(&fixture, &second_token).await?.status().as_u16(), 200);

    // One naming the user ends her other session; sent again after she signed in anew,
    // it is refused with the reason and her new session stays.
    let logout = fixture.logout_token(&key, SIGNING_KID, serde_json::json!({}));
    let (status, body) = fixture.post_logout_token(&logout).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(me(&fixture, &second_token).await?.status().as_u16(), 401);
    let again = SsoBrowser::new();
    let third_token = signed_in(&fixture, &again, "alice").await?;
    let (status, body) = fixture.post_logout_token(&logout).await?;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("already used"), "{body}");
    assert_eq!(me(&fixture, &third_token).await?.status().as_u16(), 200);
    Ok(())
}

#[tokio::test]
async fn password_logins_can_be_switched_off_and_an_unreachable_provider_is_said_so_at_login_and_by_check_config()
-> anyhow::Result<()> {
    let fixture = start("local_users = false").await?;
    let providers: AuthProviders = reqwest::get(fixture.url("/api/auth/providers"))
        .await?
        .json()
        .await?;
    assert!(!providers.local_login);
    let answer = reqwest::Client::new()
        .post(fixture.url("/api/login"))
        .json(&serde_json::json!({"username": "alice", "password": "x"}))
        .send()
        .await?;
    let status = answer.status().as_u16();
    let body = answer.text().await?;
    assert_eq!(status, 401, "{body}");
    let browser = SsoBrowser::new();
    signed_in(&fixture, &browser, "alice").await?;

    // A provider whose issuer does not answer.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?;
    let dead = format!("http://{}", closed.local_addr()?);
    drop(closed);
    let secret = tempfile::NamedTempFile::new()?;
    std::fs::write(secret.path(), "s")?;
    let config = format!(
        "[auth]\njwt_secret = \"t\"\ncookie_secure = false\nlocal_users = false\n\
         [[auth.oidc]]\nid = \"gone\"\nissuer = \"{dead}\"\nclient_id = \"c\"\n\
         client_secret_file = \"{}\"\nallowed_users = [\"x\"]\nhttp_timeout = \"2s\"\n",
        secret.path().display()
    );
    let dead = relay::Config::from_toml(&config, "dead provider")?;
    let checked = relay::check_discovery(&dead).await;
    assert!(checked[0].1.is_err(), "{checked:?}");
    let live = format!(
        "[auth]\n{}",
        fixture.provider.provider_toml("allowed_users = [\"x\"]")?
    );
    let checked = relay::check_discovery(&relay::Config::from_toml(&live, "live")?).await;
    assert_eq!(checked, [("test".to_owned(), Ok(()))]);

    let relay = TestRelay::start(&config).await?;
    let answer = SsoBrowser::new()
        .client()
        .get(relay.http_url("/api/auth/oidc/gone/login"))
        .send()
        .await?;
    assert_eq!(location(&answer), "/#/login?sso_error=provider_unreachable");
    Ok(())
}

/// Presses the provider's button on the login page and signs in as `login` on the
/// provider's own pages.
async fn click_through_the_provider(
    client: &fantoccini::Client,
    base: &str,
    login: &str,
) -> anyhow::Result<()> {
    client.goto(&format!("{base}/#/login")).await?;
    let button = client
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css(&format!("#sso-{PROVIDER_ID}")))
        .await?;
    assert_eq!(button.text().await?, "Sign in with Test IdP");
    button.click().await?;
    let name = client
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css("input[name='login']"))
        .await?;
    name.send_keys(login).await?;
    client
        .find(Locator::Css("input[name='password']"))
        .await?
        .send_keys("any")
        .await?;
    client
        .find(Locator::Css("button[type='submit']"))
        .await?
        .click()
        .await?;
    // The provider asks for consent unless this browser gave it already.
    let consent = "input[name='prompt'][value='consent']";
    let asked = wait_for_js(
        client,
        "the provider's consent page or the app",
        &format!(
            "document.querySelector(\"{consent}\") ? 'consent' \
             : (location.href.startsWith({}) ? 'app' : '')",
            serde_json::to_string(base)?
        ),
    )
    .await?;
    if asked == "consent" {
        client
            .find(Locator::Css("button[type='submit']"))
            .await?
            .click()
            .await?;
    }
    Ok(())
}

/// Confirms "sign out" on the provider's end-session page (opened at `url` first unless
/// it is empty) and waits for the provider to say it is done.
async fn sign_out_at_the_provider(client: &fantoccini::Client, url: &str) -> anyhow::Result<()> {
    if !url.is_empty() {
        client.goto(url).await?;
    }
    client
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css("button[name='logout'][value='yes']"))
        .await?
        .click()
        .await?;
    wait_for_js(
        client,
        "the provider's signed-out page",
        "!document.querySelector(\"button[name='logout']\") && document.readyState === 'complete'",
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn in_chromium_the_provider_button_signs_in_to_a_terminal_logouts_follow_the_provider_and_a_refusal_says_why()
-> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let rest = format!(
        "[[grants]]\ngroups = [\"ops\"]\nssh = [\"*\"]\n{}",
        sshd.host_toml("box")?
    );
    let top = format!("static_dir = \"{}\"", built_app()?.display());
    let fixture = start_with(&top, "", &rest).await?;
    let mut driver = Chromedriver::start().await?;

    let client = driver.browser(1200, 800).await?;
    click_through_the_provider(&client, &fixture.base, "alice").await?;
    let target = client
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css(".target[data-id='box']"))
        .await?;
    wait_for_js(
        &client,
        "the user and their groups in the header",
        "document.querySelector('#user-name').innerText === 'test:alice' \
         && document.querySelector('#user-groups').innerText === 'ops'",
    )
    .await?;
    screenshot(&client, "sso-signed-in").await?;
    target.click().await?;
    wait_for_state(&client, "connected").await?;
    type_in_terminal(&client, "echo sso-$((6*7))\u{E007}").await?;
    wait_for_terminal_text(&client, "sso-42").await?;

    // Back-channel logout: alice signs out at the provider in another tab of the same
    // browser; the provider tells the relay, which closes her terminal (4431), and the
    // app's tab asks for a login.
    let app_tab = client.window().await?;
    let provider_tab = client.new_window(true).await?.handle;
    client.switch_to_window(provider_tab).await?;
    sign_out_at_the_provider(
        &client,
        &format!(
            "{}/session/end?client_id={CLIENT_ID}",
            fixture.provider.issuer
        ),
    )
    .await?;
    client.close_window().await?;
    client.switch_to_window(app_tab).await?;
    wait_for_js(
        &client,
        "the login page after the back-channel logout",
        "location.hash.startsWith('#/login')",
    )
    .await?;

    // RP-initiated logout: signed in again, "Log out" ends at the provider's end-session
    // page, which signs the browser out there too.
    click_through_the_provider(&client, &fixture.base, "alice").await?;
    let logout = client
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css("#logout"))
        .await?;
    logout.click().await?;
    let end_session = format!("{}/session/end", fixture.provider.issuer);
    wait_for_js(
        &client,
        "the provider's end-session page",
        &format!(
            "location.href.startsWith({}) && document.querySelector(\"button[name='logout']\")",
            serde_json::to_string(&end_session)?
        ),
    )
    .await?;
    screenshot(&client, "sso-rp-logout").await?;
    sign_out_at_the_provider(&client, "").await?;
    client.close().await?;

    let client = driver.browser(1200, 800).await?;
    click_through_the_provider(&client, &fixture.base, "eve").await?;
    let refusal = wait_for_js(
        &client,
        "the refusal on the login page",
        "(document.querySelector('#sso-error')||{dataset:{}}).dataset.code",
    )
    .await?;
    assert_eq!(refusal, "not_allowed");
    let text = client
        .find(Locator::Css("#sso-error"))
        .await?
        .text()
        .await?;
    assert!(text.contains("not allowed"), "{text}");
    screenshot(&client, "sso-refused").await?;
    client.close().await?;
    Ok(())
}
