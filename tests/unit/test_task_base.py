"""What every step shares: how its progress reaches the run database."""

from taskflow import task as tf_task

from imagepipe.tasks import base


class Step(base.ImageTask):
    def execute(self):
        pass


def _reports(task):
    seen = []
    task.notifier.register(tf_task.EVENT_UPDATE_PROGRESS,
                           lambda event, details: seen.append(details))
    return seen


def test_progress_is_throttled_first_and_last_kept(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(base.time, 'monotonic', lambda: clock[0])
    step = Step('step')
    seen = _reports(step)
    for i in range(1, 101):          # 100 reports, 1/64 s apart
        step.report(i / 100, done=i)
        clock[0] += 1 / 64
    assert [d['done'] for d in seen] == [1, 33, 65, 97, 100]
    assert seen[-1]['progress'] == 1.0


def test_engine_progress_calls_are_not_stored_twice():
    step = Step('step')
    seen = _reports(step)
    step.update_progress(0.0)
    step.update_progress(1.0)
    assert seen == []
