"""Key -> shape listings of the official audio-encoder checkpoints, written from the official source.

No import from `asva`. Written by reading the public code:
- ImageBind (imagebind/models/imagebind_model.py `imagebind_huge`, multimodal_preprocessors.py,
  transformer.py, helpers.py): the audio and vision entries of `imagebind_huge.pth`;
- BEATs (microsoft/unilm beats/BEATs.py, backbone.py): the `model` entry of a BEATs `.pt`.
Sizes are parameters so the tests can also build small checkpoints with the same layout.
"""

from __future__ import annotations


def _ln(keys, name, dim):
    keys[f"{name}.weight"] = [dim]
    keys[f"{name}.bias"] = [dim]


def _lin(keys, name, out_f, in_f, bias=True):
    keys[f"{name}.weight"] = [out_f, in_f]
    if bias:
        keys[f"{name}.bias"] = [out_f]


def _imagebind_blocks(keys, trunk, dim, blocks, bias_kv):
    for i in range(blocks):
        b = f"{trunk}.blocks.{i}"
        keys[f"{b}.attn.in_proj_weight"] = [3 * dim, dim]  # nn.MultiheadAttention
        keys[f"{b}.attn.in_proj_bias"] = [3 * dim]
        if bias_kv:
            keys[f"{b}.attn.bias_k"] = [1, 1, dim]
            keys[f"{b}.attn.bias_v"] = [1, 1, dim]
        _lin(keys, f"{b}.attn.out_proj", dim, dim)
        _ln(keys, f"{b}.norm_1", dim)
        _lin(keys, f"{b}.mlp.fc1", 4 * dim, dim)
        _lin(keys, f"{b}.mlp.fc2", dim, 4 * dim)
        _ln(keys, f"{b}.norm_2", dim)


def imagebind_audio_keys(dim=768, blocks=12, out_dim=1024, mel=128, frames=204, kernel=16, stride=10):
    keys: dict[str, list[int]] = {}
    pre = "modality_preprocessors.audio"
    patches = ((mel - kernel) // stride + 1) * ((frames - kernel) // stride + 1)
    keys[f"{pre}.cls_token"] = [1, 1, dim]
    keys[f"{pre}.rgbt_stem.proj.weight"] = [dim, 1, kernel, kernel]  # a one-layer stem is not a Sequential
    _ln(keys, f"{pre}.rgbt_stem.norm_layer", dim)
    keys[f"{pre}.pos_embedding_helper.pos_embed"] = [1, patches + 1, dim]
    _imagebind_blocks(keys, "modality_trunks.audio", dim, blocks, bias_kv=True)
    _ln(keys, "modality_heads.audio.0", dim)
    _lin(keys, "modality_heads.audio.2", out_dim, dim, bias=False)
    keys["modality_postprocessors.audio.1.log_logit_scale"] = []
    return keys


def imagebind_vision_keys(dim=1280, blocks=32, out_dim=1024, image=224, patch=14):
    keys: dict[str, list[int]] = {}
    pre = "modality_preprocessors.vision"
    keys[f"{pre}.cls_token"] = [1, 1, dim]
    keys[f"{pre}.rgbt_stem.proj.1.weight"] = [dim, 3, 2, patch, patch]  # Sequential(PadIm2Video, Conv3d)
    keys[f"{pre}.pos_embedding_helper.pos_embed"] = [1, (image // patch) ** 2 + 1, dim]
    _ln(keys, "modality_trunks.vision.pre_transformer_layer.0", dim)
    _imagebind_blocks(keys, "modality_trunks.vision", dim, blocks, bias_kv=False)
    _ln(keys, "modality_heads.vision.0", dim)
    _lin(keys, "modality_heads.vision.2", out_dim, dim, bias=False)
    return keys


def imagebind_other_modalities_sample() -> dict[str, list[int]]:
    """A few keys of the modalities the project does not use (they share the same file)."""
    return {
        "modality_preprocessors.text.token_embedding.weight": [49408, 1024],
        "modality_trunks.depth.blocks.0.norm_1.weight": [384],
        "modality_heads.imu.3.weight": [1024, 512],
    }


BEATS_ITER3_CFG = dict(
    input_patch_size=16,
    embed_dim=512,
    conv_bias=False,
    encoder_layers=12,
    encoder_embed_dim=768,
    encoder_ffn_embed_dim=3072,
    encoder_attention_heads=12,
    activation_fn="gelu",
    layer_norm_first=False,
    deep_norm=True,
    dropout=0.0,
    attention_dropout=0.0,
    activation_dropout=0.0,
    encoder_layerdrop=0.05,
    dropout_input=0.0,
    conv_pos=128,
    conv_pos_groups=16,
    relative_position_embedding=True,
    num_buckets=320,
    max_distance=800,
    gru_rel_pos=True,
    finetuned_model=False,
    predictor_class=527,
)


def beats_keys(cfg: dict) -> dict[str, list[int]]:
    keys: dict[str, list[int]] = {}
    d, e, heads = cfg["encoder_embed_dim"], cfg["embed_dim"], cfg["encoder_attention_heads"]
    p = cfg["input_patch_size"]
    if e != d:
        _lin(keys, "post_extract_proj", d, e)
    keys["patch_embedding.weight"] = [e, 1, p, p]
    if cfg["conv_bias"]:
        keys["patch_embedding.bias"] = [e]
    # weight_norm(dim=2) on Conv1d(d, d, conv_pos, groups): g keeps only the kernel axis
    keys["encoder.pos_conv.0.bias"] = [d]
    keys["encoder.pos_conv.0.weight_g"] = [1, 1, cfg["conv_pos"]]
    keys["encoder.pos_conv.0.weight_v"] = [d, d // cfg["conv_pos_groups"], cfg["conv_pos"]]
    for i in range(cfg["encoder_layers"]):
        layer = f"encoder.layers.{i}"
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            _lin(keys, f"{layer}.self_attn.{proj}", d, d)
        if cfg["relative_position_embedding"]:
            # layers 1.. re-register layer 0's Embedding, so every layer lists it
            keys[f"{layer}.self_attn.relative_attention_bias.weight"] = [cfg["num_buckets"], heads]
        if cfg["gru_rel_pos"]:
            _lin(keys, f"{layer}.self_attn.grep_linear", 8, d // heads)
            keys[f"{layer}.self_attn.grep_a"] = [1, heads, 1, 1]
        _ln(keys, f"{layer}.self_attn_layer_norm", d)
        _lin(keys, f"{layer}.fc1", cfg["encoder_ffn_embed_dim"], d)
        _lin(keys, f"{layer}.fc2", d, cfg["encoder_ffn_embed_dim"])
        _ln(keys, f"{layer}.final_layer_norm", d)
    _ln(keys, "encoder.layer_norm", d)
    _ln(keys, "layer_norm", e)
    if cfg["finetuned_model"]:
        _lin(keys, "predictor", cfg["predictor_class"], d)
    return keys
