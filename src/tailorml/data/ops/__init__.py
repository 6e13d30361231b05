"""The data operators. Importing this package registers every one of them as a ``data_op``.

Text cleaning (``normalize``, ``html_to_text``), filters (``length``,
``blocklist``, ``language``, ``quality``), deduplication (``exact_dedup``,
``minhash_dedup``, ``semantic_dedup``, ``decontaminate``), personal-data
redaction (``pii_redact``), and the operators other modules of this package
add. Each module imports its heavy dependencies (ftfy, trafilatura,
py3langid, xxhash, transformers, spaCy) only when an operator is set up, so
importing this package stays cheap.
"""

import importlib
import pkgutil

# Every module of the package is imported, so an operator registers by being
# written here: no list to keep in step with the files.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
