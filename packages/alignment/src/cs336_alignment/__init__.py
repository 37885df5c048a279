"""cs336-alignment: SFT, expert iteration, GRPO and DPO for language models (CS336
assignment 5), for Hugging Face causal LMs and the project's own `TransformerLM`.

Names are exported lazily (PEP 562) so that ``cs336-alignment --help`` imports no torch.
"""

import importlib

_EXPORTS = {
    "tokenize_prompt_and_output": "cs336_alignment.logprobs",
    "compute_entropy": "cs336_alignment.logprobs",
    "get_response_log_probs": "cs336_alignment.logprobs",
    "masked_normalize": "cs336_alignment.masked",
    "masked_mean": "cs336_alignment.masked",
    "sft_microbatch_train_step": "cs336_alignment.losses",
    "compute_group_normalized_rewards": "cs336_alignment.losses",
    "compute_naive_policy_gradient_loss": "cs336_alignment.losses",
    "compute_grpo_clip_loss": "cs336_alignment.losses",
    "compute_policy_gradient_loss": "cs336_alignment.losses",
    "grpo_microbatch_train_step": "cs336_alignment.losses",
    "PackedSFTDataset": "cs336_alignment.packed_sft",
    "iterate_batches": "cs336_alignment.packed_sft",
    "parse_mmlu_response": "cs336_alignment.parsing",
    "parse_gsm8k_response": "cs336_alignment.parsing",
    "compute_per_instance_dpo_loss": "cs336_alignment.dpo",
    "r1_zero_reward_fn": "cs336_alignment.grader",
    "load_prompt": "cs336_alignment.prompt_templates",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cs336_alignment' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
