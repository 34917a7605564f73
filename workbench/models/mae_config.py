"""Architectures of the ViT masked autoencoders, and their parameter counts (no torch needed).

The presets ``base`` to ``15B`` reproduce Table I of Tsaris et al. (2024), *Pretraining
Billion-scale Geospatial Foundational Models on Frontier* (seed
``billion-scale-geospatial-fm-frontier.txt``): width, depth, MLP width and heads, with 16 px
patches for ViT-Base and 14 px patches for ViT-Huge and the billion-scale models. The
decoder of every paper-scale preset is the default of He et al. (2022), *Masked Autoencoders
Are Scalable Vision Learners* (512 wide, 8 blocks, 16 heads). ``large`` is ViT-L of
Dosovitskiy et al. (2021), Table 1; ``tiny`` and ``small`` are CPU-sized additions.

:func:`count_parameters` counts analytically, so the 15B model never has to be built.

Examples
--------
>>> from workbench.models.mae_config import count_parameters, get_config
>>> cfg = get_config("3B")
>>> cfg.embed_dim, cfg.depth, cfg.mlp_dim, cfg.num_heads, cfg.patch_size
(2816, 32, 11264, 32, 14)
>>> round(count_parameters(cfg, part="encoder") / 1e6)
3048
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal

from workbench.errors import DimensionError

__all__ = ["MAEConfig", "PRESETS", "get_config", "count_parameters", "parameter_table"]

Part = Literal["encoder", "decoder", "total"]


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


@dataclass(frozen=True)
class MAEConfig:
    """Architecture of a ViT masked autoencoder (encoder + lightweight decoder).

    Parameters
    ----------
    embed_dim, depth, num_heads, mlp_dim : int
        Encoder width, number of blocks, attention heads and MLP hidden width
        ("Width", "Depth", "Heads", "MLP" of Tsaris et al. 2024, Table I).
    decoder_embed_dim, decoder_depth, decoder_num_heads, decoder_mlp_dim : int
        The decoder's (He et al. 2022 default: 512, 8, 16, 2048).
    patch_size : int
        Side of a square patch in pixels.
    img_size : int or tuple of int
        Image side (or ``(height, width)``), a multiple of ``patch_size``.
    in_chans : int
        Input channels (3 for RGB, 13 for Sentinel-2 L1C).
    norm_pix_loss : bool
        Regress per-patch normalised pixels (He et al. 2022, Sec. 3 "Reconstruction target").
    name : str
        Preset name, ``"custom"`` otherwise.
    reference_params_m : float, optional
        Parameter count (millions) reported by the source paper, for comparison.
    reference : str
        The source of the architecture.

    Raises
    ------
    DimensionError
        If a size is not positive, a width is not divisible by its heads or by 4 (the
        sine-cosine position embedding), or the image is not a multiple of the patch.

    Examples
    --------
    >>> cfg = MAEConfig(embed_dim=64, depth=2, num_heads=4, mlp_dim=128, img_size=32, patch_size=8)
    >>> cfg.num_patches, cfg.mlp_ratio
    (16, 2.0)
    >>> MAEConfig(embed_dim=66, depth=2, num_heads=4, mlp_dim=128)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    workbench.errors.DimensionError: MAEConfig embed_dim=66 must be divisible by num_heads=4 ...
    """

    embed_dim: int
    depth: int
    num_heads: int
    mlp_dim: int
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    decoder_mlp_dim: int = 2048
    patch_size: int = 16
    img_size: int | tuple[int, int] = 224
    in_chans: int = 3
    norm_pix_loss: bool = False
    name: str = "custom"
    reference_params_m: float | None = None
    reference: str = ""

    def __post_init__(self) -> None:
        sizes = {
            "embed_dim": self.embed_dim,
            "depth": self.depth,
            "num_heads": self.num_heads,
            "mlp_dim": self.mlp_dim,
            "decoder_embed_dim": self.decoder_embed_dim,
            "decoder_depth": self.decoder_depth,
            "decoder_num_heads": self.decoder_num_heads,
            "decoder_mlp_dim": self.decoder_mlp_dim,
            "patch_size": self.patch_size,
            "in_chans": self.in_chans,
        }
        for key, value in sizes.items():
            if not isinstance(value, int) or value < 1:
                raise DimensionError(f"MAEConfig {key} must be a positive int, got {value!r}.")
        for width, heads in (
            ("embed_dim", "num_heads"),
            ("decoder_embed_dim", "decoder_num_heads"),
        ):
            if sizes[width] % sizes[heads]:
                raise DimensionError(
                    f"MAEConfig {width}={sizes[width]} must be divisible by {heads}={sizes[heads]} "
                    "(each head gets width // heads channels); change one of them."
                )
            if sizes[width] % 4:
                raise DimensionError(
                    f"MAEConfig {width}={sizes[width]} must be divisible by 4 for the 2-D "
                    "sine-cosine position embedding."
                )
        h, w = self.image_hw
        if h < 1 or w < 1 or h % self.patch_size or w % self.patch_size:
            raise DimensionError(
                f"MAEConfig img_size={self.img_size!r} must be a positive multiple of "
                f"patch_size={self.patch_size}; crop the chips or change patch_size."
            )

    @property
    def image_hw(self) -> tuple[int, int]:
        """``(height, width)`` of the input images."""
        return _pair(self.img_size)

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patches along height and width."""
        h, w = self.image_hw
        return (h // self.patch_size, w // self.patch_size)

    @property
    def num_patches(self) -> int:
        """Number of patches (tokens, class token excluded) per image."""
        gh, gw = self.grid_size
        return gh * gw

    @property
    def mlp_ratio(self) -> float:
        """``mlp_dim / embed_dim`` (4 for every preset but ViT-5B's 8.57)."""
        return self.mlp_dim / self.embed_dim

    def with_input(
        self,
        *,
        in_chans: int | None = None,
        img_size: int | tuple[int, int] | None = None,
        patch_size: int | None = None,
        norm_pix_loss: bool | None = None,
    ) -> MAEConfig:
        """Copy with another input geometry; ``None`` keeps the current value.

        Examples
        --------
        >>> get_config("tiny").with_input(in_chans=13, img_size=16).num_patches
        16
        """
        changes: dict[str, object] = {}
        if in_chans is not None:
            changes["in_chans"] = in_chans
        if img_size is not None:
            changes["img_size"] = img_size
        if patch_size is not None:
            changes["patch_size"] = patch_size
        if norm_pix_loss is not None:
            changes["norm_pix_loss"] = norm_pix_loss
        return replace(self, **changes) if changes else self  # type: ignore[arg-type]


_FRONTIER = "Tsaris et al. 2024 (Frontier), Table I"
_PRESET_LIST = [
    MAEConfig(
        embed_dim=32,
        depth=2,
        num_heads=2,
        mlp_dim=64,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2,
        decoder_mlp_dim=64,
        patch_size=4,
        img_size=32,
        name="tiny",
        reference="workbench: CPU-trainable in seconds",
    ),
    MAEConfig(
        embed_dim=384,
        depth=12,
        num_heads=6,
        mlp_dim=1536,
        decoder_embed_dim=256,
        decoder_depth=4,
        decoder_num_heads=8,
        decoder_mlp_dim=1024,
        name="small",
        reference_params_m=22.0,
        reference="ViT-S/16 (Touvron et al. 2021, DeiT-S), 4-block decoder",
    ),
    MAEConfig(
        embed_dim=768,
        depth=12,
        num_heads=12,
        mlp_dim=3072,
        name="base",
        reference_params_m=87.0,
        reference=_FRONTIER,
    ),
    MAEConfig(
        embed_dim=1024,
        depth=24,
        num_heads=16,
        mlp_dim=4096,
        name="large",
        reference_params_m=307.0,
        reference="ViT-L/16 (Dosovitskiy et al. 2021, Table 1)",
    ),
    MAEConfig(
        embed_dim=1280,
        depth=32,
        num_heads=16,
        mlp_dim=5120,
        patch_size=14,
        name="huge",
        reference_params_m=635.0,
        reference=_FRONTIER,
    ),
    MAEConfig(
        embed_dim=1536,
        depth=32,
        num_heads=16,
        mlp_dim=6144,
        patch_size=14,
        name="1B",
        reference_params_m=914.0,
        reference=_FRONTIER,
    ),
    MAEConfig(
        embed_dim=2816,
        depth=32,
        num_heads=32,
        mlp_dim=11264,
        patch_size=14,
        name="3B",
        reference_params_m=3067.0,
        reference=_FRONTIER,
    ),
    MAEConfig(
        embed_dim=1792,
        depth=56,
        num_heads=16,
        mlp_dim=15360,
        patch_size=14,
        name="5B",
        reference_params_m=5349.0,
        reference=_FRONTIER + " (its 5349M does not follow from this row with a 2-layer MLP, "
        "which gives 3.8B; a 3-matrix gated MLP would give 5.3B)",
    ),
    MAEConfig(
        embed_dim=5040,
        depth=48,
        num_heads=48,
        mlp_dim=20160,
        patch_size=14,
        name="15B",
        reference_params_m=14720.0,
        reference=_FRONTIER,
    ),
]

#: Named architectures, smallest first (read-only mapping ``name -> MAEConfig``).
PRESETS: Mapping[str, MAEConfig] = MappingProxyType({c.name: c for c in _PRESET_LIST})


def get_config(name: str) -> MAEConfig:
    """Return a preset by name (case-insensitive): tiny, small, base, large, huge, 1B, 3B, 5B, 15B.

    Raises
    ------
    DimensionError
        If the name is not a preset; the message lists the valid names.

    Examples
    --------
    >>> get_config("huge").patch_size
    14
    """
    for key, config in PRESETS.items():
        if key.lower() == str(name).lower():
            return config
    raise DimensionError(
        f"unknown MAE preset {name!r}; choose one of {list(PRESETS)} or build an MAEConfig(...)."
    )


def _block_params(dim: int, mlp: int) -> int:
    # 2 LayerNorms (2*dim each) + qkv (3*dim*dim + 3*dim) + proj (dim*dim + dim)
    # + fc1 (dim*mlp + mlp) + fc2 (mlp*dim + dim)
    return 4 * dim * dim + 2 * dim * mlp + 9 * dim + mlp


def count_parameters(config: MAEConfig | str, *, part: Part = "total") -> int:
    """Count the parameters of the MAE built from ``config``, without building it.

    Buffers (the fixed sine-cosine position embeddings) are not counted, exactly as
    ``sum(p.numel() for p in model.parameters())``.

    Parameters
    ----------
    config : MAEConfig or str
        A configuration or a preset name.
    part : {"total", "encoder", "decoder"}
        ``"encoder"`` (patch embedding, class token, blocks, final norm) is what the paper's
        Table I reports; ``"decoder"`` adds the MAE decoder and pixel head.

    Examples
    --------
    >>> count_parameters("tiny")
    30032
    >>> round(count_parameters("15B", part="encoder") / 1e9, 2)
    14.64
    """
    cfg = get_config(config) if isinstance(config, str) else config
    d, dd, p, c = cfg.embed_dim, cfg.decoder_embed_dim, cfg.patch_size, cfg.in_chans
    pix = p * p * c
    encoder = (pix * d + d) + d + cfg.depth * _block_params(d, cfg.mlp_dim) + 2 * d
    decoder = (
        (d * dd + dd)
        + dd
        + cfg.decoder_depth * _block_params(dd, cfg.decoder_mlp_dim)
        + 2 * dd
        + (dd * pix + pix)
    )
    if part == "encoder":
        return encoder
    if part == "decoder":
        return decoder
    if part == "total":
        return encoder + decoder
    raise DimensionError(f"part must be 'encoder', 'decoder' or 'total', got {part!r}.")


def parameter_table(names: list[str] | None = None) -> str:
    """Format the presets as a text table: architecture, analytic counts, the paper's figure.

    Examples
    --------
    >>> print(parameter_table(["tiny", "base"]))  # doctest: +NORMALIZE_WHITESPACE
    preset width depth   mlp heads patch  encoder [M]  total [M]  paper [M]
    tiny      32     2    64     2     4        0.019      0.030          -
    base     768    12  3072    12    16       85.647    111.656         87
    """
    header = (
        f"{'preset':<6} {'width':>5} {'depth':>5} {'mlp':>5} {'heads':>5} {'patch':>5} "
        f"{'encoder [M]':>12} {'total [M]':>10} {'paper [M]':>10}"
    )
    rows = [header]
    for name in names or list(PRESETS):
        cfg = get_config(name)
        ref = "-" if cfg.reference_params_m is None else f"{cfg.reference_params_m:g}"
        rows.append(
            f"{cfg.name:<6} {cfg.embed_dim:>5} {cfg.depth:>5} {cfg.mlp_dim:>5} "
            f"{cfg.num_heads:>5} {cfg.patch_size:>5} "
            f"{count_parameters(cfg, part='encoder') / 1e6:>12.3f} "
            f"{count_parameters(cfg) / 1e6:>10.3f} {ref:>10}"
        )
    return "\n".join(rows)
