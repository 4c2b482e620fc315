"""HTTP suggestion service (FastAPI) and its type-ahead page.

Run it with ``coder serve`` (needs the ``serve`` extra: ``pip install 'coder[serve]'``)::

    coder serve                          # soc2000 on http://127.0.0.1:8000/
    coder serve --schemes soc2010,isco08 # also load (building if need be) these at start-up
    coder serve --build-missing          # build other schemes on first request, in the background

or build the app yourself with `coder.service.app.create_app` (a `Coder`, or a model
directory loaded at start-up).

Endpoints: ``GET /suggest`` (one answer: ``q`` the job title, optional ``industry`` and
``description``, what the person mainly does), ``POST /code`` (up to 1,000), ``GET /schemes``,
``GET /codes/{scheme}/{code}``, ``GET /codes/{scheme}?q=words`` (search), ``GET /health``,
OpenAPI docs at ``/docs``, and the type-ahead page at ``/``. Errors are JSON ``{"error",
"detail"}`` with a 4xx status, never a 500.

The clerical loop (`coder.service.clerical`, `coder.service.queue`): ``POST /decisions`` saves
a person's code for an answer in the decision store (`coder.decisions.DecisionStore`; ``coder
serve --store PATH``, default beside the models) and the serving coder uses it at once (the
answer comes back ``learned``); ``GET /decisions``, ``DELETE /decisions/{id}``. ``/queues``
hold the referred answers of a file (``coder serve --queue refer.csv``, or an upload), leased
to one clerk at a time, with ``next``, ``decide``, ``skip``, ``undo`` and ``export``; the page
at ``/clerical`` works through a queue by keyboard. Referred answers carry ``follow_up``
prompts: what would decide between candidates that differ only by a qualifier.

Schemes other than the default are not loaded at start-up unless listed with ``--schemes``.
On its first request a scheme whose model is built loads in a few seconds (the request waits);
one that is not built gets 503 naming ``coder build --scheme NAME``, or, with
``--build-missing``, starts a background build and gets 503 with ``Retry-After`` until done.
``GET /schemes`` says which are loaded, available, being built or not built.

Importing this package imports nothing heavy; FastAPI is imported by `coder.service.app`.
"""
