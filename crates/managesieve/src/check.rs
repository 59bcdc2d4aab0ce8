//! The checks of an uploaded script (PUTSCRIPT, CHECKSCRIPT, and SETACTIVE again, since
//! the policy may have changed since the upload): its size, the Sieve compiler's verdict,
//! and whether it uses commands that send mail when the server cannot send any.

use ringmail_sieve::{Limits, MailAction, Script};

use crate::options::MailPolicy;

/// Why a script is refused; the text is for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Larger than `Limits::max_script_size` (answered with QUOTA/MAXSIZE).
    TooLarge(String),
    /// Not a valid script, or one this server will not run.
    Invalid(String),
}

/// Compiles `source` and applies the mail policy.
pub fn check_script(source: &[u8], limits: &Limits, mail: MailPolicy) -> Result<Script, Refusal> {
    if source.len() > limits.max_script_size {
        return Err(too_large(source.len() as u64, limits));
    }
    let script =
        Script::compile_bytes(source, limits).map_err(|e| Refusal::Invalid(e.to_string()))?;
    let refused = |a: MailAction| match a {
        MailAction::Redirect | MailAction::Vacation => !mail.relay,
        MailAction::Reject | MailAction::Ereject => !mail.relay && !mail.reject_by_reply,
    };
    if let Some((action, line)) = script.mail_actions().into_iter().find(|(a, _)| refused(*a)) {
        let commands = if mail.reject_by_reply {
            "redirect or vacation"
        } else {
            "redirect, vacation, reject or ereject"
        };
        return Err(Refusal::Invalid(format!(
            "line {line}: {} would send mail, and this server has no SMTP relay to send it: scripts that use {commands} are refused",
            action.command()
        )));
    }
    Ok(script)
}

/// The refusal of a script of `size` bytes.
pub fn too_large(size: u64, limits: &Limits) -> Refusal {
    Refusal::TooLarge(format!(
        "the script has {size} bytes, more than the limit of {} bytes",
        limits.max_script_size
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_RELAY: MailPolicy = MailPolicy {
        relay: false,
        reject_by_reply: true,
    };

    #[test]
    fn valid_and_invalid() {
        let limits = Limits::default();
        assert!(check_script(b"keep;", &limits, NO_RELAY).is_ok());
        let Refusal::Invalid(e) =
            check_script(b"keep;\nfoo \"bar\";\n", &limits, NO_RELAY).unwrap_err()
        else {
            panic!("not a size refusal")
        };
        assert!(e.starts_with("line 2, column 1: "), "{e}");
        assert!(e.contains("foo"), "{e}");
    }

    #[test]
    fn size_limit() {
        let limits = Limits {
            max_script_size: 10,
            ..Limits::default()
        };
        assert_eq!(
            check_script(b"# 11 bytes\n", &limits, NO_RELAY).unwrap_err(),
            Refusal::TooLarge("the script has 11 bytes, more than the limit of 10 bytes".into())
        );
    }

    #[test]
    fn mail_policy() {
        let limits = Limits::default();
        let vacation = b"require \"vacation\";\n\nvacation \"Away\";\n";
        let e = check_script(vacation, &limits, NO_RELAY).unwrap_err();
        assert_eq!(
            e,
            Refusal::Invalid("line 3: vacation would send mail, and this server has no SMTP relay to send it: scripts that use redirect or vacation are refused".into())
        );
        let redirect = b"redirect \"a@example.org\";";
        assert!(check_script(redirect, &limits, NO_RELAY).is_err());
        let reject = b"require \"reject\"; reject \"no\";";
        assert!(
            check_script(reject, &limits, NO_RELAY).is_ok(),
            "refused in the LMTP reply"
        );
        let strict = MailPolicy {
            relay: false,
            reject_by_reply: false,
        };
        let e = check_script(reject, &limits, strict).unwrap_err();
        assert!(matches!(e, Refusal::Invalid(m) if m.contains("reject would send mail")));
        let relay = MailPolicy {
            relay: true,
            reject_by_reply: false,
        };
        for s in [&vacation[..], redirect, reject] {
            assert!(check_script(s, &limits, relay).is_ok());
        }
    }
}
