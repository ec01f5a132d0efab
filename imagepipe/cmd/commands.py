"""The command line as data: each command's arguments, help and handler.

Handlers are named, not imported: a command's module (and what it needs,
such as taskflow's engines or SQLAlchemy) is imported only when that command
runs, so ``--help`` or ``releases`` do not pay for ``run``.
"""

from imagepipe.cmd import output
from imagepipe.cmd import request


def _demo(parser):
    parser.add_argument('--keep', metavar='DIR',
                        help='work in DIR (new or empty) and keep the results '
                             'there')
    output.add_format(parser)


def _plan(parser):
    request.add_arguments(parser)
    output.add_format(parser, ('table', 'json', 'dot'))


def _run(parser):
    request.add_arguments(parser)
    output.add_format(parser)


def _runs(parser):
    parser.add_argument('--all', action='store_true',
                        help='every run kept (default: the last --limit '
                             'runs, and every unfinished one)')
    parser.add_argument('--limit', type=int, default=10, metavar='N',
                        help='runs shown without --all (default: '
                             '%(default)s)')
    output.add_listing(parser)


def _show(parser):
    parser.add_argument('run', metavar='RUN', help='run id (or a prefix)')
    what = parser.add_mutually_exclusive_group()
    what.add_argument('--libvirt-xml', action='store_true',
                      help="the root disk's <disk> element as the run's "
                           "release's Nova wrote it")
    what.add_argument('--domain', action='store_true',
                      help='a minimal domain around it (TCG, direct kernel '
                           'boot, serial console to a file)')
    parser.add_argument('--kernel', help='kernel for --domain')
    parser.add_argument('--initrd', help='initramfs for --domain')
    parser.add_argument('--console', help='serial console file for --domain '
                        '(default: console.log beside the disk)')
    output.add_format(parser)


def _resume(parser):
    parser.add_argument('run', metavar='RUN', nargs='?',
                        help='run id (or a prefix)')
    parser.add_argument('--all', action='store_true',
                        help='every unfinished run (crashed or suspended) '
                             'that no process is driving')


#: name -> (add_arguments(parser), handler(args, ctx) as a dotted name, help)
COMMANDS = {
    'demo': (_demo, 'imagepipe.cmd.demo.run',
             "run every release's default flow on a built-in image, "
             'offline, in a temporary directory'),
    'config': (output.add_listing, 'imagepipe.cmd.config.run',
               'show every option the release reads, its value and origin'),
    'releases': (output.add_listing, 'imagepipe.cmd.releases.run',
                 'list the release flows installed (entry points)'),
    'plan': (_plan, 'imagepipe.cmd.plan.plan',
             'show the steps a release and config would run, without '
             'running them'),
    'run': (_run, 'imagepipe.cmd.runs.run',
            "run the release's flow for an image and an instance"),
    'runs': (_runs, 'imagepipe.cmd.runs.runs_list', 'list runs'),
    'show': (_show, 'imagepipe.cmd.runs.show', "show a run's steps"),
    'resume': (_resume, 'imagepipe.cmd.runs.resume',
               'continue a crashed or suspended run, or retry a reverted '
               'one'),
}
