//! The header of a proxied IMAP session: what the owner node needs to continue a session that
//! logged in on another node. After it the connection carries the raw IMAP bytes both ways.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::wire::{put_long, Decoder};

/// What the node that accepted a client tells the owner of the client's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionHeader {
    /// The authenticated user.
    pub user: String,
    /// The real client's address (after any PROXY header), for the owner's logs and its
    /// per-address limits.
    pub client: SocketAddr,
    /// The address the client connected to on the accepting node.
    pub local: SocketAddr,
    /// The session state the IMAP layer carries over (ENABLEd extensions and the like), in
    /// an encoding of its own: the link passes it unread.
    pub extensions: Vec<u8>,
    /// The tag of the client's LOGIN or AUTHENTICATE command: the owner writes its tagged OK.
    pub tag: String,
    /// Bytes the client sent after its login command and before the proxy took over, which
    /// the owner must read before anything that comes on the connection.
    pub pipelined: Vec<u8>,
}

const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;

impl SessionHeader {
    /// The header's bytes: user, client, local, tag, extensions, pipelined (see
    /// docs/cluster.md for the layout).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            64 + self.user.len() + self.tag.len() + self.extensions.len() + self.pipelined.len(),
        );
        put_long(&mut out, self.user.as_bytes());
        put_addr(&mut out, self.client);
        put_addr(&mut out, self.local);
        put_long(&mut out, self.tag.as_bytes());
        put_long(&mut out, &self.extensions);
        put_long(&mut out, &self.pipelined);
        out
    }

    /// Parses a header; `None` when it is truncated, has bytes left over, or a text field is
    /// not UTF-8.
    pub(crate) fn decode(bytes: &[u8]) -> Option<SessionHeader> {
        let mut d = Decoder::new(bytes);
        let user = String::from_utf8(d.long()?.to_vec()).ok()?;
        let client = addr(&mut d)?;
        let local = addr(&mut d)?;
        let tag = String::from_utf8(d.long()?.to_vec()).ok()?;
        let extensions = d.long()?.to_vec();
        let pipelined = d.long()?.to_vec();
        d.is_empty().then_some(SessionHeader {
            user,
            client,
            local,
            extensions,
            tag,
            pipelined,
        })
    }
}

fn put_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.push(FAMILY_V4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(FAMILY_V6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

fn addr(d: &mut Decoder<'_>) -> Option<SocketAddr> {
    let ip = match d.u8()? {
        FAMILY_V4 => IpAddr::V4(Ipv4Addr::from(d.array::<4>()?)),
        FAMILY_V6 => IpAddr::V6(Ipv6Addr::from(d.array::<16>()?)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, d.u16()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SessionHeader {
        SessionHeader {
            user: "Alice@example.org".into(),
            client: "[2001:db8::7]:51234".parse().unwrap(),
            local: "10.0.0.1:993".parse().unwrap(),
            extensions: vec![1, 0, 255],
            tag: "a1".into(),
            pipelined: b"a2 SELECT INBOX\r\na3 IDLE\r\n".to_vec(),
        }
    }

    #[test]
    fn a_header_survives_encoding() {
        let header = sample();
        assert_eq!(SessionHeader::decode(&header.encode()), Some(header));
        let empty = SessionHeader {
            user: "u".into(),
            client: "127.0.0.1:1".parse().unwrap(),
            local: "[::1]:143".parse().unwrap(),
            extensions: vec![],
            tag: String::new(),
            pipelined: vec![],
        };
        assert_eq!(SessionHeader::decode(&empty.encode()), Some(empty));
    }

    #[test]
    fn truncated_extended_or_bad_headers_are_refused() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert_eq!(SessionHeader::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(SessionHeader::decode(&longer), None);
        // The client address's family byte (after the user's 4-byte length and 17 bytes).
        let mut family = bytes.clone();
        family[4 + 17] = 5;
        assert_eq!(SessionHeader::decode(&family), None);
        let mut not_utf8 = bytes;
        not_utf8[4] = 0xff;
        assert_eq!(SessionHeader::decode(&not_utf8), None);
    }
}
