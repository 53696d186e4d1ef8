/**
 * Downloads a diffusers Latent Diffusion pipeline from the Hugging Face Hub and converts it with the project's
 * converter ({@linkcode convertPipeline}, the code behind `deno task convert`) into a converted repository that
 * the functions serve. The Kubernetes init container, the model Job, the compose `convert` service and the image's
 * optional bake stage all run this script:
 *
 * ```sh
 * deno run -A infra/scripts/prepare_model.ts --repo CompVis/ldm-text2im-large-256 --revision <commit> \
 *   --out /models/ldm-text2im-large-256 [--dtype fp16] [--variant fp16] [--token-file /var/run/secrets/hf/token]
 * ```
 *
 * It is idempotent and safe to run from many pods sharing one volume:
 * 1. `<out>` already holding a repository prepared from the same repo, revision and dtype (recorded in the sibling
 *    `<out>.prepared.json`) → exit 0 without touching the network.
 * 2. Otherwise it takes the lock `<out>.lock` (an atomic `mkdir`, refreshed every 30 s). A pod that finds the lock
 *    held waits for the holder to finish, or takes the lock over once it is stale (no refresh for 10 minutes).
 * 3. Lists the revision's files (`/api/models/<repo>/revision/<rev>?blobs=true`), downloads `model_index.json`,
 *    then for each component the configs and one set of weights in diffusers' order of preference (safetensors,
 *    else `.bin`; the `--variant` files when asked), into `<out>.download/`, checking sizes and the LFS SHA-256.
 * 4. Converts into `<out>` (the converter writes atomically), writes `<out>.prepared.json`, removes the download.
 *
 * The hub token comes from `--token-file` (a mounted Secret; a missing file means none) or `HF_TOKEN`; it is sent
 * only to the hub endpoint and never logged. `HF_ENDPOINT` changes the hub URL (a mirror). Logs are JSON lines on
 * stderr. Exit codes: 0 done (or already prepared), 1 failed, 2 usage error.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { convertPipeline, readManifest } from "@ldm/models/convert";

/** Environment variables this script reads (checked against the manifests that run it). */
export const PREPARE_ENV_VARIABLES: readonly string[] = ["HF_TOKEN", "HF_ENDPOINT"];

/** Default hub endpoint. */
export const DEFAULT_ENDPOINT = "https://huggingface.co";

/** Options of {@linkcode prepareModel}. */
export interface PrepareOptions {
  /** Hub repository id, `owner/name`. */
  repo: string;
  /** Branch, tag or commit. @default "main" */
  revision?: string;
  /** Converted repository to write. */
  out: string;
  /** Graph weight precision. @default "fp32" */
  dtype?: "fp32" | "fp16";
  /** Source weights variant to download (`fp16` → `*.fp16.safetensors`). */
  variant?: string;
  /** Bearer token for gated or private repositories. */
  token?: string;
  /** Hub base URL. @default {@linkcode DEFAULT_ENDPOINT} */
  endpoint?: string;
  /** Keep `<out>.download/` after converting. @default false */
  keepDownload?: boolean;
  /** Seconds without a lock refresh after which a lock counts as abandoned. @default 600 */
  staleLockSeconds?: number;
  /** Longest wait for another holder of the lock, in seconds. @default 7200 */
  lockTimeoutSeconds?: number;
  /** Injected fetch (tests). @default globalThis.fetch */
  fetch?: typeof fetch;
  /** JSON-lines logger. @default writes to stderr */
  log?: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
  /** Milliseconds between lock polls. @default 5000 */
  pollMs?: number;
}

/** What {@linkcode prepareModel} did. */
export interface PrepareResult {
  /** `"converted"`, or `"present"` when `<out>` already held this model. */
  outcome: "converted" | "present";
  /** Absolute path of the converted repository. */
  out: string;
  /** Commit the revision resolved to (from the marker when present). */
  commit: string;
  /** Bytes downloaded (0 when present). */
  downloadedBytes: number;
}

/** One file of a hub revision, as `/api/models/<repo>/revision/<rev>?blobs=true` lists it. */
export interface HubFile {
  rfilename: string;
  size?: number;
  lfs?: { sha256: string; size: number };
}

/** The sibling marker that records what `<out>` was prepared from. */
export interface PreparedMarker {
  repo: string;
  revision: string;
  commit: string;
  dtype: "fp32" | "fp16";
  variant: string | null;
  preparedAt: string;
}

/** The hub answered with a non-2xx status. */
export class HubStatusError extends Error {
  /** Builds the message from the URL and status, with a hint for 401/403. */
  constructor(readonly url: string, readonly status: number) {
    super(
      `GET ${url} answered ${status}` +
        (status === 401 || status === 403
          ? " (gated or private: provide a token through --token-file or HF_TOKEN)"
          : ""),
    );
    this.name = "HubStatusError";
  }
}

const REPO_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;
const REVISION_RE = /^[A-Za-z0-9][A-Za-z0-9._\/-]*$/;
const CONFIG_FILE_RE = /\.(json|txt|model)$/;

/** Splits a weights file name into its variant (`null` for none) and extension; `null` for other files. */
function weightsName(name: string): { variant: string | null; ext: "safetensors" | "bin"; index: boolean } | null {
  const index = /^([^.]+)\.(safetensors|bin)\.index(?:\.([A-Za-z0-9_-]+))?\.json$/.exec(name);
  if (index) return { variant: index[3] ?? null, ext: index[2] as "safetensors" | "bin", index: true };
  const m = /^(.+)\.(safetensors|bin)$/.exec(name);
  if (!m) return null;
  // Shards are numbered "-00001-of-00002" before or after the variant; what is left is "<stem>[.<variant>]".
  const rest = m[1]!.replace(/-\d+-of-\d+/g, "");
  const dot = rest.indexOf(".");
  return { variant: dot < 0 ? null : rest.slice(dot + 1), ext: m[2] as "safetensors" | "bin", index: false };
}

/**
 * The files to download for a pipeline: `model_index.json`, and in each component folder named by it every config
 * (`*.json`, `*.txt`, `*.model`) plus one weights set, chosen like diffusers' `from_pretrained`: safetensors before
 * `.bin`; with `variant` the `<stem>.<variant>.<ext>` files, otherwise the files without a variant. Sharded weights
 * bring their index and every shard.
 *
 * @throws {Error} when there is no `model_index.json`, or naming the component when it has weights but none of the
 * asked variant.
 */
export function selectFiles(files: readonly HubFile[], components: readonly string[], variant?: string): HubFile[] {
  const root = files.find((f) => f.rfilename === "model_index.json");
  if (!root) throw new Error("the revision has no model_index.json: not a diffusers pipeline");
  const picked: HubFile[] = [root];
  const want = variant ?? null;
  for (const component of components) {
    const inDir = files
      .filter((f) => f.rfilename.startsWith(`${component}/`))
      .map((f) => ({ file: f, name: f.rfilename.slice(component.length + 1) }))
      .filter((e) => !e.name.includes("/"));
    const weights = inDir.map((e) => ({ ...e, w: weightsName(e.name) })).filter((e) => e.w !== null);
    const configs = inDir.filter((e) => CONFIG_FILE_RE.test(e.name) && weightsName(e.name) === null);
    let chosen: HubFile[] = [];
    for (const ext of ["safetensors", "bin"] as const) {
      const set = weights.filter((e) => e.w!.ext === ext && e.w!.variant === want);
      if (set.some((e) => !e.w!.index)) {
        chosen = set.map((e) => e.file);
        break;
      }
    }
    if (chosen.length === 0 && weights.length > 0) {
      throw new Error(
        `component ${component} has no ${want ? `"${want}" variant ` : "non-variant "}weights: found ${
          weights.map((e) => e.file.rfilename).join(", ")
        }${want ? "" : " (pass --variant to use a variant)"}`,
      );
    }
    picked.push(...configs.map((e) => e.file), ...chosen);
  }
  return picked;
}

/** The model components a `model_index.json` names (its keys without a leading underscore). */
export function componentsOf(modelIndex: unknown): string[] {
  if (typeof modelIndex !== "object" || modelIndex === null || Array.isArray(modelIndex)) {
    throw new TypeError("model_index.json must be a JSON object");
  }
  return Object.keys(modelIndex).filter((k) =>
    !k.startsWith("_") && Array.isArray((modelIndex as Record<string, unknown>)[k])
  );
}

function stderrLog(level: string, msg: string, fields: Record<string, unknown> = {}): void {
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg, source: "prepare_model", ...fields });
  Deno.stderr.writeSync(new TextEncoder().encode(line + "\n"));
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function readMarker(path: string): Promise<PreparedMarker | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as PreparedMarker;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new Error(`${path} is not valid JSON: ${(e as Error).message}`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A lock directory with a heartbeat, so a crashed holder's lock can be recognised as stale. */
class DirLock {
  #timer: ReturnType<typeof setInterval> | undefined;
  constructor(readonly path: string) {}

  /** Tries once to take the lock. */
  async tryAcquire(): Promise<boolean> {
    try {
      await Deno.mkdir(this.path);
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) return false;
      throw e;
    }
    await this.#beat();
    this.#timer = setInterval(() => void this.#beat().catch(() => {}), 30_000);
    return true;
  }

  async #beat(): Promise<void> {
    await Deno.writeTextFile(join(this.path, "heartbeat"), `${Deno.hostname()} ${new Date().toISOString()}\n`);
  }

  /** Seconds since the holder last refreshed the lock, or null when there is no lock. */
  async age(): Promise<number | null> {
    for (const p of [join(this.path, "heartbeat"), this.path]) {
      try {
        const m = (await Deno.stat(p)).mtime;
        if (m) return (Date.now() - m.getTime()) / 1000;
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
    return null;
  }

  async release(): Promise<void> {
    clearInterval(this.#timer);
    await Deno.remove(this.path, { recursive: true }).catch(() => {});
  }
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/**
 * Downloads and converts one pipeline; see the module documentation for the steps.
 *
 * @throws {RangeError} naming the option when `repo`, `revision` or `dtype` is malformed.
 * @throws {Error} when the hub refuses the request (status and URL in the message), a download does not match its
 * listed size or SHA-256, `<out>` holds a different model, or the conversion fails.
 */
export async function prepareModel(options: PrepareOptions): Promise<PrepareResult> {
  const repo = options.repo;
  const revision = options.revision ?? "main";
  const dtype = options.dtype ?? "fp32";
  const variant = options.variant;
  if (!REPO_RE.test(repo)) throw new RangeError(`repo must look like owner/name: got ${JSON.stringify(repo)}`);
  if (!REVISION_RE.test(revision) || revision.includes("..")) {
    throw new RangeError(`revision must be a branch, tag or commit: got ${JSON.stringify(revision)}`);
  }
  if (dtype !== "fp32" && dtype !== "fp16") throw new RangeError(`dtype must be fp32 or fp16: got ${dtype}`);
  if (variant !== undefined && !/^[A-Za-z0-9_-]+$/.test(variant)) {
    throw new RangeError(`variant must be a word such as fp16: got ${JSON.stringify(variant)}`);
  }
  const endpoint = (options.endpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, "");
  const doFetch = options.fetch ?? globalThis.fetch;
  const log = options.log ?? stderrLog;
  const out = resolve(options.out);
  const markerPath = `${out}.prepared.json`;
  const downloadDir = `${out}.download`;
  const pollMs = options.pollMs ?? 5000;

  const matches = (m: PreparedMarker | null) =>
    m !== null && m.repo === repo && m.revision === revision && m.dtype === dtype &&
    (m.variant ?? null) === (variant ?? null);

  const present = async (): Promise<PrepareResult | null> => {
    const marker = await readMarker(markerPath);
    if (!(await exists(join(out, "ldm_onnx.json")))) return null;
    if (matches(marker)) {
      await readManifest(out); // throws on a damaged manifest rather than serving it
      return { outcome: "present", out, commit: marker!.commit, downloadedBytes: 0 };
    }
    const what = marker
      ? `${marker.repo}@${marker.revision} (${marker.dtype})`
      : "a repository this script did not prepare";
    throw new Error(
      `${out} already holds ${what}, not ${repo}@${revision} (${dtype}): choose another --out (one directory per ` +
        `model version) or remove it`,
    );
  };

  const done = await present();
  if (done) {
    log("info", "model already prepared", { repo, revision, out, commit: done.commit });
    return done;
  }

  await Deno.mkdir(dirname(out), { recursive: true });
  const lock = new DirLock(`${out}.lock`);
  const waitStarted = Date.now();
  while (!(await lock.tryAcquire())) {
    const age = await lock.age();
    if (age !== null && age > (options.staleLockSeconds ?? 600)) {
      log("warn", "taking over a stale lock", { lock: lock.path, age_s: Math.round(age) });
      await Deno.remove(lock.path, { recursive: true }).catch(() => {});
      continue;
    }
    if ((Date.now() - waitStarted) / 1000 > (options.lockTimeoutSeconds ?? 7200)) {
      throw new Error(`gave up waiting for ${lock.path} (held by another preparation)`);
    }
    log("info", "another preparation holds the lock; waiting", { lock: lock.path });
    await sleep(pollMs);
    const ready = await present();
    if (ready) return ready;
  }

  try {
    const again = await present();
    if (again) return again;

    const headers: HeadersInit = options.token ? { Authorization: `Bearer ${options.token}` } : {};
    /** Retries network errors, 429 and 5xx (three attempts); other statuses fail at once. */
    const retrying = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
      for (let attempt = 1;; attempt++) {
        try {
          return await fn();
        } catch (e) {
          const permanent = e instanceof HubStatusError && e.status < 500 && e.status !== 429;
          if (permanent || attempt >= 3) throw e;
          log("warn", "retrying", { what, attempt, error: e instanceof Error ? e.message : String(e) });
          await sleep(Math.min(pollMs, 1000) * attempt);
        }
      }
    };
    const get = async (url: string): Promise<Response> => {
      const res = await doFetch(url, { headers });
      if (res.ok) return res;
      await res.body?.cancel();
      throw new HubStatusError(url, res.status);
    };
    const getJson = (url: string) => retrying(url, async () => await (await get(url)).json());

    const listing = await getJson(
      `${endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`,
    ) as { sha?: string; siblings?: HubFile[] };
    const commit = listing.sha;
    if (typeof commit !== "string" || !Array.isArray(listing.siblings)) {
      throw new Error(`unexpected listing for ${repo}@${revision}: no sha or siblings`);
    }
    const resolveUrl = (path: string) =>
      `${endpoint}/${repo}/resolve/${commit}/${path.split("/").map(encodeURIComponent).join("/")}`;
    const modelIndex = await getJson(resolveUrl("model_index.json"));
    const files = selectFiles(listing.siblings, componentsOf(modelIndex), variant);
    const totalBytes = files.reduce((n, f) => n + (f.lfs?.size ?? f.size ?? 0), 0);
    log("info", "downloading", { repo, revision, commit, files: files.length, bytes: totalBytes });

    await Deno.mkdir(downloadDir, { recursive: true });
    let downloaded = 0;
    for (const f of files) {
      const dest = join(downloadDir, f.rfilename);
      const expectedSize = f.lfs?.size ?? f.size;
      if (await exists(dest)) {
        const size = (await Deno.stat(dest)).size;
        if (size === expectedSize && (!f.lfs || (await sha256OfFile(dest)) === f.lfs.sha256)) continue;
      }
      await Deno.mkdir(dirname(dest), { recursive: true });
      const part = `${dest}.part`;
      const size = await retrying(f.rfilename, async () => {
        const res = await get(resolveUrl(f.rfilename));
        // pipeTo closes the file when the body ends (and aborts it on error); closing it ourselves could drop
        // writes still in flight.
        const file = await Deno.open(part, { write: true, create: true, truncate: true });
        await res.body!.pipeTo(file.writable);
        const got = (await Deno.stat(part)).size;
        if (expectedSize !== undefined && got !== expectedSize) {
          throw new Error(`${f.rfilename}: downloaded ${got} bytes, the hub lists ${expectedSize}`);
        }
        return got;
      });
      if (f.lfs) {
        const sha = await sha256OfFile(part);
        if (sha !== f.lfs.sha256) throw new Error(`${f.rfilename}: sha256 ${sha}, the hub lists ${f.lfs.sha256}`);
      }
      await Deno.rename(part, dest);
      downloaded += size;
      log("info", "downloaded", { file: f.rfilename, bytes: size });
    }

    log("info", "converting", { out, dtype });
    const result = await convertPipeline(downloadDir, out, {
      dtype,
      ...(variant ? { variant } : {}),
      logger: { info: (msg) => log("info", msg), warn: (msg) => log("warn", msg) },
    });
    const marker: PreparedMarker = {
      repo,
      revision,
      commit,
      dtype,
      variant: variant ?? null,
      preparedAt: new Date().toISOString(),
    };
    await Deno.writeTextFile(`${markerPath}.tmp`, JSON.stringify(marker, null, 2) + "\n");
    await Deno.rename(`${markerPath}.tmp`, markerPath);
    if (!options.keepDownload) await Deno.remove(downloadDir, { recursive: true });
    log("info", "prepared", {
      out,
      commit,
      parameters: result.parameters,
      bytes: result.bytes,
      seconds: Math.round(result.seconds * 10) / 10,
    });
    return { outcome: "converted", out, commit, downloadedBytes: downloaded };
  } finally {
    await lock.release();
  }
}

const USAGE = `usage: deno run -A infra/scripts/prepare_model.ts --repo OWNER/NAME --out DIR [--revision REV]
       [--dtype fp32|fp16] [--variant fp16] [--token-file PATH] [--endpoint URL] [--keep-download]`;

/** Runs the command line; returns the exit code. */
export async function main(args: readonly string[], env: Record<string, string | undefined>): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        repo: { type: "string" },
        revision: { type: "string", default: "main" },
        out: { type: "string" },
        dtype: { type: "string", default: "fp32" },
        variant: { type: "string" },
        "token-file": { type: "string" },
        endpoint: { type: "string" },
        "keep-download": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (e) {
    stderrLog("error", `${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    Deno.stdout.writeSync(new TextEncoder().encode(USAGE + "\n"));
    return 0;
  }
  if (!values.repo || !values.out) {
    stderrLog("error", `--repo and --out are required\n${USAGE}`);
    return 2;
  }
  let token = env.HF_TOKEN?.trim() || undefined;
  if (values["token-file"]) {
    try {
      token = (await Deno.readTextFile(values["token-file"])).trim() || token;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        stderrLog("error", `--token-file ${values["token-file"]} could not be read: ${(e as Error).message}`);
        return 1;
      }
    }
  }
  try {
    await prepareModel({
      repo: values.repo,
      revision: values.revision,
      out: values.out,
      dtype: values.dtype as "fp32" | "fp16",
      ...(values.variant ? { variant: values.variant } : {}),
      ...(token ? { token } : {}),
      endpoint: values.endpoint ?? (env.HF_ENDPOINT?.trim() || DEFAULT_ENDPOINT),
      keepDownload: values["keep-download"],
    });
    return 0;
  } catch (e) {
    stderrLog("error", e instanceof Error ? e.message : String(e));
    return e instanceof RangeError ? 2 : 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args, Deno.env.toObject()));
