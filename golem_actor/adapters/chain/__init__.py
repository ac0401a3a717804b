"""The chain adapter: StreamPayment's contract, its compiled artifact and the chain tools.

- ``contracts/``: our own Solidity sources (``StreamPayment.sol``, ``TestToken.sol``) and
  their compiled artifacts (``*.json``), shipped as package data.
- ``artifacts``: ``load_artifact(name)`` reads a shipped artifact.
- ``compile``: ``python -m golem_actor.adapters.chain.compile`` rebuilds the artifacts.
- ``tools``: finds the ``anvil`` and ``solcjs`` executables.
- ``errors``: the adapter's flat error set (``ChainUnavailable``, ``RpcError``,
  ``TransactionReverted``, ``FeeCapExceeded``, ``TransactionTimeout``).
- ``rpc``: ``RpcClient``, JSON-RPC over ``httpx.AsyncClient`` with batching and retries.
- ``stream_payment``: ``StreamPaymentClient`` (batched ``streams(id)`` reads) and calldata
  builders.
- ``transactions``: ``TransactionSender``, the single owner of a key's nonce and fee policy.
- ``deployments``: deployment files, their lookup order, and the payments profiles.
- ``deploy``: ``python -m golem_actor.adapters.chain.deploy`` deploys StreamPayment locally.
"""
