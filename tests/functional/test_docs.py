"""The documentation builds without a warning, pictures included."""

import glob
import os
import subprocess
import sys

import pytest

from imagepipe import opts

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def build_html(out):
    """Build the HTML documentation into ``out`` with warnings as errors."""
    p = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '-q', '-b', 'html',
         os.path.join(ROOT, 'doc', 'source'), str(out)],
        capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    return out


def test_docs_build_with_warnings_as_errors(tmp_path):
    out = build_html(tmp_path / 'html')
    for release in ('essex', 'folsom', 'grizzly', 'havana', 'icehouse',
                    'juno', 'gazpacho'):
        page = (out / 'releases' / f'{release}.html').read_text()
        assert '.svg' in page, release
    svgs = glob.glob(str(out / '_images' / '*.svg'))
    # graphviz writes '-' as &#45;: look for the Nova function instead
    assert any('libvirt.utils.copy_image' in open(f).read() for f in svgs)
    # locks are named by what they guard, with the shortened names
    assert any('copy lock:' in open(f).read() and '$B/$hex' in
               open(f).read() for f in svgs)
    options = (out / 'configuration.html').read_text()
    assert 'libvirt_images_type' in options and 'image_cache_subdirectory' \
        in options
    # the reference: every option oslo-config-generator lists, by sphinxext
    listed = sum(len(group) for _, group in opts.list_opts())
    assert options.count('class="oslo.config option"') == listed
