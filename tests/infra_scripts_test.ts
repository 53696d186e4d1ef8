/**
 * infra/scripts/prepare_model.ts (hub download + conversion, as the init container, the model Job and the image's
 * bake stage run it) against a fake hub serving the tiny diffusers fixtures, and infra/smoke.sh's argument handling,
 * dry run, and its whole request flow against a real server process (the functions hosting the fake runner).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { readManifest, verifyRepository } from "@ldm/models/convert";
import { type HubFile, prepareModel, selectFiles } from "../infra/scripts/prepare_model.ts";
import { REPO_ROOT } from "../infra/lib/mod.ts";

const FIXTURE = `${REPO_ROOT}/tests/fixtures/diffusers-tiny/ldm-super-resolution`;
const COMMIT = "0123456789abcdef0123456789abcdef01234567";

async function fixtureFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(join(dir, prefix))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await fixtureFiles(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}

/** A fake Hugging Face Hub for one repository, answering the listing and resolve URLs prepare_model.ts uses. */
async function fakeHub(options: { token?: string; corrupt?: string; extra?: HubFile[]; failFirst?: number } = {}) {
  const files = await fixtureFiles(FIXTURE);
  const siblings: HubFile[] = [];
  for (const f of files) {
    const bytes = await Deno.readFile(join(FIXTURE, f));
    const entry: HubFile = { rfilename: f, size: bytes.length };
    if (f.endsWith(".safetensors")) {
      entry.lfs = { sha256: createHash("sha256").update(bytes).digest("hex"), size: bytes.length };
    }
    siblings.push(entry);
  }
  siblings.push(...(options.extra ?? []));
  const requests: string[] = [];
  const handler = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    requests.push(url.pathname);
    if (requests.length <= (options.failFirst ?? 0)) return new Response("busy", { status: 503 });
    if (options.token && req.headers.get("authorization") !== `Bearer ${options.token}`) {
      return new Response("unauthorized", { status: 401 });
    }
    if (url.pathname === "/api/models/test-org/tiny-sr/revision/main" && url.searchParams.get("blobs") === "true") {
      return Response.json({ id: "test-org/tiny-sr", sha: COMMIT, siblings });
    }
    const prefix = `/test-org/tiny-sr/resolve/${COMMIT}/`;
    if (url.pathname.startsWith(prefix)) {
      const path = decodeURIComponent(url.pathname.slice(prefix.length));
      if (!files.includes(path)) return new Response("not found", { status: 404 });
      const bytes = await Deno.readFile(join(FIXTURE, path));
      if (options.corrupt === path) bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
      return new Response(bytes);
    }
    return new Response("not found", { status: 404 });
  };
  const fetch = (input: string | URL | Request, init?: RequestInit) =>
    handler(new Request(input instanceof Request ? input.url : String(input), init));
  return { fetch: fetch as typeof globalThis.fetch, requests };
}

const quiet = () => {};

Deno.test("selectFiles() picks configs and one weights set per component, as diffusers' from_pretrained would", () => {
  const f = (rfilename: string): HubFile => ({ rfilename, size: 1 });
  const listing = [
    f("model_index.json"),
    f("README.md"),
    f("unet/config.json"),
    f("unet/diffusion_pytorch_model.safetensors"),
    f("unet/diffusion_pytorch_model.fp16.safetensors"),
    f("unet/diffusion_pytorch_model.bin"),
    f("bert/config.json"),
    f("bert/pytorch_model.bin"),
    f("vqvae/config.json"),
    f("vqvae/diffusion_pytorch_model.safetensors.index.json"),
    f("vqvae/diffusion_pytorch_model-00001-of-00002.safetensors"),
    f("vqvae/diffusion_pytorch_model-00002-of-00002.safetensors"),
    f("tokenizer/vocab.txt"),
    f("tokenizer/tokenizer_config.json"),
    f("scheduler/scheduler_config.json"),
    f("unet/old/diffusion_pytorch_model.bin"),
  ];
  const components = ["bert", "scheduler", "tokenizer", "unet", "vqvae"];
  assert.deepEqual(selectFiles(listing, components).map((x) => x.rfilename).sort(), [
    "bert/config.json",
    "bert/pytorch_model.bin",
    "model_index.json",
    "scheduler/scheduler_config.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.txt",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vqvae/config.json",
    "vqvae/diffusion_pytorch_model-00001-of-00002.safetensors",
    "vqvae/diffusion_pytorch_model-00002-of-00002.safetensors",
    "vqvae/diffusion_pytorch_model.safetensors.index.json",
  ]);
  assert.deepEqual(
    selectFiles(listing, ["unet"], "fp16").map((x) => x.rfilename),
    ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors"],
  );
  assert.throws(() => selectFiles(listing, ["bert"], "fp16"), /component bert has no "fp16" variant weights/);
  assert.throws(
    () => selectFiles([f("model_index.json"), f("unet/diffusion_pytorch_model.fp16.safetensors")], ["unet"]),
    /component unet has no non-variant weights.*pass --variant/,
  );
  assert.throws(() => selectFiles([f("unet/config.json")], ["unet"]), /no model_index\.json/);
});

Deno.test("prepareModel() downloads and converts a pipeline, then finds it present without touching the hub", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "ldm-prepare-" });
  try {
    const out = join(dir, "models", "tiny-sr-fp32");
    const hub = await fakeHub({ token: "hf_test_token_123" });
    const base = {
      repo: "test-org/tiny-sr",
      out,
      endpoint: "https://hub.test",
      fetch: hub.fetch,
      log: quiet,
      pollMs: 10,
    };

    await t.step("a gated repository without a token fails with a hint", async () => {
      await assert.rejects(prepareModel(base), /answered 401 \(gated or private: provide a token/);
    });

    await t.step("first run: converted repository, marker, no leftovers", async () => {
      const result = await prepareModel({ ...base, token: "hf_test_token_123" });
      assert.equal(result.outcome, "converted");
      assert.equal(result.commit, COMMIT);
      assert.ok(result.downloadedBytes > 1_000_000);
      assert.deepEqual(await verifyRepository(out), []);
      const manifest = await readManifest(out);
      assert.equal(manifest.pipeline, "LDMSuperResolutionPipeline");
      assert.equal(manifest.dtype, "fp32");
      assert.deepEqual(Object.keys(manifest.components).sort(), ["scheduler", "unet", "vqvae"]);
      const marker = JSON.parse(await Deno.readTextFile(`${out}.prepared.json`));
      assert.deepEqual({ ...marker, preparedAt: "" }, {
        repo: "test-org/tiny-sr",
        revision: "main",
        commit: COMMIT,
        dtype: "fp32",
        variant: null,
        preparedAt: "",
      });
      const left = [...Deno.readDirSync(join(dir, "models"))].map((e) => e.name).sort();
      assert.deepEqual(left, ["tiny-sr-fp32", "tiny-sr-fp32.prepared.json"]);
    });

    await t.step("second run: present, no request made", async () => {
      const before = hub.requests.length;
      const result = await prepareModel({ ...base, token: "hf_test_token_123" });
      assert.equal(result.outcome, "present");
      assert.equal(hub.requests.length, before);
    });

    await t.step("another model into the same directory is refused", async () => {
      await assert.rejects(
        prepareModel({ ...base, token: "hf_test_token_123", dtype: "fp16" }),
        /already holds test-org\/tiny-sr@main \(fp32\), not test-org\/tiny-sr@main \(fp16\)/,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prepareModel() rejects a corrupted download, bad options, and takes over a stale lock", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "ldm-prepare-" });
  try {
    await t.step("a weights file whose SHA-256 differs from the listing", async () => {
      const hub = await fakeHub({ corrupt: "unet/diffusion_pytorch_model.safetensors" });
      const out = join(dir, "corrupt");
      await assert.rejects(
        prepareModel({ repo: "test-org/tiny-sr", out, endpoint: "https://hub.test", fetch: hub.fetch, log: quiet }),
        /unet\/diffusion_pytorch_model\.safetensors: sha256 [0-9a-f]{64}, the hub lists [0-9a-f]{64}/,
      );
      await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
      await assert.rejects(Deno.stat(`${out}.lock`), Deno.errors.NotFound);
    });
    await t.step("a 503 from the hub is retried", async () => {
      const hub = await fakeHub({ failFirst: 2 });
      const warnings: string[] = [];
      const result = await prepareModel({
        repo: "test-org/tiny-sr",
        out: join(dir, "retried"),
        endpoint: "https://hub.test",
        fetch: hub.fetch,
        pollMs: 1,
        log: (level, msg, fields) => level === "warn" && warnings.push(`${msg} ${JSON.stringify(fields)}`),
      });
      assert.equal(result.outcome, "converted");
      assert.equal(warnings.length, 2);
      assert.match(warnings[0]!, /retrying .*answered 503/);
    });
    await t.step("malformed options name the option", async () => {
      await assert.rejects(
        prepareModel({ repo: "no-slash", out: dir }),
        /repo must look like owner\/name: got "no-slash"/,
      );
      await assert.rejects(prepareModel({ repo: "a/b", revision: "../x", out: dir }), /revision must be/);
      await assert.rejects(
        prepareModel({ repo: "a/b", out: dir, dtype: "bf16" as "fp16" }),
        /dtype must be fp32 or fp16: got bf16/,
      );
    });
    await t.step("a lock nobody refreshed for longer than staleLockSeconds is taken over", async () => {
      const hub = await fakeHub();
      const out = join(dir, "locked");
      await Deno.mkdir(`${out}.lock`);
      const old = new Date(Date.now() - 3600_000);
      await Deno.utime(`${out}.lock`, old, old);
      const warnings: string[] = [];
      const result = await prepareModel({
        repo: "test-org/tiny-sr",
        out,
        endpoint: "https://hub.test",
        fetch: hub.fetch,
        staleLockSeconds: 60,
        pollMs: 10,
        log: (level, msg) => level === "warn" && warnings.push(msg),
      });
      assert.equal(result.outcome, "converted");
      assert.ok(warnings.includes("taking over a stale lock"));
    });
    await t.step("a fresh lock held by another preparation is waited for, then its result used", async () => {
      const hub = await fakeHub();
      const out = join(dir, "waited");
      await Deno.mkdir(`${out}.lock`);
      const other = (async () => {
        await new Promise((r) => setTimeout(r, 50));
        // The other holder finishes: it converts and releases the lock.
        await prepareModel({
          repo: "test-org/tiny-sr",
          out: join(dir, "elsewhere"),
          endpoint: "https://hub.test",
          fetch: hub.fetch,
          log: quiet,
        });
        await Deno.rename(join(dir, "elsewhere"), out);
        await Deno.rename(join(dir, "elsewhere.prepared.json"), `${out}.prepared.json`);
        await Deno.remove(`${out}.lock`, { recursive: true });
      })();
      const result = await prepareModel({
        repo: "test-org/tiny-sr",
        out,
        endpoint: "https://hub.test",
        fetch: hub.fetch,
        pollMs: 20,
        log: quiet,
      });
      await other;
      assert.equal(result.outcome, "present");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- infra/smoke.sh --------------------------------------------------------------------------------------------

async function smoke(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command("bash", {
    args: ["infra/smoke.sh", ...args],
    cwd: REPO_ROOT,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout), stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("smoke.sh: usage errors exit 2 naming the argument; --help exits 0", async () => {
  const help = await smoke(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--dry-run/);
  const cases: [string[], RegExp][] = [
    [["--target", "tpu"], /--target must be gpu or cpu: got 'tpu'/],
    [["--engine", "lxc"], /--engine must be docker or podman: got 'lxc'/],
    [["--port", "70000"], /--port must be 1-65535: got '70000'/],
    [["--steps", "0"], /--steps must be a positive integer: got '0'/],
    [["--bogus"], /unknown argument: --bogus/],
    [["--port"], /--port needs a value/],
    [["--url", "ftp://x", "--api-key", "0123456789abcdef"], /--url must start with http/],
    [["--url", "http://127.0.0.1:1"], /--url needs --api-key/],
    [["--text-to-image", "m"], /name directories under --models/],
    [["--api-key", "short"], /at least 16 characters/],
  ];
  for (const [args, message] of cases) {
    const r = await smoke(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});

Deno.test("smoke.sh --dry-run prints the build, GPU run, probe and request commands without running them", async () => {
  const gpu = await smoke([
    "--dry-run",
    "--engine",
    "docker",
    "--port",
    "18123",
    "--models",
    "/srv/m",
    "--text-to-image",
    "t2i",
  ]);
  assert.equal(gpu.code, 0, gpu.stderr);
  const lines = gpu.stderr.split("\n").filter((l) => l.startsWith("+ "));
  assert.match(lines[0]!, /^\+ docker build -f \S+\/infra\/docker\/Dockerfile --target gpu -t ldm-serve:gpu-smoke /);
  assert.match(
    lines[1]!,
    /^\+ docker run -d --name ldm-smoke-\d+ -p 127\.0\.0\.1:18123:8000 -e LDM_API_KEYS=smoke-[0-9a-f]{32} /,
  );
  assert.match(lines[1]!, /--gpus all -e NVIDIA_DRIVER_CAPABILITIES=compute\\?,utility\\?,graphics/);
  assert.match(lines[1]!, /-v \/srv\/m:\/models:ro -e LDM_TEXT_TO_IMAGE_MODEL_DIR=\/models\/t2i ldm-serve:gpu-smoke$/);
  const urls = lines.slice(2).map((l) => /(http:\/\/\S+?)(?:\\?\?| |$)/.exec(l)?.[1]);
  assert.deepEqual(urls, [
    "http://127.0.0.1:18123/healthz",
    "http://127.0.0.1:18123/readyz",
    "http://127.0.0.1:18123/v1/models",
    "http://127.0.0.1:18123/v1/text-to-image",
    "http://127.0.0.1:18123/v1/super-resolution",
    "http://127.0.0.1:18123/metrics",
    undefined, // docker stop
  ]);
  assert.match(lines.at(-1)!, /^\+ docker stop -t 60 ldm-smoke-\d+$/);
  assert.match(gpu.stdout, /dry run: the commands above \(on stderr\) were printed, not run/);

  const cpu = await smoke(["--dry-run", "--engine", "podman", "--target", "cpu", "--no-build"]);
  assert.equal(cpu.code, 0, cpu.stderr);
  assert.doesNotMatch(cpu.stderr, /podman build/);
  assert.doesNotMatch(cpu.stderr, /nvidia/);
  assert.match(cpu.stderr, /^\+ podman run -d .* ldm-serve:cpu-smoke$/m);

  const podmanGpu = await smoke(["--dry-run", "--engine", "podman"]);
  assert.match(podmanGpu.stderr, /--device nvidia\.com\/gpu=all/);
});

Deno.test("smoke.sh --url runs the whole request flow against a running server and reports timings", async () => {
  const key = "smoke-test-key-0123456789abcdef";
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const server = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "functions/testing/fake_server_main.ts"],
    cwd: REPO_ROOT,
    env: { PORT: String(port), HOST: "127.0.0.1", LDM_API_KEYS: key, LDM_LOG_LEVEL: "warn", FAKE_RUNNER_OPTIONS: "{}" },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const out = await Deno.makeTempDir({ prefix: "ldm-smoke-" });
  try {
    const r = await smoke([
      "--url",
      `http://127.0.0.1:${port}`,
      "--api-key",
      key,
      "--steps",
      "3",
      "--timeout",
      "60",
      "--out",
      out,
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`smoke test passed against http://127\\.0\\.0\\.1:${port}`));
    for (
      const label of ["start to /readyz 200", "POST /v1/text-to-image", "POST /v1/super-resolution", "GET /metrics"]
    ) {
      assert.match(r.stdout, new RegExp(`^${label.replace(/[/.]/g, "\\$&")}.*\\s\\d+\\.\\d\\d s$`, "m"));
    }
    const png = await Deno.readFile(join(out, "super-resolution.png"));
    assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);

    // A wrong key: the first authenticated request fails and the script says which.
    const bad = await smoke([
      "--url",
      `http://127.0.0.1:${port}`,
      "--api-key",
      "wrong-key-0123456789abcdef",
      "--out",
      out,
    ]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /FAILED: GET \/v1\/models answered HTTP 401/);
  } finally {
    server.kill("SIGTERM");
    await server.stderr.cancel();
    await server.status;
    await Deno.remove(out, { recursive: true });
  }
});
