#!/usr/bin/env bash
# Renders every kustomize overlay under k8s/overlays with `kubectl kustomize`
# and validates each rendered object (scripts/validate-k8s.mjs: Kubernetes
# schemas from kubernetes-models, KEDA and Prometheus Operator CRD schemas,
# cross-references, grace period vs drain timeout).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v kubectl >/dev/null || { echo "validate-k8s: kubectl not found" >&2; exit 1; }
[[ -d .tools/node_modules/kubernetes-models ]] ||
  { echo "validate-k8s: run scripts/install-deps.sh --test first" >&2; exit 1; }
overlays=(k8s/overlays/*/)
((${#overlays[@]})) || { echo "validate-k8s: no overlays" >&2; exit 1; }
for dir in k8s/base/ "${overlays[@]}"; do
  name=$(basename "$dir")
  rendered=$(kubectl kustomize "$dir")
  node scripts/validate-k8s.mjs "$name" <<<"$rendered"
done
