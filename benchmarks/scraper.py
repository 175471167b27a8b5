"""A Prometheus stand-in for the benchmarks' metrics rows: GET each /metrics once a second."""

from __future__ import annotations

import threading

import httpx


def scraping(urls: list[tuple[str, dict[str, str]]], stop: threading.Event) -> threading.Thread:
    """A thread that GETs each (url, headers) once a second until `stop` is set, as Prometheus would."""

    def run() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.wait(1.0):
                for url, headers in urls:
                    client.get(url, headers=headers).raise_for_status()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
