/**
 * Entry point of the text-to-image function alone (`LDMTextToImagePipeline`).
 * Configuration comes from the environment; see `functions/README.md`.
 *
 * @module
 */
import { runFromEnv } from "../server.ts";

if (import.meta.main) await runFromEnv({ functions: ["text-to-image"] });
