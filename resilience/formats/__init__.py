"""The public wire formats (OpenAI chat and embeddings, Anthropic Messages): parsing,
rendering and translation between them, for the gateway and for the library's native
calls (`ResilientClient.complete_native`). Pure functions; no I/O."""
