"""The configs in cluster/ that start real clusters: parsed, and the fields infersweep relies on.

Nothing here starts a cluster; these catch a renamed flag, a lost GPU request, a port
published beyond 127.0.0.1, a secret written inline, or a Ray version that drifted from the
driver's.
"""
from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
IMAGE = re.compile(r"^ghcr\.io/[^/]+/infersweep:[\w.]+-gpu$")
SHARED = "/shared"
RAYJOB_ENTRYPOINT = "infersweep launch sweeps/specs/bart-cnn.yaml --address auto --tracking-uri http://mlflow:5000"


def load(relative: str):
    return yaml.safe_load((CLUSTER / relative).read_text())


def load_all(relative: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((CLUSTER / relative).read_text()) if d]


def ray_minor() -> str:
    import ray

    return ".".join(ray.__version__.split(".")[:2])


def containers(pod_template: dict) -> list[dict]:
    return pod_template["spec"]["containers"]


def env_of(container: dict) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


# --- Ray cluster launcher ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def launcher():
    return load("ray-cluster.yaml")


def test_launcher_has_a_cpu_head_and_autoscaling_gpu_workers(launcher):
    assert launcher["provider"]["type"] == "aws"
    types = launcher["available_node_types"]
    head = types[launcher["head_node_type"]]
    assert head["resources"] == {"CPU": 0}, "trials must not land on the head"
    gpu_types = {name: t for name, t in types.items() if name != launcher["head_node_type"]}
    instances = {t["node_config"]["InstanceType"] for t in gpu_types.values()}
    assert any(i.startswith("g5.") for i in instances) and any(i.startswith("p4d.") for i in instances)
    for t in gpu_types.values():
        assert 0 <= t["min_workers"] < t["max_workers"] <= launcher["max_workers"]
    assert launcher["idle_timeout_minutes"] > 0


def test_launcher_installs_the_project_with_gpu_extras_on_every_node(launcher):
    assert launcher["file_mounts"]["/home/ray/infersweep"] == "."
    assert "**/.venv" in launcher["rsync_exclude"] and "**/.infersweep" in launcher["rsync_exclude"]
    installs = [c for c in launcher["setup_commands"] if "pip install" in c]
    assert installs and re.search(r"infersweep\[gpu[,\]]", installs[0])
    image = launcher["docker"]["image"]
    assert image.startswith(f"rayproject/ray:{ray_minor()}.") and "py311" in image and image.endswith("-gpu")


def test_launcher_keeps_the_dashboard_local_and_turns_on_token_auth(launcher):
    head = " ".join(launcher["head_start_ray_commands"])
    assert "ray start --head" in head and "--dashboard-host=127.0.0.1" in head
    assert "--ray-client-server-port=10001" in head and "--port=6379" in head
    for command in launcher["head_start_ray_commands"] + launcher["worker_start_ray_commands"]:
        if "ray start" in command:
            assert "RAY_AUTH_MODE=token" in command
    assert launcher["file_mounts"]["/home/ray/.ray/auth_token"] == "~/.ray/auth_token"
    assert "$RAY_HEAD_IP:6379" in " ".join(launcher["worker_start_ray_commands"])


def test_launcher_mounts_shared_storage_for_the_sweep_state(launcher):
    assert any("mount" in c and "/mnt/shared" in c for c in launcher["initialization_commands"])
    assert "--volume /mnt/shared:/mnt/shared" in launcher["docker"]["run_options"]


# --- KubeRay ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raycluster():
    docs = load_all("kuberay/raycluster.yaml")
    return next(d for d in docs if d["kind"] == "RayCluster"), docs


@pytest.fixture(scope="module")
def rayjob():
    (job,) = load_all("kuberay/rayjob.yaml")
    return job


def check_ray_cluster_spec(spec: dict, context: str) -> None:
    assert spec["rayVersion"].startswith(ray_minor() + "."), f"{context}: Ray differs from the driver's"
    assert spec["authOptions"]["mode"] == "token", f"{context}: Ray token auth must be on"
    head = spec["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP", f"{context}: the head must not be exposed"
    assert head["rayStartParams"]["num-cpus"] == "0"
    (head_container,) = containers(head["template"])
    ports = {p["name"]: p["containerPort"] for p in head_container["ports"]}
    assert ports.pop("serve", 8000) == 8000, f"{context}: Ray Serve's HTTP port (infersweep serve) is 8000"
    assert ports == {"gcs-server": 6379, "dashboard": 8265, "client": 10001}
    env = env_of(head_container)
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert "value" not in env[key] and env[key]["valueFrom"]["secretKeyRef"]["name"], \
            f"{context}: {key} must come from a Secret"
    assert int(env["INFERSWEEP_SCALE_UP_WAIT_S"]["value"]) > 0, "GPU groups start at zero"
    images = {head_container["image"]}
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["workerGroupSpecs"]
    for group in spec["workerGroupSpecs"]:
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        (worker,) = containers(group["template"])
        images.add(worker["image"])
        for kind in ("requests", "limits"):
            assert int(worker["resources"][kind]["nvidia.com/gpu"]) >= 1, f"{context}: {group['groupName']}"
        assert not {"MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_USERNAME"} & set(env_of(worker)), \
            "only the driver (head) talks to MLflow"
        mounts = {m["mountPath"] for m in worker["volumeMounts"]}
        assert SHARED in mounts
    assert SHARED in {m["mountPath"] for m in head_container["volumeMounts"]}
    assert len(images) == 1 and IMAGE.match(images.pop()), f"{context}: one project image everywhere"


def test_raycluster_runs_the_project_image_with_gpu_workers(raycluster):
    cluster, docs = raycluster
    assert cluster["apiVersion"] == "ray.io/v1"
    check_ray_cluster_spec(cluster["spec"], "raycluster.yaml")
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"]["ray.io/node-type"] == "head"
    assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_rayjob_runs_the_documented_sweep_entrypoint(rayjob):
    from typer.main import get_command

    from infersweep.cli import app
    from infersweep.sweeps.spec import load_sweep_spec

    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    spec = rayjob["spec"]
    entrypoint = " ".join(spec["entrypoint"].split())
    assert entrypoint.startswith(RAYJOB_ENTRYPOINT)
    args = shlex.split(entrypoint)
    assert args[args.index("--storage") + 1].startswith(SHARED + "/"), "sweep state must be on shared storage"
    # the command parses with the real CLI, and the sweep file it names is valid
    context = get_command(app).make_context("infersweep", args[1:], resilient_parsing=True)
    launch = get_command(app).get_command(context, "launch")
    launch.make_context("launch", args[2:])
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    workdir = Path(runtime_env["working_dir"])
    assert workdir == Path("/home/ray/infersweep"), "where cluster/Dockerfile puts the checkout"
    assert load_sweep_spec(ROOT / args[2]).resources.gpu >= 1
    assert spec["shutdownAfterJobFinishes"] is True and spec["backoffLimit"] >= 1
    check_ray_cluster_spec(spec["rayClusterSpec"], "rayjob.yaml")


def test_the_image_puts_the_checkout_where_the_rayjob_expects_it():
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    assert re.search(rf"RAY_IMAGE=rayproject/ray:{re.escape(ray_minor())}\.\d+-py311-gpu", dockerfile)
    assert "WORKDIR /home/ray/infersweep" in dockerfile
    assert re.search(r'pip install .*"\.\[gpu,hf\]"', dockerfile)
    ignored = (CLUSTER / "Dockerfile.dockerignore").read_text().split()
    assert ".venv" in ignored and ".infersweep" in ignored and ".git" in ignored


def test_shared_storage_is_read_write_many():
    (pvc,) = load_all("kuberay/shared-storage.yaml")
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["spec"]["accessModes"] == ["ReadWriteMany"]


# --- MLflow server ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose():
    return load("mlflow/docker-compose.yaml")


def server_flags(args: list[str]) -> dict[str, str | bool]:
    flags, i = {}, 0
    while i < len(args):
        if args[i].startswith("--"):
            takes_value = i + 1 < len(args) and not args[i + 1].startswith("--")
            flags[args[i]] = args[i + 1] if takes_value else True
            i += 2 if takes_value else 1
        else:
            i += 1
    return flags


def check_server_flags(args: list[str]) -> None:
    assert args[:2] == ["mlflow", "server"]
    flags = server_flags(args)
    assert flags["--app-name"] == "basic-auth"
    assert flags["--serve-artifacts"] is True
    assert flags["--artifacts-destination"].startswith("s3://")
    assert flags["--port"] == "5000"
    assert "--backend-store-uri" not in flags, "the store URI holds a password: pass it as env"
    assert "--disable-security-middleware" not in flags


def test_compose_runs_mlflow_on_postgres_and_s3_with_basic_auth(compose):
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["minio"]["image"].startswith("minio/minio")
    mlflow = services["mlflow"]
    check_server_flags(mlflow["command"])
    env = mlflow["environment"]
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert mlflow["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert mlflow["build"] == "."


def test_compose_publishes_ports_on_loopback_only_and_keeps_secrets_in_env(compose):
    published = [(name, port) for name, svc in compose["services"].items() for port in svc.get("ports", [])]
    assert ("mlflow", "127.0.0.1:5000:5000") in published
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"
    text = (CLUSTER / "mlflow" / "docker-compose.yaml").read_text()
    for secret in ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "MLFLOW_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert re.search(rf"\$\{{{secret}(:\?[^}}]*)?\}}", text), f"{secret} must come from .env"
    example = (CLUSTER / "mlflow" / ".env.example").read_text()
    for line in example.splitlines():
        if "PASSWORD=" in line or "SECRET_KEY=" in line:
            assert line.endswith("="), f"no default secret in .env.example: {line}"
    assert ".env" in (CLUSTER / "mlflow" / ".gitignore").read_text().split()


def test_basic_auth_config_holds_no_password():
    config = configparser.ConfigParser()
    config.read(CLUSTER / "mlflow" / "basic_auth.ini")
    section = config["mlflow"]
    assert "admin_password" not in section and section["admin_username"] == "admin"
    assert section["default_permission"] in ("READ", "NO_PERMISSIONS")
    assert section["authorization_function"].endswith("authenticate_request_basic_auth")
    dockerfile = (CLUSTER / "mlflow" / "Dockerfile").read_text()
    assert "mlflow[auth]==" in dockerfile and "psycopg2" in dockerfile and "boto3" in dockerfile
    assert "MLFLOW_AUTH_CONFIG_PATH=/etc/mlflow/basic_auth.ini" in dockerfile


def test_kubernetes_mlflow_is_a_cluster_internal_service_named_mlflow():
    docs = load_all("mlflow/kubernetes.yaml")
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Service", "mlflow"), ("Deployment", "mlflow"), ("StatefulSet", "postgres"), ("Service", "postgres")} <= kinds
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "mlflow")
    assert service["spec"]["type"] == "ClusterIP" and service["spec"]["ports"][0]["port"] == 5000
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = containers(deployment["spec"]["template"])
    check_server_flags(container["args"])
    env = env_of(container)
    for key in ("MLFLOW_BACKEND_STORE_URI", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
                "AWS_SECRET_ACCESS_KEY"):
        assert "secretKeyRef" in env[key]["valueFrom"], f"{key} must come from a Secret"
    assert "mlflow:*" in env["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"].split(",")
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    postgres = next(d for d in docs if d["kind"] == "StatefulSet")
    (db,) = containers(postgres["spec"]["template"])
    assert db["image"].startswith("postgres:") and "secretKeyRef" in env_of(db)["POSTGRES_PASSWORD"]["valueFrom"]


def test_the_readme_walks_through_every_config():
    readme = (CLUSTER / "README.md").read_text()
    for name in ("ray-cluster.yaml", "kuberay/raycluster.yaml", "kuberay/rayjob.yaml", "mlflow/docker-compose.yaml",
                 "mlflow/kubernetes.yaml", "Dockerfile", "infersweep promote", "MLFLOW_TRACKING_PASSWORD",
                 "--address ray://", "--address auto"):
        assert name in readme, f"cluster/README.md does not mention {name}"
