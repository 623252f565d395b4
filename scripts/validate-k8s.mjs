// Validates rendered Kubernetes manifests (a multi-document YAML stream on
// stdin or in the files given) against the Kubernetes OpenAPI schemas with the
// `kubernetes-models` npm package, and the KEDA and Prometheus Operator CRDs
// (ScaledObject, ServiceMonitor) against schemas generated from their published
// CRDs (@kubernetes-models/keda, @kubernetes-models/prometheus-operator).
// Then checks what schemas cannot: references between objects, and that the
// executor's grace period covers its preStop plus --drain-timeout.
// Usage: node scripts/validate-k8s.mjs NAME < rendered.yaml
// The packages come from .tools/ (scripts/install-deps.sh --test).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(path.join(root, ".tools", "package.json"));
const YAML = require("yaml");

const label = process.argv[2] ?? "stdin";
const docs = YAML.parseAllDocuments(readFileSync(0, "utf8"))
  .map((d) => {
    if (d.errors.length) throw new Error(`${label}: YAML: ${d.errors[0].message}`);
    return d.toJS();
  })
  .filter((o) => o != null);

const crdPackages = {
  "keda.sh": "@kubernetes-models/keda",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

async function modelFor(apiVersion, kind) {
  const slash = apiVersion.indexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
  try {
    if (crdPackages[group]) {
      // ESM-only packages: import the version's index by path.
      const dir = path.join(root, ".tools", "node_modules", crdPackages[group]);
      return (await import(pathToFileURL(path.join(dir, group, version, "index.js"))))[kind];
    }
    return require(`kubernetes-models/${group ? group + "/" : ""}${version}/${kind}`)[kind];
  } catch (e) {
    return null;
  }
}

const errors = [];
const err = (obj, msg) =>
  errors.push(`${obj?.kind ?? "?"}/${obj?.metadata?.name ?? "?"}: ${msg}`);

// 1. Schemas.
for (const obj of docs) {
  if (!obj.apiVersion || !obj.kind) {
    err(obj, "missing apiVersion or kind");
    continue;
  }
  const Model = await modelFor(obj.apiVersion, obj.kind);
  if (!Model) {
    err(obj, `no schema known for ${obj.apiVersion} ${obj.kind}`);
    continue;
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    err(obj, `schema: ${e.message}`);
  }
}

// 2. References and invariants the schemas cannot see.
const byKind = (k) => docs.filter((o) => o.kind === k);
const matches = (selector, labels) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
const workloads = [...byKind("Deployment"), ...byKind("StatefulSet")];
const podLabels = workloads.map((w) => w.spec.template.metadata.labels);
const namespaces = new Set(docs.map((o) => o.metadata?.namespace).filter(Boolean));
if (namespaces.size > 1) errors.push(`objects span namespaces ${[...namespaces]}`);

for (const w of workloads) {
  if (!matches(w.spec.selector.matchLabels, w.spec.template.metadata.labels)) {
    err(w, "selector does not match the pod template's labels");
  }
  for (const c of w.spec.template.spec.containers) {
    const ports = new Set((c.ports ?? []).map((p) => p.name));
    for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"]) {
      const p = c[probe];
      const port = p?.httpGet?.port ?? p?.tcpSocket?.port;
      if (typeof port === "string" && !ports.has(port)) {
        err(w, `${c.name}.${probe} names port ${port}, which the container lacks`);
      }
    }
  }
}
if (workloads.length === 0) errors.push("no Deployment or StatefulSet rendered");
for (const s of byKind("Service")) {
  if (!podLabels.some((l) => matches(s.spec.selector, l))) {
    err(s, "selects no pod of any workload");
  }
}
for (const s of byKind("StatefulSet")) {
  if (!byKind("Service").some((svc) => svc.metadata.name === s.spec.serviceName)) {
    err(s, `serviceName ${s.spec.serviceName} is not a rendered Service`);
  }
}
for (const o of [...byKind("HorizontalPodAutoscaler"), ...byKind("ScaledObject")]) {
  const t = o.spec.scaleTargetRef;
  if (!workloads.some((w) => w.kind === (t.kind ?? "Deployment") && w.metadata.name === t.name)) {
    err(o, `scales ${t.kind ?? "Deployment"}/${t.name}, which is not rendered`);
  }
}
for (const o of [...byKind("PodDisruptionBudget"), ...byKind("NetworkPolicy")]) {
  const sel = o.kind === "PodDisruptionBudget" ? o.spec.selector : o.spec.podSelector;
  if (!podLabels.some((l) => matches(sel.matchLabels, l))) {
    err(o, "selects no pod of any workload");
  }
}
if (byKind("HorizontalPodAutoscaler").length + byKind("ScaledObject").length > 1) {
  errors.push("more than one autoscaler for the executors (HPA and ScaledObject fight)");
}
for (const sm of byKind("ServiceMonitor")) {
  const targets = byKind("Service").filter((s) => matches(sm.spec.selector.matchLabels, s.metadata.labels));
  for (const ep of sm.spec.endpoints) {
    if (!targets.some((s) => s.spec.ports.some((p) => p.name === ep.port))) {
      err(sm, `no selected Service has a port named ${ep.port}`);
    }
  }
}

// The executor's grace period must cover preStop + the drain.
const seconds = (d) => {
  const m = /^(\d+)(ms|s|m)$/.exec(d);
  if (!m) return NaN;
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60 }[m[2]];
};
for (const w of workloads.filter((w) => w.metadata.name === "tessera-executor")) {
  const c = w.spec.template.spec.containers.find((c) => c.name === "executor");
  const flag = (c.args ?? []).find((a) => a.startsWith("--drain-timeout="));
  const drain = flag ? seconds(flag.split("=")[1]) : 30;  // the binary's default
  const cmd = c.lifecycle?.preStop?.exec?.command ?? [];
  const preStop = /sleep$/.test(cmd[0] ?? "") ? Number(cmd[1]) : 0;
  const grace = w.spec.template.spec.terminationGracePeriodSeconds ?? 30;
  if (!(grace >= preStop + drain + 5)) {
    err(w, `terminationGracePeriodSeconds ${grace} < preStop ${preStop}s + drain ${drain}s + 5s`);
  }
  const probes = [c.readinessProbe, c.livenessProbe].filter(Boolean);
  if (probes.some((p) => p.grpc)) err(w, "the executor serves no gRPC health: no grpc probe");
}

const kinds = docs.map((o) => o.kind).sort().join(", ");
if (errors.length) {
  console.error(`validate-k8s: ${label}: ${errors.length} problem(s):`);
  for (const e of errors) console.error(`  ${e}`);
  process.exit(1);
}
console.log(`validate-k8s: ${label}: ${docs.length} objects valid (${kinds})`);
