"""In-context prompting baselines (ACT §4.3, App. E) as a :class:`ChatBackend` wrapper.

:class:`PromptingBaseline` wraps any backend (a local model, an OpenAI-compatible endpoint) and
rewrites each conversation before it reaches the model, so the rollout, the classifier, the
simulator and the metrics are reused unchanged. ``k`` demonstration conversations are drawn once,
seeded, from the dataset's training pool (:func:`draw_demonstrations`) and written into the system
message as transcripts; the conversation itself follows as chat messages. Three styles:

``standard``
    The task's own instruction (the one used for tuning) plus the demonstrations; the model replies
    directly. Its output is the reply (a leading ``Assistant:`` and anything after a line starting
    another speaker's turn are dropped).
``cot`` (chain of thought)
    Each demonstration reply reads ``Reasoning: <is the request ambiguous, and why>`` then
    ``Response: <reply>``, and the latest user message is followed by an instruction to think step
    by step in that format. The reply is the text after the first ``Response:`` marker
    (:func:`extract_response`).
``proactive`` (proactive mixed-initiative prompting)
    The system message names the two actions the assistant may take (directly answer / ask a
    clarifying question) and when each fits; every demonstration reply reads
    ``Action: <action> (<why>)`` then ``Response: <reply>``, and the latest user message is followed
    by the list of actions and the output format. The reply is extracted as for ``cot``.

Output format asked of ``cot``/``proactive`` models, and how it is read::

    Reasoning: The question names no year and the table has three, so it is ambiguous.   (cot)
    Action: Ask a clarifying question (the year is missing)                                (proactive)
    Response: Which year do you mean: 2015, 2016 or 2017?

The reply is everything after the first ``Response:`` (also ``**Response:**``, any case) up to a
line that starts another turn (``User:``, ``Reasoning:``, ``Action:``, ``Example conversation``).
Without a marker, a first line starting with ``Reasoning:``/``Action:`` is dropped and the rest
is the reply (the whole output if nothing else remains). The raw outputs are kept in
:attr:`PromptingBaseline.raw_outputs`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from clarifylab.backends.base import ChatBackend, Message, SamplingParams
from clarifylab.data.chat_format import response_messages
from clarifylab.data.schema import Action, Example
from clarifylab.errors import ConfigError

STYLES = ("standard", "cot", "proactive")

STANDARD_PREAMBLE = (
    "You are an assistant that helps a user find information in the data given with each conversation. "
    "When a request can be read in more than one way, or lacks a detail you need, ask the user a short "
    "clarifying question; otherwise answer it.")
COT_PREAMBLE = STANDARD_PREAMBLE + (
    " Before each reply, think step by step about whether the user's latest request can be answered as it "
    "stands: write your thinking after 'Reasoning:', then your reply to the user after 'Response:'.")
PROACTIVE_PREAMBLE = (
    "You are a mixed-initiative assistant that helps a user find information in the data given with each "
    "conversation. At every turn you take one of two actions:\n"
    "- Directly answer: the latest request, read together with the conversation, says everything needed, "
    "so give the requested information.\n"
    "- Ask a clarifying question: the latest request is ambiguous or misses a detail the answer depends "
    "on, so ask the user which one they mean instead of guessing.\n"
    "Decide first, writing 'Action:' with your choice and the reason, then write your reply after 'Response:'.")
PREAMBLES = {"standard": STANDARD_PREAMBLE, "cot": COT_PREAMBLE, "proactive": PROACTIVE_PREAMBLE}

COT_TURN_INSTRUCTION = (
    "[Instruction: if this request is ambiguous, ask a clarifying question; otherwise answer it from the data. "
    "Think step by step. Write 'Reasoning:' with your thinking, then 'Response:' with your reply to the user.]")
PROACTIVE_TURN_INSTRUCTION = (
    "[Possible actions: Directly answer, Ask a clarifying question. Write 'Action:' with your choice and why, "
    "then 'Response:' with your reply to the user.]")
TURN_INSTRUCTIONS = {"standard": None, "cot": COT_TURN_INSTRUCTION, "proactive": PROACTIVE_TURN_INSTRUCTION}

COT_REASONS = {
    Action.CLARIFY: "The request leaves out a detail the answer depends on, so it can be read in more than one "
                    "way; I should ask which one the user means.",
    Action.ANSWER: "Together with the conversation so far, the request says everything needed, so I can answer "
                   "it from the data.",
}
PROACTIVE_ACTIONS = {
    Action.CLARIFY: "Ask a clarifying question (the request is ambiguous)",
    Action.ANSWER: "Directly answer (the request is clear)",
}
DEMOS_HEADER = "Here are {k} example conversations, each with its own data:"
TARGET_HEADER = "Now the real conversation. Its data and instructions:"
SPEAKERS = {"user": "User", "assistant": "Assistant"}

_RESPONSE_MARKER = re.compile(r"[*_]{0,2}\bresponse\b[*_]{0,2}\s*:[*_]{0,2}", re.IGNORECASE)
_NEXT_TURN = re.compile(r"\n\s*[*_]{0,2}(?:user|reasoning|action|example conversation)\b", re.IGNORECASE)
_LEADING_LABEL = re.compile(r"^\s*[*_]{0,2}(?:reasoning|action)\b[*_]{0,2}\s*:", re.IGNORECASE)
_ASSISTANT_PREFIX = re.compile(r"^\s*[*_]{0,2}assistant[*_]{0,2}\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True)
class BaselineSpec:
    """A prompting baseline's settings (``conf/baseline/*.yaml``).

    Attributes:
        style: ``standard`` | ``cot`` | ``proactive``.
        conversations: k, the number of in-context demonstration conversations (ACT uses 10).
        seed: seeds the draw of the demonstrations.
        max_context_chars: a demonstration's grounding is cut to this many characters (long stories).
    """

    style: str
    conversations: int = 10
    seed: int = 0
    max_context_chars: int = 2000

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ConfigError(f"baseline.style={self.style!r} is not one of {list(STYLES)}")
        if self.conversations < 0:
            raise ConfigError(f"baseline.conversations={self.conversations} must be >= 0")


def draw_demonstrations(pool: Sequence[Example], k: int, seed: int) -> list[Example]:
    """``k`` examples drawn without replacement from ``pool`` with ``random.Random(seed)`` (ACT App. E:
    "we randomly sample 10 conversation examples from each task's data pool")."""
    if k > len(pool):
        raise ConfigError(f"prompting baseline: {k} demonstration conversations requested but the training pool "
                          f"has {len(pool)} examples; lower baseline.conversations")
    return random.Random(seed).sample(list(pool), k)


def styled_reply(text: str, action: Action, style: str) -> str:
    """An assistant reply of a demonstration, in the output format the style asks for."""
    if style == "cot":
        return f"Reasoning: {COT_REASONS[action]}\nResponse: {text}"
    if style == "proactive":
        return f"Action: {PROACTIVE_ACTIONS[action]}\nResponse: {text}"
    return text


def _cut(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[:max_chars].rstrip() + " [...]"


def render_demonstration(example: Example, index: int, style: str, max_context_chars: int) -> str:
    """One demonstration as a transcript: its data, its history, then the gold continuation (the gold
    reply; for a clarify example also the user's clarification and the final answer) in ``style``."""
    lines = [f"Example conversation {index}:", "Data:", _cut(example.context, max_context_chars) or "(none)"]
    lines += [f"{SPEAKERS[t.role]}: {t.content}" for t in example.history]
    gold = response_messages(example)
    for position, message in enumerate(gold):
        if message["role"] == "assistant":
            action = example.action if position == 0 else Action.ANSWER
            lines.append(f"Assistant: {styled_reply(message['content'], action, style)}")
        else:
            lines.append(f"User: {message['content']}")
    return "\n".join(lines)


def extract_response(output: str, style: str) -> str:
    """The reply to the user in a raw model output (module docstring for the rules)."""
    text = output.strip()
    if style != "standard":
        marker = _RESPONSE_MARKER.search(text)
        if marker:
            text = text[marker.end():]
        elif _LEADING_LABEL.match(text):
            rest = text.split("\n", 1)[1] if "\n" in text else ""
            text = rest if rest.strip() else _LEADING_LABEL.sub("", text, count=1)
    text = _ASSISTANT_PREFIX.sub("", text.strip())
    text = _NEXT_TURN.split(text, maxsplit=1)[0]
    return text.strip()


class PromptingBaseline:
    """A :class:`ChatBackend` that prompts ``inner`` in a baseline style (module docstring).

    Args:
        inner: the model's backend (cache and accounting wrap this one, so keys see the real prompt).
        spec: style, k, seed, context cut.
        pool: the training pool the demonstrations are drawn from.

    Attributes:
        demonstrations: the drawn examples, in prompt order.
        raw_outputs: every raw model output, in call order (before :func:`extract_response`).
    """

    def __init__(self, inner: ChatBackend, spec: BaselineSpec, pool: Sequence[Example]) -> None:
        self.inner = inner
        self.spec = spec
        self.name = f"{inner.name}+{spec.style}"
        self.model_id = inner.model_id
        self.demonstrations = draw_demonstrations(pool, spec.conversations, spec.seed)
        self.raw_outputs: list[str] = []
        demos = [render_demonstration(e, i + 1, spec.style, spec.max_context_chars)
                 for i, e in enumerate(self.demonstrations)]
        block = [PREAMBLES[spec.style]]
        if demos:
            block.append(DEMOS_HEADER.format(k=len(demos)) + "\n\n" + "\n\n".join(demos))
        self.prefix = "\n\n".join(block)

    def __repr__(self) -> str:
        return f"PromptingBaseline({self.inner!r}, style={self.spec.style!r}, k={len(self.demonstrations)})"

    def rewrite(self, conversation: Sequence[Message]) -> list[Message]:
        """The conversation as the model sees it: baseline system prefix (+ the original system message
        under :data:`TARGET_HEADER`), the same turns, and the style's instruction after the last user turn."""
        messages = [dict(m) for m in conversation]
        if messages and messages[0]["role"] == "system":
            original = messages.pop(0)["content"]
            system = f"{self.prefix}\n\n{TARGET_HEADER}\n{original}"
        else:
            system = self.prefix
        messages.insert(0, {"role": "system", "content": system})
        instruction = TURN_INSTRUCTIONS[self.spec.style]
        if instruction and messages[-1]["role"] == "user":
            messages[-1]["content"] = f"{messages[-1]['content']}\n\n{instruction}"
        return messages

    def complete(self, batch: Sequence[list[Message]], params: SamplingParams) -> list[str]:
        """One extracted reply per conversation, in order (one ``inner.complete`` call)."""
        outputs = self.inner.complete([self.rewrite(c) for c in batch], params)
        self.raw_outputs.extend(outputs)
        return [extract_response(output, self.spec.style) for output in outputs]
