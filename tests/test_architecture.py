"""The layer order of docs/architecture.md, checked on the source: no upward imports, no
reaching into another module's private names, a one-line docstring and `__all__` everywhere."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "aerbm_jax"
BENCHMARKS = Path(__file__).parent.parent / "benchmarks"

# Lowest first: a module may import only modules before it.
ORDER = ["heap", "rng", "parallel", "optim", "digits", "data", "rbm", "checkpoint", "loop",
         "halves", "row_blocks", "sampling",
         "tempering", "ais", "partition", "gradients", "epochs", "train", "baselines",
         "layers", "autoencoder", "ae_train", "metrics", "calibration", "plots", "estimators", "configs",
         "runs", "report", "html", "summary", "experiment", "ci_study", "likelihoods", "evaluate", "cli"]
MAX_LINES = 400


def _modules() -> list[Path]:
  return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")


def _name(path: Path) -> str:
  """The layer name of a package file: `data` for everything under data/."""
  rel = path.relative_to(PACKAGE)
  return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported(tree: ast.Module) -> dict[str, str]:
  """aerbm_jax modules a file imports: local alias -> layer name (imports inside functions too)."""
  names = {}
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aerbm_jax"):
      parts = node.module.split(".")
      if len(parts) == 1:  # from aerbm_jax import x [as y]
        for alias in node.names:
          names[alias.asname or alias.name] = alias.name
      else:  # from aerbm_jax.x import y: the module x
        names.setdefault(f"<from {node.module}>", parts[1])
    elif isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name.startswith("aerbm_jax."):
          names[alias.asname or alias.name] = alias.name.split(".")[1]
  return names


def test_every_module_has_a_layer():
  assert {_name(p) for p in _modules()} == set(ORDER)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_go_down_the_layers(path):
  me = _name(path)
  tree = ast.parse(path.read_text())
  for alias, module in _imported(tree).items():
    if module == me:
      continue
    assert ORDER.index(module) < ORDER.index(me), f"{me} imports {module} ({alias}), a layer up"


@pytest.mark.parametrize("path", _modules() + sorted(BENCHMARKS.glob("*.py")),
                         ids=lambda p: p.name)
def test_no_module_reads_another_modules_private_names(path):
  tree = ast.parse(path.read_text())
  modules = _imported(tree)
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aerbm_jax"):
      private = [a.name for a in node.names if a.name.startswith("_")]
      assert not private, f"{path.name} imports {private} from {node.module}"
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        and node.value.id in modules and node.attr.startswith("_")
        and not node.attr.startswith("__")):
      assert False, f"{path.name}:{node.lineno} reads {node.value.id}.{node.attr}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_module_is_small_and_says_its_job(path):
  text = path.read_text()
  tree = ast.parse(text)
  doc = ast.get_docstring(tree)
  assert doc and doc.splitlines()[0].endswith("."), f"{path.name}: no one-line docstring"
  assert len(text.splitlines()) <= MAX_LINES, f"{path.name}: {len(text.splitlines())} lines"
  exported = [n for n in tree.body if isinstance(n, ast.Assign)
              and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)]
  assert exported, f"{path.name} has no __all__"
