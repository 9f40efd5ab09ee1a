"""Key mapping from DynamiCrafter's official `model.ckpt` to this project's modules.

The checkpoint is a Lightning file whose `state_dict` holds, by prefix:

| official prefix | module here | mapping |
| --- | --- | --- |
| `model.diffusion_model.` | `DynamiCrafterUNet` | strip prefix; `temopral_conv` -> `temporal_conv`; `framestride_embed` (256) -> `fps_embedding` |
| `image_proj_model.` | `Resampler` | strip prefix |
| `first_stage_model.` | diffusers `AutoencoderKL` | diffusers' `convert_ldm_vae_checkpoint` |
| `cond_stage_model.model.` | OpenCLIP ViT-H-14 without `visual` | strip prefix |
| `embedder.model.` | OpenCLIP ViT-H-14 without `transformer` | strip prefix |
| `betas`, `alphas_cumprod`, ... | (the DDPM schedule buffers) | not loaded: diffusers' scheduler recomputes them |

Every part loads with strict=True; a key of no known part is an error (nothing is silently dropped).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from asva.errors import DataError

UNET_PREFIX = "model.diffusion_model."
PART_PREFIXES = {
    "unet": UNET_PREFIX,
    "image_proj_model": "image_proj_model.",
    "first_stage_model": "first_stage_model.",
    "cond_stage_model": "cond_stage_model.model.",
    "embedder": "embedder.model.",
}
# lvdm.models.ddpm3d registers these schedule buffers (scale_arr with use_dynamic_rescale,
# scale_factor with scale_by_std); diffusers' schedulers compute their own.
SCHEDULE_BUFFERS = frozenset(
    {
        "betas",
        "alphas_cumprod",
        "alphas_cumprod_prev",
        "sqrt_alphas_cumprod",
        "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod",
        "sqrt_recip_alphas_cumprod",
        "sqrt_recipm1_alphas_cumprod",
        "posterior_variance",
        "posterior_log_variance_clipped",
        "posterior_mean_coef1",
        "posterior_mean_coef2",
        "scale_arr",
        "scale_factor",
        "logvar",
    }
)


def unet_key(official: str) -> str:
    """An official `model.diffusion_model.*` key -> the DynamiCrafterUNet state_dict key."""
    key = official[len(UNET_PREFIX) :].replace(".temopral_conv.", ".temporal_conv.")
    if key.startswith("framestride_embed."):
        key = "fps_embedding." + key[len("framestride_embed.") :]
    return key


def split_checkpoint(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """The Lightning state_dict -> {part: its state_dict in the official sub-module's own keys}."""
    parts: dict[str, dict[str, torch.Tensor]] = {name: {} for name in PART_PREFIXES}
    unknown = []
    for key, value in state.items():
        for name, prefix in PART_PREFIXES.items():
            if key.startswith(prefix):
                parts[name][unet_key(key) if name == "unet" else key[len(prefix) :]] = value
                break
        else:
            if key not in SCHEDULE_BUFFERS:
                unknown.append(key)
    if unknown:
        raise DataError(f"DynamiCrafter checkpoint: {len(unknown)} keys belong to no known part, e.g. {unknown[:3]}")
    return parts


def read_lightning_state(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"DynamiCrafter checkpoint {path} does not exist (expected the official model.ckpt, "
            "e.g. dynamicrafter_256_v1/model.ckpt; set model.base_checkpoint)"
        )
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise DataError(f"DynamiCrafter checkpoint {path}: expected a Lightning checkpoint with a 'state_dict'")
    return state


def vae_state(first_stage: dict[str, torch.Tensor], vae: nn.Module) -> dict[str, torch.Tensor]:
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    converted = convert_ldm_vae_checkpoint(first_stage, dict(vae.config))
    # The conversion maps keys one to one and skips what it does not know: count, so nothing is dropped.
    if len(converted) != len(first_stage):
        raise DataError(
            f"DynamiCrafter checkpoint, part 'first_stage_model': {len(first_stage) - len(converted)} keys of the "
            "lvdm autoencoder have no diffusers counterpart (renamed or unexpected keys)"
        )
    return converted


def load_parts(state: dict[str, torch.Tensor], modules: dict[str, nn.Module]) -> None:
    """Load every part present in `modules` strictly (assign=True also fills meta-device modules)."""
    parts = split_checkpoint(state)
    for name, module in modules.items():
        part = parts[name]
        if not part:
            raise DataError(f"DynamiCrafter checkpoint: no keys with prefix {PART_PREFIXES[name]!r}")
        if name == "first_stage_model":
            part = vae_state(part, module)
        try:
            module.load_state_dict(part, strict=True, assign=True)
        except RuntimeError as error:
            raise DataError(
                f"DynamiCrafter checkpoint, part {name!r}: {str(error).splitlines()[0]} {str(error)[:600]}"
            ) from None
