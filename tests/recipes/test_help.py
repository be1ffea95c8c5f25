"""Each recipe's ``--help``: its description first, plain text, own options before the Trainer's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recipes import correlate, linearize, search, train, tune
from recipes._help import plain, short

ROOT = Path(__file__).resolve().parents[2]
RECIPES = {
    "lga-search": (search, ["--help"]),
    "lga-tune": (tune, ["--help"]),
    "lga-train": (train, ["--help"]),
    "lga-train fit": (train, ["fit", "--help"]),
    "lga-correlate": (correlate, ["--help"]),
    "lga-linearize": (linearize, ["--help"]),
}
MARKUP = re.compile(r":(class|func|meth|mod|attr):`|``")


def _help(module, args, capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        module.run(args)
    assert stop.value.code in (0, None)
    return capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_help_starts_with_description_and_is_plain(name, capsys):
    module, args = RECIPES[name]
    text = _help(module, args, capsys)
    first = " ".join(text.split("\n\n")[0].split())
    assert first == " ".join(module.DESCRIPTION.split())
    assert not MARKUP.search(text), MARKUP.search(text)
    # The command to try first names a config that exists.
    tried = re.search(r"Try first: (lga-\w+)( fit)? --config (\S+)", first)
    assert tried and tried.group(1) == name.split()[0]
    assert (ROOT / tried.group(3)).is_file()
    assert "Outputs land in" in first
    assert text.split("\n\n")[1].startswith(f"usage: {name}")


@pytest.mark.parametrize("name", ["lga-search", "lga-tune", "lga-train fit"])
def test_own_options_come_before_the_trainers(name, capsys):
    module, args = RECIPES[name]
    text = _help(module, args, capsys)
    options = text[text.index("\noptions:") :]
    first = {
        key: re.search(rf"^  --{key}\.", options, flags=re.M).start()
        for key in ("model", "trainer", *(["tune"] if name == "lga-tune" else []))
    }
    assert first["model"] < first["trainer"]
    assert first.get("tune", 0) < first["trainer"]
    first_trainer = first["trainer"]
    # Every option after the first Trainer option is the Trainer's.
    after = re.findall(r"^  (--[\w.]+)", options[first_trainer:], flags=re.M)
    assert after and all(option.startswith("--trainer.") for option in after)


def test_markup_becomes_plain_text():
    assert plain(":class:`~lga_lightning.search.LGASearch`") == "LGASearch"
    assert plain(":func:`lga_lightning.core.linearization.linearize`") == (
        "lga_lightning.core.linearization.linearize"
    )
    assert plain("the ``rank_by`` option; :meth:`~a.B.fit`") == "the rank_by option; fit"
    assert plain("`PyTorch <https://pytorch.org>`_") == "PyTorch"


def test_option_help_keeps_two_sentences():
    text = "Epochs to measure (0 = init). Each one costs a kernel, e.g. 2 s. Set it in YAML."
    assert short(text) == "Epochs to measure (0 = init). Each one costs a kernel, e.g. 2 s."
    assert short("One sentence without a full stop") == "One sentence without a full stop"
