"""Hostile memosd requests: Hypothesis strategies, and byte mutations of what they produce.

Requests are built from each operation's argument type (read with
``msgspec.inspect``), so every operation in ``OPERATIONS``, including ones added
later, is covered: mostly the right shape with nasty values (boundary and
out-of-range integers, NaN and infinities, empty, huge and odd unicode strings,
deep containers, wrong namespaces), sometimes a wrong type, a missing or an
unknown field. :func:`mutate` edits the bytes of such frames (cheap enough to do
without Hypothesis), and :meth:`Builder.garbage` sends what is not a request.
"""

from __future__ import annotations

import math
import random
import struct
from dataclasses import dataclass

import msgspec
import msgspec.inspect as mi
from hypothesis import strategies as st

from memosd_client.protocol import OPERATIONS, PROTOCOL_VERSION


@dataclass(frozen=True)
class Case:
    """One thing to send: the frames, which endpoint gets them, and how it was made."""

    frames: tuple[bytes, ...]
    admin: bool
    kind: str
    """structured, mutated, garbage or multiframe."""
    op: str | None = None
    """The operation the case was built for (None for garbage)."""


INT_EDGES = [0, 1, -1, 2, 7, 255, 256, 65535, 65536, 2**31 - 1, 2**31, -2**31, 2**32, 2**53 + 1,
             2**63 - 1, 2**63, -2**63, 2**64 - 1]
FLOAT_EDGES = [math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1e-300, 1.7976931348623157e308, -1e308,
               1e10, 4e9, -1.0, 1.5]
STRING_EDGES = ["", " ", "\t\n", "\x00", "a\x00b", "\u202eevil", "💥" * 40, "é" * 300, "ß", "İ", "\ufeff",
                "\uffff", "../..", "/", "*", "?", "[", "ns/../x", "a" * 129, "a" * 128, "-a", ".a",
                "null", "None", "0", "%s%n", "\\", "'\"", "x" * 5000, "界" * 2000]
NAMESPACES = ["fuzz-a", "fuzz-b", "fuzz:c@d", "Fuzz.e_f"]
"""Valid namespaces the fuzzer writes to (the guard namespace is never one of them)."""

_rng = st.randoms(use_true_random=True)


def weighted(*choices: tuple[float, st.SearchStrategy]) -> st.SearchStrategy:
    """Draw from one of the strategies with the given relative weights.

    ``st.one_of`` cannot weight its branches (and its own choice leans towards the
    edges), so the branch is picked with a seeded ``random.Random`` instead.
    """
    total = sum(weight for weight, _ in choices)

    @st.composite
    def pick(draw):
        x = draw(_rng).random() * total
        for weight, strategy in choices:
            if x < weight:
                return draw(strategy)
            x -= weight
        return draw(choices[-1][1])

    return pick()


def rarely(proper: st.SearchStrategy, wrong: st.SearchStrategy, one_in: int) -> st.SearchStrategy:
    """``proper`` mostly, ``wrong`` about once in ``one_in`` draws."""
    return weighted((one_in - 1, proper), (1, wrong))


ints = weighted((3, st.sampled_from(INT_EDGES)), (4, st.integers(1, 300)), (2, st.integers(-2**63, 2**64 - 1)))
floats = weighted((1, st.sampled_from(FLOAT_EDGES)), (1, st.floats(allow_nan=True, allow_infinity=True)),
                  (1, st.floats(1e9, 2e9)))
strings = weighted((3, st.sampled_from(STRING_EDGES)), (3, st.text(max_size=24)),
                   (1, st.text(alphabet=st.characters(min_codepoint=0x80), max_size=16)),
                   (2, st.sampled_from(["ocean memory", "tags", "a", "k"])))
small_strings = st.one_of(st.sampled_from(["", "a", "\x00", "💥", "k" * 200]), st.text(max_size=8))
scalars = st.one_of(st.none(), st.booleans(), ints, floats, strings, st.binary(max_size=24))
# Flat containers rather than st.recursive: as nasty for a decoder, and far cheaper to draw.
anything = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(small_strings, scalars, max_size=3))
CALM_STRINGS = st.one_of(st.sampled_from(["ocean", "memory about the ocean", "tag-a", "s1", "src", "note",
                                          "fuzz-a", "ltm", "stm"]),
                         st.text(alphabet="abcdefghij -", min_size=1, max_size=20))
namespaces = weighted((8, st.sampled_from(NAMESPACES)), (1, st.none()), (3, strings))
MISSING = object()
"""Marks a field left out of a request."""


def _deep(depth: int, leaf: object) -> object:
    value = leaf
    for n in range(depth):
        value = {"d": value} if n % 3 else [value]
    return value


deep = st.builds(_deep, weighted((2, st.integers(1, 100)), (1, st.integers(900, 1100)), (1, st.integers(1100, 3000))),
                 scalars)
"""Deeply nested containers: past the decoder's recursion limit at the high end."""


class Builder:
    """Strategies for the arguments of each operation, tuned by the daemon's encoder size."""

    def __init__(self, vector_dim: int, sandbox: str):
        self.vector_dim = vector_dim
        self.sandbox = sandbox.rstrip("/")

    # ------------------------------------------------------------------ per field

    def field(self, name: str, typ: mi.Type, calm: bool = False) -> st.SearchStrategy:
        """A value for field ``name``: tuned for the names that matter, else by type.

        ``calm`` values are plausible ones, so that some requests get past validation
        and store odd-but-valid data for the other operations to meet.
        """
        if name == "vector":
            size = self.vector_dim * 4
            special = [struct.pack(f"<{self.vector_dim}f", *([x] * self.vector_dim))
                       for x in (math.nan, math.inf, 0.0, 1.0, -0.0)]
            if calm:
                return st.one_of(st.sampled_from(special[2:]), st.binary(min_size=size, max_size=size))
            return st.one_of(st.none(), st.sampled_from(special), st.binary(min_size=size, max_size=size),
                             st.binary(max_size=64))
        if name == "dest":
            # Backups write where they are told: keep every writable destination inside the sandbox.
            inside = st.text(st.characters(exclude_characters="/", exclude_categories=("Cs",)), min_size=1,
                             max_size=20).map(lambda s: f"{self.sandbox}/{s}" if s not in (".", "..") else "x")
            return st.one_of(inside, st.sampled_from(["", "relative/dir", "..", self.sandbox,
                                                      f"{self.sandbox}/full", f"{self.sandbox}/a\x00b"]))
        if name == "meta":
            if calm:
                return st.dictionaries(CALM_STRINGS, st.one_of(CALM_STRINGS, st.integers(), st.floats()),
                                       max_size=3)
            return weighted((1, st.none()), (4, st.dictionaries(small_strings, anything, max_size=4)),
                            (1, st.builds(lambda d: {"deep": d}, deep)))
        if name in ("text", "query"):
            if calm:
                return st.one_of(CALM_STRINGS, strings)
            return weighted((1, st.none()), (4, strings), (4, CALM_STRINGS))
        return self.typed(typ, calm)

    def typed(self, typ: mi.Type, calm: bool = False) -> st.SearchStrategy:
        """A value of type ``typ``, from its nasty corners (or plausible ones when ``calm``)."""
        if isinstance(typ, mi.IntType):
            return st.integers(1, 300) if calm else ints
        if isinstance(typ, mi.FloatType):
            return st.floats(1.6e9, 1.8e9) if calm else floats
        if isinstance(typ, mi.StrType):
            return CALM_STRINGS if calm else strings
        if isinstance(typ, mi.BoolType):
            return st.booleans()
        if isinstance(typ, mi.NoneType):
            return st.none()
        if isinstance(typ, (mi.BytesType, mi.ByteArrayType, mi.MemoryViewType)):
            return st.binary(max_size=64)
        if isinstance(typ, mi.LiteralType):
            values = st.sampled_from(list(typ.values))
            return values if calm else st.one_of(values, strings)
        if isinstance(typ, mi.UnionType):
            return st.one_of([self.typed(t, calm) for t in typ.types])
        if isinstance(typ, (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)):
            item = self.typed(typ.item_type, calm)
            if calm:
                return st.lists(item, min_size=1, max_size=3)
            # Over-limit batches repeat one drawn item: drawing 50 distinct ones costs far more.
            return weighted((10, st.lists(item, max_size=3)),
                            (1, st.builds(lambda x, n: [x] * n, item, st.sampled_from([49, 50, 51, 80]))))
        if isinstance(typ, mi.DictType):
            if calm:
                return st.dictionaries(CALM_STRINGS, CALM_STRINGS, max_size=3)
            return weighted((5, st.dictionaries(small_strings, anything, max_size=4)),
                            (1, deep.map(lambda d: {"k": d})))
        if isinstance(typ, mi.StructType):
            return self.struct(typ)
        return anything

    def struct(self, typ: mi.StructType) -> st.SearchStrategy:
        """A dict shaped like the struct. Mostly it is calm (plausible values, few nasty
        ones); otherwise optional fields are often left out, values are nasty, sometimes of a
        wrong type, and rarely a required field is missing or an unknown field added."""
        fields = [(f.encode_name, self.field(f.encode_name, f.type), self.field(f.encode_name, f.type, calm=True),
                   f.required) for f in typ.fields]

        @st.composite
        def draw_struct(draw):
            r = draw(_rng)
            calm = r.random() < 0.6
            out = {}
            for name, nasty, plausible, required in fields:
                if r.random() < (1 / 25 if required else 1 / 2):
                    continue
                if calm and r.random() < 0.95:
                    out[name] = draw(plausible)
                else:
                    out[name] = draw(anything) if r.random() < 1 / 12 else draw(nasty)
            if r.random() < 1 / 30:
                out["unexpected"] = draw(anything)
            return out

        return draw_struct()

    # ------------------------------------------------------------------ whole requests

    def envelope(self, op: str) -> st.SearchStrategy:
        """An envelope dict for ``op``: right version, id and op mostly, nasty args."""
        args = rarely(self.struct(mi.type_info(OPERATIONS[op].args)), anything, 20)
        version = rarely(st.just(PROTOCOL_VERSION), st.one_of(ints, anything), 25)
        request_id = rarely(st.integers(0, 2**64 - 1), st.one_of(ints, anything), 25)
        ns = rarely(namespaces, anything, 25)
        drop = rarely(st.just(()), st.lists(st.sampled_from(["v", "id", "op", "ns", "args"]), max_size=2), 15)

        def assemble(v, rid, name, a, dropped):
            env = {"v": v, "id": rid, "op": op, "ns": name, "args": a}
            for key in dropped:
                env.pop(key, None)
            return env

        return st.builds(assemble, version, request_id, ns, args, drop)

    def structured(self, op: str) -> st.SearchStrategy:
        admin = OPERATIONS[op].admin
        where = weighted((4, st.just(admin)), (1, st.just(False)))  # admin operations mostly to the admin socket
        return st.builds(lambda env, adm: _encoded(env, adm, "structured", op), self.envelope(op), where)

    def garbage(self) -> st.SearchStrategy:
        """Frames that are not requests at all: random bytes, other msgpack values, several frames."""
        single = st.builds(lambda raw, adm: Case((raw,), adm, "garbage"),
                           st.one_of(st.binary(max_size=256), anything.map(_encode_or_empty)), st.booleans())
        multi = st.builds(lambda frames, adm: Case(tuple(frames), adm, "multiframe"),
                          st.lists(st.binary(max_size=32), min_size=2, max_size=4), st.booleans())
        return st.one_of(single, multi)


def _encode_or_empty(value: object) -> bytes:
    try:
        return msgspec.msgpack.encode(value)
    except (TypeError, ValueError, OverflowError, RecursionError):
        return b""


def _encoded(env: dict, admin: bool, kind: str, op: str) -> Case:
    return Case((_encode_or_empty(env),), admin, kind, op)


EDITS = ("flip", "set", "insert", "delete", "truncate", "dup")


def mutate(source: Case, rng: random.Random) -> Case:
    """``source``'s frame with one to four random byte edits (bit flips, overwrites, insertions,
    deletions, truncation, duplicated runs): what a broken or hostile peer would send."""
    frame = bytearray(source.frames[0])
    for _ in range(rng.randint(1, 4)):
        action = rng.choice(EDITS)
        at = rng.randint(0, len(frame))
        if action == "flip" and frame:
            frame[at % len(frame)] ^= 1 << rng.randrange(8)
        elif action == "set" and frame:
            frame[at % len(frame)] = rng.choice((0x00, 0xc0, 0xc1, 0xd9, 0xdc, 0xde, 0xff, rng.randrange(256)))
        elif action == "insert":
            frame[at:at] = rng.randbytes(rng.randint(1, 8))
        elif action == "delete":
            del frame[at:at + rng.randint(1, 16)]
        elif action == "truncate":
            del frame[at:]
        elif action == "dup":
            frame[at:at] = frame[at:at + rng.randint(1, 32)]
    return Case((bytes(frame),), source.admin, "mutated", source.op)
