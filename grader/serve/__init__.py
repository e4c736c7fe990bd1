"""`grade serve`: the self-check page a course hosts while submissions are open.

A student uploads a model file and gets the checks `grade check` makes, the accuracy on the public test set
and a receipt, from the same engine (`grader.checking.check` on warm sandboxed workers). The modules:
settings.py (what the instructor chose), limits.py (rate and spool limits), receiving.py (an upload read as
it streams), store.py (SQLite: uploads by token, results by file), checker.py (the queue and its workers),
pages.py and templates/ (HTML), app.py (the Starlette app and `serve`).
"""
