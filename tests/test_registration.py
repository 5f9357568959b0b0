"""`type='EMO'` resolves in mmdet and mmseg, also from a config through custom_imports alone."""
import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

BACKBONE = "dict(type='EMO', arch='1m', out_indices=(1, 2, 3, 4), window_size=10)"


@pytest.mark.parametrize('scope', ('mmdet', 'mmseg'))
def test_registries_of_both_frameworks_build_emo(scope):
    import emo_mm
    registry = importlib.import_module(f'{scope}.registry').MODELS
    model = registry.build(eval(BACKBONE))
    assert isinstance(model, emo_mm.EMO)
    with torch.no_grad():
        outs = model.eval()(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 48, 80, 168]


@pytest.mark.slow
@pytest.mark.parametrize('scope', ('mmdet', 'mmseg'))
def test_config_needs_nothing_but_custom_imports(scope, tmp_path):
    """In a fresh interpreter that never imported emo_mm, a config finds EMO by itself."""
    config = tmp_path / 'emo_config.py'
    config.write_text(textwrap.dedent(f'''
        default_scope = {scope!r}
        custom_imports = dict(imports=['emo_mm'], allow_failed_imports=False)
        backbone = {BACKBONE}
    '''))
    code = textwrap.dedent(f'''
        import sys
        from mmengine.config import Config
        from {scope}.registry import MODELS
        assert 'emo_mm' not in sys.modules
        cfg = Config.fromfile({str(config)!r})
        print(type(MODELS.build(cfg.backbone)).__module__)
    ''')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == 'emo_mm.models.backbones.emo'


def test_our_tests_are_not_shadowed_by_mmseg_tests_package():
    """mmseg's wheel installs a top-level package `tests`; ours must never resolve to it.

    tests/ is no package and pytest imports it by path (--import-mode=importlib), so the module
    pytest runs is the file in this directory, and helpers come from here too. pytest names the
    modules `tests.<file>`: a file named like one of the installed package's modules could be
    confused with it, so no such name is allowed here.
    """
    import conftest
    here = Path(__file__).resolve().parent
    assert not (here / '__init__.py').exists()
    assert Path(sys.modules[__name__].__file__).resolve() == Path(__file__).resolve()
    assert Path(conftest.__file__).resolve().parent == here
    installed = {Path(f.parts[1]).stem for f in importlib.metadata.files('mmsegmentation') or ()
                 if f.parts[0] == 'tests' and len(f.parts) > 1}
    assert installed, 'mmsegmentation no longer installs `tests`: drop this guard'
    assert sys.modules['tests'].__spec__.origin in (None, 'namespace')  # pytest's, not mmseg's
    clashes = installed & {p.stem for p in here.glob('*.py')}
    assert not clashes, f'rename these test modules, mmseg installs tests.{clashes}'
