/**
 * Combined entry point: serves text-to-image and super-resolution from one process (`deno task serve`).
 * Configuration comes from the environment; see `functions/README.md` and `config.ts`.
 *
 * @module
 */
import { runFromEnv } from "./server.ts";

if (import.meta.main) await runFromEnv();
