/**
 * `.dockerignore` matching as the Docker builder does it: patterns relative to the context root, `*` and `?` within
 * one path segment, `**` across segments, a pattern that matches a directory excluding everything under it, `!`
 * re-including, and the last matching pattern deciding.
 *
 * @module
 */

interface Rule {
  negated: boolean;
  re: RegExp;
}

function toRegExp(pattern: string): RegExp {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") {
      if (pattern[i + 1] === "*") {
        // "**/" matches zero or more directories; a trailing "**" matches everything below.
        if (pattern[i + 2] === "/") {
          out += "(?:.*/)?";
          i += 2;
        } else {
          out += ".*";
          i += 1;
        }
      } else {
        out += "[^/]*";
      }
    } else if (c === "?") {
      out += "[^/]";
    } else {
      out += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }
  }
  return new RegExp(`^${out}$`);
}

/** Parses `.dockerignore` text into a matcher. */
export function parseDockerignore(text: string): (path: string) => boolean {
  const rules: Rule[] = [];
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const negated = line.startsWith("!");
    if (negated) line = line.slice(1).trim();
    line = line.replace(/^\/+/, "").replace(/\/+$/, "");
    if (line === "") continue;
    rules.push({ negated, re: toRegExp(line) });
  }
  /** Whether the repository-relative `path` is left out of the build context. */
  return (path: string) => {
    const parts = path.replace(/^\.?\/+/, "").split("/");
    let ignored = false;
    for (const rule of rules) {
      for (let n = 1; n <= parts.length; n++) {
        if (rule.re.test(parts.slice(0, n).join("/"))) {
          ignored = !rule.negated;
          break;
        }
      }
    }
    return ignored;
  };
}
