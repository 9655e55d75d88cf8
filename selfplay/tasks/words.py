"""Word tasks: the letter-pair cipher (from OpenAI's o1 launch post) and letter counting.

Cipher: each plaintext letter is written as two letters whose alphabet positions average to it
("t" = 20 -> "oy" = (15 + 25) / 2), so "think" -> "oyfjdnisdr". The reference solution decodes one
pair per entry, one word per line ("oy=t fj=h dn=i is=n dr=k").

Letter count: "how many r in strawberry"; the reference spells the word one letter per line
with a running count ("s:0", "t:0", "r:1", ...), the step small models skip when they miscount.
"""

from __future__ import annotations

import random
from typing import Any, Mapping

from selfplay.tasks.base import Draw, Family, Reference
from verifiers.puzzles import decode_pairs_by_word

# Short common words for cipher plaintexts: the decoded sentence should look like words.
CIPHER_WORDS = (
    "a an as at be by do go he if in is it me my no of on or so to up us we "
    "all and any are big but can day did end far few fun get had has her him his how let man "
    "new not now old one our out own put ran red run saw say see she sun the top two use was way "
    "who why yes you also back best blue both come does down each even find five four from give "
    "good hand have help here home into just keep kind know last left life like line long look "
    "made make many more most move much must name near need next only open over part play read "
    "rest same seen show side some step stop take tell than that them then they this time tree "
    "very walk want well went what when with word work year your think solve check"
).split()

# Words of every length for letter counting (difficulty bands by length).
COUNT_WORDS = (
    "cat dog sun tree book door fish bird milk rain snow star moon hill road ship "
    "apple grass happy house horse lemon mango paper pizza river sheep table tiger water "
    "banana bottle butter carrot cherry coffee letter little pepper rabbit summer yellow "
    "balloon bubbles cabbage chicken coconut giraffe letters mission pattern penguin success "
    "blueberry butterfly challenge classroom committee dangerous excellent happiness mississippi "
    "necessary parallel raspberry strawberry tennessee apparently assessment bookkeeper "
    "possession successful accommodate embarrassment occurrence programming unnecessary"
).split()

LETTER_COUNT_BANDS = {1: (3, 5), 2: (6, 8), 3: (9, 40)}
"""Difficulty -> (shortest, longest) word length."""


def _position(letter: str) -> int:
    return ord(letter) - 96


def encode_pairs(plaintext: str, rng: random.Random) -> str:
    """Encode each letter as a random pair of letters whose positions average to it."""
    words = []
    for word in plaintext.split():
        pairs = []
        for letter in word:
            total = 2 * _position(letter)
            first = rng.randint(max(1, total - 26), min(26, total - 1))
            pairs.append(chr(first + 96) + chr(total - first + 96))
        words.append("".join(pairs))
    return " ".join(words)


def draw_cipher(rng: random.Random, difficulty: int) -> Draw:
    plaintext = " ".join(rng.choice(CIPHER_WORDS) for _ in range(difficulty))
    ciphertext = encode_pairs(plaintext, rng)
    return Draw(f"Decode: {ciphertext}", plaintext, {"ciphertext": ciphertext})


def solve_cipher(meta: Mapping[str, Any]) -> Reference:
    """One line per word, one "pair=letter" entry per pair. Raises ValueError for a ciphertext
    that does not decode (verifiers.puzzles decodes it: the verifier's own decoder)."""
    words = decode_pairs_by_word(str(meta["ciphertext"]))
    lines = tuple(" ".join(f"{pair}={letter}" for pair, letter in word) for word in words)
    return Reference(lines, " ".join("".join(letter for _, letter in word) for word in words))


def draw_letter_count(rng: random.Random, difficulty: int) -> Draw:
    low, high = LETTER_COUNT_BANDS[difficulty]
    word = rng.choice([w for w in COUNT_WORDS if low <= len(w) <= high])
    # Mostly a letter of the word (often a repeated one), sometimes one it lacks: "0" is an answer too.
    letter = rng.choice(word) if rng.random() < 0.85 else rng.choice([c for c in "abcdefghijklmnopqrstuvwxyz" if c not in word])
    return Draw(f"How many {letter} in {word}?", str(word.count(letter)), {"word": word, "letter": letter})


def solve_letter_count(meta: Mapping[str, Any]) -> Reference:
    word, letter = str(meta["word"]).lower(), str(meta["letter"]).lower()
    lines, count = [], 0
    for char in word:
        count += char == letter
        lines.append(f"{char}:{count}")
    return Reference(tuple(lines), str(count))


CIPHER = Family(
    name="cipher", task="cipher", difficulty="number of words",
    min_difficulty=1, max_difficulty=8, draw=draw_cipher, solve=solve_cipher,
)
LETTER_COUNT = Family(
    name="letter_count", task="letter_count", difficulty="word length: 1 = 3-5, 2 = 6-8, 3 = 9+ letters",
    min_difficulty=1, max_difficulty=3, draw=draw_letter_count, solve=solve_letter_count,
)
