"""Jobs: the database-backed queue, the worker, and the job kinds it runs."""
