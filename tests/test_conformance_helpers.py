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
