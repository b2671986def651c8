"""The gateway's own API (/v1/gateway/…): its request schemas and the objects it returns."""
