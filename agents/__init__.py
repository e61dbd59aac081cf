"""orch agents: take runs off work queues, claim each exactly once, launch it on process, Docker or ECS."""
