#!/usr/bin/env bash
# Checks the deployment files without a cluster and without network access at check time:
#   - deploy/ renders with kustomize into two workloads, the StatefulSets tim-relay (the relay)
#     and tim-relay-state (the materializer), and no Secret; each Service and
#     PodDisruptionBudget selects the pods of one of them; the relay's grace period covers
#     preStop + in-flight + RELAY_SHUTDOWN_DRAIN_SECS + flush, the materializer's its last
#     transaction; the materializer's instance id is its pod's name, and it reads the relay's
#     brokers and event topic;
#   - the renders of deploy/ and deploy/monitoring/ pass `kubeconform -strict` against
#     Kubernetes' JSON schemas (from the kubernetes-validate Python package) and the small
#     ServiceMonitor/PrometheusRule schemas in deploy/monitoring/schemas/, all local files;
#   - deploy/monitoring/alerts.yaml passes `promtool check rules`, alerts.test.yml passes
#     `promtool test rules`, every alert has severity, summary, description and a runbook
#     that names a heading of docs/monitoring.md, and a test where it fires and one where it
#     does not;
#   - deploy/monitoring/prometheusrule.yaml is alerts.yaml wrapped, byte for byte;
#   - deploy/monitoring/dashboard.json is valid JSON.
#
#   bash scripts/check-deploy.sh           check
#   bash scripts/check-deploy.sh --write   regenerate prometheusrule.yaml from alerts.yaml, then check
#
# Tools are fetched once, pinned, into ${TIM_RELAY_CACHE:-$HOME/.cache/tim-relay}: kustomize
# and kubeconform built with `go install`, promtool taken out of Debian's prometheus package
# (extracted, not installed: installing it would also start a Prometheus server on port 9090,
# the relay's admin port), the schemas in a virtualenv. A warm run takes a few seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

KUSTOMIZE_VERSION=v5.5.0
KUBECONFORM_VERSION=v0.7.0
KUBERNETES_VALIDATE_VERSION=1.37.0
# Kubernetes version whose API schemas the manifests must satisfy.
K8S_VERSION=${K8S_VERSION:-1.32.0}

CACHE=${TIM_RELAY_CACHE:-$HOME/.cache/tim-relay}
BIN=$CACHE/bin
MON=deploy/monitoring

die() { echo "check-deploy.sh: FAIL: $*" >&2; exit 1; }
say() { echo "check-deploy.sh: $*" >&2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$BIN"
started=$SECONDS

# --- tools -----------------------------------------------------------------------------------

# go_tool NAME VERSION PACKAGE: a pinned binary built once into the cache.
go_tool() {
  local name=$1 version=$2 pkg=$3 out=$BIN/$1-$2
  if [[ ! -x $out ]]; then
    command -v go >/dev/null || die "go is needed to build $name $version (go install $pkg@$version)"
    say "building $name $version (once)"
    GOBIN="$WORK/gobin" go install "$pkg@$version" >"$WORK/go.log" 2>&1 \
      || { cat "$WORK/go.log" >&2; die "go install $pkg@$version failed"; }
    mv "$WORK/gobin/$name" "$out"
  fi
  echo "$out"
}
KUSTOMIZE=$(go_tool kustomize "$KUSTOMIZE_VERSION" sigs.k8s.io/kustomize/kustomize/v5)
KUBECONFORM=$(go_tool kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform)

# promtool: the cached one, else one on PATH (a machine without apt-get), else fetched once.
PROMTOOL=$BIN/promtool
if [[ ! -x $PROMTOOL ]] && ! command -v apt-get >/dev/null && command -v promtool >/dev/null; then
  PROMTOOL=$(command -v promtool)
fi
if [[ ! -x $PROMTOOL ]]; then
  say "extracting promtool from Debian's prometheus package (once)"
  command -v apt-get >/dev/null || die "promtool is missing and apt-get is not here to fetch Debian's prometheus package"
  if ! apt-cache show prometheus >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq || die "apt-get update failed"
  fi
  mkdir -p "$WORK/deb" && chmod 777 "$WORK/deb"
  (cd "$WORK/deb" && apt-get download -q prometheus) >"$WORK/apt.log" 2>&1 \
    || { cat "$WORK/apt.log" >&2; die "apt-get download prometheus failed"; }
  dpkg-deb --fsys-tarfile "$WORK"/deb/prometheus_*.deb | tar -x -C "$WORK/deb" ./usr/bin/promtool \
    || die "no usr/bin/promtool in $(ls "$WORK"/deb/*.deb)"
  mv "$WORK/deb/usr/bin/promtool" "$PROMTOOL"
fi
"$PROMTOOL" --version >/dev/null 2>&1 || die "$PROMTOOL does not run"

# Kubernetes JSON schemas from the kubernetes-validate package. Its files refer to their shared
# definitions as "/api/_definitions.json", which kubeconform cannot resolve; the copy in the
# cache refers to the file next to them instead.
VENV=$CACHE/venv-kubernetes-validate-$KUBERNETES_VALIDATE_VERSION
SCHEMAS=$CACHE/k8s-schemas-$KUBERNETES_VALIDATE_VERSION
if [[ ! -x $VENV/bin/python || ! -f $VENV/.done ]]; then
  say "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $VENV (once)"
  command -v python3 >/dev/null || die "python3 is needed for the Kubernetes schemas"
  rm -rf "$VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$VENV/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
    || die "pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION failed"
  touch "$VENV/.done"
fi
PY=$VENV/bin/python
SCHEMA_DIR=$SCHEMAS/v$K8S_VERSION-local-strict
if [[ ! -f $SCHEMA_DIR/.done ]]; then
  "$PY" - "$K8S_VERSION" "$SCHEMAS" <<'EOF' || die "could not prepare the v$K8S_VERSION schemas"
import os, pathlib, shutil, sys, urllib.request
import kubernetes_validate
version, dest = sys.argv[1], pathlib.Path(sys.argv[2])
name = f"v{version}-local-strict"
src = pathlib.Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / name
if not src.is_dir():
    have = sorted(p.name for p in src.parent.iterdir() if p.name.endswith("-local-strict"))
    sys.exit(f"kubernetes-validate has no {name}; it has: {' '.join(have)}")
out = dest / name
shutil.rmtree(out, ignore_errors=True)
out.mkdir(parents=True)
definitions = "file://" + urllib.request.pathname2url(str(out / "_definitions.json"))
for f in src.glob("*.json"):
    text = f.read_text()
    (out / f.name).write_text(text.replace('"/api/_definitions.json#', f'"{definitions}#'))
(out / ".done").touch()
EOF
fi

# --- the base layout ---------------------------------------------------------------------------

"$KUSTOMIZE" build deploy >"$WORK/deploy.yaml" 2>"$WORK/kustomize.log" \
  || { cat "$WORK/kustomize.log" >&2; die "kustomize build deploy/ failed"; }
"$PY" - "$WORK/deploy.yaml" <<'EOF' || die "deploy/ renders something it must not (above)"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = [d["kind"] for d in docs]
problems = []
workload_kinds = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController",
                  "Job", "CronJob", "Pod"}
workloads = sorted(f'{d["kind"]}/{d["metadata"]["name"]}' for d in docs if d["kind"] in workload_kinds)
if workloads != ["StatefulSet/tim-relay", "StatefulSet/tim-relay-state"]:
    problems.append("expected two workloads, the StatefulSets tim-relay (relay) and tim-relay-state "
                    f"(materializer); found {workloads or 'none'}")
if "Secret" in kinds:
    problems.append("a Secret is rendered: the operator creates the Secrets, deploy/ must not")
for k in ("ServiceMonitor", "PrometheusRule"):
    if k in kinds:
        problems.append(f"{k} belongs in deploy/monitoring/, not in the base layout")
configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
statefulsets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "StatefulSet"}

def settings(container):
    """The variables a container gets from its ConfigMaps."""
    out = {}
    for e in container.get("envFrom", []):
        out.update(configmaps.get(e.get("configMapRef", {}).get("name"), {}))
    return out

def template_labels(sts):
    return sts["spec"]["template"]["metadata"].get("labels", {})

# Every Service and PodDisruptionBudget selects the pods of exactly one StatefulSet: the relay's
# Services must never send callbacks (or scrapes under job tim-relay) to the materializer.
for d in docs:
    if d["kind"] == "Service":
        selector = d["spec"].get("selector", {})
    elif d["kind"] == "PodDisruptionBudget":
        selector = d["spec"].get("selector", {}).get("matchLabels", {})
    else:
        continue
    hits = [n for n, sts in statefulsets.items()
            if selector and all(template_labels(sts).get(k) == v for k, v in selector.items())]
    if len(hits) != 1:
        problems.append(f'{d["kind"]} {d["metadata"]["name"]} selects the pods of {hits or "no StatefulSet"}, '
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
for p in problems:
    print("check-deploy.sh:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
EOF

# --- the monitoring layout ---------------------------------------------------------------------

wrap_rules() {
  echo "# Generated from alerts.yaml by \`bash scripts/check-deploy.sh --write\`: edit alerts.yaml, not this file."
  printf 'apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: tim-relay\n'
  printf '  labels:\n    app.kubernetes.io/name: tim-relay\nspec:\n'
  sed -e '/^#/d' -e 's/^\(.\)/  \1/' "$MON/alerts.yaml"
}
if [[ ${1:-} == --write ]]; then
  wrap_rules >"$MON/prometheusrule.yaml"
  say "wrote $MON/prometheusrule.yaml"
elif [[ $# -gt 0 ]]; then
  die "unknown argument $1 (the only one is --write)"
fi
wrap_rules | diff -u "$MON/prometheusrule.yaml" - >&2 \
  || die "$MON/prometheusrule.yaml differs from alerts.yaml: run bash scripts/check-deploy.sh --write"

"$KUSTOMIZE" build "$MON" >"$WORK/monitoring.yaml" 2>"$WORK/kustomize.log" \
  || { cat "$WORK/kustomize.log" >&2; die "kustomize build $MON/ failed"; }

python3 -m json.tool "$MON/dashboard.json" >/dev/null || die "$MON/dashboard.json is not valid JSON"

# --- schemas: local files only, so nothing here reaches the network ----------------------------

validate() {
  "$KUBECONFORM" -strict -summary -kubernetes-version "$K8S_VERSION" \
    -schema-location "$SCHEMAS/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    -schema-location "$PWD/$MON/schemas/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" \
    "$1" >"$WORK/kubeconform.log" 2>&1 || { cat "$WORK/kubeconform.log" >&2; die "$2 does not validate"; }
  grep -q 'Invalid: 0, Errors: 0, Skipped: 0' "$WORK/kubeconform.log" \
    || { cat "$WORK/kubeconform.log" >&2; die "$2: kubeconform reported problems or skipped resources"; }
  sed -n "s|^Summary: |kubeconform $2: |p" "$WORK/kubeconform.log"
}
summary=()
summary+=("$(validate "$WORK/deploy.yaml" deploy/)")
summary+=("$(validate "$WORK/monitoring.yaml" "$MON/")")

# --- rules ---------------------------------------------------------------------------------------

"$PROMTOOL" check rules "$MON/alerts.yaml" >"$WORK/promtool.log" 2>&1 \
  || { cat "$WORK/promtool.log" >&2; die "promtool check rules $MON/alerts.yaml"; }
rules=$(grep -o 'SUCCESS: [0-9]* rules found' "$WORK/promtool.log")
(cd "$MON" && "$PROMTOOL" test rules alerts.test.yml) >"$WORK/promtool.log" 2>&1 \
  || { cat "$WORK/promtool.log" >&2; die "promtool test rules $MON/alerts.test.yml"; }

alerts=$("$PY" - "$MON/alerts.yaml" "$MON/alerts.test.yml" docs/monitoring.md <<'EOF'

import re, sys, yaml
rules_file, tests_file, doc = sys.argv[1:]
alerts = [r for g in yaml.safe_load(open(rules_file))["groups"] for r in g["rules"] if "alert" in r]
def anchor(heading):
    # GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens.
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
anchors = {anchor(m) for m in re.findall(r"^#+ (.+)$", open(doc).read(), re.M)}
fires, quiet = set(), set()
for t in yaml.safe_load(open(tests_file))["tests"]:
    for c in t.get("alert_rule_test", []):
        (fires if c.get("exp_alerts") else quiet).add(c["alertname"])
problems = []
for a in alerts:
    name, ann = a["alert"], a.get("annotations", {})
    if a.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
        problems.append(f"{name}: no severity label (critical, warning or info)")
    for key in ("summary", "description", "runbook"):
        if not ann.get(key):
            problems.append(f"{name}: no {key} annotation")
    runbook = ann.get("runbook", "")
    if not runbook.startswith("docs/monitoring.md#") or runbook.split("#", 1)[1] not in anchors:
        problems.append(f"{name}: runbook {runbook!r} is not a heading of {doc}")
    if name not in fires:
        problems.append(f"{name}: no test where it fires in {tests_file}")
    if name not in quiet:
        problems.append(f"{name}: no test where it stays quiet in {tests_file}")
for p in problems:
    print("check-deploy.sh:", p, file=sys.stderr)
if problems:
    sys.exit(1)
print(f"{len(alerts)} alerts, each with severity, summary, description, runbook, and a test where it fires and one where it does not")
EOF
) || die "alerts are incomplete (above)"

echo "check-deploy.sh: OK in $((SECONDS - started)) s"
echo "  deploy/: StatefulSets tim-relay and tim-relay-state, no Secret; grace periods cover the drain and the last transaction"
for line in "${summary[@]}"; do echo "  $line"; done
echo "  promtool check rules: ${rules#SUCCESS: }; promtool test rules: passed"
echo "  $alerts"
echo "  dashboard.json: valid JSON; prometheusrule.yaml matches alerts.yaml"
