"""Operator-facing HTTP pages served beside the Slack endpoints by ``supportbot serve``."""
