//! The PROXY protocol (HAProxy, versions 1 and 2): the header a load balancer puts in front
//! of a connection to tell the server who the real client is.
//!
//! Sans-io: [`parse`] looks at the bytes read so far and says whether they start with a
//! complete header, could still become one, or cannot. The listener decides with [`admit`]:
//! a peer in [`TrustedNetworks`] must send a header (v1 or v2) before anything else, and its
//! source address becomes the client address; anyone else sending a header is refused,
//! because believing it would let any client pick the address that rate limits and logs see.
//!
//! Specification: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// The longest v1 header, `PROXY UNKNOWN` with two full IPv6 addresses, CRLF included.
pub const V1_MAX_LEN: usize = 107;
const V1_PREFIX: &[u8] = b"PROXY ";
/// The 12 bytes every v2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const V2_FIXED_LEN: usize = 16;
/// The largest v2 address block (two AF_UNIX paths).
const V2_MAX_ADDRESS_LEN: usize = 216;
const PP2_TYPE_CRC32C: u8 = 0x03;

/// Bounds on what a v2 header may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyLimits {
    /// Most bytes of TLVs (after the addresses) accepted; a longer header is refused before
    /// it is read in full.
    pub max_tlv_bytes: usize,
}

impl Default for ProxyLimits {
    /// 2 KiB of TLVs: room for HAProxy's SSL, ALPN, authority and unique-id TLVs.
    fn default() -> Self {
        ProxyLimits {
            max_tlv_bytes: 2048,
        }
    }
}

/// The addresses a PROXY header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The real client; `None` for a v2 LOCAL header (the balancer's own health check), v1
    /// UNKNOWN, or a family other than TCP: use the connection's own peer address then.
    pub source: Option<SocketAddr>,
    /// The address the client connected to on the balancer; `None` when `source` is.
    pub destination: Option<SocketAddr>,
}

const NO_ADDRESSES: ProxyHeader = ProxyHeader {
    source: None,
    destination: None,
};

/// What the bytes read so far amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyParse {
    /// They do not start with a PROXY header.
    NotProxy,
    /// They are a prefix of a header that is still valid so far: read more.
    Incomplete,
    /// A complete header; the connection's own data starts at `consumed`.
    Done {
        /// The addresses the header carries.
        header: ProxyHeader,
        /// The header's length in bytes.
        consumed: usize,
    },
    /// A header that is broken or too long; close the connection.
    Invalid(&'static str),
}

/// Parses a PROXY v1 or v2 header at the start of `buf` with the default limits.
pub fn parse(buf: &[u8]) -> ProxyParse {
    parse_with(buf, &ProxyLimits::default())
}

/// Parses a PROXY v1 or v2 header at the start of `buf`.
pub fn parse_with(buf: &[u8], limits: &ProxyLimits) -> ProxyParse {
    if buf.is_empty() {
        return ProxyParse::Incomplete;
    }
    if starts_like(buf, &V2_SIGNATURE) {
        if buf.len() < V2_SIGNATURE.len() {
            return ProxyParse::Incomplete;
        }
        return parse_v2(buf, limits);
    }
    if starts_like(buf, V1_PREFIX) {
        if buf.len() < V1_PREFIX.len() {
            return ProxyParse::Incomplete;
        }
        return parse_v1(buf);
    }
    ProxyParse::NotProxy
}

/// Whether `buf` and `magic` agree on their common length.
fn starts_like(buf: &[u8], magic: &[u8]) -> bool {
    let n = buf.len().min(magic.len());
    buf.get(..n) == magic.get(..n)
}

fn parse_v1(buf: &[u8]) -> ProxyParse {
    let window = buf.get(..buf.len().min(V1_MAX_LEN)).unwrap_or_default();
    let Some(lf) = memchr::memchr(b'\n', window) else {
        return if buf.len() >= V1_MAX_LEN {
            ProxyParse::Invalid("PROXY v1 header longer than 107 bytes")
        } else {
            ProxyParse::Incomplete
        };
    };
    let Some(line) = lf
        .checked_sub(1)
        .and_then(|cr| (window.get(cr) == Some(&b'\r')).then(|| window.get(V1_PREFIX.len()..cr)))
    else {
        return ProxyParse::Invalid("PROXY v1 header not ended by CRLF");
    };
    let Some(Ok(line)) = line.map(std::str::from_utf8) else {
        return ProxyParse::Invalid("PROXY v1 header not ended by CRLF");
    };
    let consumed = lf + 1;
    // "UNKNOWN" may be followed by anything, which the receiver must ignore.
    if line == "UNKNOWN" || line.starts_with("UNKNOWN ") {
        return ProxyParse::Done {
            header: NO_ADDRESSES,
            consumed,
        };
    }
    let fields: Vec<&str> = line.split(' ').collect();
    let [proto, src, dst, sport, dport] = fields.as_slice() else {
        return ProxyParse::Invalid("PROXY v1 header needs protocol, 2 addresses and 2 ports");
    };
    let (src, dst) = match *proto {
        "TCP4" => match (src.parse::<Ipv4Addr>(), dst.parse::<Ipv4Addr>()) {
            (Ok(s), Ok(d)) => (IpAddr::V4(s), IpAddr::V4(d)),
            _ => return ProxyParse::Invalid("PROXY v1 TCP4 with a bad IPv4 address"),
        },
        "TCP6" => match (src.parse::<Ipv6Addr>(), dst.parse::<Ipv6Addr>()) {
            (Ok(s), Ok(d)) => (IpAddr::V6(s), IpAddr::V6(d)),
            _ => return ProxyParse::Invalid("PROXY v1 TCP6 with a bad IPv6 address"),
        },
        _ => return ProxyParse::Invalid("PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN"),
    };
    let (Some(sport), Some(dport)) = (v1_port(sport), v1_port(dport)) else {
        return ProxyParse::Invalid("PROXY v1 header with a bad port");
    };
    ProxyParse::Done {
        header: ProxyHeader {
            source: Some(SocketAddr::new(src, sport)),
            destination: Some(SocketAddr::new(dst, dport)),
        },
        consumed,
    }
}

/// A decimal port, digits only (Rust's parser would also take a leading '+').
fn v1_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_v2(buf: &[u8], limits: &ProxyLimits) -> ProxyParse {
    let Some(&[ver_cmd, family, len_hi, len_lo]) = buf.get(12..V2_FIXED_LEN) else {
        return ProxyParse::Incomplete;
    };
    if ver_cmd >> 4 != 2 {
        return ProxyParse::Invalid("PROXY v2 header with an unknown version");
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return ProxyParse::Invalid("PROXY v2 header with an unknown command"),
    };
    let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    // A LOCAL header's family and addresses are to be ignored; only its length matters.
    let address_len = match (local, family) {
        (true, _) => 0,
        (false, 0x00) => 0,
        (false, 0x11) => 12,
        (false, 0x21) => 36,
        (false, 0x31) => V2_MAX_ADDRESS_LEN,
        (false, 0x12 | 0x22 | 0x32) => {
            return ProxyParse::Invalid("PROXY v2 header for a datagram connection")
        }
        (false, _) => return ProxyParse::Invalid("PROXY v2 header with an unknown address family"),
    };
    if len < address_len {
        return ProxyParse::Invalid("PROXY v2 address block shorter than its family needs");
    }
    let max_len = if local {
        V2_MAX_ADDRESS_LEN
    } else {
        address_len
    } + limits.max_tlv_bytes;
    if len > max_len {
        return ProxyParse::Invalid("PROXY v2 header longer than allowed");
    }
    let total = V2_FIXED_LEN + len;
    let Some(header) = buf.get(..total) else {
        return ProxyParse::Incomplete;
    };
    let done = |header| ProxyParse::Done {
        header,
        consumed: total,
    };
    if local || family == 0x00 {
        return done(NO_ADDRESSES);
    }
    let addresses = header
        .get(V2_FIXED_LEN..V2_FIXED_LEN + address_len)
        .unwrap_or_default();
    let tlvs_at = V2_FIXED_LEN + address_len;
    if let Err(reason) = check_tlvs(header, tlvs_at) {
        return ProxyParse::Invalid(reason);
    }
    let addresses = match family {
        0x11 => v2_addresses::<4>(addresses, |o| IpAddr::V4(Ipv4Addr::from(o))),
        0x21 => v2_addresses::<16>(addresses, |o| IpAddr::V6(Ipv6Addr::from(o))),
        // AF_UNIX: no IP address to report; use the connection's own.
        _ => Some(NO_ADDRESSES),
    };
    match addresses {
        Some(h) => done(h),
        None => ProxyParse::Invalid("PROXY v2 address block malformed"),
    }
}

/// Source and destination from `src[N] dst[N] sport[2] dport[2]`.
fn v2_addresses<const N: usize>(
    block: &[u8],
    ip: impl Fn([u8; N]) -> IpAddr,
) -> Option<ProxyHeader> {
    let src: [u8; N] = block.get(..N)?.try_into().ok()?;
    let dst: [u8; N] = block.get(N..2 * N)?.try_into().ok()?;
    let sport: [u8; 2] = block.get(2 * N..2 * N + 2)?.try_into().ok()?;
    let dport: [u8; 2] = block.get(2 * N + 2..2 * N + 4)?.try_into().ok()?;
    Some(ProxyHeader {
        source: Some(SocketAddr::new(ip(src), u16::from_be_bytes(sport))),
        destination: Some(SocketAddr::new(ip(dst), u16::from_be_bytes(dport))),
    })
}

/// Walks the TLVs from `at` to the end of `header`: each must fit exactly, and a CRC32C TLV,
/// if present, must match (computed over the whole header with its own value zeroed).
fn check_tlvs(header: &[u8], mut at: usize) -> Result<(), &'static str> {
    while at < header.len() {
        let Some(&[kind, len_hi, len_lo]) = header.get(at..at + 3) else {
            return Err("PROXY v2 TLV truncated");
        };
        let value_at = at + 3;
        let end = value_at + usize::from(u16::from_be_bytes([len_hi, len_lo]));
        let Some(value) = header.get(value_at..end) else {
            return Err("PROXY v2 TLV longer than the header");
        };
        if kind == PP2_TYPE_CRC32C {
            let expected: [u8; 4] = value
                .try_into()
                .map_err(|_| "PROXY v2 CRC32C TLV not 4 bytes")?;
            let before = header.get(..value_at).unwrap_or_default();
            let after = header.get(end..).unwrap_or_default();
            let crc = crc32c::crc32c_append(crc32c::crc32c(before), &[0; 4]);
            let crc = crc32c::crc32c_append(crc, after);
            if crc != u32::from_be_bytes(expected) {
                return Err("PROXY v2 CRC32C mismatch");
            }
        }
        at = end;
    }
    Ok(())
}

/// The balancers allowed to send PROXY headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedNetworks {
    nets: Vec<IpNet>,
}

impl TrustedNetworks {
    /// Trusts the given networks.
    pub fn new(nets: Vec<IpNet>) -> TrustedNetworks {
        TrustedNetworks { nets }
    }

    /// Parses networks as written in the config: `10.0.0.0/8`, `2001:db8::/32`, or a single
    /// address meaning just that host.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<TrustedNetworks, String> {
        let nets = items
            .iter()
            .map(|item| {
                let s = item.as_ref().trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("not an IP network or address: {s:?}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustedNetworks { nets })
    }

    /// Whether `addr` is in a trusted network. An IPv4 address and its IPv4-mapped IPv6 form
    /// (what a dual-stack socket reports) are the same host.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let other_form = match addr {
            IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        };
        self.nets
            .iter()
            .any(|net| net.contains(&addr) || net.contains(&other_form))
    }

    /// Whether no network is trusted (PROXY headers are then refused from everyone).
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// The listener's decision about a new connection's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A trusted peer has not sent its whole header yet: read more (with a timeout).
    NeedMore,
    /// Go on with the session for `client`; the session's bytes start at `consumed`.
    Proceed {
        /// The address to log and rate-limit: the header's source, or the peer itself.
        client: SocketAddr,
        /// Bytes of `buf` taken by the PROXY header.
        consumed: usize,
    },
    /// Close the connection, logging the reason.
    Refuse(&'static str),
}

/// Applies the policy: a peer in `trusted` must open with a PROXY header; any other peer
/// must not send one. For an untrusted peer call this with whatever it sent first (the server
/// greets before such clients speak, so it does not wait for them).
pub fn admit(
    peer: SocketAddr,
    trusted: &TrustedNetworks,
    buf: &[u8],
    limits: &ProxyLimits,
) -> Admission {
    let parsed = parse_with(buf, limits);
    if !trusted.contains(peer.ip()) {
        return match parsed {
            ProxyParse::Done { .. } | ProxyParse::Invalid(_) => {
                Admission::Refuse("PROXY header from an untrusted address")
            }
            ProxyParse::NotProxy | ProxyParse::Incomplete => Admission::Proceed {
                client: peer,
                consumed: 0,
            },
        };
    }
    match parsed {
        ProxyParse::Done { header, consumed } => Admission::Proceed {
            client: header.source.unwrap_or(peer),
            consumed,
        },
        ProxyParse::Incomplete => Admission::NeedMore,
        ProxyParse::NotProxy => Admission::Refuse("trusted peer did not send a PROXY header"),
        ProxyParse::Invalid(reason) => Admission::Refuse(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn done(src: &str, dst: &str, consumed: usize) -> ProxyParse {
        ProxyParse::Done {
            header: ProxyHeader {
                source: Some(sa(src)),
                destination: Some(sa(dst)),
            },
            consumed,
        }
    }

    /// Encodes a v2 header (the test's own encoder, checked against a hand-written vector).
    fn v2(command: u8, family: u8, addresses: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        let len = (addresses.len() + tlvs.len()) as u16;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(addresses);
        out.extend_from_slice(tlvs);
        out
    }

    fn tcp4_block() -> Vec<u8> {
        let mut b = vec![192, 0, 2, 1, 198, 51, 100, 2];
        b.extend_from_slice(&56324u16.to_be_bytes());
        b.extend_from_slice(&993u16.to_be_bytes());
        b
    }

    fn tcp6_block() -> Vec<u8> {
        let mut b = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        b.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        b.extend_from_slice(&[0x12, 0x34, 0x00, 0x8f]);
        b
    }

    /// Every strict prefix of a valid header is Incomplete, and the header parses to `want`
    /// whatever follows it.
    fn check_prefixes(header: &[u8], want: ProxyParse) {
        for n in 0..header.len() {
            assert_eq!(
                parse(&header[..n]),
                ProxyParse::Incomplete,
                "prefix of {n} bytes"
            );
        }
        assert_eq!(parse(header), want);
        let mut more = header.to_vec();
        more.extend_from_slice(b"a001 CAPABILITY\r\n");
        assert_eq!(parse(&more), want);
    }

    #[test]
    fn v1_tcp4() {
        let h = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 993\r\n";
        check_prefixes(h, done("192.0.2.1:56324", "198.51.100.2:993", h.len()));
    }

    #[test]
    fn v1_tcp6() {
        let h = b"PROXY TCP6 2001:db8::1 2001:db8::2 4660 143\r\n";
        check_prefixes(h, done("[2001:db8::1]:4660", "[2001:db8::2]:143", h.len()));
    }

    #[test]
    fn v1_unknown_and_longest() {
        let h = b"PROXY UNKNOWN\r\n";
        let none = |consumed| ProxyParse::Done {
            header: NO_ADDRESSES,
            consumed,
        };
        check_prefixes(h, none(h.len()));
        // The spec's worst case is exactly 107 bytes and must be accepted.
        let longest = format!(
            "PROXY UNKNOWN {0} {0} 65535 65535\r\n",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        assert_eq!(longest.len(), V1_MAX_LEN);
        assert_eq!(parse(longest.as_bytes()), none(V1_MAX_LEN));
        let max = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
        assert_eq!(
            parse(max),
            done("255.255.255.255:65535", "255.255.255.255:65535", max.len())
        );
    }

    #[test]
    fn v1_invalid() {
        for bad in [
            &b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 993\n"[..],
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 993 7\r\n",
            b"PROXY TCP4  192.0.2.1 198.51.100.2 56324 993\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 65536 993\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 +5 993\r\n",
            b"PROXY TCP4 192.0.2.256 198.51.100.2 1 2\r\n",
            b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",
            b"PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n",
            b"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n",
            b"PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n",
            b"PROXY \xff\r\n",
            b"PROXY \r\n",
        ] {
            assert!(
                matches!(parse(bad), ProxyParse::Invalid(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn v1_without_line_end_is_bounded() {
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX_LEN - 1, b'x');
        assert_eq!(parse(&long), ProxyParse::Incomplete);
        long.push(b'x');
        assert!(matches!(parse(&long), ProxyParse::Invalid(_)));
        // A CRLF just beyond the limit does not rescue it.
        long.extend_from_slice(b"\r\n");
        assert!(matches!(parse(&long), ProxyParse::Invalid(_)));
    }

    #[test]
    fn not_proxy() {
        for other in [
            &b"a001 LOGIN x y\r\n"[..],
            b"\x16\x03\x01",
            b"PROXX",
            b"\r\n\r\n\0\r\nQUIX",
        ] {
            assert_eq!(parse(other), ProxyParse::NotProxy, "{other:?}");
        }
        assert_eq!(parse(b"P"), ProxyParse::Incomplete);
        assert_eq!(parse(b"\r\n"), ProxyParse::Incomplete);
    }

    #[test]
    fn v2_hand_written_vector() {
        // From the spec's layout, byte by byte: PROXY command, TCP over IPv4, 12 bytes of
        // addresses: 10.1.2.3:8080 -> 10.4.5.6:143.
        let h: &[u8] = &[
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54,
            0x0a, // signature
            0x21, 0x11, 0x00, 0x0c, // v2 PROXY, TCP4, length 12
            10, 1, 2, 3, 10, 4, 5, 6, 0x1f, 0x90, 0x00, 0x8f,
        ];
        // The test encoder agrees with it.
        assert_eq!(v2(1, 0x11, &h[16..], &[]), h);
        check_prefixes(h, done("10.1.2.3:8080", "10.4.5.6:143", 28));
    }

    #[test]
    fn v2_tcp4_and_tcp6() {
        let h = v2(1, 0x11, &tcp4_block(), &[]);
        check_prefixes(&h, done("192.0.2.1:56324", "198.51.100.2:993", 28));
        let h = v2(1, 0x21, &tcp6_block(), &[]);
        check_prefixes(&h, done("[2001:db8::1]:4660", "[2001:db8::2]:143", 52));
    }

    #[test]
    fn v2_local_and_unspec_have_no_addresses() {
        let none = |consumed| ProxyParse::Done {
            header: NO_ADDRESSES,
            consumed,
        };
        // HAProxy's health check: LOCAL, UNSPEC, no payload.
        check_prefixes(&v2(0, 0x00, &[], &[]), none(16));
        // LOCAL ignores whatever family and addresses it carries.
        check_prefixes(&v2(0, 0x11, &tcp4_block(), &[]), none(28));
        check_prefixes(&v2(1, 0x00, &[1, 2, 3], &[]), none(19));
        // AF_UNIX: no IP to report.
        check_prefixes(&v2(1, 0x31, &[0; 216], &[]), none(232));
    }

    #[test]
    fn v2_tlvs_are_skipped_and_checked() {
        let mut tlvs = vec![0x04, 0x00, 0x03, 0, 0, 0]; // NOOP, 3 bytes
        tlvs.extend_from_slice(&[0x01, 0x00, 0x08]); // ALPN "imap/1.0"? any 8 bytes
        tlvs.extend_from_slice(b"imap-tls");
        let h = v2(1, 0x11, &tcp4_block(), &tlvs);
        check_prefixes(&h, done("192.0.2.1:56324", "198.51.100.2:993", h.len()));
        // A TLV running past the header's end.
        let h = v2(1, 0x11, &tcp4_block(), &[0x04, 0x00, 0x09, 0]);
        assert!(matches!(parse(&h), ProxyParse::Invalid(_)));
        let h = v2(1, 0x11, &tcp4_block(), &[0x04, 0x00]);
        assert!(matches!(parse(&h), ProxyParse::Invalid(_)));
    }

    #[test]
    fn v2_crc32c_tlv_is_verified() {
        let mut h = v2(
            1,
            0x11,
            &tcp4_block(),
            &[PP2_TYPE_CRC32C, 0x00, 0x04, 0, 0, 0, 0],
        );
        let crc = crc32c::crc32c(&h);
        let at = h.len() - 4;
        h[at..].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            parse(&h),
            done("192.0.2.1:56324", "198.51.100.2:993", h.len())
        );
        h[20] ^= 1; // tamper with the destination address
        assert_eq!(parse(&h), ProxyParse::Invalid("PROXY v2 CRC32C mismatch"));
    }

    #[test]
    fn v2_invalid() {
        let mut wrong_version = v2(1, 0x11, &tcp4_block(), &[]);
        wrong_version[12] = 0x11;
        let mut wrong_command = v2(1, 0x11, &tcp4_block(), &[]);
        wrong_command[12] = 0x22;
        for bad in [
            wrong_version,
            wrong_command,
            v2(1, 0x12, &tcp4_block(), &[]),       // UDP
            v2(1, 0x41, &tcp4_block(), &[]),       // no such family
            v2(1, 0x21, &tcp4_block(), &[]),       // IPv6 family, IPv4-sized block
            v2(1, 0x11, &tcp4_block()[..11], &[]), // short block
        ] {
            assert!(matches!(parse(&bad), ProxyParse::Invalid(_)), "{bad:?}");
        }
    }

    #[test]
    fn v2_oversized_is_refused_before_it_is_read() {
        let limits = ProxyLimits { max_tlv_bytes: 100 };
        let fits = v2(
            1,
            0x11,
            &tcp4_block(),
            &[0x04, 0x00, 97]
                .iter()
                .copied()
                .chain([0; 97])
                .collect::<Vec<_>>(),
        );
        assert!(matches!(
            parse_with(&fits, &limits),
            ProxyParse::Done { consumed: 128, .. }
        ));
        let big = v2(
            1,
            0x11,
            &tcp4_block(),
            &[0x04, 0x00, 98]
                .iter()
                .copied()
                .chain([0; 98])
                .collect::<Vec<_>>(),
        );
        // Only the fixed 16 bytes are needed to refuse it.
        assert!(matches!(
            parse_with(&big[..16], &limits),
            ProxyParse::Invalid(_)
        ));
        let mut huge = v2(0, 0x00, &[], &[]);
        huge[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(matches!(parse(&huge), ProxyParse::Invalid(_)));
    }

    #[test]
    fn trusted_networks() {
        let t = TrustedNetworks::parse(&["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(t.contains(ip("10.200.0.1")));
        assert!(t.contains(ip("::ffff:10.1.1.1")));
        assert!(t.contains(ip("2001:db8:ffff::1")));
        assert!(t.contains(ip("192.0.2.7")));
        assert!(!t.contains(ip("192.0.2.8")));
        assert!(!t.contains(ip("11.0.0.1")));
        assert!(!t.contains(ip("::ffff:11.0.0.1")));
        let mapped = TrustedNetworks::parse(&["::ffff:172.16.0.0/108"]).unwrap();
        assert!(mapped.contains(ip("172.16.3.4")));
        assert!(TrustedNetworks::parse(&["10.0.0.0/33"]).is_err());
        assert!(TrustedNetworks::parse(&["lb.example.org"]).is_err());
        assert!(TrustedNetworks::default().is_empty());
    }

    #[test]
    fn admission_policy() {
        let trusted = TrustedNetworks::parse(&["10.0.0.0/8"]).unwrap();
        let lb = sa("10.0.0.5:40000");
        let stranger = sa("203.0.113.9:50000");
        let limits = ProxyLimits::default();
        let h = b"PROXY TCP4 192.0.2.1 10.0.0.5 56324 993\r\nrest";
        assert_eq!(
            admit(lb, &trusted, h, &limits),
            Admission::Proceed {
                client: sa("192.0.2.1:56324"),
                consumed: h.len() - 4
            }
        );
        assert_eq!(admit(lb, &trusted, &h[..10], &limits), Admission::NeedMore);
        assert!(matches!(
            admit(lb, &trusted, b"a1 NOOP\r\n", &limits),
            Admission::Refuse(_)
        ));
        // A health check (LOCAL) keeps the balancer's own address.
        assert_eq!(
            admit(lb, &trusted, &v2(0, 0, &[], &[]), &limits),
            Admission::Proceed {
                client: lb,
                consumed: 16
            }
        );
        assert!(matches!(
            admit(stranger, &trusted, h, &limits),
            Admission::Refuse(_)
        ));
        assert_eq!(
            admit(stranger, &trusted, b"a1 NOOP\r\n", &limits),
            Admission::Proceed {
                client: stranger,
                consumed: 0
            }
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn random_after_v2_signature_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut bytes = V2_SIGNATURE.to_vec();
            bytes.extend_from_slice(&tail);
            if let ProxyParse::Done { consumed, .. } = parse(&bytes) {
                prop_assert!(consumed <= bytes.len());
            }
        }

        #[test]
        fn random_v1_lines_never_panic(line in "PROXY [ -~]{0,110}\r\n") {
            if let ProxyParse::Done { consumed, .. } = parse(line.as_bytes()) {
                prop_assert!(consumed <= V1_MAX_LEN);
            }
        }

        #[test]
        fn encoded_v2_tcp4_round_trips(src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), sp: u16, dp: u16) {
            let mut block = src.to_vec();
            block.extend_from_slice(&dst);
            block.extend_from_slice(&sp.to_be_bytes());
            block.extend_from_slice(&dp.to_be_bytes());
            let want = ProxyHeader {
                source: Some(SocketAddr::new(IpAddr::from(src), sp)),
                destination: Some(SocketAddr::new(IpAddr::from(dst), dp)),
            };
            prop_assert_eq!(parse(&v2(1, 0x11, &block, &[])), ProxyParse::Done { header: want, consumed: 28 });
        }
    }
}
