"""Command groups of the supportbot CLI, one module per group."""
