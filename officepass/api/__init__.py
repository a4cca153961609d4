"""The integrators' API (contract §10): JSON under /api/v1/, one router per resource."""
