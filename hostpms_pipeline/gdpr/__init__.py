"""GDPR: erasure, the suppression list, redaction before landing, right of access, the audit
log, pseudonymous Parquet keys and retention (``docs/gdpr.md``).

Everything here is driven by the entity specs (their personal columns, identifiers and
``guest_key``) and names no entity.
"""
