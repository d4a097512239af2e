"""supportbot's platform-neutral core: config, neutral types, the responder and the answer loop."""
