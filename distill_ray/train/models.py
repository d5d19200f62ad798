"""Students: the tiny built-in architectures with their locally built tokenizer, real hub models, and adapters.

    from distill_ray.train.models import load_student
    model, tokenizer = load_student(StudentConfig(model="builtin:tiny-llama"))

`builtin:tiny-llama` (LlamaForCausalLM) and `builtin:tiny-qwen3-moe` (Qwen3MoeForCausalLM, 4 experts, 2 active) are
random-initialised from a fixed seed and *materialised once on disk* (config, safetensors, tokenizer files) in a cache
folder keyed by a hash of their recipe, then always loaded from there with `from_pretrained`. So the base model is
byte-identical in training, evaluation and every Ray worker, and any tool that wants a model folder (vLLM, PEFT)
gets one. The tokenizer is a byte-level BPE trained with the `tokenizers` library on text from the built-in problem
families (prompts and both simulated teacher styles) plus some Python; digits are split one per token and the
byte-level scheme round-trips any text exactly (newlines and indentation included). Each tiny student carries its
real family's chat format and special tokens (Llama-3.1-Instruct headers and `<|eot_id|>`; Qwen3's ChatML and
`<|im_end|>`), with `<think>` and `</think>` as single tokens.

Anything else is a hub id or a local path, loaded with AutoModelForCausalLM / AutoTokenizer (only exercised on a
GPU cluster; nothing here downloads during tests).

Not guaranteed: the tiny chat templates mirror the real ones' structure, not every branch (no tools, no Llama date
system block); the cache folder is safe against concurrent builders (atomic rename) but not against a user editing it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

import torch

BUILTIN_SEED = 1234
TOKENIZER_VOCAB = 1024
THINK_TOKENS = ("<think>", "</think>")
RECIPE_VERSION = 4  # bump when anything below changes what gets built


@dataclass(frozen=True)
class ChatFormat:
    """A family's special tokens and chat template (the parts the tiny students share with the real family)."""

    family: str
    bos: str | None
    eos: str
    end_of_turn: str
    pad: str
    specials: tuple[str, ...]
    template: str


# Llama-3.1-Instruct structure: header tokens around the role, content trimmed, <|eot_id|> ends each turn.
LLAMA31_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{{- message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
# Qwen3 ChatML structure: <|im_start|>role\n content <|im_end|>\n.
QWEN3_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

CHAT_FORMATS = {
    "llama": ChatFormat(
        family="llama", bos="<|begin_of_text|>", eos="<|eot_id|>", end_of_turn="<|eot_id|>",
        pad="<|finetune_right_pad_id|>",
        specials=("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                  "<|finetune_right_pad_id|>"),
        template=LLAMA31_TEMPLATE,
    ),
    "qwen3": ChatFormat(
        family="qwen3", bos=None, eos="<|im_end|>", end_of_turn="<|im_end|>", pad="<|endoftext|>",
        specials=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        template=QWEN3_TEMPLATE,
    ),
}


@dataclass(frozen=True)
class TinyRecipe:
    """Everything that determines a built-in student's files; its hash names the cache folder."""

    name: str
    family: str
    architecture: str
    config: dict[str, Any] = field(default_factory=dict)
    # The final RMSNorm fixes |h| at sqrt(hidden) and is frozen under LoRA, so with the usual 0.02 init the logits can
    # never exceed ~0.02*hidden (about 2.6 at width 128): the loss would floor near 4.8 nats whatever the adapter
    # learns. A wider LM-head init lets a frozen head express confident predictions (pretrained heads already can).
    lm_head_std: float = 0.25
    # Likewise for the projections whose outputs are compared or gated (q, k; gate, up): at std 0.02 a frozen random
    # net has near-uniform attention and near-linear SiLU, which LoRA then has to undo. None keeps the default.
    input_proj_std: float | None = None


# Sizes chosen so that LoRA on a frozen random network learns the built-in families in well under a minute on
# 2 CPU cores: width 128 leaves room for rank-16..32 adapters to matter, 2 layers keep a step at a few ms per row.
TINY_RECIPES = {
    "builtin:tiny-llama": TinyRecipe(
        name="tiny-llama", family="llama", architecture="llama", input_proj_std=0.09,  # ~1/sqrt(hidden)
        config=dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-5,
                    tie_word_embeddings=False, initializer_range=0.02),
    ),
    "builtin:tiny-qwen3-moe": TinyRecipe(
        name="tiny-qwen3-moe", family="qwen3", architecture="qwen3_moe",
        config=dict(hidden_size=128, intermediate_size=256, moe_intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, head_dim=32, num_experts=4,
                    num_experts_per_tok=2, decoder_sparse_step=1, mlp_only_layers=[], norm_topk_prob=True,
                    max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
                    initializer_range=0.02, output_router_logits=False),
    ),
}


def cache_root() -> str:
    """Where built-in students live: the project's cache root ($DISTILL_RAY_CACHE, else ~/.cache/distill_ray)."""
    from distill_ray.paths import cache_root as project_cache_root

    return project_cache_root()


def _recipe_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


_CODE_SAMPLES = [
    "def add(a, b):\n    return a + b\n",
    "def scale(values, k):\n    result = []\n    for v in values:\n        result.append(v * k)\n    return result\n",
    "class Counter:\n    def __init__(self):\n        self.count = 0\n\n"
    "    def step(self, n=1):\n        self.count += n\n",
    "if __name__ == \"__main__\":\n    print(sum(range(10)))\n",
    "import math\n\n\ndef area(r):\n    return math.pi * r ** 2\n",
    "def check(x):\n    if x < 0:\n        return -x\n    elif x == 0:\n        return 0\n"
    "    else:\n        return x\n",
    "assert convert(4) == 13\nassert convert(-3) == 6\n",
    "x = [1, 2, 3]\ny = {\"a\": 1, 'b': 2}\nwhile x:\n    x.pop()\n",
]


def tokenizer_corpus() -> list[str]:
    """Training text for the tiny tokenizer: built-in prompts, both simulated teacher styles, and some Python.

    Deterministic (fixed seeds), so the trained tokenizer is the same on every machine.
    """
    from distill_ray.builtin_problems import make_problems, simulated_response

    texts: list[str] = []
    for domain in ("math", "code"):
        for split in ("train", {"math": "mini-math", "code": "mini-code"}[domain]):
            n = 400 if split == "train" else 100
            try:
                problems = make_problems(domain, split, n, seed=7)
            except ValueError:
                problems = make_problems(domain, split, 60, seed=7)
            for i, problem in enumerate(problems):
                texts.append(problem["prompt"])
                for style in ("concise", "verbose"):
                    out = simulated_response(problem["prompt"], style, 0.8, f"tok:{i}")
                    if out is not None:
                        reasoning, content = out
                        texts.append(f"<think>{reasoning}</think>\n\n{content}")
    rng = random.Random(11)
    for _ in range(40):
        texts.append("system\nuser\nassistant\n")
        texts.extend(_CODE_SAMPLES)
        texts.append(" ".join(str(rng.randint(0, 999)) for _ in range(12)))
    return texts


def _train_tokenizer(fmt: ChatFormat, vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    # Digits one per token (arithmetic stays compositional), then GPT-2-style byte-level words.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = [*fmt.specials, *THINK_TOKENS]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(tokenizer_corpus(), trainer=trainer)
    return tok


def _wrap_tokenizer(tok_object, fmt: ChatFormat):
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast

    # <think> tags are ordinary (non-special) added tokens, as in Qwen3: decoding with skip_special_tokens keeps them.
    tok_object.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    kwargs = dict(eos_token=fmt.eos, pad_token=fmt.pad)
    if fmt.bos:
        kwargs["bos_token"] = fmt.bos
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok_object, clean_up_tokenization_spaces=False, **kwargs)
    wrapped.chat_template = fmt.template
    return wrapped


def _atomic_build(target: str, build) -> str:
    """Build into a temporary sibling folder, then rename: concurrent builders never see half a folder."""
    if os.path.isfile(os.path.join(target, "DONE")):
        return target
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".build-", dir=os.path.dirname(target))
    try:
        build(tmp)
        with open(os.path.join(tmp, "DONE"), "w") as handle:
            handle.write("ok\n")
        try:
            os.rename(tmp, target)
        except OSError:
            if not os.path.isfile(os.path.join(target, "DONE")):
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def builtin_tokenizer_dir(family: str) -> str:
    """The cached folder of the tiny tokenizer for a chat family ("llama" or "qwen3"), built on first use."""
    fmt = CHAT_FORMATS[family]
    key = _recipe_hash({"v": RECIPE_VERSION, "fmt": fmt.__dict__, "vocab": TOKENIZER_VOCAB, "corpus": "builtin"})
    target = os.path.join(cache_root(), "tokenizers", f"{family}-{key}")

    def build(tmp: str) -> None:
        _wrap_tokenizer(_train_tokenizer(fmt, TOKENIZER_VOCAB), fmt).save_pretrained(tmp)

    return _atomic_build(target, build)


def builtin_model_dir(name: str) -> str:
    """The cached folder (config, weights, tokenizer) of a built-in student, built once from its fixed seed."""
    recipe = TINY_RECIPES[name]
    tok_dir = builtin_tokenizer_dir(recipe.family)
    key = _recipe_hash({"v": RECIPE_VERSION, "recipe": recipe.__dict__, "seed": BUILTIN_SEED, "tok": tok_dir})
    target = os.path.join(cache_root(), "models", f"{recipe.name}-{key}")

    def build(tmp: str) -> None:
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
        fmt = CHAT_FORMATS[recipe.family]
        ids = dict(
            vocab_size=len(tokenizer),
            eos_token_id=tokenizer.convert_tokens_to_ids(fmt.eos),
            pad_token_id=tokenizer.convert_tokens_to_ids(fmt.pad),
            bos_token_id=tokenizer.convert_tokens_to_ids(fmt.bos) if fmt.bos else None,
        )
        config_cls, model_cls = (
            (LlamaConfig, LlamaForCausalLM) if recipe.architecture == "llama" else (Qwen3MoeConfig, Qwen3MoeForCausalLM)
        )
        config = config_cls(**recipe.config, **ids)
        # Initialise on CPU in fp32 from a private generator state: the same weights whatever ran before.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(BUILTIN_SEED)
            model = model_cls(config)
            torch.nn.init.normal_(model.lm_head.weight, mean=0.0, std=recipe.lm_head_std)
            if recipe.input_proj_std is not None:
                for name, module in model.named_modules():
                    if name.rsplit(".", 1)[-1] in ("q_proj", "k_proj", "gate_proj", "up_proj"):
                        torch.nn.init.normal_(module.weight, mean=0.0, std=recipe.input_proj_std)
        model.generation_config.eos_token_id = ids["eos_token_id"]
        model.generation_config.pad_token_id = ids["pad_token_id"]
        model.generation_config.bos_token_id = ids["bos_token_id"]
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _atomic_build(target, build)


def resolve_model_path(model: str) -> str:
    """A folder or hub id that `from_pretrained` accepts: built-in students resolve to their cache folder."""
    return builtin_model_dir(model) if model.startswith("builtin:") else model


def default_dtype(dtype: str, device: str) -> torch.dtype:
    """`auto` means bf16 on GPU (what the real runs use) and fp32 on CPU (bf16 matmuls are slow and lossy there)."""
    if dtype == "float32":
        return torch.float32
    if dtype == "bfloat16":
        return torch.bfloat16
    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


def best_attention(device: str) -> str:
    """flash_attention_2 when installed on GPU, else SDPA (both honour packed position ids for block-diagonal masks)."""
    if str(device).startswith("cuda"):
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            return "sdpa"
    return "sdpa"


def set_activation_checkpointing(model: Any, enabled: bool) -> None:
    """Checkpoint every decoder layer's activations (recomputed in the backward) or stop doing so; non-reentrant,
    so frozen inputs (LoRA on a frozen base) still get gradients. transformers 5 renamed the switch from
    `gradient_checkpointing_*` (deprecated, warns) to `activation_checkpointing_*`; either is used as available."""
    if enabled:
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif hasattr(model, "activation_checkpointing_disable"):
        model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_disable()


def load_tokenizer(student) -> Any:
    """The student's tokenizer (built-in or from the hub), with a pad token set."""
    from transformers import AutoTokenizer

    path = resolve_model_path(student.model)
    kwargs = {} if student.model.startswith("builtin:") else {"revision": student.revision}
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        # Some base checkpoints ship no template: use their family's, recognised by its special tokens.
        vocab = tokenizer.get_vocab()
        if "<|im_start|>" in vocab:
            tokenizer.chat_template = QWEN3_TEMPLATE
        elif "<|start_header_id|>" in vocab:
            tokenizer.chat_template = LLAMA31_TEMPLATE
        else:
            raise ValueError(f"{student.model}: the tokenizer has no chat template and no known chat tokens")
    return tokenizer


def load_base_model(student, *, device: str = "cpu", attn_implementation: str | None = None) -> Any:
    """The frozen base model in the student's dtype on `device` (no adapter)."""
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(student.model)
    kwargs: dict[str, Any] = {
        "dtype": default_dtype(student.dtype, device),
        "attn_implementation": attn_implementation or best_attention(device),
    }
    if not student.model.startswith("builtin:"):
        kwargs["revision"] = student.revision
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    return model.to(device)


def load_student(student, adapter_path: str | None = None, *, device: str = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer) for a StudentConfig; with `adapter_path` the PEFT adapter is loaded on top (eval mode)."""
    tokenizer = load_tokenizer(student)
    model = load_base_model(student, device=device)
    if adapter_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_path, is_trainable=False).to(device)
    model.eval()
    return model, tokenizer


def end_of_turn_token(tokenizer) -> str:
    """The token that ends an assistant turn in this tokenizer's chat format (appended to training responses)."""
    vocab = tokenizer.get_vocab()
    for candidate in ("<|eot_id|>", "<|im_end|>", "<end_of_turn>"):
        if candidate in vocab:
            return candidate
    return tokenizer.eos_token


def build_chat_prompt(tokenizer, user_message: str) -> str:
    """The chat-formatted prompt up to where the assistant's answer starts (the generation prompt).

    Tokenize it with `add_special_tokens=False`: the template already writes any BOS token.
    """
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": user_message}], tokenize=False, add_generation_prompt=True
    )
