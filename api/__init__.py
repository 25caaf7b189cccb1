"""redline HTTP API: a thin FastAPI layer over the engine (``redline``)."""
