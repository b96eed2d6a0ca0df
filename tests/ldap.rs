//! Logging in through a real LDAP directory (Debian's slapd, `harness/ldap.rs`): the
//! directory's groups mapped onto grants, wrong passwords, required groups, names that try
//! to change the search filter, a directory that is down or silent, StartTLS and ldaps.

use common::api::{ApiError, LoginRequest, Me};
use opsdeck_tests::client::WsClient;
use opsdeck_tests::ldap::{BASE, PASSWORD, SERVICE_PASSWORD, TestSlapd};
use opsdeck_tests::relay::TestRelay;

const ROOMS: &str = "[[grants]]\ngroups = [\"ops\"]\nchat = [\"ops-room\"]\n\
    [[chat_rooms]]\nid = \"ops-room\"\n";

/// A relay that logs in through `slapd` (`extra` lines in `[auth.ldap]`, `auth` lines in
/// `[auth]`), with one chat room granted to the Opsdeck group `ops`.
async fn relay(slapd: &TestSlapd, auth: &str, extra: &str) -> anyhow::Result<TestRelay> {
    let config = format!(
        "[auth]\njwt_secret = \"test-secret\"\ncookie_secure = false\n{auth}\n{}\n{ROOMS}",
        slapd.config_toml(extra)
    );
    TestRelay::start(&config).await
}

async fn login(relay: &TestRelay, user: &str, password: &str) -> anyhow::Result<reqwest::Response> {
    Ok(reqwest::Client::new()
        .post(relay.http_url("/api/login"))
        .json(&LoginRequest {
            username: user.into(),
            password: password.into(),
        })
        .send()
        .await?)
}

/// Logs in, expecting success: the token from the cookie and the body.
async fn logged_in(relay: &TestRelay, user: &str, password: &str) -> anyhow::Result<(String, Me)> {
    let response = login(relay, user, password).await?;
    anyhow::ensure!(
        response.status() == 200,
        "login as {user:?}: {} {}",
        response.status(),
        response.text().await?
    );
    let cookie = response
        .headers()
        .get("set-cookie")
        .ok_or_else(|| anyhow::anyhow!("no cookie set"))?
        .to_str()?;
    let token = cookie
        .strip_prefix("X-Token=")
        .and_then(|rest| rest.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("cookie is not X-Token: {cookie}"))?
        .to_owned();
    Ok((token, response.json().await?))
}

/// Logs in, expecting a refusal: its status and message.
async fn refused(relay: &TestRelay, user: &str, password: &str) -> anyhow::Result<(u16, String)> {
    let response = login(relay, user, password).await?;
    let status = response.status().as_u16();
    anyhow::ensure!(
        response.headers().get("set-cookie").is_none(),
        "a cookie was set"
    );
    let body: ApiError = response.json().await?;
    Ok((status, body.error))
}

async fn me(relay: &TestRelay, token: &str) -> anyhow::Result<Me> {
    Ok(reqwest::Client::new()
        .get(relay.http_url("/api/me"))
        .header("cookie", format!("X-Token={token}"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

#[tokio::test]
async fn directory_users_log_in_with_their_mapped_groups_and_grants_follow_them()
-> anyhow::Result<()> {
    let slapd = TestSlapd::start().await?;
    let relay = relay(&slapd, "", "").await?;

    // The name as the directory spells it, whatever case was typed; `wheel` is unmapped.
    let (alice, body) = logged_in(&relay, "Alice", PASSWORD).await?;
    assert_eq!(body.username, "alice");
    assert_eq!(body.groups, ["ops", "staff"]);
    assert_eq!(me(&relay, &alice).await?, body);
    let (bob, body) = logged_in(&relay, "bob", PASSWORD).await?;
    assert_eq!(body.groups, ["staff"]);

    let url = relay.ws_url("/ws/chat/ops-room");
    let mut client = WsClient::connect(&url, Some(&alice), None).await?;
    client.connected().await?;
    let mut client = WsClient::connect(&url, Some(&bob), None).await?;
    let (code, reason, _) = client.read_until_closed().await?;
    assert_eq!(code, 4403, "{reason}");
    Ok(())
}

#[tokio::test]
async fn unmapping_a_directory_group_closes_the_streams_it_granted_at_the_next_keepalive()
-> anyhow::Result<()> {
    let slapd = TestSlapd::start().await?;
    let mapped = format!(
        "[keepalive]\nping_interval = \"1s\"\npeer_timeout = \"5s\"\n\
         [auth]\njwt_secret = \"test-secret\"\ncookie_secure = false\n{}\n{ROOMS}",
        slapd.config_toml("")
    );
    let relay = TestRelay::start(&mapped).await?;
    let (alice, _) = logged_in(&relay, "alice", PASSWORD).await?;
    let url = relay.ws_url("/ws/chat/ops-room");
    let mut client = WsClient::connect(&url, Some(&alice), None).await?;
    client.connected().await?;
    // What SIGHUP would load: `operators` no longer maps onto `ops`.
    let unmapped = mapped.replace(
        &format!("\"cn=operators,ou=groups,{BASE}\" = \"ops\"\n"),
        "",
    );
    assert_ne!(unmapped, mapped);
    relay
        .relay()
        .reload(relay::Config::from_toml(&unmapped, "unmapped")?)?;
    let (code, reason, _) = client.read_until_closed().await?;
    assert_eq!(code, 4430, "{reason}");
    assert_eq!(me(&relay, &alice).await?.groups, ["staff"]);
    Ok(())
}

#[tokio::test]
async fn wrong_passwords_and_unknown_names_get_the_same_401_as_built_in_users() -> anyhow::Result<()>
{
    let slapd = TestSlapd::start().await?;
    let relay = relay(&slapd, "", "").await?;
    for (user, password) in [("alice", "wrong"), ("nobody", PASSWORD), ("alice", "")] {
        let (status, message) = refused(&relay, user, password).await?;
        assert_eq!(status, 401, "{user}/{password}: {message}");
        assert_eq!(message, "wrong username or password");
    }
    Ok(())
}

#[tokio::test]
async fn a_user_in_none_of_the_required_groups_is_refused_with_403_and_the_reason()
-> anyhow::Result<()> {
    let slapd = TestSlapd::start().await?;
    let relay = relay(&slapd, "", "required_groups = [\"ops\", \"staff\"]").await?;
    let (status, message) = refused(&relay, "carol", PASSWORD).await?;
    assert_eq!(status, 403, "{message}");
    assert!(
        message.contains("carol is in none of the directory groups allowed to log in"),
        "{message}"
    );
    // A wrong password is still just a wrong password, group or no group.
    assert_eq!(refused(&relay, "carol", "wrong").await?.0, 401);
    logged_in(&relay, "bob", PASSWORD).await?;
    Ok(())
}

#[tokio::test]
async fn filter_metacharacters_in_a_name_are_escaped_and_match_nobody_else() -> anyhow::Result<()> {
    let slapd = TestSlapd::start().await?;
    let relay = relay(&slapd, "", "").await?;
    // Each, pasted into (uid=...) unescaped, would find alice (or everyone).
    for name in [
        "al*",
        "*",
        "alice)(uid=*",
        "*)(uid=alice",
        "alic\\65",
        "\\",
        "alice\0",
    ] {
        let (status, message) = refused(&relay, name, PASSWORD).await?;
        assert_eq!(status, 401, "{name:?}: {message}");
    }
    // Escaped, not stripped: a user whose name has a `*` logs in as just that user.
    let (_, body) = logged_in(&relay, "star*user", PASSWORD).await?;
    assert_eq!(body.username, "star*user");
    assert_eq!(body.groups, ["ops"]);
    Ok(())
}

#[tokio::test]
async fn a_very_long_name_is_refused_with_400_before_the_directory_sees_it() -> anyhow::Result<()> {
    let slapd = TestSlapd::start().await?;
    let relay = relay(&slapd, "", "").await?;
    let (status, message) = refused(&relay, &"a".repeat(10_000), PASSWORD).await?;
    assert_eq!(status, 400, "{message}");
    assert!(message.contains("too long"), "{message}");
    Ok(())
}

#[tokio::test]
async fn the_login_throttle_applies_to_directory_logins() -> anyhow::Result<()> {
    let slapd = TestSlapd::start().await?;
    let limits = "[auth.login_limits]\nper_user_burst = 2\nper_user_per_minute = 1";
    let relay = relay(&slapd, limits, "").await?;
    assert_eq!(refused(&relay, "alice", "guess 1").await?.0, 401);
    assert_eq!(refused(&relay, "alice", "guess 2").await?.0, 401);
    let (status, message) = refused(&relay, "alice", PASSWORD).await?;
    assert_eq!(status, 429, "{message}");
    Ok(())
}

#[tokio::test]
async fn built_in_users_are_checked_first_and_can_be_switched_off() -> anyhow::Result<()> {
    use opsdeck_tests::relay::{PASSWORD as LOCAL_PASSWORD, users_toml};
    let slapd = TestSlapd::start().await?;
    // users_toml: built-in alice (group ops) and bob, with their own [auth] section.
    let both = format!("{}\n{}\n{ROOMS}", users_toml(), slapd.config_toml(""));
    let relay = TestRelay::start(&both).await?;
    assert_eq!(refused(&relay, "alice", PASSWORD).await?.0, 401);
    let (_, body) = logged_in(&relay, "alice", LOCAL_PASSWORD).await?;
    assert_eq!(body.groups, ["ops"]);
    // "Alice" is not a built-in name, but the directory's answer, "alice", is: refused.
    assert_eq!(refused(&relay, "Alice", PASSWORD).await?.0, 401);

    let directory_only = both.replace(
        "cookie_secure = false\n",
        "cookie_secure = false\nlocal_users = false\n",
    );
    let relay = TestRelay::start(&directory_only).await?;
    assert_eq!(refused(&relay, "alice", LOCAL_PASSWORD).await?.0, 401);
    let (_, body) = logged_in(&relay, "alice", PASSWORD).await?;
    assert_eq!(body.groups, ["ops", "staff"]);
    Ok(())
}

#[tokio::test]
async fn direct_binds_and_group_searches_find_the_same_user_and_groups() -> anyhow::Result<()> {
    let slapd = TestSlapd::start().await?;
    let config = format!(
        "[auth]\njwt_secret = \"test-secret\"\ncookie_secure = false\n\
         [auth.ldap]\nurl = \"{}\"\nstarttls = false\n\
         user_dn_template = \"uid={{username}},ou=people,dc=example,dc=org\"\n\
         group_search_base = \"ou=groups,dc=example,dc=org\"\n\
         [auth.ldap.group_map]\noperators = \"ops\"\n\"cn=staff,ou=groups,dc=example,dc=org\" = \"staff\"\n",
        slapd.url()
    );
    let relay = TestRelay::start(&config).await?;
    let (_, body) = logged_in(&relay, "alice", PASSWORD).await?;
    assert_eq!(
        (body.username.as_str(), body.groups.as_slice()),
        ("alice", &["ops".to_string(), "staff".into()][..])
    );
    assert_eq!(refused(&relay, "alice", "wrong").await?.0, 401);
    // DN metacharacters stay part of the value: no other entry is bound.
    for name in ["alice,ou=people", "carol+uid=alice", "nobody"] {
        assert_eq!(refused(&relay, name, PASSWORD).await?.0, 401, "{name}");
    }
    Ok(())
}

#[tokio::test]
async fn a_stopped_directory_is_503_saying_it_cannot_be_reached() -> anyhow::Result<()> {
    let mut slapd = TestSlapd::start().await?;
    let relay = relay(&slapd, "", "").await?;
    logged_in(&relay, "alice", PASSWORD).await?;
    slapd.stop().await?;
    let (status, message) = refused(&relay, "alice", PASSWORD).await?;
    assert_eq!(status, 503, "{message}");
    assert!(message.contains("cannot be reached"), "{message}");
    assert!(
        !message.contains("password") && !message.contains(SERVICE_PASSWORD),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn a_directory_that_never_answers_is_503_once_the_timeouts_pass() -> anyhow::Result<()> {
    // Accepts connections and says nothing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = silent.local_addr()?;
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    for (starttls, said) in [
        (false, "no answer to the user's bind"),
        (true, "no connection within"),
    ] {
        let config = format!(
            "[auth]\njwt_secret = \"test-secret\"\ncookie_secure = false\n\
             [auth.ldap]\nurl = \"ldap://{addr}\"\nstarttls = {starttls}\n\
             connect_timeout = \"300ms\"\noperation_timeout = \"300ms\"\n\
             user_dn_template = \"uid={{username}},ou=people,dc=example,dc=org\"\n"
        );
        let relay = TestRelay::start(&config).await?;
        let (status, message) = refused(&relay, "alice", PASSWORD).await?;
        assert_eq!(status, 503, "{message}");
        assert!(
            message.contains("cannot be reached") && message.contains(said),
            "{message}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn starttls_and_ldaps_check_the_directory_certificate_against_the_configured_ca()
-> anyhow::Result<()> {
    let slapd = TestSlapd::start_with_tls().await?;
    let ca = slapd
        .ca
        .as_ref()
        .expect("a TLS slapd has a CA")
        .ca_file
        .display()
        .to_string();
    let plain = slapd.config_toml("");
    let starttls = plain.replace(
        "starttls = false",
        &format!("starttls = true\nca_file = \"{ca}\""),
    );
    let ldaps = plain
        .replace(&slapd.url(), &slapd.ldaps_url().expect("an ldaps port"))
        .replace(
            "starttls = false",
            &format!("starttls = false\nca_file = \"{ca}\""),
        );
    for section in [&starttls, &ldaps] {
        let relay = relay_with(section).await?;
        let (_, body) = logged_in(&relay, "alice", PASSWORD).await?;
        assert_eq!(body.groups, ["ops", "staff"]);
    }
    // The system's roots do not include the test CA: the directory cannot be trusted.
    let untrusted = plain.replace("starttls = false", "starttls = true");
    let (status, message) = refused(&relay_with(&untrusted).await?, "alice", PASSWORD).await?;
    assert_eq!(status, 503, "{message}");
    assert!(message.contains("certificate"), "{message}");
    // Without TLS this directory refuses the service bind (confidentiality required).
    let (status, message) = refused(&relay_with(&plain).await?, "alice", PASSWORD).await?;
    assert_eq!(status, 503, "{message}");
    assert!(message.contains("service account"), "{message}");
    assert!(!message.contains(SERVICE_PASSWORD), "{message}");
    Ok(())
}

async fn relay_with(ldap_section: &str) -> anyhow::Result<TestRelay> {
    let config = format!(
        "[auth]\njwt_secret = \"test-secret\"\ncookie_secure = false\n{ldap_section}\n{ROOMS}"
    );
    TestRelay::start(&config).await
}
