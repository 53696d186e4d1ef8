/**
 * Checks of `infra/compose.yaml` against the Compose Specification (compose-spec/compose-spec
 * `schema/compose-spec.json`): the property names it allows at the top level, in a service, in `deploy`,
 * device reservations, healthchecks, volumes and long-form mounts, plus the types of the fields this project uses.
 * No engine needed; `docker compose config` does the same where Docker exists.
 *
 * @module
 */
import type { SchemaProblem } from "./k8s_validate.ts";
import { asObject, asObjects, type JsonObject } from "./yaml_files.ts";

const TOP = ["version", "name", "include", "services", "models", "networks", "volumes", "secrets", "configs"];
const SERVICE = [
  "annotations",
  "attach",
  "blkio_config",
  "build",
  "cap_add",
  "cap_drop",
  "cgroup",
  "cgroup_parent",
  "command",
  "configs",
  "container_name",
  "cpu_count",
  "cpu_percent",
  "cpu_period",
  "cpu_quota",
  "cpu_rt_period",
  "cpu_rt_runtime",
  "cpu_shares",
  "cpus",
  "cpuset",
  "credential_spec",
  "depends_on",
  "deploy",
  "develop",
  "device_cgroup_rules",
  "devices",
  "dns",
  "dns_opt",
  "dns_search",
  "domainname",
  "entrypoint",
  "env_file",
  "environment",
  "expose",
  "extends",
  "external_links",
  "extra_hosts",
  "gpus",
  "group_add",
  "healthcheck",
  "hostname",
  "image",
  "init",
  "ipc",
  "isolation",
  "label_file",
  "labels",
  "links",
  "logging",
  "mac_address",
  "mem_limit",
  "mem_reservation",
  "mem_swappiness",
  "memswap_limit",
  "models",
  "network_mode",
  "networks",
  "oom_kill_disable",
  "oom_score_adj",
  "pid",
  "pids_limit",
  "platform",
  "ports",
  "post_start",
  "pre_stop",
  "privileged",
  "profiles",
  "provider",
  "pull_policy",
  "pull_refresh_after",
  "read_only",
  "restart",
  "runtime",
  "scale",
  "secrets",
  "security_opt",
  "shm_size",
  "stdin_open",
  "stop_grace_period",
  "stop_signal",
  "storage_opt",
  "sysctls",
  "tmpfs",
  "tty",
  "ulimits",
  "use_api_socket",
  "user",
  "userns_mode",
  "uts",
  "volumes",
  "volumes_from",
  "working_dir",
];
const BUILD = [
  "context",
  "dockerfile",
  "dockerfile_inline",
  "entitlements",
  "args",
  "ssh",
  "labels",
  "cache_from",
  "cache_to",
  "no_cache",
  "additional_contexts",
  "network",
  "pull",
  "target",
  "shm_size",
  "extra_hosts",
  "isolation",
  "privileged",
  "secrets",
  "tags",
  "ulimits",
  "platforms",
];
const DEPLOY = [
  "endpoint_mode",
  "labels",
  "mode",
  "placement",
  "replicas",
  "resources",
  "restart_policy",
  "rollback_config",
  "update_config",
];
const RESOURCES = ["limits", "reservations"];
const RESERVATIONS = ["cpus", "devices", "generic_resources", "memory"];
const DEVICE = ["capabilities", "count", "device_ids", "driver", "options"];
const HEALTHCHECK = ["disable", "interval", "retries", "start_interval", "start_period", "test", "timeout"];
const VOLUME = ["driver", "driver_opts", "external", "labels", "name"];
const MOUNT = ["type", "source", "target", "read_only", "consistency", "bind", "volume", "tmpfs", "image"];
const MOUNT_TYPES = ["bind", "volume", "tmpfs", "cluster", "npipe", "image"];
const ENV_FILE = ["path", "format", "required"];
const RESTART = ["no", "always", "on-failure", "unless-stopped"];

/** A Compose duration (`35s`, `1m30s`, `500ms`) in seconds. */
export function parseDuration(text: unknown): number {
  const s = String(text);
  const re = /(\d+(?:\.\d+)?)(us|ms|s|m|h)/g;
  let total = 0, consumed = 0;
  for (const m of s.matchAll(re)) {
    const n = Number(m[1]);
    total += n * { us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 }[m[2] as "us" | "ms" | "s" | "m" | "h"];
    consumed += m[0].length;
  }
  return consumed === s.length && consumed > 0 ? total : NaN;
}

/**
 * Checks a parsed compose file (merge keys resolved). `targets` are the Dockerfile's stage names, so that
 * `build.target` must name one.
 */
export function composeProblems(compose: JsonObject, targets: readonly string[]): SchemaProblem[] {
  const problems: SchemaProblem[] = [];
  const add = (path: string, message: string) => problems.push({ path, message });
  const keys = (o: JsonObject | undefined, allowed: readonly string[], path: string) => {
    for (const k of Object.keys(o ?? {})) {
      if (!allowed.includes(k) && !k.startsWith("x-")) add(`${path}/${k}`, "not in the Compose Specification");
    }
  };
  keys(compose, TOP, "");
  const volumes = asObject(compose.volumes) ?? {};
  for (const [name, v] of Object.entries(volumes)) keys(asObject(v) ?? {}, VOLUME, `/volumes/${name}`);
  const services = asObject(compose.services);
  if (!services || Object.keys(services).length === 0) add("/services", "must define at least one service");
  for (const [name, raw] of Object.entries(services ?? {})) {
    const sp = `/services/${name}`;
    if (!/^[a-zA-Z0-9._-]+$/.test(name)) add(sp, "service names are [a-zA-Z0-9._-]+");
    const svc = asObject(raw);
    if (!svc) {
      add(sp, "must be a mapping");
      continue;
    }
    keys(svc, SERVICE, sp);
    if (!svc.image && !svc.build) add(sp, "needs image or build");
    const build = asObject(svc.build);
    if (build) {
      keys(build, BUILD, `${sp}/build`);
      if (build.target !== undefined && !targets.includes(String(build.target))) {
        add(`${sp}/build/target`, `is not a stage of the Dockerfile (${targets.join(", ")}): got ${build.target}`);
      }
    }
    if (svc.restart !== undefined && !RESTART.includes(String(svc.restart))) {
      add(`${sp}/restart`, "unknown restart policy");
    }
    if (svc.stop_grace_period !== undefined && Number.isNaN(parseDuration(svc.stop_grace_period))) {
      add(`${sp}/stop_grace_period`, `is not a duration: ${svc.stop_grace_period}`);
    }
    const env = svc.environment;
    if (env !== undefined && !asObject(env) && !Array.isArray(env)) {
      add(`${sp}/environment`, "must be a mapping or a list");
    }
    for (const [k, v] of Object.entries(asObject(env) ?? {})) {
      if (v !== null && !["string", "number", "boolean"].includes(typeof v)) {
        add(`${sp}/environment/${k}`, "must be a scalar");
      }
    }
    const envFiles = Array.isArray(svc.env_file) ? svc.env_file : svc.env_file === undefined ? [] : [svc.env_file];
    envFiles.forEach((f, i) => {
      if (typeof f !== "string") keys(asObject(f), ENV_FILE, `${sp}/env_file/${i}`);
    });
    keys(asObject(svc.healthcheck), HEALTHCHECK, `${sp}/healthcheck`);
    const deploy = asObject(svc.deploy);
    keys(deploy, DEPLOY, `${sp}/deploy`);
    const resources = asObject(deploy?.resources);
    keys(resources, RESOURCES, `${sp}/deploy/resources`);
    const reservations = asObject(resources?.reservations);
    keys(reservations, RESERVATIONS, `${sp}/deploy/resources/reservations`);
    asObjects(reservations?.devices).forEach((d, i) => {
      const dp = `${sp}/deploy/resources/reservations/devices/${i}`;
      keys(d, DEVICE, dp);
      if (!Array.isArray(d.capabilities) || d.capabilities.length === 0) add(`${dp}/capabilities`, "is required");
    });
    (Array.isArray(svc.volumes) ? svc.volumes : []).forEach((m, i) => {
      const mp = `${sp}/volumes/${i}`;
      if (typeof m === "string") {
        const source = m.split(":")[0]!;
        if (!source.startsWith(".") && !source.startsWith("/") && !source.startsWith("$") && !(source in volumes)) {
          add(mp, `named volume ${source} is not declared under volumes`);
        }
        return;
      }
      const mount = asObject(m);
      keys(mount, MOUNT, mp);
      if (!MOUNT_TYPES.includes(String(mount?.type))) add(`${mp}/type`, `must be one of ${MOUNT_TYPES.join(", ")}`);
      if (mount?.type === "volume" && !(String(mount.source) in volumes)) {
        add(`${mp}/source`, `named volume ${mount.source} is not declared under volumes`);
      }
    });
  }
  return problems;
}

/** The devices a service reserves with `driver: nvidia`, with their capabilities. */
export function gpuReservations(service: JsonObject): { count: unknown; capabilities: string[] }[] {
  const devices = asObjects(asObject(asObject(asObject(service.deploy)?.resources)?.reservations)?.devices);
  return devices
    .filter((d) => d.driver === "nvidia")
    .map((d) => ({ count: d.count, capabilities: Array.isArray(d.capabilities) ? d.capabilities.map(String) : [] }));
}
