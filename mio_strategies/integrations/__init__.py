"""Integrations with other frameworks: BasicSR (``basicsr_prompt``, ``basicsr_curriculum``) and PyTorch
Lightning (``lightning``)."""
