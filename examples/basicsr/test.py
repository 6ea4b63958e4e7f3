"""BasicSR evaluation of a prompt model: ``python examples/basicsr/test.py -opt examples/basicsr/options/test_SRResNet_SEP.yml``.

BasicSR's own ``test_pipeline`` with the prompt-learning names registered: each test image goes through the
network with its task's prompt (``MiOTestDataset`` reads the task from the test set's folders).
"""

from os import path as osp

from mio_strategies.integrations.basicsr_prompt import test_pipeline

if __name__ == "__main__":
    test_pipeline(osp.abspath(osp.join(__file__, osp.pardir)))
