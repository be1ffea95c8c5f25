"""Command-line recipes (console scripts) built on Lightning's CLI.

- ``lga-train`` (:mod:`recipes.train`): train any LightningModule/datamodule, with ``NTKMetrics``;
- ``lga-search`` (:mod:`recipes.search`): architecture search ranked by LGA (``LGASearch``);
- ``lga-correlate`` (:mod:`recipes.correlate`): the paper's correlation study.

Every recipe takes ``--config file.yaml`` (see ``configs/``), ``--help`` and ``--print_config``.
"""
