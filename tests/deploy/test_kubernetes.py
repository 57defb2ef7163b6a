"""deploy/k8s: every overlay renders offline with `kubectl kustomize`, every rendered manifest is valid for
Kubernetes (kubernetes-validate, strict) or for its CRD (tests/deploy/crd_schemas.py), and the manifests
hang together: selectors, ports, secrets, replicas against partitions, KEDA against the spec."""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy import crd_schemas
from tests.deploy import deployfiles as files

OVERLAYS = [overlay.name for overlay in files.OVERLAYS]


def test_the_overlays_are_there():
    assert {"dev", "production"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_manifest_is_valid(overlay, rendered):
    problems = []
    for manifest in rendered[overlay]:
        name = f"{manifest['kind']}/{manifest['metadata']['name']}"
        crd = crd_schemas.SCHEMAS.get((manifest["apiVersion"], manifest["kind"]))
        try:
            if crd is not None:
                jsonschema.Draft202012Validator(crd).validate(manifest)
            else:
                kubernetes_validate.validate(manifest, files.KUBERNETES_VERSION, strict=True)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
            problems.append(f"{name}: {'/'.join(map(str, error.absolute_path))}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{name}: {error.message} (add its CRD schema to tests/deploy/crd_schemas.py)")
    assert not problems, "\n".join(problems)


def test_validation_would_catch_a_typo(rendered):
    deployment = files.one(rendered["dev"], "Deployment", "tocsin-worker")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, files.KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_and_budgets_select_pods(overlay, rendered):
    manifests = rendered[overlay]
    pods = [m["spec"]["template"] for m in files.find(manifests, "Deployment")]
    for service in files.find(manifests, "Service"):
        selected = [p for p in pods if files.selects(service["spec"]["selector"], p["metadata"]["labels"])]
        assert selected, f"Service {service['metadata']['name']} selects no pod"
        for port in service["spec"]["ports"]:
            named = {p["name"] for pod in selected for c in pod["spec"]["containers"] for p in c.get("ports", [])}
            assert port["targetPort"] in named, f"Service {service['metadata']['name']}: no container port {port['targetPort']}"
    for budget in files.find(manifests, "PodDisruptionBudget"):
        assert any(files.selects(budget["spec"]["selector"]["matchLabels"], p["metadata"]["labels"]) for p in pods)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_referenced_config_maps_and_secrets_exist(overlay, rendered):
    """Every ConfigMap is rendered; every Secret is rendered (dev) or documented in the template the
    production Secret is made from, key by key."""
    manifests = rendered[overlay]
    config_maps = {m["metadata"]["name"]: m.get("data", {}) for m in files.find(manifests, "ConfigMap")}
    secrets = {m["metadata"]["name"]: set(m.get("data", {})) for m in files.find(manifests, "Secret")}
    template = files.env_file(files.K8S / "overlays" / "production" / "secrets.env.example")
    for workload, container in files.tocsin_containers(manifests):
        pod = workload["spec"]["template"]["spec"]
        for ref in container.get("envFrom", []):
            assert ref["configMapRef"]["name"] in config_maps
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref is None:
                continue
            if ref["name"] in secrets:
                assert ref["key"] in secrets[ref["name"]] or ref.get("optional"), f"{ref['name']} has no {ref['key']}"
            else:
                assert ref["name"] == "tocsin-secrets" and ref["key"] in template, \
                    f"{ref['name']}/{ref['key']} is neither rendered nor in production/secrets.env.example"
        for volume in pod["volumes"]:
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets or volume["secret"].get("optional")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_spec_config_map_is_the_deploy_spec(overlay, rendered):
    (spec_map,) = [m for m in files.find(rendered[overlay], "ConfigMap", "tocsin-spec")]
    assert spec_map["data"]["spec.yaml"] == files.DEPLOY_SPEC.read_text()


def _partitions(worker: dict[str, Any]) -> int:
    return int(worker["metadata"]["annotations"]["tocsin.io/events-partitions"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_never_outnumber_partitions(overlay, rendered):
    worker = files.one(rendered[overlay], "Deployment", "tocsin-worker")
    scaled = files.find(rendered[overlay], "ScaledObject")
    if scaled:
        assert "replicas" not in worker["spec"], "KEDA owns the replica count: the Deployment must not reset it"
        for so in scaled:
            assert so["spec"]["maxReplicaCount"] <= _partitions(worker)
            assert so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]
    else:
        assert 1 <= worker["spec"]["replicas"] <= _partitions(worker)
    budget = files.one(rendered[overlay], "PodDisruptionBudget", "tocsin-worker")
    assert budget["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_scales_the_consumer_group_of_the_spec(overlay, rendered, deploy_spec):
    manifests = rendered[overlay]
    auths = {m["metadata"]["name"] for m in files.find(manifests, "TriggerAuthentication")}
    env = next(m for m in files.find(manifests, "ConfigMap", "tocsin-env"))["data"]
    for so in files.find(manifests, "ScaledObject"):
        assert so["spec"]["scaleTargetRef"]["name"] == files.one(manifests, "Deployment", "tocsin-worker")["metadata"]["name"]
        for trigger in so["spec"]["triggers"]:
            assert trigger["type"] == "kafka"
            meta = trigger["metadata"]
            assert meta["consumerGroup"] == deploy_spec.source.group and meta["topic"] == deploy_spec.source.topic
            assert meta["bootstrapServers"] == env["TOCSIN_KAFKA_BROKERS"]
            assert meta["allowIdleConsumers"] == "false", "no more workers than partitions"
            if "authenticationRef" in trigger:
                assert trigger["authenticationRef"]["name"] in auths


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_monitor_scrapes_named_ports_on_metrics(overlay, rendered):
    manifests = rendered[overlay]
    services = files.find(manifests, "Service")
    for monitor in files.find(manifests, "ServiceMonitor"):
        selected = [s for s in services if files.selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
        ports = {p["name"] for s in selected for p in s["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} == ports, "one endpoint per port of the selected Services"
        assert {e["path"] for e in monitor["spec"]["endpoints"]} == {"/metrics"}
    worker_service = files.one(manifests, "Service", "tocsin-worker-metrics")
    assert worker_service["spec"]["clusterIP"] == "None" and worker_service["spec"]["publishNotReadyAddresses"] is True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ingress_routes_the_api_but_not_metrics(overlay, rendered, tmp_path, monkeypatch):
    ingresses = files.find(rendered[overlay], "Ingress")
    if not ingresses:
        return
    app = files.app_for_probes(tmp_path, monkeypatch)
    documented = list(app.openapi()["paths"])
    for ingress in ingresses:
        for rule in ingress["spec"]["rules"]:
            for route in rule["http"]["paths"]:
                prefix = route["path"]
                reached = files.route_exists(app, "GET", prefix) or (
                    route["pathType"] == "Prefix" and any(p.startswith(prefix) for p in documented))
                assert reached, f"Ingress path {prefix} reaches no route of the app"
                assert not "/metrics".startswith(prefix.rstrip("/") or "/"), "/metrics needs no credentials: keep it in the cluster"
                assert route["backend"]["service"]["name"] == files.one(rendered[overlay], "Service", "tocsin-api")["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_is_a_single_replica_with_its_journal_on_a_volume(overlay, rendered, deploy_spec):
    api = files.one(rendered[overlay], "Deployment", "tocsin-api")
    assert api["spec"]["replicas"] == 1 and api["spec"]["strategy"]["type"] == "Recreate", \
        "the API's state lives in its process and its journal is locked by one process"
    pod = api["spec"]["template"]["spec"]
    claims = {v["name"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    (container,) = pod["containers"]
    journal = [m["mountPath"] for m in container["volumeMounts"] if m["name"] in claims]
    assert files.under(deploy_spec.checkpoint.dir, journal), "the request journal (checkpoint.dir) must survive the pod"
    assert files.find(rendered[overlay], "PersistentVolumeClaim", "tocsin-api-data")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_resources_are_set_and_limits_cover_requests(overlay, rendered):
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}

    def quantity(value: str) -> float:
        value = str(value)
        if value.endswith("m"):
            return float(value[:-1]) / 1000
        for unit, factor in units.items():
            if value.endswith(unit):
                return float(value[: -len(unit)]) * factor
        return float(value)

    for _, container in files.tocsin_containers(rendered[overlay]):
        resources = container["resources"]
        for key in ("cpu", "memory"):
            assert quantity(resources["requests"][key]) <= quantity(resources["limits"][key]), (container["name"], key)
