"""The HTTP API: an app factory, OpenAI-shaped errors, and thin routers over the services."""
