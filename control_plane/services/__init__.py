"""Background services. Each is one function ``tick(db, settings, now) -> int`` that runs once: the server calls
them from a loop (``loop.py``), AWS Lambda calls them from the EventBridge-driven services handler."""
