#!/usr/bin/env python
"""Re-execute notebooks in place so they are committed with their outputs.

    python .ci/execute.py                    # every notebook in nbs/
    python .ci/execute.py nbs/20_lopes.ipynb # some of them

Runs the cells `nbdev-test` runs (cells flagged `slow` or `notest` keep the outputs they have: regenerate them
with `--flags slow`), stops at the first error without writing, and scrubs what changes from run to run or
machine to machine: warnings on stderr, progress-bar residue and absolute paths. `--check` writes nothing and
fails if a notebook has code cells that print or draw yet no stored output at all (used by `.ci/run`)."""
import argparse, os, re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {'slow', 'notest'}
_flag = re.compile(r'^#\|\s*(\w+)', re.M)

_no_eval = re.compile(r'^#\|\s*eval:\s*false', re.M)
def cell_flags(src:str) -> set: return set(_flag.findall(src))

_noise = re.compile(r'(█|\|\s*\d+/\d+ \[|Warning:|warnings\.warn|^\s*$)')
def scrub_text(text:str) -> str:
    "Drop progress-bar and warning lines; absolute paths become relative to the repository (or `<tmp>`)."
    keep = [l for l in text.splitlines(keepends=True) if not _noise.search(l)]
    text = ''.join(keep)
    text = text.replace(str(ROOT / 'nbs') + '/', '').replace(str(ROOT) + '/', '').replace(str(ROOT), '.')
    text = re.sub(r'/tmp/[^\s\'",)]*', '<tmp>', text)
    return text.replace(str(Path.home()), '~')

def scrub(cell):
    outs = []
    for o in cell.get('outputs', []):
        if o.get('output_type') == 'stream':
            if o.get('name') == 'stderr': continue  # warnings and progress bars
            t = scrub_text(''.join(o['text']))
            if not t.strip(): continue
            o['text'] = t
        elif 'data' in o:
            d = o['data']
            if 'text/html' in d and ('progress' in ''.join(d['text/html'])): continue  # a fastprogress bar
            for k in ('text/plain', 'text/html', 'text/markdown'):
                if k in d: d[k] = scrub_text(''.join(d[k]))
        outs.append(o)
    cell['outputs'] = outs

def execute(path:Path, flags=()):
    from fastcore.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    nb = read_nb(path)
    run_flags = SKIP - set(flags)
    def skip(cell): return cell.cell_type != 'code' or bool(cell_flags(cell.source) & run_flags) or bool(_no_eval.search(cell.source))
    shell = CaptureShell(path)
    cwd = os.getcwd(); os.chdir(path.parent)
    try: shell.run_all(nb, exc_stop=True, preproc=skip)
    finally: os.chdir(cwd)
    for c in nb.cells:
        if c.cell_type == 'code' and not skip(c): scrub(c)
    tmp = path.with_suffix('.ipynb.tmp')
    write_nb(nb, tmp); os.replace(tmp, path)

_shows = re.compile(r'^(?!\s*#)(?!\s*(?:from|import)\s).*\b(print|display|show_|plot|imshow|\.show\(|plt\.|DataFrame|\.head\(|\.describe\()', re.M)
def lacks_outputs(path:Path) -> bool:
    "True when the notebook has default (non-slow) code cells that print or draw but not one stored output."
    import json
    cells = [c for c in json.loads(path.read_text())['cells'] if c['cell_type'] == 'code']
    default = [c for c in cells if not cell_flags(''.join(c['source'])) & SKIP]
    showing = [c for c in default if _shows.search(''.join(c['source']))]
    return bool(showing) and not any(c.get('outputs') for c in default)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('paths', nargs='*', help='notebooks (default: all of nbs/)')
    p.add_argument('--flags', action='append', default=[], help='also run cells with this flag, e.g. slow (repeat for several); a flag takes one value, so paths after it stay paths')
    p.add_argument('--check', action='store_true', help='write nothing; fail if a notebook lacks outputs')
    a = p.parse_args()
    paths = [Path(x).resolve() for x in a.paths] or sorted((ROOT / 'nbs').glob('*.ipynb'))
    if a.check:
        bad = [str(x.relative_to(ROOT)) for x in paths if lacks_outputs(x)]
        if bad: sys.exit('notebooks committed without outputs (run `python .ci/execute.py` on them): ' + ' '.join(bad))
        print(f'{len(paths)} notebooks carry their outputs'); return
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    import torch; torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))
    for x in paths:
        print(f'executing {x.relative_to(ROOT)}', flush=True)
        execute(x, a.flags)
    clean = Path(sys.executable).parent/'nbdev-clean'  # this Python's, so that a venv's interpreter works without the venv activated
    for x in paths: subprocess.run([str(clean) if clean.exists() else 'nbdev-clean', '--fname', str(x)], check=True, cwd=ROOT)

if __name__ == '__main__': main()
