#!/usr/bin/env bash
# Checks the deployment files without a cluster and without network access at check time:
#   - deploy/ renders with kustomize into three workloads, the StatefulSets tim-relay (the
#     relay) and tim-relay-state (the materializer) and the Deployment tim-relay-reconcile (the
#     reconciler), and no Secret; each Service and PodDisruptionBudget selects the pods of one
#     of them; the relay's grace period covers preStop + in-flight + RELAY_SHUTDOWN_DRAIN_SECS +
#     flush, the materializer's its last transaction; the materializer's instance id is its
#     pod's name, and it reads the relay's brokers and event topic; the reconciler runs one
#     replica, recreated (never two sweeping at once), without a volume, takes TIM_SECRET_KEY
#     from its Secret, and uses the relay's app, brokers and topics and the state topic;
#   - the renders of deploy/ and deploy/monitoring/ pass `kubeconform -strict` against
#     Kubernetes' JSON schemas (from the kubernetes-validate Python package) and the small
#     ServiceMonitor/PrometheusRule schemas in deploy/monitoring/schemas/, all local files;
#   - deploy/monitoring/alerts.yaml passes `promtool check rules`, alerts.test.yml passes
#     `promtool test rules`, every alert has severity, summary, description and a runbook
#     that names a heading of docs/monitoring.md, and a test where it fires and one where it
#     does not;
#   - deploy/monitoring/prometheusrule.yaml is alerts.yaml wrapped, byte for byte;
#   - deploy/monitoring/dashboard.json is valid JSON, its panel ids are unique and its panels do
#     not overlap, every variable it uses is defined, and every tim_relay_* metric it or
#     alerts.yaml queries is listed in a metric table of docs/monitoring.md.
#
#   bash scripts/check-deploy.sh           check
#   bash scripts/check-deploy.sh --write   regenerate prometheusrule.yaml from alerts.yaml, then check
#
# Tools are fetched once, pinned, into ${TIM_RELAY_CACHE:-$HOME/.cache/tim-relay}: kustomize
# and kubeconform built with `go install`, promtool taken out of Debian's prometheus package
# (extracted, not installed: installing it would also start a Prometheus server on port 9090,
# the relay's admin port), the schemas in a virtualenv. A warm run takes a few seconds.
# The checks written in Python live beside it, in scripts/check-deploy/ (one file each).
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

# shellcheck source=lib/common.sh
source scripts/lib/common.sh
die() { say "FAIL: $*"; exit 1; }

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
    as_root apt-get update -qq || die "apt-get update failed"
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
  "$PY" scripts/check-deploy/k8s_schemas.py "$K8S_VERSION" "$SCHEMAS" || die "could not prepare the v$K8S_VERSION schemas"
fi

# --- the base layout ---------------------------------------------------------------------------

"$KUSTOMIZE" build deploy >"$WORK/deploy.yaml" 2>"$WORK/kustomize.log" \
  || { cat "$WORK/kustomize.log" >&2; die "kustomize build deploy/ failed"; }
"$PY" scripts/check-deploy/deploy_layout.py "$WORK/deploy.yaml" || die "deploy/ renders something it must not (above)"

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
dashboard=$("$PY" scripts/check-deploy/dashboard.py "$MON/dashboard.json" "$MON/alerts.yaml" docs/monitoring.md) \
  || die "the dashboard or the alerts query what they must not (above)"

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

alerts=$("$PY" scripts/check-deploy/alerts.py "$MON/alerts.yaml" "$MON/alerts.test.yml" docs/monitoring.md) \
  || die "alerts are incomplete (above)"

echo "check-deploy.sh: OK in $((SECONDS - started)) s"
echo "  deploy/: StatefulSets tim-relay and tim-relay-state, Deployment tim-relay-reconcile, no Secret; grace periods cover the drain and the last transaction; one reconciler, recreated"
for line in "${summary[@]}"; do echo "  $line"; done
echo "  promtool check rules: ${rules#SUCCESS: }; promtool test rules: passed"
echo "  $alerts"
echo "  $dashboard"
echo "  prometheusrule.yaml matches alerts.yaml"
