require ["editheader", "regex", "variables", "fileinto"];
# The upstream filter tags subjects; keep the real subject and file it.
if header :regex "subject" "^\\[SPAM\\] (.*)$" {
    set "real" "${1}";
    deleteheader "subject";
    addheader "Subject" "${real}";
    addheader "X-Was-Tagged" "yes";
}
if header :is "x-was-tagged" "yes" {
    if header :is "subject" "cheap watches" { fileinto "Junk"; }
}
