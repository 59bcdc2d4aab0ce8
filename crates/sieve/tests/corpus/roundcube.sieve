require ["fileinto","imap4flags","copy","vacation","date","relational"];
# rule:[Mailing lists]
if anyof (header :contains "list-id" "rust-users", header :contains "list-id" "dovecot")
{
	fileinto "Lists";
	stop;
}
# rule:[Spam]
if allof (header :is "x-spam-flag" "YES")
{
	fileinto "Junk";
	stop;
}
# rule:[Boss]
if anyof (address :is "from" "boss@example.com")
{
	addflag "\\Flagged";
	fileinto :copy "Boss";
}
# rule:[Big mail]
if size :over 5M
{
	fileinto "Big";
}
# rule:[Out of office]
if allof (currentdate :zone "+0100" :value "ge" "iso8601" "2024-03-01T00:00:00+01:00", currentdate :zone "+0100" :value "le" "iso8601" "2024-03-31T23:59:59+01:00")
{
	vacation :days 1 :subject "Out of office" :from "alice@example.com" text:
I am on holiday until April.
.
;
}
