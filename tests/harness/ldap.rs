//! A real OpenLDAP `slapd` for tests: Debian's, run as the current user on free loopback
//! ports from a generated `slapd.conf` in a temporary folder, seeded through `ldapadd` (so
//! the `memberof` overlay fills in `memberOf` as it would in production), killed when the
//! guard drops. With TLS it also has a test CA and a server certificate for 127.0.0.1
//! (made with rcgen), answers StartTLS on its `ldap://` port and serves `ldaps://`, and
//! refuses anything on a connection without TLS (`security ssf=1`).
//!
//! The directory: `dc=example,dc=org`, the service account `cn=opsdeck,ou=services`
//! (password in [`TestSlapd::service_password_file`]), and these people (all with the
//! password [`PASSWORD`]) and groups (`groupOfNames` under `ou=groups`):
//!
//! | uid | groups |
//! |---|---|
//! | `alice` | `operators`, `staff` |
//! | `bob` | `staff`, `wheel` |
//! | `carol` | none |
//! | `star*user` | `operators` |

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::net::spawn_listening;

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPPASSWD: &str = "/usr/sbin/slappasswd";
const LDAPADD: &str = "/usr/bin/ldapadd";
/// How long slapd may take to listen after it starts.
const START_LIMIT: Duration = Duration::from_secs(20);

/// The directory's suffix.
pub const BASE: &str = "dc=example,dc=org";
/// The password of every person in the directory.
pub const PASSWORD: &str = "directory horse battery staple";
/// The relay's service account.
pub const SERVICE_DN: &str = "cn=opsdeck,ou=services,dc=example,dc=org";
/// The service account's password (in the file [`TestSlapd::service_password_file`]).
pub const SERVICE_PASSWORD: &str = "service-account-secret";
const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
const ADMIN_PASSWORD: &str = "admin-secret";

/// The seeded people and their groups.
pub const PEOPLE: &[(&str, &[&str])] = &[
    ("alice", &["operators", "staff"]),
    ("bob", &["staff", "wheel"]),
    ("carol", &[]),
    ("star*user", &["operators"]),
];
const GROUPS: &[&str] = &["operators", "staff", "wheel"];

/// The files of the test CA and slapd's certificate.
pub struct TestCa {
    /// PEM of the CA certificate: what `auth.ldap.ca_file` names.
    pub ca_file: PathBuf,
}

pub struct TestSlapd {
    /// The `ldap://` port.
    pub port: u16,
    /// The `ldaps://` port (with TLS only).
    pub ldaps_port: Option<u16>,
    pub ca: Option<TestCa>,
    dir: TempDir,
    child: Option<Child>,
}

impl TestSlapd {
    /// Starts a plain-LDAP slapd and seeds it.
    pub async fn start() -> anyhow::Result<Self> {
        Self::launch(false).await
    }

    /// Starts a slapd that speaks StartTLS and ldaps with a certificate of a fresh test
    /// CA, and refuses operations on connections without TLS.
    pub async fn start_with_tls() -> anyhow::Result<Self> {
        Self::launch(true).await
    }

    /// `ldap://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:<ldaps port>` (with TLS only).
    pub fn ldaps_url(&self) -> Option<String> {
        self.ldaps_port.map(|p| format!("ldaps://127.0.0.1:{p}"))
    }

    /// The file holding the service account's password (`bind_password_file`).
    pub fn service_password_file(&self) -> PathBuf {
        self.dir.path().join("service-password")
    }

    /// An `[auth.ldap]` section for a relay: a service bind and search over plain LDAP,
    /// groups from `memberOf`, `operators` (by DN) mapped to `ops` and `staff` (by cn) to
    /// `staff`, `wheel` unmapped; `extra` lines are added to the section.
    pub fn config_toml(&self, extra: &str) -> String {
        format!(
            "[auth.ldap]\nurl = \"{url}\"\nstarttls = false\n\
             bind_dn = \"{SERVICE_DN}\"\nbind_password_file = \"{secret}\"\n\
             user_search_base = \"ou=people,{BASE}\"\n{extra}\n\
             [auth.ldap.group_map]\n\"cn=operators,ou=groups,{BASE}\" = \"ops\"\nstaff = \"staff\"\n",
            url = self.url(),
            secret = self.service_password_file().display(),
        )
    }

    /// Kills slapd, as a crash or an outage would; the directory is then unreachable.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.context("killing slapd")?;
        }
        Ok(())
    }

    async fn launch(tls: bool) -> anyhow::Result<Self> {
        crate::init_logs();
        let dir = tempfile::tempdir().context("making a folder for slapd")?;
        std::fs::create_dir(dir.path().join("db"))?;
        std::fs::write(
            dir.path().join("service-password"),
            format!("{SERVICE_PASSWORD}\n"),
        )?;
        let ca = if tls {
            Some(make_certificates(dir.path())?)
        } else {
            None
        };
        let conf = dir.path().join("slapd.conf");
        std::fs::write(&conf, slapd_conf(dir.path(), tls))?;
        // With TLS, ldaps listens on the port after the ldap one; slapd exits when it
        // cannot bind either, and is then started again on other ports.
        let spawn = |port: u16| {
            let mut urls = format!("ldap://127.0.0.1:{port}/");
            if tls {
                let ldaps = port.checked_add(1).context("no port after the ldap one")?;
                urls.push_str(&format!(" ldaps://127.0.0.1:{ldaps}/"));
            }
            Command::new(SLAPD)
                // -d 0: stay in the foreground (so the guard owns the process), log nothing.
                .args(["-d", "0", "-h", &urls, "-f"])
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {SLAPD}; is slapd installed?"))
        };
        let (port, child) = spawn_listening("slapd", START_LIMIT, spawn).await?;
        let ldaps_port = tls.then(|| port + 1);
        let slapd = Self {
            port,
            ldaps_port,
            ca,
            dir,
            child: Some(child),
        };
        slapd.seed(tls).await?;
        Ok(slapd)
    }

    /// Adds the tree, the service account, the people and the groups (groups last, so the
    /// memberof overlay records them on the people).
    async fn seed(&self, tls: bool) -> anyhow::Result<()> {
        let hash = ssha(PASSWORD).await?;
        let service_hash = ssha(SERVICE_PASSWORD).await?;
        let mut ldif = format!(
            "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
             dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n\
             dn: ou=services,{BASE}\nobjectClass: organizationalUnit\nou: services\n\n\
             dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n\
             cn: opsdeck\nuserPassword: {service_hash}\n\n"
        );
        for (uid, _) in PEOPLE {
            ldif.push_str(&format!(
                "dn: uid={uid},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\n\
                 cn: {uid}\nsn: {uid}\nuserPassword: {hash}\n\n"
            ));
        }
        for group in GROUPS {
            ldif.push_str(&format!(
                "dn: cn={group},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: {group}\n"
            ));
            let members: Vec<&str> = PEOPLE
                .iter()
                .filter(|(_, groups)| groups.contains(group))
                .map(|(uid, _)| *uid)
                .collect();
            for uid in members {
                ldif.push_str(&format!("member: uid={uid},ou=people,{BASE}\n"));
            }
            ldif.push('\n');
        }
        let file = self.dir.path().join("seed.ldif");
        std::fs::write(&file, ldif)?;
        let mut command = Command::new(LDAPADD);
        command
            .args([
                "-x",
                "-H",
                &self.url(),
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
                "-f",
            ])
            .arg(&file);
        if tls {
            // -ZZ: StartTLS, required (the server refuses plain binds).
            command.arg("-ZZ");
            if let Some(ca) = &self.ca {
                command.env("LDAPTLS_CACERT", &ca.ca_file);
            }
        }
        let output = command
            .output()
            .await
            .with_context(|| format!("running {LDAPADD}; is ldap-utils installed?"))?;
        if !output.status.success() {
            bail!(
                "seeding slapd failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for TestSlapd {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
    }
}

/// An `{SSHA}` hash of `password`, by slappasswd.
async fn ssha(password: &str) -> anyhow::Result<String> {
    let output = Command::new(SLAPPASSWD)
        .args(["-s", password])
        .output()
        .await
        .with_context(|| format!("running {SLAPPASSWD}"))?;
    if !output.status.success() {
        bail!(
            "slappasswd failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

fn slapd_conf(dir: &Path, tls: bool) -> String {
    let d = dir.display();
    let tls_lines = if tls {
        format!(
            "TLSCACertificateFile {d}/ca.pem\nTLSCertificateFile {d}/server.pem\n\
             TLSCertificateKeyFile {d}/server.key\nsecurity ssf=1\n"
        )
    } else {
        String::new()
    };
    format!(
        "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
         include /etc/ldap/schema/inetorgperson.schema\ninclude /etc/ldap/schema/nis.schema\n\
         modulepath /usr/lib/ldap\nmoduleload back_mdb\nmoduleload memberof\n\
         pidfile {d}/slapd.pid\nargsfile {d}/slapd.args\n{tls_lines}\
         database mdb\nmaxsize 16777216\nsuffix \"{BASE}\"\nrootdn \"{ADMIN_DN}\"\n\
         rootpw {ADMIN_PASSWORD}\ndirectory {d}/db\noverlay memberof\n\
         access to attrs=userPassword by self =xw by anonymous auth by * none\n\
         access to * by users read by * none\n"
    )
}

/// A test CA and a certificate of it for 127.0.0.1, written as `ca.pem`, `server.pem`,
/// `server.key` in `dir`.
fn make_certificates(dir: &Path) -> anyhow::Result<TestCa> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        SanType,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Opsdeck test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
    params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let server_cert = params.signed_by(&server_key, &issuer)?;
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem())?;
    std::fs::write(dir.join("server.pem"), server_cert.pem())?;
    std::fs::write(dir.join("server.key"), server_key.serialize_pem())?;
    Ok(TestCa { ca_file })
}
