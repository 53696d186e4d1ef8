/**
 * Where the deployment files are, and the environment variables they may set that the server does not read
 * (each with the reason), so that the checks cover every file and every name.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { listFiles, readYamlDocuments, type YamlDocument } from "./yaml_files.ts";

/** The repository root (two levels above this file). */
export const REPO_ROOT: string = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/$/, "");

/** Folders holding Kubernetes-style manifests (Kubernetes, Knative, KServe, Cloud Run). */
export const MANIFEST_DIRS: readonly string[] = ["infra/k8s", "infra/knative", "infra/kserve", "infra/cloudrun"];

/** The Dockerfile, relative to the root. */
export const DOCKERFILE = "infra/docker/Dockerfile";

/** The compose file, relative to the root. */
export const COMPOSE_FILE = "infra/compose.yaml";

/** The compose env-file template, relative to the root. */
export const ENV_EXAMPLE = "infra/ldm.env.example";

/** The image targets users build. */
export const IMAGE_TARGETS: readonly string[] = ["gpu", "cpu"];

/**
 * Variables set on server containers that are read by the platform, not by the server.
 */
export const PLATFORM_ENV: Readonly<Record<string, string>> = {
  STORAGE_URI: "KServe's pod mutator mounts the model PVC from it (kserve/inferenceservice.yaml)",
};

/** Variables the Dockerfile sets that are for the runtime, the NVIDIA container runtime or the build. */
export const IMAGE_ENV: Readonly<Record<string, string>> = {
  NVIDIA_VISIBLE_DEVICES: "NVIDIA container runtime: which GPUs to expose",
  NVIDIA_DRIVER_CAPABILITIES: "NVIDIA container runtime: compute (CUDA), utility, graphics (Vulkan for WebGPU)",
  DENO_DIR: "Deno's cache directory",
  DENO_NO_UPDATE_CHECK: "Deno: no update check at start",
  ONNXRUNTIME_NODE_INSTALL: "build stage only: onnxruntime-node's install script manifest (cuda12 or skip)",
};

/** Every YAML document under {@linkcode MANIFEST_DIRS}, Kustomization files included. */
export async function loadManifestDocuments(root = REPO_ROOT): Promise<YamlDocument[]> {
  const docs: YamlDocument[] = [];
  for (const dir of MANIFEST_DIRS) {
    for (const file of await listFiles(root, dir, [".yaml", ".yml"])) docs.push(...await readYamlDocuments(root, file));
  }
  return docs;
}
