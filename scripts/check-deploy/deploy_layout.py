"""Checks what `kustomize build deploy` renders (the file named by argv[1]): two StatefulSets, one
Deployment and no Secret, selectors, grace periods, the materializer's instance id, the
reconciler's single replica, its secret key and probes, brokers and topics. Run by
scripts/check-deploy.sh; prints each problem and exits 1 if there is any."""

import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = [d["kind"] for d in docs]
problems = []
workload_kinds = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController",
                  "Job", "CronJob", "Pod"}
workloads = sorted(f'{d["kind"]}/{d["metadata"]["name"]}' for d in docs if d["kind"] in workload_kinds)
if workloads != ["Deployment/tim-relay-reconcile", "StatefulSet/tim-relay", "StatefulSet/tim-relay-state"]:
    problems.append("expected three workloads, the StatefulSets tim-relay (relay) and tim-relay-state "
                    f"(materializer) and the Deployment tim-relay-reconcile (reconciler); found {workloads or 'none'}")
if "Secret" in kinds:
    problems.append("a Secret is rendered: the operator creates the Secrets, deploy/ must not")
for k in ("ServiceMonitor", "PrometheusRule"):
    if k in kinds:
        problems.append(f"{k} belongs in deploy/monitoring/, not in the base layout")
configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
statefulsets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "StatefulSet"}
deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
pod_owners = {**statefulsets, **deployments}

def settings(container):
    """The variables a container gets from its ConfigMaps."""
    out = {}
    for e in container.get("envFrom", []):
        out.update(configmaps.get(e.get("configMapRef", {}).get("name"), {}))
    return out

def template_labels(sts):
    return sts["spec"]["template"]["metadata"].get("labels", {})

# Every Service and PodDisruptionBudget selects the pods of exactly one workload: the relay's
# Services must never send callbacks (or scrapes under job tim-relay) to the materializer or
# the reconciler.
for d in docs:
    if d["kind"] == "Service":
        selector = d["spec"].get("selector", {})
    elif d["kind"] == "PodDisruptionBudget":
        selector = d["spec"].get("selector", {}).get("matchLabels", {})
    else:
        continue
    hits = [n for n, w in pod_owners.items()
            if selector and all(template_labels(w).get(k) == v for k, v in selector.items())]
    if len(hits) != 1:
        problems.append(f'{d["kind"]} {d["metadata"]["name"]} selects the pods of {hits or "no workload"}, '
                        "not of exactly one")
for name, sts in statefulsets.items():
    if not any(d["kind"] == "PodDisruptionBudget" and d["spec"].get("selector", {}).get("matchLabels", {})
               == sts["spec"]["selector"]["matchLabels"] for d in docs):
        problems.append(f"StatefulSet {name} has no PodDisruptionBudget with its selector")

sts = statefulsets.get("tim-relay")
if sts:
    spec, pod = sts["spec"], sts["spec"]["template"]["spec"]
    if spec.get("persistentVolumeClaimRetentionPolicy") != {"whenScaled": "Retain", "whenDeleted": "Retain"}:
        problems.append("the StatefulSet tim-relay must retain its claims when scaled down and when deleted")
    [container] = pod["containers"]
    relay = settings(container)
    drain = int(relay.get("RELAY_SHUTDOWN_DRAIN_SECS", 20))
    prestop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pause = int(prestop[1]) if prestop[:1] == ["sleep"] else 0
    need = pause + 3 + drain + 5
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace <= need:
        problems.append(f"terminationGracePeriodSeconds {grace} does not cover preStop {pause} + "
                        f"in-flight 3 + RELAY_SHUTDOWN_DRAIN_SECS {drain} + flush 5 = {need} s")
    refs = [e for e in container.get("envFrom", []) if "secretRef" in e]
    if not refs or any(r["secretRef"].get("optional") is not False for r in refs):
        problems.append("the Secret tim-relay must be referenced with optional: false")

sts = statefulsets.get("tim-relay-state")
if sts:
    spec, pod = sts["spec"], sts["spec"]["template"]["spec"]
    [container] = pod["containers"]
    if container.get("args") != ["materialize"]:
        problems.append(f'tim-relay-state must run `tim-relay materialize`; its args are {container.get("args")}')
    if spec.get("volumeClaimTemplates") or pod.get("volumes"):
        problems.append("tim-relay-state needs no volume: its state is rebuilt from the state topic")
    state = settings(container)
    # One id for two pods: they would fence each other's transactions and share one static
    # membership. Only the pod's own name is unique and stable.
    if "RELAY_STATE_INSTANCE_ID" in state or "HOSTNAME" in state:
        problems.append("RELAY_STATE_INSTANCE_ID or HOSTNAME is set in a ConfigMap: every pod would get the same id")
    ids = [e for e in container.get("env", []) if e["name"] == "RELAY_STATE_INSTANCE_ID"]
    if [e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in ids] != ["metadata.name"]:
        problems.append("tim-relay-state must set RELAY_STATE_INSTANCE_ID from the pod's name (fieldRef metadata.name)")
    # It folds what the relay writes: the same brokers and event topic (the binaries' defaults
    # when unset).
    if "tim-relay" in statefulsets:
        [relay_container] = statefulsets["tim-relay"]["spec"]["template"]["spec"]["containers"]
        relay = settings(relay_container)
        for var, default in (("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"), ("KAFKA_TOPIC", "tim.group-changes")):
            if relay.get(var, default) != state.get(var, default):
                problems.append(f"{var} differs between the relay ({relay.get(var, default)!r}) and the "
                                f"materializer ({state.get(var, default)!r}): relay.env and state.env")
    # SIGTERM: the batch being gathered (RELAY_STATE_BATCH_MS), its commit, which the broker
    # aborts after transaction.timeout.ms (10 s), and 5 s to leave and exit.
    batch = int(state.get("RELAY_STATE_BATCH_MS", 50)) / 1000
    need = batch + 10 + 5
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace <= need:
        problems.append(f"tim-relay-state: terminationGracePeriodSeconds {grace} does not cover "
                        f"RELAY_STATE_BATCH_MS {batch:g} s + transaction 10 s + exit 5 s = {need:g} s")
    if any(e.get("secretRef", {}).get("name") == "tim-relay" for e in container.get("envFrom", [])):
        problems.append("tim-relay-state must not read the Secret tim-relay (it holds the callback token)")
dep = deployments.get("tim-relay-reconcile")
if dep:
    spec, pod = dep["spec"], dep["spec"]["template"]["spec"]
    [container] = pod["containers"]
    name = "tim-relay-reconcile"
    if container.get("args") != ["reconcile"]:
        problems.append(f'{name} must run `tim-relay reconcile`; its args are {container.get("args")}')
    # Two reconcilers would sweep at once: the app's REST quota spent twice, every snapshot
    # published twice. A rolling update starts the new pod before it stops the old one.
    if spec.get("replicas") != 1:
        problems.append(f'{name} must have replicas: 1; it has {spec.get("replicas")}')
    if spec.get("strategy", {}).get("type") != "Recreate":
        problems.append(f"{name} must use strategy Recreate, so that two never sweep at once")
    if pod.get("volumes") or container.get("volumeMounts"):
        problems.append(f"{name} needs no volume: it keeps no state between sweeps")
    reconcile = settings(container)
    if any("TIM_SECRET_KEY" in data for data in configmaps.values()):
        problems.append("TIM_SECRET_KEY is set in a ConfigMap: it belongs in the Secret tim-relay-reconcile")
    keys = [e.get("valueFrom", {}).get("secretKeyRef", {}) for e in container.get("env", [])
            if e["name"] == "TIM_SECRET_KEY"]
    if keys != [{"name": "tim-relay-reconcile", "key": "TIM_SECRET_KEY"}]:
        problems.append(f"{name} must take TIM_SECRET_KEY from the Secret tim-relay-reconcile (secretKeyRef)")
    if any(e.get("secretRef", {}).get("name") == "tim-relay" for e in container.get("envFrom", [])):
        problems.append(f"{name} must not read the Secret tim-relay (it holds the callback token)")
    for var in ("TIM_SDK_APP_ID", "TIM_ADMIN_IDENTIFIER", "TIM_REST_BASE_URL", "RECONCILE_MAX_QPS",
                "RECONCILE_INTERVAL_SECS"):
        if var not in reconcile:
            problems.append(f"{var} is not set in reconcile.env")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        if container.get(probe, {}).get("httpGet", {}).get("path") != path:
            problems.append(f"{name}: its {probe} must get {path}")
    # It compares the state the materializer writes and publishes where the relay publishes,
    # for the relay's app (the binaries' defaults when unset).
    peers = []
    if "tim-relay" in statefulsets:
        [c] = statefulsets["tim-relay"]["spec"]["template"]["spec"]["containers"]
        peers.append(("the relay", "relay.env", settings(c),
                      ("TIM_SDK_APP_ID", "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_TOPIC")))
    if "tim-relay-state" in statefulsets:
        [c] = statefulsets["tim-relay-state"]["spec"]["template"]["spec"]["containers"]
        peers.append(("the materializer", "state.env", settings(c),
                      ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_TOPIC", "KAFKA_STATE_TOPIC")))
    defaults = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092", "KAFKA_TOPIC": "tim.group-changes",
                "KAFKA_STATE_TOPIC": "tim.group-state", "TIM_SDK_APP_ID": None}
    for who, env_file, other, variables in peers:
        for var in variables:
            mine, theirs = reconcile.get(var, defaults[var]), other.get(var, defaults[var])
            if mine != theirs:
                problems.append(f"{var} differs between {who} ({theirs!r}) and the reconciler ({mine!r}): "
                                f"{env_file} and reconcile.env")

for p in problems:
    print("check-deploy.sh:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
