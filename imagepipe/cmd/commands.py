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
    parser.add_argument('--prune', action='store_true',
                        help='forget the finished runs instead of listing '
                             'runs (never an unfinished one)')
    parser.add_argument('--older-than', type=float, metavar='DAYS',
                        help='with --prune: only runs started DAYS ago or '
                             'earlier')
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


def _cache(parser):
    parser.add_argument('action', choices=('list', 'clean'),
                        help='list the cache, or make one pass of the '
                             "release's image cache manager")
    parser.add_argument('--dry-run', action='store_true',
                        help='clean: print what the pass would do and why, '
                             'change nothing')
    output.add_format(parser)


def _delete(parser):
    parser.add_argument('--instance', required=True, metavar='NAME',
                        help='instance name (its directory under '
                             'instances_path)')
    output.add_format(parser)


def _precache(parser):
    parser.add_argument('--image', required=True, metavar='REF',
                        help=request.IMAGE_HELP)
    parser.add_argument('--host', dest='target_hosts', action='append',
                        metavar='NAME',
                        help="pre-cache on this host, by its conductor; "
                             'repeat for more (default: here, in-process)')
    parser.add_argument('--timeout', type=float, metavar='S',
                        help='with --host: a host whose job no conductor '
                             'took for S seconds is an error, its job taken '
                             'off the board (default: 60)')
    output.add_listing(parser)


def _host(parser, required=False, help_text=None):
    # dest: a sub-command's argument may not share the name of an option
    # (here [DEFAULT] host)
    parser.add_argument('--host', dest='target_host', required=required,
                        metavar='NAME',
                        help=help_text or "serve this host's board "
                                          '(default: [DEFAULT] host)')


def _boot(parser):
    _host(parser, required=True,
          help_text='the host whose conductor is to run it')
    request.add_arguments(parser)
    parser.add_argument('--wait', action='store_true',
                        help="follow the run to its end and exit as 'run' "
                             'does')
    parser.add_argument('--timeout', type=float, metavar='S',
                        help='with --wait: give up waiting after S seconds '
                             '(exit 1, the job stays posted)')


def _jobs(parser):
    _host(parser, help_text="only this host's board (default: every "
                            "host's)")
    output.add_listing(parser)


def _one_run(parser):
    parser.add_argument('run', metavar='RUN', help='run id (or a prefix)')


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
    'runs': (_runs, 'imagepipe.cmd.listing.runs', 'list runs'),
    'show': (_show, 'imagepipe.cmd.runs.show', "show a run's steps"),
    'resume': (_resume, 'imagepipe.cmd.runs.resume',
               'continue a crashed or suspended run, or retry a reverted '
               'one'),
    'cache': (_cache, 'imagepipe.cmd.cache.run',
              "list the image cache, or make one pass of the release's "
              'image cache manager (clean)'),
    'delete': (_delete, 'imagepipe.cmd.delete.run',
               "remove an instance's disks and directory, as the release's "
               'destroy did'),
    'precache': (_precache, 'imagepipe.cmd.precache.run',
                 'fetch an image into the image cache, or refresh it there, '
                 "here or on hosts through their conductors (today's "
                 'pre-caching)'),
    'abandon': (_one_run, 'imagepipe.cmd.abandon.abandon',
                'revert what an unfinished run made (cached bases stay) and '
                'mark it finished, so its instance can be run again'),
    'forget': (_one_run, 'imagepipe.cmd.abandon.forget',
               "remove a finished run's record"),
    'boot': (_boot, 'imagepipe.cmd.boot.run',
             "post a run to a host's conductor (through the jobboard)"),
    'conductor': (_host, 'imagepipe.cmd.conductor.run',
                  "take this host's jobs from the jobboard and run them, "
                  'until SIGTERM'),
    'jobs': (_jobs, 'imagepipe.cmd.jobs.run',
             'list the jobs on the boards of the hosts'),
}
