"""AI data-use commitments: a versioned, append-only ledger of what the vendor promises about clients' data and AI."""
