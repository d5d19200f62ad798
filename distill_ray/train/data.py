"""Training data: chat formatting with prompt masking, truncation statistics, seeded global batches, rank shares,
micro-batches (packed or padded) and the per-token loss normaliser.

    encoded = encode_examples(tokenizer, examples, max_length=4096)
    indices = global_batch_indices(len(encoded), step, global_batch=50, seed=0)
    share = rank_share(indices, rank, world)            # sizes differ by at most one: 50 over 3 ranks = 17, 17, 16
    shares = rank_shares(indices, lengths, world)       # or balanced by tokens (the training default)
    data = TokenizedDataset(prepare_dataset(examples, student, 4096, "runs/x/dataset"))   # memory-mapped file
    micro = make_micro_batches([encoded[i] for i in share], micro_batch=8, packing=True, pad_id=0)

Every example carries *pre-shifted* targets (target[t] is the token after t when that token belongs to the response,
else -100), so packed rows never learn to predict one example's first token from the previous example, and the
loss needs no shift. Packed rows restart position ids at every example; transformers turns position-id resets into
a block-diagonal causal mask (SDPA and eager) or variable-length attention (flash-attention 2), so packed examples
never attend to each other.

The global batch of a step is a pure function of (seed, step): the example stream is a concatenation of seeded
permutations (one per epoch), cut into consecutive slices of `global_batch`. Resuming at step k therefore needs only
k, and no example is repeated or skipped whatever the world size.

Not guaranteed: truncation cuts the end of the response (the prompt is kept); an example whose prompt alone fills
`max_length` contributes no loss tokens (it is still counted as consumed and as truncated).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from distill_ray.config import StudentConfig

IGNORE = -100


@dataclass(frozen=True)
class EncodedExample:
    """One tokenised training example."""

    id: str
    input_ids: tuple[int, ...]
    targets: tuple[int, ...]  # pre-shifted labels, IGNORE where there is no loss
    truncated_tokens: int  # tokens cut by max_length

    @property
    def loss_tokens(self) -> int:
        return sum(1 for t in self.targets if t != IGNORE)


@dataclass
class MicroBatch:
    """Tensors for one forward/backward; `attention_mask` is None for packed rows (position ids carry boundaries)."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    targets: torch.Tensor
    attention_mask: torch.Tensor | None
    examples: int
    loss_tokens: int

    def to(self, device: str | torch.device) -> MicroBatch:
        mask = None if self.attention_mask is None else self.attention_mask.to(device)
        return MicroBatch(self.input_ids.to(device), self.position_ids.to(device), self.targets.to(device), mask,
                          self.examples, self.loss_tokens)


def encode_example(tokenizer: PreTrainedTokenizerBase, example: dict, max_length: int, prompt_text: str | None = None,
                   end_of_turn: str | None = None) -> EncodedExample:
    """Chat-format one TrainExample; learn `response` + end-of-turn token, mask the prompt, truncate to max_length."""
    from distill_ray.train.models import build_chat_prompt, end_of_turn_token

    prompt_text = prompt_text if prompt_text is not None else build_chat_prompt(tokenizer, example["prompt"])
    end_of_turn = end_of_turn or end_of_turn_token(tokenizer)
    # Prompt and response are tokenised apart: the boundary is where generation starts at evaluation, so the
    # response's first token must be the one the student will have to produce there.
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(example["response"] + end_of_turn, add_special_tokens=False)["input_ids"]
    ids = list(prompt_ids) + list(response_ids)
    truncated = max(0, len(ids) - max_length)
    ids = ids[:max_length]
    n_prompt = len(prompt_ids)
    targets = [IGNORE] * len(ids)
    for t in range(len(ids) - 1):
        if t + 1 >= n_prompt:
            targets[t] = ids[t + 1]
    return EncodedExample(str(example.get("id", "")), tuple(ids), tuple(targets), truncated)


def encode_examples(tokenizer: PreTrainedTokenizerBase, examples: list[dict], max_length: int) -> list[EncodedExample]:
    from distill_ray.train.models import end_of_turn_token

    eot = end_of_turn_token(tokenizer)
    return [encode_example(tokenizer, ex, max_length, end_of_turn=eot) for ex in examples]


def truncation_stats(encoded: list[EncodedExample]) -> dict[str, int]:
    """How many examples and tokens max_length cut, over the whole training set (not per consumed sample)."""
    return {
        "examples": len(encoded),
        "tokens": sum(len(e.input_ids) for e in encoded),
        "loss_tokens": sum(e.loss_tokens for e in encoded),
        "truncated_examples": sum(1 for e in encoded if e.truncated_tokens > 0),
        "truncated_tokens": sum(e.truncated_tokens for e in encoded),
    }


def _epoch_order(n: int, epoch: int, seed: int) -> list[int]:
    order = list(range(n))
    random.Random(f"distill-ray:order:{seed}:{epoch}").shuffle(order)
    return order


def global_batch_indices(n: int, step: int, global_batch: int, seed: int) -> list[int]:
    """Dataset indices of the global batch of `step` (0-based): slice [step*G, (step+1)*G) of the seeded stream."""
    if n <= 0:
        raise ValueError("no training examples")
    start, stop = step * global_batch, (step + 1) * global_batch
    out: list[int] = []
    for epoch in range(start // n, (stop - 1) // n + 1):
        order = _epoch_order(n, epoch, seed)
        lo, hi = max(start, epoch * n) - epoch * n, min(stop, (epoch + 1) * n) - epoch * n
        out.extend(order[lo:hi])
    return out


def rank_share(indices: list[int], rank: int, world: int) -> list[int]:
    """This rank's contiguous part of a global batch; shares differ by at most one example."""
    base, extra = divmod(len(indices), world)
    start = rank * base + min(rank, extra)
    return indices[start:start + base + (1 if rank < extra else 0)]


def rank_shares(indices: list[int], lengths: Sequence[int], world: int, balance: str = "tokens") -> list[list[int]]:
    """Every rank's part of a global batch; together exactly `indices`, each once.

    balance="examples": contiguous shares whose sizes differ by at most one (`rank_share`).
    balance="tokens": longest example first, each to the rank holding the fewest tokens so far (ties: fewer
    examples, then the lower rank), so the ranks' token counts differ by at most the longest example's length.
    Both are pure functions of (indices, lengths, world): every rank computes every other rank's share (and so its
    number of passes) without communicating. Each share keeps the global batch's order.
    """
    if balance == "examples" or world == 1:
        return [rank_share(indices, r, world) for r in range(world)]
    order = sorted(range(len(indices)), key=lambda k: (-int(lengths[indices[k]]), k))
    tokens = [0] * world
    members: list[list[int]] = [[] for _ in range(world)]
    for k in order:
        r = min(range(world), key=lambda q: (tokens[q], len(members[q]), q))
        members[r].append(k)
        tokens[r] += int(lengths[indices[k]])
    return [[indices[k] for k in sorted(m)] for m in members]


def passes_per_rank(shares: list[list[EncodedExample]], micro_batch: int, max_tokens: int | None) -> int:
    """The number of forward/backward passes every rank runs this step: the most any rank's share needs."""
    return max(1, max(len(group_examples(s, micro_batch, max_tokens)) for s in shares))


def micro_batches_per_rank(global_batch: int, world: int, micro_batch: int) -> int:
    """The number of forward/backward passes every rank runs per step (ranks with less data run empty passes)."""
    return max(1, math.ceil(math.ceil(global_batch / world) / micro_batch))


def group_examples(examples: list[EncodedExample], micro_batch: int, max_tokens: int | None = None
                   ) -> list[list[EncodedExample]]:
    """Groups of at most `micro_batch` examples and (when given) at most `max_tokens` tokens.

    Without `max_tokens`: consecutive groups, order kept. With it: first-fit decreasing (longest first, into the
    first group with room), which fills token-budgeted rows far better than cutting the share in order; an example
    longer than `max_tokens` gets a group of its own. Either way the grouping is a pure function of the share, which
    lets every rank compute every other rank's number of passes without communicating.
    """
    if max_tokens is not None:
        bins: list[list[EncodedExample]] = []
        room: list[int] = []
        for e in sorted(examples, key=lambda x: -len(x.input_ids)):
            n = len(e.input_ids)
            for b, left in enumerate(room):
                if left >= n and len(bins[b]) < micro_batch:
                    bins[b].append(e)
                    room[b] -= n
                    break
            else:
                bins.append([e])
                room.append(max_tokens - n)
        return bins
    groups: list[list[EncodedExample]] = []
    current: list[EncodedExample] = []
    tokens = 0
    for e in examples:
        n = len(e.input_ids)
        if current and (len(current) >= micro_batch or (max_tokens is not None and tokens + n > max_tokens)):
            groups.append(current)
            current, tokens = [], 0
        current.append(e)
        tokens += n
    if current:
        groups.append(current)
    return groups


def make_micro_batches(examples: list[EncodedExample], micro_batch: int, packing: bool, pad_id: int,
                       count: int | None = None, max_tokens: int | None = None) -> list[MicroBatch]:
    """Split a rank's share into micro-batches of at most `micro_batch` examples, then pad the list to `count`.

    packing=True: each micro-batch is one row, examples concatenated, position ids restarting at 0 per example
    (with `max_tokens`, rows are also capped at that many tokens: the GPU setting, where memory is per token).
    packing=False: rows padded to the longest example, with an attention mask (what plain fine-tuning loops do).
    Filler micro-batches (to reach `count`) hold one pad token and no loss tokens: they keep ZeRO's collectives in
    lockstep when shares differ in size.
    """
    groups = group_examples(examples, micro_batch, max_tokens if packing else None)
    batches = [_pack(g, pad_id) if packing else _pad(g, pad_id) for g in groups]
    while count is not None and len(batches) < count:
        batches.append(MicroBatch(
            torch.full((1, 1), pad_id, dtype=torch.long), torch.zeros((1, 1), dtype=torch.long),
            torch.full((1, 1), IGNORE, dtype=torch.long), None, 0, 0,
        ))
    return batches


def _pack(group: list[EncodedExample], pad_id: int) -> MicroBatch:
    ids: list[int] = []
    pos: list[int] = []
    tgt: list[int] = []
    for e in group:
        ids.extend(e.input_ids)
        pos.extend(range(len(e.input_ids)))
        tgt.extend(e.targets)
    return MicroBatch(
        torch.tensor([ids], dtype=torch.long), torch.tensor([pos], dtype=torch.long),
        torch.tensor([tgt], dtype=torch.long), None, len(group), sum(e.loss_tokens for e in group),
    )


def _pad(group: list[EncodedExample], pad_id: int) -> MicroBatch:
    width = max(len(e.input_ids) for e in group)
    ids = torch.full((len(group), width), pad_id, dtype=torch.long)
    tgt = torch.full((len(group), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(group), width), dtype=torch.long)
    for row, e in enumerate(group):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        tgt[row, :n] = torch.tensor(e.targets)
        mask[row, :n] = 1
    pos = torch.arange(width).unsqueeze(0).expand(len(group), -1).contiguous()
    return MicroBatch(ids, pos, tgt, mask, len(group), sum(e.loss_tokens for e in group))


# ----------------------------------------------------------------------------------------------------------------------
# the tokenised dataset as one memory-mapped file


DATASET_VERSION = 1


def write_dataset(encoded: list[EncodedExample], path: str) -> str:
    """Write tokenised examples to one Arrow IPC file (int32 token lists), atomically; returns `path`.

    Workers open it with `TokenizedDataset` (memory-mapped): the pages are the OS page cache's, shared by every
    worker of a node, and a worker's private memory holds only the step it is computing.
    """
    import os
    import tempfile

    import pyarrow as pa

    stats = truncation_stats(encoded)
    table = pa.table({
        "id": pa.array([e.id for e in encoded], pa.string()),
        "input_ids": pa.array([list(e.input_ids) for e in encoded], pa.list_(pa.int32())),
        "targets": pa.array([list(e.targets) for e in encoded], pa.list_(pa.int32())),
        "truncated_tokens": pa.array([e.truncated_tokens for e in encoded], pa.int32()),
        "loss_tokens": pa.array([e.loss_tokens for e in encoded], pa.int32()),
    })
    table = table.replace_schema_metadata({"distill_ray": json.dumps({"version": DATASET_VERSION, **stats})})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    try:
        with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=max(1, len(encoded)))  # one record batch: flat offsets
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


class TokenizedDataset:
    """A read-only sequence of EncodedExample backed by a memory-mapped Arrow IPC file (see `write_dataset`).

    Per-example lengths and loss-token counts are small numpy arrays read up front (the batch and balance logic needs
    them for every step); token ids are sliced out of the mapped file only when an example is used.
    """

    def __init__(self, path: str):
        import numpy as np
        import pyarrow as pa

        self.path = path
        self._source = pa.memory_map(path, "r")
        reader = pa.ipc.open_file(self._source)
        meta = json.loads((reader.schema.metadata or {}).get(b"distill_ray", b"{}"))
        if meta.get("version") != DATASET_VERSION:
            raise ValueError(f"{path}: not a distill-ray tokenised dataset (version {meta.get('version')!r})")
        self.stats = {k: int(v) for k, v in meta.items() if k != "version"}
        batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
        batch = batches[0] if len(batches) == 1 else pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
        ids, targets = batch.column("input_ids"), batch.column("targets")
        self._offsets = ids.offsets.to_numpy()
        self._ids = ids.values.to_numpy(zero_copy_only=True)  # views of the mapped file
        self._targets = targets.values.to_numpy(zero_copy_only=True)
        self._names = batch.column("id")
        self._truncated = batch.column("truncated_tokens").to_numpy()
        self.lengths = np.diff(self._offsets)
        self.loss_tokens = batch.column("loss_tokens").to_numpy()

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> EncodedExample:
        lo, hi = int(self._offsets[i]), int(self._offsets[i + 1])
        return EncodedExample(self._names[i].as_py(), tuple(self._ids[lo:hi].tolist()),
                              tuple(self._targets[lo:hi].tolist()), int(self._truncated[i]))


def prepare_dataset(examples: list[dict], student: StudentConfig, max_length: int, folder: str) -> str:
    """Tokenise TrainExample rows once (on the driver) into `folder/tokens-<key>.arrow`; returns the file's path.

    The key hashes the rows, the tokenizer's model and revision, and max_length, so a resumed or repeated run
    reuses the file and a changed input never reads a stale one.
    """
    import hashlib
    import os

    from distill_ray.train.models import load_tokenizer

    digest = hashlib.sha256(json.dumps(
        {"v": DATASET_VERSION, "model": student.model, "revision": student.revision, "max_length": max_length,
         "rows": [[str(e.get("id", "")), e["prompt"], e["response"]] for e in examples]}).encode()).hexdigest()[:20]
    path = os.path.join(folder, f"tokens-{digest}.arrow")
    if not os.path.exists(path):
        write_dataset(encode_examples(load_tokenizer(student), examples, max_length), path)
    return path
