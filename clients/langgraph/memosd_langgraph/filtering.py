"""LangGraph's search filters on item values, evaluated in the store (memosd filters by tags, not values).

The semantics are those of LangGraph's own stores: a plain value must be equal,
a nested mapping matches field by field, a list must match element by element,
and ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte`` compare (the ordering
ones numerically; a value that is not a number does not match).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from .errors import InvalidFilterError

_ORDERING: dict[str, Callable[[float, float], bool]] = {
    "$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le,
}
OPERATORS = frozenset({"$eq", "$ne", *_ORDERING})


def check_filter(flt: Any) -> None:
    """Raise :class:`InvalidFilterError` for a filter that is not a mapping or names unknown operators."""
    if flt is None:
        return
    if not isinstance(flt, Mapping):
        raise InvalidFilterError(f"a search filter must be a mapping of field to condition, not {type(flt).__name__}")
    for field, cond in flt.items():
        if not isinstance(field, str):
            raise InvalidFilterError(f"filter fields must be strings, not {field!r}")
        _check_condition(cond, field)


def _check_condition(cond: Any, where: str) -> None:
    if isinstance(cond, Mapping):
        ops = [k for k in cond if isinstance(k, str) and k.startswith("$")]
        if ops:
            for op_name, operand in cond.items():
                if op_name not in OPERATORS:
                    raise InvalidFilterError(f"filter on {where!r}: unsupported operator {op_name!r} "
                                             f"(supported: {', '.join(sorted(OPERATORS))})")
                if op_name in _ORDERING and _number(operand) is None:
                    raise InvalidFilterError(f"filter on {where!r}: {op_name} needs a number, not {operand!r}")
        else:
            for sub, sub_cond in cond.items():
                _check_condition(sub_cond, f"{where}.{sub}")
    elif isinstance(cond, (list, tuple)):
        for i, sub_cond in enumerate(cond):
            _check_condition(sub_cond, f"{where}[{i}]")


def matches(value: Mapping[str, Any], flt: Mapping[str, Any] | None) -> bool:
    """Whether an item's value satisfies a (checked) filter."""
    return not flt or all(_compare(value.get(field), cond) for field, cond in flt.items())


def _compare(item_value: Any, cond: Any) -> bool:
    if isinstance(cond, Mapping):
        if any(isinstance(k, str) and k.startswith("$") for k in cond):
            return all(_apply(item_value, op_name, operand) for op_name, operand in cond.items())
        if not isinstance(item_value, Mapping):
            return False
        return all(_compare(item_value.get(k), v) for k, v in cond.items())
    if isinstance(cond, (list, tuple)):
        return (isinstance(item_value, (list, tuple)) and len(item_value) == len(cond)
                and all(_compare(iv, fv) for iv, fv in zip(item_value, cond)))
    return item_value == cond


def _apply(item_value: Any, op_name: str, operand: Any) -> bool:
    if op_name == "$eq":
        return item_value == operand
    if op_name == "$ne":
        return item_value != operand
    left, right = _number(item_value), _number(operand)
    return left is not None and right is not None and _ORDERING[op_name](left, right)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, str):  # LangGraph's stores compare numeric strings as numbers
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None
