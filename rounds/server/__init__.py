"""`rounds` envs over HTTP in the OpenEnv protocol (extra ``[server]``).

:mod:`rounds.server.app` serves one env id (``rounds serve ENV_ID``);
:mod:`rounds.server.client` is ``rounds/Remote-v0``, the Gymnasium env that talks
to it; :mod:`rounds.server.protocol` holds the wire format. Nothing here is
imported by ``import rounds``: FastAPI and uvicorn load only when a server starts.
"""
