/**
 * The deployment files against the application itself: probe paths answered by the real app (createApp with the
 * fake runner), probe and container ports equal to the port the server listens on, every environment variable one
 * the server reads (functions' CONFIG_VARIABLES) with values its loadConfig accepts, the autoscaler's metrics ones
 * /metrics exports, and timeouts that agree with the server's shutdown and request deadlines.
 */
import assert from "node:assert/strict";
import { CONFIG_VARIABLES, createApp, loadConfig } from "@ldm/functions";
import { FakeRunner } from "@ldm/functions/testing";
import { PREPARE_ENV_VARIABLES } from "../infra/scripts/prepare_model.ts";
import { healthzUrl } from "../infra/docker/healthcheck.ts";
import {
  asObject,
  asObjects,
  at,
  commandOptions,
  COMPOSE_FILE,
  DOCKERFILE,
  effective,
  ENV_EXAMPLE,
  exposedMetricFamilies,
  IMAGE_DEFAULT_PORT,
  IMAGE_ENV,
  IMAGE_TARGETS,
  type JsonObject,
  kindOf,
  loadManifestDocuments,
  metricNamesIn,
  parseDockerfile,
  parseDuration,
  PLATFORM_ENV,
  readYamlDocuments,
  REPO_ROOT,
  serverWorkloads,
  stageChain,
} from "../infra/lib/mod.ts";

const SERVER_ENV = new Set(CONFIG_VARIABLES.map((v) => v.name));
const docs = await loadManifestDocuments();
const workloads = serverWorkloads(docs);
const [compose] = await readYamlDocuments(REPO_ROOT, COMPOSE_FILE);
const dockerfile = parseDockerfile(await Deno.readTextFile(`${REPO_ROOT}/${DOCKERFILE}`));
const KEY = "infra-consistency-key-0123456789";

/** Seconds the server may take after SIGTERM beyond LDM_SHUTDOWN_GRACE_MS: up to 2 s flushing responses
 * (functions/server.ts) plus closing the workers and their sessions; rounded up with margin. */
const SHUTDOWN_OVERHEAD_S = 5;

function defaultOf(name: string): string {
  const v = CONFIG_VARIABLES.find((x) => x.name === name);
  assert.ok(v?.default, `${name} has no default in CONFIG_VARIABLES`);
  return v.default;
}

function app(ready: boolean) {
  const runner = new FakeRunner();
  if (!ready) runner.state = { state: "loading" };
  return createApp({ runner, config: loadConfig({ LDM_API_KEYS: KEY }) });
}

Deno.test("every manifest that runs the server was found", () => {
  const where = workloads.map((w) => `${w.file}:${w.kind}`).sort();
  assert.deepEqual(where, [
    "infra/cloudrun/service.yaml:serving.knative.dev/v1/Service",
    "infra/k8s/deployment.yaml:apps/v1/Deployment",
    "infra/knative/service.yaml:serving.knative.dev/v1/Service",
    "infra/kserve/inferenceservice.yaml:serving.kserve.io/v1beta1/InferenceService",
  ]);
});

Deno.test("probe paths exist in the app: liveness answers while models load, readiness only once they are loaded", async (t) => {
  const probes = workloads.flatMap((w) => w.probes.map((p) => ({ ...p, where: `${w.file} ${p.kind}` })));
  assert.ok(probes.length >= 8);
  const loading = app(false), ready = app(true);
  for (const p of probes) {
    await t.step(`${p.where} GET ${p.path}`, async () => {
      const res = await ready.request(p.path);
      await res.body?.cancel();
      assert.equal(res.status, 200, `${p.path} must answer 200 on a ready server`);
      const early = await loading.request(p.path);
      await early.body?.cancel();
      if (p.kind === "livenessProbe") {
        assert.equal(early.status, 200, "liveness must not fail while models load (the pod would be restarted)");
      } else {
        assert.equal(early.status, 503, `${p.kind} must hold traffic until the models are loaded`);
      }
    });
  }
  await t.step("the image HEALTHCHECK's /healthz", async () => {
    const url = healthzUrl({ HOST: "0.0.0.0", PORT: "8000" });
    const res = await loading.request(url.pathname);
    await res.body?.cancel();
    assert.equal(res.status, 200);
  });
});

Deno.test("probes and container ports are the port the server listens on", () => {
  for (const w of workloads) {
    assert.ok(w.containerPorts.includes(w.listenPort), `${w.file}: the container must declare port ${w.listenPort}`);
    for (const p of w.probes) assert.equal(p.port, w.listenPort, `${w.file} ${p.kind} probes port ${p.port}`);
    if (w.platformSetsPort) assert.equal(w.env.PORT, undefined, `${w.file}: the platform sets PORT`);
  }
  // The Service's targetPort names the Deployment's container port.
  const svc = docs.find((d) => d.file === "infra/k8s/service.yaml")!.value;
  const dep = workloads.find((w) => w.kind === "apps/v1/Deployment")!;
  const target = asObjects(at(svc, "spec.ports"))[0]!.targetPort;
  assert.ok(asObjects(dep.container.ports).some((p) => p.name === target && p.containerPort === dep.listenPort));
  // The image: EXPOSE, ENV PORT and the server's own default agree.
  for (const target of IMAGE_TARGETS) {
    const expose = stageChain(dockerfile, target).flatMap((s) => s.instructions).find((i) => i.keyword === "EXPOSE");
    assert.equal(expose?.args, String(IMAGE_DEFAULT_PORT));
    assert.match(effective(dockerfile, target, "ENV")?.args ?? "", new RegExp(`PORT=${IMAGE_DEFAULT_PORT}\\b`));
  }
  assert.equal(defaultOf("PORT"), String(IMAGE_DEFAULT_PORT));
});

Deno.test("environment variables are ones the server reads, with values loadConfig accepts", async (t) => {
  for (const w of workloads) {
    await t.step(`${w.file}`, () => {
      for (const name of w.envNames) {
        assert.ok(SERVER_ENV.has(name) || name in PLATFORM_ENV, `${w.file}: the server does not read ${name}`);
      }
      const env = Object.fromEntries(Object.entries(w.env).filter(([k]) => SERVER_ENV.has(k)));
      if (w.platformSetsPort) env.PORT = String(w.listenPort);
      const config = loadConfig(env, { readTextFile: () => `${KEY}\n` });
      assert.ok(config.apiKeys.length > 0, `${w.file}: a non-loopback server needs API keys`);
      assert.equal(config.port, w.listenPort);
    });
  }
  await t.step("model preparation containers use only the variables prepare_model.ts reads", () => {
    for (const d of docs) {
      for (const spec of [at(d.value, "spec.template.spec")]) {
        const containers = [...asObjects(asObject(spec)?.initContainers), ...asObjects(asObject(spec)?.containers)];
        for (const c of containers.filter((c) => JSON.stringify(c.command ?? []).includes("prepare_model.ts"))) {
          for (const e of asObjects(c.env)) {
            assert.ok(PREPARE_ENV_VARIABLES.includes(String(e.name)), `${d.file}: ${c.name} sets ${e.name}`);
          }
        }
      }
    }
  });
  await t.step("compose.yaml and the env template", async () => {
    for (const [name, svc] of Object.entries(asObject(compose!.value.services)!)) {
      for (const key of Object.keys(asObject(asObject(svc)?.environment) ?? {})) {
        assert.ok(SERVER_ENV.has(key), `compose service ${name} sets ${key}, which the server does not read`);
      }
    }
    const text = await Deno.readTextFile(`${REPO_ROOT}/${ENV_EXAMPLE}`);
    const names = [...text.matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]!);
    assert.ok(names.length >= 5);
    for (const n of names) {
      assert.ok(SERVER_ENV.has(n) || PREPARE_ENV_VARIABLES.includes(n), `${ENV_EXAMPLE}: unknown variable ${n}`);
    }
    const filled = Object.fromEntries(
      [...text.matchAll(/^([A-Z][A-Z0-9_]*)=(.+)$/gm)].map((m) => [m[1]!, m[2]!]),
    );
    loadConfig({ ...filled, LDM_API_KEYS: KEY, HOST: "0.0.0.0" });
  });
  await t.step("the Dockerfile's ENV", () => {
    for (const stage of dockerfile.stages) {
      for (const ins of stage.instructions.filter((i) => i.keyword === "ENV")) {
        for (const m of ins.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=/g)) {
          const name = m[1]!;
          assert.ok(
            SERVER_ENV.has(name) || name in IMAGE_ENV,
            `Dockerfile line ${ins.line}: ${name} is read by nobody`,
          );
        }
      }
    }
  });
});

Deno.test("the autoscalers scale on metrics /metrics exports", async () => {
  const res = await app(true).request("/metrics", { headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(res.status, 200);
  const exported = new Set(exposedMetricFamilies(await res.text()));
  assert.ok(exported.has("ldm_queue_depth"), "the server no longer exports ldm_queue_depth");
  const used: string[] = [];
  for (const d of docs) {
    if (kindOf(d.value) === "keda.sh/v1alpha1/ScaledObject") {
      for (const tr of asObjects(at(d.value, "spec.triggers"))) {
        used.push(...metricNamesIn(String(at(tr, "metadata.query"))));
      }
    }
    if (kindOf(d.value) === "autoscaling/v2/HorizontalPodAutoscaler") {
      for (const m of asObjects(at(d.value, "spec.metrics"))) used.push(...metricNamesIn(JSON.stringify(m)));
    }
  }
  assert.ok(used.includes("ldm_queue_depth"), "an autoscaler must use the queue-depth metric");
  for (const name of used) assert.ok(exported.has(name), `${name} is not exported by /metrics`);
  // The smoke test's checks of /metrics name exported families too.
  const smoke = await Deno.readTextFile(`${REPO_ROOT}/infra/smoke.sh`);
  for (const name of metricNamesIn(smoke)) assert.ok(exported.has(name), `infra/smoke.sh greps for ${name}`);
});

Deno.test("shutdown and request timeouts agree with the server's", async (t) => {
  await t.step("Kubernetes: terminationGracePeriodSeconds covers preStop + LDM_SHUTDOWN_GRACE_MS + overhead", () => {
    for (const w of workloads.filter((w) => w.kind === "apps/v1/Deployment")) {
      const grace = Number(w.env.LDM_SHUTDOWN_GRACE_MS ?? defaultOf("LDM_SHUTDOWN_GRACE_MS")) / 1000;
      assert.ok(
        w.preStopSleepSeconds !== null && w.preStopSleepSeconds > 0,
        `${w.file}: a preStop sleep drains endpoints`,
      );
      const need = w.preStopSleepSeconds + Math.ceil(grace) + SHUTDOWN_OVERHEAD_S;
      assert.ok(
        (w.terminationGracePeriodSeconds ?? 30) >= need,
        `${w.file}: terminationGracePeriodSeconds ${w.terminationGracePeriodSeconds} < ${need}`,
      );
      // The image has the sleep binary the hook runs (coreutils in the Ubuntu bases).
      assert.deepEqual(at(w.container, "lifecycle.preStop.exec.command"), ["sleep", String(w.preStopSleepSeconds)]);
    }
  });
  await t.step("compose: stop_grace_period covers LDM_SHUTDOWN_GRACE_MS + overhead", async () => {
    const env = await Deno.readTextFile(`${REPO_ROOT}/${ENV_EXAMPLE}`);
    const grace = Number(/^LDM_SHUTDOWN_GRACE_MS=(\d+)$/m.exec(env)?.[1] ?? defaultOf("LDM_SHUTDOWN_GRACE_MS")) / 1000;
    for (const [name, svc] of Object.entries(asObject(compose!.value.services)!)) {
      const s = asObject(svc)!;
      if (s.stop_grace_period === undefined) continue;
      assert.ok(
        parseDuration(s.stop_grace_period) >= grace + SHUTDOWN_OVERHEAD_S,
        `${name}: stop_grace_period too short`,
      );
    }
  });
  await t.step("Knative, KServe, Cloud Run: request timeout and concurrency fit the server's queue", () => {
    for (const w of workloads.filter((w) => w.platformSetsPort)) {
      const requestTimeout = Number(w.env.LDM_REQUEST_TIMEOUT_MS ?? defaultOf("LDM_REQUEST_TIMEOUT_MS")) / 1000;
      const timeout = Number(w.pod.timeoutSeconds ?? w.pod.timeout);
      assert.ok(
        timeout >= requestTimeout,
        `${w.file}: platform timeout ${timeout}s < server deadline ${requestTimeout}s`,
      );
      const slots = Number(w.env.LDM_CONCURRENCY ?? defaultOf("LDM_CONCURRENCY")) +
        Number(w.env.LDM_QUEUE_SIZE ?? defaultOf("LDM_QUEUE_SIZE"));
      const cc = Number(w.pod.containerConcurrency);
      assert.ok(cc >= 1 && cc <= slots, `${w.file}: containerConcurrency ${cc} must be in [1, ${slots}] (no 429s)`);
    }
  });
  await t.step("the startup probe allows the model load time", () => {
    for (const w of workloads) {
      const gate = w.probes.find((p) => p.kind === "startupProbe");
      if (!gate) continue;
      assert.ok(gate.periodSeconds * gate.failureThreshold >= 300, `${w.file}: under 5 minutes for image + model load`);
    }
  });
});

Deno.test("model preparation writes where the servers read", () => {
  const dep = workloads.find((w) => w.kind === "apps/v1/Deployment")!;
  const job = docs.find((d) => kindOf(d.value) === "batch/v1/Job")!;
  const jobScript = String(asObjects(at(job.value, "spec.template.spec.containers"))[0]!.command);
  const outs = dep.initContainers.map((c) => commandOptions((c.command as string[]).map(String)).out);
  assert.deepEqual(outs.sort(), [dep.env.LDM_SUPER_RESOLUTION_MODEL_DIR, dep.env.LDM_TEXT_TO_IMAGE_MODEL_DIR].sort());
  for (const out of outs) assert.ok(jobScript.includes(`--out=${out}`), `the model Job must prepare ${out}`);
  for (const c of dep.initContainers) {
    const opts = commandOptions((c.command as string[]).map(String));
    const mount = asObjects(c.volumeMounts).find((m) => opts["token-file"]!.startsWith(String(m.mountPath) + "/"));
    assert.ok(mount, `${c.name}: --token-file must be on a mounted volume`);
    assert.equal(c.workingDir, "/app", "prepare_model.ts resolves @ldm/models through /app/deno.json");
  }
  // Knative and KServe read the same directories from the same PVC (KServe mounts it at /mnt/models).
  for (const w of workloads.filter((w) => w.platformSetsPort && !w.file.includes("cloudrun"))) {
    const prefix = w.kind.includes("kserve") ? "/mnt/models" : "/models";
    for (const k of ["LDM_TEXT_TO_IMAGE_MODEL_DIR", "LDM_SUPER_RESOLUTION_MODEL_DIR"]) {
      assert.equal(w.env[k], dep.env[k]!.replace(/^\/models/, prefix), `${w.file}: ${k}`);
    }
  }
});

Deno.test("serverWorkloads() resolves envFrom ConfigMaps, named ports and platform ports", () => {
  const deployment: JsonObject = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "x" },
    spec: {
      template: {
        spec: {
          containers: [{
            name: "s",
            image: "r.example/ldm-serve:1",
            envFrom: [{ configMapRef: { name: "c" } }],
            env: [{ name: "PORT", value: "9000" }, {
              name: "LDM_API_KEYS",
              valueFrom: { secretKeyRef: { name: "k", key: "k" } },
            }],
            ports: [{ name: "web", containerPort: 9000 }],
            readinessProbe: { httpGet: { path: "/readyz", port: "web" } },
          }, { name: "sidecar", image: "envoy:1" }],
        },
      },
    },
  };
  const cm: JsonObject = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "c" },
    data: { LDM_QUEUE_SIZE: "3" },
  };
  const [w] = serverWorkloads([{ file: "a", index: 0, value: deployment }, { file: "b", index: 0, value: cm }]);
  assert.ok(w);
  assert.deepEqual(w.env, { LDM_QUEUE_SIZE: "3", PORT: "9000" });
  assert.deepEqual(w.secretEnv, ["LDM_API_KEYS"]);
  assert.equal(w.listenPort, 9000);
  assert.deepEqual(w.probes.map((p) => [p.path, p.port]), [["/readyz", 9000]]);
});
