"""The member app and the operator console: FastAPI, server-rendered Jinja2 pages, little JavaScript."""
