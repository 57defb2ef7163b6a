"""A dispatcher in its own process, for the kill test: ``python -m tests.alerting.dispatch_child STORE_URL SPEC_JSON``."""

from __future__ import annotations

import json
import sys
import time

from tocsin.spec.alerting import AlertingSpec
from tocsin.alerting.dispatcher import Dispatcher
from tocsin.store.sql import Store

if __name__ == "__main__":
    store = Store(sys.argv[1])
    dispatcher = Dispatcher(store, AlertingSpec.model_validate(json.loads(sys.argv[2])))
    print("ready", flush=True)
    while True:
        dispatcher.run_once()
        time.sleep(0.01)
