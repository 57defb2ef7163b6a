"""deploy/compose.yaml: valid against the Compose Specification's JSON schema, every variable set by the
.env example, start order on health, the workers scalable, the monitoring wired to the real ports, and
the tocsin containers hardened (checkov has no Compose framework, so these checks stand in for it)."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import yaml

from tests.deploy import deployfiles as files


def test_valid_against_the_compose_specification(compose_config):
    validator = jsonschema.Draft202012Validator(files.compose_schema())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose_config)]
    assert not errors, "\n".join(errors)


def test_the_schema_catches_a_misspelt_key(compose_config):
    """The schema is strict enough to be worth running: a typo in a service is an error."""
    broken = {**compose_config, "services": {**compose_config["services"]}}
    broken["services"]["api"] = {**broken["services"]["api"], "helthcheck": {"test": ["CMD", "true"]}}
    assert list(jsonschema.Draft202012Validator(files.compose_schema()).iter_errors(broken))


def test_every_variable_comes_from_the_env_example_or_has_a_default():
    env = files.env_file(files.ENV_EXAMPLE)
    _, interpolation = files.compose(env)
    assert not interpolation.problems, interpolation.problems
    for name, operators in interpolation.used.items():
        if operators & {":?", "?", ""}:
            assert name in env, f"${{{name}}} is required but deploy/.env.example does not set it"
    unused = set(env) - set(interpolation.used)
    assert not unused, f"deploy/.env.example sets {sorted(unused)}, which deploy/compose.yaml never uses"


def test_no_secret_is_written_in_the_compose_file():
    """Passwords and secrets reach the containers only through ${…} from deploy/.env."""
    for service, svc in files.compose_raw()["services"].items():
        environment = svc.get("environment") or {}
        for key, value in environment.items():
            if re.search(r"PASSWORD|SECRET|_KEY$|AUTH", key) or re.search(r"://[^/@]*:[^/@]*@", str(value)):
                assert "${" in str(value), f"{service}.{key} must come from deploy/.env, not be written here"


def test_env_example_holds_placeholders_only():
    for key, value in files.env_file(files.ENV_EXAMPLE).items():
        if re.search(r"PASSWORD|SECRET", key):
            assert re.fullmatch(r"change-me(-change-me)*", value), f"{key}: the example must hold a placeholder, not a secret"


def test_kafka_runs_in_kraft_mode(compose_config):
    services = compose_config["services"]
    assert not any("zookeeper" in str(svc.get("image", "")) for svc in services.values())
    kafka = services["kafka"]["environment"]
    assert set(kafka["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", kafka["CLUSTER_ID"]), "a KRaft cluster id is 16 bytes in base64url"


def test_start_order_waits_for_health(compose_config):
    services = compose_config["services"]
    for name, svc in services.items():
        for dependency, condition in (svc.get("depends_on") or {}).items():
            condition = condition["condition"]
            target = services[dependency]
            if condition == "service_healthy":
                assert "test" in target.get("healthcheck", {}), f"{name} waits for {dependency}'s health, which has no check"
            if condition == "service_completed_successfully":
                assert target.get("restart") == "no", f"{dependency} is a one-shot job"


def test_every_server_has_a_health_check(compose_config):
    for name, svc in compose_config["services"].items():
        if svc.get("restart") == "no":
            continue  # one-shot jobs
        check = svc.get("healthcheck", {})
        assert "test" in check and not check.get("disable"), f"{name} has no health check"


def test_worker_scales(compose_config, deploy_spec, entrypoint):
    worker = compose_config["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker, "--scale worker=N needs no fixed name or host port"
    argv = files.compose_command(worker, entrypoint)[1:]
    files.check_command_line(argv)
    assert argv[0] == "run" and int(files.option_value(argv, "workers", 1)) == 1, \
        "one worker process per container: every container serves metrics on the same port"
    env = files.env_file(files.ENV_EXAMPLE)
    assert int(env["WORKERS"]) <= int(env["EVENTS_PARTITIONS"]), "more workers than partitions would idle"


def test_prometheus_scrapes_every_tocsin_process(compose_config, deploy_spec, entrypoint):
    prometheus = yaml.safe_load((files.DEPLOY / "compose" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    api_argv = files.compose_command(compose_config["services"]["api"], entrypoint)[1:]
    targets = [t for c in jobs["tocsin"]["static_configs"] for t in c["targets"]]
    assert targets == [f"api:{files.serve_port(api_argv)}"]
    assert jobs["tocsin"]["metrics_path"] == "/metrics"
    (dns,) = jobs["tocsin-workers"]["dns_sd_configs"]
    assert dns["names"] == ["worker"] and dns["type"] == "A", "one target per worker container, however many"
    assert dns["port"] == deploy_spec.metrics.port and deploy_spec.metrics.host == "0.0.0.0"
    mounts = compose_config["services"]["prometheus"]["volumes"]
    assert any(m.startswith("./compose/prometheus.yml:") for m in mounts)


def test_grafana_gets_the_datasource_and_the_dashboard(compose_config):
    grafana = compose_config["services"]["grafana"]
    mounts = dict(m.split(":")[:2] for m in grafana["volumes"] if m.startswith("./"))
    for source in mounts:
        assert (files.DEPLOY / source).exists(), source
    dashboard_path = mounts["./grafana/tocsin.json"]
    providers = yaml.safe_load((files.DEPLOY / "compose/grafana/provisioning/dashboards/tocsin.yaml").read_text())["providers"]
    assert any(dashboard_path.startswith(p["options"]["path"].rstrip("/") + "/") for p in providers)
    (datasource,) = yaml.safe_load((files.DEPLOY / "compose/grafana/provisioning/datasources/prometheus.yaml").read_text())["datasources"]
    assert datasource["isDefault"] and datasource["url"] == "http://prometheus:9090"
    assert mounts["./compose/grafana/provisioning"] == "/etc/grafana/provisioning"


def test_tocsin_containers_are_hardened(compose_config):
    services = files.tocsin_services(compose_config)
    assert set(services) >= {"worker", "api", "producer"}
    for name, svc in services.items():
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in svc["security_opt"], name
        assert "user" not in svc, f"{name} must run as the image's non-root user"


def test_published_ports_are_on_loopback_only(compose_config):
    for name, svc in compose_config["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"


def test_api_serves_its_default_port_behind_auth(compose_config, entrypoint):
    api = compose_config["services"]["api"]
    argv = files.compose_command(api, entrypoint)[1:]
    files.check_command_line(argv)
    assert "--no-auth" not in argv, "binding 0.0.0.0 requires auth (tocsin refuses otherwise)"
    published = [p.rsplit(":", 1)[-1] for p in api["ports"]]
    assert published == [str(files.serve_port(argv))]
    assert api["environment"]["TOCSIN_API_KEYS_FILE"].startswith("/var/lib/tocsin/")
    assert any(v.endswith(":/var/lib/tocsin") for v in api["volumes"]), "keys and the request journal outlive the container"


def test_the_stack_runs_the_deploy_spec(compose_config):
    for name, svc in files.tocsin_services(compose_config).items():
        mounts = [v for v in svc.get("volumes", []) if v.endswith(":/etc/tocsin/spec.yaml:ro")]
        assert mounts == ["./specs/transactions-kafka.yaml:/etc/tocsin/spec.yaml:ro"], name


def test_producer_fills_the_topic_the_workers_read(compose_config, deploy_spec, entrypoint):
    services = compose_config["services"]
    argv = files.compose_command(services["producer"], entrypoint)[1:]
    files.check_command_line(argv)
    init = services["kafka-init"]["command"]
    assert files.option_value(argv, "topic") == deploy_spec.source.topic == init[init.index("--topic") + 1]
    assert files.option_value(argv, "partitions") == init[init.index("--partitions") + 1]


def _environment(svc: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in (svc.get("environment") or {}).items()}


def test_workers_share_state_through_redis(compose_config):
    """Workers come and go with --scale: checkpoints in Redis, so a partition's state follows it."""
    env = _environment(compose_config["services"]["worker"])
    assert env["TOCSIN_CHECKPOINT_URL"].startswith("redis://") and "@redis:6379/" in env["TOCSIN_CHECKPOINT_URL"]
    assert env["TOCSIN_STORE_URL"].startswith("postgresql+psycopg://") and "@postgres:5432/" in env["TOCSIN_STORE_URL"]
    assert env["TOCSIN_KAFKA_BROKERS"] == "kafka:9092"
