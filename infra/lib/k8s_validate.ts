/**
 * Schema checks of the Kubernetes manifests, without a cluster.
 *
 * - Core and well-known CRD kinds are validated with the typed models of `kubernetes-models` (the Kubernetes
 *   OpenAPI schemas compiled to validators) and its third-party packages for KEDA, Knative Serving and the
 *   Prometheus Operator ({@linkcode MODEL_KINDS}).
 * - Those validators accept unknown fields (as `kubectl apply` does without `--validate=strict`), so a misspelt
 *   `readinesProbe` would pass. {@linkcode unknownFields} finds such fields with the same validators: it replaces
 *   one field at a time by a value no schema accepts and reports the fields whose replacement the schema did not
 *   notice.
 * - KServe's `InferenceService` has no published model package: {@linkcode validateInferenceService} encodes the
 *   fields of KServe's v1beta1 `PredictorSpec` (`pkg/apis/serving/v1beta1/predictor.go`, `component.go`: the
 *   framework specs, the inline `PodSpec` and the inline `ComponentExtensionSpec`) and validates the `PodSpec` part
 *   with the Kubernetes model.
 * - Knative Serving accepts only part of a `PodSpec` ({@linkcode knativeFieldProblems}, from knative/serving
 *   `pkg/apis/serving/fieldmask.go`), some parts only behind feature flags; KServe's serverless mode inherits this.
 * - Cloud Run's service YAML is a Knative `Service` with Cloud Run's own limits ({@linkcode cloudRunProblems}, from
 *   the Cloud Run YAML reference and its GPU page).
 *
 * @module
 */
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { PodSpec } from "kubernetes-models/v1/PodSpec";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { Job } from "kubernetes-models/batch/v1/Job";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";
import { Service as KnativeService } from "@kubernetes-models/knative/serving.knative.dev/v1/Service";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { asObject, asObjects, at, type JsonObject } from "./yaml_files.ts";

/** One schema error: a JSON pointer into the object and what is wrong there. */
export interface SchemaProblem {
  /** JSON pointer, e.g. `/spec/template/spec/containers/0/ports/0/containerPort`. */
  path: string;
  /** What is wrong. */
  message: string;
}

interface AjvError {
  instancePath: string;
  message?: string;
  keyword?: string;
  params?: Record<string, unknown>;
}

/** A validator: the schema errors of a value (empty when valid). */
export type Validator = (value: JsonObject) => AjvError[];

interface ModelClass {
  new (data: JsonObject): { validate(): void };
}

function modelValidator(cls: ModelClass): Validator {
  return (value) => {
    try {
      new cls(value).validate();
      return [];
    } catch (e) {
      const errors = (e as { errors?: AjvError[] }).errors;
      if (Array.isArray(errors)) return errors;
      throw e;
    }
  };
}

/** `apiVersion/kind` → validator, for every kind with a model package. */
export const MODEL_KINDS: Readonly<Record<string, Validator>> = {
  "v1/Namespace": modelValidator(Namespace as unknown as ModelClass),
  "v1/ServiceAccount": modelValidator(ServiceAccount as unknown as ModelClass),
  "v1/ConfigMap": modelValidator(ConfigMap as unknown as ModelClass),
  "v1/Secret": modelValidator(Secret as unknown as ModelClass),
  "v1/PersistentVolumeClaim": modelValidator(PersistentVolumeClaim as unknown as ModelClass),
  "v1/Service": modelValidator(Service as unknown as ModelClass),
  "apps/v1/Deployment": modelValidator(Deployment as unknown as ModelClass),
  "batch/v1/Job": modelValidator(Job as unknown as ModelClass),
  "policy/v1/PodDisruptionBudget": modelValidator(PodDisruptionBudget as unknown as ModelClass),
  "autoscaling/v2/HorizontalPodAutoscaler": modelValidator(HorizontalPodAutoscaler as unknown as ModelClass),
  "keda.sh/v1alpha1/ScaledObject": modelValidator(ScaledObject as unknown as ModelClass),
  "keda.sh/v1alpha1/TriggerAuthentication": modelValidator(TriggerAuthentication as unknown as ModelClass),
  "monitoring.coreos.com/v1/ServiceMonitor": modelValidator(ServiceMonitor as unknown as ModelClass),
  "serving.knative.dev/v1/Service": modelValidator(KnativeService as unknown as ModelClass),
};

const podSpecValidator = modelValidator(PodSpec as unknown as ModelClass);
const metadataValidator: Validator = (metadata) =>
  modelValidator(ConfigMap as unknown as ModelClass)({ apiVersion: "v1", kind: "ConfigMap", metadata }).map((e) => ({
    ...e,
    instancePath: e.instancePath.replace(/^\/metadata/, ""),
  }));

function toProblems(errors: readonly AjvError[], prefix = ""): SchemaProblem[] {
  return errors.map((e) => ({
    path: prefix + e.instancePath || "/",
    message: e.message ?? `${e.keyword ?? "invalid"} ${JSON.stringify(e.params ?? {})}`,
  }));
}

function pointer(path: readonly (string | number)[]): string {
  return path.map((p) => "/" + String(p).replace(/~/g, "~0").replace(/\//g, "~1")).join("");
}

/** A value no JSON schema type accepts, so any declared field rejects it. */
const PROBE = Symbol("unknown-field-probe");

function setAt(root: unknown, path: readonly (string | number)[], value: unknown): void {
  let v = root as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) v = v[key] as Record<string | number, unknown>;
  v[path.at(-1)!] = value;
}

/**
 * The fields of `value` that `validate`'s schema does not declare (JSON pointers). Each object key is replaced in
 * turn by a value of no JSON type; a declared field then fails validation at (or under) its own path, an undeclared
 * one does not. Call it on values that pass `validate`.
 */
export function unknownFields(validate: Validator, value: JsonObject): string[] {
  const unknown: string[] = [];
  const visit = (node: unknown, path: (string | number)[]) => {
    if (Array.isArray(node)) {
      node.forEach((item, i) => visit(item, [...path, i]));
      return;
    }
    const obj = asObject(node);
    if (!obj) return;
    for (const key of Object.keys(obj)) {
      const childPath = [...path, key];
      const probe = structuredClone(value);
      setAt(probe, childPath, PROBE);
      const p = pointer(childPath);
      const hit = validate(probe).some((e) => e.instancePath === p || e.instancePath.startsWith(p + "/"));
      if (!hit) unknown.push(p);
      else visit(obj[key], childPath);
    }
  };
  visit(value, []);
  return unknown;
}

function strict(validate: Validator, value: JsonObject, prefix = ""): SchemaProblem[] {
  const errors = validate(value);
  if (errors.length > 0) return toProblems(errors, prefix);
  return unknownFields(validate, value).map((p) => ({
    path: prefix + p,
    message: "unknown field (not in the schema)",
  }));
}

/** `apiVersion/kind` of an object, e.g. `"apps/v1/Deployment"`. */
export function kindOf(value: JsonObject): string {
  return `${String(value.apiVersion)}/${String(value.kind)}`;
}

/**
 * Validates one manifest object: the model schema of its kind plus unknown-field detection, or the encoded
 * InferenceService schema. Kinds this module knows nothing about are an error, so a new manifest cannot slip
 * through unchecked.
 */
export function validateManifest(value: JsonObject): SchemaProblem[] {
  const kind = kindOf(value);
  if (kind === "serving.kserve.io/v1beta1/InferenceService") return validateInferenceService(value);
  const validate = MODEL_KINDS[kind];
  if (!validate) {
    return [{ path: "/", message: `no schema for ${kind}: add its model to infra/lib/k8s_validate.ts` }];
  }
  return strict(validate, value);
}

// ---- KServe ------------------------------------------------------------------------------------------------------

/** `PredictorSpec`'s framework fields ("1-of" with a custom container), KServe v1beta1 `predictor.go`. */
const KSERVE_FRAMEWORKS = [
  "sklearn",
  "xgboost",
  "tensorflow",
  "pytorch",
  "triton",
  "onnx",
  "huggingface",
  "pmml",
  "lightgbm",
  "paddle",
  "model",
];
const KSERVE_PREDICTOR_OTHER = ["storageUris", "workerSpec"];

type FieldCheck = (v: unknown) => string | null;
const int = (min: number, max = Number.MAX_SAFE_INTEGER): FieldCheck => (v) =>
  Number.isInteger(v) && (v as number) >= min && (v as number) <= max ? null : `must be an integer in [${min}, ${max}]`;
const obj: FieldCheck = (v) => asObject(v) ? null : "must be an object";
const stringMap: FieldCheck = (v) => {
  const o = asObject(v);
  return o && Object.values(o).every((x) => typeof x === "string") ? null : "must map strings to strings";
};

/** `ComponentExtensionSpec` (KServe v1beta1 `component.go`), inlined into the predictor. */
const KSERVE_EXTENSION: Readonly<Record<string, FieldCheck>> = {
  minReplicas: int(0),
  maxReplicas: int(0),
  scaleTarget: int(1),
  scaleMetric: (v) =>
    ["cpu", "memory", "concurrency", "rps"].includes(v as string)
      ? null
      : "must be one of cpu, memory, concurrency, rps",
  containerConcurrency: int(0),
  timeout: int(1),
  canaryTrafficPercent: int(0, 100),
  logger: obj,
  batcher: obj,
  labels: stringMap,
  annotations: stringMap,
  deploymentStrategy: obj,
  autoScaling: obj,
};

/**
 * Validates a KServe `serving.kserve.io/v1beta1` `InferenceService`: the encoded top-level and predictor fields,
 * the `ComponentExtensionSpec` values and their relations (`minReplicas <= maxReplicas`), the inline `PodSpec`
 * through the Kubernetes `PodSpec` model (with unknown-field detection), and the custom-predictor rule that a
 * predictor has either containers or one framework spec.
 */
export function validateInferenceService(value: JsonObject): SchemaProblem[] {
  const problems: SchemaProblem[] = [];
  const add = (path: string, message: string) => problems.push({ path, message });
  if (value.apiVersion !== "serving.kserve.io/v1beta1") add("/apiVersion", "must be serving.kserve.io/v1beta1");
  if (value.kind !== "InferenceService") add("/kind", "must be InferenceService");
  for (const k of Object.keys(value)) {
    if (!["apiVersion", "kind", "metadata", "spec", "status"].includes(k)) {
      add(`/${k}`, "unknown field (not in the schema)");
    }
  }
  const metadata = asObject(value.metadata);
  if (!metadata) add("/metadata", "is required");
  else problems.push(...strict(metadataValidator, metadata, "/metadata"));
  const spec = asObject(value.spec);
  if (!spec) {
    add("/spec", "is required");
    return problems;
  }
  for (const k of Object.keys(spec)) {
    if (!["predictor", "transformer", "explainer"].includes(k)) add(`/spec/${k}`, "unknown field (not in the schema)");
  }
  const predictor = asObject(spec.predictor);
  if (!predictor) {
    add("/spec/predictor", "is required");
    return problems;
  }
  const podSpec: JsonObject = {};
  for (const [k, v] of Object.entries(predictor)) {
    const check = KSERVE_EXTENSION[k];
    if (check) {
      const msg = check(v);
      if (msg) add(`/spec/predictor/${k}`, msg);
    } else if (KSERVE_FRAMEWORKS.includes(k) || KSERVE_PREDICTOR_OTHER.includes(k)) {
      if (!asObject(v) && !Array.isArray(v)) add(`/spec/predictor/${k}`, "must be an object");
    } else {
      podSpec[k] = v;
    }
  }
  const min = predictor.minReplicas, max = predictor.maxReplicas;
  if (typeof min === "number" && typeof max === "number" && max !== 0 && min > max) {
    add("/spec/predictor/minReplicas", `must be <= maxReplicas (${max}): got ${min}`);
  }
  const frameworks = KSERVE_FRAMEWORKS.filter((k) => k in predictor);
  const hasContainers = Array.isArray(podSpec.containers) && podSpec.containers.length > 0;
  if (frameworks.length + (hasContainers ? 1 : 0) !== 1) {
    add("/spec/predictor", `exactly one of [${KSERVE_FRAMEWORKS.join(", ")}] or containers must be given`);
  }
  if (hasContainers) problems.push(...strict(podSpecValidator, podSpec, "/spec/predictor"));
  return problems;
}

// ---- Knative field masks -----------------------------------------------------------------------------------------

/** Feature flags (config-features) that unlock parts of a PodSpec in Knative Serving. */
export const KNATIVE_FEATURE_FLAGS: Readonly<Record<string, string>> = {
  affinity: "kubernetes.podspec-affinity",
  hostAliases: "kubernetes.podspec-hostaliases",
  nodeSelector: "kubernetes.podspec-nodeselector",
  runtimeClassName: "kubernetes.podspec-runtimeclassname",
  tolerations: "kubernetes.podspec-tolerations",
  securityContext: "kubernetes.podspec-securitycontext",
  priorityClassName: "kubernetes.podspec-priorityclassname",
  schedulerName: "kubernetes.podspec-schedulername",
  initContainers: "kubernetes.podspec-init-containers",
  emptyDir: "kubernetes.podspec-emptydir",
  persistentVolumeClaim: "kubernetes.podspec-persistent-volume-claim",
};

const KNATIVE_POD_FIELDS = [
  "serviceAccountName",
  "containers",
  "volumes",
  "imagePullSecrets",
  "enableServiceLinks",
  "automountServiceAccountToken",
  // RevisionSpec's own fields
  "containerConcurrency",
  "timeoutSeconds",
  "responseStartTimeoutSeconds",
  "idleTimeoutSeconds",
];
const KNATIVE_CONTAINER_FIELDS = [
  "name",
  "args",
  "command",
  "env",
  "workingDir",
  "envFrom",
  "image",
  "imagePullPolicy",
  "livenessProbe",
  "ports",
  "readinessProbe",
  "resources",
  "securityContext",
  "terminationMessagePath",
  "terminationMessagePolicy",
  "volumeMounts",
];
const KNATIVE_PROBE_FIELDS = [
  "exec",
  "httpGet",
  "tcpSocket",
  "initialDelaySeconds",
  "timeoutSeconds",
  "periodSeconds",
  "successThreshold",
  "failureThreshold",
];
const KNATIVE_VOLUME_SOURCES = ["secret", "configMap", "projected"];
const KNATIVE_MOUNT_FIELDS = ["name", "readOnly", "mountPath", "subPath"];
/** Environment variables Knative sets itself and refuses in a revision. */
const KNATIVE_RESERVED_ENV = ["PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"];

/** What Knative's field masks say about a revision's pod spec. */
export interface KnativeFieldReport {
  /** Fields Knative rejects. */
  problems: SchemaProblem[];
  /** Feature flags the spec needs enabled, with the field that needs each. */
  featureFlags: { flag: string; path: string }[];
}

/**
 * Checks a revision template's `spec` (a PodSpec plus RevisionSpec fields) against Knative Serving's field masks:
 * disallowed fields are problems, feature-gated ones are reported with the flag they need. `prefix` is the JSON
 * pointer of `spec` in the manifest.
 */
export function knativeFieldProblems(spec: JsonObject, prefix: string): KnativeFieldReport {
  const problems: SchemaProblem[] = [];
  const featureFlags: { flag: string; path: string }[] = [];
  const gate = (field: string, path: string) => {
    const flag = KNATIVE_FEATURE_FLAGS[field];
    if (flag) featureFlags.push({ flag, path });
    else problems.push({ path, message: "not allowed by Knative Serving" });
  };
  for (const k of Object.keys(spec)) {
    if (KNATIVE_POD_FIELDS.includes(k)) continue;
    gate(k, `${prefix}/${k}`);
  }
  if (spec.automountServiceAccountToken === true) {
    problems.push({ path: `${prefix}/automountServiceAccountToken`, message: "Knative only accepts false" });
  }
  const containers = asObjects(spec.containers);
  if (containers.filter((c) => asObjects(c.ports).length > 0).length > 1) {
    problems.push({ path: `${prefix}/containers`, message: "only one container may declare ports" });
  }
  containers.forEach((c, i) => {
    const cp = `${prefix}/containers/${i}`;
    for (const k of Object.keys(c)) {
      if (!KNATIVE_CONTAINER_FIELDS.includes(k)) {
        problems.push({ path: `${cp}/${k}`, message: "not allowed by Knative Serving" });
      }
    }
    for (const probe of ["livenessProbe", "readinessProbe"]) {
      const p = asObject(c[probe]);
      for (const k of Object.keys(p ?? {})) {
        if (!KNATIVE_PROBE_FIELDS.includes(k)) {
          problems.push({ path: `${cp}/${probe}/${k}`, message: "not allowed by Knative Serving" });
        }
      }
    }
    asObjects(c.env).forEach((e, j) => {
      if (KNATIVE_RESERVED_ENV.includes(String(e.name))) {
        problems.push({ path: `${cp}/env/${j}/name`, message: `${e.name} is reserved: Knative sets it` });
      }
    });
    asObjects(c.volumeMounts).forEach((m, j) => {
      for (const k of Object.keys(m)) {
        if (!KNATIVE_MOUNT_FIELDS.includes(k)) {
          problems.push({ path: `${cp}/volumeMounts/${j}/${k}`, message: "not allowed by Knative Serving" });
        }
      }
    });
  });
  asObjects(spec.volumes).forEach((v, i) => {
    for (const k of Object.keys(v)) {
      if (k === "name" || KNATIVE_VOLUME_SOURCES.includes(k)) continue;
      gate(k, `${prefix}/volumes/${i}/${k}`);
    }
  });
  return { problems, featureFlags };
}

// ---- Cloud Run ---------------------------------------------------------------------------------------------------

/** Service-level annotations the Cloud Run YAML reference (Admin API v1) documents. */
export const CLOUD_RUN_SERVICE_ANNOTATIONS = [
  "run.googleapis.com/launch-stage",
  "run.googleapis.com/description",
  "run.googleapis.com/ingress",
  "run.googleapis.com/binary-authorization",
  "run.googleapis.com/binary-authorization-breakglass",
  "run.googleapis.com/minScale",
  "run.googleapis.com/maxScale",
  "run.googleapis.com/invoker-iam-disabled",
  "run.googleapis.com/iap-enabled",
  "run.googleapis.com/scalingMode",
  "run.googleapis.com/manualInstanceCount",
  "run.googleapis.com/custom-audiences",
];

/** Revision-template annotations the Cloud Run YAML reference documents. */
export const CLOUD_RUN_REVISION_ANNOTATIONS = [
  "autoscaling.knative.dev/minScale",
  "autoscaling.knative.dev/maxScale",
  "run.googleapis.com/cpu-throttling",
  "run.googleapis.com/startup-cpu-boost",
  "run.googleapis.com/sessionAffinity",
  "run.googleapis.com/cloudsql-instances",
  "run.googleapis.com/execution-environment",
  "run.googleapis.com/vpc-access-connector",
  "run.googleapis.com/vpc-access-egress",
  "run.googleapis.com/network-interfaces",
  "run.googleapis.com/encryption-key",
  "run.googleapis.com/container-dependencies",
  "run.googleapis.com/gpu-zonal-redundancy-disabled",
  "run.googleapis.com/scaling-cpu-target",
  "run.googleapis.com/scaling-concurrency-target",
];

const CLOUD_RUN_CONTAINER_FIELDS = [
  "name",
  "image",
  "command",
  "args",
  "env",
  "resources",
  "ports",
  "volumeMounts",
  "startupProbe",
  "livenessProbe",
  "workingDir",
];
const CLOUD_RUN_SPEC_FIELDS = [
  "containerConcurrency",
  "timeoutSeconds",
  "serviceAccountName",
  "containers",
  "volumes",
  "nodeSelector",
  "runtimeClassName",
];
/** GPU types and the smallest CPU / memory (GiB) each needs (Cloud Run GPU page). */
export const CLOUD_RUN_GPUS: Readonly<Record<string, { cpu: number; memoryGiB: number }>> = {
  "nvidia-l4": { cpu: 4, memoryGiB: 16 },
  "nvidia-rtx-pro-6000": { cpu: 20, memoryGiB: 80 },
};

/** A Kubernetes quantity (`"8"`, `"500m"`, `"32Gi"`, `"16G"`) as a number of units (cores or bytes). */
export function parseQuantity(q: unknown): number {
  const text = String(q);
  const m = /^([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(text);
  if (!m) return NaN;
  const n = Number(m[1]);
  const unit: Record<string, number> = {
    m: 1e-3,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
  };
  return m[2] ? n * unit[m[2]]! : n;
}

/**
 * Cloud Run's own rules for a service YAML, on top of the Knative `Service` schema: documented annotations only,
 * the container fields Cloud Run accepts, one serving container whose probes use its port, no reserved environment
 * variables, timeouts in range, and for a GPU: a supported accelerator in `nodeSelector`, its minimum CPU and memory,
 * and CPU always allocated (`run.googleapis.com/cpu-throttling: "false"`); Cloud Storage volumes need the gen2
 * execution environment.
 */
export function cloudRunProblems(service: JsonObject): SchemaProblem[] {
  const problems: SchemaProblem[] = [];
  const add = (path: string, message: string) => problems.push({ path, message });
  for (const k of Object.keys(asObject(at(service, "metadata.annotations")) ?? {})) {
    if (!CLOUD_RUN_SERVICE_ANNOTATIONS.includes(k)) {
      add(`/metadata/annotations/${k}`, "not a Cloud Run service annotation");
    }
  }
  const revAnnotations = asObject(at(service, "spec.template.metadata.annotations")) ?? {};
  for (const k of Object.keys(revAnnotations)) {
    if (!CLOUD_RUN_REVISION_ANNOTATIONS.includes(k)) {
      add(`/spec/template/metadata/annotations/${k}`, "not a Cloud Run revision annotation");
    }
  }
  const spec = asObject(at(service, "spec.template.spec")) ?? {};
  const sp = "/spec/template/spec";
  for (const k of Object.keys(spec)) {
    if (!CLOUD_RUN_SPEC_FIELDS.includes(k)) add(`${sp}/${k}`, "not supported by Cloud Run");
  }
  const timeout = spec.timeoutSeconds;
  if (
    timeout !== undefined && !(Number.isInteger(timeout) && (timeout as number) >= 1 && (timeout as number) <= 3600)
  ) {
    add(`${sp}/timeoutSeconds`, `must be an integer in [1, 3600]: got ${timeout}`);
  }
  const cc = spec.containerConcurrency;
  if (cc !== undefined && !(Number.isInteger(cc) && (cc as number) >= 1 && (cc as number) <= 1000)) {
    add(`${sp}/containerConcurrency`, `must be an integer in [1, 1000]: got ${cc}`);
  }
  const containers = asObjects(spec.containers);
  const serving = containers.filter((c) => asObjects(c.ports).length > 0);
  if (serving.length !== 1) add(`${sp}/containers`, "exactly one container must declare a port");
  containers.forEach((c, i) => {
    const cp = `${sp}/containers/${i}`;
    for (const k of Object.keys(c)) {
      if (!CLOUD_RUN_CONTAINER_FIELDS.includes(k)) add(`${cp}/${k}`, "not supported by Cloud Run");
    }
    const ports = asObjects(c.ports);
    if (ports.length > 1) add(`${cp}/ports`, "Cloud Run routes to one port");
    const port = ports[0]?.containerPort;
    if (ports[0] && !["http1", "h2c", undefined].includes(ports[0].name as string | undefined)) {
      add(`${cp}/ports/0/name`, "must be http1 or h2c");
    }
    for (const probe of ["startupProbe", "livenessProbe"]) {
      const get = asObject(at(c, `${probe}.httpGet`));
      if (get && get.port !== undefined && get.port !== port) {
        add(`${cp}/${probe}/httpGet/port`, `must be the container port ${port}: got ${get.port}`);
      }
    }
    asObjects(c.env).forEach((e, j) => {
      if (KNATIVE_RESERVED_ENV.includes(String(e.name))) {
        add(`${cp}/env/${j}/name`, `${e.name} is reserved: Cloud Run sets it`);
      }
    });
    const limits = asObject(at(c, "resources.limits")) ?? {};
    if (limits["nvidia.com/gpu"] !== undefined) {
      const accel = String(asObject(spec.nodeSelector)?.["run.googleapis.com/accelerator"] ?? "");
      const need = CLOUD_RUN_GPUS[accel];
      if (!need) {
        add(
          `${sp}/nodeSelector`,
          `run.googleapis.com/accelerator must be one of ${Object.keys(CLOUD_RUN_GPUS).join(", ")}`,
        );
      } else {
        if (!(parseQuantity(limits.cpu) >= need.cpu)) {
          add(`${cp}/resources/limits/cpu`, `${accel} needs at least ${need.cpu} CPUs`);
        }
        if (!(parseQuantity(limits.memory) >= need.memoryGiB * 2 ** 30)) {
          add(`${cp}/resources/limits/memory`, `${accel} needs at least ${need.memoryGiB}Gi`);
        }
      }
      if (String(limits["nvidia.com/gpu"]) !== "1") {
        add(`${cp}/resources/limits/nvidia.com~1gpu`, "Cloud Run attaches one GPU");
      }
      if (revAnnotations["run.googleapis.com/cpu-throttling"] !== "false") {
        add("/spec/template/metadata/annotations", 'a GPU needs run.googleapis.com/cpu-throttling: "false"');
      }
    }
  });
  const usesGcs = asObjects(spec.volumes).some((v) => at(v, "csi.driver") === "gcsfuse.run.googleapis.com");
  if (usesGcs && revAnnotations["run.googleapis.com/execution-environment"] !== "gen2") {
    add(
      "/spec/template/metadata/annotations",
      "Cloud Storage volumes need run.googleapis.com/execution-environment: gen2",
    );
  }
  return problems;
}
