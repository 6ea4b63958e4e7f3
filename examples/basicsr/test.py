"""BasicSR evaluation of a prompt model: ``python examples/basicsr/test.py -opt examples/basicsr/options/test_SRResNet_SEP.yml``.

BasicSR's own ``test_pipeline`` with the prompt-learning names registered: each test image goes through the
network with its task's prompt (``MiOTestDataset`` reads the task from the test set's folders).
Run it from the folder ``train.py`` ran in: ``results/`` is written there and ``pretrain_network_g`` is
read from there.
"""

import os

from mio_strategies.integrations.basicsr_prompt import test_pipeline

if __name__ == "__main__":
    test_pipeline(os.getcwd())
