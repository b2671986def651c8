"""What the entry points import before gevent patches the workers.

The `gateway` command (and `python -m app`, and `./scripts/run`) checks the
configuration in gunicorn's master, which then forks the workers that
patch the standard library. Modules imported there are inherited
unpatched: urllib3's ssl classes among them made every https call fail.
Each check runs in a fresh interpreter, where nothing else was imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Top-level packages the master must not hold: each imports ssl's classes
# (requests, urllib3), or is the app itself (flask, werkzeug, peewee, psycopg).
WORKER_ONLY = ("requests", "urllib3", "flask", "werkzeug", "peewee", "psycopg", "certifi")

MASTER_THEN_WORKER = """
import json, runpy, sys, warnings
import gunicorn.app.wsgiapp, gunicorn.workers.ggevent
import app.cli, app.worker
from app.config import load_settings
load_settings(environ={})
runpy.run_path("gunicorn.conf.py")
held = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(sys.argv[1])))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from gevent import monkey
    monkey.patch_all()
print(json.dumps({"held": held, "warnings": [str(w.message) for w in caught]}))
"""


def run_python(code: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_the_gateway_command_leaves_ssl_for_gevent_to_patch():
    seen = run_python(MASTER_THEN_WORKER, json.dumps(WORKER_ONLY))
    assert seen["held"] == []
    assert seen["warnings"] == []


def test_importing_the_package_imports_nothing_else():
    code = "import json, sys, app; print(json.dumps([m for m in sys.modules if m[:3] == 'app']))"
    assert run_python(code) == ["app"]
