"""A tiny LoCoMo-format file, for smoke-testing ``memosd eval locomo`` without the real data.

``python -m memosd.bench.sample OUT.json`` writes two short conversations with
questions whose evidence includes the messy id forms the real file has
("D1:2; D2:1", "D:1:3", "D2:01", and one id that matches no turn).
"""

from __future__ import annotations

import json
import sys


def _turn(speaker: str, dia_id: str, text: str, caption: str | None = None) -> dict:
    turn = {"speaker": speaker, "dia_id": dia_id, "text": text}
    if caption:
        turn["blip_caption"] = caption
    return turn


def tiny_locomo() -> list[dict]:
    """Two conversations, 2 sessions each, 7 questions (one with no usable evidence)."""
    return [
        {
            "sample_id": "tiny-1",
            "conversation": {
                "speaker_a": "Caroline",
                "speaker_b": "Melanie",
                "session_1_date_time": "1:56 pm on 8 May, 2023",
                "session_1": [
                    _turn("Caroline", "D1:1", "Hey Mel! I went to the LGBTQ support group yesterday."),
                    _turn("Melanie", "D1:2", "That's great! I've been painting sunsets by the lake."),
                    _turn("Caroline", "D1:3", "I want to become a counselor for trans youth.",
                          caption="a photo of a university brochure"),
                ],
                "session_2_date_time": "10:37 am on 27 June, 2023",
                "session_2": [
                    _turn("Melanie", "D2:1", "We went camping in the mountains with the kids."),
                    _turn("Caroline", "D2:2", "I adopted a puppy named Biscuit last week!"),
                ],
            },
            "qa": [
                {"question": "When did Caroline go to the LGBTQ support group?", "answer": "7 May 2023",
                 "evidence": ["D1:1"], "category": 2},
                {"question": "What does Melanie paint?", "answer": "sunsets", "evidence": ["D1:2; D2:1"],
                 "category": 4},
                {"question": "What career does Caroline want?", "answer": "counselor", "evidence": ["D:1:3"],
                 "category": 1},
                {"question": "Where did Melanie go camping?", "answer": "mountains", "evidence": ["D2:01"],
                 "category": 3},
                {"question": "What did Caroline adopt?", "adversarial_answer": "a kitten", "evidence": ["D2:2"],
                 "category": 5},
                {"question": "What is Melanie's favourite food?", "answer": "unknown", "evidence": ["D9:9"],
                 "category": 4},
            ],
        },
        {
            "sample_id": "tiny-2",
            "conversation": {
                "speaker_a": "Jon",
                "speaker_b": "Gina",
                "session_1_date_time": "4:04 pm on 20 January, 2023",
                "session_1": [
                    _turn("Jon", "D1:1", "I lost my job as a banker, so I'm opening a dance studio."),
                    _turn("Gina", "D1:2", "I started an online clothing store!"),
                ],
            },
            "qa": [
                {"question": "What business is Jon starting?", "answer": "a dance studio", "evidence": ["D1:1"],
                 "category": 4},
            ],
        },
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m memosd.bench.sample OUT.json", file=sys.stderr)
        return 2
    with open(argv[0], "w", encoding="utf-8") as fh:
        json.dump(tiny_locomo(), fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
