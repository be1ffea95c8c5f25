"""The recipes' ``--help``: what the command does first, its own options next, the Trainer's last.

The options' help comes from the docstrings (jsonargparse reads their ``Args:`` sections), which
also feed the API reference and are written in its markup. The help formatter here turns that
markup into plain text (``:class:`~a.B``` and ````x```` become ``B`` and ``x``) and keeps the
first two sentences of each option's help, so the docstrings stay as the documentation needs them.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

from jsonargparse import ArgumentParser, DefaultHelpFormatter

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|obj|exc|ref|doc|term):`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]*)``")
_LINK = re.compile(r"`([^`<]+?)\s*<[^>]+>`_")
_CLASS_TITLE = re.compile(r"^<class '(?:[\w.]+\.)?(\w+)'>$")
_SENTENCE_END = re.compile(r"(?<![.]\w)(?<!e\.g)(?<!i\.e)(?<!etc)(?<!vs)\.\s+(?=[A-Z(`])")

GROUP_ORDER = ("model", "tune", "data")
"""Option groups shown first (in this order); the Trainer's (``trainer``) come last."""


def plain(text: str) -> str:
    r"""Text without reStructuredText or Markdown markup: roles, double backticks, link targets.

    Args:
        text: docstring text.

    Returns:
        The same text, markup removed (a role's target keeps its last dotted part after ``~``).

    Example:
        >>> plain("an :class:`~lga_lightning.search.LGASearch` (``rank_by``; :func:`f`)")
        'an LGASearch (rank_by; f)'
    """

    def role(match: re.Match[str]) -> str:
        target = match.group(1)
        return target.rsplit(".", 1)[-1] if match.group(0).count("~") else target

    text = _ROLE.sub(role, text)
    text = _LINK.sub(r"\1", text)
    return _LITERAL.sub(r"\1", text).replace("::\n", ":\n")


def short(text: str, sentences: int = 2) -> str:
    """The first ``sentences`` sentences of ``text``, on one line.

    Example:
        >>> short("Train it. Then measure it, e.g. twice. Then plot it.")
        'Train it. Then measure it, e.g. twice.'
    """
    flat = " ".join(text.split())
    parts = _SENTENCE_END.split(flat, maxsplit=sentences)
    if len(parts) <= sentences:
        return flat
    return ". ".join(parts[:sentences]) + "."


class HelpFormatter(DefaultHelpFormatter):
    """jsonargparse's formatter with plain, short option help and plain group descriptions.

    Example:
        >>> parser = ArgumentParser(prog="demo", formatter_class=HelpFormatter)
        >>> _ = parser.add_argument("--n", type=int, default=1,
        ...                         help="How many (``n``). More text. Even more.")
        >>> "How many (n). More text. (type: int, default: 1)" in " ".join(
        ...     parser.format_help().split())
        True
    """

    def _get_help_string(self, action: Any) -> str:
        full = super()._get_help_string(action)
        own = action.help or ""
        if own and full.startswith(own):
            return short(plain(own)) + full[len(own) :]
        return plain(full)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return super()._fill_text(plain(text), width, indent)

    def start_section(self, heading: str | None) -> None:
        """Start a group, its heading: the first sentence of its title, without markup."""
        if heading:
            cls = _CLASS_TITLE.match(heading)
            heading = f"{cls.group(1)}: any subclass, by class_path" if cls else heading
            heading = short(plain(heading), 1).rstrip(".:")
        super().start_section(heading)


class HelpMixin:
    """A parser whose help starts with its description, then its own groups, the Trainer's last.

    The description (``description``) is printed before the usage line, paragraph by paragraph;
    groups named in :data:`GROUP_ORDER` follow the general options, the ``trainer`` group ends.
    """

    def format_help(self, *args: Any, **kwargs: Any) -> str:
        """The help text: description, usage, options."""
        parser: Any = self
        description, groups = parser.description, parser._action_groups
        parser.description = None
        parser._action_groups = sorted(groups, key=lambda group: _group_rank(parser, group))
        try:
            body = super().format_help(*args, **kwargs)  # type: ignore[misc]
        finally:
            parser.description, parser._action_groups = description, groups
        if not description:
            return body
        width = 79
        paragraphs = [p for p in plain(description).split("\n\n") if p.strip()]
        head = "\n\n".join(
            textwrap.fill(
                " ".join(p.split()), width, break_on_hyphens=False, break_long_words=False
            )
            for p in paragraphs
        )
        return f"{head}\n\n{body}"


def _group_rank(parser: Any, group: Any) -> int:
    names = {id(g): name for name, g in (getattr(parser, "groups", None) or {}).items()}
    name = names.get(id(group), "")
    top = name.split(".", 1)[0]
    if top == "trainer":
        return len(GROUP_ORDER) + 2
    if top in GROUP_ORDER:
        return 1 + GROUP_ORDER.index(top)
    return 0 if not name else len(GROUP_ORDER) + 1


class HelpParser(HelpMixin, ArgumentParser):
    """jsonargparse's parser with the recipes' help (:class:`HelpMixin`, :class:`HelpFormatter`).

    Example:
        >>> parser = HelpParser(prog="demo", description="Does X. Try: demo --n 2.")
        >>> parser.format_help().startswith("Does X. Try: demo --n 2.")
        True
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def lightning_parser_class() -> type:
    """Lightning's CLI parser with the recipes' help (``LightningCLI(parser_class=...)``).

    Example:
        >>> from lightning.pytorch.cli import LightningArgumentParser
        >>> issubclass(lightning_parser_class(), LightningArgumentParser)
        True
    """
    global _LIGHTNING_PARSER
    if _LIGHTNING_PARSER is None:
        from lightning.pytorch.cli import LightningArgumentParser

        class RecipeArgumentParser(HelpMixin, LightningArgumentParser):
            """Lightning's CLI parser with the recipes' help."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs.setdefault("formatter_class", HelpFormatter)
                super().__init__(*args, **kwargs)

        _LIGHTNING_PARSER = RecipeArgumentParser
    return _LIGHTNING_PARSER


_LIGHTNING_PARSER: type | None = None
