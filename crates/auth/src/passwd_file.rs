//! The users file, in Dovecot's passwd-file format:
//!
//! ```text
//! # comment
//! alice:{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$...:::::
//! bob:{SHA512-CRYPT}$6$...:1000:1000::/home/bob::userdb_quota_rule=*:storage=1G
//! ```
//!
//! Only the first two fields (name, password) mean anything to ringmail; the rest are kept
//! byte for byte when the file is rewritten, and so are comments and blank lines, so that a
//! file shared with Dovecot survives `ringmail user passwd`.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::hash::{hash_new, Argon2Cost, StoredHash};
use super::AuthError;

/// One line of the file, as read or as added.
#[derive(Debug, Clone)]
enum Line {
    /// A comment or blank line, kept verbatim.
    Verbatim(String),
    User(UserLine),
}

#[derive(Debug, Clone)]
struct UserLine {
    /// The name as written in the file (its lowercase form is the lookup key).
    name: String,
    hash: StoredHash,
    /// Everything after the password field, leading ':' included; empty if there was none.
    rest: String,
}

/// The parsed users file, ready to be queried or changed and saved back.
#[derive(Debug, Clone)]
pub struct UsersFile {
    path: PathBuf,
    lines: Vec<Line>,
    /// Lowercased name -> index into `lines`.
    index: HashMap<String, usize>,
    hash_cost: Argon2Cost,
}

/// Checks that `name` can be a login name and a passwd-file key, and returns its canonical
/// (lowercase) form.
pub fn canonical_name(name: &str) -> Result<String, AuthError> {
    let refuse = |reason| {
        Err(AuthError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return refuse("empty");
    }
    if name.len() > 255 {
        return refuse("longer than 255 bytes");
    }
    if name.contains(':') {
        return refuse("contains ':'");
    }
    if name.chars().any(char::is_control) {
        return refuse("contains a control character");
    }
    if name.chars().any(char::is_whitespace) {
        return refuse("contains white space");
    }
    if name.starts_with('#') {
        return refuse("starts with '#', which would make it a comment");
    }
    Ok(name.to_lowercase())
}

impl UsersFile {
    /// Reads and parses the users file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<UsersFile, AuthError> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|source| AuthError::Io {
            path: path.to_owned(),
            source,
        })?;
        UsersFile::parse(path, &bytes)
    }

    /// Like [`UsersFile::load`], but a file that does not exist yet reads as empty (for the
    /// first `ringmail user add`).
    pub fn load_or_empty(path: impl AsRef<Path>) -> Result<UsersFile, AuthError> {
        let path = path.as_ref();
        match fs::read(path) {
            Ok(bytes) => UsersFile::parse(path, &bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => UsersFile::parse(path, b""),
            Err(source) => Err(AuthError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses file contents; `path` is used in error messages and by [`UsersFile::save`].
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<UsersFile, AuthError> {
        let mut file = UsersFile {
            path: path.to_owned(),
            lines: Vec::new(),
            index: HashMap::new(),
            hash_cost: Argon2Cost::default(),
        };
        if bytes.is_empty() {
            return Ok(file);
        }
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let number = i + 1;
            let error = |reason: String| AuthError::Parse {
                path: path.to_owned(),
                line: number,
                reason,
            };
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let text = std::str::from_utf8(raw).map_err(|_| error("not valid UTF-8".into()))?;
            if text.trim().is_empty() || text.starts_with('#') {
                file.lines.push(Line::Verbatim(text.to_owned()));
                continue;
            }
            let (name, after_name) = text
                .split_once(':')
                .ok_or_else(|| error("expected name:password".into()))?;
            let key = canonical_name(name).map_err(|e| error(e.to_string()))?;
            let (password, rest) = match after_name.find(':') {
                Some(colon) => after_name.split_at(colon),
                None => (after_name, ""),
            };
            if password.is_empty() {
                return Err(error(format!("user {name:?} has an empty password field")));
            }
            let hash =
                StoredHash::parse(password).map_err(|e| error(format!("user {name:?}: {e}")))?;
            if let Some(&first) = file.index.get(&key) {
                return Err(error(format!(
                    "user {key:?} already defined on line {}",
                    first + 1
                )));
            }
            file.index.insert(key, file.lines.len());
            file.lines.push(Line::User(UserLine {
                name: name.to_owned(),
                hash,
                rest: rest.to_owned(),
            }));
        }
        Ok(file)
    }

    /// Sets the Argon2 cost used by [`UsersFile::add`] and [`UsersFile::set_password`].
    pub fn set_hash_cost(&mut self, cost: Argon2Cost) {
        self.hash_cost = cost;
    }

    /// The file this was read from and [`UsersFile::save`] writes to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored hash of `name` (any case).
    pub fn lookup(&self, name: &str) -> Option<&StoredHash> {
        let line = *self.index.get(&name.to_lowercase())?;
        match self.lines.get(line) {
            Some(Line::User(user)) => Some(&user.hash),
            _ => None,
        }
    }

    /// All users' canonical (lowercase) names, in file order.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<(usize, &str)> =
            self.index.iter().map(|(k, &i)| (i, k.as_str())).collect();
        names.sort_unstable();
        names.into_iter().map(|(_, k)| k).collect()
    }

    /// (canonical name, hash) for every user; what the authenticator indexes.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &StoredHash)> + '_ {
        self.index
            .iter()
            .filter_map(|(k, &i)| match self.lines.get(i) {
                Some(Line::User(user)) => Some((k.as_str(), &user.hash)),
                _ => None,
            })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the file has no users.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Adds a new user with an Argon2id hash of `password`; the name is stored lowercased.
    pub fn add(&mut self, name: &str, password: &[u8]) -> Result<(), AuthError> {
        let key = canonical_name(name)?;
        if self.index.contains_key(&key) {
            return Err(AuthError::UserExists(key));
        }
        let hash = hash_new(password, self.hash_cost)?;
        self.index.insert(key.clone(), self.lines.len());
        self.lines.push(Line::User(UserLine {
            name: key,
            hash,
            rest: String::new(),
        }));
        Ok(())
    }

    /// Replaces the password of an existing user; the other fields stay as they were.
    pub fn set_password(&mut self, name: &str, password: &[u8]) -> Result<(), AuthError> {
        let key = canonical_name(name)?;
        let line = *self
            .index
            .get(&key)
            .ok_or_else(|| AuthError::NoSuchUser(key.clone()))?;
        let hash = hash_new(password, self.hash_cost)?;
        match self.lines.get_mut(line) {
            Some(Line::User(user)) => {
                user.hash = hash;
                Ok(())
            }
            _ => Err(AuthError::NoSuchUser(key)),
        }
    }

    /// Deletes a user.
    pub fn remove(&mut self, name: &str) -> Result<(), AuthError> {
        let key = canonical_name(name)?;
        let line = self
            .index
            .remove(&key)
            .ok_or_else(|| AuthError::NoSuchUser(key.clone()))?;
        if line < self.lines.len() {
            self.lines.remove(line);
        }
        for i in self.index.values_mut() {
            if *i > line {
                *i -= 1;
            }
        }
        Ok(())
    }

    /// The file's contents as they would be written.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Verbatim(text) => out.push_str(text),
                Line::User(user) => {
                    out.push_str(&user.name);
                    out.push(':');
                    out.push_str(user.hash.as_str());
                    out.push_str(&user.rest);
                }
            }
            out.push('\n');
        }
        out
    }

    /// Writes the file atomically: a reader (or a crash) sees the old file or the new one,
    /// never a mix.
    ///
    /// A new file gets mode 0600: it holds password hashes. A file that exists keeps its
    /// owner, group and mode (minus any bits for others), so that `ringmail user passwd` run
    /// as root does not lock out a server that reads the file as its own user or group.
    /// Keeping the owner needs the right to chown; where that is missing it is not kept.
    pub fn save(&self) -> Result<(), AuthError> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| AuthError::Io { path, source }
        };
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let file_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "users".to_owned());
        let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
        let existing = fs::metadata(&self.path).ok();
        let mode = existing.as_ref().map_or(0o600, |m| m.mode() & 0o660);
        let write = || -> io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            // Set explicitly: the mode given to open() is filtered by the umask.
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            if let Some(m) = &existing {
                if std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid())).is_err() {
                    // Not root: the group may still be ours to give.
                    let _ = std::os::unix::fs::fchown(&f, None, Some(m.gid()));
                }
            }
            f.write_all(self.render().as_bytes())?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&tmp)(e));
        }
        if let Err(e) = fs::rename(&tmp, &self.path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&self.path)(e));
        }
        // The rename is durable only once the directory entry is on disk.
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOB: &str = "{SHA512-CRYPT}$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";

    fn sample() -> String {
        format!(
            "# users of example.org\n\
             \n\
             Bob:{BOB}:1000:1000::/home/bob::userdb_quota_rule=*:storage=1G\n\
             carol:{{PLAIN}}pw\r\n\
             dave:{{PLAIN}}x\n"
        )
    }

    fn parse(text: &str) -> Result<UsersFile, AuthError> {
        UsersFile::parse(Path::new("users"), text.as_bytes())
    }

    fn line_of(err: AuthError) -> usize {
        match err {
            AuthError::Parse { line, .. } => line,
            other => panic!("expected a parse error, got {other}"),
        }
    }

    #[test]
    fn parses_dovecot_lines() {
        let f = parse(&sample()).unwrap();
        assert_eq!(f.names(), ["bob", "carol", "dave"]);
        assert!(f.lookup("BOB").unwrap().verify(b"secret"));
        assert!(f.lookup("carol").unwrap().verify(b"pw"));
        assert!(f.lookup("nobody").is_none());
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn rewrite_keeps_comments_and_extra_fields() {
        let mut f = parse(&sample()).unwrap();
        f.set_hash_cost(Argon2Cost::MINIMAL);
        f.set_password("bob", b"new").unwrap();
        let out = f.render();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "# users of example.org");
        assert_eq!(lines[1], "");
        assert!(
            lines[2].starts_with("Bob:{ARGON2ID}$argon2id$"),
            "{}",
            lines[2]
        );
        assert!(lines[2].ends_with(":1000:1000::/home/bob::userdb_quota_rule=*:storage=1G"));
        assert_eq!(lines[3], "carol:{PLAIN}pw");
        let again = parse(&out).unwrap();
        assert!(again.lookup("bob").unwrap().verify(b"new"));
        assert!(!again.lookup("bob").unwrap().verify(b"secret"));
    }

    #[test]
    fn add_and_remove() {
        let mut f = parse(&sample()).unwrap();
        f.set_hash_cost(Argon2Cost::MINIMAL);
        assert!(matches!(
            f.add("CAROL", b"x"),
            Err(AuthError::UserExists(_))
        ));
        f.add("Erin", b"pw-e").unwrap();
        assert!(f.lookup("erin").unwrap().verify(b"pw-e"));
        f.remove("carol").unwrap();
        assert!(matches!(f.remove("carol"), Err(AuthError::NoSuchUser(_))));
        assert!(matches!(
            f.set_password("carol", b"x"),
            Err(AuthError::NoSuchUser(_))
        ));
        // Indexes after the removed line still point at the right users.
        assert!(f.lookup("dave").unwrap().verify(b"x"));
        assert!(f.lookup("erin").unwrap().verify(b"pw-e"));
        assert_eq!(f.names(), ["bob", "dave", "erin"]);
        let out = f.render();
        assert!(out.contains("\nerin:{ARGON2ID}$argon2id$"));
        assert!(!out.contains("carol"));
    }

    #[test]
    fn refuses_bad_names() {
        let mut f = parse("").unwrap();
        f.set_hash_cost(Argon2Cost::MINIMAL);
        for bad in ["", "a:b", "a b", "a\tb", "a\u{7}", "#x", "a\nb"] {
            assert!(
                matches!(f.add(bad, b"pw"), Err(AuthError::InvalidName { .. })),
                "{bad:?}"
            );
        }
        assert!(f.is_empty());
        assert_eq!(
            canonical_name("Ärger@Example.ORG").unwrap(),
            "ärger@example.org"
        );
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(line_of(parse("# c\nalice\n").unwrap_err()), 2);
        assert_eq!(line_of(parse("a:{PLAIN}x\nb:{MD5}abc\n").unwrap_err()), 2);
        assert_eq!(line_of(parse("a:{PLAIN}x\n\nA:{PLAIN}y\n").unwrap_err()), 3);
        assert_eq!(line_of(parse("a b:{PLAIN}x\n").unwrap_err()), 1);
        assert_eq!(line_of(parse("a::1000\n").unwrap_err()), 1);
        assert_eq!(
            line_of(UsersFile::parse(Path::new("u"), b"a:{PLAIN}x\nb:{PLAIN}\xff\n").unwrap_err()),
            2
        );
        let msg = parse("a:{PLAIN}x\nA:{PLAIN}y\n").unwrap_err().to_string();
        assert!(
            msg.starts_with("users:2:") && msg.contains("line 1"),
            "{msg}"
        );
    }

    #[test]
    fn empty_and_missing_files() {
        assert!(parse("").unwrap().is_empty());
        assert_eq!(parse("\n").unwrap().render(), "\n");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        assert!(matches!(UsersFile::load(&path), Err(AuthError::Io { .. })));
        assert!(UsersFile::load_or_empty(&path).unwrap().is_empty());
    }

    #[test]
    fn save_is_atomic_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        fs::write(&path, sample()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let mut f = UsersFile::load(&path).unwrap();
        f.set_hash_cost(Argon2Cost::MINIMAL);
        f.add("erin", b"pw").unwrap();
        f.save().unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        // The file existed with 0644: it keeps 0640, losing only the bit for others.
        assert_eq!(mode, 0o640);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["users"]);
        let back = UsersFile::load(&path).unwrap();
        assert_eq!(back.names(), ["bob", "carol", "dave", "erin"]);
        assert!(back.lookup("erin").unwrap().verify(b"pw"));
        assert_eq!(back.render(), f.render());
    }

    #[test]
    fn new_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let mut f = UsersFile::load_or_empty(&path).unwrap();
        f.set_hash_cost(Argon2Cost::MINIMAL);
        f.add("alice", b"pw").unwrap();
        f.save().unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(UsersFile::load(&path)
            .unwrap()
            .lookup("alice")
            .unwrap()
            .verify(b"pw"));
    }

    #[test]
    fn save_into_missing_directory_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let f = UsersFile::parse(&dir.path().join("nope/users"), b"").unwrap();
        assert!(matches!(f.save(), Err(AuthError::Io { .. })));
    }
}
