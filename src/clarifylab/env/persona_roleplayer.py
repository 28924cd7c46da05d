"""A persona-conditioned user simulator (STaR-GATE's Roleplayer): answers an assistant's questions about itself.

The Roleplayer plays the user who sent the request. It sees its persona and its own request in the system message;
the assistant's questions arrive as *user* messages and its own earlier answers are *assistant* messages (the roles
of the questioner's conversation, flipped). It answers questions about itself and never performs the task.

Conversations here are in the questioner's view: ``[user: first turn, assistant: q1, user: a1, ..., assistant: qk]``
(no system message); :func:`roleplayer_messages` turns one into the Roleplayer's prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clarifylab.backends.base import ChatBackend, Message, SamplingParams
from clarifylab.errors import DataFormatError

ROLEPLAYER_SYSTEM = (
    "You are role-playing a person. This is who you are:\n{persona}\n\n"
    "You asked an AI assistant for help with this request: \"{request}\"\n"
    "The assistant now asks you questions. Answer each question briefly, in the first person, as this person "
    "would, using the details above (invent plausible ones that fit when needed). Only answer the question: do "
    "not ask for the task again, do not do the task yourself, and do not ask the assistant questions."
)


def roleplayer_messages(persona: str, request: str, conversation: Sequence[Message]) -> list[Message]:
    """The Roleplayer's prompt for answering the last question of ``conversation`` (questioner's view).

    Args:
        persona: the persona description.
        request: the user's first turn (what the Roleplayer asked for).
        conversation: ``[user, assistant, user, ..., assistant]`` starting with the first user turn and ending
            with the question to answer.

    Raises:
        DataFormatError: the conversation does not alternate user/assistant from a user turn to an assistant one.
    """
    roles = [m["role"] for m in conversation]
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(conversation))]
    if roles != expected or not roles or roles[-1] != "assistant":
        raise DataFormatError(f"a Roleplayer needs user/assistant turns ending with a question, got roles {roles}")
    flipped = {"user": "assistant", "assistant": "user"}
    turns = [{"role": flipped[m["role"]], "content": m["content"]} for m in conversation[1:]]
    system = ROLEPLAYER_SYSTEM.format(persona=persona.strip(), request=request.strip())
    return [{"role": "system", "content": system}, *turns]


@dataclass
class PersonaRoleplayer:
    """Answers a batch of questions, each from its own persona (greedy by default, as the paper's Roleplayer).

    Args:
        backend: the Roleplayer LLM (any :class:`ChatBackend`).
        max_new_tokens: per answer.
    """

    backend: ChatBackend
    max_new_tokens: int = 64

    def answer(self, personas: Sequence[str], requests: Sequence[str],
               conversations: Sequence[Sequence[Message]]) -> list[str]:
        """One answer per conversation (all in one backend call)."""
        if not len(personas) == len(requests) == len(conversations):
            raise ValueError("personas, requests and conversations must have the same length")
        prompts = [roleplayer_messages(p, r, c) for p, r, c in zip(personas, requests, conversations)]
        return self.backend.complete(prompts, SamplingParams(max_new_tokens=self.max_new_tokens, temperature=0.0))
