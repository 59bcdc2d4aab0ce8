require ["vacation", "variables"];
if header :matches "subject" "*" { set "subj" "${1}"; }
if not header :contains "precedence" ["bulk", "list", "junk"] {
    vacation :days 5 :subject "Re: ${subj}"
             :addresses ["alice@example.com", "a.l@example.com"]
             "I'm on leave until the 25th. For urgent matters call the front desk.";
}
