//! The kernel's TCP socket tables (/proc/net/tcp and tcp6): who listens on an address, and
//! which process holds a socket. `serve` asks before binding and `ringmail doctor` before
//! calling a port free: a test bind alone cannot tell, because the executors listen with
//! SO_REUSEPORT (a second SO_REUSEPORT bind by the same user succeeds next to them) and
//! their accepted connections outlive them (a plain bind fails on those with no listener).

use std::io::Read;
use std::net::{IpAddr, SocketAddr};

/// The state column's value for LISTEN.
const LISTEN: u8 = 0x0A;

/// One row of /proc/net/tcp or tcp6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSocket {
    /// Local address and port.
    pub local: SocketAddr,
    /// The kernel's TCP state (0x0A is LISTEN).
    pub state: u8,
    /// The socket's inode, as `/proc/PID/fd/N` links name it (`socket:[INODE]`).
    pub inode: u64,
}

impl TcpSocket {
    /// Whether the socket is a listener.
    pub fn is_listener(&self) -> bool {
        self.state == LISTEN
    }

    /// Whether the socket is bound where `addr` would be: the same port, and the same
    /// address or the unspecified one on either side.
    pub fn overlaps(&self, addr: SocketAddr) -> bool {
        self.local.port() == addr.port()
            && (self.local.ip() == addr.ip()
                || self.local.ip().is_unspecified()
                || addr.ip().is_unspecified())
    }
}

/// Every TCP socket of this network namespace.
pub fn tcp_sockets() -> Vec<TcpSocket> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Some(text) = read_table(table) else {
            continue;
        };
        out.extend(text.lines().skip(1).filter_map(parse_row));
    }
    out
}

/// The listeners bound where `addr` would be.
pub fn listeners(addr: SocketAddr) -> Vec<TcpSocket> {
    tcp_sockets()
        .into_iter()
        .filter(|s| s.is_listener() && s.overlaps(addr))
        .collect()
}

/// Whether some socket on this machine listens on `addr` (or on its port at the unspecified
/// address). A connect() probe would be simpler but can connect to itself when the port is
/// in the ephemeral range.
pub fn is_listening(addr: SocketAddr) -> bool {
    !listeners(addr).is_empty()
}

/// The pid and command name of a process holding one of `inodes`, found through the
/// descriptors in /proc/PID/fd (only the processes this user may look into).
pub fn owner(inodes: &[u64]) -> Option<(u32, String)> {
    if inodes.is_empty() {
        return None;
    }
    let links: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if links.iter().any(|l| target.as_os_str() == l.as_str()) {
                let name = std::fs::read_to_string(entry.path().join("comm"))
                    .map_or_else(|_| "?".to_string(), |c| c.trim().to_string());
                return Some((pid, name));
            }
        }
    }
    None
}

/// A table read with large reads: the kernel renders it in pieces, one per read() call, and
/// a socket that opens or closes between two pieces can make the next piece skip a row. In
/// one big read the listeners, which come first, are read in one piece.
fn read_table(path: &str) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).ok()
}

/// `  0: 0100007F:1F90 00000000:0000 0A ... uid timeout inode ...`
fn parse_row(line: &str) -> Option<TcpSocket> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (ip_hex, port_hex) = fields.get(1)?.split_once(':')?;
    let state = u8::from_str_radix(fields.get(3)?, 16).ok()?;
    let inode = fields.get(9)?.parse().ok()?;
    Some(TcpSocket {
        local: SocketAddr::new(proc_ip(ip_hex)?, u16::from_str_radix(port_hex, 16).ok()?),
        state,
        inode,
    })
}

/// An address as /proc/net/tcp writes it: the bytes of each 32-bit word in host order.
/// IPv4-mapped IPv6 addresses come back as IPv4.
fn proc_ip(hex: &str) -> Option<IpAddr> {
    let words: Option<Vec<u32>> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect();
    let bytes: Vec<u8> = words?.iter().flat_map(|w| w.to_ne_bytes()).collect();
    match bytes.len() {
        4 => Some(IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]])),
        16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(&bytes);
            let v6 = std::net::Ipv6Addr::from(b);
            Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_listener_and_its_owner() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(is_listening(addr));
        let found = listeners(addr);
        let inodes: Vec<u64> = found.iter().map(|s| s.inode).collect();
        assert_eq!(owner(&inodes).map(|(pid, _)| pid), Some(std::process::id()));
        // The unspecified address overlaps every address of the port.
        let any = SocketAddr::from(([0, 0, 0, 0], addr.port()));
        assert!(is_listening(any));
        drop(listener);
        assert!(!is_listening(addr));
    }

    // The rows below are written as a little-endian kernel writes them.
    #[cfg(target_endian = "little")]
    #[test]
    fn parses_rows_of_both_tables() {
        let v4 = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  \
                  1000        0 123456 1 0000000000000000 100 0 0 10 0";
        let row = parse_row(v4).unwrap();
        assert_eq!(row.local, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
        assert!(row.is_listener());
        assert_eq!(row.inode, 123456);
        let v6 =
            "   1: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 \
                  01 00000000:00000000 00:00000000 00000000     0        0 42 1 0 100 0 0 10 0";
        let row = parse_row(v6).unwrap();
        assert_eq!(row.local, "[::1]:22".parse::<SocketAddr>().unwrap());
        assert!(!row.is_listener());
        assert!(parse_row("garbage").is_none());
    }
}
