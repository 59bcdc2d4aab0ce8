require ["body", "fileinto", "imap4flags"];
# Receipts, invoices and parcels, wherever in the text they are mentioned.
if body :text :contains ["invoice", "receipt", "tracking"] {
    addflag "$Receipt";
    fileinto "Receipts";
}
