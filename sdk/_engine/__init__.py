"""Private execution machinery of the SDK: the flow engine, the task engine, and the batching recorder.

Definitions live in ``orch.flows`` and ``orch.tasks``; this package runs them. Nothing here is public API.
"""
