"""One router per resource; each route calls the Service and does no work of its own."""
