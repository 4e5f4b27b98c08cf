#!/usr/bin/env python
"""Fail when a notebook's markdown holds a measured number that no cell produced (the rule: nbs/92_prose_numbers.ipynb).

    python .ci/prose_check.py                      # every notebook in nbs/
    python .ci/prose_check.py nbs/30_benchmark.ipynb"""
import sys
from pathlib import Path
from dfkd.prose import check_notebooks

ROOT = Path(__file__).resolve().parents[1]
sys.exit(1 if check_notebooks(sys.argv[1:] or sorted((ROOT/'nbs').glob('*.ipynb'))) else 0)
