/**
 * Every environment variable the functions read, in one table ({@linkcode CONFIG_VARIABLES}), and
 * {@linkcode loadConfig}, which validates them once at start. The infra manifests are checked against this table.
 *
 * @module
 */
import type { Task } from "@ldm/sdk/schemas";
import { TASKS } from "@ldm/sdk/schemas";

/** Limits applied to requests on top of the static bounds of the shared schemas. */
export interface RequestLimits {
  /** Largest request body in bytes (413 above). */
  maxBodyBytes: number;
  /** Largest super-resolution input, in pixels (width × height). */
  maxInputPixels: number;
  /** Largest text-to-image width or height, in pixels. */
  maxDimension: number;
  /** Largest `num_inference_steps`. */
  maxSteps: number;
  /** Largest number of images one request may ask for (prompts × `num_images_per_prompt`). */
  maxImagesPerRequest: number;
  /** Longest prompt or negative prompt, in characters. */
  maxPromptLength: number;
}

/** What the queue in front of the pipelines may hold and run. */
export interface QueueLimits {
  /** Generations running at once (one worker each). */
  concurrency: number;
  /** Requests waiting for a slot before new ones get 429. */
  maxQueue: number;
  /** Most images one batched text-to-image pipeline call may produce. */
  maxBatchImages: number;
}

/** How requests with an `Idempotency-Key` are remembered. */
export interface IdempotencyLimits {
  /** How long a finished response is replayed, from its completion, in milliseconds (0: none is kept). */
  ttlMs: number;
  /** Most bytes the kept responses hold together; least recently used ones are evicted past it (0: none kept). */
  maxBytes: number;
  /** How long a keyed run goes on after its last client disconnected, for a retry to pick it up, in ms. */
  graceMs: number;
}

/** Bounds of the text-to-image pipeline's text-embedding cache (its prompt LRU). */
export interface TextCacheLimits {
  /** Most prompts kept. */
  maxEntries: number;
  /** Most bytes kept (embeddings' float32 data plus 2 bytes per key character). */
  maxBytes: number;
}

/** Validated configuration of a server process. */
export interface ServerConfig {
  /** Interface to listen on. */
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** Functions this process serves. */
  functions: readonly Task[];
  /** Converted model repository of the text-to-image function. */
  textToImageModelDir: string;
  /** Converted model repository of the super-resolution function. */
  superResolutionModelDir: string;
  /** onnxruntime execution providers to try, in order. */
  executionProviders: readonly string[];
  /** Threads per CPU-provider session; 0 lets onnxruntime decide. */
  intraOpThreads: number;
  /**
   * Text-embedding cache of the text-to-image pipeline (per worker), or `false` when `LDM_TEXT_CACHE_ENTRIES` or
   * `LDM_TEXT_CACHE_BYTES` is 0: every prompt then goes through the text encoder.
   */
  textEmbeddingCache: TextCacheLimits | false;
  /** Accepted bearer keys. Empty means anonymous access. */
  apiKeys: readonly string[];
  /** Whether anonymous access was asked for explicitly. */
  allowAnonymous: boolean;
  /** Request limits. */
  limits: RequestLimits;
  /** Queue limits. */
  queue: QueueLimits;
  /** Per-request deadline in milliseconds, queue wait included (504 after). */
  requestTimeoutMs: number;
  /** How long shutdown lets in-flight work finish before cancelling it, in milliseconds. */
  shutdownGraceMs: number;
  /** `Idempotency-Key` replay store. */
  idempotency: IdempotencyLimits;
  /** Lowest log level written. */
  logLevel: LogLevel;
}

/** Log levels, lowest first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;

/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];

/** Description of one environment variable. */
export interface ConfigVariable {
  /** The variable's name. */
  name: string;
  /** Value used when it is unset or empty; `null` when there is none. */
  default: string | null;
  /** What it does and what values it takes. */
  description: string;
  /** Whether it holds a secret (never logged). */
  secret?: boolean;
}

const BUILTIN_TEXT_TO_IMAGE = new URL("../models/builtin/ldm-text2im-tiny", import.meta.url);
const BUILTIN_SUPER_RESOLUTION = new URL("../models/builtin/ldm-super-resolution-tiny", import.meta.url);

function urlToPath(u: URL): string {
  return decodeURIComponent(u.pathname);
}

/** Every environment variable the functions read. */
export const CONFIG_VARIABLES: readonly ConfigVariable[] = [
  { name: "PORT", default: "8000", description: "TCP port to listen on (0–65535; 0 picks a free port)." },
  {
    name: "HOST",
    default: "127.0.0.1",
    description: "Interface to listen on. Set 0.0.0.0 in containers; a non-loopback address needs LDM_API_KEYS " +
      "or LDM_ALLOW_ANONYMOUS=true.",
  },
  {
    name: "LDM_FUNCTIONS",
    default: "text-to-image,super-resolution",
    description: "Comma-separated functions to serve (text-to-image, super-resolution). The per-function entry " +
      "points fix it.",
  },
  {
    name: "LDM_TEXT_TO_IMAGE_MODEL_DIR",
    default: urlToPath(BUILTIN_TEXT_TO_IMAGE),
    description: "Converted LDMTextToImagePipeline repository (model_index.json, bert/, unet/, vqvae/, ...). " +
      "Default: the built-in tiny model.",
  },
  {
    name: "LDM_SUPER_RESOLUTION_MODEL_DIR",
    default: urlToPath(BUILTIN_SUPER_RESOLUTION),
    description: "Converted LDMSuperResolutionPipeline repository. Default: the built-in tiny model.",
  },
  {
    name: "LDM_EXECUTION_PROVIDERS",
    default: "cpu",
    description: "Comma-separated onnxruntime execution providers tried in order, e.g. cuda,webgpu,cpu.",
  },
  {
    name: "LDM_INTRA_OP_THREADS",
    default: "0",
    description: "Threads per CPU-provider session (0 = onnxruntime's choice).",
  },
  {
    name: "LDM_TEXT_CACHE_ENTRIES",
    default: "32",
    description: "Prompts whose text embeddings each text-to-image worker keeps (least recently used evicted), so a " +
      "repeated prompt skips the text encoder (0 = no text-embedding cache at all).",
  },
  {
    name: "LDM_TEXT_CACHE_BYTES",
    default: String(16 * 1024 * 1024),
    description: "Most bytes of that cache per worker: 394 KB per prompt for CompVis' LDMBert, 39 KB for the " +
      "built-in model (0 = no text-embedding cache at all).",
  },
  {
    name: "LDM_API_KEYS",
    default: null,
    secret: true,
    description: "Comma-separated keys accepted as `Authorization: Bearer <key>` on /v1/* and /metrics.",
  },
  {
    name: "LDM_API_KEYS_FILE",
    default: null,
    description: "File with one accepted key per line (e.g. a mounted secret); merged with LDM_API_KEYS.",
  },
  {
    name: "LDM_ALLOW_ANONYMOUS",
    default: "false",
    description: "true serves without keys even on a non-loopback HOST; otherwise the server refuses to start there.",
  },
  { name: "LDM_MAX_BODY_BYTES", default: String(10 * 1024 * 1024), description: "Largest request body (413)." },
  {
    name: "LDM_MAX_INPUT_PIXELS",
    default: String(512 * 512),
    description: "Largest super-resolution input in pixels, width × height (422).",
  },
  { name: "LDM_MAX_DIMENSION", default: "1024", description: "Largest text-to-image width or height (422)." },
  { name: "LDM_MAX_STEPS", default: "200", description: "Largest num_inference_steps (422)." },
  {
    name: "LDM_MAX_IMAGES_PER_REQUEST",
    default: "4",
    description: "Largest number of images per request, prompts × num_images_per_prompt (422).",
  },
  {
    name: "LDM_MAX_PROMPT_LENGTH",
    default: "1000",
    description: "Longest prompt or negative prompt, characters (422).",
  },
  {
    name: "LDM_CONCURRENCY",
    default: "1",
    description: "Generations running at once; each runs in its own worker with its own sessions (memory × N).",
  },
  { name: "LDM_QUEUE_SIZE", default: "32", description: "Requests waiting for a slot before 429 (0 = no waiting)." },
  {
    name: "LDM_MAX_BATCH_SIZE",
    default: "4",
    description: "Most images one batched text-to-image call produces from compatible waiting requests (1 = off).",
  },
  {
    name: "LDM_REQUEST_TIMEOUT_MS",
    default: "300000",
    description: "Per-request deadline, queue wait included; the work is cancelled and 504 returned after it.",
  },
  {
    name: "LDM_SHUTDOWN_GRACE_MS",
    default: "25000",
    description: "On SIGTERM/SIGINT, how long in-flight work may finish before it is cancelled (503).",
  },
  {
    name: "LDM_IDEMPOTENCY_TTL_MS",
    default: String(3600 * 1000),
    description: "How long the response of a request sent with an Idempotency-Key is replayed to retries with the " +
      "same key and request, from its completion (0 = only retries arriving while it runs share it).",
  },
  {
    name: "LDM_IDEMPOTENCY_MAX_BYTES",
    default: String(256 * 1024 * 1024),
    description: "Most bytes of responses kept for Idempotency-Key replays; the least recently used are evicted " +
      "beyond it (0 = keep none).",
  },
  {
    name: "LDM_IDEMPOTENCY_GRACE_MS",
    default: "15000",
    description: "How long a generation sent with an Idempotency-Key keeps running after its client disconnected, " +
      "so that a retry can pick it up (0 = cancel at once, as without a key).",
  },
  { name: "LDM_LOG_LEVEL", default: "info", description: "debug, info, warn or error (JSON lines on stdout)." },
];

/** Thrown by {@linkcode loadConfig} with every problem found, one per line. */
export class ConfigError extends Error {
  /** One message per invalid variable. */
  readonly problems: readonly string[];
  /** Builds the error from its problems. */
  constructor(problems: readonly string[]) {
    super(`Invalid configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** Options of {@linkcode loadConfig}. */
export interface LoadConfigOptions {
  /** Serve exactly these functions, ignoring `LDM_FUNCTIONS` (what the per-function entry points do). */
  functions?: readonly Task[];
  /** Reads a file's text (for `LDM_API_KEYS_FILE`). @default Deno.readTextFileSync */
  readTextFile?: (path: string) => string;
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost", "[::1]"]);

/** Whether `host` only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK.has(host.toLowerCase()) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Validates the environment once and returns the typed configuration.
 *
 * @param env The environment, e.g. `Deno.env.toObject()`.
 * @param options Entry-point overrides.
 * @returns The resolved configuration.
 * @throws {ConfigError} listing every invalid variable with its value and what was expected, and refusing a
 * non-loopback `HOST` without keys unless `LDM_ALLOW_ANONYMOUS=true`.
 *
 * @example Loading the defaults
 * ```ts
 * import { loadConfig } from "@ldm/functions";
 *
 * const config = loadConfig({ PORT: "8080" });
 * console.log(config.port, config.queue.concurrency); // 8080 1
 * ```
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>>,
  options: LoadConfigOptions = {},
): ServerConfig {
  const problems: string[] = [];
  const known = new Map(CONFIG_VARIABLES.map((v) => [v.name, v]));
  const raw = (name: string): string => {
    const value = env[name]?.trim();
    if (value !== undefined && value !== "") return value;
    return known.get(name)?.default ?? "";
  };
  const int = (name: string, min: number, max: number): number => {
    const text = raw(name);
    const value = Number(text);
    if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(value) || value < min || value > max) {
      problems.push(`${name} must be an integer in [${min}, ${max}]: got ${JSON.stringify(text)}`);
      return min;
    }
    return value;
  };
  const bool = (name: string): boolean => {
    const text = raw(name).toLowerCase();
    if (["true", "1", "yes"].includes(text)) return true;
    if (["false", "0", "no"].includes(text)) return false;
    problems.push(`${name} must be true or false: got ${JSON.stringify(raw(name))}`);
    return false;
  };
  const list = (name: string): string[] => raw(name).split(",").map((s) => s.trim()).filter((s) => s.length > 0);

  const host = raw("HOST");
  if (!/^[A-Za-z0-9.:\-[\]]+$/.test(host)) problems.push(`HOST must be a host name or IP address: got ${host}`);
  const port = int("PORT", 0, 65535);

  let functions: Task[];
  if (options.functions) {
    functions = [...options.functions];
  } else {
    functions = [];
    for (const f of list("LDM_FUNCTIONS")) {
      if ((TASKS as readonly string[]).includes(f)) functions.push(f as Task);
      else problems.push(`LDM_FUNCTIONS must list ${TASKS.join(" and/or ")}: got ${JSON.stringify(f)}`);
    }
  }
  if (functions.length === 0 && !problems.some((p) => p.startsWith("LDM_FUNCTIONS"))) {
    problems.push("LDM_FUNCTIONS must name at least one function");
  }

  const executionProviders = list("LDM_EXECUTION_PROVIDERS");
  if (executionProviders.length === 0) problems.push("LDM_EXECUTION_PROVIDERS must name at least one provider");

  const apiKeys = list("LDM_API_KEYS");
  const keysFile = raw("LDM_API_KEYS_FILE");
  if (keysFile !== "") {
    try {
      const text = (options.readTextFile ?? Deno.readTextFileSync)(keysFile);
      apiKeys.push(...text.split(/\r?\n/).map((s) => s.trim()).filter((s) => s.length > 0 && !s.startsWith("#")));
    } catch (e) {
      problems.push(`LDM_API_KEYS_FILE could not be read (${keysFile}): ${e instanceof Error ? e.message : e}`);
    }
  }
  for (const key of apiKeys) {
    if (key.length < 16 || /\s/.test(key)) {
      problems.push(`API keys must be at least 16 characters without spaces: got one of ${key.length} characters`);
      break;
    }
  }
  const allowAnonymous = bool("LDM_ALLOW_ANONYMOUS");
  if (apiKeys.length === 0 && !allowAnonymous && !isLoopbackHost(host)) {
    problems.push(
      `HOST=${host} is not a loopback address and no API keys are configured: set LDM_API_KEYS (or ` +
        "LDM_API_KEYS_FILE), or LDM_ALLOW_ANONYMOUS=true to serve without authentication",
    );
  }

  const logLevel = raw("LDM_LOG_LEVEL");
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    problems.push(`LDM_LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}: got ${JSON.stringify(logLevel)}`);
  }

  const textCacheEntries = int("LDM_TEXT_CACHE_ENTRIES", 0, 1_000_000);
  const textCacheBytes = int("LDM_TEXT_CACHE_BYTES", 0, 64 * 1024 * 1024 * 1024);

  const config: ServerConfig = {
    host,
    port,
    functions,
    textToImageModelDir: raw("LDM_TEXT_TO_IMAGE_MODEL_DIR"),
    superResolutionModelDir: raw("LDM_SUPER_RESOLUTION_MODEL_DIR"),
    executionProviders,
    intraOpThreads: int("LDM_INTRA_OP_THREADS", 0, 1024),
    textEmbeddingCache: textCacheEntries === 0 || textCacheBytes === 0
      ? false
      : { maxEntries: textCacheEntries, maxBytes: textCacheBytes },
    apiKeys,
    allowAnonymous,
    limits: {
      maxBodyBytes: int("LDM_MAX_BODY_BYTES", 1024, 1024 * 1024 * 1024),
      maxInputPixels: int("LDM_MAX_INPUT_PIXELS", 32 * 32, 8192 * 8192),
      maxDimension: int("LDM_MAX_DIMENSION", 8, 8192),
      maxSteps: int("LDM_MAX_STEPS", 1, 1000),
      maxImagesPerRequest: int("LDM_MAX_IMAGES_PER_REQUEST", 1, 64),
      maxPromptLength: int("LDM_MAX_PROMPT_LENGTH", 1, 100_000),
    },
    queue: {
      concurrency: int("LDM_CONCURRENCY", 1, 64),
      maxQueue: int("LDM_QUEUE_SIZE", 0, 100_000),
      maxBatchImages: int("LDM_MAX_BATCH_SIZE", 1, 64),
    },
    requestTimeoutMs: int("LDM_REQUEST_TIMEOUT_MS", 1, 24 * 3600 * 1000),
    shutdownGraceMs: int("LDM_SHUTDOWN_GRACE_MS", 0, 3600 * 1000),
    idempotency: {
      ttlMs: int("LDM_IDEMPOTENCY_TTL_MS", 0, 7 * 24 * 3600 * 1000),
      maxBytes: int("LDM_IDEMPOTENCY_MAX_BYTES", 0, 64 * 1024 * 1024 * 1024),
      graceMs: int("LDM_IDEMPOTENCY_GRACE_MS", 0, 3600 * 1000),
    },
    logLevel: logLevel as LogLevel,
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
