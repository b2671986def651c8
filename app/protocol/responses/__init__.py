"""The Responses API: its objects, its event stream, its SSE framing, its request schemas."""
