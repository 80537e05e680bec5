"""The HostPMS entities, one declarative spec each (``spec.py`` is their vocabulary)."""

from hostpms_pipeline.entities.guests import GUESTS
from hostpms_pipeline.entities.payments import PAYMENTS
from hostpms_pipeline.entities.reservations import RESERVATIONS
from hostpms_pipeline.entities.rooms import ROOMS
from hostpms_pipeline.entities.spec import EntitySpec

# Load order: payments refer to reservations, so reservations load first.
ENTITIES: tuple[EntitySpec, ...] = (RESERVATIONS, GUESTS, ROOMS, PAYMENTS)
BY_COLLECTION = {entity.collection: entity for entity in ENTITIES}
