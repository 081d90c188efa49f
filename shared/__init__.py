"""Code shared by the query API and the export worker: settings, models, jobs, storage, seed."""
