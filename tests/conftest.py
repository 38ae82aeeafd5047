"""Test-session set-up: CPU only, and one persistent XLA compilation cache per test run.

Most of the suite's time is XLA compilation (84 % of the default selection's test time on the
2-core CI machine), and several tests compile the same programs again: an experiment resumed in
the same test, a locomotion env stepped by two tests. The cache is a fresh directory per run,
made by the controlling process, shared by the pytest-xdist workers (they inherit its
environment) and removed when the run ends. A ``JAX_COMPILATION_CACHE_DIR`` set by the user is
used as is and kept."""
import os
import shutil
import tempfile

import jax

jax.config.update("jax_platforms", "cpu")

_RUN_CACHE = "METAJAX_TEST_COMPILATION_CACHE"
_made_here = []


def pytest_configure(config):
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    if _RUN_CACHE not in os.environ:  # the controller, or a run without xdist
        os.environ[_RUN_CACHE] = tempfile.mkdtemp(prefix="metajax-test-jax-cache-")
        _made_here.append(os.environ[_RUN_CACHE])
    jax.config.update("jax_compilation_cache_dir", os.environ[_RUN_CACHE])


def pytest_unconfigure(config):
    for path in _made_here:
        shutil.rmtree(path, ignore_errors=True)
        os.environ.pop(_RUN_CACHE, None)
