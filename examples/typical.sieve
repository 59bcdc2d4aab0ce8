# A typical user's filter: 20 rules of the kinds Roundcube and Thunderbird write
# (list filing, flags, spam, a few senders), used to measure delivery with Sieve.
require ["fileinto", "imap4flags", "mailbox", "envelope", "subaddress", "regex", "variables", "relational", "comparator-i;ascii-numeric"];
if exists "list-id" {
    if header :contains "list-id" "dev.lists.example.org" { fileinto :create "Lists/dev"; stop; }
    if header :contains "list-id" "announce.example.org" { fileinto :create "Lists/announce"; stop; }
    if header :regex "list-id" "<([a-z0-9-]+)\\.lists\\.example\\.net>" { set :lower "list" "${1}"; fileinto :create "Lists/${list}"; stop; }
}
if header :contains "x-spam-flag" "yes" { fileinto :create "Junk"; stop; }
if header :value "ge" :comparator "i;ascii-numeric" "x-spam-score" "8" { discard; stop; }
if address :is "from" "boss@example.com" { addflag "\\Flagged"; }
if address :domain :is "from" "billing.example.com" { fileinto :create "Bills"; stop; }
if header :contains "subject" ["invoice", "receipt", "Rechnung"] { fileinto :create "Bills"; stop; }
if address :is "from" ["noreply@github.com", "notifications@github.com"] { fileinto :create "GitHub"; stop; }
if header :contains "subject" "[JIRA]" { fileinto :create "Jira"; stop; }
if envelope :detail "to" "shop" { fileinto :create "Shopping"; stop; }
if header :matches "subject" "*newsletter*" { fileinto :create "Newsletters"; stop; }
if address :domain :is "from" ["facebook.com", "linkedin.com", "twitter.com"] { fileinto :create "Social"; stop; }
if header :contains "from" "calendar-notification" { addflag "$Calendar"; }
if size :over 10M { addflag "$Large"; }
if header :contains "subject" "urgent" { addflag "\\Flagged"; }
if address :is "to" "team@example.com" { fileinto :create "Team"; stop; }
if header :contains "precedence" ["bulk", "list"] { fileinto :create "Bulk"; stop; }
if header :regex "subject" "^\\[ticket #[0-9]+\\]" { fileinto :create "Tickets"; stop; }
if address :localpart :is "from" "mailer-daemon" { fileinto :create "Bounces"; stop; }
