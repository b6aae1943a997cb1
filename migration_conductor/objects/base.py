"""Base classes of the versioned objects shared by the conductor and the agents.

Objects are plain data on the wire: they carry no database access (agents must never
reach the database), so converting to and from database rows lives in
:meth:`MigrationConductorObject.from_db_row` and :meth:`obj_db_values`, which work on
plain dicts returned by :mod:`db.api`.
"""

from oslo_versionedobjects import base as ovo_base
from oslo_versionedobjects import fields as ovo_fields


class MigrationConductorObjectRegistry(ovo_base.VersionedObjectRegistry):
    """Registry of the project's objects; makes each one an attribute of ``objects``."""

    def registration_hook(self, cls, index):
        from migration_conductor import objects
        version = tuple(int(x) for x in cls.VERSION.split('.'))
        current = getattr(objects, cls.obj_name(), None)
        if current is None or version >= tuple(
                int(x) for x in current.VERSION.split('.')):
            setattr(objects, cls.obj_name(), cls)


class MigrationConductorObject(ovo_base.VersionedObject):
    """Base of every object: its namespace and the row conversion helpers."""

    OBJ_SERIAL_NAMESPACE = 'migration_conductor_object'
    OBJ_PROJECT_NAMESPACE = 'migration_conductor'

    def __init__(self, context=None, **kwargs):
        """Build the object; every field not given that has a default gets it.

        NOTE: oslo.versionedobjects leaves such fields unset, and reading one then
        tries to lazy-load it (NotImplementedError here, where objects carry no
        database access).
        """
        super().__init__(context, **kwargs)
        unset = [name for name, field in self.fields.items()
                 if not self.obj_attr_is_set(name) and field.default
                 is not ovo_fields.UnspecifiedDefault]
        if unset:
            self.obj_set_defaults(*unset)

    # Fields that are not columns of the object's table.
    _non_db_fields = ()

    @classmethod
    def from_db_row(cls, row):
        """Build an object from a ``db.api`` row (a dict of column -> value)."""
        obj = cls()
        for name in cls.fields:
            if name in cls._non_db_fields or name not in row:
                continue
            setattr(obj, name, row[name])
        obj.obj_reset_changes()
        return obj

    def obj_db_values(self, only_changed=False):
        """Return the column values of this object, for ``db.api`` writes."""
        names = self.obj_what_changed() if only_changed else self.fields
        return {name: getattr(self, name) for name in names
                if name not in self._non_db_fields and self.obj_attr_is_set(name)}


class MigrationConductorObjectSerializer(ovo_base.VersionedObjectSerializer):
    """Serializes the project's objects in RPC messages."""

    OBJ_BASE_CLASS = MigrationConductorObject


class ObjectListBase(ovo_base.ObjectListBase):
    """Lists of objects (``objects`` field); kept here so lists share one base."""
