"""BasicSR training with both strategies: ``python examples/basicsr/train.py -opt examples/basicsr/options/train_SRResNet_SEP.yml``.

BasicSR's own ``train_pipeline``, with the curriculum sampler swapped in (``curriculum:`` in the train set's
options) and the prompt-learning names registered (``MiOPromptModel``, ``MiOPromptedNet``, ``MiOSRResNet``,
``MiOTrainDataset``, ``MiOTestDataset``). Experiments are written under the folder of this file.
"""

from os import path as osp

from mio_strategies.integrations.basicsr_curriculum import train_pipeline

if __name__ == "__main__":
    train_pipeline(osp.abspath(osp.join(__file__, osp.pardir)))
