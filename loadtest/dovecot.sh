# Debian's Dovecot for the side-by-side benchmarks, sourced by loadtest/bench-vs-dovecot.sh
# and benches/auth_backends.sh, so that both measure the same Dovecot:
#
#   start_dovecot DIR USERS IMAP_PORT [LMTP_PORT]
#
# writes DIR/dovecot.conf and starts Dovecot in the foreground as a background job of the
# calling shell (DOVECOT_PID is its pid; the caller stops it). Loopback only, its own
# base_dir, Maildir under DIR/mail, no TLS, the passwd-file USERS (entries without a
# {SCHEME} prefix are plaintext), auth cache on. Mail is owned by nobody (Dovecot refuses
# mail access as root). DOVECOT_TUNED=1 (the default) reuses imap processes
# (service_count = 1000) and keeps some ready, Dovecot's own performance advice, safe here
# because every user maps to the same system uid; 0 is Dovecot's stock one process per
# session.
#
# LMTP (with LMTP_PORT): recipients are user%d@example.com; auth_username_format = %Ln
# makes that user%d, the name IMAP logs in with, so both protocols use one mailbox. The
# static userdb has no allow_all_users, so Dovecot verifies each recipient against the
# passwd-file passdb and refuses unknown ones at RCPT TO, as ringmail does with its users
# file.
#
# Durability (docs/loadtest.md, "Fairness"): mail_fsync = optimized (Dovecot's default,
# written out here) fsyncs each new message file before renaming it into new/ and
# fdatasyncs the new/ directory before the transaction commits, then answers 250; the
# dovecot-uidlist and index files are not synced. ringmail answers each recipient after
# the group commit's fdatasync of the record that holds the message and its index entry.

start_dovecot() {
    local dir=$1 users=$2 imap_port=$3 lmtp_port=${4:-}
    local cores protocols=imap imap_tuning="" lmtp_service=""
    cores="$(nproc)"
    mkdir -p "$dir/run" "$dir/state" "$dir/mail"
    chown 65534:65534 "$dir/mail"
    if [[ "${DOVECOT_TUNED:-1}" == 1 ]]; then
        imap_tuning="  service_count = 1000
  process_min_avail = $cores"
    fi
    if [[ -n "$lmtp_port" ]]; then
        protocols="imap lmtp"
        # One lmtp process per connection (Dovecot's client_limit = 1 for lmtp); the load
        # generator's connections are long-lived, so process reuse does not matter here.
        lmtp_service="service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $lmtp_port
  }
  process_limit = 1000
}"
    fi
    cat > "$dir/dovecot.conf" <<EOF
protocols = $protocols
listen = 127.0.0.1
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_cache_size = 10M
auth_cache_ttl = 1 hour
mail_location = maildir:~/Maildir
mail_fsync = optimized
auth_username_format = %Ln
first_valid_uid = 1
default_process_limit = 1000
default_client_limit = 10000
default_vsz_limit = 0
passdb {
  driver = passwd-file
  args = scheme=PLAIN $users
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=$dir/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
  inet_listener imaps {
    port = 0
  }
  # Dovecot's high-performance login mode: long-lived login processes, one per core.
  service_count = 0
  process_min_avail = $cores
  client_limit = 19000
}
service imap {
  process_limit = 20000
$imap_tuning
}
$lmtp_service
EOF
    dovecot -c "$dir/dovecot.conf" -F &
    DOVECOT_PID=$!
}
