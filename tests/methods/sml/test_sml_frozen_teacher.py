"""trainer.frozen_teacher: the teacher of online SML stays the starting policy after a policy update
(frozen copy), while the default teacher (teacher=none = the policy itself) moves with the student."""

import pytest
import torch
from omegaconf import OmegaConf

from clarifylab.backends.base import SamplingParams
from clarifylab.backends.transformers_backend import TransformersBackend
from clarifylab.methods.sml.online import build_sml_teacher
from clarifylab.models.tiny import build_tiny_model_and_tokenizer
from clarifylab.training.group_pg_module import GroupPolicyGradientModule, ScoredTrajectory

FEEDBACK_PROMPTS = [[{"role": "system", "content": "you know the answer : 5 . 2 . give feedback ."},
                     {"role": "user", "content": "the revenue is 2 . 5"}],
                    [{"role": "system", "content": "you know the answer : 14 . give feedback ."},
                     {"role": "user", "content": "the total is 4"}]]
PROBE = torch.tensor([[5, 9, 14, 22, 31, 7, 40]])  # token ids whose next-token logits fingerprint the weights


def teacher_logits(backend) -> torch.Tensor:
    with torch.no_grad():
        return backend.model(input_ids=PROBE).logits.clone()


def policy_update(model, tokenizer) -> None:
    """One policy-gradient step (SGD, large lr) on a scripted group: a real update of every weight."""
    messages = [{"role": "system", "content": "answer the question ."}, {"role": "user", "content": "what is it ?"}]
    group = [ScoredTrajectory(messages + [{"role": "assistant", "content": reply}], reward, 0)
             for reply, reward in (("it is 5 . 2", 1.0), ("it is 9", 0.0))]
    module = GroupPolicyGradientModule(model, lambda step: group, tokenizer, max_length=128, lr=1.0)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=5.0)
    module.training_step(0, 0).backward()
    optimizer.step()


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
@pytest.mark.parametrize("frozen", [True, False])
def test_frozen_teacher_ignores_policy_updates_and_the_default_teacher_follows_them(frozen):
    model, tokenizer = build_tiny_model_and_tokenizer(seed=1)
    student = TransformersBackend(model, tokenizer, model_id="policy")
    teacher, frozen_model = build_sml_teacher(OmegaConf.create({"name": "none"}), frozen, model, tokenizer, student,
                                              cache_dir="unused", batch_size=4)
    assert (teacher is student) is (not frozen) and (frozen_model is not None) is frozen
    params = SamplingParams(max_new_tokens=12)
    feedback_before, logits_before = teacher.complete(FEEDBACK_PROMPTS, params), teacher_logits(teacher)
    student_before = teacher_logits(student)
    policy_update(model, tokenizer)
    assert not torch.equal(teacher_logits(student), student_before)  # the policy did change
    if frozen:
        assert torch.equal(teacher_logits(teacher), logits_before)
        assert teacher.complete(FEEDBACK_PROMPTS, params) == feedback_before
        assert not any(p.requires_grad for p in frozen_model.parameters())
    else:
        assert not torch.equal(teacher_logits(teacher), logits_before)
        assert teacher.complete(FEEDBACK_PROMPTS, params) != feedback_before


def test_a_separate_teacher_node_gets_no_copy_and_model_policy_gets_the_frozen_one():
    model, tokenizer = build_tiny_model_and_tokenizer(seed=1)
    student = TransformersBackend(model, tokenizer, model_id="policy")
    node = OmegaConf.create({"name": "self", "kind": "transformers", "model": "policy", "cache": False})
    teacher, frozen_model = build_sml_teacher(node, True, model, tokenizer, student, cache_dir="unused", batch_size=4)
    assert teacher is not student and teacher.model is frozen_model
    teacher, frozen_model = build_sml_teacher(node, False, model, tokenizer, student, cache_dir="unused", batch_size=4)
    assert teacher is student and frozen_model is None
    tiny = OmegaConf.create({"name": "tiny", "kind": "transformers", "cache": False,
                             "model": {"_target_": "clarifylab.models.ModelSpec", "source": "tiny", "seed": 0}})
    teacher, frozen_model = build_sml_teacher(tiny, True, model, tokenizer, student, cache_dir="unused", batch_size=4)
    assert frozen_model is None and teacher.model is not model
