require ["fileinto", "imap4flags", "relational", "comparator-i;ascii-numeric"];
# SpamAssassin's verdict first, then its score, then its stars.
if anyof (header :contains "X-Spam-Flag" "YES",
          header :value "ge" :comparator "i;ascii-numeric" "X-Spam-Score" "8") {
    setflag "\\Seen";
    fileinto "Junk";
    stop;
}
if header :contains "X-Spam-Level" "*****" {
    fileinto "Junk/maybe";
}
