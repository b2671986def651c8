"""Chat Completions: Responses requests and history as Chat bodies, Chat answers as Responses."""
