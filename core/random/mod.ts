/**
 * torch-compatible random numbers: {@linkcode Generator} reproduces `torch.Generator("cpu").manual_seed(seed)` with
 * `torch.randn` / `torch.rand` in float32 bit for bit (MT19937, torch's two Box–Muller paths and its AVX2 cephes
 * float32 kernel), so a seed gives the same initial latents and the same per-step noise as diffusers on CPU.
 *
 * @example Same latents as `torch.randn((1, 4, 32, 32), generator=torch.Generator("cpu").manual_seed(42))`
 * ```ts
 * import { Generator } from "@ldm/core/random";
 * const g = new Generator(42);
 * const latents = g.randn([1, 4, 32, 32]);
 * const noise = g.randnInto(new Float32Array(latents.size)); // the next draw of the same stream
 * console.log(latents.data[0], noise[0], g.initialSeed);
 * ```
 *
 * @module
 */
export { Generator } from "./generator.ts";
export type { GeneratorState } from "./generator.ts";
