"""The Terraform module of the serverless control plane (infra/terraform), checked with Terraform itself.

`terraform fmt -check`, `init` (offline, from a filesystem plugin mirror of the AWS provider), `validate` and
`terraform test` run in a temporary copy of the module, so no `.terraform` folder or lock file lands in the
repository. `terraform test` runs the module's own `tests/*.tftest.hcl` against a mock AWS provider (nothing is
created; the assertions read what Terraform would send to AWS). The mock provider of Terraform 1.11 cannot open
ephemeral resources, so the module that generates the bootstrap key is applied on its own against a real moto
server here. The tests skip, naming what is missing, only when the `terraform` binary or the provider mirror is.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.plugins.aws import MotoServer

pytestmark = [pytest.mark.integration]

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE = REPO_ROOT / "infra" / "terraform"
PROVIDER_GLOB = "registry.terraform.io/hashicorp/aws/5.*/*/terraform-provider-aws*"
# Where the provider mirror is looked for; TF_PLUGIN_MIRROR names another one.
MIRROR_CANDIDATES = (
    "/opt/tf-plugins",
    "~/.terraform.d/plugins",
    "~/.local/share/terraform/plugins",
    "/usr/local/share/terraform/plugins",
    "/usr/share/terraform/plugins",
)


@dataclass(frozen=True)
class Terraform:
    """A temporary copy of the module, initialised, and the environment to run terraform in it."""

    binary: str
    mirror: Path
    workdir: Path
    env: dict[str, str]

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 540) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, *args],
            cwd=cwd or self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def find_mirror() -> Path | None:
    configured = os.environ.get("TF_PLUGIN_MIRROR")
    candidates = [configured] if configured else list(MIRROR_CANDIDATES)
    for candidate in candidates:
        root = Path(candidate).expanduser()
        if root.is_dir() and any(root.glob(PROVIDER_GLOB)):
            return root
    return None


def terraform_env(home: Path) -> dict[str, str]:
    """The caller's environment without AWS credentials or endpoints, offline, with an empty CLI config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    cli_config = home / "terraformrc"
    cli_config.write_text("")
    env.update(
        TF_CLI_CONFIG_FILE=str(cli_config),
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        CHECKPOINT_DISABLE="1",  # no version check over the network
        HOME=str(home),
    )
    return env


def copy_module(target: Path) -> Path:
    ignore = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate", "*.tfstate.*")
    shutil.copytree(MODULE, target, ignore=ignore)
    return target


def details(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"exit code {result.returncode}\n--- stdout ---\n{result.stdout[-6000:]}"
        f"\n--- stderr ---\n{result.stderr[-3000:]}"
    )


@pytest.fixture(scope="module")
def terraform(tmp_path_factory: pytest.TempPathFactory) -> Terraform:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("the terraform binary is not on PATH")
    mirror = find_mirror()
    if mirror is None:
        searched = os.environ.get("TF_PLUGIN_MIRROR") or ", ".join(MIRROR_CANDIDATES)
        pytest.skip(f"no Terraform plugin mirror with hashicorp/aws 5.x (searched {searched})")
    base = tmp_path_factory.mktemp("terraform")
    home = base / "home"
    home.mkdir()
    tf = Terraform(binary=binary, mirror=mirror, workdir=copy_module(base / "module"), env=terraform_env(home))
    init = tf.run("init", "-backend=false", f"-plugin-dir={mirror}", "-no-color")
    assert init.returncode == 0, details(init)
    return tf


def test_module_is_formatted(terraform: Terraform) -> None:
    result = terraform.run("fmt", "-check", "-recursive", "-diff", "-no-color")
    assert result.returncode == 0, "terraform fmt would change files:\n" + details(result)


def test_module_validates(terraform: Terraform) -> None:
    result = terraform.run("validate", "-no-color")
    assert result.returncode == 0, details(result)
    assert "Warning" not in result.stdout + result.stderr, details(result)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_terraform_test_passes(terraform: Terraform) -> None:
    result = terraform.run("test", "-no-color")
    assert result.returncode == 0, details(result)
    summary = re.search(r"(\d+) passed, (\d+) failed", result.stdout)
    assert summary is not None, details(result)
    passed, failed = int(summary.group(1)), int(summary.group(2))
    # 3 apply runs with the assertions, 5 that must be refused, and one more apply: every run file was executed.
    assert (passed, failed) == (9, 0), details(result)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_terraform_test_catches_a_broken_contract(terraform: Terraform) -> None:
    """The assertions can fail: queues that dead-letter after 4 receives instead of 5 do not pass."""
    result = terraform.run("test", "-no-color", "-filter=tests/defaults.tftest.hcl", "-var=max_receive_count=4")
    assert result.returncode != 0, details(result)
    assert "Messages move to the dead-letter queue after 5 receives." in result.stdout + result.stderr, details(result)


def test_no_nat_gateway_anywhere() -> None:
    """The stack is NAT-free by design (a NAT gateway is the largest fixed cost of a small VPC)."""
    sources = {path.name: path.read_text() for path in MODULE.glob("*.tf")}
    assert sources, "no .tf files found"
    for name, text in sources.items():
        assert "aws_nat_gateway" not in text, name
        assert "nat_gateway_id" not in text, name


def test_outputs_are_the_shared_contract() -> None:
    """`orch stack outputs` reads these names (the CDK stack publishes the same values)."""
    text = (MODULE / "outputs.tf").read_text()
    names = set(re.findall(r'^output "([a-z_]+)"', text, flags=re.MULTILINE))
    required = {
        "api_url",
        "code_bucket",
        "results_bucket",
        "cluster_arn",
        "cluster_name",
        "subnets",
        "security_group",
        "scheduler_group",
        "database_secret_arn",
        "bootstrap_key_secret_arn",
        "ecs_task_role_arn",
        "ecs_execution_role_arn",
        "ecs_log_group",
        "work_queue_urls",
    }
    assert required <= names, sorted(required - names)


@pytest.mark.aws
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_generated_bootstrap_key_stays_out_of_the_state(terraform: Terraform, moto: MotoServer, tmp_path: Path) -> None:
    """modules/generated-secret-value against moto: the secret gets a 48-character value that is neither in the
    state nor in Terraform's output; a second plan changes nothing; a new value_version stores a new value."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copytree(MODULE / "modules" / "generated-secret-value", tmp_path / "module")
    (root / "main.tf").write_text(
        f"""
terraform {{
  required_providers {{
    aws = {{ source = "hashicorp/aws" }}
  }}
}}

provider "aws" {{
  region                      = "{moto.region}"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  endpoints {{
    secretsmanager = "{moto.endpoint_url}"
  }}
}}

variable "value_version" {{
  type    = number
  default = 1
}}

resource "aws_secretsmanager_secret" "key" {{
  name                    = "orch-test/bootstrap-admin-key"
  recovery_window_in_days = 0
}}

module "value" {{
  source        = "../module"
  secret_id     = aws_secretsmanager_secret.key.id
  value_version = var.value_version
}}
"""
    )
    init = terraform.run("init", "-backend=false", f"-plugin-dir={terraform.mirror}", "-no-color", cwd=root)
    assert init.returncode == 0, details(init)
    apply = terraform.run("apply", "-no-color", "-auto-approve", cwd=root)
    assert apply.returncode == 0, details(apply)

    secrets = moto.client("secretsmanager")
    value = secrets.get_secret_value(SecretId="orch-test/bootstrap-admin-key")["SecretString"]
    assert re.fullmatch(r"[A-Za-z0-9]{48}", value), "the generated key is 48 letters and digits"
    state = (root / "terraform.tfstate").read_text()
    assert value not in state
    assert value not in apply.stdout + apply.stderr
    resources = json.loads(state)["resources"]
    assert any(r["type"] == "aws_secretsmanager_secret_version" for r in resources)

    again = terraform.run("plan", "-no-color", "-detailed-exitcode", cwd=root)
    assert again.returncode == 0, "a second plan must find nothing to change:\n" + details(again)
    assert secrets.get_secret_value(SecretId="orch-test/bootstrap-admin-key")["SecretString"] == value

    rotate = terraform.run("apply", "-no-color", "-auto-approve", "-var=value_version=2", cwd=root)
    assert rotate.returncode == 0, details(rotate)
    rotated = secrets.get_secret_value(SecretId="orch-test/bootstrap-admin-key")["SecretString"]
    assert re.fullmatch(r"[A-Za-z0-9]{48}", rotated)
    assert rotated != value
    assert rotated not in (root / "terraform.tfstate").read_text()
