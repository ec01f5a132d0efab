"""The built documentation as a reader sees it, in a real headless chromium.

The pages are opened in Debian's chromium, driven through the DevTools
protocol; the checks read what the browser rendered (the text, the lists,
the page's width) and a screenshot of each checked part is left in the
test's tmp dir.
"""

import base64
import itertools
import json
import re
import shutil
import subprocess
import time

import pytest

from imagepipe.conf import options
from tests.functional import test_docs

pytestmark = pytest.mark.slow

FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
         '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync',
         '--remote-debugging-port=0', '--remote-allow-origins=*']
WIDTH, HEIGHT = 1280, 900
RELEASES = ('essex', 'folsom', 'grizzly', 'havana', 'icehouse', 'juno',
            'gazpacho')
#: what Python prints and a reader should never see
REPR = re.compile(r"\('|\[\'|\bTrue\b|\bFalse\b|\bNone\b")
#: an option whose '--' was typeset as a dash
DASHED = re.compile(r'–\w')


class Chromium:
    """One headless chromium with one page, over the DevTools protocol."""

    def __init__(self, tmp_path):
        import websocket  # test-requirements.txt: websocket-client
        binary = shutil.which('chromium')
        if binary is None:
            pytest.fail('chromium is not installed: run tools/bootstrap.sh '
                        '--tests')
        profile = tmp_path / 'profile'
        profile.mkdir()
        self.log = tmp_path / 'chromium.log'
        with open(self.log, 'w') as log:
            self.proc = subprocess.Popen(
                [binary, *FLAGS, f'--user-data-dir={profile}', 'about:blank'],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.ids = itertools.count(1)
        self.ws = websocket.create_connection(self._endpoint(), timeout=30)
        target = self.call('Target.createTarget', url='about:blank',
                           session=None)['targetId']
        self.session = self.call('Target.attachToTarget', targetId=target,
                                 flatten=True, session=None)['sessionId']
        self.call('Page.enable')
        self.call('Emulation.setDeviceMetricsOverride', width=WIDTH,
                  height=HEIGHT, deviceScaleFactor=1, mobile=False)

    def _endpoint(self):
        for _ in range(300):
            found = re.search(r'DevTools listening on (ws://\S+)',
                              self.log.read_text())
            if found:
                return found.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f'chromium did not start: {self.log.read_text()[-500:]}')

    def call(self, method, session='page', **params):
        """Send one command; return its result (events are dropped but a
        page load, which :meth:`open` waits for)."""
        message = {'id': next(self.ids), 'method': method, 'params': params}
        if session:
            message['sessionId'] = self.session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get('method') == 'Page.loadEventFired':
                self.loaded = True
            if reply.get('id') == message['id']:
                assert 'error' not in reply, (method, reply['error'])
                return reply['result']

    def open(self, path):
        self.loaded = False
        self.call('Page.navigate', url=path.as_uri())
        deadline = time.monotonic() + 30
        while not self.loaded:
            assert time.monotonic() < deadline, f'{path} did not load'
            self.call('Runtime.evaluate', expression='1')

    def js(self, expression):
        result = self.call('Runtime.evaluate', expression=expression,
                           returnByValue=True)
        assert 'exceptionDetails' not in result, result['exceptionDetails']
        return result['result'].get('value')

    def screenshot(self, path, selector):
        """A PNG of the element ``selector`` names, whole."""
        box = self.js(f'(() => {{ const r = document.querySelector('
                      f'{json.dumps(selector)}).getBoundingClientRect();'
                      'return {x: r.x + scrollX, y: r.y + scrollY, '
                      'width: r.width, height: r.height, scale: 1}; })()')
        shot = self.call('Page.captureScreenshot', format='png',
                         captureBeyondViewport=True, clip=box)
        path.write_bytes(base64.b64decode(shot['data']))
        return path

    def close(self):
        try:
            self.call('Browser.close', session=None)
        except Exception:  # closing: the socket may go first
            pass
        self.ws.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope='module')
def browser(tmp_path_factory):
    b = Chromium(tmp_path_factory.mktemp('chromium'))
    yield b
    b.close()


@pytest.fixture(scope='module')
def html(browser, tmp_path_factory):
    """The built pages (after the browser: no build without chromium)."""
    return test_docs.build_html(tmp_path_factory.mktemp('docs') / 'html')


#: what the checks read from a rendered page
PAGE = '''(() => {
  const root = document.documentElement;
  const tables = [...document.querySelectorAll(%s)];
  return {
    overflow: [root.scrollWidth, root.clientWidth],
    tables: tables.map(t => ({
      rows: t.querySelectorAll('tbody tr').length,
      items: [...t.querySelectorAll('li')].map(li => li.innerText.trim()),
      text: t.innerText})),
    text: document.querySelector('div.body').innerText,
    pre: document.querySelectorAll('div.body pre').length,
  };
})()'''


def read(browser, page, tables='table.docutils'):
    browser.open(page)
    return browser.js(PAGE % json.dumps(tables))


def assert_fits(found, page):
    """Nothing wider than the window: no horizontal scrolling."""
    width, visible = found['overflow']
    assert width <= visible, f'{page}: {width}px wide in {visible}px'


def test_option_table_reads_well(browser, html, tmp_path):
    found = read(browser, html / 'configuration.html',
                 '#options-across-releases table')
    table = found['tables'][0]
    assert table['rows'] == len(options.OPTIONS)
    assert table['items'] == []  # no '-' cell read as a list
    assert not REPR.search(table['text']), REPR.search(table['text'])
    # every option says which releases read it, none is left empty
    assert 'essex – juno' in table['text']
    assert 'folsom – gazpacho' in table['text']
    assert_fits(found, 'configuration.html')
    shot = browser.screenshot(tmp_path / 'options.png',
                              '#options-across-releases table')
    assert shot.stat().st_size > 10000


def test_release_pages_read_well(browser, html, tmp_path):
    for release in RELEASES:
        found = read(browser, html / 'releases' / f'{release}.html')
        assert found['tables'], release
        for table in found['tables']:
            assert table['items'] == [], release
        shown = REPR.search(found['text'])
        assert not shown, (release, found['text'][
            max(0, shown.start() - 80):shown.end() + 80])
        assert not DASHED.search(found['text']), release
        assert_fits(found, f'{release}.html')
    # the command trait is a command line, the booleans yes/no
    changes = browser.js("document.querySelector('#changes-since-juno')"
                         ".innerText")
    assert 'ephemeral_mkfs: mkfs -t ext3 → -' in changes
    assert 'nova_inspects: no → yes' in changes
    browser.screenshot(tmp_path / 'gazpacho.png', 'div.body')


def test_cli_page_is_text_not_clipped_help(browser, html, tmp_path):
    found = read(browser, html / 'cli.html')
    assert found['pre'] == 0
    assert 'imagepipe plan --image REF --instance NAME' in found['text']
    assert '--root-gb N\n' in found['text']
    assert 'not with --domain' in found['text']
    assert not DASHED.search(found['text'])
    assert_fits(found, 'cli.html')
    browser.screenshot(tmp_path / 'cli.png', 'div.body')
