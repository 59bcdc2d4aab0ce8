fn main() {
    eprintln!("ringmail: not wired yet");
    std::process::exit(2);
}
