"""orch agents: take runs off work queues, claim each exactly once, and launch it on process, Docker or ECS.

An agent runs wherever the user's compute is (a laptop, a VM, an ECS service). It talks to the control plane only
through ``orch.client`` (HTTP, ``Authorization: Bearer <agent key>``) and, with ``--sqs``, to the work queues' SQS
queues. The pieces:

- ``sources``: where candidate runs come from — the API's long-polling ``get_runs`` (database queue) or SQS;
- ``agent``: the loop — claim (propose Pending; accepted once), launch, watch, cancel, heartbeat, drain on SIGTERM;
- ``infrastructure``: one interface (launch, poll, kill) and its launchers: ``process``, ``docker``, ``ecs``.
"""
