"""Small, real inputs for `pdfleet bench` where the real ones cannot be had: a tokenizer and a ShareGPT file.

Standard library only and pure (path -> bytes, the same bytes every time), so the sandbox's stand-in hub can serve
the tokenizer as part of its fake checkpoint and the tests can write both without a network:

* `tokenizer_files()`: `tokenizer.json` + `tokenizer_config.json` shaped like DeepSeek-V3.2's: a byte-level BPE
  (GPT-2's byte alphabet and pre-tokenizer, merges learnt here from `corpus()`), DeepSeek's BOS/EOS at ids 0 and 1, a
  template adding BOS, and `"tokenizer_class": "LlamaTokenizerFast"` as DeepSeek's hub files say. `transformers`'
  `AutoTokenizer.from_pretrained(DIR)` loads it offline and decodes what it encoded back unchanged (with transformers
  4.57.1, the bench client's pin; the same shape shows at once a transformers whose LlamaTokenizer replaces the
  byte-level pre-tokenizer and drops every space, as some 5.x releases did: huggingface/transformers#45488).
* `sharegpt_json(conversations)`: a ShareGPT-format file (`[{"id", "conversations": [{"from": "human", "value"},
  {"from": "gpt", "value"}]}]`) of generated English-like text, for bench_serving's `sharegpt` dataset and for the
  text its `random` dataset samples; with a path given, bench_serving never downloads the real one.

    python -m pdfleet.sandbox.benchdata tokenizer DIR       # DIR/tokenizer.json, DIR/tokenizer_config.json
    python -m pdfleet.sandbox.benchdata sharegpt FILE [N]   # N conversations (default 1200: a full run's 1000 fit)
"""

from __future__ import annotations

import functools
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

# DeepSeek-V3's special tokens (ids 0 and 1 in its tokenizer.json), and the chat turn markers of its template.
BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER, ASSISTANT = "<｜User｜>", "<｜Assistant｜>"
# Total vocabulary: the 2 special tokens, the 256 byte symbols, then merges until this size.
VOCAB_SIZE = 1200
SEED = 20251201

WORDS = """
the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were
her she there been one all we their has would when if so no will more can out up about who some time them into only
other new could its two may then do first any like now my these over such our man me even most made after also did
many before must through back years where much your way well down should because each just those people how too
little state good very make world still own see men work long get here between both life being under never day same
another know while last might us great old year off come since against go came right used take three states himself
few house use during without again place around however home small found thought went say part once general high
upon school every does got united left number course war until always away something fact though water less public
put think almost hand enough far took head yet government system better set told nothing night end why called eyes
find going look asked later knew point next program city business give group toward young days let room president
side social given present several order national possible rather second face per among form important often things
looked early white case john become large big need four within felt along children saw best church ever least power
development light thing seemed family interest want members mind country area others done turned although open god
service certainly kind problem began different door thus help sense means whole matter perhaps itself york times law
human line above name example action company hands local show whether five history gave today either act feet across
taken past quite anything having seen death experience body word half really week field words already themselves
information tell together college shall money period held keep sure probably free seems real behind cannot miss
political air question making office brought whose special heard major problems ago became federal study available
known result street economic boy position reason change south board individual job areas society west close turn
love community true court force full seem am wife age policy voice call wanted future hour model memory kernel
router prefill decode cluster token throughput latency server
""".split()  # noqa: SIM905  (a word list reads better as text)


def corpus(sentences: int = 3000, seed: int = SEED) -> str:
    """Generated English-like text (sentences of the words above, some numbers and punctuation), deterministic."""
    rng = random.Random(seed)
    out = []
    for _ in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 18))]
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 2025)))
        sentence = " ".join(words)
        out.append(sentence[0].upper() + sentence[1:] + rng.choice(".....?!"))
    return " ".join(out)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte alphabet: every byte as one printable character (what the ByteLevel pre-tokenizer emits)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


# GPT-2's pre-tokenization (the ByteLevel pre-tokenizer's use_regex), for ASCII text: contractions, words with their
# leading space, numbers, punctuation runs, whitespace.
_SPLIT = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")


def train_merges(text: str, merges: int) -> list[tuple[str, str]]:
    """Byte-level BPE merges learnt from `text`: the most frequent adjacent pair first, ties by the pair itself.
    Pair counts are kept up to date word by word (only the words holding the merged pair are split again)."""
    alphabet = bytes_to_unicode()
    words = Counter("".join(alphabet[b] for b in piece.encode()) for piece in _SPLIT.findall(text))
    split = {word: list(word) for word in words}
    pairs: Counter = Counter()
    holders: dict[tuple[str, str], set[str]] = {}
    for word, count in words.items():
        for pair in zip(split[word], split[word][1:], strict=False):
            pairs[pair] += count
            holders.setdefault(pair, set()).add(word)
    learnt: list[tuple[str, str]] = []
    while len(learnt) < merges:
        live = [pair for pair, n in pairs.items() if n > 0]
        if not live:
            break
        best = min(live, key=lambda pair: (-pairs[pair], pair))
        learnt.append(best)
        joined = best[0] + best[1]
        for word in sorted(holders.pop(best, ())):
            symbols, count = split[word], words[word]
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] -= count
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(joined)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            split[word] = out
            for pair in zip(out, out[1:], strict=False):
                pairs[pair] += count
                holders.setdefault(pair, set()).add(word)
        pairs.pop(best, None)
    return learnt


def _json(value) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()


CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}" + USER + "{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}" + ASSISTANT + "{{ message['content'] }}{{ eos_token }}"
    "{% else %}{{ message['content'] }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT + "{% endif %}"
)


@functools.lru_cache(maxsize=4)  # pure and deterministic; the sandbox hub asks for it per revision
def tokenizer_files(vocab_size: int = VOCAB_SIZE, seed: int = SEED) -> dict[str, bytes]:
    """A DeepSeek-shaped byte-level BPE tokenizer: {"tokenizer.json": ..., "tokenizer_config.json": ...}."""
    specials = [BOS, EOS, USER, ASSISTANT]
    alphabet = [bytes_to_unicode()[b] for b in range(256)]
    merges = train_merges(corpus(seed=seed), vocab_size - len(specials) - len(alphabet))
    vocab: dict[str, int] = {}
    for token in [BOS, EOS, *alphabet, *(a + b for a, b in merges)]:
        vocab.setdefault(token, len(vocab))
    added = [
        {
            "id": len(vocab) + i - 2 if i >= 2 else i,
            "content": token,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, token in enumerate(specials)
    ]
    bos_id = vocab[BOS]
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [
                {"SpecialToken": {"id": BOS, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": BOS, "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {BOS: {"id": BOS, "ids": [bos_id], "tokens": [BOS]}},
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": EOS,
        "clean_up_tokenization_spaces": False,
        "legacy": True,
        "model_max_length": 163840,
        "tokenizer_class": "LlamaTokenizerFast",
        "chat_template": CHAT_TEMPLATE,
    }
    return {"tokenizer.json": _json(tokenizer), "tokenizer_config.json": _json(config)}


def sharegpt_json(conversations: int = 1200, seed: int = SEED) -> bytes:
    """A ShareGPT-format dataset of generated conversations (a human turn, then a gpt turn; some a third turn)."""
    rng = random.Random(seed)

    def text(low: int, high: int) -> str:
        words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
        sentences, i = [], 0
        while i < len(words):
            n = rng.randint(5, 16)
            chunk = " ".join(words[i : i + n])
            sentences.append(chunk[0].upper() + chunk[1:] + rng.choice("...?!"))
            i += n
        return " ".join(sentences)

    rows = []
    for k in range(conversations):
        turns = [{"from": "human", "value": text(8, 400)}, {"from": "gpt", "value": text(8, 500)}]
        if rng.random() < 0.2:
            turns.append({"from": "human", "value": text(4, 40)})
        rows.append({"id": f"pdfleet-{k:05d}", "conversations": turns})
    return _json(rows)


def write_tokenizer(directory: str | Path) -> list[Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in tokenizer_files().items():
        (directory / name).write_bytes(content)
        written.append(directory / name)
    return written


def write_sharegpt(path: str | Path, conversations: int = 1200) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(sharegpt_json(conversations))
    return path


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "tokenizer":
        for path in write_tokenizer(argv[1]):
            print(path)
        return 0
    if len(argv) >= 2 and argv[0] == "sharegpt":
        print(write_sharegpt(argv[1], int(argv[2]) if len(argv) > 2 else 1200))
        return 0
    print(__doc__.split("\n\n")[-1].rstrip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
