"""A tiny random Llama with a word-level ChatML tokenizer, for fast unit tests and CPU smoke runs.

Everything is built in-process (no download, no file): the tokenizer's vocabulary comes from a
fixed built-in corpus and the weights from a seeded initialisation, so the same ``seed`` always
gives the same model and the same vocabulary. Building takes a few milliseconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

UNK_TOKEN = "[UNK]"
PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
# Order fixes the ids: [UNK]=0, <|endoftext|>=1, <|im_start|>=2, <|im_end|>=3.
SPECIAL_TOKENS = (UNK_TOKEN, PAD_TOKEN, IM_START, IM_END)

# ChatML, as used by SmolLM2/Qwen but without any default system prompt. The ``generation`` block
# marks the assistant tokens (content and the closing <|im_end|>) for
# ``apply_chat_template(..., return_assistant_tokens_mask=True)``; it does not change the text.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{% else %}"
    "{{ message['content'] + '<|im_end|>' }}"
    "{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# The built-in corpus: English function words, chat roles, digits and punctuation, and the words
# of table-QA questions, clarifying questions and task instructions. Words not listed here
# tokenize to [UNK]; numbers always tokenize (digits are split one by one).
_CORPUS = """
system user assistant
the a an of to in on at by for from with as and or but not no yes if then than so is are was were
be been being has have had do does did will would can could should may might must shall it its this
that these those there here which what who whom whose when where why how much many more most less
least all any each every some one two three four five six seven eight nine ten hundred thousand
million billion i you he she we they me him her us them my your our their please thanks thank ok
okay sure sorry mean meant means about between over under per total sum average mean median change
difference ratio rate growth increase decrease up down higher lower highest lowest largest smallest
maximum minimum first last previous next same other only also just both either neither
revenue revenues sales profit profits income net gross loss losses cost costs expense expenses
margin margins earnings assets liabilities equity cash flow debt tax taxes dividend dividends share
shares stock price prices value values amount amounts number numbers count percent percentage
company companies firm segment segments region regions product products country countries market
year years quarter quarters month months fiscal annual q1 q2 q3 q4 fy date period
table tables row rows column columns cell cells text passage data question questions answer answers
context paragraph schema database sql query select where group order limit join
ask asked asks asking clarify clarifying clarification clarified clarifications ambiguous
ambiguity unclear specify specified underspecified information needed missing need needs know
which one do you mean did you mean could you tell me please specify
careful assistant answering answer guessing guess instead otherwise reply replies only lacks
lack request requests short rounded round decimals decimal below above say says metric metrics
compute calculate find show give list name names report reported
usd dollars dollar eur euro euros units unit scale thousands millions billions
0 1 2 3 4 5 6 7 8 9
a b c d e f g h i j k l m n o p q r s t u v w x y z
. , ; : ? ! ' " ( ) [ ] - + * / = % $ | _ #
"""


def _pre_tokenizer():
    """Split on whitespace, isolate every punctuation character and every digit."""
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Punctuation(behavior="isolated"),
        pre_tokenizers.Digits(individual_digits=True),
    ])


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """The word-level ChatML tokenizer over the built-in corpus (lower-cased, [UNK] for unknown words).

    Ids: the four special tokens first (see ``SPECIAL_TOKENS``), then the corpus words in sorted
    order, so the vocabulary never depends on hashing or training order. eos = ``<|im_end|>``,
    pad = ``<|endoftext|>`` (distinct from eos), no bos. Special tokens are matched before
    normalisation and pre-tokenisation, so they stay atomic inside chat-template text.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    pre_tokenizer = _pre_tokenizer()
    words = sorted({piece for piece, _ in pre_tokenizer.pre_tokenize_str(_CORPUS.lower())})
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for word in words:
        vocab.setdefault(word, len(vocab))

    backend = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizer
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces
    backend.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS])

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=UNK_TOKEN,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        extra_special_tokens={"im_start_token": IM_START},
        model_max_length=2048,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def build_tiny_model_and_tokenizer(
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 128,
    max_position_embeddings: int = 2048,
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A randomly initialised ``LlamaForCausalLM`` (float32, eval mode) and its tokenizer.

    The weights are drawn under ``torch.manual_seed(seed)`` inside a forked RNG, so building the
    model neither depends on nor changes the caller's random state. Input/output embeddings are
    untied (shape ``[vocab_size, hidden_size]`` each).
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None
    )
    model.eval()
    return model, tokenizer
