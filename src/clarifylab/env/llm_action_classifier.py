"""A few-shot LLM action classifier A (ACT §3.1, App. G): is a response a clarifying question or an answer?

The prompt is a chat: a system message defining the two labels, then ``k`` labelled demonstrations as
(user: case, assistant: label) pairs, then the case to label. A case shows the grounding (cut to a
bounded number of characters), the latest turns of the conversation and the response. Demonstrations
are drawn once, seeded and balanced between the labels, from a pool of gold Examples (their gold
response and action) or, without a pool, from a small built-in set. All responses of a ``classify``
call go to the backend in one batch; a reply with no recognisable label falls back to the heuristic
classifier (counted in :attr:`FewShotLLMActionClassifier.fallbacks`).
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from clarifylab.backends.base import ChatBackend, Message, SamplingParams
from clarifylab.data.schema import Action, Example
from clarifylab.env.action_classifier import classify_response
from clarifylab.env.user_simulator import transcript, truncate
from clarifylab.errors import ConfigError

logger = logging.getLogger(__name__)

CLASSIFIER_SYSTEM = """You label the last assistant response of a conversation with its dialogue action. \
Reply with exactly one word:
clarify - the response asks the user a question to find out what they mean or need, instead of answering;
answer - the response attempts to answer or carry out the request (a value, a statement, code, a refusal), \
even if it also asks something."""
"""Why these definitions: ACT's action space is {clarify, answer}; a hedged answer that ends with a question
still commits to a result, so it counts as an answer (the same rule as the heuristic classifier)."""

CASE_TEMPLATE = """Context:
{context}

Conversation:
{transcript}

Last assistant response:
{response}

Is the last assistant response a clarifying question or an answer? Reply with one word: clarify or answer."""
"""One case (demonstration or query). Why repeat the question in every case: small models follow a
constraint best when it is the last thing they read."""

LABEL_PARAMS = SamplingParams(max_new_tokens=4)  # greedy; one word needs a few tokens
LABEL_WORDS = {Action.CLARIFY: "clarify", Action.ANSWER: "answer"}
# First word that names a label: "Clarify.", "clarifying question", "Answer:", "a direct answer" ...
_LABEL = re.compile(r"\b(clarif\w*|answer\w*)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Demonstration:
    """One labelled case: grounding, conversation (ending with a user turn), response, action."""

    context: str
    history: tuple[tuple[str, str], ...]
    response: str
    action: Action

    @classmethod
    def from_example(cls, example: Example) -> Demonstration:
        """The example's gold response labelled with its gold action."""
        return cls(example.context, tuple((t.role, t.content) for t in example.history), example.response,
                   example.action)


def _demo(context: str, user: str, response: str, action: Action) -> Demonstration:
    return Demonstration(context, (("user", user),), response, action)


_SALES = "Product|Units sold 2022|Units sold 2023\nKettle|120|135\nToaster|80|95"
_STORY = "Mara left the bakery at noon with her brother Tom. The baker, Mr. Ilves, gave Tom a loaf of rye bread."
_SCHEMA = "singer(singer_id, name, country, age)\nconcert(concert_id, singer_id, year)"
BUILTIN_DEMONSTRATIONS: tuple[Demonstration, ...] = (
    _demo(_SALES, "How many units did we sell in 2023?", "Do you mean kettles, toasters, or both together?",
          Action.CLARIFY),
    _demo(_SALES, "How many kettles were sold in 2022?", "120", Action.ANSWER),
    _demo(_STORY, "What did he get?", "Who do you mean: Tom or Mr. Ilves?", Action.CLARIFY),
    _demo(_STORY, "Who gave Tom the bread?", "The baker, Mr. Ilves.", Action.ANSWER),
    _demo(_SCHEMA, "Show me the singers.", "Should I list only their names, or every column for each singer?",
          Action.CLARIFY),
    _demo(_SCHEMA, "How many singers are from France?", "SELECT count(*) FROM singer WHERE country = 'France'",
          Action.ANSWER),
)
"""Used when no pool is given: hand-written, two per domain (table QA, reading comprehension, SQL)."""


def draw_demonstrations(pool: Sequence[Demonstration], k: int, seed: int) -> list[Demonstration]:
    """``k`` demonstrations drawn without replacement under ``seed``: ``ceil(k/2)`` clarify and ``floor(k/2)``
    answer when the pool has them (a short label is topped up from the other), in shuffled order."""
    rng = random.Random(seed)
    by_action = {a: [d for d in pool if d.action is a] for a in Action}
    want = {Action.CLARIFY: k - k // 2, Action.ANSWER: k // 2}
    for action in Action:
        short = want[action] - len(by_action[action])
        if short > 0:
            want[action] -= short
            want[action.other()] += short
    if any(want[a] > len(by_action[a]) for a in Action):
        raise ConfigError(f"few-shot action classifier: k={k} demonstrations requested but the pool has only "
                          f"{len(pool)}; lower classifier.k or give a larger examples_pool")
    chosen = [d for action in Action for d in rng.sample(by_action[action], want[action])]
    rng.shuffle(chosen)
    return chosen


def parse_label(text: str) -> Action | None:
    """The label named first in ``text`` (``clarif*`` -> clarify, ``answer*`` -> answer), or None."""
    match = _LABEL.search(text)
    if match is None:
        return None
    return Action.CLARIFY if match.group(1).lower().startswith("clarif") else Action.ANSWER


class FewShotLLMActionClassifier:
    """Classify responses with an LLM prompted with ``k`` labelled demonstrations.

    Args:
        backend: the LLM.
        examples_pool: gold Examples to draw demonstrations from (e.g. the training split); None uses
            :data:`BUILTIN_DEMONSTRATIONS`. Drawn once: every prompt shows the same demonstrations
            (so prompts are cacheable); a query example that is itself in the pool may meet its own gold
            response as a demonstration.
        k: number of demonstrations (0 = zero-shot).
        seed: seeds the draw.
        params: decoding (a few tokens suffice for one word).
        context_chars: grounding shown per case is cut to this many characters.
        history_messages: only the latest this-many history messages are shown per case.

    Attributes:
        demonstrations: the drawn demonstrations, in prompt order.
        fallbacks: replies without a recognisable label, classified by the heuristic instead.
    """

    name = "few_shot_llm"

    def __init__(self, backend: ChatBackend, examples_pool: Sequence[Example] | None = None, k: int = 4,
                 seed: int = 0, params: SamplingParams = LABEL_PARAMS,
                 context_chars: int = 800, history_messages: int = 6) -> None:
        if k < 0:
            raise ConfigError(f"few-shot action classifier: k must be >= 0, got {k}")
        self.backend = backend
        self.params = params
        self.context_chars = context_chars
        self.history_messages = history_messages
        pool = (BUILTIN_DEMONSTRATIONS if examples_pool is None
                else [Demonstration.from_example(e) for e in examples_pool])
        self.demonstrations = draw_demonstrations(pool, k, seed)
        self.fallbacks = 0

    def render_case(self, context: str, history: Sequence[tuple[str, str]], response: str) -> str:
        """One case as text (see :data:`CASE_TEMPLATE`)."""
        turns = [{"role": role, "content": content} for role, content in history][-self.history_messages:]
        return CASE_TEMPLATE.format(context=truncate(context, self.context_chars) or "(none)",
                                    transcript=transcript(turns) or "(none)", response=response)

    def messages(self, response: str, example: Example | None = None) -> list[Message]:
        """The full prompt for one response: system, demonstrations, then the query case."""
        prompt: list[Message] = [{"role": "system", "content": CLASSIFIER_SYSTEM}]
        for demo in self.demonstrations:
            prompt.append({"role": "user", "content": self.render_case(demo.context, demo.history, demo.response)})
            prompt.append({"role": "assistant", "content": LABEL_WORDS[demo.action]})
        context = example.context if example is not None else ""
        history = [(t.role, t.content) for t in example.history] if example is not None else []
        prompt.append({"role": "user", "content": self.render_case(context, history, response)})
        return prompt

    def classify(self, responses: Sequence[str], examples: Sequence[Example] | None = None) -> list[Action]:
        """One :class:`Action` per response, in order; one backend call for all of them."""
        if examples is not None and len(examples) != len(responses):
            raise ValueError(f"classify: got {len(responses)} responses but {len(examples)} examples")
        if not responses:
            return []
        aligned = list(examples) if examples is not None else [None] * len(responses)
        outputs = self.backend.complete([self.messages(r, e) for r, e in zip(responses, aligned)], self.params)
        actions = []
        unparsed = 0
        for response, output in zip(responses, outputs, strict=True):
            action = parse_label(output)
            if action is None:
                unparsed += 1
                action = classify_response(response)
            actions.append(action)
        if unparsed:
            self.fallbacks += unparsed
            logger.warning("few-shot action classifier: %d of %d replies named no label; used the heuristic "
                           "(%d fallbacks so far)", unparsed, len(responses), self.fallbacks)
        return actions
