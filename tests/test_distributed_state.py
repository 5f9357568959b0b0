"""What each process of a distributed run keeps of its own: its random states across a resume,
and its copy of the pretrained weights (rank 0 downloads, the others wait and read its copy).

Each test starts two processes (gloo on the loopback interface) with
:func:`conftest.run_in_processes`.
"""
import functools
import http.server
import random
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.distributed as torch_dist
from conftest import run_in_processes

from emo_mm.engine.rng_state_hook import RNGStateHook

pytestmark = pytest.mark.slow  # each test starts processes


class _Logger:
    def __init__(self):
        self.lines = []

    def info(self, line: str) -> None:
        self.lines.append(line)


def _runner(checkpoint_interval: int = 1) -> SimpleNamespace:
    """What the hook uses of mmengine's Runner: a loop with no batches to skip (as an
    epoch-based one), at iteration 0, with an iteration-based CheckpointHook."""
    from mmengine.hooks import CheckpointHook
    return SimpleNamespace(train_loop=SimpleNamespace(), max_iters=10, logger=_Logger(), iter=0,
                           epoch=0, hooks=[CheckpointHook(interval=checkpoint_interval,
                                                          by_epoch=False)])


def _draws() -> list:
    return [random.random(), float(np.random.rand()), float(torch.rand(()))]


def _save_states(rank: int, world_size: int, folder: str) -> None:
    """Each rank seeds by its rank and draws; at the end of an iteration whose checkpoint is
    due every rank hands its states over, and rank 0 alone saves the checkpoint (mmengine's
    Runner.save_checkpoint is master_only); every rank writes the draws that follow."""
    random.seed(rank)
    np.random.seed(rank)
    torch.manual_seed(rank)
    _draws()
    hook, runner = RNGStateHook(), _runner()
    hook.after_train_iter(runner, 0)
    if rank == 0:
        checkpoint = {}
        hook.before_save_checkpoint(runner, checkpoint)
        torch.save(checkpoint, Path(folder) / 'checkpoint.pth')
    torch.save(_draws(), Path(folder) / f'next_draws_rank{rank}.pth')


def _resume(rank: int, world_size: int, folder: str) -> None:
    """Each rank seeds alike (as mmengine re-seeds a resumed run), loads the checkpoint, lets
    the hook restore, and writes its next draws and the hook's log."""
    from emo_mm.checkpoint_io import load_weights_only
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    checkpoint = load_weights_only(str(Path(folder) / 'checkpoint.pth'))
    hook, runner = RNGStateHook(), _runner()
    hook.after_load_checkpoint(runner, checkpoint)
    hook.before_train(runner)
    torch.save(dict(draws=_draws(), log=runner.logger.lines),
               Path(folder) / f'resumed_{world_size}_rank{rank}.pth')


@pytest.fixture(scope='module')
def saved_states(tmp_path_factory) -> Path:
    """A 2-process checkpoint of the random states, and each rank's draws after it."""
    folder = tmp_path_factory.mktemp('rng')
    run_in_processes(_save_states, 2, str(folder))
    return folder


def _expected_draws(folder: Path) -> list:
    return [torch.load(folder / f'next_draws_rank{r}.pth') for r in (0, 1)]


def test_each_rank_resumes_its_own_random_states(saved_states):
    expected = _expected_draws(saved_states)
    assert expected[0] != expected[1]  # the ranks' streams differ, so the test can tell
    checkpoint = torch.load(saved_states / 'checkpoint.pth', weights_only=True)
    assert len(checkpoint['meta']['rng_state']['ranks']) == 2

    run_in_processes(_resume, 2, str(saved_states))
    resumed = [torch.load(saved_states / f'resumed_2_rank{r}.pth') for r in (0, 1)]
    assert [r['draws'] for r in resumed] == expected
    assert resumed[0]['log'] == [
        'RNGStateHook: restored the random states saved with the checkpoint']


@pytest.mark.parametrize('world_size', [1, 3])
def test_a_resume_with_another_number_of_processes_runs_and_says_so(saved_states, world_size):
    expected = _expected_draws(saved_states)
    if world_size == 1:
        _resume(0, 1, str(saved_states))  # no process group: as a single-process resume
    else:
        run_in_processes(_resume, world_size, str(saved_states))
    resumed = [torch.load(saved_states / f'resumed_{world_size}_rank{r}.pth')
               for r in range(world_size)]
    for rank in range(min(world_size, 2)):  # the ranks that were saved get their own back
        assert resumed[rank]['draws'] == expected[rank]
    assert f'the checkpoint holds the states of 2 processes, this run has {world_size}' in \
        resumed[0]['log'][0]


def test_states_are_gathered_only_when_a_checkpoint_is_due():
    """Between checkpoints nothing is exchanged; a checkpoint saved when none was due (e.g.
    the best one, after validation) holds the saving process's own state."""
    from emo_mm.engine.rng_state_hook import checkpoint_due
    runner = _runner(checkpoint_interval=4)
    assert [checkpoint_due(runner, by_epoch=False) for runner.iter in range(10)] == \
        [False, False, False, True, False, False, False, True, False, True]  # 4, 8, last
    assert not checkpoint_due(runner, by_epoch=True)
    hook, runner.iter = RNGStateHook(), 0
    hook.after_train_iter(runner, 0)
    assert hook._gathered is None
    checkpoint = {}
    torch.manual_seed(3)
    hook.before_save_checkpoint(runner, checkpoint)
    assert torch.equal(checkpoint['meta']['rng_state']['ranks'][0]['torch'],
                       torch.get_rng_state())


def test_a_single_process_checkpoint_of_the_older_layout_still_restores(tmp_path):
    """Checkpoints written before the per-rank layout hold rank 0's state at the top level."""
    torch.manual_seed(7)
    checkpoint = {}
    RNGStateHook().before_save_checkpoint(_runner(), checkpoint)
    expected = float(torch.rand(()))
    old_layout = dict(meta=dict(rng_state=checkpoint['meta']['rng_state']['ranks'][0]))
    torch.manual_seed(0)
    hook, runner = RNGStateHook(), _runner()
    hook.after_load_checkpoint(runner, old_layout)
    hook.before_train(runner)
    assert float(torch.rand(())) == expected


# --------------------------------------------------------------- rank 0 downloads first
def _download_twice(rank: int, world_size: int, url: str, bad_url: str, hub: str,
                    out: str) -> None:
    """Each rank builds EMO-1M from ``url`` (rank 0 downloads, the other waits and reads its
    copy), then downloads ``bad_url``, where nothing listens."""
    from emo_mm.checkpoint_io import CheckpointError, download
    from emo_mm.models import EMO
    torch.hub.set_dir(hub)
    model = EMO('1m', init_cfg=dict(type='Pretrained', checkpoint=url))
    model.init_weights()
    torch.save(model.state_dict(), Path(out) / f'weights_rank{rank}.pth')
    try:
        download(bad_url)
    except CheckpointError as error:
        (Path(out) / f'error_rank{rank}.txt').write_text(str(error))
    torch_dist.barrier()  # both got here: nobody was left waiting


def test_rank_zero_downloads_first_and_a_failure_reaches_every_rank(tmp_path):
    from conftest import free_port

    from emo_mm.models import EMO
    served = tmp_path / 'served' / 'EMO_1M'
    served.mkdir(parents=True)
    expected = EMO('1m').state_dict()
    torch.save(dict(expected), served / 'net.pth')

    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(Handler, directory=str(tmp_path / 'served')))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    bad_url = f'http://127.0.0.1:{free_port()}/EMO_1M/net.pth'
    try:
        url = f'http://127.0.0.1:{server.server_address[1]}/EMO_1M/net.pth'
        run_in_processes(_download_twice, 2, url, bad_url, str(tmp_path / 'hub'), str(tmp_path))
    finally:
        server.shutdown()
        server.server_close()
    assert requests == ['/EMO_1M/net.pth']  # one download, by rank 0
    for rank in (0, 1):
        weights = torch.load(tmp_path / f'weights_rank{rank}.pth')
        assert all(torch.equal(weights[k], expected[k]) for k in expected)
        assert (tmp_path / f'error_rank{rank}.txt').read_text().startswith(
            f'could not download the checkpoint {bad_url}')
