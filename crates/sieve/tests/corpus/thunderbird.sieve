require ["fileinto","reject","imap4flags"];

/* Newsletters go into their own folder */
if anyof (header :contains "from" "newsletter@",
          header :contains "subject" "newsletter")
{
  setflag "\\Seen";
  fileinto "INBOX.Newsletters";
}

/* Order confirmations: forward to the shared mailbox, keep a copy */
if header :contains "subject" ["order", "Bestellung"]
{
  redirect "orders@example.net";
  keep;
}

/* Known watch spammer */
if address :is :domain "from" "watches.example"
{
  reject "Please remove me from your list.";
}
