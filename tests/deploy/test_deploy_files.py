"""The deploy files, checked the way CI can without a container engine: the Kubernetes manifests
against the API schemas that kubernetes-validate bundles (offline), compose's structure and variable
interpolation at the YAML level, Dockerfile lint-level rules, and every KBOT_ name they use."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from bot.core.settings import unknown_variables
from knowledge.models import SMOLLM2_GGUF

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
K8S_VERSION = "1.30.0"  # the oldest version kbot's manifests must load on (timeZone in CronJob: 1.27+)


def manifests() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_kind(kind: str) -> list[dict]:
    return [d for d in manifests() if d["kind"] == kind]


# --- Kubernetes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [K8S_VERSION, kubernetes_validate.latest_version()])
def test_k8s_manifests_match_the_api_schemas(version):
    docs = manifests()
    assert {d["kind"] for d in docs} == {"ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment", "Service",
                                         "CronJob"}
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any unknown or wrong field


def test_k8s_schema_validation_catches_mistakes():
    [deployment] = by_kind("Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}  # misspelt field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_k8s_deployment_runs_safely_with_probes_resources_and_the_data_volume():
    [deployment], [service], [pvc] = by_kind("Deployment"), by_kind("Service"), by_kind("PersistentVolumeClaim")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz", probe
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert container["args"] == ["kbot", "serve"]
    [volume] = pod["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]


def test_k8s_cronjob_trains_if_needed_next_to_the_server():
    [cron], [deployment] = by_kind("CronJob"), by_kind("Deployment")
    job = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = job["containers"]
    assert container["args"] == ["kbot", "train", "--if-needed"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert job["volumes"] == deployment["spec"]["template"]["spec"]["volumes"]
    [term] = job["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["labelSelector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert container["envFrom"] == deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]


def test_k8s_settings_are_real_kbot_settings_and_referenced_objects_exist():
    [config], [secret] = by_kind("ConfigMap"), by_kind("Secret")
    names = {n: "x" for n in [*config["data"], *secret["stringData"]]}
    assert unknown_variables(names, env_file=None) == []
    [deployment] = by_kind("Deployment")
    refs = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert refs == [{"configMapRef": {"name": config["metadata"]["name"]}},
                    {"secretRef": {"name": secret["metadata"]["name"]}}]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in K8S.glob("*.yaml")
                                                        if p.name != "kustomization.yaml")


# --- compose --------------------------------------------------------------------------------------------
COMPOSE = DEPLOY / "compose.yml"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)((?:[^{}]|\{[^{}]*\})*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} (nested defaults included)."""
    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return interpolate(arg, env) if op == ":-" else ""

    previous = None
    while previous != text:
        previous, text = text, _VAR.sub(one, text)
    return text


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_services_have_healthchecks_restart_policies_and_ordered_start():
    services = compose()["services"]
    assert set(services) == {"kbot", "postgres", "chroma", "chroma-proxy"}
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", name
        assert service.get("healthcheck", {}).get("test"), name
    assert services["kbot"]["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                              "chroma-proxy": {"condition": "service_healthy"}}
    assert services["chroma-proxy"]["depends_on"] == {"chroma": {"condition": "service_healthy"}}
    # Chroma itself is not published: only the token-checking proxy reaches it
    assert "ports" not in services["chroma"] and "ports" not in services["chroma-proxy"]
    build = services["kbot"]["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    for mount in services["chroma-proxy"]["volumes"]:
        assert (COMPOSE.parent / mount.split(":")[0]).exists(), mount


def test_compose_lets_the_env_file_win_and_defaults_fill_the_rest():
    kbot = compose()["services"]["kbot"]
    assert kbot["env_file"] == [{"path": "../.env", "required": True}]
    env = kbot["environment"]
    assert all(value.startswith(f"${{{name}:-") for name, value in env.items()), env  # nothing hard-coded
    dotenv = {"POSTGRES_PASSWORD": "pg-pw", "CHROMA_TOKEN": "chroma-tok"}
    resolved = {k: interpolate(v, dotenv) for k, v in env.items()}
    assert resolved == {"KBOT_DATABASE_URL": "postgresql+psycopg2://kbot:pg-pw@postgres:5432/kbot",
                        "KBOT_CHROMA_URL": "http://chroma-proxy:8000", "KBOT_CHROMA_TOKEN": "chroma-tok"}
    mine = {**dotenv, "KBOT_DATABASE_URL": "postgresql+psycopg2://app:x@db.internal/kbot"}
    assert interpolate(env["KBOT_DATABASE_URL"], mine) == "postgresql+psycopg2://app:x@db.internal/kbot"
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(compose()["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"], {})


def test_chroma_proxy_demands_the_token():
    template = (DEPLOY / "chroma-proxy.conf.template").read_text()
    assert '"Bearer ${CHROMA_TOKEN}" 1;' in template and "return 401;" in template
    assert "proxy_pass http://chroma:8000;" in template
    proxy = compose()["services"]["chroma-proxy"]
    assert proxy["environment"]["CHROMA_TOKEN"].startswith("${CHROMA_TOKEN:?")


@pytest.mark.skipif(shutil.which("docker") is None or subprocess.run(
    ["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="the docker compose plugin is not installed (the YAML-level checks above still run)")
def test_docker_compose_config_accepts_the_file(tmp_path):
    env = tmp_path / ".env"
    env.write_text("POSTGRES_PASSWORD=x\nCHROMA_TOKEN=y\n")
    subprocess.run(["docker", "compose", "--env-file", str(env), "-f", str(COMPOSE), "config", "--quiet"],
                   check=True, cwd=tmp_path, env={**os.environ})


# --- Dockerfile ------------------------------------------------------------------------------------------
def dockerfile() -> list[str]:
    """Instructions, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_dockerfile_runs_as_a_non_root_user_with_a_healthcheck():
    lines = dockerfile()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert lines.index(next(line for line in lines if line.startswith("USER "))) > max(
        i for i, line in enumerate(lines) if line.startswith("RUN "))  # nothing runs as root after it
    [health] = [line for line in lines if line.startswith("HEALTHCHECK ")]
    assert "/healthz" in health and "--start-period" in health
    assert lines[-1].startswith("CMD ") and "serve" in lines[-1]


def test_dockerfile_installs_pinned_cpu_torch_and_the_lock():
    runs = [line for line in dockerfile() if line.startswith("RUN ")]
    torch = [line for line in runs if re.search(r"\btorch\b", line)]
    assert len(torch) == 1
    assert "torch==2.13.0" in torch[0] and "--index-url https://download.pytorch.org/whl/cpu" in torch[0]
    assert not any(re.search(r"pip install[^&]*\btorch(?!==)", line) for line in runs)
    assert any("--require-hashes" in line and "requirements/kbot.lock" in line for line in runs)
    copied = [line for line in dockerfile() if line.startswith("COPY requirements/")]
    for path in copied[0].split()[1:-1]:
        assert (DEPLOY.parent / path).exists(), path
    assert re.match(r"FROM python:3\.11-slim\b", dockerfile()[0])


def test_dockerfile_bakes_the_converted_model_it_points_at():
    lines = dockerfile()
    convert = next(i for i, line in enumerate(lines) if "lm_dir(None, Path('/opt/kbot'))" in line)
    [lm_path] = [line for line in lines if line.startswith("ENV KBOT_LM_PATH=")]
    assert lines.index(lm_path) > convert
    assert lm_path.split("=", 1)[1] == f"/opt/kbot/models/{Path(SMOLLM2_GGUF).stem}"


# --- names -------------------------------------------------------------------------------------------------
def test_every_kbot_variable_in_the_deploy_files_is_a_real_setting():
    found: set[str] = set()
    for path in [DEPLOY / "env.example", COMPOSE, DEPLOY / "Dockerfile", *K8S.glob("*.yaml")]:
        found |= set(re.findall(r"\b(KBOT_[A-Z0-9_]+)", path.read_text()))
    found -= {"KBOT_PUBLISH_PORT"}  # compose's own variable: the host port to publish
    assert found and unknown_variables(dict.fromkeys(found, "x"), env_file=None) == []
