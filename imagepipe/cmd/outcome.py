"""What a run ended in, as ``run``, ``resume`` and ``show`` tell it: each
step's row, the files made, and the one error line with the exit status.

A run whose revert did not finish is never called reverted: its line names
the step the revert stopped at, what that step said, and the resume that
finishes the revert.
"""

import os
import sys

from taskflow import states

from imagepipe.cmd import output
from imagepipe.runner import reverts

#: exit status of a run suspended by SIGINT or SIGTERM
SUSPENDED_EXIT = 130


def report(store, run_id, flow, fmt, state, step, error):
    """Print what a drive ended in; return the exit status."""
    fd = store.get(run_id)
    steps = step_rows(fd, flow)
    meta = fd.meta.get('imagepipe', {})
    if fmt == 'json':
        output.as_json({'run': run_id, 'state': state, 'failed_step': step,
                        'error': error,
                        'revert_step': meta.get('revert_step'),
                        'revert_error': meta.get('revert_error'),
                        'steps': steps, 'files': files_made(steps)})
    elif state == states.SUCCESS:
        print_summary(steps)
    return exit_status(run_id, state, step, error, meta)


def interrupted(run_id):
    print(f'imagepipe: run {run_id} stopped in the middle of a step: '
          f'continue it with "imagepipe resume {run_id}"', file=sys.stderr)
    return SUSPENDED_EXIT


def revert_left(run_id, meta):
    """What a revert that did not finish left, and how to finish it."""
    return (f"its revert stopped at step {meta['revert_step']}: "
            f"{meta['revert_error']}; once that is cleared, "
            f'"imagepipe resume {run_id}" finishes the revert')


def exit_status(run_id, state, step, error, meta):
    if state == states.SUCCESS:
        return 0
    if state == states.SUSPENDED:
        print(f'imagepipe: run {run_id} suspended: continue it with '
              f'"imagepipe resume {run_id}"', file=sys.stderr)
        return SUSPENDED_EXIT
    where = f' at step {step}' if step else ''
    if meta.get('revert_error'):
        line = f'failed{where}: {error}; {revert_left(run_id, meta)}'
    elif state == states.REVERTED:
        line = f'failed and was reverted{where}: {error}'
    else:
        line = f'failed and stopped in state {state}{where}: {error}'
    print(f'imagepipe: error: run {run_id} {line}', file=sys.stderr)
    return 1


def step_rows(fd, flow=None):
    """Each step's state, duration, result and error, in flow order."""
    details = {ad.name: ad for ad in fd}
    names = [a.name for a in flow] if flow is not None else list(details)
    rows = []
    for name in names:
        ad = details.get(name)
        if ad is None:
            rows.append({'step': name, 'state': states.PENDING})
            continue
        rows.append({
            'step': name, 'state': ad.state,
            'duration': round(ad.meta.get('duration', 0.0), 3)
            if 'duration' in ad.meta else None,
            'result': ad.results if ad.state == states.SUCCESS else None,
            'error': _step_error(ad),
        })
    return rows


def _step_error(ad):
    errors = [reverts.error_line(ad.failure)] if ad.failure else []
    if ad.state == states.REVERT_FAILURE and ad.revert_failure:
        errors.append('revert failed: '
                      + reverts.error_line(ad.revert_failure))
    return '; '.join(errors) or None


def files_made(steps):
    """Files named in step results that exist: path, size, allocated."""
    seen, files = set(), []
    for row in steps:
        result = row.get('result')
        path = result.get('path') if isinstance(result, dict) else None
        if not path or path in seen or not os.path.exists(path):
            continue
        seen.add(path)
        st = os.stat(path)
        files.append({'path': path, 'size': st.st_size,
                      'allocated': st.st_blocks * 512})
    return files


def print_summary(steps):
    """The files a successful run made (its steps were shown as they ran)."""
    print()
    output.table(files_made(steps), [('path', 'FILE'),
                                     ('size', 'SIZE', 'size'),
                                     ('allocated', 'ALLOCATED', 'size')])


def stopped(run_id, error):
    """A run the database failed under: one line, exit status 1."""
    print(f'imagepipe: error: run {run_id} stopped: {error}; once it is '
          f'usable, continue it with "imagepipe resume {run_id}"',
          file=sys.stderr)
    return 1
