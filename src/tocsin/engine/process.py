"""A Kafka worker as an operating-system process: logging, signals, its metrics endpoint, its summary.

``tocsin run SPEC --workers N`` starts N of these (:func:`worker_main`, picklable
arguments only); tests and the benchmark start one with
``python -m tocsin.engine.process CONFIG.json`` where the JSON holds
``{"spec": …, "worker_id": …, "idle_exit": …}``. SIGTERM and SIGINT stop it
cleanly: the current batch finishes, every partition is checkpointed, the
group is left. Worker *i* serves its Prometheus metrics on ``metrics.port + i``
when the spec sets a port.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any


def worker_main(spec_data: dict[str, Any], worker_id: str, idle_exit: float | None = None,
                consumer_overrides: dict[str, Any] | None = None) -> None:
    """Run one worker until it is stopped; print its summary as one JSON line."""
    from tocsin.engine.worker import KafkaWorker
    from tocsin.spec import parse_spec

    logging.basicConfig(level=os.environ.get("TOCSIN_LOG_LEVEL", "WARNING"),
                        format=f"%(asctime)s worker {worker_id} %(levelname)s %(name)s: %(message)s")
    spec = parse_spec(spec_data)
    worker = KafkaWorker(spec, worker_id=worker_id, idle_exit=idle_exit, consumer_overrides=consumer_overrides)
    server = None
    if spec.metrics.port is not None:
        port = spec.metrics.port + int(worker_id) if spec.metrics.port and worker_id.isdigit() else spec.metrics.port
        server = worker.metrics.serve(spec.metrics.host, port)
        logging.getLogger(__name__).warning("worker %s: metrics on %s", worker_id, server.url)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    signal.signal(signal.SIGINT, lambda *_: worker.stop())
    try:
        stats = worker.run()
    finally:
        if server is not None:
            server.stop()
    print(json.dumps({"worker": worker_id, **({"metrics_port": server.port} if server else {}), **stats.summary()}), flush=True)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    config = json.loads(Path(args[0]).read_text())
    worker_main(config["spec"], str(config.get("worker_id", "0")), config.get("idle_exit"), config.get("consumer_overrides"))


if __name__ == "__main__":
    main()
