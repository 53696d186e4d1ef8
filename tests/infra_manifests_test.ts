/**
 * Schema checks of every deployment manifest in infra/: Kubernetes core objects, KEDA, Knative and the Prometheus
 * Operator through kubernetes-models (with unknown-field detection), KServe through its encoded fields, Knative's
 * field masks, Cloud Run's limits, the kustomization, compose.yaml, and "secrets only through Secret references".
 */
import assert from "node:assert/strict";
import { CONFIG_VARIABLES } from "@ldm/functions/config";
import {
  asObject,
  asObjects,
  at,
  cloudRunProblems,
  COMPOSE_FILE,
  composeProblems,
  DOCKERFILE,
  ENV_EXAMPLE,
  gpuReservations,
  type JsonObject,
  kindOf,
  knativeFieldProblems,
  listFiles,
  loadManifestDocuments,
  parseDockerfile,
  parseQuantity,
  readYamlDocuments,
  REPO_ROOT,
  validateInferenceService,
  validateManifest,
  type YamlDocument,
} from "../infra/lib/mod.ts";

const docs = await loadManifestDocuments();
const byKind = (kind: string) => docs.filter((d) => kindOf(d.value) === kind);
const one = (file: string): JsonObject => {
  const d = docs.find((x) => x.file === file);
  assert.ok(d, `${file} is missing`);
  return structuredClone(d.value);
};

Deno.test("infra manifests: every document passes its schema with no unknown fields", async (t) => {
  const checked = docs.filter((d) => kindOf(d.value) !== "kustomize.config.k8s.io/v1beta1/Kustomization");
  assert.ok(checked.length >= 14, `expected the whole manifest set, found ${checked.length} documents`);
  for (const d of checked) {
    await t.step(`${d.file}: ${kindOf(d.value)}`, () => {
      assert.deepEqual(validateManifest(d.value), []);
    });
  }
});

Deno.test("validateManifest() reports misspelt fields, wrong types and kinds it has no schema for", () => {
  const dep = one("infra/k8s/deployment.yaml");
  const c = (at(dep, "spec.template.spec.containers") as JsonObject[])[0]!;
  c.readinesProbe = c.readinessProbe;
  delete c.readinessProbe;
  (c.ports as JsonObject[])[0]!.containerPort = "8000";
  const problems = validateManifest(dep);
  assert.deepEqual(problems.map((p) => p.path), ["/spec/template/spec/containers/0/ports/0/containerPort"]);
  assert.match(problems[0]!.message, /integer/);

  // With the type fixed, the misspelt probe is the one problem left.
  (c.ports as JsonObject[])[0]!.containerPort = 8000;
  assert.deepEqual(validateManifest(dep), [{
    path: "/spec/template/spec/containers/0/readinesProbe",
    message: "unknown field (not in the schema)",
  }]);

  const so = one("infra/k8s/scaledobject.yaml");
  (at(so, "spec") as JsonObject).minReplicaCont = 0;
  assert.deepEqual(validateManifest(so).map((p) => p.path), ["/spec/minReplicaCont"]);

  assert.match(validateManifest({ apiVersion: "example.com/v1", kind: "Widget" })[0]!.message, /no schema for/);
});

Deno.test("the kustomization lists every manifest of infra/k8s and only files that exist", async () => {
  const [k] = byKind("kustomize.config.k8s.io/v1beta1/Kustomization");
  assert.ok(k, "infra/k8s/kustomization.yaml is missing");
  const resources = (k.value.resources as string[]).map((r) => `infra/k8s/${r}`).sort();
  const files = (await listFiles(REPO_ROOT, "infra/k8s", [".yaml"]))
    .filter((f) => !f.startsWith("infra/k8s/alternatives/") && f !== "infra/k8s/kustomization.yaml");
  assert.deepEqual(resources, files);
  // Namespaced objects get the kustomization's namespace; the Namespace object declares it.
  const ns = byKind("v1/Namespace")[0]!;
  assert.equal(at(ns.value, "metadata.name"), k.value.namespace);
  // The image kustomize rewrites is the one the workloads use.
  const image = asObjects(k.value.images)[0]!.name;
  for (const d of [...byKind("apps/v1/Deployment"), ...byKind("batch/v1/Job")]) {
    for (
      const c of [
        ...asObjects(at(d.value, "spec.template.spec.containers")),
        ...asObjects(at(d.value, "spec.template.spec.initContainers")),
      ]
    ) {
      assert.equal(c.image, image, `${d.file}: ${c.name}`);
    }
  }
});

Deno.test("the Deployment asks for a GPU, keeps resource requests, and its selectors match", () => {
  const dep = one("infra/k8s/deployment.yaml");
  const server = asObjects(at(dep, "spec.template.spec.containers"))[0]!;
  const limits = asObject(at(server, "resources.limits"))!;
  const requests = asObject(at(server, "resources.requests"))!;
  assert.equal(String(limits["nvidia.com/gpu"]), "1");
  assert.equal(String(requests["nvidia.com/gpu"]), "1");
  assert.ok(parseQuantity(requests.cpu) >= 1 && parseQuantity(requests.memory) >= 8 * 2 ** 30);
  const labels = asObject(at(dep, "spec.template.metadata.labels"))!;
  const selectors = [
    at(dep, "spec.selector.matchLabels"),
    at(one("infra/k8s/service.yaml"), "spec.selector"),
    at(one("infra/k8s/pdb.yaml"), "spec.selector.matchLabels"),
    at(one("infra/k8s/servicemonitor.yaml"), "spec.selector.matchLabels"),
  ];
  for (const s of selectors) {
    for (const [k, v] of Object.entries(asObject(s)!)) assert.equal(labels[k], v, `selector ${k}=${v}`);
  }
  // The ServiceMonitor selects the Service, whose labels it must match.
  const svcLabels = asObject(at(one("infra/k8s/service.yaml"), "metadata.labels"))!;
  for (
    const [k, v] of Object.entries(asObject(at(one("infra/k8s/servicemonitor.yaml"), "spec.selector.matchLabels"))!)
  ) {
    assert.equal(svcLabels[k], v);
  }
  const so = one("infra/k8s/scaledobject.yaml");
  assert.equal(at(so, "spec.scaleTargetRef.name"), at(dep, "metadata.name"));
  assert.equal(
    at(one("infra/k8s/alternatives/hpa-prometheus-adapter.yaml"), "spec.scaleTargetRef.name"),
    at(dep, "metadata.name"),
  );
  const pvc = at(one("infra/k8s/pvc.yaml"), "metadata.name");
  assert.ok(
    asObjects(at(dep, "spec.template.spec.volumes")).some((v) => at(v, "persistentVolumeClaim.claimName") === pvc),
  );
});

Deno.test("validateInferenceService() accepts the KServe manifest and rejects what KServe's CRD would", () => {
  const isvc = one("infra/kserve/inferenceservice.yaml");
  assert.deepEqual(validateInferenceService(isvc), []);
  const bad = structuredClone(isvc);
  const p = at(bad, "spec.predictor") as JsonObject;
  p.scaleMetric = "gpu";
  p.minReplicas = 5;
  p.maxReplicas = 2;
  p.sklearn = { storageUri: "gs://x" };
  (p.containers as JsonObject[])[0]!.imagePullPolicyy = "Always";
  const paths = validateInferenceService(bad).map((x) => x.path);
  assert.deepEqual(paths.sort(), [
    "/spec/predictor",
    "/spec/predictor/containers/0/imagePullPolicyy",
    "/spec/predictor/minReplicas",
    "/spec/predictor/scaleMetric",
  ]);
  // KServe's custom predictor is the container named kserve-container.
  assert.equal(asObjects(at(isvc, "spec.predictor.containers"))[0]!.name, "kserve-container");
});

Deno.test("Knative field masks: the Knative and KServe pod specs use allowed fields, PVC behind its documented flag", async () => {
  const ksvc = one("infra/knative/service.yaml");
  const report = knativeFieldProblems(at(ksvc, "spec.template.spec") as JsonObject, "/spec/template/spec");
  assert.deepEqual(report.problems, []);
  const readme = await Deno.readTextFile(`${REPO_ROOT}/infra/README.md`);
  for (const f of report.featureFlags) {
    assert.ok(readme.includes(f.flag), `infra/README.md must tell users to enable ${f.flag} (${f.path})`);
  }
  assert.deepEqual(report.featureFlags.map((f) => f.flag), ["kubernetes.podspec-persistent-volume-claim"]);

  const isvc = one("infra/kserve/inferenceservice.yaml");
  const predictor = structuredClone(at(isvc, "spec.predictor") as JsonObject);
  for (const k of ["minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "containerConcurrency", "timeout"]) {
    delete predictor[k];
  }
  assert.deepEqual(knativeFieldProblems(predictor, "/spec/predictor"), { problems: [], featureFlags: [] });

  // What Knative rejects: a preStop hook, a startup probe, PORT, a termination grace period.
  const bad = structuredClone(at(ksvc, "spec.template.spec") as JsonObject);
  const c = (bad.containers as JsonObject[])[0]!;
  c.lifecycle = { preStop: { exec: { command: ["sleep", "5"] } } };
  c.startupProbe = c.readinessProbe;
  (c.env as JsonObject[]).push({ name: "PORT", value: "8000" });
  bad.terminationGracePeriodSeconds = 30;
  assert.deepEqual(knativeFieldProblems(bad, "").problems.map((p) => p.path).sort(), [
    `/containers/0/env/${(c.env as JsonObject[]).length - 1}/name`,
    "/containers/0/lifecycle",
    "/containers/0/startupProbe",
    "/terminationGracePeriodSeconds",
  ]);
});

Deno.test("cloudRunProblems() accepts the Cloud Run service and enforces the GPU rules", () => {
  const svc = one("infra/cloudrun/service.yaml");
  assert.deepEqual(cloudRunProblems(svc), []);
  const bad = structuredClone(svc);
  const ann = at(bad, "spec.template.metadata.annotations") as JsonObject;
  delete ann["run.googleapis.com/cpu-throttling"];
  ann["run.googleapis.com/not-a-thing"] = "x";
  const c = asObjects(at(bad, "spec.template.spec.containers"))[0]!;
  (at(c, "resources.limits") as JsonObject).memory = "8Gi";
  (at(c, "startupProbe.httpGet") as JsonObject).port = 8080;
  (c.env as JsonObject[]).push({ name: "PORT", value: "8000" });
  (at(bad, "spec.template.spec") as JsonObject).timeoutSeconds = 7200;
  assert.deepEqual(cloudRunProblems(bad).map((p) => p.path).sort(), [
    "/spec/template/metadata/annotations",
    "/spec/template/metadata/annotations/run.googleapis.com/not-a-thing",
    `/spec/template/spec/containers/0/env/${(c.env as JsonObject[]).length - 1}/name`,
    "/spec/template/spec/containers/0/resources/limits/memory",
    "/spec/template/spec/containers/0/startupProbe/httpGet/port",
    "/spec/template/spec/timeoutSeconds",
  ]);
});

Deno.test("compose.yaml follows the Compose Specification and reserves one GPU with the graphics capability", async () => {
  const [compose] = await readYamlDocuments(REPO_ROOT, COMPOSE_FILE);
  assert.ok(compose);
  const df = parseDockerfile(await Deno.readTextFile(`${REPO_ROOT}/${DOCKERFILE}`));
  const targets = df.stages.map((s) => s.name).filter((n): n is string => n !== null);
  assert.deepEqual(composeProblems(compose.value, targets), []);
  const gpu = gpuReservations(asObject(at(compose.value, "services.ldm"))!);
  assert.deepEqual(gpu, [{ count: 1, capabilities: ["gpu", "compute", "utility", "graphics"] }]);

  const bad = structuredClone(compose.value);
  const svc = at(bad, "services.ldm") as JsonObject;
  (svc.build as JsonObject).target = "gpus";
  svc.stop_grace_perod = "35s";
  (asObjects(at(svc, "deploy.resources.reservations.devices"))[0]!).capabilites = ["gpu"];
  assert.deepEqual(composeProblems(bad, targets).map((p) => p.path).sort(), [
    "/services/ldm/build/target",
    "/services/ldm/deploy/resources/reservations/devices/0/capabilites",
    "/services/ldm/stop_grace_perod",
  ]);
});

/** Variables that carry secrets: those the server marks secret, and anything named like a credential. */
const SECRET_NAMES = new Set(CONFIG_VARIABLES.filter((v) => v.secret).map((v) => v.name));
const looksSecret = (name: string) =>
  SECRET_NAMES.has(name) || /TOKEN|PASSWORD|SECRET|API_KEYS?$|CREDENTIAL/.test(name);

function allContainers(d: YamlDocument): { path: string; c: JsonObject }[] {
  const specs = [
    at(d.value, "spec.template.spec"),
    at(d.value, "spec.predictor"),
    at(d.value, "spec.jobTemplate.spec.template.spec"),
  ];
  return specs.flatMap((s) =>
    [...asObjects(asObject(s)?.containers), ...asObjects(asObject(s)?.initContainers)].map((c) => ({
      path: `${d.file}:${c.name}`,
      c,
    }))
  );
}

Deno.test("secrets reach containers only through Secret references", async (t) => {
  await t.step("no manifest carries a Secret object or literal secret values", () => {
    assert.deepEqual(byKind("v1/Secret").map((d) => d.file), []);
    for (const d of docs) {
      for (const { path, c } of allContainers(d)) {
        for (const e of asObjects(c.env)) {
          if (looksSecret(String(e.name))) {
            assert.equal(e.value, undefined, `${path}: ${e.name} must come from a secretKeyRef, not a literal`);
            assert.ok(at(e, "valueFrom.secretKeyRef"), `${path}: ${e.name} must use valueFrom.secretKeyRef`);
          }
        }
      }
      for (const [k] of Object.entries(asObject(d.value.data) ?? {})) {
        assert.ok(!looksSecret(k), `${d.file}: ConfigMap key ${k} looks like a secret`);
      }
    }
  });
  await t.step("key and token files are mounted from secret volumes", () => {
    for (const d of docs) {
      for (const spec of [at(d.value, "spec.template.spec"), at(d.value, "spec.predictor")]) {
        const volumes = new Map(asObjects(asObject(spec)?.volumes).map((v) => [String(v.name), v]));
        for (const c of [...asObjects(asObject(spec)?.containers), ...asObjects(asObject(spec)?.initContainers)]) {
          for (const m of asObjects(c.volumeMounts)) {
            if (String(m.mountPath).startsWith("/var/run/secrets/")) {
              const v = volumes.get(String(m.name));
              assert.ok(v?.secret, `${d.file}: ${m.mountPath} must be a secret volume`);
              assert.equal(m.readOnly, true, `${d.file}: ${m.mountPath} must be read-only`);
            }
          }
        }
      }
    }
  });
  await t.step("the compose env template has no secret values filled in", async () => {
    const text = await Deno.readTextFile(`${REPO_ROOT}/${ENV_EXAMPLE}`);
    for (const line of text.split("\n")) {
      const m = /^#?\s*([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
      if (m && looksSecret(m[1]!)) assert.equal(m[2], "", `${ENV_EXAMPLE}: ${m[1]} must be empty in the template`);
    }
  });
  await t.step("the ServiceMonitor's bearer credentials are a secret reference", () => {
    const ep = asObjects(at(one("infra/k8s/servicemonitor.yaml"), "spec.endpoints"))[0]!;
    assert.deepEqual(Object.keys(asObject(at(ep, "authorization.credentials"))!).sort(), ["key", "name"]);
  });
});
