"""Shared test helpers: backends, a real uvicorn server, API clients."""
