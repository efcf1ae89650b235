"""Without Ray, `import llamanative.ray` fails naming the command that installs the extra (a core test: no Ray)."""

from __future__ import annotations

import subprocess
import sys

# sys.modules["ray"] = None makes `import ray` raise ImportError, as where Ray is not installed.
PROGRAM = """
import sys
sys.modules["ray"] = None
try:
    import llamanative.ray
except ImportError as exc:
    print(exc)
else:
    raise SystemExit("llamanative.ray imported without Ray")
import llamanative
print(llamanative.Client.__name__)
"""


def test_importing_llamanative_ray_without_ray_names_the_extra(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    message, after = out.stdout.splitlines()
    assert 'pip install "llamanative[ray]"' in message
    assert after == "Client"  # the package itself still imports: it never imports Ray
