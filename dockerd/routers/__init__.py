"""Engine API routes kept out of dockerd/app.py, one APIRouter per group."""
