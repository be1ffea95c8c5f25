"""The public names: classes and main functions at the top level, stable across imports."""

from __future__ import annotations

import subprocess
import sys

import lga_lightning


def test_linearize_is_the_function_whatever_was_imported_first():
    # A fresh interpreter: the first access must not see a submodule of the same name.
    code = (
        "import lga_lightning.core.linearization, lga_lightning.training.callback\n"
        "from lga_lightning import linearize\n"
        "import lga_lightning as package\n"
        "assert callable(linearize) and linearize.__name__ == 'linearize', linearize\n"
        "assert package.linearize is linearize\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_every_exported_name_resolves_to_the_documented_object():
    from lga_lightning.core.kernel import empirical_ntk
    from lga_lightning.core.meter import NTKMeter
    from lga_lightning.search import LGASearch
    from lga_lightning.training.callback import NTKMetrics

    assert lga_lightning.NTKMetrics is NTKMetrics
    assert lga_lightning.LGASearch is LGASearch
    assert lga_lightning.NTKMeter is NTKMeter
    assert lga_lightning.empirical_ntk is empirical_ntk
    for name in lga_lightning.__all__:
        assert getattr(lga_lightning, name).__name__ == name


def test_importing_the_package_does_not_import_lightning():
    code = "import sys, lga_lightning; print('lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
