"""Pure translation between the Responses API and Chat Completions (no I/O)."""
