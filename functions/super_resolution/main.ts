/**
 * Entry point of the super-resolution function alone (`LDMSuperResolutionPipeline`).
 * Configuration comes from the environment; see `functions/README.md`.
 *
 * @module
 */
import { runFromEnv } from "../server.ts";

if (import.meta.main) await runFromEnv({ functions: ["super-resolution"] });
