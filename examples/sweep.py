"""A small hyperparameter sweep from Python, through the command line's ``xpnet sweep``: a
search space, a study in a SQLite file, 4 trials in one worker, and the best trial's model
(needs: pip install 'xpnet[sweep]').

    python examples/sweep.py
"""

import subprocess
import sys
import tempfile
from pathlib import Path

SPACE = """
[train]
epochs = 1
hidden = [32]
validation = 50000   # train on 10,000 images, score on the other 50,000

[sweep]
sampler = "random"

[sweep.params]
lr = {low = 0.01, high = 1.0, log = true}
batch-size = [32, 128]
"""


def xpnet(*args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "xpnet", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout


with tempfile.TemporaryDirectory() as folder:
    here = Path(folder)
    (here / "space.toml").write_text(SPACE)
    xpnet("sweep", "create", "--study", "example", "--space", "space.toml", cwd=here)
    xpnet("sweep", "run", "--study", "example", "--trials", "4", cwd=here)
    print(xpnet("sweep", "show", "--study", "example", cwd=here))
    print(xpnet("sweep", "best", "--study", "example", "--save", "best.npz", cwd=here))
