"""The conformance helpers themselves: the compile counter behind "compiles once" can fail."""
import jax
import jax.numpy as jnp
import pytest

from metajax.testing import _assert_compiled_once, _jit_once


def test_compile_counter_sees_a_second_compilation_and_ignores_cache_hits():
    double = _jit_once(lambda x: 2.0 * x)
    eager = jnp.arange(3.0)
    jitted = double(eager)
    double(jitted)  # a jitted output and an eager value: one program
    _assert_compiled_once(double, "double", 2)

    double(jnp.arange(4.0))  # a new shape compiles again
    assert double.compiles == 2
    with pytest.raises(AssertionError, match="double compiled 2 times in 3 calls"):
        _assert_compiled_once(double, "double", 3)


def test_compile_counter_counts_only_its_own_program():
    square = _jit_once(lambda x: x * x)
    square(jnp.ones(2))
    jax.jit(lambda x: x + 1.0)(jnp.ones(5))  # another program, outside the wrapper
    jnp.sin(jnp.ones(7))  # an eager op compiles too
    assert square.compiles == 1


def test_compile_counter_counts_an_executable_read_from_the_persistent_cache():
    """The test session shares a persistent compilation cache (conftest), so a program compiled by
    an earlier test arrives as a cache read, which must count like a compilation."""
    hits = []
    listener = lambda event, **kwargs: hits.append(event) if event == "/jax/compilation_cache/cache_hits" else None
    jax.monitoring.register_event_listener(listener)
    saved = jax.config.jax_persistent_cache_min_compile_time_secs
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # cache even this tiny program
    try:
        def program(x):
            return jnp.cos(x) * 3.0 + 0.25

        first = _jit_once(program)
        first(jnp.ones(11))
        jax.clear_caches()  # in-memory caches only: the next call reads the persistent cache
        second = _jit_once(program)
        second(jnp.ones(11))
    finally:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", saved)
        jax.monitoring.unregister_event_listener(listener)
    assert hits, "the second call should have read the persistent compilation cache"
    assert first.compiles == 1 and second.compiles == 1
