"""A realistic mix of cues for a live show: captions, quiz questions and poll tallies.

Deterministic (seeded), varied (sentences, questions and counts drawn from lists), and neither
random bytes nor one repeated string: what the compressed payload encoding is measured on.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

_SUBJECTS = (
    "the home team",
    "our next guest",
    "the audience",
    "the referee",
    "the weather out there",
    "this quarter",
    "the leaderboard",
    "the final round",
    "tonight's winner",
    "the striker",
    "our studio panel",
    "the crowd in the north stand",
)
_VERBS = (
    "has really changed",
    "is looking much stronger",
    "will decide everything",
    "just surprised everyone",
    "could still turn around",
    "was not expected at all",
    "keeps getting better",
    "is what people came for",
)
_TAILS = (
    "and you can feel it in the room.",
    "after that incredible second half.",
    "so stay with us after the break.",
    "which nobody predicted this morning.",
    "and the numbers back that up.",
    "if you ask me, anyway.",
    "as we saw a few minutes ago.",
    "and that is the story of the night.",
)
_QUESTIONS = (
    ("Which city hosted the first modern Olympic Games?", ("Athens", "Paris", "London", "Rome")),
    ("How many players does a volleyball team have on court?", ("Five", "Six", "Seven", "Nine")),
    ("Which planet has the shortest day?", ("Jupiter", "Mars", "Earth", "Venus")),
    ("What is the capital of Peru?", ("Lima", "Cusco", "Quito", "La Paz")),
    (
        "Who painted the ceiling of the Sistine Chapel?",
        ("Raphael", "Michelangelo", "Titian", "Bernini"),
    ),
    ("Which element has the chemical symbol Fe?", ("Iron", "Fluorine", "Lead", "Tin")),
    ("In which year did the first person walk on the Moon?", ("1965", "1969", "1972", "1959")),
    ("What is the longest river in Africa?", ("Congo", "Niger", "Nile", "Zambezi")),
)
_QUESTIONS_ES = (
    "¿Qué ciudad organizó los primeros Juegos Olímpicos modernos?",
    "¿Cuántos jugadores tiene un equipo de voleibol en la cancha?",
    "¿Qué planeta tiene el día más corto?",
    "¿Cuál es la capital de Perú?",
    "¿Quién pintó el techo de la Capilla Sixtina?",
    "¿Qué elemento tiene el símbolo químico Fe?",
    "¿En qué año caminó la primera persona sobre la Luna?",
    "¿Cuál es el río más largo de África?",
)
_POLLS = (
    ("mvp", ("alvarez", "okafor", "lindqvist", "tanaka")),
    ("next_song", ("encore", "ballad", "cover", "medley")),
    ("best_goal", ("first_half", "second_half", "extra_time")),
    ("winner", ("red", "blue")),
)


def corpus_cues(channel: str, *, seed: int = 16) -> Iterator[dict[str, Any]]:
    """An endless, repeatable stream of caption (60 %), poll (25 %) and quiz (15 %) cues."""
    rng = random.Random(seed)
    tallies: dict[str, dict[str, int]] = {}
    serial = 0
    while True:
        serial += 1
        roll = rng.random()
        if roll < 0.6:
            text = " ".join(
                (rng.choice(_SUBJECTS).capitalize(), rng.choice(_VERBS), rng.choice(_TAILS))
            )
            data: dict[str, Any] = {"text": text, "lang": "en", "final": True}
            yield {"channel": channel, "type": "caption", "data": data}
        elif roll < 0.85:
            poll_id, options = rng.choice(_POLLS)
            counts = tallies.setdefault(poll_id, dict.fromkeys(options, 0))
            for option in options:
                counts[option] += rng.randrange(0, 40)
            data = {"poll_id": poll_id, "tally": dict(counts), "total": sum(counts.values())}
            yield {"channel": channel, "type": "poll", "key": f"tally:{serial}", "data": data}
        else:
            index = rng.randrange(len(_QUESTIONS))
            text, options = _QUESTIONS[index]
            data = {
                "question_id": f"q{serial}",
                "text": text,
                "text_es": _QUESTIONS_ES[index],
                "options": list(options),
                "seconds": 20,
            }
            yield {"channel": channel, "type": "quiz", "data": data}


_KANJI = (
    "日本語東京夜景綺麗大阪京都試合選手監督観客勝利敗北得点前半後半延長"
    "審判天気今日明日昨日時間番組放送視聴者質問答案投票結果"
)
_WORDS = (
    "¿Qué",
    "opinas",
    "del",
    "partido?",
    "Ñandú",
    "München",
    "—",
    "🎉",
    "señal",
    "año",
    "niño",
)


def large_text(size: int, *, seed: int = 16) -> str:
    """About `size` bytes of UTF-8 multi-byte text (Japanese, Spanish, emoji) for a large cue:
    varied enough that deflate keeps roughly a third of it, as with real Japanese text."""
    rng = random.Random(seed)
    out: list[str] = []
    used = 0
    while used < size:
        if rng.random() < 0.7:
            piece = "".join(rng.choice(_KANJI) for _ in range(rng.randrange(2, 9))) + "、"
        else:
            piece = rng.choice(_WORDS) + " "
        out.append(piece)
        used += len(piece.encode())
    return "".join(out)
