"""Every pydantic model a config file can contain, for the tests that check a rule on each of them
(every field described, every file or variable field declared secret or public)."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel

from reachwatch.config.schema import Config
from reachwatch.config.targets import TARGET_MODELS
from reachwatch.config.webconfig import WebConfigFile


def config_models() -> list[type[BaseModel]]:
    """The main config, every target kind and the web config, and every model nested in them."""
    todo: list[type[BaseModel]] = [Config, *TARGET_MODELS.values(), WebConfigFile]
    seen: list[type[BaseModel]] = []
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.append(model)
        for info in model.model_fields.values():
            stack: list[Any] = [info.annotation]
            while stack:
                tp = stack.pop()
                if isinstance(tp, type) and issubclass(tp, BaseModel):
                    todo.append(tp)
                stack.extend(typing.get_args(tp))
    return seen
