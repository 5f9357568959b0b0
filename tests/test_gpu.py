"""The GPU check (``bash tools/gpu_check.sh``, or ``pytest -m gpu tests/test_gpu.py -s``).

On a machine with a CUDA GPU, in a few minutes: float32 parity (TF32 off) of both backbones
with the float64 CPU references; AMP (float16, bfloat16) forward and backward; channels-last
against contiguous speed (printed, never asserted); a 2-process NCCL ``tools/dist_train.sh``
training with SyncBN (2+ GPUs); one ``tools/train.py --amp`` training; onnxruntime's CUDA
provider (where onnxruntime-gpu is installed). Without a GPU every test skips with the reason.
"""
import inspect
import json
import sys
from functools import partial
from pathlib import Path
from typing import Callable, List, Tuple

import pytest
import torch
from conftest import (FP32_RTOL, REPO, TOOLS, assert_close, free_port, helpers_on_pythonpath,
                      matmul_depths, relative_error, run_tool, with_rank_weights)
from torch import nn

from emo_mm import EMO
from emo_mm.models.backbones.efficientmod import EfficientMod
from emo_mm.testing import efficientmod_reference, emo_reference
from emo_mm.testing.tf32 import tf32_disabled, tf32_state

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason='no CUDA GPU visible (torch.cuda.is_available() is False): the GPU '
                              'check runs only on a machine with one'),
]

BACKBONES = ('EMO', 'EfficientMod')
FORMATS = ('channels_last', 'contiguous')
HALF_EPS = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}
TINY_SSDLITE = REPO / 'configs' / 'ssdlite' / 'emo_1m_tiny.py'


def pair(name: str, memory_format: str = None) -> Tuple[nn.Module, nn.Module]:
    """The literal reference (float64, CPU) and the backbone with the same random weights
    (float32, CUDA), both in eval mode; no stochastic depth."""
    if name == 'EMO':
        reference = emo_reference.ReferenceEMO('1m')
        emo_reference.randomize(reference, 0)
        model = EMO('1m', out_indices=range(5), drop_path_rate=0., memory_format=memory_format)
    else:
        reference = efficientmod_reference.ReferenceEfficientMod('xxs')
        efficientmod_reference.randomize(reference, 0)
        model = EfficientMod('xxs', memory_format=memory_format)
    model.load_state_dict(reference.state_dict())
    return reference.double().eval(), model.cuda().eval()


def image(size: Tuple[int, int] = (70, 90), batch: int = 2) -> torch.Tensor:
    """A seeded CPU image; 70x90 is no multiple of EMO's 7-pixel windows (padding runs)."""
    return torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(0))


# --------------------------------------------------------------------------- parity
@pytest.mark.parametrize('memory_format', FORMATS)
@pytest.mark.parametrize('name', BACKBONES)
def test_fp32_parity_with_the_float64_cpu_reference(name, memory_format):
    """TF32 off (the session fixture, and here again): float32 on the GPU within the suite's
    float32 tolerance of the float64 reference."""
    reference, model = pair(name, memory_format)
    x = image()
    with torch.no_grad(), tf32_disabled():
        expected = reference(x.double())
        actual = [out.cpu().double() for out in model(x.cuda())]
        print(tf32_state())
    assert_close(actual, expected, f'{name} {memory_format} fp32 cuda vs float64 cpu',
                 rtol=FP32_RTOL)


# ----------------------------------------------------------------------------- AMP
@pytest.mark.parametrize('dtype', (torch.float16, torch.bfloat16), ids=('fp16', 'bf16'))
@pytest.mark.parametrize('name', BACKBONES)
def test_amp_forward_backward(name, dtype):
    """Training mode under ``torch.autocast('cuda', dtype)``: the stream dtype is the same with
    and without gradients, outputs within ``depth * eps`` of float32 (the derivation in
    tests/test_mixed_precision.py; eps 2**-11 for float16, 2**-8 for bfloat16), gradients
    finite and not all zero."""
    if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        pytest.skip(f'{torch.cuda.get_device_name()} has no bfloat16 support')
    _, model = pair(name)
    model.train()
    x = image().cuda()
    with torch.no_grad(), tf32_disabled():
        expected = model(x)
    with torch.no_grad(), torch.autocast('cuda', dtype=dtype):
        without_grad = [out.dtype for out in model(x)]
    with torch.autocast('cuda', dtype=dtype):
        outs = model(x)
    assert [out.dtype for out in outs] == without_grad
    # float16: scaled as GradScaler would, so that small gradients do not flush to zero.
    scale = 2.0**12 if dtype == torch.float16 else 1.
    (scale * sum(out.float().mean() for out in outs)).backward()
    build = partial(EMO, '1m') if name == 'EMO' else partial(EfficientMod, 'xxs')
    depths = matmul_depths(build, len(outs))
    for k, (out, ref, depth) in enumerate(zip(outs, expected, depths)):
        error = relative_error(out.float(), ref)
        print(f'{name} {dtype} stage {k}: relative error {error:.4f} '
              f'(tolerance {depth * HALF_EPS[dtype]:.3f})')
        assert error <= depth * HALF_EPS[dtype]
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


# ------------------------------------------------------------------- memory format
def cuda_ms(step: Callable[[], object], reps: int = 10, warmup: int = 3) -> float:
    """Median milliseconds of ``step`` by CUDA events."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


@pytest.mark.parametrize('name', BACKBONES)
def test_channels_last_against_contiguous_speed(name):
    """Printed (``-s``), never asserted: the numbers that would decide the CUDA default of
    ``memory_format`` (docs/gpu.md). Batch 16 at 224x224, inference and a training step."""
    x = image((224, 224), batch=16).cuda()
    for mode in ('infer', 'train'):
        row = []
        for memory_format in FORMATS:
            _, model = pair(name, memory_format)
            model.train(mode == 'train')

            def step(model=model):
                if mode == 'infer':
                    with torch.no_grad():
                        return model(x)
                model.zero_grad(set_to_none=True)
                sum(out.mean() for out in model(x)).backward()

            row.append(f'{memory_format} {cuda_ms(step):.2f} ms')
        print(f'{torch.cuda.get_device_name()} {name} {mode} batch 16 224x224: '
              + ', '.join(row) + f' ({tf32_state()})')


# ------------------------------------------------------------------------ trainings
def ssdlite_options(work_dir: Path) -> List[str]:
    return ['--work-dir', str(work_dir), '--cfg-options', 'train_cfg.max_epochs=1',
            'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1',
            'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
            'test_dataloader.num_workers=0']


def run_log(work_dir: Path) -> str:
    logs = [p for p in work_dir.glob('*/*.log') if p.stem == p.parent.name]
    assert len(logs) == 1, logs
    return logs[0].read_text()


def test_two_process_nccl_training_with_syncbn_keeps_replicas_identical(demo_data, tmp_path):
    """``tools/dist_train.sh`` of the tiny SSDLite config on 2 GPUs: NCCL, SyncBN kept (not
    replaced as on CPU), the parameters and the BatchNorm statistics of both ranks identical
    after training, and changed by it (each rank saves its own: tests/rank_weights_hook.py)."""
    if torch.cuda.device_count() < 2:
        pytest.skip(f'needs 2 GPUs for 2 NCCL processes; {torch.cuda.device_count()} visible')
    config = with_rank_weights(TINY_SSDLITE, tmp_path / 'config.py')
    work = tmp_path / 'work'
    output = run_tool(['bash', TOOLS / 'dist_train.sh', config, '2', *ssdlite_options(work)],
                      cwd=demo_data,
                      env={**helpers_on_pythonpath(), 'PORT': str(free_port()),
                           'PYTHON': sys.executable}, timeout=540)
    log = run_log(work)
    assert 'nccl' in log and 'SyncBN needs GPUs' not in output
    assert 'Epoch(train) [1][' in output
    rank0, rank1 = (torch.load(work / f'state_rank{r}.pth', map_location='cpu')
                    for r in (0, 1))
    start = torch.load(work / 'start_rank0.pth', map_location='cpu')
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0), \
        [k for k in rank0 if not torch.equal(rank0[k], rank1[k])][:5]
    assert any(not torch.equal(rank0[k], v) for k, v in start.items())  # it trained
    stats = [k for k in rank0 if k.endswith('running_mean')]
    assert len(stats) > 50


def test_amp_training_on_one_gpu(demo_data, tmp_path):
    """``tools/train.py --amp`` (mmengine's AmpOptimWrapper, float16 with a dynamic loss
    scale) of the tiny SSDLite config for one epoch on one GPU: finite losses."""
    work = tmp_path / 'work'
    output = run_tool([sys.executable, TOOLS / 'train.py', TINY_SSDLITE, '--amp',
                       *ssdlite_options(work)], cwd=demo_data,
                      timeout=540)
    assert 'AmpOptimWrapper' in run_log(work)
    losses = [line for line in output.splitlines() if 'Epoch(train) [1][' in line]
    assert losses and not any('nan' in line or 'inf' in line for line in losses)


# ------------------------------------------------------------------------ onnxruntime
def test_onnxruntime_cuda_provider_matches_the_float64_reference(tmp_path):
    """The exported EMO-1M backbone graph (deploy form) in onnxruntime's CUDA provider, within
    the float32 tolerance of the float64 reference (TF32 off where the provider offers it)."""
    ort = pytest.importorskip('onnxruntime')
    if 'CUDAExecutionProvider' not in ort.get_available_providers():
        pytest.skip('onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu): '
                    f'{ort.get_available_providers()}')
    from emo_mm.deploy.backbone_graph import export_form
    reference, model = pair('EMO')
    holder = nn.Module()
    holder.backbone = model.cpu().switch_to_deploy()
    graph = export_form(holder).backbone
    x = image()
    onnx_file = tmp_path / 'emo_1m.onnx'
    extra = {'dynamo': False} if 'dynamo' in inspect.signature(torch.onnx.export).parameters \
        else {}
    torch.onnx.export(graph, (x, ), str(onnx_file), input_names=['input'], opset_version=17,
                      **extra)
    provider = ('CUDAExecutionProvider', {'use_tf32': '0'})
    try:
        session = ort.InferenceSession(str(onnx_file), providers=[provider])
    except Exception:  # older onnxruntime-gpu: no use_tf32 option (and no TF32 by default)
        session = ort.InferenceSession(str(onnx_file), providers=['CUDAExecutionProvider'])
    assert session.get_providers()[0] == 'CUDAExecutionProvider'
    actual = [torch.from_numpy(out).double() for out in session.run(None, {'input': x.numpy()})]
    with torch.no_grad():
        expected = reference(x.double())
    print(json.dumps(dict(onnxruntime=ort.__version__, providers=session.get_providers())))
    assert_close(actual, expected, 'EMO-1M onnxruntime CUDA vs float64 cpu', rtol=FP32_RTOL)
