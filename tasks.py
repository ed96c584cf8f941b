"""Phoenix task collection: `inv --list` shows every task.

The collection is composed in phoenix_tasks/collection.py (an installed Phoenix has no
tasks.py); each area lives in phoenix_tasks/tasks/.
"""

from phoenix_tasks.collection import ns

__all__ = ["ns"]
