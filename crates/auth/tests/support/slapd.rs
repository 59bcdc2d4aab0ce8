//! Starts Debian's `slapd` for a test: its own temporary directory and slapd.conf, a small
//! directory loaded with slapadd (password hashes made by slappasswd, an independent
//! implementation), listeners on free loopback ports (ldap:// with StartTLS, and ldaps://),
//! bounded waits, and stops by pid.
//!
//! Without slapd on the machine the tests that need it are skipped with a message, except
//! under CI (the CI variable set), where that is a failure.

#![allow(dead_code)]

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";
const SLAPPASSWD: &str = "/usr/sbin/slappasswd";

/// The search account and its password.
pub const SEARCH_DN: &str = "cn=imap,dc=example,dc=org";
pub const SEARCH_PASSWORD: &str = "imap-search-pw";
pub const BASE: &str = "ou=people,dc=example,dc=org";

/// (uid, password, how slappasswd hashes it, extra LDIF lines)
pub const USERS: [(&str, &str, &str, &str); 6] = [
    (
        "alice",
        "alice-pw",
        "{SSHA}",
        "mail: alice@example.org\nmailQuota: 1G\nmailEnabled: TRUE\n",
    ),
    ("bob", "bob-pw", "{CRYPT}", "mail: bob@example.org\n"),
    ("carol", "carol-pw", "{ARGON2}", "mail: carol@example.org\n"),
    (
        "dave",
        "dave-pw",
        "{SSHA}",
        "mail: dave@example.org\nmailEnabled: FALSE\n",
    ),
    ("twin", "twin-pw", "{SSHA}", ""),
    // A quota small enough for a test to reach.
    ("quinn", "quinn-pw", "{SSHA}", "mailQuota: 2K\n"),
];

/// A running (or stopped) slapd.
pub struct Slapd {
    dir: tempfile::TempDir,
    pub port: u16,
    pub tls_port: u16,
    child: Option<Child>,
    /// The CA certificate (PEM) that signed slapd's certificate.
    pub ca_file: PathBuf,
}

/// Whether slapd can be run here; panics under CI when it cannot.
pub fn available() -> bool {
    let present = [SLAPD, SLAPADD, SLAPPASSWD]
        .iter()
        .all(|p| Path::new(p).exists());
    if !present {
        if std::env::var_os("CI").is_some() {
            panic!(
                "slapd is not installed: CI must install the Debian packages slapd and ldap-utils"
            );
        }
        eprintln!("skipped: slapd not installed (apt-get install slapd ldap-utils)");
    }
    present
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn slappasswd(password: &str, scheme: &str) -> String {
    let mut cmd = Command::new(SLAPPASSWD);
    cmd.args(["-s", password, "-h", scheme]);
    match scheme {
        "{CRYPT}" => {
            cmd.args(["-c", "$6$%.16s"]);
        }
        "{ARGON2}" => {
            cmd.args(["-o", "module-load=argon2"]);
        }
        _ => {}
    }
    let out = cmd.output().expect("run slappasswd");
    assert!(out.status.success(), "slappasswd {scheme}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

const SCHEMA: &str = "\
attributetype ( 1.3.6.1.4.1.99999.1.1 NAME 'mailEnabled'
  EQUALITY booleanMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.7 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.1.2 NAME 'mailQuota'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.99999.2.1 NAME 'ringmailUser' SUP top AUXILIARY
  MAY ( mailEnabled $ mailQuota ) )
";

fn ldif() -> String {
    let mut out = format!(
        "dn: dc=example,dc=org\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
         dn: {BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=others,dc=example,dc=org\nobjectClass: organizationalUnit\nou: others\n\n\
         dn: {SEARCH_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: imap\nuserPassword: {SEARCH_PASSWORD}\n\n"
    );
    for (uid, password, scheme, extra) in USERS {
        out.push_str(&format!(
            "dn: uid={uid},{BASE}\nobjectClass: inetOrgPerson\nobjectClass: ringmailUser\n\
             uid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: {}\n{extra}\n",
            slappasswd(password, scheme)
        ));
    }
    // A second "twin" elsewhere under the suffix: a filter that matches both is ambiguous.
    out.push_str(&format!(
        "dn: uid=twin,ou=others,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: twin\ncn: twin\nsn: twin\nuserPassword: {}\n\n",
        slappasswd("twin-pw", "{SSHA}")
    ));
    out
}

/// A CA and a certificate for 127.0.0.1 signed by it; returns the CA's PEM path.
fn make_certs(dir: &Path) -> PathBuf {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ringmail test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    let ca_file = dir.join("ca.pem");
    fs::write(&ca_file, ca.pem()).unwrap();
    ca_file
}

/// A CA that signed nothing slapd has (for "wrong CA" tests).
pub fn other_ca(dir: &Path) -> PathBuf {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let ca = params.self_signed(&key).unwrap();
    let path = dir.join("other-ca.pem");
    fs::write(&path, ca.pem()).unwrap();
    path
}

impl Slapd {
    /// Starts slapd with the test directory, or `None` (skip) when slapd is not installed.
    pub fn start() -> Option<Slapd> {
        if !available() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("db")).unwrap();
        fs::write(root.join("test.schema"), SCHEMA).unwrap();
        let ca_file = make_certs(root);
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include {root}/test.schema\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             moduleload argon2\n\
             pidfile {root}/slapd.pid\n\
             TLSCACertificateFile {root}/ca.pem\n\
             TLSCertificateFile {root}/server.pem\n\
             TLSCertificateKeyFile {root}/server.key\n\
             database mdb\n\
             maxsize 10485760\n\
             suffix \"dc=example,dc=org\"\n\
             rootdn \"cn=admin,dc=example,dc=org\"\n\
             directory {root}/db\n\
             access to attrs=userPassword by dn.exact=\"{SEARCH_DN}\" read by anonymous auth by * none\n\
             access to * by * read\n",
            root = root.display()
        );
        fs::write(root.join("slapd.conf"), conf).unwrap();
        fs::write(root.join("data.ldif"), ldif()).unwrap();
        let out = Command::new(SLAPADD)
            .arg("-f")
            .arg(root.join("slapd.conf"))
            .arg("-l")
            .arg(root.join("data.ldif"))
            .output()
            .expect("run slapadd");
        assert!(out.status.success(), "slapadd: {out:?}");
        let mut slapd = Slapd {
            dir,
            port: free_port(),
            tls_port: free_port(),
            child: None,
            ca_file,
        };
        slapd.spawn();
        Some(slapd)
    }

    pub fn uri(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn ldaps_uri(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.tls_port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the process and waits (at most 15 s) until it accepts connections.
    fn spawn(&mut self) {
        let root = self.dir.path();
        let log = fs::File::create(root.join("slapd.log")).unwrap();
        let urls = format!("{} {}/", self.uri(), self.ldaps_uri());
        // -d 0: stay in the foreground (no fork), so the pid is the child's.
        let child = Command::new(SLAPD)
            .arg("-f")
            .arg(root.join("slapd.conf"))
            .arg("-h")
            .arg(urls)
            .args(["-d", "0"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start slapd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "slapd exited at start ({status}): {}",
                    fs::read_to_string(root.join("slapd.log")).unwrap_or_default()
                );
            }
            let up = |port| TcpStream::connect(("127.0.0.1", port)).is_ok();
            if up(self.port) && up(self.tls_port) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "slapd did not listen within 15 s: {}",
                fs::read_to_string(root.join("slapd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill {signal}");
        }
    }

    /// Stops slapd (SIGTERM, then SIGKILL after 10 s) and waits for it to exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-CONT", &pid]).status();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops and starts again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Freezes the process (SIGSTOP): connections open, nothing answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused process go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
