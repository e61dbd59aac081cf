"""pytest plugins shared by orch's tests; `tests/conftest.py` lists them in `pytest_plugins`."""
