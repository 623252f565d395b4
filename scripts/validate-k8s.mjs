// Validates rendered Kubernetes manifests (a multi-document YAML stream on
// stdin or in the files given) against the Kubernetes OpenAPI schemas with the
// `kubernetes-models` npm package, and the KEDA, Prometheus Operator and
// cert-manager CRDs (ScaledObject, ServiceMonitor, Certificate) against
// schemas generated from their published CRDs (@kubernetes-models/keda,
// @kubernetes-models/prometheus-operator, @kubernetes-models/cert-manager).
// Then checks what schemas cannot: references between objects, that the
// executor's grace period covers its preStop plus --drain-timeout, and the
// security flags and the Secrets behind them ("3. Security" below). Render
// names carry expectations: `base` never says --insecure (each overlay
// decides), `dev*` says --insecure, `prod*` serves TLS with tokens.
// Usage: node scripts/validate-k8s.mjs NAME < rendered.yaml
//        node scripts/validate-k8s.mjs --tokens-example FILE
// The packages come from .tools/ (scripts/install-deps.sh --test).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(path.join(root, ".tools", "package.json"));
const YAML = require("yaml");

if (process.argv[2] === "--tokens-example") {
  checkTokensExample(process.argv[3]);
  process.exit(0);
}

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
  "cert-manager.io": "@kubernetes-models/cert-manager",
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
for (const o of docs.filter((o) => o.kind !== "Namespace" && !o.metadata?.namespace)) {
  err(o, "has no namespace (kubectl would put it in the context's default namespace)");
}

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

// 3. Security (docs/security.md): the scheduler starts (a non-loopback
// --listen needs TLS, tokens or --insecure), each credentials file is a key
// of a Secret mounted whole (the kubelet swaps a Secret's files in place when
// it changes, never those of a subPath mount, and the services re-read
// them), keys and tokens are not world-readable yet readable by the pod's
// user, executors speak what the scheduler serves and can prove who they
// are, and certificates name what is dialled.
const flagValue = (c, name) => {  // the last --name=VALUE (dashes or underscores)
  let value;
  for (const a of c.args ?? []) {
    const m = /^--?([A-Za-z0-9_-]+)(?:=([\s\S]*))?$/.exec(a);
    if (m && m[1].replaceAll("_", "-") === name) value = m[2] ?? "";
  }
  return value;
};
const has = (c, name) => flagValue(c, name) !== undefined;
const boolFlag = (c, name) => has(c, name) && !["false", "0"].includes(flagValue(c, name));
const hostOf = (address) => {
  const m = /^\[([^\]]*)\]/.exec(address);
  if (m) return m[1];
  const colon = address.lastIndexOf(":");
  return colon < 0 ? address : address.slice(0, colon);
};
const isLoopback = (address) =>
  /^unix(-abstract)?:/.test(address) ||
  ["localhost", "::1"].includes(hostOf(address).toLowerCase()) ||
  /^127\./.test(hostOf(address));
const containerIn = (kind, name, container) => {
  const w = docs.find((o) => o.kind === kind && o.metadata?.name === name);
  const c = w?.spec.template.spec.containers.find((x) => x.name === container);
  return c ? { w, c } : null;
};

const secretFiles = [];  // {w, c, flag, secretName, key}
const secretKeysMade = new Map();  // Secret name -> Set of keys, or null: any
for (const s of byKind("Secret")) {
  secretKeysMade.set(s.metadata.name, new Set([...Object.keys(s.data ?? {}), ...Object.keys(s.stringData ?? {})]));
}
for (const cert of byKind("Certificate")) {
  // cert-manager writes ca.crt only when the issuer knows its CA (CA, Vault).
  secretKeysMade.set(cert.spec.secretName, new Set(["tls.crt", "tls.key", "ca.crt"]));
}
const secretKeysExpected = new Map();  // Secrets this render only mounts
const privateFlags = new Set(["tls-key", "auth-tokens-file", "auth-token-file"]);

function checkFileFlag({ w, c }, flag) {
  if (!has(c, flag)) return;
  const file = flagValue(c, flag);
  const where = `${c.name} --${flag}=${file}`;
  if (!file.startsWith("/")) return err(w, `${where}: give an absolute path in a Secret volume`);
  const mount = (c.volumeMounts ?? []).find((m) => file.startsWith(m.mountPath.replace(/\/?$/, "/")));
  if (!mount) return err(w, `${where}: no volumeMount holds it`);
  if (mount.subPath || mount.subPathExpr) {
    return err(w, `${where}: ${mount.mountPath} is a subPath mount, which the kubelet never updates: rotation would need a restart`);
  }
  const volume = (w.spec.template.spec.volumes ?? []).find((v) => v.name === mount.name);
  if (!volume?.secret) return err(w, `${where}: volume ${mount.name} is not a Secret`);
  const inMount = file.slice(mount.mountPath.replace(/\/?$/, "/").length);
  const item = volume.secret.items?.find((i) => i.path === inMount);
  if (volume.secret.items && !item) return err(w, `${where}: Secret volume ${mount.name} has no item at ${inMount}`);
  const key = item?.key ?? inMount;
  const secretName = volume.secret.secretName;
  secretFiles.push({ w, c, flag, secretName, key });
  const made = secretKeysMade.get(secretName);
  if (made && !made.has(key)) err(w, `${where}: Secret ${secretName} has no key ${key} (it has ${[...made]})`);
  if (!made) {
    if (!secretKeysExpected.has(secretName)) secretKeysExpected.set(secretName, new Set());
    secretKeysExpected.get(secretName).add(key);
  }
  const mode = item?.mode ?? volume.secret.defaultMode ?? 0o644;
  if (privateFlags.has(flag) && mode & 0o007) {
    err(w, `${where}: mode ${mode.toString(8)} lets any user read it; use defaultMode 0440 with the pod's fsGroup`);
  }
  const fsGroup = w.spec.template.spec.securityContext?.fsGroup;
  if (!(mode & 0o004) && (!(mode & 0o040) || fsGroup === undefined)) {
    err(w, `${where}: mode ${mode.toString(8)} without group read and a pod fsGroup: the container's user cannot read it`);
  }
}

// The scheduler: a StatefulSet on SQLite, or (overlays/ha) a Deployment of
// replicas on PostgreSQL.
const sched =
  containerIn("StatefulSet", "tessera-scheduler", "scheduler") ??
  containerIn("Deployment", "tessera-scheduler", "scheduler");
const exec = containerIn("Deployment", "tessera-executor", "executor");
let served = null;  // what the scheduler's gRPC port asks for
if (sched) {
  const { w, c } = sched;
  for (const f of ["tls-cert", "tls-key", "tls-client-ca", "auth-tokens-file"]) checkFileFlag(sched, f);
  served = {
    tls: has(c, "tls-cert"),
    clientCa: has(c, "tls-client-ca"),
    tokens: has(c, "auth-tokens-file"),
  };
  const insecure = boolFlag(c, "insecure");
  const listen = flagValue(c, "listen") ?? "0.0.0.0:50051";
  if (has(c, "tls-cert") !== has(c, "tls-key")) err(w, "--tls-cert and --tls-key go together (else it exits 1)");
  if (served.clientCa && !served.tls) err(w, "--tls-client-ca needs --tls-cert and --tls-key (else it exits 1)");
  if (label === "base") {
    if (insecure) err(w, "base says --insecure: that is each overlay's choice");
  } else if (!isLoopback(listen) && !served.tls && !served.tokens && !insecure) {
    err(w, `--listen=${listen} with neither TLS nor tokens nor --insecure: the scheduler exits 1 at start`);
  }
  if (/^dev/.test(label) && !insecure) err(w, "dev serves without credentials and must say --insecure");
  if (/^prod/.test(label)) {
    if (!served.tls || !served.tokens) err(w, "prod serves TLS (--tls-cert, --tls-key) with tokens (--auth-tokens-file)");
    if (insecure) err(w, "prod must not say --insecure");
  }
  checkFileFlag(sched, "postgres-password-file");
  if (/postgres(ql)?:\/\/[^/@]*:[^/@]*@/.test(flagValue(c, "postgres-url") ?? "") ||
      /password=/.test(flagValue(c, "postgres-url") ?? "")) {
    err(w, "--postgres-url holds a password: it would be on the command line; use --postgres-password-file");
  }
  if (w.kind === "Deployment") {
    // Replicas elect a leader: only on PostgreSQL, with the follower out of
    // the Service (readiness on gRPC health), never both on one node or
    // disrupted at once.
    if (flagValue(c, "store") !== "postgres") err(w, "scheduler replicas need --store=postgres");
    if ((w.spec.replicas ?? 1) < 2) err(w, "an HA scheduler Deployment runs at least 2 replicas");
    if (!c.readinessProbe?.grpc) err(w, "readiness must be gRPC health: it routes the Service to the leader");
    if (c.livenessProbe?.grpc) err(w, "liveness on gRPC health would restart every follower (NOT_SERVING)");
    if (!w.spec.template.spec.affinity?.podAntiAffinity) err(w, "replicas need pod anti-affinity");
    if (!byKind("PodDisruptionBudget").some((p) => matches(p.spec.selector.matchLabels, w.spec.template.metadata.labels))) {
      err(w, "replicas need a PodDisruptionBudget");
    }
  }
  for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"]) {
    if (served.tls && c[probe]?.grpc) {
      err(w, `${probe} is a gRPC probe, but the port serves TLS and the kubelet's gRPC probe speaks plaintext`);
    }
  }
}
if (exec && served) {
  const { w, c } = exec;
  for (const f of ["tls-ca", "tls-cert", "tls-key", "auth-token-file"]) checkFileFlag(exec, f);
  const cert = has(c, "tls-cert");
  const token = has(c, "auth-token-file");
  if (cert !== has(c, "tls-key")) err(w, "--tls-cert and --tls-key go together");
  if (served.tls && !has(c, "tls-ca")) err(w, "the scheduler serves TLS: the executor needs --tls-ca");
  if (!served.tls && has(c, "tls-ca")) err(w, "--tls-ca, but the scheduler serves plaintext");
  if (cert && !served.clientCa) err(w, "--tls-cert, but the scheduler has no --tls-client-ca to verify it");
  if (token && !served.tokens) err(w, "--auth-token-file, but the scheduler has no --auth-tokens-file");
  if ((served.tokens || served.clientCa) && !((cert && served.clientCa) || (token && served.tokens))) {
    err(w, "the scheduler requires an executor identity: a client certificate (--tls-cert) or a token (--auth-token-file)");
  }
}

// Certificates (cert-manager): mounted, usable for what they are mounted
// for, naming what executors dial, and signed like the client CA expects.
const certs = byKind("Certificate");
const certFor = (secretName) => certs.find((x) => x.spec.secretName === secretName);
for (const cert of certs) {
  const uses = secretFiles.filter((f) => f.secretName === cert.spec.secretName);
  if (uses.length === 0) err(cert, `makes Secret ${cert.spec.secretName}, which no container reads`);
  for (const u of uses.filter((f) => f.flag === "tls-cert")) {
    const need = u.c.name === "scheduler" ? "server auth" : "client auth";
    if (cert.spec.usages && !cert.spec.usages.includes(need)) {
      err(cert, `is the ${u.c.name}'s --tls-cert but its usages lack "${need}"`);
    }
  }
}
if (sched && exec && served?.tls) {
  const serverFile = secretFiles.find((f) => f.c === sched.c && f.flag === "tls-cert");
  const serverCert = serverFile && certFor(serverFile.secretName);
  if (serverCert) {
    const dialled = hostOf(flagValue(exec.c, "scheduler") ?? "127.0.0.1:50051");
    const names = [...(serverCert.spec.dnsNames ?? []), ...(serverCert.spec.ipAddresses ?? [])];
    if (!names.includes(dialled)) err(serverCert, `executors dial ${dialled}, which is not among its names (${names})`);
  }
  const caFile = secretFiles.find((f) => f.c === sched.c && f.flag === "tls-client-ca");
  const clientFile = secretFiles.find((f) => f.c === exec.c && f.flag === "tls-cert");
  const caCert = caFile && certFor(caFile.secretName);
  const clientCert = clientFile && certFor(clientFile.secretName);
  if (caCert && clientCert) {
    const issuer = (x) => JSON.stringify([x.spec.issuerRef.group ?? "cert-manager.io", x.spec.issuerRef.kind ?? "Issuer", x.spec.issuerRef.name]);
    if (issuer(caCert) !== issuer(clientCert)) {
      err(clientCert, `the scheduler trusts the CA in ${caFile.secretName}/${caFile.key} (issuer ${issuer(caCert)}), but this certificate comes from ${issuer(clientCert)}`);
    }
  }
}

const kinds = docs.map((o) => o.kind).sort().join(", ");
if (errors.length) {
  console.error(`validate-k8s: ${label}: ${errors.length} problem(s):`);
  for (const e of errors) console.error(`  ${e}`);
  process.exit(1);
}
console.log(`validate-k8s: ${label}: ${docs.length} objects valid (${kinds})`);
for (const [name, keys] of secretKeysExpected) {
  console.log(`  reads Secret ${name} (${[...keys].join(", ")}), which the operator makes`);
}

// The shipped example of the scheduler's tokens file: the format the
// scheduler parses (scheduler/service/auth.cc), with placeholders where the
// hashes go, so that it cannot be deployed as it is by mistake.
function checkTokensExample(file) {
  const problems = [];
  let doc;
  try {
    doc = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    problems.push(`not JSON: ${e.message}`);
  }
  const roles = new Set(["reader", "submitter", "executor", "admin"]);
  const names = new Set();
  if (doc && (typeof doc !== "object" || Object.keys(doc).join() !== "tokens" || !Array.isArray(doc.tokens))) {
    problems.push('must be {"tokens": [...]} and nothing else');
  }
  for (const [i, t] of (Array.isArray(doc?.tokens) ? doc.tokens : []).entries()) {
    const where = `tokens[${i}] (${t?.name})`;
    for (const k of Object.keys(t ?? {})) {
      if (!["name", "sha256", "role", "queues"].includes(k)) problems.push(`${where}: unknown field ${k}`);
    }
    if (typeof t?.name !== "string" || !t.name) problems.push(`${where}: name is required`);
    if (names.has(t?.name)) problems.push(`${where}: name used twice`);
    names.add(t?.name);
    if (!roles.has(t?.role)) problems.push(`${where}: role must be one of ${[...roles]}`);
    if (t?.queues !== undefined) {
      if (t.role !== "submitter") problems.push(`${where}: queues applies to role submitter only`);
      if (!Array.isArray(t.queues) || !t.queues.every((q) => typeof q === "string" && q)) {
        problems.push(`${where}: queues must be queue names`);
      }
    }
    if (typeof t?.sha256 !== "string") problems.push(`${where}: sha256 is required`);
    else if (/^[0-9a-fA-F]{64}$/.test(t.sha256)) problems.push(`${where}: sha256 looks like a real hash; ship a placeholder`);
  }
  if (problems.length) {
    console.error(`validate-k8s: ${file}: ${problems.length} problem(s):`);
    for (const p of problems) console.error(`  ${p}`);
    process.exit(1);
  }
  console.log(`validate-k8s: ${file}: ${names.size} example tokens, placeholders for the hashes`);
}
