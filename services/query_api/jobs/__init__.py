"""Jobs over HTTP: create export and report jobs, follow them, download and delete results."""
