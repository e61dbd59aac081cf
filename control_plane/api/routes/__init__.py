"""One router per resource; ``orch.control_plane.api.app`` mounts them all under ``/api``."""
