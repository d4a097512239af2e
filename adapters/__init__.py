"""Platform adapters: the only place platform SDKs (slack_*, discord) are imported."""
