/**
 * The Dockerfile, .dockerignore and the image's scripts, without a container engine: the lint rules hadolint would
 * apply that matter (infra/lib/dockerfile.ts), the entry command and every `deno task` named in infra/ against
 * deno.json, the files the build copies, onnxruntime-node's install script contract, shellcheck on every script,
 * and the entrypoint and health check themselves.
 */
import assert from "node:assert/strict";
import {
  copyParts,
  DOCKERFILE,
  effective,
  IMAGE_TARGETS,
  isPinnedImage,
  jsonForm,
  lintDockerfile,
  lintTarget,
  listFiles,
  parseDockerfile,
  parseDockerignore,
  REPO_ROOT,
  stageChain,
} from "../infra/lib/mod.ts";
import { check, healthzUrl } from "../infra/docker/healthcheck.ts";
import { availableExecutionProviders } from "@ldm/core/onnx";

const text = await Deno.readTextFile(`${REPO_ROOT}/${DOCKERFILE}`);
const df = parseDockerfile(text);
const denoJson = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}/deno.json`)) as { tasks: Record<string, string> };
const ignored = parseDockerignore(await Deno.readTextFile(`${REPO_ROOT}/.dockerignore`));

Deno.test("the Dockerfile passes the lint rules, and each target the final-image rules", () => {
  assert.deepEqual(lintDockerfile(df), []);
  for (const target of IMAGE_TARGETS) assert.deepEqual(lintTarget(df, target), [], target);
  // The default target (the last stage) is the GPU image.
  assert.equal(df.stages.at(-1)!.name, "gpu");
});

Deno.test("the lint rules flag what they are for", () => {
  const bad = parseDockerfile(`
ARG BASE=ubuntu:latest
FROM \${BASE} AS one
RUN apt-get install curl
FROM node AS two
COPY --from=one /x /y
ADD https://example.com/a.sh /a.sh
CMD deno task serve
FROM debian:12 AS final
WORKDIR /app
COPY . .
USER app
`);
  const rules = lintDockerfile(bad).map((p) => `${p.line}:${p.rule}`);
  assert.deepEqual(rules, [
    "3:pinned-base",
    "4:apt",
    "4:apt",
    "4:apt",
    "4:apt",
    "5:pinned-base",
    "7:no-add",
    "8:exec-form",
  ]);
  assert.deepEqual(lintTarget(bad, "final").map((p) => p.rule).sort(), ["chown", "cmd", "healthcheck", "user"]);
  assert.deepEqual(
    lintTarget(parseDockerfile('FROM debian:12 AS r\nUSER 0\nHEALTHCHECK CMD ["true"]\nCMD ["x"]\n'), "r")
      .map((p) => p.message),
    ["USER must not be root (0)"],
  );
  assert.ok(isPinnedImage("nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04"));
  assert.ok(isPinnedImage(`ubuntu@sha256:${"a".repeat(64)}`));
  assert.ok(!isPinnedImage("localhost:5000/ldm"));
  assert.ok(!isPinnedImage("ubuntu:latest"));
});

Deno.test("the image starts `deno task serve` under tini through the entrypoint, and every task named in infra/ exists", async () => {
  for (const target of IMAGE_TARGETS) {
    assert.deepEqual(jsonForm(effective(df, target, "CMD")!.args), ["deno", "task", "serve"]);
    assert.deepEqual(jsonForm(effective(df, target, "ENTRYPOINT")!.args), [
      "/usr/bin/tini",
      "--",
      "/app/infra/docker/entrypoint.sh",
    ]);
    const hc = effective(df, target, "HEALTHCHECK")!.args;
    assert.match(hc, /\/app\/infra\/docker\/healthcheck\.ts/);
  }
  assert.ok(denoJson.tasks.serve, "deno.json has no serve task");
  assert.match(denoJson.tasks.serve!, /functions\/main\.ts/);
  const files = [
    ...await listFiles(REPO_ROOT, "infra", [".yaml", ".sh", ".md", "Dockerfile", ".example"]),
  ];
  let count = 0;
  for (const f of files) {
    const body = await Deno.readTextFile(`${REPO_ROOT}/${f}`);
    for (const m of body.matchAll(/deno task ([a-z][a-z0-9:-]*)/g)) {
      count++;
      assert.ok(denoJson.tasks[m[1]!], `${f} runs "deno task ${m[1]}", which deno.json does not define`);
    }
    for (const m of body.matchAll(/"deno", "task", "([a-z][a-z0-9:-]*)"/g)) {
      count++;
      assert.ok(denoJson.tasks[m[1]!], `${f} runs task ${m[1]}`);
    }
  }
  assert.ok(count >= 3);
});

Deno.test("the Deno and onnxruntime-node versions match the project's pins", async () => {
  assert.equal(df.globalArgs.DENO_VERSION, Deno.version.deno, "the image's Deno is the toolchain's");
  const ci = await Deno.readTextFile(`${REPO_ROOT}/.ci/run`);
  assert.equal(/^DENO_VERSION=(\S+)$/m.exec(ci)?.[1], df.globalArgs.DENO_VERSION, ".ci/run pins the same Deno");
  assert.equal(df.stages[0]!.base, `denoland/deno:bin-${Deno.version.deno}`);
  // CUDA 12 + cuDNN 9 runtime: what onnxruntime-node's CUDA 12 provider libraries link against.
  assert.match(df.globalArgs.CUDA_IMAGE!, /^nvidia\/cuda:12\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+$/);
});

Deno.test("the GPU dependency stage runs onnxruntime-node's install script the way that script reads its settings", async () => {
  const deps = stageChain(df, "deps-gpu").flatMap((s) => s.instructions);
  const env = deps.filter((i) => i.keyword === "ENV").map((i) => i.args).join(" ");
  assert.match(env, /ONNXRUNTIME_NODE_INSTALL=cuda12/);
  const run = deps.filter((i) => i.keyword === "RUN").map((i) => i.args).join("\n");
  assert.match(run, /deno install --frozen-lockfile --allow-scripts=npm:onnxruntime-node/);
  assert.match(
    run,
    /test -f node_modules\/onnxruntime-node\/bin\/napi-v6\/linux\/x64\/libonnxruntime_providers_cuda\.so/,
  );
  const cpu = stageChain(df, "deps-cpu").flatMap((s) => s.instructions).filter((i) => i.keyword === "ENV");
  assert.match(cpu.map((i) => i.args).join(" "), /ONNXRUNTIME_NODE_INSTALL=skip/);

  // onnxruntime-node knows the CUDA and WebGPU providers but ships only WebGPU's libraries: the reason the GPU image
  // runs the install script at build time, and the Vulkan loader is enough for WebGPU.
  const providers = availableExecutionProviders();
  assert.deepEqual(providers.find((p) => p.name === "cuda"), { name: "cuda", bundled: false });
  assert.deepEqual(providers.find((p) => p.name === "webgpu"), { name: "webgpu", bundled: true });

  // The installed package's script: the variable it reads, "skip", and the CUDA 12 manifest for linux/x64.
  const pkg = new URL("../node_modules/onnxruntime-node/", import.meta.url);
  const utils = await Deno.readTextFile(new URL("script/install-utils.js", pkg));
  assert.match(utils, /process\.env\.ONNXRUNTIME_NODE_INSTALL\b/);
  assert.match(utils, /case 'skip':/);
  const metadata = await Deno.readTextFile(new URL("script/install-metadata.js", pkg));
  assert.match(metadata, /'linux\/x64': \['cuda12'\]/);
  assert.match(metadata, /libonnxruntime_providers_cuda\.so/);
  const version = JSON.parse(await Deno.readTextFile(new URL("package.json", pkg))).version;
  const imports = (JSON.parse(await Deno.readTextFile(`${REPO_ROOT}/deno.json`)) as { imports: Record<string, string> })
    .imports;
  assert.equal(imports["onnxruntime-node"], `npm:onnxruntime-node@${version}`);
});

Deno.test("every file the build copies from the context exists and is not excluded by .dockerignore", async () => {
  const stageNames = new Set(df.stages.map((s) => s.name));
  let copied = 0;
  for (const stage of df.stages) {
    for (const ins of stage.instructions.filter((i) => i.keyword === "COPY")) {
      const { flags, sources } = copyParts(ins);
      if (flags.from) {
        assert.ok(stageNames.has(flags.from) || isPinnedImage(flags.from), `line ${ins.line}: --from=${flags.from}`);
        continue;
      }
      for (const src of sources) {
        copied++;
        if (src === ".") continue;
        await Deno.stat(`${REPO_ROOT}/${src}`); // throws NotFound
        assert.ok(!ignored(src), `line ${ins.line}: ${src} is excluded by .dockerignore`);
      }
    }
  }
  assert.ok(copied >= 7);
  // What `COPY . .` brings must include the runtime and exclude what must never be in an image.
  for (
    const path of [
      "deno.json",
      "deno.lock",
      "functions/main.ts",
      "core/mod.ts",
      "models/builtin/README.md",
      "sdk/mod.ts",
      "infra/docker/entrypoint.sh",
      "infra/scripts/prepare_model.ts",
    ]
  ) {
    assert.ok(!ignored(path), `${path} must be in the build context`);
  }
  for (
    const path of [
      ".git/config",
      "node_modules/hono/package.json",
      "infra/ldm.env",
      ".env",
      "tests/fixtures/x",
      "functions/app_test.ts",
    ]
  ) {
    assert.ok(ignored(path), `${path} must not be in the build context`);
  }
});

Deno.test("parseDockerignore() matches like the Docker builder", () => {
  const m = parseDockerignore("# c\nnode_modules\n**/*.env\n*.md\n!README.md\n/out/\ndocs/**/*.png\n");
  assert.ok(m("node_modules/a/b.js"));
  assert.ok(m("a/b/c.env") && m("c.env"));
  assert.ok(m("NOTES.md") && !m("README.md") && !m("sub/NOTES.md"));
  assert.ok(m("out/x") && !m("src/out/x"));
  assert.ok(m("docs/a/b/c.png") && m("docs/c.png") && !m("docs/c.jpg"));
});

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, { args, env, cwd: REPO_ROOT, stdout: "piped", stderr: "piped" }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout), stderr: new TextDecoder().decode(out.stderr) };
}

async function hasCommand(name: string): Promise<boolean> {
  try {
    return (await run("sh", ["-c", `command -v ${name}`])).code === 0;
  } catch {
    return false;
  }
}

const scripts = await listFiles(REPO_ROOT, "infra", [".sh"]);

Deno.test("infra shell scripts are executable, strict, and shellcheck-clean", async (t) => {
  assert.deepEqual(scripts, [
    "infra/docker/entrypoint.sh",
    "infra/docker/prune-onnxruntime.sh",
    "infra/smoke.sh",
  ]);
  for (const s of scripts) {
    await t.step(s, async () => {
      const info = await Deno.stat(`${REPO_ROOT}/${s}`);
      assert.ok((info.mode ?? 0) & 0o111, `${s} must be executable`);
      const body = await Deno.readTextFile(`${REPO_ROOT}/${s}`);
      assert.match(body, /^#!\/(usr\/bin\/env bash|bin\/sh)\n/);
      assert.match(body, /^set -e(u|uo pipefail)$/m);
    });
  }
  const available = await hasCommand("shellcheck");
  // CI installs shellcheck (.ci/run); a developer machine without it skips only this step.
  if (!available && Deno.env.get("CI")) assert.fail("shellcheck is not installed on CI: apt-get install -y shellcheck");
  await t.step({
    name: "shellcheck",
    ignore: !available,
    fn: async () => {
      const r = await run("shellcheck", ["--severity=style", ...scripts]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    },
  });
});

Deno.test("entrypoint.sh finds the NVIDIA Vulkan ICD, keeps what is set, and runs `deno task serve` by default", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const icd = `${dir}/nvidia_icd.json`;
    await Deno.writeTextFile(icd, "{}");
    const base = {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      ENTRYPOINT_DRY_RUN: "1",
      EGL_VENDOR_CANDIDATES: "/nonexistent",
    };
    let r = await run("sh", ["infra/docker/entrypoint.sh"], { ...base, VULKAN_ICD_CANDIDATES: `/nonexistent ${icd}` });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^VK_DRIVER_FILES=${icd}$`, "m"));
    assert.match(r.stdout, /^exec deno task serve$/m);

    r = await run("sh", ["infra/docker/entrypoint.sh", "echo", "hi"], {
      ...base,
      VULKAN_ICD_CANDIDATES: icd,
      VK_DRIVER_FILES: "/custom.json",
    });
    assert.match(r.stdout, /^VK_DRIVER_FILES=\/custom\.json$/m);
    assert.match(r.stdout, /^exec echo hi$/m);

    r = await run("sh", ["infra/docker/entrypoint.sh"], {
      ...base,
      VULKAN_ICD_CANDIDATES: "/nonexistent",
      LDM_EXECUTION_PROVIDERS: "cuda, WebGPU,cpu",
    });
    assert.match(r.stdout, /^VK_DRIVER_FILES=$/m);
    assert.match(r.stderr, /no NVIDIA Vulkan driver found/);

    // Not a dry run: the command is exec'd with the variables exported.
    r = await run("sh", ["infra/docker/entrypoint.sh", "sh", "-c", 'echo "got $VK_DRIVER_FILES"'], {
      PATH: base.PATH,
      VULKAN_ICD_CANDIDATES: icd,
      EGL_VENDOR_CANDIDATES: "/nonexistent",
    });
    assert.equal(r.stdout.trim(), `got ${icd}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("healthcheck.ts: healthzUrl() picks the loopback for wildcard hosts; check() maps 200 to 0, the rest to 1", async () => {
  assert.equal(healthzUrl({}).href, "http://127.0.0.1:8000/healthz");
  assert.equal(healthzUrl({ HOST: "0.0.0.0", PORT: "9000" }).href, "http://127.0.0.1:9000/healthz");
  assert.equal(healthzUrl({ HOST: "::1", PORT: "9000" }).href, "http://[::1]:9000/healthz");
  assert.throws(
    () => healthzUrl({ PORT: "0" }),
    /PORT must be an integer in \[1, 65535\] for the health check: got "0"/,
  );
  let status = 200;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) =>
      new URL(req.url).pathname === "/healthz" ? new Response("ok", { status }) : new Response("no", { status: 404 }),
  );
  try {
    const url = healthzUrl({ HOST: "0.0.0.0", PORT: String(server.addr.port) });
    const lines: string[] = [];
    assert.equal(await check(url, 2000, (l) => lines.push(l)), 0);
    status = 503;
    assert.equal(await check(url, 2000, (l) => lines.push(l)), 1);
    assert.match(lines.join("\n"), /answered 503/);
  } finally {
    await server.shutdown();
  }
  // Nothing listening: 1, not a crash.
  assert.equal(await check(new URL(`http://127.0.0.1:${1}/healthz`), 1000), 1);
});
