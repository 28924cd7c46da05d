"""The persona Roleplayer sees its persona and request, gets the questions as user turns, answers greedily."""

from __future__ import annotations

import pytest

from clarifylab.env.persona_roleplayer import PersonaRoleplayer, roleplayer_messages
from clarifylab.errors import DataFormatError


class Echo:
    name = model_id = "echo"

    def __init__(self):
        self.calls = []

    def complete(self, batch, params):
        self.calls.append((batch, params))
        return [f"answer {len(m)}" for m in batch]


def test_roles_are_flipped_and_the_persona_is_in_the_system_message():
    conversation = [{"role": "user", "content": "My name is Ann. Plan a trip."},
                    {"role": "assistant", "content": "Where do you live?"}, {"role": "user", "content": "Oslo."},
                    {"role": "assistant", "content": "Budget?"}]
    messages = roleplayer_messages("1. Ann, 30, nurse.", "My name is Ann. Plan a trip.", conversation)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "1. Ann, 30, nurse." in messages[0]["content"] and "Plan a trip." in messages[0]["content"]
    assert [m["content"] for m in messages[1:]] == ["Where do you live?", "Oslo.", "Budget?"]
    with pytest.raises(DataFormatError):
        roleplayer_messages("p", "r", conversation[:3])  # must end with a question


def test_answers_are_greedy_and_batched():
    backend = Echo()
    roleplayer = PersonaRoleplayer(backend, max_new_tokens=7)
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "who?"}]
    assert roleplayer.answer(["p1", "p2"], ["hi", "hi"], [conversation, conversation]) == ["answer 2", "answer 2"]
    (batch, params), = backend.calls
    assert len(batch) == 2 and params.greedy and params.max_new_tokens == 7
