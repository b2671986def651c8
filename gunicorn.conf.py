"""gunicorn settings for `gunicorn -c gunicorn.conf.py wsgi:app`.

The settings live in the package (app/gunicorn.conf.py) so the installed
`gateway` command finds them too; this file loads them by path. `find_spec`
locates the package without importing it: nothing may be imported here
before gevent patches the standard library in the workers.
"""

import importlib.util
import os
import runpy

_package_dir = importlib.util.find_spec("app").submodule_search_locations[0]
globals().update(
    {
        name: value
        for name, value in runpy.run_path(os.path.join(_package_dir, "gunicorn.conf.py")).items()
        if not name.startswith("__")
    }
)
