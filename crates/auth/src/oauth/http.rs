//! The small blocking HTTP client for the JWKS URL and the introspection endpoint (ureq over
//! rustls). Called only from blocking threads; every request is bounded by the timeout and
//! every body by [`MAX_BODY`].

use std::time::Duration;

/// Largest body read: a key set or an introspection answer is a few kilobytes.
const MAX_BODY: u64 = 1 << 20;

/// An HTTP client with one overall timeout per request.
pub struct Http {
    agent: ureq::Agent,
    timeout: Duration,
}

impl Http {
    /// A client whose requests each take at most `timeout`, connecting included.
    pub fn new(timeout: Duration) -> Http {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .max_redirects(3)
            .user_agent("ringmail")
            .build();
        Http {
            agent: ureq::Agent::new_with_config(config),
            timeout,
        }
    }

    /// The longest one request takes.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// GETs `url`; only a 2xx answer's body is returned.
    pub fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut response = self
            .agent
            .get(url)
            .header("Accept", "application/json")
            .call()
            .map_err(|e| format!("{url}: {e}"))?;
        read(url, response.body_mut())
    }

    /// POSTs a form to `url` with an optional `Authorization` header.
    pub fn post_form(
        &self,
        url: &str,
        authorization: Option<&str>,
        form: &[(&str, &str)],
    ) -> Result<Vec<u8>, String> {
        let mut request = self.agent.post(url).header("Accept", "application/json");
        if let Some(auth) = authorization {
            request = request.header("Authorization", auth);
        }
        let mut response = request
            .send_form(form.iter().copied())
            .map_err(|e| format!("{url}: {e}"))?;
        read(url, response.body_mut())
    }
}

fn read(url: &str, body: &mut ureq::Body) -> Result<Vec<u8>, String> {
    body.with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| format!("{url}: {e}"))
}

/// `application/x-www-form-urlencoded` of one value (RFC 6749 section 2.3.1 wants the client
/// id and secret encoded so before they go into HTTP Basic authentication).
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("imap-server"), "imap-server");
        assert_eq!(form_encode("a b:c/d%"), "a+b%3Ac%2Fd%25");
    }
}
