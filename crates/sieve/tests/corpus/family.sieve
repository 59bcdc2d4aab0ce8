require ["copy", "duplicate", "fileinto", "envelope"];
if duplicate :seconds 3600 { discard; stop; }
if address :is "from" ["mom@example.org", "dad@example.org", "boss@example.com"] {
    redirect :copy "alice@home.example";
}
if envelope :is "from" "bob@example.org" { fileinto "Friends"; }
