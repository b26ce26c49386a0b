"""The operations spine: the registry of every action, and ``dispatch``, the only way in."""
