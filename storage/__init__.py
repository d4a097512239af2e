"""Everything durable: the SQL database (memories, ledger, ...) and the LanceDB knowledge base."""
