/**
 * The server containers of every manifest, reduced to what must agree with the application: the environment they
 * give the server (ConfigMaps referenced by `envFrom` resolved), the port it will listen on, the probes and the
 * shutdown timing. Works on Deployments, Jobs, Knative and Cloud Run Services and KServe InferenceServices.
 *
 * @module
 */
import { asObject, asObjects, at, type JsonObject, type YamlDocument } from "./yaml_files.ts";
import { kindOf } from "./k8s_validate.ts";

/** One HTTP probe of a server container. */
export interface HttpProbe {
  kind: "startupProbe" | "readinessProbe" | "livenessProbe";
  path: string;
  /** The probed port number (named ports resolved); `null` when it cannot be resolved. */
  port: number | null;
  periodSeconds: number;
  failureThreshold: number;
}

/** A container that runs the server, with its resolved settings. */
export interface ServerWorkload {
  /** Manifest file. */
  file: string;
  /** `apiVersion/kind`. */
  kind: string;
  /** `metadata.name`. */
  name: string;
  /** The pod spec (or revision / predictor spec) holding the container. */
  pod: JsonObject;
  /** The server container. */
  container: JsonObject;
  /** Environment given as literal values, `envFrom` ConfigMaps included (later entries win, as in Kubernetes). */
  env: Record<string, string>;
  /** Names of variables whose value comes from a Secret (`secretKeyRef` or `envFrom.secretRef` prefix-less). */
  secretEnv: string[];
  /** Every variable name the container sets, by any means. */
  envNames: string[];
  /** Whether the platform sets PORT from the container port (Knative, KServe, Cloud Run). */
  platformSetsPort: boolean;
  /** The port the server will listen on. */
  listenPort: number;
  /** The declared container port numbers. */
  containerPorts: number[];
  probes: HttpProbe[];
  /** Seconds of an `exec: sleep N` preStop hook, or null. */
  preStopSleepSeconds: number | null;
  /** The pod's terminationGracePeriodSeconds, or null (Kubernetes' default is 30). */
  terminationGracePeriodSeconds: number | null;
  /** Init containers of the pod. */
  initContainers: JsonObject[];
}

/** The image repository of the server (any registry, any tag). */
export const SERVER_IMAGE_NAME = "ldm-serve";

/** The port the image listens on when PORT is not set (the Dockerfile's `ENV PORT=8000`). */
export const IMAGE_DEFAULT_PORT = 8000;

function podOf(doc: JsonObject): { pod: JsonObject; platformSetsPort: boolean } | null {
  const kind = kindOf(doc);
  if (kind === "apps/v1/Deployment" || kind === "batch/v1/Job") {
    const pod = asObject(at(doc, "spec.template.spec"));
    return pod ? { pod, platformSetsPort: false } : null;
  }
  if (kind === "serving.knative.dev/v1/Service") {
    const pod = asObject(at(doc, "spec.template.spec"));
    return pod ? { pod, platformSetsPort: true } : null;
  }
  if (kind === "serving.kserve.io/v1beta1/InferenceService") {
    const pod = asObject(at(doc, "spec.predictor"));
    return pod ? { pod, platformSetsPort: true } : null;
  }
  return null;
}

function isServerContainer(c: JsonObject): boolean {
  const image = String(c.image ?? "");
  const repo = image.replace(/[:@].*$/, "").split("/").at(-1);
  return repo === SERVER_IMAGE_NAME && c.command === undefined && c.args === undefined;
}

/** Every server container of `docs`; `configMaps` resolves `envFrom` (name → data). */
export function serverWorkloads(docs: readonly YamlDocument[]): ServerWorkload[] {
  const configMaps = new Map<string, Record<string, string>>();
  for (const d of docs) {
    if (kindOf(d.value) === "v1/ConfigMap") {
      const data = asObject(d.value.data) ?? {};
      configMaps.set(
        String(at(d.value, "metadata.name")),
        Object.fromEntries(Object.entries(data).map(([k, v]) => [k, String(v)])),
      );
    }
  }
  const out: ServerWorkload[] = [];
  for (const d of docs) {
    const found = podOf(d.value);
    if (!found) continue;
    const { pod, platformSetsPort } = found;
    for (const container of asObjects(pod.containers).filter(isServerContainer)) {
      const env: Record<string, string> = {};
      const secretEnv: string[] = [];
      const envNames: string[] = [];
      for (const from of asObjects(container.envFrom)) {
        const cm = configMaps.get(String(at(from, "configMapRef.name")));
        if (cm) {
          for (const [k, v] of Object.entries(cm)) {
            env[`${from.prefix ?? ""}${k}`] = v;
            envNames.push(`${from.prefix ?? ""}${k}`);
          }
        }
      }
      for (const e of asObjects(container.env)) {
        const name = String(e.name);
        envNames.push(name);
        if (e.value !== undefined) env[name] = String(e.value);
        else if (at(e, "valueFrom.secretKeyRef")) secretEnv.push(name);
      }
      const ports = asObjects(container.ports);
      const containerPorts = ports.map((p) => Number(p.containerPort));
      const namedPort = (p: unknown): number | null => {
        if (typeof p === "number") return p;
        const byName = ports.find((x) => x.name === p);
        return byName ? Number(byName.containerPort) : null;
      };
      const listenPort = env.PORT !== undefined
        ? Number(env.PORT)
        : platformSetsPort && containerPorts[0] !== undefined
        ? containerPorts[0]
        : IMAGE_DEFAULT_PORT;
      const probes: HttpProbe[] = [];
      for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"] as const) {
        const probe = asObject(container[kind]);
        const get = asObject(probe?.httpGet);
        if (!probe || !get) continue;
        probes.push({
          kind,
          path: String(get.path ?? "/"),
          port: get.port === undefined ? (platformSetsPort ? listenPort : null) : namedPort(get.port),
          periodSeconds: Number(probe.periodSeconds ?? 10),
          failureThreshold: Number(probe.failureThreshold ?? 3),
        });
      }
      const preStop = at(container, "lifecycle.preStop.exec.command");
      const sleep = Array.isArray(preStop) && preStop[0] === "sleep" ? Number(preStop[1]) : null;
      out.push({
        file: d.file,
        kind: kindOf(d.value),
        name: String(at(d.value, "metadata.name")),
        pod,
        container,
        env,
        secretEnv,
        envNames: [...new Set(envNames)],
        platformSetsPort,
        listenPort,
        containerPorts,
        probes,
        preStopSleepSeconds: sleep,
        terminationGracePeriodSeconds: typeof pod.terminationGracePeriodSeconds === "number"
          ? pod.terminationGracePeriodSeconds
          : null,
        initContainers: asObjects(pod.initContainers),
      });
    }
  }
  return out;
}

/** The `--name=value` / `--name value` options of a command line. */
export function commandOptions(command: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < command.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(command[i]!);
    if (!m) continue;
    if (m[2] !== undefined) out[m[1]!] = m[2];
    else if (command[i + 1] !== undefined && !command[i + 1]!.startsWith("--")) out[m[1]!] = command[++i]!;
    else out[m[1]!] = "true";
  }
  return out;
}

/** Every `ldm_*` metric name mentioned in `text` (a PromQL query, an HPA metric name). */
export function metricNamesIn(text: string): string[] {
  return [...new Set(text.match(/\bldm_[a-z0-9_]+\b/g) ?? [])];
}

/** The metric family names of a Prometheus text exposition (`# TYPE` lines). */
export function exposedMetricFamilies(exposition: string): string[] {
  return [...exposition.matchAll(/^# TYPE (\S+) \S+$/gm)].map((m) => m[1]!);
}
