"""The gateway: OpenAI- and Anthropic-compatible endpoints and an admin API over `resilience`."""
