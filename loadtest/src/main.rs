//! ringmail-load: the bundled IMAP load generator (see issue "load generator").
fn main() {
    eprintln!("ringmail-load: no profile is implemented yet");
    std::process::exit(2);
}
