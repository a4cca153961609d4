"""officepass: the reference pass service the doors talk to (contract §8).

This first part holds the signing keys and mints members' codes and the app's commands
(`keys`), and keeps every door's state from MQTT in a database (`models`, `fleet`,
`consumer`): SQLite by default, PostgreSQL by URL, migrated with Alembic.
"""
