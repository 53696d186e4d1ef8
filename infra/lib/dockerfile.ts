/**
 * A small Dockerfile parser and the lint rules this project holds its images to: what hadolint would flag that
 * matters here (hadolint is not packaged for these machines), plus rules about the final images.
 *
 * Rules ({@linkcode lintDockerfile}): `pinned-base` (every base image has a version tag or a digest, never `latest`
 * or none; DL3006/DL3007), `copy-from` (`COPY --from` names an earlier stage or a pinned image; DL3022/DL3023),
 * `apt` (`apt-get update` and `install` in one `RUN` with `-y` and `--no-install-recommends`, lists removed in the
 * same layer; DL3009/DL3015/DL3027), `no-add` (`ADD` only for archives; COPY otherwise; DL3020), `no-sudo`
 * (DL3004), `exec-form` (`CMD`/`ENTRYPOINT` in JSON form; DL3025). Per final target ({@linkcode lintTarget}):
 * `user` (a numeric, non-root `USER`, so Kubernetes' `runAsNonRoot` can verify it), `healthcheck`, `chown`
 * (files copied into the application and model paths are owned by that user), `cmd`.
 *
 * @module
 */

/** One instruction, continuation lines joined. */
export interface Instruction {
  /** 1-based line of the instruction's first line. */
  line: number;
  /** Upper-cased keyword (`FROM`, `RUN`, ...). */
  keyword: string;
  /** Everything after the keyword, continuation backslashes and comment lines removed. */
  args: string;
}

/** One build stage. */
export interface Stage {
  /** `AS` name, or `null`. */
  name: string | null;
  /** The `FROM` image with global `ARG` defaults substituted. */
  base: string;
  /** Line of the `FROM`. */
  line: number;
  /** Instructions after the `FROM`. */
  instructions: Instruction[];
}

/** A parsed Dockerfile. */
export interface Dockerfile {
  /** `ARG` defaults declared before the first `FROM`. */
  globalArgs: Record<string, string>;
  stages: Stage[];
}

/** One lint finding. */
export interface LintProblem {
  line: number;
  rule: string;
  message: string;
}

/** Substitutes `${NAME}`, `${NAME:-default}` and `$NAME` from `vars`. */
export function substitute(text: string, vars: Readonly<Record<string, string>>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, a, def, b) => {
    const name = a ?? b;
    const v = vars[name];
    return v !== undefined && v !== "" ? v : def ?? "";
  });
}

/** Parses Dockerfile text (backslash escape; parser directives and comments dropped). */
export function parseDockerfile(text: string): Dockerfile {
  const lines = text.split(/\r?\n/);
  const instructions: Instruction[] = [];
  let current: { line: number; text: string } | null = null;
  lines.forEach((raw, i) => {
    const trimmed = raw.trim();
    if (current === null) {
      if (trimmed === "" || trimmed.startsWith("#")) return;
      current = { line: i + 1, text: "" };
    } else if (trimmed.startsWith("#")) {
      return; // comment lines inside a continuation are removed by the builder
    }
    const continued = /\\\s*$/.test(raw);
    current.text += (current.text ? " " : "") + raw.replace(/\\\s*$/, "").trim();
    if (!continued) {
      const m = /^(\S+)\s*(.*)$/.exec(current.text)!;
      instructions.push({ line: current.line, keyword: m[1]!.toUpperCase(), args: m[2]!.trim() });
      current = null;
    }
  });
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === "FROM") {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new SyntaxError(`line ${ins.line}: cannot parse FROM ${ins.args}`);
      stages.push({ name: m[2] ?? null, base: substitute(m[1]!, globalArgs), line: ins.line, instructions: [] });
    } else if (stages.length === 0) {
      if (ins.keyword !== "ARG") throw new SyntaxError(`line ${ins.line}: only ARG may come before the first FROM`);
      const [name, ...rest] = ins.args.split("=");
      globalArgs[name!.trim()] = rest.join("=").replace(/^"(.*)"$/, "$1");
    } else {
      stages.at(-1)!.instructions.push(ins);
    }
  }
  return { globalArgs, stages };
}

/** The stage called `name`, or `undefined`. */
export function stageNamed(df: Dockerfile, name: string): Stage | undefined {
  return df.stages.find((s) => s.name === name);
}

/** A stage and the stages it is built `FROM`, nearest first. */
export function stageChain(df: Dockerfile, name: string): Stage[] {
  const chain: Stage[] = [];
  let s = stageNamed(df, name);
  while (s && !chain.includes(s)) {
    chain.push(s);
    s = stageNamed(df, s.base);
  }
  return chain;
}

/** Whether `image` names a specific version: a digest, or a tag other than `latest` that contains a digit. */
export function isPinnedImage(image: string): boolean {
  if (image === "scratch") return true;
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return true;
  const slash = image.lastIndexOf("/");
  const colon = image.lastIndexOf(":");
  if (colon <= slash) return false;
  const tag = image.slice(colon + 1);
  return tag !== "latest" && /\d/.test(tag) && !tag.includes("$");
}

/** Parses a JSON-form argument list (`["a", "b"]`), or returns `null` for shell form. */
export function jsonForm(args: string): string[] | null {
  if (!args.trim().startsWith("[")) return null;
  try {
    const v = JSON.parse(args);
    return Array.isArray(v) && v.every((x) => typeof x === "string") ? v : null;
  } catch {
    return null;
  }
}

function flags(args: string): { flags: Record<string, string>; rest: string } {
  const out: Record<string, string> = {};
  let rest = args;
  for (;;) {
    const m = /^--([a-z-]+)(?:=(\S*))?\s+/.exec(rest);
    if (!m) break;
    out[m[1]!] = m[2] ?? "true";
    rest = rest.slice(m[0].length);
  }
  return { flags: out, rest };
}

/** `COPY`/`ADD` flags, sources and destination. */
export function copyParts(ins: Instruction): { flags: Record<string, string>; sources: string[]; dest: string } {
  const { flags: f, rest } = flags(ins.args);
  const parts = jsonForm(rest) ?? rest.split(/\s+/).filter((s) => s.length > 0);
  return { flags: f, sources: parts.slice(0, -1), dest: parts.at(-1) ?? "" };
}

/** Lint rules that apply to every stage. */
export function lintDockerfile(df: Dockerfile): LintProblem[] {
  const problems: LintProblem[] = [];
  const names = new Set<string>();
  for (const stage of df.stages) {
    if (!names.has(stage.base) && !isPinnedImage(stage.base)) {
      problems.push({
        line: stage.line,
        rule: "pinned-base",
        message: `base image ${stage.base} must have a version tag or digest (not latest)`,
      });
    }
    for (const ins of stage.instructions) {
      if (ins.keyword === "COPY" || ins.keyword === "ADD") {
        const { flags: f, sources } = copyParts(ins);
        if (f.from && !names.has(f.from) && !isPinnedImage(f.from)) {
          problems.push({
            line: ins.line,
            rule: "copy-from",
            message: `COPY --from=${f.from} names no earlier stage and no pinned image`,
          });
        }
        if (ins.keyword === "ADD" && !sources.every((s) => /\.(tar|tar\.gz|tgz|tar\.xz|tar\.bz2)$/.test(s))) {
          problems.push({
            line: ins.line,
            rule: "no-add",
            message: "use COPY for files and directories; ADD for local archives only",
          });
        }
      }
      if (ins.keyword === "RUN") {
        const cmd = ins.args;
        if (/\bsudo\b/.test(cmd)) {
          problems.push({ line: ins.line, rule: "no-sudo", message: "do not use sudo; switch USER" });
        }
        if (/\bapt-get\s+(-\S+\s+)*install\b/.test(cmd) || /\bapt\s+install\b/.test(cmd)) {
          if (/\bapt\s+install\b/.test(cmd)) {
            problems.push({ line: ins.line, rule: "apt", message: "use apt-get, not apt, in scripts" });
          }
          if (!/apt-get\s+update/.test(cmd) || cmd.indexOf("apt-get update") > cmd.indexOf("install")) {
            problems.push({
              line: ins.line,
              rule: "apt",
              message: "run apt-get update in the same RUN, before install",
            });
          }
          if (!/install\s+(?:\S+\s+)*?-y\b|install\s+.*--yes\b|\s-y\s+install\b/.test(cmd)) {
            problems.push({ line: ins.line, rule: "apt", message: "apt-get install needs -y" });
          }
          if (!/--no-install-recommends/.test(cmd)) {
            problems.push({ line: ins.line, rule: "apt", message: "apt-get install needs --no-install-recommends" });
          }
          if (!/rm -rf \/var\/lib\/apt\/lists\/\*/.test(cmd)) {
            problems.push({ line: ins.line, rule: "apt", message: "remove /var/lib/apt/lists/* in the same RUN" });
          }
        }
      }
      if ((ins.keyword === "CMD" || ins.keyword === "ENTRYPOINT") && jsonForm(ins.args) === null) {
        problems.push({ line: ins.line, rule: "exec-form", message: `${ins.keyword} must use the JSON (exec) form` });
      }
      if (ins.keyword === "HEALTHCHECK" && !/^NONE$/i.test(ins.args)) {
        const m = /\bCMD\s+(.*)$/.exec(ins.args);
        if (!m || jsonForm(m[1]!) === null) {
          problems.push({
            line: ins.line,
            rule: "exec-form",
            message: "HEALTHCHECK CMD must use the JSON (exec) form",
          });
        }
      }
    }
    if (stage.name) names.add(stage.name);
  }
  return problems;
}

/** The last instruction with `keyword` along a target's stage chain. */
export function effective(df: Dockerfile, target: string, keyword: string): Instruction | undefined {
  for (const stage of stageChain(df, target)) {
    const found = stage.instructions.filter((i) => i.keyword === keyword).at(-1);
    if (found) return found;
  }
  return undefined;
}

/** Destinations that belong to the application user (everything else, e.g. /usr/local/bin, stays root's). */
const APP_PATHS = /^(\.|\.\/.*|[^/].*|\/app(\/.*)?|\/models(\/.*)?|\/home\/.*)$/;

/** Rules for a final image target: non-root numeric USER, HEALTHCHECK, CMD, and COPY --chown into app paths. */
export function lintTarget(df: Dockerfile, target: string): LintProblem[] {
  const problems: LintProblem[] = [];
  const stage = stageNamed(df, target);
  if (!stage) return [{ line: 0, rule: "target", message: `no stage named ${target}` }];
  const user = effective(df, target, "USER");
  if (!user) {
    problems.push({ line: stage.line, rule: "user", message: `${target} runs as root: add USER` });
  } else {
    const uid = user.args.split(":")[0]!;
    if (!/^\d+$/.test(uid)) {
      problems.push({ line: user.line, rule: "user", message: "USER must be numeric so runAsNonRoot can verify it" });
    } else if (uid === "0") {
      problems.push({ line: user.line, rule: "user", message: "USER must not be root (0)" });
    }
  }
  if (!effective(df, target, "HEALTHCHECK")) {
    problems.push({ line: stage.line, rule: "healthcheck", message: `${target} has no HEALTHCHECK` });
  }
  if (!effective(df, target, "CMD") && !effective(df, target, "ENTRYPOINT")) {
    problems.push({ line: stage.line, rule: "cmd", message: `${target} has no CMD or ENTRYPOINT` });
  }
  for (const ins of stage.instructions) {
    if (ins.keyword !== "COPY" && ins.keyword !== "ADD") continue;
    const { flags: f, dest } = copyParts(ins);
    if (APP_PATHS.test(dest) && !f.chown) {
      problems.push({ line: ins.line, rule: "chown", message: `COPY into ${dest} needs --chown=<uid>:<gid>` });
    }
  }
  return problems;
}
