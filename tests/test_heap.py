"""`heap.keep_freed_memory`: compiled calls stop faulting their buffers' pages in.

Each case runs in a fresh interpreter, since the setting is process-wide and cannot be undone.
"""

import platform
import subprocess
import sys

import pytest

from aerbm_jax import heap

# A compiled call with 36 MiB of temporaries (the 3072 x 3072 product): the median of its
# minor page faults over 20 calls. The median, because a call whose buffers come from a thread
# heap that has not yet held a block this size faults them in once (seen under load).
_FAULTS = """
import resource, statistics, sys
import jax, jax.numpy as jnp
from aerbm_jax import heap
if sys.argv[1] == "keep":
  assert heap.keep_freed_memory()
f = jax.jit(lambda x: jnp.tanh(x @ x.T) @ x)
x = jnp.ones((3072, 256), jnp.float32)
assert f.lower(x).compile().memory_analysis().temp_size_in_bytes == 36 << 20
faults = []
for _ in range(20):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  f(x).block_until_ready()
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(statistics.median(faults))
"""


def _faults_per_call(mode: str) -> float:
  out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True,
                       check=True, timeout=120)
  return float(out.stdout.split()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="the setting is glibc's")
def test_kept_memory_serves_the_next_call_without_page_faults():
  # By default each call maps its 36 MiB afresh: 9,216 pages of 4 KiB (measured 9,217-9,218).
  assert _faults_per_call("default") > 4000
  # Kept: the freed block is reused (measured 0-1 a call, under load too).
  assert _faults_per_call("keep") < 200


def test_bad_sizes_are_refused_by_name():
  with pytest.raises(ValueError, match="limit=-1"):
    heap.keep_freed_memory(limit=-1)
  with pytest.raises(ValueError, match="pad=4294967296"):
    heap.keep_freed_memory(pad=1 << 32)


def test_the_command_sets_it_unless_told_not_to(monkeypatch, tmp_path):
  from aerbm_jax import cli

  calls = []
  monkeypatch.setattr(heap, "keep_freed_memory", lambda: calls.append(1) or True)
  assert cli.main(["runs", str(tmp_path)]) == 0
  assert calls == [1]
  assert cli.main(["--freed-memory", "release", "runs", str(tmp_path)]) == 0
  assert calls == [1]
