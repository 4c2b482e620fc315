"""HTTP suggestion service (FastAPI) and its type-ahead page."""
