"""Key -> shape listings of DynamiCrafter's official `model.ckpt`, written from the official source.

This file does not import anything from `asva`: it walks the constructor logic of the public
DynamiCrafter code (lvdm/modules/networks/openaimodel3d.py `UNetModel`, lvdm/modules/attention.py,
lvdm/modules/encoders/resampler.py) by hand, with the `unet_config` / `image_proj_stage_config`
parameters of configs/inference_256_v1.0.yaml and configs/inference_512_v1.0.yaml, and lists the
state_dict keys those modules register, with the official spellings:

- both checkpoints: the ResBlock's temporal convolution is `temopral_conv`;
- 256 (older openaimodel3d.py): the frame-stride embedding is `framestride_embed`, and
  `image_cross_attention_scale_learnable: true` gives every spatial attn2 an `alpha` scalar;
- 512 (current openaimodel3d.py): `fps_embedding`, no `alpha`.

`python tests/checkpoint_layouts/dynamicrafter_listing.py` rewrites the committed .json.gz files.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

HERE = Path(__file__).parent

# unet_config.params of the two official inference configs (hand-copied).
UNET_256 = dict(
    in_channels=8,
    out_channels=4,
    model_channels=320,
    attention_resolutions=[4, 2, 1],
    num_res_blocks=2,
    channel_mult=[1, 2, 4, 4],
    num_head_channels=64,
    transformer_depth=1,
    context_dim=1024,
    addition_attention=True,
    image_cross_attention=True,
    image_cross_attention_scale_learnable=True,
    fs_condition=True,
    fs_name="framestride_embed",
)
UNET_512 = {**UNET_256, "image_cross_attention_scale_learnable": False, "fs_name": "fps_embedding"}
# image_proj_stage_config.params (identical in both configs).
RESAMPLER = dict(
    dim=1024,
    depth=4,
    dim_head=64,
    heads=12,
    num_queries=16,
    embedding_dim=1280,
    output_dim=1024,
    ff_mult=4,
    video_length=16,
)


def _linear(keys: dict, name: str, out_f: int, in_f: int, bias: bool = True) -> None:
    keys[f"{name}.weight"] = [out_f, in_f]
    if bias:
        keys[f"{name}.bias"] = [out_f]


def _norm(keys: dict, name: str, ch: int) -> None:
    keys[f"{name}.weight"] = [ch]
    keys[f"{name}.bias"] = [ch]


def _conv(keys: dict, name: str, out_c: int, in_c: int, kernel: list[int]) -> None:
    keys[f"{name}.weight"] = [out_c, in_c, *kernel]
    keys[f"{name}.bias"] = [out_c]


def _cross_attention(keys, name, query_dim, context_dim, heads, dim_head, ip=False, alpha=False):
    inner = heads * dim_head
    _linear(keys, f"{name}.to_q", inner, query_dim, bias=False)
    _linear(keys, f"{name}.to_k", inner, context_dim, bias=False)
    _linear(keys, f"{name}.to_v", inner, context_dim, bias=False)
    _linear(keys, f"{name}.to_out.0", query_dim, inner)
    if ip:
        _linear(keys, f"{name}.to_k_ip", inner, context_dim, bias=False)
        _linear(keys, f"{name}.to_v_ip", inner, context_dim, bias=False)
        if alpha:
            keys[f"{name}.alpha"] = []


def _transformer(keys, name, ch, heads, dim_head, depth, context_dim, ip, alpha):
    """SpatialTransformer (context_dim set) or TemporalTransformer (context_dim None), use_linear."""
    inner = heads * dim_head
    _norm(keys, f"{name}.norm", ch)
    _linear(keys, f"{name}.proj_in", inner, ch)
    for d in range(depth):
        block = f"{name}.transformer_blocks.{d}"
        _cross_attention(keys, f"{block}.attn1", inner, inner, heads, dim_head)
        _linear(keys, f"{block}.ff.net.0.proj", inner * 4 * 2, inner)  # GEGLU
        _linear(keys, f"{block}.ff.net.2", inner, inner * 4)
        _cross_attention(keys, f"{block}.attn2", inner, context_dim or inner, heads, dim_head, ip=ip, alpha=alpha)
        for n in (1, 2, 3):
            _norm(keys, f"{block}.norm{n}", inner)
    _linear(keys, f"{name}.proj_out", ch, inner)


def _resblock(keys, name, ch, emb, out):
    _norm(keys, f"{name}.in_layers.0", ch)
    _conv(keys, f"{name}.in_layers.2", out, ch, [3, 3])
    _linear(keys, f"{name}.emb_layers.1", out, emb)
    _norm(keys, f"{name}.out_layers.0", out)
    _conv(keys, f"{name}.out_layers.3", out, out, [3, 3])
    if out != ch:
        _conv(keys, f"{name}.skip_connection", out, ch, [1, 1])
    for n, seq_conv in ((1, 2), (2, 3), (3, 3), (4, 3)):  # conv1 has no Dropout before its Conv3d
        _norm(keys, f"{name}.temopral_conv.conv{n}.0", out)
        _conv(keys, f"{name}.temopral_conv.conv{n}.{seq_conv}", out, out, [3, 1, 1])


def unet_keys(p: dict) -> dict[str, list[int]]:
    keys: dict[str, list[int]] = {}
    mc, emb = p["model_channels"], p["model_channels"] * 4
    hc, depth, ctx = p["num_head_channels"], p["transformer_depth"], p["context_dim"]
    ip, alpha = p["image_cross_attention"], p["image_cross_attention_scale_learnable"]
    _linear(keys, "time_embed.0", emb, mc)
    _linear(keys, "time_embed.2", emb, emb)
    if p["fs_condition"]:
        _linear(keys, f"{p['fs_name']}.0", emb, mc)
        _linear(keys, f"{p['fs_name']}.2", emb, emb)
    _conv(keys, "input_blocks.0.0", mc, p["in_channels"], [3, 3])
    if p["addition_attention"]:
        _transformer(keys, "init_attn.0", mc, 8, hc, depth, None, False, False)

    def attention(prefix: str, ch: int, start: int) -> None:
        _transformer(keys, f"{prefix}.{start}", ch, ch // hc, hc, depth, ctx, ip, alpha)
        _transformer(keys, f"{prefix}.{start + 1}", ch, ch // hc, hc, depth, None, False, False)

    chans, ch, ds, index = [mc], mc, 1, 1
    for level, mult in enumerate(p["channel_mult"]):
        for _ in range(p["num_res_blocks"]):
            _resblock(keys, f"input_blocks.{index}.0", ch, emb, mult * mc)
            ch = mult * mc
            if ds in p["attention_resolutions"]:
                attention(f"input_blocks.{index}", ch, 1)
            chans.append(ch)
            index += 1
        if level != len(p["channel_mult"]) - 1:
            _conv(keys, f"input_blocks.{index}.0.op", ch, ch, [3, 3])
            chans.append(ch)
            index += 1
            ds *= 2
    _resblock(keys, "middle_block.0", ch, emb, ch)
    attention("middle_block", ch, 1)
    _resblock(keys, "middle_block.3", ch, emb, ch)
    index = 0
    for level, mult in list(enumerate(p["channel_mult"]))[::-1]:
        for i in range(p["num_res_blocks"] + 1):
            _resblock(keys, f"output_blocks.{index}.0", ch + chans.pop(), emb, mc * mult)
            ch = mc * mult
            position = 1
            if ds in p["attention_resolutions"]:
                attention(f"output_blocks.{index}", ch, 1)
                position = 3
            if level and i == p["num_res_blocks"]:
                _conv(keys, f"output_blocks.{index}.{position}.conv", ch, ch, [3, 3])
                ds //= 2
            index += 1
    _norm(keys, "out.0", ch)
    _conv(keys, "out.2", p["out_channels"], mc, [3, 3])
    return keys


def resampler_keys(p: dict) -> dict[str, list[int]]:
    keys: dict[str, list[int]] = {"latents": [1, p["num_queries"] * (p["video_length"] or 1), p["dim"]]}
    _linear(keys, "proj_in", p["dim"], p["embedding_dim"])
    _linear(keys, "proj_out", p["output_dim"], p["dim"])
    _norm(keys, "norm_out", p["output_dim"])
    inner, ff = p["dim_head"] * p["heads"], p["dim"] * p["ff_mult"]
    for i in range(p["depth"]):
        _norm(keys, f"layers.{i}.0.norm1", p["dim"])
        _norm(keys, f"layers.{i}.0.norm2", p["dim"])
        _linear(keys, f"layers.{i}.0.to_q", inner, p["dim"], bias=False)
        _linear(keys, f"layers.{i}.0.to_kv", inner * 2, p["dim"], bias=False)
        _linear(keys, f"layers.{i}.0.to_out", p["dim"], inner, bias=False)
        _norm(keys, f"layers.{i}.1.0", p["dim"])
        _linear(keys, f"layers.{i}.1.1", ff, p["dim"], bias=False)
        _linear(keys, f"layers.{i}.1.3", p["dim"], ff, bias=False)
    return keys


# first_stage_config.params.ddconfig (identical in both configs): lvdm/models/autoencoder.py AutoencoderKL
# with lvdm/modules/networks/ae_modules.py Encoder / Decoder (mid-block attention, no temb).
VAE = dict(embed_dim=4, z_channels=4, in_channels=3, out_ch=3, ch=128, ch_mult=[1, 2, 4, 4], num_res_blocks=2)


def _ae_resnet(keys, name, cin, cout):
    _norm(keys, f"{name}.norm1", cin)
    _conv(keys, f"{name}.conv1", cout, cin, [3, 3])
    _norm(keys, f"{name}.norm2", cout)
    _conv(keys, f"{name}.conv2", cout, cout, [3, 3])
    if cin != cout:
        _conv(keys, f"{name}.nin_shortcut", cout, cin, [1, 1])


def _ae_mid(keys, name, ch):
    _ae_resnet(keys, f"{name}.block_1", ch, ch)
    _norm(keys, f"{name}.attn_1.norm", ch)
    for conv in ("q", "k", "v", "proj_out"):
        _conv(keys, f"{name}.attn_1.{conv}", ch, ch, [1, 1])
    _ae_resnet(keys, f"{name}.block_2", ch, ch)


def first_stage_keys(p: dict = VAE) -> dict[str, list[int]]:
    keys: dict[str, list[int]] = {}
    ch, mult, blocks = p["ch"], p["ch_mult"], p["num_res_blocks"]
    _conv(keys, "encoder.conv_in", ch, p["in_channels"], [3, 3])
    in_mult = [1, *mult]
    for level in range(len(mult)):
        block_in, block_out = ch * in_mult[level], ch * mult[level]
        for j in range(blocks):
            _ae_resnet(keys, f"encoder.down.{level}.block.{j}", block_in, block_out)
            block_in = block_out
        if level != len(mult) - 1:
            _conv(keys, f"encoder.down.{level}.downsample.conv", block_in, block_in, [3, 3])
    _ae_mid(keys, "encoder.mid", block_in)
    _norm(keys, "encoder.norm_out", block_in)
    _conv(keys, "encoder.conv_out", 2 * p["z_channels"], block_in, [3, 3])
    block_in = ch * mult[-1]
    _conv(keys, "decoder.conv_in", block_in, p["z_channels"], [3, 3])
    _ae_mid(keys, "decoder.mid", block_in)
    for level in reversed(range(len(mult))):  # self.up.insert(0, ...): index = level
        block_out = ch * mult[level]
        for j in range(blocks + 1):
            _ae_resnet(keys, f"decoder.up.{level}.block.{j}", block_in, block_out)
            block_in = block_out
        if level != 0:
            _conv(keys, f"decoder.up.{level}.upsample.conv", block_in, block_in, [3, 3])
    _norm(keys, "decoder.norm_out", block_in)
    _conv(keys, "decoder.conv_out", p["out_ch"], block_in, [3, 3])
    _conv(keys, "quant_conv", 2 * p["embed_dim"], 2 * p["z_channels"], [1, 1])
    _conv(keys, "post_quant_conv", p["z_channels"], p["embed_dim"], [1, 1])
    return keys


def checkpoint_listing(unet: dict, resampler: dict = RESAMPLER) -> dict[str, list[int]]:
    """The `model.diffusion_model.*` and `image_proj_model.*` entries of model.ckpt's state_dict."""
    listing = {f"model.diffusion_model.{k}": v for k, v in unet_keys(unet).items()}
    listing.update({f"image_proj_model.{k}": v for k, v in resampler_keys(resampler).items()})
    return listing


def write_listings() -> None:
    for name, params in (("dynamicrafter_256", UNET_256), ("dynamicrafter_512", UNET_512)):
        with gzip.open(HERE / f"{name}.json.gz", "wt") as handle:
            json.dump(checkpoint_listing(params), handle, indent=0, sort_keys=True)


if __name__ == "__main__":
    write_listings()
