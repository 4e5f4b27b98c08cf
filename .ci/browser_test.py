#!/usr/bin/env python
"""The reconstruction browser (`dfkd.browser.Browser`) where its users see it: JupyterLab on 127.0.0.1 runs a notebook
that shows the browser over two tiny transfer sets, and headless Chromium, driven by Playwright, changes the class, the
page and the sets through the widgets in the page, checking each time that the grid shows the images and titles of the
selection. The notebook's kernel records every figure it sends as PNG with the text drawn in it, keyed by the PNG's
hash, so the test reads the titles of the very image the page shows.

    python .ci/browser_test.py [--required] [--timeout SECONDS] [--chromium PATH]

Exit 0: passed, or skipped (Chromium or Playwright missing) outside CI; 1: failed; 124: timed out. With --required, or
with CI set in the environment, a missing Chromium or Playwright fails."""
import argparse, base64, hashlib, json, os, shutil, signal, socket, subprocess, sys, tempfile, threading, time
import urllib.request
from pathlib import Path

SETS = {'set a': (8, 0), 'set b': (6, 1)}  # name: (images per class, seed); 4 classes, 4 images a page
PER_PAGE, N_CLASSES = 4, 4

SETUP = '''import warnings; warnings.simplefilter('ignore')
import base64, hashlib, json, os
from pathlib import Path
import torch, matplotlib.pyplot as plt
from matplotlib.figure import Figure
from dfkd.lopes import noise_transfer_set
from dfkd.browser import Browser

plt.close(plt.figure())  # loads the inline backend, which registers the PNG formatter wrapped here
png = get_ipython().display_formatter.formatters['image/png']
to_png, drawn, record = png.lookup_by_type(Figure), {}, Path(RECORD)
def recorded(fig):
    "The inline backend's PNG, recorded with the figure's suptitle and captions under the PNG's hash."
    data = to_png(fig)
    raw = base64.b64decode(data) if isinstance(data, str) else data
    drawn[hashlib.sha256(raw).hexdigest()] = dict(suptitle=fig.get_suptitle(),
                                                  titles=[ax.get_title() for ax in fig.axes if ax.get_title()])
    record.with_suffix('.tmp').write_text(json.dumps(drawn)); os.replace(record.with_suffix('.tmp'), record)
    return data
png.for_type(Figure, recorded)

torch.manual_seed(0)
teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3*8*8, N_CLASSES)).eval()
sets = {name: noise_transfer_set(teacher, Path('sets')/name.replace(' ', '_'), (3, 8, 8), N_CLASSES, n_per_class=n,
                                 batch_size=n, seed=seed, progress=False) for name, (n, seed) in SETS.items()}'''

SHOW = 'b = Browser(sets, per_page=PER_PAGE, ncols=PER_PAGE)\nb'


def say(msg): print(f'[browser test {time.monotonic() - T0:5.1f}s] {msg}', flush=True)


T0 = time.monotonic()


def write_notebook(root:Path, record:Path) -> Path:
    "The notebook the test opens: the setup cell (tiny sets, figure recorder) and the cell that shows `Browser`."
    consts = f'RECORD, SETS, PER_PAGE, N_CLASSES = {str(record)!r}, {SETS!r}, {PER_PAGE}, {N_CLASSES}\n'
    cell = lambda src: dict(cell_type='code', execution_count=None, metadata={}, outputs=[], source=src)
    nb = dict(cells=[cell(consts + SETUP), cell(SHOW)], nbformat=4, nbformat_minor=5,
              metadata=dict(kernelspec=dict(name='python3', display_name='Python 3 (ipykernel)', language='python')))
    path = root/'browser.ipynb'
    path.write_text(json.dumps(nb, indent=1))
    return path


def lab_env(root:Path) -> dict:
    "Environment for a JupyterLab isolated in `root`: its own config, settings, data and runtime folders."
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'), PYTHONWARNINGS='ignore')
    for var, sub in [('JUPYTER_CONFIG_DIR', 'config'), ('JUPYTER_DATA_DIR', 'data'), ('JUPYTER_RUNTIME_DIR', 'runtime'),
                     ('JUPYTERLAB_SETTINGS_DIR', 'settings'), ('JUPYTERLAB_WORKSPACES_DIR', 'workspaces'),
                     ('IPYTHONDIR', 'ipython')]:
        env[var] = str(root/'.jupyter'/sub)
        (root/'.jupyter'/sub).mkdir(parents=True, exist_ok=True)
    labconfig = root/'.jupyter'/'config'/'labconfig'
    labconfig.mkdir(parents=True, exist_ok=True)  # no news or update toast over the page
    (labconfig/'page_config.json').write_text(json.dumps(
        {'disabledExtensions': {'@jupyterlab/apputils-extension:announcements': True}}))
    tracker = root/'.jupyter'/'settings'/'@jupyterlab'/'notebook-extension'
    tracker.mkdir(parents=True, exist_ok=True)  # every cell stays in the DOM
    (tracker/'tracker.jupyterlab-settings').write_text(json.dumps({'windowingMode': 'none'}))
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def start_lab(root:Path, log) -> tuple[subprocess.Popen, str]:
    "JupyterLab on a free port of 127.0.0.1, no token, serving `root`; returns the process and its URL when it answers."
    port = free_port()
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
           '--ServerApp.port_retries=0', '--allow-root', '--IdentityProvider.token=', '--ServerApp.password=',
           f'--ServerApp.root_dir={root}', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate']
    proc = subprocess.Popen(cmd, cwd=root, env=lab_env(root), stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    url = f'http://127.0.0.1:{port}'
    for _ in range(600):
        if proc.poll() is not None: raise RuntimeError(f'JupyterLab exited with {proc.returncode}: see its log below')
        try:
            with urllib.request.urlopen(f'{url}/api/status', timeout=2) as r:
                if r.status == 200: return proc, url
        except OSError: time.sleep(0.2)
    raise RuntimeError('JupyterLab did not answer on /api/status within two minutes')


def stop_lab(proc:subprocess.Popen):
    "Stop the server (it shuts its kernel down), then anything left in its process group."
    if proc.poll() is None:
        proc.terminate()
        try: proc.wait(timeout=15)
        except subprocess.TimeoutExpired: pass
    try: os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError: pass
    proc.wait()


def shown(page, record:Path) -> list[dict]:
    "The images the page shows (the browser's visible tab), in order, each with the text the kernel drew in it."
    srcs = page.locator('.jp-Notebook img:visible').evaluate_all('els => els.map(e => e.getAttribute("src"))')
    try: drawn = json.loads(record.read_text())
    except (OSError, ValueError): drawn = {}
    out = []
    for src in srcs:
        key = hashlib.sha256(base64.b64decode(src.split(',', 1)[1])).hexdigest() if src.startswith('data:') else src
        out.append(dict(drawn.get(key, dict(suptitle='(an image the kernel did not record)', titles=[])), key=key))
    return out


class Failure(Exception): pass


def page_errors(page) -> str:
    "What the page shows that a user would see as broken: a widget that failed to display, or a traceback."
    if page.get_by_text('Error displaying widget').count(): return 'the page shows "Error displaying widget"'
    if page.locator('.jupyter-widgets-error-widget').count():  # a child widget that failed: "Click to show ... error"
        return 'the page shows a widget that failed to display ("Click to show javascript error.")'
    texts = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts()
    bad = [t for t in texts if 'Traceback' in t or 'Error' in t]
    return f'a cell failed:\n{bad[0][-3000:]}' if bad else ''


def expect(page, record:Path, what:str, ok, timeout:float=45) -> list[dict]:
    "Wait until the grid the page shows satisfies `ok` and still does a moment later; fail with what it showed."
    end, last = time.monotonic() + timeout, []
    while time.monotonic() < end:
        if err := page_errors(page): raise Failure(f'{what}: {err}')
        last = shown(page, record)
        if last and ok(last):
            page.wait_for_timeout(700)
            if ok(again := shown(page, record)):
                say(f'ok: {what}: ' + '; '.join(f"{g['suptitle']!r} {g['titles']}" for g in again)); return again
        page.wait_for_timeout(250)
    seen = '\n'.join(f"  {g['suptitle']!r}: {g['titles']}" for g in last) or '  no image'
    raise Failure(f'{what}: not shown within {timeout:.0f}s; the page shows\n{seen}')


def grid_is(names:list[str], counts:list[int], cls:int|None, before:list[dict]|None=None):
    "Check: one image per set in `names`, titled with its name, `counts` captions each, all of class `cls`."
    def ok(g):
        return ([x['suptitle'] for x in g] == names and [len(x['titles']) for x in g] == counts
                and all(t.startswith(f'y={cls}:') for x in g for t in x['titles'] if cls is not None)
                and (before is None or {x['key'] for x in g}.isdisjoint(x['key'] for x in before)))
    return ok


def run_notebook(page, url:str):
    "Open the notebook in JupyterLab and run all its cells from the Run menu."
    page.goto(f'{url}/lab/tree/browser.ipynb')
    page.locator('.jp-Notebook .jp-Cell').first.wait_for(timeout=90_000)
    page.locator('.jp-StatusBar-Item', has_text='Idle').first.wait_for(timeout=90_000)  # the kernel is up
    say('notebook open, kernel idle')
    prompt = page.locator('.jp-Notebook .jp-InputPrompt').first
    for _ in range(5):  # a click that lands while the page still settles can be lost: retry until the cell runs
        page.locator('.jp-Notebook .jp-InputPrompt').last.click()
        page.locator('.lm-MenuBar-item', has_text='Run').first.click()
        page.locator('.lm-Menu-item:visible', has_text='Run All Cells').first.click()
        for _ in range(20):
            if prompt.inner_text().strip() not in ('[ ]:', ''): say('Run > Run All Cells'); return
            page.wait_for_timeout(250)
        page.keyboard.press('Escape')
    raise Failure('Run > Run All Cells did not start the notebook')


def drive(page, url:str, record:Path) -> int:
    "Run the notebook, then change class, page and sets as a user would, checking the grid each time; checks done."
    run_notebook(page, url)
    a, b = list(SETS)
    g0 = expect(page, record, 'the browser shows set a, all classes, page 0 (class 0 first)',
                grid_is([a], [PER_PAGE], 0), timeout=150)
    page.locator('.jp-Notebook .widget-dropdown select').select_option(label='3')
    g1 = expect(page, record, 'class 3 chosen: every caption is of class 3', grid_is([a], [PER_PAGE], 3, g0))
    page.locator('.jp-Notebook .noUi-handle').first.focus()
    page.keyboard.press('ArrowRight')
    g2 = expect(page, record, 'page moved right: new images, still class 3', grid_is([a], [PER_PAGE], 3, g1))
    readout = page.locator('.jp-Notebook .widget-readout').first.inner_text().strip()
    if readout != '1': raise Failure(f'the page slider reads {readout!r} after one step right, not 1')
    say('ok: the page slider reads 1')
    page.locator('.jp-Notebook .widget-select-multiple select').select_option([b])
    n_b = SETS[b][0] - PER_PAGE  # what is left of class 3 on set b's second page
    g3 = expect(page, record, 'set b chosen: its images (its page 1 of class 3)', grid_is([b], [n_b], 3, g2))
    page.locator('.jp-Notebook .widget-select-multiple select').select_option([a, b])
    expect(page, record, 'both sets chosen: a grid for each, class 3', grid_is([a, b], [PER_PAGE, n_b], 3))
    if err := page_errors(page): raise Failure(err)
    return 6


def chromium_path(arg:str|None) -> str|None:
    "The Chromium to drive: `arg` if given, else $CHROMIUM, else Debian's `chromium` on PATH; `None` if missing."
    for p in [arg] if arg else [os.environ.get('CHROMIUM'), shutil.which('chromium'), '/usr/bin/chromium']:
        if p and Path(p).is_file(): return p
    return None


def missing(required:bool, why:str) -> int:
    if required: print(f'browser test: FAILED: {why}', flush=True); return 1
    print(f'browser test: skipped: {why} (outside CI; CI fails here)', flush=True); return 0


def watchdog(timeout:float, cleanup):
    "After `timeout` seconds, stop everything this test started and exit 124: the test can never hang CI."
    def fire():
        print(f'browser test: FAILED: timed out after {timeout:.0f}s', flush=True)
        cleanup(); os._exit(124)
    t = threading.Timer(timeout, fire); t.daemon = True; t.start()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--required', action='store_true', help='a missing Chromium or Playwright fails (also when $CI)')
    ap.add_argument('--timeout', type=float, default=300, help='seconds before everything is stopped (exit 124)')
    ap.add_argument('--chromium', help='Chromium binary (default: $CHROMIUM, then chromium on PATH)')
    args = ap.parse_args()
    required = args.required or bool(os.environ.get('CI'))
    exe = chromium_path(args.chromium)
    if exe is None: return missing(required, 'no Chromium binary: apt-get install -y chromium, or pass --chromium')
    try: from playwright.sync_api import sync_playwright
    except ImportError: return missing(required, "Playwright is not installed: pip install -e '.[dev]'")
    root = Path(tempfile.mkdtemp(prefix='dfkd-browser-'))
    log, record = open(root/'jupyterlab.log', 'w+'), root/'drawn.json'
    procs = []
    def cleanup():
        for p in procs: stop_lab(p)
        shutil.rmtree(root, ignore_errors=True)
    watchdog(args.timeout, cleanup)
    try:
        write_notebook(root, record)
        proc, url = start_lab(root, log); procs.append(proc)
        say(f'JupyterLab at {url} serving {root}; Chromium {exe}')
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, headless=True,
                                         args=['--no-sandbox', '--disable-dev-shm-usage'])
            page = browser.new_page(viewport=dict(width=1400, height=1000))
            page.set_default_timeout(60_000)
            try: n = drive(page, url, record)
            except Exception:
                page.screenshot(path=str(root/'failure.png'), full_page=True); raise
            finally: browser.close()
        print(f'browser test: passed ({n} checks in {time.monotonic() - T0:.0f}s)', flush=True)
        return 0
    except Exception as e:
        log.flush(); log.seek(0); tail = log.read()[-3000:]
        shot = f'screenshot of the page: {root/"failure.png"}\n' if (root/'failure.png').exists() else ''
        print(f'browser test: FAILED: {type(e).__name__}: {e}\n{shot}JupyterLab log (end):\n{tail}', flush=True)
        return 1
    finally:
        for p in procs: stop_lab(p)
        if not (root/'failure.png').exists(): shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__': sys.exit(main())
