import subprocess
import sys

import mio_strategies


def test_public_names_resolve():
    for name in mio_strategies.__all__:
        assert getattr(mio_strategies, name) is not None, name


def test_import_is_light():
    code = (
        "import sys, mio_strategies; "
        "heavy = [m for m in ('sklearn', 'matplotlib', 'basicsr', 'umap') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_help_runs():
    out = subprocess.run([sys.executable, "-m", "mio_strategies", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "mio-strategies" in out.stdout
