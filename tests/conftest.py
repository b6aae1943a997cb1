"""Test-wide set-up: objects registered once, the eventlet notice silenced."""

import warnings

warnings.filterwarnings('ignore', message='(?s).*Eventlet is deprecated')

from migration_conductor import objects  # noqa: E402

objects.register_all()
