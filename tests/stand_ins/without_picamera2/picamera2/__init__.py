"""Stands for a machine without picamera2 (put first on PYTHONPATH): importing it fails as it does
where the package is not installed, even on a Pi that has python3-picamera2."""

raise ImportError("No module named 'picamera2' (stand-in: not installed)")
