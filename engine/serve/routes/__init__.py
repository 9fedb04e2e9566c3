"""The routes of ``ivos serve``, one ``APIRouter`` per resource: ``service`` (health, readiness,
metrics, the key's sessions), ``images`` (image sessions), ``videos`` (video sessions),
``jobs`` (propagation jobs of a video session, their progress as Server-Sent Events) and
``web`` (the editor's page and the few routes a browser needs) and ``label_studio`` (Label
Studio's ML backend protocol under ``/label-studio``). ``ivos.serve.app`` includes
them; each reads the ``Service`` and the key check from ``ivos.serve.deps``."""
