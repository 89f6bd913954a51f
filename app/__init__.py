"""A checkout's deployable entry: `uvicorn app.main:app` (installed: `resilience serve`)."""
