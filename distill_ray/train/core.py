"""The training core: model set-up (base + PEFT LoRA [+ DeepSpeed]), the exact-batch step, adapter and resumable
state checkpoints. It runs in one process (`train_local`) or as the body of a Ray Train worker (`ray_train.py`),
which only supplies a different `Context` (rank, world, where checkpoints go, where to resume from).

    from distill_ray.train.core import train_local
    summary = train_local(examples, student, training, "runs/demo")

Data: `train_local` and `train_with_ray` tokenise the examples once into an Arrow file (data.prepare_dataset);
`run_training` memory-maps it, so workers share its pages and no example travels in a config.

Exactness: a step's global batch is exactly `training.global_batch` examples (seeded, see data.py), split over ranks
by tokens (longest first to the lightest rank; `balance: examples` gives shares differing by at most one); every
rank runs the same number of micro-batches (filler passes carry no loss), so ZeRO's collectives stay in lockstep.
The loss of a micro-batch is its summed token loss divided by the number of loss tokens in the *whole global batch*
(logits in chunks of `loss_chunk_tokens`, fp32, recomputed in the backward; or liger's fused kernel), so summing
gradients over micro-batches and ranks gives the per-token mean of the global batch (not a mean of per-batch
means). Ranks average gradients (DeepSpeed, and the plain all-reduce below), so each rank multiplies its loss by the
world size to turn that average into a sum.

Checkpoints (every `checkpoint_every` steps and at the last step) hold `adapter/` (PEFT format: adapter_config.json
+ adapter_model.safetensors, loadable by PeftModel.from_pretrained and vLLM's LoRARequest; gathered from ZeRO-3
shards so it is never empty) and `state/` (optimizer, scheduler, step, loss curve, per-rank RNG). Resuming restores
all of it, and the data position follows from the step.

Not guaranteed: bitwise equality between world sizes (reduction order differs; losses agree to float tolerance);
dropout masks after a resume match an uninterrupted run only because RNG state is restored per rank with the same
world size.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import math
import os
import random
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from distill_ray.train.data import (
    IGNORE,
    TokenizedDataset,
    global_batch_indices,
    make_micro_batches,
    micro_batches_per_rank,
    passes_per_rank,
    prepare_dataset,
    rank_shares,
)
from distill_ray.train.models import (
    best_attention,
    default_dtype,
    load_tokenizer,
    resolve_model_path,
    set_activation_checkpointing,
)

COMPLETE = "COMPLETE"
log = logging.getLogger(__name__)


class InjectedFault(RuntimeError):
    """Raised by the test-only fault injector (mode "raise")."""


class AdapterNotAppliedError(RuntimeError):
    """The trainable parameter count differs from the count the LoRA config implies."""


@dataclass
class Context:
    """How the core talks to its surroundings. `save` gets a local folder holding this rank's checkpoint files."""

    rank: int
    world: int
    device: str
    resume_dir: str | None  # a folder written by an earlier `save`, or None
    save: Callable[[int, str, dict], None]  # (step, local folder, metrics) -> persist (all ranks call it)
    report: Callable[[dict], None]  # per-step metrics (all ranks call it; may be a no-op)
    scratch: str  # a local folder for temporary checkpoint folders
    # tests only: {"rank", "step", "marker"[, "mode": "exit"|"raise"]}: fail once at that step
    fault: dict | None = None
    on_finish: Callable[[Any], None] | None = None  # receives the Setup after the last step (tests, benchmarks)


# ----------------------------------------------------------------------------------------------------------------------
# model set-up


def lora_targets(model: nn.Module, lora) -> tuple[list[str], list[str]]:
    """(target_modules, target_parameters) for PEFT. Expert LoRA adapts the fused expert weights of Qwen3-MoE-style
    blocks through `target_parameters`; the router (`mlp.gate`) is never targeted, so it stays frozen."""
    modules = list(lora.target_modules)
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    unmatched = [t for t in modules if not any(n == t or n.endswith("." + t) for n in names)]
    if unmatched:
        # e.g. gate_proj/up_proj/down_proj on Qwen3-MoE, whose MLP is fused 3-D expert tensors, not Linear layers
        hint = " (this model's experts are fused tensors: adapt them with expert_lora: true)" if any(
            n.endswith("experts.gate_up_proj") for n, _ in model.named_parameters()) else ""
        raise AdapterNotAppliedError(f"lora.target_modules {unmatched} match no linear layer of the model{hint}")
    params: list[str] = []
    if lora.expert_lora:
        names = {n for n, _ in model.named_parameters()}
        for suffix in ("experts.gate_up_proj", "experts.down_proj"):
            if any(n.endswith(suffix) for n in names):
                params.append(suffix)
        if not params:
            raise AdapterNotAppliedError("expert_lora is set but the model has no fused expert weights")
    return modules, params


def expected_trainable_parameters(model: nn.Module, lora, modules: list[str], params: list[str]) -> int:
    """The LoRA parameter count the config implies: r*(in+out) per targeted Linear, r*E*(in+out) per expert stack."""
    total = 0
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and any(name == t or name.endswith("." + t) for t in modules):
            if ".experts." in name:
                continue  # PEFT does not wrap per-expert Linear modules by suffix inside fused blocks
            total += lora.r * (module.in_features + module.out_features)
    for name, p in model.named_parameters():
        if any(name.endswith(s) for s in params):
            shape = tuple(getattr(p, "ds_shape", p.shape))
            experts, a, b = shape if len(shape) == 3 else (1, shape[1], shape[0])
            total += lora.r * experts * (a + b)
    return total


def count_trainable(model: nn.Module) -> int:
    return sum(int(getattr(p, "ds_numel", p.numel())) for p in model.parameters() if p.requires_grad)


def apply_lora(model: nn.Module, lora, seed: int) -> tuple[nn.Module, int]:
    """Wrap `model` in a PEFT LoRA model; raise if the trainable count is not what the config implies."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    modules, params = lora_targets(model, lora)
    expected = expected_trainable_parameters(model, lora, modules, params)
    config = PeftLoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=modules or [],
        target_parameters=params or None, bias="none", task_type="CAUSAL_LM",
    )
    # Same adapter initialisation on every rank (ZeRO-2 assumes identical replicas) and in every run.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, config)
    got = count_trainable(peft_model)
    log.info("LoRA trainable parameters: %d (the config implies %d; targets %s %s)", got, expected, modules, params)
    if expected == 0 or got != expected:
        raise AdapterNotAppliedError(
            f"LoRA trainable parameters: got {got}, the config implies {expected} "
            f"(targets {modules} {params}); an adapter that is not applied must not train silently"
        )
    return peft_model, got


def _chunk_loss(hidden: torch.Tensor, labels: torch.Tensor, head: nn.Module) -> torch.Tensor:
    return nn.functional.cross_entropy(head(hidden).float(), labels, reduction="sum")


def chunked_token_loss(hidden: torch.Tensor, labels: torch.Tensor, head: nn.Module, chunk: int) -> torch.Tensor:
    """Summed cross-entropy of `head(hidden)` against `labels`, never holding more than `chunk` rows of logits.

    Each chunk's fp32 logits are computed, reduced to a scalar and dropped; the backward recomputes them one chunk at
    a time (non-reentrant checkpoint), so the logits peak is chunk x vocab instead of tokens x vocab, forward and
    backward. One chunk (tokens <= chunk) is the plain computation, with no recompute.
    """
    if hidden.shape[0] <= chunk:
        return _chunk_loss(hidden, labels, head)
    from torch.utils.checkpoint import checkpoint

    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[0], chunk):
        total = total + checkpoint(_chunk_loss, hidden[start:start + chunk], labels[start:start + chunk], head,
                                   use_reentrant=False)
    return total


def liger_token_loss(hidden: torch.Tensor, labels: torch.Tensor, head: nn.Module) -> torch.Tensor:
    """liger-kernel's fused linear cross-entropy (CUDA only): logits and their gradient are produced chunk by chunk
    inside one kernel launch sequence and never stored. The gradient w.r.t. the input is computed in the forward, so
    under ZeRO-3 the (frozen) head weight is gathered for the forward only."""
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    fused = LigerFusedLinearCrossEntropyLoss(reduction="sum")
    weight, bias = head.weight, getattr(head, "bias", None)
    if hasattr(weight, "ds_id"):
        import deepspeed

        with deepspeed.zero.GatheredParameters([weight], modifier_rank=None):
            out = fused(weight, hidden, labels, bias)
    else:
        out = fused(weight, hidden, labels, bias)
    return (out[0] if isinstance(out, tuple) else out).float()


class CausalLMLoss(nn.Module):
    """Summed token loss of pre-shifted targets, computing logits only where there is a target.

    Skipping the LM head on prompt positions saves compute and (on 128K-vocab models) most of the logits memory;
    the rest is computed in chunks of `chunk_tokens` rows (`chunked_token_loss`) or by liger's fused kernel.
    A pass with no target (filler micro-batch) still runs the whole graph with weight 0, so every trainable
    parameter receives a gradient and collective hooks fire identically on every rank.
    """

    def __init__(self, model: nn.Module, chunk_tokens: int = 4096, kernel: str = "chunked"):
        super().__init__()
        self.model = model
        self.chunk_tokens = chunk_tokens
        self.kernel = kernel

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, targets: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        hidden = base.get_decoder()(
            input_ids=input_ids, position_ids=position_ids, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state
        flat_targets = targets.reshape(-1)
        keep = flat_targets != IGNORE
        weight = 1.0
        if not bool(keep.any()):
            keep = torch.zeros_like(keep)
            keep[0] = True
            weight = 0.0
        selected = hidden.reshape(-1, hidden.shape[-1])[keep]
        labels = flat_targets[keep].clamp(min=0)
        head = base.get_output_embeddings()
        if self.kernel == "liger":
            return liger_token_loss(selected, labels, head) * weight
        return chunked_token_loss(selected, labels, head, self.chunk_tokens) * weight


def lr_lambda(total_steps: int, warmup_ratio: float, schedule: str) -> Callable[[int], float]:
    warmup = int(round(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        if schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


@dataclass
class Setup:
    engine: Any  # DeepSpeed engine or the CausalLMLoss module
    peft_model: nn.Module
    optimizer: Any
    scheduler: Any
    deepspeed: bool
    trainable: int
    hf_ds_config: Any  # keeps transformers' ZeRO-3 loading hook alive while the model lives


def load_base_for_training(student, dtype: torch.dtype, attn_implementation: str,
                           zero3_config: dict[str, Any] | None) -> tuple[nn.Module, Any]:
    """The frozen base as from_pretrained loads it, partitioned at construction when `zero3_config` is given; returns
    (model, the HfDeepSpeedConfig that must stay alive with it, or None).

    Host memory at load (transformers 5.19, DeepSpeed 0.19.8; train.host_memory plans it): with the HfDeepSpeedConfig
    alive, from_pretrained builds the model inside deepspeed.zero.Init, so the parameters are partitioned from the
    start, but then *every rank* reads every checkpoint shard into one state dict on the CPU
    (modeling_utils._load_pretrained_model) and, for an MoE checkpoint with per-expert tensors, builds the fused
    expert tensors from it (integrations/deepspeed._apply_weight_conversions_to_state_dict) before rank 0 copies
    each module into its gathered parameters. Each rank therefore holds the whole checkpoint plus the fused experts
    in host memory for the duration of the load (planned at 56.8 + 52.6 GiB per rank for Qwen3-30B-A3B in bf16;
    tests/train/test_host_memory.py checks the plan against a measured load). Neither library at the
    pinned versions offers a rank-0 or streaming ZeRO-3 load (5.19 ignores low_cpu_mem_usage; zero.Init partitions
    but does not read checkpoints). Without ZeRO-3, each rank materialises the whole model on the CPU before moving
    it to its device."""
    from transformers import AutoModelForCausalLM

    hf_ds = None
    if zero3_config is not None:
        from transformers.integrations import HfDeepSpeedConfig

        hf_ds = HfDeepSpeedConfig(zero3_config)  # is_deepspeed_zero3_enabled() is true while this object lives
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": attn_implementation}
    if not student.model.startswith("builtin:"):
        kwargs["revision"] = student.revision
    return AutoModelForCausalLM.from_pretrained(resolve_model_path(student.model), **kwargs), hf_ds


def setup_model(student, training, ctx: Context, accumulation: int) -> Setup:
    """Base model (sharded at load under ZeRO-3), LoRA, optimiser, scheduler, DeepSpeed engine when configured."""
    on_gpu = str(ctx.device).startswith("cuda")
    dtype = default_dtype(student.dtype, ctx.device)
    use_ds = student.deepspeed_stage in (2, 3)
    ds_config = None
    if use_ds:
        import deepspeed

        from distill_ray.train.deepspeed_config import deepspeed_config

        # Wrap the process group Ray (or train_local) created, so DeepSpeed's config sees the real world size.
        deepspeed.init_distributed(dist_backend="nccl" if on_gpu else "gloo")

        ds_config = deepspeed_config(student.deepspeed_stage, training.micro_batch, accumulation, ctx.world,
                                     bf16=dtype == torch.bfloat16, on_gpu=on_gpu)
    base, hf_ds = load_base_for_training(student, dtype, best_attention(ctx.device),
                                         ds_config if student.deepspeed_stage == 3 else None)
    if not (use_ds and student.deepspeed_stage == 3):
        base = base.to(ctx.device)
    base.config.use_cache = False
    for p in base.parameters():
        p.requires_grad_(False)
    if student.gradient_checkpointing:
        set_activation_checkpointing(base, True)
    peft_model, trainable = apply_lora(base, student.lora, seed=training.seed)
    if use_ds and student.deepspeed_stage == 3:
        _mark_moe_leaves(peft_model)
    if training.loss_kernel == "liger" and not on_gpu:
        raise ValueError("training.loss_kernel: liger needs a CUDA device (liger-kernel is Triton); use chunked")
    loss_module = CausalLMLoss(peft_model, training.loss_chunk_tokens, training.loss_kernel)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=training.learning_rate, weight_decay=training.weight_decay,
                                  betas=(0.9, 0.999), eps=1e-8)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(training.steps, training.warmup_ratio, training.schedule))
    if not use_ds:
        return Setup(loss_module, peft_model, optimizer, scheduler, False, trainable, None)
    engine, optimizer, _, scheduler = deepspeed.initialize(
        model=loss_module, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config,
        model_parameters=params, dist_init_required=False,
    )
    return Setup(engine, peft_model, optimizer, scheduler, True, trainable, hf_ds)


def _mark_moe_leaves(model: nn.Module) -> None:
    """ZeRO-3 must gather a whole MoE block at once: ranks route tokens to different experts, and per-expert hooks
    would make their all-gathers diverge and hang."""
    from deepspeed.utils import set_z3_leaf_modules

    classes = {type(m) for n, m in model.named_modules() if type(m).__name__.endswith("SparseMoeBlock")}
    if classes:
        set_z3_leaf_modules(model, list(classes))


# ----------------------------------------------------------------------------------------------------------------------
# checkpoints


def adapter_state_dict(setup: Setup) -> dict[str, torch.Tensor]:
    """The adapter's tensors, whole (gathered from ZeRO-3 partitions), on CPU; every rank must call it."""
    from peft import get_peft_model_state_dict

    model = setup.peft_model
    trainable = [p for p in model.parameters() if p.requires_grad]
    if setup.deepspeed and any(hasattr(p, "ds_id") for p in trainable):
        import deepspeed

        with deepspeed.zero.GatheredParameters(trainable, modifier_rank=None):
            full = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
    else:
        full = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
    return get_peft_model_state_dict(model, state_dict=full)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(setup: Setup, ctx: Context, step: int, meta: dict) -> None:
    """Write this rank's part of the checkpoint of `step` to a scratch folder and hand it to ctx.save."""
    folder = os.path.join(ctx.scratch, f"step-{step:06d}-rank{ctx.rank}")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(os.path.join(folder, "state"), exist_ok=True)
    adapter = adapter_state_dict(setup)
    if setup.deepspeed:
        # Collective: each rank writes its optimizer partition (frozen base weights excluded).
        setup.engine.save_checkpoint(os.path.join(folder, "state", "deepspeed"), tag="state",
                                     exclude_frozen_parameters=True)
    torch.save(_rng_state(), os.path.join(folder, "state", f"rng-rank{ctx.rank}.pt"))
    if ctx.rank == 0:
        if not any(t.numel() for t in adapter.values()):
            raise RuntimeError("refusing to save an empty adapter")
        setup.peft_model.save_pretrained(os.path.join(folder, "adapter"), state_dict=adapter)
        if not setup.deepspeed:
            torch.save({"optimizer": setup.optimizer.state_dict(), "scheduler": setup.scheduler.state_dict(),
                        "adapter": adapter}, os.path.join(folder, "state", "torch.pt"))
        with open(os.path.join(folder, "state", "meta.json"), "w") as handle:
            json.dump(meta, handle)
        with open(os.path.join(folder, COMPLETE), "w") as handle:
            handle.write(str(step))
    ctx.save(step, folder, meta)


def load_checkpoint(setup: Setup, ctx: Context, folder: str) -> dict:
    """Restore adapter, optimizer, scheduler and this rank's RNG from a checkpoint folder; returns its meta."""
    with open(os.path.join(folder, "state", "meta.json")) as handle:
        meta = json.load(handle)
    if meta["world"] != ctx.world:
        raise RuntimeError(f"checkpoint was written by {meta['world']} ranks, this run has {ctx.world}")
    if setup.deepspeed:
        setup.engine.load_checkpoint(os.path.join(folder, "state", "deepspeed"), tag="state",
                                     load_module_strict=False)
    else:
        from peft import set_peft_model_state_dict

        state = torch.load(os.path.join(folder, "state", "torch.pt"), weights_only=False)
        set_peft_model_state_dict(setup.peft_model, state["adapter"])
        setup.optimizer.load_state_dict(state["optimizer"])
        setup.scheduler.load_state_dict(state["scheduler"])
    rng = os.path.join(folder, "state", f"rng-rank{ctx.rank}.pt")
    if os.path.exists(rng):
        _set_rng_state(torch.load(rng, weights_only=False))
    return meta


# ----------------------------------------------------------------------------------------------------------------------
# the loop


@dataclass(frozen=True)
class _Sized:
    """Stands in for an example where only its length matters (counting another rank's passes)."""

    n: int

    @property
    def input_ids(self) -> range:
        return range(self.n)


def _all_reduce_sum(value: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def run_training(dataset: str, student, training, ctx: Context) -> dict:
    """Train (or resume) to `training.steps` on the tokenised dataset file `dataset` (data.prepare_dataset);
    returns a summary (the same on every rank)."""
    torch.manual_seed(training.seed)
    tokenizer = load_tokenizer(student)
    encoded = TokenizedDataset(dataset)
    stats = encoded.stats
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total_steps = training.steps
    budget = training.micro_batch_tokens if training.packing else None
    # DeepSpeed's accumulation field is bookkeeping only (the core sets the boundary itself, see deepspeed_config.py)
    setup = setup_model(student, training, ctx,
                        micro_batches_per_rank(training.global_batch, ctx.world, training.micro_batch))

    start, loss_curve, consumed_tokens, consumed_examples, digest = 0, [], 0, 0, ""
    if ctx.resume_dir:
        meta = load_checkpoint(setup, ctx, ctx.resume_dir)
        start, loss_curve, consumed_tokens = meta["step"], meta["loss_curve"], meta["tokens_consumed"]
        consumed_examples, digest = meta["examples_consumed"], meta["data_digest"]
    # Per-rank dropout streams, restored on resume (set after the shared-seed model set-up).
    if not ctx.resume_dir:
        torch.manual_seed(training.seed * 1000 + ctx.rank + 1)

    engine = setup.engine
    engine.train()
    params = [p for p in setup.peft_model.parameters() if p.requires_grad]
    started = time.perf_counter()
    for step in range(start, total_steps):
        if ctx.fault and ctx.fault.get("rank") == ctx.rank and ctx.fault.get("step") == step:
            marker = ctx.fault["marker"]
            if not os.path.exists(marker):
                with open(marker, "w") as handle:
                    handle.write(str(step))
                if ctx.fault.get("mode") == "raise":
                    raise InjectedFault(f"injected fault at step {step}")
                os._exit(1)  # a worker dies without cleanup, as a pre-empted or OOM-killed one would
        indices = global_batch_indices(len(encoded), step, training.global_batch, training.seed)
        norm = int(sum(int(encoded.loss_tokens[i]) for i in indices))  # loss tokens in the whole global batch
        shares = rank_shares(indices, encoded.lengths, ctx.world, training.balance)
        # Ranks may need different numbers of passes (token-balanced shares, token budgets); all run the largest
        # number, computed identically on every rank from the lengths alone (no tokens are read for other ranks).
        per_rank = passes_per_rank([[_Sized(int(encoded.lengths[i])) for i in s] for s in shares],
                                   training.micro_batch, budget)
        share = [encoded[i] for i in shares[ctx.rank]]
        micro = make_micro_batches(share, training.micro_batch, training.packing, pad_id, count=per_rank,
                                   max_tokens=budget)
        scale = ctx.world / max(1, norm)
        # Kept on the device (no sync per micro-batch; NCCL reduces only device tensors).
        loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
        # A chained hash of the example ids in step order: equal digests mean the same data, in the same order.
        digest = hashlib.sha256((digest + "|" + ",".join(encoded[i].id for i in indices)).encode()).hexdigest()
        seen = sum(mb.examples for mb in micro)
        step_tokens = 0
        for k, mb in enumerate(micro):
            mb = mb.to(ctx.device)
            if setup.deepspeed:
                engine.set_gradient_accumulation_boundary(k == len(micro) - 1)
            token_loss = engine(mb.input_ids, mb.position_ids, mb.targets, mb.attention_mask)
            loss = token_loss * scale
            if setup.deepspeed:
                engine.backward(loss, scale_wrt_gas=False)
            else:
                loss.backward()
            loss_sum += token_loss.detach().double()
            step_tokens += int(mb.attention_mask.sum()) if mb.attention_mask is not None else (
                int(mb.input_ids.numel()) if mb.examples else 0)
        if setup.deepspeed:
            engine.step()  # DeepSpeed averages over ranks, clips, steps optimizer and scheduler
        else:
            for p in params:
                if p.grad is not None and ctx.world > 1:
                    _all_reduce_sum(p.grad, ctx.world)
                    p.grad /= ctx.world
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            setup.optimizer.step()
            setup.scheduler.step()
            setup.optimizer.zero_grad(set_to_none=True)
        counts = torch.tensor([float(seen), float(step_tokens)], dtype=torch.float64, device=ctx.device)
        totals = _all_reduce_sum(torch.cat([loss_sum.reshape(1), counts]), ctx.world).cpu()
        step_loss = float(totals[0].item()) / max(1, norm)
        consumed_examples += int(round(float(totals[1].item())))  # what the ranks actually trained on
        consumed_tokens += int(round(float(totals[2].item())))  # real (non-pad) tokens over all ranks
        loss_curve.append([step + 1, step_loss])
        done = step + 1
        metrics = {"step": done, "samples": done * training.global_batch, "loss": step_loss,
                   "lr": float(setup.scheduler.get_last_lr()[0])}
        if done % training.checkpoint_every == 0 or done == total_steps:
            meta = {"step": done, "samples": done * training.global_batch, "loss": step_loss,
                    "loss_curve": loss_curve, "tokens_consumed": consumed_tokens, "world": ctx.world,
                    "examples_consumed": consumed_examples, "data_digest": digest,
                    "trainable_parameters": setup.trainable, **stats}
            save_checkpoint(setup, ctx, done, meta)
        else:
            ctx.report(metrics)
    elapsed = time.perf_counter() - started
    if ctx.on_finish is not None:
        ctx.on_finish(setup)
    return {
        "trainable_parameters": setup.trainable,
        "truncated_examples": stats["truncated_examples"], "truncated_tokens": stats["truncated_tokens"],
        "examples": stats["examples"], "tokens": stats["tokens"],
        "final_loss": loss_curve[-1][1] if loss_curve else float("nan"), "loss_curve": loss_curve,
        "steps": total_steps, "resumed_from": start, "train_seconds": elapsed,
        "examples_consumed": consumed_examples, "data_digest": digest,
    }


# ----------------------------------------------------------------------------------------------------------------------
# one process, no Ray


def complete_checkpoints(folder: str) -> list[str]:
    """The complete `step-*` checkpoint folders under `folder` (those with the COMPLETE marker), in step order."""
    done = [d for d in glob.glob(os.path.join(folder, "step-*")) if os.path.exists(os.path.join(d, COMPLETE))]
    return sorted(done, key=lambda d: int(os.path.basename(d).split("-")[1]))


def latest_checkpoint(folder: str) -> str | None:
    """The newest complete `step-*` checkpoint folder under `folder`, or None."""
    done = complete_checkpoints(folder)
    return done[-1] if done else None


def checkpoint_info(step_dir: str) -> dict[str, Any]:
    """records.CheckpointInfo of a complete checkpoint folder, plus its truncated_examples, from its meta.json."""
    with open(os.path.join(step_dir, "state", "meta.json"), encoding="utf-8") as handle:
        meta = json.load(handle)
    return {"step": meta["step"], "samples": meta["samples"], "path": os.path.join(step_dir, "adapter"),
            "train_loss": meta["loss"], "truncated_examples": meta["truncated_examples"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_local(examples: list[dict], student, training, output_dir: str, *, resume: bool = True,
                device: str | None = None, fault: dict | None = None,
                on_finish: Callable[[Any], None] | None = None) -> dict:
    """The core in this process (world size 1): checkpoints go to output_dir/checkpoints/step-NNNNNN."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    ckpt_root = os.path.join(os.path.abspath(output_dir), "checkpoints")
    os.makedirs(ckpt_root, exist_ok=True)
    checkpoints: list[dict] = []

    def save(step: int, folder: str, meta: dict) -> None:
        target = os.path.join(ckpt_root, f"step-{step:06d}")
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(folder, target)

    scratch = os.path.join(os.path.abspath(output_dir), ".scratch")
    os.makedirs(scratch, exist_ok=True)
    if student.deepspeed_stage in (2, 3):
        import torch.distributed as dist

        if not dist.is_initialized():
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            os.environ.setdefault("MASTER_PORT", str(_free_port()))
            for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1")):
                os.environ.setdefault(key, value)
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", rank=0, world_size=1)
    ctx = Context(rank=0, world=1, device=device, resume_dir=latest_checkpoint(ckpt_root) if resume else None,
                  save=save, report=lambda metrics: None, scratch=scratch, fault=fault, on_finish=on_finish)
    # On CPU use the threads the student's resources grant (as a Ray worker would): tiny models gain little from
    # more, and on a shared machine oversubscribed OpenMP threads spin-wait and run 10x slower.
    threads = torch.get_num_threads()
    if not device.startswith("cuda"):
        torch.set_num_threads(max(1, int(student.cpus_per_worker)))
    try:
        summary = run_training(prepare_dataset(examples, student, training.max_length,
                                               os.path.join(os.path.abspath(output_dir), "dataset")),
                               student, training, ctx)
    finally:
        torch.set_num_threads(threads)
    for folder in complete_checkpoints(ckpt_root):
        info = checkpoint_info(folder)
        if info["step"] <= training.steps:
            checkpoints.append({k: info[k] for k in ("step", "samples", "path", "train_loss")})
    shutil.rmtree(scratch, ignore_errors=True)
    summary["checkpoints"] = checkpoints
    return summary
