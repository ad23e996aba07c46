"""The base of every config section: unknown keys are errors, and a bool is not a number."""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError


def _accepts_bool(annotation: Any) -> bool:
    if annotation is bool or annotation is Any:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_accepts_bool(a) for a in get_args(annotation))
    return False


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """`samples_per_label = true` is a mistake, not 1 (pydantic would accept it)."""
        if isinstance(value, bool) and info.field_name:
            field = cls.model_fields[info.field_name]
            if not _accepts_bool(field.annotation):
                raise PydanticCustomError(
                    "bool_not_number", "Input should be a number, not true or false"
                )
        return value
