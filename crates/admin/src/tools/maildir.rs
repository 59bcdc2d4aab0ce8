//! Maildir and Maildir++ on disk: reading a tree for import, writing one for export.
//!
//! Layout (Maildir++, as Dovecot and Courier write it): the root's `cur/` and `new/` are
//! INBOX; every `.Name` directory is a folder, with `.` as the hierarchy separator
//! (`.Work.Projects` is `Work/Projects`) and names in IMAP's modified UTF-7. A plain Maildir
//! is a root without folders. A message's flags are the letters after `:2,` in its file
//! name (`S`een, `R`eplied, `F`lagged, `T`rashed, `D`raft, `P`assed); lowercase letters are
//! keywords, numbered by the folder's `dovecot-keywords` file. Dovecot's `dovecot-uidlist`
//! gives each file its UID and the folder its UIDVALIDITY.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use ringmail_store::flag;

/// One folder of a Maildir tree.
#[derive(Debug, Clone)]
pub struct Folder {
    /// The IMAP mailbox name (`/`-separated, INBOX for the root).
    pub name: String,
    /// The directory holding `cur/` and `new/`.
    pub dir: PathBuf,
}

/// A folder that cannot be imported, and why.
#[derive(Debug, Clone)]
pub struct BadFolder {
    /// The directory.
    pub dir: PathBuf,
    /// Why.
    pub reason: String,
}

/// One message file.
#[derive(Debug, Clone)]
pub struct MaildirMessage {
    /// The file.
    pub path: PathBuf,
    /// System flags ([`flag`] bits).
    pub flags: u8,
    /// Keywords.
    pub keywords: Vec<String>,
    /// The file's modification time (Dovecot's received date), seconds since the epoch.
    pub mtime: i64,
    /// The UID in `dovecot-uidlist`, when listed.
    pub uid: Option<u32>,
}

/// `dovecot-uidlist`: the folder's UIDVALIDITY and each file's UID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UidList {
    /// UIDVALIDITY (`V` in the header).
    pub uidvalidity: u32,
    /// UIDNEXT (`N` in the header).
    pub next_uid: u32,
    /// File base name (up to `:`) → UID.
    pub uids: HashMap<String, u32>,
}

/// Finds the folders of the tree at `root`. Folders whose name cannot be an IMAP mailbox
/// are returned apart, so the rest can still be imported.
pub fn scan(root: &Path) -> io::Result<(Vec<Folder>, Vec<BadFolder>)> {
    if !root.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} is not a directory", root.display()),
        ));
    }
    let mut folders = Vec::new();
    let mut bad = Vec::new();
    if is_maildir(root) {
        folders.push(Folder {
            name: "INBOX".into(),
            dir: root.to_owned(),
        });
    }
    let mut entries: Vec<_> = std::fs::read_dir(root)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for dir in entries {
        let Some(file_name) = dir.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(encoded) = file_name.strip_prefix('.') else {
            continue;
        };
        if encoded.is_empty() || encoded == "." || !is_maildir(&dir) {
            continue;
        }
        match folder_name(encoded) {
            Ok(name) => folders.push(Folder { name, dir }),
            Err(reason) => bad.push(BadFolder { dir, reason }),
        }
    }
    if folders.is_empty() && bad.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is not a Maildir: it has no cur/ or new/ and no .Folder directories",
                root.display()
            ),
        ));
    }
    Ok((folders, bad))
}

fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() || dir.join("new").is_dir()
}

/// The IMAP name of a Maildir++ folder directory name (without its leading dot).
pub fn folder_name(encoded: &str) -> Result<String, String> {
    let decoded = ringmail_proto::parser::mutf7::decode_mutf7(encoded.as_bytes())
        .map_err(|_| format!("folder name {encoded:?} is not valid modified UTF-7"))?;
    let name = decoded.replace('.', "/");
    ringmail_store::normalize_name(&name)
        .map_err(|_| format!("folder name {encoded:?} is not a valid IMAP mailbox name"))
}

/// The Maildir++ directory of mailbox `name` under `root`.
pub fn folder_dir(root: &Path, name: &str) -> Result<PathBuf, String> {
    if name == "INBOX" {
        return Ok(root.to_owned());
    }
    if name.split('/').any(|part| part.contains('.')) {
        return Err(format!(
            "mailbox {name:?} has a '.' in its name, which Maildir++ uses as its separator"
        ));
    }
    let encoded = ringmail_proto::parser::mutf7::encode_mutf7(&name.replace('/', "."));
    Ok(root.join(format!(".{encoded}")))
}

/// The messages of `folder`, in UID order where the uidlist knows them, then by file name
/// (which starts with the delivery time).
pub fn messages(folder: &Folder) -> io::Result<Vec<MaildirMessage>> {
    let keywords = read_keywords(&folder.dir);
    let uidlist = read_uidlist(&folder.dir);
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        let dir = folder.dir.join(sub);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let meta = entry.metadata()?;
            if name.starts_with('.') || !meta.is_file() {
                continue;
            }
            let (base, info) = match name.split_once(':') {
                Some((base, info)) => (base, info),
                None => (name.as_str(), ""),
            };
            let (flags, kw) = parse_info(info, &keywords);
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64);
            out.push(MaildirMessage {
                uid: uidlist.as_ref().and_then(|l| l.uids.get(base).copied()),
                path: entry.path(),
                flags,
                keywords: kw,
                mtime,
            });
        }
    }
    out.sort_by(|a, b| {
        (a.uid.unwrap_or(u32::MAX), a.path.file_name())
            .cmp(&(b.uid.unwrap_or(u32::MAX), b.path.file_name()))
    });
    Ok(out)
}

/// The UIDVALIDITY and UIDs of `dir`'s `dovecot-uidlist`, if it has a readable one.
pub fn read_uidlist(dir: &Path) -> Option<UidList> {
    let text = std::fs::read_to_string(dir.join("dovecot-uidlist")).ok()?;
    let mut lines = text.lines();
    let header = lines.next()?;
    let mut list = UidList::default();
    let mut fields = header.split_ascii_whitespace();
    match fields.next()? {
        "3" => {
            for f in fields {
                if let Some(v) = f.strip_prefix('V') {
                    list.uidvalidity = v.parse().ok()?;
                } else if let Some(n) = f.strip_prefix('N') {
                    list.next_uid = n.parse().ok()?;
                }
            }
        }
        // Version 1: "1 uidvalidity nextuid".
        "1" => {
            list.uidvalidity = fields.next()?.parse().ok()?;
            list.next_uid = fields.next()?.parse().ok()?;
        }
        _ => return None,
    }
    for line in lines {
        let Some((uid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(uid) = uid.parse::<u32>() else {
            continue;
        };
        // v3: "uid [ext ...] :filename"; v1: "uid filename".
        let file = match rest
            .rfind(" :")
            .map(|i| &rest[i + 2..])
            .or(rest.strip_prefix(':'))
        {
            Some(f) => f,
            None => rest.rsplit(' ').next().unwrap_or(rest),
        };
        let base = file.split(':').next().unwrap_or(file);
        list.uids.insert(base.to_string(), uid);
    }
    Some(list)
}

/// Keyword names by index from `dovecot-keywords` (`0 $Label1` lines).
pub fn read_keywords(dir: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(dir.join("dovecot-keywords")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = Vec::new();
    for line in text.lines() {
        let Some((n, name)) = line.split_once(' ') else {
            continue;
        };
        let (Ok(n), false) = (n.parse::<usize>(), name.is_empty()) else {
            continue;
        };
        if n < 26 {
            if names.len() <= n {
                names.resize(n + 1, String::new());
            }
            names[n] = name.to_string();
        }
    }
    names
}

/// Flags and keywords of the `2,FLAGS` info part of a file name.
pub fn parse_info(info: &str, keywords: &[String]) -> (u8, Vec<String>) {
    let Some(letters) = info.strip_prefix("2,") else {
        return (0, Vec::new());
    };
    let mut bits = 0;
    let mut kws = Vec::new();
    for c in letters.chars() {
        match c {
            'S' => bits |= flag::SEEN,
            'R' => bits |= flag::ANSWERED,
            'F' => bits |= flag::FLAGGED,
            'T' => bits |= flag::DELETED,
            'D' => bits |= flag::DRAFT,
            'P' => kws.push("$Forwarded".to_string()),
            'a'..='z' => {
                if let Some(name) = keywords
                    .get(c as usize - 'a' as usize)
                    .filter(|k| !k.is_empty())
                {
                    kws.push(name.clone());
                }
            }
            _ => {}
        }
    }
    (bits, kws)
}

/// The `:2,FLAGS` suffix for a message, numbering its keywords in `table` (extended as
/// needed, at most 26: keywords past that are left out of the name, as Dovecot does).
pub fn info_suffix(flags: u8, keywords: &[&str], table: &mut Vec<String>) -> String {
    let mut letters: Vec<char> = Vec::new();
    for (bit, c) in [
        (flag::DRAFT, 'D'),
        (flag::FLAGGED, 'F'),
        (flag::ANSWERED, 'R'),
        (flag::SEEN, 'S'),
        (flag::DELETED, 'T'),
    ] {
        if flags & bit != 0 {
            letters.push(c);
        }
    }
    for k in keywords {
        if k.eq_ignore_ascii_case("$Forwarded") {
            letters.push('P');
            continue;
        }
        let i = match table.iter().position(|t| t == k) {
            Some(i) => i,
            None if table.len() < 26 => {
                table.push(k.to_string());
                table.len() - 1
            }
            None => continue,
        };
        letters.push((b'a' + i as u8) as char);
    }
    letters.sort_unstable();
    letters.dedup();
    format!(":2,{}", letters.into_iter().collect::<String>())
}

/// Writes `dovecot-keywords` for `table`.
pub fn write_keywords(dir: &Path, table: &[String]) -> io::Result<()> {
    if table.is_empty() {
        return Ok(());
    }
    let text: String = table
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{i} {k}\n"))
        .collect();
    std::fs::write(dir.join("dovecot-keywords"), text)
}

/// Writes `dovecot-uidlist` so that Dovecot (and a later import) keeps the UIDs.
pub fn write_uidlist(
    dir: &Path,
    uidvalidity: u32,
    next_uid: u32,
    files: &[(u32, String)],
) -> io::Result<()> {
    let mut text = format!("3 V{uidvalidity} N{next_uid}\n");
    for (uid, base) in files {
        text.push_str(&format!("{uid} :{base}\n"));
    }
    std::fs::write(dir.join("dovecot-uidlist"), text)
}

/// Creates `dir` with `cur/`, `new/` and `tmp/`.
pub fn create_maildir(dir: &Path) -> io::Result<()> {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_keywords() {
        let table = vec!["$Label1".to_string(), "Work".to_string()];
        let (bits, kws) = parse_info("2,FRSab", &table);
        assert_eq!(bits, flag::FLAGGED | flag::ANSWERED | flag::SEEN);
        assert_eq!(kws, vec!["$Label1", "Work"]);
        assert_eq!(parse_info("1,S", &table), (0, vec![]));
        let mut out = Vec::new();
        let suffix = info_suffix(bits | flag::DRAFT, &["Work", "$Forwarded"], &mut out);
        assert_eq!(suffix, ":2,DFPRSa");
        assert_eq!(out, vec!["Work"]);
    }

    #[test]
    fn folder_names() {
        assert_eq!(folder_name("Work.Projects").unwrap(), "Work/Projects");
        assert_eq!(folder_name("Entw&APw-rfe").unwrap(), "Entwürfe");
        assert!(folder_name("bad&name").is_err());
        assert!(folder_name("a..b").is_err());
        let root = Path::new("/m");
        assert_eq!(
            folder_dir(root, "Work/Projects").unwrap(),
            Path::new("/m/.Work.Projects")
        );
        assert!(folder_dir(root, "v1.2").is_err());
    }

    #[test]
    fn uidlist_v3() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("dovecot-uidlist"),
            "3 V1276526254 N7 G3085f01b7f11094c501100008c4a11c1\n\
             5 :1276528487.M364837P9451.kurkku,S=1355,W=1394:2,S\n\
             6 G3f2 :1276528488.M1.kurkku\n",
        )
        .unwrap();
        let list = read_uidlist(dir.path()).unwrap();
        assert_eq!((list.uidvalidity, list.next_uid), (1276526254, 7));
        assert_eq!(
            list.uids
                .get("1276528487.M364837P9451.kurkku,S=1355,W=1394"),
            Some(&5)
        );
        assert_eq!(list.uids.get("1276528488.M1.kurkku"), Some(&6));
    }
}
