/**
 * The configurations of the real checkpoints this project serves, written out once for the tests, the synthetic
 * real-size checkpoints and the benchmarks that need their sizes without downloading them. The values are those of
 * shared/notes/ldm-reference.md §2 (which says, per file, what was seen on the Hugging Face hub and what is inferred),
 * spelled as the 2022 `config.json` files spell them.
 *
 * @module
 */

/**
 * `CompVis/ldm-text2im-large-256` (shared/notes/ldm-reference.md §2.1): `model_index.json`, the scheduler, the
 * `UNet2DConditionModel` (872 300 484 parameters), the `AutoencoderKL` (`vqvae`) and the `LDMBertModel` (`bert`).
 */
export const LDM_TEXT2IM_LARGE_256 = {
  model_index: {
    _class_name: "LDMTextToImagePipeline",
    _diffusers_version: "0.0.4",
    bert: ["latent_diffusion", "LDMBertModel"],
    scheduler: ["diffusers", "DDIMScheduler"],
    tokenizer: ["transformers", "BertTokenizer"],
    unet: ["diffusers", "UNet2DConditionModel"],
    vqvae: ["diffusers", "AutoencoderKL"],
  },
  scheduler: {
    _class_name: "DDIMScheduler",
    _diffusers_version: "0.0.4",
    beta_end: 0.012,
    beta_schedule: "linear",
    beta_start: 0.00085,
    clip_sample: false,
    num_train_timesteps: 1000,
    timestep_values: null,
    trained_betas: null,
  },
  unet: {
    _class_name: "UNet2DConditionModel",
    _diffusers_version: "0.0.4",
    act_fn: "silu",
    attention_head_dim: 8,
    block_out_channels: [320, 640, 1280, 1280],
    center_input_sample: false,
    cross_attention_dim: 1280,
    down_block_types: ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    downsample_padding: 1,
    flip_sin_to_cos: true,
    freq_shift: 0,
    in_channels: 4,
    layers_per_block: 2,
    mid_block_scale_factor: 1,
    norm_eps: 1e-5,
    norm_num_groups: 32,
    out_channels: 4,
    sample_size: 32,
    up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
  },
  vqvae: {
    _class_name: "AutoencoderKL",
    _diffusers_version: "0.0.4",
    act_fn: "silu",
    block_out_channels: [128, 256, 512, 512],
    down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
    in_channels: 3,
    latent_channels: 4,
    layers_per_block: 2,
    norm_num_groups: 32,
    out_channels: 3,
    sample_size: 256,
    up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
  },
  bert: {
    activation_dropout: 0.0,
    activation_function: "gelu",
    architectures: ["LDMBertModel"],
    attention_dropout: 0.0,
    d_model: 1280,
    dropout: 0.1,
    encoder_attention_heads: 8,
    encoder_ffn_dim: 5120,
    encoder_layerdrop: 0.0,
    encoder_layers: 32,
    head_dim: 64,
    init_std: 0.02,
    max_position_embeddings: 77,
    model_type: "ldmbert",
    num_hidden_layers: 32,
    pad_token_id: 0,
    scale_embedding: false,
    torch_dtype: "float32",
    vocab_size: 30522,
  },
} as const;

/**
 * `CompVis/ldm-super-resolution-4x-openimages` (shared/notes/ldm-reference.md §2.2): the 6-channel `UNet2DModel`
 * (`attention_head_dim` 32 is the per-head size there, so 640 / 32 = 20 heads). The other components are not written
 * out because nothing here needs them at real size.
 */
export const LDM_SUPER_RESOLUTION_4X_OPENIMAGES = {
  unet: {
    _class_name: "UNet2DModel",
    _diffusers_version: "0.8.0.dev0",
    act_fn: "silu",
    attention_head_dim: 32,
    block_out_channels: [160, 320, 320, 640],
    center_input_sample: false,
    down_block_types: ["DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
    downsample_padding: 1,
    flip_sin_to_cos: true,
    freq_shift: 0,
    in_channels: 6,
    layers_per_block: 2,
    mid_block_scale_factor: 1,
    norm_eps: 1e-5,
    norm_num_groups: 32,
    out_channels: 3,
    sample_size: 64,
    time_embedding_type: "positional",
    up_block_types: ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"],
  },
} as const;
