"""The engine a run is driven by, on a real SQLite run database: what a
step's progress writes to its row while the step runs, and after; each
step's duration stored with the state that ends it; what driving a run
writes of its outcome."""

import contextlib

import pytest
from taskflow import task
from taskflow.patterns import linear_flow
from taskflow.persistence import models

from imagepipe.runner import driver
from imagepipe.runner import engine as run_engine
from imagepipe.runner import persistence
from imagepipe.runner import store as run_store


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


class Fine(task.Task):
    def execute(self):
        return 'made'

    def revert(self, **_):
        pass


class Fails(task.Task):
    def execute(self):
        raise RuntimeError('boom')


def _stored_run(tmp_path):
    """A SQLite run database holding one empty run: (backend, its run)."""
    backend = persistence.open_backend(f'sqlite:///{tmp_path}/runs.sqlite')
    book = models.LogBook('imagepipe-test')
    fd = models.FlowDetail('flow', 'run-1')
    book.add(fd)
    with contextlib.closing(backend.get_connection()) as conn:
        conn.save_logbook(book)
    return backend, fd


def test_each_steps_duration_is_stored_with_its_end(tmp_path):
    backend, fd = _stored_run(tmp_path)
    flow = linear_flow.Flow('flow').add(Fine('fine'), Fails('fails'))
    engine = run_engine.load(flow, fd, backend)  # no listener at all
    with pytest.raises(RuntimeError):
        engine.run()
    with contextlib.closing(backend.get_connection()) as conn:
        stored = {ad.name: ad for ad in conn.get_flow_details('run-1')}
    assert {n: ad.state for n, ad in stored.items()} == {
        'fine': 'REVERTED', 'fails': 'REVERTED'}
    for ad in stored.values():
        assert ad.meta['duration'] >= 0.0


class Outcomes(run_store.RunStore):
    """The run store, telling what each update of a run's meta wrote."""

    def __init__(self, backend):
        super().__init__(backend)
        self.written = []

    def update(self, fd, **values):
        self.written.append(values)
        super().update(fd, **values)


def _drive(runs, flow, fd):
    return driver.execute(runs, fd, run_engine.load(flow, fd, runs.backend),
                          ())


def test_a_drive_writes_its_outcome_once_and_clears_an_earlier_one(
        tmp_path):
    runs = Outcomes(persistence.open_backend(
        f'sqlite:///{tmp_path}/runs.sqlite'))
    kwargs = {'release': 'grizzly', 'settings': {'instances_path': '/x'},
              'request': {'image': 'http://x/img', 'instance': 'i1'}}
    fails = linear_flow.Flow('flow').add(Fails('fails'))
    fd = runs.create(kwargs, fails)
    assert _drive(runs, fails, fd) == ('REVERTED', 'fails',
                                      'RuntimeError: boom')
    assert [sorted(w) for w in runs.written] == [[
        'error', 'failed_step', 'finished', 'revert_error', 'revert_step']]

    runs.written.clear()  # again, now that it succeeds
    fine = linear_flow.Flow('flow').add(Fine('fails'))
    assert _drive(runs, fine, runs.reload(fd)) == ('SUCCESS', None, None)
    assert [w['error'] for w in runs.written] == [None, None]
    meta = runs.get(fd.uuid).meta['imagepipe']
    assert (meta['error'], meta['failed_step']) == (None, None)


def _step_rows(backend):
    with backend.transaction() as db:
        return db.execute('SELECT name, updated_at FROM atomdetails '
                          'ORDER BY name').fetchall()


def test_a_save_of_the_runs_state_leaves_its_steps_rows(tmp_path):
    backend, fd = _stored_run(tmp_path)
    flow = linear_flow.Flow('flow').add(Fine('a'), Fine('b'))
    engine = run_engine.load(flow, fd, backend)
    engine.run()
    before = _step_rows(backend)
    engine.storage.set_flow_state('SUSPENDED')
    assert _step_rows(backend) == before  # not rewritten
    runs = run_store.RunStore(backend)
    stored = runs.get('run-1')
    assert stored.state == 'SUSPENDED'
    assert [ad.state for ad in stored] == ['SUCCESS', 'SUCCESS']
    runs.update(stored, error='x')
    assert _step_rows(backend) == before
    assert runs.get('run-1').meta['imagepipe']['error'] == 'x'
