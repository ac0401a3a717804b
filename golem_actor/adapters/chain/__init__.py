"""The chain adapter: StreamPayment's contract, its compiled artifact and the chain tools.

- ``contracts/``: our own Solidity sources (``StreamPayment.sol``, ``TestToken.sol``) and
  their compiled artifacts (``*.json``), shipped as package data.
- ``artifacts``: ``load_artifact(name)`` reads a shipped artifact.
- ``compile``: ``python -m golem_actor.adapters.chain.compile`` rebuilds the artifacts.
- ``tools``: finds the ``anvil`` and ``solcjs`` executables.
"""
