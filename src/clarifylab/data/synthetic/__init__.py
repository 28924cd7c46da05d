"""Building blocks of the embedded ``synthetic_tables`` corpus (SPEC §3): tables, question specs with
exact answers, and their phrasings. The corpus itself is built in :mod:`clarifylab.data.synthetic_tables`."""
