"""The deployment files agree with the code: every STREAM_* variable they set
is one stream/settings.py reads (and accepts), ports match the web port,
topic names are the settings' defaults, the criteria ConfigMap is
deploy/criteria.yaml, and the manifests refer to each other correctly."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
import yaml

from stream.core.errors import ConfigError
from stream.settings import Settings, Topics, load_settings
from tests.deploy.paths import (
    COMPOSE_FILE,
    CRITERIA_FILE,
    DOCKERFILE,
    GRAFANA_PROVISIONING,
    PROMETHEUS_YML,
    SETTINGS_PY,
    k8s_files,
)

TOPICS = {
    "product-events",
    "activation-criteria",
    "activation-changes",
    "product-events-dlq",
    "lifecycle-triggers",
    "drift-alerts",
}


def settings_variables() -> set[str]:
    """Every STREAM_* variable stream/settings.py reads."""
    return set(re.findall(r"\"(STREAM_[A-Z0-9_]+)\"", SETTINGS_PY.read_text()))


def topic_variables() -> dict[str, str]:
    """STREAM_TOPIC_* variable -> the Topics field it sets (found by setting it)."""
    out = {}
    for name in sorted(v for v in settings_variables() if v.startswith("STREAM_TOPIC_")):
        changed = [
            f.name
            for f in dataclasses.fields(Topics)
            if getattr(load_settings({name: "probe-topic"}).topics, f.name) == "probe-topic"
        ]
        assert len(changed) == 1, name
        out[name] = changed[0]
    return out


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return doc


def compose_stream_services() -> dict[str, dict[str, Any]]:
    """Services running the project image."""
    return {name: s for name, s in compose()["services"].items() if s.get("build") == "."}


def compose_workers() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose_stream_services().items() if s.get("command") == ["worker"]}


def k8s_docs() -> list[dict[str, Any]]:
    return [doc for path in k8s_files() for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in k8s_docs() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} found"
    return found[0]


def statefulset_container() -> dict[str, Any]:
    [container] = k8s_one("StatefulSet")["spec"]["template"]["spec"]["containers"]
    return container


def settings_configmap() -> dict[str, str]:
    [ref] = statefulset_container()["envFrom"]
    data: dict[str, str] = k8s_one("ConfigMap", ref["configMapRef"]["name"])["data"]
    return data


def k8s_environment() -> dict[str, str]:
    """The worker's STREAM_* environment on Kubernetes (secret values as placeholders)."""
    env = dict(settings_configmap())
    for item in statefulset_container()["env"]:
        env[item["name"]] = item["value"] if "value" in item else "from-" + next(iter(item["valueFrom"]))
    return {k: v for k, v in env.items() if k.startswith("STREAM_")}


def dockerfile_environment() -> dict[str, str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    env = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return env


def deployments() -> dict[str, dict[str, str]]:
    """Every place that sets STREAM_* variables, with what it sets."""
    places = {
        f"compose:{name}": {k: str(v) for k, v in s.get("environment", {}).items() if k.startswith("STREAM_")}
        for name, s in compose_stream_services().items()
    }
    places["k8s:stream-worker"] = k8s_environment()
    places["Dockerfile"] = {k: v for k, v in dockerfile_environment().items() if k.startswith("STREAM_")}
    return places


# ------------------------------------------------------------------ variables


def test_settings_read_the_variables_this_test_relies_on():
    assert {"STREAM_WEB_PORT", "STREAM_WEB_HOST", "STREAM_DATA_DIR", "STREAM_BROKER_URL"} <= settings_variables()
    assert set(topic_variables().values()) == {f.name for f in dataclasses.fields(Topics)}


@pytest.mark.parametrize("place", sorted(deployments()))
def test_every_variable_is_one_settings_reads(place):
    unknown = set(deployments()[place]) - settings_variables()
    assert not unknown, f"{place} sets variables stream/settings.py does not read: {sorted(unknown)}"


@pytest.mark.parametrize("place", sorted(deployments()))
def test_settings_accept_the_values(place):
    env = {**dockerfile_environment(), **deployments()[place]}
    env.setdefault("STREAM_BROKER_URL", "kafka://localhost:9092")  # the Dockerfile leaves it to the deployment
    try:
        load_settings(env)
    except ConfigError as exc:
        pytest.fail(f"{place}: {exc}")


def test_k8s_configmap_lists_every_topic_variable():
    assert set(topic_variables()) <= set(settings_configmap())


# --------------------------------------------------------------------- topics


def test_topic_defaults_are_the_documented_names():
    assert set(dataclasses.asdict(Topics()).values()) == TOPICS


@pytest.mark.parametrize("place", sorted(deployments()))
def test_topic_names_are_the_defaults(place):
    defaults = load_settings({}).topics
    for variable, field in topic_variables().items():
        if variable in deployments()[place]:
            assert deployments()[place][variable] == getattr(defaults, field), f"{place}: {variable}"


# ---------------------------------------------------------------------- ports


def web_port(env: dict[str, str]) -> int:
    return load_settings({"STREAM_BROKER_URL": "kafka://x:1", **env}).web_port


def test_image_port_is_the_settings_default():
    env = dockerfile_environment()
    assert web_port(env) == Settings().web_port
    assert re.search(rf"^EXPOSE {Settings().web_port}$", DOCKERFILE.read_text(), re.MULTILINE)


def test_compose_ports_and_scrape_targets_match_the_web_port():
    targets = {
        target
        for job in yaml.safe_load(PROMETHEUS_YML.read_text())["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    expected = set()
    for name, service in compose_workers().items():
        env = {k: str(v) for k, v in service["environment"].items()}
        port = web_port({**dockerfile_environment(), **env})
        container_ports = {int(mapping.rsplit(":", 1)[1]) for mapping in service.get("ports", [])}
        assert container_ports == {port}, name
        host = env.get("STREAM_WEB_HOST", name)
        assert host in (name, service.get("hostname")), f"{name} advertises {host}, which the others cannot reach"
        assert f"http://{host}:{port}/health" in " ".join(service["healthcheck"]["test"]), name
        expected.add(f"{name}:{port}")
    assert len(expected) == 2
    assert targets == expected


def test_k8s_ports_match_the_web_port():
    port = web_port(k8s_environment())
    container = statefulset_container()
    [container_port] = container["ports"]
    assert container_port["containerPort"] == port
    name = container_port["name"]
    annotations = k8s_one("StatefulSet")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": name}
    assert container["livenessProbe"]["httpGet"]["port"] == name
    for service in (d for d in k8s_docs() if d["kind"] == "Service"):
        assert [p["targetPort"] for p in service["spec"]["ports"]] == [name]


# ------------------------------------------------------------------ manifests


def test_k8s_criteria_configmap_is_the_criteria_file():
    env = k8s_environment()
    mounts = {m["name"]: m["mountPath"] for m in statefulset_container()["volumeMounts"]}
    volumes = {v["name"]: v for v in k8s_one("StatefulSet")["spec"]["template"]["spec"]["volumes"]}
    [(volume, mount)] = [(name, path) for name, path in mounts.items() if "configMap" in volumes.get(name, {})]
    configmap = k8s_one("ConfigMap", volumes[volume]["configMap"]["name"])
    [(key, text)] = configmap["data"].items()
    assert env["STREAM_CRITERIA"] == f"{mount}/{key}"
    assert text == CRITERIA_FILE.read_text(), "deploy/k8s/configmap.yaml: copy deploy/criteria.yaml into it"


def test_k8s_statefulset_keeps_tables_on_a_claim_and_credentials_in_the_secret():
    statefulset = k8s_one("StatefulSet")
    spec = statefulset["spec"]
    [claim] = spec["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in statefulset_container()["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == k8s_environment()["STREAM_DATA_DIR"]
    service = k8s_one("Service", spec["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    secrets = {
        item["name"]: item["valueFrom"]["secretKeyRef"]
        for item in statefulset_container()["env"]
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    assert set(secrets) == {"STREAM_SASL_USERNAME", "STREAM_SASL_PASSWORD"}
    assert not {"STREAM_SASL_USERNAME", "STREAM_SASL_PASSWORD"} & set(settings_configmap())
    for ref in secrets.values():
        secret = k8s_one("Secret", ref["name"])
        assert ref["key"] in secret["stringData"]


def test_compose_workers_have_their_own_volumes_and_reach_kafka():
    services = compose()["services"]
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    data_volumes = []
    for name, service in compose_workers().items():
        env = service["environment"]
        mounts = dict(reversed(v.split(":")[:2]) for v in service["volumes"])
        data_volumes.append(mounts[env["STREAM_DATA_DIR"]])
        assert mounts[env["STREAM_CRITERIA"]] == "./" + str(CRITERIA_FILE.relative_to(COMPOSE_FILE.parent)), name
        broker = env["STREAM_BROKER_URL"].removeprefix("kafka://")
        assert f"PLAINTEXT://{broker}" in advertised.split(","), name
    assert len(set(data_volumes)) == len(data_volumes) == 2
    assert set(data_volumes) <= set(compose()["volumes"])


def test_compose_mounts_prometheus_and_grafana_provisioning():
    services = compose()["services"]
    prometheus_mounts = dict(v.split(":")[:2] for v in services["prometheus"]["volumes"])
    assert prometheus_mounts["./deploy/prometheus"] == "/etc/prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    grafana_mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    provider = yaml.safe_load((GRAFANA_PROVISIONING / "dashboards" / "provider.yml").read_text())["providers"][0]
    assert grafana_mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    datasource = yaml.safe_load((GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert "9090:9090" in services["prometheus"]["ports"]
