"""orch's AWS control plane as a CDK v2 app (Python).

`OrchControlPlaneStack` is the stack; `StackConfig` its settings read from CDK context; `lambda_code` turns the
package built by `orch build lambda` into Lambda code. `app.py` next to this package is the entry point.
"""

from orch_cdk.config import ConfigError, StackConfig
from orch_cdk.stack import OUTPUT_NAMES, STACK_NAME, OrchControlPlaneStack

__all__ = ["OUTPUT_NAMES", "STACK_NAME", "ConfigError", "OrchControlPlaneStack", "StackConfig"]
