#!/usr/bin/env bash
# Renders k8s/base and every kustomize overlay under k8s/overlays with
# `kubectl kustomize`, plus prod with the cert-manager component, and
# validates each rendered object (scripts/validate-k8s.mjs: Kubernetes
# schemas from kubernetes-models, KEDA, Prometheus Operator and cert-manager
# CRD schemas, cross-references, grace period vs drain timeout, security flags
# and the Secrets behind them); then the shipped example tokens file.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v kubectl >/dev/null || { echo "validate-k8s: kubectl not found" >&2; exit 1; }
for pkg in kubernetes-models @kubernetes-models/cert-manager; do
  [[ -d .tools/node_modules/$pkg ]] ||
    { echo "validate-k8s: $pkg missing: run scripts/install-deps.sh --test first" >&2; exit 1; }
done
overlays=(k8s/overlays/*/)
((${#overlays[@]})) || { echo "validate-k8s: no overlays" >&2; exit 1; }
for dir in k8s/base/ "${overlays[@]}"; do
  name=$(basename "$dir")
  rendered=$(kubectl kustomize "$dir")
  node scripts/validate-k8s.mjs "$name" <<<"$rendered"
done

# The optional components that no overlay includes, rendered onto prod the way
# docs/deploy.md tells an operator to (an overlay of prod plus the component).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
k8s=$(realpath --relative-to="$tmp" k8s)  # kustomize refuses absolute paths
for component in cert-manager; do
  cat >"$tmp/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: tessera
resources: [$k8s/overlays/prod]
components: [$k8s/components/$component]
YAML
  rendered=$(kubectl kustomize "$tmp")
  node scripts/validate-k8s.mjs "prod+$component" <<<"$rendered"
done

node scripts/validate-k8s.mjs --tokens-example k8s/overlays/prod/tokens.example.json
