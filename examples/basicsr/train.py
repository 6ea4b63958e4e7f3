"""BasicSR training with both strategies.

Run ``python examples/basicsr/train.py -opt examples/basicsr/options/train_SRResNet_SEP.yml``.

BasicSR's own ``train_pipeline``, with the curriculum sampler swapped in (``curriculum:`` in the train set's
options) and the prompt-learning names registered (``MiOPromptModel``, ``MiOPromptedNet``, ``MiOSRResNet``,
``MiOTrainDataset``, ``MiOTestDataset``). Run it from the folder the options' relative paths start from (the repository root for
the example options): ``experiments/``, ``tb_logger/`` and ``--auto_resume`` are resolved there, as with
BasicSR's own ``basicsr/train.py`` run from its repository.
"""

import os

from mio_strategies.integrations.basicsr_curriculum import train_pipeline

if __name__ == "__main__":
    train_pipeline(os.getcwd())
