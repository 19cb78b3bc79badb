"""YAML configs: documented defaults ← a YAML file ← command-line overrides (``--set KEY=VALUE``), checked
against the job's schema (pydantic: types, allowed values, ranges; units in the descriptions) before any
work, with errors that name the file, the key, the value and what is allowed."""
from __future__ import annotations

import copy
from pathlib import Path

import yaml


def parse_overrides(items) -> dict:
    """``["a.b=1", "c=[1,2]"]`` → ``{"a": {"b": 1}, "c": [1, 2]}`` (values parsed as YAML; a value that is not
    valid YAML stays the string it is)."""
    overrides: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override '{item}' is not KEY=VALUE")
        node = overrides
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        try:
            node[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError:  # e.g. a pair_coeff line "* * model.pt Si" ('*' starts a YAML alias)
            node[parts[-1]] = value
    return overrides


# ---- schemas: types, allowed values, ranges and units of a job's settings ---------------------------------------
def _pydantic():
    import pydantic

    return pydantic


def section_base():
    """The base class of every config section: unknown keys are errors, values are checked when loaded."""
    pd = _pydantic()

    class Section(pd.BaseModel):
        model_config = pd.ConfigDict(extra="forbid", validate_default=True)

    return Section


def schema_defaults(schema) -> dict:
    """The documented defaults of a schema, as the plain dict a config file would spell out."""
    return schema().model_dump()


def _format_error(err: dict, where: str, schema) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        for p in err["loc"][:-1]:  # the section the key was found in
            field = schema.model_fields.get(p) if hasattr(schema, "model_fields") else None
            schema = field.annotation if field is not None else None
        known = ", ".join(schema.model_fields) if hasattr(schema, "model_fields") else "?"
        return f"{where}: unknown setting '{loc}' (known: {known})"
    return f"{where}: {loc} = {value!r}: {err['msg']}"


def load_validated(schema, path=None, overrides: dict | None = None, relative_paths=()) -> dict:
    """Defaults ← YAML file ← overrides, checked against ``schema`` (a pydantic model) before any work: an
    error names the file (or the command line), the key, the value and what is allowed, for every wrong key
    at once. Returns the settings as a plain dict."""
    pd = _pydantic()
    raw: dict = {}
    where = "command line"
    if path is not None:
        with open(path) as fh:
            raw = yaml.safe_load(fh) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: a config file holds 'key: value' lines, not {type(raw).__name__}")
        where = str(path)
        for dotted in relative_paths:
            node, *keys = dotted.split(".")
            parent, key = (raw, node) if not keys else (raw.get(node) or {}, keys[-1])
            value = parent.get(key) if isinstance(parent, dict) else None
            beside = lambda v: v if not isinstance(v, str) or Path(v).is_absolute() else str(Path(path).parent / v)
            if isinstance(value, list):
                parent[key] = [beside(v) for v in value]
            elif value:
                parent[key] = beside(value)
    merged = copy.deepcopy(raw)
    deep_update(merged, overrides or {})
    try:
        return schema.model_validate(merged).model_dump()
    except pd.ValidationError as exc:
        grouped: dict = {}  # the alternatives of a union are one error of one key
        for e in exc.errors():
            e = {**e, "loc": _key_path(schema, e["loc"])}
            grouped.setdefault(e["loc"], []).append(e)
        lines = []
        for loc, errs in grouped.items():
            first = dict(errs[0], msg=" or ".join(dict.fromkeys(x["msg"] for x in errs)))
            lines.append(_format_error(first, where if _in(raw, loc) else "command line", schema))
        raise ValueError("; ".join(lines)) from None


def _key_path(schema, loc) -> tuple:
    """The part of a pydantic error location that names config keys (list indices included), without the
    union-member tags pydantic adds."""
    out, node = [], schema
    for p in loc:
        if isinstance(p, int) or (hasattr(node, "model_fields") and p in node.model_fields):
            out.append(p)
            if not isinstance(p, int):
                ann = node.model_fields[p].annotation
                node = ann if hasattr(ann, "model_fields") else None
        elif not hasattr(node, "model_fields") or node is None:
            if not isinstance(p, str) or "[" in p or p in ("int", "str", "float", "bool", "list", "dict") or \
                    p.startswith(("literal", "function", "constrained")):
                continue
            out.append(p)
        else:
            out.append(p)  # an unknown key inside a section
    return tuple(out)


def deep_update(base: dict, new: dict) -> None:
    """``base`` updated by ``new`` key by key, nested dicts merged (in place)."""
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_update(base[k], v)
        else:
            base[k] = v


def _in(raw: dict, loc) -> bool:
    node = raw
    for p in loc:
        if isinstance(node, dict) and p in node:
            node = node[p]
        elif isinstance(node, list) and isinstance(p, int) and p < len(node):
            node = node[p]
        else:
            return False
    return True


def schema_help(schema, prefix: str = "") -> str:
    """One line per key of ``schema`` (nested sections dotted): type, default and description (with units),
    for a command's --help."""
    lines = []
    for name, field in schema.model_fields.items():
        key = f"{prefix}{name}"
        ann = field.annotation
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            lines.append(schema_help(ann, key + "."))
            continue
        default = field.get_default(call_default_factory=True)
        kind = _type_name(ann, field.metadata)
        lines.append(f"  {key} ({kind}; default {'null' if default is None else repr(default)}): {field.description or ''}")
    return "\n".join(lines)


def _type_name(ann, metadata=()) -> str:
    """A reader's name for a type: 'int > 0', 'one of dish | fssh', 'list of int ≥ 0 | null'."""
    import typing

    origin, args = typing.get_origin(ann), typing.get_args(ann)
    bounds = "".join(f" > {m.gt}" if getattr(m, "gt", None) is not None else
                     f" ≥ {m.ge}" if getattr(m, "ge", None) is not None else "" for m in metadata)
    if origin is typing.Literal:
        return "one of " + " | ".join(str(a) for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0], ann.__metadata__)
    if origin in (typing.Union, __import__("types").UnionType):
        return " | ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"map {_type_name(args[0])} → {_type_name(args[1])}"
    return f"{getattr(ann, '__name__', str(ann))}{bounds}"
