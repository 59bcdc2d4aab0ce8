//! The `user_filter` template: `%u` (login name), `%n` (its part before '@'), `%d` (its part
//! after '@') and `%%`, each value escaped as RFC 4515 section 3 requires so that a login
//! name such as `*` or `a)(uid=*` cannot change the filter.

/// Checks a filter template when the configuration is read.
pub fn check_template(template: &str) -> Result<(), String> {
    let t = template.trim();
    if !(t.starts_with('(') && t.ends_with(')')) {
        return Err(format!(
            "{template:?} must be an LDAP filter in parentheses, e.g. \
             \"(&(objectClass=inetOrgPerson)(uid=%u))\""
        ));
    }
    let mut depth = 0i32;
    for c in t.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("{template:?} has unbalanced parentheses"));
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("{template:?} has unbalanced parentheses"));
    }
    let mut names_user = false;
    let mut chars = t.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('u' | 'n') => names_user = true,
                Some('d' | '%') => {}
                other => {
                    return Err(format!(
                        "{template:?}: unknown variable %{} (use %u, %n, %d or %%)",
                        other.map(String::from).unwrap_or_default()
                    ))
                }
            }
        }
    }
    if !names_user {
        return Err(format!(
            "{template:?} does not contain %u (or %n): it would match the same entry for \
             every user"
        ));
    }
    Ok(())
}

/// The filter for `login` (already canonical: lowercase, no spaces or control characters).
pub fn expand(template: &str, login: &str) -> String {
    let (local, domain) = match login.rsplit_once('@') {
        Some((local, domain)) => (local, domain),
        None => (login, ""),
    };
    let mut out = String::with_capacity(template.len() + login.len());
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => out.push_str(&ldap3::ldap_escape(login)),
            Some('n') => out.push_str(&ldap3::ldap_escape(local)),
            Some('d') => out.push_str(&ldap3::ldap_escape(domain)),
            Some('%') => out.push('%'),
            // check_template refused anything else when the configuration was read.
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = "(&(objectClass=inetOrgPerson)(uid=%u))";

    #[test]
    fn substitutes_and_escapes() {
        assert_eq!(
            expand(DEFAULT, "alice"),
            "(&(objectClass=inetOrgPerson)(uid=alice))"
        );
        // RFC 4515 section 3: *, (, ), \ and NUL are written as \XX.
        assert_eq!(
            expand(DEFAULT, "a*)(uid=*"),
            "(&(objectClass=inetOrgPerson)(uid=a\\2a\\29\\28uid=\\2a))"
        );
        assert_eq!(expand("(uid=%u)", "a\\b"), "(uid=a\\5cb)");
        assert_eq!(
            expand("(&(uid=%n)(domain=%d)(x=100%%))", "bob@example.org"),
            "(&(uid=bob)(domain=example.org)(x=100%))"
        );
        assert_eq!(expand("(&(uid=%n)(dc=%d))", "bob"), "(&(uid=bob)(dc=))");
    }

    #[test]
    fn templates_are_checked() {
        assert!(check_template(DEFAULT).is_ok());
        assert!(check_template("(mail=%n@example.org)").is_ok());
        assert!(check_template("uid=%u")
            .unwrap_err()
            .contains("parentheses"));
        assert!(check_template("(&(uid=%u)")
            .unwrap_err()
            .contains("unbalanced"));
        assert!(check_template("(uid=%u))(x=1)")
            .unwrap_err()
            .contains("unbalanced"));
        assert!(check_template("(uid=alice)").unwrap_err().contains("%u"));
        assert!(check_template("(dc=%d)").unwrap_err().contains("%u"));
        assert!(check_template("(uid=%x)").unwrap_err().contains("%x"));
    }
}
