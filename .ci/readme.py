"""Render nbs/index.ipynb to README.md (markdown cells as they are, code cells as Python blocks with their
text outputs). Stands in for `nbdev-readme`, which needs Quarto, a binary this project cannot install offline.
Run by CI: a README that differs from its notebook fails the build."""
import json
from pathlib import Path

root = Path(__file__).resolve().parent.parent
nb = json.loads((root/'nbs'/'index.ipynb').read_text())
parts = []
for cell in nb['cells']:
    src = ''.join(cell['source']).strip()
    if cell['cell_type'] == 'markdown': parts.append(src)
    elif cell['cell_type'] == 'code':
        lines = [l for l in src.splitlines() if not l.startswith('#|')]
        if '#| hide' in src or not lines: continue
        parts.append('```python\n' + '\n'.join(lines) + '\n```')
        for out in cell.get('outputs', []):
            txt = ''.join(out.get('text', '') or out.get('data', {}).get('text/plain', ''))
            if txt.strip(): parts.append('```\n' + txt.rstrip() + '\n```')
readme = '<!-- generated from nbs/index.ipynb by .ci/readme.py: edit the notebook, not this file -->\n\n' + '\n\n'.join(parts) + '\n'
out = root/'README.md'
if not out.exists() or out.read_text() != readme: out.write_text(readme)
