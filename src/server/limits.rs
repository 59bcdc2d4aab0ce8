//! Process resource limits the runtime depends on.

/// glommio locks memory for its io_uring rings; below this it cannot start an executor.
const MIN_MEMLOCK: u64 = 512 * 1024;

/// Raises the memlock soft limit to the hard limit; fails with an operator-facing message when
/// even the hard limit is below what glommio needs.
pub fn raise_memlock() -> Result<(), String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Err(format!(
            "cannot read the memlock limit: {}",
            std::io::Error::last_os_error()
        ));
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } == 0 {
            limit = raised;
        } else {
            tracing::warn!(
                "cannot raise the memlock soft limit to the hard limit: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    if limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < MIN_MEMLOCK {
        return Err(format!(
            "the memlock limit is {} KiB but io_uring needs at least {} KiB: run `ulimit -l unlimited` \
             before starting, or set LimitMEMLOCK=infinity in the systemd unit \
             (memlock in /etc/security/limits.conf for a login shell)",
            limit.rlim_cur / 1024,
            MIN_MEMLOCK / 1024
        ));
    }
    Ok(())
}

/// Raises the open-files soft limit to the hard limit (every connection is a descriptor).
pub fn raise_nofile() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            tracing::warn!(
                "cannot raise the open-files limit: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Whether some socket on this machine listens on `addr`'s port at `addr`'s address (or at
/// the unspecified address), read from /proc/net/tcp and tcp6. A connect() probe would be
/// simpler but can connect to itself when the port is in the ephemeral range.
pub fn is_listening(addr: std::net::SocketAddr) -> bool {
    const LISTEN: &str = "0A";
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            if *state != LISTEN {
                continue;
            }
            let Some((ip_hex, port_hex)) = local.split_once(':') else {
                continue;
            };
            if u16::from_str_radix(port_hex, 16).ok() != Some(addr.port()) {
                continue;
            }
            let unspecified = ip_hex.bytes().all(|b| b == b'0');
            if unspecified || addr.ip().is_unspecified() || proc_ip(ip_hex) == Some(addr.ip()) {
                return true;
            }
        }
    }
    false
}

/// An address as /proc/net/tcp writes it: the bytes of each 32-bit word in host order.
fn proc_ip(hex: &str) -> Option<std::net::IpAddr> {
    let words: Option<Vec<u32>> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect();
    let bytes: Vec<u8> = words?.iter().flat_map(|w| w.to_ne_bytes()).collect();
    match bytes.len() {
        4 => Some(std::net::IpAddr::from([
            bytes[0], bytes[1], bytes[2], bytes[3],
        ])),
        16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(&bytes);
            let v6 = std::net::Ipv6Addr::from(b);
            Some(
                v6.to_ipv4_mapped()
                    .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sees_a_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(super::is_listening(addr));
        drop(listener);
        assert!(!super::is_listening(addr));
    }
}
