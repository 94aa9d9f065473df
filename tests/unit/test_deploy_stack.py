"""The deployable stack: Docker compose, the Dockerfile and the Kubernetes manifests.

These files are not run here (no Docker, no cluster), so the test checks what would break
a deployment: the objects exist, references between them resolve (ConfigMaps, Secrets,
Services, mounts, ports), settings are real Vigie settings, and scaling stays within the
partition count.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def k8s_objects() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    objects = []
    for resource in kustomization["resources"]:
        objects.extend(doc for doc in yaml.safe_load_all((K8S / resource).read_text()) if doc)
    return objects


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} objects"
    return matches[0]


def source_text() -> str:
    """All of Vigie's Python source, to check that a setting is read somewhere."""
    return "\n".join(
        path.read_text(encoding="utf-8")
        for package in ("pipeline", "agents", "models")
        for path in (ROOT / package).rglob("*.py")
    )


def topics_in_records_doc() -> set[str]:
    table = (ROOT / "docs" / "records.md").read_text()
    return set(re.findall(r"^\| `([a-z.]+)` \|", table, flags=re.MULTILINE))


# --- Docker compose ---------------------------------------------------------------------------


def test_compose_has_the_whole_stack() -> None:
    services = compose()["services"]
    for name in ("kafka", "worker", "producer", "prometheus", "grafana", "mailpit"):
        assert name in services
    assert services["kafka"]["image"].startswith("apache/kafka:")
    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper


def test_compose_worker_scales() -> None:
    worker = compose()["services"]["worker"]
    # `--scale worker=N` fails with a fixed container name or a published host port.
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["command"] == ["vigie", "worker"]
    env = worker["environment"]
    assert env["VIGIE_APP_ID"]  # one consumer group for every replica
    # Prometheus scrapes from another container: the web server must not bind loopback.
    assert env["VIGIE_WEB_BIND"] == "0.0.0.0"
    assert env["VIGIE_WEB_PORT"] in worker["expose"]


def worker_topics() -> dict[str, bool]:
    """Vigie's topics (name -> compacted), as pipeline/topics.py declares them."""
    from pipeline.topics import TOPICS

    return {topic.name: topic.compacted for topic in TOPICS}


def single_partition_topics() -> set[str]:
    from pipeline.topics import TOPICS

    return {topic.name for topic in TOPICS if topic.single_partition}


def created_with_one_partition(script: str) -> set[str]:
    """Topics a creation script makes with `PARTITIONS=1 create NAME ...`."""
    return set(re.findall(r"PARTITIONS=1 create (\S+)", script))


def test_compose_creates_every_topic_the_worker_uses() -> None:
    command = compose()["services"]["kafka-topics"]["command"][0]
    plain = set(re.search(r"for topic in ([^;]+);", command).group(1).split())
    compacted = set(re.findall(r"create (\S+) --config cleanup.policy=compact", command))
    expected = worker_topics()
    assert plain | compacted == set(expected)
    assert compacted == {name for name, is_compacted in expected.items() if is_compacted}
    assert topics_in_records_doc() <= set(expected)
    assert '--partitions "$$PARTITIONS"' in command and "--if-not-exists" in command
    assert created_with_one_partition(command) == single_partition_topics()


def test_the_deploy_guide_lists_and_creates_every_topic_the_worker_uses() -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    section = guide.split("### Topics", 1)[1].split("```sh", 1)
    listed = set(re.findall(r"`([a-z]+\.[a-z]+|incidents)`", section[0]))
    script = section[1].split("```", 1)[0]
    plain = set(re.search(r"for t in ([^;]+);", script).group(1).split())
    compacted = set(re.findall(r"create (\S+) --config cleanup.policy=compact", script))
    expected = worker_topics()
    assert listed >= set(expected), f"not in the topic list: {set(expected) - listed}"
    assert plain | compacted == set(expected)
    assert compacted == {name for name, is_compacted in expected.items() if is_compacted}
    assert listed == set(expected), f"not declared in pipeline/topics.py: {listed - set(expected)}"
    assert created_with_one_partition(script) == single_partition_topics()
    assert '--partitions "${PARTITIONS:-12}"' in script


def test_kubernetes_manifests_name_only_declared_topics() -> None:
    # The workers create the topics themselves on a cluster (no creation Job); what the
    # manifests name (KEDA's lag trigger, say) must be a topic Vigie declares.
    named = set()
    for path in K8S.rglob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            named.update(re.findall(r"'topic': '([^']+)'", repr(document)))
    assert named, "no topic found in deploy/k8s: the check would not see a wrong one"
    assert named <= set(worker_topics())


def test_compose_ports_match_the_scrape_config() -> None:
    services = compose()["services"]
    jobs = {
        job["job_name"]: job
        for job in yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())[
            "scrape_configs"
        ]
    }
    worker_sd = jobs["vigie-worker"]["dns_sd_configs"][0]
    producer_sd = jobs["vigie-producer"]["dns_sd_configs"][0]
    assert worker_sd["names"] == ["worker"]
    assert str(worker_sd["port"]) == services["worker"]["environment"]["VIGIE_WEB_PORT"]
    assert producer_sd["names"] == ["producer"]
    assert str(producer_sd["port"]) == services["producer"]["environment"]["VIGIE_METRICS_PORT"]


def test_compose_mounts_existing_files() -> None:
    services = compose()["services"]
    for service in ("prometheus", "grafana"):
        for volume in services[service]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{service}: {source} is missing"
    build = services["worker"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()


def test_compose_watchlist_is_valid_yaml_with_a_mail_receiver() -> None:
    config = compose()["configs"]["watchlist"]["content"]
    watchlist = yaml.safe_load(config)
    email = watchlist["receivers"]["pr-email"]
    assert email["type"] == "email" and email["host"] == "mailpit"
    assert {
        owner["receivers"][0] for brand in watchlist["brands"] for owner in brand["owners"]
    } == {"pr-email"}


def test_compose_alert_links_open_the_brand_dashboard() -> None:
    env = compose()["x-vigie-environment"]
    assert env["VIGIE_GRAFANA_DASHBOARD"] == "vigie-brands"


def test_compose_settings_are_real_settings() -> None:
    source = source_text()
    for service in ("worker", "producer"):
        for name in compose()["services"][service]["environment"]:
            if name.startswith("VIGIE_"):
                assert f'"{name}"' in source, f"{service}: {name} is read by no module"


# --- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_runs_vigie_worker_as_a_non_root_user() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert stages and all(stage == "python:3.11-slim" for stage in stages)
    users = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert text.rstrip().splitlines()[-1] == 'CMD ["vigie", "worker"]'
    assert "vigie model build" in text
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, flags=re.MULTILINE):
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_dockerfile_settings_are_real_settings() -> None:
    source = source_text()
    for name in set(re.findall(r"\b(VIGIE_[A-Z_]+)=", (DEPLOY / "Dockerfile").read_text())):
        assert f'"{name}"' in source, f"Dockerfile sets {name}, which no module reads"


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", ".state", ".env"):
        assert entry in ignored


# --- Kubernetes -------------------------------------------------------------------------------


def test_kustomization_lists_files_that_parse() -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in k8s_objects()}
    assert {
        ("Namespace", "vigie"),
        ("ConfigMap", "vigie-settings"),
        ("ConfigMap", "vigie-watchlist"),
        ("Secret", "vigie-secrets"),
        ("Deployment", "vigie-worker"),
        ("Service", "vigie-worker"),
        ("Service", "vigie-worker-pods"),
        ("Deployment", "vigie-producer"),
    } <= kinds
    for obj in k8s_objects():
        assert obj["apiVersion"] and obj["metadata"]["name"]


def test_worker_replicas_fit_the_partitions() -> None:
    settings = k8s_object("ConfigMap", "vigie-settings")["data"]
    worker = k8s_object("Deployment", "vigie-worker")
    assert 1 <= worker["spec"]["replicas"] <= int(settings["VIGIE_TOPIC_PARTITIONS"])


def test_worker_pods_keep_their_own_state_and_are_scraped() -> None:
    settings = k8s_object("ConfigMap", "vigie-settings")["data"]
    template = k8s_object("Deployment", "vigie-worker")["spec"]["template"]
    container = template["spec"]["containers"][0]
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts[settings["VIGIE_STATE_DIR"]]]
    watchlist = Path(settings["VIGIE_WATCHLIST"])
    assert volumes[mounts[str(watchlist.parent)]]["configMap"]["name"] == "vigie-watchlist"
    assert watchlist.name in k8s_object("ConfigMap", "vigie-watchlist")["data"]
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["web"]
    assert str(port) == settings["VIGIE_WEB_PORT"]
    # The kubelet probes and Prometheus scrapes from outside the pod.
    assert settings["VIGIE_WEB_BIND"] == "0.0.0.0"
    assert container["readinessProbe"]["httpGet"]["port"] == "web"
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True


def test_deployments_select_their_pods_and_resolve_their_references() -> None:
    defined = {(o["kind"], o["metadata"]["name"]) for o in k8s_objects()}
    for name in ("vigie-worker", "vigie-producer"):
        deployment = k8s_object("Deployment", name)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        for key, value in deployment["spec"]["selector"]["matchLabels"].items():
            assert labels[key] == value
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        for source in container["envFrom"]:
            if "configMapRef" in source:
                assert ("ConfigMap", source["configMapRef"]["name"]) in defined
            if "secretRef" in source:
                assert ("Secret", source["secretRef"]["name"]) in defined


def test_services_reach_pods_and_match_the_k8s_scrape_config() -> None:
    pod_labels = {
        name: k8s_object("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        for name in ("vigie-worker", "vigie-producer")
    }
    services = [o for o in k8s_objects() if o["kind"] == "Service"]
    for service in services:
        selector = service["spec"]["selector"]
        assert any(
            all(labels.get(k) == v for k, v in selector.items()) for labels in pod_labels.values()
        ), service["metadata"]["name"]
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus-k8s.yml").read_text())
    headless = {s["metadata"]["name"] for s in services if s["spec"].get("clusterIP") == "None"}
    for job in scrape["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            service_name, namespace = sd["names"][0].split(".")[:2]
            assert service_name in headless and namespace == "vigie"


def test_secret_holds_placeholders_only() -> None:
    secret = k8s_object("Secret", "vigie-secrets")
    assert "data" not in secret  # no base64 blob that could hide a real value
    for name, value in secret["stringData"].items():
        assert value.startswith("REPLACE-ME"), name


def test_k8s_settings_are_real_settings() -> None:
    source = source_text()
    watchlist = k8s_object("ConfigMap", "vigie-watchlist")["data"]["watchlist.yaml"]
    names = list(k8s_object("ConfigMap", "vigie-settings")["data"])
    names += list(k8s_object("Secret", "vigie-secrets")["stringData"])
    for name in names:
        if name.startswith("VIGIE_"):
            # A setting is read by a module, or named by the watchlist (url_env: ...).
            assert f'"{name}"' in source or name in watchlist, f"{name} is read by nothing"


def test_alert_links_open_the_brand_dashboard_on_k8s() -> None:
    settings = k8s_object("ConfigMap", "vigie-settings")["data"]
    assert settings["VIGIE_GRAFANA_DASHBOARD"] == "vigie-brands"


def optional_objects(folder: str) -> list[dict[str, Any]]:
    """The objects of an optional kustomization (deploy/k8s/monitoring, deploy/k8s/keda)."""
    base = K8S / folder
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == "vigie"
    return [doc for resource in kustomization["resources"]
            for doc in yaml.safe_load_all((base / resource).read_text()) if doc]


def test_worker_liveness_is_an_http_check_of_the_loop_and_consumer() -> None:
    container = k8s_object("Deployment", "vigie-worker")["spec"]["template"]["spec"][
        "containers"][0]
    # A TCP probe passes while the event loop hangs: liveness asks /live, which the worker
    # serves on its loop and which fails when the loop or the consumer is stuck.
    live = container["livenessProbe"]
    assert "tcpSocket" not in live
    assert live["httpGet"] == {"path": "/live", "port": "web"}
    assert live["timeoutSeconds"] <= live["periodSeconds"]
    assert '@app.page("/live")' in source_text()
    # The model loads before the web port opens: the startup probe allows minutes for it,
    # and liveness only starts counting once it has passed.
    startup = container["startupProbe"]
    assert startup["httpGet"] == {"path": "/live", "port": "web"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 180
    assert "initialDelaySeconds" not in live


def test_service_monitor_scrapes_the_worker_service_as_the_rules_expect() -> None:
    (monitor,) = optional_objects("monitoring")
    assert monitor["kind"] == "ServiceMonitor"
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service = k8s_object("Service", "vigie-worker")
    for key, value in monitor["spec"]["selector"]["matchLabels"].items():
        assert service["metadata"]["labels"][key] == value
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # The alert rules select job="vigie-worker".
    rules = (DEPLOY / "prometheus" / "rules" / "alerts.yml").read_text()
    (job,) = [r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
    assert f'job="{job}"' in rules


def test_keda_scales_workers_on_lag_never_beyond_the_partitions() -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in optional_objects("keda")}
    scaled = objects[("ScaledObject", "vigie-worker")]["spec"]
    settings = k8s_object("ConfigMap", "vigie-settings")["data"]
    assert scaled["scaleTargetRef"]["name"] == k8s_object(
        "Deployment", "vigie-worker")["metadata"]["name"]
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    assert scaled["maxReplicaCount"] <= int(settings["VIGIE_TOPIC_PARTITIONS"])
    # The validate loop's group on posts.raw, the Faust agents' group on posts.valid.
    groups = {trigger["metadata"]["topic"]: trigger["metadata"]["consumerGroup"]
              for trigger in scaled["triggers"]}
    prefix, app_id = settings["VIGIE_TOPIC_PREFIX"], settings["VIGIE_APP_ID"]
    assert groups == {prefix + "posts.raw": f"{app_id}-validate", prefix + "posts.valid": app_id}
    for trigger in scaled["triggers"]:
        assert trigger["type"] == "kafka"
        meta = trigger["metadata"]
        assert meta["topic"].removeprefix(prefix) in topics_in_records_doc()
        assert meta["bootstrapServers"] == settings["VIGIE_KAFKA_BOOTSTRAP_SERVERS"]
        assert meta["allowIdleConsumers"] == "false"
        # Its credentials resolve to keys that exist.
        auth = objects[("TriggerAuthentication", trigger["authenticationRef"]["name"])]
        secrets = {name: o for (kind, name), o in objects.items() if kind == "Secret"}
        secrets["vigie-secrets"] = k8s_object("Secret", "vigie-secrets")
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in secrets[ref["name"]]["stringData"], ref
