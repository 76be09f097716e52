"""The numerical engine: the network (``model``), the one training step and its chunks
(``step``), optimisers and schedules (``optim``), on-device random numbers (``rand``) and
augmentation (``augment``), data on the device (``data``), evaluation (``evaluate``) and the
memory a run needs (``budget``). Written against the op sets of ``xpnet.backends``."""
