"""The SDK: :class:`Sandbox` (async), :class:`SyncSandbox` (blocking), and their backends."""
