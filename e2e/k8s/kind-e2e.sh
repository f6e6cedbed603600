#!/usr/bin/env bash
# Three Meridian regions on kind (for `make e2e-kind`; needs Docker, kind, kubectl and helm on PATH):
#   1. builds the image meridian:dev and the TypeScript (for the pub/sub check),
#   2. per region (us-east, us-west, emea): creates the kind cluster from kind-config/<region>.yaml, loads the
#      image, installs the operator chart, applies e2e/manifests/<region>.yaml, waits for the RegionalCluster,
#   3. publishes in us-east and expects the message at a subscriber in emea (host ports 1883 → 3883).
# Re-running reuses existing clusters. MERIDIAN_KIND_KEEP=0 deletes the clusters at the end.
# Written from kind's documentation; Docker cannot run on the machines this repository is developed on.
set -euo pipefail

REGIONS=(us-east us-west emea)
IMAGE="meridian:dev"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WAIT="${MERIDIAN_KIND_WAIT:-600s}"

log() { echo "[e2e-kind] $*" >&2; }

for tool in docker kind kubectl helm node; do
  command -v "$tool" >/dev/null || { log "missing $tool on PATH"; exit 1; }
done

cleanup() {
  if [ "${MERIDIAN_KIND_KEEP:-1}" = "0" ]; then
    for region in "${REGIONS[@]}"; do kind delete cluster --name "meridian-$region" || true; done
  fi
}
trap cleanup EXIT

cd "$ROOT"
log "building $IMAGE"
docker build -t "$IMAGE" .
npx tsc -p tsconfig.json

for region in "${REGIONS[@]}"; do
  cluster="meridian-$region"
  context="kind-$cluster"
  if ! kind get clusters | grep -qx "$cluster"; then
    log "creating kind cluster $cluster"
    kind create cluster --config "kind-config/$region.yaml" --wait 120s
  fi
  kind load docker-image "$IMAGE" --name "$cluster"
  log "installing the operator in $cluster"
  helm upgrade --install meridian-operator charts/meridian-operator --kube-context "$context" \
    --namespace meridian-system --create-namespace \
    --set image.repository=meridian --set image.tag=dev --set image.pullPolicy=Never \
    --set watchNamespaces='{meridian}' --wait --timeout 5m
  kubectl --context "$context" apply -f "e2e/manifests/$region.yaml"
done

for region in "${REGIONS[@]}"; do
  log "waiting for RegionalCluster $region"
  kubectl --context "kind-meridian-$region" -n meridian wait --for=condition=Ready "regionalcluster/$region" --timeout="$WAIT"
  kubectl --context "kind-meridian-$region" -n meridian get regionalclusters,clusterlinks
done

log "cross-region publish (us-east) → subscribe (emea)"
node dist/e2e/k8s/kind-pubsub-check.js --from 1883 --to 3883 --timeout 180
log "cross-region publish (emea) → subscribe (us-west)"
node dist/e2e/k8s/kind-pubsub-check.js --from 3883 --to 2883 --timeout 180
log "passed"
