"""Route groups other than EST, each an ``APIRouter`` mounted by ``create_app``."""
