/**
 * Offline checks of the deployment files in `infra/`, used by `deno task infra:check` (`infra/check.ts`) and the
 * `tests/infra_*_test.ts` suites. Nothing here needs a container engine or a cluster.
 *
 * - `yaml_files.ts`: reading every YAML document of a file ({@linkcode readYamlDocuments}).
 * - `k8s_validate.ts`: Kubernetes, KEDA, Knative and Prometheus Operator objects against the `kubernetes-models`
 *   schemas with unknown-field detection ({@linkcode validateManifest}); KServe's InferenceService against its
 *   encoded fields ({@linkcode validateInferenceService}); Knative's field masks ({@linkcode knativeFieldProblems});
 *   Cloud Run's limits ({@linkcode cloudRunProblems}).
 * - `compose_check.ts`: `compose.yaml` against the Compose Specification's property names
 *   ({@linkcode composeProblems}).
 * - `dockerfile.ts` and `dockerignore.ts`: a Dockerfile parser and the lint rules hadolint would apply that matter
 *   here ({@linkcode lintDockerfile}, {@linkcode lintTarget}), and `.dockerignore` matching.
 * - `workloads.ts`: each manifest's server container reduced to what must agree with the application: environment,
 *   listening port, probes, shutdown timing ({@linkcode serverWorkloads}).
 *
 * @example Validating one manifest
 * ```ts ignore
 * import { readYamlDocuments, validateManifest } from "./mod.ts";
 *
 * for (const doc of await readYamlDocuments(".", "infra/k8s/deployment.yaml")) {
 *   console.log(validateManifest(doc.value)); // [] when valid
 * }
 * ```
 *
 * @module
 */
export { asObject, asObjects, at, listFiles, parseYamlDocuments, readYamlDocuments } from "./yaml_files.ts";
export type { JsonObject, YamlDocument } from "./yaml_files.ts";
export {
  CLOUD_RUN_GPUS,
  CLOUD_RUN_REVISION_ANNOTATIONS,
  CLOUD_RUN_SERVICE_ANNOTATIONS,
  cloudRunProblems,
  kindOf,
  KNATIVE_FEATURE_FLAGS,
  knativeFieldProblems,
  MODEL_KINDS,
  parseQuantity,
  unknownFields,
  validateInferenceService,
  validateManifest,
} from "./k8s_validate.ts";
export type { KnativeFieldReport, SchemaProblem, Validator } from "./k8s_validate.ts";
export { composeProblems, gpuReservations, parseDuration } from "./compose_check.ts";
export {
  copyParts,
  effective,
  isPinnedImage,
  jsonForm,
  lintDockerfile,
  lintTarget,
  parseDockerfile,
  stageChain,
  stageNamed,
  substitute,
} from "./dockerfile.ts";
export type { Dockerfile, Instruction, LintProblem, Stage } from "./dockerfile.ts";
export { parseDockerignore } from "./dockerignore.ts";
export {
  commandOptions,
  exposedMetricFamilies,
  IMAGE_DEFAULT_PORT,
  metricNamesIn,
  SERVER_IMAGE_NAME,
  serverWorkloads,
} from "./workloads.ts";
export type { HttpProbe, ServerWorkload } from "./workloads.ts";
export {
  COMPOSE_FILE,
  DOCKERFILE,
  ENV_EXAMPLE,
  IMAGE_ENV,
  IMAGE_TARGETS,
  loadManifestDocuments,
  MANIFEST_DIRS,
  PLATFORM_ENV,
  REPO_ROOT,
} from "./inventory.ts";
