"""The engine a run is driven by, on a real SQLite run database: what a
step's progress writes to its row while the step runs, and after."""

import contextlib

from taskflow import task
from taskflow.patterns import linear_flow
from taskflow.persistence import models

from imagepipe.runner import engine as run_engine
from imagepipe.runner import persistence


def _stored(backend, run_id):
    """(state, progress) of the step's row, read by a reader of its own."""
    with contextlib.closing(backend.get_connection()) as conn:
        ad, = conn.get_flow_details(run_id)
    return ad.state, ad.meta.get('progress')


class Reports(task.Task):
    """Reports half done, then returns its row as another process reads
    it at that moment."""

    def execute(self, url, run_id):
        self.update_progress(0.5)
        return _stored(persistence.open_backend(url), run_id)


def _run(tmp_path):
    url = f'sqlite:///{tmp_path}/runs.sqlite'
    backend = persistence.open_backend(url)
    book = models.LogBook('imagepipe-test')
    fd = models.FlowDetail('flow', 'run-1')
    book.add(fd)
    with contextlib.closing(backend.get_connection()) as conn:
        conn.save_logbook(book)
    flow = linear_flow.Flow('flow').add(
        Reports('step', inject={'url': url, 'run_id': 'run-1'}))
    engine = run_engine.load(flow, fd, backend)
    engine.run()
    return tuple(engine.storage.get('step')), _stored(backend, 'run-1')


def test_a_quick_steps_progress_rides_with_its_state_saves(tmp_path):
    while_running, after = _run(tmp_path)
    assert while_running == ('RUNNING', 0.0)  # the 0.5 was not written
    assert after == ('SUCCESS', 1.0)


def test_a_long_steps_progress_is_written_on_its_own(tmp_path, monkeypatch):
    monkeypatch.setattr(run_engine, 'SAVE_EVERY', 0.0)  # "long" at once
    while_running, after = _run(tmp_path)
    assert while_running == ('RUNNING', 0.5)
    assert after == ('SUCCESS', 1.0)
