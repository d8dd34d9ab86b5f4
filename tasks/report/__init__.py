"""What a run did and what is up to date: report.json, report.html and `doit status`."""
