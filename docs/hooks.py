"""MkDocs hook: the benchmark's results (bench/RESULTS*.md) published with the site as they
are in the repository, so that the docs link to them rather than copy them."""

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]


def on_files(files, config):
    for path in sorted((ROOT / "bench").glob("RESULTS*.md")):
        files.append(File(f"bench/{path.name}", str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files
