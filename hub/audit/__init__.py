"""The audit trail of every processing (Logboek Dataverwerkingen), kept per the Archiefwet.

Other layers need only :func:`hub.audit.processing.current_processing` and the
:class:`~hub.audit.processing.Processing` it returns (or the ``note_*`` hooks there); see
``docs/audit.md`` for the design. The package itself imports nothing, so that the audit writer
process starts without the web server's modules.
"""
