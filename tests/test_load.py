"""20 concurrent gradio_client clients x 50 mixed queries against the running app."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mmsearch.search import Searcher
from ui.app import launch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from app import free_port, load  # noqa: E402  (bench/app.py: the same load as the benchmark)


@pytest.mark.slow
def test_twenty_clients_fifty_queries_each_no_errors(demo_index, encoder, capsys):
    searcher = Searcher(demo_index, encoder).warm()
    port = free_port()
    app = launch(searcher, port=port, block=False)
    try:
        result = load(f"http://127.0.0.1:{port}/", clients=20, queries=50,
                      pictures_root=demo_index.roots[0])
    finally:
        app.close()
    with capsys.disabled():
        print(f"\nload: {result['answered']} answered, {result['errors']} errors, "
              f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, "
              f"{result['throughput_qps']} queries/s")
    assert result["errors"] == 0, result["error_samples"]
    assert result["answered"] == 1000
