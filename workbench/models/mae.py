"""Masked autoencoder (MAE) Vision Transformers, from a CPU-sized toy to the 15B Frontier variant.

The model follows He et al. (2022), *Masked Autoencoders Are Scalable Vision Learners*
(Fig. 1 and Sec. 3: per-sample random masking by shuffling, an encoder that sees only the
visible patches, a lightweight decoder with mask tokens, a pixel loss on masked patches,
optionally on per-patch normalised pixels). The named presets ``base`` to ``15B`` are the ViT
variants of Table I of Tsaris et al. (2024), *Pretraining Billion-scale Geospatial Foundational
Models on Frontier* (seed ``billion-scale-geospatial-fm-frontier.txt``); ``tiny`` and ``small``
are added so that the same code trains on a laptop CPU in seconds.

Every transformer block is a :class:`MAEBlock`, the class an FSDP auto-wrap policy targets::

    policy = functools.partial(transformer_auto_wrap_policy, transformer_layer_cls={MAEBlock})

The model configuration (:class:`MAEConfig`, :data:`PRESETS`, :func:`count_parameters`) lives
in :mod:`workbench.models.mae_config` and is re-exported here.

Examples
--------
>>> import torch
>>> from workbench.models.mae import MaskedAutoencoderViT, get_config
>>> model = MaskedAutoencoderViT(get_config("tiny"), in_chans=13, img_size=16, patch_size=4)
>>> loss, pred, mask = model(torch.rand(2, 13, 16, 16), mask_ratio=0.75)
>>> tuple(pred.shape), tuple(mask.shape), int(mask.sum())
((2, 16, 208), (2, 16), 24)
"""

from __future__ import annotations

from typing import Literal

from workbench._optional import lazy_import
from workbench.errors import DimensionError

lazy_import("torch", purpose="workbench.models.mae")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from workbench.models.mae_config import (  # noqa: E402
    PRESETS,
    MAEConfig,
    count_parameters,
    get_config,
    parameter_table,
)

__all__ = [
    "MAEBlock",
    "MaskedAutoencoderViT",
    "MAEConfig",
    "PRESETS",
    "get_config",
    "count_parameters",
    "parameter_table",
    "sincos_pos_embed_2d",
]

Pool = Literal["cls", "mean", "none"]


class _Attention(nn.Module):
    """Multi-head self-attention (fused qkv projection, scaled dot-product kernel)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        y: torch.Tensor = self.proj(out.transpose(1, 2).reshape(b, n, c))
        return y


class _Mlp(nn.Module):
    """Two-layer GELU MLP of a transformer block."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.fc2(self.act(self.fc1(x)))
        return y


class MAEBlock(nn.Module):
    """Pre-norm ViT transformer block: ``x + MSA(LN(x))`` then ``x + MLP(LN(x))``.

    The unit that FSDP wraps and shards (one FSDP unit per block), as in the Frontier
    workflow of Tsaris et al. (2024).

    Parameters
    ----------
    dim : int
        Token width.
    num_heads : int
        Attention heads; must divide ``dim``.
    mlp_dim : int
        Hidden width of the MLP.

    Examples
    --------
    >>> import torch
    >>> block = MAEBlock(dim=8, num_heads=2, mlp_dim=16)
    >>> tuple(block(torch.zeros(3, 5, 8)).shape)
    (3, 5, 8)
    """

    def __init__(self, dim: int, num_heads: int, mlp_dim: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise DimensionError(
                f"MAEBlock dim={dim} is not divisible by num_heads={num_heads}; "
                "pick a head count that divides the width."
            )
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``(B, N, dim)`` tokens."""
        x = x + self.attn(self.norm1(x))
        y: torch.Tensor = x + self.mlp(self.norm2(x))
        return y


def sincos_pos_embed_2d(
    dim: int, grid_h: int, grid_w: int, *, cls_token: bool = True
) -> torch.Tensor:
    """Build the fixed 2-D sine-cosine position embedding ``(1, [1 +] grid_h * grid_w, dim)``.

    Half of the channels encode the patch row, half the column (MAE, He et al. 2022); the
    class-token row is zeros. Returned on the default device, so it follows
    ``torch.device(...)`` contexts (``"meta"`` included).

    Examples
    --------
    >>> tuple(sincos_pos_embed_2d(8, 2, 3).shape)
    (1, 7, 8)
    """
    if dim % 4:
        raise DimensionError(f"sine-cosine position embedding needs dim % 4 == 0, got dim={dim}.")
    # Computed on the CPU (cheap, and no meta-device decompositions to load), then moved to
    # the current default device so ``with torch.device(...)`` contexts are honoured.
    cpu = torch.device("cpu")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64, device=cpu) / quarter)
    rows = torch.arange(grid_h, dtype=torch.float64, device=cpu).repeat_interleave(grid_w)
    cols = torch.arange(grid_w, dtype=torch.float64, device=cpu).repeat(grid_h)
    parts = []
    for pos in (rows, cols):
        angles = pos[:, None] * omega[None, :]
        parts += [torch.sin(angles), torch.cos(angles)]
    emb = torch.cat(parts, dim=1)
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim, dtype=emb.dtype, device=cpu), emb], dim=0)
    return emb.float().unsqueeze(0).to(torch.empty(0).device)


class MaskedAutoencoderViT(nn.Module):
    """ViT masked autoencoder (He et al. 2022) with the architectures of Tsaris et al. (2024).

    Parameters
    ----------
    config : MAEConfig
        Architecture, e.g. ``get_config("tiny")`` or ``get_config("3B")``.
    in_chans, img_size, patch_size : optional
        Override the configuration's input geometry (e.g. 13 Sentinel-2 bands, 16 px chips).
    norm_pix_loss : bool, optional
        Override ``config.norm_pix_loss``.

    Attributes
    ----------
    config : MAEConfig
        The effective configuration (overrides applied).
    blocks, decoder_blocks : torch.nn.ModuleList
        Encoder and decoder :class:`MAEBlock` stacks.

    Notes
    -----
    Position embeddings are fixed sine-cosine *buffers*, not frozen parameters, so every
    parameter is trainable: FSDP's flat parameters never mix ``requires_grad`` values.

    Examples
    --------
    >>> import torch
    >>> model = MaskedAutoencoderViT(get_config("tiny"))
    >>> model.config.num_patches, model.num_parameters() == count_parameters(model.config)
    (64, True)
    >>> tuple(model.encoder_features(torch.rand(4, 3, 32, 32)).shape)
    (4, 32)
    """

    pos_embed: torch.Tensor
    decoder_pos_embed: torch.Tensor

    def __init__(
        self,
        config: MAEConfig,
        *,
        in_chans: int | None = None,
        img_size: int | tuple[int, int] | None = None,
        patch_size: int | None = None,
        norm_pix_loss: bool | None = None,
    ) -> None:
        super().__init__()
        cfg = config.with_input(
            in_chans=in_chans, img_size=img_size, patch_size=patch_size, norm_pix_loss=norm_pix_loss
        )
        self.config = cfg
        d, dd, p, c = cfg.embed_dim, cfg.decoder_embed_dim, cfg.patch_size, cfg.in_chans
        gh, gw = cfg.grid_size
        # encoder
        self.patch_embed = nn.Conv2d(c, d, kernel_size=p, stride=p)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.register_buffer("pos_embed", torch.zeros(1, gh * gw + 1, d))
        self.blocks = nn.ModuleList(
            MAEBlock(d, cfg.num_heads, cfg.mlp_dim) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(d, eps=1e-6)
        # decoder
        self.decoder_embed = nn.Linear(d, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.register_buffer("decoder_pos_embed", torch.zeros(1, gh * gw + 1, dd))
        self.decoder_blocks = nn.ModuleList(
            MAEBlock(dd, cfg.decoder_num_heads, cfg.decoder_mlp_dim)
            for _ in range(cfg.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(dd, eps=1e-6)
        self.decoder_pred = nn.Linear(dd, p * p * c)
        if not self.cls_token.is_meta:  # meta-device models are initialised after to_empty()
            self.init_weights()

    # -- initialisation (as in the reference MAE implementation) -----------------------------
    def init_weights(self) -> None:
        """(Re-)initialise the parameters as the reference MAE does.

        Also fills the fixed sine-cosine position-embedding buffers. Called by the
        constructor, except on the ``meta`` device (shape-only models, for counting or for
        deferred initialisation: ``model.to_empty(device=...)`` then ``model.init_weights()``).
        """
        gh, gw = self.config.grid_size
        with torch.no_grad():
            for buf in (self.pos_embed, self.decoder_pos_embed):
                buf.copy_(sincos_pos_embed_2d(buf.shape[-1], gh, gw).to(buf.device))
        self.patch_embed.reset_parameters()  # PyTorch's default bias, as the reference keeps
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # -- helpers ------------------------------------------------------------------------------
    def num_parameters(self, part: Literal["encoder", "decoder", "total"] = "total") -> int:
        """Count the parameters of the encoder, the decoder or both (buffers excluded)."""
        enc = [self.patch_embed, self.blocks, self.norm]
        dec = [self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred]
        n_enc = sum(p.numel() for m in enc for p in m.parameters()) + self.cls_token.numel()
        n_dec = sum(p.numel() for m in dec for p in m.parameters()) + self.mask_token.numel()
        return {"encoder": n_enc, "decoder": n_dec, "total": n_enc + n_dec}[part]

    def _check_imgs(self, imgs: torch.Tensor) -> None:
        cfg = self.config
        want = (cfg.in_chans, *cfg.image_hw)
        if imgs.ndim != 4 or tuple(imgs.shape[1:]) != want:
            raise DimensionError(
                f"MaskedAutoencoderViT expects images shaped (batch, {want[0]}, {want[1]}, "
                f"{want[2]}), got {tuple(imgs.shape)}. Build the model with matching "
                "in_chans=/img_size= or chip the data to that size."
            )

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, N, p*p*C)`` (patch-row-major, channel last within a patch)."""
        p, c = self.config.patch_size, self.config.in_chans
        b, gh, gw = imgs.shape[0], imgs.shape[2] // p, imgs.shape[3] // p
        x = imgs.reshape(b, c, gh, p, gw, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, gh * gw, p * p * c)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`patchify`: ``(B, N, p*p*C)`` -> ``(B, C, H, W)``."""
        p, c = self.config.patch_size, self.config.in_chans
        gh, gw = self.config.grid_size
        x = x.reshape(x.shape[0], gh, gw, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(x.shape[0], c, gh * p, gw * p)

    @staticmethod
    def random_masking(
        x: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keep a random ``1 - mask_ratio`` share of the tokens of each sample.

        Per-sample shuffle by argsort of uniform noise (He et al. 2022, Sec. 3). Returns the
        kept tokens ``(B, n_keep, D)``, the binary mask ``(B, N)`` (1 = masked, in the
        original patch order) and ``ids_restore`` ``(B, N)`` that undoes the shuffle.
        """
        b, n, d = x.shape
        n_keep = int(n * (1 - mask_ratio))
        noise = torch.rand(b, n, device=x.device, generator=generator)
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :n_keep]
        kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))
        mask = torch.ones(b, n, device=x.device, dtype=x.dtype)
        mask[:, :n_keep] = 0
        return kept, torch.gather(mask, 1, ids_restore), ids_restore

    # -- MAE passes ---------------------------------------------------------------------------
    def _embed(self, imgs: torch.Tensor) -> torch.Tensor:
        x: torch.Tensor = self.patch_embed(imgs).flatten(2).transpose(1, 2)
        return x + self.pos_embed[:, 1:, :]

    def _with_cls(self, x: torch.Tensor) -> torch.Tensor:
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1)

    def forward_encoder(
        self, imgs: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode the visible patches: ``(latent (B, 1 + n_keep, D), mask, ids_restore)``."""
        x, mask, ids_restore = self.random_masking(self._embed(imgs), mask_ratio, generator)
        x = self._with_cls(x)
        for block in self.blocks:
            x = block(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Fill in mask tokens, unshuffle, decode: predicted pixels ``(B, N, p*p*C)``."""
        x = self.decoder_embed(latent)
        b, n = ids_restore.shape
        fill = self.mask_token.expand(b, n + 1 - x.shape[1], -1)
        tokens = torch.cat([x[:, 1:, :], fill], dim=1)
        index = ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2])
        tokens = torch.gather(tokens, 1, index)
        x = torch.cat([x[:, :1, :], tokens], dim=1) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        pred: torch.Tensor = self.decoder_pred(self.decoder_norm(x))
        return pred[:, 1:, :]

    def forward_loss(
        self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Mean squared error on the masked patches (normalised per patch if configured).

        With ``mask_ratio=0`` no patch is masked and the loss is taken over all patches.
        """
        target = self.patchify(imgs)
        if self.config.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        per_patch = ((pred - target) ** 2).mean(dim=-1)
        masked = mask.sum()
        if masked == 0:
            return per_patch.mean()
        return (per_patch * mask).sum() / masked

    def forward(
        self,
        imgs: torch.Tensor,
        mask_ratio: float = 0.75,
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mask, encode, decode and score a batch of images.

        Parameters
        ----------
        imgs : torch.Tensor
            ``(B, in_chans, H, W)`` images.
        mask_ratio : float
            Share of patches to mask, ``0 <= mask_ratio < 1``; exactly
            ``N - int(N * (1 - mask_ratio))`` patches of each sample are masked.
        generator : torch.Generator, optional
            Source of the masking noise (for reproducible masks); on the images' device.

        Returns
        -------
        loss : torch.Tensor
            Scalar reconstruction loss.
        pred : torch.Tensor
            ``(B, N, patch_size**2 * in_chans)`` predicted patches (see :meth:`unpatchify`).
        mask : torch.Tensor
            ``(B, N)`` with 1 where the patch was masked.
        """
        if not 0.0 <= mask_ratio < 1.0:
            raise DimensionError(
                f"mask_ratio must satisfy 0 <= mask_ratio < 1, got {mask_ratio!r} (MAE uses 0.75)."
            )
        self._check_imgs(imgs)
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, generator)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask), pred, mask

    def encoder_features(self, imgs: torch.Tensor, pool: Pool = "mean") -> torch.Tensor:
        """Encode all patches (no masking): features for linear probing or fine-tuning.

        Parameters
        ----------
        imgs : torch.Tensor
            ``(B, in_chans, H, W)`` images.
        pool : {"mean", "cls", "none"}
            ``"mean"``: average of the patch tokens ``(B, D)`` (the default; robust after short
            pretraining); ``"cls"``: the class token ``(B, D)`` (He et al.'s linear probe);
            ``"none"``: all tokens ``(B, 1 + N, D)``.

        Notes
        -----
        Gradients are not disabled here; wrap the call in ``torch.no_grad()`` to probe a
        frozen encoder (as :func:`workbench.models.probe.extract_features` does).
        """
        if pool not in ("mean", "cls", "none"):
            raise DimensionError(f"pool must be 'mean', 'cls' or 'none', got {pool!r}.")
        self._check_imgs(imgs)
        x: torch.Tensor = self._with_cls(self._embed(imgs))
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        if pool == "cls":
            return x[:, 0]
        if pool == "mean":
            return x[:, 1:].mean(dim=1)
        return x
