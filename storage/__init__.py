"""Everything durable: the SQL database (memories, ledger, feedback, ...) and the LanceDB knowledge base."""
